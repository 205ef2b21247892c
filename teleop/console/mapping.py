"""Hand → tool mapping of the surgeon console: clutch, motion scaling and hand–eye alignment.

Hand space is the surgeon's view of the screen: x right, y up, z toward the surgeon (metres). The
endoscope camera frame (from telemetry) has x right, y down, z into the scene, so a hand moving
right moves the tool right *in the image*, whatever the camera's pose in the robot base frame.

While the clutch is pressed, the tool target is

    target = anchor_tool + scale · R_cam · S · (hand − anchor_hand),    S = diag(1, −1, −1)

with anchors taken when the clutch closes (the tool's measured position then, and the hand's).
Releasing the clutch lets the surgeon reposition the hand while the robot holds; closing it again
re-anchors, so the tool never jumps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from telesurg.envs.geometry import quat_to_matrix

_SCREEN_TO_CAMERA = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class MappingConfig:
    """``motion_scale``: tool metres per hand metre (default 0.2: 5 cm of hand → 1 cm of tool)."""

    motion_scale: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 < self.motion_scale <= 1.0:
            raise ValueError(f"motion_scale must be in (0, 1], got {self.motion_scale}")


class HandToTool:
    """Clutch + motion scaling + hand–eye alignment (see the module docstring)."""

    def __init__(self, config: MappingConfig | None = None) -> None:
        self.config = config or MappingConfig()
        self.rotation = np.eye(3)  # camera → base
        self._anchor_hand: np.ndarray | None = None
        self._anchor_tool: np.ndarray | None = None
        self.target_m: np.ndarray | None = None

    def set_camera(self, quat_xyzw: tuple[float, float, float, float]) -> None:
        """The endoscope orientation (base frame) from telemetry. Changing it re-anchors."""
        r = quat_to_matrix(np.asarray(quat_xyzw, dtype=float))
        if not np.allclose(r, self.rotation):
            self.rotation = r
            self.release()

    @property
    def matrix(self) -> np.ndarray:
        """Tool displacement (base frame) per hand displacement (hand space)."""
        return self.config.motion_scale * self.rotation @ _SCREEN_TO_CAMERA

    def hand_velocity_for(self, tool_velocity_m_s: np.ndarray) -> np.ndarray:
        """The hand velocity (hand space) that moves the tool at ``tool_velocity_m_s`` (base frame)."""
        return np.linalg.solve(self.matrix, np.asarray(tool_velocity_m_s, dtype=float))

    @property
    def anchors(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(hand, tool) positions taken when the clutch closed, or None while it is open."""
        if self._anchor_hand is None or self._anchor_tool is None:
            return None
        return self._anchor_hand.copy(), self._anchor_tool.copy()

    @property
    def clutched(self) -> bool:
        return self._anchor_hand is not None

    def release(self) -> None:
        self._anchor_hand = self._anchor_tool = None

    def update(self, hand_m: np.ndarray, clutch: bool, tool_m: np.ndarray) -> np.ndarray | None:
        """The tool target (m, base frame) for this hand position, or None while the clutch is open.
        ``tool_m`` is the tool's measured position (used only when the clutch closes)."""
        hand = np.asarray(hand_m, dtype=float)
        if not clutch:
            self.release()
            self.target_m = None
            return None
        if self._anchor_hand is None:
            self._anchor_hand = hand.copy()
            self._anchor_tool = np.asarray(tool_m, dtype=float).copy()
        assert self._anchor_tool is not None
        self.target_m = self._anchor_tool + self.matrix @ (hand - self._anchor_hand)
        return self.target_m
