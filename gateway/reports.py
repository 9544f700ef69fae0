"""The daily 民情快报 and the weekly summary: pure figures from cases, their logs and a period.

A period's figures are what the case log (``Store.cases_between`` gives each case its ``log``) says happened in it,
so a published day's report stays as it was, and a week's counts are its days' added up (overdue aside: a count at
the period's end): a case closed on the 4th and reopened on the 5th stays closed on the 4th; a case the police let
run overdue on the 4th and returned on the 5th stays the police's overdue on the 4th, not the department it went to
next; an extension or a 挂账 on the 5th leaves the 4th's overdue as it was. Each dispatch is a *round* of the
department it went to (its log row's ``target``), with the deadline its log row recorded (and each extension's);
a log row from before migration 14 has none, and its round reads the case's deadline as it is now: right for the
case's latest round with no extension since, else the deadline of a later round or extension, and each figure decided
on one of those is counted in ``deadline_as_of_now``, for the report to say so. A department's own report is the cases
it held in the period by the log (``History.held_by``), and only its own figures (``summary(department=)``).

The command centre's own lateness is apart (``centre``): each *wait* of a case on the centre (``CENTRE_CLOCK``: a lead
held for review, a case a department returned) from the log row that brought it there to the one that took it on
(confirmed, rejected, sent on, 挂账), counted begun in the period it began, ended (late past its deadline) in the one it
ended, and waiting (overdue) at a period's end. The log records no review deadline: ``due`` gives each wait's, from
when it began and the category's ``review_service_level`` as configured now (``cases.review_due``), so a change of
the table changes the centre's figures of past days, not the departments'.

>>> log = [{"at": 10, "action": "created", "to_state": "dispatched"},
...        {"at": 10, "action": "dispatched", "to_state": "dispatched", "target": "traffic-police", "deadline": 100},
...        {"at": 50, "action": "feedback", "to_state": "feedback"},
...        {"at": 60, "action": "close", "to_state": "closed"},
...        {"at": 90000, "action": "reopen", "to_state": "dispatched"}]
>>> rows = [{"created_at": 10, "deadline": 90100, "department": "traffic-police", "category_name": "机动车乱停放",
...          "log": log}]
>>> r = summary(rows, 0, 86400, now=99999)
>>> r["received"], r["closed"], r["on_time_rate"], r["departments"][0]["rank"], r["deadline_as_of_now"]
(1, 1, 1.0, 1, 0)
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from gateway.workflow import CENTRE_CLOCK, DEPARTMENT_CLOCK, EFFECTS, Clock

RUNNING = frozenset(s.value for s in DEPARTMENT_CLOCK)  # the department's clock runs
WAITING = frozenset(s.value for s in CENTRE_CLOCK)  # the command centre's own clock runs
MOVES_DEADLINE = frozenset(a.value for a, (clock, _) in EFFECTS.items() if clock == Clock.EXTEND)
FIGURES = ("received", "dispatched", "closed", "closed_on_time", "overdue")


@dataclass
class Round:
    """One dispatch of a case to a department: its deadlines (since when each held) and when its clock stopped
    (its feedback, a return, a 挂账; the re-check is not its time)."""

    department: str
    at: float
    deadlines: list[tuple[float, float | None]]
    stopped_at: float = math.inf
    recorded: bool = True  # its dispatch's row says its deadline (not before migration 14: the case's of now is read)
    as_of_now: bool = False  # unrecorded, and a later round or extension moved the case's since

    def deadline(self, t: float) -> float | None:
        """The deadline as it was at ``t`` (the dispatch's until an extension moved it)."""
        return [d for since, d in self.deadlines if since <= t][-1]

    def deadline_as_of_now(self, t: float) -> bool:
        """Whether ``deadline(t)`` is the case's deadline of now standing in for its dispatch's (``as_of_now``)."""
        return self.as_of_now and not any(since <= t for since, _ in self.deadlines[1:])


@dataclass
class History:
    """A case as its log tells it: the department it was received for, its rounds, its closings (each with the
    round it ended) and its states (each since when)."""

    received_by: str
    rounds: list[Round] = field(default_factory=list)
    closes: list[tuple[float, Round]] = field(default_factory=list)
    states: list[tuple[float, str]] = field(default_factory=list)

    def round_at(self, t: float) -> Round | None:
        return next((r for r in reversed(self.rounds) if r.at <= t), None)

    def state_at(self, t: float) -> str | None:
        return next((s for at, s in reversed(self.states) if at <= t), None)

    def held_by(self, department: str, start: float, end: float) -> bool:
        """Whether ``department`` held the case at some time in [start, end): a round of its begun before ``end`` and
        not over (the next round, its closing) before ``start``. Returned, the case is its until the centre sends it
        on (its clock stopped, as the figures count it)."""
        for i, r in enumerate(self.rounds):
            over = min([n.at for n in self.rounds[i + 1:i + 2]] + [t for t, c in self.closes if c is r] + [math.inf])
            if r.department == department and r.at < end and over >= start:
                return True
        return False


def history(case: dict) -> History:
    """Replay ``case["log"]``: a ``dispatched`` row starts a round, a row with a deadline (an extension) moves the
    round's, the first row leaving the department's states stops its clock, a ``close`` closes it."""
    h = History(received_by=next((e["target"] for e in case["log"] if e["action"] == "dispatched" and e.get("target")),
                                 case["department"]))  # (a dispatch's department is the case's until a redispatch)
    for e in case["log"]:
        if e["action"] == "dispatched":
            if h.rounds:  # the case's deadline of now is this round's or later: not the one before's
                h.rounds[-1].as_of_now = not h.rounds[-1].recorded
            recorded = e.get("deadline") is not None  # before migration 14: none
            h.rounds.append(Round(e.get("target") or case["department"], e["at"],
                                  [(e["at"], e["deadline"] if recorded else case["deadline"])], recorded=recorded))
        elif h.rounds and (e["action"] in MOVES_DEADLINE or e.get("deadline") is not None):
            h.rounds[-1].as_of_now = h.rounds[-1].as_of_now or not h.rounds[-1].recorded  # (moved, to when unsaid)
            if e.get("deadline") is not None:
                h.rounds[-1].deadlines.append((e["at"], e["deadline"]))
        if e["to_state"] is not None:
            h.states.append((e["at"], e["to_state"]))
            if h.rounds and e["to_state"] not in RUNNING and h.rounds[-1].stopped_at == math.inf:
                h.rounds[-1].stopped_at = e["at"]
        if e["action"] == "close":  # a log with no dispatch: the case's deadline all along (read from the closing
            # on, its feedback before it found none, and the report was a 500)
            h.closes.append((e["at"], h.rounds[-1] if h.rounds else Round(case["department"], e["at"], [
                (-math.inf, case["deadline"])], case["fed_back_at"] or e["at"])))
    return h


class Event(NamedTuple):
    figure: str  # one of FIGURES, or "" for the department a case was with at the period's end
    department: str
    category: str
    as_of_now: bool = False  # decided on the case's deadline of now, not the one of then (``Round.as_of_now``)


def _events(case: dict, h: History, start: float, end: float, now: float) -> list[Event]:
    at = min(end, now)
    happened = [("received", h.received_by, False)] if start <= case["created_at"] < end else []
    happened += [("dispatched", r.department, False) for r in h.rounds if start <= r.at < end]
    for closed_at, r in h.closes:
        if start <= closed_at < end:
            deadline, guessed = r.deadline(r.stopped_at), r.deadline_as_of_now(r.stopped_at)
            happened += [("closed", r.department, guessed)] + ([("closed_on_time", r.department, False)]
                                                               if deadline is None or r.stopped_at <= deadline else [])
    held = h.round_at(at)
    # overdue when the period ended: the department's clock ran then, past the deadline of then (a returned case is
    # the centre's to send on, its department's clock stopped: overdue on the board past the centre's own time, the
    # centre's lateness, never the department's here)
    if held and h.state_at(at) in RUNNING and (deadline := held.deadline(at)) is not None:
        if deadline < at:
            happened.append(("overdue", held.department, held.deadline_as_of_now(at)))
        elif held.deadline_as_of_now(at):  # not overdue by the deadline of now: it may have been by the one of then
            happened.append(("", held.department, True))
    happened.append(("", held.department if held else h.received_by, False))
    return [Event(figure, department, case["category_name"], guessed) for figure, department, guessed in happened]


def _figures(events: list[Event]) -> dict:
    n = Counter(e.figure for e in events)
    return {"received": n["received"], "dispatched": n["dispatched"], "closed": n["closed"],
            "closed_on_time": n["closed_on_time"],
            "on_time_rate": round(n["closed_on_time"] / n["closed"], 4) if n["closed"] else None,
            "overdue": n["overdue"], "deadline_as_of_now": sum(e.as_of_now for e in events)}


def summary(rows: list[dict], start: float, end: float, now: float, department: str | None = None,
            histories: list[History] | None = None) -> dict:
    """Figures for [start, end) from each case's log (above): received, dispatched (each dispatch: a case sent again
    counts again), closed (each closing), on-time rate (closings whose round fed back or closed by its deadline of
    then), overdue (at the period's end, or ``now`` within it), and of the closings and the cases open at the end how
    many were judged on the case's deadline of now (``deadline_as_of_now``: logged before migration 14 and moved
    since); by category and by department (the department of each dispatch, closing and overdue round; a case's
    receiving, the department it was first sent to), departments ranked by on-time rate then by closed count.
    ``department``: that department's figures only (its own report). ``histories``: each row's ``history`` where the
    caller made them already (a department's report, choosing its rows: ~0.09 s a report made twice)."""
    if histories is None:
        histories = [history(r) for r in rows]
    events = [e for r, h in zip(rows, histories, strict=True) for e in _events(r, h, start, end, now)
              if department in (None, e.department)]
    by_cat, by_dept = defaultdict(list), defaultdict(list)
    for e in events:
        by_cat[e.category].append(e)
        by_dept[e.department].append(e)
    departments = [{"department": d, **_figures(es)} for d, es in by_dept.items()]
    departments.sort(key=lambda d: (-(d["on_time_rate"] if d["on_time_rate"] is not None else -1), -d["closed"],
                                    d["overdue"], d["department"]))
    for i, d in enumerate(departments, 1):
        d["rank"] = i
    return {**_figures(events),
            "categories": sorted(({"category": c, **_figures(es)} for c, es in by_cat.items()),
                                 key=lambda c: c["category"]),
            "departments": departments}


class Wait(NamedTuple):
    """A case's stay on the command centre: from ``began`` to ``ended`` (``math.inf`` while it waits)."""

    began: float
    ended: float


def waits(case: dict) -> list[Wait]:
    """The centre's waits in ``case["log"]``: a row into a centre state begins one (a lead held at its creation, a
    department's return), the next row out of them ends it; an escalation, keeping the state, is the same wait.

    >>> waits({"log": [{"at": 1, "to_state": "pending_review"}, {"at": 2, "to_state": "pending_review"},
    ...                {"at": 3, "to_state": "dispatched"}, {"at": 4, "to_state": "returned"}]})
    [Wait(began=1, ended=3), Wait(began=4, ended=inf)]
    """
    found, began = [], None
    for e in case["log"]:
        if e["to_state"] in WAITING and began is None:
            began = e["at"]
        elif e["to_state"] is not None and e["to_state"] not in WAITING and began is not None:
            found.append(Wait(began, e["at"]))
            began = None
    return found + ([Wait(began, math.inf)] if began is not None else [])


def centre(rows: list[dict], start: float, end: float, now: float,
           due: Callable[[dict, float], float | None]) -> dict:
    """The command centre's own figures for [start, end) (above): its waits ``began`` and ``ended`` in the period,
    how many of those ended past their deadline (``ended_late``), and how many were ``waiting`` at the period's end
    (``now`` within it), ``overdue`` of them past their deadline. ``due(case, began)``: the deadline of the case's
    wait begun at ``began``, None for one that has none (it is never late). A wait over two days begins on one and
    ends on the other; a week's begun, ended and late are its days' added up.

    >>> rows = [{"log": [{"at": 10, "to_state": "pending_review"}, {"at": 50, "to_state": "dispatched"},
    ...                  {"at": 60, "to_state": "returned"}]}]
    >>> centre(rows, 0, 100, now=200, due=lambda case, began: began + 30)
    {'began': 2, 'ended': 1, 'ended_late': 1, 'waiting': 1, 'overdue': 1}
    """
    at = min(end, now)
    n = Counter()
    for case in rows:
        for w in waits(case):
            deadline = due(case, w.began)
            n["began"] += start <= w.began < end
            if start <= w.ended < end:
                n["ended"] += 1
                n["ended_late"] += deadline is not None and w.ended > deadline
            if w.began <= at < w.ended:  # as the state at ``at`` is read (``History.state_at``)
                n["waiting"] += 1
                n["overdue"] += deadline is not None and deadline < at
    return {k: n[k] for k in ("began", "ended", "ended_late", "waiting", "overdue")}


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
