"""How far a picture moved, by phase correlation, on sizes OpenCV measures right. Pure logic.

``cv2.phaseCorrelate`` pads each side to its optimal DFT size (2^a 3^b 5^c) and, where that size
is odd, centres its peak half a pixel off (the fftShift fault of opencv/opencv#9144, still there in
5.1): two identical pictures 130 rows high read as moved 0.5 px down, and one moved 1 px as 1.5-1.6.
The left-object check's picture of a 768x518 camera is 192x130, so a still camera read as swaying,
and its background walked. ``phase_shift`` cuts both pictures, about their middle, to the largest
even sizes OpenCV takes as they are.

>>> rng = np.random.default_rng(0)
>>> a = cv2.GaussianBlur(rng.random((140, 200)).astype(np.float32), (0, 0), 2)
>>> still, moved = a[5:135, 4:196], a[4:134, 4:196]  # 192 x 130; then moved 1 pixel down
>>> def pixels(found): return [round(v, 1) + 0.0 for v in found[0]]
>>> pixels(cv2.phaseCorrelate(still, still)), pixels(cv2.phaseCorrelate(still, moved))  # OpenCV alone
([0.0, 0.5], [0.0, 1.6])
>>> pixels(phase_shift(still, still)), pixels(phase_shift(still, moved))
([0.0, 0.0], [0.0, 1.0])
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from edge.geometry import Box, box_to_pixels

# the peak's response under which a measured move says nothing: OpenCV still names a peak, anywhere (the
# left-object check's picture of rough ground 16 % darker than its background read as moved 6.7 px, response
# -0.06; a swaying real camera's moves read 0.14 and over, the cross clips' swayed 0.29 and over)
MIN_RESPONSE = 0.1

@lru_cache(maxsize=256)
def even_size(n: int) -> int:
    """The largest even size, at most ``n``, that is its own optimal DFT size (``n`` itself below 2).

    >>> even_size(130), even_size(125), even_size(96), even_size(17), even_size(1)
    (128, 120, 96, 16, 1)
    """
    m = n - n % 2
    while m > 2 and cv2.getOptimalDFTSize(m) != m:
        m -= 2
    return m if m >= 2 else n


@lru_cache(maxsize=64)
def _hanning(width: int, height: int) -> np.ndarray:
    window = cv2.createHanningWindow((width, height), cv2.CV_32F)
    window.flags.writeable = False  # shared: copied before a hole is cut in it
    return window


def phase_shift(before: np.ndarray, now: np.ndarray, hole: Box | None = None) -> tuple[tuple[float, float], float]:
    """How far ``now`` moved from ``before`` (two grey float32 pictures of one size): (x, y) in pixels,
    and the peak's response (1: the same picture moved; near 0: nothing alike). Judged through a
    Hanning window, less ``hole`` (0..1 of the pictures: left out). A picture under 2 pixels on a side
    has nothing to measure: no move, no response (OpenCV refused it, and the left-object check of a
    4000x4 camera failed on every frame).

    >>> phase_shift(np.ones((1, 192), np.float32), np.ones((1, 192), np.float32))
    ((0.0, 0.0), 0.0)
    """
    h, w = now.shape[:2]
    ch, cw = even_size(h), even_size(w)
    if ch < 2 or cw < 2:
        return (0.0, 0.0), 0.0
    y, x = (h - ch) // 2, (w - cw) // 2
    window = _hanning(cw, ch)
    if hole:
        x1, y1, x2, y2 = box_to_pixels(hole, w, h)
        window = window.copy()
        window[max(0, y1 - y):max(0, y2 - y), max(0, x1 - x):max(0, x2 - x)] = 0.0
    return cv2.phaseCorrelate(before[y:y + ch, x:x + cw], now[y:y + ch, x:x + cw], window)
