"""The console's wait for its next tick ends early when the surgeon page signals new input (the key
press leaves at once) or a request (the e-stop), and otherwise lasts to its deadline; however often
the page sends, there is never more than one tick per period."""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np

from telesurg.teleop.console.browser import wait_for_tick
from telesurg.teleop.console.config import ConsoleConfig
from telesurg.teleop.console.page_input import PageInput
from telesurg.teleop.console.robot_link import RobotLink
from telesurg.teleop.wire.channels import Endpoints, free_loopback_ports
from telesurg.teleop.wire.timing import FixedRate

PERIOD_S = 0.005


def _link() -> RobotLink:
    return RobotLink(ConsoleConfig(endpoints=Endpoints("127.0.0.1", *free_loopback_ports(3))))


def test_a_signalled_wake_fd_ends_the_wait_and_an_unsignalled_or_closed_one_does_not() -> None:
    link = _link()
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
        start = link.true_clock()
        assert link.wait_until(start + 0.01, -1) is False  # a closed device's fd: a plain wait
    finally:
        os.close(fd)
        link.close()


def _ticks(link: RobotLink, device: PageInput, seconds: float, served: list[float]) -> list[float]:
    """Run the browser console's tick schedule for ``seconds``: the times of its ticks."""
    rate = FixedRate(PERIOD_S, link.true_clock, link.true_clock())
    ticks: list[float] = []
    end = link.true_clock() + seconds
    while link.true_clock() < end:
        now = link.true_clock()
        device.woken()
        ticks.append(now)
        wait_for_tick(link, rate, device, now, lambda: served.append(link.true_clock()))
    return ticks


def _event(seq: int, axes: tuple[float, float, float]) -> str:
    return json.dumps({"seq": seq, "t_page_ms": time.monotonic() * 1e3, "axes": list(axes), "clutch": True})


def test_a_page_sending_changes_at_2_khz_gets_no_more_than_one_tick_per_period() -> None:
    link, device = _link(), PageInput()
    stop = threading.Event()

    def flood() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            device.push(_event(i, (0.5 * (i % 2), 0.0, 0.0)), link.true_clock())  # a real change each time
            time.sleep(0.0005)

    thread = threading.Thread(target=flood)
    thread.start()
    try:
        ticks = _ticks(link, device, 1.0, [])
    finally:
        stop.set()
        thread.join()
        device.close()
        link.close()
    gaps = np.diff(ticks)
    assert len(ticks) <= 1.0 / PERIOD_S + 2, len(ticks)
    assert gaps.min() >= PERIOD_S / 2 - 2e-4, gaps.min()


def test_a_key_press_is_ticked_at_once_and_stick_jitter_is_not_new_input() -> None:
    link, device = _link(), PageInput()
    pressed: list[float] = []

    def page() -> None:
        for i in range(1, 41):
            time.sleep(0.0123)  # out of phase with the ticks
            jitter = (0.01 * (i % 2), 0.0, 0.0)  # a resting stick: inside the dead zone
            if i % 10 == 0:
                pressed.append(link.true_clock())
                device.push(_event(i, (1.0, 0.0, 0.0)), link.true_clock())
            else:
                device.push(_event(i, jitter), link.true_clock())

    thread = threading.Thread(target=page)
    thread.start()
    try:
        ticks = np.asarray(_ticks(link, device, 0.6, []))
    finally:
        thread.join()
        device.close()
        link.close()
    # Each press: a tick within half a period (at most) plus a little scheduling, not up to a period.
    for t in pressed:
        after = ticks[ticks >= t]
        assert len(after) and after[0] - t < PERIOD_S / 2 + 0.0015, (after[:1] - t, t)
    # The jitter between presses woke nothing: about one tick per period, not one per event more.
    assert len(ticks) <= 0.6 / PERIOD_S + len(pressed) + 2, len(ticks)


def test_a_request_from_the_page_is_served_at_once_without_an_extra_tick() -> None:
    link, device = _link(), PageInput()
    served: list[float] = []
    asked = []
    timer = threading.Timer(0.0117, lambda: (asked.append(link.true_clock()), device.wake()))
    timer.start()
    try:
        ticks = _ticks(link, device, 0.05, served)
    finally:
        timer.join()
        device.close()
        link.close()
    assert served and served[0] - asked[0] < 0.0015, (served, asked)
    assert len(ticks) <= 0.05 / PERIOD_S + 1
