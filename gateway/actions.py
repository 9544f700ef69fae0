"""One home for every case action: its state, its clock and its notice, whoever performs it.

The HTTP API (a person), ingest (the camera: a recurrence reopens, a re-check closes) and the
clock (an overdue case escalates) all call ``perform``, so an action means the same thing from
every door (a person's, from the API or a page, goes through ``act``): ``workflow`` says what it changes, ``cases.action_values`` computes the columns,
and the notice rows are written here, in the caller's transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection

from sqlalchemy.engine import Connection

from gateway import photohash, storage
from gateway.cases import RECHECK_REASONS, action_values
from gateway.config import Tables
from gateway.deadlines import deadline, parse_service_level
from gateway.storage import Store
from gateway.workflow import TRANSITIONS, Action, CaseState, Clock, Notice, Role, TransitionError, effect
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


def act(store: Store, case_id: int, action: Action, role: Role, actor: str, now: float, tables: Tables,
        may_see: Callable[[dict], bool], note: str | None = None, *, extend_by: str | None = None,
        department: str | None = None, seen: Collection[str] | None = None) -> dict:
    """A person's action on a case, from the API or a page alike, in one transaction: NotVisible
    when ``may_see`` refuses the case, TransitionError or ConflictError when the state machine or a
    concurrent change forbids it, StaleCase when the case's ``version`` is none of the ``seen`` ones the
    person decided on (a page's form carries one, an API client's If-Match may list several), ValueError
    for a bad request; returns the case as it is now.
    A feedback on a case whose camera already saw the problem gone closes it (the re-check is done)."""
    check_extension(extend_by)
    with store.begin() as db:
        row = held(store, db, case_id, may_see, seen)
        case = perform(db, row, action, role, actor, now, tables, note, extend_by=extend_by, department=department)
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
    reopens = role in TRANSITIONS[Action.REOPEN][2]
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
