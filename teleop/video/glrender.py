"""A lean OpenGL renderer of a pybullet world's visual shapes (moderngl on EGL: a GPU, or Mesa's
llvmpipe on a CPU), for the video renderer process.

pybullet's EGL plugin costs 17–25 ms per 640×480 frame on the 2-core CPU even alone (lighting and
shading of its own, a depth and segmentation pass, copies), and ~50 ms when the control loop, the
encoder and the decoder share the cores: too slow for 30 fps. The scene is made of primitives
(boxes, cylinders, spheres, capsules: the arm's URDF has no meshes), so this renderer draws
pybullet's own visual shapes — geometry, frames and colours, posed from the world every frame,
through ``telesurg.envs.sim.Sim.visual_primitives`` (envs stays the only code that calls pybullet) — with
one small shader (Lambert and a little specular under a
light at the endoscope, as an endoscope's own light) and reads the colour buffer back. Colours are
re-read every frame (tasks recolour markers); translucent shapes are drawn last, blended; shapes
with alpha 0 are hidden. The camera is the same pinhole as ``telesurg.envs.sim.Sim.render`` (eye, target,
up, vertical field of view, clip planes).
"""

from __future__ import annotations

import math

import numpy as np

from telesurg.envs.sim import CameraSpec, Sim

_VERTEX = """
#version 330
uniform mat4 mvp;
uniform mat4 model;
in vec3 in_pos;
in vec3 in_normal;
out vec3 v_world;
out vec3 v_normal;
void main() {
    vec4 world = model * vec4(in_pos, 1.0);
    v_world = world.xyz;
    v_normal = mat3(model) * in_normal;
    gl_Position = mvp * vec4(in_pos, 1.0);
}
"""

_FRAGMENT = """
#version 330
uniform vec4 colour;
uniform vec3 eye;
in vec3 v_world;
in vec3 v_normal;
out vec4 f_colour;
void main() {
    vec3 n = normalize(v_normal);
    vec3 to_eye = normalize(eye - v_world);
    if (dot(n, to_eye) < 0.0) n = -n;
    float diffuse = max(dot(n, to_eye), 0.0);
    float specular = pow(max(dot(reflect(-to_eye, n), to_eye), 0.0), 24.0);
    vec3 rgb = colour.rgb * (0.35 + 0.65 * diffuse) + 0.25 * specular;
    f_colour = vec4(rgb, colour.a);
}
"""

#: The view outside the tissue (RGB 0–1): dark, as an endoscope sees the body cavity.
BACKGROUND = (0.08, 0.05, 0.05)


def _box() -> np.ndarray:
    """Unit cube [-0.5, 0.5]³: (36, 6) positions and normals."""
    out = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            n = np.zeros(3)
            n[axis] = sign
            u, v = np.eye(3)[(axis + 1) % 3], np.eye(3)[(axis + 2) % 3]
            c = n * 0.5
            quad = [c - u / 2 - v / 2, c + u / 2 - v / 2, c + u / 2 + v / 2, c - u / 2 + v / 2]
            for i in (0, 1, 2, 0, 2, 3):
                out.append([*quad[i], *n])
    return np.array(out, dtype="f4")


def _cylinder(segments: int = 24) -> np.ndarray:
    """Radius 1, length 1 along z (z in [-0.5, 0.5]), with caps."""
    out = []
    for k in range(segments):
        a0, a1 = 2 * math.pi * k / segments, 2 * math.pi * (k + 1) / segments
        p0, p1 = np.array([math.cos(a0), math.sin(a0)]), np.array([math.cos(a1), math.sin(a1)])
        for (x, y), z in (((p0), -0.5), ((p1), -0.5), ((p1), 0.5), ((p0), -0.5), ((p1), 0.5), ((p0), 0.5)):
            out.append([x, y, z, x, y, 0.0])
        for z, nz in ((0.5, 1.0), (-0.5, -1.0)):
            for x, y in ((0.0, 0.0), tuple(p0), tuple(p1)):
                out.append([x, y, z, 0.0, 0.0, nz])
    return np.array(out, dtype="f4")


def _sphere(rings: int = 12, segments: int = 18) -> np.ndarray:
    """Radius 1."""

    def point(i: int, j: int) -> list[float]:
        th, ph = math.pi * i / rings, 2 * math.pi * j / segments
        p = [math.sin(th) * math.cos(ph), math.sin(th) * math.sin(ph), math.cos(th)]
        return p + p

    out = []
    for i in range(rings):
        for j in range(segments):
            a, b, c, d = point(i, j), point(i + 1, j), point(i + 1, j + 1), point(i, j + 1)
            out += [a, b, c, a, c, d]
    return np.array(out, dtype="f4")


def _look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    f = target - eye
    f /= np.linalg.norm(f)
    s = np.cross(f, up)
    s /= np.linalg.norm(s)
    u = np.cross(s, f)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = s, u, -f
    m[:3, 3] = -m[:3, :3] @ eye
    return m


def _perspective(fov_deg: float, aspect: float, near: float, far: float) -> np.ndarray:
    f = 1.0 / math.tan(math.radians(fov_deg) / 2)
    m = np.zeros((4, 4))
    m[0, 0], m[1, 1] = f / aspect, f
    m[2, 2], m[2, 3] = (far + near) / (near - far), 2 * far * near / (near - far)
    m[3, 2] = -1.0
    return m


class GLSceneRenderer:
    """Renders every visual shape of the simulated world ``sim`` (``telesurg.envs.sim.Sim.visual_primitives``)
    from ``camera`` (world frame)."""

    def __init__(self, sim: Sim, camera: CameraSpec, width: int, height: int) -> None:
        import moderngl

        self.sim, self.camera = sim, camera
        self.width, self.height = width, height
        self.ctx = moderngl.create_standalone_context(backend="egl")
        self.prog = self.ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        self._meshes = {}
        for kind, data in (("box", _box()), ("cylinder", _cylinder()), ("sphere", _sphere())):
            vbo = self.ctx.buffer(data.tobytes())
            self._meshes[kind] = self.ctx.vertex_array(self.prog, [(vbo, "3f 3f", "in_pos", "in_normal")])
        self.fbo = self.ctx.simple_framebuffer((width, height))
        eye = np.asarray(camera.eye_m, dtype=float)
        view = _look_at(eye, np.asarray(camera.target_m, dtype=float), np.asarray(camera.up, dtype=float))
        proj = _perspective(camera.fov_deg, width / height, camera.near_m, camera.far_m)
        self._view_proj = proj @ view
        self.prog["eye"].value = tuple(float(v) for v in eye)

    def render(self) -> np.ndarray:
        """An RGB image (height, width, 3) uint8."""
        import moderngl

        shapes = self.sim.visual_primitives()
        ctx = self.ctx
        self.fbo.use()
        self.fbo.clear(*BACKGROUND, 1.0)
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.disable(moderngl.BLEND)
        ctx.depth_mask = True
        opaque = [s for s in shapes if s[2][3] >= 1.0]
        clear = [s for s in shapes if s[2][3] < 1.0]
        for group, blend in ((opaque, False), (clear, True)):
            if blend:
                ctx.enable(moderngl.BLEND)
                ctx.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
                ctx.depth_mask = False
            for kind, model, rgba in group:
                self.prog["model"].write(model.T.astype("f4").tobytes())
                self.prog["mvp"].write((self._view_proj @ model).T.astype("f4").tobytes())
                self.prog["colour"].value = rgba
                self._meshes[kind].render()
        ctx.depth_mask = True
        data = self.fbo.read(components=3, alignment=1)
        return np.frombuffer(data, dtype=np.uint8).reshape(self.height, self.width, 3)[::-1]

    def close(self) -> None:
        self.ctx.release()
