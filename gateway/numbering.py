"""Where the tables whose ids a reader outside meets go on numbering from, on a database restored from a backup or after
rows deleted: SQLite numbers a new row one past the last in its file, and gave an id again that the lost gateway, or
a deleted row, had given (``gateway.restore`` holds the margins, pure; this module reads and writes the database).

An SQLite file ``gateway --backup`` marked (``backup_mark``) is renumbered by its first row (``restored_id``), each
table's place kept in the ``numbering`` table until a row of it took it; a PostgreSQL database ``pg_restore`` put
back is renumbered by ``gateway --restored-at`` (``renumber_restored``), its sequences moved on.
"""

from __future__ import annotations

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from gateway import restore
from gateway.schema import cases, dead_letters, numbering, suppressions


def backup_mark(db: Connection) -> tuple[float, int] | None:
    """When the SQLite database on ``db`` was backed up and its last case, for a backup restored on which nothing has
    been numbered yet (``gateway --backup`` marks its copy, ``restored_id`` clears it: ``gateway.restore``); None for
    any other, and for PostgreSQL (``pg_dump``'s copy carries its own numbering). Read on the driver's cursor: ingest
    asks it for each new case."""
    if db.dialect.name != "sqlite":
        return None
    driver = db.connection.dbapi_connection
    (made,) = driver.execute("PRAGMA user_version").fetchone()
    if not made:
        return None
    return made * 60.0, driver.execute("SELECT max(id) FROM cases").fetchone()[0] or 0  # marked in minutes


# the tables whose ids a reader outside meets (``gateway.restore``): numbered past the lost gateway's on a backup
# restored
RENUMBERED = {"cases": cases, "suppressions": suppressions, "dead_letters": dead_letters}


def restored_id(db: Connection, table: str, now: float) -> int | None:
    """The id the next row of ``table`` (one of ``RENUMBERED``) takes on an SQLite backup restored or past rows
    deleted (``keep_numbering``), or None: the database's own numbering. The first row numbered on a file ``gateway
    --backup`` marked fixes where each of those tables goes on from (``restore.first_id``, kept in ``numbering``) and
    clears the mark, in the caller's transaction; a table's place is let go once a row of it took it (a dead letter
    kept already takes none). Read under SQLite's write lock (``write_lock``), held until the caller's row is in and
    committed: two writers (ingest's thread and the clock's, two gateways on one file) each read the same next id, and
    the second's row failed on it (a dead letter retried, a case's batch taken again), or each fixed where the tables
    go on from a backup's mark, the second past the first's again."""
    if db.dialect.name != "sqlite":
        return None
    write_lock(db)
    if (restored := backup_mark(db)) is not None:
        made, _ = restored
        held = dict(db.execute(select(numbering.c.name, numbering.c.next_id)).all())  # a restored file's, backed up
        db.execute(delete(numbering))
        for name in RENUMBERED:
            last = max(last_id(db, name), held.get(name, 1) - 1)
            db.execute(insert(numbering).values(name=name, next_id=restore.first_id(name, last, made, now)))
        db.connection.dbapi_connection.execute("PRAGMA user_version = 0")  # after the inserts: in their transaction
    next_id = db.execute(select(numbering.c.next_id).where(numbering.c.name == table)).scalar()
    if next_id is None:
        return None
    if last_id(db, table) >= next_id:
        db.execute(delete(numbering).where(numbering.c.name == table))
        return None
    return next_id


# when each row of ``RENUMBERED`` was numbered, the gateway's clock: a dump holds those made before its time
NUMBERED_AT = {"cases": cases.c.created_at, "suppressions": suppressions.c.created_at,
               "dead_letters": dead_letters.c.received_at}


def renumber_restored(db: Connection, backed_up_at: float, now: float) -> list[tuple[str, int, int, int]]:
    """On a PostgreSQL database ``pg_restore`` put back from a dump made at ``backed_up_at`` (``gateway
    --restored-at``): each table of ``RENUMBERED`` numbered from ``restore.first_id`` on, as ``restored_id`` numbers a
    marked SQLite file, its last id the last of the rows made before the dump's time (the dump's: those a gateway made
    on the restored database since are not, so a second run does not move them on again); a sequence already past it
    is left as it is, never moved back. Each table as (name, its last in the backup, the next id it was at, the next id
    now), the tables locked in the caller's transaction (a gateway started meanwhile waits to number a row)."""
    said = []
    for name, table in RENUMBERED.items():
        db.exec_driver_sql(f"LOCK TABLE {name} IN EXCLUSIVE MODE")
        last = db.execute(select(func.max(table.c.id)).where(NUMBERED_AT[name] <= backed_up_at)).scalar() or 0
        sequence = db.execute(select(func.pg_get_serial_sequence(name, "id"))).scalar()
        value, called = db.exec_driver_sql(f"SELECT last_value, is_called FROM {sequence}").one()
        was, first = value + 1 if called else value, restore.first_id(name, last, backed_up_at, now)
        if first > was:
            db.execute(select(func.setval(sequence, first, False)))
        said.append((name, last, was, max(first, was)))
    return said


def write_lock(db: Connection) -> None:
    """Hold SQLite's write lock from now until ``db``'s transaction ends: another writer waits at its own (its
    ``busy_timeout``) until this one commits, and what this one reads from now is what it writes on. pysqlite begins a
    transaction at its first INSERT, UPDATE or DELETE only: what it read before, another writer could change first
    (a transaction that wrote holds the lock already)."""
    if not db.connection.dbapi_connection.in_transaction:
        db.exec_driver_sql("BEGIN IMMEDIATE")


def last_id(db: Connection, table: str) -> int:
    """The largest id of ``table`` (one of ``RENUMBERED``), 0 for none: read from its primary key's end."""
    return db.execute(select(func.max(RENUMBERED[table].c.id))).scalar() or 0


def keep_numbering(db: Connection, table: str, deleted: list[int]) -> None:
    """After the rows of ``table`` (one of ``RENUMBERED``) with the ids ``deleted`` were deleted in the caller's
    transaction: where its last rows went, its next row still takes the id past them (``restored_id``), kept in
    ``numbering`` unless a later one is there. SQLite numbers a new row one past the last in the table, and gave a
    deleted row's id again (retention deleting every dead letter, or the newest: dead letter 5 in an operator's ticket
    later named another message). PostgreSQL's sequences never go back: nothing kept."""
    if db.dialect.name != "sqlite" or not deleted or last_id(db, table) > max(deleted):
        return
    held = db.execute(select(numbering.c.next_id).where(numbering.c.name == table)).scalar()
    if held is None:
        db.execute(insert(numbering).values(name=table, next_id=max(deleted) + 1))
    elif held <= max(deleted):
        db.execute(update(numbering).where(numbering.c.name == table).values(next_id=max(deleted) + 1))
