"""The browser page as an input device: rate control from the newest event; out-of-order, stale and
malformed events dropped; silence and a hidden page release the clutch; displayed-frame reports."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from telesurg.teleop.console.mapping import HandToTool, MappingConfig
from telesurg.teleop.console.page_input import PageInput, PageInputConfig
from telesurg.teleop.console.page_video import PageVideo

MAPPING = HandToTool(MappingConfig())


def _event(seq: int, t_s: float, axes=(1.0, 0.0, 0.0), clutch=True, **extra) -> str:
    return json.dumps({"seq": seq, "t_page_ms": t_s * 1e3, "axes": list(axes), "clutch": clutch, **extra})


def _run(dev: PageInput, events: list[tuple[float, str]], until_s: float, period_s: float = 0.005) -> list:
    """Push each (arrival, event) when its arrival comes, reading the device every period."""
    out, pending, t = [], sorted(events, key=lambda e: e[0]), 0.0
    while t <= until_s + 1e-9:
        while pending and pending[0][0] <= t:
            arrival, event = pending.pop(0)
            dev.push(event, arrival)
        out.append((t, dev.read(t, None, MAPPING)))
        t += period_s
    return out


def test_a_held_key_moves_the_hand_at_the_configured_speed() -> None:
    dev = PageInput(PageInputConfig(speed_m_s=0.03))
    events = [(0.01 * i + 0.002, _event(i, 0.01 * i)) for i in range(101)]
    out = _run(dev, events, 1.0)
    assert out[-1][1].clutch
    # each read integrates since the previous read: reads from t = 0 to 1 s, clutched from the first
    assert out[-1][1].hand_m[0] == pytest.approx(0.03 * 1.0, rel=1e-6)
    fine = PageInput(PageInputConfig(speed_m_s=0.03, fine_scale=0.2))
    out = _run(fine, [(0.01 * i, _event(i, 0.01 * i, fine=True)) for i in range(101)], 1.0)
    assert out[-1][1].hand_m[0] == pytest.approx(0.006 * 1.0, rel=1e-6)  # events from t = 0: 1 s of motion


def test_out_of_order_stale_and_malformed_events_are_dropped() -> None:
    dev = PageInput(PageInputConfig(stale_s=0.1))
    assert dev.push(_event(5, 1.000), arrival_s=10.001)
    assert not dev.push(_event(4, 0.990), arrival_s=10.002)  # older sequence: out of order
    assert not dev.push(_event(5, 1.000), arrival_s=10.003)  # a duplicate
    assert not dev.push(_event(6, 1.010, axes=(0.0, 1.0, 0.0)), arrival_s=10.200)  # 189 ms late: stale
    assert dev.push(_event(7, 1.020), arrival_s=10.025)
    assert not dev.push("{not json", arrival_s=10.03)
    assert not dev.push(json.dumps({"seq": 8, "t_page_ms": 1, "axes": [1, 2]}), arrival_s=10.03)
    assert dev.dropped == {"order": 2, "stale": 1, "malformed": 2} and dev.accepted == 2


def test_silence_while_clutched_stops_motion_and_releases_the_clutch() -> None:
    dev = PageInput(PageInputConfig(silence_s=0.25))
    events = [(0.01 * i, _event(i, 0.01 * i)) for i in range(31)]  # the page stops after 0.3 s
    out = _run(dev, events, 1.0)
    clutched = [t for t, h in out if h.clutch]
    assert max(clutched) == pytest.approx(0.3 + 0.25, abs=0.0051)  # within one 5 ms read
    hand_at_release = next(h.hand_m[0] for t, h in out if t >= max(clutched))
    assert out[-1][1].hand_m[0] == hand_at_release  # no more motion at all
    assert out[-1][1].hand_m[0] == pytest.approx(0.03 * 0.55, abs=0.03 * 0.0051)


def test_a_hidden_or_closed_page_releases_the_clutch_at_once() -> None:
    dev = PageInput()
    dev.push(_event(1, 0.0), 0.0)
    assert dev.read(0.005, None, MAPPING).clutch
    dev.push(_event(2, 0.01, visible=False), 0.01)
    assert not dev.read(0.015, None, MAPPING).clutch
    dev.push(_event(3, 0.02), 0.02)
    assert dev.read(0.025, None, MAPPING).clutch
    dev.page_left()
    assert not dev.read(0.03, None, MAPPING).clutch
    dev.reset_clock()  # a new page: its sequence starts again
    assert dev.push(_event(1, 50.0), 0.04)


def test_the_jaw_opens_and_closes_at_its_rate_within_bounds() -> None:
    dev = PageInput(PageInputConfig(jaw_per_s=1.0))
    out = _run(dev, [(0.01 * i, _event(i, 0.01 * i, axes=(0, 0, 0), jaw=1.0)) for i in range(51)], 0.5)
    assert out[-1][1].jaw == pytest.approx(0.5, abs=0.0051)
    out = _run(dev, [(0.01 * i, _event(100 + i, 0.01 * i, axes=(0, 0, 0), jaw=-1.0)) for i in range(101)], 1.0)
    assert out[-1][1].jaw == 0.0


def _frame(frame: int, state_s: float, t_page_s: float) -> str:
    return json.dumps(
        {"frame": frame, "state_robot_s": state_s, "ready_robot_s": state_s + 0.01, "t_page_ms": t_page_s * 1e3}
    )


def test_the_hold_judges_the_frames_the_page_displays() -> None:
    video = PageVideo()
    video.offset_s = 100.0  # robot clock = console clock + 100 s
    assert math.isinf(video.age_s(5.0))  # nothing displayed yet: as old as it gets
    # A frame showing robot time 104.95, displayed at page time 2.0 s, reported at console 5.001.
    assert video.report(_frame(10, 104.95, 2.0), arrival_s=5.001)
    assert video.age_s(5.1) == pytest.approx(5.1 + 100 - 104.95)
    assert not video.report(_frame(9, 104.96, 2.01), arrival_s=5.011)  # an older frame: ignored
    assert video.latency_s() == pytest.approx(5.001 + 100 - 104.95, abs=1e-9)
    video.page_left()
    assert math.isinf(video.age_s(5.2))
    assert not video.report("garbage", 5.3)
    assert np.isfinite(video.samples[0])


def test_a_re_engage_request_is_one_engage_press_on_the_next_read() -> None:
    dev = PageInput()
    dev.push(_event(1, 0.0), 0.0)
    dev.press_engage()
    assert dev.read(0.005, None, MAPPING).engage
    assert not dev.read(0.010, None, MAPPING).engage


def test_a_change_of_input_signals_the_console_loop_and_a_repeat_does_not() -> None:
    """The console's loop waits on ``wake_fd`` too: a key pressed or released, or the page gone,
    must not wait for the next tick; the page's periodic repeats of the same input must not wake it."""
    dev = PageInput()
    assert not dev.woken()
    assert dev.push(_event(0, 0.0, axes=(0.0, 0.0, 0.0), clutch=True), 0.001)
    assert dev.woken() and not dev.woken()  # the first event; reading clears the signal
    assert dev.push(_event(1, 0.016, axes=(0.0, 0.0, 0.0), clutch=True), 0.017)
    assert not dev.woken()  # the same input, repeated
    assert dev.push(_event(2, 0.032, axes=(1.0, 0.0, 0.0), clutch=True), 0.033)
    assert dev.woken()  # a key pressed
    assert not dev.push(_event(2, 0.048, axes=(0.0, 0.0, 0.0), clutch=False), 0.049)
    assert not dev.woken()  # a dropped (out-of-order) event changes nothing
    dev.page_left()
    assert dev.woken()
    dev.close()
    assert not dev.woken()  # closed: no signal, no error
