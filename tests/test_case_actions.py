"""One home for every case action: the same action means the same thing from the API, ingest and
the clock (state, clock, level, notice), on SQLite and PostgreSQL. Each test names the shortfall
an outside check found and would have caught it."""

import json
import time

import pytest
import yaml
from fastapi.testclient import TestClient

from gateway.actions import OpenIncident, StillSeen, close_refused, version, watched
from gateway.actions import act as apply_action
from gateway.api import create_app
from gateway.auth import SESSION_COOKIE, new_token, session_csrf
from gateway.cases import is_overdue
from gateway.config import load_tables
from gateway.ingest import Ingest
from gateway.presentation import note_text
from gateway.reports import summary
from gateway.service import Clock
from gateway.storage import Store
from gateway.workflow import Action, Role
from xueliang import wire

from .conftest import wait_until
from .test_workflow import CITY, act, auth, city, database_url, end_of, ended, incident  # noqa: F401

NOTICES = ("dispatched", "escalate")


def notices(store, case_id):
    """The notice rows (dispatch, escalation) of a case, in order: (action, target)."""
    return [(r["action"], r["target"]) for r in store.unpublished(NOTICES, limit=1000) if r["case_id"] == case_id]


def test_a_case_reopened_by_a_recurrence_notifies_its_department(city):
    tables, store, ingest, client, tokens = city
    first = incident()
    ingest.handle(*first)
    for action in ("acknowledge", "feedback"):
        act(client, tokens["police"], 1, action)
    ingest.handle(*end_of(first))
    assert store.get_case(1)["state"] == "closed"
    assert ingest.handle(*incident()) == "case_reopened"
    case = store.get_case(1)
    assert case["state"] == "dispatched" and case["closed_at"] is None and case["level"] == 0
    assert notices(store, 1) == [("dispatched", "traffic-police"), ("dispatched", "traffic-police")]


def test_an_operators_escalate_escalates_and_an_api_reopen_resets_the_cycle(city):
    tables, store, ingest, client, tokens = city
    ingest.handle(*incident())
    r = act(client, tokens["op-s1"], 1, "escalate", note="the street asks")
    assert r.status_code == 200, r.text
    assert (r.json()["level"], r.json()["escalated_grid"]) == (1, "D-S1-C1")
    assert notices(store, 1)[-1] == ("escalate", "D-S1-C1")
    ended(store, ingest, 1)  # its box stopped: closed on the operator's word (the camera still seeing it refuses)
    for token, action in (("police", "acknowledge"), ("police", "feedback"), ("op-s1", "close")):
        assert act(client, tokens[token], 1, action).status_code == 200
    before = store.get_case(1)
    r = act(client, tokens["op-s1"], 1, "reopen", note="still there")
    case = r.json()
    assert case["state"] == "dispatched" and case["closed_at"] is None and case["level"] == 0
    assert case["escalated_grid"] is None and case["deadline"] > case["created_at"]
    assert store.get_case(1)["deadline"] > before["deadline"]
    assert notices(store, 1)[-1] == ("dispatched", "traffic-police")


def test_feedback_stops_the_departments_clock_and_an_overdue_recheck_goes_to_the_centre(city):
    tables, store, ingest, client, tokens = city
    ingest.handle(*incident())  # 30 s service level
    act(client, tokens["police"], 1, "acknowledge")
    act(client, tokens["police"], 1, "feedback")
    case = store.get_case(1)
    assert case["fed_back_at"] is not None and case["recheck_deadline"] > case["fed_back_at"]
    later = case["deadline"] + 60  # the department's deadline has passed, the re-check's (1 working day) not
    assert not is_overdue(case, later) and is_overdue(dict(case, state="handling"), later)
    day = (later - 86400, later + 1)
    assert summary(store.cases_between(*day), *day, now=later)["overdue"] == 0  # not against the department
    clock = Clock(store, tables, client=None, every_s=1)
    assert clock.escalate_overdue(later) == 0
    assert clock.escalate_overdue(case["recheck_deadline"] + 1) == 1
    case = store.get_case(1)
    assert case["escalated_grid"] == "D" and notices(store, 1)[-1] == ("escalate", "D")  # the centre, the tree's root


def test_a_department_asks_for_more_time_and_an_operator_decides(city):
    tables, store, ingest, client, tokens = city
    ingest.handle(*incident())
    deadline = store.get_case(1)["deadline"]
    assert act(client, tokens["police"], 1, "request_extension", extend_by="nonsense").status_code == 422
    assert act(client, tokens["op-s1"], 1, "approve_extension").status_code == 409  # nothing asked yet
    r = act(client, tokens["police"], 1, "request_extension", extend_by="2h", note="waiting for a tow truck")
    assert r.status_code == 200 and r.json()["extension_request"] == "2h"
    assert act(client, tokens["police"], 1, "approve_extension").status_code == 403  # not the department's call
    r = act(client, tokens["op-s1"], 1, "approve_extension")
    assert r.status_code == 200 and r.json()["extension_request"] is None
    assert store.get_case(1)["deadline"] == pytest.approx(deadline + 7200)
    act(client, tokens["police"], 1, "request_extension", extend_by="1 working day")
    act(client, tokens["op-s1"], 1, "refuse_extension", note="not for a parked car")
    assert store.get_case(1)["deadline"] == pytest.approx(deadline + 7200)
    timeline = [(e["action"], e["note"]) for e in client.get("/cases/1", headers=auth(tokens["admin"])).json()["timeline"]]
    assert ("request_extension", "waiting for a tow truck") in timeline
    assert [a for a, _ in timeline if "extension" in a] == ["request_extension", "approve_extension",
                                                            "request_extension", "refuse_extension"]


def test_an_open_case_absorbs_the_same_problem_for_as_long_as_it_is_open(tmp_path, database_url):
    city = dict(CITY, categories=[dict(c, merge_window=None) if c["type"] == "illegal_parking" else c
                                  for c in CITY["categories"]])
    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump(city, allow_unicode=True))
    store = Store(database_url)
    t = [time.time()]
    ingest = Ingest(store, load_tables(path), clock=lambda: t[0])
    assert ingest.handle(*incident()) == "case_created"
    t[0] += 3 * 3600  # still being handled three hours later
    assert ingest.handle(*incident()) == "case_merged"
    assert store.count("cases") == 1


def test_a_department_does_not_see_cases_held_for_review(city):
    tables, store, ingest, client, tokens = city
    ingest.handle(*incident(type="garbage"))  # garbage: review first
    sanitation = auth(tokens["sanitation"])
    assert client.get("/cases", headers=sanitation).json() == []
    assert client.get("/cases/1", headers=sanitation).status_code == 404
    assert act(client, tokens["op-s1"], 1, "confirm").status_code == 200
    assert [c["id"] for c in client.get("/cases", headers=sanitation).json()] == [1]


@pytest.mark.parametrize("policy", ["dead_letter", "centre"])
def test_an_incident_naming_an_unknown_grid_is_refused_or_raised_to_the_centre(tmp_path, policy):
    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump(dict(CITY, unknown_grid=policy), allow_unicode=True))
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, load_tables(path))
    outcome = ingest.handle(*incident(grid="NO-SUCH-GRID"))
    if policy == "dead_letter":
        assert outcome == "dead_letter" and store.count("cases") == 0
        assert "'NO-SUCH-GRID' is not in the city's grid tree" in store.list_dead_letters()[0]["reason"]
    else:
        (case,) = store.list_cases()
        assert (case["grid"], case["state"]) == ("D", "pending_review")
        assert any(e["action"] == "flagged" and "NO-SUCH-GRID" in e["note"] for e in store.get_case(1)["timeline"])
        operator = new_token(store, "op", "operator", grid="D")
        client = TestClient(create_app(store, load_tables(path)))
        assert [c["id"] for c in client.get("/cases", headers=auth(operator)).json()] == [1]


def test_grid_filter_selects_the_subtree_and_category_takes_the_citys_code(city):
    tables, store, ingest, client, tokens = city
    ingest.handle(*incident())
    ingest.handle(*incident(grid="D-S2-G9", location={"lat": 39.3, "lon": 117.3}))
    admin = auth(tokens["admin"])
    ids = lambda **q: sorted(c["id"] for c in client.get("/cases", params=q, headers=admin).json())  # noqa: E731
    assert ids(grid="D-S1") == [1] and ids(grid="D") == [1, 2] and ids(grid="D-S1-C1-G1") == [1]
    assert ids(category="200505") == [1, 2] == ids(category="illegal_parking")
    assert ids(grid="D-S2", category="200102") == []


def test_a_token_for_an_unknown_grid_or_department_is_refused_naming_it(tmp_path, capsys):
    from xueliang.cli import main as cli

    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump(CITY, allow_unicode=True))
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"database": f"sqlite:///{tmp_path}/gw.sqlite", "tables": str(path)}))
    base = ["token", "--config", str(config), "--name", "x"]
    assert cli(base + ["--role", "operator", "--grid", "NO-SUCH-GRID"]) == 2
    assert "--grid 'NO-SUCH-GRID' is not in the city's grid tree" in capsys.readouterr().err
    assert cli(base + ["--role", "department", "--department", "fire-brigade"]) == 2
    assert "--department 'fire-brigade' is not in the city's tables" in capsys.readouterr().err
    assert cli(base + ["--role", "operator", "--grid", "D-S1"]) == 0 and capsys.readouterr().out.startswith("xl_")


@pytest.mark.slow
def test_health_says_which_part_is_down_and_details_only_with_a_token(tmp_path, broker):
    """A real gateway process: healthy with its broker; the broker gone, /health is 503 naming it."""
    from xueliang import services

    http_port = services.free_port()
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"broker": {"port": broker.port}, "database": f"sqlite:///{tmp_path}/gw.sqlite",
                                      "http": {"port": http_port}, "escalation_check_s": 0.5}))
    gateway = services.xueliang(["gateway", "--config", str(config)], tmp_path / "gateway.log")
    try:
        services.wait_port(http_port, gateway, "gateway", timeout=30)
        client = __import__("httpx").Client(base_url=f"http://127.0.0.1:{http_port}", timeout=5)
        wait_until(lambda: client.get("/health").status_code == 200, 10, message="healthy")
        assert "cases" not in client.get("/health").json()  # nothing private without a token
        broker.stop()
        answer = wait_until(lambda: (r := client.get("/health")).status_code == 503 and r, 10, message="broker down")
        assert answer.json()["down"] == ["broker"]
        token = new_token(Store(f"sqlite:///{tmp_path}/gw.sqlite"), "ops", "admin")
        detail = client.get("/health", headers={"Authorization": f"Bearer {token}"}).json()
        assert detail["parts"]["broker"]["state"] == "down" and "disconnected" in detail["parts"]["broker"]["last_error"]
        assert detail["parts"]["clock"]["state"] == "ok" and detail["cases"] == 0
    finally:
        gateway.terminate()
        gateway.wait(10)


# --- closure only on evidence: no close while the camera still reports the problem ---

CAR = OpenIncident("box-1:gate:kerb:7", "box-1", started_at=1767225600.0, heard_at=1767229200.0, heartbeat_s=10.0)


@pytest.mark.parametrize("still, now, refused", [
    ([], 1767229210.0, None),  # every incident ended
    ([CAR], 1767229230.0, "incident box-1:gate:kerb:7, since 2026-01-01T00:00:00.000Z"),  # heard 30 s ago: 3 beats
    ([CAR], 1767229230.5, None),  # its box silent (the boxes page's 失联): the camera's report is no evidence
    ([CAR._replace(heard_at=1767229100.0), CAR._replace(incident_id="i-2")], 1767229210.0, "incident i-2, since"),
    ([CAR, CAR._replace(incident_id="i-2")], 1767229210.0, "incident box-1:gate:kerb:7 and 1 more"),
    ([CAR._replace(heartbeat_s=60.0)], 1767229300.0, "incident box-1:gate:kerb:7"),  # its own interval: 100 s is 2
])
def test_a_close_is_refused_while_a_heard_box_still_reports_the_problem(still, now, refused):
    said = close_refused({"id": 7}, still, now, auto_close=True)
    assert (said is None) == (refused is None) and (refused is None or refused in said), said
    assert said is None or said.endswith("wait: the case closes itself when the camera sees it gone, or send it back "
                                         "to the department (action recheck_failed)")
    assert close_refused({"id": 7}, [CAR], 1767229210.0, auto_close=False).endswith(
        "close it once the camera has seen it gone, or send it back to the department (action recheck_failed)")
    heard, silent = watched(still, now)
    assert sorted(heard + silent) == sorted(still)


def beat(ingest, box="box-1") -> None:
    """The box's heartbeat, now."""
    body = {"box": box, "state": "online", "at": wire.iso(time.time()), "cameras": {}}
    assert ingest.handle(wire.status_topic(box), json.dumps(body).encode()) == "heartbeat"


def fed_back(city) -> tuple[tuple[str, bytes], str]:
    """A parking incident's case, its box heard, that the police acknowledged and fed back: its message and its id."""
    tables, store, ingest, client, tokens = city
    first = incident()
    ingest.handle(*first)
    beat(ingest)
    for action in ("acknowledge", "feedback"):
        assert act(client, tokens["police"], 1, action).status_code == 200
    return first, json.loads(first[1])["incident_id"]


def test_a_close_while_the_camera_still_sees_the_car_is_refused_and_the_page_says_so(city):
    """An operator's 核查结案 on the department's feedback was taken (200, closed) while the box, heard, still reported
    the car there; its next update left the case closed, nothing on its timeline. Closure is on evidence: 409 with
    which incident and since when, nothing changed; the page says it above its buttons and offers no 核查结案."""
    tables, store, ingest, client, tokens = city
    first, iid = fed_back(city)
    before = store.get_case(1)
    r = act(client, tokens["op-s1"], 1, "close", note="checked")
    assert r.status_code == 409, r.text
    assert r.json()["detail"].startswith(f"case 1 is not closed: its camera still reports the problem (incident {iid}, "
                                         "since "), r.text
    assert store.get_case(1) == before  # nothing done, nothing logged
    page = TestClient(client.app)
    page.post("/ui/login", data={"token": tokens["op-s1"]})
    shown = page.get("/ui/cases/1").text
    assert f"<p id=still-seen class=failed>摄像机仍在报告此问题 (事件 {iid}, 自 " in shown
    assert "id='act-close'" not in shown and "id='act-recheck_failed'" in shown
    form = {"csrf": session_csrf(page.cookies[SESSION_COOKIE]), "action": "close", "seen": version(before)}
    r = page.post("/ui/cases/1/actions", data=form)  # a page opened before: refused the same way
    assert "<p id=outcome class=failed>未能核查结案: 摄像机仍在报告此问题, 未结案" in r.text
    assert store.get_case(1)["state"] == "feedback"
    update = json.loads(first[1]) | {"seq": 2, "state": "update"}
    ingest.handle(first[0], json.dumps(update).encode())  # the car still there
    assert act(client, tokens["op-s1"], 1, "close").status_code == 409
    ingest.handle(*end_of(first, seq=3))  # the camera sees it gone: the case closes itself
    assert store.get_case(1)["state"] == "closed"


def test_a_close_is_taken_when_the_box_that_reports_the_problem_has_gone_silent(city):
    """No case waits for good on a box nobody hears: its camera's report is no evidence either way, the close is taken
    and its timeline says so."""
    tables, store, ingest, client, tokens = city
    first, iid = fed_back(city)
    with pytest.raises(StillSeen):
        apply_action(store, 1, Action.CLOSE, Role.OPERATOR, "operator:op1", time.time(), tables, lambda row: True)
    later = time.time() + 31  # three of its 10 s heartbeats missed
    case = apply_action(store, 1, Action.CLOSE, Role.OPERATOR, "operator:op1", later, tables, lambda row: True)
    assert case["state"] == "closed"
    row = store.get_case(1)["timeline"][-1]
    assert row["action"] == "still_open" and row["note"].startswith(
        f"closed while incident {iid} was still open: its box box-1 not heard since "), row
    assert note_text(row, tables).startswith(f"结案时事件 {iid} 尚未结束: 其边缘盒子 box-1 自 ")
