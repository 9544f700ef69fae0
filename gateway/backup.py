"""A copy of the gateway's SQLite database to restore from (``xueliang gateway --backup FILE``), the gateway running
or stopped: ``cp gateway.sqlite`` while it runs copies a file whose last writes are still in its write-ahead log
beside it (stale), or one SQLite writes to as it is read (torn). SQLite's online backup reads one snapshot of the
database and its log; the copy is written beside FILE, checked, and only then takes FILE's name: a copy that failed
(a full disk, a folder it may not write) leaves nothing under FILE, and nothing beside it.

Everything a city restores is in the file: cases, their log, incidents, evidence pictures and people's photos (the
``evidence`` table holds their bytes), tokens. A PostgreSQL database is backed up with its own tool (``pg_dump``).
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from gateway.schema import MIGRATIONS
from gateway.storage import database_where, read_only_connection

BUSY_TIMEOUT_S = 30  # the snapshot waits out a gateway's checkpoint or a migration rather than failing at once


class BackupError(RuntimeError):
    """A backup refused or failed, saying why; nothing was left under FILE or beside it."""


def pg_dump_instead(url: str) -> str:
    """What is said for a database that is no SQLite file: the ``pg_dump`` line that backs it up, its URL as libpq
    takes it without the password (pg_dump reads it from PGPASSWORD or ~/.pgpass; on a command line, ``ps`` shows it).

    >>> print(pg_dump_instead("postgresql+psycopg://xl:s3cret@db:5432/city?password=s3cret&sslmode=require"))
    ... # doctest: +NORMALIZE_WHITESPACE
    database postgresql+psycopg://xl:***@db:5432/city?password=***&sslmode=require: --backup copies an SQLite
    file; back PostgreSQL up with its own tool: pg_dump --format=custom --file FILE
    'postgresql://xl@db:5432/city?sslmode=require' (the password from PGPASSWORD or ~/.pgpass; restore with pg_restore)
    """
    given = make_url(url)  # URL.set takes None for "as it is"
    libpq = given._replace(drivername=given.get_backend_name(), password=None).difference_update_query(["password"])
    libpq = libpq.render_as_string(hide_password=False)
    return (f"database {database_where(url)}: --backup copies an SQLite file; back PostgreSQL up with its own tool: "
            f"pg_dump --format=custom --file FILE '{libpq}' (the password from PGPASSWORD or ~/.pgpass; restore with "
            "pg_restore)")


def refused(source: Path, target: Path) -> str | None:
    """Why a backup of the database file ``source`` is not to be written to ``target``, or None where it may."""
    if target.is_dir():
        return f"--backup {target}: is a folder: name the file to make in it ({target / 'gateway-YYYY-MM-DD.sqlite'})"
    if not target.parent.is_dir():  # not made: a mistyped mount point would fill the disk under it
        return f"--backup {target}: no folder {target.parent}: make it, or name a file in a folder that is there"
    own = source.resolve()
    if target.resolve() in {own, *(own.with_name(own.name + tail) for tail in ("-wal", "-shm", "-journal"))}:
        return f"--backup {target}: is the database itself ({source}): name a file of its own"
    # never replaced: the copy of a wrong database (a mistyped config) would take the last good one's place
    if target.exists() or target.is_symlink():
        return f"--backup {target}: is there already (it was left as it is): name a new file, as each day's own"
    return None


def backup(source: Path, target: Path) -> str:
    """Copy the gateway's database file ``source`` to ``target`` (``refused`` first), checked; what it holds, said.
    BackupError where it cannot be, with nothing left under ``target`` or beside it."""
    if why := refused(source, target):
        raise BackupError(why)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise BackupError(f"--backup {target}: cannot be written ({exc.strerror or exc}); nothing was made") from None
    part = Path(name)
    try:
        held = _copy(source, part)
        if target.exists() or target.is_symlink():  # made meanwhile
            raise BackupError(refused(source, target) or f"--backup {target}: is there already")
        os.rename(part, target)
        folder = os.open(target.parent, os.O_RDONLY)
        try:  # the name too survives a power cut, not only the bytes SQLite synced
            os.fsync(folder)
        finally:
            os.close(folder)
    except (sqlite3.Error, OSError) as exc:
        raise BackupError(f"--backup {target}: cannot be written ({getattr(exc, 'strerror', None) or exc}); nothing "
                          "was left there") from None
    finally:
        for leftover in (part, *(part.with_name(part.name + tail) for tail in ("-journal", "-wal", "-shm"))):
            leftover.unlink(missing_ok=True)
    migration = (f"migration {held['migration']}" + (" (an older release's)" if held["migration"] < MIGRATIONS[-1][0]
                 else " (a later release's)" if held["migration"] > MIGRATIONS[-1][0] else ""))
    return (f"backed up database {source} to {target} ({target.stat().st_size / 1e6:.1f} MB, {migration}, checked): "
            f"{held['cases']:,} case(s), {held['pictures']:,} evidence picture(s) and photo(s) "
            f"({held['picture_bytes'] / 1e6:.1f} MB, kept in the file: nothing else to copy), {held['tokens']:,} "
            "token(s)")


def _copy(source: Path, part: Path) -> dict:
    """Copy ``source`` into the empty SQLite file ``part`` and check the copy: what it holds."""
    with closing(read_only_connection(source, timeout=BUSY_TIMEOUT_S)) as db, closing(sqlite3.connect(part)) as copy:
        # in one step: one read of one snapshot (readers never hold a WAL gateway's writes back); in several, each
        # commit of the gateway between them would start the copy over
        db.backup(copy)
        # its own journal, not the gateway's write-ahead log: the file opens alone, on a medium mounted read-only
        # too; the gateway's start switches it back
        copy.execute("PRAGMA journal_mode=DELETE")
        if (said := copy.execute("PRAGMA integrity_check").fetchall()) != [("ok",)]:
            raise BackupError(f"database {source}: its copy fails SQLite's check ({said[0][0]}): see `gateway --check`"
                              " on it; nothing was left there")
        tables = {name for (name,) in copy.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "cases" not in tables:
            raise BackupError(f"database {source}: its copy holds no table cases; nothing was left there")
        # marked as a backup, with its time: a gateway restored from it numbers its cases past the lost one's
        # (``gateway.restore``); a copy of a restored file on which no case was numbered keeps that file's earlier time
        if not copy.execute("PRAGMA user_version").fetchone()[0]:
            copy.execute(f"PRAGMA user_version = {int(time.time() // 60)}")  # in minutes: a signed 32-bit field
        pictures, picture_bytes = copy.execute("SELECT count(*), coalesce(sum(length(data)), 0) FROM evidence").fetchone()
        return {"cases": copy.execute("SELECT count(*) FROM cases").fetchone()[0], "pictures": pictures,
                "picture_bytes": picture_bytes, "tokens": copy.execute("SELECT count(*) FROM tokens").fetchone()[0],
                "migration": (copy.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] or 1
                              if "schema_migrations" in tables else 1)}

