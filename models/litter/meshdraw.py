"""Drawing for the mesh evaluation generator (models/litter/meshgen.py): a ground-plane camera, small
3-D meshes, a numpy z-buffer rasteriser, and spills simulated as a 2-D fluid on a noisy ground.

Evaluation only: nothing drawn here is ever used for training. Pure numpy (plus OpenCV for blurs and
the ground-to-image warp); no files, no video.

Everything drawn comes back as a *layer* ``(x0, y0, mult, add)`` over a pixel window of the frame, the
frame's pixels there becoming ``frame * mult + add`` (RGB, 0..1): an opaque object has ``mult = 1 - alpha``
and ``add = alpha * colour``; a wet patch darkens (``mult < 1``) and reflects the sky (``add``).

>>> cam = Camera(f=500.0, cx=320.0, cy=180.0, height_m=6.0, tilt=0.3)
>>> x, z = cam.to_ground(np.array([320.0]), np.array([300.0]))
>>> np.round(cam.project(np.array([[x[0], 0.0, z[0]]]))[:, :2], 6).tolist()
[[320.0, 300.0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
SUPERSAMPLE = 3  # meshes are drawn this many times finer, then averaged down (antialiasing)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera ``height_m`` over flat ground, looking ``tilt`` radians below the horizontal.

    World: x right, y up, z forward along the ground; the ground is y = 0 and the camera sits at
    (0, height_m, 0). Pixel units are the output frame's."""
    f: float
    cx: float
    cy: float
    height_m: float
    tilt: float

    def project(self, points: Floats) -> Floats:
        """(N, 3) world points to (N, 3) rows of pixel u, v and depth along the view axis."""
        x, y, z = points[:, 0], points[:, 1], points[:, 2]
        s, c = np.sin(self.tilt), np.cos(self.tilt)
        zc = (self.height_m - y) * s + z * c
        yc = (self.height_m - y) * c - z * s
        return np.stack([self.cx + self.f * x / zc, self.cy + self.f * yc / zc, zc], axis=1)

    def to_ground(self, u: Floats, v: Floats) -> tuple[Floats, Floats]:
        """Pixels to the ground point (x, z) they show; rows above the horizon have none (nan)."""
        xn, yn = (u - self.cx) / self.f, (v - self.cy) / self.f
        s, c = np.sin(self.tilt), np.cos(self.tilt)
        down = yn * c + s
        scale = np.where(down > 1e-6, self.height_m / np.maximum(down, 1e-6), np.nan)
        return scale * xn, scale * (c - yn * s)

    def ground_homography(self, x0: float, z0: float, cell_m: float) -> Floats:
        """3x3 map from a ground grid's (column, row) -- column along x from ``x0``, row along z from
        ``z0``, ``cell_m`` metres a cell, cell centres at +0.5 -- to frame pixels."""
        grid = np.array([[0.0, 0.0], [100.0, 0.0], [100.0, 100.0], [0.0, 100.0]])
        world = np.stack([x0 + grid[:, 0] * cell_m, np.zeros(4), z0 + grid[:, 1] * cell_m], axis=1)
        img = self.project(world)[:, :2]
        return cv2.getPerspectiveTransform((grid - 0.5).astype(np.float32), img.astype(np.float32))


@dataclass
class Mesh:
    """Triangles with a colour, gloss and flat/smooth shading per face."""
    verts: Floats  # (N, 3)
    faces: npt.NDArray[np.int64]  # (M, 3)
    albedo: Floats  # (M, 3) RGB 0..1
    gloss: Floats  # (M,) specular strength
    smooth: npt.NDArray[np.bool_]  # (M,) interpolate vertex normals (else the face's own)

    @staticmethod
    def join(meshes: list["Mesh"]) -> "Mesh":
        offsets = np.cumsum([0] + [len(m.verts) for m in meshes[:-1]])
        return Mesh(np.concatenate([m.verts for m in meshes]),
                    np.concatenate([m.faces + o for m, o in zip(meshes, offsets)]),
                    np.concatenate([m.albedo for m in meshes]), np.concatenate([m.gloss for m in meshes]),
                    np.concatenate([m.smooth for m in meshes]))

    def moved(self, yaw: float, offset: tuple[float, float, float], scale: float = 1.0) -> "Mesh":
        c, s = np.cos(yaw), np.sin(yaw)
        rot = np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])
        return Mesh(self.verts * scale @ rot.T + np.array(offset), self.faces, self.albedo, self.gloss, self.smooth)


def _painted(verts: Floats, faces: npt.ArrayLike, colour: npt.ArrayLike, gloss: float, smooth: bool) -> Mesh:
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    return Mesh(np.asarray(verts, dtype=float), faces, np.tile(np.asarray(colour, float), (len(faces), 1)),
                np.full(len(faces), gloss), np.full(len(faces), smooth))


@lru_cache(maxsize=4)
def icosphere(subdivisions: int) -> tuple[Floats, npt.NDArray[np.int64]]:
    """A unit sphere of triangles: 20 * 4**subdivisions faces."""
    t = (1 + 5 ** 0.5) / 2
    verts = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
             (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
             (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
             (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = [np.array(v, float) / np.linalg.norm(v) for v in verts]
    for _ in range(subdivisions):
        middle: dict[tuple[int, int], int] = {}

        def mid(a: int, b: int) -> int:
            key = (min(a, b), max(a, b))
            if key not in middle:
                m = verts[a] + verts[b]
                verts.append(m / np.linalg.norm(m))
                middle[key] = len(verts) - 1
            return middle[key]
        new = []
        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return np.array(verts), np.array(faces, dtype=np.int64)


def bag(rng: np.random.Generator, width_m: float, colour: npt.ArrayLike) -> Mesh:
    """A crumpled, tied rubbish bag resting on the ground, ``width_m`` across."""
    verts, faces = icosphere(3)
    bumps = np.zeros(len(verts))
    for freq, amp in ((2.0, 0.12), (4.0, 0.06), (9.0, 0.025)):  # lumps of contents, then creases
        for _ in range(4):
            axis = rng.normal(size=3)
            bumps += amp * np.sin(freq * verts @ (axis / np.linalg.norm(axis)) + rng.uniform(0, 2 * np.pi))
    v = verts * (1 + bumps)[:, None]
    top = np.clip((v[:, 1] - 0.55) / 0.45, 0, 1)  # the gathered neck and knot
    v[:, 0] *= 1 - 0.75 * top
    v[:, 2] *= 1 - 0.75 * top
    v[:, 1] += 0.45 * top ** 2
    v *= np.array([1.0, rng.uniform(0.55, 0.8), rng.uniform(0.7, 1.0)])
    v[:, 1] = np.maximum(v[:, 1], v[:, 1].min() + 0.12 * (v[:, 1].max() - v[:, 1].min()))  # slumped base
    v[:, 1] -= v[:, 1].min()
    v *= width_m / (v[:, 0].max() - v[:, 0].min())
    return _painted(v, faces, colour, gloss=0.45, smooth=True)


def cuboid(lo: npt.ArrayLike, hi: npt.ArrayLike, colour: npt.ArrayLike, gloss: float = 0.05,
           open_top: bool = False) -> Mesh:
    (x0, y0, z0), (x1, y1, z1) = lo, hi
    v = np.array([[x0, y0, z0], [x1, y0, z0], [x1, y1, z0], [x0, y1, z0],
                  [x0, y0, z1], [x1, y0, z1], [x1, y1, z1], [x0, y1, z1]], float)
    quads = [(0, 1, 2, 3), (5, 4, 7, 6), (4, 0, 3, 7), (1, 5, 6, 2), (4, 5, 1, 0)] + ([] if open_top else [(3, 2, 6, 7)])
    faces = [t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))]
    return _painted(v, faces, colour, gloss, smooth=False)


def carton(rng: np.random.Generator, size_m: float) -> Mesh:
    """A cardboard box, closed with a strip of tape or open with its flaps folded out."""
    w, d, h = size_m * rng.uniform(0.7, 1.0), size_m * rng.uniform(0.5, 0.9), size_m * rng.uniform(0.45, 0.8)
    brown = np.array([0.62, 0.46, 0.3]) * rng.uniform(0.8, 1.15)
    opened = rng.random() < 0.5
    parts = [cuboid((-w / 2, 0, -d / 2), (w / 2, h, d / 2), brown, open_top=opened)]
    if not opened:
        tape = np.array([0.75, 0.66, 0.5]) if rng.random() < 0.6 else np.array([0.85, 0.85, 0.82])
        parts.append(cuboid((-w / 2 - 0.003, h, -0.05 * d), (w / 2 + 0.003, h + 0.004, 0.05 * d), tape, gloss=0.3))
    else:
        parts.append(cuboid((-w / 2, 0.01, -d / 2), (w / 2, 0.02, d / 2), brown * 0.45))  # the dark inside
        for side, hinge_len, flap in ((1, w, d / 2), (-1, w, d / 2)):  # flaps on the long edges
            angle = rng.uniform(1.8, 2.7)  # folded out and down from upright
            zc = side * d / 2
            tip = np.array([0.0, h + flap * np.cos(angle), zc + side * flap * np.sin(angle)])
            v = np.array([[-hinge_len / 2, h, zc], [hinge_len / 2, h, zc],
                          [hinge_len / 2, tip[1], tip[2]], [-hinge_len / 2, tip[1], tip[2]]])
            parts.append(_painted(v, [(0, 1, 2), (0, 2, 3)], brown * 0.95, 0.05, smooth=False))
    return Mesh.join(parts)


def cylinder(radius: float, length: float, colour: npt.ArrayLike, gloss: float, sides: int = 12,
             neck: float = 0.0) -> Mesh:
    """Along x from 0 to ``length``, lying on the ground; ``neck``: a bottle's tapered end this long."""
    ring = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    xs = [0.0, length - neck] + ([length - neck * 0.4, length] if neck else [length])
    radii = [radius, radius] + ([radius * 0.35, radius * 0.3] if neck else [radius])
    v = np.array([[x, radius + r * np.sin(a), r * np.cos(a)] for x, r in zip(xs, radii) for a in ring])
    faces = []
    for k in range(len(xs) - 1):
        for j in range(sides):
            a, b = k * sides + j, k * sides + (j + 1) % sides
            faces += [(a, b, b + sides), (a, b + sides, a + sides)]
    centre0, centre1 = len(v), len(v) + 1
    v = np.vstack([v, [[0, radius, 0], [length, radius, 0]]])
    last = (len(xs) - 1) * sides
    faces += [(centre0, (j + 1) % sides, j) for j in range(sides)]
    faces += [(centre1, last + j, last + (j + 1) % sides) for j in range(sides)]
    return _painted(v, faces, colour, gloss, smooth=True)


BAG_COLOURS = [(0.05, 0.05, 0.06), (0.08, 0.1, 0.08), (0.12, 0.2, 0.45), (0.85, 0.85, 0.82), (0.45, 0.45, 0.47),
               (0.8, 0.65, 0.15), (0.15, 0.3, 0.15)]
BOTTLE_COLOURS = [((0.15, 0.4, 0.18), 0.8, 0.2), ((0.35, 0.2, 0.08), 0.8, 0.2), ((0.7, 0.78, 0.8), 0.9, 0.2),
                  ((0.75, 0.1, 0.1), 0.7, 0.0), ((0.75, 0.75, 0.78), 0.9, 0.0), ((0.1, 0.25, 0.7), 0.7, 0.0)]


def litter_mesh(kind: str, rng: np.random.Generator, size_m: float) -> Mesh:
    """A garbage mesh about ``size_m`` across, centred on the origin, resting on the ground.

    ``kind``: bags, boxes, bottles or heap."""
    def scatter(pieces: list[Mesh], spread: float) -> Mesh:
        placed = []
        for k, p in enumerate(pieces):
            r = spread * np.sqrt(rng.random()) if k else 0.0
            a = rng.uniform(0, 2 * np.pi)
            placed.append(p.moved(rng.uniform(0, 2 * np.pi), (r * np.cos(a), 0.0, r * np.sin(a))))
        return Mesh.join(placed)

    def bottles(n: int) -> list[Mesh]:
        out = []
        for _ in range(n):
            colour, gloss, neck = BOTTLE_COLOURS[rng.integers(len(BOTTLE_COLOURS))]
            long_ = rng.uniform(0.22, 0.32) if neck else rng.uniform(0.11, 0.16)
            radius = long_ * (0.14 if neck else 0.27)
            c = cylinder(radius, long_, colour, gloss, neck=neck * long_ / 0.3 * 0.3)
            out.append(c.moved(0.0, (-long_ / 2, 0.0, 0.0)))
        return out

    def bags(n: int, width: float) -> list[Mesh]:
        return [bag(rng, width * rng.uniform(0.6, 1.0), np.array(BAG_COLOURS[rng.integers(len(BAG_COLOURS))])
                    * rng.uniform(0.85, 1.1)) for _ in range(n)]

    if kind == "bags":
        n = int(rng.integers(1, 4))
        mesh = scatter(bags(n, size_m / (1 + 0.45 * (n - 1))), size_m * 0.3)
    elif kind == "boxes":
        n = int(rng.integers(1, 4))
        mesh = scatter([carton(rng, size_m / (1 + 0.4 * (n - 1))) for _ in range(n)], size_m * 0.3)
    elif kind == "bottles":
        mesh = scatter(bottles(int(rng.integers(6, 13))), size_m * 0.45)
    elif kind == "heap":
        pieces = bags(int(rng.integers(2, 4)), size_m * 0.5) + [carton(rng, size_m * 0.35)] + bottles(4)
        mesh = scatter(pieces, size_m * 0.3)
    else:
        raise ValueError(f"litter kind {kind!r}: use bags, boxes, bottles or heap")
    centre = (mesh.verts.max(0) + mesh.verts.min(0)) / 2
    return mesh.moved(0.0, (-centre[0], 0.0, -centre[2]))


def cone_mesh(height_m: float) -> Mesh:
    """A traffic cone on its square foot, orange with a white band."""
    ring = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    r0, r1 = 0.4 * height_m * 0.5, 0.06 * height_m
    levels = [(0.03, r0), (0.55, r0 + (r1 - r0) * 0.55), (0.7, r0 + (r1 - r0) * 0.7), (1.0, r1)]
    parts = [cuboid((-0.3 * height_m, 0, -0.3 * height_m), (0.3 * height_m, 0.03 * height_m, 0.3 * height_m),
                    (0.12, 0.12, 0.12), gloss=0.1)]
    for (ya, ra), (yb, rb), colour in zip(levels, levels[1:], [(0.95, 0.35, 0.05), (0.92, 0.92, 0.9),
                                                               (0.95, 0.35, 0.05)]):
        v = np.array([[r * np.cos(a), y * height_m, r * np.sin(a)] for y, r in ((ya, ra), (yb, rb)) for a in ring])
        faces = [t for j in range(16) for t in ((j, (j + 1) % 16, 16 + (j + 1) % 16), (j, 16 + (j + 1) % 16, 16 + j))]
        parts.append(_painted(v, faces, colour, 0.35, smooth=True))
    return Mesh.join(parts)


def rasterise(uv: Floats, depth: Floats, faces: npt.NDArray[np.int64], width: int, height: int
              ) -> tuple[Floats, npt.NDArray[np.int64], Floats]:
    """Z-buffered triangles: per pixel the nearest face's depth (inf where none), its index (-1) and
    the barycentric weights of its three corners at the pixel centre. ``uv``: (N, 2) pixel positions.

    >>> uv = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    >>> (rasterise(uv, np.ones(3), np.array([[0, 1, 2]]), 4, 4)[1] == 0).astype(int).tolist()
    [[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0]]
    """
    zbuf = np.full((height, width), np.inf)
    index = np.full((height, width), -1, dtype=np.int64)
    bary = np.zeros((height, width, 3))
    tri = uv[faces]  # (M, 3, 2)
    lo = np.floor(tri.min(axis=1)).astype(int)
    hi = np.ceil(tri.max(axis=1)).astype(int)
    for k in range(len(faces)):
        x0, y0 = max(lo[k, 0], 0), max(lo[k, 1], 0)
        x1, y1 = min(hi[k, 0], width - 1), min(hi[k, 1], height - 1)
        if x0 > x1 or y0 > y1:
            continue
        (ax, ay), (bx, by), (cx, cy) = tri[k]
        area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        if abs(area) < 1e-12:
            continue
        px, py = np.meshgrid(np.arange(x0, x1 + 1) + 0.5, np.arange(y0, y1 + 1) + 0.5)
        w0 = ((bx - px) * (cy - py) - (by - py) * (cx - px)) / area
        w1 = ((cx - px) * (ay - py) - (cy - py) * (ax - px)) / area
        w2 = 1.0 - w0 - w1
        inside = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
        z = w0 * depth[faces[k, 0]] + w1 * depth[faces[k, 1]] + w2 * depth[faces[k, 2]]
        window = zbuf[y0:y1 + 1, x0:x1 + 1]
        near = inside & (z < window)
        window[near] = z[near]
        index[y0:y1 + 1, x0:x1 + 1][near] = k
        bary[y0:y1 + 1, x0:x1 + 1][near] = np.stack([w0, w1, w2], axis=-1)[near]
    return zbuf, index, bary


@dataclass(frozen=True)
class Light:
    """``sun``: unit vector towards the sun (world); colours are RGB multipliers."""
    sun: tuple[float, float, float]
    sun_colour: tuple[float, float, float]
    ambient: tuple[float, float, float]
    sky: tuple[float, float, float]  # what a wet surface reflects
    shadow: float  # how much a cast shadow darkens the ground, 0..1


def vertex_normals(mesh: Mesh) -> tuple[Floats, Floats]:
    tri = mesh.verts[mesh.faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    vn = np.zeros_like(mesh.verts)
    for j in range(3):
        np.add.at(vn, mesh.faces[:, j], fn)
    unit = lambda a: a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)  # noqa: E731
    return unit(fn), unit(vn)


def layer_window(cam: Camera, points: Floats, size: tuple[int, int], pad: int) -> tuple[int, int, int, int] | None:
    """The pixel window (x0, y0, x1, y1), clipped to the frame, around projected ``points``."""
    uv = cam.project(points)[:, :2]
    x0, y0 = np.floor(uv.min(0)).astype(int) - pad
    x1, y1 = np.ceil(uv.max(0)).astype(int) + pad
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size[0]), min(y1, size[1])
    return None if x1 <= x0 or y1 <= y0 else (int(x0), int(y0), int(x1), int(y1))


def render_mesh(mesh: Mesh, cam: Camera, light: Light, size: tuple[int, int], blur: float = 0.6
                ) -> tuple[int, int, Floats, Floats]:
    """The lit mesh as a layer (x0, y0, mult, add) of a ``size`` (width, height) frame."""
    window = layer_window(cam, mesh.verts, size, pad=3)
    if window is None:
        return 0, 0, np.ones((1, 1, 3)), np.zeros((1, 1, 3))
    x0, y0, x1, y1 = window
    ss = SUPERSAMPLE
    proj = cam.project(mesh.verts)
    uv = (proj[:, :2] - [x0, y0]) * ss
    zbuf, index, bary = rasterise(uv, proj[:, 2], mesh.faces, (x1 - x0) * ss, (y1 - y0) * ss)
    hit = index >= 0
    fn, vn = vertex_normals(mesh)
    k = index[hit]
    w = bary[hit]
    smooth = (vn[mesh.faces[k]] * w[:, :, None]).sum(1)
    n = np.where(mesh.smooth[k][:, None], smooth, fn[k])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    pos = (mesh.verts[mesh.faces[k]] * w[:, :, None]).sum(1)
    view = np.array([0.0, cam.height_m, 0.0]) - pos
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    n = np.where(((n * view).sum(1) < 0)[:, None], -n, n)  # two-sided: the side the camera sees
    sun = np.array(light.sun)
    lambert = np.clip(n @ sun, 0, None)
    half = sun + view
    half /= np.linalg.norm(half, axis=1, keepdims=True)
    spec = mesh.gloss[k] * np.clip((n * half).sum(1), 0, None) ** 40
    up = 0.6 + 0.4 * n[:, 1]  # sky light from above, less on faces turned down
    colour = (mesh.albedo[k] * (np.array(light.ambient) * up[:, None] + np.array(light.sun_colour) * lambert[:, None])
              + spec[:, None] * np.array(light.sun_colour))
    rgb = np.zeros((*hit.shape, 3))
    rgb[hit] = np.clip(colour, 0, 1)
    alpha = hit.astype(float)
    small = (x1 - x0, y1 - y0)
    alpha = cv2.resize(alpha, small, interpolation=cv2.INTER_AREA)
    add = cv2.resize(rgb * hit[:, :, None], small, interpolation=cv2.INTER_AREA)
    if blur > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), blur)
        add = cv2.GaussianBlur(add, (0, 0), blur)
    return x0, y0, np.repeat(1 - alpha[:, :, None], 3, axis=2), add


def mesh_shadow(mesh: Mesh, cam: Camera, light: Light, size: tuple[int, int]) -> tuple[int, int, Floats, Floats]:
    """The mesh's cast shadow along the sun plus a soft contact darkening under it, as a layer."""
    sun = np.array(light.sun)
    v = mesh.verts
    flat = v - v[:, 1:2] / max(sun[1], 0.15) * sun  # along the sun's rays down to y = 0
    flat[:, 1] = 0.0
    span = max(np.ptp(v[:, 0]), np.ptp(v[:, 2]))
    centre = (v.max(0) + v.min(0)) / 2
    ring = np.array([[centre[0] + 0.7 * span * np.cos(a), 0.0, centre[2] + 0.7 * span * np.sin(a)]
                     for a in np.linspace(0, 2 * np.pi, 24)])
    window = layer_window(cam, np.vstack([flat, ring, v]), size, pad=6)
    if window is None:
        return 0, 0, np.ones((1, 1, 3)), np.zeros((1, 1, 3))
    x0, y0, x1, y1 = window
    uv = cam.project(flat)[:, :2] - [x0, y0]
    _, index, _ = rasterise(uv, np.ones(len(flat)), mesh.faces, x1 - x0, y1 - y0)
    cast = (index >= 0).astype(float)
    px_per_m = np.ptp(cam.project(np.array([[centre[0] - 0.5, 0, centre[2]], [centre[0] + 0.5, 0, centre[2]]]))[:, 0])
    cast = cv2.GaussianBlur(cast, (0, 0), max(0.6, 0.04 * px_per_m))
    foot = np.zeros_like(cast)
    base = cam.project(np.vstack([v[v[:, 1] < 0.05 * np.ptp(v[:, 1]) + 1e-3]]))[:, :2] - [x0, y0]
    if len(base) >= 3:
        cv2.fillConvexPoly(foot, cv2.convexHull(base.astype(np.float32)).astype(np.int32), 1.0)
        foot = cv2.GaussianBlur(foot, (0, 0), max(1.0, 0.08 * px_per_m))
    dark = np.clip(light.shadow * cast + 0.35 * foot, 0, 0.85)
    return x0, y0, np.repeat(1 - dark[:, :, None], 3, axis=2), np.zeros((*dark.shape, 3))


# --- spills -------------------------------------------------------------------------------------------

GRID = 96  # cells a side of a spill's ground grid


def ground_noise(rng: np.random.Generator, n: int, scales: tuple[float, ...] = (12.0, 4.0, 1.5)) -> Floats:
    """Smooth noise, about unit spread, of ``n`` x ``n`` cells: blurred white noise at a few scales."""
    out = np.zeros((n, n))
    for k, s in enumerate(scales):
        layer = cv2.GaussianBlur(rng.normal(size=(n, n)), (0, 0), s)
        out += layer / (layer.std() + 1e-12) * 0.6 ** k
    return out / out.std()


def flow_liquid(rng: np.random.Generator, film_m: float, volume: float, steps: int = 320,
                snapshots: int = 16) -> list[Floats]:
    """A liquid poured at the grid's centre spreading over a rough, gently sloped ground: depth per cell
    (in cell heights of ``film_m``) at ``snapshots`` moments. A cell thinner than the film keeps its
    liquid, so the spill stops with a ragged outline that follows the dips of the ground."""
    n = GRID
    ground = ground_noise(rng, n) * 0.9
    slope = rng.normal(size=2) * 0.015
    yy, xx = np.mgrid[0:n, 0:n]
    ground += (xx - n / 2) * slope[0] + (yy - n / 2) * slope[1]
    ground[[0, -1], :] = ground[:, [0, -1]] = 1e3  # walls
    depth = np.zeros((n, n))
    source = (xx - n / 2) ** 2 + (yy - n / 2) ** 2 <= 4
    pour = int(steps * 0.55)
    out = []
    for step in range(steps):
        if step < pour:
            depth[source] += volume / pour / source.sum()
        level = ground + depth
        movable = np.maximum(depth - 1.0, 0)  # one film thickness stays put
        drops = []
        for axis, shift in ((0, 1), (0, -1), (1, 1), (1, -1)):
            drops.append(np.maximum(level - np.roll(level, shift, axis=axis), 0))
        total = sum(drops) + 1e-12
        share = np.minimum(0.2 * total, movable) / total  # at most a fifth of the head moves per step
        for (axis, shift), drop in zip(((0, 1), (0, -1), (1, 1), (1, -1)), drops):
            moved = drop * share
            depth -= moved
            depth += np.roll(moved, -shift, axis=axis)
        if (step + 1) % (steps // snapshots) == 0 and len(out) < snapshots:
            out.append(depth.copy())
    return out


NEIGHBOURS = ((0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1))


def pile_granular(rng: np.random.Generator, volume: float, repose: float, steps: int = 260,
                  snapshots: int = 16) -> list[Floats]:
    """Sand or soil tipped at the centre and sliding until no slope exceeds its (cell-wise ragged) angle of
    repose: height per cell (cell units) at ``snapshots`` moments."""
    n = GRID
    height = np.zeros((n, n))
    ragged = repose * np.exp(0.35 * ground_noise(rng, n, (3.0, 1.0)))
    yy, xx = np.mgrid[0:n, 0:n]
    centre = rng.normal(size=2) * 2 + n / 2
    source = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= 6
    pour = int(steps * 0.6)
    out = []
    for step in range(steps):
        if step < pour:
            height[source] += volume / pour / source.sum()
        moves = []  # to the 8 neighbours, diagonals a cell and a half away: a round pile, not a diamond
        for dy, dx in NEIGHBOURS:
            reach = np.hypot(dy, dx)
            excess = np.maximum(height - np.roll(height, (dy, dx), axis=(0, 1)) - ragged * reach, 0)
            moves.append(0.06 * excess / reach)
        for (dy, dx), moved in zip(NEIGHBOURS, moves):
            height -= moved
            height += np.roll(moved, (-dy, -dx), axis=(0, 1))
        height[[0, -1], :] = height[:, [0, -1]] = 0
        if (step + 1) % (steps // snapshots) == 0 and len(out) < snapshots:
            out.append(height.copy())
    return out


SPILL_COLOURS = {"sand": (0.64, 0.56, 0.42), "soil": (0.35, 0.25, 0.17), "gravel": (0.55, 0.53, 0.5),
                 "oil": (0.04, 0.035, 0.03)}
PAINTS = [(0.95, 0.95, 0.92), (0.95, 0.8, 0.1), (0.85, 0.12, 0.1), (0.15, 0.35, 0.8), (0.2, 0.6, 0.25)]


def spill_texture(kind: str, field: Floats, rng: np.random.Generator, light: Light, cell_m: float,
                  paint: tuple[float, float, float]) -> tuple[Floats, Floats]:
    """A spill's (mult, add) on its ground grid from its depth/height ``field`` (cell units)."""
    n = field.shape[0]
    grain = rng.normal(size=(n, n))
    if kind in ("oil", "water", "paint"):
        cover = np.clip(field / 1.0, 0, 1) ** 0.7
        cover = cv2.GaussianBlur(cover, (0, 0), 0.7)
    else:
        cover = np.clip(cv2.GaussianBlur(field, (0, 0), 1.2) / 0.6, 0, 1)
        cover = np.clip(cover * (0.9 + 0.2 * cv2.GaussianBlur(grain, (0, 0), 0.8)), 0, 1)
    gy, gx = np.gradient(cv2.GaussianBlur(field, (0, 0), 2.5))
    normal = np.stack([-gx * 0.4, np.ones_like(gx), -gy * 0.4], axis=-1)  # the height field's tilt
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    sun = np.array(light.sun)
    lambert = np.clip(normal @ sun, 0, None)[..., None]
    shade = np.array(light.ambient) + np.array(light.sun_colour) * lambert
    sky = np.array(light.sky)
    a = cover[..., None]
    if kind == "water":
        mult = 1 - a * 0.42
        add = a * 0.12 * sky * (1 + 0.2 * cv2.GaussianBlur(grain, (0, 0), 3)[..., None])
    elif kind == "oil":
        sheen = 0.1 + 0.08 * cv2.GaussianBlur(grain, (0, 0), 4)[..., None]
        mult = 1 - a * 0.82
        add = a * (np.array(SPILL_COLOURS["oil"]) + np.clip(sheen, 0, None) * sky)
    elif kind == "paint":
        gloss = np.clip(normal @ ((sun + np.array([0, 1, 0])) / np.linalg.norm(sun + [0, 1, 0])), 0, 1) ** 30
        colour = np.array(paint) * shade * 0.85 + 0.25 * gloss[..., None] * np.array(light.sun_colour)
        mult, add = 1 - a, a * np.clip(colour, 0, 1)
    else:
        base = np.array(SPILL_COLOURS[kind]) * rng.uniform(0.85, 1.15)
        speckle = 0.18 if kind == "gravel" else 0.1
        colour = base * (1 + speckle * grain[..., None] + 0.08 * cv2.GaussianBlur(grain, (0, 0), 2)[..., None])
        if kind == "gravel":  # pale and dark stones
            stones = (grain > 1.3)[..., None] * 0.25 - (grain < -1.5)[..., None] * 0.2
            colour = colour + stones
        mult, add = 1 - a, a * np.clip(colour * shade, 0, 1)
    return mult, add


def warp_layer(cam: Camera, x0: float, z0: float, cell_m: float, mult: Floats, add: Floats,
               size: tuple[int, int]) -> tuple[int, int, Floats, Floats]:
    """A ground grid's (mult, add) seen by the camera, as a frame layer."""
    n = mult.shape[0]
    mult = np.ascontiguousarray(np.broadcast_to(mult, (n, n, 3)))
    add = np.ascontiguousarray(np.broadcast_to(add, (n, n, 3)))
    corners = np.array([[x0, 0, z0], [x0 + n * cell_m, 0, z0], [x0 + n * cell_m, 0, z0 + n * cell_m],
                        [x0, 0, z0 + n * cell_m]])
    window = layer_window(cam, corners, size, pad=2)
    if window is None:
        return 0, 0, np.ones((1, 1, 3)), np.zeros((1, 1, 3))
    wx0, wy0, wx1, wy1 = window
    shift = np.array([[1, 0, -wx0], [0, 1, -wy0], [0, 0, 1]], float)
    hom = shift @ cam.ground_homography(x0, z0, cell_m)
    dsize = (wx1 - wx0, wy1 - wy0)
    m = cv2.warpPerspective(mult.astype(np.float32), hom, dsize, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(1, 1, 1))
    a = cv2.warpPerspective(add.astype(np.float32), hom, dsize, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return wx0, wy0, m.astype(float), a.astype(float)


def ground_mark(kind: str, rng: np.random.Generator, n: int = GRID) -> tuple[Floats, Floats]:
    """Street furniture lying flat: a manhole cover or a painted arrow, (mult, add) on an ``n`` grid."""
    yy, xx = (np.mgrid[0:n, 0:n] + 0.5) / n - 0.5
    if kind == "manhole":
        r = np.hypot(xx, yy)
        disc = np.clip((0.45 - r) * n, 0, 1)
        rim = np.clip((0.45 - r) * n, 0, 1) * np.clip((r - 0.39) * n, 0, 1)
        pattern = 0.5 + 0.5 * np.sign(np.sin(xx * 60) * np.sin(yy * 60))
        colour = (0.2 + 0.06 * pattern + 0.12 * rim)[..., None] * np.array([1.0, 0.97, 0.93])
        return 1 - disc[..., None] * np.ones(3), disc[..., None] * colour
    # an arrow pointing along the grid's rows (z), worn white paint
    shaft = (np.abs(xx) < 0.07) & (yy > -0.45) & (yy < 0.15)
    head = (yy >= 0.15) & (yy < 0.45) & (np.abs(xx) < (0.45 - yy) * 0.9)
    mark = (shaft | head).astype(float)
    wear = np.clip(0.85 + 0.25 * cv2.GaussianBlur(rng.normal(size=(n, n)), (0, 0), 1.5), 0, 1)
    a = cv2.GaussianBlur(mark, (0, 0), 0.6) * wear * 0.85
    return 1 - a[..., None] * np.ones(3), a[..., None] * np.array([0.9, 0.9, 0.88])
