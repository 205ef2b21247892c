"""The supervisor keeps the tool's force under the hard limit when a surgeon presses it into the
Transfer task's peg board at top speed (the soak once saw 86-93 N there: the board was perfectly
rigid, and its contact impulses came and went at alternate physics steps)."""

from __future__ import annotations

import numpy as np
import pytest

from telesurg.teleop.robot.arm import SimArmConfig, SimulatedArm
from telesurg.teleop.robot.supervisor import Supervisor, SupervisorConfig
from telesurg.teleop.wire.clock import ClockSync

PERIOD_S = 0.002
BOARD_THICKNESS_M = 0.004


@pytest.fixture(scope="module")
def transfer_arm():
    arm = SimulatedArm(SimArmConfig(task="Transfer", seed=3, preload=("Transfer",)))
    arm.connect()
    yield arm
    arm.disconnect()


class _Surgeon:
    """Sends a target every control period through the supervisor, as the server does."""

    def __init__(self, arm: SimulatedArm) -> None:
        low, high = arm.workspace_m()
        config = SupervisorConfig(limits=arm.limits, workspace_low_m=tuple(low), workspace_high_m=tuple(high))
        self.arm, self.supervisor, self.clock = arm, Supervisor(config), ClockSync()
        self.now_s, self.seq = 0.0, 0
        assert self.supervisor.engage("test", self.now_s).accepted

    def drive(self, target_m: np.ndarray, seconds: float) -> list[float]:
        """Command ``target_m`` for ``seconds``; the peak contact force (N) of every period."""
        peaks = []
        for _ in range(round(seconds / PERIOD_S)):
            self.seq += 1
            self.supervisor.on_command(
                self.supervisor.session, self.seq, self.now_s, target_m, 1.0, True, False, self.now_s, self.clock
            )
            reading = self.arm.read()
            peaks.append(reading.force_peak_N)
            setpoint = self.supervisor.tick(
                self.now_s, reading.tip_m, reading.jaw, PERIOD_S, reading.force_N, reading.force_peak_N
            )
            self.arm.command(setpoint.tip_m, setpoint.jaw)
            self.arm.update(PERIOD_S)
            self.now_s += PERIOD_S
        return peaks


def test_pressing_into_the_peg_board_stays_under_the_hard_limit(transfer_arm: SimulatedArm) -> None:
    env = transfer_arm.env
    board_m, _ = env.sim.base_pose("pegboard")
    top_m = env.task.to_base(board_m + np.array([0.0, 0.0, BOARD_THICKNESS_M]))
    surgeon = _Surgeon(transfer_arm)
    assert max(surgeon.drive(top_m + np.array([0.0, 0.0, 0.01]), 3.0)) == 0.0  # free above the board
    peaks = np.array(surgeon.drive(top_m - np.array([0.0, 0.0, 0.005]), 3.0))  # 5 mm into it
    hard_N = transfer_arm.limits.hard_N
    touching = peaks > 0.05
    assert touching.sum() > 0.9 * touching.size / 2, "the tool never pressed on the board"
    assert peaks.max() <= hard_N, f"peak {peaks.max():.1f} N over the {hard_N} N hard limit"
    # Pressed and held there, the reading is steady: contact is never lost and regained.
    assert touching[-500:].all(), "the contact came and went while the tool pressed on the board"
