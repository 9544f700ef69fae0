"""Verdicts on machine-made cases and the suppressions they make (one writer of both tables).

An operator (or admin) says what a machine-made case was: ``correct``, ``false_alarm``,
``wrong_type`` (with the right type), ``wrong_place`` or ``duplicate`` (of case N), and may redraw
the object's box. The newest verdict is the case's; each is a row of the case's timeline.
A ``false_alarm`` becomes a *suppression* for the case's box, camera, zone and type over the
case's bbox (or the redrawn one): the gateway sends the box its whole list
(``xueliang.wire.encode_suppressions``) and the box stops reporting that false alarm. A later
verdict on the same case lifts the suppression its earlier one made; an operator lifts one by hand.

>>> verdict_note(Verdict.WRONG_TYPE, right_type="spill", note="oil, not a bag")
'wrong_type: spill; oil, not a bag'
>>> verdict_note(Verdict.DUPLICATE, duplicate_of=12, bbox=[0.1, 0.2, 0.3, 0.4])
'duplicate: of case 12; box redrawn [0.1, 0.2, 0.3, 0.4]'
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from enum import Enum

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from gateway import numbering, schema, storage
from gateway.actions import held, perform
from gateway.config import Tables
from gateway.schema import suppressions, verdicts
from gateway.storage import Store, among
from gateway.workflow import Action, Role
from xueliang import wire


class Verdict(str, Enum):
    CORRECT = "correct"  # 研判属实: the machine was right
    FALSE_ALARM = "false_alarm"  # 误报: nothing there; the box stops reporting it
    WRONG_TYPE = "wrong_type"  # 类型错误: a real problem of another type
    WRONG_PLACE = "wrong_place"  # 位置错误: a real problem, placed wrong (zone, grid)
    DUPLICATE = "duplicate"  # 重复: another case already has it


REJECTABLE = frozenset({Verdict.FALSE_ALARM, Verdict.DUPLICATE})  # may come with the case's rejection


def check(verdict: Verdict, *, right_type: str | None = None, duplicate_of: int | None = None,
          bbox: list[float] | None = None, reject: bool = False) -> None:
    """ValueError unless the verdict's parts go together.

    >>> check(Verdict.CORRECT, reject=True)
    Traceback (most recent call last):
    ...
    ValueError: only a false_alarm or duplicate verdict rejects the case, not correct
    """
    if (verdict == Verdict.WRONG_TYPE) != (right_type is not None):
        raise ValueError("right_type goes with a wrong_type verdict, and only with it")
    if (verdict == Verdict.DUPLICATE) != (duplicate_of is not None):
        raise ValueError("duplicate_of goes with a duplicate verdict, and only with it")
    if bbox is not None and not (bbox[0] < bbox[2] and bbox[1] < bbox[3]):
        raise ValueError(f"bbox {bbox} is empty: x1 < x2 and y1 < y2")
    if reject and verdict not in REJECTABLE:
        raise ValueError(f"only a false_alarm or duplicate verdict rejects the case, not {verdict.value}")


def verdict_note(verdict: Verdict, *, right_type: str | None = None, duplicate_of: int | None = None,
                 bbox: list[float] | None = None, note: str | None = None) -> str:
    """The verdict as its timeline row's note."""
    detail = {Verdict.WRONG_TYPE: right_type, Verdict.DUPLICATE: f"of case {duplicate_of}"}.get(verdict)
    parts = [f"{verdict.value}: {detail}" if detail else verdict.value]
    if bbox is not None:
        parts.append(f"box redrawn {bbox}")
    if note:
        parts.append(note)
    return "; ".join(parts)


def region(case: dict, redrawn: list[float] | None) -> list[float]:
    """What a false alarm suppresses: the redrawn box, else the case's; ValueError when it is empty.

    >>> region({"id": 1, "bbox": "[0.1, 0.1, 0.1, 0.5]"}, None)
    Traceback (most recent call last):
    ...
    ValueError: case 1's box [0.1, 0.1, 0.1, 0.5] is empty: redraw it (bbox x1 < x2, y1 < y2)
    """
    box = redrawn if redrawn is not None else json.loads(case["bbox"])
    if len(box) != 4 or not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
        raise ValueError(f"case {case['id']}'s box {box} is empty: redraw it (bbox x1 < x2, y1 < y2)")
    return [float(v) for v in box]


def record(db: Connection, case: dict, verdict: Verdict, actor: str, role: Role, now: float, *,
           right_type: str | None = None, duplicate_of: int | None = None, bbox: list[float] | None = None,
           note: str | None = None) -> set[str]:
    """Keep a verdict on ``case`` and log it on its timeline; a false alarm makes a suppression
    (and any the case's earlier verdict made is lifted). Returns the boxes whose list changed."""
    suppressed = region(case, bbox) if verdict == Verdict.FALSE_ALARM else None
    db.execute(insert(verdicts).values(case_id=case["id"], at=now, actor=actor[:128], verdict=verdict.value,
                                       right_type=right_type, duplicate_of=duplicate_of,
                                       bbox=json.dumps(bbox) if bbox is not None else None, note=note))
    storage.log(db, case["id"], now, actor, role, "verdict", case["state"], case["state"],
                verdict_note(verdict, right_type=right_type, duplicate_of=duplicate_of, bbox=bbox, note=note))
    lifted = db.execute(update(suppressions).where(suppressions.c.case_id == case["id"], suppressions.c.lifted_at.is_(None))
                        .values(lifted_at=now, lifted_by=actor[:128])).rowcount
    if suppressed is not None:
        first = numbering.restored_id(db, "suppressions", now)  # past the lost gateway's (a backup restored)
        db.execute(insert(suppressions).values(
            **({} if first is None else {"id": first}), case_id=case["id"], box=case["box"], camera=case["camera"],
            zone=case["zone"], type=case["type"],
            bbox=json.dumps(suppressed), grid=case["grid"], created_at=now, created_by=actor[:128]))
    return {case["box"]} if lifted or suppressed is not None else set()


def judge(store: Store, tables: Tables, case_id: int, verdict: Verdict, role: Role, actor: str, now: float,
          may_see: Callable[[dict], bool], *, right_type: str | None = None, duplicate_of: int | None = None,
          bbox: list[float] | None = None, note: str | None = None, reject: bool = False,
          seen: Collection[str] | None = None) -> set[str]:
    """A person's verdict on a case, from the API or a page alike, in one transaction with the
    case's rejection when ``reject``: ValueError for a verdict that does not fit the case or the
    tables, NotVisible when ``may_see`` refuses the case, StaleCase when it is no longer the case
    the person decided on (``actions.held``), TransitionError or ConflictError when the state
    forbids the rejection (nothing kept). Returns the boxes whose suppression list changed."""
    check(verdict, right_type=right_type, duplicate_of=duplicate_of, bbox=bbox, reject=reject)
    if right_type is not None and tables.category(right_type) is None:
        raise ValueError(f"right_type {right_type!r} is no incident type of the city's tables "
                         f"({', '.join(c.type for c in tables.categories)})")
    if duplicate_of is not None:
        if duplicate_of == case_id:
            raise ValueError("a case is no duplicate of itself")
        other = store.get_case(duplicate_of)
        if other is None or not may_see(other):
            raise ValueError(f"duplicate_of: no case {duplicate_of}")
    with store.begin() as db:
        row = held(store, db, case_id, may_see, seen)
        boxes = record(db, row, verdict, actor, role, now, right_type=right_type, duplicate_of=duplicate_of,
                       bbox=bbox, note=note)
        if reject:
            perform(db, row, Action.REJECT, role, actor, now, tables)  # the verdict's row just above says why
    return boxes


def latest(store: Store, case_ids: list[int]) -> dict[int, dict]:
    """Each case's newest verdict (case id -> verdict row; the redrawn bbox parsed)."""
    newest = (select(func.max(verdicts.c.id)).where(among(verdicts.c.case_id, case_ids))
              .group_by(verdicts.c.case_id).scalar_subquery())
    with store.engine.connect() as db:
        rows = [dict(r._mapping) for r in db.execute(select(verdicts).where(verdicts.c.id.in_(newest)))]
    return {r["case_id"]: dict(r, bbox=json.loads(r["bbox"]) if r["bbox"] else None) for r in rows}


def listed(store: Store, *, box: str | None = None, grids: list[str] | None = None, case_id: int | None = None,
           lifted: bool = False, limit: int = 1000) -> list[dict]:
    """Suppressions in force (or, with ``lifted``, the lifted ones too), newest first; ``grids``
    keeps those of cases in these grids, ``case_id`` those one case's verdict made."""
    q = select(suppressions).order_by(suppressions.c.id.desc()).limit(limit)
    if not lifted:
        q = q.where(suppressions.c.lifted_at.is_(None))
    if box is not None:
        q = q.where(suppressions.c.box == box)
    if case_id is not None:
        q = q.where(suppressions.c.case_id == case_id)
    if grids is not None:
        q = q.where(among(suppressions.c.grid, grids))
    with store.engine.connect() as db:
        return [dict(r._mapping, bbox=json.loads(r.bbox)) for r in db.execute(q)]


def boxes(store: Store) -> list[str]:
    """Every box that ever had a suppression (its list is sent again when the gateway connects)."""
    with store.engine.connect() as db:
        return list(db.execute(select(suppressions.c.box).distinct().order_by(suppressions.c.box)).scalars())


def lift(store: Store, suppression_id: int, actor: str, role: Role, now: float,
         grids: list[str] | None = None) -> dict | None:
    """Lift a suppression in force (one in ``grids`` when given), logged on its case's timeline;
    None when there is no such suppression in force."""
    with store.begin() as db:
        q = select(suppressions).where(suppressions.c.id == suppression_id, suppressions.c.lifted_at.is_(None))
        row = db.execute(q if grids is None else q.where(among(suppressions.c.grid, grids))).first()
        if row is None:
            return None
        if db.execute(update(suppressions).where(suppressions.c.id == suppression_id, suppressions.c.lifted_at.is_(None))
                      .values(lifted_at=now, lifted_by=actor[:128])).rowcount != 1:
            return None
        if row.case_id is not None:
            state = db.execute(select(schema.cases.c.state).where(schema.cases.c.id == row.case_id)).scalar()
            storage.log(db, row.case_id, now, actor, role, "suppression_lifted", state, state,
                        f"suppression {suppression_id} lifted")
        return dict(row._mapping, bbox=json.loads(row.bbox), lifted_at=now, lifted_by=actor[:128])


def wire_item(row: dict) -> dict:
    """A stored suppression as the box receives it (``xueliang/schema/suppressions.schema.json``).

    >>> wire_item({"id": 4, "camera": "gate", "zone": "kerb", "type": "garbage", "bbox": [0, 0, 0.5, 0.5],
    ...            "case_id": 9, "created_at": 1767225600.0})["created_at"]
    '2026-01-01T00:00:00.000Z'
    """
    return {"id": row["id"], "camera": row["camera"], "zone": row["zone"], "type": row["type"], "bbox": row["bbox"],
            "case_id": row["case_id"], "created_at": wire.iso(row["created_at"])}


def box_payload(store: Store, box: str, now: float) -> bytes:
    """The box's whole list in force, as published (WireError if a stored row breaks the schema)."""
    return wire.encode_suppressions(box, now, [wire_item(r) for r in reversed(listed(store, box=box))])
