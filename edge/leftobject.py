"""The model-free left-object check: what changed against the long-term background and then
stayed still. Pure logic on frames handed in with their time; no I/O, no learning.

Two running backgrounds of a small grey picture: a short-term one that follows the scene
within seconds and a long-term one that learns only where nothing stands out. A pixel
that differs from the long-term background but no longer from the short-term one is
*static foreground*: something arrived and stopped (a pile, a spill, a parked car, a
person standing). Vehicles and people are cut out with the detector's boxes, so what
remains is a candidate pile or spill. A big, sudden change of most of the picture
(lights, a moved camera) makes it learn the scene again instead of reporting it.

What stands out is absorbed into the long-term background slowly (``absorb_s``, default
10 min), so a *ghost* (something that was there when the check started and then left)
fades out, and so does, after a quarter of an hour or so, an object left for good: the
rules keep an incident alive on the detector's sightings, not on this check alone.

>>> import numpy as np
>>> check = LeftObject(width=64)
>>> ground = np.full((48, 64, 3), 100, np.uint8)
>>> _ = [check.observe(float(t), ground) for t in range(10)]
>>> pile = ground.copy(); pile[20:30, 20:34] = 200
>>> masks = [check.observe(float(t), pile) for t in range(10, 30)]
>>> int(masks[0].sum()), int(masks[-1][20:30, 20:34].mean() * 100)
(0, 100)
>>> int(check.observe(30.0, pile, exclude=[(0.3, 0.4, 0.55, 0.65)]).sum())
0
>>> cleared = [check.observe(float(t), ground) for t in range(31, 34)]
>>> int(cleared[-1].sum())
0
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from edge.health import small_grey
from edge.geometry import Box, Point, box_to_pixels, normalise, polygon_to_pixels

Mask = np.ndarray  # HxW uint8, 1 = static foreground


class LeftObject:
    def __init__(self, width: int = 192, threshold: float = 18.0, short_tau_s: float = 4.0,
                 absorb_s: float = 600.0, relearn_fraction: float = 0.5):
        self.width, self.threshold = width, threshold
        self.short_tau_s, self.absorb_s, self.relearn_fraction = short_tau_s, absorb_s, relearn_fraction
        self._long: np.ndarray | None = None
        self._short: np.ndarray | None = None
        self._known: np.ndarray | None = None  # pixels whose empty ground has been seen
        self._last_t = 0.0
        self._kernel = np.ones((3, 3), np.uint8)

    def _grey(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        grey = small_grey(image, (self.width, max(1, round(self.width * h / w))), oversample=2)
        return cv2.GaussianBlur(grey, (3, 3), 0).astype(np.float32)

    def observe(self, t: float, image: np.ndarray, exclude: list[Box] = ()) -> Mask:
        """Static foreground at time ``t``, with the ``exclude`` boxes (0..1 of the frame) cut out.

        Ground hidden behind a person or vehicle when the check starts is learnt the first
        time it is seen clear, so a person who stood there at start leaves no ghost.
        """
        grey = self._grey(image)
        h, w = grey.shape
        hidden = np.zeros((h, w), bool)
        for box in exclude:
            x1, y1, x2, y2 = box_to_pixels(box, w, h, min_size=0)
            hidden[y1:y2, x1:x2] = True
        if self._long is None or self._long.shape != grey.shape:
            self._long, self._short, self._last_t, self._known = grey.copy(), grey.copy(), t, ~hidden
            return np.zeros(grey.shape, np.uint8)
        dt = max(0.0, t - self._last_t)
        self._last_t = t
        fresh = ~self._known & ~hidden  # seen clear for the first time
        self._long[fresh] = grey[fresh]
        self._known |= fresh
        changed = (np.abs(grey - self._long) > self.threshold) & self._known
        if changed.mean() > self.relearn_fraction:  # lights or view changed: learn the scene again
            self._long, self._short, self._known = grey.copy(), grey.copy(), ~hidden
            return np.zeros(grey.shape, np.uint8)
        moving = np.abs(grey - self._short) > self.threshold
        static = (changed & ~moving & ~hidden).astype(np.uint8)
        self._short += (1 - math.exp(-dt / self.short_tau_s)) * (grey - self._short)
        absorbed = self._long + (1 - math.exp(-dt / self.absorb_s)) * (grey - self._long)
        self._long = np.where(changed, absorbed, grey)  # learn at once where nothing stands out
        return cv2.morphologyEx(static, cv2.MORPH_OPEN, self._kernel)


def zone_mask(polygon: list[Point], shape: tuple[int, int]) -> Mask:
    """The zone polygon rasterised on a mask of ``shape`` (h, w)."""
    h, w = shape
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [polygon_to_pixels(polygon, w, h)], 1)
    return mask


def covered(static: Mask, box: Box) -> float:
    """The fraction of ``box`` (0..1 of the frame) that is static foreground."""
    h, w = static.shape
    x1, y1, x2, y2 = box_to_pixels(box, w, h)
    return float(static[y1:y2, x1:x2].mean())


def regions(static: Mask, zone: Mask, min_fraction: float) -> list[tuple[Box, float]]:
    """Still, changed regions inside the zone as (box 0..1 of the frame, fraction of the zone),
    biggest first, each at least ``min_fraction`` of the zone."""
    area = max(1, int(zone.sum()))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(static & zone, connectivity=8)
    h, w = static.shape
    out = []
    for i in range(1, n):
        x, y, bw, bh, pixels = stats[i]
        if pixels >= min_fraction * area:
            out.append((normalise((x, y, x + bw, y + bh), w, h), pixels / area))
    return sorted(out, key=lambda r: -r[1])
