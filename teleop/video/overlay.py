"""What the surgeon sees on top of the video: contact-force bar, supervisor state, command and video
latency, why the console is holding, the local twin's ghost (``project``, ``draw_ghost``). The
``--save-video`` file is written by ``telesurg.policies.video.Mp4Writer`` (timed)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_STATE_COLOURS = {"ENGAGED": (60, 200, 60), "HOLD": (0, 200, 230), "IDLE": (200, 200, 200), "ESTOP": (40, 40, 230)}


def draw_hud(image: np.ndarray, hud: dict[str, Any], video_latency_s: float) -> np.ndarray:
    """Draw the overlays on ``image`` (BGR, modified in place and returned). ``hud`` keys (all
    optional): ``state``, ``force_N``, ``cmd_latency_s``, ``hold_reason``, ``force_limits_N`` (warn,
    stop; from the frame's metadata, the robot scene's own; default ``ForceLimits()``)."""
    import cv2

    from telesurg.envs.safety import ForceLimits

    default = ForceLimits()
    warn_N, stop_N = hud.get("force_limits_N") or (default.warn_N, default.hard_N)

    h, w = image.shape[:2]
    scale = max(0.35, w / 1280)
    state = str(hud.get("state", "—"))
    force = float(hud.get("force_N", 0.0))
    cmd = hud.get("cmd_latency_s")
    colour = _STATE_COLOURS.get(state, (200, 200, 200))
    cv2.rectangle(image, (0, 0), (w, int(34 * scale * 2)), (0, 0, 0), -1)
    cv2.putText(image, state, (8, int(24 * scale * 2)), cv2.FONT_HERSHEY_SIMPLEX, scale * 1.2, colour, 2)
    lat = f"cmd {cmd * 1e3:5.1f} ms" if cmd is not None and math.isfinite(cmd) else "cmd  --  ms"
    vid = f"video {video_latency_s * 1e3:5.0f} ms" if math.isfinite(video_latency_s) else "video  --  ms"
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(image, f"{lat}  {vid}", (int(w * 0.3), int(24 * scale * 2)), font, scale, (230, 230, 230), 1)
    # Force bar on the right edge, full at 1.25 × the stop limit: green, amber from the warn limit,
    # red from the stop limit (as the pages draw it).
    bar_h = int(h * 0.6)
    x0, y0 = w - int(28 * scale * 2), int(h * 0.2)
    frac = min(max(force / (1.25 * stop_N), 0.0), 1.0)
    fill = (60, 200, 60) if force < warn_N else (0, 190, 240) if force < stop_N else (40, 40, 230)
    cv2.rectangle(image, (x0, y0), (x0 + int(16 * scale * 2), y0 + bar_h), (80, 80, 80), 1)
    cv2.rectangle(image, (x0, y0 + bar_h - int(bar_h * frac)), (x0 + int(16 * scale * 2), y0 + bar_h), fill, -1)
    cv2.putText(image, f"{force:.1f} N", (x0 - int(20 * scale * 2), y0 + bar_h + int(18 * scale * 2)),
                cv2.FONT_HERSHEY_SIMPLEX, scale * 0.9, (230, 230, 230), 1)  # fmt: skip
    reason = hud.get("hold_reason")
    if reason:
        cv2.rectangle(image, (0, h - int(34 * scale * 2)), (w, h), (0, 0, 160), -1)
        cv2.putText(image, str(reason)[:80], (8, h - int(10 * scale * 2)), font, scale, (255, 255, 255), 1)
    return image


def project(points_m: np.ndarray, camera: Any, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (n × 2, x right, y down) of base-frame points (n × 3, m) in a ``width`` × ``height``
    image of ``camera`` (``protocol.Camera``: pose looking along its +z, pinhole intrinsics for its
    own width × height, scaled to this image), and which points lie in front of the near plane."""
    from telesurg.envs.geometry import quat_to_matrix

    rot = quat_to_matrix(camera.pose.quat_xyzw)
    cam = (np.asarray(points_m, dtype=float) - np.asarray(camera.pose.pos_m, dtype=float)) @ rot
    z = cam[:, 2]
    front = z > camera.near_m
    zs = np.where(front, z, 1.0)
    sx, sy = width / camera.width, height / camera.height
    u = (camera.fx * cam[:, 0] / zs + camera.cx) * sx
    v = (camera.fy * cam[:, 1] / zs + camera.cy) * sy
    return np.stack([u, v], axis=1), front


GHOST_BGR = (255, 200, 0)


def draw_ghost(image: np.ndarray, skeleton_m: np.ndarray, camera: Any) -> np.ndarray:
    """Draw the local twin's skeleton (``PsmKinematics.skeleton`` points, base frame) on ``image``
    (BGR, in place) as a translucent ghost: the shaft and wrist as lines, the tip as a ring."""
    import cv2

    h, w = image.shape[:2]
    px, front = project(skeleton_m, camera, w, h)
    layer = image.copy()
    thick = max(2, w // 160)
    for i in range(len(px) - 1):
        if front[i] and front[i + 1]:
            a, b = px[i], px[i + 1]
            cv2.line(layer, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), GHOST_BGR, thick, cv2.LINE_AA)
    if front[-1]:
        cv2.circle(layer, (int(px[-1][0]), int(px[-1][1])), 2 * thick, GHOST_BGR, thick, cv2.LINE_AA)
    cv2.addWeighted(layer, 0.6, image, 0.4, 0.0, dst=image)
    return image
