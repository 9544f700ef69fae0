"""An SQLite file of this project's (the box's outbox, the gateway's database) that cannot be used, told apart as
both sides must act on it: *damaged* (SQLite says it is no database, or a damaged one) or *out of reach* (a
read-only file or folder, one the user may not open, a link to nothing, a full disk). The box moves a damaged
outbox aside and begins a new one; a file out of reach is never moved: it is fixed where it lies, for it may
hold what was not yet sent (on a disk with *no room*, the box keeps its outbox in memory meanwhile).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

LOW_SPACE = 1 << 20  # bytes free on a file's disk under which an error says so


def read_only(path: Path, **options) -> sqlite3.Connection:
    """The SQLite file at ``path`` opened to read and never write (``immutable``: no lock taken, no journal or
    shared memory made beside it: safe on a full disk and on a file set aside); ``options`` as ``sqlite3.connect``'s."""
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro&immutable=1", uri=True, **options)


def damaged(exc: BaseException) -> bool:
    """Whether SQLite's error ``exc`` says the file is no database (``SQLITE_NOTADB``) or a damaged one
    (``SQLITE_CORRUPT``), rather than one out of reach.

    >>> import sqlite3, tempfile
    >>> path = Path(tempfile.mkdtemp()) / "x.sqlite"; _ = path.write_bytes(b"not a database" * 100)
    >>> try:
    ...     sqlite3.connect(path).execute("SELECT * FROM sqlite_master")
    ... except sqlite3.DatabaseError as exc:
    ...     damaged(exc), damaged(sqlite3.OperationalError("attempt to write a readonly database"))
    (True, False)
    """
    return (getattr(exc, "sqlite_errorname", None) or "").startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT"))


def no_room(exc: BaseException, path: Path) -> bool:
    """Whether SQLite's error ``exc`` on the file at ``path`` comes of a full disk: it says so (``SQLITE_FULL``), or it
    is an I/O error (a full disk's, where SQLite makes the file's shared memory beside it: ``SQLITE_IOERR_SHMSIZE``)
    and the disk has less than ``LOW_SPACE`` free, or it cannot open the file and the disk has no inode free.

    >>> import sqlite3, tempfile
    >>> db = sqlite3.connect(":memory:"); _ = db.execute("PRAGMA max_page_count = 1")
    >>> try:
    ...     db.execute("CREATE TABLE t (x)")
    ... except sqlite3.OperationalError as exc:
    ...     no_room(exc, Path(tempfile.mkdtemp()) / "x.sqlite"), no_room(sqlite3.OperationalError("locked"), Path("x"))
    (True, False)
    """
    name = getattr(exc, "sqlite_errorname", None) or ""
    if name == "SQLITE_FULL":
        return True
    try:
        disk = os.statvfs(path.parent)
    except OSError:
        return False
    if name.startswith("SQLITE_IOERR"):
        return disk.f_bavail * disk.f_frsize < LOW_SPACE
    return name == "SQLITE_CANTOPEN" and disk.f_files > 0 and disk.f_favail == 0


def out_of_reach(path: Path) -> str | None:
    """What the system says keeps the file at ``path`` from being opened to read and write, in words (SQLite says
    "unable to open database file", or "disk I/O error" on a full disk, of bytes or of inodes), or None where it
    says nothing.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> out_of_reach(folder), out_of_reach(folder / "none")
    ('it is a folder', None)
    >>> (folder / "link").symlink_to(folder / "gone" / "x.sqlite")
    >>> out_of_reach(folder / "link")  # doctest: +ELLIPSIS
    'it is a link to .../gone/x.sqlite, which does not exist'
    """
    try:
        if path.is_dir():
            return "it is a folder"
        if path.is_symlink() and not path.exists():
            return f"it is a link to {os.readlink(path)}, which does not exist"
    except OSError as exc:  # a folder on its way the user may not search
        return exc.strerror
    try:
        os.close(os.open(path, os.O_RDWR))
    except FileNotFoundError:
        pass
    except OSError as exc:
        return exc.strerror
    try:
        disk = os.statvfs(path.parent)
    except OSError:
        return None
    if disk.f_flag & os.ST_RDONLY:  # a new file on a read-only mount: not its free space, which may be low too
        return "its disk is mounted read-only"
    free = disk.f_bavail * disk.f_frsize
    if free < LOW_SPACE:
        return f"{free // 1024} KiB free on its disk"
    return "no inode free on its disk" if disk.f_files > 0 and disk.f_favail == 0 else None
