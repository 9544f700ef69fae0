"""One bad message never stops ingest or the notice clock: poison messages become dead letters one
at a time, the rest of their batch commits, and only the database's own failure stops ingest."""

import contextlib
import errno
import hashlib
import html
import json
import logging
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import psycopg.errors
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, text, update
from sqlalchemy.exc import OperationalError

from gateway import boxes, dberrors, ingestdb, schema
from gateway.api import create_app
from gateway.config import TABLES_DIR, load_tables
from gateway.auth import new_token
from gateway.ingest import DatabaseUnavailable, Ingest
from gateway.metrics import Health
from gateway.service import Clock
from gateway.storage import DatabaseUnusable, Store
from xueliang import services, wire
from xueliang.mqtt import make_client

from .conftest import REPO, Watcher, wait_subscribed, wait_until
from .test_gateway import JPEG, START, TOPIC, payload, scans
from .test_workflow import database_url, undo_migration_13  # noqa: F401 (fixtures)

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@contextlib.contextmanager
def gateway_and_box(store: Store, tables, port: int, box_id: str):
    """A real gateway ingesting into ``store`` over the broker at ``port`` (connected and subscribed) and a box's
    MQTT client ``box_id`` beside it; both stopped after."""
    from gateway.config import Broker, GatewayConfig
    from gateway.service import MqttIngest

    gateway = MqttIngest(GatewayConfig(broker=Broker(port=port, client_id="gateway-1")),
                         Ingest(store, tables, clock=time.time))
    gateway.start()
    box = make_client(box_id)
    box.connect("127.0.0.1", port)
    box.loop_start()
    try:
        wait_subscribed(gateway)
        yield gateway, box
    finally:
        box.loop_stop()
        gateway.stop()


def raw(field: str, token: str) -> bytes:
    """START with one field's JSON replaced by ``token`` as it stands (not valid JSON values)."""
    m = dict(START, **{field: "@@RAW@@"})
    return json.dumps(m).replace('"@@RAW@@"', token).encode()


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


POISON = [  # the messages that stopped all ingest, each under 16 kB and passing the old patterns
    ("feb 30", payload(started_at="2024-02-30T00:00:00Z"), "started_at: time '2024-02-30T00:00:00Z' is not a real time"),
    ("hour 25", payload(observed_at="2026-01-01T25:00:00Z"), "observed_at"),
    ("second 60", payload(started_at="2026-01-01T00:00:60Z"), "started_at"),
    ("offset +24:00", payload(started_at="2026-01-01T00:00:00+24:00"), "started_at"),
    ("year 0", payload(started_at="0000-01-01T00:00:00Z"), "started_at"),
    ("year 1", payload(started_at="0001-01-01T00:00:00+01:00"), "outside 2000..2099"),
    ("nested 300", raw("attributes", '{"a": ' + nested(300) + "}"), "nested deeper than 16"),
    ("nested 990", raw("attributes", '{"a": ' + nested(990) + "}"), "nested"),
    ("nested 1000", raw("attributes", '{"a": ' + nested(1000) + "}"), "not JSON: nested too deeply"),
    ("4400 digits", raw("seq", "1" * 4400), "an integer of 4400 digits"),
    ("NaN bbox", raw("bbox", "[NaN, 0.1, 0.2, 0.3]"), "NaN is not a JSON number"),
    ("Infinity", raw("confidence", "Infinity"), "Infinity is not a JSON number"),
    ("1e999", raw("confidence", "1e999"), "out of range"),
    ("huge seq", payload(seq=2**40), "seq"),
    ("grid with +", payload(grid="HQ+DZG"), "grid"),
    ("grid with NUL", payload(grid="HQ\x00"), "grid"),
    ("grid with /", payload(grid="HQ/DZG/#"), "grid"),
    ("zone with newline", payload(zone="kerb\n"), "zone"),
    ("the gateway's photo key", payload(incident_id="case:5"), "incident_id"),  # case 5's photos are kept under it
    # its snapshot's URL .../incidents/../evidence.jpg, shortened by browsers: a broken image, or another's picture
    ("incident id ..", payload(incident_id=".."), "incident_id: '..' does not match"),
    ("incident id .", payload(incident_id="."), "incident_id: '.' does not match"),
    # Python kept the last, other parsers the first: a case for incident "other" that a reader of the bytes saw as 3f2a9c
    ("a key twice", payload()[:-1] + b', "incident_id": "other"}', "not JSON: key 'incident_id' is written twice"),
    ("a key twice, deeper", payload(location={"lat": 39.17, "lon": 117.15}).replace(b'"lon"', b'"lat": 1, "lon"'),
     "key 'lat' is written twice"),
]


@pytest.fixture
def tables():
    return load_tables(TABLES_DIR / "demo.yaml")


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path}/gateway.sqlite")


def test_the_decoder_raises_nothing_but_a_wire_error_with_the_reason():
    for name, body, reason in POISON:
        assert len(body) <= wire.MAX_INCIDENT_BYTES, name
        with pytest.raises(wire.WireError) as err:
            wire.decode_incident(body)
        assert reason in str(err.value), (name, str(err.value))


@pytest.mark.parametrize("topic, reason", [
    (f"xl/v1/box-1/gate/evidence/{'x' * 20000}", "20000 characters"),
    ("xl/v1/box-1/gate/evidence/a b", "incident id 'a b'"),
    (f"xl/v1/{'b' * 65}/gate/incident", "topic's box"),
    ("xl/v1/box-1/<script>/incident", "topic's camera"),
    ("xl/v1/dispatch/cam-1/incident", "topic's box 'dispatch' is reserved: xl/v1/dispatch/ carries the gateway's notices"),
    ("xl/v1/escalations/cam-1/evidence/x", "topic's box 'escalations' is reserved"),
    # people's photos are kept under case:N; such evidence from a box was never quarantined, and stayed for good
    ("xl/v1/box-1/gate/evidence/case:junk-1", "incident id 'case:junk-1' (11 characters) is not 1..128 of A-Z a-z 0-9 . _ : - "
                                              "(not dots alone, nor beginning case:, the gateway's own)"),
    # . and .. are path segments: its snapshot's URL .../incidents/../evidence.jpg is shortened by browsers
    ("xl/v1/box-1/gate/evidence/..", "incident id '..' (2 characters) is not 1..128 of A-Z a-z 0-9 . _ : - (not dots alone"),
    ("xl/v1/box-1/gate/evidence/.", "incident id '.' (1 characters)"),
    ("xl/v1/box-1/gate/evidence/...", "incident id '...' (3 characters)"),
    ("xl/v1/../gate/incident", "topic's box '..' is not 1..64"),  # a box, camera or zone id begins with a letter or digit
    ("xl/v1/box-1/./incident", "topic's camera '.' is not 1..64"),
])
def test_every_topic_level_is_checked(topic, reason):
    with pytest.raises(wire.WireError) as err:
        wire.parse_topic(topic)
    assert reason in str(err.value)


def test_a_poison_message_is_set_aside_and_the_rest_of_its_batch_commits(store, tables):
    ingest = Ingest(store, tables, clock=lambda: NOW)
    items = [(TOPIC, body) for _, body, _ in POISON]
    items.insert(5, (TOPIC, payload(incident_id="good-1")))
    items.append((TOPIC, payload(incident_id="good-2", location={"lat": 39.2, "lon": 117.2})))
    outcomes = ingest.handle_batch(items)
    assert outcomes.count("dead_letter") == len(POISON)
    assert outcomes[5] == "case_created" and outcomes[-1] == "case_created"
    assert store.count("dead_letters") == len(POISON)
    assert sorted(c["incident_id"] for c in store.list_cases()) == ["good-1", "good-2"]


def test_a_failure_applying_one_message_sets_only_that_one_aside(store, tables, monkeypatch):
    ingest = Ingest(store, tables, clock=lambda: NOW)
    apply = ingest._apply

    def broken(db, message, *args):  # a bug that only this message meets
        if message["incident_id"] == "bug":
            raise KeyError("no such thing")
        return apply(db, message, *args)

    monkeypatch.setattr(ingest, "_apply", broken)
    outcomes = ingest.handle_batch([(TOPIC, payload(incident_id="a")), (TOPIC, payload(incident_id="bug")),
                                    (TOPIC, payload(incident_id="b", location={"lat": 39.3, "lon": 117.3}))])
    assert outcomes == ["case_created", "dead_letter", "case_created"]
    (dead,) = store.list_dead_letters()
    assert "internal error: KeyError" in dead["reason"]


def test_a_batch_the_database_failed_while_each_message_was_handled_alone_sets_each_aside_once(tmp_path, tables,
                                                                                              monkeypatch):
    """Applying the batch failed (a bug, a race lost), so each message was handled alone, in a transaction of its own:
    the bad one's dead letter was committed, the database failed at the next (its file moved away here), nothing was
    acknowledged, and at the batch's next try the bad message was set aside again: two dead letters for one message,
    and more at every try. Kept once by its digest."""
    folder, away = tmp_path / "gateway", tmp_path / "away"
    store = Store(f"sqlite:///{folder}/gateway.sqlite")
    ingest = Ingest(store, tables, clock=lambda: NOW)
    apply, calls = ingest._apply, []

    def failing(db, message, *args):
        calls.append(message["incident_id"])
        if len(calls) == 1:  # in the batch: a bug it meets once
            raise KeyError("no such thing")
        if len(calls) == 2:  # handled alone, after the dead letter: the database goes
            folder.rename(away)
        return apply(db, message, *args)

    monkeypatch.setattr(ingest, "_apply", failing)
    batch = [(TOPIC, b"not json"), (TOPIC, payload(incident_id="good"))]
    with pytest.raises(DatabaseUnavailable, match="gone"):
        ingest.handle_batch(batch)
    away.rename(folder)
    assert store.count("dead_letters") == 1  # committed alone: the batch's next try finds it
    assert ingest.handle_batch(batch) == ["dead_letter", "case_created"]
    assert store.count("dead_letters") == 1 and store.count("cases") == 1


def test_a_message_set_aside_twice_is_one_dead_letter_and_those_from_before_are_kept(database_url, tables):  # noqa: F811
    """By its digest (``wire.message_digest``, as its acknowledgement names it), however it was set aside: by
    ingest alone or in a batch (two copies in one), by the database's answer (another box's incident), or as evidence
    whose incident never came. A database of version 11 keeps its dead letters, two alike among them."""
    store = Store(database_url)
    with store.begin() as db:  # version 11, with the dead letters a failed batch's tries kept
        undo_migration_13(db)
        db.execute(text("DROP INDEX ux_dead_letters_digest"))
        db.execute(text("ALTER TABLE dead_letters DROP COLUMN digest"))
        db.execute(text("DELETE FROM schema_migrations WHERE version >= 12"))
        for _ in range(2):
            db.execute(insert(schema.dead_letters).values(received_at=NOW, topic=TOPIC, reason="not JSON",
                                                           payload=b"not json"))
    store.engine.dispose()
    store = Store(database_url)
    ingest = Ingest(store, tables, clock=lambda: NOW)
    assert ingest.handle(TOPIC, payload()) == "case_created"
    other_box = (wire.incident_topic("box-2", "gate"), payload(box="box-2"))
    orphan = (wire.evidence_topic("box-1", "gate", "ghost"), JPEG)
    for _ in range(2):
        assert ingest.handle(TOPIC, b"not json") == "dead_letter"
        assert ingest.handle_batch([(TOPIC, b"not json"), (TOPIC, b"not json"), other_box]) == ["dead_letter"] * 3
        assert ingest.handle(*other_box) == "dead_letter"
        assert ingest.handle(*orphan) == "evidence"
        assert store.quarantine_orphan_evidence(NOW + 3600, NOW + 3600) == 1
    assert ingest.handle(wire.incident_topic("box-1", "gate-2"), b"not json") == "dead_letter"  # another message
    assert sorted((d["topic"].split("/")[3], d["reason"][:16]) for d in store.list_dead_letters()) == [
        ("gate", "evidence without"), ("gate", "incident '3f2a9c"), ("gate", "not JSON"), ("gate", "not JSON"),
        ("gate", "not JSON: Expect"), ("gate-2", "not JSON: Expect")]


def test_evidence_another_box_or_camera_sends_under_an_incidents_plain_id_is_a_dead_letter_naming_both(
        database_url, tables):  # noqa: F811 (the fixture)
    """A case shows only its own box's pictures: box-2's evidence under box-1's plain id (an older box's, another
    maker's) was kept and never shown, nor quarantined as an orphan (the id is known): kept for good. Now a dead letter
    naming both boxes, alone or in a batch, and sent before the incident's first event too (moved aside when it
    comes: on PostgreSQL under the incident's lock, ``ingestdb.lock_places``). The same of another camera of the same
    box."""
    store = Store(database_url)
    ingest = Ingest(store, tables, clock=lambda: NOW)
    ingest.handle(wire.evidence_topic("box-2", "cam-x", "3f2a9c"), JPEG + b"before")  # before the incident came
    assert ingest.handle(wire.evidence_topic("box-1", "gate", "3f2a9c"), JPEG) == "evidence"
    assert ingest.handle(TOPIC, payload()) == "case_created"
    after = [(wire.evidence_topic("box-2", "cam-x", "3f2a9c"), JPEG + b"after"),
             (wire.evidence_topic("box-1", "gate-2", "3f2a9c"), JPEG + b"camera")]
    assert ingest.handle(*after[0]) == "dead_letter"
    assert ingest.handle_batch([*after, (wire.evidence_topic("box-1", "gate", "3f2a9c"), JPEG + b"end")]) == [
        "dead_letter", "dead_letter", "evidence"]
    dead = {(d["topic"].split("/")[3], d["reason"]) for d in store.list_dead_letters()}
    assert dead == {
        ("cam-x", "incident '3f2a9c' belongs to box 'box-1', which sent it first; box 'box-2' may not send evidence "
                  "for it"),
        ("gate-2", "incident '3f2a9c' is camera 'gate' (its first event); this evidence came from camera 'gate-2': "
                   "an incident's camera never changes")}
    assert store.count("dead_letters") == 3  # before, after (sent twice: one), another camera
    assert store.count("evidence") == 2  # box-1's own
    assert store.quarantine_orphan_evidence(NOW + 7200, NOW + 7200) == 1  # its "end", which no event names
    (case,) = store.list_cases()
    assert store.evidence_bytes(case["evidence_sha256"]) == JPEG


@pytest.mark.slow
def test_a_database_that_does_not_answer_stops_ingest_and_loses_nothing(tmp_path, tables):
    with services.postgres(tmp_path / "pg") as pg:
        store = wait_until(lambda: ready_store(f"postgresql+psycopg://postgres@127.0.0.1:{pg.port}/postgres"), 30,
                           message="PostgreSQL up")
        ingest = Ingest(store, tables, clock=lambda: NOW)
        assert ingest.handle_batch([(TOPIC, payload(incident_id="before"))]) == ["case_created"]
        pg.signal(signal.SIGINT)  # PostgreSQL's fast shutdown: clients cut off at once
        pg.proc.wait(30)
        batch = [(TOPIC, payload(incident_id="during", location={"lat": 39.5, "lon": 117.5})), (TOPIC, b"not json")]
        with pytest.raises(DatabaseUnavailable):
            ingest.handle_batch(batch)
        with pytest.raises(DatabaseUnavailable):
            ingest.handle(*batch[0])
        pg.start(timeout=30)
        wait_until(store.reachable, 30, message="PostgreSQL back")
        assert ingest.handle_batch(batch) == ["case_created", "dead_letter"]
        assert store.count("cases") == 2 and store.count("dead_letters") == 1


@pytest.fixture
def small_disk(tmp_path):
    """A real 4 MiB filesystem (tmpfs) to fill; skipped where mounting is not permitted (not root)."""
    where = tmp_path / "disk"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path) -> None:
    """Write ``path`` until the filesystem has not a byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 16, 1 << 12, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)


def test_a_full_disk_stops_ingest_and_sets_no_message_aside(small_disk, tables):
    """Nor one that is bad: a batch's dead letters were written before its cases, each in a transaction of its own,
    so one that fit was kept at every try of the batch (and again once the disk had room): one bad message, a dead
    letter every 2 s. They are the batch's now, kept with it or not at all."""
    store = Store(f"sqlite:///{small_disk}/gateway.sqlite")
    ingest = Ingest(store, tables, clock=lambda: NOW)
    assert ingest.handle_batch([(TOPIC, payload(incident_id="before"))]) == ["case_created"]
    # the disk full, with room for a small write in the WAL file (checkpointed, it is written again from
    # its start): a dead letter fits there, a case does not (as it happened while a disk filled up)
    with store.engine.connect() as db:
        db.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    store.dead_letter(TOPIC, "the room a dead letter takes", payload(incident_id="room"), NOW)
    with store.engine.connect() as db:
        db.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
    fill(small_disk / "filler")
    batch = [(TOPIC, b"not json"), (TOPIC, payload(incident_id="during", location={"lat": 39.5, "lon": 117.5}))]
    for _ in range(2):
        with pytest.raises(DatabaseUnavailable, match="full"):
            ingest.handle_batch(batch)  # nothing acknowledged: the broker delivers it again
    with pytest.raises(DatabaseUnavailable, match="full"):
        ingest.handle(*batch[1])
    assert [d["reason"] for d in store.list_dead_letters()] == ["the room a dead letter takes"]
    (small_disk / "filler").unlink()
    assert ingest.handle_batch(batch) == ["dead_letter", "case_created"]
    assert store.count("cases") == 2 and store.count("dead_letters") == 2


@pytest.mark.slow
def test_on_a_full_disk_health_says_the_database_cannot_write(small_disk, tables, broker):
    """/health read the database (a full disk still answers) and said it was ok while ingest could not
    commit; its database part now says what ingest found, and is ok again once a batch commits."""
    store = Store(f"sqlite:///{small_disk}/gateway.sqlite")
    token = new_token(store, "ops", "admin")
    with gateway_and_box(store, tables, broker.port, "box-1") as (gateway, box):
        api = TestClient(create_app(store, tables, health_state=gateway.state))

        def send(incident_id: str, lat: float) -> None:
            box.publish(TOPIC, payload(incident_id=incident_id, location={"lat": lat, "lon": 117.5},
                                       observed_at=wire.iso(time.time()), started_at=wire.iso(time.time() - 30)),
                        qos=1).wait_for_publish(5)

        send("before", 39.4)
        wait_until(lambda: store.count("cases") == 1, 10, message="the first case")
        assert api.get("/health").status_code == 200
        fill(small_disk / "filler")
        send("during", 39.5)
        answer = wait_until(lambda: (r := api.get("/health")).status_code == 503 and r, 10, message="health 503")
        assert answer.json()["down"] == ["database", "ingest"]
        database = api.get("/health", headers={"Authorization": f"Bearer {token}"}).json()["parts"]["database"]
        assert database["state"] == "down" and "database or disk is full" in database["last_error"]
        assert database["cannot_write_since"] is not None
        (small_disk / "filler").unlink()
        wait_until(lambda: api.get("/health").status_code == 200, 10, message="healthy once it writes")
        assert store.count("cases") == 2 and store.count("dead_letters") == 0


def test_a_database_file_deleted_under_the_gateway_stops_ingest(tmp_path, tables, caplog):
    folder, away = tmp_path / "gateway", tmp_path / "away"
    store = Store(f"sqlite:///{folder}/gateway.sqlite")
    ingest, api = Ingest(store, tables, clock=lambda: NOW), TestClient(create_app(store, tables))
    assert ingest.handle_batch([(TOPIC, payload(incident_id="before"))]) == ["case_created"]
    batch = [(TOPIC, payload(incident_id="during", location={"lat": 39.5, "lon": 117.5})), (TOPIC, b"not json")]

    def refused(why: str) -> None:
        with pytest.raises(DatabaseUnavailable, match=why):  # nothing acknowledged: it comes again
            ingest.handle_batch(batch)
        health = api.get("/health")
        assert health.status_code == 503 and health.json()["down"] == ["database"]

    folder.rename(away)  # moved away: the open file follows, but nothing reads it at the path
    refused("gone")
    assert "database file " + str(folder / "gateway.sqlite") + " was deleted or moved under the running gateway" in caplog.text
    folder.mkdir()  # a copy put back while the gateway runs is another file: writes to the old one would vanish
    shutil.copy(away / "gateway.sqlite", folder / "gateway.sqlite")
    refused("another file")
    shutil.rmtree(folder)
    away.rename(folder)  # the file itself back where it was: on again
    assert ingest.handle_batch(batch) == ["case_created", "dead_letter"]
    assert api.get("/health").status_code == 200 and store.count("cases") == 2
    shutil.rmtree(folder)  # rm -rf: gone for good
    refused("gone")
    assert not store.reachable()


@pytest.mark.slow
def test_a_database_down_is_said_once_by_the_clock_and_by_ingest_not_at_every_try(tmp_path, tables, broker, caplog):
    """A PostgreSQL stopped for 30 s wrote 226 tracebacks into the gateway's log (the clock's steps each round,
    ingest every 2 s). Each failure is said once (again on another reason or after a minute), its end once."""
    from gateway.service import MqttIngest
    from gateway.config import Broker as GatewayBroker, GatewayConfig

    caplog.set_level(logging.INFO, logger="gateway.service")
    folder, away = tmp_path / "gateway", tmp_path / "away"
    store = Store(f"sqlite:///{folder}/gateway.sqlite")
    health = Health(0.02)
    clock = Clock(store, tables, make_client("gateway-clock"), every_s=0.02, health=health)  # not connected
    gateway = MqttIngest(GatewayConfig(broker=GatewayBroker(port=broker.port, client_id="gateway-1")),
                         Ingest(store, tables, clock=lambda: NOW), health)
    folder.rename(away)  # the database gone from under the gateway
    clock.start()
    gateway.start()
    publisher = make_client("box-1")
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    try:
        wait_subscribed(gateway)
        publisher.publish(TOPIC, payload(incident_id="during"), qos=1)
        wait_until(lambda: health.ingest["failing_since"], 10, 0.05, message="ingest failed")
        time.sleep(4.5)  # two more tries of ingest, some 200 rounds of the clock
        assert len(health.clock["failed_steps"]) == 4, health.clock
        said = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert len(said) == 5, said  # each of the clock's four steps and ingest, once
        away.rename(folder)  # back: the batch commits
        wait_until(lambda: store.count("cases") == 1, 10, 0.05, message="the case once the database is back")
        wait_until(lambda: "clock step escalate works again" in caplog.text, 5, 0.05, message="the clock again")
    finally:
        clock.stop.set()
        gateway.stop()
        publisher.loop_stop()
    assert "tried again every 2 s) works again (3 tries failed since" in caplog.text


def test_a_request_that_finds_the_database_down_is_told_503_and_when_to_try_again(tmp_path, tables, caplog):
    """A read or a page while the database did not answer was a bare 500 "Internal Server Error" and a traceback:
    neither the operator nor a client could tell that trying again later would do. Here the SQLite file is
    deleted under the gateway, and the next connection opens an empty one."""
    path = tmp_path / "gw.sqlite"
    store = Store(f"sqlite:///{path}")
    token = new_token(store, "ops", "admin")
    client = TestClient(create_app(store, tables), raise_server_exceptions=False)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/cases", headers=headers).status_code == 200
    signed_in = client.post("/ui/login", data={"token": token}, follow_redirects=False)
    assert signed_in.status_code == 303 and client.get("/ui/cases").status_code == 200
    path.unlink()
    store.engine.dispose()
    answer = client.get("/cases", headers=headers)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5", answer.text
    assert answer.json()["detail"].startswith("the database did not answer (no such table")
    assert "SELECT" not in answer.text  # the statement SQLAlchemy puts in its error is not told
    page = client.get("/ui/cases")
    assert page.status_code == 503 and "数据库暂时不可用" in page.text and page.headers["retry-after"] == "5"
    assert "Traceback" not in caplog.text


def raised(db: sqlite3.Connection, sql: str) -> sqlite3.Error:
    try:
        db.execute(sql)
    except sqlite3.Error as exc:
        return exc
    raise AssertionError(f"{sql} did not fail")


def test_only_errors_that_say_the_database_cannot_write_are_the_databases(tmp_path):
    db = sqlite3.connect(tmp_path / "x.sqlite", timeout=0)
    db.execute("CREATE TABLE t (x UNIQUE)")
    db.execute("INSERT INTO t VALUES (1)")
    db.commit()
    other = sqlite3.connect(tmp_path / "x.sqlite", timeout=0)
    other.execute("BEGIN IMMEDIATE")
    locked = raised(db, "INSERT INTO t VALUES (2)")
    other.rollback()
    db.execute("PRAGMA query_only=1")
    read_only = raised(db, "INSERT INTO t VALUES (3)")
    db.execute("PRAGMA query_only=0")
    mistakes = [raised(db, "INSERT INTO t VALUES (1)"), raised(db, "SELEC 1"), raised(db, "SELECT nothing FROM t")]
    assert dberrors.cannot_write(read_only) and not dberrors.cannot_write(locked) and dberrors.contended(locked)
    for exc in mistakes:  # a message that fails so fails every time: a dead letter, as before
        assert not dberrors.cannot_write(exc) and not dberrors.contended(exc), exc
    for state in ("53100", "25006", "08006", "57P01", "58030"):  # disk full, read-only, connection lost, shut down, I/O
        assert dberrors.cannot_write(psycopg.errors.lookup(state)("")), state
    for state in ("22001", "23505", "42601", "54000"):  # value too long, unique, syntax, too complex
        assert not dberrors.cannot_write(psycopg.errors.lookup(state)("")), state
    assert dberrors.cannot_write(psycopg.OperationalError("server closed the connection unexpectedly"))


def ready_store(url: str) -> Store | None:
    """A store once the server takes connections (it listens a moment before it does: "the database system is
    starting up", which ``Store`` says as DatabaseUnusable)."""
    try:
        return Store(url)
    except (OperationalError, DatabaseUnusable):
        return None


def legacy_rows(store: Store) -> None:
    """Rows a gateway stored before values were checked: a year-1 time, a NaN box, a grid with '+'."""
    with store.begin() as db:
        db.execute(update(schema.cases).where(schema.cases.c.incident_id == "bad-time")
                   .values(reported_at=-62135600400.0, created_at=-62135600400.0))
        db.execute(update(schema.cases).where(schema.cases.c.incident_id == "bad-box")
                   .values(bbox="[NaN, 0.1, Infinity, 0.3]"))
        db.execute(update(schema.cases).where(schema.cases.c.incident_id == "bad-grid").values(grid="HQ+DZG"))
        case_id = db.execute(schema.cases.select().where(schema.cases.c.incident_id == "bad-grid")).first().id
        db.execute(insert(schema.case_log).values(case_id=case_id, at=NOW, actor="clock", role="system",
                                                   action="escalate", note="overdue", target=None))


@pytest.mark.slow
def test_rows_that_cannot_be_shown_neither_break_the_api_nor_stop_the_notices(store, tables, broker):
    ingest = Ingest(store, tables, clock=time.time)
    seen = wire.iso(time.time())  # dispatched: one seen long ago would wait for review, with no notice
    for i, incident in enumerate(["bad-time", "good", "bad-box", "bad-grid"]):
        ingest.handle(TOPIC, payload(incident_id=incident, location={"lat": 39 + i / 10, "lon": 117.0},
                                     started_at=seen, observed_at=seen))
    legacy_rows(store)
    api = TestClient(create_app(store, tables, public_read=True))
    listed = api.get("/cases")
    assert listed.status_code == 200, listed.text
    assert {c["incident_id"] for c in listed.json()} == {"bad-time", "good", "bad-box", "bad-grid"}
    for case in listed.json():
        assert api.get(f"/cases/{case['id']}").status_code == 200
    assert api.get("/ui/cases").status_code == 200

    watcher = Watcher(broker.port, ["xl/v1/dispatch/#", "xl/v1/escalations/#"])
    client = make_client("clock-test")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        clock = Clock(store, tables, client, every_s=1)
        clock.publish_notices(time.time())
        wait_until(lambda: len(watcher.messages) >= 3, 5, message="the notices that can be built")
        sent = [wire.decode_notice(p) for _, p in watcher.messages]  # each follows the notice schema
        assert all(isinstance(v, int | float) and math.isfinite(v) for n in sent for v in n["case"]["bbox"])
        reasons = [d["reason"] for d in store.list_dead_letters()]
        assert len(reasons) == 1 and "notice set aside: WireError: grid 'HQ+DZG'" in reasons[0]
        assert store.unpublished(("dispatched", "escalate")) == []  # nothing is tried again every round
        clock.publish_notices(time.time())
        assert len(store.list_dead_letters()) == 1
    finally:
        client.loop_stop()
        watcher.stop()


@pytest.mark.slow
def test_a_box_named_like_the_notice_topics_gets_no_case_and_no_acknowledgement(store, tables, broker):
    """Box ids ``dispatch`` and ``escalations`` opened cases, and the gateway then acknowledged them on
    xl/v1/dispatch/ack (and sent suppressions there): non-notices where departments read notices."""
    watcher = Watcher(broker.port, ["xl/v1/+/ack"])
    try:
        with gateway_and_box(store, tables, broker.port, "boxes") as (_, box):
            for name in ("dispatch", "escalations"):
                box.publish(wire.incident_topic(name, "cam-1"), payload(box=name, camera="cam-1"),
                            qos=1).wait_for_publish(5)
            box.publish(TOPIC, payload(), qos=1).wait_for_publish(5)
            wait_until(lambda: watcher.latest_json("box-1/ack"), 10, message="box-1's acknowledgement")
            assert [c["box"] for c in store.list_cases()] == ["box-1"]
            reasons = sorted(d["reason"] for d in store.list_dead_letters())
            assert reasons == [f"topic's box '{name}' is reserved: xl/v1/{name}/ carries the gateway's notices"
                               for name in ("dispatch", "escalations")]
            time.sleep(0.5)
            assert {t for t, _ in watcher.messages} == {"xl/v1/box-1/ack"}  # none among the notices
    finally:
        watcher.stop()


@pytest.mark.slow
def test_evidence_of_too_many_scans_from_a_box_is_a_dead_letter(store, tables, broker):
    """A photo's scans were counted, a box's snapshot's were not: a progressive JPEG of thousands of scans
    was kept, and decoded (each scan) by every browser that showed the case and by the training export."""
    watcher = Watcher(broker.port, ["xl/v1/box-1/ack"])
    sent = {"bomb": (wire.evidence_topic("box-1", "gate", "bomb"), scans(500)),
            "fine": (wire.evidence_topic("box-1", "gate", "fine"), scans(0)),  # progressive, six scans
            "incident": (TOPIC, payload(incident_id="bomb", observed_at=wire.iso(time.time()),
                                        started_at=wire.iso(time.time() - 30)))}
    try:
        with gateway_and_box(store, tables, broker.port, "box-1") as (_, box):
            for topic, body in sent.values():
                box.publish(topic, body, qos=1).wait_for_publish(5)
            told = {}

            def all_told():
                for _, ack in watcher.messages:
                    told.update(wire.decode_ack(ack))
                return len(told) == 3

            wait_until(all_told, 10, message="box-1's acknowledgements")
        outcome = {name: told[wire.message_digest(*sent[name])] for name in sent}
        assert outcome == {"bomb": "dead_letter", "fine": "evidence", "incident": "case_created"}
        (dead,) = store.list_dead_letters()
        assert dead["topic"] == sent["bomb"][0]
        assert dead["reason"] == "a JPEG of 506 scans; at most 64 (a progressive JPEG has about 10)"
        assert store.count("evidence") == 1  # the six-scan one
    finally:
        watcher.stop()


@pytest.mark.slow
def test_a_retained_poison_message_is_set_aside_once_not_at_every_reconnect(store, tables, broker):
    """Boxes never retain incidents; a retained one came again at every subscription: one more dead letter
    at each reconnect, for as long as it stayed at the broker."""
    from gateway.config import Broker, GatewayConfig
    from gateway.service import MqttIngest

    hostile = make_client("hostile")
    hostile.connect("127.0.0.1", broker.port)
    hostile.loop_start()
    try:
        for run in range(3):  # the gateway comes up, or back, three times
            gateway = MqttIngest(GatewayConfig(broker=Broker(port=broker.port, client_id="gateway-1")),
                                 Ingest(store, tables, clock=time.time))
            gateway.start()
            try:
                wait_subscribed(gateway)
                if run == 0:
                    hostile.publish(TOPIC, b'{"retained": "poison"}', qos=1, retain=True).wait_for_publish(5)
                    wait_until(lambda: store.list_dead_letters(), 10, message="the poison set aside")
                time.sleep(1)
            finally:
                gateway.stop()
        assert len(store.list_dead_letters()) == 1
    finally:
        hostile.publish(TOPIC, b"", qos=1, retain=True).wait_for_publish(5)  # the broker forgets it
        hostile.loop_stop()


def test_health_and_metrics_show_a_stopped_ingest(store, tables):
    health = Health(clock_every_s=1)
    health.broker_up(True)
    health.clock_round([])
    api = TestClient(create_app(store, tables, health_state=health))
    assert api.get("/health").json()["status"] == "ok"
    health.failed("OperationalError: connection refused")
    answer = api.get("/health")
    assert answer.status_code == 503 and answer.json()["down"] == ["ingest"]
    assert "OperationalError" not in answer.text  # details only with a token
    token = new_token(store, "ops", "admin")
    detail = api.get("/health", headers={"Authorization": f"Bearer {token}"}).json()
    assert detail["parts"]["ingest"]["last_error"].startswith("OperationalError") and detail["cases"] == 0
    assert "xl_gateway_ingest_failing 1.0" in api.get("/metrics").text
    health.committed(["case_created", "dead_letter"])
    assert api.get("/health").status_code == 200
    assert 'xl_gateway_messages_total{outcome="dead_letter"}' in api.get("/metrics").text


def test_the_health_details_are_an_admins_alone(store, tables):
    """/health showed any token, a department's too, the error texts of the broker, the database and ingest (hosts,
    paths, the driver's words) and which boxes run ahead of the clock. Any token gets the parts' states and how many
    cases it may see; only an admin's the details."""
    health = Health(clock_every_s=1)
    health.broker_up(True)
    health.clock_round([])
    health.failed("OperationalError: connection to server at 10.0.0.5, port 5432 failed")
    health.held_ahead("box-7", ("i-1", 1), 3600.0)
    api = TestClient(create_app(store, tables, health_state=health))
    for token in (new_token(store, "tp", "department", department="traffic-police"),
                  new_token(store, "op", "operator", grid="HQ-DZG")):
        answer = api.get("/health", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 503 and answer.json()["down"] == ["ingest"] and answer.json()["cases"] == 0
        assert answer.json()["parts"]["ingest"] == {"state": "down"}
        assert "10.0.0.5" not in answer.text and "box-7" not in answer.text, answer.text
    admin = api.get("/health", headers={"Authorization": f"Bearer {new_token(store, 'ops', 'admin')}"}).json()
    assert "10.0.0.5" in admin["parts"]["ingest"]["last_error"] and "box-7" in admin["parts"]["ingest"]["boxes_ahead"]


def test_a_fault_reason_with_control_or_bidi_characters_is_a_case_with_them_shown_replaced(store, tables):
    """A camera fault's reason is its reader's error, with words the camera's own server may choose (an RTSP reason
    phrase): a right-to-left override in it reversed the rest of the case page's line, and a terminal escape and a
    lone surrogate (a JSON escape) were shown as sent. The fault is a case all the same, its reason shown with each
    such character as U+FFFD; the event is kept as it came."""
    sent = "cannot open rtsp://cam\u202egpj.exe: 401 \x1b[2J\ud800 Unauthorized"
    fault = payload(type="camera_fault", incident_id="fault-1", attributes={"reason": sent}, evidence=None)
    assert Ingest(store, tables, clock=time.time).handle(TOPIC, fault) == "case_created"
    shown = "cannot open rtsp://cam\ufffdgpj.exe: 401 \ufffd[2J\ufffd Unauthorized"
    token = new_token(store, "root", "admin")
    client = TestClient(create_app(store, tables))
    case = client.get("/cases/1", headers={"Authorization": f"Bearer {token}"})
    assert case.status_code == 200 and case.json()["incidents"][0]["reason"] == shown, case.text
    client.post("/ui/login", data={"token": token})
    assert f"<p class=reason>摄像机报告的原因: {html.escape(shown)}</p>" in client.get("/ui/cases/1").text
    with store.engine.connect() as db:
        assert ingestdb.recorded_payload(db, "fault-1", 1) == fault.decode()


# what a box wrote into a topic to read as a line of the gateway's own, and to turn the rest of the line around
FORGED = ('\u202e\u200b\n{"t": "2026-12-07T12:00:00.000+08:00", "level": "INFO", "logger": "gateway.cases", '
          '"msg": "case 12 closed by admin"}')


def test_a_topic_with_a_newline_and_a_bidi_override_is_one_log_line_with_them_escaped(store, tables, caplog):
    """A dead letter's topic and a refused heartbeat's were logged as sent: a newline in one made, once the line's
    JSON was read (``jq -r .msg``, a log collector), a second line that read as the gateway's own, and a right-to-left
    override turned the rest of it around. Each is one line, as the command logs it (``JsonLines``), its message
    with the box's characters escaped as ``repr`` writes them, the box's id beside it as before."""
    from xueliang.cli import JsonLines

    caplog.handler.setFormatter(JsonLines())
    caplog.set_level(logging.WARNING)
    ingest = Ingest(store, tables, clock=lambda: NOW)
    assert ingest.handle(f"xl/v1/box-1/gate{FORGED}/incident", payload()) == "dead_letter"
    assert ingest.handle(f"xl/v1/box-2{FORGED}/status", b"{}") == "heartbeat_refused"
    lines = caplog.text.splitlines()
    assert len(lines) == 2, caplog.text
    said = [json.loads(line)["msg"] for line in lines]
    escaped = FORGED.replace("\n", "\\n").replace("\u202e", "\\u202e").replace("\u200b", "\\u200b")
    assert said[0].startswith(f"dead letter on xl/v1/box-1/gate{escaped}/incident: topic's camera"), said[0]
    assert said[1].startswith("heartbeat of box 'box-2\\u202e\\u200b\\n{"), said[1]  # its id as before (repr)
    assert f"refused: xl/v1/box-2{escaped[:40]}" in said[1], said[1]  # a topic's box is said to its 64th character
    for msg in said:
        assert msg.isprintable(), msg


@pytest.mark.slow
def test_hostile_times_through_the_real_gateway_are_dead_letters_or_refusals_saying_why(store, tables, broker):
    """Incidents and heartbeats whose times are NaN, 1e308, negative, words, year 9999, without a zone, or a leap
    second, from a box over real Mosquitto to a real gateway: each incident is a dead letter saying which field and
    why (a time without a zone said only that it did not match the schema's pattern), each heartbeat refused saying
    why (one without a zone was read as UTC: a box writing Beijing time showed its clock 8 h off) or, on the calendar
    in any year, recorded with the box's clock flagged. Ingest goes on, and the cases it opens on odd but real times
    (an offset of +14:00, a start in 2000) are due by the gateway's clock."""
    now = time.time()
    seen = wire.iso(now - 30)

    def incident(name: str, **changes) -> bytes:
        return payload(**{"incident_id": name, "started_at": seen, "observed_at": seen, **changes})

    def nan(body: bytes) -> bytes:
        return body.replace(b'"@@"', b"NaN")

    sent = [(nan(incident("nan", observed_at="@@")), "not JSON: NaN is not a JSON number"),
            (incident("huge", observed_at=1e308), "observed_at: 1e+308 is not of type 'string'"),
            (incident("negative", observed_at=-5), "observed_at: -5 is not of type 'string'"),
            (incident("words", observed_at="yesterday"),
             "observed_at: time 'yesterday' is not written as the wire's times are (2026-12-06T08:00:00.000Z)"),
            (incident("y9999", observed_at="9999-12-31T23:59:59Z"),
             "observed_at: time '9999-12-31T23:59:59Z' is outside 2000..2099"),
            (incident("no-zone", observed_at=seen[:-1]),
             f"observed_at: time '{seen[:-1]}' has no zone (Z, or an offset as +08:00)"),
            (incident("leap", state="end", seq=2, end_reason="left", ended_at="2026-12-31T23:59:60Z"),
             "ended_at: time '2026-12-31T23:59:60Z' is not a real time: second must be in 0..59")]
    odd = [incident("plus-14", location={"lat": 39.1, "lon": 117.1},
                    observed_at=time.strftime("%Y-%m-%dT%H:%M:%S+14:00", time.gmtime(now - 30 + 14 * 3600))),
           incident("since-2000", location={"lat": 39.3, "lon": 117.3}, started_at="2000-01-01T00:00:00Z"),
           incident("after", location={"lat": 39.5, "lon": 117.5})]

    def beat(at) -> bytes:
        return json.dumps({"box": "box-1", "state": "online", "at": at,
                           "cameras": {"gate": {"state": "online"}}}).encode()

    refused = [nan(beat("@@")), beat(1e308), beat(-5), beat("yesterday"), beat(seen[:-1]), beat("2026-12-31T23:59:60Z")]
    with gateway_and_box(store, tables, broker.port, "box-1") as (gateway, box):
        for body, _ in sent:
            box.publish(TOPIC, body, qos=1).wait_for_publish(5)
        for body in refused:
            box.publish(wire.status_topic("box-1"), body, qos=0).wait_for_publish(5)
        wait_until(lambda: gateway.outcomes["heartbeat_refused"] == len(refused), 10, message="the heartbeats refused")
        for i, at in enumerate(("9999-12-31T23:59:59Z", "1970-01-01T00:00:05Z")):  # the box shown, its clock off
            box.publish(wire.status_topic("box-1"), beat(at), qos=0).wait_for_publish(5)
            wait_until(lambda: gateway.outcomes["heartbeat"] == i + 1, 10, message=f"the heartbeat of {at}")
            (shown,) = boxes.listed(store)[1]
            behind = now - wire.checked_time(at, any_year=True)
            assert shown["clock_off"] and abs(shown["clock_offset_s"] - behind) < 60
        for body in odd:
            box.publish(TOPIC, body, qos=1).wait_for_publish(5)
        wait_until(lambda: store.count("cases") == len(odd), 10, message="the cases after them")
    assert sorted(d["reason"] for d in store.list_dead_letters()) == sorted(reason for _, reason in sent)
    for case in store.list_cases():  # 1h, counted from when the gateway opened each
        assert case["state"] == "dispatched" and case["deadline"] == case["created_at"] + 3600.0, case


def picture(n: int) -> bytes:
    """A small JPEG of its own bytes: ``JPEG`` with a comment segment holding ``n``."""
    return JPEG[:2] + b"\xff\xfe\x00\x06" + n.to_bytes(4, "big") + JPEG[2:]


def evidence_of(jpeg: bytes, frame: bytes | None = None) -> dict:
    return {"sha256": hashlib.sha256(jpeg).hexdigest(), "bytes": len(jpeg),
            **({"frame": {"sha256": hashlib.sha256(frame).hexdigest(), "bytes": len(frame)}} if frame else {})}


def test_a_picture_no_event_of_its_box_names_is_set_aside_after_a_while_and_the_named_ones_stay(database_url, tables):  # noqa: F811
    """A box's own picture under its own incident that none of its events named was kept and never shown, nor
    quarantined (the incident came): kept for good, as many as the box sent. Now it waits as an orphan does
    (``ORPHAN_EVIDENCE_S``) and is set aside with the reason; the start's snapshot and frame stay, as do bytes another
    of the box's incidents names (kept once, under the first), and an end's picture that came after its event
    (through another gateway). Another box's event naming them keeps nothing."""
    store = Store(database_url)
    ingest = Ingest(store, tables, clock=lambda: NOW)
    iid, evidence_topic = "3f2a9c", wire.evidence_topic("box-1", "gate", "3f2a9c")
    snapshot, frame, unnamed, shared, end, other = (picture(n) for n in range(6))
    for jpeg in (frame, snapshot, unnamed, shared, other):
        assert ingest.handle(evidence_topic, jpeg) == "evidence"
    assert ingest.handle(TOPIC, payload(evidence=evidence_of(snapshot, frame))) == "case_created"
    far = {"lat": 39.30, "lon": 117.30}  # another incident of the box, another case, naming bytes kept under 3f2a9c
    assert ingest.handle(TOPIC, payload(incident_id="3f2a9d", location=far, evidence=evidence_of(shared))) == \
        "case_created"
    ended = payload(seq=2, state="end", ended_at="2026-01-01T00:05:00Z", end_reason="left", evidence=evidence_of(end))
    assert ingest.handle(TOPIC, ended) == "case_updated"
    assert ingest.handle(evidence_topic, end) == "evidence"  # after its event
    box_2 = json.loads(payload(incident_id="b2-1", box="box-2", location={"lat": 30.0, "lon": 110.0},
                               evidence=evidence_of(other)))
    assert ingest.handle(wire.incident_topic("box-2", "gate"), json.dumps(box_2).encode()) == "case_created"
    assert store.quarantine_orphan_evidence(NOW - 1, NOW + 3599) == 0  # too young to judge
    assert store.quarantine_orphan_evidence(NOW + 1, NOW + 3601) == 2
    assert sorted(d["reason"] for d in store.list_dead_letters()) == [
        f"evidence no event of incident {iid!r} names (sha256 {hashlib.sha256(jpeg).hexdigest()[:12]}...) within "
        "3601 s: a box sends a picture for an event that names it"
        for jpeg in sorted((unnamed, other), key=lambda j: hashlib.sha256(j).hexdigest())]
    assert store.count("evidence") == 4
    case = store.get_case(1)
    assert [(i["evidence_sha256"], i["end_evidence_sha256"]) for i in case["incidents"]] == [
        (evidence_of(snapshot)["sha256"], evidence_of(end)["sha256"])]
    assert store.evidence_bytes(evidence_of(frame)["sha256"]) == frame
    assert store.get_case(2)["incidents"][0]["evidence_sha256"] == evidence_of(shared)["sha256"]


def test_a_box_sending_thousands_of_pictures_under_one_incident_has_eight_kept_and_the_rest_set_aside(
        database_url, tables):  # noqa: F811
    """Every distinct picture was kept (10,000 of 685 bytes under one incident: 10,001 rows, 14 MB on SQLite; 40 GB
    of 4 MB ones, the wire's largest). An incident has at most a snapshot and a frame at its start and its end:
    eight are kept, the rest are dead letters with the reason, alone or in a batch; one kept already, sent again, is
    acknowledged as before."""
    store = Store(database_url)
    ingest = Ingest(store, tables, clock=lambda: NOW)
    topic = wire.evidence_topic("box-1", "gate", "3f2a9c")
    assert ingest.handle(topic, JPEG) == "evidence"
    assert ingest.handle(TOPIC, payload()) == "case_created"
    assert ingest.handle_batch([(topic, picture(n)) for n in range(10)]) == ["evidence"] * 7 + ["dead_letter"] * 3
    assert ingest.handle(topic, picture(10)) == "dead_letter"
    assert ingest.handle(topic, JPEG) == ingest.handle(topic, picture(0)) == "evidence"  # kept already
    assert store.count("evidence") == 8 and store.count("dead_letters") == 4
    assert {d["reason"] for d in store.list_dead_letters()} == {
        "incident '3f2a9c' has 8 pictures kept already, the most one incident keeps (8: a box sends a snapshot and a "
        "frame at its start and its end)"}
    assert store.evidence_bytes(store.list_cases()[0]["evidence_sha256"]) == JPEG


def test_a_database_of_version_12_keeps_its_pictures_and_sets_aside_its_orphans(database_url, tables):  # noqa: F811
    """Migration 13 marks what a database kept before as named (what no event named then cannot be told from the
    rest without reading every event), but a picture whose incident never came: set aside as before."""
    store = Store(database_url)
    ingest = Ingest(store, tables, clock=lambda: NOW)
    for iid, jpeg in (("3f2a9c", JPEG), ("3f2a9c", picture(1)), ("ghost", picture(2))):
        assert ingest.handle(wire.evidence_topic("box-1", "gate", iid), jpeg) == "evidence"
    assert ingest.handle(TOPIC, payload()) == "case_created"
    with store.begin() as db:
        undo_migration_13(db)
        db.execute(text("DELETE FROM schema_migrations WHERE version >= 13"))
    store.engine.dispose()
    store = Store(database_url)
    assert store.quarantine_orphan_evidence(NOW + 1, NOW + 3601) == 1
    (dead,) = store.list_dead_letters()
    assert dead["reason"] == "evidence without an incident: no incident 'ghost' arrived within 3601 s"
    assert store.count("evidence") == 2


def test_a_valid_message_is_read_without_jsonschema_which_only_explains_a_refused_one():
    """Every box, replay and gateway imported jsonschema (45 ms) at start; valid messages go through fastjsonschema
    and only a refused one's explanation needs it."""
    code = ("import sys, json; from xueliang import wire; "
            "wire.loads(b'{\"a\": 1}'); print(json.dumps('jsonschema' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert json.loads(out.stdout) is False, out.stdout
