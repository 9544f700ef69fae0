"""The 民情快报's figures against what an operator counts by hand, on a real gateway (real ingest and actions, the
times chosen): each test names a figure an outside check found the report and the other views disagreeing on."""

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import event, inspect, text

from gateway.actions import act as apply_action
from gateway.api import create_app
from gateway.auth import new_token
from gateway.config import load_tables
from gateway.ingest import Ingest
from gateway.presentation import period
from gateway.reports import summary
from gateway import reports, schema, storage, verdicts
from gateway.storage import Store
from gateway.workflow import Action, Role

from .test_workflow import CITY, database_url, incident, seen, undo_migration_14, undo_migration_16  # noqa: F401


@pytest.fixture
def city_at(tmp_path, database_url):  # noqa: F811
    """A gateway whose clock is ``clock[0]``; ``case(t, n)`` raises a parking case (30 s service level) seen at ``t``,
    ``do(case_id, action, role, t)`` acts on it then."""
    (tmp_path / "city.yaml").write_text(yaml.safe_dump(CITY, allow_unicode=True))
    tables, store = load_tables(tmp_path / "city.yaml"), Store(database_url)
    clock = [0.0]
    ingest = Ingest(store, tables, clock=lambda: clock[0])

    def case(t: float, n: int = 0, **changes) -> int:  # n: the n-th pile of the street, a kilometre apart (one case
        clock[0] = t  # each); ``changes`` to the incident (type="garbage": a lead held for review)
        assert ingest.handle(*incident(location={"lat": 39.17 + n / 100, "lon": 117.15}, **seen(t), **changes)) == (
            "case_created")
        return store.list_cases(limit=1)[0]["id"]

    def do(case_id: int, action: Action, role: Role, t: float, **extra) -> None:
        apply_action(store, case_id, action, role, f"{role.value}:x", t, tables, lambda row: True, **extra)

    return store, case, do


def report(store: Store, day: str, now: float) -> dict:
    start, end = period("daily", day, now)
    return summary(store.cases_between(start, end), start, end, now)


def test_a_case_its_department_returned_is_the_centres_overdue_on_the_board_never_the_departments_on_the_report(
        city_at):
    """A department's 回退 (not ours) stops its clock and hands the case to the centre to send on: the report counted
    it overdue, against the department that returned it, each day until someone sent it on. Past the centre's own
    time to send it on (2 working hours, ``review_service_level``) it is overdue on the board (``/ui/overdue``,
    ``?overdue=true``), the centre's: the report's figures, by department, stay the department's own."""
    store, case, do = city_at
    start, end = period("daily", "2027-02-04", 2e9)  # a Thursday
    returned = case(start + 9 * 3600)
    do(returned, Action.RETURN, Role.DEPARTMENT, start + 10 * 3600)  # past its 30 s: it was overdue when returned
    late = case(start + 11 * 3600)  # still with the police, overdue
    assert [c["id"] for c in store.list_cases(overdue_at=start + 11.9 * 3600)] == [late]  # the centre's due at 12:00
    assert sorted(c["id"] for c in store.list_cases(overdue_at=end)) == [returned, late]
    r = report(store, "2027-02-04", now=end + 86400)
    assert r["overdue"] == 1 and r["departments"][0]["overdue"] == 1


def test_a_case_closed_and_reopened_the_next_day_stays_closed_on_the_day_it_closed(city_at):
    """A day's report read each case's current row: a case closed on time on the 4th and reopened on the 5th lost its
    closing (and its dispatch) from the 4th's figures, published the evening before; one closed late was counted
    against its new round's deadline, on time. A day's figures are what its log says happened that day."""
    store, case, do = city_at
    start, end = period("daily", "2027-02-04", end_of := 2e9)
    on_time, late = case(start + 9 * 3600), case(start + 9 * 3600, 1)
    do(on_time, Action.FEEDBACK, Role.DEPARTMENT, start + 9 * 3600 + 10)  # within its 30 s
    do(late, Action.FEEDBACK, Role.DEPARTMENT, start + 10 * 3600)  # an hour late
    for case_id in (on_time, late):
        do(case_id, Action.CLOSE, Role.OPERATOR, start + 11 * 3600)
    before = report(store, "2027-02-04", now=end_of)
    assert (before["dispatched"], before["closed"], before["closed_on_time"]) == (2, 2, 1)
    for case_id in (on_time, late):
        do(case_id, Action.REOPEN, Role.OPERATOR, end + 9 * 3600)  # the pile is back the next morning
    assert report(store, "2027-02-04", now=end_of) == before
    assert report(store, "2027-02-05", now=end_of)["dispatched"] == 2


def test_a_department_keeps_the_overdue_case_it_returned_on_the_days_it_had_it(city_at):
    """A case the traffic police let run overdue, returned the next day and sent to sanitation, moved all its figures
    to sanitation, and its overdue went with the police's deadline: a department cleared an overdue from its record
    by returning the case. The day it was the police's stays the police's."""
    store, case, do = city_at
    start, end = period("daily", "2027-02-04", end_of := 2e9)
    case_id = case(start + 9 * 3600)  # the police's, 30 s to act, overdue at the day's end
    before = report(store, "2027-02-04", now=end_of)
    do(case_id, Action.RETURN, Role.DEPARTMENT, end + 9 * 3600)
    do(case_id, Action.REDISPATCH, Role.OPERATOR, end + 10 * 3600, department="sanitation")
    after = report(store, "2027-02-04", now=end_of)
    assert after == before
    (police,) = after["departments"]
    assert police["department"] == "traffic-police"
    assert (police["received"], police["dispatched"], police["overdue"]) == (1, 1, 1)
    (sanitation,) = report(store, "2027-02-05", now=end_of)["departments"]
    assert (sanitation["department"], sanitation["dispatched"], sanitation["overdue"]) == ("sanitation", 1, 1)


def test_an_extension_or_a_ledger_later_leaves_the_overdue_of_the_days_before(city_at):
    """An extension granted on the 5th moved the case's deadline, and a 挂账 on the 5th settled the case: each dropped
    out of the 4th's overdue, though both were overdue when the 4th ended. A past day reads the deadline as it was
    then (recorded on the log row of the dispatch and of each extension)."""
    store, case, do = city_at
    start, end = period("daily", "2027-02-04", end_of := 2e9)
    extended, ledger, early = (case(start + 9 * 3600, n) for n in range(3))
    do(early, Action.EXTEND, Role.OPERATOR, start + 9 * 3600 + 10, extend_by="2h")  # in time: no longer overdue
    do(early, Action.FEEDBACK, Role.DEPARTMENT, start + 10 * 3600)  # within the 2 h
    do(early, Action.CLOSE, Role.OPERATOR, start + 10 * 3600)
    before = report(store, "2027-02-04", now=end_of)
    assert (before["overdue"], before["closed"], before["closed_on_time"]) == (2, 1, 1)
    do(extended, Action.EXTEND, Role.OPERATOR, end + 9 * 3600, extend_by="5 days")
    do(ledger, Action.ACKNOWLEDGE, Role.DEPARTMENT, end + 9 * 3600)
    do(ledger, Action.LEDGER, Role.OPERATOR, end + 9 * 3600)
    assert report(store, "2027-02-04", now=end_of) == before
    assert report(store, "2027-02-05", now=end_of)["overdue"] == 0


def test_a_report_of_a_day_not_yet_come_is_refused():
    """``?date=2099-01-01`` showed today's overdue cases under a day that has not begun; today's own is still shown."""
    now = period("daily", "2027-02-04", 2e9)[0] + 3600  # 01:00 on the 4th, Beijing time
    assert period("daily", "2027-02-04", now)[0] <= now
    assert period("weekly", "2027-02-04", now)[0] <= now
    with pytest.raises(ValueError, match="2027-02-05.*after today .2027-02-04"):
        period("daily", "2027-02-05", now)


def test_a_log_from_before_migration_14_reads_the_cases_deadline(city_at):
    """Its log rows carry no deadline: a round reads the case's own (right for its latest round, as here); an
    extension after the upgrade records its own."""
    store, case, do = city_at
    start, end = period("daily", "2027-02-04", end_of := 2e9)
    case_id = case(start + 9 * 3600)
    with store.engine.begin() as db:  # a database of version 13
        undo_migration_14(db)
        db.execute(text("DELETE FROM schema_migrations WHERE version = 14"))
    store.engine.dispose()
    Store(store.engine.url.render_as_string(hide_password=False))  # the gateway started again: migration 14
    assert report(store, "2027-02-04", now=end_of)["overdue"] == 1
    do(case_id, Action.EXTEND, Role.OPERATOR, end + 9 * 3600, extend_by="5 days")
    (logged,) = store.cases_between(start, end)
    assert [e["deadline"] for e in logged["log"]] == [None, None, store.get_case(case_id)["deadline"]]


def test_a_department_reads_on_its_report_the_cases_it_held_that_day_and_only_its_figures(city_at, tmp_path):
    """A department's report read the cases it holds now: one the police let run overdue, returned and the centre
    sent to sanitation the same day left the police's report (its figures for the police were right only on the
    centre's), and sanitation's showed the police's receiving and dispatch as its own."""
    store, case, do = city_at
    start, end = period("daily", "2026-11-04", end_of := 2e9)
    case_id = case(start + 9 * 3600)  # the police's, 30 s to act
    do(case_id, Action.RETURN, Role.DEPARTMENT, start + 10 * 3600)
    do(case_id, Action.REDISPATCH, Role.OPERATOR, start + 11 * 3600, department="sanitation")
    client = TestClient(create_app(store, load_tables(tmp_path / "city.yaml")))

    def figures(department: str) -> dict:
        token = new_token(store, department, "department", department=department)
        got = client.get("/reports/daily?date=2026-11-04", headers={"Authorization": f"Bearer {token}"}).json()
        return {k: got[k] for k in ("received", "dispatched", "overdue")} | {
            "departments": [d["department"] for d in got["departments"]], "raised": got["machine"]["raised"]}

    assert figures("traffic-police") == {"received": 1, "dispatched": 1, "overdue": 0,
                                         "departments": ["traffic-police"], "raised": 1}
    assert figures("sanitation") == {"received": 0, "dispatched": 1, "overdue": 1, "departments": ["sanitation"],
                                     "raised": 1}
    assert figures("city-management") == {"received": 0, "dispatched": 0, "overdue": 0, "departments": [],
                                          "raised": 0}
    # the next day the police held it no more; sanitation still does
    assert (start + 86400, end + 86400) == period("daily", "2026-11-05", end_of)
    assert [r["id"] for r in store.cases_between(end, end + 86400)] == [case_id]
    token = new_token(store, "tp2", "department", department="traffic-police")
    assert client.get("/reports/daily?date=2026-11-05", headers={"Authorization": f"Bearer {token}"}).json()[
        "machine"]["raised"] == 0


def test_a_departments_report_replays_each_case_once(city_at, tmp_path, monkeypatch):
    """A department's report replayed each case's log twice, to choose the cases it held and again for their figures
    (``bench/gateway_scale.py``'s year: ~0.09 s a report each time)."""
    store, case, do = city_at
    start, end = period("daily", "2026-11-04", 2e9)
    for n in range(3):
        case(start + 9 * 3600 + n, n)
    made = []

    class Counted(reports.History):
        def __init__(self, *args, **kwargs):
            made.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(reports, "History", Counted)
    client = TestClient(create_app(store, load_tables(tmp_path / "city.yaml")))
    token = new_token(store, "tp", "department", department="traffic-police")
    got = client.get("/reports/daily?date=2026-11-04", headers={"Authorization": f"Bearer {token}"}).json()
    assert got["dispatched"] == 3 and len(made) == 3


def test_a_round_logged_before_migration_14_and_extended_since_says_its_deadline_is_of_now(city_at, tmp_path):
    """Its dispatch row has no deadline: the 4th's report read the case's deadline as it is now, after an extension
    on the 5th, and the case overdue when the 4th ended dropped out of its overdue, silently. It is told apart (no
    deadline on the row, an extension since) and said, on the figures, the department's row and the page."""
    store, case, do = city_at
    start, end = period("daily", "2026-11-04", end_of := 2e9)
    case_id = case(start + 9 * 3600)
    with store.engine.begin() as db:  # a database of version 13
        undo_migration_14(db)
        db.execute(text("DELETE FROM schema_migrations WHERE version = 14"))
    store.engine.dispose()
    Store(store.engine.url.render_as_string(hide_password=False))  # the gateway started again: migration 14
    before = report(store, "2026-11-04", now=end_of)
    assert (before["overdue"], before["deadline_as_of_now"]) == (1, 0)  # the case's deadline is its dispatch's yet
    do(case_id, Action.EXTEND, Role.OPERATOR, end + 9 * 3600, extend_by="5 days")
    after = report(store, "2026-11-04", now=end_of)
    assert (after["overdue"], after["deadline_as_of_now"]) == (0, 1)
    assert after["departments"][0]["deadline_as_of_now"] == 1
    assert report(store, "2026-11-05", now=end_of)["deadline_as_of_now"] == 0  # the extension's own deadline
    client = TestClient(create_app(store, load_tables(tmp_path / "city.yaml")))
    client.post("/ui/login", data={"token": new_token(store, "centre", "operator", grid="D")})
    assert "其中 1 项按案件现行时限计" in client.get("/ui/reports?date=2026-11-04").text


def test_a_reports_reads_are_the_same_statements_however_many_cases_it_counts(city_at):
    """A report reads its cases, their logs and their verdicts in one statement each, the same whatever their count,
    each case with its own log in the order it was written. An ``IN`` of a parameter a case was a new statement each
    time the count changed, and Python's sqlite3 keeps a connection's last 128 prepared, each as big as its list
    (1 MB at 7,500 cases): the gateway's SQLite memory grew a megabyte a minute under reports (bench/soak.py)."""
    store, case, do = city_at
    start, end = period("daily", "2027-02-04", 2e9)
    said: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda conn, cursor, statement, *_: said.append(statement))
    made, asked = [], []
    for n in range(4):
        made.append(case(start + 9 * 3600 + n, n))
        do(made[-1], Action.ACKNOWLEDGE, Role.DEPARTMENT, start + 10 * 3600 + n)
        said.clear()
        rows = {r["id"]: r for r in store.cases_between(start, end)}
        verdicts.latest(store, list(rows))
        asked.append(set(said))
    assert sorted(rows) == sorted(made) and all(a == asked[0] for a in asked), [a - asked[0] for a in asked]
    do(made[1], Action.FEEDBACK, Role.DEPARTMENT, start + 11 * 3600)
    rows = {r["id"]: r for r in store.cases_between(start, end)}
    assert [e["action"] for e in rows[made[1]]["log"]] == ["created", "dispatched", "acknowledge", "feedback"]
    assert all(e["case_id"] == case_id for case_id, r in rows.items() for e in r["log"])


def test_a_report_finds_its_cases_their_logs_and_verdicts_by_their_indexes(city_at):
    """The ids a report counts, one JSON parameter (``storage.among``), were written ``IN (...) = 1`` on SQLite, which
    it searched no index for: each report read the whole case log, 860,000 rows in a year's city for 30,000 (0.22 s),
    and every case for its 7,300."""
    store, case, do = city_at
    if store.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plans")
    start, end = period("daily", "2027-02-04", 2e9)
    case(start + 9 * 3600)
    said: list[tuple[str, tuple]] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda conn, cursor, statement, parameters, *_: said.append((statement, parameters)))
    verdicts.latest(store, [r["id"] for r in store.cases_between(start, end)])
    by_ids = [(q, p) for q, p in said if "json_each" in q]
    with store.engine.connect() as db:
        plans = [" ".join(r[3] for r in db.exec_driver_sql(f"EXPLAIN QUERY PLAN {q}", p)) for q, p in by_ids]
    assert len(plans) == 3 and all(" SCAN cases" not in f" {p}" and "SCAN case_log" not in p
                                   and "SCAN verdicts" not in p for p in plans), plans


def test_a_database_of_version_15_gets_its_cases_indexed_by_department_and_state(city_at):
    """A department's queue and its counts read every case it ever had by its department's index
    (``bench/gateway_scale.py``): migration 16 indexes its cases by department and state, and keeps the department's
    own, by which its lists newest first read a page, not all of its cases sorted."""
    store, case, do = city_at
    start, end = period("daily", "2027-02-04", 2e9)
    case_id = case(start + 9 * 3600)
    with store.engine.begin() as db:  # a database of version 15
        undo_migration_16(db)
        db.execute(text("DELETE FROM schema_migrations WHERE version = 16"))
    store.engine.dispose()
    store = Store(store.engine.url.render_as_string(hide_password=False))  # the gateway started again
    with store.engine.connect() as db:
        indexes = {i["name"]: i["column_names"] for i in inspect(db).get_indexes("cases")}
        if db.dialect.name == "sqlite":
            def plan(q: str) -> str:
                return " ".join(r[3] for r in db.execute(text(f"EXPLAIN QUERY PLAN {q}")))
            assert "ix_cases_department_state" in plan("SELECT id FROM cases WHERE department = 'traffic-police' "
                                                       "AND state IN ('dispatched', 'handling')")
            newest = plan("SELECT * FROM cases WHERE department = 'traffic-police' ORDER BY id DESC LIMIT 100")
            assert "ix_cases_department " in f"{newest} " and "TEMP B-TREE" not in newest
    assert indexes["ix_cases_department_state"] == ["department", "state"] and indexes["ix_cases_department"] == [
        "department"]
    assert [r["id"] for r in store.list_cases(department="traffic-police", states=["dispatched"])] == [case_id]
    assert storage.migrate(store.engine) == []


def test_a_case_closed_with_no_dispatch_on_its_log_is_on_time_by_its_feedback(city_at, tmp_path):
    """A log with no dispatch row (an older gateway's) makes its closing's round of the case's department, deadline
    and feedback (``cases.fed_back_at``, which a report reads besides the log): fed back by its deadline and closed
    after, it is on time. Its deadline was looked for from the closing on, the feedback before it found none, and the
    day's report was a 500 (IndexError)."""
    store, case, do = city_at
    start, end = period("daily", "2026-11-04", 2e9)
    case_id = case(start + 9 * 3600)  # 30 s to act
    do(case_id, Action.FEEDBACK, Role.DEPARTMENT, start + 9 * 3600 + 10)
    do(case_id, Action.CLOSE, Role.OPERATOR, start + 10 * 3600)
    with store.engine.begin() as db:
        db.execute(schema.case_log.delete().where(schema.case_log.c.case_id == case_id,
                                                  schema.case_log.c.action == "dispatched"))
    client = TestClient(create_app(store, load_tables(tmp_path / "city.yaml")))
    token = new_token(store, "centre", "admin")
    got = client.get("/reports/daily?date=2026-11-04", headers={"Authorization": f"Bearer {token}"}).json()
    assert {k: got[k] for k in ("received", "dispatched", "closed", "closed_on_time")} == {
        "received": 1, "dispatched": 0, "closed": 1, "closed_on_time": 1}
    assert got["departments"][0]["department"] == "traffic-police"


H = 3600.0


def waited(*rows: tuple[float, str, str]) -> dict:
    """A case whose log is ``rows`` (at, action, to_state), for ``reports.centre`` alone."""
    return {"category_name": "暴露垃圾", "log": [{"at": at, "action": a, "to_state": s} for at, a, s in rows]}


def two_hours(case: dict, began: float) -> float:
    return began + 2 * H


def test_the_centres_waits_of_a_day_begun_ended_late_and_overdue_at_its_end():
    """The command centre's own lateness, which the report never said: a lead confirmed in time, one rejected late,
    one still waiting past its time when the day ended (escalated: still the one wait), a case the police returned
    and the centre sent on late; the department's figures are the department's alone (``summary`` unchanged)."""
    rows = [waited((9 * H, "created", "pending_review"), (10 * H, "confirm", "dispatched")),
            waited((9 * H, "created", "pending_review"), (12 * H, "reject", "rejected")),
            waited((20 * H, "created", "pending_review"), (22.5 * H, "escalate", "pending_review")),
            waited((8 * H, "created", "dispatched"), (13 * H, "return", "returned"),
                   (16 * H, "redispatch", "dispatched"))]
    assert reports.centre(rows, 0, 24 * H, now=30 * H, due=two_hours) == {
        "began": 4, "ended": 3, "ended_late": 2, "waiting": 1, "overdue": 1}
    assert reports.centre(rows, 0, 24 * H, now=21 * H, due=two_hours) == {  # the day not over: now, within it
        "began": 4, "ended": 3, "ended_late": 2, "waiting": 1, "overdue": 0}
    assert reports.centre(rows, 24 * H, 48 * H, now=50 * H, due=two_hours) == {
        "began": 0, "ended": 0, "ended_late": 0, "waiting": 1, "overdue": 1}


def test_a_centre_wait_over_two_days_begins_on_one_and_ends_late_on_the_other_and_the_week_adds_them():
    """Returned at 23:00, due at 01:00, sent on at 09:30 the next day: begun (and waiting, not yet overdue) on the
    first day, ended late on the second; the two days' begun, ended and late add up to the period of both."""
    rows = [waited((8 * H, "created", "dispatched"), (23 * H, "return", "returned"),
                   (33.5 * H, "ledger", "ledger"))]
    first, second = (reports.centre(rows, s, s + 24 * H, now=100 * H, due=two_hours) for s in (0, 24 * H))
    both = reports.centre(rows, 0, 48 * H, now=100 * H, due=two_hours)
    assert first == {"began": 1, "ended": 0, "ended_late": 0, "waiting": 1, "overdue": 0}
    assert second == {"began": 0, "ended": 1, "ended_late": 1, "waiting": 0, "overdue": 0}
    assert both == {"began": 1, "ended": 1, "ended_late": 1, "waiting": 0, "overdue": 0}


def test_a_centre_wait_with_no_deadline_is_never_late():
    """A wait begun before migration 20 ran no clock, and one of a category no longer in the tables has none:
    ``due`` says None, and the wait is counted, never late."""
    rows = [waited((9 * H, "created", "pending_review"), (30 * H, "confirm", "dispatched")),
            waited((9 * H, "created", "pending_review"))]
    assert reports.centre(rows, 0, 48 * H, now=100 * H, due=lambda case, began: None) == {
        "began": 2, "ended": 1, "ended_late": 0, "waiting": 1, "overdue": 0}


def test_the_report_says_the_centres_own_lateness_and_a_departments_does_not(city_at, tmp_path):
    """Through the gateway: a garbage lead held at 09:00 (the centre's 2 working hours: due 11:00) confirmed at 12:00,
    a parking case the police returned at 14:00 (due 16:00) nobody sent on: the day's ``centre`` and the page's line
    say both; a wait begun before migration 20 (its clock) is never late; a department's report has no ``centre``."""
    store, case, do = city_at
    start, end = period("daily", "2026-11-04", 2e9)  # a Wednesday
    lead = case(start + 9 * H, type="garbage")
    do(lead, Action.CONFIRM, Role.OPERATOR, start + 12 * H)
    returned = case(start + 13 * H, 1)
    do(returned, Action.RETURN, Role.DEPARTMENT, start + 14 * H)
    client = TestClient(create_app(store, load_tables(tmp_path / "city.yaml")))
    admin = {"Authorization": f"Bearer {new_token(store, 'admin', 'admin')}"}
    got = client.get("/reports/daily?date=2026-11-04", headers=admin).json()
    assert got["centre"] == {"began": 2, "ended": 1, "ended_late": 1, "waiting": 1, "overdue": 1}
    assert {d["department"]: d["overdue"] for d in got["departments"]} == {  # the police's clock stopped at its
        "sanitation": 1, "traffic-police": 0}  # return; sanitation's, sent the lead at 12:00, ran past its hour
    police = {"Authorization": f"Bearer {new_token(store, 'tp', 'department', department='traffic-police')}"}
    assert client.get("/reports/daily?date=2026-11-04", headers=police).json()["centre"] is None
    client.post("/ui/login", data={"token": new_token(store, "centre", "operator", grid="D")})
    assert "指挥中心 (待审核、已回退): 新增 2 · 办结 1, 其中超时 1 · 仍在等待 1, 其中超时 1" in client.get(
        "/ui/reports?date=2026-11-04").text
    with store.engine.begin() as db:  # the database reached migration 20 after both waits began
        db.execute(text("UPDATE schema_migrations SET applied_at = :t WHERE version = 20"), {"t": start + 15 * H})
    client = TestClient(create_app(Store(store.engine.url.render_as_string(hide_password=False)),
                                   load_tables(tmp_path / "city.yaml")))
    assert client.get("/reports/daily?date=2026-11-04", headers=admin).json()["centre"] == {
        "began": 2, "ended": 1, "ended_late": 0, "waiting": 1, "overdue": 0}


def test_openapi_json_describes_every_figure_a_report_answers(city_at, tmp_path):
    """An integrator found ``GET /reports/{kind}``'s 200 answer undescribed in /openapi.json (no schema: a client
    made from it had a bare object). Each key a report answers, at each level, is described with its meaning."""
    store, case, do = city_at
    start, _ = period("daily", "2026-11-04", 2e9)
    do(case(start + 9 * H), Action.RETURN, Role.DEPARTMENT, start + 10 * H)
    client = TestClient(create_app(store, load_tables(tmp_path / "city.yaml")))
    got = client.get("/reports/daily?date=2026-11-04",
                     headers={"Authorization": f"Bearer {new_token(store, 'admin', 'admin')}"}).json()
    described = client.get("/openapi.json").json()
    models = described["components"]["schemas"]

    def model(schema: dict) -> dict:
        ref = schema.get("$ref") or next(s["$ref"] for s in schema.get("anyOf", schema.get("items", {}).get(
            "anyOf", [schema.get("items", {})])) if "$ref" in s)
        return models[ref.rsplit("/", 1)[-1]]

    def same_keys(answer: dict, schema: dict, where: str) -> None:
        props = schema["properties"]
        assert set(answer) == set(props), (where, set(answer) ^ set(props))
        assert all(p.get("title") or p.get("description") for p in props.values()), where
        for key, value in answer.items():
            if isinstance(value, dict):
                same_keys(value, model(props[key]), f"{where}.{key}")
            elif isinstance(value, list) and value:
                same_keys(value[0], model(props[key]), f"{where}.{key}[0]")

    report = model(described["paths"]["/reports/{kind}"]["get"]["responses"]["200"]["content"]["application/json"]
                   ["schema"])
    assert got["departments"] and got["categories"] and got["machine"]["cameras"] and got["centre"]
    same_keys(got, report, "report")
