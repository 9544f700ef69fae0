"""A box stopped with incidents open (killed, its power cut, restarted with a zone renamed or a camera removed) ends
them: at the gateway each stayed "still seen" for good, and its case never closed on the camera's re-check."""

import json
import signal
import sqlite3
import threading
import time

import pytest
import yaml

from edge.ledger import OpenIncidents
from gateway import actions
from gateway.config import TABLES_DIR, load_tables
from gateway.ingest import Ingest
from gateway.storage import Store
from gateway.workflow import Action, Role
from xueliang import services, wire

from .conftest import CLIP, Watcher, wait_until
from .test_edge_faults import camera
from .test_gateway import START, TOPIC


def event(incident_id: str, seq: int, state: str, at: float, **changes) -> dict:
    return {**START, "incident_id": incident_id, "seq": seq, "state": state, "started_at": wire.iso(at - 60),
            "observed_at": wire.iso(at), **changes}


def test_a_case_whose_incident_a_killed_box_left_open_closes_on_the_cameras_recheck_after_its_restart(tmp_path):
    """The van stays through the box's restart: the restarted box's incident joins the case, and when the van
    leaves, the case in feedback closes on it. Before, the killed box's incident stayed open at the gateway and
    the case waited on it ("still seen") for good."""
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    tables = load_tables(TABLES_DIR / "demo.yaml")
    ingest = Ingest(store, tables)
    now = time.time()
    first = event("a" * 32 + ":box-1", 1, "start", now - 30)
    ledger = OpenIncidents(tmp_path / "box-1.open-incidents.json")
    ledger.note(first)  # as the box does once its outbox took the message; then it is killed
    assert ingest.handle(TOPIC, wire.encode_incident(first)) == "case_created"
    (case,) = store.list_cases()
    for action, role in ((Action.ACKNOWLEDGE, Role.DEPARTMENT), (Action.FEEDBACK, Role.DEPARTMENT)):
        actions.act(store, case["id"], action, role, "traffic-police", now - 20, tables, lambda row: True)

    (end,) = OpenIncidents(tmp_path / "box-1.open-incidents.json").ends(now - 10)  # the box's next start
    assert (end["seq"], end["end_reason"], end["ended_at"]) == (2, "box_stopped", first["observed_at"])
    assert ingest.handle(TOPIC, wire.encode_incident(end)) == "case_updated"
    assert OpenIncidents(tmp_path / "box-1.open-incidents.json").ends(now) == []  # ended once

    second = "b" * 32 + ":box-1"  # the van still there: the restarted box's own incident joins the case
    assert ingest.handle(TOPIC, wire.encode_incident(event(second, 1, "start", now - 5))) == "case_merged"
    left = event(second, 2, "end", now, ended_at=wire.iso(now), end_reason="left")
    assert ingest.handle(TOPIC, wire.encode_incident(left)) == "case_updated"
    (case,) = store.list_cases()
    assert case["state"] == "closed", case


def test_open_incidents_the_box_cannot_read_or_write_are_said_and_never_stop_it(tmp_path, caplog):
    path = tmp_path / "box-1.open-incidents.json"
    path.write_text("[{")
    assert OpenIncidents(path).ends(time.time()) == []
    assert "open incidents not read" in caplog.text
    path.unlink()
    path.mkdir()  # cannot be replaced: said once, kept in memory
    ledger = OpenIncidents(path)
    ledger.note(event("c" * 32 + ":box-1", 1, "start", time.time()))
    ledger.note(event("c" * 32 + ":box-1", 2, "update", time.time()))
    assert caplog.text.count("open incidents not written") == 1
    assert [m["seq"] for m in ledger.ends(time.time())] == [3]


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
    assert json.loads((tmp_path / "edge" / "kill-box.open-incidents.json").read_text()) == []
    assert "Traceback" not in (tmp_path / "edge2.log").read_text()


@pytest.mark.slow  # the detectors load in a second
def test_a_box_killed_just_after_its_outbox_took_an_event_ends_the_incident_past_that_events_seq(tmp_path):
    """The outbox takes each event before the file of open incidents notes it: a box killed between the two (its
    power cut) had the update seq 2 in its outbox and the start seq 1 in the file, and at its next start ended the
    incident with seq 2 too. The gateway took the outbox's update and set the end aside as a dead letter (a box
    sends each seq once), and the case waited on the incident, "still seen", for good."""
    from edge.box import Analyser, CameraReader, Metrics, Slots
    from edge.config import parse_config
    from edge.detector import load_detectors
    from edge.pipeline import Outgoing

    from .test_edge_faults import KERB, camera

    config = parse_config({"box": "box-1", "data_dir": str(tmp_path),
                           "cameras": [camera("gate", "x.mp4", zones=[KERB])]})
    path = tmp_path / "box-1.open-incidents.json"
    on_disk_when_sent = []  # the file as a box killed the moment its outbox took each message leaves it

    class Outbox:
        def gateway_offset(self) -> float:
            return 0.0

        def send(self, items):
            on_disk_when_sent.append(path.read_text() if path.exists() else "[]")

    slots, stop, metrics = Slots(), threading.Event(), Metrics()
    readers = {c.id: CameraReader(c, slots, metrics, stop) for c in config.cameras}
    analyser = Analyser(config, load_detectors(config), readers, slots, Outbox(), metrics, stop,
                        ledger=OpenIncidents(path))
    now = time.time()
    start, update = (event("d" * 32 + ":box-1", seq, state, now - 60 + seq)
                     for seq, state in ((1, "start"), (2, "update")))
    analyser._emit([Outgoing(start, None), Outgoing(update, None)])

    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    ingest = Ingest(store, load_tables(TABLES_DIR / "demo.yaml"))
    assert [ingest.handle(TOPIC, wire.encode_incident(m)) for m in (start, update)] == ["case_created", "case_updated"]
    path.write_text(on_disk_when_sent[-1])  # killed as the outbox took the update; the next start:
    (end,) = OpenIncidents(path).ends(now)
    assert end["seq"] > update["seq"]
    assert ingest.handle(TOPIC, wire.encode_incident(end)) == "case_updated"
    assert store.get_case(1)["end_reason"] == "box_stopped"
