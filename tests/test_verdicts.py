"""Verdicts on machine-made cases and the suppressions they make, over the API on SQLite and
PostgreSQL: recorded, shown, logged, scoped, refused when they do not fit; a false alarm's
suppression is listed, sent (the box's list) and lifted; the 民情快报 counts machine precision;
migration 7 brings a version-6 database up. The box's side of a suppression is tested on its
pure logic here and end to end in test_suppression_e2e.py."""

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from edge.suppression import Suppressions, inside_share, matching
from gateway.api import create_app
from gateway.storage import Store
from gateway import schema, verdicts
from xueliang import wire

from .test_workflow import act, auth, city, database_url, incident  # noqa: F401


@pytest.fixture
def judged(city):
    """The city's gateway with a record of the boxes whose suppressions it was asked to send."""
    tables, store, ingest, _, tokens = city
    sent = []
    client = TestClient(create_app(store, tables, on_suppressions=sent.append))
    return tables, store, ingest, client, tokens, sent


def verdict(client, token, case_id, **body):
    return client.post(f"/cases/{case_id}/verdict", json=body, headers=auth(token))


def test_a_false_alarm_rejected_with_its_verdict_makes_a_suppression_the_box_is_sent(judged):
    tables, store, ingest, client, tokens, sent = judged
    ingest.handle(*incident(type="garbage", bbox=[0.2, 0.3, 0.4, 0.5]))  # garbage waits for review
    r = verdict(client, tokens["op-s1"], 1, verdict="false_alarm", reject=True, note="a shadow, not a pile")
    assert r.status_code == 201, r.text
    case = r.json()
    assert case["state"] == "rejected"
    assert case["verdict"]["verdict"] == "false_alarm" and case["verdict"]["actor"] == "operator:op1"
    assert [(e["action"], e["note"]) for e in case["timeline"][-2:]] == [
        ("verdict", "false_alarm; a shadow, not a pile"), ("reject", None)]
    assert client.get("/cases/1", headers=auth(tokens["admin"])).json()["verdict"]["verdict"] == "false_alarm"
    assert sent == ["box-1"]
    (s,) = client.get("/suppressions", headers=auth(tokens["op-s1"])).json()
    assert (s["case_id"], s["box"], s["camera"], s["zone"], s["type"], s["bbox"]) == (
        1, "box-1", "gate", "kerb", "garbage", [0.2, 0.3, 0.4, 0.5])
    # what the box receives: its whole list, in the wire's schema
    (item,) = wire.decode_suppressions(verdicts.box_payload(store, "box-1", 1767225600.0))
    assert (item["id"], item["bbox"], item["case_id"]) == (s["id"], [0.2, 0.3, 0.4, 0.5], 1)
    assert wire.decode_suppressions(verdicts.box_payload(store, "box-2", 1767225600.0)) == []


def test_a_redrawn_box_is_the_suppressed_region_and_a_later_verdict_lifts_it(judged):
    tables, store, ingest, client, tokens, sent = judged
    ingest.handle(*incident())  # parking: dispatched at once, no rejection
    r = verdict(client, tokens["admin"], 1, verdict="false_alarm", bbox=[0.8, 0.05, 0.95, 0.2])
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "dispatched" and r.json()["verdict"]["bbox"] == [0.8, 0.05, 0.95, 0.2]
    assert [s["bbox"] for s in client.get("/suppressions", headers=auth(tokens["admin"])).json()] == [[0.8, 0.05, 0.95, 0.2]]
    r = verdict(client, tokens["admin"], 1, verdict="correct", note="looked again: a car after all")
    assert r.status_code == 201 and r.json()["verdict"]["verdict"] == "correct"
    assert client.get("/suppressions", headers=auth(tokens["admin"])).json() == []
    assert sent == ["box-1", "box-1"]
    (old,) = client.get("/suppressions?lifted=true", headers=auth(tokens["admin"])).json()
    assert old["lifted_by"] == "admin:root" and old["lifted_at"] is not None


def test_an_operator_lifts_a_suppression_and_the_box_is_sent_its_list_again(judged):
    tables, store, ingest, client, tokens, sent = judged
    ingest.handle(*incident())
    verdict(client, tokens["op-s1"], 1, verdict="false_alarm")
    (s,) = client.get("/suppressions", headers=auth(tokens["op-s1"])).json()
    assert client.post(f"/suppressions/{s['id']}/lift", headers=auth(tokens["police"])).status_code == 403
    r = client.post(f"/suppressions/{s['id']}/lift", headers=auth(tokens["op-s1"]))
    assert r.status_code == 200, r.text
    assert r.json()["lifted_by"] == "operator:op1"
    assert client.get("/suppressions", headers=auth(tokens["op-s1"])).json() == []
    assert client.post(f"/suppressions/{s['id']}/lift", headers=auth(tokens["op-s1"])).status_code == 404
    assert sent == ["box-1", "box-1"]
    timeline = client.get("/cases/1", headers=auth(tokens["admin"])).json()["timeline"]
    assert timeline[-1]["action"] == "suppression_lifted"
    assert wire.decode_suppressions(verdicts.box_payload(store, "box-1", 1767225600.0)) == []


def test_suppressions_are_scoped_like_cases(judged, tmp_path):
    tables, store, ingest, client, tokens, sent = judged
    from gateway.auth import new_token
    other = new_token(store, "op2", "operator", grid="D-S2")
    ingest.handle(*incident())
    verdict(client, tokens["op-s1"], 1, verdict="false_alarm")
    assert client.get("/suppressions", headers=auth(other)).json() == []
    assert client.post("/suppressions/1/lift", headers=auth(other)).status_code == 404
    assert verdict(client, other, 1, verdict="correct").status_code == 404
    assert client.get("/suppressions", headers=auth(tokens["police"])).status_code == 403
    assert client.get("/suppressions").status_code == 401


@pytest.mark.parametrize("body, status, says", [
    ({"verdict": "wrong_type"}, 422, "right_type goes with a wrong_type verdict"),
    ({"verdict": "correct", "right_type": "garbage"}, 422, "right_type goes with a wrong_type verdict"),
    ({"verdict": "wrong_type", "right_type": "fire"}, 422, "no incident type of the city's tables"),
    ({"verdict": "duplicate"}, 422, "duplicate_of goes with a duplicate verdict"),
    ({"verdict": "duplicate", "duplicate_of": 1}, 422, "no duplicate of itself"),
    ({"verdict": "duplicate", "duplicate_of": 99}, 422, "duplicate_of: no case 99"),
    ({"verdict": "false_alarm", "bbox": [0.5, 0.5, 0.4, 0.6]}, 422, "is empty"),
    ({"verdict": "false_alarm", "bbox": [0.1, 0.1, 1.5, 0.2]}, 422, "less than or equal to 1"),
    ({"verdict": "false_alarm", "bbox": [0.1, 0.1, 0.2]}, 422, "at least 4"),
    ({"verdict": "correct", "reject": True}, 422, "only a false_alarm or duplicate verdict rejects"),
    ({"verdict": "maybe"}, 422, "verdict"),
    ({"verdict": "correct", "note": "x\u0000"}, 422, "NUL"),
    ({"verdict": "correct", "note": "x" * 2001}, 422, "2000"),
    ({"verdict": "false_alarm", "reject": True}, 409, "cannot reject a case that is dispatched"),
])
def test_a_verdict_that_does_not_fit_is_refused_and_nothing_is_kept(judged, body, status, says):
    tables, store, ingest, client, tokens, sent = judged
    ingest.handle(*incident())  # a parking case, dispatched
    r = verdict(client, tokens["op-s1"], 1, **body)
    assert r.status_code == status, r.text
    assert says in r.text
    case = client.get("/cases/1", headers=auth(tokens["admin"])).json()
    assert case["verdict"] is None and [e["action"] for e in case["timeline"]] == ["created", "dispatched"]
    assert client.get("/suppressions", headers=auth(tokens["admin"])).json() == [] and sent == []


def test_departments_record_no_verdict_and_a_duplicate_names_its_case(judged):
    tables, store, ingest, client, tokens, sent = judged
    ingest.handle(*incident())
    ingest.handle(*incident(location={"lat": 39.5, "lon": 117.5}))
    assert verdict(client, tokens["police"], 1, verdict="correct").status_code == 403
    assert verdict(client, tokens["op-s1"], 1).status_code == 422
    r = verdict(client, tokens["op-s1"], 2, verdict="duplicate", duplicate_of=1)
    assert r.status_code == 201, r.text
    assert r.json()["verdict"]["duplicate_of"] == 1 and r.json()["timeline"][-1]["note"] == "duplicate: of case 1"
    r = verdict(client, tokens["op-s1"], 1, verdict="wrong_type", right_type="garbage")
    assert r.json()["verdict"]["right_type"] == "garbage" and sent == []


def test_the_daily_report_counts_machine_precision_per_category_and_camera(judged):
    tables, store, ingest, client, tokens, sent = judged
    for n, camera in enumerate(("gate", "gate", "gate", "yard")):
        ingest.handle(*incident(camera=camera, location={"lat": 39 + n, "lon": 117}))
    verdict(client, tokens["op-s1"], 1, verdict="false_alarm")
    verdict(client, tokens["op-s1"], 2, verdict="false_alarm")
    verdict(client, tokens["op-s1"], 3, verdict="correct")
    verdict(client, tokens["op-s1"], 4, verdict="correct")
    machine = client.get("/reports/daily", headers=auth(tokens["admin"])).json()["machine"]
    assert (machine["raised"], machine["confirmed"], machine["rejected"], machine["precision"]) == (4, 2, 2, 0.5)
    assert [(c["camera"], c["raised"], c["rejected"], c["precision"]) for c in machine["cameras"]] == [
        ("gate", 3, 2, 0.3333), ("yard", 1, 0, 1.0)]
    assert machine["categories"] == [{"category": "机动车乱停放", "raised": 4, "judged": 4, "confirmed": 2,
                                      "rejected": 2, "precision": 0.5}]
    # an operator of another grid counts none of them
    from gateway.auth import new_token
    other = client.get("/reports/daily", headers=auth(new_token(store, "op2", "operator", grid="D-S2"))).json()
    assert other["machine"]["raised"] == 0 and other["machine"]["precision"] is None


def test_migration_7_brings_a_version_6_database_up(database_url):  # noqa: F811 (fixture)
    store = Store(database_url)
    with store.engine.begin() as db:
        db.execute(text("DROP TABLE verdicts"))
        db.execute(text("DROP TABLE suppressions"))
        db.execute(text("DELETE FROM schema_migrations WHERE version = 7"))
    store.engine.dispose()
    store = Store(database_url)
    with store.engine.connect() as db:
        assert db.execute(text("SELECT max(version) FROM schema_migrations")).scalar() == schema.MIGRATIONS[-1][0]
        assert db.execute(text("SELECT count(*) FROM suppressions")).scalar() == 0
    assert verdicts.listed(store) == [] and verdicts.latest(store, [1]) == {}


# --- the box's side: pure logic ---

SUPPRESSED = {"id": 1, "camera": "gate", "zone": "kerb", "type": "illegal_parking", "bbox": [0.5, 0.5, 0.8, 0.8]}


@pytest.mark.parametrize("changes, suppressed", [
    ({}, True),  # the same place
    ({"bbox": [0.55, 0.52, 0.85, 0.8]}, True),  # shifted a little: 83% inside
    ({"bbox": [0.7, 0.5, 1.0, 0.8]}, False),  # a third inside
    ({"bbox": [0.1, 0.1, 0.3, 0.3]}, False),  # elsewhere in the zone
    ({"zone": "road"}, False),
    ({"camera": "yard"}, False),
    ({"type": "garbage"}, False),
])
def test_a_start_is_suppressed_only_at_the_same_camera_zone_type_and_place(changes, suppressed):
    start = {"incident_id": "i", "state": "start", "camera": "gate", "zone": "kerb", "type": "illegal_parking",
             "bbox": [0.5, 0.5, 0.8, 0.8], **changes}
    assert (matching(start, [SUPPRESSED]) is not None) == suppressed
    held = Suppressions()
    held.replace([SUPPRESSED], now=0.0)
    assert held.admit(start) is not suppressed
    # its later events follow the start
    assert held.admit(dict(start, state="update")) is not suppressed
    assert held.admit(dict(start, state="end")) is not suppressed


def test_a_new_list_replaces_the_old_at_once_and_a_bad_one_is_ignored():
    held = Suppressions()
    start = {"incident_id": "a", "state": "start", "camera": "gate", "zone": "kerb", "type": "illegal_parking",
             "bbox": [0.5, 0.5, 0.8, 0.8]}
    held.on_payload(wire.encode_suppressions("box-1", 1767225600.0, [SUPPRESSED]), now=1.0)
    assert held.status()["suppressions"] == [{"id": 1, "camera": "gate", "zone": "kerb", "type": "illegal_parking"}]
    held.on_payload(b'{"schema_version": 1, "box": "box-1"}', now=2.0)  # not the schema: kept as it was
    held.on_payload(json.dumps({"suppressions": [dict(SUPPRESSED, bbox=[0.9, 0.9, 0.1, 0.1])]}).encode(), now=3.0)
    assert held.admit(start) is False and len(held.status()["suppressions"]) == 1
    held.on_payload(wire.encode_suppressions("box-1", 1767225600.0, []), now=4.0)  # all lifted
    assert held.admit(dict(start, incident_id="b")) is True
    assert held.status()["suppressions"] == [] and held.status()["suppressed_events"] == 1
    assert inside_share([0.1, 0.1, 0.2, 0.2], [0.0, 0.0, 1.0, 1.0]) == 1.0


def test_the_newest_verdicts_and_first_events_of_more_cases_than_a_query_takes_parameters(database_url):  # noqa: F811
    """``dataset export --since`` a day months back asks of every case since: 70,000 ids in one ``IN (...)`` is more
    than PostgreSQL takes as parameters of one statement (65,535), and the export failed."""
    from gateway import dataset

    store = Store(database_url)
    many = list(range(1, 70_001))
    assert verdicts.latest(store, many) == {}
    starts = dataset._starts(store, many)
    assert len(starts) == 70_000 and not any(starts.values())
