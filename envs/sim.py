"""The simulator layer: the only module in telesurg that talks to pybullet.

One ``Sim`` owns one pybullet physics client (DIRECT, headless). Robots, scenes and tasks create
and query bodies through it by name, so the rest of ``envs`` never handles pybullet ids, and a
renderer or console twin could replace it with a mirror. Everything here is in the world (patient)
frame, SI units: metres, kilograms, seconds, newtons; quaternions as (x, y, z, w).

Geometry is simulated at true scale (no internal scaling leaks or exists): the tool touches tissue
through a single 2.5 mm sphere whose contact law ``telesurg.envs.tissue`` applies explicitly.

Why one long module (~700 lines): it is the project's whole pybullet boundary (bodies, joints,
contacts, rays, cameras, visual shapes, stepping). Splitting it by concern would put pybullet calls
back into several modules, which this layer exists to prevent.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from telesurg.envs._stdio import quiet_c_output

with quiet_c_output():  # pybullet prints its build time on import
    import pybullet as pb


@dataclass(frozen=True)
class SimConfig:
    """Physics settings. ``physics_step_s`` is Bullet's fixed step (500 Hz, panda-gym's 2 ms)."""

    physics_step_s: float = 0.002
    gravity_m_s2: float = 9.81
    #: Servo tracking and contact forces measured the same at 10 iterations as at 50.
    solver_iterations: int = 10
    #: Bullet's contact breaking threshold. Keep the 2 cm default: lower values make Bullet keep
    #: several manifold points for small shapes sliding on a surface (each a full compliant spring
    #: for the shaft's contacts with tissue).
    contact_breaking_threshold_m: float = 0.02
    #: Camera renderer: "tiny" (pybullet's software TinyRenderer, always available) or "egl"
    #: (pybullet's EGL plugin: OpenGL through EGL, on a GPU or on Mesa's llvmpipe; 4-5× faster at
    #: 640×480 on the 2-core CPU). The plugin must be loaded before any body is created, so it is
    #: chosen here, when the world is made.
    renderer: str = "tiny"

    def __post_init__(self) -> None:
        if self.renderer not in ("tiny", "egl"):
            raise ValueError(f"renderer must be 'tiny' or 'egl', not {self.renderer!r}")


@dataclass(frozen=True)
class CameraSpec:
    """A pinhole camera in the world frame: eye and look-at points (m), up vector, vertical field
    of view (deg) and clip planes (m)."""

    eye_m: tuple[float, float, float]
    target_m: tuple[float, float, float]
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)
    fov_deg: float = 60.0
    near_m: float = 0.01
    far_m: float = 1.0


class Sim:
    """One headless pybullet world with a name → body-id map."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self._client: int | None = pb.connect(pb.DIRECT)
        self.bodies: dict[str, int] = {}
        self._collidables: list[tuple[int, int]] | None = None
        #: Bodies created without collision geometry (static rigid bodies outside every collision group).
        self._visual_only: set[int] = set()
        self._joint_index: dict[tuple[str, str], int] = {}
        self._link_index: dict[tuple[str, str], int] = {}
        pb.setTimeStep(self.config.physics_step_s, physicsClientId=self._client)
        pb.setGravity(0.0, 0.0, -self.config.gravity_m_s2, physicsClientId=self._client)
        pb.setPhysicsEngineParameter(
            numSolverIterations=self.config.solver_iterations,
            deterministicOverlappingPairs=1,
            contactBreakingThreshold=self.config.contact_breaking_threshold_m,
            physicsClientId=self._client,
        )
        self.time_s = 0.0
        self._egl_plugin: int | None = None
        if self.config.renderer == "egl":
            self._egl_plugin = _load_egl_plugin(self._client)

    # ------------------------------------------------------------------ lifecycle
    @property
    def client(self) -> int:
        if self._client is None:
            raise RuntimeError("the simulator has been closed")
        return self._client

    @property
    def closed(self) -> bool:
        return self._client is None

    def close(self) -> None:
        """Disconnect from pybullet. Safe to call more than once."""
        if self._client is not None:
            with contextlib.suppress(pb.error):
                pb.disconnect(physicsClientId=self._client)
            self._client = None

    def __enter__(self) -> Sim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def step(self) -> None:
        """Advance the world by one physics step."""
        pb.stepSimulation(physicsClientId=self._client)
        self.time_s += self.config.physics_step_s

    def save_state(self) -> int:
        return pb.saveState(physicsClientId=self.client)

    def restore_state(self, state_id: int) -> None:
        pb.restoreState(stateId=state_id, physicsClientId=self.client)

    # ------------------------------------------------------------------ bodies
    def _register(self, name: str, body: int) -> int:
        if name in self.bodies:
            raise ValueError(f"a body named {name!r} already exists")
        self.bodies[name] = body
        self._collidables = None
        for j in range(pb.getNumJoints(body, physicsClientId=self.client)):
            info = pb.getJointInfo(body, j, physicsClientId=self.client)
            self._joint_index[(name, info[1].decode())] = j
            self._link_index[(name, info[12].decode())] = j
        return body

    def load_urdf(
        self,
        name: str,
        path: str,
        position_m: Sequence[float],
        quat_xyzw: Sequence[float] = (0, 0, 0, 1),
        fixed_base: bool = True,
        merge_fixed_links: bool = False,
    ) -> int:
        """Load a URDF. ``merge_fixed_links`` folds links on fixed joints into their parents
        (fewer bodies for the solver); such links then have no index of their own."""
        flags = pb.URDF_USE_INERTIA_FROM_FILE | (pb.URDF_MERGE_FIXED_LINKS if merge_fixed_links else 0)
        with quiet_c_output():  # the merge prints a line per link from C
            body = pb.loadURDF(
                str(path),
                list(position_m),
                list(quat_xyzw),
                useFixedBase=fixed_base,
                flags=flags,
                physicsClientId=self.client,
            )
        return self._register(name, body)

    def create_body(
        self,
        name: str,
        shapes: Sequence[dict],
        mass_kg: float = 0.0,
        position_m: Sequence[float] = (0, 0, 0),
        quat_xyzw: Sequence[float] = (0, 0, 0, 1),
        collision: bool = True,
        rgba: Sequence[float] = (0.8, 0.8, 0.8, 1.0),
    ) -> int:
        """Create a rigid body from primitive shapes.

        Each shape is a dict with ``kind`` in {"box", "cylinder", "sphere"}, its size
        (``half_extents_m``, or ``radius_m`` and ``length_m``), and optional ``offset_m`` and
        ``quat_xyzw`` relative to the body origin, ``rgba``, and ``collision``/``visual`` flags.
        ``mass_kg=0`` makes the body static; ``collision=False`` makes it visual only.
        """
        c = self.client
        col_shapes = [s for s in shapes if collision and s.get("collision", True)]
        vis_shapes = [s for s in shapes if s.get("visual", True)]
        col = -1
        if col_shapes:
            kw = _shape_arrays(col_shapes, rgba)
            col = pb.createCollisionShapeArray(
                shapeTypes=kw["types"],
                halfExtents=kw["half_extents"],
                radii=kw["radii"],
                lengths=kw["lengths"],
                collisionFramePositions=kw["positions"],
                collisionFrameOrientations=kw["orientations"],
                physicsClientId=c,
            )
        vis = -1
        if vis_shapes:
            kw = _shape_arrays(vis_shapes, rgba)
            vis = pb.createVisualShapeArray(
                shapeTypes=kw["types"],
                halfExtents=kw["half_extents"],
                radii=kw["radii"],
                lengths=kw["lengths"],
                rgbaColors=kw["colors"],
                visualFramePositions=kw["positions"],
                visualFrameOrientations=kw["orientations"],
                physicsClientId=c,
            )
        visual_only = col < 0 and mass_kg == 0.0
        body = pb.createMultiBody(
            baseMass=mass_kg,
            baseCollisionShapeIndex=col,
            baseVisualShapeIndex=vis,
            basePosition=list(position_m),
            baseOrientation=list(quat_xyzw),
            # A static body without collision geometry still gets a collider (an empty shape) that
            # the broadphase pairs with whatever comes near: Trace's 16 path segments under the
            # tool cost a third of each physics step. As a static rigid body (maximal coordinates)
            # outside every collision group, it costs next to nothing and touches nothing, as before.
            useMaximalCoordinates=visual_only,
            physicsClientId=c,
        )
        if visual_only:
            pb.setCollisionFilterGroupMask(body, -1, 0, 0, physicsClientId=c)
            self._visual_only.add(body)
        return self._register(name, body)

    def body(self, name: str) -> int:
        try:
            return self.bodies[name]
        except KeyError:
            raise KeyError(f"no body named {name!r}; have {sorted(self.bodies)}") from None

    def joint(self, body: str, joint: str) -> int:
        return self._joint_index[(body, joint)]

    def link(self, body: str, link: str) -> int:
        return self._link_index[(body, link)]

    # ------------------------------------------------------------------ dynamics settings
    def set_contact_dynamics(
        self,
        body: str,
        link: int = -1,
        stiffness_N_m: float | None = None,
        damping_N_s_m: float | None = None,
        lateral_friction: float | None = None,
    ) -> None:
        """Make a body's contacts compliant (force = stiffness × depth + damping × depth rate)."""
        kw: dict[str, float] = {}
        if stiffness_N_m is not None:
            kw["contactStiffness"] = stiffness_N_m
            kw["contactDamping"] = damping_N_s_m if damping_N_s_m is not None else 0.0
        if lateral_friction is not None:
            kw["lateralFriction"] = lateral_friction
        pb.changeDynamics(self.body(body), link, **kw, physicsClientId=self.client)

    def allow_sleep(self, body: str, asleep_now: bool = False) -> None:
        """Let a free body fall asleep when at rest (Bullet skips it until something wakes it);
        ``asleep_now`` puts it to sleep at once (for a body placed at rest)."""
        b, c = self.body(body), self.client
        pb.changeDynamics(
            b,
            -1,
            activationState=pb.ACTIVATION_STATE_ENABLE_SLEEPING,
            physicsClientId=c,
        )
        if asleep_now:
            pb.changeDynamics(b, -1, activationState=pb.ACTIVATION_STATE_SLEEP, physicsClientId=c)

    def wake(self, body: str) -> None:
        pb.changeDynamics(
            self.body(body),
            -1,
            activationState=pb.ACTIVATION_STATE_WAKE_UP,
            physicsClientId=self.client,
        )

    def set_link_damping(self, body: str, link: int, linear: float, angular: float) -> None:
        pb.changeDynamics(
            self.body(body),
            link,
            linearDamping=linear,
            angularDamping=angular,
            physicsClientId=self.client,
        )

    def set_collision(
        self,
        body_a: str,
        body_b: str,
        enabled: bool,
        link_a: int = -1,
        link_b: int = -1,
    ) -> None:
        pb.setCollisionFilterPair(
            self.body(body_a),
            self.body(body_b),
            link_a,
            link_b,
            int(enabled),
            physicsClientId=self.client,
        )

    def num_links(self, body: str) -> int:
        return pb.getNumJoints(self.body(body), physicsClientId=self.client)

    # ------------------------------------------------------------------ joints
    def joint_states(self, body: str, joints: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Positions (rad or m) and velocities (rad/s or m/s) of ``joints``."""
        states = pb.getJointStates(self.bodies[body], joints, physicsClientId=self._client)
        return np.array([s[0] for s in states]), np.array([s[1] for s in states])

    def joint_positions(self, body: str, joints: Sequence[int]) -> list[float]:
        """Positions (rad or m) of ``joints``."""
        return [s[0] for s in pb.getJointStates(self.bodies[body], joints, physicsClientId=self._client)]

    def reset_joints(self, body: str, joints: Sequence[int], positions: Sequence[float]) -> None:
        """Teleport joints to ``positions`` at rest (used at reset, never during an episode)."""
        b, c = self.body(body), self.client
        for j, q in zip(joints, positions, strict=True):
            pb.resetJointState(b, j, float(q), 0.0, physicsClientId=c)

    def drive_joints(
        self,
        body: str,
        joints: Sequence[int],
        positions: Sequence[float],
        max_forces: Sequence[float],
        position_gains: Sequence[float],
    ) -> None:
        """Position-servo ``joints`` toward ``positions`` with bounded effort (N or N·m)."""
        n = len(joints)
        pb.setJointMotorControlArray(
            self.bodies[body],
            joints,
            pb.POSITION_CONTROL,
            targetPositions=positions,
            targetVelocities=_ZEROS[:n],
            forces=max_forces,
            positionGains=position_gains,
            velocityGains=_ONES[:n],
            physicsClientId=self._client,
        )

    # ------------------------------------------------------------------ poses
    def link_pose(self, body: str, link: int) -> tuple[np.ndarray, np.ndarray]:
        """World position (m) and quaternion of a link's URDF frame (``link=-1``: the base)."""
        if link < 0:
            return self.base_pose(body)
        s = pb.getLinkState(
            self.bodies[body],
            link,
            computeForwardKinematics=1,
            physicsClientId=self._client,
        )
        return np.array(s[4]), np.array(s[5])

    def base_pose(self, body: str) -> tuple[np.ndarray, np.ndarray]:
        pos, quat = pb.getBasePositionAndOrientation(self.bodies[body], physicsClientId=self._client)
        return np.array(pos), np.array(quat)

    def reset_base_pose(
        self,
        body: str,
        position_m: Sequence[float],
        quat_xyzw: Sequence[float] = (0, 0, 0, 1),
    ) -> None:
        b, c = self.body(body), self.client
        pb.resetBasePositionAndOrientation(b, list(position_m), list(quat_xyzw), physicsClientId=c)
        pb.resetBaseVelocity(b, [0, 0, 0], [0, 0, 0], physicsClientId=c)

    # ------------------------------------------------------------------ contacts and constraints
    def advance(
        self,
        steps: int,
        body: str,
        before_step: Callable[[], tuple[float, float, float] | None] | None = None,
    ) -> tuple[tuple[float, float, float] | None, float]:
        """Run ``steps`` physics steps, measuring the contact force on ``body`` after each.

        ``before_step``, if given, runs before every step (to apply external forces) and may return
        an extra force on ``body`` (N, world) to add to that step's reading. Returns the force
        (world frame) after the last step, or None if nothing touched ``body``, and the largest
        force magnitude (N) seen at any step.
        """
        client, b, dt = self._client, self.bodies[body], self.config.physics_step_s
        step, contacts = pb.stepSimulation, pb.getContactPoints
        last: tuple[float, float, float] | None = None
        peak = 0.0
        for _ in range(steps):
            extra = before_step() if before_step is not None else None
            step(physicsClientId=client)
            points = contacts(bodyA=b, physicsClientId=client)
            if points:
                last = _sum_contact_forces(points)
                if extra is not None:
                    last = (last[0] + extra[0], last[1] + extra[1], last[2] + extra[2])
            else:
                last = extra
            if last is not None:
                peak = max(
                    peak,
                    math.sqrt(last[0] * last[0] + last[1] * last[1] + last[2] * last[2]),
                )
        self.time_s += steps * dt
        return last, peak

    def advance_free(self, steps: int) -> None:
        """Run ``steps`` physics steps without measuring contacts (see ``may_touch``)."""
        client, dt = self._client, self.config.physics_step_s
        if steps > 1:
            # One call running ``steps`` internal steps of ``dt``: the same physics, bit for bit,
            # without paying pybullet's per-call command overhead ``steps`` times.
            pb.setPhysicsEngineParameter(fixedTimeStep=steps * dt, numSubSteps=steps, physicsClientId=client)
            pb.stepSimulation(physicsClientId=client)
            pb.setPhysicsEngineParameter(fixedTimeStep=dt, numSubSteps=0, physicsClientId=client)
        elif steps == 1:
            pb.stepSimulation(physicsClientId=client)
        self.time_s += steps * dt

    def collision_links(self, body: str) -> list[int]:
        """Links of ``body`` (-1 for the base) that have collision geometry."""
        b, c = self.body(body), self.client
        if b in self._visual_only:
            return []
        return [
            link
            for link in range(-1, pb.getNumJoints(b, physicsClientId=c))
            if pb.getCollisionShapeData(b, link, physicsClientId=c)
        ]

    def may_touch(self, body: str, links: Sequence[int], margin_m: float) -> bool:
        """Whether the bounding box of ``links`` of ``body``, grown by ``margin_m``, overlaps the
        bounding box of any other body's collision geometry. False proves that nothing can touch
        those links while they move less than ``margin_m``."""
        b, c = self.bodies[body], self._client
        lo = [math.inf, math.inf, math.inf]
        hi = [-math.inf, -math.inf, -math.inf]
        for link in links:
            a_min, a_max = pb.getAABB(b, link, physicsClientId=c)
            for k in range(3):
                lo[k] = min(lo[k], a_min[k] - margin_m)
                hi[k] = max(hi[k], a_max[k] + margin_m)
        if self._collidables is None:
            self._collidables = [
                (ob, link)
                for ob in self.bodies.values()
                if ob not in self._visual_only
                for link in range(-1, pb.getNumJoints(ob, physicsClientId=c))
                if pb.getCollisionShapeData(ob, link, physicsClientId=c)
            ]
        for ob, link in self._collidables:
            if ob == b:
                continue
            o_min, o_max = pb.getAABB(ob, link, physicsClientId=c)
            if all(o_min[k] <= hi[k] and o_max[k] >= lo[k] for k in range(3)):
                return True
        return False

    def deepest_point(
        self, body_a: str, link_a: int, body_b: str, link_b: int
    ) -> tuple[float, tuple[float, float, float], tuple[float, float, float]] | None:
        """Deepest interpenetration of ``body_a``'s link with ``body_b``'s link, ignoring collision
        filters: (depth in m, unit normal from B toward A, world point on A's surface), or None
        when they do not touch."""
        points = pb.getClosestPoints(
            self.bodies[body_a],
            self.bodies[body_b],
            0.0,
            link_a,
            link_b,
            physicsClientId=self._client,
        )
        if not points:
            return None
        deepest = min(points, key=lambda c: c[8])
        if deepest[8] >= 0.0:
            return None
        return -deepest[8], deepest[7], deepest[5]

    def is_static(self, body: str, link: int = -1) -> bool:
        """Whether ``body``'s ``link`` never moves: the massless base of a body (forces on it do nothing)."""
        mass = pb.getDynamicsInfo(self.bodies[body], link, physicsClientId=self._client)[0]
        return link < 0 and mass == 0.0

    def apply_force_at(self, body: str, link: int, force_N: Sequence[float], point_m: Sequence[float]) -> None:
        """Apply ``force_N`` (world frame) at world point ``point_m`` for the next physics step
        (ignored for static bodies)."""
        pb.applyExternalForce(
            self.bodies[body],
            link,
            force_N,
            point_m,
            pb.WORLD_FRAME,
            physicsClientId=self._client,
        )

    def add_weld(
        self,
        parent: str,
        parent_link: int,
        child: str,
        child_link: int,
        max_force_N: float,
    ) -> int:
        """Weld ``child`` to ``parent`` in their current relative pose, never pulling harder than
        ``max_force_N``; returns the constraint id."""
        c = self.client
        p_pos, p_quat = self.link_pose(parent, parent_link)
        c_pos, c_quat = self.link_pose(child, child_link)
        # Express the child frame in the parent link frame.
        inv_pos, inv_quat = pb.invertTransform(p_pos.tolist(), p_quat.tolist())
        rel_pos, rel_quat = pb.multiplyTransforms(inv_pos, inv_quat, c_pos.tolist(), c_quat.tolist())
        cid = pb.createConstraint(
            self.body(parent),
            parent_link,
            self.body(child),
            child_link,
            pb.JOINT_FIXED,
            [0, 0, 0],
            rel_pos,
            [0, 0, 0],
            rel_quat,
            [0, 0, 0, 1],
            physicsClientId=c,
        )
        pb.changeConstraint(cid, maxForce=max_force_N, physicsClientId=c)
        return cid

    def link_point_velocity(
        self, body: str, link: int, point_local_m: Sequence[float]
    ) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """World position (m) and velocity (m/s) of a point fixed in a link's URDF frame.

        Plain float math: this runs at every physics step while tissue is held, where numpy's
        per-call overhead on 3-vectors would dominate; pass ``point_local_m`` as plain floats."""
        b, c = self.bodies[body], self._client
        if link < 0:
            com, quat = pb.getBasePositionAndOrientation(b, physicsClientId=c)
            lin, ang = pb.getBaseVelocity(b, physicsClientId=c)
            frame = com
        else:
            s = pb.getLinkState(b, link, computeLinkVelocity=1, computeForwardKinematics=1, physicsClientId=c)
            com, frame, quat, lin, ang = s[0], s[4], s[5], s[6], s[7]
        x, y, z, w = quat
        px, py, pz = point_local_m
        # Rotate the local point by the quaternion (v' = v + 2w(u×v) + 2u×(u×v), u = (x, y, z)).
        tx, ty, tz = 2 * (y * pz - z * py), 2 * (z * px - x * pz), 2 * (x * py - y * px)
        rx = px + w * tx + (y * tz - z * ty)
        ry = py + w * ty + (z * tx - x * tz)
        rz = pz + w * tz + (x * ty - y * tx)
        point = (frame[0] + rx, frame[1] + ry, frame[2] + rz)
        # Velocity of the point: v_com + ω × (point - com).
        dx, dy, dz = point[0] - com[0], point[1] - com[1], point[2] - com[2]
        vel = (
            lin[0] + ang[1] * dz - ang[2] * dy,
            lin[1] + ang[2] * dx - ang[0] * dz,
            lin[2] + ang[0] * dy - ang[1] * dx,
        )
        return point, vel

    def remove_constraint(self, constraint_id: int) -> None:
        pb.removeConstraint(constraint_id, physicsClientId=self.client)

    # ------------------------------------------------------------------ scene state (mirroring)
    def visual_primitives(self) -> list[tuple[str, np.ndarray, tuple[float, float, float, float], str, int]]:
        """Every visible visual shape of the world, posed now, as a renderer draws it: (``"box"``,
        ``"sphere"`` or ``"cylinder"``, its 4×4 model matrix in the world frame scaling a unit
        primitive — box of side 1 m, sphere of radius 1 m, cylinder of radius 1 m and length 1 m
        along z — its RGBA colour, the name of its body and its link index, −1 for the base).
        Capsules become a cylinder and two
        spheres, planes a thin 10 m box; meshes are not drawn (this project's scenes have none)."""
        c = self.client
        names = {body: name for name, body in self.bodies.items()}
        out: list[tuple[str, np.ndarray, tuple[float, float, float, float], str, int]] = []
        for i in range(pb.getNumBodies(physicsClientId=c)):
            body = pb.getBodyUniqueId(i, physicsClientId=c)
            name = names.get(body, "")
            links: dict[int, np.ndarray] = {}
            for shape in pb.getVisualShapeData(body, physicsClientId=c):
                link, kind, dims, local_pos, local_quat = shape[1], shape[2], shape[3], shape[5], shape[6]
                rgba = (float(shape[7][0]), float(shape[7][1]), float(shape[7][2]), float(shape[7][3]))
                if rgba[3] <= 0.0:
                    continue
                if link not in links:
                    if link < 0:
                        pos, quat = pb.getBasePositionAndOrientation(body, physicsClientId=c)
                    else:
                        state = pb.getLinkState(body, link, computeForwardKinematics=True, physicsClientId=c)
                        pos, quat = state[4], state[5]
                    links[link] = _pose_matrix(pos, quat)
                frame = links[link] @ _pose_matrix(local_pos, local_quat)
                if kind == pb.GEOM_BOX:
                    out.append(("box", frame @ np.diag([*dims, 1.0]), rgba, name, link))
                elif kind == pb.GEOM_SPHERE:
                    r = dims[0]
                    out.append(("sphere", frame @ np.diag([r, r, r, 1.0]), rgba, name, link))
                elif kind in (pb.GEOM_CYLINDER, pb.GEOM_CAPSULE):
                    length, r = dims[0], dims[1]
                    out.append(("cylinder", frame @ np.diag([r, r, length, 1.0]), rgba, name, link))
                    if kind == pb.GEOM_CAPSULE:
                        for z in (-length / 2, length / 2):
                            end = frame.copy()
                            end[:3, 3] = frame[:3, :3] @ np.array([0.0, 0.0, z]) + frame[:3, 3]
                            out.append(("sphere", end @ np.diag([r, r, r, 1.0]), rgba, name, link))
                elif kind == pb.GEOM_PLANE:
                    out.append(("box", frame @ np.diag([10.0, 10.0, 1e-4, 1.0]), rgba, name, link))
        return out

    def snapshot(self) -> dict[str, dict[str, list[float]]]:
        """The whole scene as poses and joint values: for every body, its base position (m) and
        quaternion and its joint positions (rad or m). Enough to mirror the scene elsewhere."""
        c = self.client
        out: dict[str, dict[str, list[float]]] = {}
        for name, b in self.bodies.items():
            pos, quat = pb.getBasePositionAndOrientation(b, physicsClientId=c)
            n = pb.getNumJoints(b, physicsClientId=c)
            joints = [s[0] for s in pb.getJointStates(b, list(range(n)), physicsClientId=c)] if n else []
            out[name] = {"position_m": list(pos), "quat_xyzw": list(quat), "joint_positions": joints}
        return out

    def apply_snapshot(self, snapshot: dict[str, dict[str, list[float]]]) -> None:
        """Pose every named body as in ``snapshot`` (from ``snapshot()`` of a world with the same bodies)."""
        c = self.client
        for name, state in snapshot.items():
            b = self.body(name)
            pb.resetBasePositionAndOrientation(b, state["position_m"], state["quat_xyzw"], physicsClientId=c)
            for j, q in enumerate(state["joint_positions"]):
                pb.resetJointState(b, j, q, 0.0, physicsClientId=c)

    # ------------------------------------------------------------------ rendering
    def render(self, camera: CameraSpec, width: int, height: int) -> np.ndarray:
        """An RGB image (height, width, 3) uint8 from ``camera`` (pybullet's TinyRenderer, no shadows)."""
        c = self.client
        view = pb.computeViewMatrix(
            list(camera.eye_m),
            list(camera.target_m),
            list(camera.up),
            physicsClientId=c,
        )
        proj = pb.computeProjectionMatrixFOV(
            camera.fov_deg,
            width / height,
            camera.near_m,
            camera.far_m,
            physicsClientId=c,
        )
        _, _, rgba, _, _ = pb.getCameraImage(
            width,
            height,
            viewMatrix=view,
            projectionMatrix=proj,
            renderer=pb.ER_TINY_RENDERER if self._egl_plugin is None else pb.ER_BULLET_HARDWARE_OPENGL,
            shadow=0,
            flags=pb.ER_NO_SEGMENTATION_MASK,
            physicsClientId=c,
        )
        return np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[:, :, :3].copy()


def _load_egl_plugin(client: int) -> int:
    """Load pybullet's EGL renderer plugin into ``client``; a clear error where EGL is missing."""
    import importlib.util

    spec = importlib.util.find_spec("eglRenderer")
    if spec is None or spec.origin is None:
        raise RuntimeError("pybullet's eglRenderer plugin is not installed; use renderer='tiny'")
    with quiet_c_output():
        plugin = pb.loadPlugin(spec.origin, "_eglRendererPlugin", physicsClientId=client)
    if plugin < 0:
        raise RuntimeError("pybullet's EGL renderer plugin failed to load (no EGL/OpenGL here?); use renderer='tiny'")
    return plugin


_ZEROS = [0.0] * 64
_ONES = [1.0] * 64
_GEOM = {"box": pb.GEOM_BOX, "cylinder": pb.GEOM_CYLINDER, "sphere": pb.GEOM_SPHERE}


def _shape_arrays(shapes: Sequence[dict], rgba: Sequence[float]) -> dict[str, list]:
    out: dict[str, list] = {
        k: []
        for k in (
            "types",
            "half_extents",
            "radii",
            "lengths",
            "positions",
            "orientations",
            "colors",
        )
    }
    for s in shapes:
        if s["kind"] not in _GEOM:
            raise ValueError(f"unknown shape kind {s['kind']!r}; use one of {sorted(_GEOM)}")
        out["types"].append(_GEOM[s["kind"]])
        out["half_extents"].append(list(s.get("half_extents_m", (0.0, 0.0, 0.0))))
        out["radii"].append(float(s.get("radius_m", 0.0)))
        out["lengths"].append(float(s.get("length_m", 0.0)))
        out["positions"].append(list(s.get("offset_m", (0.0, 0.0, 0.0))))
        out["orientations"].append(list(s.get("quat_xyzw", (0.0, 0.0, 0.0, 1.0))))
        out["colors"].append(list(s.get("rgba", rgba)))
    return out


def _sum_contact_forces(points: Sequence[tuple]) -> tuple[float, float, float]:
    """Total force (N, world) from pybullet contact points on body A: normal plus friction."""
    fx = fy = fz = 0.0
    for c in points:
        fn, nb, f1, d1, f2, d2 = c[9], c[7], c[10], c[11], c[12], c[13]
        fx += fn * nb[0] + f1 * d1[0] + f2 * d2[0]
        fy += fn * nb[1] + f1 * d1[1] + f2 * d2[1]
        fz += fn * nb[2] + f1 * d1[2] + f2 * d2[2]
    return fx, fy, fz


def _pose_matrix(pos: Any, quat: Any) -> np.ndarray:
    """A 4×4 homogeneous transform from a position and an (x, y, z, w) quaternion."""
    m = np.eye(4)
    m[:3, :3] = np.asarray(pb.getMatrixFromQuaternion(quat)).reshape(3, 3)
    m[:3, 3] = pos
    return m
