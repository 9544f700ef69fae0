"""Where the BLIND evaluation generator (``blindgen.py``) composes: its views of real pictures, each
with a camera model over flat ground, the ground that zones may cover, and the paths people and cars
take; and the pure geometry between frame pixels and ground metres. Evaluation only.

A view's camera is a pinhole ``height_m`` above a flat road whose horizon is at view-normalised row
``horizon`` and whose lanes meet at ``vanish_x`` (so a metre across the road at frame row v spans
``(v - horizon) / height_m`` pixels, and flat things are squashed by ``(v - horizon) / focal``), or,
for a drone looking straight down, a fixed ``px_per_m``. The numbers were read off the pictures: lane
widths, car lengths, where the lanes converge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

# street furniture drawn as static hard negatives: width, depth, height in metres
FURNITURE = {
    "cone": (0.36, 0.36, 0.7),
    "manhole": (0.7, 0.7, 0.0),
    "grate": (0.5, 0.9, 0.0),
    "marking": (1.2, 2.5, 0.0),
    "puddle": (1.0, 0.8, 0.0),
}

Point = tuple[float, float]
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Geometry:
    """A view's camera over flat ground. ``horizon`` (view-normalised y) None: looking straight down,
    ``px_per_m`` view widths per metre; else a pinhole ``height_m`` above the road with focal length
    ``focal`` (view widths), the road's vanishing point at x ``vanish_x``."""

    horizon: float | None = None
    vanish_x: float = 0.5
    height_m: float = 5.0
    focal: float = 1.0
    px_per_m: float = 0.01


@dataclass(frozen=True)
class View:
    """One fixed camera made from a real picture: a crop of a source, its camera model, the ground
    where zones may go (view-normalised polygons), and paths that people and cars take across it."""

    name: str
    source: str
    credit: str
    crop: tuple[float, float, float, float]
    sizes: tuple[tuple[int, int], ...]
    geometry: Geometry
    surfaces: dict[str, tuple[Point, ...]]
    exposure: float  # objects' colours are scaled by this to sit in the picture's light
    sky: tuple[float, float, float]  # BGR of what wet ground mirrors
    night: bool = False
    walkers: tuple[tuple[Point, Point], ...] = ()
    drivers: tuple[tuple[Point, Point], ...] = ()
    speed: tuple[float, float] = (6.0, 12.0)  # cars, m/s
    furniture: tuple[str, ...] = tuple(FURNITURE)  # what street furniture belongs here


def _lanes_to(vanish: Point, bottoms: tuple[float, ...], far_y: float) -> tuple[tuple[Point, Point], ...]:
    """Paths along lanes that meet at ``vanish``: from below the frame's bottom edge up to ``far_y``."""
    vx, vy = vanish
    return tuple(((b, 1.05), (vx + (b - vx) * (far_y - vy) / (1.05 - vy), far_y)) for b in bottoms)


MOTORWAY_CREDIT = "sahi 0.12.8 demo/demo_data/small-vehicles1.jpeg (motorway from an overpass, still)"
JUNCTION_CREDIT = "startbootstrap-coming-soon 6.0.7 bg.mp4 frame 0 (city junction from a drone, still)"
SNOW_CREDIT = "python-ffmpeg 2.0.12 tests/assets/snow.ts (snowy street at night, median still)"
_SNOW_ROAD = {
    "road-near-left": ((0.02, 0.61), (0.30, 0.555), (0.48, 0.555), (0.48, 0.99), (0.02, 0.99)),
    "road-near-right": ((0.52, 0.58), (0.60, 0.62), (0.80, 0.77), (0.98, 0.81), (0.98, 0.99), (0.52, 0.99)),
}


def _crop_y(poly: tuple[Point, ...], y0: float, y1: float) -> tuple[Point, ...]:
    return tuple((x, round((y - y0) / (y1 - y0), 4)) for x, y in poly)


VIEWS: tuple[View, ...] = (
    View(
        "motorway",
        "motorway.jpg",
        MOTORWAY_CREDIT,
        (0, 0, 1, 1),
        ((1068, 580), (854, 464), (640, 348)),
        Geometry(horizon=0.27, vanish_x=0.62, height_m=10.0, focal=1.0),
        {
            "east-near": ((0.50, 0.70), (0.89, 0.70), (1.0, 0.90), (1.0, 0.97), (0.40, 0.97)),
            "west-near": ((0.0, 0.80), (0.30, 0.665), (0.44, 0.665), (0.30, 0.97), (0.0, 0.97)),
        },
        exposure=1.0,
        sky=(225, 222, 218),
        drivers=_lanes_to((0.62, 0.27), (0.46, 0.66, 0.86, 0.155, -0.06), 0.33),
        speed=(22.0, 31.0),
        furniture=("cone", "marking", "puddle"),
    ),
    View(
        "junction-west",
        "junction.png",
        JUNCTION_CREDIT,
        (0.0, 0.34, 0.42, 0.7593),
        ((800, 450), (640, 360), (960, 540)),
        Geometry(px_per_m=0.0154),
        {
            "north-lanes-west": ((0.02, 0.10), (0.40, 0.10), (0.40, 0.32), (0.02, 0.32)),
            "north-lanes-east": ((0.44, 0.10), (0.84, 0.10), (0.84, 0.32), (0.44, 0.32)),
            "south-lanes-west": ((0.0, 0.36), (0.44, 0.36), (0.44, 0.50), (0.0, 0.50)),
        },
        exposure=0.8,
        sky=(175, 185, 190),
        walkers=(((0.92, -0.05), (0.92, 0.7)), ((0.15, 0.66), (0.15, 0.86))),
        drivers=(((-0.1, 0.14), (1.1, 0.14)), ((1.1, 0.21), (-0.1, 0.21)), ((-0.1, 0.28), (1.1, 0.28))),
    ),
    View(
        "junction-east",
        "junction.png",
        JUNCTION_CREDIT,
        (0.62, 0.30, 1.0, 0.6796),
        ((728, 410), (640, 360)),
        Geometry(px_per_m=0.0151),
        {
            "north-lanes": ((0.45, 0.25), (0.98, 0.25), (0.98, 0.52), (0.45, 0.52)),
            "south-lanes-west": ((0.12, 0.62), (0.52, 0.62), (0.52, 0.78), (0.12, 0.78)),
            "south-lanes-east": ((0.56, 0.62), (0.98, 0.62), (0.98, 0.78), (0.56, 0.78)),
        },
        exposure=0.8,
        sky=(175, 185, 190),
        walkers=(((0.04, -0.05), (0.04, 0.85)), ((-0.05, 0.21), (1.05, 0.21))),
        drivers=(
            ((-0.1, 0.30), (1.1, 0.30)),
            ((1.1, 0.37), (-0.1, 0.37)),
            ((-0.1, 0.44), (1.1, 0.44)),
            ((1.1, 0.66), (-0.1, 0.66)),
            ((-0.1, 0.73), (1.1, 0.73)),
        ),
    ),
    View(
        "snow-street",
        "snow.ts",
        SNOW_CREDIT,
        (0, 0, 1, 1),
        ((540, 720), (720, 960)),
        Geometry(horizon=0.48, vanish_x=0.47, height_m=1.8, focal=1.0),
        _SNOW_ROAD,
        exposure=0.55,
        sky=(70, 70, 80),
        night=True,
        furniture=("cone",),
        walkers=(((0.05, 1.03), (0.38, 0.52)), ((0.05, 0.85), (0.95, 0.9)), ((0.30, 0.52), (0.0, 0.62))),
    ),
    View(
        "snow-road",
        "snow.ts",
        SNOW_CREDIT,
        (0, 0.44, 1, 1.0),
        ((720, 538), (1024, 764)),
        Geometry(horizon=0.0714, vanish_x=0.47, height_m=1.8, focal=1.0),
        {k: _crop_y(v, 0.44, 1.0) for k, v in _SNOW_ROAD.items()},
        exposure=0.55,
        sky=(70, 70, 80),
        night=True,
        furniture=("cone",),
        walkers=(((0.05, 1.05), (0.38, 0.143)), ((0.05, 0.73), (0.95, 0.82))),
    ),
)


# ---------------------------------------------------------------- geometry (pure)


def ground_scale(g: Geometry, size: tuple[int, int], v: float) -> tuple[float, float]:
    """Pixels per metre across the road at frame row ``v``, and how much the ground is flattened there
    (vertical over horizontal size of a flat patch; 1 looking straight down).

    >>> ground_scale(Geometry(horizon=0.25, height_m=10, focal=1.0), (1000, 400), 300.0)
    (20.0, 0.2)
    """
    w, h = size
    if g.horizon is None:
        return g.px_per_m * w, 1.0
    dv = max(1e-3, v - g.horizon * h)
    return dv / g.height_m, min(1.0, dv / (g.focal * w))


def to_ground(g: Geometry, size: tuple[int, int], u: float, v: float) -> Point:
    """Frame pixel -> ground metres (x across, z away from the camera or down the frame from above)."""
    w, h = size
    if g.horizon is None:
        s = g.px_per_m * w
        return (u - w / 2) / s, (v - h / 2) / s
    dv = max(1e-3, v - g.horizon * h)
    return (u - g.vanish_x * w) * g.height_m / dv, g.focal * w * g.height_m / dv


def to_image(g: Geometry, size: tuple[int, int], x: float, z: float) -> Point:
    """Ground metres -> frame pixel; ``to_image(to_ground(p)) == p``.

    >>> g, size = Geometry(horizon=0.3, vanish_x=0.5, height_m=8), (640, 360)
    >>> [round(c, 6) for c in to_image(g, size, *to_ground(g, size, 100.0, 300.0))]
    [100.0, 300.0]
    """
    w, h = size
    if g.horizon is None:
        s = g.px_per_m * w
        return x * s + w / 2, z * s + h / 2
    dv = g.focal * w * g.height_m / z
    return g.vanish_x * w + x * dv / g.height_m, g.horizon * h + dv


def polygon_area(points: list[Point] | npt.NDArray) -> float:
    """Shoelace area.

    >>> polygon_area([(0, 0), (4, 0), (4, 3)])
    6.0
    """
    pts = [(float(x), float(y)) for x, y in points]
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1]))) / 2


def box_inside(box: Box, polygon: list[Point]) -> bool:
    """Every corner of ``box`` (x1, y1, x2, y2) inside or on ``polygon`` (pixels)."""
    contour = np.asarray(polygon, np.float32).reshape(-1, 1, 2)
    x1, y1, x2, y2 = box
    return all(
        cv2.pointPolygonTest(contour, (float(x), float(y)), False) >= 0
        for x, y in ((x1, y1), (x2, y1), (x1, y2), (x2, y2))
    )


def raster(polygon: list[Point], size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """A polygon (pixels) as a 0/1 mask of the frame."""
    mask = np.zeros((size[1], size[0]), np.uint8)
    cv2.fillPoly(mask, [np.round(np.asarray(polygon) * 4).astype(np.int32)], 1, cv2.LINE_8, shift=2)
    return mask


def object_box(g: Geometry, size: tuple[int, int], u: float, v: float, dims: tuple[float, float, float]) -> Box:
    """The frame box of an object whose ground footprint (width, depth metres) is centred at pixel
    (u, v) and which stands ``dims[2]`` metres high."""
    pxm, flat = ground_scale(g, size, v)
    w, d, hgt = dims
    ground_h = d * pxm * flat
    up = hgt * pxm * math.sqrt(max(0.0, 1 - flat * flat))
    return (round(u - w * pxm / 2), round(v - ground_h / 2 - up), round(u + w * pxm / 2), round(v + ground_h / 2))
