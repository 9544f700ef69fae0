"""Service levels written with units, and the deadlines they give. Pure logic.

>>> parse_service_level("1h")
ServiceLevel(amount=1.0, unit='h', working=False)
>>> parse_service_level("3 working days")
ServiceLevel(amount=3.0, unit='d', working=True)
>>> deadline(0.0, parse_service_level("30s"))
30.0

Working hours count only time inside the calendar's working hours on working days: a
case dispatched on Friday 2026-01-02 at 17:00 (Beijing time) with 4 working hours and
work from 09:00 to 18:00 is due on Monday at 12:00.

>>> due = deadline(datetime(2026, 1, 2, 17, 0, tzinfo=CITY_TZ).timestamp(), parse_service_level("4 working hours"))
>>> datetime.fromtimestamp(due, CITY_TZ).isoformat()
'2026-01-05T12:00:00+08:00'
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from typing import NamedTuple

from xueliang.wire import WireError, parse_time

UNITS = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "min": 60, "minute": 60, "minutes": 60, "m": 60,
         "h": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(working\s+)?([a-z]+)\s*$")


CITY_TZ = timezone(timedelta(hours=8))  # Beijing time: the city's days, working hours and every time a person reads


def city_time(text: str) -> float:
    """A time a person or a city's tool writes (``replay --start``, ``dataset export --since``, Open311's
    ``start_date``), seconds since the epoch: ISO 8601 with its zone as written; without one, and a bare day (its
    midnight), in the city's time (Beijing), as a person there means it. A zone-less time was UTC (a recording
    replayed from ``2026-11-22T08:00:00`` carried times 8 h late; Open311's ``start_date=2026-12-01`` left out the
    day's first 8 hours). WireError for what is no time.

    >>> city_time("2026-12-01") == city_time("2026-12-01T00:00:00") == city_time("2026-11-30T16:00:00Z")
    True
    >>> city_time("2026-12-01T08:00:00+00:00") - city_time("2026-12-01T08:00:00")
    28800.0
    """
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00")) if len(text) != 10 else \
            datetime.combine(date.fromisoformat(text), datetime.min.time())
    except ValueError as exc:
        raise WireError(f"time {text[:40]!r} is not a real time: {exc}") from None
    return parse_time(text if when.tzinfo is not None else when.replace(tzinfo=CITY_TZ).isoformat())


class Calendar(NamedTuple):
    """The city's working calendar: weekends off, ``holidays`` off, ``workdays`` on (调休 weekend days)."""

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    start: time = time(9, 0)
    end: time = time(18, 0)
    tz: timezone = CITY_TZ

    def working(self, day: date) -> bool:
        return day in self.workdays or (day.weekday() < 5 and day not in self.holidays)


class ServiceLevel(NamedTuple):
    amount: float
    unit: str  # s, min, h, d
    working: bool


def parse_service_level(text: str) -> ServiceLevel:
    m = _PATTERN.match(str(text).lower())
    if not m or m.group(3) not in UNITS:
        raise ValueError(f"service level {text!r}: write a number and a unit, e.g. '30s', '1h', '3 working days'")
    unit = {1: "s", 60: "min", 3600: "h", 86400: "d"}[UNITS[m.group(3)]]
    if m.group(2) and unit == "s":
        raise ValueError(f"service level {text!r}: 'working' applies to days, hours and minutes")
    return ServiceLevel(float(m.group(1)), unit, bool(m.group(2)))


def deadline(start: float, level: ServiceLevel, calendar: Calendar = Calendar()) -> float:
    """When a case dispatched at ``start`` (epoch seconds) is due.

    Working days skip days off and count whole days; working hours and minutes count only
    time inside the working hours of working days.
    """
    seconds = level.amount * {"s": 1, "min": 60, "h": 3600, "d": 86400}[level.unit]
    if not level.working:
        return start + seconds
    when = datetime.fromtimestamp(start, calendar.tz)
    if level.unit == "d":
        remaining = level.amount
        while remaining > 0:
            when += timedelta(days=1)
            if calendar.working(when.date()):
                remaining -= 1
        return when.timestamp()
    left = seconds
    for _ in range(3660):  # ten years of days: a calendar with no working day at all ends here
        opens = datetime.combine(when.date(), calendar.start, calendar.tz)
        closes = datetime.combine(when.date(), calendar.end, calendar.tz)
        if calendar.working(when.date()) and when < closes:
            begin = max(when, opens)
            available = (closes - begin).total_seconds()
            if left <= available:
                return (begin + timedelta(seconds=left)).timestamp()
            left -= available
        when = datetime.combine(when.date() + timedelta(days=1), time(0, 0), calendar.tz)
    raise ValueError("the working calendar has no working hours")
