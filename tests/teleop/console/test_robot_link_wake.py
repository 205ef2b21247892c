"""The console's wait for its next tick ends early when the input device signals new input (the
surgeon page's key press leaves at once), and otherwise lasts to its deadline."""

from __future__ import annotations

import os
import threading

from telesurg.teleop.console.config import ConsoleConfig
from telesurg.teleop.console.robot_link import RobotLink
from telesurg.teleop.wire.channels import Endpoints, free_loopback_ports


def test_a_signalled_wake_fd_ends_the_wait_and_an_unsignalled_one_does_not() -> None:
    link = RobotLink(ConsoleConfig(endpoints=Endpoints("127.0.0.1", *free_loopback_ports(3))))
    fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    try:
        start = link.true_clock()
        assert link.wait_until(start + 0.05, fd) is False
        assert link.true_clock() >= start + 0.05

        timer = threading.Timer(0.02, os.eventfd_write, (fd, 1))
        start = link.true_clock()
        timer.start()
        assert link.wait_until(start + 2.0, fd) is True
        woke_after = link.true_clock() - start
        timer.join()
        assert 0.015 <= woke_after < 1.0, woke_after  # at the signal, not at the 2 s deadline
        try:
            os.eventfd_read(fd)
            raise AssertionError("the wait left the signal set")
        except BlockingIOError:
            pass
    finally:
        os.close(fd)
        link.close()
