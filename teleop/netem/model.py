"""A user-space network link emulator: ``LinkModel`` decides when (and whether) each message
arrives; ``DelayLine`` holds messages until then. Pure and deterministic: no sockets, no threads, no
clock of its own (every call is given the time, in seconds on any monotonic clock); the same spec,
seed and stream with the same sequence of calls give the same results.

A ``LinkModel`` is one direction of one channel, configured by a ``telesurg.teleop.netem.spec.LinkSpec``.
``deliveries(sent_s, size_bytes)`` returns the delivery times of one message: ``[]`` lost, one time
normally, two times duplicated (sorted). Calls must come in send order (``sent_s`` non-decreasing).

Per message, in this order:

1. **Outages.** ``(start, duration)`` in the spec means the link is down on
   ``[start_s + start, start_s + start + duration)``, where ``start_s`` is the model's start (given
   to the constructor, moved by ``restart``). Whether a message is hit is judged by the time its
   transmission starts (its send time, or later if it queued behind the bandwidth cap); a message
   already in flight when an outage begins is delivered normally.
2. **Bandwidth cap** (``rate_bps``). One transmitter per link: a message of S bytes occupies it for
   S·8/rate seconds, starting when it is sent or when the previous message has finished, whichever
   is later (FIFO queueing). The queue is unbounded (no tail drop). Without a cap, transmission
   takes no time.
3. **Delay and jitter.** Each message draws its own propagation delay: ``dist=normal``:
   ``max(0, delay + N(0, jitter²))`` (the clip at 0 raises the mean only when jitter is a sizeable
   fraction of delay); ``dist=pareto``: ``delay + jitter·X`` with X Lomax (Pareto type II) of shape
   ``PARETO_SHAPE`` = 2.5 and scale 1, so the extra delay is ≥ 0 with mean jitter/1.5 ≈ 0.67·jitter,
   standard deviation ≈ 1.49·jitter, median ≈ 0.32·jitter and 99.9th percentile ≈ 14.8·jitter (a
   heavy tail: rare very late messages).
4. **Loss.** ``burst = 1``: each transmission is lost independently with probability ``loss``.
   ``burst > 1``: a Gilbert–Elliott chain with a good state (never loses) and a bad state (always
   loses); from bad the chain returns to good with probability 1/burst per message, from good it
   goes bad with probability loss/(burst·(1 − loss)), so bursts of consecutive losses have mean
   length ``burst`` and the long-run loss is ``loss``. The chain starts in its stationary
   distribution and steps once per message (also for messages sent during an outage).

``mode="message"`` (what a UDP transport sees; the worst case): a message whose transmission would
start during an outage is lost (it never occupies the transmitter); a lost message still occupied
the transmitter (it was lost downstream). A delivered message arrives at transmission end + its
delay, independently of its neighbours, so jitter reorders; with probability ``reorder`` it is held
back a further ``reorder_gap_s``; with probability ``duplicate`` a second copy arrives too, with its
own independent delay draw (no reorder hold-back; it may arrive first). Only delivered messages are
duplicated.

``mode="tcp"`` (ZeroMQ over TCP on a real network): nothing is lost, duplicated or reordered, and
delivery times never decrease. A message whose transmission would start during an outage waits for
the outage to end (so everything sent inside the window leaves at its end, in order, then takes the
delay). A lost transmission is retransmitted after a timeout: the k-th consecutive loss of the same
message adds ``rto_s·2^(k−1)`` (exponential backoff, each step capped at ``RTO_MAX_S`` = 120 s, as
Linux); a retransmission due inside an outage waits for its end. The first transmission's fate
follows the loss chain (so with ``burst > 1`` runs of consecutive messages are hit); each
retransmission, sent an RTO later, is lost independently with probability ``loss``. The message
then arrives at (last transmission) + its delay draw, but never before the previous message
(head-of-line blocking): one late message delays everything behind it, and the queue arrives
together. So in tcp mode the delivered delay is ≥ each message's own draw and its spread shrinks as
the send rate rises. ``rto_s`` is the engineer's choice: ≈ one round trip models fast retransmit on
a busy stream; 200 ms (the Linux minimum RTO) or more models a timeout. Retransmissions do not use
bandwidth in the model. Connections never break: a long outage only delays (a real ZeroMQ peer with
heartbeats might reconnect instead).

Random streams: numpy ``Generator``s seeded from ``SeedSequence([seed, stream])``, one per feature
(loss chain, retransmissions, delay draws, reorder, duplicate), each drawing a fixed amount per
message whatever the other settings: changing the loss does not change which delay each message
draws. Give each channel and direction its own ``stream`` (``stream_id`` makes one from names).
"""

from __future__ import annotations

import heapq
import math
import zlib
from collections.abc import Callable
from itertools import count

import numpy as np

from telesurg.teleop.netem.spec import LinkSpec

#: Shape of the Lomax (Pareto II) extra delay for ``dist=pareto``: finite mean and variance, heavy tail.
PARETO_SHAPE = 2.5
#: Largest single retransmission backoff step (s), as Linux's TCP_RTO_MAX.
RTO_MAX_S = 120.0
#: Random values drawn from numpy at a time per stream (amortises numpy's per-call cost).
_BLOCK = 4096


def stream_id(*names: str) -> int:
    """A stable stream number for a channel and direction, e.g. ``stream_id("cmd", "up")``."""
    return zlib.crc32("/".join(names).encode())


class _Draws:
    """Buffered draws from one generator: the same sequence whatever the block size."""

    def __init__(self, rng: np.random.Generator, draw: Callable[[np.random.Generator, int], np.ndarray]) -> None:
        self._rng = rng
        self._draw = draw
        self._buf: list[float] = []
        self._i = 0

    def next(self) -> float:
        if self._i == len(self._buf):
            self._buf = self._draw(self._rng, _BLOCK).tolist()
            self._i = 0
        self._i += 1
        return self._buf[self._i - 1]


class LinkModel:
    """One direction of one channel: when each message sent on it arrives (see the module docstring)."""

    def __init__(self, spec: LinkSpec, start_s: float, stream: int = 0) -> None:
        if isinstance(stream, bool) or not isinstance(stream, int) or stream < 0:
            raise ValueError(f"stream must be a non-negative integer, got {stream!r}")
        self.spec = spec
        self.stream = stream
        rngs = [np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence([spec.seed, stream]).spawn(5)]

        def uniform(rng: np.random.Generator, n: int) -> np.ndarray:
            return rng.random(n)

        if spec.jitter_dist == "pareto":

            def jitter(rng: np.random.Generator, n: int) -> np.ndarray:
                return rng.pareto(PARETO_SHAPE, n)
        else:

            def jitter(rng: np.random.Generator, n: int) -> np.ndarray:
                return rng.standard_normal(n)

        self._loss_u = _Draws(rngs[0], uniform)
        self._retx_u = _Draws(rngs[1], uniform)
        self._jitter = _Draws(rngs[2], jitter)
        self._reorder_u = _Draws(rngs[3], uniform)
        self._dup_u = _Draws(rngs[4], uniform)
        self._gilbert = spec.burst > 1.0 and 0.0 < spec.loss < 1.0
        if self._gilbert:
            self._p_bad_to_good = 1.0 / spec.burst
            self._p_good_to_bad = spec.loss / (spec.burst * (1.0 - spec.loss))
            self._bad = self._loss_u.next() < spec.loss  # stationary start
        self.restart(start_s)

    def restart(self, start_s: float) -> None:
        """Re-anchor the outage schedule at ``start_s`` and forget the transmitter queue and the TCP
        ordering (as for a new connection). The random streams and the loss chain carry on."""
        self.start_s = float(start_s)
        self._busy_until = -math.inf
        self._last_delivery = -math.inf

    # ------------------------------------------------------------------ schedule
    def down(self, t_s: float) -> bool:
        """True when ``t_s`` falls inside an outage."""
        return any(self.start_s + s <= t_s < self.start_s + s + d for s, d in self.spec.outages)

    def next_up(self, t_s: float) -> float:
        """``t_s`` if the link is up then, else the end of the outage it falls in."""
        for s, d in self.spec.outages:  # sorted and non-overlapping; touching outages chain on
            if self.start_s + s <= t_s < self.start_s + s + d:
                t_s = self.start_s + s + d
        return t_s

    # ------------------------------------------------------------------ one message
    def deliveries(self, sent_s: float, size_bytes: int) -> list[float]:
        """Delivery times of one message of ``size_bytes`` sent at ``sent_s``: ``[]`` lost, two
        entries duplicated (sorted)."""
        spec = self.spec
        lost = self._lost()
        draw_1, draw_2 = self._jitter_draw(), self._jitter_draw()
        if spec.mode == "message":
            reordered = spec.reorder > 0.0 and self._reorder_u.next() < spec.reorder
            duplicated = spec.duplicate > 0.0 and self._dup_u.next() < spec.duplicate
            start = max(sent_s, self._busy_until)
            if self.down(start):
                return []
            self._busy_until = start + self._transmit_s(size_bytes)
            if lost:
                return []
            first = self._busy_until + self._delay(draw_1) + (spec.reorder_gap_s if reordered else 0.0)
            if not duplicated:
                return [first]
            return sorted((first, self._busy_until + self._delay(draw_2)))
        # tcp
        start = self.next_up(max(sent_s, self._busy_until))
        self._busy_until = start + self._transmit_s(size_bytes)
        sent = self._busy_until
        backoff_s = spec.rto_s
        while lost:
            sent = self.next_up(sent + min(backoff_s, RTO_MAX_S))
            backoff_s *= 2.0
            lost = self._retx_u.next() < spec.loss
        delivery = max(sent + self._delay(draw_1), self._last_delivery)
        self._last_delivery = delivery
        return [delivery]

    def _lost(self) -> bool:
        loss = self.spec.loss
        if loss <= 0.0:
            return False
        u = self._loss_u.next()
        if not self._gilbert:
            return u < loss
        self._bad = u >= self._p_bad_to_good if self._bad else u < self._p_good_to_bad
        return self._bad

    def _jitter_draw(self) -> float:
        return self._jitter.next() if self.spec.jitter_s > 0.0 else 0.0

    def _delay(self, draw: float) -> float:
        spec = self.spec
        if spec.jitter_dist == "pareto":
            return spec.delay_s + spec.jitter_s * draw
        return max(0.0, spec.delay_s + spec.jitter_s * draw)

    def _transmit_s(self, size_bytes: int) -> float:
        return 0.0 if self.spec.rate_bps is None else size_bytes * 8.0 / self.spec.rate_bps


class DelayLine:
    """Messages put in at send time come out at their delivery times (ties in the order put in)."""

    def __init__(self, model: LinkModel) -> None:
        self.model = model
        self._heap: list[tuple[float, int, bytes]] = []
        self._order = count()

    def put(self, now_s: float, payload: bytes) -> None:
        """Send ``payload`` at ``now_s`` (lost, delayed or duplicated as the model says)."""
        for due_s in self.model.deliveries(now_s, len(payload)):
            heapq.heappush(self._heap, (due_s, next(self._order), payload))

    def pop_due(self, now_s: float) -> list[bytes]:
        """Every message due by ``now_s``, in delivery order."""
        out = []
        while self._heap and self._heap[0][0] <= now_s:
            out.append(heapq.heappop(self._heap)[2])
        return out

    def next_due(self) -> float | None:
        """When the next message is due, or None when nothing is held."""
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)
