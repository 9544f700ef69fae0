"""Procedural garbage piles and road spills, composited onto real background frames.

Used by the training-set generator (``make_dataset.py``) and by the composed fixture
clips (``fixtures/videos/make_composed.py``). Everything is drawn from a seeded
``numpy.random.Generator``; no file is read here.

An object is a ``Layer``: a paint layer (colour and alpha, e.g. bags and sand) over a
shade layer (a factor that darkens the ground, e.g. shadows, oil and wet patches).

Texture families are split so a held-out set can use colours and grain the training
set never saw: ``family="train"`` draws hues from even 20-degree bands and fine grain,
``family="heldout"`` from the odd bands and coarse grain.

>>> rng = np.random.default_rng(0)
>>> layer = render(rng, "garbage", 120, 80, "train")
>>> layer.colour.shape, layer.alpha.shape, bool(0 < layer.alpha.max() <= 1)
((80, 120, 3), (80, 120), True)
>>> ground = np.full((200, 300, 3), 128, np.uint8)
>>> box = composite(ground, layer, 50, 60)
>>> box is not None and int(ground[60:140, 50:170].std()) > 5
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Kind = Literal["garbage", "spill"]
Family = Literal["train", "heldout"]
CLASSES = ("garbage", "spill")


@dataclass(frozen=True)
class Layer:
    colour: np.ndarray  # HxWx3 float32 BGR 0..255
    alpha: np.ndarray  # HxW float32 0..1, paint coverage
    shade: np.ndarray  # HxW float32, multiplies the ground (1 = unchanged)


def _hue_colour(rng: np.random.Generator, family: Family, sat=(0.3, 1.0), val=(0.25, 0.95)) -> np.ndarray:
    band = int(rng.integers(0, 9)) * 2 + (0 if family == "train" else 1)  # 18 bands of 20 degrees
    hue = (band * 20 + rng.uniform(0, 20)) / 2  # OpenCV hue is 0..180
    hsv = np.uint8([[[hue, rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _grey(rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    v = rng.uniform(lo, hi)
    return np.float32([v, v, v]) * rng.uniform(0.9, 1.1, 3).astype(np.float32)


def _noise(rng: np.random.Generator, h: int, w: int, family: Family) -> np.ndarray:
    """Smooth noise in -1..1; the families differ in grain."""
    cells = int(rng.integers(6, 14)) if family == "train" else int(rng.integers(2, 5))
    small = rng.uniform(-1, 1, (max(2, h * cells // max(w, 1) + 1), cells)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(-1, 1)


def _blob(rng: np.random.Generator, h: int, w: int, roughness: float) -> np.ndarray:
    """A random filled blob touching most of an h x w box, as a 0..1 mask."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    warp = cv2.resize(rng.uniform(-1, 1, (5, 5)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    fine = cv2.resize(rng.uniform(-1, 1, (12, 12)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    mask = (r + 0.35 * warp + roughness * fine < 0.85).astype(np.float32)
    return cv2.GaussianBlur(mask, (0, 0), max(0.6, min(h, w) / 60))


def _ellipse(mask_shape, centre, axes, angle) -> np.ndarray:
    m = np.zeros(mask_shape, np.uint8)
    cv2.ellipse(m, (int(centre[0]), int(centre[1])), (max(1, int(axes[0])), max(1, int(axes[1]))),
                angle, 0, 360, 255, -1, cv2.LINE_AA)
    return m.astype(np.float32) / 255


def _paint(colour, alpha, mask, fill, shading=None):
    """Paint ``fill`` (BGR or HxWx3) where ``mask`` is, over what is painted already."""
    fill = np.broadcast_to(fill, colour.shape) if np.ndim(fill) == 1 else fill
    if shading is not None:
        fill = fill * shading[..., None]
    m = mask[..., None]
    colour[:] = colour * (1 - m) + fill * m
    alpha[:] = np.maximum(alpha, mask)


def _garbage(rng: np.random.Generator, w: int, h: int, family: Family) -> Layer:
    colour = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # a soft contact shadow under the pile
    shade = 1 - rng.uniform(0.2, 0.45) * _ellipse((h, w), (w / 2, h * 0.7), (w * 0.45, h * 0.27), 0)
    shade = cv2.GaussianBlur(shade, (0, 0), max(1.0, w / 25))
    n = int(rng.integers(4, 14))
    items = sorted(((rng.uniform(0.25, 0.75) * w, rng.uniform(0.35, 0.75) * h) for _ in range(n)), key=lambda p: p[1])
    grain = _noise(rng, h, w, family)
    for cx, cy in items:
        kind = rng.choice(["bag", "bag", "box", "bottle", "litter", "debris"])
        size = rng.uniform(0.18, 0.4) * w
        if kind == "bag":
            fill = _grey(rng, 15, 60) if rng.random() < 0.35 else \
                _grey(rng, 190, 245) if rng.random() < 0.3 else _hue_colour(rng, family)
            ax, ay = size * rng.uniform(0.7, 1.0), size * rng.uniform(0.55, 0.85)
            mask = _ellipse((h, w), (cx, cy), (ax, ay), rng.uniform(-30, 30))
            light = 1.15 - 0.45 * ((yy - (cy - ay)) / (2 * ay + 1)).clip(0, 1) + 0.12 * grain
            _paint(colour, alpha, mask, fill, light)
            hl = _ellipse((h, w), (cx - ax * 0.3, cy - ay * 0.4), (ax * 0.2, ay * 0.12), rng.uniform(-30, 30))
            _paint(colour, alpha, hl * mask * rng.uniform(0.3, 0.7), np.float32([240, 240, 240]))
            knot = _ellipse((h, w), (cx + rng.uniform(-0.2, 0.2) * ax, cy - ay), (ax * 0.18, ay * 0.25), 0)
            _paint(colour, alpha, knot, fill * 0.8)
        elif kind == "box":
            fill = np.float32([60, 110, 160]) * rng.uniform(0.7, 1.2) if rng.random() < 0.6 else _hue_colour(rng, family)
            bw, bh = size * rng.uniform(0.8, 1.4), size * rng.uniform(0.5, 0.9)
            top = bh * rng.uniform(0.25, 0.45)
            rect = np.zeros((h, w), np.float32)
            cv2.rectangle(rect, (int(cx - bw / 2), int(cy - bh / 2 + top)), (int(cx + bw / 2), int(cy + bh / 2)), 1.0, -1)
            lid = np.zeros((h, w), np.float32)
            skew = bw * rng.uniform(0.1, 0.3)
            pts = np.int32([[cx - bw / 2, cy - bh / 2 + top], [cx + bw / 2, cy - bh / 2 + top],
                            [cx + bw / 2 + skew, cy - bh / 2], [cx - bw / 2 + skew, cy - bh / 2]])
            cv2.fillConvexPoly(lid, pts, 1.0, cv2.LINE_AA)
            _paint(colour, alpha, rect, fill, 0.85 + 0.1 * grain)
            _paint(colour, alpha, lid, fill, 1.15 + 0.1 * grain)
            if rng.random() < 0.5:  # packing tape
                tape = np.zeros((h, w), np.float32)
                cv2.line(tape, (int(cx), int(cy - bh / 2 + top)), (int(cx), int(cy + bh / 2)), 1.0, max(1, int(bw / 12)))
                _paint(colour, alpha, tape * rect, np.float32([200, 210, 215]))
        elif kind == "bottle":
            fill = _hue_colour(rng, family, sat=(0.2, 0.7), val=(0.6, 1.0))
            mask = _ellipse((h, w), (cx, cy), (size * 0.5, size * 0.14), rng.uniform(0, 180))
            _paint(colour, alpha, mask * rng.uniform(0.6, 0.95), fill, 1.0 + 0.2 * grain)
        elif kind == "litter":
            fill = _grey(rng, 200, 250) if rng.random() < 0.5 else _hue_colour(rng, family, val=(0.6, 1.0))
            pts = np.int32([[cx + rng.uniform(-1, 1) * size * 0.5, cy + rng.uniform(-1, 1) * size * 0.3]
                            for _ in range(int(rng.integers(3, 7)))])
            mask = np.zeros((h, w), np.float32)
            cv2.fillPoly(mask, [cv2.convexHull(pts)], 1.0, cv2.LINE_AA)
            _paint(colour, alpha, mask, fill, 1.0 + 0.1 * grain)
        else:  # construction debris: grey-brown rubble with grain
            fill = _grey(rng, 80, 170) * np.float32(rng.uniform(0.85, 1.1, 3))
            mask = _blob(rng, h, w, 0.5) * _ellipse((h, w), (cx, cy), (size * 0.8, size * 0.5), 0)
            _paint(colour, alpha, mask, fill, 1.0 + 0.35 * grain)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 0.7)
    return Layer(colour.clip(0, 255), alpha.clip(0, 1), shade.astype(np.float32))


def _spill(rng: np.random.Generator, w: int, h: int, family: Family) -> Layer:
    colour = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w), np.float32)
    blob = _blob(rng, h, w, rng.uniform(0.2, 0.6))
    grain = _noise(rng, h, w, family)
    kind = rng.choice(["oil", "wet", "sand", "soil", "gravel", "paint"])
    shade = np.ones((h, w), np.float32)
    if kind == "oil":
        shade = 1 - blob * rng.uniform(0.45, 0.75) * (1 + 0.15 * grain)
        sheen = (np.sin(grain * rng.uniform(6, 12)) * 0.5 + 0.5) * blob * rng.uniform(0.1, 0.3)
        _paint(colour, alpha, sheen, _hue_colour(rng, family, sat=(0.3, 0.7), val=(0.4, 0.7)))
    elif kind == "wet":
        shade = 1 - blob * rng.uniform(0.2, 0.45) * (1 + 0.1 * grain)
    elif kind in ("sand", "soil", "gravel"):
        base = {"sand": np.float32([120, 180, 210]), "soil": np.float32([45, 75, 110]),
                "gravel": np.float32([140, 145, 150])}[kind] * np.float32(rng.uniform(0.8, 1.15, 3))
        speck = rng.uniform(0.7, 1.3, (h, w)).astype(np.float32)
        if kind == "gravel":
            speck = cv2.resize(rng.uniform(0.5, 1.4, (h // 3 + 1, w // 3 + 1)).astype(np.float32), (w, h),
                               interpolation=cv2.INTER_NEAREST)
        cover = blob * (rng.uniform(0.75, 1.0) + 0.2 * grain).clip(0, 1)
        ragged = (rng.random((h, w)) < 0.85 + 0.15 * blob).astype(np.float32)
        _paint(colour, alpha, cover * ragged, base, speck * (1 + 0.15 * grain))
        shade = 1 - 0.15 * cv2.GaussianBlur(blob, (0, 0), 2)
    else:  # paint or another coloured liquid
        _paint(colour, alpha, blob * rng.uniform(0.6, 0.9), _hue_colour(rng, family), 1.0 + 0.1 * grain)
    return Layer(colour.clip(0, 255), alpha.clip(0, 1), shade.clip(0.1, 1).astype(np.float32))


def render(rng: np.random.Generator, kind: Kind, w: int, h: int, family: Family) -> Layer:
    """One garbage pile or spill of about w x h pixels."""
    return _garbage(rng, w, h, family) if kind == "garbage" else _spill(rng, w, h, family)


def composite(image: np.ndarray, layer: Layer, x: int, y: int, keep: np.ndarray | None = None,
              opacity: float = 1.0) -> tuple[int, int, int, int] | None:
    """Draw ``layer`` with its top-left at (x, y) into ``image`` (BGR uint8, in place).

    ``keep`` is an optional HxW mask (same size as image, 1 = foreground that stays on
    top, e.g. a pedestrian). Returns the visible object's pixel box or None.
    """
    H, W = image.shape[:2]
    h, w = layer.alpha.shape
    x1, y1, x2, y2 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x2 <= x1 or y2 <= y1:
        return None
    sl = (slice(y1 - y, y2 - y), slice(x1 - x, x2 - x))
    a = layer.alpha[sl] * opacity
    s = 1 - (1 - layer.shade[sl]) * opacity
    if keep is not None:
        free = 1 - keep[y1:y2, x1:x2].astype(np.float32)
        a, s = a * free, 1 - (1 - s) * free
    region = image[y1:y2, x1:x2].astype(np.float32) * s[..., None]
    region = region * (1 - a[..., None]) + layer.colour[sl] * a[..., None]
    image[y1:y2, x1:x2] = region.clip(0, 255).astype(np.uint8)
    visible = (a > 0.3) | (s < 0.85)
    if visible.sum() < 12:
        return None
    ys, xs = np.nonzero(visible)
    return x1 + int(xs.min()), y1 + int(ys.min()), x1 + int(xs.max()) + 1, y1 + int(ys.max()) + 1
