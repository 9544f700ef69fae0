"""What the gateway says of its database without writing it: ``gateway --check``'s look at what it holds and whether
the start would take it (``check_read_only``), its pictures read against their keys (``damaged_pictures_read_only``),
the tables a command that only reads finds (``tables_read_only``), and what the start and ``--check`` warn of
(``start_warnings``: a backup restored, departments gone from the tables that hold open cases).

An SQLite file is opened read-only, with no migration and no write-ahead log made beside a stopped gateway's file;
PostgreSQL in read-only transactions: a look at a city's database before an upgrade or a rollback changes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import and_, func, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from gateway import restore
from gateway.config import Tables
from gateway.numbering import backup_mark
from gateway.schema import cases, evidence
from gateway.storage import (
    DatabaseUnusable,
    database_where,
    not_gateways,
    overdue_clause,
    read_only_connection,
    read_only_engine,
    refuse_later_release,
    removed_departments,
    schema_version,
    sqlite_path,
    unusable,
)
from gateway.workflow import OPEN_STATES


def open_by_department(db: Connection) -> dict[str, dict[str, int]]:
    """How many open cases each department holds, by their state (``Tables.removed_departments`` names those no
    longer in the tables, and which of them are with it now)."""
    rows = db.execute(select(cases.c.department, cases.c.state, func.count()).where(
        cases.c.state.in_(sorted(s.value for s in OPEN_STATES))).group_by(cases.c.department, cases.c.state))
    held: dict[str, dict[str, int]] = {}
    for department, state, n in rows:
        held.setdefault(department, {})[state] = n
    return held


def removed_with_open_cases(db: Connection, tables: Tables) -> list[str]:
    """``Tables.removed_departments`` of the open cases (``open_by_department``), each department by the name its
    last dispatch logged too (``storage.removed_departments``): the gateway's start and ``gateway --check`` say them."""
    named = tables.with_removed(removed_departments(db, tables.department_ids))
    return named.removed_departments(open_by_department(db))


def start_warnings(db: Connection, tables: Tables, where: Path | str, now: float) -> list[str]:
    """What the gateway's start and ``gateway --check`` say of its database (at ``where``) at ``now``: a backup restored
    (``numbering.backup_mark``), and the departments no longer in the tables holding open cases
    (``removed_with_open_cases``)."""
    restored = backup_mark(db)
    said = [f"database {where}: {restore.restored_words(*restored, now)}"] if restored else []
    return said + removed_with_open_cases(db, tables)


@dataclass(frozen=True)
class Held:
    """What the gateway's database holds, as ``gateway --check`` says it (``held``): its last ``migration``, how many
    ``cases`` (``open``, and of them ``overdue``), the ``last`` case's number and when it was created, the evidence
    ``pictures``, and the mark of a backup restored (``numbering.backup_mark``)."""
    migration: int
    cases: int
    open: int
    overdue: int
    last: tuple[int, float] | None
    pictures: int
    restored: tuple[float, int] | None


def held(db: Connection, now: float) -> Held:
    """What the gateway's database on ``db`` holds at ``now``, read with nothing changed, at any migration this release
    knows (one before migration 6 has no re-check deadline: a case in feedback is overdue by none; before migration
    20, no review deadline: a case waiting on the command centre)."""
    overdue = overdue_clause(now, [c["name"] for c in inspect(db).get_columns("cases")])
    is_open = cases.c.state.in_(sorted(s.value for s in OPEN_STATES))
    figures = db.execute(select(func.count(), func.count().filter(is_open),
                                func.count().filter(and_(is_open, overdue))).select_from(cases)).one()
    last = db.execute(select(cases.c.id, cases.c.created_at).order_by(cases.c.id.desc()).limit(1)).first()
    pictures = db.execute(select(func.count()).select_from(evidence)).scalar_one()
    return Held(schema_version(db), *figures, tuple(last) if last else None, pictures, backup_mark(db))


def check_read_only(url: str, tables: Tables, now: float) -> tuple[Held, list[str]] | None:
    """What ``gateway --check`` says of the database at ``url``, read with nothing made or changed (an SQLite file
    opened read-only: no migration, no WAL switch; PostgreSQL in read-only transactions): what it ``held``, and the
    ``start_warnings``. None for no SQLite file there, or a database with no gateway's tables yet (the gateway makes
    them at its start). DatabaseUnusable for a database the gateway refuses at start (no SQLite database, another
    application's file, one of a later release: a city rolling back was told all was well; a PostgreSQL that does not
    answer), as it would say it, and for an SQLite file its quick check finds damaged (a backup restored: the gateway's
    start reads no page it does not need)."""
    path, where = sqlite_path(url), database_where(url)
    if path is not None and not path.exists() and not path.is_symlink():
        return None
    engine = read_only_engine(url)
    try:
        with engine.connect() as db:
            there = inspect(db).get_table_names()
            if "cases" not in there and (path is None or not there):  # on PostgreSQL, its tables made beside others'
                return None
            if "cases" not in there:
                raise DatabaseUnusable(f"database {where}: {not_gateways(there)}")
            # every page read, as the backup checked its copy (the quick form: page by page, not each index against
            # its table): a restored file with a page damaged (a bit flipped on a disk or on its way) was fit to run
            # here, and the gateway served it, failing at a list and each batch
            if path is not None and (said := db.exec_driver_sql("PRAGMA quick_check(1)").scalar()) != "ok":
                raise DatabaseUnusable(f"database {where}: damaged (SQLite's quick check: {' '.join(said.split())}): "
                                       "restore it from a backup, or move it away for a new one to begin; it was left "
                                       "as it is")
            try:
                refuse_later_release(schema_version(db))
            except DatabaseUnusable as exc:
                raise DatabaseUnusable(f"database {where}: {exc}") from None
            return held(db, now), start_warnings(db, tables, where, now)
    except SQLAlchemyError as exc:  # no SQLite database, or of another making (a table cases of its own)
        raise DatabaseUnusable(f"database {where}: {unusable(exc, path)}") from None
    finally:
        engine.dispose()


def tables_read_only(url: str) -> list[str] | None:
    """The tables of the database at ``url``, read with nothing made or changed (an SQLite file opened read-only:
    no journal, no write-ahead log, no file where there is none), for a command that only reads the gateway's
    database; None for an SQLite file that is not there. DatabaseUnusable where it cannot be read (no SQLite
    database, out of reach, a PostgreSQL that does not answer), said as the gateway's start says it."""
    path = sqlite_path(url)
    try:
        if path is not None and not path.exists() and not path.is_symlink():
            return None
    except OSError as exc:  # a folder on its way the user may not search: a relative path, run from root's home
        raise DatabaseUnusable(f"database {database_where(url)}: cannot be read ({exc.strerror}): let this user reach "
                               "it, each folder on its way (a relative path is read from the folder the command runs "
                               "in); nothing was made") from None
    engine = read_only_engine(url)
    try:
        with engine.connect() as db:
            return inspect(db).get_table_names()
    except SQLAlchemyError as exc:
        where = database_where(url)
        raise DatabaseUnusable(f"database {where}: {unusable(exc, path)}") from None
    finally:
        engine.dispose()


def damaged_pictures_read_only(url: str, progress: Callable[[int, int], None] = lambda done, total: None
                               ) -> tuple[int, int, list[str]]:
    """Every picture an SQLite file keeps (snapshots, frames, people's photos: the ``evidence`` table) read against its
    key (``storage.intact``), the file opened as ``check_read_only`` opens it: how many, their bytes, and the sha256s
    of those damaged, in the table's order; ``progress(bytes read, bytes in all)`` after each. (0, 0, []) for another
    database, no file or one without the gateway's tables. A row at a time, in the table's own order (its pages one
    after another on the disk), never the whole table in memory."""
    path = sqlite_path(url)
    if path is None or not path.is_file():
        return 0, 0, []
    with contextlib.closing(read_only_connection(path)) as db:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'evidence'").fetchone():
            return 0, 0, []
        (total,) = db.execute("SELECT coalesce(sum(length(data)), 0) FROM evidence").fetchone()  # sizes, no bytes read
        count, done, damaged = 0, 0, []
        for sha256, data in db.execute("SELECT sha256, data FROM evidence"):
            count, done = count + 1, done + len(data)
            if hashlib.sha256(data).hexdigest() != sha256:
                damaged.append(sha256)
            progress(done, total)
    return count, done, damaged
