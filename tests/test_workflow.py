"""The 民情流水线 on a real SQLite gateway: routing, review, merge, department isolation, re-check
close, reopening, escalation (with real Mosquitto), Open311 and reports."""

import copy
import hashlib
import json
import logging
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, select, text

from gateway import ingestdb
from gateway.api import create_app
from gateway.auth import new_token
from gateway.config import TABLES_DIR, load_tables
from gateway.ingest import Ingest
from gateway.service import Clock
from gateway.reports import summary
from gateway.schema import MIGRATIONS, incident_events
from gateway.storage import Store, migrate
from gateway.workflow import TRANSITIONS, Action, CaseState, Role, TransitionError, transition
from xueliang import services, wire

from .conftest import wait_until
from .test_gateway import START, jpeg_photo

CITY = {
    "departments": [{"id": "traffic-police", "name": "交警"}, {"id": "sanitation", "name": "环卫"},
                    {"id": "city-management", "name": "城管"}],
    "categories": [
        {"type": "illegal_parking", "code": "200505", "name": "机动车乱停放", "department": "traffic-police",
         "service_level": "30s", "merge_radius_m": 30, "merge_window": "1h", "recheck_window": "1h"},
        {"type": "garbage", "code": "200102", "name": "暴露垃圾", "department": "sanitation",
         "service_level": "1h", "review": True},
    ],
    "grids": [{"code": "D", "name": "区", "level": "district"},
              {"code": "D-S1", "name": "街道1", "level": "street", "parent": "D"},
              {"code": "D-S1-C1", "name": "社区1", "level": "community", "parent": "D-S1"},
              {"code": "D-S1-C1-G1", "name": "网格1", "parent": "D-S1-C1"},
              {"code": "D-S2", "name": "街道2", "level": "street", "parent": "D"},
              {"code": "D-S2-G9", "name": "网格9", "parent": "D-S2"}],
    "routes": [{"type": "garbage", "grid": "D-S2", "department": "city-management"}],
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database_url(request, tmp_path):
    """The same tests on SQLite and on a real PostgreSQL server, each with a fresh database (dropped
    after its test: soon enough that little of it ever reaches the disk; left for the end, the
    session's databases took 20-70 s to delete on a disk mounted with online discard). The PostgreSQL
    runs are ``slow``: a server for the session and a database per test cost the quick loop 35 s of its
    70 (``make test`` runs them)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/gw.sqlite"
        return
    server = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{server.port}/postgres",
                           isolation_level="AUTOCOMMIT")
    with engine.connect() as db:
        db.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{server.port}/{name}"
    finally:
        with engine.connect() as db:  # FORCE: the test's own connection pools are still open
            db.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        engine.dispose()


@pytest.fixture
def city(tmp_path, database_url):
    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump(CITY, allow_unicode=True))
    tables = load_tables(path)
    store = Store(database_url)
    ingest = Ingest(store, tables)
    client = TestClient(create_app(store, tables))
    tokens = {
        "admin": new_token(store, "root", "admin"),
        "police": new_token(store, "tp", "department", department="traffic-police"),
        "sanitation": new_token(store, "san", "department", department="sanitation"),
        "op-s1": new_token(store, "op1", "operator", grid="D-S1"),
    }
    return tables, store, ingest, client, tokens


def seen(t: float) -> dict:
    """An incident's times, as a box that saw it at ``t`` stamps them."""
    return {"started_at": wire.iso(t), "observed_at": wire.iso(t)}


def incident(**changes) -> tuple[str, bytes]:
    """A start as a box sends it now (``seen`` for another time): the gateway holds one seen long ago for review."""
    m = copy.deepcopy(START)
    m.update({"incident_id": uuid.uuid4().hex, "grid": "D-S1-C1-G1", "evidence": None,
              "location": {"lat": 39.17, "lon": 117.15}, **seen(time.time())})
    m.update(changes)
    return wire.incident_topic(m["box"], m["camera"]), json.dumps(m).encode()


def end_of(topic_payload, reason="left", seq=2) -> tuple[str, bytes]:
    topic, payload = topic_payload
    m = json.loads(payload)
    m.update(seq=seq, state="end", end_reason=reason, ended_at=wire.iso(time.time()), observed_at=wire.iso(time.time()))
    return topic, json.dumps(m).encode()


def ended(store, ingest, case_id, reason="box_stopped") -> None:
    """The box ends each incident of the case still open, as it does when it stops (``box_stopped``: no re-check,
    nothing closes): a test about something else closes the case then (a close while the camera still reports the
    problem is refused)."""
    with store.engine.connect() as db:
        for iid in ingestdb.unended_incidents(db, case_id):
            seq, payload = db.execute(select(incident_events.c.seq, incident_events.c.payload)
                                      .where(incident_events.c.incident_id == iid)
                                      .order_by(incident_events.c.seq.desc()).limit(1)).one()
            m = json.loads(payload)
            assert ingest.handle(*end_of((wire.incident_topic(m["box"], m["camera"]), payload), reason, seq + 1))


def auth(token):
    return {"Authorization": f"Bearer {token}"}


JPEG = {"Content-Type": "image/jpeg"}  # a photo's body says what it is (none is a 415)


def act(client, token, case_id, action, **extra):
    return client.post(f"/cases/{case_id}/actions", json={"action": action, **extra}, headers=auth(token))


@pytest.mark.parametrize("state, action, role, expected", [
    ("pending_review", "confirm", "operator", "dispatched"),
    ("dispatched", "acknowledge", "department", "handling"),
    ("handling", "feedback", "department", "feedback"),
    ("feedback", "close", "system", "closed"),
    ("feedback", "recheck_failed", "operator", "handling"),
    ("closed", "reopen", "system", "dispatched"),
    ("handling", "return", "department", "returned"),
    ("returned", "redispatch", "operator", "dispatched"),
    ("handling", "ledger", "operator", "ledger"),
    ("handling", "escalate", "system", "handling"),
    ("closed", "feedback", "department", TransitionError),
    ("dispatched", "close", "department", TransitionError),
    ("pending_review", "confirm", "department", TransitionError),
])
def test_transition_table(state, action, role, expected):
    if expected is TransitionError:
        with pytest.raises(TransitionError):
            transition(state, action, role)
    else:
        assert transition(state, action, role) == CaseState(expected)


def test_every_action_has_a_rule():
    assert set(TRANSITIONS) == set(Action)


def test_routing_follows_the_grid_tree_and_review_holds_dispatch(city):
    tables, store, ingest, client, tokens = city
    assert ingest.handle(*incident(type="garbage", grid="D-S2-G9")) == "case_created"
    assert ingest.handle(*incident(type="garbage", grid="D-S1-C1-G1", location={"lat": 39.2, "lon": 117.2})) == "case_created"
    by_grid = {c["grid"]: c for c in client.get("/cases", headers=auth(tokens["admin"])).json()}
    assert by_grid["D-S2-G9"]["department"] == "city-management"
    assert by_grid["D-S1-C1-G1"]["department"] == "sanitation"
    held = by_grid["D-S1-C1-G1"]
    assert held["state"] == "pending_review" and held["deadline"] is None
    r = act(client, tokens["op-s1"], held["id"], "confirm", note="看过画面, 属实")
    assert r.status_code == 200, r.text
    case = r.json()
    assert case["state"] == "dispatched"
    assert wire.parse_time(case["deadline"]) - wire.parse_time(case["dispatched_at"]) == pytest.approx(3600, abs=1)
    assert [e["action"] for e in case["timeline"]] == ["created", "confirm", "dispatched"]
    assert case["timeline"][1]["actor"] == "operator:op1" and case["timeline"][1]["note"] == "看过画面, 属实"


def test_duplicates_nearby_merge_and_far_ones_do_not(city):
    tables, store, ingest, client, tokens = city
    assert ingest.handle(*incident()) == "case_created"
    assert ingest.handle(*incident(location={"lat": 39.17015, "lon": 117.15})) == "case_merged"  # ~17 m
    assert ingest.handle(*incident(location={"lat": 39.1710, "lon": 117.15})) == "case_created"  # ~111 m
    cases = client.get("/cases", headers=auth(tokens["admin"])).json()
    assert sorted(c["incident_count"] for c in cases) == [1, 2]


def test_departments_see_and_act_on_their_own_cases_only(city):
    tables, store, ingest, client, tokens = city
    ingest.handle(*incident())
    ingest.handle(*incident(type="garbage", grid="D-S2-G9"))
    police = client.get("/cases", headers=auth(tokens["police"])).json()
    assert [c["department"] for c in police] == ["traffic-police"]
    garbage_id = next(c["id"] for c in client.get("/cases", headers=auth(tokens["admin"])).json() if c["type"] == "garbage")
    assert client.get(f"/cases/{garbage_id}", headers=auth(tokens["police"])).status_code == 404
    assert act(client, tokens["police"], garbage_id, "acknowledge").status_code == 404
    operator = client.get("/cases", headers=auth(tokens["op-s1"])).json()
    assert {c["grid"] for c in operator} == {"D-S1-C1-G1"}  # D-S2 is outside its subtree
    assert client.get("/cases").status_code == 401
    assert client.get("/cases", headers=auth("xl_forged")).status_code == 401
    assert client.post(f"/cases/{police[0]['id']}/actions", json={"action": "acknowledge"}).status_code == 401
    with store.engine.connect() as db:
        stored = [r[0] for r in db.execute(text("SELECT sha256 FROM tokens"))]
    assert tokens["police"] not in stored and len(stored) == 4


def test_a_department_adds_its_on_site_photo_and_only_it_sees_it(city):
    tables, store, ingest, client, tokens = city
    ingest.handle(*incident())
    (case,) = client.get("/cases", headers=auth(tokens["police"])).json()
    photo = jpeg_photo()
    r = client.post(f"/cases/{case['id']}/photos", content=photo, headers=JPEG | auth(tokens["police"]))
    assert r.status_code == 201, r.text
    (entry,) = [e for e in r.json()["timeline"] if e["action"] == "photo"]
    assert entry["actor"] == "department:tp" and entry["photo_url"]
    assert client.get(entry["photo_url"], headers=auth(tokens["police"])).content == photo
    assert client.get(entry["photo_url"], headers=auth(tokens["sanitation"])).status_code == 404
    assert client.post(f"/cases/{case['id']}/photos", content=photo, headers=JPEG | auth(tokens["sanitation"])).status_code == 404
    assert client.post(f"/cases/{case['id']}/photos", content=b"GIF89a", headers=JPEG | auth(tokens["police"])).status_code == 422
    assert client.post(f"/cases/{case['id']}/photos", content=photo, headers=JPEG).status_code == 401
    # a photo is not evidence waiting for an incident: the quarantine leaves it alone
    assert store.quarantine_orphan_evidence(time.time() + 10, time.time() + 10) == 0


def test_camera_recheck_closes_after_feedback_and_recurrence_reopens(city):
    tables, store, ingest, client, tokens = city
    first = incident()
    ingest.handle(*first)
    (case,) = client.get("/cases", headers=auth(tokens["police"])).json()
    assert act(client, tokens["police"], case["id"], "acknowledge").json()["state"] == "handling"
    r = act(client, tokens["police"], case["id"], "close")  # told of its role, not of the states it never acts from
    assert (r.status_code, r.json()["detail"]) == (403, "a department may not close a case (allowed: admin, operator)")
    assert act(client, tokens["police"], case["id"], "feedback", note="已贴单, 车主已驶离").json()["state"] == "feedback"
    assert ingest.handle(*end_of(first, "left")) == "case_updated"
    closed = client.get(f"/cases/{case['id']}", headers=auth(tokens["admin"])).json()
    assert closed["state"] == "closed" and closed["end_reason"] == "left" and closed["closed_at"]
    assert [e["action"] for e in closed["timeline"]][-2:] == ["recheck_evidence", "close"]
    # the same car (or another) parks there again within the re-check window
    assert ingest.handle(*incident(location={"lat": 39.17005, "lon": 117.15})) == "case_reopened"
    reopened = client.get(f"/cases/{case['id']}", headers=auth(tokens["admin"])).json()
    assert reopened["state"] == "dispatched" and reopened["incident_count"] == 2 and reopened["closed_at"] is None
    assert len(client.get("/cases", headers=auth(tokens["admin"])).json()) == 1


def test_feedback_after_the_camera_already_saw_it_gone_closes_at_once(city):
    tables, store, ingest, client, tokens = city
    first = incident()
    ingest.handle(*first)
    ingest.handle(*end_of(first, "left"))
    (case,) = client.get("/cases", headers=auth(tokens["police"])).json()
    assert case["state"] == "dispatched" and case["end_reason"] == "left"
    assert act(client, tokens["police"], case["id"], "feedback").json()["state"] == "closed"


def test_a_new_sighting_cancels_the_cameras_earlier_gone(city):
    tables, store, ingest, client, tokens = city
    first = incident()
    ingest.handle(*first)
    ingest.handle(*end_of(first, "left"))
    assert ingest.handle(*incident(location={"lat": 39.17005, "lon": 117.15})) == "case_merged"  # another car
    (case,) = client.get("/cases", headers=auth(tokens["police"])).json()
    assert case["end_reason"] is None and case["incident_count"] == 2
    assert act(client, tokens["police"], case["id"], "feedback").json()["state"] == "feedback"  # a person re-checks


def test_a_case_closes_on_the_camera_only_when_every_joined_incident_has_gone(city):
    tables, store, ingest, client, tokens = city
    first, second = incident(), incident(location={"lat": 39.17005, "lon": 117.15})
    ingest.handle(*first)
    assert ingest.handle(*second) == "case_merged"  # a second car in the same place
    (case,) = client.get("/cases", headers=auth(tokens["police"])).json()
    assert act(client, tokens["police"], case["id"], "feedback", note="已处理").json()["state"] == "feedback"
    ingest.handle(*end_of(first, "left"))  # the first car leaves, the second is still there
    case = client.get(f"/cases/{case['id']}", headers=auth(tokens["admin"])).json()
    assert case["state"] == "feedback" and case["end_reason"] is None
    assert case["timeline"][-1]["action"] == "incident_ended" and json.loads(second[1])["incident_id"] in \
        case["timeline"][-1]["note"]
    ingest.handle(*end_of(second, "left"))  # now the place is clear
    case = client.get(f"/cases/{case['id']}", headers=auth(tokens["admin"])).json()
    assert case["state"] == "closed" and case["end_reason"] == "left"


def test_stream_end_is_not_a_recheck(city):
    tables, store, ingest, client, tokens = city
    first = incident()
    ingest.handle(*first)
    (case,) = client.get("/cases", headers=auth(tokens["police"])).json()
    act(client, tokens["police"], case["id"], "feedback")
    ingest.handle(*end_of(first, "stream_ended"))
    assert client.get(f"/cases/{case['id']}", headers=auth(tokens["admin"])).json()["state"] == "feedback"


def pictured(picture: bytes) -> dict:
    return {"sha256": hashlib.sha256(picture).hexdigest(), "bytes": len(picture)}


@pytest.mark.parametrize("reason, end_picture", [("left", True), ("cleared", True), ("box_stopped", False)])
def test_an_end_whose_start_never_arrived_is_kept_for_review_and_sent_to_no_department(city, reason, end_picture):
    """Its start lost at the box (a salvaged outbox, one held in memory on a full disk) or a dead letter, or
    still to be resent: it opened a dispatched case, a department sent to a problem the camera had seen gone
    or no longer watched."""
    tables, store, ingest, client, tokens = city
    found, gone = jpeg_photo(color="red"), jpeg_photo(color="gray")
    start = incident(evidence=pictured(found))
    topic, end = end_of(start, reason)
    end = json.dumps(dict(json.loads(end), evidence=pictured(gone) if end_picture else None)).encode()
    iid = json.loads(end)["incident_id"]
    for picture in (found, gone):
        assert ingest.handle(wire.evidence_topic("box-1", "gate", iid), picture) == "evidence"
    assert ingest.handle(topic, end) == "case_created"  # a trace: the camera saw a problem there
    case = client.get("/cases/1", headers=auth(tokens["admin"])).json()
    assert (case["state"], case["dispatched_at"], case["deadline"], case["end_reason"]) == (
        "pending_review", None, None, reason)
    assert [e["action"] for e in case["timeline"]] == ["created", "flagged"]  # no dispatch notice
    assert f"incident {iid} ended ({reason} at " in case["timeline"][-1]["note"]
    assert case["evidence_url"] is None  # no picture of the problem reached the gateway, only of its end
    assert (case["end_evidence_url"] is not None) == end_picture
    assert client.get("/cases", headers=auth(tokens["police"])).json() == []
    assert ingest.handle(*start) == "case_updated"  # the start, sent again by its box, comes after all
    case = client.get("/cases/1", headers=auth(tokens["admin"])).json()
    assert (case["state"], case["end_reason"]) == ("pending_review", reason)
    assert client.get(case["evidence_url"], headers=auth(tokens["admin"])).content == found
    assert act(client, tokens["op-s1"], 1, "confirm").json()["state"] == "dispatched"  # a person may still send it


def test_an_end_whose_start_never_arrived_never_reopens_a_closed_case(city):
    tables, store, ingest, client, tokens = city
    first = incident()
    ingest.handle(*first)
    act(client, tokens["police"], 1, "feedback")
    ingest.handle(*end_of(first, "left"))
    assert store.get_case(1)["state"] == "closed"
    # another car parked there and left; only its end reached the gateway
    assert ingest.handle(*end_of(incident(location={"lat": 39.17005, "lon": 117.15}), "left")) == "case_created"
    assert (store.get_case(1)["state"], store.get_case(1)["incident_count"]) == ("closed", 1)
    assert store.get_case(2)["state"] == "pending_review"
    assert client.get("/cases", headers=auth(tokens["police"])).json()[0]["id"] == 1  # nothing new sent


def test_an_end_whose_start_never_arrived_joins_an_open_case_as_its_start_and_end_would(city):
    tables, store, ingest, client, tokens = city
    first = incident()
    ingest.handle(*first)
    act(client, tokens["police"], 1, "feedback")
    ingest.handle(*end_of(first, "camera_lost"))  # lost sight of it: no re-check
    assert store.get_case(1)["state"] == "feedback"
    # the camera is back, saw a car there and saw it leave; the car's start was lost
    assert ingest.handle(*end_of(incident(location={"lat": 39.17005, "lon": 117.15}), "left")) == "case_merged"
    case = store.get_case(1)
    assert (case["state"], case["end_reason"], case["incident_count"]) == ("closed", "left", 2)
    assert [e["action"] for e in case["timeline"]][-3:] == ["merged", "recheck_evidence", "close"]


def test_a_start_and_its_end_in_one_batch_commit_together(city, caplog):
    """On PostgreSQL the end's look for the case's incidents still seen got no rows in the batch's pipeline
    mode (ResourceClosedError): every such batch was rolled back and taken again one message at a time."""
    tables, store, ingest, client, tokens = city
    first, lead = incident(), incident(type="garbage", attributes={"needs_review": True})
    with caplog.at_level(logging.INFO, logger="gateway.ingest"):
        assert ingest.handle_batch([first, end_of(first, "left"), lead]) == ["case_created", "case_updated",
                                                                             "case_created"]
        assert act(client, tokens["police"], 1, "feedback").json()["state"] == "closed"  # seen gone already
        second = incident(location={"lat": 39.17005, "lon": 117.15})
        assert ingest.handle_batch([second]) == ["case_reopened"]
        assert act(client, tokens["police"], 1, "feedback").json()["state"] == "feedback"
        assert ingest.handle_batch([end_of(second, "left")]) == ["case_updated"]
    assert "rolled back" not in caplog.text
    assert store.get_case(1)["state"] == "closed"  # closed on the camera's re-check, in the batch


def test_a_start_and_its_end_in_one_batch_are_taken_in_their_order_whichever_came_first(city):
    """A box sends an unconfirmed start again after resend_after_s: its end may be ahead of it."""
    tables, store, ingest, client, tokens = city
    first = incident()
    assert ingest.handle_batch([end_of(first, "left"), first]) == ["case_updated", "case_created"]
    (case,) = store.list_cases()
    assert (case["state"], case["end_reason"], case["last_seq"]) == ("dispatched", "left", 2)


def test_extension_and_invalid_actions_are_explained(city):
    tables, store, ingest, client, tokens = city
    ingest.handle(*incident())
    (case,) = client.get("/cases", headers=auth(tokens["admin"])).json()
    r = act(client, tokens["police"], case["id"], "extend", extend_by="2h")
    assert r.status_code == 403 and "a department may not extend" in r.json()["detail"]
    r = act(client, tokens["admin"], case["id"], "extend", extend_by="2h", note="部门申请延期")
    assert wire.parse_time(r.json()["deadline"]) - wire.parse_time(case["deadline"]) == pytest.approx(7200, abs=1)
    r = act(client, tokens["admin"], case["id"], "extend", extend_by="soon")
    assert r.status_code == 422 and "write a number and a unit" in r.json()["detail"]
    r = act(client, tokens["admin"], case["id"], "confirm")
    assert r.status_code == 409 and "cannot confirm a case that is dispatched" in r.json()["detail"]


@pytest.mark.slow
def test_overdue_cases_escalate_up_the_grid_tree_with_a_notice(city, tmp_path):
    tables, store, ingest, client, tokens = city
    ingest.handle(*incident())
    (case,) = client.get("/cases", headers=auth(tokens["admin"])).json()
    broker = services.mosquitto(tmp_path / "mq").start()
    got = []
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    watcher.on_message = lambda c, u, m: got.append((m.topic, json.loads(m.payload)))
    watcher.connect("127.0.0.1", broker.port)
    watcher.subscribe("xl/v1/#", qos=1)
    watcher.loop_start()
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    try:
        clock = Clock(store, tables, publisher, every_s=1)
        deadline = wire.parse_time(case["deadline"])
        assert clock.escalate_overdue(deadline - 1) == 0
        assert clock.escalate_overdue(deadline + 1) == 1
        assert clock.escalate_overdue(deadline + 2) == 0  # not again before another service level
        assert clock.escalate_overdue(deadline + 40) == 1
        c = client.get(f"/cases/{case['id']}", headers=auth(tokens["admin"])).json()
        assert c["level"] == 2 and c["escalated_grid"] == "D-S1" and c["state"] == "dispatched"
        clock.publish_notices(time.time())
        wait_until(lambda: len([t for t, _ in got if "/escalations/" in t]) == 2, 5, message="escalation notices")
        topics = [t for t, _ in got]
        assert "xl/v1/dispatch/traffic-police" in topics
        assert "xl/v1/escalations/D-S1" in topics and "xl/v1/escalations/D-S1-C1" in topics
        clock.publish_notices(time.time())
        time.sleep(0.3)
        assert len(got) == 3  # each notice once
    finally:
        watcher.loop_stop()
        publisher.loop_stop()
        broker.stop()


def test_open311_and_reports(city):
    tables, store, ingest, client, tokens = city
    first = incident()
    ingest.handle(*first)
    ingest.handle(*incident(type="garbage", grid="D-S2-G9"))
    police_case = client.get("/cases", headers=auth(tokens["police"])).json()[0]
    act(client, tokens["police"], police_case["id"], "feedback")
    ingest.handle(*end_of(first, "left"))
    services_ = client.get("/open311/v2/services.json", headers=auth(tokens["admin"])).json()
    assert {s["service_code"] for s in services_} == {"200505", "200102"}
    reqs = client.get("/open311/v2/requests.json", headers=auth(tokens["admin"])).json()
    assert sorted(r["status"] for r in reqs) == ["closed", "open"]
    one = client.get(f"/open311/v2/requests/{police_case['id']}.json", headers=auth(tokens["police"])).json()[0]
    assert one["service_code"] == "200505" and one["agency_responsible"] == "交警" and one["lat"] == 39.17
    report = client.get("/reports/daily", headers=auth(tokens["admin"])).json()
    assert (report["received"], report["closed"], report["on_time_rate"]) == (2, 1, 1.0)
    ranking = {d["department"]: d for d in report["departments"]}
    assert ranking["traffic-police"]["rank"] == 1 and ranking["traffic-police"]["closed_on_time"] == 1
    assert client.get("/reports/weekly", headers=auth(tokens["police"])).json()["received"] == 1


def test_a_report_reads_no_case_rejected_or_put_on_the_ledger_before_its_day(tmp_path, database_url):
    """A rejected or ledger case is settled without a closing time: every report read every one ever made (a year's
    false alarms, 100,000 rejected cases: 2 s and 200 MB a report, growing each day), though one from before the
    day counts for nothing in it. Counted here (the cases read), not timed; the figures stay what they were."""
    from gateway.actions import act as apply_action
    from gateway.presentation import period

    (tmp_path / "city.yaml").write_text(yaml.safe_dump(CITY, allow_unicode=True))
    tables, store = load_tables(tmp_path / "city.yaml"), Store(database_url)
    start, end = period("daily", "2026-12-05", 2e9)
    clock = [start - 3 * 86400]
    ingest = Ingest(store, tables, clock=lambda: clock[0])

    def case(kind: str, *actions: tuple[Action, Role]) -> int:
        assert ingest.handle(*incident(type=kind, grid="D-S1-C1-G1", **seen(clock[0]))) == "case_created"
        (case_id,) = [c["id"] for c in store.list_cases(limit=1)]
        for action, role in actions:
            apply_action(store, case_id, action, role, f"{role.value}:x", clock[0], tables, lambda row: True)
        return case_id

    case("garbage", (Action.REJECT, Role.OPERATOR))  # days before: a false alarm rejected
    case("illegal_parking", (Action.ACKNOWLEDGE, Role.DEPARTMENT), (Action.LEDGER, Role.OPERATOR))  # 挂账
    still_open = case("illegal_parking")  # days before, and overdue on the day
    held = case("garbage")  # held for review until the day
    clock[0] = start + 3600
    apply_action(store, held, Action.CONFIRM, Role.OPERATOR, "operator:x", clock[0], tables, lambda row: True)
    for action, role in ((Action.ACKNOWLEDGE, Role.DEPARTMENT), (Action.LEDGER, Role.OPERATOR)):
        apply_action(store, held, action, role, "x:x", clock[0], tables, lambda row: True)  # dispatched on the day
    today = case("garbage", (Action.REJECT, Role.OPERATOR))  # raised and rejected on the day
    assert sorted(r["id"] for r in store.cases_between(start, end)) == sorted([still_open, held, today])
    report = summary(store.cases_between(start, end), start, end, now=end)
    assert (report["received"], report["dispatched"], report["overdue"]) == (1, 1, 1)


def test_an_operators_report_and_list_of_a_city_of_thousands_of_grids_make_a_subtree_once(tmp_path, monkeypatch):
    """The report asks of each case whether the operator may see it; that made the operator's grid subtree again for
    each case (every grid's ancestors): 5,000 grids and 2,000 cases were 12 s of CPU, an admin's 0.08 s. Counted here
    (the subtrees made per request), not timed: what a request costs is measured, not asserted. (The list's grid
    filter looked for each grid of its subtree in the operator's, a list: 15,000 grids, 3 s a request; a set now.)"""
    from gateway import auth as access

    made = []
    real_subtree = access.subtree
    monkeypatch.setattr(access, "subtree", lambda tables, grid: made.append(grid) or real_subtree(tables, grid))
    city = dict(CITY, routes=[], grids_csv="grids.csv")
    del city["grids"]
    (tmp_path / "grids.csv").write_text("\n".join(["code,name,level,parent", "D,区,district,"] + [
        f"D-S{s},街道{s},street,D" for s in range(10)] + [
        f"D-S{s}-G{g},网格{g},grid,D-S{s}" for s in range(10) for g in range(1500)]) + "\n")
    (tmp_path / "city.yaml").write_text(yaml.safe_dump(city, allow_unicode=True))
    tables = load_tables(tmp_path / "city.yaml")
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    outcomes = Ingest(store, tables).handle_batch([incident(grid=f"D-S{i % 10}-G{i % 500}",
                                                            location={"lat": 39.0 + i * 0.001, "lon": 117.0})
                                                   for i in range(500)])
    assert outcomes == ["case_created"] * 500
    client = TestClient(create_app(store, tables))
    received = {}
    for name, token in (("admin", new_token(store, "root", "admin")),
                        ("street", new_token(store, "op1", "operator", grid="D-S1")),
                        ("city", new_token(store, "op", "operator", grid="D")),
                        ("elsewhere", new_token(store, "op2", "operator", grid="X"))):
        made.clear()
        report = client.get("/reports/daily", headers=auth(token))
        assert report.status_code == 200 and len(made) <= 1, (name, len(made))
        received[name] = report.json()["received"]
        made.clear()
        listed = client.get("/cases", params={"grid": "D", "limit": 1000}, headers=auth(token))
        assert listed.status_code == 200 and len(made) <= 2, (name, len(made))  # the operator's, the filter's
        received[name] = (received[name], len(listed.json()))
    assert received == {"admin": (500, 500), "street": (50, 50), "city": (500, 500), "elsewhere": (0, 0)}


def test_urgent_spill_gets_the_urgent_service_level_and_pulls_a_merged_case_forward(tmp_path, database_url):
    city = copy.deepcopy(CITY)
    city["departments"].append({"id": "roads", "name": "市政"})
    city["categories"].append({"type": "spill", "code": "200104", "name": "道路遗撒", "department": "roads",
                               "service_level": "1 working day", "urgent_service_level": "1h"})
    (tmp_path / "city.yaml").write_text(yaml.safe_dump(city, allow_unicode=True))
    store = Store(database_url)
    ingest = Ingest(store, load_tables(tmp_path / "city.yaml"))
    spill = {"type": "spill", "zone": "carriageway", "attributes": {"source": "model", "urgent": False}}
    far = {"lat": 39.0, "lon": 117.0}
    assert ingest.handle(*incident(**spill)) == "case_created"
    assert ingest.handle(*incident(**dict(spill, attributes={"urgent": True}), location=far)) == "case_created"
    ordinary, urgent = sorted(store.list_cases(), key=lambda c: c["id"])
    assert (ordinary["urgent"], urgent["urgent"]) == (False, True)
    assert urgent["deadline"] - urgent["created_at"] == pytest.approx(3600, abs=1)
    assert ordinary["deadline"] - ordinary["created_at"] > 3 * 3600  # a working day, whatever the hour
    # the spill spreads: an urgent incident at the same place joins the ordinary case and brings it forward
    assert ingest.handle(*incident(**dict(spill, attributes={"urgent": True}))) == "case_merged"
    merged = store.get_case(ordinary["id"])
    assert merged["urgent"] is True and merged["incident_count"] == 2
    assert merged["deadline"] == pytest.approx(time.time() + 3600, abs=5)
    page = TestClient(create_app(store, load_tables(tmp_path / "city.yaml"), public_read=True)).get("/ui/cases")
    assert page.text.count("紧急") == 2


def undo_migration_14(db) -> None:
    """What a database of version 13 lacks: the deadline on the log rows of dispatches and extensions."""
    db.execute(text("DROP INDEX ix_case_log_at"))
    db.execute(text("ALTER TABLE case_log DROP COLUMN deadline"))


def undo_migration_15(db) -> None:
    """What a database of version 14 lacks: dead letters by age, evidence by box."""
    db.execute(text("DROP INDEX ix_dead_letters_received_at"))
    db.execute(text("DROP INDEX ix_evidence_box_named"))


def undo_migration_17(db) -> None:
    """What a database of version 16 lacks: photos' picture hashes, case photos by their bytes."""
    db.execute(text("DROP TABLE photo_hashes"))
    db.execute(text("DROP INDEX ix_case_photos_sha256"))


def undo_migration_22(db) -> None:
    """What a database of version 21 lacks: dead letters by box."""
    db.execute(text("DROP INDEX IF EXISTS ix_dead_letters_box_received_at"))
    if "box" in {c["name"] for c in inspect(db).get_columns("dead_letters")}:
        db.execute(text("ALTER TABLE dead_letters DROP COLUMN box"))


def undo_migration_21(db) -> None:
    """What a database of version 20 lacks: cases by box, camera and time."""
    db.execute(text("DROP INDEX IF EXISTS ix_cases_box_camera_created_at"))  # undo_migrations_after_3 does it too


def undo_migration_20(db) -> None:
    """What a database of version 19 lacks: the command centre's own deadline."""
    if "review_deadline" in {c["name"] for c in inspect(db).get_columns("cases")}:  # after_3 does it too
        db.execute(text("ALTER TABLE cases DROP COLUMN review_deadline"))


def undo_migration_19(db) -> None:
    """What a database of version 18 lacks: the numbering of a backup restored."""
    db.execute(text("DROP TABLE IF EXISTS numbering"))  # undo_migrations_after_3 does it too


def undo_migration_18(db) -> None:
    """What a database of version 17 lacks: the boxes' twins."""
    for column in ("prev_boot", "twin_at", "twin_boots"):
        db.execute(text(f"ALTER TABLE boxes DROP COLUMN {column}"))


def undo_migration_16(db) -> None:
    """What a database of version 15 lacks: cases by department and state."""
    db.execute(text("DROP INDEX ix_cases_department_state"))


def undo_migration_13(db) -> None:
    """What a database of version 12 lacks: evidence's mark of an event naming it (and migration 15's indexes, one
    of them on that mark)."""
    undo_migration_15(db)
    db.execute(text("DROP INDEX ix_evidence_unnamed"))
    db.execute(text("ALTER TABLE evidence DROP COLUMN named"))


def undo_migrations_after_3(db) -> None:
    """What a database of version 3 lacks: photo links, token expiry and revocation, sessions, dead letters' grid,
    the feedback time, the re-check's deadline and the request for more time, verdicts and suppressions, an
    extension's duration on its timeline row, the boxes' heartbeats, dead letters' digest, evidence's mark of an
    event naming it, the log's deadlines, cases by department and state, photos' picture hashes, the numbering of a
    backup restored, the command centre's own deadline, cases by box, camera and time, dead letters by box."""
    undo_migration_22(db)
    undo_migration_21(db)
    undo_migration_20(db)
    undo_migration_19(db)
    undo_migration_17(db)
    undo_migration_16(db)
    undo_migration_14(db)
    undo_migration_13(db)
    db.execute(text("DROP INDEX ux_dead_letters_digest"))
    db.execute(text("ALTER TABLE dead_letters DROP COLUMN digest"))
    db.execute(text("DROP TABLE boxes"))
    db.execute(text("DROP TABLE verdicts"))
    db.execute(text("DROP TABLE suppressions"))
    db.execute(text("DROP TABLE case_photos"))
    db.execute(text("DROP TABLE sessions"))
    db.execute(text("DROP INDEX ix_dead_letters_grid"))
    for table, column in (("dead_letters", "grid"), ("tokens", "prefix"), ("tokens", "expires_at"),
                          ("tokens", "revoked_at"), ("cases", "fed_back_at"), ("cases", "recheck_deadline"),
                          ("cases", "extension_request"), ("case_log", "extend_by")):
        db.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))


def test_a_database_from_before_migrations_is_brought_up_to_date(database_url):
    store = Store(database_url)
    ingest = Ingest(store, load_tables(TABLES_DIR / "demo.yaml"))
    assert ingest.handle(*incident(grid="HQ-DZG-10D-07")) == "case_created"
    with store.engine.begin() as db:  # what the first release made: no urgent column, no version table
        db.execute(text("ALTER TABLE cases DROP COLUMN urgent"))
        db.execute(text("DROP INDEX ix_case_log_published"))
        db.execute(text("DROP TABLE schema_migrations"))
        undo_migrations_after_3(db)
    store.engine.dispose()
    store = Store(database_url)
    with store.engine.connect() as db:
        versions = db.execute(text("SELECT version FROM schema_migrations ORDER BY version")).scalars().all()
    assert versions == [v for v, _, _ in MIGRATIONS] == list(range(1, 23))
    (case,) = store.list_cases()
    assert case["urgent"] is False and case["category_name"] == "机动车乱停放"
    with store.engine.connect() as db:
        assert "ix_case_log_published" in {i["name"] for i in inspect(db).get_indexes("case_log")}
    assert migrate(store.engine) == []  # nothing left to do, twice
    assert Ingest(store, load_tables(TABLES_DIR / "demo.yaml")).handle(
        wire.status_topic("box-1"), b'{"box": "box-1", "state": "offline"}') == "heartbeat"  # its table made


def test_a_failed_batch_is_redone_message_by_message_on_both_databases(city, monkeypatch):
    tables, store, ingest, client, tokens = city
    real_apply, calls = ingest._apply, {"n": 0}

    def flaky(db, message, category, payload, now):  # the second message of the batch hits a database error
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("deadlock detected")
        return real_apply(db, message, category, payload, now)

    monkeypatch.setattr(ingest, "_apply", flaky)
    first = incident()
    batch = [first, incident(location={"lat": 39.0, "lon": 117.0}), end_of(first, seq=2)]
    assert ingest.handle_batch(batch) == ["case_created", "case_created", "case_updated"]
    assert len(store.list_cases()) == 2 and store.count("incident_events") == 3
    assert ingest.handle_batch(batch) == ["duplicate"] * 3  # redelivered after a crash: nothing twice

