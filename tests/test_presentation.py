"""What people and machines see of a case (gateway/presentation.py) on a real gateway database:
each joined incident's own evidence, display names, Chinese for every action, Beijing time,
and notices that follow their schema."""

import ast
import hashlib
import io
import json
import re
import time
from pathlib import Path

import pytest
from PIL import Image

from gateway import presentation
from gateway.config import TABLES_DIR, load_tables
from gateway.service import Clock
from gateway.verdicts import Verdict, verdict_note
from gateway.workflow import Action, CaseState
from xueliang import wire

from .conftest import REPO
from .test_workflow import act, auth, city, database_url, end_of, incident  # noqa: F401


def jpeg(width: int, colour: str = "navy") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, 24), colour).save(out, "JPEG")
    return out.getvalue()


def sighting(ingest, picture: bytes, **changes) -> tuple[str, tuple[str, bytes]]:
    """An incident whose snapshot arrived first, as a box sends them: (its id, its start message)."""
    message = incident(evidence={"sha256": hashlib.sha256(picture).hexdigest(), "bytes": len(picture)}, **changes)
    incident_id = json.loads(message[1])["incident_id"]
    assert ingest.handle(wire.evidence_topic("box-1", "gate", incident_id), picture) == "evidence"
    return incident_id, message


def gone(ingest, message: tuple[str, bytes], picture: bytes, reason: str = "left") -> str:
    """The camera sees the incident gone, with its own end snapshot."""
    topic, payload = end_of(message, reason)
    m = json.loads(payload)
    m["evidence"] = {"sha256": hashlib.sha256(picture).hexdigest(), "bytes": len(picture)}
    assert ingest.handle(wire.evidence_topic("box-1", "gate", m["incident_id"]), picture) == "evidence"
    return ingest.handle(topic, json.dumps(m).encode())


def test_each_incident_joined_by_merge_or_reopening_has_its_own_evidence(city):
    tables, store, ingest, client, tokens = city
    admin = auth(tokens["admin"])
    pictures = {name: jpeg(width) for name, width in (("a", 40), ("b", 48), ("b-end", 56), ("a-end", 64), ("c", 72))}
    a, first = sighting(ingest, pictures["a"])
    assert ingest.handle(*first) == "case_created"
    b, second = sighting(ingest, pictures["b"])
    assert ingest.handle(*second) == "case_merged"
    assert gone(ingest, second, pictures["b-end"]) == "case_updated"
    for action in ("acknowledge", "feedback"):
        assert act(client, tokens["police"], 1, action).status_code == 200
    assert gone(ingest, first, pictures["a-end"]) == "case_updated"
    assert store.get_case(1)["state"] == CaseState.CLOSED.value
    c, third = sighting(ingest, pictures["c"])
    assert ingest.handle(*third) == "case_reopened"
    elsewhere, far = sighting(ingest, jpeg(80), location={"lat": 39.3, "lon": 117.3})
    assert ingest.handle(*far) == "case_created"

    case = client.get("/cases/1", headers=admin).json()
    links = {i["incident_id"]: i for i in case["incidents"]}
    assert [(i["incident_id"], i["how"]) for i in case["incidents"]] == [(a, "opened"), (b, "merged"), (c, "reopened")]
    shown = {(iid, which): links[iid][key] for iid in (a, b, c)
             for which, key in (("start", "evidence_url"), ("end", "end_evidence_url")) if links[iid][key]}
    assert shown == {(a, "start"): f"/cases/1/incidents/{a}/evidence.jpg",
                     (a, "end"): f"/cases/1/incidents/{a}/evidence.jpg?which=end",
                     (b, "start"): f"/cases/1/incidents/{b}/evidence.jpg",
                     (b, "end"): f"/cases/1/incidents/{b}/evidence.jpg?which=end",
                     (c, "start"): f"/cases/1/incidents/{c}/evidence.jpg"}
    expected = {(a, "start"): "a", (a, "end"): "a-end", (b, "start"): "b", (b, "end"): "b-end", (c, "start"): "c"}
    for key, url in shown.items():
        got = client.get(url, headers=admin)
        assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
        assert got.content == pictures[expected[key]], key
    assert client.get(case["evidence_url"], headers=admin).content == pictures["a"]  # the case's own: its first
    # only the case's own incidents, only for those who may see the case
    assert client.get(f"/cases/1/incidents/{elsewhere}/evidence.jpg", headers=admin).status_code == 404
    assert client.get(f"/cases/2/incidents/{elsewhere}/evidence.jpg", headers=admin).status_code == 200
    assert client.get(f"/cases/1/incidents/{c}/evidence.jpg?which=end", headers=admin).status_code == 404
    assert client.get(f"/cases/1/incidents/{a}/evidence.jpg", headers=auth(tokens["sanitation"])).status_code == 404
    assert client.get(f"/cases/1/incidents/{a}/evidence.jpg").status_code == 401
    assert client.get(f"/cases/1/incidents/{a}/evidence.jpg", headers=auth(tokens["police"])).status_code == 200
    assert client.get("/cases/1/incidents/a%2Fb/evidence.jpg", headers=admin).status_code in (404, 422)


def test_a_scan_bomb_kept_before_ingest_counted_scans_is_withheld_not_served(city):
    """Evidence and photos kept before ingest refused JPEGs of more than 64 scans were served as kept: every
    browser that showed one decoded each scan (a 7000x7000 picture's 1,000 took 31 s of CPU). Each is now
    withheld (410, the reason named) on the API and the pages alike; a picture of few scans is served."""
    from gateway import storage

    from .test_gateway import scans

    tables, store, ingest, client, tokens = city
    admin, bomb, now = auth(tokens["admin"]), scans(500), time.time()
    bomb_sha = hashlib.sha256(bomb).hexdigest()
    topic, payload = incident(evidence={"sha256": bomb_sha, "bytes": len(bomb)})
    incident_id = json.loads(payload)["incident_id"]
    with store.begin() as db:  # as ingest kept them before it counted scans
        storage.add_evidence(db, bomb_sha, bomb, incident_id, "box-1", "gate", now)
    assert ingest.handle(topic, payload) == "case_created"
    with store.begin() as db:
        storage.add_evidence(db, bomb_sha, bomb, "case:1", "-", "-", now)
        assert storage.add_case_photo(db, 1, bomb_sha, now)
    few = scans(0)
    assert client.post("/cases/1/photos", content=few, headers={"Content-Type": "image/jpeg"} | auth(tokens["police"])).status_code == 201
    assert client.post("/ui/login", data={"token": tokens["admin"]}).status_code in (200, 303)
    pictures = ["/cases/1/evidence.jpg", f"/cases/1/incidents/{incident_id}/evidence.jpg", f"/cases/1/photos/{bomb_sha}.jpg"]
    for url in pictures + ["/ui" + url for url in pictures[1:]]:
        got = client.get(url, headers=admin)
        assert got.status_code == 410 and got.headers["content-type"] != "image/jpeg", url
        assert "is withheld: a JPEG of 506 scans; at most 64" in got.text, url
        assert ("图片不予显示" in got.text) == url.startswith("/ui"), url  # a page's error is a page
    few_url = f"/cases/1/photos/{hashlib.sha256(few).hexdigest()}.jpg"
    for url in (few_url, "/ui" + few_url):
        got = client.get(url, headers=admin)
        assert got.status_code == 200 and got.content == few, url


def test_the_api_keeps_utc_for_machines_and_adds_the_names_people_use(city):
    tables, store, ingest, client, tokens = city
    ingest.handle(*incident())
    case = client.get("/cases/1", headers=auth(tokens["admin"])).json()
    assert case["deadline"].endswith("Z") and wire.parse_time(case["deadline"]) == pytest.approx(
        store.get_case(1)["deadline"], abs=0.001)
    assert (case["department"], case["department_name"]) == ("traffic-police", "交警")
    assert (case["grid"], case["grid_name"]) == ("D-S1-C1-G1", "网格1")
    listed = client.get("/cases", headers=auth(tokens["admin"])).json()[0]
    assert (listed["department_name"], listed["grid_name"]) == ("交警", "网格1")


def logged_actions() -> set[str]:
    """Every case-log action the gateway's code writes as a literal (storage.log, storage._log_row)."""
    found = set()
    for path in (REPO / "gateway").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", None))
                position = {"log": 5, "_log_row": 4}.get(name)
                if position is not None and len(node.args) > position:
                    arg = node.args[position]
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        found.add(arg.value)
    return found


def test_every_action_and_every_log_entry_has_a_chinese_name():
    written = logged_actions()
    assert {"created", "dispatched", "merged", "recheck_evidence", "incident_ended", "photo", "flagged",
            "escalation_failed"} <= written  # the scan finds what the gateway writes
    missing = ({a.value for a in Action} | written) - set(presentation.ACTION_NAMES)
    assert not missing, f"no Chinese name in presentation.ACTION_NAMES for {sorted(missing)}"
    assert set(presentation.STATE_NAMES) == {s.value for s in CaseState}
    assert all(not name.isascii() for name in presentation.ACTION_NAMES.values())


@pytest.mark.parametrize("utc, shown", [
    ("2026-12-05T02:30:00Z", "2026-12-05 10:30"),  # a 10:30 Beijing deadline, as the outside check saw it
    ("2026-12-31T16:00:00Z", "2027-01-01 00:00"),  # the city's new year starts 8 hours before UTC's
    (None, ""),
])
def test_people_read_beijing_time(utc, shown):
    assert presentation.local_time(wire.parse_time(utc) if utc else None) == shown


@pytest.mark.parametrize("kind, day, start, end", [
    ("daily", "2026-12-05", "2026-12-04T16:00:00.000Z", "2026-12-05T16:00:00.000Z"),
    ("weekly", "2026-12-05", "2026-11-29T16:00:00.000Z", "2026-12-06T16:00:00.000Z"),  # from Monday, Beijing time
])
def test_reports_count_beijing_days(kind, day, start, end):
    assert tuple(map(presentation.iso, presentation.period(kind, day, 2e9))) == (start, end)


@pytest.mark.parametrize("entry, shown", [
    ({"action": "dispatched", "role": "system", "note": "traffic-police"}, "派往 交警大队"),
    ({"action": "dispatched", "role": "system", "note": "traffic-police 交警大队"}, "派往 交警大队"),
    ({"action": "escalate", "role": "system", "note": "overdue: the deadline passed at 2026-12-05T02:30:00.000Z; "
                                                      "level 1, to HQ-DZG"}, "超期: 处置时限 2026-12-05 10:30 已过; 第 1 级督办, 升级至 丁字沽街道"),
    ({"action": "recheck_evidence", "role": "system", "note": "camera: cleared at 2026-12-05T02:30:00Z"},
     "摄像机核查: 已清除 (2026-12-05 10:30)"),
    ({"action": "flagged", "role": "system", "note": "incident 3f2a9c ended (left at 2026-12-05T02:30:00Z) before its "
                                                     "start reached the gateway: held for review, not dispatched"},
     "事件 3f2a9c 的发现未送达网关, 只收到其结束 (车辆已驶离, 2026-12-05 10:30): 提交审核, 未派遣"),
    ({"action": "flagged", "role": "system", "note": "incident 3f2a9c stamped on box box-1's boot clock (its time "
                                                     "unknown): held for review, not dispatched"},
     "事件 3f2a9c 按盒子 box-1 的开机时钟计时 (发现时间未知): 提交审核, 未派遣"),
    ({"action": "approve_extension", "role": "operator", "note": None, "extend_by": "1 working day"}, "1 个工作日"),
    # a person's note that reads like the gateway's is still the person's: the duration from its own field
    ({"action": "request_extension", "role": "department", "note": "2h", "extend_by": "5 working days"},
     "5 个工作日 · 2h"),
    ({"action": "escalate", "role": "admin", "note": "overdue: the deadline passed at 2026-12-01T00:00:00Z; level 3, "
                                                     "to HQ"}, "overdue: the deadline passed at 2026-12-01 08:00; level 3, to HQ"),
    ({"action": "redispatch", "role": "operator", "note": "to sanitation"}, "to sanitation"),
    ({"action": "feedback", "role": "department", "note": "moved at 2026-12-05T02:30:00Z, see photo"},
     "moved at 2026-12-05 10:30, see photo"),  # a person's note as written, times in Beijing time
    ({"action": "photo", "role": "department", "note": "ab" * 32}, "照片"),
    ({"action": "verdict", "role": "operator", "note": verdict_note(Verdict.WRONG_TYPE, right_type="garbage",
                                                                     bbox=[0.1, 0.2, 0.3, 0.4], note="pile")},
     "类型错误: 暴露垃圾; 重画框 [0.1, 0.2, 0.3, 0.4]; pile"),
    ({"action": "verdict", "role": "operator", "note": verdict_note(Verdict.DUPLICATE, duplicate_of=7)}, "重复: 案件 #7"),
    ({"action": "verdict", "role": "operator", "note": verdict_note(Verdict.FALSE_ALARM)}, "误报"),
    ({"action": "suppression_lifted", "role": "operator", "note": "suppression 3 lifted"}, "屏蔽 #3 已解除"),
])
def test_notes_read_in_chinese_and_beijing_time(entry, shown):
    assert presentation.note_text(entry, load_tables(TABLES_DIR / "demo.yaml")) == shown


SHA = "ab" * 32
NAMING_NOTES = [  # every note the gateway writes that names another case (case 12): as logged, hidden, and in Chinese
    ("photo_reused", "system", f"photo {SHA} is the same picture as case #12's photo of 2026-12-01T00:00:00Z",
     f"photo {SHA} is the same picture as another case's photo of 2026-12-01T00:00:00Z",
     "该照片与另一案件 2026-12-01 08:00 的照片为同一张图片, 请核实是否到场"),
    ("related", "system", "case 12 opened at the same place for confirmed incident box-1-gate-7",
     "another case opened at the same place for confirmed incident box-1-gate-7",
     "同一地点经确认的事件 box-1-gate-7 已另立案件, 如为同一问题请作废本案"),
    ("related", "system", "case 12 at the same place waits for review",
     "another case at the same place waits for review", "同一地点的另一案件 待审核"),
    ("related", "system", "incident lead at the same place waits for review in case 12; this case not reopened",
     "incident lead at the same place waits for review in another case; this case not reopened",
     "同一地点的事件 lead 待审核, 已另立案件; 本案未重新派遣"),
    ("related", "system", "case 12 at the same place closed recently; not reopened without review",
     "another case at the same place closed recently; not reopened without review", "同一地点的另一案件 刚结案; 未经审核不重新派遣"),
    ("verdict", "operator", verdict_note(Verdict.DUPLICATE, duplicate_of=12, bbox=[0.1, 0.2, 0.3, 0.4], note="case 12"),
     "duplicate: of another case; box redrawn [0.1, 0.2, 0.3, 0.4]; case 12",  # a person's words as written
     "重复: 另一案件; 重画框 [0.1, 0.2, 0.3, 0.4]; case 12"),
]


@pytest.mark.parametrize("action, role, logged, hidden, shown", NAMING_NOTES, ids=[
    "photo_reused", "related-opened", "related-waits", "related-not-reopened", "related-closed", "duplicate"])
def test_a_note_names_another_case_only_to_a_reader_who_may_see_it(action, role, logged, hidden, shown):
    """Each names case 12 where the reader may see it, and says "another case" (另一案件) where not."""
    entry = {"action": action, "role": role, "note": logged}
    assert presentation.named_cases([entry]) == {12}
    assert presentation.as_read([entry], {12}) == [entry]
    (read,) = presentation.as_read([entry], {7})
    assert read == dict(entry, note=hidden) and presentation.named_cases([read]) == set()
    assert presentation.note_text(read, load_tables(TABLES_DIR / "demo.yaml")) == shown


def test_a_persons_note_naming_a_case_is_theirs_as_written():
    """Only the gateway's words are read so: a department's feedback that names a case stays as it was written."""
    entry = {"action": "feedback", "role": "department", "note": "case 12 at the same place waits for review"}
    assert presentation.named_cases([entry]) == set() and presentation.as_read([entry], ()) == [entry]


def test_the_gateways_own_notes_read_in_chinese(city):
    """Every note the gateway writes on a case's way (made, dispatched, merged, escalated by the clock,
    re-checked by the camera, closed, reopened), as the timeline shows it, has no English left."""
    tables, store, ingest, client, tokens = city
    first, second = incident(), incident()
    ingest.handle(*first)
    ingest.handle(*second)
    clock = Clock(store, tables, client=None, every_s=1)
    assert clock.escalate_overdue(store.get_case(1)["deadline"] + 1) == 1
    for action in ("acknowledge", "feedback"):
        act(client, tokens["police"], 1, action)
    ingest.handle(*end_of(second, "left"))
    ingest.handle(*end_of(first, "left"))
    assert store.get_case(1)["state"] == CaseState.CLOSED.value
    ingest.handle(*incident())
    timeline = store.get_case(1)["timeline"]
    ids = [json.loads(m[1])["incident_id"] for m in (first, second)] + [i["incident_id"] for i in
                                                                           store.get_case(1)["incidents"]]
    system = [(e["action"], presentation.note_text(e, tables)) for e in timeline if e["role"] == "system"]
    assert {a for a, _ in system} >= {"created", "dispatched", "merged", "escalate", "incident_ended",
                                      "recheck_evidence", "close", "reopen"}
    for action, shown in system:
        for known in ids + ["kerb"]:
            shown = shown.replace(known, "")
        assert not re.search(r"[A-Za-z]{3,}", shown), (action, shown)


def test_dispatch_and_escalation_notices_follow_their_schema(city):
    tables, store, ingest, client, tokens = city
    ingest.handle(*incident())
    assert act(client, tokens["op-s1"], 1, "escalate", note="the street asks").status_code == 200
    clock = Clock(store, tables, client=None, every_s=1)
    rows = store.unpublished(("dispatched", "escalate"))
    built = [clock.notice(row, store.get_case(1), time.time()) for row in rows]
    (dispatch_topic, dispatch), (escalation_topic, escalation) = built
    dispatch, escalation = wire.decode_notice(dispatch), wire.decode_notice(escalation)
    assert dispatch_topic == "xl/v1/dispatch/traffic-police" and escalation_topic == "xl/v1/escalations/D-S1-C1"
    assert (dispatch["type"], dispatch["to"], dispatch["to_name"], dispatch["schema_version"]) == (
        "dispatch", "traffic-police", "交警", 1)
    assert (escalation["type"], escalation["to"], escalation["to_name"], escalation["note"]) == (
        "escalation", "D-S1-C1", "社区1", "the street asks")
    assert escalation["case"]["id"] == 1 and escalation["case"]["level"] == 1
    assert escalation["case"]["department_name"] == "交警" and escalation["case"]["deadline"].endswith("Z")
    with pytest.raises(wire.WireError, match="notice case: Additional properties"):
        wire.encode_notice(dict(escalation, case=dict(escalation["case"], secret="x")))
    with pytest.raises(wire.WireError, match="notice type"):
        wire.encode_notice(dict(dispatch, type="recall"))
    with pytest.raises(wire.WireError, match="notice .*at must be date-time"):  # jsonschema here checks no format
        wire.encode_notice(dict(dispatch, at="2026-12-05 yesterday"))


def test_a_notice_and_an_acknowledgement_that_follow_their_schema_are_not_checked_by_jsonschema(city, monkeypatch):
    """jsonschema only explains a refusal: on every notice it held the gateway's GIL long enough to halve
    ingest through a burst of new cases (README, storage). The compiled schema checks the rest."""
    tables, store, ingest, client, tokens = city
    ingest.handle(*incident())
    row = store.unpublished(("dispatched",))[0]
    monkeypatch.setattr(wire, "_explain", lambda *a, **k: pytest.fail("jsonschema ran on a valid message"))
    topic, payload = Clock(store, tables, client=None, every_s=1).notice(row, store.get_case(1), time.time())
    assert topic == "xl/v1/dispatch/traffic-police" and wire.decode_notice(payload)["type"] == "dispatch"
    assert wire.decode_ack(wire.encode_ack("gw", time.time(), {"0" * 20: "case_created"})) == {"0" * 20: "case_created"}


def test_the_notice_schema_lists_the_fields_the_gateway_sends():
    schema = wire.schema("notice")
    assert tuple(schema["properties"]["case"]["required"]) == wire.NOTICE_CASE_FIELDS
    assert set(schema["properties"]["case"]["properties"]) == set(wire.NOTICE_CASE_FIELDS)
    assert Path(REPO / "xueliang" / "schema" / "notice.schema.json").is_file()
