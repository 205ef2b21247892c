"""The control intake: the owner first, then the least demanding connections; a bounded backlog that
sheds the heaviest connection's requests (answered busy), never the owner's or a light one's."""

from __future__ import annotations

import pytest

from telesurg.teleop.robot.intake import ControlIntake, IntakeConfig, RequestRates


def test_rates_decay_with_time():
    rates = RequestRates(tau_s=1.0, max_tracked=10)
    for i in range(100):
        rates.add(b"a", i * 0.001)
    assert 90 < rates.rate(b"a", 0.1) < 100
    assert rates.rate(b"a", 5.1) < 1.0
    assert rates.rate(b"never", 1.0) == 0.0


def test_owner_first_then_the_lightest_connection_in_turn():
    intake: ControlIntake[str] = ControlIntake()
    for i in range(50):
        intake.arrived(b"flood", f"f{i}", 0.0, owner=b"owner")
    intake.arrived(b"light", "l0", 0.0, owner=b"owner")
    intake.arrived(b"owner", "o0", 0.0, owner=b"owner")
    intake.arrived(b"light", "l1", 0.0, owner=b"owner")
    taken = intake.take(4, 0.0, owner=b"owner")
    # The owner's request, then one each in turn from the lightest connection up.
    assert [item for _, item in taken] == ["o0", "l0", "f0", "l1"]
    assert len(intake) == 49


def test_a_full_backlog_sheds_the_flooder_never_the_owner_or_a_light_connection():
    intake: ControlIntake[str] = ControlIntake(IntakeConfig(backlog=10, light_rate_hz=50.0))
    shed = []
    for i in range(200):  # 200 requests at once: far above the light rate
        shed += intake.arrived(b"flood", f"f{i}", 0.0, owner=b"owner")
    assert len(intake) == 10 and len(shed) == 190
    assert all(ident == b"flood" for ident, _ in shed)
    # A light connection's request is kept: one of the flooder's waiting requests is shed instead.
    assert [ident for ident, _ in intake.arrived(b"light", "l0", 0.0, owner=b"owner")] == [b"flood"]
    assert [ident for ident, _ in intake.arrived(b"owner", "o0", 0.0, owner=b"owner")] == [b"flood"]
    assert len(intake) == 10
    taken = [item for _, item in intake.take(2, 0.0, owner=b"owner")]
    assert taken == ["o0", "l0"]


def test_only_the_owners_requests_waiting_sheds_the_newcomer():
    intake: ControlIntake[str] = ControlIntake(IntakeConfig(backlog=2))
    intake.arrived(b"owner", "o0", 0.0, owner=b"owner")
    intake.arrived(b"owner", "o1", 0.0, owner=b"owner")
    assert intake.arrived(b"x", "x0", 0.0, owner=b"owner") == [(b"x", "x0")]


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="backlog"):
        IntakeConfig(backlog=0)
    with pytest.raises(ValueError, match="positive"):
        IntakeConfig(rate_tau_s=0.0)
