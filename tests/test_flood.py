"""A hostile or broken box flooding the gateway: the dead letters it causes are deleted past the city's retention,
said in the log a few a minute, its pictures no event names wait so many at most, and its big messages are held
in the gateway's memory so many bytes at most while the gateway is slow."""

import gc
import json
import logging
import sqlite3
import time
import weakref

import pytest
import yaml
from sqlalchemy import inspect, select, text

from edge.config import Broker
from edge.publisher import Outbox, Publisher
from gateway import ingest as ingest_module, service, storage
from gateway.config import TABLES_DIR, GatewayConfig, load_tables
from gateway.ingest import Ingest
from gateway.service import Clock, DeadLetterRetention
from gateway.schema import dead_letters
from gateway.storage import Store
from xueliang import services, wire

from .conftest import wait_until
from .test_gateway import TOPIC, payload
from .test_poison import evidence_of, picture
from .test_workflow import database_url, undo_migration_15, undo_migration_22  # noqa: F401 (fixture)

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY = 86400.0
BAD = wire.incident_topic("box-1", "gate")


@pytest.fixture
def tables():
    return load_tables(TABLES_DIR / "demo.yaml")


def flood(store: Store, n: int, at: float, size: int = 65_536, first: int = 0) -> None:
    with store.begin() as db:
        for i in range(first, first + n):
            storage.dead_letter(db, BAD, "not JSON", i.to_bytes(4, "big") * (size // 4), at + i)


def test_dead_letters_past_the_citys_days_and_megabytes_are_deleted_oldest_first_in_bounded_rounds(
        database_url, monkeypatch, caplog):  # noqa: F811
    """Dead letters were never deleted: 64 kB kept of each bad message, a box sending them grew the table without
    end. The clock deletes those older than ``dead_letter_days`` and, past ``dead_letter_mb``, the oldest, a round
    at a time, and counts them."""
    assert (GatewayConfig().dead_letter_days, GatewayConfig().dead_letter_mb) == (90.0, 1024)
    caplog.set_level(logging.INFO, logger="gateway.service")
    monkeypatch.setattr(service, "DEAD_LETTERS_PER_ROUND", 10)
    store = Store(database_url)
    flood(store, 5, NOW - 91 * DAY, size=100)  # old and small
    flood(store, 40, NOW, first=5)  # 40 of 64 kB: 2.5 MB
    retention = DeadLetterRetention(store, days=90, mb=1)
    deleted = service.DEAD_LETTERS_DELETED
    before = {why: deleted.labels(why)._value.get() for why in ("age", "budget")}
    rounds = [retention.sweep(NOW)]
    while rounds[-1]:
        rounds.append(retention.sweep(NOW + len(rounds)))
    assert rounds == [True, True, False]  # 5 old and 5 of the budget's, then 10, then 9
    assert store.count("dead_letters") == 16 and store.dead_letter_bytes() == 16 * 65_536 == 2**20
    kept = [d["bytes"] for d in store.list_dead_letters(limit=100)]
    assert kept == [65_536] * 16
    assert [d["id"] for d in store.list_dead_letters(limit=1)] == [45]  # the newest stay
    assert {why: deleted.labels(why)._value.get() - before[why] for why in before} == {"age": 5, "budget": 24}
    assert "5 dead letter(s) deleted, received more than 90 days ago (dead_letter_days)" in caplog.text
    assert ("9 dead letter(s) deleted past the dead letters' 1 MB (dead_letter_mb), the oldest of the boxes holding "
            "most (each box keeps its newest up to 1.0 MB): box 'box-1' 9") in caplog.text
    assert not retention.sweep(NOW + 10) and store.count("dead_letters") == 16  # within: nothing more


def test_the_gateways_clock_deletes_dead_letters_at_its_rounds(tmp_path, tables):
    """The clock's own step, as the gateway runs it: a full round has it go round again at once."""
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    flood(store, 3, NOW - 2 * DAY, size=10)
    flood(store, 3, NOW, size=10, first=3)
    clock = Clock(store, tables, client=None, every_s=1, retention=DeadLetterRetention(store, days=1, mb=1))
    clock.delete_dead_letters(NOW + 10)
    assert store.count("dead_letters") == 3 and not clock.wake.is_set()


def test_a_dead_letters_id_is_never_given_again_after_retention_deleted_it(database_url):  # noqa: F811
    """SQLite numbers a new row one past the last in the table: once retention had deleted every dead letter, or the
    newest, their ids were given again (dead letter 5 in an operator's ticket later named another message). The next
    one goes on past them, on a restart too, and the ids after it follow it; PostgreSQL's sequences never go back."""
    store = Store(database_url)
    flood(store, 5, NOW - 91 * DAY, size=10)  # ids 1-5
    retention = DeadLetterRetention(store, days=90, mb=1)
    assert not retention.sweep(NOW) and store.count("dead_letters") == 0  # every one deleted
    store.close()
    store = Store(database_url)  # started again
    flood(store, 2, NOW, size=10, first=5)
    assert [d["id"] for d in store.list_dead_letters(limit=10)] == [7, 6]
    flood(store, 1, NOW + DAY, size=40, first=7)  # 8: 40 bytes, past a budget of 30 alone
    assert store.delete_dead_letters_over(30, ["box-1"], 10) == {"box-1": 3} and store.count("dead_letters") == 0
    flood(store, 1, NOW + DAY, size=10, first=8)
    assert [d["id"] for d in store.list_dead_letters(limit=10)] == [9]
    assert store.delete_dead_letters_before(NOW + 2 * DAY, 10) == 1
    flood(store, 2, NOW + 2 * DAY, size=10, first=9)
    assert [d["id"] for d in store.list_dead_letters(limit=10)] == [11, 10]
    store.close()


def test_a_database_of_version_14_gets_its_dead_letters_and_pictures_indexed(database_url):  # noqa: F811
    """Without the index, the clock's look for old dead letters read the whole table every round."""
    store = Store(database_url)
    flood(store, 2, NOW - 100 * DAY, size=10)
    with store.begin() as db:
        undo_migration_15(db)
        db.execute(text("DELETE FROM schema_migrations WHERE version = 15"))
    store.engine.dispose()
    store = Store(database_url)
    with store.engine.connect() as db:
        assert "ix_dead_letters_received_at" in {i["name"] for i in inspect(db).get_indexes("dead_letters")}
        assert "ix_evidence_box_named" in {i["name"] for i in inspect(db).get_indexes("evidence")}
    assert store.delete_dead_letters_before(NOW - 90 * DAY, 10) == 2


def test_a_database_of_version_21_gets_its_dead_letters_boxes_from_their_topics(database_url):  # noqa: F811
    store = Store(database_url)
    flood(store, 2, NOW, size=10)
    store.dead_letter("notice:dispatched:case/7", "no such department", b"{}", NOW + 5)
    with store.begin() as db:
        undo_migration_22(db)
        db.execute(text("DELETE FROM schema_migrations WHERE version = 22"))
    store.engine.dispose()
    store = Store(database_url)
    assert store.dead_letter_bytes_by_box() == {"box-1": 16, "": 2}  # 8 bytes each
    with store.engine.connect() as db:
        assert "ix_dead_letters_box_received_at" in {i["name"] for i in inspect(db).get_indexes("dead_letters")}
    store.close()


@pytest.mark.parametrize("bytes_by_box, keep, share", [
    ({}, 10, None), ({"a": 10}, 10, None), ({"a": 11}, 10, 10),
    ({"flood": 5000, "a": 30, "b": 20}, 100, 50),  # the others keep all theirs, the flood what they leave
    ({"x": 60, "y": 60, "a": 10}, 100, 45),  # two over it: alike
    ({"x": 1000, "y": 40, "a": 10}, 100, 50),  # y under the share: all its own
    ({f"fake-{n}": 10 for n in range(50)}, 100, 2),  # made-up boxes: each alike, rows whole
])
def test_past_the_budget_each_box_keeps_its_newest_up_to_a_share_the_same_for_all_over_it(bytes_by_box, keep, share):
    assert service.budget_share(bytes_by_box, keep) == share
    if share is not None:
        assert sum(min(n, share) for n in bytes_by_box.values()) <= keep


def test_one_boxs_flood_of_bad_messages_leaves_every_other_boxs_dead_letters(database_url, tables, caplog):  # noqa: F811
    """Past ``dead_letter_mb`` the oldest dead letters were deleted, whoever sent them: a box flooding bad messages
    (a broken firmware, a stolen password: an outsider's probe made 79 MB in 10 s) had every other box's, the ones an
    administrator looks for, deleted in a few minutes. Now the box holding most loses its own oldest."""
    caplog.set_level(logging.INFO, logger="gateway.service")
    store = Store(database_url)
    at = {"now": NOW - 3600}
    ingest = Ingest(store, tables, clock=lambda: at["now"])
    other = wire.incident_topic("box-2", "gate")
    assert ingest.handle(other, b"[" + b"2" * 10_000) == "dead_letter"  # box-2's, an hour before the flood
    at["now"] = NOW
    sent = [(BAD, b"%03d" % n + b"x" * 59_997) for n in range(20)]  # 1.2 MB of box-1's, past its 16 kB each
    assert ingest.handle_batch(sent[:10]) + ingest.handle_batch(sent[10:]) == ["dead_letter"] * 20
    after = wire.incident_topic("box-3", "gate")
    assert ingest.handle(after, b"[" + b"3" * 10_000) == "dead_letter"  # box-3's, right after it
    assert not DeadLetterRetention(store, days=90, mb=1).sweep(NOW + 60)
    kept = [(d["topic"], d["bytes"]) for d in store.list_dead_letters(limit=100)]
    assert kept == [(after, 10_001)] + [(BAD, 60_000)] * 17 + [(other, 10_001)]  # each whole; box-1's newest 17
    assert store.dead_letter_bytes() <= 2**20
    with store.engine.connect() as db:
        assert db.execute(select(dead_letters.c.payload).where(dead_letters.c.topic == BAD)
                          .order_by(dead_letters.c.id).limit(1)).scalar_one()[:3] == b"003"  # its 3 oldest gone
    assert ("3 dead letter(s) deleted past the dead letters' 1 MB (dead_letter_mb), the oldest of the boxes holding "
            "most (each box keeps its newest up to 1.0 MB): box 'box-1' 3") in caplog.text
    store.close()


def test_a_flood_of_bad_messages_writes_a_few_lines_a_minute_and_every_one_is_counted(tmp_path, tables, caplog):
    """Each dead letter was a warning: 10,000 bad messages from a box, 10,000 lines. Now the first 5 of each box and
    kind of reason in a minute are said, the rest in one line after the minute; each is kept and counted as before."""
    caplog.set_level(logging.WARNING, logger="gateway.ingest")
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    at = {"now": NOW}
    ingest = Ingest(store, tables, clock=lambda: at["now"])
    bad = [(BAD, b"not json %d" % n) for n in range(1000)] + \
        [(wire.incident_topic("box-2", "gate"), b"[%d" % n) for n in range(3)]
    outcomes = []
    for first in range(0, len(bad), 500):
        outcomes += ingest.handle_batch(bad[first:first + 500])
    assert outcomes == ["dead_letter"] * 1003 and store.count("dead_letters") == 1003
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 8 and sum(line.startswith(f"dead letter on {BAD}: not JSON") for line in lines) == 5
    assert lines[4].endswith("(more of the kind from this box within the minute are counted, not said one by one)")
    at["now"] += 61
    ingest.handle(wire.status_topic("box-1"), b'{"box": "box-1", "state": "offline"}')  # a heartbeat says the rest
    assert caplog.records[-1].getMessage().startswith(
        "995 more dead letter(s) in 61 s not said one by one (each is in the dead letters and in "
        "xl_gateway_messages_total{outcome=\"dead_letter\"}): box 'box-1' 995 (not JSON: ")
    assert ingest.handle(BAD, b"not json again") == "dead_letter"  # a new minute: said again
    assert caplog.records[-1].getMessage().startswith(f"dead letter on {BAD}: not JSON")


class Batch(list):
    """A batch of messages that can be watched for when it is freed (a list cannot)."""


def test_a_batch_of_messages_wrong_in_their_fields_is_freed_once_handled_not_left_to_the_cycle_collector(
        tmp_path, tables):
    """A message the schema refused raised its explanation from a local of the checking frame: the frame held its
    own exception, and that cycle the batch's frame with every payload in it, freed only by Python's cyclic
    collector, whose oldest generation runs seldom. 160,000 messages of 5-20 kB through a real Mosquitto and
    gateway: RSS 90 -> 305 MB, 56 MB of it batches waiting for that collector, the rest glibc's arenas left free."""
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, tables, clock=lambda: NOW)
    wrong = [payload(incident_id=f"wf-{n}", **change) for n, change in enumerate(
        [{"grid": "<script>"}, {"confidence": "high"}, {"zone": "z" * 5000}, {"started_at": "2024-02-30T00:00:00Z"}])]
    gc.collect()
    gc.disable()  # what refcounting frees alone
    try:
        batch = Batch((TOPIC, p) for p in wrong)
        freed = weakref.ref(batch)
        assert ingest.handle_batch(batch) == ["dead_letter"] * len(wrong)
        del batch
        assert freed() is None, "the batch is held by a reference cycle"  # (not shown: 4 payloads)
        def refused(acks: Batch) -> None:  # a box checks each acknowledgement so
            try:
                wire.decode_ack(acks[0])
            except wire.WireError:
                pass

        acks = Batch([json.dumps({"schema_version": 1, "gateway": "g", "at": "x", "messages": {}}).encode()])
        freed = weakref.ref(acks)
        refused(acks)
        del acks
        assert freed() is None, "the acknowledgement is held by a reference cycle"
    finally:
        gc.enable()


def test_a_flood_that_stops_has_its_last_minutes_count_said_by_the_clock(tmp_path, tables, caplog):
    """The count of dead letters not said one by one was said at the next message after the minute: a flood that
    stopped kept its last minute's count unsaid until some later message came. The gateway's clock says it."""
    caplog.set_level(logging.WARNING, logger="gateway.ingest")
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, tables, clock=time.time)
    ingest.said.window_s = 0.5  # a minute, shortened
    assert ingest.handle_batch([(BAD, b"not json %d" % n) for n in range(20)]) == ["dead_letter"] * 20
    clock = Clock(store, tables, client=None, every_s=0.05, summaries=[ingest.said])
    clock.start()
    try:
        wait_until(lambda: any(r.getMessage().startswith("15 more dead letter(s) in ") for r in caplog.records), 10,
                   message="the minute's count said with no message after the flood")
    finally:
        clock.stop.set()
        clock.wake.set()
        clock.join(5)


def test_the_minutes_count_is_said_within_the_minute_however_seldom_escalation_runs(tmp_path, tables, caplog,
                                                                                       monkeypatch):
    """The clock went round every ``escalation_check_s``: at 3600 the count came up to an hour late. It goes round
    ``CLOCK_ROUND_MAX_S`` apart at most now, escalation at its own cadence still."""
    caplog.set_level(logging.WARNING, logger="gateway.ingest")
    monkeypatch.setattr(service, "CLOCK_ROUND_MAX_S", 0.05)  # a minute, shortened as the log's
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, tables, clock=time.time)
    ingest.said.window_s = 0.5
    assert ingest.handle_batch([(BAD, b"not json %d" % n) for n in range(20)]) == ["dead_letter"] * 20
    clock = Clock(store, tables, client=None, every_s=3600, summaries=[ingest.said])
    looks = []
    clock.escalate_overdue = lambda now: looks.append(now) or Clock.escalate_overdue(clock, now)  # counted, as it was
    clock.start()
    try:
        wait_until(lambda: any(r.getMessage().startswith("15 more dead letter(s) in ") for r in caplog.records), 10,
                   message="the minute's count said within the minute, escalation_check_s 3600")
        clock.wake.set()  # a new case's wake: its notices, not escalation
        time.sleep(0.2)
    finally:
        clock.stop.set()
        clock.wake.set()
        clock.join(5)
    assert len(looks) == 1


def test_a_box_spreading_pictures_over_made_up_incidents_has_so_many_waiting_at_most(database_url, tables,
                                                                                       monkeypatch):  # noqa: F811
    """Eight pictures under each of many made-up incident ids were all kept for the hour an orphan waits, and the
    clock set 100 aside a round: a box sending faster outgrew it. A box now has ``MAX_UNNAMED_PER_BOX`` pictures
    waiting for their events at most; past it a picture is a dead letter with the reason, but one an event recorded
    already names. Another box's are not held up, and a box's event naming its pictures makes room."""
    monkeypatch.setattr(ingest_module, "MAX_UNNAMED_PER_BOX", 20)
    store = Store(database_url)
    ingest = Ingest(store, tables, clock=lambda: NOW)
    sent = [(wire.evidence_topic("box-1", "gate", f"made-up-{n // 8}"), picture(n)) for n in range(40)]
    assert ingest.handle_batch(sent[:30]) == ["evidence"] * 20 + ["dead_letter"] * 10
    assert ingest.handle(*sent[30]) == "dead_letter" and ingest.handle(*sent[0]) == "evidence"  # kept already
    assert store.count("evidence") == 20 and store.count("dead_letters") == 11
    assert store.list_dead_letters(limit=1)[0]["reason"] == (
        "box 'box-1' has 20 pictures waiting for an event of its to name them, the most a box has waiting (a box "
        "sends a picture just before the event that names it); a picture for incident 'made-up-3' is not kept")
    assert ingest.handle(wire.evidence_topic("box-2", "gate", "b2-1"), picture(100)) == "evidence"
    snapshot, frame = picture(200), picture(201)
    named = payload(evidence=evidence_of(snapshot, frame))
    assert ingest.handle(TOPIC, named) == "case_created"  # its event first (another gateway took the pictures)
    assert ingest.handle_batch([(wire.evidence_topic("box-1", "gate", "3f2a9c"), jpeg)
                                for jpeg in (snapshot, frame)]) == ["evidence"] * 2
    more = wire.evidence_topic("box-1", "gate", "3f2a9d")
    assert ingest.handle(more, picture(300)) == "dead_letter"
    assert ingest.handle(wire.incident_topic("box-1", "gate"), payload(
        incident_id="made-up-0", location={"lat": 39.3, "lon": 117.3},
        evidence=evidence_of(picture(0), picture(1)))) == "case_created"  # names two of the twenty
    assert ingest.handle(more, picture(301)) == "evidence"


def big_picture(n: int) -> bytes:
    """A JPEG of 300 kB, its own: ``picture(n)`` with five comment segments of 60 kB."""
    comments = b"".join(b"\xff\xfe" + (60_002).to_bytes(2, "big") + bytes([n % 256, c]) * 30_000 for c in range(5))
    jpeg = picture(n)
    return jpeg[:2] + comments + jpeg[2:]


def test_a_box_has_so_many_megabytes_of_pictures_waiting_at_most(database_url, tables):  # noqa: F811
    """The 5,000 pictures a box may have waiting for their events were counted, not their bytes: 5,000 of the most a
    picture may be are 20 GB. A box has ``waiting_pictures_mb`` of them at most; past it a picture is a dead letter
    with the reason. Another box's are not held up."""
    assert GatewayConfig().waiting_pictures_mb == 512
    store = Store(database_url)
    ingest = Ingest(store, tables, clock=lambda: NOW, waiting_pictures_mb=1)
    sent = [(wire.evidence_topic("box-1", "gate", f"made-up-{n}"), big_picture(n)) for n in range(5)]
    assert len(sent[0][1]) == 300_705
    assert ingest.handle_batch(sent[:4]) == ["evidence"] * 3 + ["dead_letter"]  # 900 kB kept, 1.2 MB is past 1 MB
    assert ingest.handle(*sent[4]) == "dead_letter" and ingest.handle(*sent[0]) == "evidence"  # kept already
    assert store.count("evidence") == 3 and store.count("dead_letters") == 2
    assert store.list_dead_letters(limit=1)[0]["reason"] == (
        "box 'box-1' has 0.9 MB of pictures waiting for an event of its to name them, and a picture of 300705 bytes "
        "for incident 'made-up-4' would take it past 1 MB, the most a box has waiting (waiting_pictures_mb); it is "
        "not kept")
    assert ingest.handle(wire.evidence_topic("box-2", "gate", "b2-1"), big_picture(100)) == "evidence"


@pytest.mark.slow
def test_a_boxs_big_messages_reach_a_stalled_gateway_so_many_bytes_at_most_and_all_in_the_end(tmp_path):
    """The gateway takes 2,000 messages ahead of its acknowledgements: a box sending 8 MB messages while its database
    stalled could put 16 GB in its memory. The broker's ``max_inflight_bytes`` (with ``max_queued_bytes``) bounds the
    bytes sent it unacknowledged; what the broker drops the box sends again, and every message arrives. Here the
    shipped limits a thousandth as large, 30 messages of 40 kB, the gateway's SQLite database held by another."""
    assert "max_inflight_bytes 256000000" in services.BROKER_CONFIG.read_text().splitlines()
    inflight, queued, size, n = 256_000, 500_000, 40_000, 30
    broker = services.mosquitto(tmp_path / "mq", limits={"max_inflight_bytes": inflight, "max_queued_bytes": queued})
    with open(tmp_path / "mq" / "mosquitto.conf", "a") as conf:
        conf.write("log_type all\n")  # every PUBLISH sent and PUBACK received, in the broker's log
    broker.start()
    db, http = tmp_path / "gateway.sqlite", services.free_port()
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"broker": {"port": broker.port}, "database": f"sqlite:///{db}",
                                      "http": {"port": http}}))
    gateway = services.xueliang(["gateway", "--config", str(config)], tmp_path / "gateway.log")
    box = Publisher("box-1", Broker(port=broker.port, resend_after_s=1), Outbox(tmp_path / "outbox.sqlite"))
    held = None

    def broker_log(before: str = "Received PUBACK from xl-gateway-1") -> str:  # before the gateway acknowledged any
        return (tmp_path / "mq" / "mosquitto.log").read_text().split(before)[0]

    try:
        services.wait_port(http, gateway, "gateway", timeout=30)
        held = sqlite3.connect(str(db), isolation_level=None, timeout=10)
        held.execute("BEGIN EXCLUSIVE")  # the database stalls: ingest keeps its batch and tries again every 2 s
        box.start()
        box.send([(wire.evidence_topic("box-1", "gate", f"e{i}"), i.to_bytes(4, "big") * (size // 4))
                  for i in range(n)])
        wait_until(lambda: broker_log().count("Received PUBLISH from box-1 (d0, q1") >= n, 20, message="all sent")
        time.sleep(1)  # the broker sends on what it will
        sent = broker_log().count("Sending PUBLISH to xl-gateway-1 (d0, q1")
        assert 1 <= sent <= (inflight + queued) // size + 1  # 19; all 30 without the limit (and the box's copies)
        held.execute("ROLLBACK")
        wait_until(lambda: box.outbox.pending() == 0, 40, message="the box's messages confirmed by the gateway")
        assert Store(f"sqlite:///{db}").count("dead_letters") == n  # no pictures: dead letters, each kept once
    finally:
        if held is not None:
            held.close()
        box.stop(timeout=0.5)
        gateway.terminate()
        gateway.wait(10)
        broker.stop()
