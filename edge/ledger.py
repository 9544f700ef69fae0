"""The box's open incidents, kept on disk so that a box stopped short (killed, its power cut) ends them at its
next start.

A box stopped with incidents open never sent their end: at the gateway each stayed "still seen" for good, so its
case never closed on the camera's re-check (a later incident at the place ended ``left``, and the case waited on
the one the box forgot), and an incident of a zone renamed or a camera removed meanwhile had no one left to end
it. ``OpenIncidents`` holds the last message sent of each incident not yet ended, in one JSON file beside the
outbox (``{box}.open-incidents.json``), replaced whole at each change (an incident's start, update and end: a few
an hour a camera). At the next start ``ends`` makes each one's end, ``box_stopped``: ``ended_at`` is the last time
the box is known to have seen it (that message's ``observed_at``), its ``seq`` the next. A box stopped in good
order ends its incidents itself (``CameraPipeline.stop``), and the file is then empty.

>>> import tempfile
>>> ledger = OpenIncidents(Path(tempfile.mkdtemp()) / "b.open-incidents.json")
>>> ledger.note({"incident_id": "i-1", "seq": 1, "state": "start"})
>>> list(OpenIncidents(ledger.path).held)  # what a box killed now ends at its next start
['i-1']
>>> ledger.note({"incident_id": "i-1", "seq": 2, "state": "end"})
>>> OpenIncidents(ledger.path).ends(0.0)
[]
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from xueliang import wire

log = logging.getLogger(__name__)


class OpenIncidents:
    """The last message sent of each incident the box has not ended, as its file holds them (``path``)."""

    def __init__(self, path: Path):
        self.path = path
        self.held: dict[str, dict] = {}
        self._said: str | None = None  # the last write error said, said again only when it changes
        try:
            text = path.read_text("utf-8")
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("%s: open incidents not read (%s): those open when the box last stopped are not ended",
                        path, exc)
            return
        try:
            held = json.loads(text)
            self.held = {m["incident_id"]: m for m in held
                         if isinstance(m, dict) and isinstance(m.get("incident_id"), str)}
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            log.warning("%s: open incidents not read, not a list of messages (%s): those open when the box last "
                        "stopped are not ended", path, exc)

    def note(self, message: dict) -> None:
        """A message sent (after its outbox took it): its incident is open until its end."""
        if message["state"] == "end":
            if self.held.pop(message["incident_id"], None) is None:
                return
        else:
            self.held[message["incident_id"]] = message
        self._write()

    def ends(self, now: float) -> list[dict]:
        """The end of every incident the file held (``now``: the wall clock, the end's ``observed_at``), forgotten
        once made: the caller sends them."""
        out = []
        for last in self.held.values():
            end = dict(last, seq=last["seq"] + 1, state="end", observed_at=wire.iso(max(
                now, wire.parse_time(last["observed_at"]))), ended_at=last["observed_at"],
                end_reason="box_stopped", evidence=None)
            try:
                out.append(wire.validate_incident(end))
            except wire.WireError as exc:  # a file edited by hand, or of another release: said, not sent
                log.warning("%s: open incident %r not ended: %s", self.path, last["incident_id"], exc)
        self.held = {}
        self._write()
        return out

    def _write(self) -> None:
        """The file replaced whole (written beside it, then renamed: a box killed mid-write keeps the last one)."""
        part = self.path.with_name(self.path.name + ".part")
        try:
            with open(part, "w", encoding="utf-8") as f:
                json.dump(list(self.held.values()), f, ensure_ascii=False)
                f.flush()
                os.fsync(f.fileno())
            os.replace(part, self.path)
            self._said = None
        except OSError as exc:  # a full disk: kept in memory, written at the next change
            if str(exc) != self._said:
                log.warning("%s: open incidents not written (%s): a box stopped short now would not end them at its "
                            "next start", self.path, exc)
                self._said = str(exc)
