"""One home for every case action: its state, its clock and its notice, whoever performs it.

The HTTP API (a person), ingest (the camera: a recurrence reopens, a re-check closes) and the
clock (an overdue case escalates) all call ``perform``, so an action means the same thing from
every door: ``workflow`` says what it changes, ``cases.action_values`` computes the columns,
and the notice rows are written here, in the caller's transaction.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from gateway import storage
from gateway.cases import action_values
from gateway.config import Tables
from gateway.workflow import Action, Notice, Role, TransitionError, effect


def perform(db: Connection, case: dict, action: Action, role: Role, actor: str, now: float, tables: Tables,
            note: str | None = None, *, extend_by: str | None = None, department: str | None = None) -> dict:
    """Apply ``action`` to ``case`` (TransitionError if the state machine forbids it, ValueError
    for a bad request), log it, and write its notice; returns the case as it is now."""
    category = tables.category(case["type"])
    if category is None:
        raise TransitionError(f"case {case['id']}: type {case['type']!r} has no category in the city's tables")
    values = action_values(case, action, category, tables, now, extend_by=extend_by, department=department)
    if note is None and action == Action.REDISPATCH:
        note = f"to {department}"
    if note is None and action in (Action.REQUEST_EXTENSION, Action.APPROVE_EXTENSION, Action.REFUSE_EXTENSION):
        note = extend_by or case.get("extension_request")
    changed = storage.apply(db, case, action, role, actor, now, note, values)
    _, notice = effect(action)
    if notice == Notice.DISPATCHED:  # (an escalation's notice is its own log row, with the grid as target)
        storage.log(db, case["id"], now, "gateway", Role.SYSTEM, Notice.DISPATCHED.value, changed["state"],
                    changed["state"], changed["department"], changed["department"])
    return changed
