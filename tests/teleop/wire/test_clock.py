"""Clock sync: offset and round trip from ping exchanges, robust to queueing delay."""

from __future__ import annotations

import numpy as np
import pytest

from telesurg.teleop.wire.clock import ClockEstimator, exchange


def _ping(console_now: float, offset: float, up: float, down: float, service: float = 0.0001) -> tuple:
    """Timestamps of one exchange with one-way delays ``up`` and ``down`` (s)."""
    t1 = console_now
    t2 = t1 + up + offset
    t3 = t2 + service
    t4 = t3 + down - offset
    return t1, t2, t3, t4


def test_symmetric_delay_gives_the_exact_offset() -> None:
    sample = exchange(*_ping(10.0, offset=123.456, up=0.004, down=0.004))
    assert sample.offset_s == pytest.approx(123.456, abs=1e-9)
    assert sample.rtt_s == pytest.approx(0.008, abs=1e-9)


def test_the_least_delayed_exchange_wins_and_bounds_the_error() -> None:
    rng = np.random.default_rng(0)
    est = ClockEstimator(window=16)
    for i in range(16):
        # 0.2 ms base delay plus queueing of up to 50 ms, asymmetric
        up, down = 0.0002 + rng.exponential(0.01), 0.0002 + rng.exponential(0.01)
        est.add(*_ping(1.0 + i, offset=-5.0, up=up, down=down))
    sync = est.sync()
    assert abs(sync.offset_s - (-5.0)) <= sync.uncertainty_s + 1e-12  # the error is within rtt/2
    assert sync.uncertainty_s < 0.01  # far better than a typical single exchange


def test_bad_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        exchange(0.0, float("nan"), 1.0, 2.0)
    with pytest.raises(ValueError, match="negative round trip"):
        exchange(1.0, 5.0, 5.0, 0.5)
    with pytest.raises(RuntimeError):
        ClockEstimator().sync()


def test_a_clock_jump_restarts_the_estimate_at_once() -> None:
    est = ClockEstimator(window=16)
    for i in range(8):
        est.add(*_ping(1.0 + i, offset=0.0, up=0.0001, down=0.0001))  # short round trips
    # The console clock jumps 1 s ahead: robot − console offset becomes −1 s. One exchange with a
    # longer round trip must replace the old best, not lose to it.
    est.add(*_ping(20.0, offset=-1.0, up=0.002, down=0.002))
    assert est.jumps == 1
    assert abs(est.sync().offset_s - (-1.0)) <= est.sync().uncertainty_s + 1e-12
    # Ordinary queueing noise (within the uncertainties) is not a jump.
    est.add(*_ping(21.0, offset=-1.0, up=0.004, down=0.0001))
    assert est.jumps == 1
