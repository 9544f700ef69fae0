"""An SQLite file of this project's (the box's outbox, the gateway's database) that cannot be used, told apart as
both sides must act on it: *damaged* (SQLite says it is no database, or a damaged one) or *out of reach* (a
read-only file or folder, one the user may not open, a link to nothing, a full disk). The box moves a damaged
outbox aside and begins a new one; a file out of reach is never moved: it is fixed where it lies, for it may
hold what was not yet sent.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

LOW_SPACE = 1 << 20  # bytes free on a file's disk under which an error says so


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


def out_of_reach(path: Path) -> str | None:
    """What the system says keeps the file at ``path`` from being opened to read and write, in words (SQLite says
    "unable to open database file", or "disk I/O error" on a full disk), or None where it says nothing.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> out_of_reach(folder), out_of_reach(folder / "none")
    ('it is a folder', None)
    >>> (folder / "link").symlink_to(folder / "gone" / "x.sqlite")
    >>> out_of_reach(folder / "link")  # doctest: +ELLIPSIS
    'it is a link to .../gone/x.sqlite, which does not exist'
    """
    if path.is_dir():
        return "it is a folder"
    if path.is_symlink() and not path.exists():
        return f"it is a link to {os.readlink(path)}, which does not exist"
    try:
        os.close(os.open(path, os.O_RDWR))
    except FileNotFoundError:
        pass
    except OSError as exc:
        return exc.strerror
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return None
    return f"{free // 1024} KiB free on its disk" if free < LOW_SPACE else None
