"""The de-jitter playout: commands replayed at send time + a steady delay, and the supervisor around it."""

from __future__ import annotations

import numpy as np
import pytest

from telesurg.teleop.robot.playout import Played, Playout, PlayoutConfig
from telesurg.teleop.robot.supervisor import State, Supervisor, SupervisorConfig
from telesurg.teleop.wire.clock import ClockSync

SPEED_M_S = 0.02
SEND_PERIOD_S = 0.005
CONTROL_PERIOD_S = 0.002


def _stream(ages_s: np.ndarray) -> list[tuple[float, Played]]:
    """Commands sent every 5 ms along x = speed × t, each delayed by its age (s) but delivered in
    order as over TCP (a late message holds back the ones behind it): (arrival time, command)."""
    sent = np.arange(len(ages_s)) * SEND_PERIOD_S
    arrival = np.maximum.accumulate(sent + ages_s)
    return [
        (float(arrival[i]), Played(sent[i], sent[i], i + 1, np.array([SPEED_M_S * sent[i], 0.0, 0.0]), 0.5))
        for i in range(len(ages_s))
    ]


def _replay(playout: Playout, stream: list[tuple[float, Played]], until_s: float) -> list[tuple[float, float]]:
    """Run the control loop: (robot time, target x) every 2 ms; of the commands that arrived since
    the last period only the newest is pushed (the server's CONFLATE socket drained once a period)."""
    path, k = [], 0
    for now in np.arange(0.0, until_s, CONTROL_PERIOD_S):
        newest = None
        while k < len(stream) and stream[k][0] <= now:
            newest = stream[k]
            k += 1
        if newest is not None:
            playout.push(newest[1], newest[0])
        got = playout.target_at(float(now))
        if got is not None:
            path.append((float(now), float(got[0][0])))
    return path


def _lag_error_m(path: list[tuple[float, float]], from_s: float) -> tuple[float, float]:
    """The path's steady lag (s) behind x = speed × t and the RMS (m) of its wobble around that lag."""
    t = np.array([p[0] for p in path if p[0] >= from_s])
    x = np.array([p[1] for p in path if p[0] >= from_s])
    lag = t - x / SPEED_M_S
    wobble = (lag - lag.mean()) * SPEED_M_S
    return float(lag.mean()), float(np.sqrt(np.mean(wobble**2)))


def test_jittered_commands_are_replayed_as_sent_at_a_steady_delay() -> None:
    rng = np.random.default_rng(3)
    ages = 0.2 + np.abs(rng.normal(0.0, 0.02, 2000))  # 10 s of commands, 20 ms jitter
    stream = _stream(ages)
    buffered = _replay(Playout(PlayoutConfig()), stream, 10.0)
    at_arrival = _replay(Playout(PlayoutConfig(enabled=False)), stream, 10.0)
    lag_b, wobble_b = _lag_error_m(buffered, 3.0)
    lag_a, wobble_a = _lag_error_m(at_arrival, 3.0)
    # Applied at arrival, the position wobbles with each message's delay error; played out, the
    # only wobble left is the few late commands (above the quantile) and the 2 ms control period.
    assert wobble_a > 1e-4
    assert wobble_b < wobble_a / 3
    # The price: a steady extra delay, within the configured bound beyond the youngest age.
    assert lag_a < lag_b <= ages.min() + PlayoutConfig().max_added_s + CONTROL_PERIOD_S


def test_a_link_without_jitter_gets_no_extra_delay() -> None:
    playout = Playout(PlayoutConfig())
    stream = _stream(np.full(400, 0.1))
    reached: dict[int, float] = {}
    k = 0
    for now in np.arange(0.0, 2.2, CONTROL_PERIOD_S):
        while k < len(stream) and stream[k][0] <= now:
            playout.push(stream[k][1], stream[k][0])
            k += 1
        playout.target_at(float(now))
        if playout.applied is not None:
            reached.setdefault(playout.applied.seq, playout.applied_robot_s)
    assert playout.delay_s == pytest.approx(0.1)
    late = [reached[c.seq] - t for t, c in stream if c.seq in reached]
    assert len(late) == len(stream) and max(late) < CONTROL_PERIOD_S + 1e-9  # applied in the period it came


def test_sub_period_jitter_is_left_alone() -> None:
    rng = np.random.default_rng(0)
    playout = Playout(PlayoutConfig())
    _replay(playout, _stream(0.001 + rng.uniform(0.0, 0.0015, 1000)), 5.0)
    assert playout.delay_s is not None and playout.delay_s < 0.0012


def test_the_delay_moves_no_faster_than_the_slew() -> None:
    cfg = PlayoutConfig()
    playout = Playout(cfg)
    rng = np.random.default_rng(2)
    ages = np.concatenate([np.full(400, 0.05), 0.05 + rng.uniform(0.0, 0.04, 800)])  # jitter from 2 s on
    stream = _stream(ages)
    delays, k = [], 0
    for now in np.arange(0.0, 6.0, CONTROL_PERIOD_S):
        while k < len(stream) and stream[k][0] <= now:
            playout.push(stream[k][1], stream[k][0])
            k += 1
        playout.target_at(float(now))
        if playout.delay_s is not None:
            delays.append(playout.delay_s)
    assert np.max(np.abs(np.diff(delays))) <= cfg.slew * CONTROL_PERIOD_S + 1e-12
    assert delays[999] == pytest.approx(0.05)  # 2 s: no jitter yet, no extra delay
    assert 0.05 + 0.03 < delays[-1] <= 0.05 + 0.04  # it followed the jitter up, at the slew


def test_the_delay_never_exceeds_the_bound_or_the_max_age() -> None:
    playout = Playout(PlayoutConfig(), max_delay_s=0.3)
    rng = np.random.default_rng(1)
    _replay(playout, _stream(0.28 + rng.uniform(0.0, 0.1, 1000)), 5.0)
    assert playout.delay_s is not None and playout.delay_s <= 0.3


# ---------------------------------------------------------------------- the supervisor around it
def _engaged(cfg: SupervisorConfig | None = None) -> Supervisor:
    sup = Supervisor(cfg or SupervisorConfig())
    assert sup.engage("c", 0.0).accepted
    sup.tick(0.0, np.zeros(3), 0.0, CONTROL_PERIOD_S)
    return sup


def _command(sup: Supervisor, seq: int, sent_s: float, received_s: float, x: float, clutch: bool = True) -> None:
    verdict = sup.on_command(
        sup.session, seq, sent_s, np.array([x, -0.3, 0.0]), 0.0, clutch, False, received_s, ClockSync()
    )
    assert verdict.accepted, verdict.reason


def _jittered(sup: Supervisor, until_s: float) -> float:
    """Commands every 5 ms toward +x over a jittery link (ages 50 ms + |N(0, 20 ms)|, in order),
    judged as they arrive, the supervisor ticked every 2 ms; returns the robot time reached."""
    rng = np.random.default_rng(4)
    stream = _stream(0.05 + np.abs(rng.normal(0.0, 0.02, int(until_s / SEND_PERIOD_S))))
    k, now = 0, 0.0
    for now in np.arange(0.0, until_s, CONTROL_PERIOD_S):
        while k < len(stream) and stream[k][0] <= now:
            t, c = stream[k]
            _command(sup, c.seq, c.sent_console_s, t, 0.001 + float(c.target_m[0]))
            k += 1
        sup.tick(float(now), np.zeros(3), 0.0, CONTROL_PERIOD_S)
    return float(now)


def test_clutch_release_holds_at_once_with_commands_buffered() -> None:
    sup = _engaged()
    now = _jittered(sup, 1.0)
    assert sup.playout.delay_s is not None and sup.playout.delay_s > 0.07  # commands wait in the buffer
    seq = sup.last_seq + 1
    _command(sup, seq, now - 0.05, now, 0.05, clutch=False)
    assert sup.state == State.HOLD and sup.applied_seq == seq and sup.applied_robot_s == now
    # Nothing buffered before the release moves the arm afterwards.
    held = sup.tick(now + 0.002, np.array([0.0, -0.3, 0.0]), 0.0, CONTROL_PERIOD_S).tip_m
    for k in range(2, 60):
        assert np.array_equal(sup.tick(now + 0.002 * k, np.array([0.0, -0.3, 0.0]), 0.0, CONTROL_PERIOD_S).tip_m, held)


def test_watchdog_and_estop_drop_the_buffer() -> None:
    sup = _engaged()
    now = _jittered(sup, 1.0)
    assert sup.playout._pending  # commands in flight through the buffer
    sup.estop("test", now)
    assert sup.state == State.ESTOP and not sup.playout._pending
    sup = _engaged()
    now = _jittered(sup, 1.0)
    for k in range(1, 80):  # no further commands: the watchdog fires at 100 ms
        sup.tick(now + 0.002 * k, np.zeros(3), 0.0, CONTROL_PERIOD_S)
    assert sup.state == State.HOLD and "watchdog" in sup.reason and not sup.playout._pending


def test_the_echo_is_the_command_played_not_the_one_received() -> None:
    sup = _engaged()
    _jittered(sup, 1.0)
    assert sup.applied_seq < sup.last_seq  # newer commands are accepted, waiting for their time
    # The applied command was played no earlier than its send time + the playout delay, and no later
    # than the first control period after both that time and its arrival.
    lag = sup.applied_robot_s - sup.applied_sent_console_s
    delay = sup.playout.delay_s
    ages = [t - c.sent_robot_s for t, c in _stream(0.05 + np.abs(np.random.default_rng(4).normal(0.0, 0.02, 200)))]
    assert delay - PlayoutConfig().slew * CONTROL_PERIOD_S - 1e-6 <= lag <= max(delay, max(ages)) + CONTROL_PERIOD_S


def test_without_the_playout_commands_apply_at_arrival() -> None:
    from telesurg.teleop.robot.playout import PlayoutConfig as P

    sup = _engaged(SupervisorConfig(playout=P(enabled=False)))
    _jittered(sup, 1.0)
    assert sup.applied_seq == sup.last_seq


def test_a_console_whose_ticks_wander_on_a_clean_link_gets_no_extra_delay() -> None:
    # Commands sent every 5 ms ± 2 ms (a console sharing its cores), delivered 0.3 ms later: the
    # buffer has no jitter of the link to take out and must not wait for the console's.
    rng = np.random.default_rng(5)
    sent = np.cumsum(rng.uniform(0.003, 0.007, 1000))
    playout = Playout(PlayoutConfig())
    for i, s in enumerate(sent):
        cmd = Played(float(s), float(s), i + 1, np.array([SPEED_M_S * s, 0.0, 0.0]), 0.5)
        playout.push(cmd, float(s) + 0.0003)
        playout.target_at(float(s) + 0.0003)
        if s > 1.0:  # once the window holds a second of commands: applied as it arrived
            assert playout.applied is not None and playout.applied.seq == i + 1
    assert playout.delay_s is not None and playout.delay_s < 0.001
