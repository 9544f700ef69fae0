"""The gateway's database as it is laid out: its tables and indexes, through SQLAlchemy Core, and the migrations that
bring an earlier one to this release's (``MIGRATIONS``; ``storage.migrate`` applies them).

A new column or table is added to the tables here and to ``MIGRATIONS``, with the comment of the migration that
added it beside it: what a column holds, and why an index is there, is read where it is declared.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    false,
    true,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateColumn

from xueliang import wire

metadata = MetaData()

cases = Table(
    "cases", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", String(128), nullable=False, unique=True),  # the incident that opened it
    Column("type", String(40), nullable=False),
    Column("category_code", String(32), nullable=False),
    Column("category_name", String(128), nullable=False),
    Column("department", String(64), nullable=False, index=True),
    Column("grid", String(64), nullable=False, index=True),
    Column("box", String(64), nullable=False),
    Column("camera", String(64), nullable=False),
    Column("zone", String(64), nullable=False),
    Column("lat", Float, index=True), Column("lon", Float),
    Column("state", String(24), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("dispatched_at", Float),
    Column("deadline", Float, index=True),
    Column("reported_at", Float, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("bbox", Text, nullable=False),
    Column("evidence_sha256", String(64)),
    Column("last_seq", Integer, nullable=False),
    Column("level", Integer, nullable=False, default=0),
    Column("escalated_grid", String(64)),
    Column("next_escalation_at", Float),
    Column("closed_at", Float),
    Column("incident_count", Integer, nullable=False, default=1),
    Column("ended_at", Float), Column("end_reason", String(24)), Column("end_evidence_sha256", String(64)),
    Column("urgent", Boolean, nullable=False, server_default=false()),  # migration 2
    Column("fed_back_at", Float),  # migration 6: the department's clock stopped here (its feedback)
    Column("recheck_deadline", Float),  # migration 6: the re-check's own deadline, while in feedback
    Column("extension_request", String(64)),  # migration 6: more time a department asked for (申请延期)
    # migration 20: the command centre's own deadline, while a lead waits for review or a returned case to be sent on
    Column("review_deadline", Float),
)

# migration 16: a department's queue and its counts select its open states: by the department's index alone they read
# every case it ever had (50,000 in a year's city: a queue 27 ms of CPU, now 10, its count 24, now 1.3). That index
# stays: in it a department's cases are in id order, its lists newest first read 100 of them, here all, sorted.
# None on created_at: SQLite took it for Open311's 90 days, newest first, and sorted their 25,000 cases for a page.
DEPARTMENT_STATE = Index("ix_cases_department_state", cases.c.department, cases.c.state)
# migration 21: ingest counts the cases a camera opened within the hour (tables' new_cases_per_camera_hour) at each new
# incident, from the index alone
CAMERA_OPENED = Index("ix_cases_box_camera_created_at", cases.c.box, cases.c.camera, cases.c.created_at)

case_incidents = Table(
    "case_incidents", metadata,
    Column("incident_id", String(128), primary_key=True),
    Column("case_id", Integer, nullable=False, index=True),
    Column("how", String(16), nullable=False),  # opened / merged / reopened
    Column("linked_at", Float, nullable=False),
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
    # migration 13: whether an event of its box names these bytes (its snapshot or its frame); a picture no event
    # names is never shown and was kept for good, as many as a box sent: set aside after ORPHAN_EVIDENCE_S
    Column("named", Boolean, nullable=False, server_default=true()),
)
EVIDENCE_UNNAMED = Index("ix_evidence_unnamed", evidence.c.named, evidence.c.received_at)

dead_letters = Table(
    "dead_letters", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", Float, nullable=False),
    Column("topic", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("grid", String(64)),  # migration 5: the grid the payload names, if any; none: admins only
    # migration 12: the message's ``wire.message_digest`` (of its whole topic and payload), one dead letter each: a
    # batch the database failed partway through its messages handled alone had kept those set aside before, and
    # kept them again at its next try; none for the rows from before
    Column("digest", String(wire.DIGEST_CHARS)),
    # migration 22: the box its topic names (``wire.topic_box``; '' for none, a notice's): past the budget the box
    # holding most loses its oldest first, not every box the oldest
    Column("box", String(64), nullable=False, server_default=""),
)
DEAD_LETTER_GRID = Index("ix_dead_letters_grid", dead_letters.c.grid)
DEAD_LETTER_DIGEST = Index("ux_dead_letters_digest", dead_letters.c.digest, unique=True)
# migration 15: the clock deletes dead letters past the city's retention, oldest first, without reading the table;
# ingest counts a box's pictures no event named yet (``unnamed_evidence``) without reading the others' boxes'
DEAD_LETTER_RECEIVED = Index("ix_dead_letters_received_at", dead_letters.c.received_at)
EVIDENCE_BOX_UNNAMED = Index("ix_evidence_box_named", evidence.c.box, evidence.c.named)
DEAD_LETTER_BOX = Index("ix_dead_letters_box_received_at", dead_letters.c.box, dead_letters.c.received_at)

# migration 4: a photo belongs to every case it was added to; its bytes are kept once in evidence
case_photos = Table(
    "case_photos", metadata,
    Column("case_id", Integer, primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("added_at", Float, nullable=False),
)
# migration 17: a photo's picture (``photohash``), so that the same picture sent for another case is found: its hash
# once per band (a lookup reads the few rows near each of its bands, not every photo of a year's city), and the cases
# that have a picture by its bytes
photo_hashes = Table(
    "photo_hashes", metadata,
    Column("band", Integer, primary_key=True),
    Column("value", Integer, primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("dhash", BigInteger, nullable=False),  # signed: SQL has no unsigned 64-bit integer
)
CASE_PHOTO_SHA = Index("ix_case_photos_sha256", case_photos.c.sha256)

case_log = Table(
    "case_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, nullable=False, index=True),
    Column("at", Float, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("action", String(32), nullable=False),
    Column("from_state", String(24)),
    Column("to_state", String(24)),
    Column("note", Text),
    Column("target", String(64)),  # where its notice goes: the department dispatched to, the grid escalated to
    Column("published", Float),  # the log row is also the outbox of notices (dispatch, escalation)
    # migration 8: the more time an extension's row asked for, granted, refused or gave (its note is
    # the person's own words, never this value: a note "2h" on a request for 5 working days is the person's)
    Column("extend_by", String(64)),
    # migration 14: the department's deadline as a dispatch or an extension of it set it, so that a past day's report
    # reads the deadline of then, not the case's latest (none on rows from before, and on every other row)
    Column("deadline", Float),
)
UNPUBLISHED = Index("ix_case_log_published", case_log.c.published)  # migration 3: the clock finds its notices
LOG_AT = Index("ix_case_log_at", case_log.c.at)  # migration 14: a report finds the cases that moved since its day

tokens = Table(
    "tokens", metadata,
    Column("sha256", String(64), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("department", String(64)),
    Column("grid", String(64)),
    Column("created_at", Float, nullable=False),
    Column("prefix", String(16)),  # migration 5: the token's first characters, to name it in a revocation
    Column("expires_at", Float),  # migration 5
    Column("revoked_at", Float),  # migration 5
)

# migration 5: the operators' pages sign in once with a token and then carry a session cookie
sessions = Table(
    "sessions", metadata,
    Column("sha256", String(64), primary_key=True),  # of the cookie's random value
    Column("token_sha256", String(64), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

# migration 7: an operator's verdict on a machine-made case (the newest is the case's), and the
# suppressions a false_alarm verdict makes: the box stops reporting that camera/zone/type/region
verdicts = Table(
    "verdicts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, nullable=False, index=True),
    Column("at", Float, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("verdict", String(16), nullable=False),  # gateway.verdicts.Verdict
    Column("right_type", String(40)),  # wrong_type: what it was
    Column("duplicate_of", Integer),  # duplicate: the case it repeats
    Column("bbox", Text),  # the object's box as the operator redrew it (JSON x1, y1, x2, y2 in 0..1)
    Column("note", Text),
)

suppressions = Table(
    "suppressions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, index=True),  # the case whose false_alarm verdict made it
    Column("box", String(64), nullable=False, index=True),
    Column("camera", String(64), nullable=False),
    Column("zone", String(64), nullable=False),
    Column("type", String(40), nullable=False),
    Column("bbox", Text, nullable=False),  # the suppressed region (JSON x1, y1, x2, y2 in 0..1)
    Column("grid", String(64), nullable=False),  # the case's: who may see and lift it
    Column("created_at", Float, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("lifted_at", Float),
    Column("lifted_by", String(128)),
)

# migration 9: each box's latest status (gateway.boxes writes it): one row per box, replaced by its next heartbeat
boxes = Table(
    "boxes", metadata,
    Column("box", String(64), primary_key=True),
    Column("state", String(16), nullable=False),  # online / offline: its latest status message (a last will too)
    Column("heard_at", Float),  # when its latest heartbeat came, the database's clock (none: only its last will came)
    Column("sent_at", Float),  # that heartbeat's own time, the box's wall clock
    Column("heartbeat", Text),  # that heartbeat as checked (gateway.boxes.Heartbeat, JSON)
    Column("boot", String(64)),  # that heartbeat's start, connection to the broker (migration 11) and number: its
    Column("link", BigInteger),  # place in the box's order (gateway.boxes._upsert; none: a box older than them, or
    Column("seq", BigInteger),  # only its last will heard)
    Column("ended_link", BigInteger),  # migration 11: the last connection of that start a last will or stop ended
    Column("refused_at", Float),  # its latest heartbeat refused (noted at most once per box in boxes.REFUSAL_NOTE_S)
    Column("refused_reason", String(300)),
    # migration 18: two boxes under one box id (a config copied to the next box, its box not changed) send heartbeats
    # of two starts in turn; a box started again never sends its earlier start's again (gateway.boxes._upsert)
    Column("prev_boot", String(64)),  # the start that heartbeat's replaced
    Column("twin_at", Float),  # when a start came back after another's heartbeat, the database's clock
    Column("twin_boots", String(130)),  # the two starts then, "BOOT BOOT"
)

# migration 19: where each table whose ids are seen outside goes on from (``numbering.restored_id``): its next row
# takes next_id, past any the lost gateway gave (a backup restored) or retention deleted (``numbering.keep_numbering``);
# the row here goes once one of the table's has taken it
numbering = Table(
    "numbering", metadata,
    Column("name", String(40), primary_key=True),  # the table's, one of gateway.restore.MARGINS
    Column("next_id", BigInteger, nullable=False),
)

schema_migrations = Table(
    "schema_migrations", metadata,
    Column("version", Integer, primary_key=True),
    Column("what", Text, nullable=False),
    Column("applied_at", Float, nullable=False),
)


def _add_column(column: Column):
    def step(db: Connection) -> None:
        db.execute(text(f"ALTER TABLE {column.table.name} ADD COLUMN {CreateColumn(column).compile(dialect=db.dialect)}"))
    return step


def _add_missing(*columns: Column):
    """Each column its table lacks added: a table made by an earlier step (from the tables above) has them."""
    def step(db: Connection) -> None:
        for column in columns:
            if column.name not in {c["name"] for c in inspect(db).get_columns(column.table.name)}:
                _add_column(column)(db)
    return step


# (version, what it changes, the step). A new column or table is added to the tables above
# *and* here; a database older than version 1's record (made before migrations) is version 1.
# A short list of DDL steps does what the project needs of Alembic without its script tree.
MIGRATIONS: list[tuple[int, str, Callable[[Connection], None] | None]] = [
    (1, "cases, incidents, events, evidence, dead letters, case log, tokens", None),
    (2, "cases.urgent: an urgent incident (a spill that endangers traffic) has its own service level",
     _add_column(cases.c.urgent)),
    (3, "case_log.published indexed: the clock's look for unsent notices no longer reads the whole log",
     lambda db: UNPUBLISHED.create(db)),
    (4, "case_photos: a photo is served for every case it was added to (its bytes are kept once)",
     lambda db: _migrate_case_photos(db)),
    (5, "tokens expire and can be revoked; page sessions; dead letters carry their grid for scoping",
     lambda db: _migrate_tokens_sessions_dead_letters(db)),
    (6, "cases.fed_back_at, recheck_deadline, extension_request: the department's clock stops at its feedback, "
        "the re-check has its own; a department asks for more time",
     lambda db: [_add_column(c)(db) for c in (cases.c.fed_back_at, cases.c.recheck_deadline,
                                              cases.c.extension_request)]),
    (7, "verdicts and suppressions: an operator's verdict on a machine-made case; a false alarm's suppression "
        "for its box", lambda db: [verdicts.create(db), suppressions.create(db)]),
    (8, "case_log.extend_by: an extension's duration in its own field, the note left to the person's words",
     _add_column(case_log.c.extend_by)),
    (9, "boxes: each box's latest heartbeat, for the boxes page", lambda db: boxes.create(db)),
    (10, "boxes.boot, boxes.seq: a box's heartbeat written late by one gateway no longer replaces the later one "
         "another wrote", _add_missing(boxes.c.boot, boxes.c.seq)),
    (11, "boxes.link, boxes.ended_link: a box's last will is ordered after the heartbeats of the connection it ends "
         "and before the next one's", _add_missing(boxes.c.link, boxes.c.ended_link)),
    (12, "dead_letters.digest, unique: a message set aside twice (its batch tried again) is one dead letter",
     lambda db: [_add_column(dead_letters.c.digest)(db), DEAD_LETTER_DIGEST.create(db)]),
    (13, "evidence.named: a box's picture no event of its names is set aside after a while, as one whose incident "
         "never came (those kept before stay, but those of incidents that never came)",
     lambda db: _migrate_evidence_named(db)),
    (14, "case_log.deadline, case_log.at indexed: a past day's report reads each dispatch's department and deadline "
         "from the log, not the case as it is now (rows from before: the case's deadline)",
     lambda db: [_add_missing(case_log.c.deadline)(db), LOG_AT.create(db, checkfirst=True)]),
    (15, "dead letters by age, a box's unnamed pictures by box: dead letters are deleted past the city's retention "
         "(dead_letter_days, dead_letter_mb), a box has so many pictures waiting for their events at most",
     lambda db: [DEAD_LETTER_RECEIVED.create(db), EVIDENCE_BOX_UNNAMED.create(db)]),
    (16, "cases by department and state: a department's queue and its counts read its open cases, not every case it "
         "ever had", lambda db: DEPARTMENT_STATE.create(db, checkfirst=True)),
    (17, "photo_hashes, case_photos by picture: a department's photo that is the same picture as another case's is "
         "marked (photos kept before are found by their bytes only)",
     lambda db: [photo_hashes.create(db, checkfirst=True), CASE_PHOTO_SHA.create(db, checkfirst=True)]),
    (18, "boxes.prev_boot, twin_at, twin_boots: two boxes under one box id, their heartbeats' starts in turn, are "
         "said on the box's row", _add_missing(boxes.c.prev_boot, boxes.c.twin_at, boxes.c.twin_boots)),
    (19, "numbering: a backup restored numbers its suppressions and dead letters past the lost gateway's too, not "
         "its cases alone", lambda db: numbering.create(db, checkfirst=True)),
    (20, "cases.review_deadline: a lead waiting for review and a case a department returned run the command centre's "
         "own clock (those waiting before run none)", _add_missing(cases.c.review_deadline)),
    (21, "cases by box, camera and time: a camera's new cases past the tables' new_cases_per_camera_hour are held for "
         "review, counted at each", lambda db: CAMERA_OPENED.create(db, checkfirst=True)),
    (22, "dead_letters.box: past dead_letter_mb the box holding most of the dead letters loses its oldest, not every "
         "box the oldest (a box flooding bad messages had every other box's deleted)",
     lambda db: _migrate_dead_letters_box(db)),
]
CENTRE_CLOCK_MIGRATION = 20  # a wait on the centre begun before it ran no clock (reports: never late)

TOKEN_GRACE_S = 90 * 86400  # tokens made before migration 5 expire this long after the upgrade


def _migrate_case_photos(db: Connection) -> None:
    case_photos.create(db)
    photos = db.execute(select(evidence.c.incident_id, evidence.c.sha256, evidence.c.received_at)
                        .where(evidence.c.incident_id.startswith(wire.GATEWAY_KEY_PREFIX))).all()
    rows = [{"case_id": int(owner.removeprefix(wire.GATEWAY_KEY_PREFIX)), "sha256": sha, "added_at": at}
            for owner, sha, at in photos if owner.removeprefix(wire.GATEWAY_KEY_PREFIX).isdigit()]
    if rows:
        db.execute(insert(case_photos), rows)


def _migrate_evidence_named(db: Connection) -> None:
    _add_column(evidence.c.named)(db)
    known = select(incident_events.c.incident_id).where(incident_events.c.incident_id == evidence.c.incident_id)
    db.execute(update(evidence).where(~known.exists(), ~evidence.c.incident_id.startswith(wire.GATEWAY_KEY_PREFIX))
               .values(named=False))  # the orphans the clock set aside before, found by this column now
    EVIDENCE_UNNAMED.create(db)


def _migrate_tokens_sessions_dead_letters(db: Connection) -> None:
    for column in (tokens.c.prefix, tokens.c.expires_at, tokens.c.revoked_at, dead_letters.c.grid):
        _add_column(column)(db)
    db.execute(update(tokens).values(expires_at=time.time() + TOKEN_GRACE_S))
    DEAD_LETTER_GRID.create(db)
    sessions.create(db)


def _migrate_dead_letters_box(db: Connection) -> None:
    _add_missing(dead_letters.c.box)(db)
    rows = db.execute(select(dead_letters.c.id, dead_letters.c.topic)).all()
    ids: dict[str, list[int]] = {}
    for row_id, topic in rows:
        if box := wire.topic_box(topic):
            ids.setdefault(box, []).append(row_id)
    for box, of_box in ids.items():
        for first in range(0, len(of_box), 500):
            db.execute(update(dead_letters).where(dead_letters.c.id.in_(of_box[first:first + 500])).values(box=box))
    DEAD_LETTER_BOX.create(db, checkfirst=True)
