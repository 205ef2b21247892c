"""The link model and delay line: delay and jitter statistics, loss (independent and bursty), outages,
TCP-faithful ordering and retransmission delay, reordering, duplication, the bandwidth cap and
determinism. Every statistic is measured on a fixed seed against a stated tolerance."""

from __future__ import annotations

import numpy as np
import pytest

from telesurg.teleop.netem.model import DelayLine, LinkModel, stream_id
from telesurg.teleop.netem.spec import LinkSpec

N = 20_000
DT_S = 0.001  # 1 kHz, the console's command rate


def _run(text: str, n: int = N, dt_s: float = DT_S, size: int = 100, start_s: float = 0.0, stream: int = 0):
    """(send times, delivery lists) of ``n`` messages sent every ``dt_s`` from ``start_s``."""
    model = LinkModel(LinkSpec.parse(text), start_s, stream=stream)
    sent = start_s + dt_s * np.arange(n)
    return sent, [model.deliveries(float(t), size) for t in sent]


def _first(deliveries: list[list[float]]) -> np.ndarray:
    return np.array([d[0] if d else np.nan for d in deliveries])


def _bursts(lost: np.ndarray) -> np.ndarray:
    """Lengths of the runs of consecutive lost messages."""
    edges = np.diff(np.concatenate([[0], lost.astype(int), [0]]))
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


# ---------------------------------------------------------------------- delay and jitter
def test_normal_jitter_mean_and_std_match_the_spec() -> None:
    sent, out = _run("mode=message delay=100ms jitter=10ms")
    delay = _first(out) - sent
    assert abs(delay.mean() - 0.100) <= 0.02 * 0.100
    assert abs(delay.std() - 0.010) <= 0.05 * 0.010


def test_normal_jitter_is_clipped_at_zero_delay() -> None:
    sent, out = _run("mode=message delay=1ms jitter=10ms")
    assert (_first(out) - sent).min() == 0.0


def test_pareto_jitter_has_the_documented_mean_and_a_heavy_tail() -> None:
    sent, out = _run("mode=message delay=100ms jitter=10ms dist=pareto")
    extra = _first(out) - sent - 0.100
    assert extra.min() >= 0.0
    assert abs(extra.mean() - 0.010 / 1.5) <= 0.05 * 0.010 / 1.5  # Lomax(2.5): mean = scale / 1.5
    _, normal = _run("mode=message delay=100ms jitter=10ms")
    normal_delay = _first(normal) - 0.001 * np.arange(N)

    def tail(x: np.ndarray) -> float:
        p50, p999 = np.percentile(x, [50, 99.9])
        return (p999 - p50) / x.std()

    assert tail(normal_delay) < 3.5  # ≈ 3.09 for a normal
    assert tail(extra) > 6.0  # ≈ 9.7 for Lomax(2.5)


# ---------------------------------------------------------------------- loss
def test_bernoulli_loss_rate_and_independence() -> None:
    _, out = _run("mode=message loss=5%")
    lost = np.array([not d for d in out])
    assert abs(lost.mean() - 0.05) <= 0.005
    assert _bursts(lost).mean() < 1.15  # independent: 1/(1 − 0.05) ≈ 1.05


def test_gilbert_elliott_long_run_loss_and_mean_burst() -> None:
    _, out = _run("mode=message loss=5% burst=4", n=100_000)
    lost = np.array([not d for d in out])
    assert abs(lost.mean() - 0.05) <= 0.01
    assert abs(_bursts(lost).mean() - 4.0) <= 0.15 * 4.0


# ---------------------------------------------------------------------- outages
def test_message_mode_loses_exactly_what_is_sent_during_an_outage() -> None:
    start = 100.0  # outages count from the model's start, not from zero
    sent, out = _run("mode=message delay=20ms outage=1s@2s", n=5000, start_s=start)
    inside = (sent >= start + 2.0) & (sent < start + 3.0)
    assert inside.sum() == 1000
    assert all(not d for d, i in zip(out, inside, strict=True) if i)
    assert all(d == [pytest.approx(t + 0.020)] for d, t, i in zip(out, sent, inside, strict=True) if not i)


def test_down_next_up_and_restart() -> None:
    model = LinkModel(LinkSpec.parse("outage=1s@2s outage=1s@3s"), 10.0)
    assert not model.down(11.999) and model.down(12.0) and model.down(13.5) and not model.down(14.0)
    assert model.next_up(12.5) == 14.0  # touching outages chain on
    assert model.next_up(11.0) == 11.0
    model.restart(20.0)
    assert not model.down(12.5) and model.down(22.5)


def test_tcp_mode_holds_what_is_sent_during_an_outage_and_delivers_it_after() -> None:
    sent, out = _run("delay=50ms outage=1s@2s", n=5000)
    t = _first(out)
    inside = (sent >= 2.0) & (sent < 3.0)
    assert all(len(d) == 1 for d in out)
    assert np.all(t[inside] == 3.0 + 0.050)  # held to the end of the outage, then the delay
    np.testing.assert_allclose(t[~inside], sent[~inside] + 0.050, rtol=0, atol=1e-12)  # the rest untouched


def test_tcp_mode_outage_with_jitter_keeps_order_and_spares_the_rest() -> None:
    sent, out = _run("delay=50ms jitter=5ms outage=1s@2s", n=5000)
    _, reference = _run("delay=50ms jitter=5ms", n=5000)  # the same delay draws, no outage
    t, ref = _first(out), _first(reference)
    assert all(len(d) == 1 for d in out)
    assert np.all(np.diff(t) >= 0)
    inside = (sent >= 2.0) & (sent < 3.0)
    assert t[inside].min() >= 3.0 + 0.050 - 4 * 0.005  # nothing leaves before the outage ends
    assert t[inside].max() <= 3.0 + 0.050 + 5 * 0.005  # then all of it comes at once
    before, long_after = sent < 2.0, sent >= 3.5
    np.testing.assert_array_equal(t[before], ref[before])  # untouched
    np.testing.assert_array_equal(t[long_after], ref[long_after])  # head-of-line blocking has passed
    assert np.all(t >= ref)


# ---------------------------------------------------------------------- TCP faithfulness
@pytest.mark.parametrize("burst", [1, 3])
def test_tcp_mode_never_loses_or_reorders(burst: int) -> None:
    sent, out = _run(f"delay=50ms jitter=20ms loss=20% burst={burst}", n=5000)
    assert all(len(d) == 1 for d in out)
    t = _first(out)
    assert np.all(np.diff(t) >= 0)
    assert np.all(t >= sent)
    assert (t - sent).max() >= 0.050 + 0.200  # losses did happen: as retransmission delay


def test_message_mode_reorders_and_loses_with_the_same_link() -> None:
    _, out = _run("mode=message delay=50ms jitter=20ms loss=20%", n=5000)
    t = _first(out)
    delivered = t[~np.isnan(t)]
    assert np.isnan(t).mean() == pytest.approx(0.20, abs=0.02)
    assert (np.diff(delivered) < 0).mean() > 0.2  # at 1 kHz a 20 ms jitter reorders a lot


def test_tcp_loss_blocks_the_head_of_the_line() -> None:
    sent, out = _run("delay=50ms loss=2% rto=200ms", n=5000)
    t = _first(out)
    extra = t - sent - 0.050
    first_late = int(np.flatnonzero(extra >= 0.2 - 1e-9)[0])
    # Everything sent during the retransmission wait arrives together with the late message.
    behind = (sent > sent[first_late]) & (sent < sent[first_late] + 0.2 - 1e-9)
    assert np.all(t[behind] >= t[first_late])
    assert (t[behind] == t[first_late]).sum() >= 10  # up to the next lost one: a queue released at once


def test_tcp_retransmission_backoff_doubles() -> None:
    model = LinkModel(LinkSpec.parse("delay=10ms loss=50% rto=100ms"), 0.0)
    extra = []
    for i in range(2000):
        model.restart(i * 1000.0)  # a fresh connection each time: no head-of-line blocking
        extra.append(round(model.deliveries(i * 1000.0, 100)[0] - i * 1000.0 - 0.010, 6))
    # k consecutive losses add 0.1 + 0.2 + … + 0.1·2^(k−1) s, each step capped at 120 s.
    steps = np.minimum(0.1 * 2.0 ** np.arange(30), 120.0)
    totals = [round(x, 6) for x in np.concatenate([[0.0], np.cumsum(steps)])]
    assert set(extra) <= set(totals)
    counts = [extra.count(totals[k]) for k in range(3)]
    assert counts[0] == pytest.approx(1000, rel=0.1)  # half are never lost
    assert counts[1] == pytest.approx(500, rel=0.15)
    assert counts[2] == pytest.approx(250, rel=0.2)


# ---------------------------------------------------------------------- reorder, duplicate, rate
def test_duplicates_appear_at_the_configured_rate() -> None:
    _, out = _run("mode=message delay=20ms jitter=2ms dup=5%")
    counts = np.array([len(d) for d in out])
    assert set(counts) == {1, 2}
    assert abs((counts == 2).mean() - 0.05) <= 0.005
    assert all(d == sorted(d) for d in out)


def test_reorder_holds_back_the_configured_fraction_by_the_gap() -> None:
    sent, out = _run("mode=message delay=20ms reorder=10% gap=50ms")
    extra = _first(out) - sent
    held = np.isclose(extra, 0.070)
    assert np.all(held | np.isclose(extra, 0.020))
    assert abs(held.mean() - 0.10) <= 0.01
    assert (np.diff(_first(out)) < 0).sum() >= held.sum() * 0.9  # each held message is overtaken


@pytest.mark.parametrize("mode", ["message", "tcp"])
def test_bandwidth_cap_queues_a_burst(mode: str) -> None:
    model = LinkModel(LinkSpec.parse(f"mode={mode} delay=20ms rate=1Mbit"), 0.0)
    n, size = 100, 1250  # 10 000 bits each: 10 ms at 1 Mbit/s
    times = [model.deliveries(0.0, size)[0] for _ in range(n)]
    assert times[-1] - 0.0 >= n * size * 8 / 1e6
    np.testing.assert_allclose(times, 0.020 + 0.010 * np.arange(1, n + 1))
    # Once the queue has drained, a message only pays its own serialisation.
    assert model.deliveries(10.0, size) == [pytest.approx(10.0 + 0.010 + 0.020)]


# ---------------------------------------------------------------------- determinism
MIXED = "mode=message delay=30ms jitter=10ms dist=pareto loss=3% burst=2 reorder=1% dup=1% rate=10Mbit"


def test_same_seed_and_stream_give_identical_results() -> None:
    assert _run(MIXED, n=3000)[1] == _run(MIXED, n=3000)[1]
    assert _run("delay=30ms jitter=10ms loss=10%", n=3000)[1] == _run("delay=30ms jitter=10ms loss=10%", n=3000)[1]


def test_seed_and_stream_each_change_the_draws() -> None:
    base = _run(MIXED, n=3000)[1]
    assert _run(MIXED + " seed=1", n=3000)[1] != base
    assert _run(MIXED, n=3000, stream=stream_id("cmd", "up"))[1] != base
    assert stream_id("cmd", "up") != stream_id("cmd", "down")


def test_loss_does_not_change_which_delay_a_message_draws() -> None:
    _, lossy = _run("mode=message delay=30ms jitter=10ms loss=30%", n=2000)
    _, clean = _run("mode=message delay=30ms jitter=10ms", n=2000)
    kept = [i for i, d in enumerate(lossy) if d]
    assert 1200 < len(kept) < 1600
    assert [lossy[i] for i in kept] == [clean[i] for i in kept]


# ---------------------------------------------------------------------- delay line
def test_delay_line_releases_in_delivery_order_when_due() -> None:
    spec = LinkSpec.parse("mode=message delay=30ms jitter=10ms loss=10% dup=10% seed=5")
    line, twin = DelayLine(LinkModel(spec, 0.0, stream=2)), LinkModel(spec, 0.0, stream=2)
    expected: list[tuple[float, bytes]] = []
    for i in range(500):
        payload = i.to_bytes(4, "big")
        expected += [(t, payload) for t in twin.deliveries(i * 0.001, len(payload))]
        line.put(i * 0.001, payload)
    expected.sort(key=lambda e: e[0])
    assert len(line) == len(expected) > 500 * 0.95
    assert line.next_due() == expected[0][0]
    released: list[bytes] = []
    now = 0.0
    while len(line):
        now += 0.0005
        due = line.pop_due(now)
        assert len(due) == sum(1 for t, _ in expected[len(released) :] if t <= now)
        released += due
        if len(line):
            assert line.next_due() == expected[len(released)][0]
            assert line.next_due() > now
    assert released == [p for _, p in expected]
    assert line.next_due() is None and line.pop_due(1e9) == []


def test_delay_line_in_tcp_mode_keeps_send_order() -> None:
    line = DelayLine(LinkModel(LinkSpec.parse("delay=30ms jitter=10ms loss=10%"), 0.0))
    for i in range(1000):
        line.put(i * 0.001, i.to_bytes(4, "big"))
    out = line.pop_due(1e9)
    assert [int.from_bytes(b, "big") for b in out] == list(range(1000))
