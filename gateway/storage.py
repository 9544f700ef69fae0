"""Storage: SQLite (WAL) by default, PostgreSQL by URL, through SQLAlchemy Core.

The schema is versioned: ``migrate`` brings any earlier database up to ``MIGRATIONS``'
last version at start, in one transaction, and records each step in ``schema_migrations``
(the tables and their migrations: ``gateway.schema``; the numbering after a backup restored or
rows deleted: ``gateway.numbering``; what is said of a database read and never written, as
``gateway --check`` reads it: ``gateway.check``; what ingest reads and writes of each message, its statements compiled
once (``Prepared``): ``gateway.ingestdb``; whether an error is the database's or the message's: ``gateway.dberrors``).

Write helpers take an open transaction (``with store.begin() as db``) so a case change
and its audit record are committed together; reads are methods of ``Store``.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import math
import os
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path

from sqlalchemy import (
    and_,
    Boolean,
    case as sql_case,
    Float,
    Integer,
    Select,
    Table,
    Text,
    bindparam,
    create_engine,
    delete,
    event,
    false,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from gateway import numbering, photohash
from gateway.config import Tables
from gateway.ingestdb import DIALECT_INSERT, Prepared, named_by_event
from gateway.schema import (
    MIGRATIONS,
    case_incidents,
    case_log,
    case_photos,
    cases,
    dead_letters,
    evidence,
    incident_events,
    metadata,
    photo_hashes,
    schema_migrations,
    sessions,
    tokens,
)
from gateway.workflow import CENTRE_CLOCK, DEPARTMENT_CLOCK, OPEN_STATES, Action, CaseState, Role, transition
from xueliang import sqlitefile, wire
from xueliang.characters import neutralised
from xueliang.passwords import without_password

log_ = logging.getLogger(__name__)  # ``log`` writes the case log


DEAD_LETTER_KEEP_BYTES = 65_536


class ConflictError(RuntimeError):
    """The case changed under us (another process acted first); retry with fresh data."""


def overdue_clause(now: float, columns: Collection[str] = ("recheck_deadline", "review_deadline")):
    """``cases.is_overdue`` in SQL: past the deadline that runs now (the department's while it
    handles, the re-check's in feedback, the command centre's own in pending_review and returned), of the
    deadlines whose ``columns`` the table has (``check`` reads an older release's database as it is)."""
    return or_(*[clause for column, clause in (
        ("deadline", and_(cases.c.state.in_([s.value for s in DEPARTMENT_CLOCK]), cases.c.deadline < now)),
        ("recheck_deadline", and_(cases.c.state == CaseState.FEEDBACK.value, cases.c.recheck_deadline < now)),
        ("review_deadline", and_(cases.c.state.in_([s.value for s in CENTRE_CLOCK]), cases.c.review_deadline < now)),
    ) if column == "deadline" or column in columns])


def urgency_order(now: float) -> list:
    """The order of a department's queue and the overdue board, in SQL so a page's limit cuts the
    least urgent: overdue first, the most escalated first, then the deadline that runs now
    (``cases.running_deadline``) nearest or longest past, cases with none last, then the oldest."""
    running = sql_case((cases.c.state.in_([s.value for s in DEPARTMENT_CLOCK]), cases.c.deadline),
                       (cases.c.state == CaseState.FEEDBACK.value, cases.c.recheck_deadline),
                       (cases.c.state.in_([s.value for s in CENTRE_CLOCK]), cases.c.review_deadline))
    return [sql_case((overdue_clause(now), 0), else_=1), cases.c.level.desc(), running.is_(None), running, cases.c.id]


def _selected(q, state: str | None = None, grid: str | None = None, department: str | None = None,
              category: str | None = None, overdue_at: float | None = None, grids: list[str] | None = None,
              hidden_states: list[str] | None = None, *, states: list[str] | None = None,
              codes: list[str] | None = None, ids: list[int] | None = None, created_from: float | None = None,
              created_to: float | None = None, located: bool = False):
    """``q`` restricted to the cases ``Store.list_cases``' filters select (one place for both it and
    ``Store.count_cases``); ``located``: only those with a place (their first incident's camera's), which the map
    draws."""
    if located:
        q = q.where(cases.c.lat.is_not(None), cases.c.lon.is_not(None))
    if hidden_states:
        q = q.where(cases.c.state.not_in(hidden_states))
    for col, values in (("state", states), ("category_code", codes), ("id", ids)):
        if values is not None:
            q = q.where(cases.c[col].in_(values))
    if created_from is not None:
        q = q.where(cases.c.created_at >= created_from)
    if created_to is not None:
        q = q.where(cases.c.created_at <= created_to)
    for col, value in (("state", state), ("grid", grid), ("department", department), ("type", category)):
        if value is not None:
            q = q.where(cases.c[col] == value)
    if grids is not None:
        q = q.where(among(cases.c.grid, grids))
    if overdue_at is not None:
        q = q.where(overdue_clause(overdue_at))
    return q


# what a report reads of its cases (``Store.cases_between``): ``reports.summary``, ``reports.machine_precision`` and
# ``auth.may_see``, each as ``case[column]`` (one left out here is a KeyError, not a figure quietly off). All 34, made
# dicts, took 62 ms of a report of a year's city (7,300 cases, bench/gateway_scale.py); these, 27
REPORTED = ("id", "created_at", "category_name", "department", "deadline", "fed_back_at", "grid", "state", "box",
            "camera", "type")


class DatabaseUnusable(RuntimeError):
    """The database cannot be used as it is: damaged, of a later version, read-only, out of reach or not answering.
    Said in one line at start (``xueliang gateway`` exits 2); the file is left as it is, never begun anew."""


IN_AT_ONCE = 10_000  # ids in one ``IN (...)``: PostgreSQL takes at most 65,535 parameters in a statement


def in_chunks(ids: list) -> list[list]:
    """``ids`` in slices of at most ``IN_AT_ONCE``, each for one ``IN (...)``: an export since a day months back
    asked of 70,000 cases in one, and PostgreSQL refused it ("number of parameters must be between 0 and 65535").

    >>> [len(c) for c in in_chunks(list(range(25_000)))], in_chunks([])
    ([10000, 10000, 5000], [])
    """
    return [ids[at:at + IN_AT_ONCE] for at in range(0, len(ids), IN_AT_ONCE)]


def _dicts(result) -> Iterator[dict]:
    """A result's rows as dicts, its keys read once (``dict(row._mapping)`` asks the row for them each time)."""
    keys = list(result.keys())
    return (dict(zip(keys, row)) for row in result)


class among(FunctionElement):
    """``column IN (values)`` with the values as one parameter, a JSON array, however many: an operator's scope named
    each grid of its subtree as a parameter of its own, and an operator of a street of 70,000 grids had more than
    PostgreSQL takes in a statement (65,535), or SQLite as built by default (32,766): each list it asked for failed.
    One statement too, whatever the count: a report's ``IN`` of a parameter a case was a new one each time its count
    changed, and Python's sqlite3 keeps a connection's last 128 prepared, each as big as its list (1 MB at 7,500).

    >>> print(among(cases.c.grid, ["G-1", "G-2"]))
    cases.grid IN (SELECT value FROM json_each(:among_1))
    >>> from sqlalchemy.dialects import sqlite
    >>> str(select(cases.c.id).where(among(cases.c.id, [7])).compile(dialect=sqlite.dialect())).split("WHERE ")[1]
    'cases.id IN (SELECT value FROM json_each(?))'
    """
    type = Boolean()
    inherit_cache = True
    # a condition as it stands: SQLAlchemy wrote a Boolean function ``... = 1`` on SQLite (no boolean of its own), and
    # SQLite used no index for that: a report read the whole case log (860,000 rows) for its cases' 30,000, 0.22 s
    _is_implicitly_boolean = True

    def __init__(self, column, values: list[str] | list[int]):
        super().__init__(column, bindparam("among", json.dumps(list(values)), type_=Text, unique=True))


class database_now(FunctionElement):
    """The database's clock, in seconds since the epoch: one clock for every gateway sharing the database, where each
    gateway's own may be ahead of another's, or step. When a box was last heard is written and judged by it.

    >>> print(database_now())
    ((julianday('now') - 2440587.5) * 86400.0)
    """
    type = Float()
    inherit_cache = True


@compiles(database_now)  # SQLite's (and the default's, as printed): the Julian day, to the millisecond
def _julian_now(element, compiler, **kw) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


@compiles(database_now, "postgresql")
def _epoch_now(element, compiler, **kw) -> str:
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"


@compiles(among)  # SQLite's (and the default's, as printed)
def _among_json_each(element, compiler, **kw) -> str:
    column, values = (compiler.process(c, **kw) for c in element.clauses)
    return f"{column} IN (SELECT value FROM json_each({values}))"


@compiles(among, "postgresql")  # its own function for a JSON array's texts, made numbers for a column of ids
def _among_json_array(element, compiler, **kw) -> str:
    column, values = (compiler.process(c, **kw) for c in element.clauses)
    each = f"json_array_elements_text(CAST({values} AS json))"
    if isinstance(list(element.clauses)[0].type, Integer):
        each = f"CAST({each} AS BIGINT)"
    return f"{column} IN (SELECT {each})"


def not_gateways(there: list[str]) -> str:
    """What is said of a database holding tables ``there`` and no table cases: another application's (the gateway
    made its tables beside theirs)."""
    return (f"not a gateway's database (no table cases; tables {', '.join(there[:5])}{', ...' if there[5:] else ''}): "
            "name the gateway's, or move this one away for a new one to begin; it was left as it is")


def read_only_engine(url: str) -> Engine:
    """An engine on ``url`` that writes nothing: an SQLite file opened as ``read_only_connection`` opens it, PostgreSQL
    in read-only transactions."""
    if (path := sqlite_path(url)) is None:
        return create_engine(url, future=True).execution_options(postgresql_readonly=True)
    engine = create_engine("sqlite://")
    # SQLAlchemy's own hook, not a creator (which bypasses it): Store's refusal once closed runs before it
    event.listen(engine, "do_connect", lambda dialect, record, cargs, cparams: read_only_connection(path))
    return engine


def read_only_connection(path: Path, **options) -> sqlite3.Connection:
    """The gateway's SQLite file at ``path`` opened read-only (``mode=ro``, not ``immutable``: a running gateway's
    write-ahead log is read too); with no log beside it (no gateway has it open), ``immutable``: read-only, SQLite made
    the log and its shared memory beside a stopped gateway's file and could not remove them (``gateway --check`` run
    as root before an upgrade left them root's, for the gateway's user to find). ``options`` as ``sqlite3.connect``'s."""
    if not path.with_name(path.name + "-wal").exists():
        return sqlitefile.read_only(path, **options)
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, **options)


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL, None for any other database (or SQLite in memory)."""
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") and url != "sqlite:///:memory:" else None


def database_where(url: str) -> Path | str:
    """Where the database at ``url`` is, as said to people: an SQLite file's path, or the URL without its password."""
    path = sqlite_path(url)
    # SQLAlchemy hides the password it reads from the user information, not one given as a parameter (?password=)
    return path if path is not None else without_password(make_url(url).render_as_string(hide_password=True))


def make_engine(url: str) -> tuple[Engine, list[int]]:
    """The engine, its database brought up to date (``migrate``, whose versions applied come with it);
    DatabaseUnusable saying where, what is wrong and what to do where it cannot be (it was a traceback of 120 lines,
    and a database of a later version was served)."""
    path = sqlite_path(url)
    where = database_where(url)
    try:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseUnusable(f"database {where}: cannot be kept there ({exc.strerror or exc})") from None
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
    try:
        applied = migrate(engine)
        if engine.dialect.name == "sqlite":  # only once the file is the gateway's: the switch writes its header
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    except (SQLAlchemyError, DatabaseUnusable) as exc:
        engine.dispose()
        raise DatabaseUnusable(f"database {where}: {unusable(exc, path)}") from None
    return engine, applied


def unusable(exc: Exception, path: Path | None) -> str:
    """Why the database cannot be used (``exc``, from ``migrate``), and what to do, for DatabaseUnusable."""
    if isinstance(exc, DatabaseUnusable):
        return str(exc)
    said = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    if sqlitefile.damaged(getattr(exc, "orig", exc)):
        return (f"damaged ({said}): restore it from a backup, or move it away for a new one to begin; it was left "
                "as it is")
    if getattr(getattr(exc, "orig", None), "sqlite_errorname", None) == "SQLITE_ERROR":  # no such table, column
        return (f"not a gateway's database ({said}): name the gateway's, or move this one away for a new one to "
                "begin; it was left as it is")
    if path is None:
        return f"cannot be used ({said}): see that it runs, takes this URL and lets it write; nothing was changed"
    why = sqlitefile.out_of_reach(path)
    return (f"cannot be used ({said}{f'; {why}' if why else ''}): let the gateway's user read and write it and its "
            "folder, with room on its disk; it was left as it is")


def schema_version(db: Connection) -> int:
    """The last migration the gateway's database on ``db`` has had (1: made before migrations were recorded)."""
    if not inspect(db).has_table("schema_migrations"):
        return 1
    return db.execute(select(func.max(schema_migrations.c.version))).scalar() or 1


def refuse_later_release(version: int) -> None:
    """DatabaseUnusable for a database at a schema version past this gateway's (a city rolled back)."""
    if version > MIGRATIONS[-1][0]:
        raise DatabaseUnusable(f"schema version {version} is newer than this gateway's ({MIGRATIONS[-1][0]}): "
                               "run a gateway of the release that made it; it was left as it is")


def migrate(engine: Engine) -> list[int]:
    """Create a new database at the last version, or apply the steps an existing one lacks;
    returns the versions applied (every one for a database it made). Gateways starting together on PostgreSQL
    take turns. DatabaseUnusable for a database of a later version (its steps unknown here: served as it was, what
    this gateway wrote could break it) and an SQLite file of another application's, with tables and no cases (the
    gateway made its tables beside theirs), and SQLAlchemy's error for one that cannot be written (read-only: found
    now, not at the first incident). A file refused is left as it was: nothing is written until the steps are all
    done."""
    now = time.time()
    with engine.begin() as db:
        if db.dialect.name == "postgresql":
            db.execute(text("SELECT pg_advisory_xact_lock(7146)"))  # any fixed key of this project's
        else:  # pysqlite would run DDL outside a transaction; this makes the steps all-or-nothing
            db.exec_driver_sql("BEGIN IMMEDIATE")
        have = inspect(db)
        if not have.has_table("cases"):
            if db.dialect.name == "sqlite" and (others := have.get_table_names()):  # another application's file
                raise DatabaseUnusable(not_gateways(others))
            metadata.create_all(db)
            todo, made = [(v, what, None) for v, what, _ in MIGRATIONS], True
        else:
            made = False
            if not have.has_table("schema_migrations"):  # made before migrations: version 1
                schema_migrations.create(db)
                db.execute(insert(schema_migrations).values(version=1, what=MIGRATIONS[0][1], applied_at=now))
            done = set(db.execute(select(schema_migrations.c.version)).scalars())
            refuse_later_release(max(done))
            todo = [m for m in MIGRATIONS if m[0] not in done]
            db.execute(delete(schema_migrations).where(schema_migrations.c.version < 0))  # writes nothing; read-only refuses
        for version, what, step in todo:
            if step is not None:
                log_.info("schema migration %d: %s", version, what)
                step(db)
            db.execute(insert(schema_migrations).values(version=version, what=what, applied_at=now))
        return [version for version, _, step in todo if step is not None or made]


# --- write helpers (inside one transaction) ---

def _insert(table: Table):
    """An insert of every column but a generated id, each bound by its name."""
    return insert(table).values({c.name: bindparam(c.name) for c in table.columns if c.name != "id"})


_NEW_CASE = Prepared(_insert(cases).returning(cases.c.id))
_NUMBERED_CASE = Prepared(insert(cases).values({c.name: bindparam(c.name) for c in cases.columns})
                          .returning(cases.c.id))
_LINK = Prepared(_insert(case_incidents))
_LOG = Prepared(_insert(case_log))
_EVIDENCE_KEPT = Prepared(select(evidence.c.sha256).where(evidence.c.sha256 == bindparam("sha256")))
_NEW_EVIDENCE = Prepared(_insert(evidence))


def dispatch_note(department: str, tables: Tables) -> str:
    """The note of a dispatch's log row: the department and what the tables call it, so one taken out of them later
    is shown by the name it last had (``removed_departments``), not its bare id.

    >>> from gateway.config import TABLES_DIR, load_tables
    >>> tables = load_tables(TABLES_DIR / "demo.yaml")
    >>> dispatch_note("traffic-police", tables), dispatch_note("old-roads", tables)
    ('traffic-police 交警大队', 'old-roads')
    """
    return f"{department} {tables.department_name(department)}" if tables.knows_department(department) else department


def removed_departments(db: Connection, known: Collection[str], named_before: dict[str, str | None] | None = None
                        ) -> dict[str, str | None]:
    """The departments the cases name that are not in ``known`` (the tables'), each with the name its latest logged
    dispatch gave it (None: none did, all logged before dispatches named it); a name in ``named_before`` is kept, not
    looked for again (down the whole log, no index on it: ~50 ms of CPU each in a city's year)."""
    named, before = {}, named_before or {}
    for department in db.execute(select(cases.c.department).distinct()).scalars():
        if department in known:
            continue
        if before.get(department) is not None:
            named[department] = before[department]
        else:
            note = db.execute(select(case_log.c.note).where(
                case_log.c.action == "dispatched", case_log.c.target == department,
                case_log.c.note.startswith(f"{department} ", autoescape=True)).order_by(case_log.c.id.desc())
                .limit(1)).scalar()
            named[department] = note[len(department) + 1:] if note else None
    return named


def open_case(db: Connection, row: dict, now: float, actor: str, tables: Tables | None = None) -> int:
    """A new case, its creation logged, and its dispatch if it goes straight to its department (named as ``tables``
    call it: ``dispatch_note``)."""
    if (first := numbering.restored_id(db, "cases", now)) is None:
        case_id = _NEW_CASE.first(db, row)[0]
    else:  # the first case on a backup restored: numbered past the lost gateway's
        case_id = _NUMBERED_CASE.first(db, {**row, "id": first})[0]
    link(db, row["incident_id"], case_id, "opened", now)
    entries = [_log_row(case_id, now, actor, Role.SYSTEM, "created", None, row["state"],
                        f"{row['type']} in zone {row['zone']}")]
    if row["state"] == CaseState.DISPATCHED.value:
        entries.append(_log_row(case_id, now, "gateway", Role.SYSTEM, "dispatched", None, row["state"],
                                dispatch_note(row["department"], tables) if tables else row["department"],
                                row["department"], deadline=row["deadline"]))
    _LOG.run(db, entries)
    return case_id


def link(db: Connection, incident_id: str, case_id: int, how: str, now: float) -> None:
    _LINK.run(db, {"incident_id": incident_id, "case_id": case_id, "how": how, "linked_at": now})


def log(db: Connection, case_id: int, now: float, actor: str, role: Role | str, action: str,
        from_state: str | None, to_state: str | None, note: str | None = None, target: str | None = None,
        extend_by: str | None = None, deadline: float | None = None) -> None:
    _LOG.run(db, _log_row(case_id, now, actor, role, action, from_state, to_state, note, target, extend_by, deadline))


def _log_row(case_id: int, now: float, actor: str, role: Role | str, action: str, from_state: str | None,
             to_state: str | None, note: str | None = None, target: str | None = None,
             extend_by: str | None = None, deadline: float | None = None) -> dict:
    return {"case_id": case_id, "at": now, "actor": actor[:128], "role": Role(role).value, "action": action,
            "from_state": from_state, "to_state": to_state, "note": note, "target": target, "published": None,
            "extend_by": extend_by, "deadline": deadline}


_UPDATES: dict[tuple[tuple[str, ...], tuple[str, ...]], Prepared] = {}  # by the columns set and compared


def update_case(db: Connection, case_id: int, values: dict, **where) -> bool:
    """Set ``values`` on a case if its columns equal ``where`` (compare-and-set);
    ``last_seq_below=N`` applies only while the stored seq is older than N. True when a row changed:
    told by the row it returns, on the driver's cursor (``Prepared``), as psycopg's pipeline mode (a
    batch's) gives no rowcount: every batch holding a reopening or a camera's close was rolled back as
    a conflict and taken again one message at a time."""
    key = (tuple(sorted(values)), tuple(sorted(where)))
    if key not in _UPDATES:
        q = update(cases).where(cases.c.id == bindparam("case_id"))
        for col in key[1]:
            q = q.where(cases.c.last_seq < bindparam("w_last_seq_below") if col == "last_seq_below"
                        else cases.c[col] == bindparam(f"w_{col}"))
        _UPDATES[key] = Prepared(q.values({col: bindparam(f"v_{col}") for col in key[0]}).returning(cases.c.id))
    params = {"case_id": case_id, **{f"v_{c}": v for c, v in values.items()}, **{f"w_{c}": v for c, v in where.items()}}
    return len(_UPDATES[key].run(db, params).fetchall()) == 1


def hold_case(db: Connection, case_id: int) -> None:
    """Hold the case's row for the transaction ``db`` before it is read: another writer of it waits until this one
    commits, and one already writing it is waited for, so what is read next is what the action applies to. An update
    that changes nothing: PostgreSQL locks the row, SQLite (no row locks) takes its write lock."""
    db.execute(update(cases).where(cases.c.id == case_id).values(state=cases.c.state))


def apply(db: Connection, case: dict, action: Action, role: Role, actor: str, now: float,
          note: str | None = None, values: dict | None = None, extend_by: str | None = None,
          deadline: float | None = None) -> dict:
    """Move ``case`` by ``action`` (TransitionError if not allowed), log it (with ``deadline``, the department's
    deadline an extension set); compare-and-set on state."""
    target = transition(case["state"], action, role)
    changes = {"state": target.value, **(values or {})}
    if target == CaseState.CLOSED:
        changes.setdefault("closed_at", now)
    if not update_case(db, case["id"], changes, state=case["state"]):
        raise ConflictError(f"case {case['id']} changed while {action.value} was applied")
    log(db, case["id"], now, actor, role, action.value, case["state"], target.value, note,
        changes.get("escalated_grid") if action == Action.ESCALATE else None, extend_by, deadline)
    return {**case, **changes}


def add_evidence(db: Connection, sha256: str, data: bytes, incident_id: str, box: str, camera: str,
                 now: float) -> bool:
    """Keep an evidence image once (content-addressed); False when it was already kept. Named (``evidence.named``)
    where it is a person's photo (a case's key) or an event of its incident recorded already names it (its event
    came first, through another gateway)."""
    if _EVIDENCE_KEPT.first(db, {"sha256": sha256}):
        return False
    named = incident_id.startswith(wire.GATEWAY_KEY_PREFIX) or named_by_event(db, incident_id, sha256)
    _NEW_EVIDENCE.run(db, {"sha256": sha256, "data": bytes(data), "incident_id": incident_id, "box": box,
                           "camera": camera, "received_at": now, "named": named})
    return True


class DamagedPicture(RuntimeError):
    """A kept picture whose bytes no longer match their sha256, its key (a bit flipped on the disk, a page of a
    backup restored damaged): never served as evidence, nor exported to train on. ``sha256``: its key."""

    def __init__(self, sha256: str) -> None:
        super().__init__(f"stored picture {sha256} is damaged (its bytes no longer match their sha256); restore it "
                         "from a backup")
        self.sha256 = sha256


def intact(sha256: str, data: bytes) -> bytes:
    """``data``, a picture kept under ``sha256``, where they still match; DamagedPicture where they do not. The hash
    of a 200 kB snapshot takes 0.2 ms (hashlib, 1 GB/s on one core of the 2-core test machine).

    >>> intact("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", b"hello")
    b'hello'
    >>> intact("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", b"hellp")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    gateway.storage.DamagedPicture: stored picture 2cf24dba...9824 is damaged (its bytes no longer match their ...
    """
    if hashlib.sha256(data).hexdigest() != sha256:
        raise DamagedPicture(sha256)
    return data


def evidence_kept(db: Connection, sha256: str) -> bool:
    return _EVIDENCE_KEPT.first(db, {"sha256": sha256}) is not None


def set_aside_evidence(db: Connection, row: dict, reason: str, now: float) -> None:
    """Move a kept evidence ``row`` (its incident never came, or is another's) to the dead letters with the reason."""
    dead_letter(db, wire.evidence_topic(row["box"], row["camera"], row["incident_id"]), reason, row["data"], now)
    db.execute(evidence.delete().where(evidence.c.sha256 == row["sha256"]))


def dead_letter(db: Connection, topic: str, reason: str, payload: bytes, now: float) -> None:
    """Keep a refused message with the reason, in the caller's transaction, once: a message kept already (by its
    digest) is left as it was; an id taken twice would be an error, not a dead letter lost (``numbering.restored_id``
    gives each once). Its topic and reason as any database stores them (PostgreSQL refuses NUL in text, and
    both may quote what the message held)."""
    row = {"received_at": now, "topic": topic.replace("\x00", "\\0")[:512],
           "reason": reason.replace("\x00", "\\0")[:1000], "payload": bytes(payload[:DEAD_LETTER_KEEP_BYTES]),
           "grid": dead_letter_grid(payload), "digest": wire.message_digest(topic, bytes(payload)),
           "box": wire.topic_box(topic)}
    if (first := numbering.restored_id(db, "dead_letters", now)) is not None:
        row["id"] = first  # past the lost gateway's, or the deleted ones'
    db.execute(DIALECT_INSERT[db.dialect.name](dead_letters).values(row)
               .on_conflict_do_nothing(index_elements=[dead_letters.c.digest]))


def _dead_letters_of(grids: list[str] | None, box: str | None) -> list:
    """The dead letters naming one of ``grids`` (all where None) and the ``box`` (any where None), as conditions."""
    return (([] if grids is None else [among(dead_letters.c.grid, grids)])
            + ([] if box is None else [dead_letters.c.box == box]))


def _delete_dead_letters(db: Connection, ids: Select) -> int:
    """Delete the dead letters ``ids`` selects, their ids never given again (``numbering.keep_numbering``); how many."""
    deleted = db.execute(delete(dead_letters).where(dead_letters.c.id.in_(ids.scalar_subquery()))
                         .returning(dead_letters.c.id)).scalars().all()
    numbering.keep_numbering(db, "dead_letters", deleted)
    return len(deleted)


def dead_letter_grid(payload: bytes) -> str | None:
    """The grid a refused message names, best effort, so an operator sees its own grid's dead letters.

    >>> dead_letter_grid(b'{"grid": "HQ-DZG-10D-07", "seq": "x"}'), dead_letter_grid(b"[" * 5000), dead_letter_grid(b"")
    ('HQ-DZG-10D-07', None, None)
    """
    if len(payload) > DEAD_LETTER_KEEP_BYTES:
        return None
    try:
        message = json.loads(payload)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep: nobody's grid
        return None
    grid = message.get("grid") if isinstance(message, dict) else None
    if not isinstance(grid, str) or not 0 < len(grid) <= 64 or not grid.isprintable():
        return None
    try:
        grid.encode()
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape
        return None
    return grid


def _incident_facts(db: Connection, incident_ids: list[str]) -> dict[str, dict]:
    """What each incident's events tell its case: ``reason``, a camera fault's cause as its latest event that gave
    one said (``attributes.reason``), ``end_reason``, why it ended (``left``, ``cleared``: the camera saw it gone;
    ``box_stopped`` and the like: it stopped being watched), and ``evidence_sha256`` and ``end_evidence_sha256``, its
    snapshots as kept (when it was found, when it ended). The
    sha256 its events named (the first that named one, and its end's), if those bytes arrived
    from its own box: for that very incident, or for another of the box's (the bytes are kept once,
    under the first incident that sent them; a blocked lens's black picture is the same bytes at
    every fault). Another box's bytes are never shown for it, whatever sha256 it names."""
    if not incident_ids:
        return {}
    named: dict[str, list] = {i: [None, None] for i in incident_ids}
    reasons: dict[str, str] = {}
    ends: dict[str, str] = {}
    boxes: dict[str, object] = {}
    for iid, state, payload in db.execute(
            select(incident_events.c.incident_id, incident_events.c.state, incident_events.c.payload)
            .where(incident_events.c.incident_id.in_(incident_ids)).order_by(incident_events.c.seq)):
        try:
            message = json.loads(payload)
            sha = (message.get("evidence") or {}).get("sha256")
            reason = (message.get("attributes") or {}).get("reason")
        except (ValueError, AttributeError):  # stored as received: checked then, but never trusted twice
            continue
        if isinstance(reason, str):  # it may hold a camera's own words (an RTSP reason phrase): shown with each
            # control or invisible formatting character replaced, not refused (the fault is no less one), the event
            # kept as it came; a lone surrogate broke the case's JSON, a right-to-left override the page's line
            reasons[iid] = neutralised(reason)
        boxes.setdefault(iid, message.get("box"))
        if state == "end" and isinstance(message.get("end_reason"), str):
            ends[iid] = message["end_reason"]
        which = 1 if state == "end" else 0
        if isinstance(sha, str) and named[iid][which] is None:
            named[iid][which] = sha
    wanted = {sha for pair in named.values() for sha in pair if sha}
    kept = {sha: (owner, box) for owner, sha, box in db.execute(
        select(evidence.c.incident_id, evidence.c.sha256, evidence.c.box)
        .where(evidence.c.sha256.in_(sorted(wanted))))} if wanted else {}

    def shown(iid: str, sha: str | None) -> str | None:
        owner, box = kept.get(sha, (None, None)) if sha else (None, None)
        return sha if owner is not None and (owner == iid or box == boxes.get(iid)) else None

    return {iid: {"evidence_sha256": shown(iid, start), "end_evidence_sha256": shown(iid, end),
                  "reason": reasons.get(iid), "end_reason": ends.get(iid)} for iid, (start, end) in named.items()}


def add_case_photo(db: Connection, case_id: int, sha256: str, now: float) -> bool:
    """Link a kept image to a case as one of its photos; False when the case had it already."""
    if db.execute(select(case_photos.c.sha256).where(case_photos.c.case_id == case_id,
                                                     case_photos.c.sha256 == sha256)).first():
        return False
    db.execute(insert(case_photos).values(case_id=case_id, sha256=sha256, added_at=now))
    return True


def add_photo_hash(db: Connection, sha256: str, picture: int | None) -> None:
    """Keep a photo's picture hash (``photohash.picture_hash``) by its bands, once for its bytes; none where it has
    none (nearly black)."""
    if picture is None:
        return
    signed = picture - (1 << 64) if picture >= 1 << 63 else picture
    db.execute(DIALECT_INSERT[db.dialect.name](photo_hashes).on_conflict_do_nothing(),
               [{"band": band, "value": value, "sha256": sha256, "dhash": signed}
                for band, value in enumerate(photohash.bands(picture))])


def same_picture(db: Connection, case_id: int, sha256: str, picture: int | None) -> tuple[int, float] | None:
    """The first photo of a case other than ``case_id`` that is the same picture as this one: the same bytes, or a
    hash at most ``photohash.SAME_PICTURE_BITS`` away (where it has one); its case and when it was added, or None."""
    found = []
    if picture is not None:
        near = or_(*(and_(photo_hashes.c.band == band, photo_hashes.c.value.in_(values))
                     for band, values in enumerate(photohash.near_bands(picture))))
        found = db.execute(select(photo_hashes.c.sha256, photo_hashes.c.dhash).where(near).distinct()).all()
    shas = {sha256} | {sha for sha, h in found
                       if photohash.distance(h & ((1 << 64) - 1), picture) <= photohash.SAME_PICTURE_BITS}
    first = db.execute(select(case_photos.c.case_id, case_photos.c.added_at)
                       .where(case_photos.c.sha256.in_(sorted(shas)), case_photos.c.case_id != case_id)
                       .order_by(case_photos.c.added_at, case_photos.c.case_id).limit(1)).first()
    return (first.case_id, first.added_at) if first else None


class DatabaseFileGone(RuntimeError):
    """The SQLite file the gateway opened is no longer the one at its path (deleted, or another put there)."""


class StoreClosed(RuntimeError):
    """The store was closed (``Store.close``: the gateway is stopping) and refuses any further use: a request its stop
    did not wait for opened a new connection after the close, which made the write-ahead log and its shared memory
    beside the stopped gateway's file again and wrote into them after the checkpoint."""

    def __init__(self) -> None:
        super().__init__("the gateway is stopping: its database is closed; try again once it is back")


CASE_VALUES_KEPT_S = 60  # Store.case_values: how long a scan of the cases' departments or categories is taken


class Store:
    """The gateway's database at ``url``, brought up to this release's schema (``make_engine``): ``applied`` the
    migrations this opening applied. ``read_only``: opened as ``read_only_engine`` opens it, with no migration, for a
    command that only reads (``token --list``, ``dataset export``): an older release's file is read as it is, at its
    schema ``version`` (a listing that migrated it left a city rolling back after a look with an old gateway refusing
    the file); a later release's is refused as the start refuses it."""

    def __init__(self, url: str, read_only: bool = False):
        if read_only:
            self.engine, applied = read_only_engine(url), []
            try:
                with self.engine.connect() as db:
                    self.version = schema_version(db)
                    for each_releases in (cases.c.id, tokens.c.sha256):  # not so, another application's table cases
                        db.execute(select(each_releases).limit(0))
                refuse_later_release(self.version)
            except (SQLAlchemyError, DatabaseUnusable) as exc:
                self.engine.dispose()
                raise DatabaseUnusable(f"database {database_where(url)}: {unusable(exc, sqlite_path(url))}") from None
        else:
            self.engine, applied = make_engine(url)
            self.version = MIGRATIONS[-1][0]
        self.applied, self.read_only = applied, read_only
        # this process made the database, so no gateway used it before (version 1 is applied only by making one: a
        # database older than migrations is recorded at it)
        self.made = MIGRATIONS[0][0] in applied
        # a SQLite file deleted under a running gateway took commits (into the unlinked file) and answered
        # SELECT 1: incidents were acknowledged and lost. Every commit checks the file is still the one opened.
        self.path = path.resolve() if (path := sqlite_path(url)) is not None else None
        self._opened = self._identity()
        self._gone = False
        self.closed = False
        # once closed, no connection is opened or handed out, and none begun before commits: a closed store's file
        # has nothing beside it and nothing written after its checkpoint (PostgreSQL's pool stays disposed)
        event.listen(self.engine, "do_connect", self._refuse_closed, insert=True)
        event.listen(self.engine, "checkout", self._refuse_closed)
        event.listen(self.engine, "commit", self._may_commit)
        event.listen(self.engine, "checkin", self._closed_at_checkin)
        self._case_values: dict[tuple, tuple[float, set[str]]] = {}  # case_values' scans, each with its time
        self._upgraded_at: dict[int, float | None] = {}  # upgraded_at's reads
        self._removed: tuple[float, frozenset[str], dict[str, str | None]] = (-math.inf, frozenset(), {})

    def close(self) -> None:
        """Close its connections. SQLite removes the write-ahead log and its shared memory beside the file as the last
        one closes: a command that left them open (``token --list`` run as root before an upgrade) left them beside a
        stopped gateway's file, root's, for the gateway's user to find. An SQLite file it writes has the log folded in
        first (a checkpoint): the file alone holds every commit. From then on it refuses any use (StoreClosed): a
        request a stopping gateway did not wait for opens no connection, and one it still holds commits nothing and
        is closed as it is given back (the last to close removes the log)."""
        if self.closed:
            return
        db = None
        if self.path is not None and not self.read_only:
            try:
                db = self.engine.connect()  # the checkpoint's, taken before the store refuses
            except SQLAlchemyError as exc:
                self._not_folded(exc)
        self.closed = True
        if db is not None:
            with db:
                try:
                    db.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                except SQLAlchemyError as exc:
                    self._not_folded(exc)
        self.engine.dispose()

    def _not_folded(self, exc: SQLAlchemyError) -> None:  # closed all the same; the log still holds what it held
        log_.warning("database %s: its write-ahead log not folded into it at close (%s): copy %s-wal with it",
                     self.path, exc, self.path.name)

    def _refuse_closed(self, *_) -> None:
        if self.closed:
            log_.warning("database %s used after its close (a request the stop did not wait for): refused, nothing "
                         "written", database_where(str(self.engine.url)) if self.path is None else self.path)
            raise StoreClosed()

    def _may_commit(self, _conn) -> None:
        self._refuse_closed()  # a transaction begun before the close: rolled back
        self.check_file()

    def _closed_at_checkin(self, _dbapi_connection, record) -> None:
        if self.closed:
            record.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def _identity(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def check_file(self) -> None:
        """Raise DatabaseFileGone when the SQLite file at the path is not the one opened (nothing for
        PostgreSQL): what is written then is never read again, so nothing may be acknowledged."""
        if self.path is None:
            return
        now = self._identity()
        if now == self._opened:
            if self._gone:
                self._gone = False
                log_.warning("database file %s is back: writing again", self.path)
            return
        if not self._gone:
            self._gone = True
            log_.error("database file %s was %s under the running gateway: nothing is written or acknowledged "
                       "until it is back; restore it, or restart the gateway to begin a new one",
                       self.path, "deleted or moved" if now is None else "replaced by another file")
        raise DatabaseFileGone(f"database file {self.path} is {'gone' if now is None else 'another file'} "
                               "(deleted or replaced since the gateway opened it)")

    def begin(self):
        return self.engine.begin()

    def reachable(self) -> bool:
        """Whether the database answers at all, and is still the file it opened: after a failure, tells
        the database's own trouble (stop and retry) from a message's (set it aside)."""
        try:
            self.check_file()
            with self.engine.begin() as db:
                db.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def dead_letter(self, topic: str, reason: str, payload: bytes, now: float) -> None:
        """Keep a refused message with the reason (``dead_letter``), in a transaction of its own."""
        with self.engine.begin() as db:
            dead_letter(db, topic, reason, payload, now)

    def add_evidence(self, sha256: str, data: bytes, incident_id: str, box: str, camera: str, now: float) -> bool:
        with self.engine.begin() as db:
            return add_evidence(db, sha256, data, incident_id, box, camera, now)

    def quarantine_orphan_evidence(self, older_than: float, now: float, limit: int = 100) -> int:
        """Evidence no event of its box named (evidence is sent just before the event that names it) moves to the
        dead letters after a while, with the reason: its incident never came, or came and none of its events names
        these bytes (a box's bug, or a box filling the gateway's disk with pictures nobody is shown)."""
        moved = 0
        with self.engine.begin() as db:
            known = select(incident_events.c.incident_id).where(incident_events.c.incident_id == evidence.c.incident_id)
            photo = select(case_photos.c.sha256).where(case_photos.c.sha256 == evidence.c.sha256)
            photos = evidence.c.incident_id.startswith(wire.GATEWAY_KEY_PREFIX)  # people's photos
            rows = db.execute(select(evidence, known.exists().label("known"))
                              .where(evidence.c.named.is_(False), evidence.c.received_at < older_than, ~photos,
                                     ~photo.exists())  # the same bytes, a case's photo too
                              .limit(limit)).mappings().all()
            for row in rows:
                waited = now - row["received_at"]
                set_aside_evidence(db, row, f"evidence no event of incident {row['incident_id']!r} names (sha256 "
                                   f"{row['sha256'][:12]}...) within {waited:.0f} s: a box sends a picture for an "
                                   "event that names it" if row["known"] else
                                   f"evidence without an incident: no incident {row['incident_id']!r} arrived "
                                   f"within {waited:.0f} s", now)
                moved += 1
        return moved

    def delete_dead_letters_before(self, older_than: float, limit: int) -> int:
        """Delete up to ``limit`` dead letters received before ``older_than``, the oldest first; how many."""
        with self.engine.begin() as db:
            old = select(dead_letters.c.id).where(dead_letters.c.received_at < older_than) \
                .order_by(dead_letters.c.received_at).limit(limit)
            return _delete_dead_letters(db, old)

    def dead_letter_bytes(self) -> int:
        """The bytes of the dead letters' payloads (the most of a row; its topic and reason are 1.5 kB at most). Both
        databases take a payload's length from its header, not its bytes: 0.13 s for 200,000 rows (500 MB) on SQLite."""
        with self.engine.connect() as db:
            return int(db.execute(select(func.coalesce(func.sum(func.length(dead_letters.c.payload)), 0))).scalar_one())

    def dead_letter_bytes_by_box(self) -> dict[str, int]:
        """The bytes of each box's dead letters' payloads ('': those of no box), as ``dead_letter_bytes`` reads them."""
        with self.engine.connect() as db:
            return {box: int(n) for box, n in db.execute(
                select(dead_letters.c.box, func.sum(func.length(dead_letters.c.payload))).group_by(dead_letters.c.box))}

    def delete_dead_letters_over(self, share: int, boxes: Iterable[str], limit: int) -> collections.Counter:
        """Delete the oldest dead letters of each of ``boxes`` whose payloads, with those of every newer one of its box,
        make more than ``share`` bytes (``service.budget_share``), ``limit`` at most, the boxes in their order; how many
        of each box. One statement a box, of one snapshot, by a share, not an excess: two gateways' clocks deleting
        at once delete the same rows (the second finds them gone), where each deleting the excess it summed had
        deleted it twice."""
        deleted: collections.Counter = collections.Counter()
        size = func.length(dead_letters.c.payload)
        with self.engine.begin() as db:
            for box in boxes:
                if deleted.total() >= limit:
                    break
                mine = dead_letters.c.box == box
                oldest = select(dead_letters.c.id, dead_letters.c.received_at, size.label("size")).where(mine) \
                    .order_by(dead_letters.c.received_at, dead_letters.c.id).limit(limit - deleted.total()).subquery()
                # each of the box's oldest rows' bytes with every newer one's of the box: all the box's less those
                # before it (a window over its oldest ``limit``, not the whole box: 200,000 rows on SQLite 1.3 s)
                total = select(func.sum(size)).where(mine).scalar_subquery()
                before = func.sum(oldest.c.size).over(order_by=(oldest.c.received_at, oldest.c.id), rows=(None, 0))
                ranked = select(oldest.c.id, (total - before + oldest.c.size).label("newer")).subquery()
                ids = db.execute(delete(dead_letters).where(dead_letters.c.id.in_(
                    select(ranked.c.id).where(ranked.c.newer > share).scalar_subquery()))
                    .returning(dead_letters.c.id)).scalars().all()
                numbering.keep_numbering(db, "dead_letters", ids)
                deleted[box] += len(ids)
        return +deleted

    # --- reads ---
    def list_cases(self, state: str | None = None, grid: str | None = None, department: str | None = None,
                   category: str | None = None, overdue_at: float | None = None, grids: list[str] | None = None,
                   limit: int = 100, offset: int = 0, hidden_states: list[str] | None = None, *,
                   states: list[str] | None = None, codes: list[str] | None = None, ids: list[int] | None = None,
                   created_from: float | None = None, created_to: float | None = None,
                   urgent_at: float | None = None, located: bool = False, before_id: int | None = None) -> list[dict]:
        """Cases newest first, or with ``urgent_at`` the most urgent at that time first (``urgency_order``);
        ``states``, ``codes`` (the city's category codes) and ``ids`` select any of theirs,
        ``created_from``/``created_to`` the time the case was opened (both inclusive), ``located`` those with a
        place alone; ``before_id`` those numbered below it (the next page, newest first, of one that ended there)."""
        q = _selected(select(cases), state, grid, department, category, overdue_at, grids, hidden_states,
                      states=states, codes=codes, ids=ids, created_from=created_from, created_to=created_to,
                      located=located)
        if before_id is not None:
            q = q.where(cases.c.id < before_id)
        order = urgency_order(urgent_at) if urgent_at is not None else [cases.c.id.desc()]
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(q.order_by(*order).limit(limit).offset(offset))]

    def count_cases(self, **filters) -> int:
        """How many cases ``list_cases(**filters)`` selects, its limit aside (a page says how many it does not show)."""
        with self.engine.connect() as db:
            return db.execute(_selected(select(func.count()).select_from(cases), **filters)).scalar_one()

    def case_values(self, column: str, now: float, **scope) -> set[str]:
        """The values of ``column`` (department, type, category_code) the cases hold, those of departments and
        categories since taken out of the tables among them, as of ``CASE_VALUES_KEPT_S`` ago at most: a scan of the
        cases (on SQLite, 2 cores: 15-40 ms for 100,000, 0.15-0.3 s for 1,000,000), so a client sending a filter the
        tables lack in a loop costs one scan a minute. ``scope``: ``list_cases``' department, grids and hidden_states
        of the cases a reader may see (``auth.case_scope``), whose values alone it is told; each scope kept apart."""
        key = (column, *((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(scope.items())))
        at, values = self._case_values.get(key, (-math.inf, set()))
        if not 0 <= now - at < CASE_VALUES_KEPT_S:
            with self.engine.connect() as db:
                values = set(db.execute(_selected(select(cases.c[column]).distinct(), **scope)).scalars())
            # a scope's scan is dropped a minute on: readers come and go, the city's columns are four
            self._case_values = {k: v for k, v in self._case_values.items() if 0 <= now - v[0] < CASE_VALUES_KEPT_S}
            self._case_values[key] = now, values
        return values

    def removed_departments(self, known: frozenset[str], now: float) -> dict[str, str | None]:
        """``removed_departments`` of the cases as of ``CASE_VALUES_KEPT_S`` ago at most, a scan as ``case_values``'
        (each name found kept): read once at start, a gateway never learnt of a department another gateway's cases
        named since (its tables older), and showed it by its bare id."""
        at, was_known, named = self._removed
        if not 0 <= now - at < CASE_VALUES_KEPT_S or was_known != known:
            with self.engine.connect() as db:
                named = removed_departments(db, known, named)
            self._removed = now, known, named
        return named

    def get_case(self, case_id: int) -> dict | None:
        with self.engine.connect() as db:
            row = db.execute(select(cases).where(cases.c.id == case_id)).first()
            if row is None:
                return None
            case = dict(row._mapping)
            case["timeline"] = [dict(r._mapping) for r in db.execute(
                select(case_log.c.at, case_log.c.actor, case_log.c.role, case_log.c.action, case_log.c.from_state,
                       case_log.c.to_state, case_log.c.note, case_log.c.extend_by)
                .where(case_log.c.case_id == case_id).order_by(case_log.c.id))]
            case["incidents"] = [dict(r._mapping) for r in db.execute(
                select(case_incidents.c.incident_id, case_incidents.c.how, case_incidents.c.linked_at)
                .where(case_incidents.c.case_id == case_id).order_by(case_incidents.c.linked_at))]
            facts = _incident_facts(db, [i["incident_id"] for i in case["incidents"]])
            for i in case["incidents"]:
                i.update(facts[i["incident_id"]])
            return case

    def last_changes(self, case_ids: list[int]) -> dict[int, float]:
        """When each case last changed: its newest case-log row."""
        if not case_ids:
            return {}
        with self.engine.connect() as db:
            return dict(db.execute(select(case_log.c.case_id, func.max(case_log.c.at))
                                   .where(case_log.c.case_id.in_(case_ids)).group_by(case_log.c.case_id)).all())

    def evidence_bytes(self, sha256: str) -> bytes | None:
        """A picture kept (``intact``: DamagedPicture where its bytes no longer match ``sha256``); None where none is."""
        with self.engine.connect() as db:
            row = db.execute(select(evidence.c.data).where(evidence.c.sha256 == sha256)).first()
        return intact(sha256, row.data) if row else None

    def photo_bytes(self, case_id: int, sha256: str) -> bytes | None:
        """A photo added to this case (the same bytes may be another case's photo or evidence too), ``intact``."""
        with self.engine.connect() as db:
            row = db.execute(select(evidence.c.data).join(case_photos, case_photos.c.sha256 == evidence.c.sha256)
                             .where(case_photos.c.case_id == case_id, case_photos.c.sha256 == sha256)).first()
        return intact(sha256, row.data) if row else None

    def list_dead_letters(self, limit: int = 100, before_id: int | None = None,
                          grids: list[str] | None = None, box: str | None = None) -> list[dict]:
        """The newest dead letters (older than ``before_id`` when given); with ``grids``, only those
        whose payload named one of them; with ``box``, only those whose topic named it."""
        page = _dead_letters_of(grids, box) + ([dead_letters.c.id < before_id] if before_id is not None else [])
        with self.engine.connect() as db:
            rows = db.execute(select(dead_letters.c.id, dead_letters.c.received_at, dead_letters.c.topic,
                                     dead_letters.c.reason, dead_letters.c.grid, dead_letters.c.box,
                                     func.length(dead_letters.c.payload).label("bytes"))
                              .where(*page).order_by(dead_letters.c.id.desc()).limit(limit))
            return [dict(r._mapping) for r in rows]

    def count_dead_letters(self, grids: list[str] | None = None, box: str | None = None) -> int:
        with self.engine.connect() as db:
            return db.execute(select(func.count()).select_from(dead_letters).where(*_dead_letters_of(grids, box))
                              ).scalar_one()

    def overdue(self, now: float, limit: int = 100) -> list[dict]:
        """Cases on the clock that passed their deadline and are due for (another) escalation."""
        q = select(cases).where(overdue_clause(now), or_(cases.c.next_escalation_at.is_(None),
                                                     cases.c.next_escalation_at < now))
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(q.order_by(cases.c.deadline).limit(limit))]

    def unpublished(self, actions: tuple[str, ...], limit: int = 100) -> list[dict]:
        q = select(case_log).where(case_log.c.published.is_(None), case_log.c.action.in_(actions))
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(q.order_by(case_log.c.id).limit(limit))]

    def mark_published(self, log_ids: list[int], now: float) -> int:
        if not log_ids:
            return 0
        with self.engine.begin() as db:
            return db.execute(update(case_log).where(case_log.c.id.in_(log_ids), case_log.c.published.is_(None))
                              .values(published=now)).rowcount

    def cases_by_id(self, ids: set[int]) -> dict[int, dict]:
        if not ids:
            return {}
        with self.engine.connect() as db:
            return {r.id: dict(r._mapping) for r in db.execute(select(cases).where(cases.c.id.in_(sorted(ids))))}

    def add_token(self, sha256: str, name: str, role: str, department: str | None, grid: str | None, now: float,
                  prefix: str | None = None, expires_at: float | None = None) -> None:
        with self.engine.begin() as db:
            db.execute(insert(tokens).values(sha256=sha256, name=name, role=role, department=department, grid=grid,
                                             created_at=now, prefix=prefix, expires_at=expires_at))

    def token(self, sha256: str) -> dict | None:
        with self.engine.connect() as db:
            row = db.execute(select(tokens).where(tokens.c.sha256 == sha256)).first()
            return dict(row._mapping) if row else None

    def tokens(self) -> list[dict]:
        """Every token, oldest first; a column an older release's file lacks (read as it is) None."""
        with self.engine.connect() as db:
            there = {c["name"] for c in inspect(db).get_columns("tokens")}
            rows = db.execute(select(*(c for c in tokens.c if c.name in there)).order_by(tokens.c.created_at))
            return [{c.name: None for c in tokens.c} | dict(r._mapping) for r in rows]

    def revoke_tokens(self, name_or_prefix: str, as_token_sha256: str, now: float) -> list[dict]:
        """Revoke the live tokens with this name, this whole token (by its hash) or whose printed
        token starts with this prefix (7 characters or more); their page sessions end too.
        Returns the tokens revoked."""
        match = or_(tokens.c.name == name_or_prefix, tokens.c.sha256 == as_token_sha256,
                    tokens.c.prefix.startswith(name_or_prefix, autoescape=True) if len(name_or_prefix) >= 7 else false())
        with self.engine.begin() as db:
            rows = [dict(r._mapping) for r in db.execute(select(tokens).where(match, tokens.c.revoked_at.is_(None)))]
            shas = [r["sha256"] for r in rows]
            if shas:
                db.execute(update(tokens).where(tokens.c.sha256.in_(shas)).values(revoked_at=now))
                db.execute(sessions.delete().where(sessions.c.token_sha256.in_(shas)))
            return rows

    def add_session(self, sha256: str, token_sha256: str, now: float, expires_at: float) -> None:
        with self.engine.begin() as db:
            db.execute(sessions.delete().where(sessions.c.expires_at < now))  # the expired ones, while here
            db.execute(insert(sessions).values(sha256=sha256, token_sha256=token_sha256, created_at=now,
                                               expires_at=expires_at))

    def session(self, sha256: str) -> dict | None:
        """A page session with its token's columns (``session_expires_at`` is the session's own)."""
        q = (select(tokens, sessions.c.expires_at.label("session_expires_at"))
             .join(sessions, sessions.c.token_sha256 == tokens.c.sha256).where(sessions.c.sha256 == sha256))
        with self.engine.connect() as db:
            row = db.execute(q).first()
            return dict(row._mapping) if row else None

    def end_session(self, sha256: str) -> None:
        with self.engine.begin() as db:
            db.execute(sessions.delete().where(sessions.c.sha256 == sha256))

    def upgraded_at(self, version: int) -> float | None:
        """When this database was upgraded to migration ``version``; None where it was made at that version or later
        (its step was recorded with the first, at the making: nothing in it is older) or has not had it yet (a
        read-only store's older file). Read once, then kept: it never changes."""
        if version not in self._upgraded_at:
            with self.engine.connect() as db:
                at = dict(db.execute(select(schema_migrations.c.version, schema_migrations.c.applied_at).where(
                    schema_migrations.c.version.in_([1, version]))).all())
            self._upgraded_at[version] = at[version] if at.get(version, at.get(1)) != at.get(1) else None
        return self._upgraded_at[version]

    def cases_between(self, start: float, end: float) -> list[dict]:
        """The cases a report of [``start``, ``end``) counts, each with its ``log`` (``gateway.reports`` reads it)
        and ``REPORTED``, the columns it reads: created before ``end`` and created in the period, open now, or acted
        on since its start (a case ledgered or closed since was open in it). A rejected or ledger case is settled
        with no closing time: one from before the period counts for nothing in it, and every report read every one
        ever made (a year's false alarms, 100,000 rejected cases: 2 s and 200 MB a report, growing each day)."""
        chosen = select(cases.c.id).where(cases.c.created_at < end, or_(
            cases.c.state.in_(sorted(s.value for s in OPEN_STATES)), cases.c.created_at >= start,
            cases.c.id.in_(select(case_log.c.case_id).where(case_log.c.at >= start))))
        with self.engine.connect() as db:
            # the ids read once, each case's log by its index in case order (by the log's id, the period's log was
            # sorted), rows made dicts without asking each its keys: a year's city (bench/gateway_scale.py, 7,500
            # cases and 38,000 log rows a report) spent 0.40 s of CPU a report here, now 0.28
            ids = db.execute(chosen).scalars().all()
            rows = {r["id"]: dict(r, log=[]) for r in _dicts(db.execute(
                select(*(cases.c[c] for c in REPORTED)).where(among(cases.c.id, ids))))}
            for entry in _dicts(db.execute(
                    select(case_log.c.case_id, case_log.c.at, case_log.c.action, case_log.c.to_state,
                           case_log.c.target, case_log.c.deadline)
                    .where(among(case_log.c.case_id, ids)).order_by(case_log.c.case_id, case_log.c.id))):
                rows[entry["case_id"]]["log"].append(entry)
            return list(rows.values())

    def count(self, table: str) -> int:
        with self.engine.connect() as db:
            return db.execute(select(func.count()).select_from(metadata.tables[table])).scalar_one()
