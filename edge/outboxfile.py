"""The box's outbox file opened at start, or kept in memory where its disk has no room, and written into its file
once there is room.

``open_outbox`` gives the box its outbox (``outbox_file``): a file that is not an outbox is moved aside, named
with the time, and a new one begun, what can be read of it put into the new one (edge/salvage.py); a file out of
reach is a ConfigError saying so, left where it lies; a full disk (``NoRoom``) gives an outbox in memory, which
``keep_outbox`` writes into the file at a heartbeat once its disk has room (``pending_words`` counts what waits
in both for the start-up line). The outbox itself and its sending are edge/publisher.py's; the box process that
calls these is edge/box.py's.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import sqlite3
import time
from datetime import datetime
from pathlib import Path

from edge.config import ConfigError, EdgeConfig
from edge.ledger import adopt_file, end_left_open, old_file
from edge.publisher import NotAnOutbox, Outbox, Publisher
from edge.salvage import salvage_into
from xueliang import sqlitefile
from xueliang.wire import CITY_TZ

log = logging.getLogger(__name__)


class NoRoom(Exception):
    """The outbox's disk has no room for it: (its path, what SQLite or the system said)."""


def open_outbox(config: EdgeConfig) -> Outbox:
    """The box's outbox (``outbox_file``), or where its disk has no room for it, one kept in memory, said once at
    ERROR: the box runs, its incidents are sent, and ``keep_outbox`` writes them into the file once there is room,
    as a full disk's are at run time (it stopped the box, and every incident its cameras saw until someone freed
    room was lost)."""
    try:
        return outbox_file(config)
    except NoRoom as exc:
        path, why = exc.args
        log.error("outbox %s cannot be written (%s): its messages are held in memory and sent, and written to it "
                  "once its disk has room; free room on it", path, why)
        return Outbox.in_memory(why)


def keep_outbox(config: EdgeConfig, publisher: Publisher) -> None:
    """An outbox kept in memory written into its file, opened or made, once its disk has room
    (``Publisher.move_to``); tried at each heartbeat. Still no room: nothing said (said at start, and the heartbeat
    shows it); anything else said once. The incidents its file holds open (a box stopped short left them so) are
    ended then, as at a start with room (edge/ledger.py)."""
    held = publisher.outbox
    if held.path is not None:
        return
    try:
        outbox = outbox_file(config)
        try:
            adopt_file(outbox, old_file(config))
            left_open = outbox.open_incidents()  # read before those the memory holds open join them
            moved = publisher.move_to(outbox)
        except sqlite3.Error as exc:  # room for the file, not for all that the memory holds
            outbox.close()
            if sqlitefile.no_room(exc, outbox.path):
                raise NoRoom(outbox.path, str(exc)) from None
            raise ConfigError(f"outbox {outbox.path}: cannot be written ({exc})") from None
    except NoRoom:
        return
    except ConfigError as exc:
        if str(exc) != held.unwritable:
            log.error("%s (its messages are still held in memory)", exc)
            held.unwritable = str(exc)
        return
    log.info("outbox %s written again: %d message(s) held in memory written to it", outbox.path, moved)
    end_left_open(config.box, publisher, left_open, time.monotonic())


def outbox_path(config: EdgeConfig) -> Path:
    return config.data_dir / f"{config.box}.outbox.sqlite"


def pending_words(config: EdgeConfig, outbox: Outbox) -> str:
    """How many messages wait in the box's ``outbox``, in words, for the start-up line. Kept in memory (its disk full
    at start), those its file holds are counted too, read without writing (``immutable``: no lock, no journal), or
    said not to be where that cannot be done: a write-ahead log beside it (a box stopped short) holds what such a read
    does not see. The line said 0 for a file that held messages, counting the memory alone."""
    said = f"{outbox.pending()} message(s) pending in the outbox"
    if outbox.path is not None:
        return said
    path = outbox_path(config)
    wal = path.with_name(path.name + "-wal")
    try:
        if wal.exists() and wal.stat().st_size:
            return f"{said} held in memory; those in its file {path} not counted (a write-ahead log is beside it)"
        held = 0
        if path.exists() and path.stat().st_size:  # empty: the start's own try on a full disk made it, and no table
            with contextlib.closing(sqlitefile.read_only(path)) as db:
                held = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    except (OSError, sqlite3.Error) as exc:
        return f"{said} held in memory; those in its file {path} not counted ({exc})"
    return f"{said} held in memory and {held} in its file {path}, sent once its disk has room"


def outbox_file(config: EdgeConfig) -> Outbox:
    """The box's outbox file; ConfigError naming ``data_dir`` where it cannot be kept there, NoRoom where its disk has
    no room. A file that is not an outbox (damaged on disk, a folder, a table of another making, another application's
    file) is moved aside, named with the time (``.damaged-TIME``, or ``.foreign-TIME`` for another application's;
    Beijing's, ``20261207T124700+0800``), and a new one begun, every camera stayed down behind it (another
    application's had the outbox's tables made beside its own); what can be read of it is put into the new one
    (``salvage_into``). A file out of reach (read-only, not to be opened, a link to nothing) is ConfigError
    saying so and left where it is: moved aside, the incidents it held were never sent."""
    path = outbox_path(config)
    try:
        try:
            return Outbox(path)
        except sqlite3.DatabaseError as exc:
            if not (isinstance(exc, NotAnOutbox) or sqlitefile.damaged(exc) or path.is_dir()):
                raise
            why = sqlitefile.out_of_reach(path)
            kind = exc.kind if isinstance(exc, NotAnOutbox) else "damaged"
            # Beijing time with its offset, as the log line saying so: the machine's zone named it 13 h off in New York
            aside = path.with_name(f"{path.name}.{kind}-{datetime.now(CITY_TZ):%Y%m%dT%H%M%S%z}")
            path.rename(aside)
            for extra in ("-wal", "-shm"):
                path.with_name(path.name + extra).unlink(missing_ok=True)
            log.error("outbox %s could not be read (%s%s): moved aside to %s, a new one begun", path, exc,
                      f"; {why}" if why else "", aside)
            outbox = Outbox(path)
            salvage_into(outbox, aside, config.box)
            return outbox
    except sqlite3.DatabaseError as exc:
        why = sqlitefile.out_of_reach(path)
        if sqlitefile.no_room(exc, path):
            raise NoRoom(path, f"{exc}{f'; {why}' if why else ''}") from None
        raise ConfigError(f"outbox {path}: cannot be used ({exc}{f'; {why}' if why else ''}): let the box's user read "
                          "and write it and its folder, with room on its disk, and start the box again (it was left "
                          "as it is: it may hold incidents not yet sent)") from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise NoRoom(path, exc.strerror) from None
        raise ConfigError(f"data_dir {config.data_dir}: cannot keep the outbox there ({exc.strerror or exc})") from None
