"""Service levels on the city's working calendar (pure logic), and the gateway's deadlines from them on a real SQLite file."""

from datetime import date, datetime, time, timedelta

import pytest
import yaml
from hypothesis import assume, given, settings, strategies as st

from gateway.cases import action_values
from gateway.config import TABLES_DIR, GatewayConfigError, load_tables
from gateway.deadlines import (CITY_TZ, Calendar, ServiceLevel, deadline, parse_service_level, parse_working_hours,
                               since, working_seconds)
from gateway.ingest import Ingest
from gateway.storage import Store
from gateway.workflow import Action
from xueliang import wire


def at(*args) -> float:
    return datetime(*args, tzinfo=CITY_TZ).timestamp()


def local(ts: float) -> str:
    return datetime.fromtimestamp(ts, CITY_TZ).strftime("%a %Y-%m-%d %H:%M")


def test_working_days_skip_weekends_and_holidays_and_count_adjusted_workdays():
    # Thursday 2026-10-01 (holiday) dispatch; Oct 1-2 and 5 off, Saturday Oct 10 worked (调休)
    cal = Calendar(holidays=frozenset({date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 5)}),
                   workdays=frozenset({date(2026, 10, 10)}))
    due = deadline(at(2026, 9, 30, 10, 0), parse_service_level("3 working days"), cal)
    assert local(due) == "Thu 2026-10-08 10:00"  # Oct 6, 7, 8
    due = deadline(at(2026, 10, 8, 10, 0), parse_service_level("2 working days"), cal)
    assert local(due) == "Sat 2026-10-10 10:00"  # Friday, then the worked Saturday


def test_working_hours_run_only_inside_the_working_day():
    cal = Calendar(hours=((time(8, 30), time(17, 30)),))
    assert local(deadline(at(2026, 11, 23, 7, 0), parse_service_level("2 working hours"), cal)) == "Mon 2026-11-23 10:30"
    assert local(deadline(at(2026, 11, 23, 16, 0), parse_service_level("90 working minutes"), cal)) == \
        "Mon 2026-11-23 17:30"
    assert local(deadline(at(2026, 11, 23, 16, 0), parse_service_level("2 working hours"), cal)) == "Tue 2026-11-24 09:00"
    assert local(deadline(at(2026, 11, 23, 16, 0), parse_service_level("2h"), cal)) == "Mon 2026-11-23 18:00"


def test_working_days_count_a_days_working_time_and_fall_due_where_it_runs_out():
    """A deadline in working days was the same clock time that many working days on: a case sent at 12:45 with 2
    working days was due at 12:45 two days on, at lunch (shown as a time nobody works, 12:00's working time); one
    sent at 20:00, at 20:00; one sent on Saturday at 10:00 with 1 working day had an hour and a half of Monday's
    work; 1.5 working days were 2."""
    cal = Calendar(hours=parse_working_hours("08:30-12:00, 13:30-17:30"))  # 7.5 h a day
    due = lambda day, h, m, level: local(deadline(at(2026, 11, day, h, m), parse_service_level(level), cal))
    assert due(23, 12, 45, "2 working days") == "Wed 2026-11-25 12:00"  # the morning's end, not lunch
    assert due(23, 10, 0, "2 working days") == "Wed 2026-11-25 10:00"  # from a time worked: the same time
    assert due(23, 20, 0, "2 working days") == "Wed 2026-11-25 17:30"
    assert due(23, 7, 0, "1 working day") == "Mon 2026-11-23 17:30"
    assert due(21, 10, 0, "1 working day") == "Mon 2026-11-23 17:30"  # Saturday: Monday's whole day
    assert due(23, 10, 0, "1.5 working days") == "Tue 2026-11-24 15:15"
    assert due(23, 12, 0, "1 working day") == "Tue 2026-11-24 12:00"


def city_tables(tmp_path, **changes):
    """The demo city's tables with ``changes``, loaded as the gateway loads them."""
    raw = yaml.safe_load((TABLES_DIR / "demo.yaml").read_text())
    raw.update(changes)
    raw["grids_csv"] = str(TABLES_DIR / raw["grids_csv"])
    raw["grids_geojson"] = str(TABLES_DIR / raw["grids_geojson"])
    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return load_tables(path)


NO_SPAN = "is no span of the day: write each as HH:MM-HH:MM, two digits each and the start before the end, several " \
    "apart by commas (09:00-18:00, or 09:00-12:00, 13:30-17:30 for a lunch break)"
WIDE = "; in ASCII: a full-width comma or dash (\uff0c \uff0d) is none"
OVERLAP = "overlap; write the spans worked, not the breaks, each after the one before (09:00-12:00, 13:30-17:30)"


@pytest.mark.parametrize("hours, refused", [
    ("18:00-09:00", f"'18:00-09:00': '18:00-09:00' {NO_SPAN}"),
    # each refused as not matching ^\d\d:\d\d-\d\d:\d\d$
    ("9:00-18:00", f"'9:00-18:00': '9:00-18:00' {NO_SPAN}"),
    ("09:00 - 18:00", f"'09:00 - 18:00': '09:00 - 18:00' {NO_SPAN}"),
    ("09:00-12:00,", f"'09:00-12:00, ': '' {NO_SPAN}"),
    ("09:00\uff0d18:00", f"'09:00\uff0d18:00': '09:00\uff0d18:00' {NO_SPAN}{WIDE}"),
    ("09:00-12:00\uff0c13:30-17:30", f"'09:00-12:00\uff0c13:30-17:30': '09:00-12:00\uff0c13:30-17:30' {NO_SPAN}{WIDE}"),
    # a lunch break: the spans out of order, or the break written as a span of its own, were counted as work
    ("13:30-17:30, 09:00-12:00", "'13:30-17:30, 09:00-12:00': 09:00-12:00 is written after 13:30-17:30; write the "
                                 "spans in the order of the day"),
    (["09:00-12:30", "12:00-17:30"], f"'09:00-12:30, 12:00-17:30': 09:00-12:30 and 12:00-17:30 {OVERLAP}"),
    ("09:00-18:00, 12:00-13:30", f"'09:00-18:00, 12:00-13:30': 09:00-18:00 and 12:00-13:30 {OVERLAP}"),
    ([], "no span: write the working day as HH:MM-HH:MM (09:00-18:00, or 09:00-12:00, 13:30-17:30)"),
])
def test_working_seconds_and_bad_working_hours_are_refused(tmp_path, hours, refused):
    with pytest.raises(ValueError, match="'working' applies to days, hours and minutes"):
        parse_service_level("30 working s")
    with pytest.raises(GatewayConfigError) as said:
        city_tables(tmp_path, working_hours=hours)
    assert str(said.value) == f"{tmp_path / 'city.yaml'}: working_hours: {refused}"


LUNCH = "09:00-12:00, 13:30-17:30"  # a street office's day


@pytest.mark.parametrize("written", [LUNCH, "09:00-12:00,13:30-17:30", ["09:00-12:00", "13:30-17:30"]])
def test_a_working_day_with_a_lunch_break_is_written_as_spans_apart_by_commas_or_as_a_list(tmp_path, written):
    tables = city_tables(tmp_path, working_hours=written)
    assert tables.working_hours == LUNCH
    assert tables.calendar.hours == ((time(9, 0), time(12, 0)), (time(13, 30), time(17, 30)))
    assert city_tables(tmp_path, working_hours="08:30-17:30").calendar.hours == ((time(8, 30), time(17, 30)),)


def test_working_hours_never_count_the_lunch_break():
    """It was counted as work: a case dispatched at 11:00 with 2 working hours was overdue at 13:00, while the
    street office was at lunch, with an hour of its time unused."""
    cal = Calendar(hours=parse_working_hours(LUNCH))
    due = lambda h, m, level: local(deadline(at(2026, 11, 23, h, m), parse_service_level(level), cal))
    assert due(11, 0, "2 working hours") == "Mon 2026-11-23 14:30"
    assert due(11, 0, "1 working hour") == "Mon 2026-11-23 12:00"  # the end of the morning: due before lunch
    assert due(12, 15, "1 working hour") == "Mon 2026-11-23 14:30"  # dispatched at lunch: counted from 13:30
    assert due(16, 30, "90 working minutes") == "Tue 2026-11-24 09:30"
    assert due(8, 0, "7 working hours") == "Mon 2026-11-23 17:30"
    assert due(11, 0, "2h") == "Mon 2026-11-23 13:00"  # calendar time runs through lunch


def street_office(tmp_path, service_level: str, hours: str = LUNCH, **parking):
    """The demo city with a lunch break (or other ``hours``), parking due in ``service_level``, its re-check in 1
    working hour, and ``parking``'s other settings."""
    categories = yaml.safe_load((TABLES_DIR / "demo.yaml").read_text())["categories"]
    categories[0].update(service_level=service_level, recheck_service_level="1 working hour", **parking)
    return city_tables(tmp_path, working_hours=hours, categories=categories)


def test_a_cases_deadline_its_overdue_check_extension_and_re_check_skip_the_lunch_break(tmp_path):
    from tests.test_gateway import TOPIC, payload

    tables = street_office(tmp_path, "2 working hours")
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    dispatched = at(2026, 11, 23, 11, 0)
    ingest = Ingest(store, tables, clock=lambda: dispatched)
    seen = wire.iso(dispatched - 30)
    assert ingest.handle(TOPIC, payload(started_at=seen, observed_at=seen)) == "case_created"
    (case,) = store.list_cases()
    assert local(case["deadline"]) == "Mon 2026-11-23 14:30"
    assert store.overdue(at(2026, 11, 23, 13, 15)) == []  # at lunch, with an hour and a half to go
    assert [c["id"] for c in store.overdue(at(2026, 11, 23, 14, 31))] == [case["id"]]
    parking = tables.category("illegal_parking")
    due_before_lunch = dict(case, deadline=at(2026, 11, 23, 11, 30))
    extended = action_values(due_before_lunch, Action.EXTEND, parking, tables, at(2026, 11, 23, 11, 0),
                             extend_by="1 working hour")
    assert local(extended["deadline"]) == "Mon 2026-11-23 14:00"
    fed_back = action_values(case, Action.FEEDBACK, parking, tables, at(2026, 11, 23, 11, 30))
    assert local(fed_back["recheck_deadline"]) == "Mon 2026-11-23 14:00"


@st.composite
def calendars(draw):
    """A working day of 1 to 4 spans with breaks between them, and a holiday or two."""
    minutes = sorted(draw(st.lists(st.integers(0, 24 * 60 - 1), min_size=2, max_size=8, unique=True)))
    spans = tuple((time(a // 60, a % 60), time(b // 60, b % 60)) for a, b in zip(minutes[::2], minutes[1::2]))
    holidays = frozenset(draw(st.lists(st.dates(date(2026, 11, 23), date(2026, 12, 6)), max_size=2)))
    return Calendar(holidays=holidays, hours=spans)


def working_minutes(calendar: Calendar, start: float, end: float) -> float:
    """The working time between ``start`` and ``end`` in minutes, as the overlap of [start, end] with each span of
    each working day: the test's own count, not ``deadline``'s walk."""
    first, last = (datetime.fromtimestamp(t, CITY_TZ).date() for t in (start, end))
    total, day = 0.0, first
    while day <= last:
        for a, b in calendar.hours if calendar.working(day) else ():
            opens, closes = (datetime.combine(day, t, CITY_TZ).timestamp() for t in (a, b))
            total += max(0.0, min(end, closes) - max(start, opens))
        day += timedelta(days=1)
    return total / 60


def in_a_gap(calendar: Calendar, t: float) -> bool:
    """Whether ``t`` falls on a working day between two of its spans (not at either's edge)."""
    when = datetime.fromtimestamp(t, CITY_TZ)
    return calendar.working(when.date()) and any(
        b < when.time() < a for (_, b), (a, _) in zip(calendar.hours, calendar.hours[1:]))


def minutes_a_day(calendar: Calendar) -> int:
    return sum((b.hour - a.hour) * 60 + b.minute - a.minute for a, b in calendar.hours)


@settings(max_examples=300, deadline=None)
@given(calendars(), st.integers(0, 14 * 24 * 60), st.data())
def test_a_working_deadline_counts_its_time_exactly_never_in_a_break_and_extends_as_one(calendar, start_min, data):
    a, b = (data.draw(st.integers(1, 20 * minutes_a_day(calendar))) for _ in range(2))  # up to 20 working days
    start = at(2026, 11, 23) + start_min * 60.0
    due = deadline(start, ServiceLevel(a, "min", True), calendar)
    assert working_minutes(calendar, start, due) == a
    assert working_minutes(calendar, due - 60, due) == 1  # the last minute counted is worked: due no later
    assert not in_a_gap(calendar, due)
    # an extension counts on from the deadline as the two together would from the start
    assert deadline(due, ServiceLevel(b, "min", True), calendar) == deadline(start, ServiceLevel(a + b, "min", True),
                                                                             calendar)


def on_working_time(calendar: Calendar, t: float) -> bool:
    """Whether ``t`` falls on a working day inside one of its spans or at either's edge."""
    when = datetime.fromtimestamp(t, CITY_TZ)
    return calendar.working(when.date()) and any(a <= when.time() <= b for a, b in calendar.hours)


@settings(max_examples=200, deadline=None)
@given(calendars(), st.integers(0, 14 * 24 * 60), st.integers(0, 3 * 24 * 60), st.sampled_from(["min", "h", "d"]),
       st.data())
def test_a_working_deadline_falls_on_working_time_and_later_for_a_later_start_or_more_time(calendar, start_min,
                                                                                           later_min, unit, data):
    """Whatever the start (at lunch, at night, on a holiday) and the unit: due on working time, never inside a
    break, on a day off or after hours, after exactly the working time the level gives; no earlier for a later
    start or more time."""
    start = at(2026, 11, 23) + start_min * 60.0
    amount = data.draw(st.integers(1, {"min": 3000, "h": 50, "d": 12}[unit]))
    level = ServiceLevel(amount, unit, True)
    due = deadline(start, level, calendar)
    assert on_working_time(calendar, due), local(due)
    assert working_minutes(calendar, start, due) == working_seconds(level, calendar) / 60
    assert working_minutes(calendar, due - 60, due) == 1  # the last minute counted is worked: due no later
    assert deadline(start + later_min * 60.0, level, calendar) >= due
    assert deadline(start, level._replace(amount=amount + data.draw(st.integers(0, 5))), calendar) >= due


def test_a_deadline_more_than_ten_years_of_days_away_is_counted_to_its_end():
    """The property above, as Hypothesis found it: a working day of one minute and 44 working hours, 2,640 working
    days, ran past the ten years of days the count was bounded by, and was refused saying the calendar had no working
    hours. Only ten years of days in a row without working time end the count."""
    calendar, start = Calendar(hours=((time(0, 0), time(0, 1)),)), at(2026, 11, 23)
    level = ServiceLevel(44, "h", True)
    due = deadline(start, level, calendar)
    assert on_working_time(calendar, due) and working_minutes(calendar, start, due) == 44 * 60
    with pytest.raises(ValueError, match="no working hours"):
        deadline(start, level, Calendar(hours=()))


@settings(max_examples=300, deadline=None)
@given(calendars(), st.integers(0, 13), st.sampled_from(["min", "d"]), st.data())
def test_counting_working_time_back_takes_back_what_a_deadline_adds(calendar, days, unit, data):
    """A window in working time (``recheck_window: 2 working hours``) is counted back from now as a deadline is
    counted on: from a time worked, adding then taking back returns it, and the other way round."""
    day = date(2026, 11, 23) + timedelta(days=days)
    assume(calendar.working(day))
    opens, closes = data.draw(st.sampled_from(calendar.hours))
    length = minutes_a_day(Calendar(hours=((opens, closes),)))
    minute = data.draw(st.integers(0, length))  # from the span's start to its end
    t = datetime.combine(day, opens, CITY_TZ).timestamp() + minute * 60.0
    level = ServiceLevel(data.draw(st.integers(1, 20 * minutes_a_day(calendar) if unit == "min" else 20)), unit, True)
    # a span's start is the same working time as the end of the span before: both count back to that end
    back = t if minute > 0 else since(t, ServiceLevel(0, "min", True), calendar)
    assert working_minutes(calendar, back, t) == 0
    assert since(deadline(t, level, calendar), level, calendar) == back
    assert deadline(since(t, level, calendar), level, calendar) == back


def test_a_window_in_working_hours_counts_the_citys_working_hours_back_from_now(tmp_path):
    """``recheck_window: 2 working hours`` was counted from 1970 on the default calendar: 3 h of any hours, the
    city's own calendar never asked. A car back on Monday at 09:30 where a case closed on Friday at 17:00, an hour
    of work before, opened a case of its own; one back at 15:00 where a case closed at 11:30 (two working hours,
    lunch between) did too."""
    from tests.test_gateway import TOPIC, payload
    from gateway.actions import act
    from gateway.workflow import Role

    tables = street_office(tmp_path, "2 working hours", recheck_window="2 working hours")
    parking = tables.category("illegal_parking")
    assert local(parking.window_start("recheck_window", at(2026, 11, 23, 9, 30), tables.calendar)) == \
        "Fri 2026-11-20 16:00"
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    clock = [at(2026, 11, 20, 16, 30)]
    ingest = Ingest(store, tables, clock=lambda: clock[0])

    def seen(incident_id: str) -> bytes:
        when = wire.iso(clock[0] - 30)
        return payload(incident_id=incident_id, started_at=when, observed_at=when)

    assert ingest.handle(TOPIC, seen("first")) == "case_created"
    for closed_at, back_at, outcome in [(at(2026, 11, 20, 17, 0), at(2026, 11, 23, 9, 30), "case_reopened"),
                                        (at(2026, 11, 23, 11, 30), at(2026, 11, 23, 15, 0), "case_reopened"),
                                        (at(2026, 11, 23, 15, 30), at(2026, 11, 24, 9, 31), "case_created")]:
        for action in (Action.FEEDBACK, Action.CLOSE):
            act(store, 1, action, Role.ADMIN, "ops", closed_at, tables, lambda c: True)
        clock[0] = back_at
        assert ingest.handle(TOPIC, seen(f"back-{back_at:.0f}")) == outcome, local(back_at)


def test_a_case_due_at_the_mornings_end_is_overdue_from_then_on_the_board_in_escalation_and_reports(tmp_path):
    """The deadline is the instant the working time runs out (12:00, the morning's end, for a case sent at lunch
    with 1 working day: it was 12:45, at lunch); past it the case is overdue at any hour, lunch included, alike on
    the overdue board and the API (SQL), the case's own flag, the clock's escalation and the day's report: each
    compares the one stored instant, so no page shows "due 12:00" and "not overdue" at 12:30."""
    from tests.test_gateway import TOPIC, payload
    from gateway.cases import is_overdue
    from gateway.reports import summary
    from gateway.service import Clock

    tables = street_office(tmp_path, "1 working day")
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    sent = at(2026, 11, 23, 12, 45)
    seen = wire.iso(sent - 30)
    assert Ingest(store, tables, clock=lambda: sent).handle(TOPIC, payload(started_at=seen, observed_at=seen)) == \
        "case_created"
    (case,) = store.list_cases()
    assert local(case["deadline"]) == "Tue 2026-11-24 12:00"
    day = (at(2026, 11, 24), at(2026, 11, 25))
    for now, overdue in ((at(2026, 11, 24, 11, 59), False), (at(2026, 11, 24, 12, 30), True)):
        assert is_overdue(store.get_case(case["id"]), now) is overdue
        assert [c["id"] for c in store.list_cases(overdue_at=now)] == ([case["id"]] if overdue else [])
        assert [c["id"] for c in store.overdue(now)] == ([case["id"]] if overdue else [])
        assert summary(store.cases_between(*day), *day, now)["overdue"] == int(overdue)
    assert Clock(store, tables, None, 60.0).escalate_overdue(at(2026, 11, 24, 12, 30)) == 1
    # looked at again after another service level, counted from 13:30: the next day's 12:00
    assert local(store.get_case(case["id"])["next_escalation_at"]) == "Wed 2026-11-25 12:00"


def test_a_lunch_break_added_to_the_tables_moves_no_deadline_already_set_and_counts_from_the_next_round(tmp_path):
    """A deadline already set is a promise made to a department: the tables' new hours never move it, though it
    may now fall in the new lunch break, and it is overdue past it as it was; the case's next round (an extension
    counted on from it, a feedback's re-check, a reopening) counts on the new hours."""
    from tests.test_gateway import TOPIC, payload
    from gateway.actions import act
    from gateway.workflow import Role

    nine_to_six = street_office(tmp_path, "1 working day", hours="09:00-18:00")
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    sent = at(2026, 11, 23, 12, 45)
    seen = wire.iso(sent - 30)
    assert Ingest(store, nine_to_six, clock=lambda: sent).handle(TOPIC, payload(started_at=seen, observed_at=seen)) \
        == "case_created"
    (case,) = store.list_cases()
    assert local(case["deadline"]) == "Tue 2026-11-24 12:45"  # 1 working day of 09:00-18:00, a time worked then

    lunch = street_office(tmp_path, "1 working day")  # the city's street offices now stop 12:00-13:30
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")  # the gateway started again on the new tables
    assert store.get_case(case["id"])["deadline"] == case["deadline"]
    assert store.overdue(at(2026, 11, 24, 12, 40)) == []
    assert [c["id"] for c in store.overdue(at(2026, 11, 24, 12, 46))] == [case["id"]]
    act(store, case["id"], Action.EXTEND, Role.ADMIN, "ops", at(2026, 11, 24, 10, 0), lunch, lambda c: True,
        extend_by="1 working hour")
    assert local(store.get_case(case["id"])["deadline"]) == "Tue 2026-11-24 14:30"  # from 12:45 at lunch: 13:30 on
    act(store, case["id"], Action.FEEDBACK, Role.ADMIN, "ops", at(2026, 11, 24, 11, 45), lunch, lambda c: True)
    assert local(store.get_case(case["id"])["recheck_deadline"]) == "Tue 2026-11-24 14:15"


def test_the_centres_own_wait_its_deadline_escalation_and_end_count_on_the_working_calendar():
    """Pure logic: a case a department returns, and a lead waiting for review, run the command centre's own clock
    (the category's ``review_service_level``, 2 working hours by default): from the return, its escalation one grid
    level up from the case's grid, looked at again after another such time; a redispatch ends it."""
    from gateway.cases import escalation, is_overdue

    tables = load_tables(TABLES_DIR / "demo.yaml")
    parking = tables.category("illegal_parking")
    assert parking.review_service_level == "2 working hours"
    case = {"state": "handling", "type": "illegal_parking", "urgent": False, "level": 2, "grid": "HQ-DZG-10D-07",
            "deadline": at(2026, 11, 23, 15, 0), "escalated_grid": "HQ-DZG", "extension_request": None}
    returned = action_values(case, Action.RETURN, parking, tables, at(2026, 11, 23, 17, 0))
    assert local(returned["review_deadline"]) == "Tue 2026-11-24 10:00"  # the evening is no one's working time
    assert (returned["level"], returned["escalated_grid"]) == (0, None)  # the centre's clock starts afresh
    case |= returned | {"state": "returned"}
    assert not is_overdue(case, at(2026, 11, 24, 9, 59)) and is_overdue(case, at(2026, 11, 24, 10, 1))
    up = escalation(case, parking, tables, at(2026, 11, 24, 10, 1))
    assert up["escalated_grid"] == "HQ-DZG-10D" and local(up["next_escalation_at"]) == "Tue 2026-11-24 12:01"
    sent_on = action_values(case, Action.REDISPATCH, parking, tables, at(2026, 11, 24, 10, 30),
                            department="traffic-police")
    assert sent_on["review_deadline"] is None and local(sent_on["deadline"]) == "Tue 2026-11-24 11:30"


def test_a_lead_nobody_reviews_and_a_case_nobody_sends_on_are_the_centres_overdue_past_its_time_and_not_before(
        tmp_path):
    """A lead waiting for review (待审核) and a case its department returned (已回退) waited for ever, nobody chased.
    Past the centre's own time (``review_service_level``, here 1 working hour, counted on the city's calendar) each
    is overdue alike on the board and the API (SQL), on its page (the case's own flag) and in the clock's escalation
    (one grid level up, the escalation notice), not before; the day's report counts no department late for them."""
    from tests.test_gateway import TOPIC, payload
    from gateway.actions import act
    from gateway.presentation import case_view, note_text
    from gateway.reports import summary
    from gateway.service import Clock
    from gateway.workflow import Role

    tables = street_office(tmp_path, "1 working day", review_service_level="1 working hour")
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    clock = [at(2026, 11, 23, 11, 30)]
    ingest = Ingest(store, tables, clock=lambda: clock[0])
    seen = wire.iso(clock[0] - 30)
    lead = payload(incident_id="lead", started_at=seen, observed_at=seen, attributes={"needs_review": True})
    assert ingest.handle(TOPIC, lead) == "case_created"
    clock[0] = at(2026, 11, 23, 16, 0)
    seen = wire.iso(clock[0] - 30)
    sent = payload(incident_id="sent", started_at=seen, observed_at=seen, location={"lat": 39.18, "lon": 117.15})
    assert ingest.handle(TOPIC, sent) == "case_created"
    held, returned = (store.get_case(i)["id"] for i in (1, 2))
    act(store, returned, Action.RETURN, Role.DEPARTMENT, "department:traffic-police", at(2026, 11, 23, 17, 0), tables,
        lambda row: True, "not ours")
    assert local(store.get_case(held)["review_deadline"]) == "Mon 2026-11-23 14:00"  # lunch not counted
    assert local(store.get_case(returned)["review_deadline"]) == "Tue 2026-11-24 09:30"
    for now, overdue in ((at(2026, 11, 23, 13, 59), []), (at(2026, 11, 23, 14, 1), [held]),
                         (at(2026, 11, 24, 9, 29), [held]), (at(2026, 11, 24, 9, 31), [held, returned])):
        assert sorted(c["id"] for c in store.list_cases(overdue_at=now)) == overdue, local(now)
        assert sorted(c["id"] for c in store.overdue(now)) == overdue, local(now)
        assert [i for i in (held, returned) if case_view(store.get_case(i), tables, now)["overdue"]] == overdue
    day = (at(2026, 11, 24), at(2026, 11, 25))
    assert summary(store.cases_between(*day), *day, at(2026, 11, 24, 9, 31))["overdue"] == 0
    assert Clock(store, tables, None, 60.0).escalate_overdue(at(2026, 11, 24, 9, 31)) == 2
    for case_id in (held, returned):
        case = store.get_case(case_id)
        assert (case["state"], case["level"], case["escalated_grid"]) == (
            "pending_review" if case_id == held else "returned", 1, "HQ-DZG-10D")
        assert local(case["next_escalation_at"]) == "Tue 2026-11-24 10:31"
    assert [(r["case_id"], r["target"]) for r in store.unpublished(("escalate",))] == [
        (held, "HQ-DZG-10D"), (returned, "HQ-DZG-10D")]  # each a notice on xl/v1/escalations/HQ-DZG-10D
    for row in store.unpublished(("escalate",)):  # each passes the notices' schema, a lead's state and no deadline too
        case = store.get_case(row["case_id"])
        topic, body = Clock(store, tables, None, 60.0).notice(row, case, at(2026, 11, 24, 9, 31))
        assert topic == wire.notice_topic({"type": "escalation", "to": "HQ-DZG-10D"})
        assert wire.decode_notice(body)["case"]["state"] == ("pending_review" if row["case_id"] == held else "returned")
    (note,) = [e for e in store.get_case(returned)["timeline"] if e["action"] == "escalate"]
    assert note_text(note, tables).startswith("超期: 指挥中心时限 2026-11-24 09:30")
