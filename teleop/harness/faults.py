"""Console faults the safety harness injects (its clock-jump and e-stop cells), kept out of the
production console: ``telesurg console --faults FILE`` (a ``[faults]`` table, TEST ONLY) runs a
``FaultyConsole``.

- ``clock_jump_s`` / ``clock_jump_at_s``: the console's message clock jumps by ``clock_jump_s``
  (ahead or back) ``clock_jump_at_s`` after its first engage; the summary says from which command
  (``clock_jump``), so the invariants can undo it on the true clock;
- ``estop_at_s``: the surgeon presses e-stop this long after the console first engaged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telesurg.teleop.console.config import ConsoleConfig
from telesurg.teleop.console.core import Console
from telesurg.teleop.console.inputs import HandInput, InputDevice


@dataclass(frozen=True)
class ConsoleFaults:
    """See the module docstring (seconds)."""

    clock_jump_s: float = 0.0
    clock_jump_at_s: float = 0.0
    estop_at_s: float | None = None


class FaultyConsole(Console):
    """A console with ``faults`` injected; everything else is the production console."""

    def __init__(self, config: ConsoleConfig, faults: ConsoleFaults, device: InputDevice | None = None) -> None:
        super().__init__(config, device)
        self.faults = faults
        self._jump_at: float | None = None
        self._jump_first_seq: int | None = None
        self._jump_session = ""
        self._engaged_at: float | None = None

    def engage(self) -> str:
        session = super().engage()
        link = self.link
        if self._engaged_at is None:  # the episode's start (a re-handshake does not move it)
            self._engaged_at = link.true_clock()
        if self._jump_at is None and self.faults.clock_jump_s:
            self._jump_at = link.true_clock() + self.faults.clock_jump_at_s
            jump, at, true = self.faults.clock_jump_s, self._jump_at, link.true_clock
            link.clock = lambda: true() + (jump if true() >= at else 0.0)
        return session

    def tick(self, now: float) -> HandInput:
        f = self.faults
        if (
            f.estop_at_s is not None
            and self._engaged_at is not None
            and now - self._engaged_at >= f.estop_at_s
            and not self.estop_pressed
        ):
            print("console: e-stop pressed", flush=True)
            self.press_estop()
        seq_before = self.seq
        hand = super().tick(now)
        if (
            self._jump_at is not None
            and self._jump_first_seq is None
            and now >= self._jump_at
            and self.seq > seq_before
        ):
            self._jump_first_seq, self._jump_session = self.seq, self.session
        return hand

    def clock_jump(self) -> dict[str, Any] | None:
        if self._jump_first_seq is None:
            return None
        return {"jump_s": self.faults.clock_jump_s, "session": self._jump_session, "first_seq": self._jump_first_seq}
