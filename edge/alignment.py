"""A knocked camera: how far its picture moved since it came up, and the picture moved back.

A camera knocked on its pole, or loose on its mount, keeps pointing nearly where it did, a few
per cent off. The zones were drawn on the picture as it was, so the picture moves under them: a
parked van is seen at another place and becomes a second stay, a second incident for one van,
and a car parked just beside a zone is carried into it. ``Alignment`` compares each analysed
picture, small and grey, with the first one by phase correlation (``edge.phase``, a
Hanning window; blind to brightness, so night and exposure changes do not move it). Once the
looks of ``HOLD_S`` agree (``STEADY``) on a shift at least ``MIN_SHIFT`` from the one it has,
and at most ``MAX_SHIFT``, that shift becomes the camera's; ``aligned(image)`` moves the picture
back by it, so zones, stays, the left-object check and evidence see the view as it was when the
camera came up. The strip of it the camera no longer shows is black (``unseen``: cut out of the
left-object check, for it is no new ground). While a shift is kept the camera has a ``shifted``
fault, a case for whoever keeps the cameras (``edge/pipeline.py``); re-aimed to within ``MIN_SHIFT``
of where it was, it is as it came up. The box keeps that first picture under its data folder
(``edge/box.py``), so a camera knocked while its box was down is seen as moved when it comes back up.

A camera that sways in wind moves to and fro: its looks seldom agree for ``HOLD_S``, and the
stationary and left-object checks line up their own places for that. Seen every 2 s (key frames), a
sway of 1 % can still show three looks on one side that agree; but a sway comes back where a knock
stays, so a shift that the looks of the ``BACK_S`` before the hold already showed and then left
again is the sway passing through, and is not taken. A camera turned to
another view (more than ``MAX_SHIFT``, or nothing that correlates) is not followed: that is
the picture check's ``moved`` fault (``edge/health.py``), which learns the view it compares with
as it goes, so it cannot see a camera turned while its box was down. Looks that agree on a
move beyond ``MAX_SHIFT`` from the kept first picture are that: ``turned``, raised as the same
fault until the looks agree on a move within it (re-aimed). Pure logic on pictures handed in
with their time; no I/O.

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> view = cv2.normalize(cv2.GaussianBlur(rng.integers(0, 255, (240, 320), np.uint8), (0, 0), 4), None, 0, 255, cv2.NORM_MINMAX)
>>> knocked = np.zeros_like(view); knocked[:, :-16] = view[:, 16:]   # what it shows moved 16 px (5 %) left
>>> a = Alignment()
>>> [a.look(float(t), view) for t in range(5)], a.shift
([False, False, False, False, False], (0.0, 0.0))
>>> [a.look(float(t), knocked) for t in range(5, 12)]
[False, False, False, False, True, False, False]
>>> round(a.shift[0], 2), abs(round(a.shift[1], 2))
(-0.05, 0.0)
>>> off = lambda picture: int(np.abs(picture[:, 32:-32].astype(int) - view[:, 32:-32]).mean())
>>> off(knocked), off(a.aligned(knocked))    # grey levels from the view, as knocked and moved back
(36, 0)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import cv2
import numpy as np
import numpy.typing as npt

from edge.health import PictureCheck, small_grey
from edge.phase import phase_shift

SIZE = (128, 96)  # w, h of the small grey picture compared; shifts are measured in its pixels
LOOK_S = 1.0  # at most one look a second
HOLD_S = 4.0  # looks over this long must agree before the shift is taken (a sway's half period: 1.5-2 s)
BACK_S = 12.0  # looks kept this long: a shift they showed and then left before the hold is a sway passing
STEADY = 1.0  # pixels of SIZE: looks within this of their median agree (a still camera's: 0.2-0.5, one 1.2)
MIN_SHIFT = 1.5  # pixels of SIZE (1.2 % of the width, 1.6 % of the height): less is left to the sway handling
MAX_SHIFT = 0.1  # share of each side: a camera turned further watches another place
OVERSAMPLE = 1  # pixels skipped down to SIZE itself before it is made: 0.06 ms on 1080p (4x: 1.5 ms)
FLAT = PictureCheck.blocked_std  # grey spread under which a picture shows nothing to line up on (a covered lens)
MIN_RESPONSE = 0.1  # phase correlation peak under which a look says nothing


class Alignment:
    """The shift of one camera's picture since it came up, from its looks (``shift``: how far what
    it shows moved in the picture, x and y in fractions of the frame's width and height)."""

    def __init__(self) -> None:
        self.shift: tuple[float, float] = (0.0, 0.0)
        self.turned = False  # the looks agreed on a move beyond MAX_SHIFT: the zones watch other ground
        # the picture the camera came up with, small and grey (``SIZE``); the box keeps it across restarts
        self.reference: npt.NDArray[np.float32] | None = None
        self._looks: deque[tuple[float, float, float]] = deque()
        self._last = float("-inf")

    def look(self, t: float, image: np.ndarray) -> bool:
        """Compare ``image`` (at time ``t``) with the first picture; whether ``shift`` changed."""
        if t - self._last < LOOK_S:
            return False
        self._last = t
        grey = small_grey(image, SIZE, OVERSAMPLE).astype(np.float32)
        if float(grey.std()) < FLAT:
            return False
        if self.reference is None:
            self.reference = grey
            return False
        (dx, dy), response = phase_shift(self.reference, grey)
        if response < MIN_RESPONSE:
            return False
        self._looks.append((t, dx, dy))
        while self._looks[0][0] < t - BACK_S:
            self._looks.popleft()
        hold = [look for look in self._looks if look[0] >= t - HOLD_S]
        if hold[-1][0] - hold[0][0] < HOLD_S - LOOK_S:
            return False
        mx, my = (float(np.median([look[i] for look in hold])) for i in (1, 2))
        if any(abs(x - mx) > STEADY or abs(y - my) > STEADY for _, x, y in hold):
            return False
        if passed_through(self._looks, hold[0][0], (mx, my)):
            return False
        now = (mx / SIZE[0], my / SIZE[1])
        if abs(mx) < MIN_SHIFT and abs(my) < MIN_SHIFT:  # re-aimed, near enough: as it came up
            now = (0.0, 0.0)
        self.turned = abs(now[0]) > MAX_SHIFT or abs(now[1]) > MAX_SHIFT
        if self.turned:
            return False
        if abs(now[0] - self.shift[0]) * SIZE[0] < MIN_SHIFT and abs(now[1] - self.shift[1]) * SIZE[1] < MIN_SHIFT:
            return False
        self.shift = now
        return True

    def aligned(self, image: np.ndarray) -> np.ndarray:
        """``image`` moved back by ``shift`` to the view the camera came up with (``image`` itself
        where it has not moved); what it no longer shows is black."""
        h, w = image.shape[:2]
        sx, sy = round(self.shift[0] * w), round(self.shift[1] * h)
        if sx == 0 and sy == 0:
            return image
        out = np.zeros_like(image)  # out[y, x] = image[y + sy, x + sx]
        dst_x, src_x = (slice(0, w - sx), slice(sx, w)) if sx >= 0 else (slice(-sx, w), slice(0, w + sx))
        dst_y, src_y = (slice(0, h - sy), slice(sy, h)) if sy >= 0 else (slice(-sy, h), slice(0, h + sy))
        out[dst_y, dst_x] = image[src_y, src_x]
        return out

    def unseen(self) -> list[tuple[float, float, float, float]]:
        """The strips of a picture moved back (``aligned``) that the camera no longer shows, black, as
        boxes (x1, y1, x2, y2 in 0..1; a pixel wider for rounding): nothing there is new ground.

        >>> a = Alignment(); a.shift = (-0.05, 0.02)   # what it shows moved left and down
        >>> [tuple(round(v, 3) for v in box) for box in a.unseen()]
        [(0.0, 0.0, 0.051, 1.0), (0.0, 0.979, 1.0, 1.0)]
        """
        x, y = self.shift
        pad = 1 / 1000
        out = []
        if x:
            out.append((0.0, 0.0, -x + pad, 1.0) if x < 0 else (1 - x - pad, 0.0, 1.0, 1.0))
        if y:
            out.append((0.0, 0.0, 1.0, -y + pad) if y < 0 else (0.0, 1 - y - pad, 1.0, 1.0))
        return out

    def reset(self) -> None:
        """Forget the first picture and the shift (the camera changed resolution)."""
        self.__init__()


def passed_through(looks: Iterable[tuple[float, float, float]], before: float, shift: tuple[float, float]) -> bool:
    """Whether the looks ``(t, dx, dy)`` from before ``before`` showed ``shift`` (within ``STEADY``) and
    then left it: a sway passing through, where a knock, once made, stays.

    >>> at = lambda *ys: [(2.0 * k, 0.0, y) for k, y in enumerate(ys)]
    >>> passed_through(at(0, 0, 0, 2, 2, 2), 6.0, (0.0, 2.0))       # still, then knocked 2 px: stays
    False
    >>> passed_through(at(2, 0, 2, 0.4, 2, 2, 2), 8.0, (0.0, 2.0))   # there at 0 s and 4 s, and back
    True
    """
    seen = False
    for t, x, y in looks:
        if t >= before:
            break
        if abs(x - shift[0]) <= STEADY and abs(y - shift[1]) <= STEADY:
            seen = True
        elif seen:
            return True
    return False
