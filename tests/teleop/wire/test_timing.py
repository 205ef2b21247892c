"""The fixed-rate loop helper every loop of the stack uses (server, console, renderer)."""

from __future__ import annotations

import pytest

from telesurg.teleop.wire.timing import FixedRate


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 10.0

    def __call__(self) -> float:
        return self.now_s


def test_deadlines_advance_by_whole_periods_from_the_start() -> None:
    clock = FakeClock()
    rate = FixedRate(0.002, clock)
    for k in range(1, 6):
        clock.now_s += 0.0015  # work shorter than a period: no restart, no drift
        assert rate.advance() is False
        assert rate.deadline_s == pytest.approx(10.0 + 0.002 * k)
        clock.now_s = rate.deadline_s
    assert rate.restarts == 0


def test_a_loop_over_a_period_late_restarts_from_now_instead_of_catching_up() -> None:
    clock = FakeClock()
    rate = FixedRate(0.002, clock)
    clock.now_s += 0.0039  # late, but within a period of the next deadline: keep the schedule
    assert rate.advance() is False and rate.deadline_s == pytest.approx(10.002)
    clock.now_s = 10.0 + 0.002 + 0.0041  # more than a period past the next deadline
    assert rate.advance() is True
    assert rate.deadline_s == clock.now_s and rate.restarts == 1


def test_a_period_must_be_positive() -> None:
    with pytest.raises(ValueError, match="period_s"):
        FixedRate(0.0)
