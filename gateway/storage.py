"""Storage: SQLite (WAL) by default, PostgreSQL by URL, through SQLAlchemy Core.

One writer per table: the ingest writes incidents, cases, evidence and dead letters;
the API only reads.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import (
    Column, Float, Integer, LargeBinary, MetaData, String, Table, Text, create_engine, event,
    func, insert, select, update,
)
from sqlalchemy.engine import Engine

metadata = MetaData()

cases = Table(
    "cases", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", String(128), nullable=False, unique=True),
    Column("type", String(40), nullable=False),
    Column("category_code", String(32), nullable=False),
    Column("category_name", String(128), nullable=False),
    Column("department", String(64), nullable=False, index=True),
    Column("grid", String(64), nullable=False, index=True),
    Column("box", String(64), nullable=False),
    Column("camera", String(64), nullable=False),
    Column("zone", String(64), nullable=False),
    Column("lat", Float), Column("lon", Float),
    Column("state", String(24), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("deadline", Float, nullable=False),
    Column("reported_at", Float, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("bbox", Text, nullable=False),
    Column("evidence_sha256", String(64)),
    Column("last_seq", Integer, nullable=False),
    Column("ended_at", Float), Column("end_reason", String(24)), Column("end_evidence_sha256", String(64)),
)

incident_events = Table(
    "incident_events", metadata,
    Column("incident_id", String(128), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("state", String(8), nullable=False),
    Column("received_at", Float, nullable=False),
    Column("payload", Text, nullable=False),
)

evidence = Table(
    "evidence", metadata,
    Column("sha256", String(64), primary_key=True),
    Column("incident_id", String(128), nullable=False, index=True),
    Column("box", String(64), nullable=False),
    Column("camera", String(64), nullable=False),
    Column("received_at", Float, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

dead_letters = Table(
    "dead_letters", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", Float, nullable=False),
    Column("topic", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
)

case_log = Table(
    "case_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, nullable=False, index=True),
    Column("at", Float, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("note", Text),
)

DEAD_LETTER_KEEP_BYTES = 65_536


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
    metadata.create_all(engine)
    return engine


class Store:
    def __init__(self, url: str):
        self.engine = make_engine(url)

    # --- writes (ingest only) ---
    def dead_letter(self, topic: str, reason: str, payload: bytes, now: float) -> None:
        with self.engine.begin() as db:
            db.execute(insert(dead_letters).values(received_at=now, topic=topic[:512], reason=reason[:1000],
                                                   payload=bytes(payload[:DEAD_LETTER_KEEP_BYTES])))

    def add_evidence(self, sha256: str, data: bytes, incident_id: str, box: str, camera: str, now: float) -> bool:
        with self.engine.begin() as db:
            if db.execute(select(evidence.c.sha256).where(evidence.c.sha256 == sha256)).first():
                return False
            db.execute(insert(evidence).values(sha256=sha256, data=data, incident_id=incident_id, box=box,
                                               camera=camera, received_at=now))
            return True

    def record_incident(self, message: dict, now: float, open_case) -> tuple[int | None, bool]:
        """Store one incident event and open or update its case, all in one transaction.

        ``open_case(message) -> row | None`` builds a new case's row (None: no case for it).
        Returns (case id, created); (None, False) for an event already seen (idempotent on
        incident_id and seq).
        """
        with self.engine.begin() as db:
            seen = db.execute(select(incident_events.c.seq).where(
                incident_events.c.incident_id == message["incident_id"], incident_events.c.seq == message["seq"])).first()
            if seen:
                return None, False
            db.execute(insert(incident_events).values(
                incident_id=message["incident_id"], seq=message["seq"], state=message["state"], received_at=now,
                payload=json.dumps(message, ensure_ascii=False)))
            row = db.execute(select(cases.c.id, cases.c.last_seq).where(
                cases.c.incident_id == message["incident_id"])).first()
            if row is None:
                values = open_case(message)
                if values is None:
                    return None, False
                case_id = db.execute(insert(cases).values(**values)).inserted_primary_key[0]
                db.execute(insert(case_log).values(case_id=case_id, at=now, actor=f"box:{message['box']}",
                                                   action="created", note=f"{message['type']} in zone {message['zone']}"))
                db.execute(insert(case_log).values(case_id=case_id, at=now, actor="gateway", action="dispatched",
                                                   note=values["department"]))
                created = True
            else:
                case_id, created = row.id, False
            return case_id, created

    def update_case(self, case_id: int, values: dict, seq: int, now: float, actor: str, action: str | None) -> None:
        """Apply an incident's later event to its case, unless a newer one was applied already."""
        with self.engine.begin() as db:
            db.execute(update(cases).where(cases.c.id == case_id, cases.c.last_seq < seq).values(**values))
            if action:
                db.execute(insert(case_log).values(case_id=case_id, at=now, actor=actor, action=action))

    # --- reads (API) ---
    def list_cases(self, state: str | None = None, grid: str | None = None, department: str | None = None,
                   limit: int = 100, offset: int = 0) -> list[dict]:
        q = select(cases).order_by(cases.c.id.desc()).limit(limit).offset(offset)
        for col, value in (("state", state), ("grid", grid), ("department", department)):
            if value is not None:
                q = q.where(cases.c[col] == value)
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(q)]

    def get_case(self, case_id: int) -> dict | None:
        with self.engine.connect() as db:
            row = db.execute(select(cases).where(cases.c.id == case_id)).first()
            if row is None:
                return None
            case = dict(row._mapping)
            case["timeline"] = [dict(r._mapping) for r in db.execute(
                select(case_log.c.at, case_log.c.actor, case_log.c.action, case_log.c.note)
                .where(case_log.c.case_id == case_id).order_by(case_log.c.id))]
            return case

    def evidence_bytes(self, sha256: str) -> bytes | None:
        with self.engine.connect() as db:
            row = db.execute(select(evidence.c.data).where(evidence.c.sha256 == sha256)).first()
            return row.data if row else None

    def list_dead_letters(self, limit: int = 100) -> list[dict]:
        with self.engine.connect() as db:
            rows = db.execute(select(dead_letters.c.id, dead_letters.c.received_at, dead_letters.c.topic,
                                     dead_letters.c.reason, func.length(dead_letters.c.payload).label("bytes"))
                              .order_by(dead_letters.c.id.desc()).limit(limit))
            return [dict(r._mapping) for r in rows]

    def count(self, table: str) -> int:
        with self.engine.connect() as db:
            return db.execute(select(func.count()).select_from(metadata.tables[table])).scalar_one()
