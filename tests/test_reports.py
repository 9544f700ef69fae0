"""The 民情快报's figures against what an operator counts by hand, on a real gateway (real ingest and actions, the
times chosen): each test names a figure an outside check found the report and the other views disagreeing on."""

import pytest
import yaml

from gateway.actions import act as apply_action
from gateway.config import load_tables
from gateway.ingest import Ingest
from gateway.presentation import period
from gateway.reports import summary
from gateway.storage import Store
from gateway.workflow import Action, Role

from .test_workflow import CITY, database_url, incident, seen  # noqa: F401


@pytest.fixture
def city_at(tmp_path, database_url):  # noqa: F811
    """A gateway whose clock is ``clock[0]``; ``case(t)`` raises a parking case (30 s service level) seen at ``t``,
    ``do(case_id, action, role, t)`` acts on it then."""
    (tmp_path / "city.yaml").write_text(yaml.safe_dump(CITY, allow_unicode=True))
    tables, store = load_tables(tmp_path / "city.yaml"), Store(database_url)
    clock = [0.0]
    ingest = Ingest(store, tables, clock=lambda: clock[0])

    def case(t: float) -> int:
        clock[0] = t
        assert ingest.handle(*incident(**seen(t))) == "case_created"
        return store.list_cases(limit=1)[0]["id"]

    def do(case_id: int, action: Action, role: Role, t: float, **extra) -> None:
        apply_action(store, case_id, action, role, f"{role.value}:x", t, tables, lambda row: True, **extra)

    return store, case, do


def report(store: Store, day: str, now: float) -> dict:
    start, end = period("daily", day, now)
    return summary(store.cases_between(start, end), start, end, now)


def test_a_case_its_department_returned_is_not_overdue_on_the_report_as_on_the_overdue_board(city_at):
    """A department's 回退 (not ours) stops its clock and hands the case to the centre to send on: the overdue board
    (``/ui/overdue``, ``?overdue=true``) leaves it off, but the report counted it overdue, against the department
    that returned it, each day until someone sent it on."""
    store, case, do = city_at
    start, end = period("daily", "2027-02-04", 0.0)
    returned = case(start + 9 * 3600)
    do(returned, Action.RETURN, Role.DEPARTMENT, start + 10 * 3600)  # past its 30 s: it was overdue when returned
    late = case(start + 11 * 3600)  # still with the police, overdue
    assert [c["id"] for c in store.list_cases(overdue_at=end)] == [late]
    r = report(store, "2027-02-04", now=end + 86400)
    assert r["overdue"] == 1 and r["departments"][0]["overdue"] == 1
