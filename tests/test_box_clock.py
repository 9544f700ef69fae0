"""A box whose wall clock runs an hour ahead of the gateway's (no NTP in a street office) loses nothing: the real
broker, the gateway's ingest on SQLite, the box's publisher and outbox. Its incidents were dead letters, and the
box deleted them on the gateway's word."""

import json
import logging
import re
import sqlite3
import time
from datetime import datetime, timezone

import pytest

from edge.box import box_now, wall_offset
from edge.config import Broker
from edge.publisher import (BOOT_ID, CLOCK_FLOOR, GatewayClock, Outbox, Publisher, clock_floor, keep_known_time,
                            known_time, known_time_file, on_boot_clock, restamped, set_right, waited)
from gateway import boxes
from gateway.config import TABLES_DIR, GatewayConfig, load_tables
from gateway.config import Broker as GatewayBroker
from gateway.ingest import Ingest
from gateway.service import MqttIngest
from gateway.storage import Store
from xueliang import wire

from .conftest import wait_subscribed, wait_until
from .test_gateway import JPEG, START, TOPIC
from .test_workflow import database_url  # noqa: F401 (the fixture)

HOUR = 3600.0


def incident(t: float, **changes) -> bytes:
    """START as the box makes it at ``t`` on the clock it puts on the wire."""
    return wire.encode_incident({**START, "started_at": wire.iso(t), "observed_at": wire.iso(t), **changes})


@pytest.fixture
def stack(tmp_path, broker):
    """(gateway's ingest, its store, how far its clock is behind this machine's, the box's publisher): the
    gateway's clock an hour behind, so the box's wall clock (this machine's) is an hour ahead of it."""
    behind = [HOUR]
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    ingest = Ingest(store, load_tables(TABLES_DIR / "demo.yaml"), clock=lambda: time.time() - behind[0])
    gateway = MqttIngest(GatewayConfig(broker=GatewayBroker(port=broker.port, client_id="gateway-1")), ingest)
    gateway.start()
    publisher = Publisher("box-1", Broker(port=broker.port, resend_after_s=1), Outbox(tmp_path / "outbox.sqlite"))
    try:
        wait_subscribed(gateway)
        publisher.start()
        assert publisher.connected.wait(10)
        yield ingest, store, behind, publisher
    finally:
        publisher.stop(timeout=0.5)
        gateway.stop()


@pytest.mark.slow
def test_an_incident_ahead_of_the_gateways_clock_stays_in_the_outbox_until_the_gateway_takes_it(stack):
    """No acknowledgement tells this box the gateway's clock (no evidence before the incident): it keeps sending
    it, the gateway holds it each time (no dead letter) and lists the box, and takes it once its clock allows."""
    ingest, store, behind, publisher = stack
    publisher.send([(TOPIC, incident(time.time()))])
    wait_until(lambda: publisher.resent >= 1, 15, 0.05, message="sent again for want of an acknowledgement")
    assert store.count("dead_letters") == 0 and publisher.outbox.pending() == 1
    assert publisher.delivery(time.time())["gateway_dead_letters"] == 0
    listed = ingest.health.parts()["ingest"]["boxes_ahead"]["box-1"]
    assert abs(listed["ahead_s"] - HOUR) < 10 and listed["held"] >= 1
    behind[0] = 0.0  # the gateway's clock reaches the incident's time
    wait_until(lambda: publisher.outbox.pending() == 0, 20, message="taken and acknowledged")
    (case,) = store.list_cases()
    assert case["incident_id"] == START["incident_id"] and store.count("dead_letters") == 0


@pytest.mark.slow
def test_a_box_an_hour_ahead_learns_the_gateways_clock_and_its_incident_becomes_a_case_at_once(stack):
    """The evidence's acknowledgement tells the box the gateway's clock: the incident made before it knew is
    re-stamped as it is sent again, and becomes a case with the gateway's time; what the box makes from then on
    carries it and is taken at its first send. The heartbeat says how far off the box's clock is."""
    ingest, store, behind, publisher = stack
    made = time.time()
    publisher.send([(wire.evidence_topic("box-1", "gate", START["incident_id"]), JPEG), (TOPIC, incident(made))])
    (case,) = wait_until(store.list_cases, 15, 0.05, message="a case")
    assert abs(case["reported_at"] - (made - HOUR)) < 5 and store.count("dead_letters") == 0
    assert store.evidence_bytes(case["evidence_sha256"]) == JPEG
    status = publisher.delivery(time.time())
    assert abs(status["clock_offset_s"] + HOUR) < 5 and status["clock_corrected"] is True
    wait_until(lambda: publisher.outbox.pending() == 0, 10, 0.05, message="the outbox emptied")

    resent, held = publisher.resent, ingest.health.ahead["box-1"]["held"]
    now = box_now() + wall_offset(publisher.gateway_offset())  # as the analyser stamps what it makes
    publisher.send([(TOPIC, incident(made + publisher.gateway_offset(), seq=2, state="end", observed_at=wire.iso(now),
                                     ended_at=wire.iso(now), end_reason="left"))])
    wait_until(lambda: store.list_cases()[0]["ended_at"], 10, 0.05, message="the end taken")
    assert abs(store.list_cases()[0]["ended_at"] - (time.time() - HOUR)) < 5
    wait_until(lambda: publisher.outbox.pending() == 0, 10, 0.05, message="the end acknowledged")
    assert (publisher.resent, ingest.health.ahead["box-1"]["held"]) == (resent, held)


@pytest.mark.slow
@pytest.mark.parametrize("behind", [HOUR, 0.0])
def test_an_incident_an_earlier_boot_left_stamped_years_ahead_becomes_a_case_of_a_time_unknown(stack, behind):
    """The boot before had a garbage RTC three years ahead and heard no gateway: its incident waits in the outbox. This
    boot's clock is an hour ahead (corrected) or right: the evidence's acknowledgement tells it the gateway's clock, and
    the incident goes on that boot's boot clock, a case held for review as of a time unknown. It was moved an hour at
    each send (or, the clock right, never) and held by the gateway as ahead of its clock, sent again for good."""
    ingest, store, gateway_behind, publisher = stack
    gateway_behind[0] = behind
    garbage = time.time() - behind + 3 * 365 * 86400.0
    publisher.outbox.restore([(TOPIC, incident(garbage), garbage, "the boot before", 40.0)])
    publisher.send([(wire.evidence_topic("box-1", "gate", START["incident_id"]), JPEG)])
    (case,) = wait_until(store.list_cases, 15, 0.05, message="a case")
    wait_until(lambda: publisher.outbox.pending() == 0, 10, 0.05, message="the outbox emptied")
    case = store.get_case(case["id"])
    assert case["state"] == "pending_review" and store.count("dead_letters") == 0
    assert ("incident 3f2a9c stamped on box box-1's boot clock (its time unknown): held for review, not dispatched"
            in {e["note"] for e in case["timeline"]})


@pytest.mark.slow
@pytest.mark.parametrize("behind", [HOUR, 0.0])
def test_an_incident_of_an_earlier_boot_that_learnt_its_time_becomes_a_case_with_the_time_the_camera_saw_it(
        stack, behind):
    """An RTC three hours fast at every boot, set right by NTP some minutes in: the boot before queued an incident on it
    and kept the time NTP told it; this boot's clock an hour ahead (corrected) or right. The incident goes with the
    time that boot knew at its monotonic clock, a case of the minute the camera saw it; it went to review as of a time
    unknown."""
    ingest, store, gateway_behind, publisher = stack
    gateway_behind[0] = behind
    seen = time.time() - behind - 60.0  # the gateway's time when the camera saw it, the boot's monotonic clock at 40
    publisher.outbox.keep_base("the boot before", seen - 40.0)
    publisher.outbox.restore([(TOPIC, incident(seen + 3 * HOUR), seen + 3 * HOUR, "the boot before", 40.0)])
    publisher.send([(wire.evidence_topic("box-1", "gate", START["incident_id"]), JPEG)])
    (case,) = wait_until(store.list_cases, 15, 0.05, message="a case")
    wait_until(lambda: publisher.outbox.pending() == 0, 10, 0.05, message="the outbox emptied")
    case = store.get_case(case["id"])
    assert abs(case["reported_at"] - seen) < 2 and store.count("dead_letters") == 0
    assert not any("boot clock" in (e["note"] or "") for e in case["timeline"])


@pytest.mark.parametrize("acks, offset", [
    ([120.0], 0.0),  # two minutes apart: a gateway takes such times
    ([-HOUR], -HOUR),  # the box an hour ahead: corrected from the first acknowledgement
    ([HOUR], HOUR),  # an hour behind: its times were an hour late on every case
    ([-HOUR, -HOUR, 7 * 86400.0, -HOUR, -HOUR], -HOUR),  # one odd acknowledgement moves nothing
    ([-HOUR, -HOUR, -HOUR, 0.0, 0.0, 0.0], 0.0),  # the acknowledgements agree with the box again: its own time
    ([-400.0, -200.0, -200.0], -200.0),  # corrected, it stays so until within half the limit ...
    ([-400.0, -100.0, -100.0], 0.0),  # ... so that near the limit times on the wire do not jump back and forth
])
def test_the_gateways_clock_is_the_median_of_the_last_acknowledgements(acks, offset):
    clock = GatewayClock(limit_s=300.0)
    for i, gateway_minus_wall in enumerate(acks):
        clock.observe(gateway_at=1_767_225_600.0 + i + gateway_minus_wall, mono=50.0 + i, wall=1_767_225_600.0 + i)
    assert clock.offset(mono=50.0 + i, wall=1_767_225_600.0 + i) == offset


def test_a_corrected_box_whose_wall_clock_ntp_sets_right_keeps_the_gateways_time_on_the_wire():
    """Five acknowledgements told a box an hour ahead the gateways' clock; then NTP steps its wall clock back an
    hour, before any other acknowledgement: the times on the wire stay the gateways' (they were two hours behind
    it until three acknowledgements had moved the median), and the heartbeat's offset is near 0 at once."""
    gateway = 1_767_225_600.0
    clock = GatewayClock(limit_s=300.0)
    for i in range(5):
        clock.observe(gateway_at=gateway + i, mono=50.0 + i, wall=gateway + HOUR + i)
    assert clock.offset(mono=54.0, wall=gateway + HOUR + 4) == -HOUR
    stepped = gateway + 10.0  # the wall clock, 10 s later, set right
    assert stepped + clock.offset(mono=60.0, wall=stepped) == gateway + 10.0
    assert clock.measured(mono=60.0, wall=stepped) == 0.0
    assert clock.observe(gateway_at=gateway + 11, mono=61.0, wall=stepped + 1) and not clock.corrected


def told(gateway_minus_wall: float, wall: float = 1_767_225_600.0, mono: float = 500.0) -> GatewayClock:
    """A clock five acknowledgements told that the gateways' clock is ``gateway_minus_wall`` off the wall clock, which
    reads ``wall`` at the monotonic clock's ``mono``."""
    clock = GatewayClock(limit_s=300.0)
    for _ in range(5):
        clock.observe(gateway_at=wall + gateway_minus_wall, mono=mono, wall=wall)
    return clock


def test_only_an_incident_ahead_of_the_gateways_clock_is_restamped():
    """Queued in this boot, 100 s before the acknowledgement told it that its wall clock is an hour ahead: its times
    are the gateways' at its monotonic clock then; others go as they are."""
    gateway_now = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    clock, queued = told(-HOUR, wall=gateway_now + HOUR), (gateway_now + HOUR - 100.0, BOOT_ID, 400.0)
    later = wire.iso(gateway_now + HOUR - 100.0)
    end = incident(gateway_now + HOUR - 101.0, seq=2, state="end", end_reason="left", observed_at=later, ended_at=later)
    held, created = restamped(end, queued, clock, 500.0)
    message = json.loads(held)
    assert [message[k] for k in wire.TIME_FIELDS] == ["2025-12-31T23:58:19.000Z"] + ["2025-12-31T23:58:20.000Z"] * 2
    assert created == gateway_now - 100.0
    assert {k: v for k, v in message.items() if k not in wire.TIME_FIELDS} == \
        {k: v for k, v in json.loads(end).items() if k not in wire.TIME_FIELDS}
    assert restamped(incident(gateway_now + 200.0), queued, clock, 500.0) is None  # taken as it is
    assert restamped(incident(gateway_now - HOUR), queued, clock, 500.0) is None  # late: an outbox's, taken
    assert restamped(b"not an incident", queued, clock, 500.0) is None
    assert restamped(end, queued, GatewayClock(), 500.0) is None  # no acknowledgement yet: held as it is


def test_an_incident_is_restamped_from_when_it_was_queued_not_again_by_the_offset_at_each_send():
    """Queued in this boot while the wall clock was an hour ahead, then NTP set it right before the first
    acknowledgement (the box not corrected): it is stamped from its monotonic clock (it was sent as it was, held by the
    gateway an hour). Then the gateways' clock steps back two hours (their NTP), and the gateway holds it again: it
    moves the two hours, once (it was moved by the offset at each send while it still looked ahead)."""
    gateway = 1_767_225_600.0
    clock = told(0.0, wall=gateway, mono=500.0)  # the wall clock set right: within the limit, not corrected
    made = incident(gateway + HOUR - 100.0)  # at the monotonic clock's 400, on the wall clock an hour ahead
    new, created = restamped(made, (gateway + HOUR - 100.0, BOOT_ID, 400.0), clock, 500.0)
    assert (json.loads(new)["observed_at"], created) == (wire.iso(gateway - 100.0), gateway - 100.0)
    for _ in range(5):  # the gateways' clock two hours back
        clock.observe(gateway_at=gateway - 2 * HOUR + 100.0, mono=600.0, wall=gateway + 100.0)
    moved, at = restamped(new, (created, BOOT_ID, 400.0), clock, 600.0)
    assert (json.loads(moved)["observed_at"], at) == (wire.iso(gateway - 2 * HOUR - 100.0), gateway - 2 * HOUR - 100.0)
    assert restamped(moved, (at, BOOT_ID, 400.0), clock, 600.0) is None
    assert restamped(moved, (at, BOOT_ID, 400.0), clock, 900.0) is None


@pytest.mark.parametrize("boot, mono, expected", [
    ("the boot before", 40.0, ("2000-01-01T00:00:10.000Z", "2000-01-01T00:00:40.000Z", "the boot before")),
    (None, None, ("2000-01-01T00:00:00.000Z", "2000-01-01T00:00:30.000Z", "unknown")),  # an earlier release's row
])
def test_an_incident_of_an_earlier_boot_ahead_of_the_gateways_clock_goes_as_of_a_time_unknown(boot, mono, expected):
    """Left in the outbox by a boot whose garbage RTC read three years ahead, sent by a boot whose RTC reads a year
    ahead (corrected) or right: that boot's error cannot be told. It goes on its boot clock, marked so, its thirty
    seconds kept (moved by this boot's offset at each send it drifted a year a time, held all the while, or was never
    moved and held for good)."""
    gateway, years_3 = 1_767_225_600.0, 3 * 365 * 86400.0
    made = incident(gateway + years_3 - 30.0, observed_at=wire.iso(gateway + years_3))
    for clock in (told(-365 * 86400.0, wall=gateway + 365 * 86400.0), told(0.0, wall=gateway)):
        new, created = restamped(made, (gateway + years_3 + 1.0, boot, mono), clock, 500.0)
        message = json.loads(new)
        assert (message["started_at"], message["observed_at"], message["attributes"]["boot_clock"]) == expected
        assert created == gateway + years_3 + 1.0
        assert restamped(new, (created, boot, mono), clock, 500.0) is None


def test_an_incident_of_an_earlier_boot_is_restamped_once_by_that_boots_known_time_never_by_a_later_boots():
    """Queued by a boot whose RTC read three hours fast, which learnt its time (NTP, or a gateway) before it stopped:
    sent by a boot whose RTC reads a year ahead (corrected), it takes that boot's time at its monotonic clock, once;
    a third boot, its RTC two years ahead, moves it no further. A boot's known time that leaves it ahead (set by hand
    wrong) is none: on its boot clock, as of a time unknown, and moved no more."""
    gateway = 1_767_225_600.0
    seen = gateway - 600.0  # the camera saw it ten minutes ago, at the boot before's monotonic clock's 40
    made = incident(seen + 3 * HOUR - 30.0, observed_at=wire.iso(seen + 3 * HOUR))
    queued, bases = (seen + 3 * HOUR + 1.0, "b0", 41.0), {"b0": seen - 40.0}
    new, created = restamped(made, queued, told(-365 * 86400.0, wall=gateway + 365 * 86400.0), 500.0, "b1", bases)
    message = json.loads(new)
    assert (message["started_at"], message["observed_at"]) == (wire.iso(seen - 30.0), wire.iso(seen))
    assert created == seen + 1.0
    assert "boot_clock" not in message["attributes"]
    for boot, years in (("b1", 1), ("b2", 2)):
        clock = told(-years * 365 * 86400.0, wall=gateway + years * 365 * 86400.0, mono=900.0)
        assert restamped(new, (created, "b0", 41.0), clock, 900.0, boot, bases) is None

    wrong, at = restamped(made, queued, told(0.0, wall=gateway), 500.0, "b1", {"b0": seen - 40.0 + 2 * HOUR})
    assert json.loads(wrong)["attributes"]["boot_clock"] == "b0" and at == queued[0]
    wrong_bases = {"b0": seen - 40.0 + 2 * HOUR}
    assert restamped(wrong, (at, "b0", 41.0), told(0.0, wall=gateway), 500.0, "b1", wrong_bases) is None


def test_a_box_whose_clock_ntp_sets_right_keeps_its_boots_time_for_the_next_boot(tmp_path, monkeypatch):
    """A real outbox and publisher: the RTC reads three hours fast, and nothing is kept while it stands so (its error
    unknown); NTP sets it right, and the next heartbeat keeps the boot's time (the time less the monotonic clock) in
    the outbox, where a later start of the box finds it; boots no message of the outbox is of are forgotten then."""
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3 * HOUR)
    outbox = Outbox(tmp_path / "box-1.outbox.sqlite")
    outbox.keep_base("a boot long gone", 0.0)
    publisher = Publisher("box-1", Broker(port=9), outbox)
    publisher.send([(TOPIC, incident(time.time()))])
    publisher.watch_wall()
    assert outbox.bases() == {"a boot long gone": 0.0}
    monkeypatch.setattr(time, "time", real)  # NTP
    publisher.watch_wall()
    assert abs(outbox.bases()[BOOT_ID] - (time.time() - time.monotonic())) < 1
    outbox.close()
    assert set(Outbox(tmp_path / "box-1.outbox.sqlite").bases()) == {BOOT_ID}
    assert set_right(real() - time.monotonic(), 5.0, time.monotonic(), GatewayClock()) is None  # set to 1970: wrong


def covered_lens_fault(analyser, readers, slots) -> tuple[float, dict]:
    """Twelve frames of a covered lens, a second apart, through an in-process analyser: when the first was read (the
    box's clock) and the one message it sent, the camera's fault."""
    import numpy as np

    start = box_now()
    for i in range(12):
        slots.put("gate", start + i, np.full((576, 768, 3), 10, np.uint8))
        wait_until(lambda: readers["gate"].health.analysed == i + 1, 20, 0.05, message=f"frame {i}")
    (_, fault), = analyser.publisher.sent
    return start, fault


@pytest.mark.parametrize("ntp", [False, True])
def test_what_the_analyser_makes_once_the_box_knows_the_gateways_clock_carries_it(tmp_path, monkeypatch, ntp):
    """In process, the real analyser, pipeline and detector: a covered lens (a camera fault) seen after an
    acknowledgement told the box that its wall clock is an hour ahead is stamped with the gateway's time; and
    so it is when NTP then sets the box's wall clock right before the next acknowledgement (``ntp``: it was
    stamped two hours behind the gateway)."""
    from .test_edge_faults import in_process_analyser

    analyser, readers, slots, stop = in_process_analyser(tmp_path, ["gate"], lambda real, images, s: real(images, s))
    analyser.publisher.clock.observe(gateway_at=time.time() - HOUR, mono=time.monotonic(), wall=time.time())
    gateway_now = time.time() - HOUR
    if ntp:
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() - HOUR)
    try:
        start, fault = covered_lens_fault(analyser, readers, slots)
        assert fault["type"] == "camera_fault" and fault["state"] == "start"
        assert abs(wire.parse_time(fault["observed_at"]) - (gateway_now + 11)) < 5
    finally:
        stop.set()
        analyser.join(5)


def test_a_box_whose_clock_stands_in_2000_has_the_incident_it_made_before_it_knew_the_time_held_saying_so(
        database_url, caplog):  # noqa: F811 (the fixture)
    """A box with a dead clock battery and no NTP starts in 2000-01-01: an incident it sends before any
    acknowledgement tells it the gateways' clock (edge/publisher.py ``GatewayClock``) carries that time (a box older
    than the boot clock; one it made in a boot before). It was dispatched, reported in 2000; now it waits for a
    person, the timeline saying the box's clock is years behind (the boxes page shows it off). What the box makes
    once it knows the gateways' clock is dispatched."""
    from gateway import boxes

    store = Store(database_url)
    ingest = Ingest(store, load_tables(TABLES_DIR / "demo.yaml"), clock=time.time)
    beat = {"box": "box-1", "state": "online", "at": "2000-01-01T00:02:00Z", "boot": "b1", "seq": 1, "cameras": {}}
    assert ingest.handle(wire.status_topic("box-1"), json.dumps(beat).encode()) == "heartbeat"
    assert boxes.kept(store, "box-1")["clock_off"]
    with caplog.at_level(logging.INFO, logger="gateway.ingest"):
        assert ingest.handle_batch([(TOPIC, incident(wire.parse_time("2000-01-01T00:03:00Z")))]) == ["case_created"]
    assert "rolled back" not in caplog.text  # the box's row read in the batch's pipeline mode on PostgreSQL
    (case,) = store.list_cases()
    note = store.get_case(case["id"])["timeline"][-1]["note"]
    assert case["state"] == "pending_review" and re.fullmatch(
        r"incident 3f2a9c reported \d+ days after the camera saw it \(2000-01-01T00:03:00.000Z; more than 1h\) by box "
        r"box-1's clock, \d+ days behind the gateway's: held for review, not dispatched", note), note
    later = incident(time.time(), incident_id="next", location={"lat": 39.2, "lon": 117.2})  # the gateways' time
    assert ingest.handle(TOPIC, later) == "case_created"
    assert store.list_cases()[0]["state"] == "dispatched"


def stood_in(monkeypatch, year: str = "1970") -> float:
    """The box's wall clock set to ``year``-01-01T00:00:05Z now (a dead clock battery, no NTP; a garbage RTC reads 2100
    as well); returns how far behind this machine's it is (below zero: ahead)."""
    start = datetime(int(year), 1, 1, tzinfo=timezone.utc).timestamp()
    real, behind = time.time, time.time() - 5.0 - start
    monkeypatch.setattr(time, "time", lambda: real() - behind)
    return behind


@pytest.mark.parametrize("year", ["1970", "2000", "2100"])
def test_what_the_analyser_makes_while_the_box_clock_stands_in_1970_is_on_its_boot_clock(tmp_path, monkeypatch, year):
    """In process, the real analyser, pipeline and detector, no gateway heard yet: a covered lens seen by a box whose
    clock stands in 1970, 2000 or 2100 is stamped on its boot clock (2000-01-01 plus the seconds since the machine
    booted) and marked so, for the outbox to hold until it knows the time. At 1970 and 2100 the box had refused its own
    incident (no time on the wire is before 2000 or after 2099): 'camera gate: analysis failed', and nothing it saw
    reached a gateway until someone set its clock; at 2000 it was sent, and held for review as reported 9,000 days
    late."""
    from .test_edge_faults import in_process_analyser

    stood_in(monkeypatch, year)
    analyser, readers, slots, stop = in_process_analyser(tmp_path, ["gate"], lambda real, images, s: real(images, s))
    try:
        start, fault = covered_lens_fault(analyser, readers, slots)
        assert fault["type"] == "camera_fault" and fault["attributes"]["boot_clock"] == BOOT_ID
        frame = wire.parse_time(fault["observed_at"]) - (start + wire.EARLIEST + time.monotonic() - box_now())
        assert 0 <= round(frame) < 12 and abs(frame - round(frame)) < 0.01  # a frame's time, on the boot clock
    finally:
        stop.set()
        analyser.join(5)


@pytest.mark.slow
def test_a_box_whose_clock_stands_in_2100_has_what_it_sees_become_a_case_with_the_time_the_camera_saw_it(
        tmp_path, broker, monkeypatch, caplog):
    """The real analyser, pipeline and detector, the box's publisher and outbox, the real broker and gateway: a box
    whose RTC reads 2100 (a battery fault) sees a covered lens before any gateway told it the time. It says at start
    that its clock is wrong, stamps the fault on its boot clock and holds it; its heartbeat asks the time, the gateway's
    acknowledgement tells it, and the fault becomes a case with the time the camera saw it. The box had refused its
    own incident ('camera gate: analysis failed': no time on the wire is after 2099), and nothing it saw reached a
    gateway until someone set its clock."""
    import numpy as np

    from .test_edge_faults import in_process_analyser

    real = time.time
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    gateway = MqttIngest(GatewayConfig(broker=GatewayBroker(port=broker.port, client_id="gateway-1")),
                         Ingest(store, load_tables(TABLES_DIR / "demo.yaml"), clock=real))
    gateway.start()
    behind = stood_in(monkeypatch, "2100")
    publisher = Publisher("b1", Broker(port=broker.port, resend_after_s=1), Outbox(tmp_path / "b1.outbox.sqlite"))
    analyser, readers, slots, stop = in_process_analyser(tmp_path, ["gate"], lambda real, images, s: real(images, s),
                                                         publisher=publisher, grid="HQ-DZG-10D-07")
    running = []
    try:
        seen = real()
        for i in range(12):  # a covered lens, as the box's clock reads it
            slots.put("gate", box_now() + i, np.full((576, 768, 3), 10, np.uint8))
            wait_until(lambda: readers["gate"].health.analysed == i + 1, 20, 0.05, message=f"frame {i}")
        (fault,) = [wire.decode_incident(p) for t, p, *_ in publisher.outbox.rows() if t.endswith("/incident")]
        assert fault["type"] == "camera_fault" and fault["attributes"]["boot_clock"] == BOOT_ID
        publisher.status = {"box": "b1", "state": "online", "at": wire.iso(time.time()), "cameras": {},
                            **publisher.delivery(time.time())}
        wait_subscribed(gateway)
        with caplog.at_level(logging.WARNING, logger="edge.publisher"):
            publisher.start()
            running.append(publisher)
            wait_until(lambda: publisher.outbox.pending() == 0, 15, 0.05, message="told the time, sent and taken")
        assert re.search(r"its wall clock reads 2100-01-01T08:00:\d\d\+08:00, past 2036-11-01T08:00:00\+08:00, "
                         r"10 years after this release was written \(2026-11-01\): it is wrong",
                         caplog.text), caplog.text
        (case,) = store.list_cases()
        assert case["type"] == "camera_fault" and seen - 1 <= case["reported_at"] <= seen + 13
        assert store.count("dead_letters") == 0 and boxes.kept(store, "b1")["clock_off"]
        assert abs(publisher.delivery(time.time())["clock_offset_s"] - behind) < 5
    finally:
        stop.set()
        analyser.join(5)
        for publisher in running:
            publisher.stop(timeout=0.5)
        gateway.stop()


@pytest.mark.slow
def test_a_box_whose_clock_stands_in_1970_holds_its_incidents_until_a_gateway_tells_it_the_time(
        tmp_path, broker, monkeypatch, caplog):
    """The real broker and gateway: a box whose clock stands in 1970 started again (its last start, in this boot of
    the machine, left an incident it made a minute ago in its outbox, and its boot before one more), and no incident
    of this start is acknowledged yet to tell it the time. Its heartbeat asks it (no ``clock_offset_s``), the
    gateway's acknowledgement tells it, and the two incidents become cases: this boot's with its true time,
    dispatched; the boot before's, whose time no one can know now, held for review as reported late. Heartbeats were
    never acknowledged, and the box, not knowing the time, had nothing it saw reach a gateway."""
    real = time.time
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    ingest = Ingest(store, load_tables(TABLES_DIR / "demo.yaml"), clock=real)
    gateway = MqttIngest(GatewayConfig(broker=GatewayBroker(port=broker.port, client_id="gateway-1")), ingest)
    gateway.start()
    behind = stood_in(monkeypatch)
    this_boot = wire.EARLIEST + time.monotonic() - 60.0  # a minute ago, on the boot clock

    def made(at: float, **changes) -> bytes:
        message = {**START, "started_at": wire.iso(at), "observed_at": wire.iso(at), **changes}
        return wire.encode_incident(on_boot_clock(message, changes.pop("boot", BOOT_ID)))

    outbox = Outbox(tmp_path / "outbox.sqlite")  # as the box's earlier starts left it
    outbox.put([(TOPIC, wire.encode_incident({**json.loads(made(wire.EARLIEST + 50.0)), "incident_id": "before",
                                              "location": {"lat": 39.2, "lon": 117.2},
                                              "attributes": {"boot_clock": "the boot before"}})),
                (TOPIC, made(this_boot))], time.time())
    publisher = Publisher("box-1", Broker(port=broker.port, resend_after_s=1), outbox)
    publisher.status = {"box": "box-1", "state": "online", "at": wire.iso(time.time()), "cameras": {},
                        **publisher.delivery(time.time())}
    try:
        wait_subscribed(gateway)
        with caplog.at_level(logging.WARNING, logger="edge.publisher"):
            publisher.start()
            wait_until(lambda: publisher.outbox.pending() == 0, 15, 0.05, message="told the time, sent and taken")
        assert ("its wall clock reads 1970-01-01T08:00:05+08:00, before this release was written (2026-11-01): it is "
                "wrong") in caplog.text  # Beijing time, as the line's own ``t``
        assert boxes.kept(store, "box-1")["clock_off"] and store.count("dead_letters") == 0
        cases = {case["incident_id"]: store.get_case(case["id"]) for case in store.list_cases()}
        assert cases[START["incident_id"]]["state"] == "dispatched"
        assert abs(cases[START["incident_id"]]["reported_at"] - (real() - 60.0)) < 5
        assert cases["before"]["state"] == "pending_review"
        assert ("incident before stamped on box box-1's boot clock (its time unknown): held for review, not "
                "dispatched") in {e["note"] for e in cases["before"]["timeline"] if e["action"] == "flagged"}
        status = publisher.delivery(time.time())
        assert abs(status["clock_offset_s"] - behind) < 5 and status["clock_corrected"] is True
    finally:
        publisher.stop(timeout=0.5)
        gateway.stop()


KNEW = 1_803_974_400.0  # 2027-03-01T08:00:00Z: the gateways' time a box knew when it last ran


@pytest.mark.parametrize("known, wall, boot_clock", [
    (None, wire.parse_time("2026-12-06T08:00:00Z"), False),  # after the release: taken
    (None, 5.0, True),  # 1970, a dead clock battery
    (None, CLOCK_FLOOR - 86400.0, True),  # before the release was written
    (KNEW, KNEW - 86400.0, True),  # a day before what the box knew: set back, though after the release
    (KNEW, KNEW - 200.0, False),  # within what a gateway takes of a clock behind its own
    (KNEW, KNEW + 90 * 86400.0, False),  # the box ran on since (off for three months)
    (CLOCK_FLOOR - 30 * 86400.0, CLOCK_FLOOR - 86400.0, True),  # a gateway's clock behind the release's: the release's
])
def test_a_wall_clock_before_the_gateways_time_the_box_knew_is_plainly_wrong(known, wall, boot_clock):
    """The floor no one bumps at a release: the newest of the release's (``CLOCK_FLOOR``) and the gateways' time
    the box last knew, less what a gateway takes of a clock behind its own. Before it, and before any acknowledgement,
    the box stamps on its boot clock (2000-01-01 plus the monotonic clock) and holds what it makes for the time."""
    clock = GatewayClock(floor=clock_floor(known))
    on_the_wire = wall + clock.offset(mono=100.0, wall=wall)
    assert on_the_wire == (wire.EARLIEST + 100.0 if boot_clock else wall)


YEARS_10 = 3653 * 86400.0  # the ceiling's span past the floor


@pytest.mark.parametrize("known, wall, boot_clock", [
    (None, wire.LATEST + 5.0, True),  # 2100-01-01T00:00:05Z: a garbage RTC; no time on the wire is so late
    (None, datetime(2085, 6, 1, tzinfo=timezone.utc).timestamp(), True),  # a garbage year the wire would carry
    (None, CLOCK_FLOOR + YEARS_10 + 86400.0, True),  # ten years and a day past the release, no gateway heard since
    (None, CLOCK_FLOOR + YEARS_10 - 86400.0, False),  # a day short of it: taken
    (KNEW, KNEW + YEARS_10 - 86400.0, False),  # the ceiling follows what the box last knew, as the floor does
    (KNEW, KNEW + YEARS_10, True),
    (wire.LATEST - 86400.0 * 365, wire.LATEST - 1.0, False),  # a gateway's clock told it 2099: the wire's last second
    (wire.LATEST - 86400.0 * 365, wire.LATEST, True),  # ... and none after the wire's last
])
def test_a_wall_clock_past_the_ceiling_is_plainly_wrong(known, wall, boot_clock):
    """A garbage RTC (a battery fault) reads 2085 or 2100 as readily as 1970: past the ceiling (ten years after the
    floor, and never past the wire's last time) the box takes its clock for wrong, as before the floor, and stamps on
    its boot clock. At 2100 it had refused its own incidents ('analysis failed': the wire's times end in 2099); at 2085
    a gateway held them as ahead of its clock until the box learnt the time."""
    clock = GatewayClock(floor=clock_floor(known))
    on_the_wire = wall + clock.offset(mono=100.0, wall=wall)
    assert on_the_wire == (wire.EARLIEST + 100.0 if boot_clock else wall)
    assert clock.ceiling == min(clock.floor + YEARS_10, wire.LATEST)


def test_a_box_started_again_with_its_clock_set_back_before_what_a_gateway_told_it_takes_it_for_wrong(
        tmp_path, monkeypatch):
    """The gateways' time a box knew is kept beside its outbox; started again with its wall clock a day before it (set
    back by hand, an RTC that lost a day: after the release was written, so ``CLOCK_FLOOR`` alone took it), the box
    stamps what it makes on its boot clock until a gateway tells it the time. It sent every incident a day late,
    held for review as reported late."""
    told = time.time()
    kept = known_time_file(tmp_path / "box-1.outbox.sqlite")
    assert known_time(kept) is None
    keep_known_time(kept, told)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 86400.0)
    publisher = Publisher("box-1", Broker(port=9), Outbox(tmp_path / "box-1.outbox.sqlite"))
    assert abs(publisher.clock.floor - (told - wire.MAX_CLOCK_SKEW_S)) < 0.01  # kept to the millisecond
    on_the_wire = time.time() + publisher.gateway_offset()
    assert abs(on_the_wire - (wire.EARLIEST + time.monotonic())) < 1  # the boot clock
    publisher.outbox.close()


@pytest.mark.slow
def test_a_box_whose_clock_stands_in_1970_is_shown_its_clock_flagged_and_told_the_time_which_it_keeps(
        tmp_path, broker, monkeypatch, caplog):
    """The real broker and gateway, the heartbeats edge/box.py makes sent by the box's publisher while its wall clock
    stands in 1970 (their own ``at`` and a camera's ``last_error_at`` too): each is recorded (none refused, no dead
    letter), the boxes API shows the box with its clock flagged (by the heartbeat's time, then by the box's own
    measure), and the one that asks the time is acknowledged. The box keeps the gateways' time beside its outbox:
    started again with its clock set a day before it, after the release was written, it takes its clock for wrong and
    asks."""
    from fastapi.testclient import TestClient

    from edge.box import status
    from gateway.api import create_app
    from gateway.auth import new_token

    from .test_boxes import TABLES, edge_box

    real = time.time
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    admin = {"Authorization": f"Bearer {new_token(store, 'admin-1', 'admin')}"}
    gateway = MqttIngest(GatewayConfig(broker=GatewayBroker(port=broker.port, client_id="gateway-1")),
                         Ingest(store, TABLES, clock=real))
    gateway.start()
    api = TestClient(create_app(store, TABLES))
    behind = stood_in(monkeypatch)

    def shown() -> dict:
        return {b["box"]: b for b in api.get("/boxes", headers=admin).json()["boxes"]}["box-1"]

    running = []

    def started(**cameras):
        publisher, readers, slots = edge_box(tmp_path, "box-1", cameras, broker.port)
        publisher.status = status("box-1", readers, slots, publisher.delivery(time.time()), heartbeat_s=1.0)
        running.append(publisher)
        publisher.start()
        wait_until(lambda: publisher.delivery(time.time())["clock_offset_s"] is not None, 10, 0.05,
                   message="the heartbeat that asks the time acknowledged")
        return publisher, readers, slots

    try:
        wait_subscribed(gateway)
        publisher, readers, slots = started(gate="online", yard="reconnecting")
        box = shown()
        assert (box["state"], box["clock_offset_by"], box["clock_off"]) == ("online", "gateway", True)
        assert abs(box["clock_offset_s"] - behind) < 5 and abs(wire.parse_time(box["heard_at"]) - real()) < 60
        readers["yard"].health.failed("connection refused", box_now())
        publisher.publish_status(status("box-1", readers, slots, publisher.delivery(time.time()), heartbeat_s=1.0))
        wait_until(lambda: shown()["clock_offset_by"] == "box", 10, 0.05, message="the box's own measure shown")
        box = shown()
        assert abs(box["clock_offset_s"] - behind) < 5 and box["clock_off"] and box["clock_corrected"]
        assert box["cameras"][1]["last_error_at"].startswith("1970-01-01T00:00")
        assert abs(known_time(known_time_file(publisher.outbox.path)) - real()) < 5  # kept for its next start
        assert gateway.outcomes["heartbeat_refused"] == 0 and store.count("dead_letters") == 0
        running.pop().stop(timeout=0.5)
        publisher.outbox.close()

        monkeypatch.setattr(time, "time", lambda: real() - 86400.0)  # a day behind: 2026, after the release
        with caplog.at_level(logging.WARNING, logger="edge.publisher"):
            publisher, _, _ = started(gate="online")
        assert publisher.clock.floor > real() - 3600
        assert re.search(r"before \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00, 300 s before the gateways' time it last knew",
                         caplog.text), caplog.text
        assert abs(publisher.delivery(time.time())["clock_offset_s"] - 86400.0) < 5
    finally:
        for publisher in running:
            publisher.stop(timeout=0.5)
        gateway.stop()


T = 1_796_198_400.0  # 2026-12-02T08:00:00Z: the time now, where the box can tell it


@pytest.mark.parametrize("created, boot, mono, now, expected", [
    (5.0, "b1", 50.0, None, (30.0, True)),  # queued in this boot in 1970, still 1970: the monotonic clock
    (5.0, "b1", 50.0, T, (30.0, True)),  # ... and NTP has set the clock since: not 57 years
    (T - 3600.0, "b0", 9.0, T, (3600.0, True)),  # an earlier boot's, both clocks right: the box's time
    (T - 42.0, None, None, T, (42.0, True)),  # an earlier release's row (no boot kept), its clock right
    (3600.0, None, None, None, (40.0, False)),  # an earlier boot's on a 1970 clock that ran longer: not 0 s
    (3600.0, None, None, T, (40.0, False)),  # ... and NTP set the clock since: not 57 years
    (CLOCK_FLOOR - 20 * 86400.0, None, None, T, (40.0, False)),  # an earlier release's in October 2026: none ran then
    (wire.EARLIEST + 300.0, "b0", 300.0, T, (40.0, False)),  # an earlier boot's boot clock, which ended with it
    (T - 3600.0, "b0", 9.0, None, (40.0, False)),  # the clock now plainly wrong, no gateway heard yet
    (wire.LATEST + 5.0, None, None, T, (40.0, False)),  # queued on a clock ahead (an RTC's 2100)
    (T - 10.0, "b0", 9.0, T, (40.0, False)),  # queued before this start, 10 s ago by the clocks: one was wrong
    (T + 3 * 3600.0, "b9", 9.0, T, (3600.0, True)),  # a boot's RTC 3 h fast, which learnt its time: on that boot's time
    (CLOCK_FLOOR - 20 * 86400.0, "b9", 9.0, T, (3600.0, True)),  # ... its RTC in October 2026
    (wire.EARLIEST + 9.0, "b9", 9.0, T, (3600.0, True)),  # ... its clock in 2000, on the boot clock
])
def test_how_long_a_message_has_waited_is_read_on_the_clock_it_was_queued_by(created, boot, mono, now, expected):
    """``outbox_oldest_s``: on the monotonic clock where queued in this boot, on the time its boot learnt (b9's), on
    the box's time where both it then and now were right, else unknown and at least as long as this start has run
    (40 s here: the monotonic clock at 80)."""
    bases = {"b9": T - 3600.0 - 9.0}
    assert waited(created, boot, mono, now, mono_now=80.0, since_start=40.0, this_boot="b1", bases=bases) == expected


def test_the_age_of_the_outbox_is_honest_across_a_step_of_the_wall_clock(tmp_path, monkeypatch):
    """A real outbox: a box in 1970 queues a message, and NTP then sets its clock right: the message has waited a
    moment, not 57 years ('20794 天' on the boxes page). Its outbox also held one of its boot before, queued on that
    boot's 1970 clock an hour in: that one's age is unknown, and said so, at least as long as the box has run (it read
    0 s, the clock now before its time)."""
    real = time.time
    stood_in(monkeypatch)
    outbox = Outbox(tmp_path / "box-1.outbox.sqlite")
    publisher = Publisher("box-1", Broker(port=9), outbox)
    publisher.send([(TOPIC, incident(real()))])
    time.sleep(0.3)
    monkeypatch.setattr(time, "time", real)  # NTP sets it right
    delivery = publisher.delivery(time.time())
    assert 0.3 <= delivery["outbox_oldest_s"] < 5 and delivery["outbox_oldest_known"] is True

    outbox.close()
    with sqlite3.connect(tmp_path / "box-1.outbox.sqlite") as db:  # queued first, in the boot before, at 01:00 1970
        db.execute("UPDATE outbox SET created = 3600.0, boot = 'the boot before'")
    monkeypatch.setattr(time, "time", lambda: 5.0)  # this boot's 1970 clock, which began again
    publisher = Publisher("box-1", Broker(port=9), Outbox(tmp_path / "box-1.outbox.sqlite"))
    time.sleep(0.3)
    delivery = publisher.delivery(time.time())
    assert 0.3 <= delivery["outbox_oldest_s"] < 5 and delivery["outbox_oldest_known"] is False
    publisher.outbox.close()


OLD_SCHEMA = """
CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,
                     created REAL NOT NULL);
CREATE TABLE outbox_refused (id INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL, created REAL NOT NULL,
                             reason TEXT NOT NULL);
CREATE TABLE open_incident (incident_id TEXT PRIMARY KEY, message BLOB NOT NULL);
"""


def test_an_outbox_an_earlier_release_wrote_opens_and_its_messages_age_on_the_wall_clock(tmp_path):
    """An outbox of the release before (no boot, no monotonic clock kept with its messages) opens as it is, is given
    them, and its messages' age is read on the wall clock; what this start queues beside them is kept with them."""
    path = tmp_path / "box-1.outbox.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
        db.execute("INSERT INTO outbox (topic, payload, created) VALUES (?, ?, ?)", (TOPIC, b"old", time.time() - 42))
    publisher = Publisher("box-1", Broker(port=9), Outbox(path))
    publisher.send([(TOPIC, b"new")])
    assert [(p, boot) for _, p, _, boot, _ in publisher.outbox.rows()] == [(b"old", None), (b"new", BOOT_ID)]
    delivery = publisher.delivery(time.time())
    assert 42 <= delivery["outbox_oldest_s"] < 45 and delivery["outbox_oldest_known"] is True
    publisher.outbox.close()


@pytest.mark.parametrize("wall, corrected, on_the_wire", [
    (5.0, True, T + 500.0),  # a box in 1970 restarted: the gateways' time, not its boot clock
    (T + 500.0 + 60.0, False, T + 560.0),  # its clock a minute off: its own, as that start's was
    (T + 500.0 + HOUR, True, T + 500.0),  # an hour ahead: the gateways'
])
def test_a_restarted_box_takes_up_the_gateways_clock_its_boot_was_told(wall, corrected, on_the_wire):
    clock = GatewayClock()
    clock.resume(base=T, mono=500.0, wall=wall)
    assert (clock.corrected, wall + clock.offset(mono=500.0, wall=wall)) == (corrected, on_the_wire)


def test_each_start_of_a_boot_finds_what_that_boot_learnt_and_a_reboot_nothing(tmp_path):
    """A real outbox: the wall clock less the monotonic clock as the boot's first start read it, and the gateways' time
    as told in it (not the wall clock's once NTP set it right: that is for a later boot); another boot's forgotten."""
    outbox = Outbox(tmp_path / "box-1.outbox.sqlite")
    assert outbox.boot("k1", 100.0) == (100.0, None)
    assert outbox.boot("k1", 200.0) == (100.0, None)  # started again: the first start's
    outbox.keep_base("k1", 5.0)  # NTP set the clock right
    assert outbox.boot("k1", 300.0) == (100.0, None)
    outbox.keep_base("k1", 7.0, told=True)  # a gateway's acknowledgement
    outbox.close()
    outbox = Outbox(tmp_path / "box-1.outbox.sqlite")
    assert outbox.boot("k1", 300.0) == (100.0, 7.0)
    assert outbox.boot("k2", 400.0) == (400.0, None)  # the machine booted again
    assert outbox.boot("k1", 500.0) == (500.0, None)
    outbox.close()


def test_a_gateways_time_near_what_ntp_told_is_kept_as_told(tmp_path):
    """The boot's time NTP told (``watch_wall``) and, half a second off it, a gateway's: kept as told, for a restart
    to take up. Within the second it moved, it was not kept again, and a restart learnt nothing."""
    publisher = Publisher("box-1", Broker(port=9), Outbox(tmp_path / "box-1.outbox.sqlite"))
    base = time.time() - time.monotonic()
    publisher._keep_base(base)
    publisher._keep_base(base + 0.5, told=True)
    assert publisher.outbox.boot(BOOT_ID, 0.0)[1] == base + 0.5
    publisher.outbox.close()
    again = Publisher("box-1", Broker(port=9), Outbox(tmp_path / "box-1.outbox.sqlite"))
    assert again.clock.base == base + 0.5 and not again.clock.corrected
    again.outbox.close()
