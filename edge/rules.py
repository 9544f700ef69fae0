"""Incident rules: pure logic, time passed in, no I/O.

The dwell rule for illegal parking: a vehicle whose anchor (bottom-centre of its box)
stays inside a no-parking zone, without moving more than a tolerance, for ``dwell_s``
seconds becomes an incident. Its lifecycle is start -> update* -> end.

Vehicles are followed by place (anchor and box overlap), helped by track ids, so a
track-id switch never restarts the clock and one parked car is one incident. Between
detections the caller's view of the place keeps a stay (see ``DwellRule``): a parked car
the detector loses for a while, or that a bus hides, keeps its clock.

>>> rule = DwellRule("box/cam/zone", dwell_s=30, still_tolerance=0.5, gap_s=10, update_interval_s=60)
>>> van = Sighting(track_id=1, anchor=(0.9, 0.17), box=(0.85, 0.08, 0.94, 0.17), score=0.7, label="car")
>>> [e.state for t in range(0, 31) for e in rule.observe(float(t), [van])]
['start']
>>> [(e.state, e.end_reason) for e in rule.observe(45.0, [])]
[('end', 'left')]
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from edge.geometry import Box, Point, anchor, box_area, inside, iou, overlap

State = Literal["start", "update", "end"]
View = Literal["same", "same_around", "occluded", "empty"]  # what a stay's place looks like with no detection there
EndReason = Literal["left", "cleared", "stream_ended", "camera_lost", "box_stopped"]
# (stay key, sighting): whether the picture under the sighting is the stay's vehicle; None: it cannot tell
SameVehicle = Callable[[int, "Sighting"], bool | None]
# (stay key, box): whether the picture under box, inside the stay's place, looks as it did before anything stood
# in front of the stay's vehicle (a part of it, there as it came); None: it cannot tell
AlreadyThere = Callable[[int, Box], bool | None]


@dataclass(frozen=True)
class Sighting:
    """One object seen in one analysed frame, in normalised frame coordinates."""

    track_id: int | None
    anchor: Point
    box: Box
    score: float
    label: str


@dataclass(frozen=True)
class Event:
    """A change in an incident's life, ready to become a wire message."""

    incident_id: str
    seq: int
    state: State
    started_at: float
    observed_at: float
    sighting: Sighting
    dwell_s: float
    ended_at: float | None = None
    end_reason: EndReason | None = None


@dataclass
class _Candidate:
    anchor: Point
    first_seen: float
    last_seen: float
    sighting: Sighting
    track_ids: set[int] = field(default_factory=set)
    incident_id: str | None = None
    started_at: float = 0.0
    seq: int = 0
    last_event_at: float = 0.0
    key: int = 0
    hits: int = 0  # sightings at or above the rule's min_score
    still: int = 0  # sightings whose picture was seen to be the stay's vehicle
    votes: dict[str, float] = field(default_factory=dict)  # label -> summed score
    label: str | None = None  # frozen when the incident starts
    confirmed: bool = False  # ConditionRule: confirmed at one of its sightings since its clock started
    detected_at: float = 0.0  # last time a detection matched (not a view)
    inside: int = 0  # detector passes since its clock began that saw its anchor inside the zone
    outside: int = 0  # ... and just outside it (a car at the zone's edge, a swaying camera)
    outside_sum: tuple[float, float] = (0.0, 0.0)  # the sum of its anchors on those passes outside
    empty_since: float | None = None  # first "empty" view since the vehicle was last seen
    beside: dict[int, int] = field(default_factory=dict)  # stay key -> detector passes that saw both
    part_of: int | None = None  # the stay it was last found a part of (``DwellRule._part_of_another``)
    since: float = field(init=False)  # when its clock began: first seen, or when back mostly inside its zone

    def __post_init__(self) -> None:
        self.since = self.first_seen

    def vote(self) -> str:
        return self.label or max(self.votes, key=self.votes.__getitem__, default=self.sighting.label)


def _event(cand: _Candidate, t: float, state: State, **end) -> Event:
    """The next event of ``cand``'s incident (seq counts up from 1), with the stay's one label."""
    cand.seq += 1
    cand.last_event_at = t
    sighting = cand.sighting if cand.sighting.label == cand.vote() else replace(cand.sighting, label=cand.vote())
    return Event(cand.incident_id or "", cand.seq, state, cand.started_at, t, sighting,
                 round(max(0.0, (end.get("ended_at") or t) - cand.since), 3), **end)


@dataclass(frozen=True)
class Stay:
    """A vehicle the rule follows, for the pipeline's stationary check: its box at its last
    detection and when that was; the incident open for it, if one is."""

    key: int
    box: Box
    detected_at: float
    incident_id: str | None = None


class DwellRule:
    """Illegal parking in one zone: a vehicle that stays still for ``dwell_s``.

    A stay is kept by its vehicle's sightings and, between them, by *views* of its place
    the caller passes in (``View``: the picture under the stay's box is the ``same`` as at its
    last detection, the same but where a box in front of it stands, ``same_around``: a small car stopping in
    front of it, seen beside it, ``occluded`` by a person or vehicle passing in front, or ``empty``).
    A stay with views ends ``left`` only once its place has been seen empty for ``leave_s``
    with no sighting or ``same`` view in between; a stay the caller has no view of ends
    after ``gap_s`` unseen. Sightings below ``min_score`` (tracks that ByteTrack continued on
    low-score detections) keep a stay but never start one, and do not confirm it: a stay is
    confirmed once seen on ``confirm_hits`` detector passes at ``min_score`` (``fresh``: this
    frame's sightings come from a new pass, not a reused one); views count and its incident
    starts (dated when the dwell was reached) only then.

    A sighting belongs to a stay when its anchor has not moved more than ``still_tolerance``
    box heights and its box overlaps the stay's (IoU >= ``MATCH_IOU``), so a bus passing in
    front is not the parked car, whatever the tracker's ids say; and, where the caller can
    tell (``same_vehicle``), when the picture under it is the stay's vehicle. In flowing
    traffic the next car stands at the same place one analysed frame later (at a far, crowded
    spot the tracker even keeps the id): it is a new stay, and for the stay it displaced that
    look counts as its place seen empty. A vehicle that reaches lower in the picture than the stay
    (by ``IN_FRONT`` of its height: nearer the camera, a queue at a light beside a parked car) stands
    in front of it, not in its place: it displaces nothing, and the stay's place is looked at as any
    hidden one's. With ``still_looks``, a stay is confirmed only once its picture has also been seen
    unchanged that many times (a parked car looks the same at every pass; a lane of traffic hardly
    ever). The stay's label is a score-weighted vote over its sightings, frozen when the incident starts.

    A vehicle at the zone's edge has its anchor now in, now out (the detector's box wobbles, a
    camera sways on its pole), and its stay is kept between the looks that see it inside. So the
    caller also passes the sightings just ``outside`` the zone: one that belongs to a stay keeps
    it like any other but never starts one, and a stay starts only once its anchor was inside
    on at least as many detector passes as outside: a vehicle parked beside the zone is not in it.
    Counted since its clock began: a stay seen outside on more passes than inside has its clock begin
    again at a look inside whose anchor moved in, beyond ``EDGE_WOBBLE`` of its height from where its looks
    outside stood: a car that stood half out of the zone, then pulled wholly in, is dated from then, not
    from when it was first seen; one standing still across the edge, its anchor now in now out, keeps one clock.

    Where zones overlap, the caller passes the boxes of the vehicles another zone's incident is open
    for (``taken``): a stay there (IoU >= ``MATCH_IOU``) keeps its clock but does not start while it is
    so. One vehicle is one incident, in the zone whose dwell it reached first. In one zone too: a stay at the
    place of one whose incident is open (IoU >= ``MATCH_IOU``) is that vehicle, and waits as one in another
    zone would (the whole of a pickup the detector first boxed by its cab, boxed anew after a lorry passed in
    front, under a track of its own); and a stay whose box lies mostly (``PART_OF``) inside an older stay's,
    seen within ``gap_s``, is that one's vehicle seen in part (its top above a bus stopped in front of it) and
    does not start, and stays a part while half its box (``PART_HELD``) lies in that one's (a cab's box drawn
    loose at dusk, its top well above its pickup's, was a second vehicle at that pass); unless it is
    a vehicle of its own there (a small car parked in a lorry's box): smaller than the older one's box
    both ways (``PART_SPAN``), seen beside it, both detected, on ``confirm_hits`` detector passes, and, where
    the caller can tell (``already_there``), not in the older one's picture from before anything stood in
    front of it: a roof box, a bike rack or an open door the detector names a car came with its vehicle.
    Of two stays first seen together, the larger is the older. That picture cannot tell where both were there
    before it was taken (a car parked in front of a bus, both there when the box restarted): one first seen
    with it that stands on the ground where the older one does (its box reaching down to within ``GROUND`` of
    the older box's height of its bottom edge, or below it) is a vehicle of its own; a part is held up by its
    vehicle.
    """

    MATCH_IOU = 0.4
    IN_FRONT = 0.15
    EDGE_WOBBLE = 0.15  # of a box's height: a parked van's anchor wobbles by 4 %, a car pulling in moves it more
    PART_OF = 0.8
    PART_HELD = 0.5  # a part stays one while half its box lies in its vehicle's (a cab's box drawn loose at dusk)
    PART_SPAN = 0.75
    GROUND = 0.1  # of a box's height: the detector's box of a parked van wobbles by 4 %; a roof box ends far above

    def __init__(self, key: str, dwell_s: float, still_tolerance: float, gap_s: float, update_interval_s: float,
                 leave_s: float | None = None, min_score: float = 0.0, confirm_hits: int = 3, still_looks: int = 0):
        self.key = key
        self.dwell_s = dwell_s
        self.still_tolerance = still_tolerance
        self.gap_s = gap_s
        self.leave_s = gap_s if leave_s is None else leave_s
        self.update_interval_s = update_interval_s
        self.min_score, self.confirm_hits, self.still_looks = min_score, confirm_hits, still_looks
        self._candidates: list[_Candidate] = []
        self._keys = 0

    def stays(self) -> list[Stay]:
        """The stays, whose place the caller should look at (see ``observe``'s ``views`` and
        ``same_vehicle``; views count for confirmed stays only)."""
        return [Stay(c.key, c.sighting.box, c.detected_at, c.incident_id) for c in self._candidates]

    def carry(self, moved: Callable[[Box], Box], since: float) -> set[int]:
        """The picture moved at ``since`` and is now moved back by another amount (a knocked camera,
        ``edge/alignment.py``): a stay detected since was seen in the moved picture, so its box and
        anchor are where ``moved`` puts its box, and its vehicle, seen there from now on, continues it;
        a stay detected only before was seen as the picture is moved back now. A stay carried onto an
        older one (its vehicle, seen in the moved picture as a new stay) is that one and is dropped,
        unless its incident started. The keys of the stays carried."""
        seen_moved = [c for c in self._candidates if c.detected_at >= since]
        kept = [c for c in self._candidates if c.detected_at < since]  # already where the picture is now
        for cand in seen_moved:
            box = moved(cand.sighting.box)
            (x0, y0), (x1, y1) = anchor(cand.sighting.box), anchor(box)
            cand.sighting = replace(cand.sighting, box=box, anchor=(x1, y1))
            cand.anchor = (cand.anchor[0] + x1 - x0, cand.anchor[1] + y1 - y0)
            cand.outside_sum = (cand.outside_sum[0] + cand.outside * (x1 - x0),
                                cand.outside_sum[1] + cand.outside * (y1 - y0))
            if cand.incident_id is None and any(c.first_seen < cand.first_seen and self._still(c, cand.sighting)
                                                for c in kept):
                self._candidates.remove(cand)
        return {c.key for c in seen_moved if c in self._candidates}

    def _confirmed(self, cand: _Candidate) -> bool:
        return cand.hits >= self.confirm_hits and cand.still >= self.still_looks

    def _still(self, cand: _Candidate, s: Sighting) -> bool:
        height = max(cand.sighting.box[3] - cand.sighting.box[1], 1e-3)
        dx, dy = s.anchor[0] - cand.anchor[0], s.anchor[1] - cand.anchor[1]
        return (dx * dx + dy * dy) ** 0.5 <= self.still_tolerance * height and iou(cand.sighting.box, s.box) >= self.MATCH_IOU

    def _moved_in(self, cand: _Candidate, s: Sighting) -> bool:
        """Whether ``s``, inside the zone, stands more than ``EDGE_WOBBLE`` of its height from where ``cand``'s looks
        outside it stood on average: the vehicle pulled in. A still one across the edge has its anchor on either side
        by the detector's wobble (its clock began again at each look inside that came after more outside)."""
        height = max(s.box[3] - s.box[1], 1e-3)
        x, y = cand.outside_sum[0] / cand.outside, cand.outside_sum[1] / cand.outside
        return ((s.anchor[0] - x) ** 2 + (s.anchor[1] - y) ** 2) ** 0.5 > self.EDGE_WOBBLE * height

    def _in_front(self, cand: _Candidate, s: Sighting) -> bool:
        """Whether ``s`` reaches lower in the picture than the stay's box, by ``IN_FRONT`` of its height:
        nearer the camera, in front of it (the detector's box of a parked van wobbles by 4 % of its height)."""
        return s.box[3] - cand.sighting.box[3] > self.IN_FRONT * (cand.sighting.box[3] - cand.sighting.box[1])

    def _match(self, s: Sighting, free: list[_Candidate], same_vehicle: SameVehicle | None,
               displaced: set[int]) -> tuple[_Candidate | None, bool]:
        """The stay ``s`` belongs to, and whether its picture was seen to be that stay's vehicle."""
        still = [c for c in free if self._still(c, s)]
        verdicts = {c.key: same_vehicle(c.key, s) for c in still} if same_vehicle is not None else {}
        # another vehicle standing in front of a stay (a queue at a light beside a parked car) hides it, it
        # does not stand in its place: the stay's place is looked at as any hidden one's
        displaced |= {c.key for c in still if verdicts.get(c.key) is False and not self._in_front(c, s)}
        still = [c for c in still if verdicts.get(c.key) is not False]
        cand = self._pick(s, still)
        return cand, cand is not None and verdicts.get(cand.key) is True

    def _pick(self, s: Sighting, still: list[_Candidate]) -> _Candidate | None:
        if s.track_id is not None and s.track_id >= 0:
            for cand in still:
                if s.track_id in cand.track_ids:
                    return cand
        return min(still, key=lambda c: (c.anchor[0] - s.anchor[0]) ** 2 + (c.anchor[1] - s.anchor[1]) ** 2,
                   default=None)

    def observe(self, t: float, sightings: list[Sighting], views: dict[int, View] | None = None,
                fresh: bool = True, same_vehicle: SameVehicle | None = None,
                outside: list[Sighting] = (), taken: list[Box] = (),
                already_there: AlreadyThere | None = None) -> list[Event]:
        """Feed the vehicles whose anchor is inside the zone at time ``t`` (and those ``outside``
        it) and, for stays from ``stays()``, what their place looks like (by stay key) and whether
        a sighting at their place shows their vehicle (``same_vehicle``), and what of it showed before
        anything stood in front (``already_there``), and the vehicles whose incident another zone holds
        (``taken``); get incident events."""
        events: list[Event] = []
        ends: list[Event] = []
        free = list(self._candidates)
        displaced: set[int] = set()  # stays another vehicle was seen in place of
        seen = [(s, True) for s in sorted(sightings, key=lambda s: -s.score)] \
            + [(s, False) for s in sorted(outside, key=lambda s: -s.score)]
        for s, in_zone in seen:
            cand, same = self._match(s, free, same_vehicle, displaced)
            if cand is None:
                if s.score < self.min_score or not in_zone:
                    continue  # a low-score detection, or one outside, continues a stay, never starts one
                self._keys += 1
                cand = _Candidate(anchor=s.anchor, first_seen=t, last_seen=t, sighting=s, key=self._keys)
                self._candidates.append(cand)
            else:
                free.remove(cand)
            cand.last_seen, cand.detected_at, cand.sighting, cand.empty_since = t, t, s, None
            if s.score >= self.min_score and fresh:
                cand.hits += 1
            if fresh:
                if in_zone and cand.outside > cand.inside and cand.incident_id is None and self._moved_in(cand, s):
                    cand.since, cand.inside, cand.outside, cand.outside_sum = t, 0, 0, (0.0, 0.0)  # its clock again
                cand.inside += in_zone
                if not in_zone:
                    cand.outside += 1
                    cand.outside_sum = (cand.outside_sum[0] + s.anchor[0], cand.outside_sum[1] + s.anchor[1])
            cand.still += same
            cand.votes[s.label] = cand.votes.get(s.label, 0.0) + s.score
            if s.track_id is not None and s.track_id >= 0:
                cand.track_ids.add(s.track_id)
            events += self._due(cand, t, taken, already_there)
        detected = [c for c in self._candidates if c.detected_at == t] if fresh else []
        for cand in detected:
            for other in detected:
                if other is not cand:
                    cand.beside[other.key] = cand.beside.get(other.key, 0) + 1
        for cand in free:
            view = (views or {}).get(cand.key) if self._confirmed(cand) else None
            if cand.key in displaced:
                view = "empty"  # another vehicle stands where it stood, with nothing in front
            if view in ("same", "same_around"):  # unchanged under its box: still there, no detection needed
                cand.last_seen, cand.empty_since = t, None
                if view == "same_around":  # and seen beside what stands in front of it, not hidden by it
                    for other in detected:
                        cand.beside[other.key] = cand.beside.get(other.key, 0) + 1
                        other.beside[cand.key] = other.beside.get(cand.key, 0) + 1
                events += self._due(cand, t, taken, already_there)
            elif view == "empty" and cand.empty_since is None:
                cand.empty_since = t
            gone = (cand.empty_since is not None and view == "empty" and t - cand.empty_since >= self.leave_s) \
                or (view is None and t - cand.last_seen > self.gap_s)
            if gone:
                self._candidates.remove(cand)
                if cand.incident_id:
                    ends.append(_event(cand, t, "end", ended_at=cand.last_seen, end_reason="left"))
        return ends + events

    def _due(self, cand: _Candidate, t: float, taken: list[Box], already_there: AlreadyThere | None) -> list[Event]:
        """The start once the dwell is reached and the stay confirmed (and its vehicle's incident is not
        another zone's, nor another stay's here), then updates."""
        if cand.incident_id is None:
            held = (c.sighting.box for c in self._candidates if c.incident_id and c is not cand)  # read only once due
            if t - cand.since >= self.dwell_s and self._confirmed(cand) and cand.inside >= cand.outside \
                    and not any(iou(cand.sighting.box, box) >= self.MATCH_IOU for box in (*taken, *held)) \
                    and not self._part_of_another(cand, t, already_there):
                return [self._start(cand, t)]
        elif t - cand.last_event_at >= self.update_interval_s:
            return [_event(cand, t, "update")]
        return []

    def _part_of_another(self, cand: _Candidate, t: float, already_there: AlreadyThere | None) -> bool:
        """Whether ``cand``'s box lies mostly (``PART_OF``) inside the box of a stay followed since before it
        (or since the same pass, and larger: a van and its roof box seen as it drives in) and seen within
        ``gap_s``: that one's vehicle, seen in part (its top above a bus stopped in front of it), unless
        ``_apart`` from it. One only held while something stands at its place (a lorry's, after it left) is
        no reason. Found so, it stays that one's part while ``PART_HELD`` of its box lies in that one's: the
        detector's box of a part at dusk, in noise, is drawn loose at one pass and tight at the next."""
        cand.part_of = next((other.key for other in self._candidates
                             if other is not cand and t - other.last_seen <= self.gap_s
                             and (other.first_seen, -box_area(other.sighting.box))
                             < (cand.first_seen, -box_area(cand.sighting.box))
                             and inside(cand.sighting.box, other.sighting.box)
                             >= (self.PART_HELD if cand.part_of == other.key else self.PART_OF)
                             and not self._apart(cand, other, already_there)), None)
        return cand.part_of is not None

    def _apart(self, cand: _Candidate, other: _Candidate, already_there: AlreadyThere | None) -> bool:
        """Whether ``cand``, inside ``other``'s box, is a vehicle of its own (a small car parked in a lorry's
        box), not a part of ``other``'s vehicle: smaller than ``PART_SPAN`` of ``other``'s box both ways (a
        part mostly runs across its vehicle one way: the top above a bus is the van's width, what a crop's
        edge leaves of it its height), detected together with it on ``confirm_hits`` passes (the detector
        sees a part past what hides the rest instead of the whole, not beside it), and not in ``other``'s
        picture from before anything stood in front of it (``already_there``: a door, a trailer or a roof box
        the detector names a car, beside its vehicle at every pass, came with it; a car that parked in a
        lorry's box later did not), or standing on the ground where ``other`` does, both first seen together
        (``_on_its_ground``: a car parked in front of a bus, both in the bus's picture since the box restarted)."""
        (a1, b1, a2, b2), (x1, y1, x2, y2) = cand.sighting.box, other.sighting.box
        return a2 - a1 < self.PART_SPAN * (x2 - x1) and b2 - b1 < self.PART_SPAN * (y2 - y1) \
            and cand.beside.get(other.key, 0) >= self.confirm_hits \
            and (self._on_its_ground(cand, other) or already_there is None
                 or already_there(other.key, cand.sighting.box) is not True)

    def _on_its_ground(self, cand: _Candidate, other: _Candidate) -> bool:
        """Whether ``cand`` stands on the ground where ``other`` does (``GROUND``) and was first seen with it (within
        ``gap_s``): ``other``'s picture from its first passes shows ``cand`` too and cannot tell (both there when the
        box restarted). Seen later, the picture tells: a box on the ground line there before (a lorry's rear the
        detector names a truck of its own) is a part."""
        (_, _, _, b2), (_, y1, _, y2) = cand.sighting.box, other.sighting.box
        return y2 - b2 <= self.GROUND * (y2 - y1) and cand.first_seen - other.first_seen <= self.gap_s

    def _start(self, cand: _Candidate, t: float) -> Event:
        cand.started_at = cand.since + self.dwell_s
        cand.label = cand.vote()
        cand.incident_id = uuid.uuid5(
            uuid.NAMESPACE_URL, f"{self.key}/{cand.first_seen:.3f}/{cand.anchor[0]:.4f},{cand.anchor[1]:.4f}").hex
        return _event(cand, t, "start")

    def close(self, t: float, reason: EndReason) -> list[Event]:
        """End every open incident (the stream ended, the camera was lost)."""
        events = [_event(c, t, "end", ended_at=t, end_reason=reason) for c in self._candidates if c.incident_id]
        self._candidates.clear()
        return events


class ConditionRule:
    """An incident for a condition that holds: a camera fault, a garbage pile, a spill.

    The condition must hold for ``persist_s`` (gaps up to ``gap_s`` forgiven, e.g. a person
    walking in front) and be ``confirmed`` at that moment before the incident starts, dated
    ``first seen + persist_s``. What is never confirmed is not dropped but sent *for review*
    (``needs_review``: the gateway holds its case for a person): a condition that holds
    unconfirmed for ``review_s``, and one first seen within ``start_window_s`` of the rule's
    first observation (it was there when the camera came up, so nothing says it is new), which
    goes for review at ``persist_s`` whatever the confirmation says. It ends with ``cleared``
    once the condition has not been seen for ``clear_after_s``; updates every
    ``update_interval_s``.

    >>> r = ConditionRule("box/cam/frozen", clear_after_s=5, update_interval_s=60)
    >>> s = Sighting(None, (0.5, 1.0), (0.0, 0.0, 1.0, 1.0), 1.0, "frozen")
    >>> [e.state for t in range(10) for e in r.observe(float(t), t < 3, s)]
    ['start', 'end']
    >>> pile = ConditionRule("box/cam/z/garbage", clear_after_s=5, update_interval_s=600, persist_s=20, gap_s=3)
    >>> seen = lambda t: 10 <= t < 60 and t != 25   # appears at 10 s, hidden once, removed at 60 s
    >>> [(t, e.state, e.started_at) for t in range(90) for e in pile.observe(float(t), seen(t), s)]
    [(30, 'start', 30.0), (64, 'end', 30.0)]

    A bollard the detector half-believes, never confirmed, there from the start: for review.

    >>> post = ConditionRule("box/cam/z/spill", 5, 600, persist_s=10, gap_s=3, review_s=20, start_window_s=2)
    >>> [(t, e.state, post.needs_review) for t in range(40) for e in post.observe(float(t), True, s, confirmed=False)]
    [(10, 'start', True)]
    >>> late = ConditionRule("box/cam/z/spill", 5, 600, persist_s=10, gap_s=3, review_s=20, start_window_s=2)
    >>> [(t, e.state, late.needs_review) for t in range(40) for e in late.observe(float(t), t >= 5, s, t >= 9)]
    [(15, 'start', False)]
    >>> post.holds_for_review, late.holds_for_review
    (True, False)

    Before it starts, a sighting that does not overlap the earlier ones starts a clock of its own (a
    short false alarm elsewhere in the zone must not date a real pile early). The places confirmed at
    one of their sightings keep theirs meanwhile: a pile the detector missed on that pass, or named
    once with a walker over it (too little still ground to confirm it), does not start again from
    nought. The others' clocks stop (what the detector half-believes now here, now there, as traffic
    on a road, is not followed place by place: on the real clean footage that held two more leads for
    review). A place unseen for more than ``gap_s`` is forgotten. Once it has started, ``place`` says
    where it is, for the caller to keep it open on sightings there only.

    >>> pile.place is None, [e.state for t in range(100, 121) for e in pile.observe(float(t), True, s)], pile.place
    (True, ['start'], (0.0, 0.0, 1.0, 1.0))
    >>> here = Sighting(None, (0.7, 0.8), (0.6, 0.6, 0.8, 0.8), 0.7, "garbage")
    >>> there = Sighting(None, (0.1, 0.2), (0.0, 0.0, 0.2, 0.2), 0.4, "garbage")
    >>> blink = ConditionRule("box/cam/z/garbage", clear_after_s=5, update_interval_s=600, persist_s=10, gap_s=3)
    >>> [(t, e.state, e.started_at) for t in range(30) for e in blink.observe(float(t), True, there if t == 4 else here)]
    [(10, 'start', 10.0)]
    >>> walker = ConditionRule("box/cam/z/spill", 5, 600, persist_s=10, gap_s=3)   # confirmed, then not at 7 s
    >>> [(t, e.state, e.started_at) for t in range(30)
    ...  for e in walker.observe(float(t), True, there if t == 8 else here, confirmed=t != 7)]
    [(10, 'start', 10.0)]
    >>> unsure = ConditionRule("box/cam/z/garbage", 5, 600, persist_s=10, gap_s=3, review_s=20)
    >>> [(t, e.state, e.started_at, unsure.needs_review) for t in range(40)
    ...  for e in unsure.observe(float(t), t > 0, there if t == 4 else here, confirmed=t == 4)]
    [(25, 'start', 15.0, True)]

    Where the check cannot tell (``confirmed=None``: people stand in front of the place), a place
    confirmed earlier on its clock stays confirmed and starts at its persistence; one never confirmed
    does not (it goes for review at ``review_s``).

    >>> crowd = lambda t: True if t == 4 else None   # confirmed once, then people in front
    >>> seen = ConditionRule("box/cam/z/garbage", 5, 600, persist_s=10, gap_s=3, review_s=20)
    >>> [(t, e.state, seen.needs_review) for t in range(40) for e in seen.observe(float(t), t >= 2, here, crowd(t))]
    [(12, 'start', False)]
    >>> never = ConditionRule("box/cam/z/garbage", 5, 600, persist_s=10, gap_s=3, review_s=20)
    >>> [(t, e.state, never.needs_review) for t in range(40) for e in never.observe(float(t), t >= 2, here, None)]
    [(22, 'start', True)]

    What ``moved`` (a car crawling along a hard shoulder, confirmed where it slowed) starts only for review.

    >>> car = ConditionRule("box/cam/z/garbage", 5, 600, persist_s=10, gap_s=3, review_s=20)
    >>> [(t, e.state, car.needs_review) for t in range(40) for e in car.observe(float(t), t >= 2, here, True, t >= 8)]
    [(22, 'start', True)]
    """

    def __init__(self, key: str, clear_after_s: float, update_interval_s: float, persist_s: float = 0.0,
                 gap_s: float = 0.0, review_s: float = float("inf"), start_window_s: float = 0.0):
        self.key, self.clear_after_s, self.update_interval_s = key, clear_after_s, update_interval_s
        self.persist_s, self.gap_s, self.review_s, self.start_window_s = persist_s, gap_s, review_s, start_window_s
        self._cand: _Candidate | None = None  # the open incident's
        self._waiting: list[_Candidate] = []  # before an incident starts: a clock per place seen
        self._first_t: float | None = None  # the rule's first observation: when the camera came up
        self._review = False

    @property
    def sighting(self) -> Sighting | None:
        """The open incident's latest sighting, or None before it starts."""
        return self._cand.sighting if self._cand is not None else None

    @property
    def is_open(self) -> bool:
        """Whether its incident has started and not ended."""
        return self._cand is not None

    @property
    def place(self) -> Box | None:
        """Where the open incident is (its latest sighting's box), or None before it starts: the
        caller keeps it open only on sightings there, so something else in the zone (a painted
        arrow the detector half-believes) cannot keep a cleared pile's incident alive."""
        return self.sighting.box if self.sighting is not None else None

    @property
    def holds_for_review(self) -> bool:
        """Whether what the rule follows is held for review: its incident is open for review, or it
        has been seen since the camera came up and will be. Something new put in the zone meanwhile
        is the caller's to raise apart, or this incident would hide it (see ``edge/pipeline.py``)."""
        if self._cand is not None:
            return self._review
        return any(self._at_start(c) for c in self._waiting)

    def _at_start(self, cand: _Candidate) -> bool:
        """First seen within ``start_window_s`` of the rule's first observation: there when the camera came up."""
        return self._first_t is not None and cand.first_seen - self._first_t <= self.start_window_s

    @property
    def needs_review(self) -> bool:
        """The open (or starting) incident was never confirmed, or was there when the camera came up."""
        return self._review

    def observe(self, t: float, active: bool, sighting: Sighting, confirmed: bool | None = True,
                moved: bool = False) -> list[Event]:
        """``confirmed``: True or False, or None where the confirming check cannot tell at this look
        (people in front of the place): then what was confirmed at an earlier sighting of the same
        clock stays confirmed. ``moved``: what the sighting stands for did not stay where it is seen (a car
        crawling along a road, called garbage): no incident starts on it but for review."""
        if self._first_t is None:
            self._first_t = t
        cand = self._cand
        if cand is None:
            return self._before_start(t, active, sighting, confirmed, moved)
        if active:
            cand.last_seen, cand.sighting = t, sighting
            if t - cand.last_event_at >= self.update_interval_s:
                return [_event(cand, t, "update")]
            return []
        if t - cand.last_seen >= self.clear_after_s:
            self._cand = None
            return [_event(cand, t, "end", ended_at=t, end_reason="cleared")]
        return []

    def _before_start(self, t: float, active: bool, sighting: Sighting, confirmed: bool | None,
                      moved: bool) -> list[Event]:
        self._waiting = [c for c in self._waiting if t - c.last_seen <= self.gap_s]
        if not active:
            return []
        cand = next((c for c in self._waiting if overlap(c.sighting.box, sighting.box)), None)
        if cand is None:  # a place not seen before (or not within gap_s): its clock starts here
            cand = _Candidate(anchor=sighting.anchor, first_seen=t, last_seen=t, sighting=sighting)
            self._waiting = [c for c in self._waiting if c.confirmed] + [cand]
        if confirmed is None:  # cannot tell now: as confirmed as the place was
            confirmed = cand.confirmed
        cand.last_seen, cand.sighting, cand.confirmed = t, sighting, cand.confirmed or confirmed
        held = t - cand.first_seen
        at_start = self._at_start(cand)
        review = at_start or not confirmed or moved
        if held >= self.persist_s and (not review or at_start or held >= self.review_s):
            self._review = review
            self._cand, self._waiting = cand, []
            cand.started_at = cand.first_seen + self.persist_s
            cand.incident_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{self.key}/{cand.first_seen:.3f}").hex
            return [_event(cand, t, "start")]
        return []

    def hand_over(self, to: ConditionRule) -> None:
        """Give the clocks this rule runs before a start to ``to``, which follows the same zone from now on: each
        keeps when it began and whether it was confirmed. The rule for what is new beside a lead held for review
        hands over when the lead ends; begun again, a pile put down beside the lead started 4 s later than its
        persistence said (``make eval``'s draw 31, ``b-junction-west-11``, ``models/litter/HISTORY.md``). An
        open incident is not handed over: it stays this rule's until it ends.

        >>> held = ConditionRule("box/cam/z/garbage", 5, 600, persist_s=10, gap_s=3, start_window_s=2)
        >>> later = ConditionRule("box/cam/z/garbage/later", 5, 600, persist_s=10, gap_s=3)
        >>> here = Sighting(None, (0.7, 0.8), (0.6, 0.6, 0.8, 0.8), 0.7, "garbage")
        >>> held.observe(0.0, False, here) + [e for t in range(20, 26) for e in later.observe(float(t), True, here)]
        []
        >>> later.hand_over(held)
        >>> [(t, e.state, e.started_at) for t in range(26, 40) for e in held.observe(float(t), True, here)]
        [(30, 'start', 30.0)]
        """
        if self._cand is None and self._waiting:
            to._waiting = [c for c in to._waiting if not any(overlap(c.sighting.box, w.sighting.box)
                                                             for w in self._waiting)] + self._waiting
            self._waiting = []

    def close(self, t: float, reason: EndReason) -> list[Event]:
        self._waiting = []
        cand, self._cand = self._cand, None
        return [_event(cand, t, "end", ended_at=t, end_reason=reason)] if cand and cand.incident_id else []
