"""Cases from incidents: pure logic, time passed in, no I/O.

A case is what the centre handles. An incident either opens a new case, joins an open
case of the same type nearby (merge), or reopens a case closed there a short while ago
(recurrence). Grid, category, department and deadline come from the city's tables.
"""

from __future__ import annotations

import json
import math
from typing import Literal

from gateway.config import Category, Tables
from gateway.deadlines import deadline
from gateway.workflow import OPEN_STATES, CaseState
from xueliang import wire

RECHECK_REASONS = ("left", "cleared")  # the camera saw the problem gone


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres.

    >>> round(distance_m(39.17, 117.15, 39.1701, 117.15))
    11
    """
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(h))


def same_place(message: dict, case: dict, radius_m: float) -> bool:
    """Within ``radius_m`` when both have a location; otherwise the same camera and zone."""
    loc = message.get("location")
    if loc and case.get("lat") is not None and case.get("lon") is not None:
        return distance_m(loc["lat"], loc["lon"], case["lat"], case["lon"]) <= radius_m
    return (message["box"], message["camera"], message["zone"]) == (case["box"], case["camera"], case["zone"])


def choose(message: dict, category: Category, candidates: list[dict], now: float
           ) -> tuple[Literal["new", "merge", "reopen"], dict | None]:
    """What a new incident does: join an open case, reopen a recently closed one, or open a case.

    ``candidates`` are cases of the same type (any state); the nearest in time wins.
    """
    radius = category.merge_radius_m
    here = [c for c in candidates if c["type"] == message["type"] and same_place(message, c, radius)]
    open_ = [c for c in here if c["state"] in {s.value for s in OPEN_STATES}
             and now - c["created_at"] <= category.seconds("merge_window")]
    if open_:
        return "merge", max(open_, key=lambda c: c["created_at"])
    closed = [c for c in here if c["state"] == CaseState.CLOSED.value and c["closed_at"] is not None
              and now - c["closed_at"] <= category.seconds("recheck_window")]
    if closed:
        return "reopen", max(closed, key=lambda c: c["closed_at"])
    return "new", None


def new_case(message: dict, category: Category, tables: Tables, now: float) -> dict:
    """The row of a case opened from ``message`` at ``now``; the clock starts at dispatch."""
    location = message.get("location") or {}
    held = category.review
    urgent = is_urgent(message)
    row = {
        "incident_id": message["incident_id"],
        "type": message["type"],
        "category_code": category.code,
        "category_name": category.name,
        "department": tables.department_for(category, message["grid"]),
        "grid": message["grid"],
        "box": message["box"],
        "camera": message["camera"],
        "zone": message["zone"],
        "lat": location.get("lat"),
        "lon": location.get("lon"),
        "state": (CaseState.PENDING_REVIEW if held else CaseState.DISPATCHED).value,
        "created_at": now,
        "dispatched_at": None if held else now,
        "deadline": None if held else dispatch_deadline(category, tables, now, urgent),
        "urgent": urgent,
        "reported_at": wire.parse_time(message["started_at"]),
        "confidence": message["confidence"],
        "bbox": json.dumps(message["bbox"]),
        "evidence_sha256": (message.get("evidence") or {}).get("sha256"),
        "last_seq": message["seq"],
        "level": 0,
        "escalated_grid": None,
        "next_escalation_at": None,
        "closed_at": None,
        "incident_count": 1,
        "ended_at": None,
        "end_reason": None,
        "end_evidence_sha256": None,
    }
    return row | incident_update(message)  # the first event seen may already be the end


def dispatch_deadline(category: Category, tables: Tables, now: float, urgent: bool = False) -> float:
    return deadline(now, category.level(urgent), tables.calendar)


def is_urgent(message: dict) -> bool:
    """The edge marks an incident urgent (``attributes.urgent``): a spill that endangers traffic."""
    return bool((message.get("attributes") or {}).get("urgent"))


def merged_urgent(case: dict, message: dict, category: Category, tables: Tables, now: float) -> dict:
    """What an urgent incident joining a case that was not changes: the case becomes urgent and
    its deadline comes forward to the urgent service level (never later than it was)."""
    if case["urgent"] or not is_urgent(message):
        return {}
    values: dict = {"urgent": True}
    if case["deadline"] is not None:
        values["deadline"] = min(case["deadline"], dispatch_deadline(category, tables, now, True))
    return values


NOT_ENDED = {"ended_at": None, "end_reason": None, "end_evidence_sha256": None}  # no camera "gone" on the case


def incident_update(message: dict, with_end: bool = True) -> dict:
    """What a later event of the case's own incident changes on it; its end only ``with_end``
    (not while another incident joined to the case is still seen)."""
    values = {"last_seq": message["seq"], "confidence": message["confidence"], "bbox": json.dumps(message["bbox"])}
    if message["state"] == "end" and with_end:
        values |= {"ended_at": wire.parse_time(message["ended_at"]), "end_reason": message["end_reason"],
                   "end_evidence_sha256": (message.get("evidence") or {}).get("sha256")}
    return values


def is_recheck(message: dict) -> bool:
    """An end that is evidence for closure: the camera saw the car leave, the pile or spill go."""
    return message["state"] == "end" and message["end_reason"] in RECHECK_REASONS


def escalation(case: dict, category: Category, tables: Tables, now: float) -> dict:
    """The second whistle for an overdue case: one level up the grid tree, and again after
    another service level if it is still overdue."""
    level = case["level"] + 1
    chain = tables.ancestors(case["grid"])
    return {"level": level, "escalated_grid": chain[min(level, len(chain) - 1)],
            "next_escalation_at": dispatch_deadline(category, tables, now, bool(case["urgent"]))}
