"""A box stopped with incidents open (killed, its power cut, restarted with a zone renamed or a camera removed) ends
them: at the gateway each stayed "still seen" for good, and its case never closed on the camera's re-check. Its
outbox keeps them open in its own database, written with each message in one transaction: a JSON file beside it,
written after it, fell behind it on a full disk. Real outbox files; a real box killed with SIGKILL."""

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

from edge.config import Broker
from edge.ledger import adopt_file, end_left_open
from edge.outboxfile import keep_outbox
from edge.publisher import BOOT_ID, Outbox, Publisher, restamped
from gateway import actions
from gateway.config import TABLES_DIR, GatewayConfig, load_tables
from gateway.config import Broker as GatewayBroker
from gateway.ingest import Ingest
from gateway.service import MqttIngest
from gateway.storage import Store
from gateway.workflow import Action, Role
from xueliang import services, wire

from .conftest import CLIP, REPO, Watcher, wait_subscribed, wait_until
from .test_edge_faults import camera
from .test_edge_startup import box_config
from .test_gateway import JPEG, START, TOPIC


def event(incident_id: str, seq: int, state: str, at: float, **changes) -> dict:
    return {**START, "incident_id": incident_id, "seq": seq, "state": state, "started_at": wire.iso(at - 60),
            "observed_at": wire.iso(at), **changes}


def queued(m: dict) -> list[tuple[str, bytes]]:
    """``m`` as the box queues it: its evidence, then it."""
    return [(wire.evidence_topic(m["box"], m["camera"], m["incident_id"]), JPEG),
            (wire.incident_topic(m["box"], m["camera"]), wire.encode_incident(m))]


def publisher_of(outbox: Outbox, box: str = "box-1") -> Publisher:
    return Publisher(box, Broker(port=services.free_port()), outbox)  # never started: nothing leaves


def incidents_in(outbox: Outbox) -> list[dict]:
    return [wire.decode_incident(p) for t, p, *_ in outbox.rows() if t.endswith("/incident")]


def restart(path) -> list[dict]:
    """The ends the box's next start queues, its outbox ``path`` as the box killed left it."""
    outbox = Outbox(path)
    try:
        before = len(incidents_in(outbox))
        end_left_open("box-1", publisher_of(outbox), outbox.open_incidents(), time.monotonic())
        return incidents_in(outbox)[before:]
    finally:
        outbox.close()


def test_a_case_whose_incident_a_killed_box_left_open_closes_on_the_cameras_recheck_after_its_restart(tmp_path):
    """The van stays through the box's restart: the restarted box's incident joins the case, and when the van
    leaves, the case in feedback closes on it. Before, the killed box's incident stayed open at the gateway and
    the case waited on it ("still seen") for good."""
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    tables = load_tables(TABLES_DIR / "demo.yaml")
    ingest = Ingest(store, tables)
    now = time.time()
    first = event("a" * 32 + ":box-1", 1, "start", now - 30)
    outbox = Outbox(tmp_path / "box-1.outbox.sqlite")
    outbox.put(queued(first), now - 30)  # as the box queues it; then it is killed
    outbox.close()
    assert ingest.handle(TOPIC, wire.encode_incident(first)) == "case_created"
    (case,) = store.list_cases()
    for action, role in ((Action.ACKNOWLEDGE, Role.DEPARTMENT), (Action.FEEDBACK, Role.DEPARTMENT)):
        actions.act(store, case["id"], action, role, "traffic-police", now - 20, tables, lambda row: True)

    (end,) = restart(tmp_path / "box-1.outbox.sqlite")  # the box's next start
    assert (end["seq"], end["end_reason"], end["ended_at"]) == (2, "box_stopped", first["observed_at"])
    assert ingest.handle(TOPIC, wire.encode_incident(end)) == "case_updated"
    assert restart(tmp_path / "box-1.outbox.sqlite") == []  # ended once

    second = "b" * 32 + ":box-1"  # the van still there: the restarted box's own incident joins the case
    assert ingest.handle(TOPIC, wire.encode_incident(event(second, 1, "start", now - 5))) == "case_merged"
    left = event(second, 2, "end", now, ended_at=wire.iso(now), end_reason="left")
    assert ingest.handle(TOPIC, wire.encode_incident(left)) == "case_updated"
    (case,) = store.list_cases()
    assert case["state"] == "closed", case


@pytest.mark.parametrize("fails", ["outbox", "open_incident"])
def test_a_write_the_outbox_cannot_take_leaves_neither_the_message_nor_its_incident_changed(tmp_path, fails):
    """The outbox took the update and the file of open incidents, written after it, was not replaced (a full disk):
    a box killed then ended the incident with the update's seq, which the gateway set aside, and its case waited on
    the incident for good; one whose start the file missed was never ended. Now the write of either table failing
    (SQLite refusing it, as a full disk does) leaves both as they were; the messages wait in memory, and are
    written, both, once it can."""
    path = tmp_path / "box-1.outbox.sqlite"
    publisher = publisher_of(Outbox(path))
    now = time.time()
    incident_id = "c" * 32 + ":box-1"
    start, update = event(incident_id, 1, "start", now - 20), event(incident_id, 2, "update", now - 10)
    publisher.send(queued(start))
    db = sqlite3.connect(path)  # the outbox's write of that table fails from now on, as on a full disk
    db.execute(f"CREATE TRIGGER full BEFORE INSERT ON {fails} BEGIN SELECT RAISE(ABORT, 'database or disk is full');"
               " END")
    db.commit()
    publisher.send(queued(update))
    assert publisher.write_error == "database or disk is full"
    assert [m["seq"] for m in incidents_in(publisher.outbox)] == [1]  # killed now:
    assert [wire.decode_incident(p)["seq"] for _, p, *_ in publisher.outbox.open_incidents()] == [1]
    assert len(publisher.outbox.rows()) == 2  # the start's evidence and it: nothing of the update's

    db.execute("DROP TRIGGER full")  # room again
    db.commit()
    db.close()
    publisher.write_unwritten()
    assert publisher.write_error is None
    publisher.outbox.close()
    (end,) = restart(path)  # killed once the outbox took the update: ended past its seq
    assert (end["incident_id"], end["seq"], end["ended_at"]) == (incident_id, 3, update["observed_at"])


def test_a_box_upgraded_with_incidents_open_in_the_old_file_ends_them_once_and_removes_it(tmp_path, caplog):
    """A release before kept them in ``{box}.open-incidents.json``, the last message of each, replaced whole."""
    now = time.time()
    held = [event("d" * 32 + ":box-1", 2, "update", now - 30), event("e" * 32 + ":box-1", 1, "start", now - 20)]
    old = tmp_path / "box-1.open-incidents.json"
    old.write_text(json.dumps(held, ensure_ascii=False))
    path = tmp_path / "box-1.outbox.sqlite"
    outbox = Outbox(path)
    adopt_file(outbox, old)
    outbox.close()
    assert not old.exists()
    ends = restart(path)
    assert [(m["incident_id"], m["seq"], m["end_reason"], m["ended_at"]) for m in ends] == [
        (m["incident_id"], m["seq"] + 1, "box_stopped", m["observed_at"]) for m in held]
    assert restart(path) == []
    assert "2 incident(s) open when it last stopped" in caplog.text


def test_open_incidents_that_cannot_be_read_or_ended_are_said_and_never_stop_the_box(tmp_path, caplog):
    """An old file that is no list of messages is said, not ended, and removed (that release replaced it at its
    start); an open incident the wire now refuses (written by another release) is said and forgotten."""
    old = tmp_path / "box-1.open-incidents.json"
    old.write_text("[{")
    path = tmp_path / "box-1.outbox.sqlite"
    outbox = Outbox(path)
    adopt_file(outbox, old)
    assert "open incidents not read, not a list of messages" in caplog.text and not old.exists()
    outbox.restore([], opened=[("f" * 32 + ":box-1", b'{"schema_version": 99}')])
    outbox.close()
    assert restart(path) == []
    assert "open incident 'ffffffffffffffffffffffffffffffff:box-1' not ended" in caplog.text
    outbox = Outbox(path)
    assert outbox.open_incidents() == []
    outbox.close()


@pytest.mark.parametrize("clock", ["right", "2100"])
def test_a_box_started_on_a_full_disk_ends_what_its_file_held_open_once_it_writes_there(tmp_path, monkeypatch, clock):
    """Its outbox kept in memory (no room at start), the file's open incidents, a box killed before left them open,
    are ended once it is written there; those it opened meanwhile stay open, in the file. Its wall clock in 2100 (a
    garbage RTC, plainly wrong: edge/publisher.py ``GatewayClock``), the end is stamped on the clock of the start that
    left it open, right, read on the monotonic clock since (the machine not booted again): the box had forgotten it,
    its end's time after any on the wire ('not ended'), and its case waited for good."""
    from .test_box_clock import stood_in

    now = time.time()
    killed, meanwhile = (event(f"{n}" * 32 + ":b1", 1, "start", at, box="b1")
                         for n, at in ((1, now - 60), (2, now - 10)))
    path = tmp_path / "b1.outbox.sqlite"
    outbox = Outbox(path)
    outbox.put(queued(killed), now - 60, time.monotonic() - 60)
    outbox.close()
    if clock == "2100":
        stood_in(monkeypatch, "2100")
    publisher = publisher_of(Outbox.in_memory("database or disk is full"), "b1")
    publisher.send(queued(meanwhile))
    keep_outbox(box_config(tmp_path), publisher)  # room again, at a heartbeat
    assert publisher.outbox.path == path
    assert [(m["incident_id"], m["seq"]) for m in incidents_in(publisher.outbox)] == [
        (killed["incident_id"], 1), (meanwhile["incident_id"], 1), (killed["incident_id"], 2)]
    end = incidents_in(publisher.outbox)[-1]
    assert (end["ended_at"], end["end_reason"]) == (killed["observed_at"], "box_stopped")
    assert abs(wire.parse_time(end["observed_at"]) - now) < 5
    assert [i for i, *_ in publisher.outbox.open_incidents()] == [meanwhile["incident_id"]]
    publisher.outbox.close()


@pytest.mark.slow
def test_a_box_killed_then_restarted_with_its_zone_renamed_ends_the_old_zones_incident_and_a_stopped_box_its_own(
        tmp_path, broker):
    """A real box sees the parked van in zone `kerb` and is killed; restarted with the zone renamed `kerb-2`, it
    ends the `kerb` incident (box_stopped, as last seen), and then, stopped in good order, its `kerb-2` one."""
    kerb = {"id": "kerb", "types": ["illegal_parking"], "dwell_s": 2,
            "polygon": [[0.80, 0.03], [0.97, 0.03], [0.97, 0.22], [0.80, 0.22]]}
    config = tmp_path / "edge.yaml"
    settings = {"box": "kill-box", "broker": {"port": broker.port}, "heartbeat_s": 1,
                "cameras": [camera("file", str(CLIP), zones=[kerb])], "data_dir": str(tmp_path / "edge")}
    config.write_text(yaml.safe_dump(settings))
    watcher = Watcher(broker.port, ["xl/v1/kill-box/+/incident"])  # confirms nothing: the outbox keeps it all

    def incidents(state=None):
        seen = [json.loads(p) for _, p in list(watcher.messages)]
        return [m for m in seen if m["type"] == "illegal_parking" and (state is None or m["state"] == state)]

    box = services.xueliang(["edge", "--config", str(config)], tmp_path / "edge.log")
    try:
        start = wait_until(lambda: incidents("start"), 60, message="the parked van's incident")[0]
        box.send_signal(signal.SIGKILL)
        box.wait(10)
        db = sqlite3.connect(tmp_path / "edge" / "kill-box.outbox.sqlite")  # the message and its incident open
        assert start["incident_id"] in [i for (i,) in db.execute("SELECT incident_id FROM open_incident")]
        db.close()
        settings["cameras"][0]["zones"][0]["id"] = "kerb-2"
        config.write_text(yaml.safe_dump(settings))
        box = services.xueliang(["edge", "--config", str(config)], tmp_path / "edge2.log")
        end = wait_until(lambda: [m for m in incidents("end") if m["incident_id"] == start["incident_id"]], 30,
                         message="the killed box's incident ended")[0]
        assert (end["zone"], end["end_reason"], end["seq"]) == ("kerb", "box_stopped", start["seq"] + 1)
        assert end["ended_at"] == start["observed_at"]
        again = wait_until(lambda: [m for m in incidents("start") if m["zone"] == "kerb-2"], 60,
                           message="the van in the renamed zone")[0]
        box.terminate()
        assert box.wait(10) == 0
    finally:
        box.kill()
        box.wait(10)
        watcher.stop()
    with sqlite3.connect(tmp_path / "edge" / "kill-box.outbox.sqlite") as db:  # unconfirmed: still there
        kept = [json.loads(p) for (t, p) in db.execute("SELECT topic, payload FROM outbox") if t.endswith("/incident")]
    assert [(m["seq"], m["end_reason"]) for m in kept if m["incident_id"] == again["incident_id"]] == [
        (1, None), (2, "box_stopped")]
    with sqlite3.connect(tmp_path / "edge" / "kill-box.outbox.sqlite") as db:  # stopped in good order: none open
        assert db.execute("SELECT incident_id FROM open_incident").fetchall() == []
    assert not (tmp_path / "edge" / "kill-box.open-incidents.json").exists()
    assert "Traceback" not in (tmp_path / "edge2.log").read_text()


YEAR, HOUR = 365 * 86400.0, 3600.0


@pytest.mark.parametrize("learnt", [True, False])
def test_the_end_of_what_an_earlier_boot_left_open_moves_by_that_boots_clock_never_by_this_ones(tmp_path, learnt):
    """The boot before's RTC read three hours fast: it queued the van's start at its monotonic clock's 41, and its power
    was cut; NTP had told it its time (``learnt``), or nothing had. This boot's RTC reads a year ahead, and an
    acknowledgement tells it the gateways' clock: the end is re-stamped as that boot's own messages are, by its known
    time (the minute the camera last saw the van), or on its boot clock as of a time unknown. It was this boot's row, and
    this boot's offset moved the boot before's times a year back (three hours fast still), or, this boot's clock right,
    not at all: held by the gateway as ahead for good."""
    from .test_box_clock import told

    gateway_now = time.time() - YEAR  # this machine's clock is this boot's, a year ahead of the gateways'
    seen = gateway_now - 600.0  # when the camera last saw it, at the boot before's monotonic clock's 40
    start = event("9" * 32 + ":box-1", 1, "start", seen + 3 * HOUR)
    path = tmp_path / "box-1.outbox.sqlite"
    outbox = Outbox(path)
    outbox.restore([], opened=[(start["incident_id"], wire.encode_incident(start), seen + 3 * HOUR + 1.0,
                                "the boot before", 41.0)], bases={"the boot before": seen - 40.0} if learnt else None)
    outbox.close()
    (end,) = restart(path)
    outbox = Outbox(path)
    (_, payload, *queued), = [row for row in outbox.rows() if row[0].endswith("/incident")]
    new, _ = restamped(payload, tuple(queued), told(-YEAR, wall=time.time(), mono=time.monotonic()),
                       time.monotonic(), BOOT_ID, outbox.bases())
    outbox.close()
    moved = wire.decode_incident(new)
    if learnt:
        assert [moved[k] for k in ("started_at", "observed_at", "ended_at")] == [
            wire.iso(seen - 60.0), wire.iso(seen), wire.iso(seen)]
        assert "boot_clock" not in moved["attributes"]
    else:  # on its boot clock, its first no earlier than 2000 (``restamped``)
        assert (moved["started_at"], moved["ended_at"], moved["attributes"]["boot_clock"]) == (
            "2000-01-01T00:00:00.000Z", "2000-01-01T00:01:00.000Z", "the boot before")


def test_an_incident_left_open_ends_from_its_message_as_re_stamped_not_as_first_queued(tmp_path):
    """Its start was queued on a wall clock an hour ahead, then re-stamped with the gateways' time as it was sent (the
    gateway had held it as ahead); the box was killed and started again with its clock set right: the end says it was
    last seen at the re-stamped time. It was ended from the start as first queued, an hour ahead: held by the gateway
    for good, this start's clock right (nothing to re-stamp it by). A later update of the incident stays its record."""
    now, mono = time.time(), time.monotonic()
    incident_id = "8" * 32 + ":box-1"
    start = event(incident_id, 1, "start", now + HOUR - 10.0)
    right = {**start, **{k: wire.iso(wire.parse_time(start[k]) - HOUR) for k in ("started_at", "observed_at")}}
    path = tmp_path / "box-1.outbox.sqlite"
    outbox = Outbox(path)
    outbox.put(queued(start), now + HOUR - 10.0, mono - 10.0)
    (row_id, *_), = [r for r in outbox.after(0, 10) if r[1].endswith("/incident")]
    outbox.rewrite(row_id, wire.encode_incident(right), now - 10.0)  # as the publisher re-stamps it
    assert [r[1:] for r in outbox.open_incidents()] == [(wire.encode_incident(right), now - 10.0, BOOT_ID, mono - 10.0)]
    outbox.close()
    (end,) = restart(path)
    assert (end["ended_at"], end["started_at"]) == (right["observed_at"], right["started_at"])
    assert abs(wire.parse_time(end["observed_at"]) - time.time()) < 5

    outbox = Outbox(path)
    update = event(incident_id, 2, "update", now)
    outbox.put(queued(right), now - 10.0, mono - 10.0)
    outbox.put(queued(update), now, mono)
    first = [r[0] for r in outbox.after(0, 10) if r[1].endswith("/incident")][-2]
    outbox.rewrite(first, wire.encode_incident(start))
    assert [wire.decode_incident(r[1])["seq"] for r in outbox.open_incidents()] == [2]
    outbox.close()


def start_killed(script: str) -> None:
    """The box's start ``script`` run in a process of its own (this boot of the machine, its monotonic clock running
    on), which it ends with SIGKILL, as a crash or a power cut to the process alone would."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    script = f"import os, time\nfrom pathlib import Path\n{textwrap.dedent(script)}\nos.kill(os.getpid(), 9)"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr


@pytest.mark.slow
def test_a_box_restarted_after_ntp_set_its_clock_right_keeps_its_boots_time_for_the_next_boot(tmp_path):
    """A real start of the box in a process of its own, its RTC three hours fast, queues the van's start and is killed
    before it looks at its clock again; NTP sets the clock right meanwhile (this process's clock is right). The box's
    next start, in the same boot of the machine, learns the boot's time from the step since the boot's first start,
    and a later boot puts the camera's time on the incident. It measured a step from its own start only: it learnt
    nothing, and the later boot sent the incident as of a time unknown, held for review."""
    from .test_box_clock import told

    path = tmp_path / "box-1.outbox.sqlite"
    start_killed(f"""
        real = time.time
        time.time = lambda: real() + {3 * HOUR}  # the RTC three hours fast
        from edge.config import Broker
        from edge.publisher import Outbox, Publisher
        from tests.test_box_restart import event, queued
        publisher = Publisher("box-1", Broker(port=9), Outbox(Path({str(path)!r})))
        publisher.send(queued(event("7" * 32 + ":box-1", 1, "start", time.time())))
        publisher.watch_wall()
    """)
    publisher = publisher_of(Outbox(path))  # started again: the clock set right, no gateway heard
    publisher.watch_wall()
    bases = publisher.outbox.bases()
    assert abs(bases[BOOT_ID] - (time.time() - time.monotonic())) < 1
    (_, payload, *at), = [row for row in publisher.outbox.rows() if row[0].endswith("/incident")]
    publisher.outbox.close()
    new, _ = restamped(payload, tuple(at), told(0.0, wall=time.time() + 600.0, mono=50.0), 50.0, "a later boot", bases)
    moved = wire.decode_incident(new)
    assert abs(wire.parse_time(moved["observed_at"]) - time.time()) < 10 and "boot_clock" not in moved["attributes"]


@pytest.mark.slow
def test_a_box_in_1970_restarted_with_no_gateway_reachable_puts_the_time_its_boot_was_told_on_what_it_sees(
        tmp_path, broker, monkeypatch, caplog):
    """The real broker and gateway: a box whose clock stands in 1970, a start of it in a process of its own, is told
    the time by a gateway's acknowledgement and killed. Started again in the same boot of the machine, the gateway
    gone, it stamps the van it sees with the time its boot was told, and sends it; a real reboot still starts not
    knowing. It held what it saw on its boot clock until a gateway came back, learning nothing of its boot."""
    from .test_box_clock import stood_in

    real = time.time
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    gateway = MqttIngest(GatewayConfig(broker=GatewayBroker(port=broker.port, client_id="gateway-1")),
                         Ingest(store, load_tables(TABLES_DIR / "demo.yaml"), clock=real))
    gateway.start()
    path = tmp_path / "box-1.outbox.sqlite"
    try:
        wait_subscribed(gateway)
        start_killed(f"""
            real = time.time
            time.time = lambda: 5.0 + time.monotonic() - {time.monotonic()}  # 1970-01-01T00:00:05Z now
            from edge.config import Broker
            from edge.publisher import Outbox, Publisher
            from xueliang import wire
            publisher = Publisher("box-1", Broker(port={broker.port}, resend_after_s=1), Outbox(Path({str(path)!r})))
            publisher.status = {{"box": "box-1", "state": "online", "at": wire.iso(time.time()), "cameras": {{}},
                                 **publisher.delivery(time.time())}}
            publisher.start()  # its heartbeat asks the time
            end = real() + 20
            while publisher.delivery(time.time())["clock_offset_s"] is None and real() < end:
                time.sleep(0.05)
        """)
    finally:
        gateway.stop()
    stood_in(monkeypatch)
    watcher = Watcher(broker.port, ["xl/v1/box-1/+/incident"])
    publisher = Publisher("box-1", Broker(port=broker.port, resend_after_s=1), Outbox(path))
    try:
        with caplog.at_level(logging.WARNING, logger="edge.publisher"):
            publisher.start()
        assert "carries the gateways' time, as an earlier start in this boot of the machine learnt it" in caplog.text
        assert publisher.connected.wait(10)
        made = publisher.now()
        assert abs(made - real()) < 5
        publisher.send(queued(event("6" * 32 + ":box-1", 1, "start", made)))
        (_, sent), = wait_until(lambda: list(watcher.messages), 10, 0.05, message="the van's start sent")
        assert abs(wire.parse_time(json.loads(sent)["observed_at"]) - real()) < 5
    finally:
        publisher.stop(timeout=0.5)
        watcher.stop()
    outbox = Outbox(path)  # a reboot: the kernel's boot id another
    assert outbox.boot("another boot", 5.0) == (5.0, None)
    outbox.close()
