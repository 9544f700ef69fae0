"""The model-free left-object check: what changed against the long-term background and then
stayed still. Pure logic on frames handed in with their time; no I/O, no learning.

Two running backgrounds of a small picture: a short-term one that follows the scene within
seconds and a long-term one that learns only where nothing stands out. A pixel that differs
from the long-term background but no longer from the short-term one is *static foreground*:
something arrived and stopped (a pile, a spill, a parked car, a person standing). Vehicles
and people are cut out with the detector's boxes, so what remains is a candidate pile or
spill. Where one of them passed a moment ago, the short-term background still remembers it
for seconds; there a pixel as it was at the last look is still too (where people cross a pile
every few seconds, the short-term background never settled on it). A big, sudden change of
most of the picture (lights, a moved camera) makes it learn the scene again instead of
reporting it.

A pixel has changed when its **colour** or its **texture** has, not only its grey level: the
picture is compared in CIE Lab (lightness, and the a*b* chroma that tells yellow sand from
grey concrete at the same lightness) and in gradient energy (sand's grain on smooth concrete,
water's gloss on rough asphalt). It stays silent under **lighting changes** (the frame's
lightness is first scaled to the background's by the median ratio over the unchanged ground)
and under **shadows**: a pixel darker by at most a shadow's factor, with its chroma and its
relative texture kept, is not a change (a shadow's sharp edge is: a thin line of texture). A stain that only darkens the
ground that much, or grey grit a little darker than grey concrete, is not seen either: the
detector alone carries it, and its incident goes for review.

What stands out is absorbed into the long-term background slowly (``absorb_s``, default
10 min), so a *ghost* (something that was there when the check started and then left)
fades out, and so does, after a quarter of an hour or so, an object left for good: the
rules keep an incident alive on the detector's sightings, not on this check alone.

For the end of an incident it confirmed, the check keeps what the ground under the object looked
like before it came (``ground``: the long-term background there, which had not yet learnt the
object) and says how much of that place still differs from it however the picture has shaken by a
pixel (``unlike``): a pile taken away leaves the ground as it was, whatever a detector still
half-believes there (a stained floor), while one that stays differs from it for good, even after
the background has absorbed it. Since that ground can be read wrong (learnt from sharper or other
pictures than today's), it also keeps how the place looked with the object there (``look``) and says
how much of the object the place still shows (``like``): something else there, or the ground read
wrong, differs from the ground and from the object alike.

>>> import numpy as np
>>> check = LeftObject(width=64)
>>> ground = np.full((48, 64, 3), 100, np.uint8)
>>> _ = [check.observe(float(t), ground) for t in range(10)]
>>> pile = ground.copy(); pile[20:30, 20:34] = 200
>>> masks = [check.observe(float(t), pile) for t in range(10, 30)]
>>> int(masks[0].sum()), int(masks[-1][20:30, 20:34].mean() * 100)
(0, 100)
>>> box = (20 / 64, 20 / 48, 34 / 64, 30 / 48)
>>> before = check.ground(box)   # taken while the pile stands: the ground as it was
>>> check.unlike(before, box)
1.0
>>> int(check.observe(30.0, pile, exclude=[(0.3, 0.4, 0.55, 0.65)]).sum())
0
>>> cleared = [check.observe(float(t), ground) for t in range(31, 34)]
>>> int(cleared[-1].sum())
0
>>> check.unlike(before, box)
0.0
"""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

from edge.geometry import Box, Point, box_to_pixels, inside, normalise, polygon_to_pixels
from edge.flow import MIN_AGREEMENT, flow_shift
from edge.phase import MIN_RESPONSE, phase_shift

Mask = np.ndarray  # HxW uint8, 1 = static foreground
PASSED_S = 8.0  # seconds the short-term background (4 s time constant) remembers a passer-by
STAYED_S = 8.0  # what is left somewhere made its ground differ from the background this long before too (``stayed``)
SHAKE = 1  # pixels of the check's picture a camera may shake by between two looks at a place
SWAY_MIN, SWAY_MAX = 0.5, 8.0  # the whole picture's shift (pixels of the check's picture) taken back
L_OFFSET = 40.0  # OpenCV's 8-bit L for L* = -16: lightness + this scales with the light (L* + 16 ~ Y^(1/3))
# the check's picture is at most this many times as high as wide, taller ones squeezed to it: a 4x4000 camera's had
# been 192x192000 (6 GB, 25 s a look)
TALLEST = 8


class Ground(NamedTuple):
    """A place's ground as the check last knew it before an object came (``LeftObject.ground``)."""

    features: np.ndarray  # L, a, b, log gradient energy, ``SHAKE`` pixels around the place
    light: np.ndarray  # per pixel, how light the whole background was when it learnt that pixel (``LeftObject._lit``)


class Look(NamedTuple):
    """A place as the check saw it with its object there (``LeftObject.look``)."""

    features: np.ndarray  # L, a, b, log gradient energy, ``SHAKE`` pixels around the place
    object: np.ndarray  # HxW bool over the place: where it differed from its ground, in view
    light: float  # how light the whole background was then (``LeftObject._light``)


class LeftObject:
    """See the module docstring. Thresholds: ``threshold`` in lightness levels (0..255),
    ``chroma_threshold`` in a*b* units, ``texture_threshold`` as the natural log of the ratio of
    relative gradient energies; ``shadow`` the range of lightness ratios a shadow may cause."""

    def __init__(self, width: int = 192, threshold: float = 18.0, chroma_threshold: float = 6.0,
                 texture_threshold: float = 1.0, shadow: tuple[float, float] = (0.45, 1.0),
                 short_tau_s: float = 4.0, absorb_s: float = 600.0, relearn_fraction: float = 0.5):
        self.width, self.threshold = width, threshold
        self.chroma_threshold, self.texture_threshold, self.shadow = chroma_threshold, texture_threshold, shadow
        self.short_tau_s, self.absorb_s, self.relearn_fraction = short_tau_s, absorb_s, relearn_fraction
        self.texture_floor = 0.05  # relative gradient energy below this is compression noise, not texture
        self._long: np.ndarray | None = None  # HxWx4: L, a, b, log gradient energy
        self._short: np.ndarray | None = None
        self._known: np.ndarray | None = None  # pixels whose empty ground has been seen
        self._cur: np.ndarray | None = None  # the last picture's features, at the background's lightness
        self._cur_light = 0.0  # ... the background's lightness it is at (``_light`` before the look was learnt)
        self._hidden: np.ndarray | None = None  # the last picture's pixels behind people and vehicles
        self._unseen: np.ndarray | None = None  # ... and its edge strip a swaying camera did not show
        self.sway = (0.0, 0.0)  # pixels (x, y) the last picture was moved back by onto the background (``_registered``)
        self._hidden_at: np.ndarray | None = None  # when each pixel was last behind a person or vehicle
        self._judged: np.ndarray | None = None  # the last look's pixels it could call still or not (see judged)
        self._last_clear: np.ndarray | None = None  # each pixel's features when last seen with nothing in front
        self._lit: np.ndarray | None = None  # HxW: how light the background was when it last learnt each pixel
        # the looks of the last STAYED_S and the latest before it: (t, where it differed from the background in
        # view, where that look could call the ground still or not: ``_judged``)
        self._changes: list[tuple[float, np.ndarray, np.ndarray]] = []
        self._last_t = 0.0
        self.scene = 0  # times the check learnt the scene from scratch (its first picture, lights, a moved camera)
        self._kernel = np.ones((3, 3), np.uint8)
        self._halo = np.ones((7, 7), np.uint8)

    def _features(self, image: np.ndarray) -> np.ndarray:
        """The small picture as L, a, b (OpenCV's 8-bit Lab scale) and log gradient energy of L."""
        h, w = image.shape[:2]
        size = (self.width, min(max(1, round(self.width * h / w)), TALLEST * self.width))
        step = max(1, w // (size[0] * 2))  # skip pixels first: far cheaper than resizing a whole 1080p frame
        small = cv2.resize(image[::step, ::step], size, interpolation=cv2.INTER_AREA)
        if small.ndim == 2:
            small = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
        lab = cv2.cvtColor(cv2.GaussianBlur(small, (3, 3), 0), cv2.COLOR_BGR2LAB).astype(np.float32)
        relative = np.log(lab[..., 0] + L_OFFSET)  # contrast relative to lightness: the same in sun and shade
        gx = cv2.Sobel(relative, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(relative, cv2.CV_32F, 0, 1, ksize=3)
        energy = cv2.GaussianBlur(gx * gx + gy * gy, (0, 0), 1.0)
        return np.dstack([lab, np.log(energy + self.texture_floor)])

    def _differs(self, cur: np.ndarray, ref: np.ndarray, shadows: bool = True) -> np.ndarray:
        """Where ``cur`` is not ``ref``: lightness, chroma or texture, unless (``shadows``) it is only a shadow.
        Chroma is compared at the reference's lightness (a shadow scales L*+16, a* and b* alike)
        and texture as contrast relative to the lightness (the gradient of log(L*+16))."""
        ratio = (cur[..., 0] + L_OFFSET) / (ref[..., 0] + L_OFFSET)
        d_light = np.abs(cur[..., 0] - ref[..., 0])
        d_chroma = np.hypot((cur[..., 1] - 128) / ratio - (ref[..., 1] - 128), (cur[..., 2] - 128) / ratio - (ref[..., 2] - 128))
        d_texture = cur[..., 3] - ref[..., 3]
        # a shadow darkens, keeps the chroma and the texture (wet ground loses texture, a grey bag brings its own)
        shadow = (ratio >= self.shadow[0]) & (ratio <= self.shadow[1]) & (d_chroma <= self.chroma_threshold) \
            & (np.abs(d_texture) <= self.texture_threshold)
        return ((d_light > self.threshold) | (d_chroma > self.chroma_threshold)
                | (np.abs(d_texture) > self.texture_threshold)) & ~(shadow & shadows)

    def observe(self, t: float, image: np.ndarray, exclude: list[Box] = ()) -> Mask:
        """Static foreground at time ``t``, with the ``exclude`` boxes (0..1 of the frame) cut out.

        Ground hidden behind a person or vehicle when the check starts is learnt the first
        time it is seen clear, so a person who stood there at start leaves no ghost.
        """
        raw = self._features(image)
        h, w = raw.shape[:2]
        hidden = np.zeros((h, w), bool)
        for box in exclude:
            x1, y1, x2, y2 = box_to_pixels(box, w, h, min_size=0)
            hidden[y1:y2, x1:x2] = True
        raw, hidden, unseen = self._registered(raw, hidden)
        hidden = cv2.dilate(hidden.astype(np.uint8), self._halo).astype(bool)  # a box's edge texture reaches past it
        self._cur, self._hidden, self._unseen = raw, hidden, unseen
        last_clear = self._last_clear
        self._last_clear = raw.copy() if last_clear is None or last_clear.shape != raw.shape \
            else np.where(hidden[..., None], last_clear, raw)
        if self._hidden_at is None or self._hidden_at.shape != hidden.shape:
            self._hidden_at = np.full(hidden.shape, -math.inf)
        self._hidden_at[hidden] = t
        if self._long is None or self._long.shape != raw.shape:
            self._long, self._short, self._last_t, self._known = raw.copy(), raw.copy(), t, ~hidden
            self._lit = np.full((h, w), self._light(), np.float32)
            self._cur_light = self._light()
            self.scene += 1
            self._judged = np.ones((h, w), bool)  # a scene learnt afresh: nothing differs from it yet
            self._changes = []
            return np.zeros((h, w), np.uint8)
        dt = max(0.0, t - self._last_t)
        self._last_t = t
        fresh = ~self._known & ~hidden  # seen clear for the first time
        if fresh.any():  # most looks have none: no second median of the background per look
            self._long[fresh] = raw[fresh]
            self._lit[fresh] = self._light()
        self._known |= fresh
        # the light changed everywhere at once (a cloud, the street lamps): compare at the background's
        # lightness, scaled by the median ratio over the ground (the background itself follows the light)
        cur = raw.copy()
        ground = self._known & ~hidden
        if ground.any():
            gain = float(np.clip(np.median(self._long[..., 0][ground] + L_OFFSET)
                                 / np.median(raw[..., 0][ground] + L_OFFSET), 0.5, 2))
            cur[..., 0] = (raw[..., 0] + L_OFFSET) * gain - L_OFFSET
        self._cur, self._cur_light = cur, self._light()
        differs = self._differs(cur, self._long, shadows=False) & self._known
        changed = differs & self._differs(cur, self._long)
        if changed.mean() > self.relearn_fraction:  # lights or view changed: learn the scene again
            self._long, self._short, self._known = raw.copy(), raw.copy(), ~hidden
            self._cur, self._cur_light = raw, self._light()
            self._lit = np.full((h, w), self._light(), np.float32)
            self.scene += 1
            self._judged = np.ones((h, w), bool)  # a scene learnt afresh: nothing differs from it yet
            self._changes = []
            return np.zeros((h, w), np.uint8)
        moving = self._differs(raw, self._short, shadows=False)  # a passer-by's shadow is moving too
        passed = t - self._hidden_at <= PASSED_S
        if last_clear is not None and last_clear.shape == raw.shape and passed.any():
            # where the short-term background still remembers a passer-by, as it was when last seen with
            # nobody in front is still (the look just before may have been of the passer-by)
            moving &= ~passed | self._differs(raw, last_clear, shadows=False)
        self._judged = ~moving & ~hidden & ~unseen
        old = [i for i, (when, _, _) in enumerate(self._changes) if t - when >= STAYED_S]
        self._changes = self._changes[old[-1] if old else 0:] + [(t, changed & ~hidden & ~unseen, self._judged)]
        static = (changed & self._judged).astype(np.uint8)
        self._short += (1 - math.exp(-dt / self.short_tau_s)) * (raw - self._short)
        absorbed = self._long + (1 - math.exp(-dt / self.absorb_s)) * (cur - self._long)
        # learn at once where nothing stands out, not even a shadow (a shadow learnt would leave a ghost)
        self._long = np.where(differs[..., None], absorbed, raw)
        # where something stands out the background keeps the light it was learnt in (a pile's ground
        # in the light before the pile came); elsewhere it is in today's
        self._lit = np.where(differs, self._lit, np.float32(self._light()))
        return cv2.morphologyEx(static, cv2.MORPH_OPEN, self._kernel)

    def _registered(self, raw: np.ndarray, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The picture (and its hidden pixels) moved back onto the background where the camera sways:
        the whole picture's shift against the long-term background (phase correlation of lightness,
        people and vehicles filled in from the background), taken back when it is at least
        ``SWAY_MIN`` and at most ``SWAY_MAX`` pixels and its peak's response is at least ``MIN_RESPONSE``
        (a light falling 4 % a look read as a move of 6.7 px, peak -0.06, once), and not where the median
        of the ground's own moves (``edge.flow``) says the picture stood still. A still camera's picture seems to move by at
        most 0.3 pixels (the campus cross clips), one swaying by 0.5 % of its size by 1-1.7. Also the
        strip along the picture's edge that the moved picture does not show (filled with its edge's
        copy): no static foreground, and left out where a place is compared with its ground (a pile's
        place in the picture's corner read a few per cent more unlike its ground while the camera
        swayed: the cross set's garage swayed by 0.5 %)."""
        unseen = np.zeros(hidden.shape, bool)
        self.sway = (0.0, 0.0)
        if self._long is None or self._long.shape != raw.shape:
            return raw, hidden, unseen
        h, w = hidden.shape
        before = self._long[..., 0]
        now = np.where(hidden, before, raw[..., 0]).astype(np.float32)
        (dx, dy), response = phase_shift(before.astype(np.float32), now)
        if response < MIN_RESPONSE or not SWAY_MIN <= math.hypot(dx, dy) <= SWAY_MAX:
            return raw, hidden, unseen
        # phase correlation reads one shift for the whole picture, and a region that changed alone pulls it (a
        # bright pile as the light falls); where the ground has texture enough, the median of the points' own
        # moves says whether the picture moved at all. It only refuses: on a flat floor it cannot read, and a
        # swaying camera's move is still phase correlation's. Still means under half ``SWAY_MIN``: the two reads of
        # a camera swaying by 5 px differ by up to 0.6 px (the campus clip swayed), a still one's flow reads
        # 0.01-0.07 px where phase correlation read 0.7.
        (fx, fy), agreement = flow_shift(before, raw[..., 0], ~hidden)
        if agreement >= MIN_AGREEMENT and math.hypot(fx, fy) < SWAY_MIN / 2:
            return raw, hidden, unseen
        self.sway = (float(dx), float(dy))
        back = np.float32([[1, 0, -dx], [0, 1, -dy]])
        raw = cv2.warpAffine(raw, back, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        hidden = cv2.warpAffine(hidden.astype(np.uint8), back, (w, h), flags=cv2.INTER_NEAREST,
                                borderMode=cv2.BORDER_REPLICATE).astype(bool)
        shown = cv2.warpAffine(np.ones((h, w), np.float32), back, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return raw, hidden, shown < 1 - 1e-3

    def taken_back(self, box: Box) -> Box:
        """``box`` (0..1 of the frame) of the last picture where it lies in that picture moved back onto the
        background (``sway``): where the check saw what is in it.

        >>> check = LeftObject(width=64); check._long = np.zeros((48, 64, 4), np.float32); check.sway = (3.2, -2.4)
        >>> [round(v, 3) for v in check.taken_back((0.5, 0.5, 0.6, 0.6))]   # moved 5 % right and up: back 5 % left and down
        [0.45, 0.55, 0.55, 0.65]
        """
        if self._long is None:
            return box
        h, w = self._long.shape[:2]
        dx, dy = self.sway[0] / w, self.sway[1] / h
        return box[0] - dx, box[1] - dy, box[2] - dx, box[3] - dy

    def judged(self, box: Box) -> float:
        """The share of ``box`` (0..1 of the frame) whose pixels the last look could call still or not:
        not behind a person or vehicle (or their edges), not moving, not still showing a passer-by the
        short-term background remembers, not outside a swaying picture. Where it is small, the check
        cannot tell whether an object lies there (a pile people stand beside)."""
        if self._judged is None:
            return 0.0
        h, w = self._judged.shape
        x1, y1, x2, y2 = box_to_pixels(box, w, h)
        return float(self._judged[y1:y2, x1:x2].mean())

    def stayed(self, box: Box) -> float | None:
        """Of what differs from the background in ``box`` (0..1 of the frame) at the last look, the share that
        differed already at each look of the ``STAYED_S`` before (the least; the looks that could judge less than
        half of it, ``judged``: people or vehicles in front, or something moving over it, not counted): a pile or
        a spill stays where it was left, and the ground under it differs all the while, however the detector's box
        moves over it; a car crawling along a road brings what differs under it with it, though the short-term
        background, following the scene within seconds, reads its dark body as still where it slows. Each look,
        not the oldest alone: the real footage is looped, and a car 8 s on in a clip of 8 s stood where it stands
        now. Judged, not only in view: a passer-by the vehicle model did not name, or a shadow, over a spill read
        its ground as unchanged at one look and held it 4 s as moved (``make eval --draw 33``'s
        ``x-campus-yard-7``). None where no look is that old or none of them could be counted."""
        if len(self._changes) < 2 or self._changes[-1][0] - self._changes[0][0] < STAYED_S:
            return None
        now = self._changes[-1][1]
        h, w = now.shape
        x1, y1, x2, y2 = box_to_pixels(box, w, h)
        now = now[y1:y2, x1:x2]
        shares = []
        for _, then, could in self._changes[:-1]:
            judged = now & could[y1:y2, x1:x2]
            if judged.any() and judged.sum() >= 0.5 * now.sum():
                shares.append((then[y1:y2, x1:x2] & judged).sum() / judged.sum())
        return float(min(shares)) if shares else None

    def _light(self) -> float:
        """How light the long-term background is (its median L + ``L_OFFSET``, which scales with the light)."""
        assert self._long is not None
        return float(np.median(self._long[..., 0])) + L_OFFSET

    def ground(self, box: Box) -> Ground | None:
        """The long-term background under ``box`` (0..1 of the frame) and ``SHAKE`` pixels around it,
        and how light the background was when it learnt each of its pixels: taken when an object there
        has just been confirmed, it is the ground as it was before the object came, in the light of
        then (not of the confirmation: the cross set's light rose by 13 % while a garage pile waited
        to be confirmed, its ground was read in the wrong light, and its incident stayed open after
        the pile was taken away)."""
        if self._long is None or self._lit is None:
            return None
        return Ground(_around(self._long, box), _around(self._lit, box))

    def seen(self, box: Box) -> Ground | None:
        """``box`` (0..1 of the frame) as the last picture shows it, and ``SHAKE`` pixels around it, as a ``Ground``
        to compare later pictures with (``unlike``): the ground an object taken away left, which the background,
        having learnt the object, reads as changed for as long as it takes to learn the ground (a ghost). None
        before the first picture or where less than half of it is in view (people or vehicles in front)."""
        if self._cur is None:
            return None
        features = _around(self._cur, box)
        view = self._view(box, features)
        if view is None or view[1].mean() < 0.5:
            return None
        return Ground(features, np.full(features.shape[:2], self._cur_light, np.float32))

    def unlike(self, ground: Ground, box: Box, min_seen: float = 0.5, within: np.ndarray | None = None) -> float | None:
        """The share of ``box`` in the last picture that differs from ``ground`` (see ``ground``, same
        box) however the picture is shifted by up to ``SHAKE`` pixels (a camera shaken by the wind
        moves a road arrow's edges, not the ground), shadows not counted; None when less than
        ``min_seen`` of it is in view (people or vehicles in front) or the picture changed size.
        ``within`` (a ``Look``'s object pixels, same box): the share of those in view instead; where
        people hide most of a place, the part of its object they leave in view still tells whether the
        object lies there (a pile does not read as its ground, an empty place does).
        The ground is seen in today's light: its lightness and chroma scaled as the whole background's
        lightness changed since it learnt each pixel (the picture is compared at the background's lightness), so a pile
        taken away after the sun came out reads as its ground (the cross set's light goes up and down
        by 15 %; its garage pile, taken away as the light rose, read 13-19 % unlike its ground for 12 s)."""
        compared = self._against_ground(ground, box)
        if compared is None:
            return None
        differs, seen = compared
        judged = seen if within is None else seen & within
        if not judged.any() or judged.sum() < min_seen * (seen.size if within is None else within.sum()):
            return None
        return float(differs[judged].mean())

    def look(self, ground: Ground, box: Box) -> Look | None:
        """The place in the last picture with its object there: its features and the pixels in view
        where it differs from ``ground`` (the object); None when it shows no such pixel."""
        compared = self._against_ground(ground, box)
        if compared is None:
            return None
        shown = compared[0] & compared[1]
        if not shown.any():
            return None
        assert self._cur is not None
        return Look(_around(self._cur, box), shown, self._cur_light)

    def like(self, look: Look, box: Box, min_seen: float = 0.5) -> float | None:
        """The share of ``look``'s object pixels (see ``look``, same box) that the last picture shows as
        they were then, however the picture is shifted by up to ``SHAKE`` pixels, in today's light (the
        look's lightness and chroma scaled as the background's lightness changed since), shadows not
        counted as a change; None when less than ``min_seen`` of them is in view or the picture changed
        size. A place can differ from its ground before and still not hold its object: the ground
        itself read wrong (a background that learnt the place while a lane of traffic stood on it), or
        something else there now."""
        view = self._view(box, look.features)
        if view is None:
            return None
        cur, seen = view
        shown = look.object & seen
        if shown.sum() < min_seen * look.object.sum():
            return None
        differs = self._shaken(cur, _relit(look.features, self._cur_light / look.light))
        return float(1.0 - differs[shown].mean())

    def _shaken(self, cur: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Where ``cur`` differs from ``ref`` (``SHAKE`` pixels larger each side) at every shift of up to
        ``SHAKE`` pixels, shadows not counted."""
        bh, bw = cur.shape[:2]
        differs = np.ones((bh, bw), bool)
        for dy in range(2 * SHAKE + 1):
            for dx in range(2 * SHAKE + 1):
                differs &= self._differs(cur, ref[dy:dy + bh, dx:dx + bw])
        return differs

    def _against_ground(self, ground: Ground, box: Box) -> tuple[np.ndarray, np.ndarray] | None:
        """Where ``box`` in the last picture differs from ``ground`` (see ``unlike``), and where it is
        in view; None before the first picture, when the picture changed size or none of it is in view."""
        view = self._view(box, ground.features)
        if view is None or not view[1].any():
            return None
        cur, seen = view
        return self._shaken(cur, _relit(ground.features, self._cur_light / ground.light)), seen

    def _view(self, box: Box, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``box`` in the last picture, and where it is in view (no person or vehicle in front, not the
        strip a swaying picture does not show); None before the first picture or when ``kept`` (features
        kept of that box, ``SHAKE`` pixels around it) is of another size: the picture changed size."""
        if self._cur is None or self._hidden is None or self._unseen is None or self._long is None:
            return None
        h, w = self._cur.shape[:2]
        x1, y1, x2, y2 = box_to_pixels(box, w, h)
        cur = self._cur[y1:y2, x1:x2]
        bh, bw = cur.shape[:2]
        if kept.shape[:2] != (bh + 2 * SHAKE, bw + 2 * SHAKE):
            return None
        return cur, ~self._hidden[y1:y2, x1:x2] & ~self._unseen[y1:y2, x1:x2]


def _around(picture: np.ndarray, box: Box) -> np.ndarray:
    """A copy of ``box`` (0..1 of the frame) in ``picture`` (HxW or HxWxC) and ``SHAKE`` pixels around
    it, the picture's edge repeated where the box touches it."""
    h, w = picture.shape[:2]
    x1, y1, x2, y2 = box_to_pixels(box, w, h)
    m = SHAKE
    pad = ((m, m), (m, m)) + ((0, 0),) * (picture.ndim - 2)
    return np.pad(picture, pad, mode="edge")[y1:y2 + 2 * m, x1:x2 + 2 * m].copy()


def _relit(features: np.ndarray, gain: float | np.ndarray) -> np.ndarray:
    """``features`` seen in another light: lightness (+ ``L_OFFSET``) and chroma scaled by ``gain``
    (a number, or one per pixel)."""
    relit = features.copy()
    gain = np.asarray(gain, np.float32)
    relit[..., 0] = (relit[..., 0] + L_OFFSET) * gain - L_OFFSET
    relit[..., 1:3] = (relit[..., 1:3] - 128) * gain[..., None] + 128
    return relit


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


def without(static: Mask, places: list[Box], share: float) -> Mask:
    """``static`` less each still, changed region (8-connected) whose box lies at least ``share`` in one of
    ``places`` (0..1 of the frame); ``static`` itself where none does.

    >>> still = np.zeros((10, 20), np.uint8)
    >>> still[2:4, 5:9] = 1; still[6:8, 12:16] = 1
    >>> int(without(still, [(0.2, 0.1, 0.4, 0.5)], 0.5).sum()), int(without(still, [(0.4, 0.1, 0.5, 0.5)], 0.5).sum())
    (8, 16)
    """
    if not places or not static.any():
        return static
    n, labels, stats, _ = cv2.connectedComponentsWithStats(static, connectivity=8)
    h, w = static.shape
    gone = [i for i in range(1, n) for x, y, bw, bh, _ in [stats[i]]
            if any(inside(normalise((x, y, x + bw, y + bh), w, h), p) >= share for p in places)]
    return np.where(np.isin(labels, gone), 0, static).astype(static.dtype) if gone else static


def regions(static: Mask, zone: Mask, min_fraction: float) -> list[tuple[Box, float]]:
    """Still, changed regions inside the zone as (box 0..1 of the frame, fraction of the zone),
    biggest first, each at least ``min_fraction`` of the zone; Python's floats, not numpy's (a box that
    stands in for a sighting goes on the wire as it is: ``left_object: either``).

    >>> still, zone = np.zeros((10, 20), np.uint8), np.ones((10, 20), np.uint8)
    >>> still[2:4, 5:9] = 1
    >>> regions(still, zone, 0.01)
    [((0.25, 0.2, 0.45, 0.4), 0.04)]
    """
    area = max(1, int(zone.sum()))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(static & zone, connectivity=8)
    h, w = static.shape
    out = []
    for i in range(1, n):
        x, y, bw, bh, pixels = (int(v) for v in stats[i])
        if pixels >= min_fraction * area:
            out.append((normalise((x, y, x + bw, y + bh), w, h), pixels / area))
    return sorted(out, key=lambda r: -r[1])
