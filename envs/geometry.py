"""Rigid transforms and rotations (pure numpy; no simulator).

Conventions used throughout telesurg: positions in metres, quaternions as (x, y, z, w) (the
order pybullet and ROS use), rotation matrices act on column vectors, and a ``Frame`` maps
coordinates expressed in it into its parent frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Vec3 = np.ndarray


def quat_to_matrix(q_xyzw: np.ndarray) -> np.ndarray:
    """Rotation matrix (3×3) of a unit quaternion given as (x, y, z, w)."""
    x, y, z, w = (float(v) for v in q_xyzw)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w), with w >= 0, of a 3×3 rotation matrix."""
    m = np.asarray(r, dtype=float)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = np.array(
            [
                (m[2, 1] - m[1, 2]) / s,
                (m[0, 2] - m[2, 0]) / s,
                (m[1, 0] - m[0, 1]) / s,
                0.25 * s,
            ]
        )
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = np.array(
            [
                0.25 * s,
                (m[0, 1] + m[1, 0]) / s,
                (m[0, 2] + m[2, 0]) / s,
                (m[2, 1] - m[1, 2]) / s,
            ]
        )
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = np.array(
            [
                (m[0, 1] + m[1, 0]) / s,
                0.25 * s,
                (m[1, 2] + m[2, 1]) / s,
                (m[0, 2] - m[2, 0]) / s,
            ]
        )
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = np.array(
            [
                (m[0, 2] + m[2, 0]) / s,
                (m[1, 2] + m[2, 1]) / s,
                0.25 * s,
                (m[1, 0] - m[0, 1]) / s,
            ]
        )
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def rot_x(a: float) -> np.ndarray:
    """Rotation by ``a`` radians about +x."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(a: float) -> np.ndarray:
    """Rotation by ``a`` radians about +y."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(a: float) -> np.ndarray:
    """Rotation by ``a`` radians about +z."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def yaw_quat(yaw_rad: float) -> np.ndarray:
    """Quaternion (x, y, z, w) of a rotation by ``yaw_rad`` about +z."""
    return np.array([0.0, 0.0, np.sin(yaw_rad / 2), np.cos(yaw_rad / 2)])


def point_line_distance(point: Vec3, origin: Vec3, direction: Vec3) -> float:
    """Distance (m) from ``point`` to the infinite line through ``origin`` along ``direction``."""
    d = np.asarray(direction, dtype=float)
    d = d / np.linalg.norm(d)
    v = np.asarray(point, dtype=float) - np.asarray(origin, dtype=float)
    return float(np.linalg.norm(v - np.dot(v, d) * d))


@dataclass(frozen=True)
class Frame:
    """A rigid frame: ``position_m`` and rotation ``rotation`` of this frame in its parent.

    ``to_parent(p)`` maps a point given in this frame into the parent; ``from_parent`` inverts it.
    """

    position_m: np.ndarray
    rotation: np.ndarray

    def to_parent(self, point: np.ndarray) -> np.ndarray:
        return self.rotation @ np.asarray(point, dtype=float) + self.position_m

    def from_parent(self, point: np.ndarray) -> np.ndarray:
        return self.rotation.T @ (np.asarray(point, dtype=float) - self.position_m)

    def vector_from_parent(self, v: np.ndarray) -> np.ndarray:
        return self.rotation.T @ np.asarray(v, dtype=float)

    def rotation_from_parent(self, r: np.ndarray) -> np.ndarray:
        return self.rotation.T @ r
