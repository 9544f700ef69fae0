"""Incident rules: pure logic, time passed in, no I/O.

The dwell rule for illegal parking: a vehicle whose anchor (bottom-centre of its box)
stays inside a no-parking zone, without moving more than a tolerance, for ``dwell_s``
seconds becomes an incident. Its lifecycle is start -> update* -> end.

Vehicles are followed by track id when the tracker gives one and by place otherwise,
so a track-id switch never restarts the clock and one parked car is one incident.

>>> rule = DwellRule("box/cam/zone", dwell_s=30, still_tolerance=0.5, gap_s=10, update_interval_s=60)
>>> van = Sighting(track_id=1, anchor=(0.9, 0.17), box=(0.85, 0.08, 0.94, 0.17), score=0.7, label="car")
>>> [e.state for t in range(0, 31) for e in rule.observe(float(t), [van])]
['start']
>>> [(e.state, e.end_reason) for e in rule.observe(45.0, [])]
[('end', 'left')]
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

Point = tuple[float, float]
Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in 0..1 of the frame
State = Literal["start", "update", "end"]
EndReason = Literal["left", "cleared", "stream_ended", "camera_lost"]


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


def _event(cand: _Candidate, t: float, state: State, **end) -> Event:
    """The next event of ``cand``'s incident (seq counts up from 1)."""
    cand.seq += 1
    cand.last_event_at = t
    return Event(cand.incident_id or "", cand.seq, state, cand.started_at, t, cand.sighting,
                 round(max(0.0, (end.get("ended_at") or t) - cand.first_seen), 3), **end)


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def point_in_polygon(point: Point, polygon: list[Point]) -> bool:
    """Even-odd ray casting; points on an edge may fall either way.

    >>> point_in_polygon((0.5, 0.5), [(0, 0), (1, 0), (1, 1), (0, 1)])
    True
    >>> point_in_polygon((1.5, 0.5), [(0, 0), (1, 0), (1, 1), (0, 1)])
    False
    """
    x, y = point
    inside = False
    j = len(polygon) - 1
    for i in range(len(polygon)):
        xi, yi = polygon[i]
        xj, yj = polygon[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


class DwellRule:
    """Illegal parking in one zone: a vehicle that stays still for ``dwell_s``."""

    def __init__(self, key: str, dwell_s: float, still_tolerance: float, gap_s: float, update_interval_s: float):
        self.key = key
        self.dwell_s = dwell_s
        self.still_tolerance = still_tolerance
        self.gap_s = gap_s
        self.update_interval_s = update_interval_s
        self._candidates: list[_Candidate] = []

    def _still(self, cand: _Candidate, s: Sighting) -> bool:
        height = max(cand.sighting.box[3] - cand.sighting.box[1], s.box[3] - s.box[1], 1e-3)
        dx, dy = s.anchor[0] - cand.anchor[0], s.anchor[1] - cand.anchor[1]
        return (dx * dx + dy * dy) ** 0.5 <= self.still_tolerance * height

    def _match(self, s: Sighting, free: list[_Candidate]) -> _Candidate | None:
        if s.track_id is not None and s.track_id >= 0:
            for cand in free:
                if s.track_id in cand.track_ids:
                    return cand
        still = [c for c in free if self._still(c, s)]
        return min(still, key=lambda c: (c.anchor[0] - s.anchor[0]) ** 2 + (c.anchor[1] - s.anchor[1]) ** 2,
                   default=None)


    def observe(self, t: float, sightings: list[Sighting]) -> list[Event]:
        """Feed the vehicles whose anchor is inside the zone at time ``t``; get incident events."""
        events: list[Event] = []
        free = list(self._candidates)
        for s in sorted(sightings, key=lambda s: -s.score):
            cand = self._match(s, free)
            if cand is None:
                cand = _Candidate(anchor=s.anchor, first_seen=t, last_seen=t, sighting=s)
                self._candidates.append(cand)
            else:
                free.remove(cand)
                if not self._still(cand, s):  # it moved: a new stay begins here
                    if cand.incident_id:
                        events.append(_event(cand, t, "end", ended_at=cand.last_seen, end_reason="left"))
                    self._candidates.remove(cand)
                    cand = _Candidate(anchor=s.anchor, first_seen=t, last_seen=t, sighting=s)
                    self._candidates.append(cand)
            cand.last_seen, cand.sighting = t, s
            if s.track_id is not None and s.track_id >= 0:
                cand.track_ids.add(s.track_id)
            if cand.incident_id is None and t - cand.first_seen >= self.dwell_s:
                cand.started_at = cand.first_seen + self.dwell_s
                cand.incident_id = uuid.uuid5(
                    uuid.NAMESPACE_URL, f"{self.key}/{cand.first_seen:.3f}/{cand.anchor[0]:.4f},{cand.anchor[1]:.4f}").hex
                events.append(_event(cand, t, "start"))
            elif cand.incident_id and t - cand.last_event_at >= self.update_interval_s:
                events.append(_event(cand, t, "update"))
        for cand in list(self._candidates):
            if t - cand.last_seen > self.gap_s:
                self._candidates.remove(cand)
                if cand.incident_id:
                    events.append(_event(cand, t, "end", ended_at=cand.last_seen, end_reason="left"))
        return events

    def close(self, t: float, reason: EndReason) -> list[Event]:
        """End every open incident (the stream ended, the camera was lost)."""
        events = [_event(c, t, "end", ended_at=t, end_reason=reason) for c in self._candidates if c.incident_id]
        self._candidates.clear()
        return events

    @property
    def open_incidents(self) -> int:
        return sum(1 for c in self._candidates if c.incident_id)



class ConditionRule:
    """An incident for a condition that holds: a camera fault, a garbage pile, a spill.

    The condition must hold for ``persist_s`` (gaps up to ``gap_s`` forgiven, e.g. a person
    walking in front) and be ``confirmed`` at that moment before the incident starts, dated
    ``first seen + persist_s``; an unconfirmed condition that holds for ``unconfirmed_s``
    starts one too (a pile already there when the camera came up is never "new"). It ends
    with ``cleared`` once the condition has not been seen for ``clear_after_s``; updates
    every ``update_interval_s``.

    >>> r = ConditionRule("box/cam/frozen", clear_after_s=5, update_interval_s=60)
    >>> s = Sighting(None, (0.5, 1.0), (0.0, 0.0, 1.0, 1.0), 1.0, "frozen")
    >>> [e.state for t in range(10) for e in r.observe(float(t), t < 3, s)]
    ['start', 'end']
    >>> pile = ConditionRule("box/cam/z/garbage", clear_after_s=5, update_interval_s=600, persist_s=20, gap_s=3)
    >>> seen = lambda t: 10 <= t < 60 and t != 25   # appears at 10 s, hidden once, removed at 60 s
    >>> [(t, e.state, e.started_at) for t in range(90) for e in pile.observe(float(t), seen(t), s)]
    [(30, 'start', 30.0), (64, 'end', 30.0)]

    Before it starts, a sighting that does not overlap the last one starts the clock again
    (a short false alarm elsewhere in the zone must not date a real pile early).
    """

    def __init__(self, key: str, clear_after_s: float, update_interval_s: float, persist_s: float = 0.0,
                 gap_s: float = 0.0, unconfirmed_s: float = float("inf")):
        self.key, self.clear_after_s, self.update_interval_s = key, clear_after_s, update_interval_s
        self.persist_s, self.gap_s, self.unconfirmed_s = persist_s, gap_s, unconfirmed_s
        self._cand: _Candidate | None = None

    def observe(self, t: float, active: bool, sighting: Sighting, confirmed: bool = True) -> list[Event]:
        cand = self._cand
        if active:
            if cand is None or (cand.incident_id is None and not _overlap(cand.sighting.box, sighting.box)):
                # new, or seen somewhere else before it started: the clock starts here
                cand = self._cand = _Candidate(anchor=sighting.anchor, first_seen=t, last_seen=t, sighting=sighting)
            cand.last_seen, cand.sighting = t, sighting
            if cand.incident_id is None:
                held = t - cand.first_seen
                if held >= self.persist_s and (confirmed or held >= self.unconfirmed_s):
                    cand.started_at = cand.first_seen + self.persist_s
                    cand.incident_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{self.key}/{cand.first_seen:.3f}").hex
                    return [_event(cand, t, "start")]
                return []
            if t - cand.last_event_at >= self.update_interval_s:
                return [_event(cand, t, "update")]
            return []
        if cand is None:
            return []
        if cand.incident_id is None:
            if t - cand.last_seen > self.gap_s:
                self._cand = None
            return []
        if t - cand.last_seen >= self.clear_after_s:
            self._cand = None
            return [_event(cand, t, "end", ended_at=t, end_reason="cleared")]
        return []

    def close(self, t: float, reason: EndReason) -> list[Event]:
        cand, self._cand = self._cand, None
        return [_event(cand, t, "end", ended_at=t, end_reason=reason)] if cand and cand.incident_id else []

    @property
    def open_incidents(self) -> int:
        return 1 if self._cand is not None and self._cand.incident_id else 0
