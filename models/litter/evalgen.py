"""The EVALUATION generator: garbage piles, spills and street furniture drawn independently of
``synth.py``, for judging the detector on objects it cannot have memorised. Never used for training.

    python models/litter/evalgen.py clips --out data/eval/cross/clips [--count 8] [--seed 99]
    python models/litter/evalgen.py clips --other-scenes --out data/eval/cross-other/clips [--count 9]
    python models/litter/evalgen.py stills --out data/eval/cross/stills [--count 300] [--seed 98]

How it differs from ``synth.py`` (procedural colours and noise in ellipses and blobs):
- **textures cut from real photographs of materials** (``fetch_eval_sources.sh``: GIMP's paper,
  burlap, soil and stone patterns, scikit-image's gravel and coffee, opencv-doc's fruit, sweets,
  graffiti and packaging photos), tinted and shaded by a light direction;
- **other outlines**: star-shaped polygons from a radial Fourier series (bags), perspective
  quadrilaterals (cartons, paper), capsules (bottles), thresholded smoothed random fields with
  satellite drops (spills);
- **a ground plane**: size and vertical flattening follow the row on the ground (a horizon per
  scene), piles cast a shadow along the scene's sun direction, wet spills darken the ground and
  mirror a blurred patch of the picture above them (sheen), oil gets a thin-film hue;
- **street furniture** drawn as hard negatives that stand there from the first frame: bollards,
  cones, manhole covers, drain grates, road arrows;
- **the camera**: lighting drift, sensor noise, camera-shake motion blur on some frames, and H.264
  at 250 kb/s, 600 kb/s or 1.5 Mb/s (key frame every 2 s) through ffmpeg;
- **its own scenes**: places on the PETS campus camera that the composed fixture does not use, and
  the concrete floor of a garage photo (light ground, animated), for light-on-light spills; and,
  with ``--other-scenes``, roads no rule or model choice has looked at with litter on them
  (``OTHER_SCENES``: a motorway, a dual carriageway from an overpass, a patched junction; the
  real clean footage of ``fetch_clean_footage.sh``).
Zones are drawn around each object, 7-8x its box area, watching both garbage and spill;
persistence 10 s, clear 5 s. Ground truth is written next to each clip (``*.truth.yaml``) and, for
stills, as YOLO labels (``labels/test/*.txt``; furniture is unlabelled: background).

>>> tex = Textures.synthetic()
>>> rng = np.random.default_rng(0)
>>> obj = draw_object(rng, tex, "garbage", 80, 60)
>>> obj.rgb.shape, obj.alpha.shape, bool(0 < obj.alpha.max() <= 1)
((60, 80, 3), (60, 80), True)
"""

from __future__ import annotations

import argparse
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "data/litter/evalsrc"
PERSISTENCE_S, CLEAR_S = 10.0, 5.0
BITRATES = ("250k", "600k", "1500k")
FURNITURE = ("bollard", "cone", "manhole", "grate", "arrow")


def read_pat(path: Path) -> np.ndarray:
    """A GIMP pattern file (``GPAT``: big-endian header, then raw grey/RGB/RGBA rows) as BGR.

    >>> import tempfile, os
    >>> raw = struct.pack(">5I", 26, 1, 2, 1, 3) + b"GPAT" + b"x\\x00" + bytes([10, 20, 30, 40, 50, 60])
    >>> f = tempfile.NamedTemporaryFile(suffix=".pat", delete=False); _ = f.write(raw); f.close()
    >>> read_pat(Path(f.name)).tolist(); os.unlink(f.name)
    [[[30, 20, 10], [60, 50, 40]]]
    """
    data = path.read_bytes()
    header, _, w, h, depth = struct.unpack(">5I", data[:20])
    pixels = np.frombuffer(data[header:header + w * h * depth], np.uint8).reshape(h, w, depth)
    if depth in (1, 2):
        return cv2.cvtColor(np.ascontiguousarray(pixels[..., 0]), cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(np.ascontiguousarray(pixels[..., :3]), cv2.COLOR_RGB2BGR)


@dataclass
class Textures:
    """Real material photographs by use: ``wrap`` (bags, sacks, paper), ``card`` (cartons, packaging),
    ``food`` (peel, sweets), ``grain`` (sand, soil, gravel), ``liquid`` (coffee, paint colours)."""

    wrap: list[np.ndarray]
    card: list[np.ndarray]
    food: list[np.ndarray]
    grain: list[np.ndarray]
    liquid: list[np.ndarray]

    @classmethod
    def load(cls, folder: Path = SOURCES / "textures") -> "Textures":
        if not folder.exists():
            sys.exit(f"no textures under {folder}: run models/litter/fetch_eval_sources.sh first")

        def pat(name):
            return read_pat(folder / f"gimp-{name}.pat")

        def img(name, box=None):
            im = cv2.imread(str(folder / name))
            if box:
                h, w = im.shape[:2]
                im = im[int(box[1] * h):int(box[3] * h), int(box[0] * w):int(box[2] * w)]
            return im

        return cls(
            wrap=[pat(n) for n in ("crinklepaper", "paper", "burlap", "leather")] + [img("skimage-grass.png")],
            card=[pat(n) for n in ("corkboard", "bark")] + [img("ocv-box_in_scene.png"), img("ocv-graf1.png"),
                                                             img("skimage-motorcycle_left.png", (0.78, 0.05, 0.98, 0.35))],
            food=[img("ocv-fruits.jpg"), img("ocv-smarties.png"), img("ocv-orange.jpg")],
            grain=[pat(n) for n in ("ground1", "terra", "rock", "stone33", "granite1", "slate", "cracked")]
            + [img("skimage-gravel.png"), img("skimage-brick.png")],
            liquid=[img("skimage-coffee.png", (0.35, 0.25, 0.6, 0.45)), pat("java")],
        )

    @classmethod
    def synthetic(cls) -> "Textures":
        """Stand-in textures for doctests only (plain noise)."""
        rng = np.random.default_rng(1)
        t = [rng.integers(40, 220, (32, 32, 3)).astype(np.uint8) for _ in range(2)]
        return cls(t, t, t, t, t)


def _patch(rng: np.random.Generator, texture: np.ndarray, w: int, h: int) -> np.ndarray:
    """A w x h float patch of ``texture``: tiled as needed, randomly rotated by 90s and offset."""
    t = np.rot90(texture, int(rng.integers(4))).astype(np.float32)
    scale = rng.uniform(0.3, 0.8)
    t = cv2.resize(t, (max(2, int(t.shape[1] * scale)), max(2, int(t.shape[0] * scale))))
    reps = (h // t.shape[0] + 2, w // t.shape[1] + 2, 1)
    big = np.tile(t, reps)
    y, x = int(rng.integers(0, t.shape[0])), int(rng.integers(0, t.shape[1]))
    return big[y:y + h, x:x + w]


def _tint(rng: np.random.Generator, patch: np.ndarray, colour: np.ndarray | None, keep: float) -> np.ndarray:
    """Keep the texture's relief, move its mean colour toward ``colour`` (BGR) by 1 - keep."""
    if colour is None:
        return patch
    grey = patch.mean(axis=2, keepdims=True)
    relief = grey / max(1.0, float(grey.mean()))
    return keep * patch + (1 - keep) * relief * colour


def _radial_polygon(rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float, k: int = 40) -> np.ndarray:
    """A star-shaped outline: radius 1 + a few random Fourier harmonics, k points."""
    a = np.linspace(0, 2 * np.pi, k, endpoint=False)
    r = np.ones(k)
    for n in range(2, 7):
        r += rng.uniform(0, 0.22 / n * 2) * np.cos(n * a + rng.uniform(0, 2 * np.pi))
    r = np.clip(r, 0.45, 1.4)
    return np.stack([cx + rx * r * np.cos(a), cy + ry * r * np.sin(a)], axis=1).astype(np.int32)


def _dome(mask: np.ndarray, light: tuple[float, float]) -> np.ndarray:
    """Shading of a soft dome over ``mask`` lit from direction ``light`` (dx, dy): 0.55..1.25."""
    dist = cv2.distanceTransform((mask > 0.5).astype(np.uint8), cv2.DIST_L2, 3)
    height = np.sqrt(dist / max(1.0, float(dist.max())))
    gy, gx = np.gradient(cv2.GaussianBlur(height, (0, 0), 1.5))
    lit = 1.0 - 6.0 * (gx * light[0] + gy * light[1])
    return np.clip(0.85 + 0.35 * (lit - 1) + 0.15 * height, 0.55, 1.25)


@dataclass
class Drawn:
    """An object to put on the ground: colour and coverage, a multiplier for the ground under it
    (wet, oil, shadow), and an optional sheen (0..1) that mirrors the picture above."""

    rgb: np.ndarray  # HxWx3 float32 BGR
    alpha: np.ndarray  # HxW float32 0..1
    ground: np.ndarray  # HxW float32 multiplier (1 = unchanged)
    sheen: np.ndarray  # HxW float32 0..1
    labelled: bool = True


def _new(w: int, h: int) -> Drawn:
    return Drawn(np.zeros((h, w, 3), np.float32), np.zeros((h, w), np.float32), np.ones((h, w), np.float32),
                 np.zeros((h, w), np.float32))


def _lay(d: Drawn, mask: np.ndarray, fill: np.ndarray) -> None:
    m = mask[..., None]
    d.rgb[:] = d.rgb * (1 - m) + fill * m
    d.alpha[:] = np.maximum(d.alpha, mask)


def _garbage(rng: np.random.Generator, tex: Textures, w: int, h: int, light) -> Drawn:
    d = _new(w, h)
    items = int(rng.integers(6, 17))
    for i in range(items):
        cy = h * rng.uniform(0.3, 0.8)
        cx = w * rng.uniform(0.22, 0.78)
        size = w * rng.uniform(0.1, 0.24)
        mask = np.zeros((h, w), np.float32)
        kind = rng.choice(["bag", "bag", "sack", "carton", "paper", "bottle", "peel"])
        if kind in ("bag", "sack"):
            cv2.fillPoly(mask, [_radial_polygon(rng, cx, cy, size, size * rng.uniform(0.6, 0.9))], 1.0, cv2.LINE_AA)
            colour = None if kind == "sack" else rng.choice([
                np.float32([25, 25, 28]), np.float32([235, 235, 230]), np.float32([160, 90, 40]),
                np.float32([60, 150, 70]), np.float32([40, 60, 170]), np.float32([30, 170, 220])])
            fill = _tint(rng, _patch(rng, tex.wrap[int(rng.integers(len(tex.wrap)))], w, h), colour,
                         rng.uniform(0.1, 0.35))
            fill = fill * _dome(mask, light)[..., None]
            spec = (cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 2) > 0.56) * mask
            fill = fill + 70 * spec[..., None] * (colour is not None)
        elif kind in ("carton", "paper"):
            bw, bh = size * rng.uniform(0.9, 1.6), size * rng.uniform(0.5, 1.0) * (0.3 if kind == "paper" else 1)
            skew = rng.uniform(-0.35, 0.35) * bw
            quad = np.float32([[cx - bw / 2 + skew, cy - bh / 2], [cx + bw / 2 + skew, cy - bh / 2],
                               [cx + bw / 2, cy + bh / 2], [cx - bw / 2, cy + bh / 2]])
            quad += rng.normal(0, size * 0.05, quad.shape).astype(np.float32)
            cv2.fillConvexPoly(mask, quad.astype(np.int32), 1.0, cv2.LINE_AA)
            source = tex.card if kind == "carton" else tex.wrap
            colour = np.float32([70, 120, 175]) if kind == "carton" and rng.random() < 0.5 else None
            fill = _tint(rng, _patch(rng, source[int(rng.integers(len(source)))], w, h), colour, 0.4)
            edge = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
            fill = fill * (1 - 0.35 * edge[..., None]) * (1.1 if kind == "paper" else 0.95)
        elif kind == "bottle":
            length, r = size * rng.uniform(0.8, 1.3), max(2, int(size * rng.uniform(0.12, 0.2)))
            ang = rng.uniform(0, np.pi)
            p1 = (int(cx - np.cos(ang) * length / 2), int(cy - np.sin(ang) * length / 2 * 0.6))
            p2 = (int(cx + np.cos(ang) * length / 2), int(cy + np.sin(ang) * length / 2 * 0.6))
            cv2.line(mask, p1, p2, 1.0, 2 * r, cv2.LINE_AA)
            colour = rng.choice([np.float32([60, 140, 60]), np.float32([200, 200, 190]), np.float32([30, 80, 140])])
            fill = np.broadcast_to(colour, (h, w, 3)).astype(np.float32) * _dome(mask, light)[..., None]
            mask *= rng.uniform(0.55, 0.9)
        else:  # peel, sweets, food scraps cut from real photos, in a rough outline
            cv2.fillPoly(mask, [_radial_polygon(rng, cx, cy, size * 0.7, size * 0.5, 16)], 1.0, cv2.LINE_AA)
            fill = _patch(rng, tex.food[int(rng.integers(len(tex.food)))], w, h)
        _lay(d, mask, fill)
    d.alpha[:] = cv2.GaussianBlur(d.alpha, (0, 0), 0.8)
    return d


def _fluid(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A spill outline: smoothed random field, thresholded, biggest part kept, with drops around."""
    field = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), max(2.0, min(w, h) / 7))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    fall = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    field = field / (field.std() + 1e-6) - 2.2 * fall
    mask = (field > rng.uniform(-0.9, -0.3)).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    if n > 1:
        big = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        drops = (labels > 0) & (labels != big) & (stats[labels, cv2.CC_STAT_AREA] < 0.03 * w * h)
        mask = ((labels == big) | drops).astype(np.uint8)
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), max(0.7, min(w, h) / 80))


def _spill(rng: np.random.Generator, tex: Textures, w: int, h: int) -> Drawn:
    d = _new(w, h)
    mask = _fluid(rng, w, h)
    kind = rng.choice(["water", "oil", "sand", "soil", "liquid"])
    if kind == "water":
        d.ground = 1 - mask * rng.uniform(0.2, 0.4)
        d.sheen = mask * rng.uniform(0.15, 0.35)
    elif kind == "oil":
        d.ground = 1 - mask * rng.uniform(0.4, 0.7)
        hue = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), max(2.0, w / 10))
        hue = ((hue - hue.min()) / (np.ptp(hue) + 1e-6) * 179).astype(np.uint8)
        film = cv2.cvtColor(np.dstack([hue, np.full_like(hue, 160), np.full_like(hue, 110)]), cv2.COLOR_HSV2BGR)
        _lay(d, mask * rng.uniform(0.12, 0.3), film.astype(np.float32))
        d.sheen = mask * 0.15
    elif kind in ("sand", "soil"):
        colour = np.float32([150, 195, 215]) if kind == "sand" else np.float32([50, 80, 115])
        colour = colour * np.float32(rng.uniform(0.85, 1.15, 3))
        fill = _tint(rng, _patch(rng, tex.grain[int(rng.integers(len(tex.grain)))], w, h), colour, 0.15)
        grains = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 0.8)
        cover = mask * np.clip(rng.uniform(0.7, 1.0) + 0.6 * (grains - 0.5), 0, 1)
        _lay(d, cover, fill)
        d.ground = 1 - 0.1 * mask
    else:  # coffee, paint or another coloured liquid; a darker rim where it dried
        fill = _patch(rng, tex.liquid[int(rng.integers(len(tex.liquid)))], w, h)
        if rng.random() < 0.5:
            fill = _tint(rng, fill, rng.choice([np.float32([40, 40, 190]), np.float32([200, 200, 200]),
                                                np.float32([40, 170, 200])]), 0.2)
        rim = cv2.morphologyEx((mask > 0.5).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
        fill = fill * (1 - 0.4 * rim[..., None])
        _lay(d, mask * rng.uniform(0.55, 0.85), fill)
        d.sheen = mask * 0.1
    return d


def _furniture(rng: np.random.Generator, kind: str, w: int, h: int, light) -> Drawn:
    """Street furniture: never a pile or a spill (unlabelled background)."""
    d = _new(w, h)
    d.labelled = False
    mask = np.zeros((h, w), np.float32)
    if kind == "bollard":
        x1, x2 = int(w * 0.3), int(w * 0.7)
        cv2.rectangle(mask, (x1, int(h * 0.12)), (x2, h - 2), 1.0, -1)
        cv2.ellipse(mask, (w // 2, int(h * 0.12)), ((x2 - x1) // 2, max(1, h // 20)), 0, 0, 360, 1.0, -1)
        grey = rng.uniform(110, 200)
        xs = np.linspace(-1, 1, w, dtype=np.float32)
        fill = np.broadcast_to((grey * (1.1 - 0.35 * xs * np.sign(light[0] or 1)))[None, :, None], (h, w, 3)).copy()
        if rng.random() < 0.5:  # a reflective band
            fill[int(h * 0.22):int(h * 0.3)] = np.float32([220, 220, 225]) if rng.random() < 0.5 else np.float32([40, 40, 200])
    elif kind == "cone":
        pts = np.int32([[w // 2, 2], [int(w * 0.8), h - 4], [int(w * 0.2), h - 4]])
        cv2.fillConvexPoly(mask, pts, 1.0, cv2.LINE_AA)
        cv2.rectangle(mask, (int(w * 0.1), h - 5), (int(w * 0.9), h - 1), 1.0, -1)
        fill = np.broadcast_to(np.float32([20, 90, 240]), (h, w, 3)).copy()
        fill[int(h * 0.35):int(h * 0.5)] = 235
    elif kind == "manhole":
        cv2.ellipse(mask, (w // 2, h // 2), (w // 2 - 1, h // 2 - 1), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
        base = rng.uniform(35, 80)
        fill = np.full((h, w, 3), base, np.float32) + rng.normal(0, 8, (h, w, 1)).astype(np.float32)
        ring = np.zeros((h, w), np.float32)
        cv2.ellipse(ring, (w // 2, h // 2), (w // 2 - 2, h // 2 - 2), 0, 0, 360, 1.0, max(1, w // 25))
        fill += 40 * ring[..., None]
    elif kind == "grate":
        cv2.rectangle(mask, (0, 0), (w - 1, h - 1), 1.0, -1)
        fill = np.full((h, w, 3), rng.uniform(60, 110), np.float32)
        for x in range(2, w, max(3, w // 8)):
            fill[:, x:x + max(1, w // 16)] = 15
    else:  # a road arrow in white paint
        pts = np.int32([[w // 2, 0], [w - 1, int(h * 0.45)], [int(w * 0.65), int(h * 0.45)], [int(w * 0.65), h - 1],
                        [int(w * 0.35), h - 1], [int(w * 0.35), int(h * 0.45)], [0, int(h * 0.45)]])
        cv2.fillPoly(mask, [pts], 1.0, cv2.LINE_AA)
        fill = np.full((h, w, 3), rng.uniform(200, 240), np.float32)
    _lay(d, mask, fill)
    return d


def draw_object(rng: np.random.Generator, tex: Textures, kind: str, w: int, h: int,
                light: tuple[float, float] = (0.6, -0.5)) -> Drawn:
    """A garbage pile, a spill or a piece of street furniture of w x h pixels."""
    if kind == "garbage":
        return _garbage(rng, tex, w, h, light)
    if kind == "spill":
        return _spill(rng, tex, w, h)
    return _furniture(rng, kind, w, h, light)


def cast_shadow(d: Drawn, sun: tuple[float, float], strength: float) -> np.ndarray:
    """A shadow of an upright object on the ground: its silhouette sheared along ``sun`` (dx, dy per
    pixel of height), blurred, as a ground multiplier the size of the object's box padded 2x."""
    h, w = d.alpha.shape
    big = np.zeros((h * 2, w * 3), np.float32)
    big[h // 2:h // 2 + h, w:2 * w] = d.alpha
    base_y = h // 2 + h
    shear = np.float32([[1, -sun[0], sun[0] * base_y], [0, 1 - sun[1], sun[1] * base_y]])
    shadow = cv2.warpAffine(big, shear, (w * 3, h * 2))
    shadow = cv2.GaussianBlur(shadow, (0, 0), max(1.0, w / 30))
    return 1 - strength * np.clip(shadow, 0, 1)


def put(frame: np.ndarray, d: Drawn, x: int, y: int, keep: np.ndarray | None = None, opacity: float = 1.0,
        shadow: np.ndarray | None = None) -> tuple[int, int, int, int] | None:
    """Composite ``d`` with its top-left at (x, y) into ``frame`` (BGR uint8, in place); pixels where
    ``keep`` is set (a passer-by in front) stay. Returns the visible pixel box or None."""
    H, W = frame.shape[:2]
    h, w = d.alpha.shape
    # work on the padded box only: the shadow box is w*3 x h*2 with the object at (w, h/2)
    bx1, by1, bx2, by2 = max(0, x - w), max(0, y - h // 2), min(W, x + 2 * w), min(H, y + h + h // 2)
    if bx2 <= bx1 or by2 <= by1:
        return None
    out = frame[by1:by2, bx1:bx2].astype(np.float32)
    free = 1 - keep[by1:by2, bx1:bx2].astype(np.float32) if keep is not None else np.ones(out.shape[:2], np.float32)
    if shadow is not None:
        _blend(out, shadow, x - w - bx1, y - h // 2 - by1, free,
               lambda region, s, f: region * (1 - (1 - s[..., None]) * opacity * f[..., None]))
    x1, y1, x2, y2 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x2 <= x1 or y2 <= y1:
        return None
    sl = (slice(y1 - y, y2 - y), slice(x1 - x, x2 - x))
    f = free[y1 - by1:y2 - by1, x1 - bx1:x2 - bx1]
    region = out[y1 - by1:y2 - by1, x1 - bx1:x2 - bx1]
    g = 1 - (1 - d.ground[sl]) * opacity * f
    region *= g[..., None]
    if d.sheen.any():  # mirror the picture above: a blurred, flipped strip, brightened
        above = frame[max(0, y1 - (y2 - y1)):y1, x1:x2].astype(np.float32)
        mirror = cv2.GaussianBlur(cv2.flip(above, 0), (0, 0), 3) * 1.3 + 40 if len(above) else np.full_like(region, 200)
        mirror = cv2.resize(mirror, (x2 - x1, y2 - y1))
        s = (d.sheen[sl] * opacity * f)[..., None]
        region[:] = region * (1 - s) + mirror * s
    a = (d.alpha[sl] * opacity * f)[..., None]
    region[:] = region * (1 - a) + d.rgb[sl] * a
    frame[by1:by2, bx1:bx2] = out.clip(0, 255).astype(np.uint8)
    visible = (d.alpha[sl] * f > 0.3) | (g < 0.88) | (d.sheen[sl] * f > 0.12)
    if visible.sum() < 12:
        return None
    ys, xs = np.nonzero(visible)
    return x1 + int(xs.min()), y1 + int(ys.min()), x1 + int(xs.max()) + 1, y1 + int(ys.max()) + 1


def _blend(out, layer, x, y, free, fn) -> None:
    H, W = out.shape[:2]
    h, w = layer.shape[:2]
    x1, y1, x2, y2 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x2 > x1 and y2 > y1:
        out[y1:y2, x1:x2] = fn(out[y1:y2, x1:x2], layer[y1 - y:y2 - y, x1 - x:x2 - x], free[y1:y2, x1:x2])


# ---- scenes: real footage, a ground plane per scene, places for zones ------------------------------

@dataclass(frozen=True)
class Scene:
    """Real footage and its ground: ``horizon`` (row fraction where the ground meets the sky; below
    0 for a camera looking down), the width in pixels of a 1 m object at the bottom row, places
    (x1, y1, x2, y2 fractions) where litter may lie, and the sun direction for shadows."""

    name: str
    source: str  # file under evalsrc/scenes (or ../clean/ for fetch_clean_footage.sh's)
    horizon: float
    metre_px: float
    places: tuple[tuple[float, float, float, float], ...]
    sun: tuple[float, float]
    still: bool = False
    loop: bool = False  # footage shorter than a clip plays again


SCENES = (
    # the PETS campus camera (people 27 px/m at row 0.3, 50 px/m at 0.5): the lower road and the
    # junction's west side; the footpath by the grass and the road's east side
    Scene("campus-road", "vtest.avi", 0.07, 107, ((0.65, 0.55, 0.85, 0.64), (0.4, 0.37, 0.55, 0.45)), (0.5, 0.25)),
    Scene("campus-yard", "vtest.avi", 0.07, 107, ((0.08, 0.38, 0.3, 0.45), (0.75, 0.35, 0.9, 0.45)), (-0.4, 0.3)),
    Scene("garage-floor", "garage.png", 0.25, 180, ((0.42, 0.86, 0.68, 0.93), (0.04, 0.88, 0.25, 0.95)), (0.6, 0.2),
          still=True),
)
# scenes for a second cross set, added after the rules of issue 10 were changed on faults the first
# showed: real clean footage (fetch_clean_footage.sh's, looped to 30 s), traffic passing over the places
OTHER_SCENES = (
    # lanes 3.7 m, 157 px wide at row 0.92 of 960: 48 px/m at the bottom row
    Scene("motorway", "../clean/motorway.mp4", 0.30, 48, ((0.08, 0.62, 0.35, 0.75), (0.62, 0.62, 0.85, 0.75)),
          (0.5, 0.2), loop=True),
    # 352x288, greyish: two lanes and a shoulder, 10 m in 134 px at the bottom
    Scene("speedway", "../clean/speedway.mp4", 0.12, 14, ((0.12, 0.65, 0.3, 0.8), (0.62, 0.62, 0.8, 0.78)),
          (0.4, 0.3), loop=True),
    # seen steeply from above: dark crack sealing on the pavement (lower left), grey road (right)
    Scene("junction", "../clean/junction-truck.mp4", 0.05, 62, ((0.1, 0.72, 0.35, 0.85), (0.5, 0.42, 0.72, 0.52)),
          (-0.4, 0.3), loop=True),
)


def _scene_frames(scene: Scene, seconds: float, fps: float) -> tuple[list[np.ndarray], float]:
    path = SOURCES / "scenes" / scene.source
    if scene.still:  # a photograph brought to life: slow lighting drift, sensor noise, a slight sway
        still = cv2.imread(str(path))
        still = cv2.resize(still, (768, int(768 * still.shape[0] / still.shape[1])))
        n = int(seconds * fps)
        return [still.copy() for _ in range(n)], fps
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    if scene.loop:  # played again to ``seconds`` (the same arrays, no copies)
        frames = (frames * int(np.ceil(seconds * fps / len(frames))))[:int(seconds * fps)]
    return frames, fps


def _movers(frames: list[np.ndarray]) -> list[np.ndarray]:
    """What moves in front of the ground (people, cars): a MOG2 background model, run forwards."""
    sub = cv2.createBackgroundSubtractorMOG2(history=200, varThreshold=25, detectShadows=False)
    for f in frames[:: max(1, len(frames) // 50)]:
        sub.apply(f, learningRate=0.05)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    return [cv2.dilate((sub.apply(f, learningRate=0.002) > 0).astype(np.uint8), kernel) for f in frames]


def _size_at(scene: Scene, y: float, metres: float, H: int) -> tuple[float, float]:
    """Pixel width of ``metres`` at row fraction ``y`` and the vertical flattening of the ground there."""
    depth = (y - scene.horizon) / (1 - scene.horizon)
    return metres * scene.metre_px * depth, float(np.clip(0.25 + 0.6 * depth, 0.25, 0.85))


def _zone_around(rng: np.random.Generator, box: tuple[int, int, int, int], W: int, H: int) -> list[list[float]]:
    """A ground trapezoid around ``box`` with 7-8x its area, the box off-centre inside it."""
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    target = rng.uniform(7, 8) * bw * bh
    aspect = rng.uniform(1.4, 2.6)  # zones run along the kerb
    zh = (target / aspect) ** 0.5
    zw = target / zh
    cx = (x1 + x2) / 2 + rng.uniform(-0.25, 0.25) * (zw - bw)
    cy = (y1 + y2) / 2 + rng.uniform(-0.25, 0.25) * (zh - bh)
    lean = rng.uniform(-0.15, 0.15) * zw
    pts = [(cx - zw / 2 + lean, cy - zh / 2), (cx + zw / 2 + lean, cy - zh / 2), (cx + zw / 2 - lean, cy + zh / 2),
           (cx - zw / 2 - lean, cy + zh / 2)]
    return [[round(float(np.clip(x / W, 0, 1)), 4), round(float(np.clip(y / H, 0, 1)), 4)] for x, y in pts]


def plan_clip(rng: np.random.Generator, scene: Scene, W: int, H: int, duration: float) -> dict:
    """One staged object per place (a pile or a spill), street furniture in some zones from the start."""
    objects, zones = [], []
    for i, (px1, py1, px2, py2) in enumerate(scene.places):
        kind = "garbage" if rng.random() < 0.5 else "spill"
        y = rng.uniform(py1, py2)
        metres = rng.uniform(1.0, 1.8) if kind == "garbage" else rng.uniform(1.2, 2.6)
        width, flat = _size_at(scene, y, metres, H)
        w = int(np.clip(width, 24, W * 0.25))
        h = min(int(H * 0.2), max(12, int(w * (flat * rng.uniform(1.0, 1.4) if kind == "garbage" else flat * rng.uniform(0.8, 1.1)))))
        x = int(np.clip(rng.uniform(px1, px2) * W - w / 2, 2, W - w - 2))
        top = int(np.clip(y * H - h / 2, 2, H - h - 2))
        appear = round(float(rng.uniform(4, 18)), 1)
        clear = round(float(min(duration - 16, appear + PERSISTENCE_S + rng.uniform(15, 35))), 1)
        box = (x, top, x + w, top + h)
        zone_id = f"litter-{i + 1}"
        zones.append({"id": zone_id, "types": ["garbage", "spill"], "persistence_s": PERSISTENCE_S, "clear_s": CLEAR_S,
                      "polygon": _zone_around(rng, box, W, H)})
        objects.append({"type": kind, "zone": zone_id, "box_px": list(box), "appear_s": appear, "clear_s": clear})
        if rng.random() < 0.6:  # a piece of street furniture beside it, there all along
            fk = FURNITURE[int(rng.integers(len(FURNITURE)))]
            fw = int(np.clip(_size_at(scene, y, 0.35 if fk in ("bollard", "cone") else 0.7, H)[0], 12, W * 0.12))
            fh = int(fw * (2.2 if fk in ("bollard", "cone") else _size_at(scene, y, 1, H)[1]))
            fx = x + w + int(rng.uniform(0.3, 1.0) * w) if rng.random() < 0.5 else x - fw - int(rng.uniform(0.3, 1.0) * w)
            fx = int(np.clip(fx, 2, W - fw - 2))
            objects.append({"type": fk, "zone": zone_id, "box_px": [fx, top + h - fh, fx + fw, top + h],
                            "appear_s": 0.0, "clear_s": duration + 1})
    return {"objects": objects, "zones": zones}


def compose_clip(rng: np.random.Generator, tex: Textures, scene: Scene, name: str, out: Path,
                 seconds: float = 80.0) -> dict:
    frames, fps = _scene_frames(scene, seconds, 10.0)
    H, W = frames[0].shape[:2]
    duration = len(frames) / fps
    plan = plan_clip(rng, scene, W, H, duration)
    movers = _movers(frames) if not scene.still else [None] * len(frames)
    drawn = []
    for o in plan["objects"]:
        x1, y1, x2, y2 = o["box_px"]
        d = draw_object(rng, tex, o["type"], x2 - x1, y2 - y1, light=scene.sun)
        upright = o["type"] in ("garbage", "bollard", "cone")
        drawn.append((d, cast_shadow(d, scene.sun, rng.uniform(0.3, 0.5)) if upright else None))
    bitrate = BITRATES[int(rng.integers(len(BITRATES)))]
    enc = subprocess.Popen(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{W}x{H}", "-r", f"{fps}",
         # one thread: x264's rate control with several threads gives other pictures on every run
         # (measured: mean 0.8 grey levels apart), and the figures then move by an object
         "-i", "-", "-c:v", "libx264", "-threads", "1", "-preset", "veryfast", "-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate,
         "-g", str(int(2 * fps)), "-keyint_min", str(int(2 * fps)), "-sc_threshold", "0", "-pix_fmt", "yuv420p",
         str(out / f"{name}.mp4")], stdin=subprocess.PIPE)
    drift = rng.uniform(0.03, 0.1)
    period = rng.uniform(20, 60)
    shake = set(rng.choice(len(frames), size=len(frames) // 25, replace=False).tolist())
    for i, (frame, keep) in enumerate(zip(frames, movers)):
        t = i / fps
        frame = frame.copy()
        for o, (d, shadow) in zip(plan["objects"], drawn):
            if o["appear_s"] <= t < o["clear_s"]:
                fade = min(1.0, (t - o["appear_s"]) / 0.8 + 0.25) if o["appear_s"] > 0 else 1.0
                put(frame, d, o["box_px"][0], o["box_px"][1], keep, fade, shadow)
        img = frame.astype(np.float32) * (1 + drift * np.sin(2 * np.pi * t / period))
        if scene.still:
            img += rng.normal(0, 2.5, img.shape).astype(np.float32)
            sway = np.float32([[1, 0, 0.6 * np.sin(t / 3)], [0, 1, 0.4 * np.cos(t / 4)]])
            img = cv2.warpAffine(img, sway, (W, H), borderMode=cv2.BORDER_REFLECT)
        if i in shake:  # a gust shakes the pole: motion blur along a random direction
            k = np.zeros((9, 9), np.float32)
            ang = rng.uniform(0, np.pi)
            cv2.line(k, (int(4 - 4 * np.cos(ang)), int(4 - 4 * np.sin(ang))),
                     (int(4 + 4 * np.cos(ang)), int(4 + 4 * np.sin(ang))), 1.0, 1)
            img = cv2.filter2D(img, -1, k / k.sum())
        enc.stdin.write(img.clip(0, 255).astype(np.uint8).tobytes())
    enc.stdin.close()
    if enc.wait() != 0:
        sys.exit(f"ffmpeg failed writing {out / name}.mp4")
    url = out / f"{name}.mp4"
    truth = {
        "composed": True,
        "source": f"{scene.source} + models/litter/evalgen.py (the evaluation generator), H.264 {bitrate}b/s",
        "camera": {"id": name, "url": str(url), "grid": "HQ-DZG-10D-07", "analysis_interval_s": 1.0,
                   "zones": plan["zones"]},
        "expect": [{"zone": o["zone"], "type": o["type"], "count": 1, "appear_s": o["appear_s"], "clear_s": o["clear_s"],
                    "start_after_s": round(o["appear_s"] + PERSISTENCE_S, 1), "box_px": o["box_px"]}
                   for o in plan["objects"] if o["type"] in ("garbage", "spill")],
        "furniture": [{"zone": o["zone"], "type": o["type"], "box_px": o["box_px"]}
                      for o in plan["objects"] if o["type"] in FURNITURE],
    }
    (out / f"{name}.truth.yaml").write_text(
        "# COMPOSED clip, written by models/litter/evalgen.py (evaluation only); do not edit by hand\n"
        + yaml.safe_dump(truth, sort_keys=False, default_flow_style=None, width=120))
    return truth


def compose_still(rng: np.random.Generator, tex: Textures, frames: dict[str, list[np.ndarray]], side: int = 416):
    """A detector test image: a crop of a scene frame around its places with 1-3 objects and
    sometimes furniture; labels [(class, cx, cy, w, h)] normalised, furniture unlabelled."""
    scene = SCENES[int(rng.integers(len(SCENES)))]
    pool = frames[scene.name]
    frame = pool[int(rng.integers(len(pool)))].copy()
    H, W = frame.shape[:2]
    boxes = []
    for _ in range(int(rng.integers(1, 4))):
        px1, py1, px2, py2 = scene.places[int(rng.integers(len(scene.places)))]
        kind = ["garbage", "spill", FURNITURE[int(rng.integers(len(FURNITURE)))]][int(rng.choice(3, p=[0.4, 0.4, 0.2]))]
        y = rng.uniform(py1, py2)
        width, flat = _size_at(scene, y, rng.uniform(0.9, 2.4) if kind in ("garbage", "spill") else 0.5, H)
        w = int(np.clip(width, 20, W * 0.3))
        h = max(10, int(w * (flat * 1.2 if kind == "garbage" else 2.2 if kind in ("bollard", "cone") else flat)))
        x, top = int(rng.uniform(px1, px2) * W - w / 2), int(y * H - h / 2)
        if any(x < b[2] and b[0] < x + w and top < b[3] and b[1] < top + h for _, b in boxes):
            continue
        d = draw_object(rng, tex, kind, w, h, light=scene.sun)
        shadow = cast_shadow(d, scene.sun, 0.4) if kind in ("garbage", "bollard", "cone") else None
        box = put(frame, d, x, top, None, 1.0, shadow)
        if box is not None:
            boxes.append((kind, box))
    # a crop around the objects, as the edge tiles a zone
    xs = [b[0] for _, b in boxes] + [b[2] for _, b in boxes]
    ys = [b[1] for _, b in boxes] + [b[3] for _, b in boxes]
    span = int(min(H, W, max(side * 0.6, (max(xs) - min(xs)) * 1.4, (max(ys) - min(ys)) * 1.4)))
    cx, cy = (min(xs) + max(xs)) / 2 + rng.uniform(-0.15, 0.15) * span, (min(ys) + max(ys)) / 2
    x0 = int(np.clip(cx - span / 2, 0, W - span))
    y0 = int(np.clip(cy - span / 2, 0, H - span))
    crop = cv2.resize(frame[y0:y0 + span, x0:x0 + span], (side, side), interpolation=cv2.INTER_AREA)
    labels = []
    for kind, (x1, y1, x2, y2) in boxes:
        if kind not in ("garbage", "spill"):
            continue
        x1, y1, x2, y2 = max(x1 - x0, 0), max(y1 - y0, 0), min(x2 - x0, span), min(y2 - y0, span)
        if x2 - x1 > 4 and y2 - y1 > 4:
            labels.append((("garbage", "spill").index(kind), (x1 + x2) / 2 / span, (y1 + y2) / 2 / span,
                           (x2 - x1) / span, (y2 - y1) / span))
    return crop, labels


def make_stills(rng: np.random.Generator, tex: Textures, count: int, out: Path) -> int:
    frames = {}
    for scene in SCENES:
        all_frames, _ = _scene_frames(scene, 10, 1)
        frames[scene.name] = all_frames[:: max(1, len(all_frames) // 40)]
    (out / "images/test").mkdir(parents=True, exist_ok=True)
    (out / "labels/test").mkdir(parents=True, exist_ok=True)
    objects = 0
    for i in range(count):
        image, labels = compose_still(rng, tex, frames)
        q = [30, 50, 75][int(rng.integers(3))]
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, q])
        (out / f"images/test/x-{i:05d}.jpg").write_bytes(jpeg.tobytes())
        (out / f"labels/test/x-{i:05d}.txt").write_text(
            "".join(f"{c} {cx:.5f} {cy:.5f} {bw:.5f} {bh:.5f}\n" for c, cx, cy, bw, bh in labels))
        objects += len(labels)
    return objects


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["clips", "stills"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--seed", type=int, default=99)
    ap.add_argument("--other-scenes", action="store_true", help="clips on OTHER_SCENES (clean footage's roads)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    tex = Textures.load()
    if args.what == "stills":
        n = make_stills(rng, tex, args.count or 300, args.out)
        print(f"evalgen stills: {args.count or 300} images, {n} objects in {args.out}")
        return
    scenes = OTHER_SCENES if args.other_scenes else SCENES
    for i in range(args.count or 8):
        scene = scenes[i % len(scenes)]
        truth = compose_clip(rng, tex, scene, f"x-{scene.name}-{i}", args.out)
        print(f"evalgen clip x-{scene.name}-{i}: " + ", ".join(
            f"{e['type']} in {e['zone']} {e['appear_s']}-{e['clear_s']} s" for e in truth["expect"])
            + f"; furniture: {[f['type'] for f in truth['furniture']]}")


if __name__ == "__main__":
    main()
