"""What can still be read of a damaged outbox, put into the new one in its order.

edge/outboxfile.py ``open_outbox`` moves an outbox that is none aside and begins a new one; every message still in
it was never sent (a gateway's confirmation deletes a message), yet a damaged page spoils the rows on it, not the rest.
The file aside is read, never written (``immutable``: no lock, no journal beside it), in id order: a range at a
time, and one id at a time past a range whose read fails, so the rows before and after a damaged page are kept and
the ids on it counted. What is read goes into the new outbox as it was queued (evidence before its incident, the
time it was first queued kept), a row the publisher would not have written (another box's topic, an incident that
is not one, evidence that is no whole JPEG) skipped and counted. A gateway takes a message sent twice as once, so
a row sent before the damage and not yet confirmed costs nothing. The walk is bounded in time (``SALVAGE_S``): a
huge damaged file must not keep the cameras down; what it did not reach stays in the file aside. The incidents it
held open go into the new one too (``open_of``), as far as they can be read: an outbox is damaged mostly by a power
cut, and the box's start ends those (edge/ledger.py).
"""

from __future__ import annotations

import contextlib
import logging
import math
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edge.publisher import Outbox, Queued, of_another_making
from xueliang import jpeg, sqlitefile, wire

log = logging.getLogger(__name__)

SALVAGE_S = 20.0  # the longest a damaged outbox is read at start (one of 50,000 rows, 190 MiB, took 3 s)
WINDOW = 256  # ids read one at a time past a range whose read failed, before a range is tried again
BATCH_BYTES = 8 << 20  # read rows held before they are written into the new outbox, at most (evidence is large)
LAST_ID = 2**63 - 1  # SQLite's largest rowid

Row = tuple[int, object, object, object]  # id, topic, payload, created as SQLite gives them


@dataclass
class Salvaged:
    """What a salvage did: rows saved into the new outbox, incidents it held open kept (``open``), ids whose read
    failed, rows skipped (the first one's reason), why it read nothing (``nothing``) or stopped before the end
    (``stopped``)."""
    saved: int = 0
    open: int = 0
    unreadable: int = 0
    skipped: int = 0
    first_skipped: str | None = None
    nothing: str | None = None
    stopped: str | None = None


def problem(box: str, topic: object, payload: object) -> str | None:
    """Why a row read back from ``box``'s outbox is not a message its publisher writes, or None.

    >>> problem("box-1", "xl/v1/box-1/gate/evidence/3f2a9c", jpeg.START + b"\\xff\\xd9")
    >>> problem("box-1", "xl/v1/box-2/gate/evidence/3f2a9c", jpeg.START + b"\\xff\\xd9")
    "topic of box 'box-2'"
    >>> problem("box-1", "xl/v1/box-1/gate/incident", b'{"schema_version": 1}')
    "incident: (message): 'incident_id' is a required property"
    >>> problem("box-1", "xl/v1/box-1/gate/evidence/3f2a9c", jpeg.START + b"\\x13" * 40)
    'evidence is no whole JPEG'
    >>> problem("box-1", "xl/v1/box-1/gate/incident", "text")
    'payload is str, not bytes'
    """
    if not isinstance(topic, str):
        return f"topic is {type(topic).__name__}, not text"
    if not isinstance(payload, bytes):
        return f"payload is {type(payload).__name__}, not bytes"
    try:
        where = wire.parse_topic(topic)
        if where.box != box:
            return f"topic of box {where.box!r}"
        if where.kind == "incident":
            wire.decode_incident(payload)
    except wire.WireError as exc:
        return f"{'incident' if topic.endswith('/incident') else 'topic'}: {exc}"
    if where.kind == "evidence" and not (len(payload) <= wire.MAX_EVIDENCE_BYTES and payload.startswith(jpeg.START)
                                         and jpeg.walk(payload)[1]):
        return "evidence is no whole JPEG"
    return None


def readable(db: sqlite3.Connection, first: int, last: int, report: Salvaged, deadline: float) -> Iterator[Row]:
    """The outbox's rows with ids ``first`` to ``last`` that can be read, in id order; each id whose read fails
    counted in ``report.unreadable`` (some may have been confirmed and deleted: a damaged page does not say). Past
    ``deadline`` (``time.monotonic()``) it ends, saying so in ``report.stopped``."""
    while first <= last:
        done = first - 1
        try:  # the cursor steps as it is read: the rows before a damaged page come before its error
            for row in db.execute("SELECT id, topic, payload, created FROM outbox WHERE id BETWEEN ? AND ? ORDER BY id",
                                  (first, last)):
                if not done < row[0] <= last:  # a page of zeros (a file cut short) read as a row of id 0
                    raise sqlite3.DatabaseError(f"row {row[0]} after row {done}")
                yield row
                done = row[0]
                if time.monotonic() > deadline:
                    report.stopped = f"out of time at id {done}"
                    return
            return
        except sqlite3.DatabaseError:
            pass
        first = min(done + WINDOW, last) + 1
        for row_id in range(done + 1, first):
            try:
                row = db.execute("SELECT id, topic, payload, created FROM outbox WHERE id = ?", (row_id,)).fetchone()
            except sqlite3.DatabaseError:
                report.unreadable += 1
                continue
            if row is not None and row[0] == row_id:
                yield row
        if time.monotonic() > deadline:
            report.stopped = f"out of time at id {first - 1}"
            return


def id_range(db: sqlite3.Connection) -> tuple[int, int]:
    """The first and last id the outbox can hold, as far as the file says: its smallest and largest (the ends of
    its tree), else the last it gave out (``sqlite_sequence``), else the ends of what SQLite allows."""
    ends = []
    for query in ("SELECT min(id) FROM outbox", "SELECT max(id) FROM outbox",
                  "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'"):
        try:
            found = db.execute(query).fetchone()
        except sqlite3.DatabaseError:
            found = None
        ends.append(found[0] if found and isinstance(found[0], int) else None)
    first, last, given = ends
    return first if first is not None else 1, last if last is not None else given if given is not None else LAST_ID


def open_of(db: sqlite3.Connection, box: str) -> list[tuple[str, bytes]]:
    """The open incidents of the damaged outbox ``db`` (``Outbox.open_incidents``) that can be read and are incidents
    of ``box``'s; none where its table cannot be read (a few rows of last messages: read whole, or not at all)."""
    try:
        rows = db.execute("SELECT incident_id, message FROM open_incident ORDER BY rowid").fetchall()
    except sqlite3.DatabaseError:
        return []
    return [(incident_id, payload) for incident_id, payload in rows
            if isinstance(payload, bytes) and problem(box, wire.incident_topic(box, "camera"), payload) is None
            and wire.decode_incident(payload)["incident_id"] == incident_id]


def salvage(aside: Path, outbox: Outbox, box: str, deadline: float) -> Salvaged:
    """The rows of the outbox ``aside`` (moved aside as damaged) that can be read and are messages ``box``'s
    publisher writes, put into ``outbox`` in their order, until ``deadline`` (``time.monotonic()``). A file of
    another making (``of_another_making``) holds nothing it is safe to send: nothing is read. ``aside`` is left as
    it is."""
    report = Salvaged()
    now = time.time()
    if aside.is_dir():
        report.nothing = "it is a folder"
        return report
    try:
        db = sqlitefile.read_only(aside, check_same_thread=False)
    except sqlite3.Error as exc:
        report.nothing = f"it cannot be opened ({exc})"
        return report
    with contextlib.closing(db):
        try:  # a file cut short is refused before its first page is read, unless the schema may be "written"
            db.execute("PRAGMA writable_schema = ON")  # (read-only and immutable, nothing can be)
            other = of_another_making(db)
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            report.nothing = f"its tables cannot be read ({exc})"
            return report
        if other is not None:
            report.nothing = f"of another making ({other}), nothing in it safe to send"
            return report
        if "outbox" not in tables:
            report.nothing = "it has no table outbox"
            return report
        batch: list[Queued] = []
        held = 0
        for _, topic, payload, created in readable(db, *id_range(db), report, deadline):
            why = problem(box, topic, payload)
            if why is not None:
                report.skipped += 1
                report.first_skipped = report.first_skipped or why
                continue
            real = isinstance(created, float | int) and math.isfinite(created)
            batch.append((topic, payload, float(created) if real else now, None, None))  # its boot's clock unknown
            held += len(payload)
            if held >= BATCH_BYTES:
                if not _write(outbox, batch, report):
                    return report
                batch, held = [], 0
        if not _write(outbox, batch, report):
            return report
        try:
            outbox.restore([], opened=(opened := open_of(db, box)))
        except sqlite3.Error as exc:
            report.stopped = f"the new outbox cannot take its open incidents ({exc})"
            return report
        report.open = len(opened)
    return report


def salvage_into(outbox: Outbox, aside: Path, box: str) -> None:
    """What can be read of the outbox moved ``aside`` put into the new ``outbox``, and said at ERROR (once, not
    per row): rows saved, ids that could not be read, rows skipped, open incidents kept."""
    started = time.monotonic()
    try:
        done = salvage(aside, outbox, box, started + SALVAGE_S)
    except Exception:  # a fault of its own must not keep the box down: what it did not save stays aside
        log.exception("outbox %s: salvage failed", aside)
        return
    if done.nothing:
        log.error("outbox %s: nothing salvaged: %s", aside, done.nothing)
        return
    log.error("outbox %s: %d message(s) salvaged into the new one in %.1f s, in order; %d id(s) could not be read%s%s; "
              "the file is kept as it was%s", aside, done.saved, time.monotonic() - started, done.unreadable,
              f", {done.skipped} row(s) skipped as no message of this box's (the first: {done.first_skipped})"
              if done.skipped else "", f"; {done.stopped}: the rest stays in it" if done.stopped else "",
              f"; {done.open} incident(s) it held open kept, ended as the box starts" if done.open else "")


def _write(outbox: Outbox, batch: list[Queued], report: Salvaged) -> bool:
    """``batch`` into the new outbox; False, saying why in ``report.stopped``, where it cannot take it (a full disk)."""
    try:
        outbox.restore(batch)
    except sqlite3.Error as exc:
        report.stopped = f"the new outbox cannot take more ({exc})"
        return False
    report.saved += len(batch)
    return True
