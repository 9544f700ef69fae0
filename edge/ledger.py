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
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from pathlib import Path

from edge.config import EdgeConfig
from edge.publisher import Outbox, Publisher
from xueliang import wire

log = logging.getLogger(__name__)


def end_of(last: dict, now: float) -> dict:
    """The end (``box_stopped``) of an incident whose last message sent was ``last``: ``ended_at`` the last time the
    box is known to have seen it (``last``'s ``observed_at``), its ``seq`` the next, ``observed_at`` ``now`` (the
    time on the wire, edge/publisher.py ``Publisher.now``; ``ended_at`` where that reads earlier, as the boot clock
    does). WireError where the wire refuses it."""
    return wire.validate_incident(dict(
        last, seq=last["seq"] + 1, state="end", observed_at=wire.iso(max(now, wire.parse_time(last["observed_at"]))),
        ended_at=last["observed_at"], end_reason="box_stopped", evidence=None))


def end_left_open(box: str, publisher: Publisher, held: list[tuple[str, bytes]], now: float) -> None:
    """Each incident ``held`` (``Outbox.open_incidents``, read before this start made any) ended at ``now`` (the time
    on the wire: ``Publisher.now``) and sent as any message is: the outbox takes the end and closes the incident in one
    write. One the wire refuses (written by another release) is said and closed, never sent. (At the wall clock's
    time, a garbage RTC's 2100 had every one refused and forgotten, its case "still seen" for good.)"""
    ended = 0
    for incident_id, payload in held:
        try:
            end = end_of(wire.decode_incident(payload), now)
        except wire.WireError as exc:
            log.warning("box %s: open incident %r not ended (%s): forgotten", box, incident_id, exc)
            with contextlib.suppress(sqlite3.Error):  # a full disk: said again at the next start
                publisher.outbox.restore([], opened=[(incident_id, None)])
            continue
        publisher.send([(wire.incident_topic(end["box"], end["camera"]), wire.encode_incident(end))])
        ended += 1
    if ended:
        log.warning("box %s: %d incident(s) open when it last stopped (killed, or its power cut) ended: box_stopped",
                    box, ended)


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
