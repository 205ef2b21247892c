"""Surgeon inputs: devices that produce hand motion (hand space: x right, y up, z toward the surgeon,
metres; see ``telesurg.teleop.console.mapping``), a jaw opening (0 closed – 1 open) and buttons.

- the scripted surgeon and trace replay, devices that need no person, are in
  ``telesurg.teleop.console.scripted``.
- ``Keyboard``: a terminal in cbreak mode (w/s up/down, a/d left/right, r/f toward/away, space
  clutch, o/c jaw, e engage/disengage, x e-stop, q quit).
- ``Gamepad`` (pygame) and ``SpaceMouse`` (pyspacemouse): optional packages; rate control.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

from telesurg.teleop.console.mapping import HandToTool
from telesurg.teleop.wire import protocol as p

if TYPE_CHECKING:
    pass


@dataclass
class HandInput:
    """One reading of an input device. ``engage``/``estop``/``reset``/``quit`` are button presses
    (events, true once); ``clutch`` is a held state."""

    hand_m: np.ndarray
    jaw: float = 0.0
    clutch: bool = False
    engage: bool = False
    estop: bool = False
    reset: bool = False
    quit: bool = False


class InputDevice(Protocol):
    def read(self, now_s: float, telemetry: p.Telemetry | None, mapping: HandToTool) -> HandInput: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------- devices a person holds
class Keyboard:
    """Terminal keys (see the module docstring); each press moves the hand ``step_m``."""

    KEYS: ClassVar[dict[str, tuple[int, int]]] = {
        "d": (0, +1),
        "a": (0, -1),
        "w": (1, +1),
        "s": (1, -1),
        "r": (2, +1),
        "f": (2, -1),
    }

    def __init__(self, step_m: float = 0.002) -> None:
        import termios
        import tty

        if not sys.stdin.isatty():
            raise RuntimeError("the keyboard input needs an interactive terminal (stdin is not a TTY)")
        self.step_m = step_m
        self.hand_m = np.zeros(3)
        self.jaw = 0.0
        self.clutch = False
        self._events: list[str] = []
        self._lock = threading.Lock()
        self._fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)
        self._thread = threading.Thread(target=self._reader, daemon=True)
        self._thread.start()

    def _reader(self) -> None:
        while True:
            ch = sys.stdin.read(1)
            if not ch:
                return
            with self._lock:
                self._events.append(ch)

    def read(self, now_s: float, telemetry: p.Telemetry | None, mapping: HandToTool) -> HandInput:
        out = HandInput(hand_m=self.hand_m)
        with self._lock:
            events, self._events = self._events, []
        for ch in events:
            if ch in self.KEYS:
                axis, sign = self.KEYS[ch]
                self.hand_m = self.hand_m.copy()
                self.hand_m[axis] += sign * self.step_m
            elif ch == " ":
                self.clutch = not self.clutch
            elif ch == "o":
                self.jaw = min(1.0, self.jaw + 0.25)
            elif ch == "c":
                self.jaw = max(0.0, self.jaw - 0.25)
            elif ch == "e":
                out.engage = True
            elif ch == "x":
                out.estop = True
            elif ch == "z":
                out.reset = True
            elif ch == "q":
                out.quit = True
        out.hand_m, out.jaw, out.clutch = self.hand_m, self.jaw, self.clutch
        return out

    def close(self) -> None:
        import termios

        termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)


# ---------------------------------------------------------------------- rate-controlled devices
class _RateDevice:
    """Integrates a velocity command (m/s at full deflection: ``speed_m_s``) into a hand position."""

    def __init__(self, speed_m_s: float) -> None:
        self.speed_m_s = speed_m_s
        self.hand_m = np.zeros(3)
        self._last: float | None = None

    def _integrate(self, now_s: float, axes: np.ndarray) -> np.ndarray:
        dt = 0.0 if self._last is None else min(0.1, now_s - self._last)
        self._last = now_s
        axes = np.where(np.abs(axes) < 0.08, 0.0, axes)  # dead zone
        self.hand_m = self.hand_m + self.speed_m_s * np.clip(axes, -1, 1) * dt
        return self.hand_m


class Gamepad(_RateDevice):
    """A gamepad through pygame: left stick x/y → hand x/y, right stick y → z; A (button 0) held =
    clutch; right trigger opens the jaw; B (1) e-stop; Y (3) engage; Back (6) quit."""

    def __init__(self, speed_m_s: float = 0.05, index: int = 0) -> None:
        super().__init__(speed_m_s)
        try:
            import os

            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
            import pygame
        except ImportError:
            raise RuntimeError("the gamepad input needs pygame: pip install pygame") from None
        pygame.init()
        pygame.joystick.init()
        if pygame.joystick.get_count() <= index:
            raise RuntimeError(f"no gamepad {index} found ({pygame.joystick.get_count()} connected)")
        self.pygame = pygame
        self.pad = pygame.joystick.Joystick(index)
        self._pressed: set[int] = set()

    def read(self, now_s: float, telemetry: p.Telemetry | None, mapping: HandToTool) -> HandInput:
        pg = self.pygame
        pg.event.pump()
        j = self.pad
        axes = np.array([j.get_axis(0), -j.get_axis(1), -j.get_axis(4) if j.get_numaxes() > 4 else 0.0])
        hand = self._integrate(now_s, axes)
        buttons = {i for i in range(j.get_numbuttons()) if j.get_button(i)}
        new = buttons - self._pressed
        self._pressed = buttons
        trigger = (j.get_axis(5) + 1) / 2 if j.get_numaxes() > 5 else 0.0
        return HandInput(
            hand_m=hand, jaw=float(trigger), clutch=0 in buttons, estop=1 in new, engage=3 in new, quit=6 in new
        )

    def close(self) -> None:
        self.pygame.quit()


class SpaceMouse(_RateDevice):
    """A 3D mouse through pyspacemouse: translation → hand velocity; left button held = clutch;
    right button toggles the jaw."""

    def __init__(self, speed_m_s: float = 0.05) -> None:
        super().__init__(speed_m_s)
        try:
            import pyspacemouse
        except ImportError:
            raise RuntimeError("the 3D-mouse input needs pyspacemouse: pip install pyspacemouse") from None
        if not pyspacemouse.open():
            raise RuntimeError("no 3D mouse found (pyspacemouse.open() failed)")
        self.dev = pyspacemouse
        self.jaw = 0.0
        self._right = False

    def read(self, now_s: float, telemetry: p.Telemetry | None, mapping: HandToTool) -> HandInput:
        s = self.dev.read()
        hand = self._integrate(now_s, np.array([s.x, s.z, -s.y]))
        right = bool(s.buttons[1]) if len(s.buttons) > 1 else False
        if right and not self._right:
            self.jaw = 1.0 - self.jaw
        self._right = right
        return HandInput(hand_m=hand, jaw=self.jaw, clutch=bool(s.buttons[0]) if s.buttons else False)

    def close(self) -> None:
        self.dev.close()
