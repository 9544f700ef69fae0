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
A knock often rolls the camera a little too: a picture turned 1.5 degrees about its middle moves a van
in its corner by 2 % and turns it, and phase correlation, which measures a move only, reads no move at
all. Each look therefore also measures the picture's turn (``rotation``: OpenCV's ECC, Euclidean,
starting from the move), the looks must agree on it too (``STEADY_DEG``), and a turn of at least
``MIN_DEG`` is the camera's ``angle``, turned back with the move. The stays seen in the moved picture
before it was followed (``since``) are carried back with it (``carried``; ``edge/pipeline.py``), so a
van keeps its clock. A zoom is not measured: one of 4 % is followed as a move of about 2 %.

A camera that sways in wind moves to and fro: its looks seldom agree for ``HOLD_S``, and the
stationary and left-object checks line up their own places for that. Seen every 2 s (key frames), a
sway of 1 % can still show three looks on one side that agree; but a sway comes back where a knock
stays, so a shift that the looks of the ``BACK_S`` before the hold already showed and then left
again is the sway passing through, and is not taken. A camera turned to
another view (more than ``MAX_SHIFT``, or nothing that correlates) is not followed: that is
the picture check's ``moved`` fault (``edge/health.py``), which learns the view it compares with
as it goes, so it cannot see a camera turned while its box was down. Looks that agree on a
move beyond ``MAX_SHIFT`` from the kept first picture are that: ``moved``, raised as the same
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

import math
from collections import deque
from collections.abc import Iterable

import cv2
import numpy as np
import numpy.typing as npt

from edge.health import PictureCheck, small_grey
from edge.phase import MIN_RESPONSE, phase_shift

SIZE = (128, 96)  # w, h of the small grey picture compared; shifts are measured in its pixels
LOOK_S = 1.0  # at most one look a second
HOLD_S = 4.0  # looks over this long must agree before the shift is taken (a sway's half period: 1.5-2 s)
BACK_S = 12.0  # looks kept this long: a shift they showed and then left before the hold is a sway passing
STEADY = 1.0  # pixels of SIZE: looks within this of their median agree (a still camera's: 0.2-0.5, one 1.2)
MIN_SHIFT = 1.5  # pixels of SIZE (1.2 % of the width, 1.6 % of the height): less is left to the sway handling
MAX_SHIFT = 0.1  # share of each side: a camera turned further watches another place
OVERSAMPLE = 1  # pixels skipped down to SIZE itself before it is made: 0.06 ms on 1080p (4x: 1.5 ms)
FLAT = PictureCheck.blocked_std  # grey spread under which a picture shows nothing to line up on (a covered lens)
STEADY_DEG = 0.3  # degrees: looks within this of their median turn agree (a still camera's: within 0.12)
MIN_DEG = 0.5  # degrees: a smaller turn is left alone (0.5 degrees moves a corner of SIZE by 0.6 px)
ECC_STOP = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4)  # 0.6 ms a look at SIZE (phase: 0.15)


class Alignment:
    """The shift of one camera's picture since it came up, from its looks (``shift``: how far what
    it shows moved in the picture, x and y in fractions of the frame's width and height)."""

    def __init__(self) -> None:
        self.shift: tuple[float, float] = (0.0, 0.0)
        self.angle = 0.0  # degrees the picture turned (clockwise as seen) about its middle, with ``shift``
        self.moved = False  # looks agreed on a move beyond MAX_SHIFT (the moved fault): the zones watch other ground
        self.before: tuple[tuple[float, float], float] = ((0.0, 0.0), 0.0)  # shift and angle before the last change
        self.since = float("-inf")  # when the picture moved to where the last change follows it
        # the picture the camera came up with, small and grey (``SIZE``); the box keeps it across restarts
        self.reference: npt.NDArray[np.float32] | None = None
        self._looks: deque[tuple[float, float, float, float]] = deque()  # t, dx, dy (pixels of SIZE), degrees
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
        angle = rotation(self.reference, grey, (dx, dy))
        if angle is None:
            return False
        if abs(angle) >= MIN_DEG / 2:  # turned: the move is measured with the turn taken out (else it reads wild)
            (dx, dy), response = phase_shift(self.reference, rotated(grey, -angle))
            if response < MIN_RESPONSE:
                return False
            dx, dy = (float(v) for v in rotation_matrix(angle) @ (dx, dy))
        self._looks.append((t, dx, dy, angle))
        while self._looks[0][0] < t - BACK_S:
            self._looks.popleft()
        hold = [look for look in self._looks if look[0] >= t - HOLD_S]
        if hold[-1][0] - hold[0][0] < HOLD_S - LOOK_S:
            return False
        mx, my, ma = (float(np.median([look[i] for look in hold])) for i in (1, 2, 3))
        if any(not agrees(look, (mx, my, ma)) for look in hold):
            return False
        if passed_through(self._looks, hold[0][0], (mx, my, ma)):
            return False
        now = (mx / SIZE[0], my / SIZE[1])
        if abs(mx) < MIN_SHIFT and abs(my) < MIN_SHIFT:  # re-aimed, near enough: as it came up
            now = (0.0, 0.0)
        angle = ma if abs(ma) >= MIN_DEG else 0.0
        self.moved = abs(now[0]) > MAX_SHIFT or abs(now[1]) > MAX_SHIFT
        if self.moved:
            return False
        if abs(now[0] - self.shift[0]) * SIZE[0] < MIN_SHIFT and abs(now[1] - self.shift[1]) * SIZE[1] < MIN_SHIFT \
                and abs(angle - self.angle) < MIN_DEG:
            return False
        self.before = (self.shift, self.angle)
        self.shift, self.angle = now, angle
        earlier = [look for look in self._looks if look[0] < hold[0][0]]
        self.since = hold[0][0]  # the first of the looks up to now that agree: the camera was knocked just before
        for look in reversed(earlier):
            if not agrees(look, (mx, my, ma)):
                break
            self.since = look[0]
        return True

    @property
    def knocked(self) -> bool:
        """Whether the last two looks agree on the picture moved at least ``MIN_SHIFT`` from ``shift``, a move
        the looks before them did not show and leave (``passed_through``): a knock, which stays, not followed yet
        (its looks must agree for ``HOLD_S`` first); the left-object check meanwhile takes it back as a sway
        (``edge/pipeline.py``). Looked at every second, a camera swaying by up to 2 % is never this; at key frames
        2 s apart, 4 looks of 960 of one swaying by 1-1.25 % were (the last look alone: 141)."""
        if len(self._looks) < 2:
            return False
        t, dx, dy, angle = self._looks[-1]
        if abs(dx - self.shift[0] * SIZE[0]) < MIN_SHIFT and abs(dy - self.shift[1] * SIZE[1]) < MIN_SHIFT:
            return False
        if not agrees(self._looks[-2], (dx, dy, angle)):
            return False
        return not passed_through(self._looks, self._looks[-2][0], (dx, dy, angle))

    def aligned(self, image: np.ndarray) -> np.ndarray:
        """``image`` moved back by ``shift`` to the view the camera came up with (``image`` itself
        where it has not moved); what it no longer shows is black."""
        h, w = image.shape[:2]
        if self.angle:
            return cv2.warpAffine(image, view_map(self.shift, self.angle, w, h), (w, h),
                                  flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        sx, sy = round(self.shift[0] * w), round(self.shift[1] * h)
        if sx == 0 and sy == 0:
            return image
        out = np.zeros_like(image)  # out[y, x] = image[y + sy, x + sx]
        dst_x, src_x = (slice(0, w - sx), slice(sx, w)) if sx >= 0 else (slice(-sx, w), slice(0, w + sx))
        dst_y, src_y = (slice(0, h - sy), slice(sy, h)) if sy >= 0 else (slice(-sy, h), slice(0, h + sy))
        out[dst_y, dst_x] = image[src_y, src_x]
        return out

    def carried(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """``box`` (x1, y1, x2, y2 in 0..1) of a picture moved back as it was before the last change of
        ``shift`` and ``angle``, where the same ground is in the picture moved back now: what a stay
        seen before the change is now (moved as its middle moved; a turn of a few degrees hardly
        changes its size).

        >>> a = Alignment(); a.before, a.shift = ((0.0, 0.0), 0.0), (0.02, -0.01)  # moved 2 % right, 1 % up
        >>> [round(v, 3) for v in a.carried((0.5, 0.5, 0.6, 0.6))]   # seen there then, it is back here now
        [0.48, 0.51, 0.58, 0.61]
        """
        middle = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 1.0])
        seen = view_map(*self.before, 1, 1) @ middle  # where the camera showed it then, in 0..1 of the picture
        back = cv2.invertAffineTransform(view_map(self.shift, self.angle, 1, 1))  # ... and where that is now
        dx, dy = (float(v) for v in back @ [*seen, 1.0] - middle[:2])
        return box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy

    def unseen(self) -> list[tuple[float, float, float, float]]:
        """The strips of a picture moved back (``aligned``) that the camera no longer shows, black, as
        boxes (x1, y1, x2, y2 in 0..1; a pixel wider for rounding): nothing there is new ground.

        >>> a = Alignment(); a.shift = (-0.05, 0.02)   # what it shows moved left and down
        >>> [tuple(round(v, 3) for v in box) for box in a.unseen()]
        [(0.0, 0.0, 0.051, 1.0), (0.0, 0.979, 1.0, 1.0)]
        >>> a.shift, a.angle = (0.0, 0.0), 2.0   # turned: a strip on every side, as wide as a corner moved in
        >>> [tuple(round(v, 3) for v in box) for box in a.unseen()]
        [(0.0, 0.0, 0.014, 1.0), (0.986, 0.0, 1.0, 1.0), (0.0, 0.0, 1.0, 0.024), (0.0, 0.976, 1.0, 1.0)]
        """
        x, y = self.shift
        pad = 1 / 1000
        if self.angle:  # the corners turned in: as far as a corner moved, across and down, on every side
            sin = abs(math.sin(math.radians(self.angle)))
            across, down = sin * SIZE[1] / 2 / SIZE[0] + abs(x) + pad, sin * SIZE[0] / 2 / SIZE[1] + abs(y) + pad
            return [(0.0, 0.0, across, 1.0), (1 - across, 0.0, 1.0, 1.0),
                    (0.0, 0.0, 1.0, down), (0.0, 1 - down, 1.0, 1.0)]
        out = []
        if x:
            out.append((0.0, 0.0, -x + pad, 1.0) if x < 0 else (1 - x - pad, 0.0, 1.0, 1.0))
        if y:
            out.append((0.0, 0.0, 1.0, -y + pad) if y < 0 else (0.0, 1 - y - pad, 1.0, 1.0))
        return out

    def reset(self) -> None:
        """Forget the first picture and the shift (the camera changed resolution)."""
        self.__init__()


def agrees(look: tuple[float, float, float, float], median: tuple[float, float, float]) -> bool:
    """Whether a look ``(t, dx, dy, degrees)`` is within ``STEADY`` and ``STEADY_DEG`` of ``median``."""
    _, x, y, a = look
    return abs(x - median[0]) <= STEADY and abs(y - median[1]) <= STEADY and abs(a - median[2]) <= STEADY_DEG


def passed_through(looks: Iterable[tuple[float, float, float, float]], before: float,
                   median: tuple[float, float, float]) -> bool:
    """Whether the looks ``(t, dx, dy, degrees)`` from before ``before`` showed ``median`` (they agree
    with it) and then left it: a sway passing through, where a knock, once made, stays.

    >>> at = lambda *ys: [(2.0 * k, 0.0, y, 0.0) for k, y in enumerate(ys)]
    >>> passed_through(at(0, 0, 0, 2, 2, 2), 6.0, (0.0, 2.0, 0.0))       # still, then knocked 2 px: stays
    False
    >>> passed_through(at(2, 0, 2, 0.4, 2, 2, 2), 8.0, (0.0, 2.0, 0.0))   # there at 0 s and 4 s, and back
    True
    """
    seen = False
    for look in looks:
        if look[0] >= before:
            break
        if agrees(look, median):
            seen = True
        elif seen:
            return True
    return False


def rotation(reference: np.ndarray, picture: np.ndarray, move: tuple[float, float]) -> float | None:
    """How far ``picture`` turned from ``reference`` (two small grey float32 pictures), in degrees,
    clockwise as seen: OpenCV's ECC (Euclidean), starting from ``move`` (pixels); None where it finds
    nothing (a flat or unrelated picture).

    >>> rng = np.random.default_rng(2)
    >>> scene = cv2.GaussianBlur(rng.random((160, 200)).astype(np.float32), (0, 0), 2)
    >>> rolled = cv2.warpAffine(scene, cv2.getRotationMatrix2D((100, 80), -2.0, 1.0), (200, 160))
    >>> view, now = scene[32:128, 36:164], rolled[32:128, 36:164]   # what the camera shows, 128 x 96
    >>> round(rotation(view, now, (0.0, 0.0)), 1), round(rotation(view, view, (0.0, 0.0)), 1) + 0.0
    (2.0, 0.0)
    """
    warp = np.array([[1, 0, move[0]], [0, 1, move[1]]], np.float32)
    try:
        _, warp = cv2.findTransformECC(reference, picture, warp, cv2.MOTION_EUCLIDEAN, ECC_STOP, None, 5)
    except cv2.error:  # did not converge
        return None
    return float(np.degrees(np.arctan2(warp[1, 0], warp[0, 0])))


def rotation_matrix(degrees: float) -> np.ndarray:
    """The 2x2 matrix turning a vector by ``degrees``, clockwise as seen in a picture (y down)."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return np.array([[c, -s], [s, c]])


def rotated(picture: np.ndarray, degrees: float) -> np.ndarray:
    """``picture`` (``SIZE``) turned by ``degrees`` about its middle, clockwise as seen."""
    h, w = picture.shape[:2]
    return cv2.warpAffine(picture, view_map((0.0, 0.0), -degrees, w, h), (w, h),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)


def view_map(shift: tuple[float, float], degrees: float, w: int, h: int) -> np.ndarray:
    """The affine map (2x3) from the view the camera came up with to the picture it shows now, both
    ``w`` x ``h``: turned by ``degrees`` about the middle of the small picture (``SIZE``, so a picture of
    another shape turns as it does), then moved by ``shift`` (fractions of each side). ``w = h = 1``
    maps points in 0..1.

    >>> [round(float(v), 3) for v in view_map((0.02, -0.01), 0.0, 1, 1) @ [0.5, 0.5, 1.0]]
    [0.52, 0.49]
    """
    turn = rotation_matrix(degrees)
    scale = np.diag([w / SIZE[0], h / SIZE[1]])
    middle = np.array([SIZE[0] / 2, SIZE[1] / 2])
    move = np.array([shift[0] * SIZE[0], shift[1] * SIZE[1]])
    return np.hstack([scale @ turn @ np.linalg.inv(scale), (scale @ (middle - turn @ middle + move))[:, None]])
