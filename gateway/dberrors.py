"""What a database error says: whose trouble it is, the database's or the message's, and whether a try again may pass.

Ingest sorts each failure by it (``gateway.ingest``): an error that says the database cannot take writes now
(``cannot_write``: a full disk, read-only, a lost connection, its file gone) or that another writer held what a
transaction needed past the retries (``contended``) stops ingest, nothing acknowledged, and is never a message's dead
letter; one that may pass at once (``is_transient``) or says another gateway wrote first (``lost_race``) is tried
again; what is left is the message's own, and a dead letter keeps it. Read off the driver's own error (SQLite's result
code, PostgreSQL's SQLSTATE), as SQLAlchemy wraps it or raw (``ingestdb.Prepared`` runs the ingest path's statements on the
driver's cursor).
"""

from __future__ import annotations

from gateway.storage import ConflictError, DatabaseFileGone, StoreClosed


def is_transient(exc: BaseException) -> bool:
    """A database error that may pass if tried again (locked, busy, a lost connection): DB-API's
    OperationalError, as SQLAlchemy, sqlite3 and psycopg all name it."""
    return any(cls.__name__ in ("OperationalError", "InterfaceError") for cls in type(exc).__mro__)


def _causes(exc: BaseException):
    """The error and what it wraps (SQLAlchemy's ``orig``, the exception chain): the driver's own error
    carries the code; ``ingestdb.Prepared`` raises it unwrapped."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__


# SQLite's result codes (extended ones start with these) and PostgreSQL's SQLSTATEs (a class by its first two
# characters) that say the database cannot take a write now; CONTENDED: another writer holds what it needs
_SQLITE_CANNOT_WRITE = ("SQLITE_FULL", "SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_CORRUPT",
                        "SQLITE_NOTADB", "SQLITE_NOMEM", "SQLITE_PROTOCOL")
_PG_CANNOT_WRITE = ("08", "53", "57P", "58", "25006", "XX001", "XX002")  # connection, resources (53100 disk
# full), shut down, I/O, a read-only transaction (a standby), data or index corrupted
_SQLITE_CONTENDED = ("SQLITE_BUSY", "SQLITE_LOCKED")
_PG_CONTENDED = ("40001", "40P01", "55P03")  # serialization failure, deadlock, lock not available


def _database_says(exc: BaseException, sqlite_codes: tuple[str, ...], pg_states: tuple[str, ...]) -> bool:
    for e in _causes(exc):
        name = getattr(e, "sqlite_errorname", None)
        if isinstance(name, str):
            return name.startswith(sqlite_codes)
        state = getattr(e, "sqlstate", None)
        if isinstance(state, str):
            return state.startswith(pg_states)
    return False


def cannot_write(exc: BaseException) -> bool:
    """Whether a failure says the database itself cannot take writes now (disk full, read-only, I/O,
    the connection lost, the file gone, the store closed at a stop): the database's trouble, never the message's,
    which must not become a dead letter for it. Measured: on a full disk ``SELECT 1`` still answered, so a case that did
    not fit was set aside as a dead letter, which did fit, and the box deleted the incident.
    Other errors, a poison message's included, are not: a message that fails for its own reasons
    still becomes a dead letter.

    >>> import sqlite3
    >>> db = sqlite3.connect(":memory:"); _ = db.execute("CREATE TABLE t (x)"); _ = db.execute("PRAGMA query_only=1")
    >>> for sql in ("INSERT INTO t VALUES (1)", "SELEC 1"):
    ...     try:
    ...         db.execute(sql)
    ...     except sqlite3.Error as exc:
    ...         print(exc.sqlite_errorname, cannot_write(exc))
    SQLITE_READONLY True
    SQLITE_ERROR False
    """
    if any(isinstance(e, DatabaseFileGone | StoreClosed) for e in _causes(exc)):
        return True
    if _database_says(exc, _SQLITE_CANNOT_WRITE, _PG_CANNOT_WRITE):
        return True
    # psycopg's own OperationalError without a SQLSTATE: the server closed the connection, or none was made
    return any(type(e).__module__.startswith("psycopg") and getattr(e, "sqlstate", None) is None
               and any(c.__name__ in ("OperationalError", "InterfaceError") for c in type(e).__mro__)
               for e in _causes(exc))


def contended(exc: BaseException) -> bool:
    """Whether another writer held what a transaction needed (SQLite busy or locked, a PostgreSQL deadlock
    or serialization failure): worth another try, and after the last one still not the message's fault."""
    return _database_says(exc, _SQLITE_CONTENDED, _PG_CONTENDED)


def lost_race(exc: BaseException) -> bool:
    """Another process wrote first: a case changed under us, or a key it inserted (DB-API's
    IntegrityError, raw from the driver where ``ingestdb.Prepared`` ran the statement: psycopg's UniqueViolation
    was not caught, and an incident's update racing its start became a dead letter)."""
    return isinstance(exc, ConflictError) or any(cls.__name__ == "IntegrityError" for cls in type(exc).__mro__)
