"""Suppressions: false alarms an operator rejected, which this box stops reporting.

The gateway sends the box's whole list, retained, on ``xl/v1/{box}/suppressions``
(``xueliang.wire.decode_suppressions``). A suppression names a camera, a zone, an incident type
and a region of the frame; an incident *start* of that camera, zone and type whose bbox lies at
least ``min_overlap`` (default half) inside the region is suppressed, and so is every later
event of that incident (its updates and end), so the gateway never hears of it. A new list
replaces the old at once; no restart.

>>> s = [{"id": 7, "camera": "gate", "zone": "kerb", "type": "garbage", "bbox": [0.1, 0.1, 0.4, 0.4]}]
>>> start = {"state": "start", "incident_id": "a", "camera": "gate", "zone": "kerb", "type": "garbage",
...          "bbox": [0.15, 0.15, 0.35, 0.35]}
>>> matching(start, s)["id"], matching(dict(start, bbox=[0.6, 0.6, 0.9, 0.9]), s)
(7, None)
>>> held = Suppressions(); held.replace(s, now=0.0)
>>> held.admit(start), held.admit(dict(start, state="end")), held.admit(dict(start, incident_id="b", zone="road"))
(False, False, True)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from xueliang import wire

log = logging.getLogger(__name__)

DEFAULT_MIN_OVERLAP = 0.5
MAX_REMEMBERED = 10_000  # suppressed incidents whose later events are dropped too


def inside_share(box: Sequence[float], region: Sequence[float]) -> float:
    """The share of ``box``'s area (x1, y1, x2, y2) that lies inside ``region``; 0 for an empty box.

    >>> inside_share([0.0, 0.0, 0.2, 0.2], [0.1, 0.0, 1.0, 1.0])
    0.5
    >>> inside_share([0.5, 0.5, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0])
    0.0
    """
    area = max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])
    if area <= 0:
        return 0.0
    w = min(box[2], region[2]) - max(box[0], region[0])
    h = min(box[3], region[3]) - max(box[1], region[1])
    return round(max(0.0, w) * max(0.0, h) / area, 6)


def matching(message: dict, suppressions: Sequence[dict]) -> dict | None:
    """The first suppression that covers this incident event (same camera, zone and type, bbox
    inside the region by at least its ``min_overlap``), else None."""
    for s in suppressions:
        if (s["camera"], s["zone"], s["type"]) == (message["camera"], message["zone"], message["type"]) \
                and inside_share(message["bbox"], s["bbox"]) >= s.get("min_overlap", DEFAULT_MIN_OVERLAP):
            return s
    return None


class Suppressions:
    """The list this box holds (thread-safe: MQTT's thread replaces it, the analyser asks it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[dict] = []
        self._received_at: float | None = None
        self._dropped: dict[str, int] = {}  # incident id -> the suppression that dropped its start
        self.dropped_events = 0

    def replace(self, items: list[dict], now: float) -> None:
        with self._lock:
            self._items, self._received_at = list(items), now

    def on_payload(self, payload: bytes, now: float) -> None:
        """A list from the gateway; one that breaks the contract is logged and the old list kept."""
        try:
            items = wire.decode_suppressions(payload)
        except wire.WireError as exc:
            log.warning("suppressions not understood, the %d held are kept: %s", len(self._items), exc)
            return
        self.replace(items, now)
        log.info("suppressions: %d held", len(items))

    def admit(self, message: dict) -> bool:
        """Whether an incident event goes out: False for a suppressed start and its later events."""
        with self._lock:
            if message["incident_id"] in self._dropped:
                self.dropped_events += 1
                return False
            if message["state"] != "start":
                return True
            found = matching(message, self._items)
            if found is None:
                return True
            if len(self._dropped) >= MAX_REMEMBERED:
                self._dropped.pop(next(iter(self._dropped)))
            self._dropped[message["incident_id"]] = found["id"]
            self.dropped_events += 1
        log.info("incident %s (%s, camera %s, zone %s) suppressed by suppression %s", message["incident_id"],
                 message["type"], message["camera"], message["zone"], found["id"])
        return False

    def status(self) -> dict:
        """For the heartbeat: the suppressions held (id, camera, zone, type) and what they dropped."""
        with self._lock:
            return {"suppressions": [{k: s[k] for k in ("id", "camera", "zone", "type")} for s in self._items],
                    "suppressions_received_at": wire.iso(self._received_at) if self._received_at else None,
                    "suppressed_events": self.dropped_events}
