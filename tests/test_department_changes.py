"""The city's tables changed under open cases, through the real ingest, API and pages on a real SQLite file: a
department taken out of the tables (said at start and by ``gateway --check``, marked on the pages, its token reads
but does not act), and a camera whose location lies in another grid's boundary than its zone's grid (noted, never
moved)."""

import logging
import shutil
import time
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from gateway.api import create_app
from gateway.auth import new_token
from gateway.config import TABLES_DIR, load_tables
from gateway.ingest import Ingest
from gateway.storage import Store
from tests.test_gateway import NOW, TOPIC, payload
from tests.test_workflow import database_url  # noqa: F401 (a fixture: SQLite, and PostgreSQL marked slow)

DEMO = TABLES_DIR / "demo.yaml"


@pytest.fixture
def without_traffic_police(tmp_path):
    """The demo city's tables with the traffic police taken out (its parking cases now the city management's)."""
    city = tmp_path / "city"
    shutil.copytree(TABLES_DIR, city)
    text = (city / "demo.yaml").read_text().replace("  - id: traffic-police\n    name: 交警大队\n", "")
    (city / "demo.yaml").write_text(text.replace("department: traffic-police", "department: city-management"))
    return load_tables(city / "demo.yaml")


def test_a_removed_departments_open_cases_are_said_marked_and_its_token_reads_but_does_not_act(
        tmp_path, without_traffic_police, caplog):
    from xueliang.cli import main

    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    ingest = Ingest(store, load_tables(DEMO), clock=lambda: NOW)
    assert ingest.handle(TOPIC, payload()) == "case_created"
    (case,) = store.list_cases()
    assert case["department"] == "traffic-police"
    # gateway --check on the new tables: the department and how many open cases it holds, the database unchanged
    config = tmp_path / "gateway.yaml"
    config.write_text(f"database: sqlite:///{tmp_path}/gateway.sqlite\ntables: {tmp_path}/city/demo.yaml\n")
    before = (tmp_path / "gateway.sqlite").read_bytes()
    with caplog.at_level(logging.WARNING):
        assert main(["gateway", "--config", str(config), "--check"]) == 0
    assert ("department 'traffic-police' (交警大队) is no longer in the city's tables and holds 1 open case(s)"
            in caplog.text)  # by the name the operator finds it by in the tables, as its last dispatch logged it
    assert (tmp_path / "gateway.sqlite").read_bytes() == before

    client = TestClient(create_app(store, without_traffic_police))
    police = new_token(store, "tp", "department", department="traffic-police")
    bearer = {"Authorization": f"Bearer {police}"}
    assert client.get(f"/cases/{case['id']}", headers=bearer).status_code == 200  # reads what was its own
    refused = client.post(f"/cases/{case['id']}/actions", headers=bearer, json={"action": "acknowledge"})
    assert refused.status_code == 403 and "no longer in the city's tables" in refused.json()["detail"]
    assert store.get_case(case["id"])["state"] == "dispatched"
    # its page: no forms to act, said why; the page's form sent anyway is refused
    client.post("/ui/login", data={"token": police})
    page = client.get(f"/ui/cases/{case['id']}").text
    assert "本部门已不在本市部门表中" in page and "act-acknowledge" not in page
    assert client.post(f"/ui/cases/{case['id']}/actions", data={"action": "acknowledge"}).status_code == 403
    # the operators' list and the case page mark it for redispatch
    client.cookies.clear()
    client.post("/ui/login", data={"token": new_token(store, "centre", "operator", grid="HQ")})
    assert "部门已撤销 · 待重新派遣" in client.get("/ui/cases?department=traffic-police").text
    assert "部门已撤销 · 待重新派遣" in client.get(f"/ui/cases/{case['id']}").text
    # a lead of that department waiting for review is not marked: confirmed, it goes where the tables route it now
    assert ingest.handle(TOPIC, payload(incident_id="lead-1", location={"lat": 39.19, "lon": 117.15},
                                        attributes={"dwell_s": 30, "needs_review": True})) == "case_created"
    lead = next(c for c in store.list_cases() if c["incident_id"] == "lead-1")
    assert (lead["state"], lead["department"]) == ("pending_review", "traffic-police")
    assert "部门已撤销 · 待重新派遣" not in client.get(f"/ui/cases/{lead['id']}").text


def test_a_removed_departments_case_sent_back_to_work_goes_where_the_tables_route_it_now(
        tmp_path, without_traffic_police):
    """A failed re-check (a confirm, a reopen alike) sent its dispatch notice to xl/v1/dispatch/traffic-police, which
    nobody hears any more."""
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    Ingest(store, load_tables(DEMO), clock=lambda: NOW).handle(TOPIC, payload())
    (case,) = store.list_cases()
    client = TestClient(create_app(store, without_traffic_police))
    admin = {"Authorization": f"Bearer {new_token(store, 'admin', 'admin')}"}
    for action in ("feedback", "recheck_failed"):
        assert client.post(f"/cases/{case['id']}/actions", headers=admin, json={"action": action}).status_code == 200
    assert store.get_case(case["id"])["department"] == "city-management"


def test_a_department_another_gateways_cases_name_since_the_start_is_named_within_a_minute(
        tmp_path, without_traffic_police, monkeypatch):
    """Two gateways on one database, this one's tables already without the traffic police, the other's older: the
    names were read once at start, when no case named the police, and its cases were shown by the bare id for as long
    as this gateway ran."""
    import gateway.api

    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    client = TestClient(create_app(store, without_traffic_police))
    centre = {"Authorization": f"Bearer {new_token(store, 'centre', 'operator', grid='HQ')}"}
    assert client.get("/cases", headers=centre).json() == []
    other = Store(f"sqlite:///{tmp_path}/gateway.sqlite")  # the other gateway, its tables older
    assert Ingest(other, load_tables(DEMO), clock=lambda: NOW).handle(TOPIC, payload()) == "case_created"
    (case,) = store.list_cases()
    start = time.time()
    monkeypatch.setattr(gateway.api, "time", SimpleNamespace(time=lambda: start + 61))  # a minute on
    assert client.get(f"/cases/{case['id']}", headers=centre).json()["department_name"] == "交警大队 (已撤销)"
    client.post("/ui/login", data={"token": new_token(store, "centre2", "operator", grid="HQ")})
    assert "<option value='traffic-police' >交警大队 (已撤销)</option>" in client.get("/ui/cases").text


def test_a_camera_located_in_another_grids_boundary_is_noted_on_its_case_never_moved(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    ingest = Ingest(store, load_tables(DEMO), clock=lambda: NOW)
    # the location lies in HQ-DZG-10D-07's boundary; the zone says HQ-XYM-01-01
    assert ingest.handle(TOPIC, payload(grid="HQ-XYM-01-01")) == "case_created"
    assert ingest.handle(TOPIC, payload(incident_id="b1", zone="kerb-b")) == "case_created"
    client = TestClient(create_app(store, load_tables(DEMO)))
    centre = {"Authorization": f"Bearer {new_token(store, 'centre', 'operator', grid='HQ')}"}
    cases = {c["grid"]: c for c in client.get("/cases", headers=centre).json()}
    assert set(cases) == {"HQ-XYM-01-01", "HQ-DZG-10D-07"}  # the zone's grid kept
    flagged = [e["note"] for e in client.get(f"/cases/{cases['HQ-XYM-01-01']['id']}", headers=centre).json()["timeline"]
               if e["action"] == "flagged"]
    assert flagged == ["camera location (39.17, 117.15) lies in grid HQ-DZG-10D-07's boundary, outside grid "
                       "HQ-XYM-01-01's: the case stays in its zone's grid"]
    assert not [e for e in client.get(f"/cases/{cases['HQ-DZG-10D-07']['id']}", headers=centre).json()["timeline"]
                if e["action"] == "flagged"]
    client.post("/ui/login", data={"token": new_token(store, "centre2", "operator", grid="HQ")})
    assert "在网格 丁字沽十段第7网格 (HQ-DZG-10D-07) 范围内" in client.get(f"/ui/cases/{cases['HQ-XYM-01-01']['id']}").text


def test_a_removed_department_is_shown_by_the_name_it_last_had_marked_and_the_queue_filter_picks_it(
        tmp_path, without_traffic_police):
    """The API's department_name, Open311's agency_responsible and the pages showed its bare id, and no filter of
    the operators' queue or case list offered it: its cases, marked for redispatch, were found by typing the id into
    the address. The name is the one its latest dispatch logged."""
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    assert Ingest(store, load_tables(DEMO), clock=lambda: NOW).handle(TOPIC, payload()) == "case_created"
    (case,) = store.list_cases()
    client = TestClient(create_app(store, without_traffic_police))
    centre = {"Authorization": f"Bearer {new_token(store, 'centre', 'operator', grid='HQ')}"}
    shown = client.get(f"/cases/{case['id']}", headers=centre).json()
    assert shown["department"] == "traffic-police" and shown["department_name"] == "交警大队 (已撤销)"
    (request,) = client.get(f"/open311/v2/requests/{case['id']}.json", headers=centre).json()
    assert request["agency_responsible"] == "交警大队 (已撤销)"
    client.post("/ui/login", data={"token": new_token(store, "centre2", "operator", grid="HQ")})
    queue = client.get("/ui/queue").text
    assert "<option value='traffic-police' >交警大队 (已撤销)</option>" in queue
    assert f"href='/ui/cases/{case['id']}'" in client.get("/ui/queue?department=traffic-police").text
    assert "<option value='traffic-police' >交警大队 (已撤销)</option>" in client.get("/ui/cases").text
    assert "派往 交警大队 (已撤销)" in client.get(f"/ui/cases/{case['id']}").text
    # the redispatch form offers only the departments of the tables
    assert client.get(f"/ui/cases/{case['id']}").text.count("交警大队") == 2  # the facts, the timeline


@pytest.fixture
def parking_office(tmp_path):
    """The demo city's tables with the traffic police swapped for a new department, the parking office (停车办), its
    parking cases now routed there (an outsider administrator's change, 300 cases open with the police), and a
    gateway config that reads them."""
    city = tmp_path / "city"
    shutil.copytree(TABLES_DIR, city)
    text = (city / "demo.yaml").read_text().replace("  - id: traffic-police\n    name: 交警大队\n",
                                                      "  - id: parking-office\n    name: 停车办\n")
    (city / "demo.yaml").write_text(text.replace("department: traffic-police", "department: parking-office"))
    config = tmp_path / "gateway.yaml"
    config.write_text(f"database: sqlite:///{tmp_path}/gateway.sqlite\ntables: {city}/demo.yaml\n")
    return SimpleNamespace(tables=load_tables(city / "demo.yaml"), config=str(config))


def apart(i: int) -> dict:
    """A camera's location 1 km north of the last's: its incident no other's double."""
    return {"lat": 39.17 + 0.01 * i, "lon": 117.15}


def police_cases(store, dispatched: int, pending: int) -> list[int]:
    """``dispatched`` cases dispatched to the traffic police by the demo tables, each at a kerb of its own, and then
    ``pending`` held for review (their incidents reported a day late); their ids, in that order."""
    ingest = Ingest(store, load_tables(DEMO), clock=lambda: NOW)
    for i in range(dispatched):
        assert ingest.handle(TOPIC, payload(incident_id=f"d{i}", zone=f"kerb-{i}", location=apart(i))) == "case_created"
    late = Ingest(store, load_tables(DEMO), clock=lambda: NOW + 86400)
    for i in range(pending):
        assert late.handle(TOPIC, payload(incident_id=f"p{i}", zone=f"late-{i}",
                                              location=apart(dispatched + i))) == "case_created"
    ids = sorted(c["id"] for c in store.list_cases())
    assert [store.get_case(i)["state"] for i in ids] == ["dispatched"] * dispatched + ["pending_review"] * pending
    return ids


def admin_acts(store, case_id: int, action: str) -> None:
    from gateway.actions import act
    from gateway.workflow import Action, Role

    act(store, case_id, Action(action), Role.ADMIN, "admin:test", NOW + 60, load_tables(DEMO), lambda case: True)


def test_a_removed_departments_open_cases_are_counted_as_with_it_now_or_waiting_for_the_centre(
        tmp_path, parking_office, caplog):
    """An outsider administrator's 300 cases, 240 pending review, were said as 300 an operator returns and
    redispatches each: a pending case, once confirmed, goes where the tables route it now; only those with the
    department now need moving, and the command that moves them is named."""
    from gateway.check import start_warnings
    from xueliang.cli import main

    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    ids = police_cases(store, dispatched=4, pending=2)
    admin_acts(store, ids[0], "acknowledge")  # handling: with it now
    admin_acts(store, ids[1], "feedback")  # its re-check's to do
    with caplog.at_level(logging.WARNING):
        assert main(["gateway", "--config", parking_office.config, "--check"]) == 0
    assert ("department 'traffic-police' (交警大队) is no longer in the city's tables and holds 6 open case(s): 3 "
            "with it now (dispatched or handling), which no notice reaches and its token acts on none of: move them "
            "at once to the department the tables route each to now with `xueliang gateway --config GATEWAY.yaml "
            "--move-cases traffic-police` (or to one named: --to DEPARTMENT); 3 waiting for the command centre or "
            "their re-check (pending_review 2, feedback 1): each goes to a department of the tables when sent on "
            "(confirmed, redispatched, or its re-check failed), none to move") in caplog.text
    with store.engine.connect() as db:  # the start says the same
        (line,) = start_warnings(db, parking_office.tables, "gateway.sqlite", NOW)
    assert line in caplog.text


def test_a_removed_departments_cases_with_it_now_are_moved_at_once_where_the_tables_route_them(
        tmp_path, parking_office, capsys):
    import getpass
    import os

    from xueliang.cli import main

    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    ids = police_cases(store, dispatched=4, pending=1)
    admin_acts(store, ids[0], "acknowledge")
    before = {i: store.get_case(i) for i in ids}
    started = time.time()
    assert main(["gateway", "--config", parking_office.config, "--move-cases", "traffic-police"]) == 0
    out = capsys.readouterr().out
    assert ("department 'traffic-police' (交警大队): moved 4 case(s) it held now (dispatched or handling): 4 to "
            "parking-office (停车办)") in out
    assert "1 open case(s) left waiting for the command centre or their re-check (pending_review 1)" in out
    who = f"admin:{os.environ.get('SUDO_USER') or getpass.getuser()}"
    for i in ids[:4]:
        case = store.get_case(i)
        assert (case["state"], case["department"]) == ("dispatched", "parking-office")
        assert case["dispatched_at"] >= started and case["level"] == 0  # the department's clock afresh
        assert case["deadline"] == pytest.approx(case["dispatched_at"] + 3600)  # illegal_parking's 1h
        moved = case["timeline"][len(before[i]["timeline"]):]
        assert [(e["action"], e["actor"], e["role"], e["to_state"], e["note"]) for e in moved] == [
            ("return", who, "admin", "returned", "department traffic-police taken out of the tables"),
            ("redispatch", who, "admin", "dispatched", "department traffic-police taken out of the tables"),
            ("dispatched", "gateway", "system", "dispatched", "parking-office 停车办")]
    # each its notice, as a redispatch sends it: the clock publishes it to xl/v1/dispatch/parking-office
    notices = store.unpublished(("dispatched",), limit=1000)
    assert sorted(n["case_id"] for n in notices if n["target"] == "parking-office") == ids[:4]
    pending = store.get_case(ids[4])
    assert pending == before[ids[4]]  # left as it was: its confirm sends it to the parking office
    # run again: nothing moved twice
    assert main(["gateway", "--config", parking_office.config, "--move-cases", "traffic-police"]) == 0
    assert "no case is with it now (dispatched or handling): nothing to move" in capsys.readouterr().out
    assert len(store.unpublished(("dispatched",), limit=1000)) == len(notices)
    # a case named to another department goes there; one not in the tables is refused, nothing done
    assert main(["gateway", "--config", parking_office.config, "--move-cases", "traffic-police", "--to", "nobody"]) == 2
    assert "--to 'nobody' is not in the city's tables" in capsys.readouterr().err
    assert main(["gateway", "--config", parking_office.config, "--move-cases", "sanitation"]) == 2
    assert "'sanitation' is in the city's tables" in capsys.readouterr().err


def test_a_case_changed_while_its_department_is_moved_is_left_and_said_alone(database_url, parking_office):
    """On SQLite and PostgreSQL alike (``database_url``): each case moved in a transaction of its own, held first."""
    from gateway.actions import move_cases, with_department

    store = Store(database_url)
    ids = police_cases(store, dispatched=3, pending=0)
    listed = with_department(store, "traffic-police")
    assert listed == ids
    admin_acts(store, ids[1], "feedback")  # meanwhile, before the move reaches it
    done = move_cases(store, listed, "traffic-police", parking_office.tables, "admin:wang", NOW + 120,
                      to="city-management")
    assert done.moved == {ids[0]: "city-management", ids[2]: "city-management"}
    assert done.left == {ids[1]: "changed meanwhile: feedback now, not with department traffic-police; left as it is"}
    assert store.get_case(ids[1])["state"] == "feedback"
    assert with_department(store, "traffic-police") == []
