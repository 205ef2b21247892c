"""The safety supervisor alone (no transport): sessions, freshness, watchdog, limits, e-stop."""

from __future__ import annotations

import numpy as np
import pytest

from telesurg.teleop.robot.supervisor import Box, State, Supervisor, SupervisorConfig
from telesurg.teleop.wire.clock import ClockSync

DT = 0.002  # 500 Hz
HOME = np.array([0.0, -0.30, -0.05])
SYNC = ClockSync(offset_s=100.0, uncertainty_s=0.0002)  # robot clock = console clock + 100 s


class Rig:
    """A supervisor with a perfect servo: the tip is wherever the last setpoint put it."""

    def __init__(self, config: SupervisorConfig | None = None) -> None:
        self.sup = Supervisor(config)
        self.now = 0.0
        self.tip = HOME.copy()
        self.seq = 0
        self.session = ""
        self.trace: list[np.ndarray] = []

    def engage(self, client: str = "console-a") -> None:
        verdict = self.sup.engage(client, self.now)
        assert verdict.accepted, verdict.reason
        self.session = verdict.session

    def command(self, target, age_s: float = 0.001, **kw):
        self.seq += 1
        fields = {"session": self.session, "seq": self.seq, "jaw": 0.0, "clutch": True, "estop": False}
        fields.update(kw)
        sent_console = self.now - age_s - SYNC.offset_s
        return self.sup.on_command(
            target_m=np.asarray(target, dtype=float),
            sent_console_s=sent_console,
            received_s=self.now,
            clock=SYNC,
            **fields,
        )

    def run(self, seconds: float, target=None, every_s: float = DT, force_N=None):
        """Advance time, commanding ``target`` every ``every_s`` (None: no commands)."""
        next_cmd = self.now
        for _ in range(round(seconds / DT)):
            if target is not None and self.now >= next_cmd - 1e-12:
                self.command(target)
                next_cmd += every_s
            sp = self.sup.tick(self.now, self.tip, 0.0, DT, force_N)
            self.tip = sp.tip_m.copy()
            self.trace.append(self.tip.copy())
            self.now += DT


def test_engage_gives_one_session_and_refuses_a_second_console() -> None:
    rig = Rig()
    rig.engage("console-a")
    assert rig.sup.state == State.ENGAGED and rig.session
    second = rig.sup.engage("console-b", rig.now)
    assert not second.accepted and "engaged by console-a" in second.reason
    assert rig.sup.disengage(rig.session, rig.now).accepted and rig.sup.state == State.IDLE
    assert rig.sup.engage("console-b", rig.now).accepted


def test_console_drives_the_tip_to_its_target_at_the_speed_limit() -> None:
    rig = Rig()
    rig.engage()
    target = HOME + np.array([0.02, 0.0, 0.0])
    rig.run(0.1, target)
    steps = np.linalg.norm(np.diff(np.array(rig.trace), axis=0), axis=1)
    assert steps.max() <= 0.1 * DT + 1e-12  # 0.1 m/s
    assert np.linalg.norm(rig.tip - HOME) == pytest.approx(0.01, abs=0.0003)  # 0.1 s at 0.1 m/s
    rig.run(0.2, target)
    np.testing.assert_allclose(rig.tip, target, atol=1e-9)


def test_watchdog_holds_the_arm_still() -> None:
    rig = Rig()
    rig.engage()
    rig.run(0.05, HOME + np.array([0.0, 0.0, 0.03]))
    last_cmd = rig.sup.last_valid_s
    rig.run(0.3)  # the console goes silent
    hold = next(e for e in rig.sup.events if e.state == State.HOLD)
    assert "watchdog" in hold.reason
    assert 0.1 < hold.time_s - last_cmd <= 0.1 + DT + 1e-9
    after = np.array(rig.trace[-100:])
    assert np.ptp(after, axis=0).max() == 0.0  # the tool does not move


def test_out_of_order_duplicate_and_foreign_commands_are_never_applied() -> None:
    rig = Rig()
    rig.engage()
    rig.run(0.02, HOME)
    good = HOME + np.array([0.0, 0.0, 0.01])
    assert rig.command(good).accepted
    rig.seq -= 2
    verdict = rig.command(HOME + np.array([0.05, 0.0, 0.0]))
    assert not verdict.accepted and "not above" in verdict.reason
    rig.seq += 5
    verdict = rig.command(HOME + np.array([-0.05, 0.0, 0.0]), session="someone-else")
    assert not verdict.accepted and verdict.reason == "foreign session"
    rig.run(0.3)
    assert rig.tip[0] == pytest.approx(HOME[0])  # neither x target was ever applied


def test_old_commands_slow_down_then_are_refused_and_hold() -> None:
    rig = Rig()
    rig.engage()
    target = HOME + np.array([0.03, 0.0, 0.0])
    assert rig.command(target, age_s=0.525).accepted  # halfway from 300 to 750 ms: half speed
    rig.sup.tick(rig.now, rig.tip, 0.0, DT)
    sp = rig.sup.tick(rig.now, rig.tip, 0.0, DT)
    assert np.linalg.norm(sp.tip_m - HOME) == pytest.approx(2 * 0.05 * DT)
    verdict = rig.command(target, age_s=0.8)
    assert not verdict.accepted and "stale" in verdict.reason
    assert rig.sup.state == State.HOLD and "stale" in rig.sup.reason


@pytest.mark.parametrize("jump_s", [1.0, -1.0, 0.05])
def test_a_console_clock_jump_cannot_make_commands_look_fresh(jump_s: float) -> None:
    """Commands stamped by a console clock that jumped after the sync: forward jumps make them look
    sent after they arrived (refused), backward jumps make them look old (refused as stale)."""
    rig = Rig()
    rig.engage()
    verdict = rig.command(HOME + np.array([0.01, 0.0, 0.0]), age_s=0.001 - jump_s)
    assert not verdict.accepted
    assert ("console clock ahead" in verdict.reason) if jump_s > 0 else ("stale" in verdict.reason)


def test_estop_latches_from_request_and_from_command_flag() -> None:
    rig = Rig()
    rig.engage()
    verdict = rig.command(HOME, estop=True)
    assert not verdict.accepted and rig.sup.state == State.ESTOP
    rig.run(0.05, HOME + np.array([0.0, 0.0, 0.02]))  # the same console keeps commanding
    assert rig.sup.state == State.ESTOP and np.allclose(rig.tip, HOME)
    assert not rig.sup.engage("console-a", rig.now).accepted
    assert rig.sup.reset(rig.now).accepted and rig.sup.state == State.IDLE
    rig.engage()
    assert rig.sup.estop("pedal", rig.now).accepted and rig.sup.state == State.ESTOP
    assert [e.state for e in rig.sup.events][-1] == State.ESTOP and "pedal" in rig.sup.reason


def test_leaving_hold_never_jumps() -> None:
    rig = Rig()
    rig.engage()
    rig.run(0.05, HOME + np.array([0.0, 0.0, 0.01]))
    rig.run(0.2)  # watchdog → HOLD
    assert rig.sup.state == State.HOLD
    far = HOME + np.array([0.05, 0.0, -0.02])
    rig.trace.clear()
    rig.run(0.1, far)
    assert rig.sup.state == State.ENGAGED
    steps = np.linalg.norm(np.diff(np.array(rig.trace), axis=0), axis=1)
    assert steps.max() <= 0.1 * DT + 1e-12


def test_clutch_release_holds() -> None:
    rig = Rig()
    rig.engage()
    rig.run(0.02, HOME + np.array([0.0, 0.0, 0.01]))
    assert rig.command(HOME + np.array([0.05, 0.0, 0.0]), clutch=False).accepted
    assert rig.sup.state == State.HOLD and rig.sup.reason == "clutch released"


def test_workspace_and_forbidden_regions_are_never_entered() -> None:
    wall = Box((0.010, -0.34, -0.09), (0.030, -0.26, 0.0))
    rig = Rig(SupervisorConfig(forbidden=(wall,)))
    rig.engage()
    inside = np.array([0.02, -0.30, -0.05])
    rig.run(0.5, inside)
    assert all(not wall.contains(p) for p in rig.trace)
    assert rig.tip[0] == pytest.approx(0.010 - 0.0005, abs=1e-6)  # stopped at the margin
    beyond = np.array([0.5, 0.5, 0.5])
    rig2 = Rig()
    rig2.engage()
    rig2.run(3.0, beyond)
    np.testing.assert_allclose(rig2.tip, rig2.sup.config.workspace_high_m)


def test_force_above_the_ceiling_backs_off_and_blocks_motion_into_tissue() -> None:
    rig = Rig()
    rig.engage()
    down = HOME + np.array([0.0, 0.0, -0.02])
    rig.run(0.05, down, force_N=np.array([0.0, 0.0, 5.5]))  # pressing; ceiling is 5 N
    assert rig.tip[2] > HOME[2]  # it moved up, away from the tissue, not down
