"""Fair intake of control requests: who is answered first when more arrive than a period can serve.

The robot answers a bounded number of control requests per period (``max_control_per_period``).
ZeroMQ's ROUTER reads connections in turn, so with N connections flooding, answering in arrival
order would leave the surgeon's ping, engage or e-stop behind N others (issue 15). Instead every
request read waits here, per connection, and each period's answers go

1. to the session owner's connection first;
2. then to the other connections one request each in turn, the least demanding first (by each
   connection's request rate, decayed over ``rate_tau_s``), so a console pinging at 10 Hz is
   answered before a connection sending thousands a second.

The backlog is bounded (``backlog`` requests in all): when it is full, a request from a demanding
connection is shed at once; one from the owner or from a light connection (under
``light_rate_hz``) sheds the heaviest connection's oldest waiting request instead. Shed requests
are answered ``busy`` by the server, never silently dropped. E-stop requests never wait here: the
server latches them as it reads them.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class IntakeConfig:
    """``backlog``: requests waiting at most, over all connections; ``rate_tau_s``: time constant of
    each connection's request rate (s); ``light_rate_hz``: below this rate (requests/s) a connection's
    request is kept when the backlog is full, at a heavier connection's expense."""

    backlog: int = 512
    rate_tau_s: float = 1.0
    light_rate_hz: float = 50.0
    #: Connections whose rate is remembered at most (the lightest forgotten first).
    max_tracked: int = 4096

    def __post_init__(self) -> None:
        if self.backlog < 1 or self.max_tracked < 1:
            raise ValueError("backlog and max_tracked must be at least 1")
        if not self.rate_tau_s > 0 or not self.light_rate_hz > 0:
            raise ValueError("rate_tau_s and light_rate_hz must be positive")


class RequestRates:
    """Each connection's request rate (requests/s), an exponentially decayed count."""

    def __init__(self, tau_s: float, max_tracked: int) -> None:
        self.tau_s = tau_s
        self.max_tracked = max_tracked
        self._rates: dict[bytes, tuple[float, float]] = {}  # ident → (decayed count, when)

    def add(self, ident: bytes, now_s: float) -> float:
        """Count one request from ``ident`` now; its rate including it."""
        count = self.count(ident, now_s) + 1.0
        self._rates[ident] = (count, now_s)
        if len(self._rates) > self.max_tracked:
            self._forget(now_s)
        return count / self.tau_s

    def count(self, ident: bytes, now_s: float) -> float:
        count, then = self._rates.get(ident, (0.0, now_s))
        return count * math.exp(-max(0.0, now_s - then) / self.tau_s)

    def rate(self, ident: bytes, now_s: float) -> float:
        return self.count(ident, now_s) / self.tau_s

    def _forget(self, now_s: float) -> None:
        by_count = sorted(self._rates, key=lambda k: self.count(k, now_s))
        for ident in by_count[: len(by_count) - self.max_tracked // 2]:
            del self._rates[ident]


class ControlIntake(Generic[T]):
    """Requests (any item ``T``) waiting per connection; see the module docstring."""

    def __init__(self, config: IntakeConfig | None = None) -> None:
        self.config = config or IntakeConfig()
        self.rates = RequestRates(self.config.rate_tau_s, self.config.max_tracked)
        self._waiting: dict[bytes, deque[T]] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def arrived(self, ident: bytes, item: T, now_s: float, owner: bytes | None) -> list[tuple[bytes, T]]:
        """Queue ``item`` from ``ident``; returns what was shed to keep the backlog bounded (each to
        be answered ``busy``): nothing, this item, or the heaviest connection's oldest request."""
        rate = self.rates.add(ident, now_s)
        if self._size >= self.config.backlog:
            if ident != owner and rate >= self.config.light_rate_hz:
                return [(ident, item)]
            heaviest = max(
                (k for k in self._waiting if k != owner), key=lambda k: self.rates.rate(k, now_s), default=None
            )
            if heaviest is None:  # only the owner's requests wait: keep them, shed this one
                return [(ident, item)]
            shed = (heaviest, self._pop(heaviest))
            self._push(ident, item)
            return [shed]
        self._push(ident, item)
        return []

    def take(self, n: int, now_s: float, owner: bytes | None) -> list[tuple[bytes, T]]:
        """Up to ``n`` requests to answer now, in order: the owner's, then one per connection in turn,
        the least demanding connection first."""
        out: list[tuple[bytes, T]] = []
        if owner is not None:
            while len(out) < n and owner in self._waiting:
                out.append((owner, self._pop(owner)))
        if len(out) >= n or not self._waiting:
            return out
        if n - len(out) == 1:  # the wait between periods asks for one at a time: no sort on the hot path
            lightest = min(self._waiting, key=lambda k: self.rates.rate(k, now_s))
            return [*out, (lightest, self._pop(lightest))]
        order = sorted(self._waiting, key=lambda k: self.rates.rate(k, now_s))
        while len(out) < n and order:
            still = []
            for ident in order:
                if len(out) >= n:
                    break
                out.append((ident, self._pop(ident)))
                if ident in self._waiting:
                    still.append(ident)
            order = still
        return out

    def _push(self, ident: bytes, item: T) -> None:
        self._waiting.setdefault(ident, deque()).append(item)
        self._size += 1

    def _pop(self, ident: bytes) -> T:
        queue = self._waiting[ident]
        item = queue.popleft()
        if not queue:
            del self._waiting[ident]
        self._size -= 1
        return item
