"""The daily 民情快报 and the weekly summary: pure figures from case rows and a period.

>>> rows = [{"created_at": 10, "dispatched_at": 10, "closed_at": 50, "deadline": 100, "state": "closed",
...          "category_name": "机动车乱停放", "department": "traffic-police"}]
>>> r = summary(rows, 0, 86400, now=86400)
>>> r["received"], r["closed"], r["on_time_rate"], r["departments"][0]["rank"]
(1, 1, 1.0, 1)
"""

from __future__ import annotations

from collections import defaultdict

CLOCK = ("dispatched", "handling", "feedback")


def _done_at(row: dict) -> float:
    """When the department's part ended: its feedback (the re-check is not its time), else the
    closing; infinity while neither happened."""
    done = row.get("fed_back_at") or row["closed_at"]
    return float("inf") if done is None else done


def _figures(rows: list[dict], start: float, end: float, now: float) -> dict:
    received = [r for r in rows if start <= r["created_at"] < end]
    dispatched = [r for r in rows if r["dispatched_at"] is not None and start <= r["dispatched_at"] < end]
    closed = [r for r in rows if r["closed_at"] is not None and start <= r["closed_at"] < end]
    on_time = [r for r in closed if r["deadline"] is None or _done_at(r) <= r["deadline"]]
    at = min(end, now)
    # a returned case is the centre's to send on, its department's clock stopped: off the overdue board, off this
    overdue = [r for r in rows if r["deadline"] is not None and r["deadline"] < at and _done_at(r) > at
               and r["state"] not in ("rejected", "ledger", "returned")]
    return {"received": len(received), "dispatched": len(dispatched), "closed": len(closed),
            "closed_on_time": len(on_time), "on_time_rate": round(len(on_time) / len(closed), 4) if closed else None,
            "overdue": len(overdue)}


def summary(rows: list[dict], start: float, end: float, now: float) -> dict:
    """Figures for [start, end): received, dispatched, closed, on-time rate, overdue; by category and
    by department, departments ranked by on-time rate then by closed count."""
    by_cat, by_dept = defaultdict(list), defaultdict(list)
    for r in rows:
        by_cat[r["category_name"]].append(r)
        by_dept[r["department"]].append(r)
    departments = [{"department": d, **_figures(rs, start, end, now)} for d, rs in by_dept.items()]
    departments.sort(key=lambda d: (-(d["on_time_rate"] if d["on_time_rate"] is not None else -1), -d["closed"],
                                    d["overdue"], d["department"]))
    for i, d in enumerate(departments, 1):
        d["rank"] = i
    return {**_figures(rows, start, end, now),
            "categories": sorted(({"category": c, **_figures(rs, start, end, now)} for c, rs in by_cat.items()),
                                 key=lambda c: c["category"]),
            "departments": departments}


def _precision(rows: list[dict], judged: dict[int, dict]) -> dict:
    confirmed = sum(1 for r in rows if judged.get(r["id"], {}).get("verdict") == "correct")
    rejected = sum(1 for r in rows if judged.get(r["id"], {}).get("verdict") == "false_alarm")
    return {"raised": len(rows), "judged": sum(1 for r in rows if r["id"] in judged), "confirmed": confirmed,
            "rejected": rejected,
            "precision": round(confirmed / (confirmed + rejected), 4) if confirmed + rejected else None}


def machine_precision(rows: list[dict], judged: dict[int, dict], start: float, end: float) -> dict:
    """How often the cameras were right, for cases raised in [start, end): raised, judged, confirmed
    (verdict ``correct``), rejected (verdict ``false_alarm``) and precision = confirmed / (confirmed +
    rejected), in all, per category and per camera (box/camera); cameras with the most false alarms
    first. ``judged``: case id -> its newest verdict (``gateway.verdicts.latest``).

    >>> rows = [{"id": i, "created_at": 5, "category_name": "暴露垃圾", "box": "b", "camera": c}
    ...         for i, c in ((1, "gate"), (2, "gate"), (3, "yard"))]
    >>> m = machine_precision(rows, {1: {"verdict": "false_alarm"}, 2: {"verdict": "correct"}}, 0, 10)
    >>> m["precision"], [(c["camera"], c["rejected"], c["precision"]) for c in m["cameras"]]
    (0.5, [('gate', 1, 0.5), ('yard', 0, None)])
    """
    raised = [r for r in rows if start <= r["created_at"] < end]
    by_cat, by_cam = defaultdict(list), defaultdict(list)
    for r in raised:
        by_cat[r["category_name"]].append(r)
        by_cam[(r["box"], r["camera"])].append(r)
    cameras = [{"box": box, "camera": camera, **_precision(rs, judged)} for (box, camera), rs in by_cam.items()]
    cameras.sort(key=lambda c: (-c["rejected"], -c["raised"], c["box"], c["camera"]))
    return {**_precision(raised, judged),
            "categories": sorted(({"category": c, **_precision(rs, judged)} for c, rs in by_cat.items()),
                                 key=lambda c: c["category"]),
            "cameras": cameras}
