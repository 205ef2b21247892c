"""What the robot server records (MCAP, JSON schema + JSON, readable by Foxglove): the audit log.

Topics:

- ``/robot/state`` (``StateRecord``): every control period — measured tool tip, the supervisor's
  setpoint, jaw, contact force, supervisor state, the period's length;
- ``/robot/commands`` (``CommandRecord``): every decoded command, with the supervisor's verdict;
- ``/robot/applied`` (``CommandRecord``): the commands the supervisor accepted (a subset of the above);
- ``/robot/events`` (``EventRecord``): every supervisor transition, with its reason;
- ``/robot/control`` (``ControlRecord``): every control request and the answer;
- ``/robot/rejected`` (``RejectedRecord``): every message rejected before the supervisor (bad bytes,
  version, NaN, ranges, sizes);
- ``/robot/config`` (``ConfigRecord``): the limits in force, at start and whenever a task is loaded
  (what the safety harness judges the other topics against);
- ``/robot/stalls`` (``StallRecord``): every control period longer than 5× nominal, with where its
  time went (the period's own work, or the wait for its start);
- ``/robot/task`` (``TaskRecord``, simulated arms only): the task's state when it is loaded and at
  every task period (40 ms: the environment's control period), as the environment observes it —
  what a dataset of demonstrations is built from (``telesurg.teleop.robot.demonstrations``).

Times named ``*_robot_s`` are the robot's monotonic clock (s); MCAP log times are the host's wall
clock (ns).
"""

from __future__ import annotations

from typing import Any

import msgspec

Vec3 = tuple[float, float, float]

TOPIC_STATE = "/robot/state"
TOPIC_COMMANDS = "/robot/commands"
TOPIC_APPLIED = "/robot/applied"
TOPIC_EVENTS = "/robot/events"
TOPIC_CONTROL = "/robot/control"
TOPIC_REJECTED = "/robot/rejected"
TOPIC_CONFIG = "/robot/config"
TOPIC_STALLS = "/robot/stalls"
TOPIC_TASK = "/robot/task"


class StateRecord(msgspec.Struct):
    """One control period: robot time and period length (s), measured tip (m, base frame), the
    supervisor's setpoint (m), jaw measured and commanded (0–1), contact force (N, base frame), its
    magnitude and peak over the period (N), supervisor state and reason, sequence of the command
    applied (the newest the de-jitter playout has reached)."""

    robot_s: float
    period_s: float
    tip_m: Vec3
    setpoint_m: Vec3
    jaw: float
    jaw_setpoint: float
    force_N: Vec3
    force_mag_N: float
    force_peak_N: float
    state: str
    reason: str
    last_cmd_seq: int
    session: str


class CommandRecord(msgspec.Struct):
    """A decoded command and the verdict: ``accepted``, ``code`` ("" or a refusal code) and
    ``reason``; ``age_s`` is receive time − (send time + clock offset) (s)."""

    received_robot_s: float
    session: str
    seq: int
    sent_console_s: float
    target_m: Vec3
    jaw: float
    clutch: bool
    estop: bool
    accepted: bool
    code: str
    reason: str
    age_s: float
    clock_offset_s: float
    clock_uncertainty_s: float = 0.0


class EventRecord(msgspec.Struct):
    """A supervisor transition."""

    robot_s: float
    previous: str
    state: str
    reason: str


class ControlRecord(msgspec.Struct):
    """A control request (its type and client) and the answer (``session``: granted by an engage)."""

    received_robot_s: float
    client: str
    request: str
    ok: bool
    reason: str
    session: str = ""


class RejectedRecord(msgspec.Struct):
    """A message rejected at the boundary: channel, reason code, detail and size (bytes)."""

    received_robot_s: float
    channel: str
    reason: str
    detail: str
    size_bytes: int


class ConfigRecord(msgspec.Struct):
    """The limits in force (SI units; positions in the base frame): control period, watchdog,
    command ages, speed and jaw-rate limits, hard force limit, workspace box, forbidden boxes
    (low, high corners), the loaded task, and whether a harness negative control is active."""

    robot_s: float
    arm: str
    task: str
    seed: int
    control_period_s: float
    watchdog_s: float
    age_slowdown_s: float
    max_age_s: float
    max_tip_speed_m_s: float
    max_jaw_rate_per_s: float
    hard_force_N: float
    workspace_low_m: Vec3
    workspace_high_m: Vec3
    forbidden_m: list[tuple[Vec3, Vec3]]
    negative_controls: list[str]


class StallRecord(msgspec.Struct):
    """A control period longer than 5× nominal, which started at ``start_robot_s`` and lasted
    ``period_s`` (s). Its time: ``control_s`` answering control requests, ``command_s`` judging the
    command, ``work_s`` arm + supervisor + telemetry + recording, ``wait_s`` waiting for the next
    period's start (sleep and spin, serving what arrived), ``unaccounted_s`` between the end of that
    wait and the next period's first clock reading. ``kind`` is ``"work"`` when the period's own
    steps took longer than a nominal period, else ``"wait"`` (the wake-up came late).
    ``page_faults`` and ``gc_s``: the loop thread's page faults and time in garbage collection
    during the period; ``longest_poll_s``, ``longest_nap_s``, ``final_sleep_s``: within the wait, the
    longest single ZeroMQ poll, the longest 0.1 ms nap of the last millisecond, and the final sleep
    to the deadline. Over control + command + work, the loop thread's ``work_cpu_s`` (its CPU time;
    on a paravirtualised guest that leaves out time the hypervisor held the CPU; -1 when not
    measured), ``work_queued_s`` (time runnable but not running: a higher priority had the CPU) and
    ``work_blocked`` (whether it went to sleep: a lock, a blocking call). When it never blocked,
    ``control_s + command_s + work_s - work_cpu_s - work_queued_s`` is time the loop was on its CPU
    with work to do and did not run: the host's."""

    start_robot_s: float
    period_s: float
    control_s: float
    command_s: float
    work_s: float
    wait_s: float
    unaccounted_s: float
    kind: str
    page_faults: int = 0
    gc_s: float = 0.0
    longest_poll_s: float = 0.0
    longest_nap_s: float = 0.0
    final_sleep_s: float = 0.0
    work_cpu_s: float = -1.0
    work_queued_s: float = 0.0
    work_blocked: bool = False


class TaskRecord(msgspec.Struct):
    """The simulated task at ``robot_s`` (s): its name and seed, the time since it was loaded
    (``episode_s``, simulated s; 0 at the load) and the environment's observation vectors (layouts:
    ``telesurg envs --layout telesurg/<task>-v0``), its success test and the largest contact force
    within the task period (N)."""

    robot_s: float
    task: str
    seed: int
    episode_s: float
    observation: list[float]
    achieved_goal: list[float]
    desired_goal: list[float]
    success: bool
    force_max_N: float


#: Every topic the robot server records and its record type (what a copy of a recording registers).
RECORD_TYPES: dict[str, type[msgspec.Struct]] = {
    TOPIC_STATE: StateRecord,
    TOPIC_COMMANDS: CommandRecord,
    TOPIC_APPLIED: CommandRecord,
    TOPIC_EVENTS: EventRecord,
    TOPIC_CONTROL: ControlRecord,
    TOPIC_REJECTED: RejectedRecord,
    TOPIC_CONFIG: ConfigRecord,
    TOPIC_STALLS: StallRecord,
    TOPIC_TASK: TaskRecord,
}


def vec3(v: Any) -> tuple[float, float, float]:
    """A 3-vector (array, list) as a tuple of floats, as the records and messages carry it."""
    return (float(v[0]), float(v[1]), float(v[2]))
