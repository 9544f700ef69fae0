"""What ingest reads and writes of the database for each message, in its batch's transaction: an incident's events
(``record_event``, ``first_event``), the cases it may join or reopen (``candidates``, ``rejected_near``), the place
locks taken before it looks for them (``lock_places``), the cases its camera opened within the hour
(``cases_opened``), and what is kept of its evidence (``named_by_event``, ``evidence_count``, ``unnamed_evidence``).
``gateway.ingest`` decides what to do with them; the writes a case's change shares with people's actions
(``open_case``, ``log``, ``update_case``), the evidence kept and the dead letters are ``gateway.storage``'s.

Each statement is compiled once per dialect and run on the driver's own cursor (``Prepared``): SQLAlchemy's own work
for each execution cost four times what SQLite spent on the statement, and in a batch's pipeline mode (psycopg's,
``pipelined``) its result had no rows to give. ``storage`` and ``boxes`` run theirs on the ingest path with it too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math

from sqlalchemy import bindparam, func, literal_column, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from gateway import numbering
from gateway.schema import case_incidents, case_log, case_photos, cases, evidence, incident_events
from gateway.workflow import OPEN_STATES, Action, CaseState


class Prepared:
    """A statement compiled once per dialect and run on the driver's own cursor, for the ingest path.

    Measured on that path: SQLAlchemy's per-execution work (cache key, parameter processing, result
    set-up) cost four times what SQLite itself spent on the statement. The parameters are plain
    values (str, int, float, None), which both drivers take as they are; the compiled text uses
    named parameters (``:name`` for SQLite, ``%(name)s`` for psycopg); values fixed in the
    statement (a LIMIT) are bound with every run.
    """

    def __init__(self, statement):
        self.statement = statement
        self._compiled: dict[str, tuple[str, dict]] = {}

    def compiled(self, dialect) -> tuple[str, dict]:
        if dialect.name not in self._compiled:
            named = type(dialect)(paramstyle="named") if dialect.name == "sqlite" else dialect
            compiled = self.statement.compile(dialect=named)
            fixed = {k: v for k, v in compiled.params.items() if v is not None}
            self._compiled[dialect.name] = str(compiled), fixed
        return self._compiled[dialect.name]

    def run(self, db: Connection, params: dict | list[dict]):
        sql, fixed = self.compiled(db.dialect)
        cursor = db.connection.dbapi_connection.cursor()
        if isinstance(params, list):
            cursor.executemany(sql, [{**fixed, **p} for p in params] if fixed else params)
        else:
            cursor.execute(sql, {**fixed, **params} if fixed else params)
        return cursor

    def first(self, db: Connection, params: dict):
        return self.run(db, params).fetchone()

    def dicts(self, db: Connection, params: dict) -> list[dict]:
        cursor = self.run(db, params)
        rows = cursor.fetchall()  # first: in psycopg's pipeline mode the description comes with the rows
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in rows]


_OPEN_OR_SINCE = or_(cases.c.state.in_([literal_column(f"'{s.value}'") for s in sorted(OPEN_STATES)]),
                     cases.c.closed_at >= bindparam("since"))
_CASE_OF_INCIDENT = Prepared(select(cases).join(case_incidents, case_incidents.c.case_id == cases.c.id)
                             .where(case_incidents.c.incident_id == bindparam("incident_id")))
_NEAR = Prepared(select(cases).where(
    cases.c.type == bindparam("type"), cases.c.grid == bindparam("grid"), _OPEN_OR_SINCE,
    or_(cases.c.lat.is_(None), cases.c.lat.between(bindparam("lat0"), bindparam("lat1"))),
    or_(cases.c.lon.is_(None), cases.c.lon.between(bindparam("lon0"), bindparam("lon1")))
).order_by(cases.c.id.desc()).limit(200))
_SAME_ZONE = Prepared(select(cases).where(
    cases.c.type == bindparam("type"), cases.c.grid == bindparam("grid"), _OPEN_OR_SINCE,
    cases.c.box == bindparam("box"), cases.c.camera == bindparam("camera"), cases.c.zone == bindparam("zone")
).order_by(cases.c.id.desc()).limit(200))
DIALECT_INSERT = {"sqlite": sqlite_insert, "postgresql": pg_insert}  # each with its own ON CONFLICT
_NEW_EVENT = {name: Prepared(dialect(incident_events).on_conflict_do_nothing().returning(incident_events.c.seq))
              for name, dialect in DIALECT_INSERT.items()}


def pipelined(db: Connection):
    """On PostgreSQL, psycopg's pipeline mode: statements whose results nobody reads (the links
    and log rows of a new case) go out without waiting for the server's answer."""
    if db.dialect.name == "postgresql":
        return db.connection.dbapi_connection.pipeline()
    return contextlib.nullcontext()


PLACE_LOCKS = 7147  # the advisory-lock space of ingest's find-or-create (migrate's 7146 is a one-key lock: another space)
_LINKED = "SELECT incident_id FROM case_incidents WHERE incident_id = ANY(%(ids)s)"
_TAKE_PLACE_LOCKS = (  # in the order of the keys: a subquery with ORDER BY is not flattened into its caller
    "SELECT CASE WHEN x THEN pg_advisory_xact_lock(%(space)s, k)::text ELSE pg_advisory_xact_lock_shared(%(space)s, k)::text END "
    "FROM (SELECT k, x FROM unnest(%(keys)s::integer[], %(exclusive)s::boolean[]) AS t(k, x) ORDER BY k) AS s")


def lock_places(db: Connection, incidents: list[tuple[str, list[tuple[str, bool]]]]) -> None:
    """Take the place locks (``gateway.cases.place_locks``) of these (incident id, locks) until the
    transaction ends, and each incident's own, but for incidents that have a case already (their events find it, not
    a place, and their first event is committed).

    Two gateways on PostgreSQL, under READ COMMITTED, each found no case near an incident and each
    opened one (51 of 300 places had two). And one incident id from two cameras (or boxes) at once: each read no first
    event, the check that fixes its camera and box (``gateway.cases.not_its_incident``), and the event whose check
    passed before the other's start committed joined the case that start opened. Advisory locks, all at once in the
    order of their keys, before the transaction writes anything: two transactions never wait for each other in a
    circle. On SQLite, its one write lock (``numbering.write_lock``), taken before the first event is read: pysqlite
    began the transaction at the event's insert only, and two gateways on one file (the service and one started by
    hand) each read no first event of one incident id from two cameras, and the second camera's update joined the
    first's case.
    """
    if not incidents:
        return
    if db.dialect.name == "sqlite":
        numbering.write_lock(db)
        return
    cursor = db.connection.dbapi_connection.cursor()
    cursor.execute(_LINKED, {"ids": sorted({incident_id for incident_id, _ in incidents})})
    have_case = {row[0] for row in cursor.fetchall()}
    keys: dict[int, bool] = {}
    for incident_id, locks in incidents:
        if incident_id in have_case:
            continue
        # its own lock, then its places'; 32-bit keys: two names on one key only wait for each other
        for name, exclusive in [(f"incident:{incident_id}", True), *locks]:
            key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "big", signed=True)
            keys[key] = keys.get(key, False) or exclusive
    if keys:
        cursor.execute(_TAKE_PLACE_LOCKS, {"space": PLACE_LOCKS, "keys": list(keys), "exclusive": list(keys.values())})
        cursor.fetchall()


def record_event(db: Connection, message: dict, payload: str, now: float) -> bool:
    """Remember (incident_id, seq) with the payload as received; False when it was seen before
    (a redelivery). One statement: an insert that does nothing on a known key."""
    row = {"incident_id": message["incident_id"], "seq": message["seq"], "state": message["state"],
           "received_at": now, "payload": payload}
    return _NEW_EVENT[db.dialect.name].first(db, row) is not None


_RECORDED = Prepared(select(incident_events.c.payload).where(incident_events.c.incident_id == bindparam("incident_id"),
                                                            incident_events.c.seq == bindparam("seq")))


def recorded_payload(db: Connection, incident_id: str, seq: int) -> str | None:
    """The payload of an incident event as first received (a redelivery is the same bytes)."""
    row = _RECORDED.first(db, {"incident_id": incident_id, "seq": seq})
    return row[0] if row else None


_FIRST_EVENT = Prepared(select(incident_events.c.payload).where(incident_events.c.incident_id == bindparam("incident_id"))
                        .order_by(incident_events.c.received_at, incident_events.c.seq).limit(1))


def first_event(db: Connection, incident_id: str) -> dict | None:
    """The first event received of an incident, as it came (None for an incident not seen yet, or whose stored
    payload is no object): whose it is, box, camera, zone and type (``gateway.cases.not_its_incident``)."""
    row = _FIRST_EVENT.first(db, {"incident_id": incident_id})
    if row is None:
        return None
    try:
        first = json.loads(row[0])
    except ValueError:  # stored as received: checked then, but never trusted twice
        return None
    return first if isinstance(first, dict) else None


def case_of_incident(db: Connection, incident_id: str) -> dict | None:
    rows = _CASE_OF_INCIDENT.dicts(db, {"incident_id": incident_id})
    return rows[0] if rows else None


def _around(loc: dict, radius_m: float) -> dict[str, float]:
    """The lat/lon box ``radius_m`` around ``loc`` (lat0, lat1, lon0, lon1): the index finds cases in
    it, ``gateway.cases.same_place`` then measures the distance."""
    dlat = radius_m / 111_000 + 1e-6
    dlon = dlat / max(0.01, math.cos(math.radians(loc["lat"])))
    return {"lat0": loc["lat"] - dlat, "lat1": loc["lat"] + dlat, "lon0": loc["lon"] - dlon, "lon1": loc["lon"] + dlon}


def candidates(db: Connection, message: dict, grid: str, since: float, radius_m: float) -> list[dict]:
    """Cases of the message's type in ``grid`` (its case's: ``gateway.cases.case_grid``) near it (a lat/lon box, or
    the same camera and zone) that it could join or reopen; ``gateway.cases.choose`` decides. Of its own grid only: a
    camera at a grid border sends each zone's incidents from one location, and a pile in one street's zone joined the
    other street's case, its own grid and department never told."""
    loc = message.get("location")
    if loc:
        return _NEAR.dicts(db, {"type": message["type"], "grid": grid, "since": since, **_around(loc, radius_m)})
    return _SAME_ZONE.dicts(db, {"type": message["type"], "grid": grid, "since": since, "box": message["box"],
                                 "camera": message["camera"], "zone": message["zone"]})


_OPENED = Prepared(select(func.count()).select_from(select(cases.c.id).where(
    cases.c.box == bindparam("box"), cases.c.camera == bindparam("camera"), cases.c.created_at > bindparam("since")
).limit(bindparam("at_most")).subquery()))


def cases_opened(db: Connection, box: str, camera: str, since: float, at_most: int) -> int:
    """How many cases ``box``'s ``camera`` opened after ``since``, counted up to ``at_most`` (what
    ``gateway.cases.over_camera_rate`` needs: a camera gone wild has thousands in its hour), from the index on box,
    camera and time alone; those this transaction opened too (a batch's)."""
    return _OPENED.first(db, {"box": box, "camera": camera, "since": since, "at_most": at_most})[0]


_REJECTED = select(cases).where(
    cases.c.type == bindparam("type"), cases.c.grid == bindparam("grid"),
    cases.c.state == literal_column(f"'{CaseState.REJECTED.value}'"),
    cases.c.id.in_(select(case_log.c.case_id).where(case_log.c.action == literal_column(f"'{Action.REJECT.value}'"),
                                                    case_log.c.at >= bindparam("since"))))
_REJECTED_NEAR = Prepared(_REJECTED.where(
    or_(cases.c.lat.is_(None), cases.c.lat.between(bindparam("lat0"), bindparam("lat1"))),
    or_(cases.c.lon.is_(None), cases.c.lon.between(bindparam("lon0"), bindparam("lon1")))
).order_by(cases.c.id.desc()).limit(200))
_REJECTED_SAME_ZONE = Prepared(_REJECTED.where(
    cases.c.box == bindparam("box"), cases.c.camera == bindparam("camera"), cases.c.zone == bindparam("zone")
).order_by(cases.c.id.desc()).limit(200))


def rejected_near(db: Connection, message: dict, grid: str, since: float, radius_m: float) -> list[dict]:
    """Cases of the message's type in ``grid`` near it (as ``candidates`` finds them) that a person rejected at
    ``since`` or later; ``gateway.cases.rejected_here`` decides whether a lead joins one. On the driver's
    cursor (``Prepared``): in a batch's pipeline mode SQLAlchemy's result had no rows to give."""
    loc = message.get("location")
    if loc:
        return _REJECTED_NEAR.dicts(db, {"type": message["type"], "grid": grid, "since": since,
                                         **_around(loc, radius_m)})
    return _REJECTED_SAME_ZONE.dicts(db, {"type": message["type"], "grid": grid, "since": since, "box": message["box"],
                                          "camera": message["camera"], "zone": message["zone"]})


_UNENDED = Prepared(select(case_incidents.c.incident_id).where(
    case_incidents.c.case_id == bindparam("case_id"),
    ~select(incident_events.c.incident_id).where(incident_events.c.incident_id == case_incidents.c.incident_id,
                                                 incident_events.c.state == literal_column("'end'")).exists()))


def unended_incidents(db: Connection, case_id: int) -> list[str]:
    """The incidents joined to a case whose end the camera has not sent yet (still being seen). On the
    driver's cursor, as ``Prepared`` reads: in a batch's pipeline mode SQLAlchemy's result had no rows to
    give (ResourceClosedError), and each batch holding a start and its end was rolled back and taken again
    one message at a time."""
    return [row[0] for row in _UNENDED.run(db, {"case_id": case_id}).fetchall()]


# the payload as received holds the sha256 as written (64 hex digits, nothing LIKE reads as a wildcard)
_NAMED_BY_EVENT = Prepared(select(incident_events.c.seq).where(incident_events.c.incident_id == bindparam("incident_id"),
                                                              incident_events.c.payload.like(bindparam("sha256")))
                           .limit(1))


_EVIDENCE_COUNT = Prepared(select(func.count()).select_from(evidence)
                           .where(evidence.c.incident_id == bindparam("incident_id")))


def named_by_event(db: Connection, incident_id: str, sha256: str) -> bool:
    """Whether an event of ``incident_id`` recorded already names these bytes (it came first, through another
    gateway)."""
    return _NAMED_BY_EVENT.first(db, {"incident_id": incident_id, "sha256": f"%{sha256}%"}) is not None


def evidence_count(db: Connection, incident_id: str) -> int:
    """How many pictures are kept under ``incident_id`` (each kept once: under the first incident that sent it)."""
    return _EVIDENCE_COUNT.first(db, {"incident_id": incident_id})[0]


def named_evidence(message: dict) -> list[str]:
    """The sha256s an incident event names: its snapshot's and its frame's.

    >>> named_evidence({"evidence": {"sha256": "a", "bytes": 1, "frame": {"sha256": "b", "bytes": 1}}})
    ['a', 'b']
    >>> named_evidence({"evidence": None})
    []
    """
    shown = message.get("evidence") or {}
    return [sha for sha in (shown.get("sha256"), (shown.get("frame") or {}).get("sha256")) if sha]


def name_evidence(db: Connection, message: dict) -> None:
    """Mark the pictures a recorded event names as named, those its own box sent only (another box's are never shown
    for it, ``storage._incident_facts``)."""
    if shas := named_evidence(message):
        db.execute(update(evidence).where(evidence.c.sha256.in_(shas), evidence.c.box == message["box"],
                                          evidence.c.named.is_(False)).values(named=True))


_OTHERS_EVIDENCE = Prepared(select(evidence).where(
    evidence.c.incident_id == bindparam("incident_id"),
    or_(evidence.c.box != bindparam("box"), evidence.c.camera != bindparam("camera")),
    ~select(case_photos.c.sha256).where(case_photos.c.sha256 == evidence.c.sha256).exists()))


def others_evidence(db: Connection, incident_id: str, box: str, camera: str) -> list[dict]:
    """The evidence kept under ``incident_id`` that another box or camera than ``box``'s ``camera`` sent (before the
    incident's first event came, which says whose it is), but bytes a case's photo too (kept once)."""
    return _OTHERS_EVIDENCE.dicts(db, {"incident_id": incident_id, "box": box, "camera": camera})


_UNNAMED = select(func.length(evidence.c.data).label("size")).where(
    evidence.c.box == bindparam("box"), evidence.c.named.is_(False)).limit(bindparam("limit")).subquery()
_UNNAMED_OF_BOX = Prepared(select(func.count(), func.coalesce(func.sum(_UNNAMED.c.size), 0)))


def unnamed_evidence(db: Connection, box: str, limit: int) -> tuple[int, int]:
    """How many of ``box``'s pictures no event named yet are kept, and their bytes, counted up to ``limit`` pictures
    (its index read no further)."""
    count, size = _UNNAMED_OF_BOX.first(db, {"box": box, "limit": limit})
    return count, int(size)
