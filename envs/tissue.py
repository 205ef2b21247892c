"""Compliant contact between the tool tip and tissue, computed explicitly at every physics step.

The tool tip is a sphere; tissue bodies are whatever shapes the scene gives them. At every physics
step the deepest point between the tip sphere and each tissue body (Bullet's closest-point query)
gives an indentation ``d`` and a surface normal ``n``; the tissue pushes back with

    normal force  f_n = stiffness × d + damping × dd/dt   (never pulling),
    friction      f_t = -friction × f_n, along the sliding direction (regularised near rest),

applied to the tool tip and, equal and opposite, to the tissue. This is the same spring-damper law
as Bullet's compliant contact, but with exactly one contact point: Bullet caches several manifold
points for a millimetre-sized sphere sliding on a surface, and each cached point acts as a full
spring, so its force would jump to a multiple of ``stiffness × d``. Bullet's own collision response
between the tip and tissue is switched off; other tool parts (the shaft) still touch tissue through
Bullet's compliant contact.
"""

from __future__ import annotations

import math

from telesurg.envs.arm import SurgicalArm
from telesurg.envs.scene import TissueConfig
from telesurg.envs.sim import Sim


class TissueContact:
    """Applies the tool-tip/tissue contact law to every registered tissue body."""

    def __init__(self, sim: Sim, arm: SurgicalArm, config: TissueConfig) -> None:
        self.sim = sim
        self.arm = arm
        self.config = config
        self.bodies: list[tuple[str, int]] = []
        self._last: dict[tuple[str, int], tuple[float, tuple[float, float, float]]] = {}
        self._static: set[tuple[str, int]] = set()
        self._dt = sim.config.physics_step_s

    def add_body(self, body: str, link: int = -1) -> None:
        """Make ``body``/``link`` tissue for the tool tip (and stop Bullet's own tip contact with it)."""
        self.sim.set_collision(self.arm.name, body, False, link_a=self.arm.tip_link, link_b=link)
        self.bodies.append((body, link))
        if self.sim.is_static(body, link):
            self._static.add((body, link))  # the reaction on it would do nothing: not applied

    def reset(self) -> None:
        self._last.clear()

    def before_step(self) -> tuple[float, float, float] | None:
        """Apply the contact forces for the coming physics step; returns their sum on the tool
        (N, world frame), or None when the tip touches no tissue."""
        total: tuple[float, float, float] | None = None
        cfg, dt = self.config, self._dt
        for key in self.bodies:
            hit = self.sim.deepest_point(self.arm.name, self.arm.tip_link, key[0], key[1])
            if hit is None:
                self._last.pop(key, None)
                continue
            depth, normal, point = hit
            last = self._last.get(key)
            last_depth, last_point = last if last is not None else (0.0, point)
            rate = (depth - last_depth) / dt
            fn = max(0.0, cfg.stiffness_N_m * depth + cfg.damping_N_s_m * rate)
            # Sliding velocity of the contact point in the tangent plane.
            v = (
                (point[0] - last_point[0]) / dt,
                (point[1] - last_point[1]) / dt,
                (point[2] - last_point[2]) / dt,
            )
            vn = v[0] * normal[0] + v[1] * normal[1] + v[2] * normal[2]
            vt = (v[0] - vn * normal[0], v[1] - vn * normal[1], v[2] - vn * normal[2])
            speed = math.sqrt(vt[0] ** 2 + vt[1] ** 2 + vt[2] ** 2)
            ft = cfg.friction * fn / max(speed, cfg.slip_speed_m_s)
            force = (
                fn * normal[0] - ft * vt[0],
                fn * normal[1] - ft * vt[1],
                fn * normal[2] - ft * vt[2],
            )
            self._last[key] = (depth, point)
            if fn > 0.0:
                self.sim.apply_force_at(self.arm.name, self.arm.tip_link, force, point)
                if key not in self._static:
                    self.sim.apply_force_at(key[0], key[1], (-force[0], -force[1], -force[2]), point)
                total = force if total is None else (total[0] + force[0], total[1] + force[1], total[2] + force[2])
        return total
