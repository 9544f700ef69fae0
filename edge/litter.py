"""Garbage or spill: one type per place, by a vote over time. Pure logic, time passed in.

The litter model can call one pile ``garbage`` on one pass and ``spill`` on the next, or both at
once with overlapping boxes; a zone watching both types would then raise two incidents for two
departments. ``TypeVote`` follows the places where litter is seen (boxes that overlap) and
sums each label's scores there over the detector's passes; every sighting at a place takes the
place's leading label, and a place gives one sighting per frame (its best). Where an incident is
open, its place keeps the incident's type whatever the vote says later: its department has it,
and a vote that turns would raise a second incident for the other department at the same place
(a pile dispatched as garbage, later seen as spill by closer looks, was raised again as a spill).

>>> from edge.rules import Sighting
>>> vote = TypeVote(forget_s=10)
>>> pile = lambda label, score: Sighting(None, (0.5, 0.6), (0.4, 0.4, 0.6, 0.6), score, label)
>>> [s.label for s in vote.label(0.0, [pile("garbage", 0.5), pile("spill", 0.4)])]
['garbage']
>>> [s.label for s in vote.label(1.0, [pile("spill", 0.45)])]   # spill 0.85 now leads garbage 0.5
['spill']
>>> [s.label for s in vote.label(2.0, [pile("garbage", 0.6)])]  # garbage 1.1 against spill 0.85
['garbage']
>>> vote.label(30.0, [])   # the place is forgotten after forget_s unseen
[]
>>> [s.label for s in vote.label(31.0, [pile("spill", 0.9)], incidents=[((0.45, 0.45, 0.55, 0.55), "garbage")])]
['garbage']
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from edge.geometry import Box, overlap
from edge.rules import Sighting


@dataclass
class _Place:
    box: Box
    last_t: float
    votes: dict[str, float] = field(default_factory=dict)

    def leader(self) -> str:
        return max(self.votes, key=self.votes.__getitem__)


class TypeVote:
    def __init__(self, forget_s: float):
        self.forget_s = forget_s
        self._places: list[_Place] = []

    def label(self, t: float, sightings: list[Sighting], fresh: bool = True,
              incidents: list[tuple[Box, str]] = ()) -> list[Sighting]:
        """The best sighting per place, labelled with the place's leading type, or with the type of an
        open incident it overlaps (``incidents``: each one's place and type); ``fresh``: these
        sightings come from a new detector pass (a reused pass does not vote again)."""
        self._places = [p for p in self._places if t - p.last_t <= self.forget_s]
        best: dict[int, Sighting] = {}
        for s in sorted(sightings, key=lambda s: -s.score):
            place = next((p for p in self._places if overlap(p.box, s.box)), None)
            if place is None:
                place = _Place(s.box, t)
                self._places.append(place)
            if fresh or not place.votes:
                place.votes[s.label] = place.votes.get(s.label, 0.0) + s.score
            place.last_t = t
            key = id(place)
            if key not in best:
                best[key] = s
                place.box = s.box
        by_id = {id(p): p for p in self._places}
        return [replace(s, label=next((kind for box, kind in incidents if overlap(box, s.box)), by_id[k].leader()))
                for k, s in best.items()]
