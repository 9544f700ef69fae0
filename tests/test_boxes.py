"""The boxes page: each box's heartbeat (``xl/v1/{box}/status``, made by the edge's own code) checked and kept,
one row per box, on SQLite and PostgreSQL; hostile ones refused alone with the reason, counted and said once per
box, never dead letters; ``/ui/boxes`` and ``/boxes`` for operators and admins; and a real box's publisher
over real Mosquitto to a real gateway, the page read in a real headless Chromium."""

import json
import logging
import re
import socket
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from edge.box import CameraReader, Metrics, Slots, box_now, status
from edge.config import Broker as EdgeBroker
from edge.config import Camera
from edge.publisher import Outbox, Publisher
from gateway import boxes, schema, service
from gateway.api import create_app
from gateway.auth import new_token
from gateway.boxes import HEARTBEAT, HEARTBEAT_REFUSED, CameraStatus, Heartbeat, view
from gateway.config import TABLES_DIR, GatewayConfig, load_tables
from gateway.config import Broker as GatewayBroker
from gateway.ingest import Ingest
from gateway.metrics import REGISTRY
from gateway.security import CSP
from gateway.service import MqttIngest
from gateway.storage import Store
from xueliang import wire
from xueliang.mqtt import make_client

from .conftest import page_rows, serve, wait_subscribed, wait_until
from .test_gateway import NOW, TOPIC, payload
from .test_two_gateways import at_once
from .test_web import SHOTS, browser, main_text  # noqa: F401 (the fixture)
from .test_workflow import database_url  # noqa: F401 (the fixture)

BOX = "box-1"
GRID = "HQ-DZG-10D-07"  # a grid of the demo tables', under operator HQ's and HQ-DZG's
TABLES = load_tables(TABLES_DIR / "demo.yaml")


def edge_box(tmp_path, box: str = BOX, cameras: dict[str, str] | None = None,
             port: int = 1883, grid: str = GRID) -> tuple[Publisher, dict, Slots]:
    """A box's publisher (not started) and its camera readers (not reading), states set as a reader sets them, its
    cameras in ``grid``."""
    slots, stop, metrics = Slots(), threading.Event(), Metrics()
    readers = {}
    for cid, state in (cameras or {"gate": "online", "yard": "reconnecting"}).items():
        reader = CameraReader(Camera(id=cid, url=f"rtsp://127.0.0.1:9/{cid}", grid=grid), slots, metrics, stop)
        reader.health.state, reader.health.last_frame_at = state, box_now()
        readers[cid] = reader
    publisher = Publisher(box, EdgeBroker(port=port), Outbox(tmp_path / f"{box}.outbox.sqlite"))
    return publisher, readers, slots


def heartbeat(tmp_path, box: str = BOX, grid: str = GRID, **edit) -> bytes:
    """A heartbeat as the edge makes it (edge/box.py ``status``): three messages waiting 42 s in the outbox, two
    cameras (``yard`` reconnecting) in ``grid``, then ``edit`` applied."""
    publisher, readers, slots = edge_box(tmp_path, box, grid=grid)
    publisher.outbox.put([(TOPIC, payload())] * 3, time.time() - 42)
    body = status(box, readers, slots, publisher.delivery(time.time()), heartbeat_s=10.0)
    publisher.outbox.close()
    return json.dumps({**body, **edit}).encode()


def outcomes(kind: str) -> float:
    """How many status messages xl_gateway_heartbeats has counted with the outcome ``kind``."""
    return REGISTRY.get_sample_value("xl_gateway_heartbeats_total", {"outcome": kind}) or 0.0


def rows(store: Store) -> dict[str, dict]:
    return {v["box"]: v for v in boxes.listed(store)[1]}


def test_a_boxs_heartbeats_are_kept_one_row_each_replaced_by_the_next_and_its_last_will_keeps_them(
        tmp_path, database_url):  # noqa: F811 (the fixture)
    store = Store(database_url)
    clock = [NOW]
    ingest = Ingest(store, TABLES, clock=lambda: clock[0])
    first = heartbeat(tmp_path)
    batch = [(wire.status_topic(BOX), first), (TOPIC, payload()),
             (wire.status_topic("box-2"), heartbeat(tmp_path, "box-2"))]
    assert ingest.handle_batch(batch) == [HEARTBEAT, "case_created", HEARTBEAT]  # in one transaction with incidents
    heard = rows(store)[BOX]["heard_at"]
    assert heard == pytest.approx(time.time(), abs=60)  # by the database's clock, not the gateway's (``clock``)
    clock[0] += 10
    later = heartbeat(tmp_path, outbox_pending=0, clock_offset_s=-3600.0, clock_corrected=True)
    assert ingest.handle(wire.status_topic(BOX), later) == HEARTBEAT
    assert store.count("boxes") == 2 and store.count("dead_letters") == 0
    box = rows(store)[BOX]
    assert box["heard_at"] > heard and box["outbox_pending"] == 0 and box["state"] == "online"
    heard = box["heard_at"]
    assert (box["clock_offset_s"], box["clock_offset_by"], box["clock_off"], box["clock_corrected"]) == (
        -3600.0, "box", True, True)
    assert [(c["camera"], c["state"]) for c in box["cameras"]] == [("gate", "online"), ("yard", "reconnecting")]
    assert (box["cameras_up"], box["cameras_total"]) == (1, 2)
    # the box's broker says it died (its last will, as edge/publisher.py sets it): offline, what it said kept
    clock[0] += 5
    will = json.dumps({"box": BOX, "state": "offline"}).encode()
    assert ingest.handle_batch([(wire.status_topic(BOX), will)]) == [HEARTBEAT]
    box = rows(store)[BOX]
    assert box["state"] == "offline" and box["heard_at"] == heard and box["cameras_total"] == 2
    assert store.count("boxes") == 2
    # a box heard only through its last will is listed, never heard, and silent
    will = json.dumps({"box": "box-3", "state": "offline"}).encode()
    assert ingest.handle(wire.status_topic("box-3"), will) == HEARTBEAT
    assert rows(store)["box-3"]["heard_at"] is None and rows(store)["box-3"]["silent"]


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_gateways_writing_the_same_boxes_in_opposite_orders_never_deadlock_and_keep_the_latest(
        tmp_path, database_url, caplog):  # noqa: F811 (the fixture)
    """Two gateways on one PostgreSQL take heartbeats from the shared subscription, each in batches of its own:
    40 rounds, each gateway's batch released at once with the other's, of 15 of 20 boxes (10 in both), one in box
    order and one in its reverse. A batch that deadlocked would be rolled back (and its heartbeats taken again one by
    one); none is, and each box's row is its latest heartbeat."""
    one, two = (Ingest(Store(database_url), TABLES, clock=time.time) for _ in range(2))
    made = json.loads(heartbeat(tmp_path))  # as the edge makes it
    names = [f"box-{i:02d}" for i in range(20)]
    caplog.set_level(logging.INFO, logger="gateway.ingest")
    rounds = 40
    for r in range(rounds):
        beats = [(wire.status_topic(b), json.dumps(dict(made, box=b, at=wire.iso(NOW + r), seq=r + 1)).encode())
                 for b in names]
        first, second = beats[:15], list(reversed(beats[5:]))
        done = at_once(lambda: one.handle_batch(first), lambda: two.handle_batch(second))
        assert done == [[HEARTBEAT] * 15] * 2, (r, done)
    assert [r.getMessage() for r in caplog.records if "rolled back" in r.getMessage()] == []
    # the second gateway's ingest was backlogged: it writes each box's heartbeat of round 0 late (a later time by the
    # box's clock, set back since), and the row stays the later one the first gateway wrote
    late = [(wire.status_topic(b), json.dumps(dict(made, box=b, at=wire.iso(NOW + 3600), seq=1)).encode())
            for b in names]
    assert two.handle_batch(late) == [HEARTBEAT] * 20
    latest = {v["box"]: v for v in boxes.listed(one.store)[1]}
    with one.store.engine.connect() as db:
        sent = dict(db.execute(select(schema.boxes.c.box, schema.boxes.c.sent_at)).all())
    assert sent == {b: NOW + rounds - 1 for b in names}
    assert set(latest) == set(names) and all(v["cameras_total"] == 2 for v in latest.values())


def test_a_batch_rolled_back_takes_its_heartbeats_again_one_by_one(tmp_path, monkeypatch):
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, TABLES, clock=lambda: NOW)
    real_apply, calls = ingest._apply, {"n": 0}

    def flaky(db, message, category, payload, now):  # the batch's incident hits a database error once
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("deadlock detected")
        return real_apply(db, message, category, payload, now)

    monkeypatch.setattr(ingest, "_apply", flaky)
    batch = [(TOPIC, payload()), (wire.status_topic(BOX), heartbeat(tmp_path))]
    outcomes = ingest.handle_batch(batch)
    assert outcomes == ["case_created", HEARTBEAT] and outcomes.asking == {1}  # it asks the time: acknowledged
    assert store.count("cases") == 1 and set(rows(store)) == {BOX}


def test_a_batch_names_the_heartbeats_that_ask_the_time_as_ingest_checked_them(tmp_path):
    """The gateway acknowledges the heartbeats recorded of boxes that have heard no gateway's clock (no
    ``clock_offset_s``): ingest says which (``Outcomes.asking``) from the heartbeats it checked, their JSON read once.
    Not one with an offset, a box's last will, nor one refused however it asks; the outcomes are counted as before."""
    ingest = Ingest(Store(f"sqlite:///{tmp_path}/gw.sqlite"), TABLES, clock=lambda: NOW)
    will = json.dumps({"box": "box-3", "state": "offline"}).encode()
    batch = [(wire.status_topic(BOX), heartbeat(tmp_path)),
             (wire.status_topic("box-2"), heartbeat(tmp_path, "box-2", clock_offset_s=0.4)),
             (wire.status_topic("box-3"), will), (TOPIC, payload()),
             (wire.status_topic("box-4"), heartbeat(tmp_path, "box-4", outbox_pending=-1)),
             (wire.status_topic("box-5"), heartbeat(tmp_path, "box-5"))]
    outcomes = ingest.handle_batch(batch)
    assert outcomes == [HEARTBEAT, HEARTBEAT, HEARTBEAT, "case_created", HEARTBEAT_REFUSED, HEARTBEAT]
    assert outcomes.asking == {0, 5}


def test_the_heartbeat_the_edge_makes_says_its_interval(tmp_path):
    publisher, readers, slots = edge_box(tmp_path)
    assert status(BOX, readers, slots, publisher.delivery(time.time()), heartbeat_s=2.5)["heartbeat_s"] == 2.5
    assert boxes.decode(BOX, heartbeat(tmp_path)).heartbeat_s == 10.0


def test_the_heartbeats_the_edge_makes_are_numbered_from_one_start(tmp_path):
    one, two = (boxes.decode(BOX, heartbeat(tmp_path)) for _ in range(2))
    assert one.boot == two.boot and re.fullmatch("[0-9a-f]{16}", one.boot) and two.seq == one.seq + 1 >= 2
    assert two.order() == (one.boot, None, one.seq + 1)  # its link is the connection's: the publisher's, as it sends


def kept(store: Store, box: str = BOX) -> tuple:
    """The box's row: its heartbeat's boot, seq and time by the box's clock, and what the page shows of its outbox."""
    with store.engine.connect() as db:
        row = db.execute(select(schema.boxes.c.boot, schema.boxes.c.seq, schema.boxes.c.sent_at)
                         .where(schema.boxes.c.box == box)).one()
    return (*row, rows(store)[box]["outbox_pending"])


def test_a_heartbeat_written_late_never_replaces_a_later_one_of_the_same_start(tmp_path, database_url):  # noqa: F811
    """Two gateways on one database: the second writes the box's heartbeat 1 after the first wrote its heartbeat 2
    (the second's ingest backlogged). The row went back to heartbeat 1 until the next; it stays heartbeat 2, while a
    box started again, or one older than ``boot`` and ``seq``, is taken as before, whatever its clock says."""
    one, two = (Ingest(Store(database_url), TABLES, clock=lambda: NOW) for _ in range(2))
    made = {k: v for k, v in json.loads(heartbeat(tmp_path)).items() if k not in ("boot", "seq")}

    def beat(pending: int, at: float, **order) -> bytes:
        return json.dumps({**made, **order, "outbox_pending": pending, "at": wire.iso(at)}).encode()

    topic = wire.status_topic(BOX)
    assert one.handle(topic, beat(2, NOW, boot="a1", seq=2)) == HEARTBEAT
    late, recorded = outcomes("late"), outcomes("recorded")
    assert two.handle(topic, beat(1, NOW + 60, boot="a1", seq=1)) == HEARTBEAT  # late, its clock set back since
    assert kept(one.store) == ("a1", 2, NOW, 2)
    assert (outcomes("late") - late, outcomes("recorded") - recorded) == (1, 0)
    assert two.handle(topic, beat(3, NOW - 3600, boot="a1", seq=3)) == HEARTBEAT  # the next, its clock set back
    assert kept(one.store) == ("a1", 3, NOW - 3600, 3)
    assert (outcomes("late") - late, outcomes("recorded") - recorded) == (1, 1)
    assert two.handle(topic, beat(4, NOW - 3600, boot="b2", seq=1)) == HEARTBEAT  # the box started again
    assert kept(one.store) == ("b2", 1, NOW - 3600, 4)
    assert one.handle(topic, beat(5, NOW - 7200)) == HEARTBEAT  # an older box's (downgraded): taken as before
    assert kept(one.store) == (None, None, NOW - 7200, 5)
    assert one.handle(topic, beat(6, NOW - 7200)) == HEARTBEAT
    assert kept(one.store) == (None, None, NOW - 7200, 6)
    assert two.handle(topic, beat(7, NOW, boot="b2", seq=1)) == HEARTBEAT  # upgraded again
    assert kept(one.store) == ("b2", 1, NOW, 7)
    # its last will sets it offline and keeps what it said, its order too
    assert one.handle(topic, json.dumps({"box": BOX, "state": "offline"}).encode()) == HEARTBEAT
    assert kept(one.store) == ("b2", 1, NOW, 7) and rows(one.store)[BOX]["state"] == "offline"


def test_a_last_will_of_an_earlier_start_leaves_a_box_started_again_online(tmp_path, database_url):  # noqa: F811
    """The broker says a start's last will once it notices its connection gone, which can be after the box started
    again and sent its first heartbeat (or another gateway, backlogged, writes it then): the box, running, showed
    offline until its next heartbeat. A will or stop says its start (``boot``) now; one of another start than the
    stored heartbeat's is left (counted ``late``), its own start's or one without a start (an older box) is taken."""
    one, two = (Ingest(Store(database_url), TABLES, clock=lambda: NOW) for _ in range(2))
    made = {k: v for k, v in json.loads(heartbeat(tmp_path)).items() if k not in ("boot", "seq")}
    topic = wire.status_topic(BOX)

    def said(state: str, **boot) -> bytes:
        return json.dumps({"box": BOX, "state": state, **boot}).encode()

    assert one.handle(topic, said("online", boot="b2")) == HEARTBEAT  # a box's first word makes its row
    assert one.handle(topic, json.dumps({**made, "boot": "b2", "seq": 1}).encode()) == HEARTBEAT
    late = outcomes("late")
    assert two.handle(topic, said("offline", boot="a1")) == HEARTBEAT  # the earlier start's will, late
    assert rows(one.store)[BOX]["state"] == "online" and kept(one.store)[:2] == ("b2", 1)
    assert outcomes("late") - late == 1
    assert two.handle(topic, said("offline", boot="b2")) == HEARTBEAT  # its own start's: taken
    assert rows(one.store)[BOX]["state"] == "offline" and kept(one.store)[:2] == ("b2", 1)
    assert one.handle(topic, said("online", boot="c3")) == HEARTBEAT  # started again: its first word is taken
    assert rows(one.store)[BOX]["state"] == "online"
    assert one.handle(topic, said("offline")) == HEARTBEAT  # an older box's will, no start said: taken as before
    assert rows(one.store)[BOX]["state"] == "offline"


def test_two_boxes_under_one_box_id_are_said_once_in_the_log_and_on_the_boxes_row(tmp_path, database_url,  # noqa: F811
                                                                                  caplog):
    """An installer copied a box's config to the next box and left its ``box`` as it was: both run, each takes the
    other's broker connection (the client id is the box id), and their heartbeats come in turn, each start's own
    ``boot``. The row showed one box's cameras, then the other's, and nothing said why; now the gateway says so once in
    its log (each gateway that hears them), and the row (page and API) while it lasts. A box started again (a new boot, the old one never again) and
    a will of an earlier start are no twins. Two gateways sharing the database, each given some of the heartbeats, tell
    it as one does."""
    one, two = (Ingest(Store(database_url), TABLES, clock=lambda: NOW) for _ in range(2))
    caplog.set_level(logging.WARNING, logger="gateway.boxes")
    made = {k: v for k, v in json.loads(heartbeat(tmp_path)).items() if k not in ("boot", "seq")}
    topic = wire.status_topic(BOX)

    def beat(boot: str, seq: int, **edit) -> bytes:
        return json.dumps({**made, "boot": boot, "link": 1, "seq": seq, **edit}).encode()

    def twins() -> tuple:
        v = rows(one.store)[BOX]
        return v["twin_at"] is not None, v["twin_boots"]

    said = lambda: [r.getMessage() for r in caplog.records if "two boxes run with this box id" in r.getMessage()]  # noqa: E731
    assert one.handle(topic, beat("a1", 1)) == HEARTBEAT
    assert one.handle(topic, beat("a1", 2)) == HEARTBEAT
    assert one.handle(topic, json.dumps({"box": BOX, "state": "offline", "boot": "a1", "link": 1}).encode())
    assert one.handle(topic, beat("b2", 1)) == HEARTBEAT  # started again
    assert two.handle(topic, json.dumps({"box": BOX, "state": "offline", "boot": "a1", "link": 1}).encode())
    assert one.handle(topic, beat("b2", 2)) == HEARTBEAT
    assert twins() == (False, None) and said() == []
    # a second box under the same id starts: the two in turn, through either gateway
    assert two.handle(topic, beat("c3", 1, cameras={})) == HEARTBEAT
    assert twins() == (False, None)  # one new start is a box started again, as far as anyone can tell yet
    assert one.handle(topic, beat("b2", 3)) == HEARTBEAT
    assert twins() == (True, ["b2", "c3"])
    for seq in range(2, 6):
        assert two.handle(topic, beat("c3", seq, cameras={})) == HEARTBEAT
        assert one.handle(topic, beat("b2", seq + 2)) == HEARTBEAT
    assert len(said()) == 2 and all("'box-1'" in line and "b2 and c3" in line for line in said()), said()  # each gateway's
    app = create_app(one.store, TABLES)
    admin = new_token(one.store, "root", "admin")
    (box,) = TestClient(app).get("/boxes", headers={"Authorization": f"Bearer {admin}"}).json()["boxes"]
    assert box["twin_boots"] == ["b2", "c3"] and box["twin_at"].endswith("Z")
    page = signed_in(app, admin).get("/ui/boxes").text
    assert "两台盒子使用同一编号" in page and "b2 与 c3" in page, page


def test_migrations_10_and_11_bring_a_version_9_database_up_and_its_boxes_heartbeats_are_replaced_as_before(
        tmp_path, database_url):  # noqa: F811 (the fixture)
    store = Store(database_url)
    ingest = Ingest(store, TABLES, clock=lambda: NOW)
    assert ingest.handle(wire.status_topic(BOX), heartbeat(tmp_path, outbox_pending=1)) == HEARTBEAT
    with store.engine.begin() as db:
        for column in ("boot", "link", "seq", "ended_link"):
            db.execute(text(f"ALTER TABLE boxes DROP COLUMN {column}"))
        db.execute(text("DELETE FROM schema_migrations WHERE version IN (10, 11)"))
    store.engine.dispose()
    store = Store(database_url)
    assert kept(store) == (None, None, pytest.approx(time.time(), abs=60), 1)
    ingest = Ingest(store, TABLES, clock=lambda: NOW)
    assert ingest.handle(wire.status_topic(BOX), heartbeat(tmp_path, outbox_pending=2, link=1, seq=1)) == HEARTBEAT
    assert kept(store)[1:] == (1, pytest.approx(time.time(), abs=60), 2)
    assert ingest.handle(wire.status_topic(BOX), heartbeat(tmp_path, outbox_pending=3, link=1, seq=1)) == HEARTBEAT
    assert kept(store)[3] == 2  # a heartbeat of the same start and link no later: left


def deep(levels: int) -> bytes:
    return b'{"box": "box-1", "state": "online", "x": ' + b"[" * levels + b"]" * levels + b"}"


def hostile(tmp_path, **edit) -> bytes:
    return heartbeat(tmp_path, **edit)


SUPPRESSION = {"id": 1, "camera": "gate", "zone": "kerb", "type": "spill"}
# (what, its topic's box, its payload (made in tmp_path), the metric's reason, what the refusal says)
HOSTILE = [
    ("a count as text", BOX, lambda p: hostile(p, outbox_pending="3"), "invalid",
     "outbox_pending: Input should be a valid integer"),
    ("true for a count", BOX, lambda p: hostile(p, outbox_pending=True), "invalid",
     "outbox_pending: Input should be a valid integer"),
    ("a negative backlog", BOX, lambda p: hostile(p, outbox_pending=-1), "invalid",
     "outbox_pending: Input should be greater than or equal to 0"),
    ("a negative held count", BOX, lambda p: hostile(p, outbox_held=-2), "invalid",
     "outbox_held: Input should be greater than or equal to 0"),
    ("cameras as a list", BOX, lambda p: hostile(p, cameras=["gate"]), "invalid",
     "cameras: Input should be a valid dictionary"),
    ("a camera's gap as text", BOX, lambda p: hostile(p, cameras={"gate": {"state": "online", "max_gap_s": "1"}}),
     "invalid", "cameras/gate/max_gap_s: Input should be a valid number"),
    ("an unknown state", BOX, lambda p: hostile(p, state="rebooting"), "invalid",
     "state: Input should be 'online' or 'offline'"),
    ("a time not on the calendar", BOX, lambda p: hostile(p, at="2026-02-30T00:00:00Z"), "invalid",
     "at: Value error, time '2026-02-30T00:00:00Z' is not a real time: day is out of range for month"),
    ("a leap second", BOX, lambda p: hostile(p, at="2026-12-31T23:59:60Z"), "invalid",
     "at: Value error, time '2026-12-31T23:59:60Z' is not a real time: second must be in 0..59"),
    # read as UTC, it showed a box writing Beijing time 8 h off, and not why
    ("a time with no zone", BOX, lambda p: hostile(p, at="2026-12-06T16:00:00"), "invalid",
     "at: Value error, time '2026-12-06T16:00:00' has no zone (Z, or an offset as +08:00)"),
    ("a bare day for a camera's error", BOX,
     lambda p: hostile(p, cameras={"gate": {"state": "online", "last_error_at": "2026-12-06"}}), "invalid",
     "cameras/gate/last_error_at: Value error, time '2026-12-06' is not written as the wire's times are"),
    ("markup for a camera id", BOX, lambda p: hostile(p, cameras={"<img src=x onerror=alert(1)>": {"state": "online"}}),
     "invalid", "cameras/<img src=x onerror=alert(1)>/[key]: String should match pattern"),
    ("a huge array", BOX, lambda p: hostile(p, suppressions=[SUPPRESSION] * 1001), "invalid",
     "suppressions: List should have at most 1000 items after validation, not 1001"),
    ("a grid that is no grid code", BOX, lambda p: hostile(p, cameras={"gate": {"grid": "HQ/+", "state": "online"}}),
     "invalid", "cameras/gate/grid: String should match pattern"),
    ("too many cameras", BOX, lambda p: hostile(p, cameras={f"c{i}": {"state": "online"} for i in range(1001)}),
     "invalid", "cameras: Dictionary should have at most 1000 items"),
    ("too many faults", BOX, lambda p: hostile(p, cameras={"gate": {"state": "online", "faults": ["frozen"] * 17}}),
     "invalid", "cameras/gate/faults: List should have at most 16 items"),
    ("NaN", BOX, lambda p: hostile(p).replace(b'"outbox_oldest_s": 42', b'"outbox_oldest_s": NaN'), "not_json",
     "not JSON: NaN is not a JSON number"),
    ("a number past a float", BOX, lambda p: hostile(p).replace(b'"outbox_oldest_s": 42', b'"outbox_oldest_s": 1e999'),
     "not_json", "not JSON: number 1e999 is out of range"),
    ("nested too deep", BOX, lambda p: deep(5000), "not_json", "not JSON: nested too deeply"),
    ("not UTF-8", BOX, lambda p: b"\xff\xfe{}", "not_json", "not JSON"),
    ("empty", BOX, lambda p: b"", "not_json", "not JSON"),
    ("not an object", BOX, lambda p: b"[1, 2]", "invalid", "not a JSON object"),
    ("oversize", BOX, lambda p: hostile(p, padding="x" * 300_000), "too_large", "more than 262144"),
    ("another box's", BOX, lambda p: heartbeat(p, "box-2"), "other_box",
     "payload says box 'box-2' but came on xl/v1/box-1/status: a box speaks only for itself"),
    ("the gateway's notices' level", "dispatch", lambda p: heartbeat(p, "dispatch"), "not_a_box",
     "xl/v1/dispatch/status is no box's status topic"),
    ("no box id", "a+b", lambda p: heartbeat(p), "not_a_box", "xl/v1/a+b/status is no box's status topic"),
]


@pytest.mark.parametrize("what, box, make, kind, reason", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_heartbeat_is_refused_alone_with_its_reason_counted_and_never_a_dead_letter(
        tmp_path, caplog, what, box, make, kind, reason):
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    clock = [NOW]
    ingest = Ingest(store, TABLES, clock=lambda: clock[0])
    assert ingest.handle(wire.status_topic(BOX), heartbeat(tmp_path)) == HEARTBEAT  # the box is known already
    before = dict(rows(store)[BOX])
    clock[0] += 10
    counted = outcomes(kind)
    caplog.set_level(logging.WARNING, logger="gateway.boxes")
    batch = [(wire.status_topic("box-7"), heartbeat(tmp_path, "box-7")), (f"xl/v1/{box}/status", make(tmp_path)),
             (TOPIC, payload()), (wire.status_topic("box-8"), heartbeat(tmp_path, "box-8"))]
    assert ingest.handle_batch(batch) == [HEARTBEAT, HEARTBEAT_REFUSED, "case_created", HEARTBEAT]
    assert outcomes(kind) == counted + 1
    said = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(said) == 1 and reason in said[0], said
    assert store.count("dead_letters") == 0 and set(rows(store)) == {BOX, "box-7", "box-8"}
    after = rows(store)[BOX]
    assert {k: v for k, v in after.items() if not k.startswith("refused")} == \
        {k: v for k, v in before.items() if not k.startswith("refused")}  # what it said before stands
    if box == BOX:  # the sender's row says why its heartbeat was refused (a newer one than it took)
        assert after["refused_at"] > after["heard_at"] and reason[:100] in after["refused_reason"]


def test_a_box_whose_heartbeats_are_refused_is_said_once_per_interval_and_counted_each_time(tmp_path, caplog):
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    clock = [NOW]
    ingest = Ingest(store, TABLES, clock=lambda: clock[0])
    caplog.set_level(logging.WARNING, logger="gateway.boxes")
    counted = outcomes("invalid")
    bad = heartbeat(tmp_path, outbox_pending="many")
    for _ in range(5):  # a box sending the same wrong heartbeat every 10 s
        assert ingest.handle(wire.status_topic(BOX), bad) == HEARTBEAT_REFUSED
        clock[0] += 10
    assert outcomes("invalid") == counted + 5
    assert len([r for r in caplog.records if "heartbeat of box 'box-1' refused" in r.getMessage()]) == 1
    clock[0] = NOW + boxes.REFUSAL_NOTE_S
    assert ingest.handle(wire.status_topic(BOX), bad) == HEARTBEAT_REFUSED
    assert len([r for r in caplog.records if "heartbeat of box 'box-1' refused" in r.getMessage()]) == 2
    assert store.count("boxes") == 0 and store.count("dead_letters") == 0  # a box never heard is not made up


def test_refusals_are_named_ten_a_minute_whatever_the_names_and_the_rest_counted_in_one_line(caplog):
    """A client making up a box name for each message had each refusal said: the once per box never applies. Of the
    refusals due (a box's first in REFUSAL_NOTE_S), REFUSALS_SAID a minute are named; the rest are counted by kind
    and said in one line once the minute is over."""
    caplog.set_level(logging.WARNING, logger="gateway.boxes")
    said = boxes.RefusalLog()
    assert [said.due("box-1", NOW + t) for t in (0, 10, boxes.REFUSAL_NOTE_S)] == [True, False, True]
    named = [said.named("not_json" if i % 3 else "invalid", NOW + i) for i in range(25)]
    assert boxes.REFUSALS_SAID == 10 and named == [True] * 10 + [False] * 15 and said.counted() == 15
    said.flush(NOW + 59)
    assert caplog.records == []  # within the minute: nothing yet
    said.flush(NOW + 60)
    assert [r.getMessage() for r in caplog.records] == [
        "15 more box(es) whose heartbeats were refused in 60 s, not named one by one (at most 10 a minute are; each "
        "refusal is counted in xl_gateway_heartbeats): not_json 10, invalid 5"]
    said.flush(NOW + 200)
    assert len(caplog.records) == 1 and said.counted() == 0  # said once
    assert said.named("invalid", NOW + 201)  # a new minute: named again
    assert [said.named("invalid", NOW + 202) for _ in range(9)] == [True] * 9 and not said.named("invalid", NOW + 203)
    said.flush(NOW - 3600)  # the clock set back: said, and counted afresh
    assert caplog.records[-1].getMessage().startswith("1 more box(es) whose heartbeats were refused in ")
    assert said.counted() == 0 and said.named("invalid", NOW - 3599)


def test_the_boxes_whose_refusals_are_remembered_are_capped():
    said = boxes.RefusalLog()
    assert all(said.due(f"made-up-{i}", NOW) for i in range(boxes.NOTED_MAX + 50))
    assert len(said._noted) == boxes.NOTED_MAX  # the first forgotten: said again, the last not
    assert said.due("made-up-0", NOW + 1) and not said.due(f"made-up-{boxes.NOTED_MAX + 49}", NOW + 1)


@pytest.mark.slow
def test_a_client_making_up_a_box_name_for_each_heartbeat_over_real_mosquitto_fills_no_log(tmp_path, broker,
                                                                                           caplog, monkeypatch):
    """The soak's client (bench/soak.py) sent a wrong status message from a new box name each time: each one was a
    line in the gateway's log, a flood's without end. Now ten are named a minute, and the gateway's clock says how
    many more in one line once the minute is over; each is counted, none is a dead letter."""
    caplog.set_level(logging.WARNING, logger="gateway.boxes")
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, TABLES)
    ingest.heartbeats.said.window_s = 3600.0  # the flood within one minute, however slow this machine
    gateway = MqttIngest(GatewayConfig(broker=GatewayBroker(port=broker.port, client_id="gateway-1")), ingest)
    clock = service.Clock(store, TABLES, client=None, every_s=0.05, summaries=[ingest.heartbeats.said])
    monkeypatch.setattr(service, "CLOCK_ROUND_MAX_S", 0.05)
    rogue = make_client("rogue")  # a broker without the deploy ACL: anyone may write any topic
    gateway.start()
    try:
        wait_subscribed(gateway)
        counted = outcomes("invalid")
        rogue.connect("127.0.0.1", broker.port)
        rogue.loop_start()
        for i in range(40):
            rogue.publish(wire.status_topic(f"made-up-{i}"), b'{"box": "x"}', qos=0).wait_for_publish(5)
        wait_until(lambda: outcomes("invalid") == counted + 40, 10, 0.05, message="all 40 refused")
        ingest.heartbeats.said.window_s = 0.0  # and over: the clock says the rest with no message after the flood
        clock.start()
        wait_until(lambda: any("30 more box(es) whose heartbeats were refused" in r.getMessage()
                               for r in caplog.records), 10, 0.05, message="the rest counted in one line")
        lines = [r.getMessage() for r in caplog.records if r.name == "gateway.boxes"]
        assert sum(line.startswith("heartbeat of box 'made-up-") for line in lines) == 10, lines
        assert len(lines) == 11 and lines[-1].endswith(": invalid 30")
        assert store.count("dead_letters") == 0 and store.count("boxes") == 0
    finally:
        clock.stop.set()
        clock.wake.set()
        clock.join(5)
        rogue.loop_stop()
        rogue.disconnect()
        gateway.stop()


def test_a_box_beyond_those_the_gateway_keeps_is_refused_and_those_kept_are_still_taken(tmp_path, monkeypatch):
    monkeypatch.setattr(boxes, "BOXES_MAX", 2)
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, TABLES, clock=lambda: NOW)
    counted = outcomes("unknown_box")
    for box in ("a", "b"):
        assert ingest.handle(wire.status_topic(box), heartbeat(tmp_path, box)) == HEARTBEAT
    assert ingest.handle(wire.status_topic("c"), heartbeat(tmp_path, "c")) == HEARTBEAT_REFUSED
    assert outcomes("unknown_box") == counted + 1
    another = Ingest(store, TABLES, clock=lambda: NOW)  # another gateway process: it knows the boxes from the table
    assert [another.handle(wire.status_topic(box), heartbeat(tmp_path, box)) for box in ("b", "c", "a")] == [
        HEARTBEAT, HEARTBEAT_REFUSED, HEARTBEAT]
    assert store.count("boxes") == 2


def beat(**changes) -> Heartbeat:
    return Heartbeat(**{"box": "b", "state": "online", "at": "2026-01-01T00:00:00Z", "heartbeat_s": 10.0,
                        "cameras": {"gate": CameraStatus(state="online")}, **changes})


def row(b: Heartbeat | None, heard_at: float | None = NOW, sent_at: float | None = NOW, **changes) -> dict:
    return {"box": "b", "state": "online", "heard_at": heard_at, "sent_at": sent_at,
            "heartbeat": b.model_dump_json() if b else None, "refused_at": None, "refused_reason": None, **changes}


@pytest.mark.parametrize("box, now, expected", [
    (row(beat()), NOW + 30, {"silent": False}),  # three intervals: not yet
    (row(beat()), NOW + 30.1, {"silent": True}),
    (row(beat(heartbeat_s=60.0)), NOW + 179, {"silent": False}),  # its own interval, not the default
    (row(None, heard_at=None, sent_at=None), NOW, {"silent": True, "heartbeat_s": 10.0, "clock_offset_s": None}),
    (row(beat(), sent_at=NOW - 300), NOW, {"clock_offset_s": 300.0, "clock_offset_by": "gateway", "clock_off": False}),
    (row(beat(), sent_at=NOW - 301), NOW, {"clock_offset_s": 301.0, "clock_off": True}),
    (row(beat(), sent_at=NOW + 3600), NOW, {"clock_offset_s": -3600.0, "clock_off": True}),  # an hour ahead
    (row(beat(), sent_at=946_684_800.0 - 9e8), NOW, {"clock_off": True}),  # a clock that stands in 1971
    (row(beat(clock_offset_s=12.5), sent_at=NOW - 999), NOW, {"clock_offset_s": 12.5, "clock_offset_by": "box"}),
    (row(beat(), refused_at=NOW - 5, refused_reason="old"), NOW, {"refused_at": None}),  # taken since
    (row(beat(), refused_at=NOW + 5, refused_reason="why"), NOW, {"refused_at": NOW + 5, "refused_reason": "why"}),
    (row(beat(cameras={"a": CameraStatus(state="offline"), "b": CameraStatus(state="online", faults=["blocked"])})),
     NOW, {"cameras_up": 1, "cameras_total": 2}),
])
def test_what_the_page_shows_of_a_box_at_a_given_time(box, now, expected):
    shown = view(box, now)
    assert {k: shown[k] for k in expected} == expected


def test_a_box_heard_through_gateways_whose_clocks_disagree_is_judged_by_one_clock(tmp_path, database_url):  # noqa: F811
    """Two gateways share the database, one's clock an hour ahead of the other's (or stepped since): each heartbeat
    is timed by the database's clock, and ``/boxes`` judges it by the same, whichever gateway serves it. Timed by
    each gateway's own, a box the one behind wrote last was silent on the page (25 s apart, it flapped silent
    every other heartbeat while heard every 10 s), and one the one ahead wrote last went silent an hour late."""
    ahead = Ingest(Store(database_url), TABLES, clock=lambda: time.time() + 3600)
    behind = Ingest(Store(database_url), TABLES, clock=lambda: time.time() - 3600)
    app, admin = create_app(ahead.store, TABLES), new_token(ahead.store, "root", "admin")

    def shown() -> tuple[float, dict]:
        body = TestClient(app).get("/boxes", headers={"Authorization": f"Bearer {admin}"}).json()
        return wire.parse_time(body["now"]), body["boxes"][0]

    for gateway in (behind, ahead, behind):
        assert gateway.handle(wire.status_topic(BOX), heartbeat(tmp_path, heartbeat_s=0.3)) == HEARTBEAT
        now, box = shown()
        assert not box["silent"] and 0 <= now - wire.parse_time(box["heard_at"]) < 1, (now, box)
    assert now == pytest.approx(time.time(), abs=5)
    time.sleep(3 * 0.3 + 0.05)  # three of its intervals unheard
    assert shown()[1]["silent"]


def test_the_boxes_page_says_how_many_incidents_a_box_holds_until_it_is_told_the_time(tmp_path):
    """A box whose wall clock is plainly wrong holds its incidents until a gateway tells it the time and reports how
    many (``outbox_held``); the gateway dropped the count, and its page showed them as any backlog."""
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, TABLES, clock=time.time)
    assert ingest.handle(wire.status_topic(BOX), heartbeat(tmp_path, outbox_held=2)) == HEARTBEAT
    app = create_app(store, TABLES)
    admin = new_token(store, "root", "admin")
    box = TestClient(app).get("/boxes", headers={"Authorization": f"Bearer {admin}"}).json()["boxes"][0]
    assert (box["outbox_pending"], box["outbox_held"]) == (3, 2)
    page = signed_in(app, admin).get("/ui/boxes").text
    assert re.search(r"<td class=said>3 条, 最早的已等 [^,<]+, 其中 2 条等待校时</td>", page), page


def test_the_boxes_page_says_the_age_of_a_message_queued_on_a_wrong_clock_is_unknown(tmp_path):
    """A box's outbox holds a message an earlier boot queued while its clock stood in 1970 (a dead clock battery); the
    box runs now with its clock right. Its heartbeat says that message has waited at least as long as the box has run,
    its true age unknown, and the page says so: it read 57 years ('20794 天')."""
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, TABLES, clock=time.time)
    publisher, readers, slots = edge_box(tmp_path)
    publisher.outbox.put([(TOPIC, payload())], 5.0)  # 1970-01-01T00:00:05Z, in a boot before
    publisher.send([(TOPIC, payload(incident_id="next"))])  # this start's
    time.sleep(0.2)
    body = status(BOX, readers, slots, publisher.delivery(time.time()), heartbeat_s=10.0)
    publisher.outbox.close()
    assert ingest.handle(wire.status_topic(BOX), json.dumps(body).encode()) == HEARTBEAT
    app = create_app(store, TABLES)
    admin = new_token(store, "root", "admin")
    box = TestClient(app).get("/boxes", headers={"Authorization": f"Bearer {admin}"}).json()["boxes"][0]
    assert box["outbox_pending"] == 2 and 0.2 <= box["outbox_oldest_s"] < 5 and box["outbox_oldest_known"] is False
    page = signed_in(app, admin).get("/ui/boxes").text
    assert re.search(r"<td class=said>2 条, 最早的已等至少 \d 秒 \(时钟有误, 确切时长未知\)</td>", page), page


def test_the_page_says_why_a_camera_is_down_as_its_heartbeat_does(tmp_path):
    """The box says each camera's last error and when; the page showed only that a camera was down, not that its
    connection was refused (a cable, a camera) or its password wrong (a config)."""
    from gateway.web import box_row

    publisher, readers, slots = edge_box(tmp_path)
    yard = readers["yard"].health  # as its reader leaves it
    yard.last_error = "cannot open rtsp://127.0.0.1:9/yard: [Errno 111] Connection refused"
    yard.last_error_at = box_now() - 5
    body = status(BOX, readers, slots, publisher.delivery(time.time()))
    publisher.outbox.close()
    beat = boxes.decode(BOX, json.dumps(body).encode())
    assert beat.cameras["yard"].last_error.endswith("Connection refused")
    assert wire.parse_time(beat.cameras["yard"].last_error_at) == pytest.approx(time.time() - 5, abs=1)
    shown = box_row(view(row(beat), NOW), NOW, TABLES)
    assert "yard (重连中: cannot open rtsp://127.0.0.1:9/yard: [Errno 111] Connection refused)" in shown, shown


def signed_in(app, token: str) -> TestClient:
    client = TestClient(app)
    client.post("/ui/login", data={"token": token})
    return client


def test_the_boxes_page_and_its_json_for_operators_and_admins_escaped_uncached(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, TABLES, clock=time.time)
    markup = "<script>alert(1)</script>"
    assert ingest.handle(wire.status_topic(BOX), heartbeat(tmp_path, outbox_write_error=markup)) == HEARTBEAT
    assert ingest.handle(wire.status_topic("box-2"), heartbeat(tmp_path, "box-2", clock_offset_s=-3600.0)) == HEARTBEAT
    app = create_app(store, TABLES)
    operator = signed_in(app, new_token(store, "op1", "operator", grid="HQ"))
    page = operator.get("/ui/boxes")
    assert page.status_code == 200 and page.headers["cache-control"] == "private, no-store"
    assert page.headers["content-security-policy"] == CSP
    assert markup not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<span class=flag>快 60 分钟, 超过 5 分钟</span>" in page.text  # an hour ahead: flagged
    assert re.search(r"网关时间 \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", page.text)
    assert '<a href="/ui/boxes">边缘盒子</a>' in operator.get("/ui/cases").text  # in the navigation every page shares
    department = signed_in(app, new_token(store, "tp", "department", department="traffic-police"))
    refused_page = department.get("/ui/boxes")
    assert refused_page.status_code == 403 and "操作被拒绝" in refused_page.text and BOX not in refused_page.text
    anyone = TestClient(app).get("/ui/boxes", follow_redirects=False)
    assert anyone.headers["location"] == "/ui/login?next=%2Fui%2Fboxes"
    admin = new_token(store, "root", "admin")
    for token, code in ((admin, 200), (new_token(store, "op2", "operator", grid="HQ"), 200),
                        (new_token(store, "tp2", "department", department="traffic-police"), 403)):
        answer = TestClient(app).get("/boxes", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == code, answer.text
    body = TestClient(app).get("/boxes", headers={"Authorization": f"Bearer {admin}"}).json()
    box, ahead = body["boxes"]
    assert ahead["box"] == "box-2" and ahead["clock_off"] and ahead["clock_offset_s"] == -3600.0
    assert box["box"] == BOX and box["outbox_pending"] == 3 and box["outbox_write_error"] == markup
    assert wire.parse_time(body["now"]) == pytest.approx(time.time(), abs=5) and body["clock_limit_s"] == 300.0
    assert TestClient(app).get("/boxes").status_code == 401


def cut_off(client) -> None:
    """End a client's connection without a DISCONNECT, as a box that loses power: the broker sends its last will."""
    client.loop_stop()
    client.socket().shutdown(socket.SHUT_RDWR)
    client.socket().close()


@pytest.mark.slow
def test_a_real_boxs_heartbeats_reach_the_page_in_chromium_and_hostile_ones_change_nothing(tmp_path, broker, browser):
    """A box's own publisher (edge/publisher.py) sends the heartbeats edge/box.py makes, over real Mosquitto, to a
    real gateway's ingest on SQLite; an operator finds them in the page's navigation, and not another street's box.
    Another client speaking for the box and a NaN heartbeat change nothing; a box cut off is offline by its last
    will; a heartbeat is acknowledged only to tell the time to a box that has not heard it (no ``clock_offset_s``),
    and the incidents held for their times are not."""
    from selenium.webdriver.common.by import By

    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, TABLES)
    gateway = MqttIngest(GatewayConfig(broker=GatewayBroker(port=broker.port, client_id="gateway-1")), ingest)
    gateway.start()
    publisher, readers, slots = edge_box(tmp_path, BOX, {"gate": "online", "yard": "reconnecting", "lawn": "online"},
                                         broker.port)
    ahead = wire.iso(time.time() + 3600)  # incidents the gateway holds for their times: never acknowledged
    publisher.outbox.put([(TOPIC, payload(incident_id=f"i-{i}", started_at=ahead, observed_at=ahead))
                          for i in range(2)], time.time() - 90)
    other = make_client("box-2")  # a broker without the deploy ACL: anyone may write any topic
    dying = make_client("box-9")
    try:
        wait_subscribed(gateway)
        # the box's status before the publisher starts, as run_box sets it; then one heartbeat an interval
        publisher.status = status(BOX, readers, slots, publisher.delivery(time.time()), heartbeat_s=1.0)
        publisher.start()
        assert publisher.connected.wait(10)
        wait_until(lambda: store.count("boxes") == 1, 10, 0.05, message="the box's first word recorded")
        first = rows(store)[BOX]["heard_at"]
        publisher.publish_status(status(BOX, readers, slots, publisher.delivery(time.time()), heartbeat_s=1.0))
        wait_until(lambda: rows(store)[BOX]["heard_at"] > first, 10, 0.05, message="the next heartbeat recorded")
        other.connect("127.0.0.1", broker.port)
        other.loop_start()
        lie = json.dumps({"box": BOX, "state": "offline"}).encode()
        other.publish(wire.status_topic("box-2"), lie, qos=0).wait_for_publish(5)  # speaking for box-1
        other.publish(wire.status_topic(BOX), b'{"box": "box-1", "state": "online", "outbox_pending": NaN}',
                      qos=0).wait_for_publish(5)
        wait_until(lambda: gateway.outcomes["heartbeat_refused"] == 2, 10, 0.05, message="both refused")
        assert rows(store)[BOX]["state"] == "online" and "box-2" not in rows(store)
        dying.will_set(wire.status_topic("box-9"), json.dumps({"box": "box-9", "state": "offline"}), qos=1, retain=True)
        dying.connect("127.0.0.1", broker.port)
        dying.loop_start()
        dying.publish(wire.status_topic("box-9"), heartbeat(tmp_path, "box-9", grid="HQ-XYM-01-01"),
                      qos=0).wait_for_publish(5)
        wait_until(lambda: "box-9" in rows(store), 10, 0.05, message="box-9 heard")
        cut_off(dying)
        wait_until(lambda: rows(store)["box-9"]["state"] == "offline", 10, 0.05, message="its last will recorded")
        assert store.count("dead_letters") == 0 and publisher.outbox.pending() == 2
        assert publisher.delivery(time.time())["clock_offset_s"] is not None  # its first heartbeat asked the time

        with serve(create_app(store, TABLES)) as base:
            browser.get(f"{base}/ui/login")
            browser.find_element(By.NAME, "token").send_keys(new_token(store, "op1", "operator", grid="HQ-DZG"))
            browser.find_element(By.CSS_SELECTOR, "#login button").click()
            wait_until(lambda: browser.current_url == f"{base}/ui/cases", 5, message="signed in")
            heard = rows(store)[BOX]["heard_at"]  # a heartbeat just before the page: silent only 9 s after it
            publisher.publish_status(status(BOX, readers, slots, publisher.delivery(time.time()), heartbeat_s=3.0))
            wait_until(lambda: rows(store)[BOX]["heard_at"] > heard, 10, 0.05, message="the heartbeat recorded")
            browser.find_element(By.LINK_TEXT, "边缘盒子").click()
            wait_until(lambda: browser.find_elements(By.ID, "boxes"), 5, message="the boxes page")
            shown = dict(page_rows(browser, "#boxes tr[data-box]", "data-box"))
            assert list(shown) == ["box-1"]  # box-9's camera is in another street (HQ-XYM)
            assert "在线" in shown[BOX] and "失联" not in shown[BOX], shown
            assert "2/3" in shown[BOX] and "未在线: yard (重连中)" in shown[BOX], shown
            assert "2 条, 最早的已等" in shown[BOX] and "网格: 丁字沽十段第7网格 (HQ-DZG-10D-07)" in shown[BOX]
            main = main_text(browser)
            stamp = re.search(r"网关时间 (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", main)
            assert stamp, main
            SHOTS.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(SHOTS / "boxes.png"))

            browser.execute_script("window.stillHere = 'yes'")  # gone if the page reloaded

            def silent() -> bool:  # three of its 3 s intervals without a heartbeat: the page follows, not reloaded
                return any("失联" in text for text in page_rows(browser, "#boxes tr[data-box='box-1']"))

            wait_until(silent, 20, 0.5, message="box-1 shown silent")
            assert browser.execute_script("return window.stillHere") == "yes"
            assert int(browser.find_element(By.TAG_NAME, "body").get_attribute("data-live-updates")) >= 1
            assert "失联 1 台" in page_rows(browser, "#gateway-time")[0]
            assert httpx.get(f"{base}/ui/boxes").status_code == 303  # no session: to the sign-in form
    finally:
        other.loop_stop()
        other.disconnect()
        publisher.stop(timeout=0.5)
        gateway.stop()


@pytest.mark.slow
def test_heartbeats_past_those_waiting_are_dropped_while_ingest_is_held_back_and_incidents_are_not(tmp_path, broker):
    """QoS 0 messages are not held back at the broker by the gateway's receive maximum: while the database holds
    ingest back, the heartbeats past WAITING_MAX waiting messages are dropped (and counted), never every heartbeat
    of the outage kept in memory; the incidents (QoS 1) wait, all of them."""

    class Held(MqttIngest):
        WAITING_MAX = 5

    gateway = Held(GatewayConfig(broker=GatewayBroker(port=broker.port, client_id="gateway-1")),
                   Ingest(Store(f"sqlite:///{tmp_path}/gw.sqlite"), TABLES))
    gateway.client.connect("127.0.0.1", broker.port)  # no worker: nothing leaves the queue
    gateway.client.loop_start()
    box = make_client(BOX)
    try:
        wait_subscribed(gateway)
        dropped = outcomes("dropped")
        box.connect("127.0.0.1", broker.port)
        box.loop_start()
        for i in range(3):
            box.publish(*incident_message(i), qos=1).wait_for_publish(5)
        beat = heartbeat(tmp_path)
        for _ in range(20):
            box.publish(wire.status_topic(BOX), beat, qos=0).wait_for_publish(5)
        box.publish(*incident_message(3), qos=1).wait_for_publish(5)
        wait_until(lambda: outcomes("dropped") == dropped + 18, 10, 0.05, message="the heartbeats past 5 dropped")
        waiting = [gateway.queue.get_nowait() for _ in range(gateway.queue.qsize())]
        kinds = [topic.rsplit("/", 1)[1] for topic, *_ in waiting]
        assert (kinds.count("incident"), kinds.count("status")) == (4, 2), kinds
    finally:
        box.loop_stop()
        box.disconnect()
        gateway.client.loop_stop()
        gateway.client.disconnect()


def incident_message(i: int) -> tuple[str, bytes]:
    return TOPIC, payload(incident_id=f"held-{i}")
