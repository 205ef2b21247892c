"""Retract: grasp a hinged tissue flap by its tab and lift the tab to a target height."""

from __future__ import annotations

import numpy as np

from telesurg.envs.geometry import quat_to_matrix, yaw_quat
from telesurg.envs.grasp import Graspable
from telesurg.envs.kinematics import ASSETS_DIR
from telesurg.envs.layout import Field
from telesurg.envs.tasks.base import StepResult, Task

FLAP_URDF = ASSETS_DIR / "scene" / "flap.urdf"


class Retract(Task):
    """A rigid flap (38 × 30 × 3 mm) hinged to the tissue lies flat; its free edge carries a tab.
    Success: the tab within ``success_tolerance_m`` of the target height.

    The hinge resists opening with a constant torque (``resistance_N_m``), standing in for the
    tension of the tissue being retracted, so lifting the flap loads the tool by about
    ``resistance_N_m / 0.037 m`` ≈ 0.8 N. achieved_goal = (tab height z [m, base frame]);
    desired_goal = (target height z [m, base frame]).
    """

    name = "Retract"
    max_episode_steps = 125
    #: The flap lies left of the tool's home: the endoscope looks between them.
    view_m = (-0.015, 0.012, 0.0)
    uses_jaw = True
    obs_fields = (
        Field("tab_pos_m", 3, "m", "grasp point on the flap's free edge"),
        Field("hinge_pos_m", 3, "m", "point of the hinge line below the tab"),
        Field("flap_angle_rad", 1, "rad", "flap opening angle (0 lying flat)"),
        Field("grasped", 1, "1", "1 while the jaws hold the flap"),
    )
    goal_fields = (Field("tab_height_m", 1, "m", "tab height (achieved) / target height (desired)"),)

    success_tolerance_m = 0.004
    target_height_m = (0.02, 0.03)
    resistance_N_m = 0.03
    tab_local_m = np.array([0.0365, 0.0, 0.003])

    def build(self) -> None:
        sim = self.sim
        sim.load_urdf("flap", str(FLAP_URDF), (0.0, 0.0, 0.0), fixed_base=True)
        self.hinge = sim.joint("flap", "hinge")
        self.flap_link = sim.link("flap", "flap")
        sim.set_collision("flap", self.scene.TISSUE, False, link_a=self.flap_link)
        tissue = self.scene.config.tissue
        sim.set_contact_dynamics(
            "flap",
            self.flap_link,
            tissue.stiffness_N_m,
            tissue.damping_N_s_m,
            tissue.friction,
        )
        self.scene.tissue_bodies.append(("flap", self.flap_link))
        self.grasper.register(Graspable("flap", self.flap_link, self.tab_local_m, is_tissue=True))
        self.target_z_m = 0.0
        self._hinge_world = np.zeros(3)

    def reset(self, rng: np.random.Generator) -> None:
        pos = np.array(
            [
                rng.uniform(-0.045, -0.03),
                rng.uniform(-0.02, 0.02),
                self.scene.surface_z_m,
            ]
        )
        yaw = rng.uniform(-0.4, 0.4)
        self.sim.reset_base_pose("flap", pos, yaw_quat(yaw))
        self.sim.reset_joints("flap", [self.hinge], [0.0])
        # A saturated servo toward 0 rad: a constant restoring torque, like tissue tension.
        self.sim.drive_joints("flap", [self.hinge], [0.0], [self.resistance_N_m], [0.1])
        self._hinge_world = pos.copy()
        height = rng.uniform(*self.target_height_m)
        self.target_z_m = float(self.to_base(np.array([0.0, 0.0, self.scene.surface_z_m + height]))[2])

    def _tab_world(self) -> np.ndarray:
        pos, quat = self.sim.link_pose("flap", self.flap_link)
        return pos + quat_to_matrix(quat) @ self.tab_local_m

    def observation(self) -> dict[str, np.ndarray | float]:
        angle, _ = self.sim.joint_states("flap", [self.hinge])
        held = self.grasper.held is not None and self.grasper.held.body == "flap"
        return {
            "tab_pos_m": self.to_base(self._tab_world()),
            "hinge_pos_m": self.to_base(self._hinge_world),
            "flap_angle_rad": float(angle[0]),
            "grasped": float(held),
        }

    def achieved_goal(self, step: StepResult) -> np.ndarray:
        return np.array([self.to_base(self._tab_world())[2]])

    def desired_goal(self) -> np.ndarray:
        return np.array([self.target_z_m])

    def info(self) -> dict[str, object]:
        return {"grasped": self.grasper.held is not None}

    def is_success(self, achieved: np.ndarray, desired: np.ndarray) -> np.ndarray:
        return np.abs(np.asarray(achieved)[..., 0] - np.asarray(desired)[..., 0]) <= self.success_tolerance_m

    def dense_reward(self, achieved: np.ndarray, desired: np.ndarray) -> np.ndarray:
        """Minus the height error in centimetres."""
        return -np.abs(np.asarray(achieved)[..., 0] - np.asarray(desired)[..., 0]) / 0.01
