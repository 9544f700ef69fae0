"""Ingest: one MQTT message in, a case created or updated, or a dead letter with the reason.

``Ingest.handle(topic, payload)`` never raises for bad input; the process keeps running.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError

from gateway.cases import incident_update, new_case
from gateway.config import Tables
from gateway.storage import Store
from xueliang import wire

log = logging.getLogger(__name__)


class Ingest:
    def __init__(self, store: Store, tables: Tables, clock: Callable[[], float] = time.time,
                 on_case: Callable[[int], None] | None = None):
        self.store, self.tables, self.clock = store, tables, clock
        self.on_case = on_case or (lambda case_id: None)

    def handle(self, topic: str, payload: bytes) -> str:
        """Process one message; returns what happened (for logs and tests)."""
        now = self.clock()
        try:
            where = wire.parse_topic(topic)
            if where.kind == "evidence":
                return self._evidence(where, payload, now)
            return self._incident(where, payload, now)
        except wire.WireError as exc:
            return self._dead(topic, str(exc), payload, now)
        except Exception as exc:  # a bug or a database hiccup: keep the message, keep running
            log.exception("ingest failed on %s", topic)
            return self._dead(topic, f"internal error: {type(exc).__name__}: {exc}", payload, now)

    def _dead(self, topic: str, reason: str, payload: bytes, now: float) -> str:
        log.warning("dead letter on %s: %s", topic, reason)
        self.store.dead_letter(topic, reason, payload, now)
        return "dead_letter"

    def _evidence(self, where: wire.Topic, payload: bytes, now: float) -> str:
        if not payload or len(payload) > wire.MAX_EVIDENCE_BYTES:
            raise wire.WireError(f"evidence of {len(payload)} bytes; must be 1..{wire.MAX_EVIDENCE_BYTES}")
        if not payload.startswith(b"\xff\xd8"):
            raise wire.WireError("evidence is not a JPEG")
        sha = hashlib.sha256(payload).hexdigest()
        self.store.add_evidence(sha, payload, where.incident_id or "", where.box, where.camera, now)
        return "evidence"

    def _incident(self, where: wire.Topic, payload: bytes, now: float) -> str:
        message = wire.decode_incident(payload)
        if (message["box"], message["camera"]) != (where.box, where.camera):
            raise wire.WireError(f"payload says box {message['box']!r} camera {message['camera']!r} "
                                 f"but was published on {where.box!r}/{where.camera!r}")
        category = self.tables.category(message["type"])
        if category is None:
            raise wire.WireError(f"type {message['type']!r} has no category in the city's tables")

        def open_case(m: dict) -> dict:
            return new_case(m, category, self.tables, now)

        for attempt in range(2):  # two gateways may open the same case at once: the loser retries as an update
            try:
                case_id, created = self.store.record_incident(message, now, open_case)
                break
            except IntegrityError:
                if attempt:
                    raise
        if case_id is None:
            return "duplicate"
        action = "recheck_evidence" if message["state"] == "end" else None
        if not created:
            self.store.update_case(case_id, incident_update(message), message["seq"], now,
                                   f"box:{message['box']}", action)
        if created:
            log.info("case %s opened for incident %s (%s, grid %s)", case_id, message["incident_id"],
                     category.name, message["grid"])
            self.on_case(case_id)
            return "case_created"
        return "case_updated"
