"""The patient scene: tissue bed, props, task objects and the endoscope camera.

World (patient) frame: origin at the centre of the tissue surface, z up, metres. Every body is
rigid or articulated, so the scene's state is a set of poses and joint values that a renderer or
a console twin can mirror.

Tissue is compliant: the normal force on the tool tip is
``stiffness × indentation + damping × indentation rate`` (applied by ``telesurg.envs.tissue``). The default
stiffness, 300 N/m, is of the order measured when indenting soft abdominal organs such as liver
with a probe of a few millimetres (a few hundred N/m over indentations of several mm). It puts
Palpate's 1.5–2.5 N band at 5–8 mm of indentation, well resolved by the tool, and the 6 N hard
limit at 20 mm. Force is linear in indentation over that whole range (checked by the tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from telesurg.envs.sim import CameraSpec, Sim

TISSUE_RGBA = (0.86, 0.52, 0.50, 1.0)


@dataclass(frozen=True)
class TissueConfig:
    """Tissue contact law (``telesurg.envs.tissue``) and the tissue bed, a slab whose top face is the world
    z=0 plane. ``slip_speed_m_s`` regularises friction near rest."""

    stiffness_N_m: float = 300.0
    damping_N_s_m: float = 5.0
    friction: float = 0.3
    slip_speed_m_s: float = 0.002
    half_size_m: tuple[float, float] = (0.2, 0.2)
    thickness_m: float = 0.04


@dataclass(frozen=True)
class SceneConfig:
    """Scene parameters. ``trocar_m`` is the trocar (the arm's RCM) in the world frame; the arm's
    base is placed so its RCM lands there. ``workspace_low_m``/``workspace_high_m`` bound tool-tip
    targets in the world frame (the lower z bound lets the tool indent the tissue). ``home_tip_m`` is
    where the tool tip starts every episode (world frame)."""

    trocar_m: tuple[float, float, float] = (0.07, 0.0, 0.11)
    tissue: TissueConfig = field(default_factory=TissueConfig)
    #: The endoscope; None (the default) takes the task's own view (``Task.camera``).
    camera: CameraSpec | None = None
    home_tip_m: tuple[float, float, float] = (0.0, 0.0, 0.05)
    workspace_low_m: tuple[float, float, float] = (-0.07, -0.07, -0.025)
    workspace_high_m: tuple[float, float, float] = (0.07, 0.07, 0.08)
    with_needle: bool = True
    #: Forbidden regions (e.g. a vessel the tool must never touch): axis-aligned boxes as
    #: ((x, y, z) low, (x, y, z) high) in the world frame (m). Drawn translucent red; the teleop
    #: supervisor never lets the tool tip enter them. None by default.
    forbidden_m: tuple[tuple[tuple[float, float, float], tuple[float, float, float]], ...] = ()

    def __post_init__(self) -> None:
        for i, box in enumerate(self.forbidden_m):
            low, high = np.asarray(box[0], dtype=float), np.asarray(box[1], dtype=float)
            if low.shape != (3,) or high.shape != (3,) or not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
                raise ValueError(f"forbidden_m[{i}] must be ((x, y, z), (x, y, z)) finite metres, got {box}")
            if np.any(low >= high):
                raise ValueError(f"forbidden_m[{i}]: low must be below high on every axis, got {box}")
        t = np.asarray(self.trocar_m, dtype=float)
        if t.shape != (3,) or not np.all(np.isfinite(t)):
            raise ValueError(f"trocar_m must be three finite numbers (m), got {self.trocar_m}")
        if t[2] <= 0.04:
            raise ValueError(f"the trocar must be at least 0.04 m above the tissue surface, got z={t[2]:.3f} m")
        if np.any(np.asarray(self.workspace_low_m) >= np.asarray(self.workspace_high_m)):
            raise ValueError("workspace_low_m must be below workspace_high_m on every axis")


#: Where the endoscope sits relative to the point it looks at (m, world frame): behind (−y) and above
#: the tissue, looking down at about 57° from the horizontal, as a laparoscope through an umbilical
#: port does. From there a 60° view holds the whole tool-tip workspace (±0.07 m), the instrument
#: coming in from the upper right, and the tool tip at home (0, 0, 0.05 m).
ENDOSCOPE_OFFSET_M = (0.0, -0.097, 0.15)


def endoscope_view(look_at_m: tuple[float, float, float], fov_deg: float = 60.0) -> CameraSpec:
    """The endoscope looking at ``look_at_m`` (world frame, m) from ``ENDOSCOPE_OFFSET_M`` away."""
    eye = tuple(float(a + b) for a, b in zip(look_at_m, ENDOSCOPE_OFFSET_M, strict=True))
    return CameraSpec(eye_m=eye, target_m=tuple(float(v) for v in look_at_m), fov_deg=fov_deg)  # type: ignore[arg-type]


def camera_intrinsics(camera: CameraSpec, width: int, height: int) -> tuple[float, float, float, float]:
    """Pinhole intrinsics (fx, fy, cx, cy) in pixels for an image of ``width`` × ``height``."""
    fy = (height / 2) / math.tan(math.radians(camera.fov_deg) / 2)
    return fy, fy, width / 2, height / 2


class PatientScene:
    """Builds the tissue bed and static props in a ``Sim`` and helps tasks add their objects."""

    TISSUE = "tissue"

    def __init__(self, sim: Sim, config: SceneConfig | None = None) -> None:
        self.sim = sim
        self.config = config or SceneConfig()
        t = self.config.tissue
        hx, hy = t.half_size_m
        sim.create_body(
            self.TISSUE,
            [{"kind": "box", "half_extents_m": (hx, hy, t.thickness_m / 2)}],
            position_m=(0.0, 0.0, -t.thickness_m / 2),
            rgba=TISSUE_RGBA,
        )
        sim.set_contact_dynamics(self.TISSUE, -1, t.stiffness_N_m, t.damping_N_s_m, t.friction)
        #: (body, link) pairs that are patient tissue: compliant under the tool tip (``telesurg.envs.tissue``).
        self.tissue_bodies: list[tuple[str, int]] = [(self.TISSUE, -1)]
        if self.config.with_needle:
            self._add_needle()
        for i, (low, high) in enumerate(self.config.forbidden_m):
            lo, hi = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
            sim.create_body(
                f"forbidden_{i}",
                [{"kind": "box", "half_extents_m": tuple((hi - lo) / 2)}],
                position_m=tuple((hi + lo) / 2),
                collision=False,
                rgba=(0.9, 0.1, 0.1, 0.35),
            )

    @property
    def surface_z_m(self) -> float:
        """Height of the tissue surface in the world frame (m)."""
        return 0.0

    def _add_needle(self) -> None:
        """A curved suture needle (half circle, 8 mm radius) lying on the tissue: a static,
        visual-only prop for the camera and for later needle tasks."""
        radius, n = 0.008, 8
        shapes = []
        for i in range(n):
            a = math.pi * (i + 0.5) / n
            seg = math.pi * radius / n
            shapes.append(
                {
                    "kind": "cylinder",
                    "radius_m": 0.0005,
                    "length_m": seg * 1.05,
                    "offset_m": (radius * math.cos(a), radius * math.sin(a), 0.0),
                    # Cylinder along z rotated to lie tangent to the arc in the x-y plane.
                    "quat_xyzw": _quat_from_axes_tangent(a),
                    "rgba": (0.75, 0.77, 0.80, 1.0),
                }
            )
        self.sim.create_body("needle", shapes, position_m=(0.04, 0.03, 0.0006), collision=False)

    def add_marker(
        self,
        name: str,
        radius_m: float,
        rgba: tuple[float, float, float, float],
        flat: bool = False,
    ) -> None:
        """A visual-only marker (a sphere, or a flat disc lying on the tissue) for goals."""
        if flat:
            shape = {"kind": "cylinder", "radius_m": radius_m, "length_m": 0.0004}
        else:
            shape = {"kind": "sphere", "radius_m": radius_m}
        self.sim.create_body(name, [shape], collision=False, rgba=rgba)


def _quat_from_axes_tangent(angle: float) -> tuple[float, float, float, float]:
    # Tangent of the arc at ``angle`` is (-sin a, cos a, 0): rotate +z onto it (90° about the
    # horizontal axis perpendicular to the tangent).
    axis = np.array([math.cos(angle), math.sin(angle), 0.0])
    s = math.sin(math.pi / 4)
    return (axis[0] * s, axis[1] * s, 0.0, math.cos(math.pi / 4))
