"""Early warnings before the event: a rising force, a forbidden region close by, a long delay, old video."""

from __future__ import annotations

import numpy as np
import pytest

from telesurg.teleop.console.alerts import AlertConfig, Alerts, box_distance_m

BOX = (np.array([0.0, 0.0, 0.0]), np.array([0.01, 0.01, 0.01]))


def _update(alerts: Alerts, t: float, force: float, tool=(0.1, 0.1, 0.1), delay=0.0, age=0.05) -> dict[str, str]:
    return alerts.update(
        t,
        force_N=force,
        warn_N=3.0,
        tool_m=np.asarray(tool),
        forbidden_m=[BOX],
        delay_s=delay,
        video_age_s=age,
        video_hold_s=0.5,
    )


def test_a_force_ramp_is_warned_half_a_second_before_the_warn_limit_and_a_steady_force_never() -> None:
    alerts = Alerts(AlertConfig(force_horizon_s=0.5))
    first = None
    for i in range(400):  # 4 N/s from 0 at 200 Hz: the warn limit (3 N) at 0.75 s
        t = i * 0.005
        if "force" in _update(alerts, t, 4.0 * t) and first is None:
            first = t
    assert first is not None and 0.75 - first == pytest.approx(0.5, abs=0.0051)  # within one 5 ms sample
    steady = Alerts()
    assert not any("force" in _update(steady, i * 0.005, 2.5 + 0.01 * np.sin(i)) for i in range(400))


def test_above_the_warn_limit_the_force_warning_stays() -> None:
    alerts = Alerts()
    assert "above the warn limit" in _update(alerts, 0.0, 3.5)["force"]


def test_the_forbidden_region_delay_and_video_warnings() -> None:
    alerts = Alerts()
    assert box_distance_m(np.array([0.013, 0.005, 0.005]), *BOX) == pytest.approx(0.003)
    assert box_distance_m(np.array([0.005, 0.005, 0.005]), *BOX) == 0.0
    out = _update(alerts, 0.0, 0.0, tool=(0.013, 0.005, 0.005), delay=0.35, age=0.3)
    assert set(out) == {"forbidden", "delay"}  # old video: once it has stayed old 30 ms
    out = _update(alerts, 0.035, 0.0, tool=(0.013, 0.005, 0.005), delay=0.35, age=0.335)
    assert set(out) == {"forbidden", "delay", "video"}
    assert _update(alerts, 0.1, 0.0, tool=(0.02, 0.005, 0.005), delay=0.25, age=0.2) == {}


def test_a_fast_approach_to_a_forbidden_region_is_warned_before_the_margin() -> None:
    # 40 mm/s straight at the box from 30 mm: the 5 mm margin alone would give 125 ms; the approach
    # speed gives the horizon (0.4 s ahead of contact, within a sample or two of the fit).
    alerts = Alerts(AlertConfig(forbidden_horizon_s=0.4))
    first = None
    for i in range(200):
        t = i * 0.005
        x = 0.04 - 0.04 * t  # the box's face is at x = 0.01: contact at t = 0.75 s
        if "forbidden" in _update(alerts, t, 0.0, tool=(x, 0.005, 0.005)) and first is None:
            first = t
    assert first is not None and 0.75 - first == pytest.approx(0.4, abs=0.011)
    # Moving alongside it at 6 mm, or away from it: no warning.
    side, away = Alerts(), Alerts()
    for i in range(200):
        t = i * 0.005
        assert "forbidden" not in _update(side, t, 0.0, tool=(0.016, -0.02 + 0.04 * t, 0.005))
        assert "forbidden" not in _update(away, t, 0.0, tool=(0.016 + 0.04 * t, 0.005, 0.005))


def test_a_rising_delay_is_warned_before_300_ms_and_a_steady_one_never() -> None:
    alerts = Alerts(AlertConfig(delay_horizon_s=0.5))
    first = None
    for i in range(400):  # 100 ms → 300 ms at 200 ms/s: crosses at 1.0 s
        t = i * 0.005
        if "delay" in _update(alerts, t, 0.0, delay=0.1 + 0.2 * t) and first is None:
            first = t
    assert first is not None and 1.0 - first == pytest.approx(0.5, abs=0.011)
    steady = Alerts()
    rng = np.random.default_rng(0)
    assert not any("delay" in _update(steady, i * 0.005, 0.0, delay=0.25 + rng.normal(0, 0.002)) for i in range(2000))


def test_a_press_easing_off_below_the_limit_is_not_warned_and_a_steady_one_is() -> None:
    # Both start at 4 N/s; one eases off to settle at 2 N (a palpation), the other keeps on.
    easing, steady = Alerts(), Alerts()
    warned_easing = warned_steady = False
    for i in range(300):
        t = i * 0.005
        settle = 2.0 * (1 - np.exp(-t / 0.25))  # starts at 8 N/s, eases to 2 N
        warned_easing |= "force" in _update(easing, t, settle)
        warned_steady |= "force" in _update(steady, t, min(8.0 * t, 4.0))
    assert not warned_easing and warned_steady
