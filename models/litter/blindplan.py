"""The BLIND evaluation generator's plan: from a seed, what each clip shows, where and when (views,
sizes, zones, objects, furniture, passers-by, light), and the truth file that promises it. Pure: no
files are read, nothing is drawn; ``blindrender.py`` draws a plan, ``blindgen.py`` is the command.
Evaluation only: nothing here is used for training or for any choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from models.litter.blindscenes import (
    FURNITURE,
    VIEWS,
    Box,
    Geometry,
    Point,
    View,
    box_inside,
    ground_scale,
    object_box,
    polygon_area,
    raster,
    to_ground,
)

DEFAULT_SEED = 73019
PERSISTENCE_S, CLEAR_S = 10.0, 5.0
BOX_FRACTION = (0.003, 0.08)  # the object's box, as a share of the frame
ZONE_RATIO = (5.0, 12.0)  # the zone's area over the object's box area
GARBAGE_KINDS = ("bags", "boxes", "litter", "rubble", "dump")
SPILL_KINDS = ("oil", "water", "granular", "paint")
# footprint width, depth and height in metres (height: what stands up off the ground)
SIZES = {
    "bags": ((0.8, 3.0), (0.6, 2.2), (0.4, 1.0)),
    "boxes": ((0.7, 2.6), (0.5, 1.8), (0.3, 1.1)),
    "litter": ((1.0, 4.5), (0.8, 3.5), (0.0, 0.1)),
    "rubble": ((1.0, 4.5), (0.8, 3.0), (0.3, 1.1)),
    "dump": ((1.5, 4.0), (1.0, 2.5), (0.5, 1.3)),
    "oil": ((0.8, 5.0), (0.6, 4.0), (0, 0)),
    "water": ((1.5, 7.0), (1.0, 5.0), (0, 0)),
    "granular": ((1.0, 6.0), (0.8, 4.5), (0, 0)),
    "paint": ((0.8, 4.0), (0.6, 3.0), (0, 0)),
}

# ---------------------------------------------------------------- the plan (pure: seed in, plan out)


@dataclass(frozen=True)
class Staged:
    """One object staged in one zone: what it is, where (box and zone in frame pixels) and when."""

    zone: str
    type: str
    kind: str
    box: Box
    polygon: tuple[Point, ...]
    appear_s: float
    clear_s: float
    grow_s: float
    pxm: float
    flatten: float
    seed: int


@dataclass(frozen=True)
class Furniture:
    """A static, unlabelled hard negative (cone, cover, grate, paint, puddle), there from frame 0;
    ``zone`` is the zone it was placed in or beside."""

    zone: str
    kind: str
    box: Box
    pxm: float
    flatten: float
    seed: int


@dataclass(frozen=True)
class Mover:
    """A person or car crossing on a straight ground path at a steady speed from ``start_s``."""

    kind: str  # person | car
    start: Point  # ground metres
    end: Point
    start_s: float
    speed: float
    seed: int


@dataclass(frozen=True)
class ClipPlan:
    """Everything one clip shows: frame size, rate and length, bitrate, what is staged where and when,
    furniture, passers-by, and the light's drift (``light``); ``seed`` drives the drawing."""

    name: str
    view: str
    size: tuple[int, int]
    fps: int
    frames: int
    bitrate_k: int
    staged: tuple[Staged, ...]
    furniture: tuple[Furniture, ...]
    movers: tuple[Mover, ...]
    light: dict = field(default_factory=dict)
    seed: int = 0

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


def sample_in(rng: np.random.Generator, polygon: list[Point]) -> Point:
    """A uniformly random point inside a polygon (rejection from its bounding box)."""
    p = np.asarray(polygon, float)
    contour = p.astype(np.float32).reshape(-1, 1, 2)
    for _ in range(200):
        x, y = rng.uniform(p[:, 0].min(), p[:, 0].max()), rng.uniform(p[:, 1].min(), p[:, 1].max())
        if cv2.pointPolygonTest(contour, (float(x), float(y)), False) > 0:
            return float(x), float(y)
    return float(p[:, 0].mean()), float(p[:, 1].mean())


def zone_around(
    g: Geometry,
    size: tuple[int, int],
    box: Box,
    margins: tuple[float, float, float, float],
    k: float,
    cut: tuple[int, float] | None,
) -> list[Point]:
    """A zone drawn around ``box`` as a rectangle on the ground: top and bottom edges level, sides
    running to the road's vanishing point (straight down: a plain rectangle). ``margins`` (left,
    right, near, far) times ``k`` times the box's mean side are its distances from the box; ``cut``
    trims one corner (index, share) to make a fifth point.

    >>> zone_around(Geometry(px_per_m=0.01), (100, 100), (40, 40, 60, 60), (0.5, 0.5, 0.5, 0.5), 1.0, None)
    [(30.0, 30.0), (70.0, 30.0), (70.0, 70.0), (30.0, 70.0)]
    """
    w, h = size
    x1, y1, x2, y2 = box
    s = math.sqrt((x2 - x1) * (y2 - y1))
    left, right, near, far = margins
    top, bottom = y1 - k * far * s, y2 + k * near * s
    xl, xr = x1 - k * left * s, x2 + k * right * s
    if g.horizon is None:
        quad = [(xl, top), (xr, top), (xr, bottom), (xl, bottom)]
    else:
        vx, vy = g.vanish_x * w, g.horizon * h
        top = max(top, vy + 0.02 * h)

        def side(x: float, y_ref: float) -> tuple[Point, Point]:  # through (x, y_ref), towards the vanishing point
            return tuple((vx + (x - vx) * (y - vy) / (y_ref - vy), y) for y in (top, bottom))

        (lt, lb), (rt, rb) = side(xl, y1 if xl < vx else y2), side(xr, y1 if xr > vx else y2)
        quad = [lt, rt, rb, lb]
    if cut is None:
        return [(float(x), float(y)) for x, y in quad]
    i, share = cut
    prev, here, nxt = quad[i - 1], quad[i], quad[(i + 1) % 4]
    a = (here[0] + (prev[0] - here[0]) * share, here[1] + (prev[1] - here[1]) * share)
    b = (here[0] + (nxt[0] - here[0]) * share, here[1] + (nxt[1] - here[1]) * share)
    return [(float(x), float(y)) for x, y in quad[:i] + [a, b] + quad[i + 1 :]]


def fit_zone(
    rng: np.random.Generator, g: Geometry, size: tuple[int, int], box: Box, ratio: float
) -> list[Point] | None:
    """A zone around ``box`` whose area is ``ratio`` times the box's, the object off-centre in it; None
    when no such zone holds the box."""
    margins = tuple(float(m) for m in rng.uniform(0.15, 1.0, 4))
    cut = (int(rng.integers(4)), float(rng.uniform(0.1, 0.3))) if rng.random() < 0.4 else None
    box_area = (box[2] - box[0]) * (box[3] - box[1])
    lo, hi = 0.0, 40.0
    for _ in range(24):
        k = (lo + hi) / 2
        if polygon_area(zone_around(g, size, box, margins, k, cut)) / box_area < ratio:
            lo = k
        else:
            hi = k
    zone = zone_around(g, size, box, margins, hi, cut)
    area = polygon_area(zone) / box_area
    if not (ZONE_RATIO[0] <= area <= ZONE_RATIO[1]) or not box_inside(box, zone):
        return None
    return zone


def place_object(
    rng: np.random.Generator,
    view: View,
    size: tuple[int, int],
    surface: tuple[Point, ...],
    kind: str,
    taken: npt.NDArray[np.uint8],
) -> tuple[Box, list[Point], float, float] | None:
    """Where one object goes on one surface: its box, its zone (pixels), pixels per metre and flattening
    there; None when 150 tries found no place whose zone fits the surface and misses ``taken``."""
    w, h = size
    surface_px = [(x * w, y * h) for x, y in surface]
    on_surface = raster(surface_px, size)
    room = float(on_surface.mean())  # the surface's share of the frame
    middle = np.mean(surface_px, axis=0)
    inner = [tuple(middle + (np.asarray(p) - middle) * 0.55) for p in surface_px]  # objects keep off the edges
    for _ in range(150):
        ratio = float(rng.uniform(ZONE_RATIO[0] + 0.5, ZONE_RATIO[1] - 0.5))
        lo, hi = BOX_FRACTION[0] * 1.15, min(0.05, room * 0.8 / ratio)
        if hi <= lo:
            continue
        u, v = sample_in(rng, inner)
        (w0, w1), (d0, d1), (h0, h1) = SIZES[kind]
        width = rng.uniform(w0, w1)
        dims = [width, float(np.clip(width * rng.uniform(0.45, 1.2), d0, d1)), rng.uniform(h0, h1) if h1 > 0 else 0.0]
        box = object_box(view.geometry, size, u, v, tuple(dims))
        share = (box[2] - box[0]) * (box[3] - box[1]) / (w * h)
        if not lo <= share <= hi:  # too small or too big to see or to zone here: rescaled, within reason
            k = math.sqrt(float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) / max(share, 1e-9))
            if not 0.25 <= k <= 4.0:
                continue
            dims = [d * k for d in dims]
            box = object_box(view.geometry, size, u, v, tuple(dims))
            share = (box[2] - box[0]) * (box[3] - box[1]) / (w * h)
        if not BOX_FRACTION[0] <= share <= BOX_FRACTION[1] or min(box[2] - box[0], box[3] - box[1]) < 6:
            continue
        if box[0] < 2 or box[1] < 2 or box[2] > w - 2 or box[3] > h - 2:
            continue
        zone = fit_zone(rng, view.geometry, size, box, ratio)
        if zone is None:
            continue
        zone_mask = raster(zone, size)
        area = int(zone_mask.sum())
        if area == 0 or int((zone_mask & (1 - on_surface)).sum()) > 0.03 * area or int((zone_mask & taken).sum()) > 0:
            continue
        if (
            min(x for x, _ in zone) < 0
            or min(y for _, y in zone) < 0
            or max(x for x, _ in zone) > w
            or max(y for _, y in zone) > h
        ):
            continue
        pxm, flat = ground_scale(view.geometry, size, v)
        return box, zone, pxm, flat
    return None


def timeline(rng: np.random.Generator, fps: int, frames: int, grow_s: float) -> tuple[float, float]:
    """(appear_s, clear_s) on the frame grid: at least 8 s of clean footage before (and before any
    spreading), 25-40 s present, at least 12 s clean after."""
    duration = frames / fps
    stay = rng.uniform(25.0, min(40.0, duration - 20.0 - grow_s))
    appear = rng.uniform(8.0 + grow_s, duration - 12.0 - stay)
    appear_i = math.ceil(appear * fps)
    clear_i = math.ceil((appear_i / fps + stay) * fps)
    return appear_i / fps, clear_i / fps


def overlaps(a: Box, b: Box, pad: int = 0) -> bool:
    return not (a[2] + pad <= b[0] or b[2] + pad <= a[0] or a[3] + pad <= b[1] or b[3] + pad <= a[1])


def place_furniture(
    rng: np.random.Generator,
    view: View,
    size: tuple[int, int],
    zones: list[tuple[str, list[Point]]],
    avoid: list[Box],
    count: int,
) -> list[Furniture]:
    """``count`` static things (cones, covers, grates, paint, puddles) inside or just beside
    the zones, clear of the staged objects."""
    out: list[Furniture] = []
    kinds = list(view.furniture)
    for n in range(count * 30):
        if len(out) == count:
            break
        zone_id, polygon = zones[int(rng.integers(len(zones)))]
        pts = np.asarray(polygon)
        centre = pts.mean(0)
        grow = 1.0 if rng.random() < 0.6 else 1.4  # beside the zone: within its polygon grown 40%
        u, v = sample_in(rng, [tuple(centre + (p - centre) * grow) for p in pts])
        kind = str(rng.choice(kinds))
        w_m, d_m, h_m = FURNITURE[kind]
        scale = rng.uniform(0.8, 1.25)
        box = object_box(view.geometry, size, u, v, (w_m * scale, d_m * scale, h_m * scale))
        if (box[2] - box[0]) * (box[3] - box[1]) > 0.012 * size[0] * size[1]:  # too near the camera
            continue
        if (
            min(box[2] - box[0], box[3] - box[1]) < 5
            or box[0] < 0
            or box[1] < 0
            or box[2] > size[0]
            or box[3] > size[1]
        ):
            continue
        if any(overlaps(box, b, 6) for b in avoid + [f.box for f in out]):
            continue
        pxm, flat = ground_scale(view.geometry, size, v)
        out.append(Furniture(zone_id, kind, box, pxm, flat, int(rng.integers(2**31))))
    return out


def plan_movers(
    rng: np.random.Generator, view: View, size: tuple[int, int], seconds: float, garbage: list[Box]
) -> list[Mover]:
    """People and cars crossing during the clip; no car path runs through a staged heap."""
    w, h = size
    g = view.geometry
    out = []
    for kind, paths, count in (
        ("person", view.walkers, int(rng.integers(1, 5))),
        ("car", view.drivers, int(rng.integers(2, 9))),
    ):
        for _ in range(count if paths else 0):
            (ax, ay), (bx, by) = paths[int(rng.integers(len(paths)))]
            if rng.random() < 0.5:
                (ax, ay), (bx, by) = (bx, by), (ax, ay)
            if kind == "car":
                line = np.zeros((h, w), np.uint8)
                cv2.line(
                    line,
                    (int(ax * w), int(ay * h)),
                    (int(bx * w), int(by * h)),
                    1,
                    max(3, int(2.0 * ground_scale(g, size, max(ay, by) * h)[0])),
                )
                if any(line[max(0, b[1]) : b[3], max(0, b[0]) : b[2]].any() for b in garbage):
                    continue
            start, end = to_ground(g, size, ax * w, ay * h), to_ground(g, size, bx * w, by * h)
            speed = rng.uniform(1.0, 1.6) if kind == "person" else rng.uniform(*view.speed)
            out.append(Mover(kind, start, end, float(rng.uniform(-5, seconds)), float(speed), int(rng.integers(2**31))))
    return out


def kinds_for(count: int, rng: np.random.Generator) -> list[list[tuple[str, str]]]:
    """Which objects each clip stages: one or two zones a clip, half the zones garbage, half spill,
    kinds taken in turn so the set covers each."""
    zones = [1 if rng.random() < 0.4 else 2 for _ in range(count)]
    total = sum(zones)
    types = ["garbage"] * (total // 2) + ["spill"] * (total - total // 2)
    types = [types[i] for i in rng.permutation(total)]
    g0, s0 = int(rng.integers(len(GARBAGE_KINDS))), int(rng.integers(len(SPILL_KINDS)))
    out, gi, si, k = [], 0, 0, 0
    for n in zones:
        clip = []
        for _ in range(n):
            if types[k] == "garbage":
                clip.append(("garbage", GARBAGE_KINDS[(g0 + gi) % len(GARBAGE_KINDS)]))
                gi += 1
            else:
                clip.append(("spill", SPILL_KINDS[(s0 + si) % len(SPILL_KINDS)]))
                si += 1
            k += 1
        out.append(clip)
    return out


def plan_clip(index: int, view: View, objects: list[tuple[str, str]], seed: int) -> ClipPlan:
    """Everything about one clip, decided from ``seed`` and ``index`` alone (no files read)."""
    rng = np.random.default_rng([seed, index])
    size = view.sizes[int(rng.integers(len(view.sizes)))]
    fps = int(rng.choice([10, 12, 15]))
    frames = int(round(rng.uniform(55.0, 70.0) * fps))
    staged: list[Staged] = []
    taken = np.zeros((size[1], size[0]), np.uint8)
    surfaces = list(view.surfaces)
    order = [surfaces[i] for i in rng.permutation(len(surfaces))]
    for n, (kind_type, kind) in enumerate(objects):
        kinds = GARBAGE_KINDS if kind_type == "garbage" else SPILL_KINDS
        tries = [kind] + [k for k in kinds if k != kind]  # another kind of the same type when it will not fit
        spot = None
        for kind in tries:
            for name in order:
                spot = place_object(rng, view, size, view.surfaces[name], kind, taken)
                if spot is not None:
                    break
            if spot is not None:
                break
        else:
            if staged:  # the clip's first object took the room: it has one object fewer (seen with some seeds)
                continue
            raise RuntimeError(
                f"blindgen: clip {index} view {view.name!r}: no room for any {kind_type} on any "
                "surface; widen the view's surfaces or shrink SIZES"
            )
        order.remove(name)
        box, zone, pxm, flat = spot
        taken |= cv2.dilate(raster(zone, size), np.ones((5, 5), np.uint8))
        grow = float(rng.uniform(1.5, 4.0)) if kind_type == "spill" else 0.0
        appear, clear = timeline(rng, fps, frames, grow)
        staged.append(
            Staged(
                f"litter-{n + 1}",
                kind_type,
                kind,
                box,
                tuple(zone),
                appear,
                clear,
                grow,
                pxm,
                flat,
                int(rng.integers(2**31)),
            )
        )
    zones = [(s.zone, list(s.polygon)) for s in staged]
    furniture = place_furniture(rng, view, size, zones, [s.box for s in staged], int(rng.integers(0, 3)))
    movers = plan_movers(rng, view, size, frames / fps, [s.box for s in staged if s.type == "garbage"])
    light = {
        "drift": float(rng.uniform(0.02, 0.08)),
        "period_s": float(rng.uniform(20, 60)),
        "phase": float(rng.uniform(0, 2 * np.pi)),
        "trend": float(rng.uniform(-0.08, 0.08)),
        "cloud": bool(not view.night and rng.random() < 0.6),
        "cloud_depth": float(rng.uniform(0.15, 0.35)),
        "cloud_speed": float(rng.uniform(0.01, 0.03)),
        "shake_px": float(rng.uniform(0.0, 1.3)),
        "noise": float(rng.uniform(1.5, 4.0) * (1.6 if view.night else 1.0)),
    }
    bitrate = int(round(np.exp(rng.uniform(np.log(300), np.log(2000))) / 50) * 50)
    return ClipPlan(
        f"b-{view.name}-{index}",
        view.name,
        size,
        fps,
        frames,
        bitrate,
        tuple(staged),
        tuple(furniture),
        tuple(movers),
        light,
        int(rng.integers(2**31)),
    )


def plan_set(count: int, seed: int = DEFAULT_SEED, views: tuple[View, ...] = VIEWS) -> list[ClipPlan]:
    """The plans of ``count`` clips, the views taken in turn (a shuffled order); same seed, same plans."""
    if not views:
        raise ValueError("blindgen: no scene available; run models/litter/fetch_blind_sources.sh")
    rng = np.random.default_rng(seed)
    order = [views[i] for i in rng.permutation(len(views))]
    objects = kinds_for(count, rng)
    return [plan_clip(i, order[i % len(order)], objects[i], seed) for i in range(count)]


# ---------------------------------------------------------------- truth file


def truth_text(plan: ClipPlan, video: Path, view: View) -> str:
    """The clip's ``.truth.yaml`` (the form models/litter/evaluate.py reads)."""
    w, h = plan.size
    lines = [
        "# COMPOSED clip, written by models/litter/blindgen.py (evaluation only); do not edit by hand",
        "composed: true",
        f"source: {view.credit} + models/litter/blindgen.py (the blind evaluation generator), H.264 "
        f"{plan.bitrate_k} kb/s",
        "camera:",
        f"  id: {plan.name}",
        f"  url: {video}",
        "  grid: HQ-DZG-10D-07",
        "  analysis_interval_s: 1.0",
        "  zones:",
    ]
    for s in plan.staged:
        lines += [
            f"  - id: {s.zone}",
            "    types: [garbage, spill]",
            f"    persistence_s: {PERSISTENCE_S}",
            f"    clear_s: {CLEAR_S}",
            "    polygon:",
        ]
        lines += [f"    - [{x / w:.4f}, {y / h:.4f}]" for x, y in s.polygon]
    lines.append("expect:")
    for s in plan.staged:
        lines += [
            f"- zone: {s.zone}",
            f"  type: {s.type}  # {s.kind}",
            "  count: 1",
            f"  appear_s: {round(s.appear_s, 3)}",
            f"  clear_s: {round(s.clear_s, 3)}",
            f"  start_after_s: {round(s.appear_s + PERSISTENCE_S, 3)}",
            f"  box_px: [{s.box[0]}, {s.box[1]}, {s.box[2]}, {s.box[3]}]",
        ]
    if plan.furniture:
        lines.append("furniture:")
        for f in plan.furniture:
            lines += [
                f"- zone: {f.zone}",
                f"  type: {f.kind}",
                f"  box_px: [{f.box[0]}, {f.box[1]}, {f.box[2]}, {f.box[3]}]",
            ]
    return "\n".join(lines) + "\n"
