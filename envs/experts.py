"""Scripted (non-learned) experts, one per task.

Each expert reads only public observation fields, by name through the env's layouts (what
telemetry will carry: tool-tip position, jaw, contact force, object poses, the goal) and outputs an
absolute tool-tip target (m, base frame) and a jaw opening in [0, 1]: the same kind of command a
surgeon console sends. ``action()`` turns that into the env's relative action. They prove each task
is solvable, and later serve as demonstration sources and scripted surgeons.

Force control (Palpate, Trace) is a proportional loop on the measured force using the documented
tissue stiffness as a prior (``stiffness_prior_N_m``): a surgeon's notion of how soft tissue is.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from telesurg.envs.layout import ObsLayout


@dataclass
class Command:
    """An absolute command: tool-tip target (m, base frame) and jaw opening (0 closed, 1 open)."""

    target_m: np.ndarray
    jaw_opening: float


def target_to_action(
    tip_m: np.ndarray,
    command: Command,
    max_step_m: float,
    max_speed_fraction: float = 1.0,
) -> np.ndarray:
    """The env action that moves the tip toward ``command.target_m`` along a straight line, at most
    ``max_speed_fraction × max_step_m`` per step."""
    d = np.asarray(command.target_m, dtype=float) - np.asarray(tip_m, dtype=float)
    limit = max_step_m * max_speed_fraction
    n = float(np.linalg.norm(d))
    if n > limit:
        d *= limit / n
    a = np.empty(4, dtype=np.float32)
    a[:3] = np.clip(d / max_step_m, -1.0, 1.0)
    a[3] = 2.0 * float(np.clip(command.jaw_opening, 0.0, 1.0)) - 1.0
    return a


def discrete_choice(
    table: list[tuple[np.ndarray, float | None]],
    tip_m: np.ndarray,
    command: Command,
    max_step_m: float,
    max_speed_fraction: float,
    jaw_command: float,
) -> int:
    """The table entry an expert restricted to ``DiscreteActions`` takes toward ``command``.

    The jaw first: if the command's opening (open ≥ 0.5) differs from ``jaw_command`` (the
    wrapper's held jaw command, -1 closed / 1 open), the jaw action. Otherwise one step along the
    axis with the largest remaining error: the largest table step along that axis that neither
    overshoots by more than half its difference to the next finer step (the finest: half itself) nor
    exceeds ``max_speed_fraction × max_step_m``, or the no-op when every step would overshoot.
    Unlike mapping the expert's continuous action to the nearest entry (which turns a slow step into
    a no-op and a diagonal into a short one-axis step), this moves at the table's own pace, so the
    expert keeps its timing. It stops within 0.5 mm per axis (0.87 mm overall): phase checks
    tighter than that never pass (``policies.dataset.experts.DISCRETE_TASKS``)."""
    want_open = command.jaw_opening >= 0.5
    for i, (_, jaw) in enumerate(table):
        if jaw is not None and (jaw > 0) == want_open and (jaw_command > 0) != want_open:
            return i
    error = (np.asarray(command.target_m, dtype=float) - np.asarray(tip_m, dtype=float)) / max_step_m
    axis = int(np.argmax(np.abs(error)))
    sign = 1.0 if error[axis] >= 0 else -1.0
    sizes = sorted(
        (float(abs(step[axis])), i)
        for i, (step, jaw) in enumerate(table)
        if jaw is None and step[axis] * sign > 0 and np.count_nonzero(step) == 1
    )
    best = 0
    for k, (size, i) in enumerate(sizes):
        finer = sizes[k - 1][0] if k > 0 else 0.0
        if size <= max_speed_fraction + 1e-9 and size - abs(error[axis]) <= (size - finer) / 2:
            best = i
    return best


class Expert(ABC):
    """Base class: ``reset()`` at each episode start, ``act(obs) -> Command``, ``action(obs)``."""

    stiffness_prior_N_m = 300.0

    def __init__(self, obs_layout: ObsLayout, goal_layout: ObsLayout, max_step_m: float) -> None:
        self.obs_layout = obs_layout
        self.goal_layout = goal_layout
        self.max_step_m = max_step_m
        self.speed_fraction = 1.0
        self.reset()

    def reset(self) -> None:
        self.phase = 0
        self.timer = 0

    def field(self, obs: dict, name: str) -> np.ndarray:
        return self.obs_layout.get(obs["observation"], name).astype(np.float64)

    def goal(self, obs: dict, name: str, key: str = "desired_goal") -> np.ndarray:
        return self.goal_layout.get(obs[key], name).astype(np.float64)

    @abstractmethod
    def act(self, obs: dict) -> Command:
        """The absolute command for this observation."""

    def action(self, obs: dict) -> np.ndarray:
        command = self.act(obs)
        return target_to_action(self.field(obs, "tip_pos_m"), command, self.max_step_m, self.speed_fraction)

    def discrete_action(self, obs: dict, table: list[tuple[np.ndarray, float | None]], jaw_command: float) -> int:
        """The ``DiscreteActions`` entry (index into ``table``) that moves toward this observation's
        command: see ``discrete_choice``."""
        command = self.act(obs)
        return discrete_choice(
            table, self.field(obs, "tip_pos_m"), command, self.max_step_m, self.speed_fraction, jaw_command
        )

    def _force_z(
        self,
        tip: np.ndarray,
        force: float,
        target_force: float,
        surface_z: float,
        max_dz: float,
    ) -> float:
        """Height for the tip that moves the contact force toward ``target_force``."""
        if force < 0.05:
            # Not touching yet: descend toward the surface, bounded per step.
            return max(tip[2] - max_dz, surface_z - 0.02)
        dz = 0.7 * (target_force - force) / self.stiffness_prior_N_m
        return tip[2] - float(np.clip(dz, -max_dz, max_dz))

    def _grasp(
        self,
        tip: np.ndarray,
        point: np.ndarray,
        jaw: float,
        grasped: bool,
        hover_m: float,
        grip_m: float,
        grip_tolerance_m: float = 0.0005,
    ) -> Command | None:
        """Phases 0–2 of a grasp: hover ``hover_m`` above ``point`` with the jaws open, descend to
        ``grip_m`` above it, close and wait for the grasp (retrying from the top if it fails).
        Returns the command while grasping, or None once the object is held (phase 3)."""
        self.speed_fraction = 1.0
        if self.phase == 0:
            target = point + np.array([0.0, 0.0, hover_m])
            if np.linalg.norm(tip - target) < 0.0007 and jaw > 0.9:
                self.phase = 1
            return Command(target, 1.0)
        if self.phase == 1:
            target = point + np.array([0.0, 0.0, grip_m])
            self.speed_fraction = 0.5
            if np.linalg.norm(tip - target) < grip_tolerance_m:
                self.phase, self.timer = 2, 0
            return Command(target, 1.0)
        if self.phase == 2:
            self.timer += 1
            if grasped:
                self.phase = 3
            elif self.timer > 20:
                self.phase = 0
            return Command(tip, 0.0)
        return None


class ReachExpert(Expert):
    def act(self, obs: dict) -> Command:
        return Command(self.goal(obs, "tip_pos_m"), 0.0)


class PalpateExpert(Expert):
    """Hover over the spot, descend, then regulate the force to the band's centre and hold."""

    def act(self, obs: dict) -> Command:
        tip = self.field(obs, "tip_pos_m")
        force = float(np.linalg.norm(self.field(obs, "contact_force_N")))
        spot = self.goal(obs, "tip_pos_m")
        target_force = float(self.goal(obs, "force_N")[0])
        xy_err = np.linalg.norm(tip[:2] - spot[:2])
        if self.phase == 0:
            self.speed_fraction = 1.0
            # 0.8 mm: within reach of a discrete expert, whose 1 mm steps leave up to 0.5 mm per axis.
            if xy_err < 0.0008 and tip[2] < spot[2] + 0.012:
                self.phase = 1
            return Command(np.array([spot[0], spot[1], spot[2] + 0.01]), 0.0)
        self.speed_fraction = 0.5
        z = self._force_z(tip, force, target_force, spot[2], 0.001)
        return Command(np.array([spot[0], spot[1], z]), 0.0)


class RetractExpert(Expert):
    """Open over the tab, descend, close on it, then swing the tab up along its hinge arc."""

    def act(self, obs: dict) -> Command:
        tip = self.field(obs, "tip_pos_m")
        tab = self.field(obs, "tab_pos_m")
        hinge = self.field(obs, "hinge_pos_m")
        grasped = self.field(obs, "grasped")[0] > 0.5
        jaw = float(self.field(obs, "jaw_opening")[0])
        target_z = float(self.goal(obs, "tab_height_m")[0])
        # The tip sphere rests on the tab 2.5 mm above it; 2.2 mm presses in slightly.
        command = self._grasp(tip, tab, jaw, grasped, hover_m=0.01, grip_m=0.0022)
        if command is not None:
            return command
        self.speed_fraction = 1.0
        if not grasped:  # lost it: start over
            self.phase = 0
            return Command(tip, 1.0)
        radius_vec = tab - hinge
        r = float(np.linalg.norm(radius_vec))
        horiz = radius_vec.copy()
        horiz[2] = 0.0
        u = horiz / max(float(np.linalg.norm(horiz)), 1e-9)
        angle = math.atan2(radius_vec[2], float(np.linalg.norm(radius_vec[:2])))
        wanted = math.asin(float(np.clip((target_z - hinge[2]) / r, -1.0, 1.0)))
        step = 0.6 * self.max_step_m / r
        angle += float(np.clip(wanted - angle, -step, step))
        new_tab = hinge + r * (math.cos(angle) * u + np.array([0.0, 0.0, math.sin(angle)]))
        return Command(tip + (new_tab - tab), 0.0)


class TransferExpert(Expert):
    """Grasp the block's wall, lift it clear of the pegs, carry it over the target peg, lower, release."""

    clearance_m = 0.032
    #: Close the jaws once the tip is this close to the grip point, and open them once the block is
    #: this close to its drop height (both well inside the 4 mm grasp radius / the peg's lead-in):
    #: a decision made at sub-millimetre distances cannot be told apart from the observation, and
    #: a policy cloned from it hovers with the jaws half shut.
    grip_tolerance_m = 0.002
    release_tolerance_m = 0.001

    def act(self, obs: dict) -> Command:
        tip = self.field(obs, "tip_pos_m")
        block = self.field(obs, "block_pos_m")
        grasp = self.field(obs, "grasp_point_m")
        grasped = self.field(obs, "grasped")[0] > 0.5
        jaw = float(self.field(obs, "jaw_opening")[0])
        goal = self.goal(obs, "block_pos_m")
        command = self._grasp(
            tip, grasp, jaw, grasped, hover_m=0.015, grip_m=0.0005, grip_tolerance_m=self.grip_tolerance_m
        )
        if command is not None:
            return command
        self.speed_fraction = 1.0
        if self.phase in (3, 4, 5) and not grasped:
            self.phase = 0
            return Command(tip, 1.0)
        carry_z = goal[2] + self.clearance_m
        if self.phase == 3:  # lift straight up
            target = tip + np.array([0.0, 0.0, carry_z - block[2]])
            if block[2] > carry_z - 0.001:
                self.phase = 4
            return Command(target, 0.0)
        if self.phase == 4:  # carry over the target peg
            delta = np.array([goal[0] - block[0], goal[1] - block[1], carry_z - block[2]])
            if np.linalg.norm(delta[:2]) < 0.0004:
                self.phase = 5
            return Command(tip + delta, 0.0)
        if self.phase == 5:  # lower onto the peg
            self.speed_fraction = 0.5
            delta = np.array([goal[0] - block[0], goal[1] - block[1], goal[2] + 0.002 - block[2]])
            if abs(delta[2]) < self.release_tolerance_m:
                self.phase, self.timer = 6, 0
            return Command(tip + delta, 0.0)
        # Release and back away upward.
        self.timer += 1
        if self.timer < 8:
            return Command(tip, 1.0)
        return Command(tip + np.array([0.0, 0.0, 0.01]), 1.0)


class TraceExpert(Expert):
    """Touch down at the path, then follow the lookahead point while regulating the force."""

    target_force_N = 1.5

    def act(self, obs: dict) -> Command:
        tip = self.field(obs, "tip_pos_m")
        force = float(np.linalg.norm(self.field(obs, "contact_force_N")))
        look = self.field(obs, "lookahead_m")
        if self.phase == 0:
            self.speed_fraction = 1.0
            above = look + np.array([0.0, 0.0, 0.006])
            if np.linalg.norm(tip - above) < 0.0007:
                self.phase = 1
            return Command(above, 0.0)
        self.speed_fraction = 0.5
        z = self._force_z(tip, force, self.target_force_N, look[2], 0.001)
        xy = look[:2] if force > 0.3 else tip[:2]
        return Command(np.array([xy[0], xy[1], z]), 0.0)


EXPERTS: dict[str, type[Expert]] = {
    "Reach": ReachExpert,
    "Palpate": PalpateExpert,
    "Retract": RetractExpert,
    "Transfer": TransferExpert,
    "Trace": TraceExpert,
}


def make_expert(env: gym.Env) -> Expert:
    """The scripted expert for ``env``'s task (works through any wrappers)."""
    base = env.unwrapped
    return EXPERTS[base.task.name](base.obs_layout, base.goal_layout, base.max_step_m)


def run_episode(
    env: gym.Env, expert: Expert, seed: int | None = None, stop_on_success: bool = True
) -> dict[str, float]:
    """Run the expert for one episode; returns success, steps and the largest contact force (N)."""
    obs, info = env.reset(seed=seed)
    expert.reset()
    steps, max_force, success = 0, 0.0, False
    while True:
        obs, _, terminated, truncated, info = env.step(expert.action(obs))
        steps += 1
        max_force = max(max_force, float(info["contact_force_max_N"]))
        success = bool(info["is_success"])
        if (success and stop_on_success) or terminated or truncated:
            break
    return {
        "success": success,
        "steps": steps,
        "max_force_N": max_force,
        "force_limit_exceeded": bool(info["force_limit_exceeded"]),
    }
