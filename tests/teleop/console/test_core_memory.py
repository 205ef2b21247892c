"""The console core's per-echo figures stay bounded over a long session driven by hand."""

from __future__ import annotations

from telesurg.teleop.console import core
from telesurg.teleop.console.config import ConsoleConfig
from telesurg.teleop.console.core import Console
from telesurg.teleop.console.page_input import PageInput
from telesurg.teleop.wire import protocol as p
from telesurg.teleop.wire.channels import Endpoints, free_loopback_ports


def _echo(seq: int) -> p.Telemetry:
    """Telemetry echoing command ``seq``, accepted 1 ms after it was sent."""
    return p.Telemetry(
        arm="psm1", seq=seq, robot_s=seq * 0.005, joint_pos=[0.0] * 6, tool=p.Pose((0.0, 0.0, 0.0)), jaw=0.0,
        force_N=(0.0, 0.0, 0.0), force_mag_N=0.0, state="ENGAGED", reason="", last_cmd_seq=seq,
        last_cmd_sent_console_s=seq * 0.005, last_cmd_accepted_robot_s=seq * 0.005 + 0.001,
    )  # fmt: skip


def test_command_latencies_are_kept_bounded_newest_first(monkeypatch) -> None:
    monkeypatch.setattr(core, "MAX_LATENCIES", 1000)
    endpoints = Endpoints("127.0.0.1", *free_loopback_ports(3))
    console = Console(ConsoleConfig(endpoints=endpoints, input="web"), device=PageInput())
    try:
        console.session = "s"
        for seq in range(1, 5001):
            console._observe(_echo(seq))
        assert 500 <= len(console.latencies) <= 1000
        assert abs(console.latencies[-1] - 0.001) < 1e-9  # the newest kept
        assert console.delay_estimate_s() > 0
    finally:
        console.device.close()
        console.link.close()
