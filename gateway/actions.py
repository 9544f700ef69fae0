"""One home for every case action: its state, its clock and its notice, whoever performs it.

The HTTP API (a person), ingest (the camera: a recurrence reopens, a re-check closes) and the
clock (an overdue case escalates) all call ``perform``, so an action means the same thing from
every door (a person's, from the API or a page, goes through ``act``): ``workflow`` says what it changes, ``cases.action_values`` computes the columns,
and the notice rows are written here, in the caller's transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from gateway import boxes, ingestdb, photohash, schema, storage
from gateway.cases import RECHECK_REASONS, action_values
from gateway.config import Tables
from gateway.deadlines import deadline, parse_service_level
from gateway.storage import Store
from gateway.workflow import (DEPARTMENT_CLOCK, Action, CaseState, Clock, Notice, Role, TransitionError, effect,
                              role_refused, transition)
from xueliang import wire


def perform(db: Connection, case: dict, action: Action, role: Role, actor: str, now: float, tables: Tables,
            note: str | None = None, *, extend_by: str | None = None, department: str | None = None) -> dict:
    """Apply ``action`` to ``case`` (TransitionError if the state machine forbids it, ValueError
    for a bad request), log it, and write its notice; returns the case as it is now."""
    category = tables.category(case["type"])
    if category is None:
        raise TransitionError(f"case {case['id']}: type {case['type']!r} has no category in the city's tables")
    values = action_values(case, action, category, tables, now, extend_by=extend_by, department=department)
    # the note is whoever acted's own words; what an extension asked for, granted or refused has its own field
    # (a redispatch's department is on the dispatched row that follows)
    duration = {Action.REQUEST_EXTENSION: extend_by, Action.EXTEND: extend_by, Action.APPROVE_EXTENSION:
                case.get("extension_request"), Action.REFUSE_EXTENSION: case.get("extension_request")}.get(action)
    # the department's deadline an extension of it moved (not the re-check's), on its log row: a past day's report
    # reads the deadline of then (as the dispatch row's below)
    clock, notice = effect(action)
    extended = values.get("deadline") if clock == Clock.EXTEND else None
    changed = storage.apply(db, case, action, role, actor, now, note, values, duration, extended)
    if notice == Notice.DISPATCHED:  # (an escalation's notice is its own log row, with the grid as target)
        storage.log(db, case["id"], now, "gateway", Role.SYSTEM, Notice.DISPATCHED.value, changed["state"],
                    changed["state"], storage.dispatch_note(changed["department"], tables),
                    changed["department"], deadline=changed["deadline"])
    return changed


MAX_EXTENSION = parse_service_level("366 days")


class NotVisible(LookupError):
    """The case does not exist or is not the principal's to see (whether it exists is not said)."""


class StaleCase(storage.ConflictError):
    """The case is not the one the person decided on: it changed since their page showed it."""


# what a person decides an action on (the case page shows each): its state, whose it is, its level, its deadlines,
# the time a department asks for. Not what merely adds to it (a merged incident, a photo, a note): those would
# refuse an operator's escalation of a busy kerb's case every few minutes, and change none of its meaning
DECIDED_ON = ("state", "department", "level", "deadline", "recheck_deadline", "extension_request")


def version(case: dict) -> str:
    """What ``case`` was when a person decided on it (``DECIDED_ON``), as a case page's form carries it.

    >>> case = {"state": "dispatched", "department": "tp", "level": 0, "deadline": 1.5, "recheck_deadline": None,
    ...         "extension_request": "2h"}
    >>> version(case) == version(dict(case, incident_count=9)), version(case) == version(dict(case, level=1))
    (True, False)
    """
    return hashlib.sha256(repr([case[k] for k in DECIDED_ON]).encode()).hexdigest()[:16]


def check_extension(extend_by: str | None) -> None:
    """ValueError unless ``extend_by`` is a service level of at most 366 days (None passes).

    >>> check_extension("2h"); check_extension("400 days")
    Traceback (most recent call last):
    ...
    ValueError: extend_by '400 days' is more than 366 days
    """
    if extend_by is None:
        return
    level = parse_service_level(extend_by)
    if deadline(0.0, level._replace(working=False)) > deadline(0.0, MAX_EXTENSION):
        raise ValueError(f"extend_by {extend_by!r} is more than 366 days")


def held(store: Store, db: Connection, case_id: int, may_see: Callable[[dict], bool],
         seen: Collection[str] | None) -> dict:
    """The case a person's request changes, held for the transaction ``db`` and read: NotVisible when ``may_see``
    refuses it, StaleCase when its ``version`` is none of the ``seen`` ones the person decided on (None: whatever it
    is). An action, a verdict and a photo alike: each is weighed on the case as the request before it left it."""
    storage.hold_case(db, case_id)  # a second click at once reads the case as the first left it
    row = store.get_case(case_id)
    if row is None or not may_see(row):
        raise NotVisible(f"no case {case_id}")
    if seen is not None and version(row) not in seen:
        raise StaleCase(f"case {case_id} changed since it was read; nothing was done")
    return row


class Moved(NamedTuple):
    """What ``move_cases`` did: each case ``moved`` with the department it went to, each ``left`` with why."""

    moved: dict[int, str]
    left: dict[int, str]


def with_department(store: Store, department: str) -> list[int]:
    """The cases with ``department`` now (dispatched or handling: ``DEPARTMENT_CLOCK``), oldest first: those a
    department taken out of the tables holds that no notice reaches. Its others wait for the command centre or their
    re-check, and go where the tables route them when sent on."""
    with store.engine.connect() as db:
        return list(db.execute(select(schema.cases.c.id).where(
            schema.cases.c.department == department,
            schema.cases.c.state.in_(sorted(s.value for s in DEPARTMENT_CLOCK))).order_by(schema.cases.c.id)).scalars())


def move_cases(store: Store, case_ids: list[int], department: str, tables: Tables, actor: str, now: float,
               to: str | None = None) -> Moved:
    """Move the cases ``case_ids`` (``with_department``) from ``department``, taken out of ``tables``, to ``to`` or
    else the department the tables route each to now, as an operator does one by one: returned, then redispatched,
    by ``actor`` as an admin, each with a note that says why, its deadline started afresh and its dispatch notice
    written (``perform``). One transaction a case: one changed meanwhile (fed back, already moved) or refused is left
    as it is and said (``Moved.left``), the others moved all the same; run again, a case moved is no more listed."""
    note = f"department {department} taken out of the tables"
    moved, left = {}, {}
    for case_id in case_ids:
        try:
            with store.begin() as db:
                case = held(store, db, case_id, lambda c: True, None)
                if case["department"] != department or case["state"] not in {s.value for s in DEPARTMENT_CLOCK}:
                    raise storage.ConflictError(f"changed meanwhile: {case['state']} now, not with department "
                                                f"{department}; left as it is")
                category = tables.category(case["type"])
                if category is None:
                    raise TransitionError(f"type {case['type']!r} has no category in the city's tables; left as it is")
                target = to or tables.department_for(category, case["grid"])
                returned = perform(db, case, Action.RETURN, Role.ADMIN, actor, now, tables, note)
                perform(db, returned, Action.REDISPATCH, Role.ADMIN, actor, now, tables, note, department=target)
            moved[case_id] = target
        except NotVisible:
            left[case_id] = "no such case any more; left as it is"
        except (TransitionError, storage.ConflictError, ValueError) as exc:
            left[case_id] = str(exc)
    return Moved(moved, left)


class StillSeen(TransitionError):
    """A close refused: the camera still reports the problem (``close_refused`` says which incident, since when)."""


class OpenIncident(NamedTuple):
    """An incident joined to a case whose end its camera has not sent: as far as the camera knows, still there."""

    incident_id: str
    box: str
    started_at: float | None  # when its camera first reported it, by its box's clock (None: its start not read)
    heard_at: float  # the latest the gateway heard of its box: a heartbeat (the database's clock) or this incident's
    heartbeat_s: float  # its box's heartbeat interval (``boxes.silent`` weighs heard_at by it)


def watched(still: list[OpenIncident], now: float) -> tuple[list[OpenIncident], list[OpenIncident]]:
    """``still`` parted at ``now`` into those whose box is heard (the camera's report stands) and those whose box is
    silent (``boxes.silent``, the boxes page's 失联: its report is no evidence either way, and nobody waits on it)."""
    heard = [i for i in still if not boxes.silent(i.heard_at, i.heartbeat_s, now)]
    return heard, [i for i in still if i not in heard]


def close_refused(case: dict, still: list[OpenIncident], now: float, auto_close: bool) -> str | None:
    """Why ``case`` may not be closed at ``now``, or None: closure only on evidence, and a camera that still reports
    the problem from a box the gateway hears is evidence against it (a department's feedback is not the car gone).
    Not refused where every incident still open is of a silent box: no case waits for good on a box nobody hears.

    >>> car = OpenIncident("box-1:cam:kerb:7", "box-1", 1767225600.0, heard_at=1767229200.0, heartbeat_s=10.0)
    >>> print(close_refused({"id": 7}, [car], now=1767229210.0, auto_close=True))
    case 7 is not closed: its camera still reports the problem (incident box-1:cam:kerb:7, since 2026-01-01T00:00:00.000Z; box box-1 heard at 2026-01-01T01:00:00.000Z); wait: the case closes itself when the camera sees it gone, or send it back to the department (action recheck_failed)
    >>> close_refused({"id": 7}, [car], now=1767229240.0, auto_close=True) is None  # its box silent for 40 s
    True
    """
    heard, _ = watched(still, now)
    if not heard:
        return None
    first = heard[0]
    more = f" and {len(heard) - 1} more" if len(heard) > 1 else ""
    since = wire.iso(first.started_at) if first.started_at is not None else "its start unknown"
    wait = ("wait: the case closes itself when the camera sees it gone" if auto_close
            else "close it once the camera has seen it gone")
    return (f"case {case['id']} is not closed: its camera still reports the problem (incident {first.incident_id}"
            f"{more}, since {since}; box {first.box} heard at {wire.iso(first.heard_at)}); {wait}, or send it back "
            "to the department (action recheck_failed)")


def unwatched_note(incident: OpenIncident) -> str:
    """The timeline's words for a case closed while ``incident`` was still open, its box silent.

    >>> unwatched_note(OpenIncident("i-1", "box-1", None, 1767225600.0, 10.0))
    'closed while incident i-1 was still open: its box box-1 not heard since 2026-01-01T00:00:00.000Z'
    """
    return (f"closed while incident {incident.incident_id} was still open: its box {incident.box} not heard since "
            f"{wire.iso(incident.heard_at)}")


def still_open(db: Connection, case: dict) -> list[OpenIncident]:
    """The incidents joined to ``case`` whose end has not come (``ingestdb.unended_incidents``), each with when its
    box was last heard: its latest heartbeat (timed by the database's clock) or this incident's latest event (by the
    gateway's that took it), whichever is later; a box that sends no heartbeat (an older release) is heard by its
    incidents alone."""
    ids = ingestdb.unended_incidents(db, case["id"])
    if not ids:
        return []
    events = schema.incident_events
    last = dict(db.execute(select(events.c.incident_id, func.max(events.c.received_at))
                           .where(events.c.incident_id.in_(ids)).group_by(events.c.incident_id)).all())
    found = []
    for iid in ids:
        payload = db.execute(select(events.c.payload).where(events.c.incident_id == iid)
                             .order_by(events.c.seq).limit(1)).scalar_one()
        try:  # checked against the wire's schema as it came, but never trusted twice
            message = json.loads(payload)
            found.append((iid, str(message["box"]), wire.parse_time(message["started_at"])))
        except (ValueError, TypeError, KeyError, AttributeError):  # (WireError is a ValueError)
            found.append((iid, case["box"], None))
    rows = {r.box: r for r in db.execute(select(schema.boxes.c.box, schema.boxes.c.heard_at, schema.boxes.c.heartbeat)
                                         .where(schema.boxes.c.box.in_(sorted({b for _, b, _ in found}))))}
    still = []
    for iid, box, started in found:
        row = rows.get(box)
        beat = boxes.stored(row.heartbeat) if row else None
        heard = max(t for t in (last[iid], row.heard_at if row else None) if t is not None)
        still.append(OpenIncident(iid, box, started, heard, beat.heartbeat_s if beat else wire.HEARTBEAT_S))
    return still


def seen_now(store: Store, case: dict, now: float) -> list[OpenIncident]:
    """The incidents of ``case`` its camera still reports at ``now``, their box heard (``watched``): what refuses its
    close, for a page to say before anyone clicks."""
    with store.engine.connect() as db:
        return watched(still_open(db, case), now)[0]


def act(store: Store, case_id: int, action: Action, role: Role, actor: str, now: float, tables: Tables,
        may_see: Callable[[dict], bool], note: str | None = None, *, extend_by: str | None = None,
        department: str | None = None, seen: Collection[str] | None = None) -> dict:
    """A person's action on a case, from the API or a page alike, in one transaction: NotVisible
    when ``may_see`` refuses the case, TransitionError or ConflictError when the state machine or a
    concurrent change forbids it, StaleCase when the case's ``version`` is none of the ``seen`` ones the
    person decided on (a page's form carries one, an API client's If-Match may list several), ValueError
    for a bad request; returns the case as it is now. A close while the camera still reports the problem is StillSeen
    (``close_refused``); one allowed while an incident is still open, its box silent, says so on the timeline.
    A feedback on a case whose camera already saw the problem gone closes it (the re-check is done)."""
    check_extension(extend_by)
    with store.begin() as db:
        row = held(store, db, case_id, may_see, seen)
        unwatched: list[OpenIncident] = []
        if action == Action.CLOSE:  # closure only on evidence: not while the camera still reports the problem
            transition(row["state"], action, role)  # a case in another state is refused as that first
            still = still_open(db, row)
            category = tables.category(row["type"])  # (none: perform says so)
            if refused := close_refused(row, still, now, category is None or category.auto_close):
                raise StillSeen(refused)
            unwatched = watched(still, now)[1]
        case = perform(db, row, action, role, actor, now, tables, note, extend_by=extend_by, department=department)
        for incident in unwatched:
            storage.log(db, case_id, now, "gateway", Role.SYSTEM, "still_open", case["state"], case["state"],
                        unwatched_note(incident))
        # the camera already saw the problem gone (a later sighting would have cleared that, and a
        # reopening too): the re-check is done. Not compared with dispatched_at: that is the
        # gateway's clock, ended_at the box's, and an end may arrive in the same batch as its start.
        if (action == Action.FEEDBACK and tables.category(row["type"]).auto_close
                and row["end_reason"] in RECHECK_REASONS and row["ended_at"] is not None):
            case = perform(db, case, Action.CLOSE, Role.SYSTEM, "gateway", now, tables, "closed on the camera's re-check")
    return case


def photo_owner(case_id: int) -> str:
    """Photos people upload are kept with the evidence (by sha256); the first case to add the bytes owns the row."""
    return f"{wire.GATEWAY_KEY_PREFIX}{case_id}"


class CaseClosed(storage.ConflictError):
    """A photo for a closed case; the message says how it is reopened."""


def photo_refused(case: dict, role: Role) -> str | None:
    """Why ``role`` may not add a photo to ``case``, or None: a closed case was closed on its re-check's evidence, and
    a department's photo added after it read as work on a case nobody now follows (it was taken, 201). The problem
    back is the case reopened by the centre (or its camera), and the photo added to the case reopened.

    >>> photo_refused({"id": 7, "state": "closed"}, Role.DEPARTMENT).split("; ")[1]
    'if the problem is back, ask the command centre to reopen it (action reopen), then add the photo'
    >>> photo_refused({"id": 7, "state": "handling"}, Role.DEPARTMENT) is None
    True
    """
    if case["state"] != CaseState.CLOSED.value:
        return None
    reopens = role_refused(role, Action.REOPEN) is None
    how = (f"reopen it first (POST /cases/{case['id']}/actions with {{\"action\": \"reopen\"}})" if reopens
           else "ask the command centre to reopen it (action reopen)")
    return (f"case {case['id']} is closed: a photo is not added to a closed case; if the problem is back, {how}, "
            "then add the photo")


def keep_photo(store: Store, case_id: int, role: Role, actor: str, data: bytes, now: float,
               may_see: Callable[[dict], bool], seen: Collection[str] | None = None) -> None:
    """Add a checked photo (``images.check_jpeg``) to the case, logged on its timeline once: NotVisible and
    StaleCase as ``held`` says (an 8 MB body takes a while to arrive; the case is weighed once it has), CaseClosed
    as ``photo_refused`` says."""
    sha = hashlib.sha256(data).hexdigest()
    picture = photohash.picture_hash(data)  # before the case is held: a decode, at an eighth of the size
    with store.begin() as db:
        row = held(store, db, case_id, may_see, seen)
        if refused := photo_refused(row, role):
            raise CaseClosed(refused)
        storage.add_evidence(db, sha, data, photo_owner(case_id), "-", "-", now)
        if storage.add_case_photo(db, case_id, sha, now):  # the same photo twice is one entry
            storage.log(db, case_id, now, actor, role, "photo", row["state"], row["state"], sha)
            # a department's photo that another case has already (拍照造假) is kept, and still counts with its
            # feedback, but marked on the case, where the operator who confirms the closing reads it
            if role == Role.DEPARTMENT and (same := storage.same_picture(db, case_id, sha, picture)):
                storage.log(db, case_id, now, "gateway", Role.SYSTEM, "photo_reused", row["state"], row["state"],
                            reused_note(sha, *same))
        storage.add_photo_hash(db, sha, picture)


def reused_note(sha256: str, other_case: int, added_at: float) -> str:
    """The case log's words for a photo that is the same picture as another case's.

    >>> reused_note("ab" * 32, 12, 1764576000.0)[70:]
    " is the same picture as case #12's photo of 2025-12-01T08:00:00.000Z"
    """
    return f"photo {sha256} is the same picture as case #{other_case}'s photo of {wire.iso(added_at)}"
