"""A lean OpenGL renderer of a pybullet world's visual shapes (moderngl on EGL: a GPU, or Mesa's
llvmpipe on a CPU), for the video renderer process.

pybullet's EGL plugin costs 17–25 ms per 640×480 frame on the 2-core CPU even alone (lighting and
shading of its own, a depth and segmentation pass, copies), and ~50 ms when the control loop, the
encoder and the decoder share the cores: too slow for 30 fps. The scene is made of primitives
(boxes, cylinders, spheres, capsules: the arm's URDF has no meshes), so this renderer draws
pybullet's own visual shapes — geometry, frames and colours, posed from the world every frame,
through ``telesurg.envs.sim.Sim.visual_primitives`` (envs stays the only code that calls pybullet) — with
one small shader and reads the colour buffer back. What the surgeon needs to judge the task: the
tissue carries a texture (mottled surface and vessels, ``tissue_texture``), lit by the endoscope's
own light at the lens (falling off with distance, with a wet highlight), and a key light above the
patient throws shadows (a shadow map), the depth cue for the tool above the tissue. Colours are
re-read every frame (tasks recolour markers); translucent shapes are drawn last, blended; shapes
with alpha 0 are hidden. The camera is the same pinhole as ``telesurg.envs.sim.Sim.render`` (eye, target,
up, vertical field of view, clip planes). 640×480 on the 2-core CPU, alone, two Mesa threads:
6.5–8 ms a frame (5 ms without texture and shadows; 18 ms if texture and shadow were computed
over the whole image each frame — see ``GLSceneRenderer``). pybullet's own renderers (``egl``,
``tiny``) stay flat-coloured.
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

#: Lighting: the endoscope's own light at the lens (diffuse falling off with distance as a point
#: light's does, and a wet specular highlight), and a key light above the patient that casts the
#: shadows (a shadow map), a depth cue: the tool's shadow meets its tip when the tip touches.
_FRAGMENT = """
#version 330
uniform vec4 colour;
uniform vec3 eye;
uniform float textured;
uniform float texture_scale;
uniform float reference_distance;
uniform sampler2D tissue;
uniform sampler2DShadow shadow_map;
uniform float shadowed;
uniform mat4 light_vp;
uniform vec3 to_light;
in vec3 v_world;
in vec3 v_normal;
out vec4 f_colour;
void main() {
    vec3 n = normalize(v_normal);
    vec3 to_eye = normalize(eye - v_world);
    if (dot(n, to_eye) < 0.0) n = -n;
    vec3 base = colour.rgb;
    float shine = 0.25;
    if (textured > 0.5) {
        base *= 2.0 * texture(tissue, v_world.xy * texture_scale).rgb;
        shine = 0.35;
    }
    float d = length(eye - v_world) / reference_distance;
    float fall = clamp(1.0 / (d * d), 0.6, 1.2);
    float diffuse = max(dot(n, to_eye), 0.0) * fall;
    float specular = pow(max(dot(reflect(-to_eye, n), to_eye), 0.0), 32.0) * fall;
    float lit = 1.0;
    if (shadowed > 0.5) {
        vec4 ls = light_vp * vec4(v_world + n * 0.0004, 1.0);
        vec3 sc = ls.xyz / ls.w * 0.5 + 0.5;
        if (all(greaterThan(sc, vec3(0.0))) && all(lessThan(sc, vec3(1.0))))
            lit = texture(shadow_map, vec3(sc.xy, sc.z - 0.0015));
    }
    float key = max(dot(n, to_light), 0.0);
    float light = 0.22 + 0.58 * diffuse + 0.32 * key * lit - 0.18 * (1.0 - lit);
    vec3 rgb = base * light + shine * specular * lit;
    f_colour = vec4(rgb, colour.a);
}
"""

#: The shadow pass: depth from the key light of everything below the body wall (what is outside the
#: patient, the arm's upper links, casts no shadow inside).
_DEPTH_VERTEX = """
#version 330
uniform mat4 mvp;
uniform mat4 model;
in vec3 in_pos;
out float v_height;
void main() {
    v_height = (model * vec4(in_pos, 1.0)).z;
    gl_Position = mvp * vec4(in_pos, 1.0);
}
"""

_DEPTH_FRAGMENT = """
#version 330
uniform float wall_z;
in float v_height;
void main() { if (v_height > wall_z) discard; }
"""

#: The key light: where it shines from (world frame, m; above the patient, a little toward the
#: endoscope so a shadow falls just below what casts it in the image), the square it covers around
#: the origin (half side, m) and the shadow map's size (texels): 0.6 mm per texel, filtered 2×2.
KEY_LIGHT_M = (0.05, -0.06, 0.40)
KEY_LIGHT_HALF_SIDE_M = 0.16
SHADOW_MAP_TEXELS = 512
#: Tissue texture: size (texels, square, tiles seamlessly) and how many repeats per metre.
TISSUE_TEXELS = 512
TISSUE_REPEATS_PER_M = 4.0


def tissue_texture(size: int = TISSUE_TEXELS, seed: int = 7) -> np.ndarray:
    """A tileable tissue texture (size, size, 3) uint8: a colour multiplier stored halved (the
    shader doubles it, so mid-grey leaves a body's colour as it is) with a mottled surface and a
    network of blood vessels, from band-limited noise (filtered in Fourier space, so it wraps)."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(size)
    k = np.hypot(*np.meshgrid(f, f, indexing="ij"))
    k[0, 0] = 1.0

    def noise(beta: float, low_cut: float = 0.0) -> np.ndarray:
        spectrum = np.fft.fft2(rng.standard_normal((size, size))) / k**beta
        spectrum[k < low_cut] = 0.0
        spectrum[0, 0] = 0.0
        field = np.real(np.fft.ifft2(spectrum))
        return field / field.std()

    mottle = noise(1.2)
    # Vessels: the zero lines of smooth noise are smooth closed curves; two scales, the finer fainter.
    vessels = 0.8 * np.exp(-((noise(2.2) / 0.035) ** 2)) + 0.4 * np.exp(-((noise(1.8, 0.01) / 0.03) ** 2))
    vessels = np.clip(vessels, 0.0, 1.0)[..., None]
    tint = np.array([0.80, 0.45, 0.55])  # vessels: darker, toward purple-red
    multiplier = (1.0 + 0.09 * mottle[..., None]) * (1.0 - vessels * (1.0 - tint))
    return np.clip(multiplier / 2.0 * 255.0, 0, 255).astype(np.uint8)


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


def _orthographic(half_side: float, near: float, far: float) -> np.ndarray:
    m = np.eye(4)
    m[0, 0] = m[1, 1] = 1.0 / half_side
    m[2, 2], m[2, 3] = -2.0 / (far - near), -(far + near) / (far - near)
    return m


def _perspective(fov_deg: float, aspect: float, near: float, far: float) -> np.ndarray:
    f = 1.0 / math.tan(math.radians(fov_deg) / 2)
    m = np.zeros((4, 4))
    m[0, 0], m[1, 1] = f / aspect, f
    m[2, 2], m[2, 3] = (far + near) / (near - far), 2 * far * near / (near - far)
    m[3, 2] = -1.0
    return m


#: Corners of each unit primitive's bounding box (see ``Sim.visual_primitives``) and its 12 edges.
_UNIT_BOUNDS = {
    "box": np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)]),
    "cylinder": np.array([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-0.5, 0.5)]),
    "sphere": np.array([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)]),
}
_EDGES = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]


def _below(corners: np.ndarray, wall_z: float) -> np.ndarray:
    """The part of a box (its 8 corners) below the plane z = ``wall_z``: the corners below it and
    where the box's edges cross it (the convex hull of these holds that part)."""
    z = corners[:, 2]
    points = [corners[z <= wall_z]]
    for a, b in _EDGES:
        if (z[a] - wall_z) * (z[b] - wall_z) < 0:
            t = (wall_z - z[a]) / (z[b] - z[a])
            points.append((corners[a] + t * (corners[b] - corners[a]))[None])
    return np.concatenate(points)


class GLSceneRenderer:
    """Renders every visual shape of the simulated world ``sim`` (``telesurg.envs.sim.Sim.visual_primitives``)
    from ``camera`` (world frame); the bodies named in ``textured`` (the patient's tissue) get the
    tissue texture. What is outside the patient casts no shadow: the (body, link) pairs in
    ``outside`` and whatever lies above ``wall_z_m`` (world z of the body wall: the trocar's).

    The bodies named in ``static`` never move (the tissue bed): they are drawn once, lit and
    textured, into a colour and depth image that starts every frame; each frame redraws them only
    inside the screen rectangle where a shadow can fall (the casters and their footprint on the
    tissue), and draws every other body in full. On llvmpipe the per-pixel work of texture and
    shadow over the whole image would otherwise triple the frame time."""

    def __init__(
        self,
        sim: Sim,
        camera: CameraSpec,
        width: int,
        height: int,
        textured: tuple[str, ...] = (),
        outside: tuple[tuple[str, int], ...] = (),
        wall_z_m: float = 0.11,
        static: tuple[str, ...] = (),
    ) -> None:
        import moderngl

        self.sim, self.camera = sim, camera
        self.width, self.height = width, height
        self.textured = frozenset(textured)
        self.outside = frozenset(outside)
        self.static = frozenset(static)
        self.wall_z_m = wall_z_m
        self.ctx = moderngl.create_standalone_context(backend="egl")
        self.prog = self.ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        self.depth_prog = self.ctx.program(vertex_shader=_DEPTH_VERTEX, fragment_shader=_DEPTH_FRAGMENT)
        self._meshes, self._depth_meshes = {}, {}
        for kind, data in (("box", _box()), ("cylinder", _cylinder()), ("sphere", _sphere())):
            vbo = self.ctx.buffer(data.tobytes())
            self._meshes[kind] = self.ctx.vertex_array(self.prog, [(vbo, "3f 3f", "in_pos", "in_normal")])
            self._depth_meshes[kind] = self.ctx.vertex_array(self.depth_prog, [(vbo, "3f 12x", "in_pos")])
        self.fbo = self.ctx.simple_framebuffer((width, height))
        self.static_fbo = self.ctx.simple_framebuffer((width, height))
        eye = np.asarray(camera.eye_m, dtype=float)
        view = _look_at(eye, np.asarray(camera.target_m, dtype=float), np.asarray(camera.up, dtype=float))
        proj = _perspective(camera.fov_deg, width / height, camera.near_m, camera.far_m)
        self._view_proj = proj @ view
        self.prog["eye"].value = tuple(float(v) for v in eye)
        self.prog["reference_distance"].value = float(np.linalg.norm(np.asarray(camera.target_m, dtype=float) - eye))
        # Shadows: depth from the key light (orthographic: a distant lamp), compared in the main pass.
        self.shadow = self.ctx.depth_texture((SHADOW_MAP_TEXELS, SHADOW_MAP_TEXELS))
        self.shadow.compare_func = "<="
        self.shadow.filter = (moderngl.LINEAR, moderngl.LINEAR)  # 2×2 percentage-closer filtering
        self.shadow_fbo = self.ctx.framebuffer(depth_attachment=self.shadow)
        light = np.asarray(KEY_LIGHT_M, dtype=float)
        distance = float(np.linalg.norm(light))
        self._to_light = light / distance
        light_view = _look_at(light, np.zeros(3), np.array([0.0, 1.0, 0.0]))
        self._light_vp = _orthographic(KEY_LIGHT_HALF_SIDE_M, distance - 0.25, distance + 0.1) @ light_view
        self.prog["light_vp"].write(self._light_vp.T.astype("f4").tobytes())
        self.prog["to_light"].value = tuple(float(v) for v in self._to_light)
        self.tissue = self.ctx.texture((TISSUE_TEXELS, TISSUE_TEXELS), 3, tissue_texture().tobytes())
        self.tissue.repeat_x = self.tissue.repeat_y = True
        self.tissue.build_mipmaps()
        self.tissue.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
        self.prog["texture_scale"].value = TISSUE_REPEATS_PER_M
        self.prog["tissue"].value = 0
        self.prog["shadow_map"].value = 1
        self.depth_prog["wall_z"].value = wall_z_m
        self._static_drawn = False

    def _draw(self, shapes: list, lit: bool) -> None:
        """Draw ``shapes`` with the scene shader; ``lit``: ignore the shadow map (all in light)."""
        self.prog["shadowed"].value = 0.0 if lit else 1.0
        for kind, model, rgba, body, _link in shapes:
            self.prog["model"].write(model.T.astype("f4").tobytes())
            self.prog["mvp"].write((self._view_proj @ model).T.astype("f4").tobytes())
            self.prog["colour"].value = rgba
            self.prog["textured"].value = 1.0 if body in self.textured else 0.0
            self._meshes[kind].render()

    def _shadow_rect(self, casters: list) -> tuple[int, int, int, int] | None:
        """The screen rectangle (x, y, w, h; GL's origin, bottom left) holding every shadow the
        ``casters`` can throw: their parts below the body wall and where the light's rays through
        those hit the tissue surface (z = 0); None when nothing casts. (One rectangle: cutting the
        shaft into pieces with a rectangle each drew less area but cost more, 11 ms against 6.)"""
        points = []
        for kind, model, *_ in casters:
            corners = (model[:3, :3] @ _UNIT_BOUNDS[kind].T).T + model[:3, 3]
            below = _below(corners, self.wall_z_m)
            if len(below):
                t = (below[:, 2] + 0.002) / self._to_light[2]  # to just below the surface
                points += [below, below - t[:, None] * self._to_light]
        if not points:
            return None
        world = np.concatenate(points)
        clip = self._view_proj @ np.concatenate([world, np.ones((len(world), 1))], axis=1).T
        if np.any(clip[3] <= 1e-6):  # behind the lens: redraw everything
            return (0, 0, self.width, self.height)
        x = (clip[0] / clip[3] + 1) / 2 * self.width
        y = (clip[1] / clip[3] + 1) / 2 * self.height
        x0, y0 = max(int(x.min()) - 2, 0), max(int(y.min()) - 2, 0)
        x1, y1 = min(int(x.max()) + 3, self.width), min(int(y.max()) + 3, self.height)
        if x1 <= x0 or y1 <= y0:
            return None
        return (x0, y0, x1 - x0, y1 - y0)

    def render(self) -> np.ndarray:
        """An RGB image (height, width, 3) uint8."""
        # GL calls go to the current context: with one renderer per task in a process, each must
        # make its own current (without it, one task's frame drew into another's context).
        with self.ctx:
            return self._render()

    def _render(self) -> np.ndarray:
        import moderngl

        shapes = self.sim.visual_primitives()
        ctx = self.ctx
        static = [s for s in shapes if s[3] in self.static]
        moving = [s for s in shapes if s[3] not in self.static]
        opaque = [s for s in moving if s[2][3] >= 1.0]
        clear = [s for s in moving if s[2][3] < 1.0]
        casters = [s for s in opaque if (s[3], s[4]) not in self.outside]
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.disable(moderngl.BLEND)
        ctx.depth_mask = True
        ctx.depth_func = "<="
        self.tissue.use(location=0)
        if not self._static_drawn:
            self.static_fbo.use()
            self.static_fbo.clear(*BACKGROUND, 1.0)
            self.shadow.use(location=1)
            self._draw(static, lit=True)
            self._static_drawn = True
        self.shadow_fbo.use()
        self.shadow_fbo.clear(depth=1.0)
        for kind, model, *_ in casters:
            self.depth_prog["mvp"].write((self._light_vp @ model).T.astype("f4").tobytes())
            self.depth_prog["model"].write(model.T.astype("f4").tobytes())
            self._depth_meshes[kind].render()
        self.fbo.use()  # (the scissor test, GL state, also limits the copy: it is off here)
        ctx.copy_framebuffer(self.fbo, self.static_fbo)
        self.shadow.use(location=1)
        rect = self._shadow_rect(casters)
        if rect is not None and static:
            self.fbo.scissor = rect
            self.fbo.use()
            self._draw(static, lit=False)
            self.fbo.scissor = None
            self.fbo.use()
        self._draw(opaque, lit=False)
        if clear:
            ctx.enable(moderngl.BLEND)
            ctx.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
            ctx.depth_mask = False
            self._draw(clear, lit=False)
        ctx.depth_mask = True
        data = self.fbo.read(components=3, alignment=1)
        return np.frombuffer(data, dtype=np.uint8).reshape(self.height, self.width, 3)[::-1]

    def close(self) -> None:
        self.ctx.release()
