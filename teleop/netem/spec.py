"""``LinkSpec``: the one text format for an emulated network link, used by launch files, the command
line and the safety harness. The model that acts on it is ``telesurg.teleop.netem.model``.

A spec is whitespace- (or comma-) separated ``KEY=VALUE`` items; order does not matter and every
key but ``outage`` may appear once. An empty string or ``none`` is a perfect link. ::

    delay=200ms jitter=20ms loss=1% outage=5s@10s
    mode=message delay=40ms jitter=25% dist=pareto loss=2% burst=4 reorder=1% dup=0.5%
    delay=30ms rate=2Mbit rto=200ms seed=3 outage=1s@5s outage=2s@20s

=========  ====================================================================================
key        value
=========  ====================================================================================
delay      constant one-way delay; a time (``us``, ``ms``, ``s``; the unit is required)
jitter     a time, or a percentage of ``delay`` (``jitter=20%``). ``dist=normal``: the standard
           deviation; ``dist=pareto``: the scale of the heavy tail (see ``telesurg.teleop.netem.model``)
dist       ``normal`` (default) or ``pareto``
loss       long-run loss probability: ``1%`` or a bare fraction below 1 (``0.01``); a bare
           ``1`` is refused as ambiguous (write ``100%``)
burst      mean loss-burst length in messages, ≥ 1: ``1`` independent losses (Bernoulli), more
           a Gilbert–Elliott chain with that mean burst and the same long-run loss
reorder    probability (as ``loss``) that a message is held back ``gap`` longer; mode=message only
gap        the reorder hold-back, a time (default 10ms)
dup        probability (as ``loss``) that a message is delivered twice; mode=message only
rate       bandwidth cap in bits per second: ``bit kbit Mbit Gbit`` or ``bps kbps Mbps Gbps``
           (all bits, unlike tc's ``mbps``); absent = unlimited
outage     ``DURATION@START``: the link is down for DURATION from START after the link's start —
           a console's links start at its first engage, `telesurg netem`'s when the proxy starts,
           the video path's when its peer connection is made; repeatable; outages must not overlap
           (touching is allowed)
mode       ``tcp`` (default): TCP-faithful, nothing lost or reordered, loss becomes retransmission
           delay; ``message``: every message on its own, UDP-like worst case
rto        retransmission timeout added per lost transmission in mode=tcp (default 200ms)
seed       non-negative integer seed of the random streams (default 0)
=========  ====================================================================================

``str(spec)`` is the canonical text (only the items that differ from the defaults, in the order of
the table; ``none`` for a perfect link) and parses back to an equal spec. Invalid specs raise
``LinkSpecError`` (a ``ValueError``) with one line naming the bad item and what is allowed; the
dataclass validates itself the same way, so specs built in code (or from TOML) obey the same rules.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

#: Time units and the integer each value is divided by to get seconds (division of exact integers
#: rounds once, so canonical text always parses back to the same float).
TIME_UNITS: dict[str, int] = {"s": 1, "ms": 1_000, "us": 1_000_000, "µs": 1_000_000}
#: Rate units (all bits per second) and their multipliers.
RATE_UNITS: dict[str, int] = {
    "bit": 1,
    "kbit": 1_000,
    "Kbit": 1_000,
    "Mbit": 1_000_000,
    "Gbit": 1_000_000_000,
    "bps": 1,
    "kbps": 1_000,
    "Kbps": 1_000,
    "Mbps": 1_000_000,
    "Gbps": 1_000_000_000,
}
KEYS = ("delay", "jitter", "dist", "loss", "burst", "reorder", "gap", "dup", "rate", "outage", "mode", "rto", "seed")
DISTS = ("normal", "pareto")
MODES = ("message", "tcp")

_NUMBER = re.compile(r"^(?P<num>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?P<unit>.*)$")
_TIME_HELP = "a time with a unit: us, ms or s (e.g. 20ms)"
_PROB_HELP = "a percentage (e.g. 1%) or a fraction below 1 (e.g. 0.01)"
_RATE_HELP = "a rate in bit, kbit, Mbit, Gbit (or bps, kbps, Mbps, Gbps; all bits per second), e.g. 2Mbit"


class LinkSpecError(ValueError):
    """An invalid link spec; the one-line message names the item and what is allowed."""


@dataclass(frozen=True)
class LinkSpec:
    """One direction of one emulated link. Times in seconds, probabilities 0–1, rate in bits/s.

    ``outages`` are ``(start_s, duration_s)`` pairs relative to the link's start; they are sorted on
    construction (lists are accepted and become tuples), must not overlap and have positive
    durations. ``reorder`` and ``duplicate`` need ``mode="message"``: over TCP nothing is reordered
    or duplicated, and a spec that asks for it is refused rather than silently ignored.
    """

    delay_s: float = 0.0
    jitter_s: float = 0.0
    jitter_dist: Literal["normal", "pareto"] = "normal"
    loss: float = 0.0
    burst: float = 1.0
    reorder: float = 0.0
    reorder_gap_s: float = 0.01
    duplicate: float = 0.0
    rate_bps: float | None = None
    outages: tuple[tuple[float, float], ...] = ()
    mode: Literal["message", "tcp"] = "tcp"
    rto_s: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        for name, key in (("delay_s", "delay"), ("jitter_s", "jitter"), ("reorder_gap_s", "gap"), ("rto_s", "rto")):
            _check_number(getattr(self, name), key, _TIME_HELP)
        for name, key in (("loss", "loss"), ("reorder", "reorder"), ("duplicate", "dup")):
            value = getattr(self, name)
            _check_number(value, key, _PROB_HELP)
            if value > 1.0:
                raise LinkSpecError(f"{key}={value!r} is above 100%; give {_PROB_HELP}")
        _check_number(self.burst, "burst", "a mean burst length in messages, at least 1")
        if self.burst < 1.0:
            raise LinkSpecError(f"burst={self.burst:g} must be at least 1 (1 = independent losses)")
        if self.rate_bps is not None:
            _check_number(self.rate_bps, "rate", _RATE_HELP)
            if self.rate_bps == 0:
                raise LinkSpecError(f"rate=0bit must be positive (leave rate out for no cap); give {_RATE_HELP}")
        if self.jitter_dist not in DISTS:
            raise LinkSpecError(f"dist={self.jitter_dist}: use dist=normal or dist=pareto")
        if self.mode not in MODES:
            raise LinkSpecError(f"mode={self.mode}: use mode=message or mode=tcp")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise LinkSpecError(f"seed={self.seed!r} must be a non-negative integer")
        object.__setattr__(self, "outages", _normalise_outages(self.outages))
        # Cross-item rules, worded in spec items so parse() errors read the same.
        if self.burst > 1.0 and 0.0 < self.loss < 1.0 and self.loss > self.burst / (self.burst + 1.0):
            raise LinkSpecError(
                f"loss={_fmt_prob(self.loss)} with burst={_fmt_num(self.burst)} is impossible: with a mean burst "
                f"of b messages the long-run loss is at most b/(b+1) = {self.burst / (self.burst + 1.0):.0%}"
            )
        if self.mode == "tcp":
            if self.loss >= 1.0:
                raise LinkSpecError(
                    "loss=100% with mode=tcp would retransmit forever; use an outage for a dead link "
                    "(or mode=message to drop everything)"
                )
            for value, key in ((self.reorder, "reorder"), (self.duplicate, "dup")):
                if value > 0.0:
                    raise LinkSpecError(
                        f"{key}={_fmt_prob(value)} needs mode=message: over TCP nothing is reordered or "
                        "duplicated (jitter and loss become delay instead)"
                    )

    # ------------------------------------------------------------------ text form
    @classmethod
    def parse(cls, text: str) -> LinkSpec:
        """The spec written as ``text`` (see the module docstring); ``""``/``"none"`` = perfect link."""
        if not isinstance(text, str):
            raise LinkSpecError(f"a link spec must be a string, got {type(text).__name__}")
        items = text.replace(",", " ").split()
        if not items or (len(items) == 1 and items[0].lower() == "none"):
            return cls()
        seen: set[str] = set()
        kwargs: dict[str, object] = {}
        outages: list[tuple[float, float]] = []
        jitter_percent: float | None = None
        for item in items:
            key, eq, value = item.partition("=")
            if not eq or not key or not value:
                raise LinkSpecError(f"link item {item!r} is not KEY=VALUE; keys: {', '.join(KEYS)}")
            if key not in KEYS:
                raise LinkSpecError(f"unknown link key {key!r} in {item!r}; keys: {', '.join(KEYS)}")
            if key in seen and key != "outage":
                raise LinkSpecError(f"{key} given twice ({item!r}); only outage may repeat")
            seen.add(key)
            if key in ("delay", "rto", "gap"):
                kwargs[{"delay": "delay_s", "rto": "rto_s", "gap": "reorder_gap_s"}[key]] = _parse_time(item, value)
            elif key == "jitter":
                if value.endswith("%"):
                    jitter_percent = _parse_number(item, value[:-1], "a time or a percentage of delay (e.g. 20%)")
                else:
                    kwargs["jitter_s"] = _parse_time(item, value)
            elif key in ("loss", "reorder", "dup"):
                kwargs[{"dup": "duplicate"}.get(key, key)] = _parse_prob(item, value)
            elif key == "burst":
                kwargs["burst"] = _parse_number(item, value, "a mean burst length in messages, at least 1")
            elif key == "rate":
                kwargs["rate_bps"] = _parse_rate(item, value)
            elif key == "outage":
                outages.append(_parse_outage(item, value))
            elif key == "dist":
                if value not in DISTS:
                    raise LinkSpecError(f"{item}: use dist=normal or dist=pareto")
                kwargs["jitter_dist"] = value
            elif key == "mode":
                if value not in MODES:
                    raise LinkSpecError(f"{item}: use mode=message or mode=tcp")
                kwargs["mode"] = value
            elif key == "seed":
                if not value.isdigit():
                    raise LinkSpecError(f"{item}: the seed must be a non-negative integer")
                kwargs["seed"] = int(value)
        if jitter_percent is not None:
            kwargs["jitter_s"] = float(kwargs.get("delay_s", 0.0)) * jitter_percent / 100  # type: ignore[arg-type]
        if outages:
            kwargs["outages"] = tuple(outages)
        return cls(**kwargs)  # type: ignore[arg-type]

    def __str__(self) -> str:
        default = LinkSpec()
        parts: list[str] = []
        if self.delay_s != default.delay_s:
            parts.append(f"delay={_fmt_time(self.delay_s)}")
        if self.jitter_s != default.jitter_s:
            parts.append(f"jitter={_fmt_time(self.jitter_s)}")
        if self.jitter_dist != default.jitter_dist:
            parts.append(f"dist={self.jitter_dist}")
        if self.loss != default.loss:
            parts.append(f"loss={_fmt_prob(self.loss)}")
        if self.burst != default.burst:
            parts.append(f"burst={_fmt_num(self.burst)}")
        if self.reorder != default.reorder:
            parts.append(f"reorder={_fmt_prob(self.reorder)}")
        if self.reorder_gap_s != default.reorder_gap_s:
            parts.append(f"gap={_fmt_time(self.reorder_gap_s)}")
        if self.duplicate != default.duplicate:
            parts.append(f"dup={_fmt_prob(self.duplicate)}")
        if self.rate_bps is not None:
            parts.append(f"rate={_fmt_rate(self.rate_bps)}")
        parts += [f"outage={_fmt_time(d)}@{_fmt_time(s)}" for s, d in self.outages]
        if self.mode != default.mode:
            parts.append(f"mode={self.mode}")
        if self.rto_s != default.rto_s:
            parts.append(f"rto={_fmt_time(self.rto_s)}")
        if self.seed != default.seed:
            parts.append(f"seed={self.seed}")
        return " ".join(parts) or "none"


# ---------------------------------------------------------------------- validation
def _check_number(value: object, key: str, help_text: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LinkSpecError(f"{key}={value!r} is not a number; give {help_text}")
    if not math.isfinite(value):
        raise LinkSpecError(f"{key}={value!r} must be finite; give {help_text}")
    if value < 0:
        raise LinkSpecError(f"{key}={value!r} must not be negative; give {help_text}")


def _normalise_outages(outages: object) -> tuple[tuple[float, float], ...]:
    try:
        pairs = [(start, duration) for start, duration in outages]  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise LinkSpecError(f"outages={outages!r} must be (start_s, duration_s) pairs") from None
    out: list[tuple[float, float]] = []
    for start, duration in pairs:
        _check_number(start, "outage start", "a start time ≥ 0 s")
        _check_number(duration, "outage duration", "a duration > 0 s")
        if duration == 0:
            raise LinkSpecError(f"outage={_fmt_time(duration)}@{_fmt_time(start)}: the duration must be positive")
        out.append((float(start), float(duration)))
    out.sort()
    for (s0, d0), (s1, d1) in itertools.pairwise(out):
        if s1 < s0 + d0:
            raise LinkSpecError(
                f"outage={_fmt_time(d1)}@{_fmt_time(s1)} overlaps outage={_fmt_time(d0)}@{_fmt_time(s0)}; "
                "outages must not overlap (merge them into one)"
            )
    return tuple(out)


# ---------------------------------------------------------------------- parsing items
def _split(item: str, value: str, help_text: str) -> tuple[float, str]:
    match = _NUMBER.match(value)
    if match is None:
        raise LinkSpecError(f"{item}: {value!r} is not {help_text}")
    number = float(match["num"])
    if not math.isfinite(number):
        raise LinkSpecError(f"{item}: must be finite; give {help_text}")
    if number < 0:
        raise LinkSpecError(f"{item}: must not be negative; give {help_text}")
    return number, match["unit"]


def _parse_number(item: str, value: str, help_text: str) -> float:
    number, unit = _split(item, value, help_text)
    if unit:
        raise LinkSpecError(f"{item}: unexpected unit {unit!r}; give {help_text}")
    return number


def _parse_time(item: str, value: str) -> float:
    number, unit = _split(item, value, _TIME_HELP)
    if not unit:
        raise LinkSpecError(f"{item}: a time needs a unit (us, ms or s), e.g. {value}ms")
    if unit not in TIME_UNITS:
        raise LinkSpecError(f"{item}: unknown time unit {unit!r}; use us, ms or s")
    return number / TIME_UNITS[unit]


def _parse_prob(item: str, value: str) -> float:
    number, unit = _split(item, value, _PROB_HELP)
    if unit == "%":
        if number > 100:
            raise LinkSpecError(f"{item}: above 100%; give {_PROB_HELP}")
        return number / 100
    if unit:
        raise LinkSpecError(f"{item}: unknown unit {unit!r}; give {_PROB_HELP}")
    if number >= 1:
        raise LinkSpecError(f"{item}: a bare number must be a fraction below 1 (write {value}% or 100%)")
    return number


def _parse_rate(item: str, value: str) -> float:
    number, unit = _split(item, value, _RATE_HELP)
    if unit not in RATE_UNITS:
        what = "needs a unit" if not unit else f"unknown rate unit {unit!r}"
        raise LinkSpecError(f"{item}: {what}; give {_RATE_HELP}")
    if number == 0:
        raise LinkSpecError(f"{item}: must be positive (leave rate out for no cap)")
    return number * RATE_UNITS[unit]


def _parse_outage(item: str, value: str) -> tuple[float, float]:
    duration, at, start = value.partition("@")
    if not at or not duration or not start:
        raise LinkSpecError(f"{item}: write outage=DURATION@START with time units, e.g. outage=2s@10s")
    return _parse_time(item, start), _parse_time(item, duration)


# ---------------------------------------------------------------------- canonical text
def _fmt_num(value: float) -> str:
    text = f"{value:.15g}"
    return text if float(text) == value else repr(float(value))


def _exact(value: float, candidates: list[tuple[str, float]], parse: Callable[[str], float]) -> str | None:
    """The first ``NUMBER+SUFFIX`` text among ``candidates`` (suffix, scaled value) that parses back
    to exactly ``value``."""
    for suffix, scaled in candidates:
        for number in (f"{scaled:.12g}", f"{scaled:.15g}", repr(float(scaled))):
            if "e" in number or "inf" in number or "nan" in number:
                continue
            if parse(number) == value:
                return number + suffix
    return None


def _fmt_time(value_s: float) -> str:
    if value_s == 0:
        return "0s"
    order = ("s", "ms", "us") if value_s >= 1 else ("ms", "us", "s") if value_s >= 1e-3 else ("us", "ms", "s")
    for unit in order:
        text = _exact(value_s, [(unit, value_s * TIME_UNITS[unit])], lambda n, u=unit: float(n) / TIME_UNITS[u])
        if text is not None:
            return text
    return f"{value_s!r}s"


def _fmt_prob(value: float) -> str:
    text = _exact(value, [("%", value * 100)], lambda n: float(n) / 100)
    return text if text is not None else repr(float(value))


def _fmt_rate(value_bps: float) -> str:
    for unit in ("Gbit", "Mbit", "kbit", "bit"):
        scaled = value_bps / RATE_UNITS[unit]
        if scaled >= 1 or unit == "bit":
            text = _exact(value_bps, [(unit, scaled)], lambda n, u=unit: float(n) * RATE_UNITS[u])
            if text is not None:
                return text
    return f"{value_bps!r}bit"
