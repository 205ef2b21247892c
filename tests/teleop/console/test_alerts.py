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
    assert set(out) == {"forbidden", "delay", "video"}
    assert _update(alerts, 0.1, 0.0, tool=(0.02, 0.005, 0.005), delay=0.25, age=0.2) == {}
