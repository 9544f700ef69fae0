"""Camera picture faults from small grey thumbnails: frozen, blocked/covered, view moved. Pure logic.

>>> import numpy as np
>>> check = PictureCheck()
>>> grey = np.full((48, 64), 3, np.uint8)
>>> sorted(check.observe(0.0, grey)), sorted(check.observe(11.0, grey))
([], ['blocked'])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

Thumb = npt.NDArray[np.uint8]
THUMB_SIZE = (64, 48)


def small_grey(image: np.ndarray, size: tuple[int, int], oversample: int = 4) -> Thumb:
    """``image`` in grey at ``size`` (w, h); pixels are skipped first down to ``oversample`` times
    the target width, which makes it about 15x cheaper on 1080p than converting the whole frame."""
    step = max(1, image.shape[1] // (size[0] * oversample))
    small = image[::step, ::step]
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def thumbnail(image: np.ndarray) -> Thumb:
    """A 64x48 grey thumbnail, the unit of every cheap picture check."""
    return small_grey(image, THUMB_SIZE)


def change(a: Thumb, b: Thumb, cells: tuple[int, int] = (8, 6)) -> float:
    """The largest mean absolute difference over a grid of cells (across, down), in grey levels.

    A person walking into one cell moves this; sensor noise and a global flicker barely do. The cells
    cover every pixel (where the size does not divide, some are a pixel wider), and a picture
    narrower than the grid has a cell per pixel.

    >>> a = np.zeros((4, 5), np.uint8); b = a.copy(); b[:, 4] = 40  # the last column, which 5 // 2 would leave out
    >>> [round(change(a, b, cells), 1) for cells in [(1, 1), (2, 2), (8, 8)]]
    [8.0, 13.3, 40.0]
    """
    diff = cv2.absdiff(a, b).astype(np.float32)
    h, w = diff.shape
    ys = np.linspace(0, h, min(cells[1], h) + 1).astype(int)
    xs = np.linspace(0, w, min(cells[0], w) + 1).astype(int)
    sums = np.add.reduceat(np.add.reduceat(diff, ys[:-1], axis=0), xs[:-1], axis=1)
    return float((sums / np.outer(np.diff(ys), np.diff(xs))).max())


def similarity(a: Thumb, b: Thumb) -> float:
    """Normalised correlation of two thumbnails (1 = same view), insensitive to brightness."""
    x = a.astype(np.float32) - a.mean()
    y = b.astype(np.float32) - b.mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 1e-6 else 0.0


@dataclass
class PictureCheck:
    """Which picture faults are active, each only after it lasted ``*_after_s``."""

    frozen_after_s: float = 30.0
    blocked_after_s: float = 10.0
    moved_after_s: float = 10.0
    frozen_change: float = 0.25
    blocked_std: float = 6.0
    moved_similarity: float = 0.5
    reference_alpha: float = 0.02
    _reference: np.ndarray | None = None
    _last: Thumb | None = None
    _since: dict[str, float] = field(default_factory=dict)

    def still(self, thumb: Thumb) -> bool:
        """Whether ``thumb`` shows what the last picture observed showed (the frozen check's test, nothing learnt)."""
        return self._last is not None and change(self._last, thumb) < self.frozen_change

    def observe(self, t: float, thumb: Thumb) -> set[str]:
        blocked = float(thumb.std()) < self.blocked_std
        raw = {
            "frozen": not blocked and self.still(thumb),
            "blocked": blocked,
            "moved": not blocked and self._reference is not None  # a covered lens has no view to compare
            and similarity(self._reference.astype(np.uint8), thumb) < self.moved_similarity,
        }
        self._last = thumb
        if not raw["blocked"] and not raw["moved"]:  # learn the normal view slowly
            ref = thumb.astype(np.float32)
            self._reference = ref if self._reference is None else \
                (1 - self.reference_alpha) * self._reference + self.reference_alpha * ref
        after = {"frozen": self.frozen_after_s, "blocked": self.blocked_after_s, "moved": self.moved_after_s}
        active = set()
        for name, on in raw.items():
            if not on:
                self._since.pop(name, None)
                continue
            since = self._since.setdefault(name, t)
            if t - since >= after[name]:
                active.add(name)
        return active
