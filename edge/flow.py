"""How far a picture moved, by the median of sparse optical flow: what moved alone does not move it. Pure logic.

Phase correlation (``edge.phase``) reads one shift for the whole picture, and a region that changed alone pulls
it: a bright pile against the ground the left-object check's background keeps under it read a still camera as
moved 0.7 px, then 3 px as the light fell, and every read moved the picture back, and the background learnt from
the moved picture. Points of the first picture on a grid, followed into the second by pyramidal Lucas-Kanade,
each say where they went; where most of the ground moved with the camera their median is the camera's move, and
points on a pile, or where people were, are outvoted.

>>> rng = np.random.default_rng(0)
>>> def rough(h, w): return cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 2)
>>> ground, pile = rough(134, 200), 3 * rough(40, 50)
>>> still, moved = ground[3:131, 4:196], ground[2:130, 4:196]  # 192 x 128; then moved 1 pixel down
>>> seen = np.ones(still.shape, bool)
>>> def pixels(found): return [round(v, 1) + 0.0 for v in found[0]]
>>> pixels(flow_shift(still, still, seen)), pixels(flow_shift(still, moved, seen))
([0.0, 0.0], [0.0, 1.0])
>>> before, now = still.copy(), still.copy()
>>> before[40:80, 60:110] = pile; now[40:80, 63:113] = pile  # a rough patch, moved 3 px alone
>>> pixels(flow_shift(before, now, seen))
[0.0, 0.0]
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_POINTS = 20  # points followed under which a picture says nothing of its move (a blank wall, a dark night)
AGREE_PX = 1.0  # a point agrees with the median where it moved within this of it
MIN_AGREEMENT = 0.5  # the share of followed points that must agree for the median to be the camera's move
_WINDOW = 15  # Lucas-Kanade's window (pixels); a picture narrower than it has nothing to follow
_STEP = 12  # pixels between the points followed
MIN_EIGEN = 1e-3  # the texture a point's window needs to be followed (OpenCV's minEigThreshold)


def _bytes(picture: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """``picture`` as 8 bits, its mean and spread over ``seen`` made the same for any picture: a light that fell
    everywhere at once moves no corner."""
    values = picture[seen]
    mean, spread = float(values.mean()), float(values.std()) or 1.0
    return np.clip(128 + 40 * (picture - mean) / spread, 0, 255).astype(np.uint8)


def flow_shift(before: np.ndarray, now: np.ndarray, seen: np.ndarray) -> tuple[tuple[float, float], float]:
    """How far ``now`` moved from ``before`` (two grey float32 pictures of one size), judged on the points of a
    grid where ``seen`` (HxW bool: not behind a person or vehicle) and the ground has texture: (x, y) in pixels,
    the median of the points' moves, and the share of followed points within ``AGREE_PX`` of it (0 where fewer
    than ``MIN_POINTS`` were followed: no move then).

    >>> flow_shift(np.ones((4, 192), np.float32), np.ones((4, 192), np.float32), np.ones((4, 192), bool))
    ((0.0, 0.0), 0.0)
    """
    h, w = now.shape[:2]
    if min(h, w) < _WINDOW or seen.sum() < MIN_POINTS:
        return (0.0, 0.0), 0.0
    a, b = _bytes(before, seen), _bytes(now, seen)
    # points on a grid, not the strongest corners: each part of the picture votes by its size, not its contrast (a
    # bright pile's corners outshone all the ground's)
    ys, xs = np.mgrid[_STEP // 2:h:_STEP, _STEP // 2:w:_STEP]
    kept = seen[ys, xs]
    points = np.dstack([xs[kept], ys[kept]]).astype(np.float32).reshape(-1, 1, 2)
    if len(points) < MIN_POINTS:
        return (0.0, 0.0), 0.0
    # where the ground has no texture to follow Lucas-Kanade says so (status 0), and the point does not vote
    found, status, _ = cv2.calcOpticalFlowPyrLK(a, b, points, None, winSize=(_WINDOW, _WINDOW), maxLevel=2,
                                                minEigThreshold=MIN_EIGEN)
    moves = (found - points).reshape(-1, 2)[status.ravel() == 1]
    if len(moves) < MIN_POINTS:
        return (0.0, 0.0), 0.0
    dx, dy = np.median(moves, axis=0)
    agreement = float((np.hypot(moves[:, 0] - dx, moves[:, 1] - dy) <= AGREE_PX).mean())
    return (float(dx), float(dy)), agreement
