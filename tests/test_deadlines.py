"""Service levels on the city's working calendar (pure logic)."""

from datetime import date, datetime, time

import pytest
import yaml

from gateway.config import TABLES_DIR, GatewayConfigError, load_tables
from gateway.deadlines import CITY_TZ, Calendar, deadline, parse_service_level


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
    cal = Calendar(start=time(8, 30), end=time(17, 30))
    assert local(deadline(at(2026, 11, 23, 7, 0), parse_service_level("2 working hours"), cal)) == "Mon 2026-11-23 10:30"
    assert local(deadline(at(2026, 11, 23, 16, 0), parse_service_level("90 working minutes"), cal)) == \
        "Mon 2026-11-23 17:30"
    assert local(deadline(at(2026, 11, 23, 16, 0), parse_service_level("2 working hours"), cal)) == "Tue 2026-11-24 09:00"
    assert local(deadline(at(2026, 11, 23, 16, 0), parse_service_level("2h"), cal)) == "Mon 2026-11-23 18:00"


@pytest.mark.parametrize("hours", [
    "18:00-09:00",
    # each refused as not matching ^\d\d:\d\d-\d\d:\d\d$, or (a lunch break) with Python's "too many values to unpack"
    "9:00-18:00", "09:00 - 18:00", "09:00-12:00,13:30-17:30", "09:00\uff0d18:00"])
def test_working_seconds_and_bad_working_hours_are_refused(tmp_path, hours):
    with pytest.raises(ValueError, match="'working' applies to days, hours and minutes"):
        parse_service_level("30 working s")
    raw = yaml.safe_load((TABLES_DIR / "demo.yaml").read_text())
    raw["working_hours"] = hours
    raw["grids_csv"] = str(TABLES_DIR / raw["grids_csv"])
    raw["grids_geojson"] = str(TABLES_DIR / raw["grids_geojson"])
    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    with pytest.raises(GatewayConfigError) as refused:
        load_tables(path)
    assert str(refused.value) == f"{path}: working_hours: {hours!r}: write one span of the day as HH:MM-HH:MM, two " \
        "digits each and the start before the end (09:00-18:00)"
