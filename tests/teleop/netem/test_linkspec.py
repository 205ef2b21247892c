"""Link spec text: parsing, canonical round trip, and every refusal naming its item."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telesurg.teleop.netem.spec import LinkSpec, LinkSpecError


def test_the_example_parses_to_si_units() -> None:
    spec = LinkSpec.parse("delay=200ms jitter=20ms loss=1% outage=5s@10s")
    assert spec == LinkSpec(delay_s=0.2, jitter_s=0.02, loss=0.01, outages=((10.0, 5.0),))
    assert spec.mode == "tcp"


def test_every_key() -> None:
    spec = LinkSpec.parse(
        "mode=message delay=40ms jitter=25% dist=pareto loss=2% burst=4 reorder=1% gap=5ms dup=0.5% "
        "rate=2Mbit rto=150ms seed=3 outage=2s@20s,outage=500ms@1s"
    )
    assert spec == LinkSpec(
        delay_s=0.04,
        jitter_s=0.01,  # 25% of the delay
        jitter_dist="pareto",
        loss=0.02,
        burst=4.0,
        reorder=0.01,
        reorder_gap_s=0.005,
        duplicate=0.005,
        rate_bps=2e6,
        outages=((1.0, 0.5), (20.0, 2.0)),  # sorted by start
        mode="message",
        rto_s=0.15,
        seed=3,
    )


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("delay=250us", "delay_s", 250e-6),
        ("delay=250µs", "delay_s", 250e-6),
        ("delay=1.5s", "delay_s", 1.5),
        ("loss=0.01", "loss", 0.01),
        ("rate=64kbit", "rate_bps", 64e3),
        ("rate=64kbps", "rate_bps", 64e3),
        ("rate=1Gbit", "rate_bps", 1e9),
        ("rate=9600bps", "rate_bps", 9600.0),
        ("rate=300bit", "rate_bps", 300.0),
        ("jitter=20%", "jitter_s", 0.0),  # a percentage of no delay
    ],
)
def test_units(text: str, field: str, value: float) -> None:
    assert getattr(LinkSpec.parse(text), field) == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize("text", ["", "   ", "none", "NONE"])
def test_empty_and_none_are_a_perfect_link(text: str) -> None:
    assert LinkSpec.parse(text) == LinkSpec()


def test_jitter_percentage_does_not_depend_on_order() -> None:
    assert LinkSpec.parse("jitter=10% delay=300ms") == LinkSpec.parse("delay=300ms jitter=30ms")


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        (LinkSpec(), "none"),
        (
            LinkSpec(delay_s=0.2, jitter_s=0.02, loss=0.01, outages=((10.0, 5.0),)),
            "delay=200ms jitter=20ms loss=1% outage=5s@10s",
        ),
        (
            LinkSpec(delay_s=1.5, rate_bps=2.5e6, mode="message", duplicate=0.005),
            "delay=1.5s dup=0.5% rate=2.5Mbit mode=message",
        ),
        (LinkSpec(jitter_s=250e-6, rto_s=0.05, seed=9), "jitter=250us rto=50ms seed=9"),
    ],
)
def test_canonical_text(spec: LinkSpec, text: str) -> None:
    assert str(spec) == text
    assert LinkSpec.parse(text) == spec


_times = st.floats(min_value=0, max_value=1e4, allow_nan=False, allow_infinity=False)
_probs = st.floats(min_value=0, max_value=0.5, allow_nan=False)


@st.composite
def _specs(draw: st.DrawFn) -> LinkSpec:
    mode = draw(st.sampled_from(["message", "tcp"]))
    starts = sorted(set(draw(st.lists(st.integers(0, 1000), max_size=3))))
    outages = tuple((s * 10.0, draw(st.floats(min_value=1e-3, max_value=9.0))) for s in starts)
    return LinkSpec(
        delay_s=draw(_times),
        jitter_s=draw(_times),
        jitter_dist=draw(st.sampled_from(["normal", "pareto"])),
        loss=draw(_probs),
        burst=draw(st.floats(min_value=1, max_value=100)),
        reorder=draw(_probs) if mode == "message" else 0.0,
        reorder_gap_s=draw(_times),
        duplicate=draw(_probs) if mode == "message" else 0.0,
        rate_bps=draw(st.none() | st.floats(min_value=1, max_value=1e12)),
        outages=outages,
        mode=mode,
        rto_s=draw(_times),
        seed=draw(st.integers(0, 2**32)),
    )


@settings(max_examples=300, deadline=None)
@given(_specs())
def test_any_spec_round_trips_exactly(spec: LinkSpec) -> None:
    assert LinkSpec.parse(str(spec)) == spec


def test_outage_lists_become_sorted_tuples() -> None:
    spec = LinkSpec(outages=[[5, 1], [0, 2]])  # type: ignore[arg-type]
    assert spec.outages == ((0.0, 2.0), (5.0, 1.0))
    assert LinkSpec(outages=((0.0, 1.0), (1.0, 1.0))).outages == ((0.0, 1.0), (1.0, 1.0))  # touching is fine


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dealy=5ms", r"unknown link key 'dealy' in 'dealy=5ms'; keys: delay, jitter"),
        ("delay", r"link item 'delay' is not KEY=VALUE"),
        ("delay=", r"link item 'delay=' is not KEY=VALUE"),
        ("delay=5", r"delay=5: a time needs a unit \(us, ms or s\), e.g. 5ms"),
        ("rto=5min", r"rto=5min: unknown time unit 'min'; use us, ms or s"),
        ("delay=fast", r"delay=fast: 'fast' is not a time with a unit"),
        ("delay=-5ms", r"delay=-5ms: must not be negative"),
        ("jitter=-1%", r"jitter=-1%: must not be negative"),
        ("delay=nanms", r"delay=nanms: 'nanms' is not a time"),
        ("loss=150%", r"loss=150%: above 100%"),
        ("loss=-1%", r"loss=-1%: must not be negative"),
        ("loss=1", r"loss=1: a bare number must be a fraction below 1 \(write 1% or 100%\)"),
        ("loss=5", r"loss=5: a bare number must be a fraction below 1"),
        ("reorder=2x", r"reorder=2x: unknown unit 'x'"),
        ("dup=200%", r"dup=200%: above 100%"),
        ("burst=0.5", r"burst=0.5 must be at least 1"),
        ("burst=3ms", r"burst=3ms: unexpected unit 'ms'"),
        ("rate=2MB", r"rate=2MB: unknown rate unit 'MB'; give a rate in bit, kbit, Mbit, Gbit"),
        ("rate=2000", r"rate=2000: needs a unit"),
        ("rate=0Mbit", r"rate=0Mbit: must be positive"),
        ("dist=cauchy", r"dist=cauchy: use dist=normal or dist=pareto"),
        ("mode=udp", r"mode=udp: use mode=message or mode=tcp"),
        ("seed=-3", r"seed=-3: the seed must be a non-negative integer"),
        ("seed=1.5", r"seed=1.5: the seed must be a non-negative integer"),
        ("outage=5s", r"outage=5s: write outage=DURATION@START"),
        ("outage=5s@", r"outage=5s@: write outage=DURATION@START"),
        ("outage=5@10s", r"outage=5@10s: a time needs a unit"),
        ("outage=0s@10s", r"outage=0s@10s: the duration must be positive"),
        ("outage=5s@10s outage=2s@12s", r"outage=2s@12s overlaps outage=5s@10s; outages must not overlap"),
        ("delay=5ms delay=6ms", r"delay given twice \('delay=6ms'\); only outage may repeat"),
        ("loss=90% burst=2 mode=message", r"loss=90% with burst=2 is impossible: .* at most b/\(b\+1\) = 67%"),
        ("loss=100%", r"loss=100% with mode=tcp would retransmit forever; use an outage"),
        ("reorder=1%", r"reorder=1% needs mode=message: over TCP nothing is reordered"),
        ("dup=1%", r"dup=1% needs mode=message"),
    ],
)
def test_refusals_name_the_item(text: str, message: str) -> None:
    with pytest.raises(LinkSpecError, match=message) as info:
        LinkSpec.parse(text)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_a_non_string_is_refused() -> None:
    with pytest.raises(LinkSpecError, match="must be a string"):
        LinkSpec.parse(0.2)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"delay_s": -0.1}, r"delay=-0.1 must not be negative"),
        ({"jitter_s": float("inf")}, r"jitter=inf must be finite"),
        ({"rto_s": "200ms"}, r"rto='200ms' is not a number"),
        ({"loss": 1.5}, r"loss=1.5 is above 100%"),
        ({"burst": 0.0}, r"burst=0 must be at least 1"),
        ({"rate_bps": 0.0}, r"rate=0bit must be positive"),
        ({"jitter_dist": "uniform"}, r"dist=uniform: use dist=normal or dist=pareto"),
        ({"mode": "udp"}, r"mode=udp: use mode=message or mode=tcp"),
        ({"seed": -1}, r"seed=-1 must be a non-negative integer"),
        ({"seed": True}, r"seed=True must be a non-negative integer"),
        ({"outages": ((1.0, -2.0),)}, r"outage duration=-2.0 must not be negative"),
        ({"outages": ((0.0, 2.0), (1.0, 2.0))}, r"outage=2s@1s overlaps outage=2s@0s"),
        ({"outages": (1.0, 2.0)}, r"must be \(start_s, duration_s\) pairs"),
        ({"reorder": 0.1}, r"reorder=10% needs mode=message"),
    ],
)
def test_the_dataclass_validates_itself(changes: dict, message: str) -> None:
    with pytest.raises(LinkSpecError, match=message):
        dataclasses.replace(LinkSpec(), **changes)


def test_message_mode_allows_what_tcp_refuses() -> None:
    spec = LinkSpec(mode="message", loss=1.0, burst=4.0, reorder=0.1, duplicate=0.1)
    assert LinkSpec.parse(str(spec)) == spec
    assert LinkSpec(loss=0.5, burst=1.0, mode="message").loss == 0.5  # b/(b+1) applies only to bursts
