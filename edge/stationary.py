"""The stationary-vehicle check: is a parked vehicle still there when the detector does not see it?

In the spirit of Frigate's stationary objects: at each detection of a stay the picture under
its box is kept as a small grey patch; on a frame where no detection matches the stay, the
patch of the same box now is compared with it. Unchanged: the vehicle is still there
(``same``); unchanged but where boxes in front of it stand, the rest at least half of it: a small car
or a person stopping in front of it (``same_around``). Changed, with a person or vehicle box over it:
something passes in front (``occluded``; the stay is kept). Changed with nothing in front: the place looks
``empty``; the dwell rule ends the stay only once that has lasted ``leave_s``. When a
detection does match the stay's place, the same patch tells whether it is still the stay's
vehicle or another one that took the place (``Stationary.same_vehicle``: flowing traffic).
When the whole picture changed at once (night mode, an exposure jump), a place that kept its
shape is still its vehicle in other light, and its picture in that light becomes the reference.
A camera that shakes on its pole (wind, traffic) moves the picture: where the place's picture
differs, it is looked at again where its neighbourhood moved it (``displacement``). A place hidden
only in part (a car queueing in front of a parked van, lower in the picture) shows its vehicle or
not in the rest (``clear_part``): a van that leaves behind the queue is seen gone then, not once
the queue drives on.

Pure logic on images handed in; no I/O. The patch is brightness-normalised and blurred,
so sensor noise, compression and a cloud barely move it, while a vehicle leaving (the
ground or the kerb where its body was) or a person in front changes it by far more.

>>> import numpy as np
>>> frame = np.full((100, 100, 3), 90, np.uint8)
>>> frame[40:60, 30:70] = 230; frame[45:50, 35:65] = 40          # a white van with windows
>>> van = (0.3, 0.4, 0.7, 0.6)
>>> ref = patch(frame, van)
>>> noisy = np.clip(frame + np.random.default_rng(0).normal(0, 6, frame.shape), 0, 255).astype(np.uint8)
>>> look(ref, noisy, van, [])
'same'
>>> empty = np.full((100, 100, 3), 90, np.uint8); empty[58:60] = 60    # the kerb, no van
>>> look(ref, empty, van, []), look(ref, empty, van, [(0.5, 0.2, 0.6, 0.7)])
('empty', 'occluded')
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from edge.geometry import Box, box_to_pixels, inside
from edge.phase import phase_shift
from edge.rules import View

Patch = npt.NDArray[np.float32]
PATCH_SIZE = (16, 12)  # w, h
SAME_BELOW = 14.0  # grey levels of mean difference (brightness-normalised) that still count as the same picture
OCCLUDER_COVER = 0.1  # share of the stay's box a person or vehicle box must cover to count as in front
WHOLE = (0.0, 0.0, 1.0, 1.0)
# the whole picture's patch differing this much: the scene changed as a whole (night mode, an exposure
# jump: 22-40 on the parking suite's variants), not one vehicle (traffic, people: at most 9 over 4 s on
# the real footage here)
SCENE_CHANGED = 12.0
# the correlation of a place's picture with its reference that, across such a change, is still its
# vehicle: the parked van in the suite's night mode, exposure drop and dark, noisy night 0.99-1.0, cut
# to black at a third of the contrast 0.76-0.85; the empty kerb where it stood 0.11-0.37
SAME_SHAPE = 0.6


# a place hidden in part shows the rest: where a band of at least GLIMPSE of its box is clear of every box
# over it, kept MARGIN of its size off their edges (a detector's box is a little tight or loose), that band
# says whether its vehicle is there (a queue's car a third of the van's height lower leaves 0.25 of it)
GLIMPSE, MARGIN = 0.2, 0.05
WITHIN = 0.8  # share of a person or vehicle box inside a detection's that puts it in front of the detection
DETAIL_SIZE = (64, 48)  # w, h: the reference's picture kept finer, for a band of it

# a place's neighbourhood, for how far the picture moved there: its box grown by this share of its size
# on each side, shrunk to at most NEAR_WIDTH pixels wide; a move of over MOVED_MAX of the box is not shake
NEAR, NEAR_WIDTH, MOVED_MAX = 1.0, 96, 0.5


class Ref(NamedTuple):
    """A stay's reference: where it was last detected in the clear, the picture there (and finer,
    ``detail``, for a band of it), the whole picture then, and the place's neighbourhood (``near``)."""

    box: Box
    picture: Patch
    whole: Patch
    near: np.ndarray
    detail: np.ndarray


def grey(image: np.ndarray, box: Box) -> np.ndarray:
    """The grey pixels under ``box`` (0..1 of the frame), at least 2 wide and high; empty off the frame."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box_to_pixels(box, w, h, min_size=2)
    crop = image[max(0, y1):min(h, y2), max(0, x1):min(w, x2)]
    return cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 and crop.size else crop


def patch(image: np.ndarray, box: Box) -> Patch:
    """The grey picture under ``box`` (0..1 of the frame), shrunk to ``PATCH_SIZE`` and blurred.

    >>> patch(np.zeros((50, 80, 3), np.uint8), (0.1, 0.1, 0.5, 0.9)).shape
    (12, 16)
    """
    crop = grey(image, box)
    if crop.size == 0:
        return np.zeros(PATCH_SIZE[::-1], np.float32)
    small = cv2.resize(crop, PATCH_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
    return cv2.GaussianBlur(small, (3, 3), 0)


def detail(image: np.ndarray, box: Box) -> np.ndarray:
    """The grey picture under ``box`` at ``DETAIL_SIZE``: a band of it is as fine as a patch of the band."""
    crop = grey(image, box)
    if crop.size == 0:
        return np.zeros(DETAIL_SIZE[::-1], np.uint8)
    return cv2.resize(crop, DETAIL_SIZE, interpolation=cv2.INTER_AREA)


def reference(image: np.ndarray, box: Box, whole: Patch) -> Ref:
    """The reference of a vehicle at ``box`` in ``image`` (whose whole patch is ``whole``)."""
    return Ref(box, patch(image, box), whole, near(image, box), detail(image, box))


def scene(image: np.ndarray) -> Patch:
    """The whole picture as a patch, from every n-th pixel (1080p: 0.08 ms instead of 2 ms)."""
    step = max(1, image.shape[1] // 128)
    return patch(np.ascontiguousarray(image[::step, ::step]), WHOLE)


def difference(a: Patch, b: Patch, keep: npt.NDArray[np.bool_] | None = None) -> float:
    """Mean absolute difference in grey levels after matching the two patches' brightness
    (half of a brightness change still counts: a white van and grey asphalt differ mostly there),
    over the cells ``keep`` says (all by default).

    >>> a = np.full((12, 16), 100, np.float32)
    >>> difference(a, a + 10), difference(a, a + 60)
    (5.0, 30.0)
    >>> b = a.copy(); b[:2] = 0                        # a small car in front, over its top rows
    >>> difference(a, b) > 14, difference(a, b, ~hidden((0, 0, 1, 1), [(0, 0, 1, 0.1)]))
    (True, 0.0)
    """
    if keep is not None:
        a, b = a[keep], b[keep]
    shift = float(b.mean() - a.mean())
    return float(np.abs(b - a - shift).mean()) + abs(shift) / 2


def hidden(box: Box, others: list[Box]) -> npt.NDArray[np.bool_]:
    """The cells of ``box``'s patch that one of ``others`` covers, and those next to them (the patch's blur
    spreads each cell into its neighbours).

    >>> hidden((0, 0, 1, 1), [(0.5, 0.5, 2, 2)]).sum(axis=1)   # a quarter, and a cell's rim round it
    array([0, 0, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9])
    """
    w, h = PATCH_SIZE
    out = np.zeros((h, w), bool)
    bw, bh = max(box[2] - box[0], 1e-6), max(box[3] - box[1], 1e-6)
    for o in others:
        x1, x2 = np.floor((o[0] - box[0]) / bw * w) - 1, np.ceil((o[2] - box[0]) / bw * w) + 1
        y1, y2 = np.floor((o[1] - box[1]) / bh * h) - 1, np.ceil((o[3] - box[1]) / bh * h) + 1
        if x2 > 0 and y2 > 0 and x1 < w and y1 < h:
            out[max(0, int(y1)):int(y2), max(0, int(x1)):int(x2)] = True
    return out


def near(image: np.ndarray, box: Box) -> np.ndarray:
    """The grey neighbourhood of ``box`` (grown by ``NEAR``, within the frame), at most
    ``NEAR_WIDTH`` pixels wide: the same pixels of two frames of one size give the same shape."""
    crop = grey(image, grown(box))
    scale = min(1.0, NEAR_WIDTH / crop.shape[1])
    size = (max(8, round(crop.shape[1] * scale)), max(8, round(crop.shape[0] * scale)))
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA).astype(np.float32)


def grown(box: Box) -> Box:
    dx, dy = (box[2] - box[0]) * NEAR, (box[3] - box[1]) * NEAR
    return max(0.0, box[0] - dx), max(0.0, box[1] - dy), min(1.0, box[2] + dx), min(1.0, box[3] + dy)


def displacement(before: np.ndarray, now: np.ndarray, ring: Box | None = None) -> tuple[float, float]:
    """How far the picture moved from ``before`` to ``now`` (two same-sized grey pictures), in
    fractions of their size (phase correlation, to a fraction of a pixel), judged on all of it but
    ``ring`` (0..1 of the pictures): a vehicle's box, so that its surroundings say how far the
    camera moved, and the next car in a lane (which moves while the road stays) is not lined up
    with the last one.

    >>> rng = np.random.default_rng(0)
    >>> a = cv2.GaussianBlur(rng.random((60, 80)).astype(np.float32), (0, 0), 2)
    >>> b = np.roll(a, (2, -3), axis=(0, 1))  # the picture moved 3 pixels left and 2 down
    >>> dx, dy = displacement(a, b); round(dx * 80), round(dy * 60)
    (-3, 2)
    """
    h, w = now.shape
    (dx, dy), _ = phase_shift(before, now, hole=ring)
    return dx / w, dy / h


def moved(box: Box, by: tuple[float, float]) -> Box:
    """``box`` moved by ``by`` (fractions of the frame)."""
    return box[0] + by[0], box[1] + by[1], box[2] + by[0], box[3] + by[1]


def shape(a: Patch, b: Patch) -> float:
    """The correlation of two patches, blind to brightness and contrast (0 where one is flat).

    >>> a = np.arange(12 * 16, dtype=np.float32).reshape(12, 16)
    >>> round(shape(a, 0.3 * a + 40), 3), round(shape(a, a[::-1]), 3), shape(a, np.zeros_like(a))
    (1.0, -0.986, 0.0)
    """
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / norm if norm > 1e-6 else 0.0


def in_front(box: Box, others: list[Box]) -> list[Box]:
    """The boxes of ``others`` (but ``box`` itself) in front of ``box``: reaching lower in the picture, nearer the
    camera, or lying mostly (``WITHIN``) inside it, where a vehicle behind would not show.

    >>> in_front((0, 0, 1, 1), [(0.2, 0.5, 0.4, 1.2), (0.1, 0.1, 0.3, 0.3), (0.5, -0.5, 1.5, 0.5), (0, 0, 1, 1)])
    [(0.2, 0.5, 0.4, 1.2), (0.1, 0.1, 0.3, 0.3)]
    """
    return [o for o in others if o != box and (o[3] > box[3] or inside(o, box) >= WITHIN)]


def covered_by(box: Box, others: list[Box]) -> float:
    """The largest share of ``box`` that one of ``others`` covers.

    >>> covered_by((0, 0, 2, 2), [(1, 0, 3, 2), (5, 5, 6, 6)])
    0.5
    """
    return max((inside(box, o) for o in others), default=0.0)


def clear_part(box: Box, others: list[Box]) -> Box | None:
    """The largest band of ``box`` along one side (above, below, left or right of every one of ``others``
    over it) that none of them covers, kept ``MARGIN`` of its size off their edges; None where that is
    under ``GLIMPSE`` of ``box``.

    >>> clear_part((0, 0, 1, 1), [(0.1, 0.5, 1.2, 1.5), (3, 3, 4, 4)])  # hidden from half way down
    (0, 0, 1, 0.45)
    >>> clear_part((0, 0, 1, 1), [(0, 0.1, 1, 1)]) is None  # a sliver shows
    True
    """
    x1, y1, x2, y2 = box
    over = [o for o in others if o[0] < x2 and x1 < o[2] and o[1] < y2 and y1 < o[3]]
    if not over:
        return box
    mx, my = MARGIN * (x2 - x1), MARGIN * (y2 - y1)
    bands = [(x1, y1, x2, min(o[1] for o in over) - my), (x1, max(o[3] for o in over) + my, x2, y2),
             (x1, y1, min(o[0] for o in over) - mx, y2), (max(o[2] for o in over) + mx, y1, x2, y2)]
    best = max(bands, key=lambda b: max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1]))
    area = max(0.0, best[2] - best[0]) * max(0.0, best[3] - best[1])
    return best if area >= GLIMPSE * (x2 - x1) * (y2 - y1) else None


def far_half(band: Box, box: Box) -> Box:
    """The half of ``band`` (from ``clear_part``: a band of ``box`` along one of its sides) at ``box``'s side,
    away from what is over the rest: what a box in front that is too tight leaves out lies in the other half.

    >>> far_half((0, 0, 1, 0.4), (0, 0, 1, 1)), far_half((0.6, 0, 1, 1), (0, 0, 1, 1))
    ((0, 0, 1, 0.2), (0.8, 0, 1, 1))
    """
    x1, y1, x2, y2 = band
    if y2 < box[3]:
        return x1, y1, x2, (y1 + y2) / 2
    if y1 > box[1]:
        return x1, (y1 + y2) / 2, x2, y2
    if x2 < box[2]:
        return x1, y1, (x1 + x2) / 2, y2
    if x1 > box[0]:
        return (x1 + x2) / 2, y1, x2, y2
    return band


def look(ref: Patch, image: np.ndarray, box: Box, occluders: list[Box], same_below: float = SAME_BELOW) -> View:
    """What the place of a stay whose picture at its last detection was ``ref`` looks like now."""
    return _view(difference(ref, patch(image, box)), box, occluders, same_below)


def _view(differs_by: float, box: Box, occluders: list[Box], same_below: float) -> View:
    if differs_by < same_below:
        return "same"
    return "occluded" if covered_by(box, occluders) >= OCCLUDER_COVER else "empty"


class Stationary:
    """The reference patches of one camera's stays, keyed by (zone, stay key)."""

    def __init__(self, same_below: float = SAME_BELOW):
        self.same_below = same_below
        self._refs: dict[tuple[str, int], Ref] = {}
        # a stay's reference from before another stay first stood mostly inside its box, while one does: the
        # reference goes on taking in what covers under OCCLUDER_COVER of it (a motorbike in front of a bus)
        self._before: dict[tuple[str, int], Ref] = {}
        self._now: tuple[np.ndarray, Patch] | None = None  # a frame and its whole patch

    def _whole(self, image: np.ndarray) -> Patch:
        """The whole patch of ``image``, made once per frame."""
        if self._now is None or self._now[0] is not image:
            self._now = (image, scene(image))
        return self._now[1]

    def _place(self, ref: Ref, image: np.ndarray) -> tuple[Box, Patch, float]:
        """Where ``ref``'s place is in ``image``, its picture there and how much that differs from
        ``ref``'s: at its box or, where the picture there differs, at its box moved as far as its
        surroundings moved (a camera swaying on its pole), whichever looks more like ``ref``."""
        picture = patch(image, ref.box)
        differs_by = difference(ref.picture, picture)
        if differs_by < self.same_below:
            return ref.box, picture, differs_by
        area = grown(ref.box)
        ax1, ay1, ax2, ay2 = area
        inner = ((ref.box[0] - ax1) / (ax2 - ax1), (ref.box[1] - ay1) / (ay2 - ay1),
                 (ref.box[2] - ax1) / (ax2 - ax1), (ref.box[3] - ay1) / (ay2 - ay1))
        dx, dy = displacement(ref.near, near(image, ref.box), inner)
        dx, dy = dx * (area[2] - area[0]), dy * (area[3] - area[1])
        if abs(dx) > MOVED_MAX * (ref.box[2] - ref.box[0]) or abs(dy) > MOVED_MAX * (ref.box[3] - ref.box[1]):
            return ref.box, picture, differs_by
        box = moved(ref.box, (dx, dy))
        other = patch(image, box)
        other_differs_by = difference(ref.picture, other)
        return (box, other, other_differs_by) if other_differs_by < differs_by else (ref.box, picture, differs_by)

    def _relit(self, ref: Ref, image: np.ndarray, picture: Patch) -> bool:
        """Whether ``picture`` (of ``ref``'s place in ``image``) is ``ref``'s in other light: the whole
        picture changed as a whole since (``SCENE_CHANGED``) and the place kept its shape (``SAME_SHAPE``)."""
        return difference(ref.whole, self._whole(image)) >= SCENE_CHANGED and shape(ref.picture, picture) >= SAME_SHAPE

    def views(self, zone: str, stays, image: np.ndarray, occluders: list[Box]) -> dict[int, View]:
        """A view of each stay (``DwellRule.stays()``) that has a reference patch. A place unchanged but where
        boxes in front of it stand (``_unchanged_around``) is ``same_around``: a small car or a person stopping in
        front of a parked van the detector misses then is not taken for the van gone, nor for the van seen in part.
        A place seen in other light (``relit``) is ``same``, and its picture now is its reference from then on: a
        parked car the detector loses when the camera switches to night mode is not taken to have
        left."""
        out: dict[int, View] = {}
        for stay in stays:
            ref = self._refs.get((zone, stay.key))
            if ref is None:
                continue
            place, picture, differs_by = self._place(ref, image)
            out[stay.key] = _view(differs_by, place, occluders, self.same_below)
            if out[stay.key] != "same" and self._unchanged_around(ref, picture, place, in_front(place, occluders)):
                out[stay.key] = "same_around"
            elif out[stay.key] != "same" and self._relit(ref, image, picture):
                self._refs[(zone, stay.key)] = reference(image, place, self._whole(image))
                out[stay.key] = "same"
            elif out[stay.key] == "occluded" and self._gone_behind(ref, image, place, occluders):
                out[stay.key] = "empty"
        return out

    def _unchanged_around(self, ref: Ref, picture: Patch, place: Box, front: list[Box]) -> bool:
        """Whether ``picture`` (of ``ref``'s place, at ``place``) is ``ref``'s but where the boxes ``front`` stand
        (``hidden``), the rest at least half of it: a small car in front changes the picture where it stands (a
        dark one over a white van's side, by twice ``SAME_BELOW``), the rest still shows the vehicle."""
        rest = ~hidden(place, front)
        return bool(front) and rest.mean() >= 0.5 and difference(ref.picture, picture, rest) < self.same_below

    def _gone_behind(self, ref: Ref, image: np.ndarray, place: Box, occluders: list[Box]) -> bool:
        """Whether the part of ``ref``'s place that the boxes over it leave clear (``clear_part``) differs
        from what it showed, and so does its half away from them (``far_half``): a van that left while a queue
        still stands in front of it is gone from the band above the queue. A box in front that is tighter than
        its car (by 10 % of its height) leaves the car's roof in the band, but not in its far half. Not where too
        little is clear, nor where the whole picture changed (the light)."""
        part = clear_part(place, occluders)
        if part is None or difference(ref.whole, self._whole(image)) >= SCENE_CHANGED:
            return False
        w, h = place[2] - place[0], place[3] - place[1]
        for band in (part, far_half(part, place)):
            x1, y1, x2, y2 = band
            within = ((x1 - place[0]) / w, (y1 - place[1]) / h, (x2 - place[0]) / w, (y2 - place[1]) / h)
            if difference(patch(ref.detail, within), patch(image, band)) < self.same_below:
                return False
        return True

    def same_vehicle(self, zone: str, key: int, image: np.ndarray, box: Box, occluders: list[Box]) -> bool | None:
        """Whether a vehicle detected at ``box``, over stay ``key``'s place, is the stay's vehicle: the
        picture where the stay was last detected is unchanged (True), or unchanged but where a small box in
        front of the detection stands (True: a car stopping in front of a van changes its picture there), or
        has changed with no other person or vehicle box in front of the detection (False: another vehicle).
        In front means reaching lower in the picture, nearer the camera: in a queue of cars seen from behind each
        box overlaps the one ahead, which is no reason to doubt what the picture shows; or lying
        mostly (``WITHIN``) inside the detection's box, where a vehicle behind would not show (a
        small car parked in a parked lorry's box, the lorry's picture changed where it stands). None: no
        picture of the stay yet, something in front, or the whole picture changed as much (the
        light, not the vehicle, unless the place kept its shape: ``relit``, True). The picture is
        taken at the stay's box, not the detection's, so a box that jitters around a parked car
        still sees the same picture."""
        ref = self._refs.get((zone, key))
        if ref is None:
            return None
        place, picture, differs_by = self._place(ref, image)
        if differs_by < self.same_below or self._relit(ref, image, picture):
            return True
        front = in_front(box, occluders)
        if covered_by(box, front) >= OCCLUDER_COVER:
            return None
        if self._unchanged_around(ref, picture, place, front):
            return True
        # the whole picture changed too (night mode, an exposure jump): the light, not the vehicle
        return None if difference(ref.whole, self._whole(image)) >= SCENE_CHANGED else False

    def already_there(self, zone: str, key: int, image: np.ndarray, box: Box) -> bool | None:
        """Whether the picture under ``box``, a detection mostly (``WITHIN``) inside stay ``key``'s place, looks
        as the stay's reference showed it there (``detail``: kept at its last detection with nothing in front,
        or from before another stay first stood mostly inside it): a door, a trailer or a roof box the detector
        names a vehicle of its own came with the stay's vehicle (True); a small car that parked in a lorry's
        box since did not (False). None: no reference, ``box`` not within it, or the whole picture changed
        (the light)."""
        ref = self._before.get((zone, key)) or self._refs.get((zone, key))
        if ref is None or inside(box, ref.box) < WITHIN or difference(ref.whole, self._whole(image)) >= SCENE_CHANGED:
            return None
        x1, y1, x2, y2 = ref.box
        w, h = x2 - x1, y2 - y1
        within = (max(0.0, (box[0] - x1) / w), max(0.0, (box[1] - y1) / h), min(1.0, (box[2] - x1) / w),
                  min(1.0, (box[3] - y1) / h))
        # both at the reference's grain, cut at the same pixels: a box a few of them wide, cut from the reference
        # rounded outward, took in a rim of what is around it and differed from the same picture now
        return difference(patch(ref.detail, within), patch(detail(image, ref.box), within)) < self.same_below

    def remember(self, zone: str, stays, t: float, image: np.ndarray, occluders: list[Box]) -> None:
        """Keep the patch of every stay detected at ``t``, unless something else stands in front of
        it (then the older patch shows the vehicle better), and the one from before another stay first stood
        mostly inside its box (``already_there``); forget stays that are gone."""
        keys = set()
        for stay in stays:
            key = (zone, stay.key)
            keys.add(key)
            ref = self._refs.get(key)
            others = [o for o in occluders if o != stay.box]
            if stay.detected_at == t and (ref is None or covered_by(stay.box, others) < OCCLUDER_COVER):
                self._refs[key] = reference(image, stay.box, self._whole(image))
            if not any(s.key != stay.key and inside(s.box, stay.box) >= WITHIN for s in stays):
                self._before.pop(key, None)
            elif key not in self._before and (ref or self._refs.get(key)) is not None:
                self._before[key] = ref or self._refs[key]
        for refs in (self._refs, self._before):
            for key in [k for k in refs if k[0] == zone and k not in keys]:
                del refs[key]

    def carry(self, zone: str, keys: set[int], moved: Callable[[Box], Box], image: np.ndarray) -> None:
        """The stays ``keys`` of ``zone`` were carried (``DwellRule.carry``): each reference is at the box
        ``moved`` gives, its neighbourhood as ``image`` (the picture moved back now) shows it there; its
        picture stays, for it shows the same vehicle."""
        for key in keys:
            for refs in (self._refs, self._before):
                ref = refs.get((zone, key))
                if ref is not None:
                    box = moved(ref.box)
                    refs[(zone, key)] = ref._replace(box=box, near=near(image, box))

    def reset(self) -> None:
        self._refs.clear()
        self._before.clear()
        self._now = None
