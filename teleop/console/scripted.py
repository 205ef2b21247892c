"""The scripted surgeon and trace replay: input devices that need no person (tests, benchmarks, the
safety harness, demos).

- ``ScriptedSurgeon``: the envs expert for the loaded task decides where the tool should go, from
  what the console shows (telemetry as it arrives, delayed — never the robot's true state); the
  surgeon moves the hand so the tool heads there (the expert's tool-space intent divided by the
  motion scale, through the hand–eye mapping), with physiological tremor (8–12 Hz, ~0.1 mm RMS)
  and a little noise on top.
- ``TraceReplay``: a CSV of ``t, x, y, z, jaw`` (seconds, hand-space metres, 0–1) replayed in time
  (``Trace`` reads and writes the file).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from telesurg.envs.core import EnvConfig
from telesurg.envs.experts import EXPERTS, Expert
from telesurg.envs.layout import ROBOT_FIELDS, ObsLayout
from telesurg.envs.tasks import TASKS_BY_NAME
from telesurg.teleop.console.mapping import HandToTool
from telesurg.teleop.correction.signals import Tremor
from telesurg.teleop.wire import protocol as p

if TYPE_CHECKING:
    from telesurg.teleop.correction.twin import LocalTwin
from telesurg.teleop.console.inputs import HandInput


@dataclass(frozen=True)
class SurgeonConfig:
    """The scripted surgeon. ``tremor_rms_m``: physiological tremor in hand space (m RMS per axis),
    band ``tremor_band_hz``; ``noise_rms_m``: white noise on the hand; ``max_tool_speed_m_s``: how
    fast the surgeon moves the tool (kept under the robot's limit); ``think_period_s``: how often
    the surgeon re-decides (the expert's step, as in the environment); ``lag_caution``: the approach
    time grows by this many seconds per second of round trip (a surgeon slows down under lag)."""

    tremor_rms_m: float = 1e-4
    tremor_band_hz: tuple[float, float] = (8.0, 12.0)
    noise_rms_m: float = 2e-5
    max_tool_speed_m_s: float = 0.08
    think_period_s: float = 0.04
    #: How much the surgeon slows down per second of round trip it perceives (see ``read``).
    lag_caution: float = 1.5
    #: No new telemetry for this long (s): the surgeon stops moving until the picture moves again.
    freeze_s: float = 0.15
    seed: int = 0
    #: What the surgeon closes its loop on: the tool as the (delayed) telemetry shows it, or the
    #: console's local twin (``telesurg.teleop.correction.twin``), which answers the hand at once.
    feedback: Literal["telemetry", "twin"] = "telemetry"
    #: The surgeon closes the distance to where the tool should go with this time constant at least
    #: (s; the think period when shorter): a longer one eases into the target over several periods
    #: instead of landing in one. 0: the think period.
    approach_tau_s: float = 0.0

    def __post_init__(self) -> None:
        if self.feedback not in ("telemetry", "twin"):
            raise ValueError(f"feedback must be 'telemetry' or 'twin', not {self.feedback!r}")


class ScriptedSurgeon:
    """See the module docstring."""

    def __init__(self, config: SurgeonConfig | None = None) -> None:
        self.config = config or SurgeonConfig()
        self.rng = np.random.default_rng(self.config.seed)
        self.tremor = Tremor(self.config.tremor_rms_m, self.config.tremor_band_hz, self.rng)
        self.hand_m = np.zeros(3)  # voluntary hand position (before tremor)
        self.expert: Expert | None = None
        self.task = ""
        self.goal_m: np.ndarray | None = None
        self.jaw = 0.0
        self._last_think = -math.inf
        self._last_now: float | None = None
        self._last_telemetry_seq = -1
        self._seen_seq = -1
        self._fresh_at = -math.inf
        #: The console's local twin, set by the console when ``feedback = "twin"``.
        self.twin: LocalTwin | None = None

    def start_task(self, task: str) -> None:
        """A new episode of ``task`` (the expert starts over)."""
        cls = TASKS_BY_NAME[task]
        obs_layout = ObsLayout(ROBOT_FIELDS + cls.obs_fields)
        goal_layout = ObsLayout(cls.goal_fields)
        self.expert = EXPERTS[task](obs_layout, goal_layout, EnvConfig().max_step_m)
        self.task = task
        self.goal_m = None
        self._last_think = -math.inf
        self._last_now = None

    def read(self, now_s: float, telemetry: p.Telemetry | None, mapping: HandToTool) -> HandInput:
        cfg = self.config
        dt = 0.0 if self._last_now is None else max(0.0, now_s - self._last_now)
        self._last_now = now_s
        if telemetry is not None and telemetry.task is not None:
            if self.expert is None or telemetry.task.name != self.task:
                self.start_task(telemetry.task.name)
            if telemetry.seq != self._seen_seq:
                self._seen_seq, self._fresh_at = telemetry.seq, now_s
            if now_s - self._last_think >= cfg.think_period_s - 1e-9 and telemetry.seq != self._last_telemetry_seq:
                self._last_think = now_s
                self._last_telemetry_seq = telemetry.seq
                t = telemetry.task
                obs = {
                    "observation": np.asarray(t.observation, dtype=np.float32),
                    "achieved_goal": np.asarray(t.achieved_goal, dtype=np.float32),
                    "desired_goal": np.asarray(t.desired_goal, dtype=np.float32),
                }
                assert self.expert is not None
                command = self.expert.act(obs)
                self.goal_m = np.asarray(command.target_m, dtype=float)
                self.jaw = float(command.jaw_opening)
            if self.goal_m is not None and mapping.clutched:
                on_twin = cfg.feedback == "twin"
                if on_twin and (self.twin is None or not self.twin.ready):
                    raise RuntimeError("the scripted surgeon's feedback is the twin, but the console has none")
                shown = self.twin.tip_m() if on_twin and self.twin else np.asarray(telemetry.tool.pos_m, dtype=float)
                # Head for the goal as seen on the screen, at most at the surgeon's speed.
                assert self.expert is not None
                speed = cfg.max_tool_speed_m_s * self.expert.speed_fraction
                # A surgeon who sees the lag slows down: the approach time grows with the round trip
                # (move-and-wait), which keeps the loop through the delay from overshooting.
                # The lag it perceives: the round trip, or twice the age of the newest command the robot
                # applied (a late, bursty link shows there before the pings catch up).
                cmd_age = 0.0
                if telemetry.last_cmd_seq > 0:
                    sent_robot = telemetry.last_cmd_sent_console_s + telemetry.clock_offset_s
                    cmd_age = max(0.0, telemetry.robot_s - sent_robot)
                lag = max(telemetry.clock_rtt_s, 2.0 * cmd_age, 0.0)
                if on_twin:
                    lag = 0.0  # the twin answers the hand at once: no round trip to wait out
                tau = max(cfg.think_period_s, cfg.approach_tau_s) + cfg.lag_caution * lag
                v = (self.goal_m - shown) / tau
                if now_s - self._fresh_at > cfg.freeze_s:
                    v = np.zeros(3)  # the picture froze: a surgeon does not move blind
                n = float(np.linalg.norm(v))
                if n > speed:
                    v *= speed / n
                self.hand_m = self.hand_m + mapping.hand_velocity_for(v) * dt
        noise = self.rng.normal(0.0, cfg.noise_rms_m, 3) if cfg.noise_rms_m > 0 else np.zeros(3)
        hand = self.hand_m + self.tremor.at(now_s) + noise
        return HandInput(hand_m=hand, jaw=self.jaw, clutch=True)

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------- trace replay
@dataclass
class Trace:
    """A hand trace: times (s, from 0), hand positions (m, hand space) and jaw openings."""

    t_s: np.ndarray
    hand_m: np.ndarray
    jaw: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        """Read a CSV with header ``t,x,y,z,jaw`` (jaw optional). Errors name the file and line."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"trace file {path} not found")
        rows: list[list[float]] = []
        with path.open(newline="") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            if header[:4] != ["t", "x", "y", "z"] or header[4:] not in ([], ["jaw"]):
                raise ValueError(f"{path}: header must be 't,x,y,z[,jaw]' (s, m, 0–1), got {','.join(header)!r}")
            for line, row in enumerate(reader, start=2):
                if not row or all(not c.strip() for c in row):
                    continue
                try:
                    values = [float(c) for c in row]
                except ValueError:
                    raise ValueError(f"{path}:{line}: not numbers: {row}") from None
                if len(values) != len(header) or not all(math.isfinite(v) for v in values):
                    raise ValueError(f"{path}:{line}: need {len(header)} finite numbers, got {row}")
                rows.append(values)
        if len(rows) < 2:
            raise ValueError(f"{path}: a trace needs at least two samples")
        a = np.asarray(rows)
        if np.any(np.diff(a[:, 0]) <= 0):
            raise ValueError(f"{path}: times must increase strictly")
        jaw = np.clip(a[:, 4], 0.0, 1.0) if a.shape[1] == 5 else np.zeros(len(a))
        return cls(a[:, 0] - a[0, 0], a[:, 1:4], jaw)

    def save(self, path: str | Path) -> None:
        with Path(path).open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["t", "x", "y", "z", "jaw"])
            for t, h, j in zip(self.t_s, self.hand_m, self.jaw, strict=True):
                w.writerow([f"{t:.6f}", f"{h[0]:.7f}", f"{h[1]:.7f}", f"{h[2]:.7f}", f"{j:.4f}"])

    @property
    def duration_s(self) -> float:
        return float(self.t_s[-1])


class TraceReplay:
    """Replays a ``Trace`` from the first ``read`` on; holds the last sample for ``hold_end_s``
    (the arm catches up) and then quits."""

    def __init__(self, trace: Trace, hold_end_s: float = 0.5) -> None:
        self.trace = trace
        self.hold_end_s = hold_end_s
        self._t0: float | None = None

    def read(self, now_s: float, telemetry: p.Telemetry | None, mapping: HandToTool) -> HandInput:
        if self._t0 is None:
            self._t0 = now_s
        t = now_s - self._t0
        tr = self.trace
        hand = np.array([np.interp(t, tr.t_s, tr.hand_m[:, i]) for i in range(3)])
        jaw = float(np.interp(t, tr.t_s, tr.jaw))
        return HandInput(hand_m=hand, jaw=jaw, clutch=True, quit=t > tr.duration_s + self.hold_end_s)

    def close(self) -> None:
        pass
