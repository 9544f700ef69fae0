"""The incidents a box stopped short (killed, its power cut) left open, ended at its next start.

A box stopped with incidents open never sent their end: at the gateway each stayed "still seen" for good, so its
case never closed on the camera's re-check (a later incident at the place ended ``left``, and the case waited on
the one the box forgot), and an incident of a zone renamed or a camera removed meanwhile had no one left to end
it. The outbox keeps the last message it took of each incident not yet ended, in its own database and in the same
transaction as the message (edge/publisher.py ``Outbox.put``), so the two never disagree: a JSON file beside it,
written after it, fell behind it on a full disk, and a box killed then ended none of the incidents its outbox had
sent (their cases waited for good), or ended one with the seq of an update the gateway had (set aside). At the
next start ``end_left_open`` sends each one's end, ``box_stopped`` (``end_of``). A box stopped in good order ends
its incidents itself (``CameraPipeline.stop``), and none are left open.

A box upgraded from a release that kept them in ``{box}.open-incidents.json`` takes that file into its outbox once,
then removes it (``adopt_file``): those open when it was stopped still end.

>>> last = {"schema_version": 1, "incident_id": "i-1", "seq": 2, "state": "update", "type": "illegal_parking",
...         "box": "b", "camera": "c", "zone": "z", "grid": "G-1", "location": None,
...         "started_at": "2026-12-06T08:00:00.000Z", "observed_at": "2026-12-06T08:05:00.000Z", "ended_at": None,
...         "end_reason": None, "confidence": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2], "track_id": 3,
...         "attributes": {}, "evidence": None, "model": {"name": "m", "version": "1"}}
>>> end = end_of(last, now=wire.parse_time("2026-12-06T09:00:00Z"))
>>> end["seq"], end["state"], end["end_reason"], end["ended_at"], end["observed_at"]
(3, 'end', 'box_stopped', '2026-12-06T08:05:00.000Z', '2026-12-06T09:00:00.000Z')
>>> end_of(last, now=None)["observed_at"]  # that clock's now not known: as last seen
'2026-12-06T08:05:00.000Z'
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from pathlib import Path

from edge.config import EdgeConfig
from edge.publisher import BOOT_ID, OpenIncident, Outbox, Publisher, QueuedAt
from xueliang import wire

log = logging.getLogger(__name__)


def end_of(last: dict, now: float | None) -> dict:
    """The end (``box_stopped``) of an incident whose last message sent was ``last``: ``ended_at`` the last time the
    box is known to have seen it (``last``'s ``observed_at``), its ``seq`` the next, ``observed_at`` ``now`` on the
    clock ``last`` was stamped on (``ended_at`` where that reads earlier, or where no one can tell it: None). WireError
    where the wire refuses it."""
    seen = wire.parse_time(last["observed_at"])
    return wire.validate_incident(dict(
        last, seq=last["seq"] + 1, state="end", observed_at=wire.iso(seen if now is None else max(now, seen)),
        ended_at=last["observed_at"], end_reason="box_stopped", evidence=None))


def ended(record: OpenIncident, mono: float, this_boot: str = BOOT_ID) -> tuple[dict, QueuedAt]:
    """The end of the incident an earlier start left open (``record``: ``Outbox.open_incidents``'s), now (``mono``: the
    monotonic clock), and when it is kept as queued: on the clock its last message was stamped on, that start's. So
    the outbox re-stamps it as it does whatever that start queued (edge/publisher.py ``restamped``): put right by that
    boot's known time where a gateway holds it as ahead, or on that boot's boot clock as of a time unknown. (Stamped
    with this start's time, it was re-stamped by this boot's offset, and that start's times moved with it: a garbage
    RTC's years.) Of this boot (a start killed and the machine not booted again), ``now`` is that start's clock read on
    the monotonic clock since; of another, or not known, its end is as last seen, queued when that message was.
    WireError where the wire refuses it.

    >>> m = {"schema_version": 1, "incident_id": "i-1", "seq": 1, "state": "start", "type": "illegal_parking",
    ...      "box": "b", "camera": "c", "zone": "z", "grid": "G-1", "location": None,
    ...      "started_at": "2026-12-06T08:00:00.000Z", "observed_at": "2026-12-06T08:05:00.000Z", "ended_at": None,
    ...      "end_reason": None, "confidence": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2], "track_id": None,
    ...      "attributes": {}, "evidence": None, "model": {"name": "m", "version": "1"}}
    >>> last, seen = wire.encode_incident(m), wire.parse_time(m["observed_at"])  # queued a second after it was seen
    >>> end, queued = ended(("i-1", last, seen + 1.0, "b1", 40.0), mono=100.0, this_boot="b1")
    >>> end["observed_at"], wire.iso(queued[0]), queued[1:]
    ('2026-12-06T08:06:01.000Z', '2026-12-06T08:06:01.000Z', ('b1', 100.0))
    >>> end, queued = ended(("i-1", last, seen + 1.0, "b0", 40.0), mono=100.0, this_boot="b1")
    >>> end["observed_at"], wire.iso(queued[0]), queued[1:]
    ('2026-12-06T08:05:00.000Z', '2026-12-06T08:05:01.000Z', ('b0', 40.0))
    """
    _, payload, created, boot, at = record
    last = wire.decode_incident(payload)
    if boot == this_boot and at is not None and created is not None:
        now = created + mono - at
        return end_of(last, now), (now, boot, mono)
    return end_of(last, None), (wire.last_seen(last) if created is None else created, boot, at)


def end_left_open(box: str, publisher: Publisher, held: list[OpenIncident], mono: float) -> None:
    """Each incident ``held`` (``Outbox.open_incidents``, read before this start made any) ended (``ended``, ``mono``
    the monotonic clock now) and sent as any message is: the outbox takes the end and closes the incident in one
    write. One the wire refuses (written by another release) is said and closed, never sent. (At the wall clock's
    time, a garbage RTC's 2100 had every one refused and forgotten, its case "still seen" for good.)"""
    count = 0
    for record in held:
        try:
            end, queued = ended(record, mono)
        except wire.WireError as exc:
            log.warning("box %s: open incident %r not ended (%s): forgotten", box, record[0], exc)
            with contextlib.suppress(sqlite3.Error):  # a full disk: said again at the next start
                publisher.outbox.restore([], opened=[(record[0], None)])
            continue
        publisher.send([(wire.incident_topic(end["box"], end["camera"]), wire.encode_incident(end))], queued)
        count += 1
    if count:
        log.warning("box %s: %d incident(s) open when it last stopped (killed, or its power cut) ended: box_stopped",
                    box, count)


def old_file(config: EdgeConfig) -> Path:
    """Where a release before this one kept the box's open incidents."""
    return config.data_dir / f"{config.box}.open-incidents.json"


def adopt_file(outbox: Outbox, path: Path) -> None:
    """The open incidents an older release kept in ``path`` (a JSON list of the last message of each) taken into
    ``outbox``, then the file removed. A file that cannot be read, or a message in it the wire refuses, is said and
    not ended (as that release did); where the outbox cannot take them (a full disk), the file stays for the next
    start."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("%s: open incidents not read (%s): those open when the box last stopped are not ended", path, exc)
        text = "[]"
    try:
        held = json.loads(text)
        held = [m for m in held if isinstance(m, dict) and isinstance(m.get("incident_id"), str)]
    except (ValueError, TypeError, RecursionError) as exc:
        log.warning("%s: open incidents not read, not a list of messages (%s): those open when the box last stopped "
                    "are not ended", path, exc)
        held = []
    opened = []
    for m in held:
        try:
            opened.append((m["incident_id"], wire.encode_incident(m)))
        except wire.WireError as exc:
            log.warning("%s: open incident %r not ended: %s", path, m["incident_id"], exc)
    try:
        outbox.restore([], opened=opened)
    except sqlite3.Error as exc:  # a full disk
        log.warning("%s: open incidents not taken into the outbox (%s): tried again at the next start", path, exc)
        return
    with contextlib.suppress(OSError):  # what that release left of a write cut short
        path.with_name(path.name + ".part").unlink(missing_ok=True)
    try:
        path.unlink()
    except OSError as exc:
        log.warning("%s: not removed (%s): the incidents it holds are ended again at the next start", path, exc)
