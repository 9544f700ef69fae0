"""Cases from incidents: pure logic, time passed in, no I/O.

A case is what the centre handles: one per incident (merging and the full 流水线 state
machine build on this), with its grid, category, department and deadline taken from the
city's tables.
"""

from __future__ import annotations

import json
from enum import Enum

from gateway.config import Category, Tables
from gateway.deadlines import deadline
from xueliang import wire


class CaseState(str, Enum):
    DISPATCHED = "dispatched"


def new_case(message: dict, category: Category, tables: Tables, now: float) -> dict:
    """The row of a case opened from ``message`` at ``now``; the clock starts at dispatch."""
    location = message.get("location") or {}
    row = {
        "incident_id": message["incident_id"],
        "type": message["type"],
        "category_code": category.code,
        "category_name": category.name,
        "department": category.department,
        "grid": message["grid"],
        "box": message["box"],
        "camera": message["camera"],
        "zone": message["zone"],
        "lat": location.get("lat"),
        "lon": location.get("lon"),
        "state": CaseState.DISPATCHED.value,
        "created_at": now,
        "deadline": deadline(now, category.level, frozenset(tables.holidays)),
        "reported_at": wire.parse_time(message["started_at"]),
        "confidence": message["confidence"],
        "bbox": json.dumps(message["bbox"]),
        "evidence_sha256": (message.get("evidence") or {}).get("sha256"),
        "last_seq": message["seq"],
        "ended_at": None,
        "end_reason": None,
        "end_evidence_sha256": None,
    }
    return row | incident_update(message)  # the first event seen may already be the end


def incident_update(message: dict) -> dict:
    """What a later event of the same incident changes on its case."""
    values = {"last_seq": message["seq"], "confidence": message["confidence"], "bbox": json.dumps(message["bbox"])}
    if message["state"] == "end":
        values |= {"ended_at": wire.parse_time(message["ended_at"]), "end_reason": message["end_reason"],
                   "end_evidence_sha256": (message.get("evidence") or {}).get("sha256")}
    return values
