"""Service levels written with units, and the deadlines they give. Pure logic.

>>> parse_service_level("1h")
ServiceLevel(amount=1.0, unit='h', working=False)
>>> parse_service_level("3 working days")
ServiceLevel(amount=3.0, unit='d', working=True)
>>> deadline(0.0, parse_service_level("30s"))
30.0

Working hours count only time inside the calendar's working hours on working days: a
case dispatched on Friday 2026-01-02 at 17:00 (Beijing time) with 4 working hours and
work from 09:00 to 18:00 is due on Monday at 12:00; with a lunch break (09:00-12:00 and
13:30-17:30), at 14:00.

>>> friday = datetime(2026, 1, 2, 17, 0, tzinfo=CITY_TZ).timestamp()
>>> due = deadline(friday, parse_service_level("4 working hours"))
>>> datetime.fromtimestamp(due, CITY_TZ).isoformat()
'2026-01-05T12:00:00+08:00'
>>> lunch = Calendar(hours=parse_working_hours("09:00-12:00, 13:30-17:30"))
>>> due = deadline(friday, parse_service_level("4 working hours"), lunch)
>>> datetime.fromtimestamp(due, CITY_TZ).isoformat()
'2026-01-05T14:00:00+08:00'
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from typing import NamedTuple

from xueliang.wire import CITY_TZ, WireError, parse_time

UNITS = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "min": 60, "minute": 60, "minutes": 60, "m": 60,
         "h": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(working\s+)?([a-z]+)\s*$")


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


Span = tuple[time, time]  # a span of a working day: from, to (local time)
_SPAN = re.compile(r"\d\d:\d\d-\d\d:\d\d")


def parse_working_hours(hours: str | list) -> tuple[Span, ...]:
    """The working day as a city's tables write it: one span ``HH:MM-HH:MM``, or several apart by commas (a
    lunch break, usual in street offices: ``09:00-12:00, 13:30-17:30``), or a YAML list of spans; in the order
    of the day, none overlapping. ValueError saying how to write them.

    >>> parse_working_hours("09:00-12:00, 13:30-17:30") == parse_working_hours(["09:00-12:00", "13:30-17:30"])
    True
    >>> parse_working_hours("09:00-18:00, 12:00-13:30")
    Traceback (most recent call last):
    ...
    ValueError: '09:00-18:00, 12:00-13:30': 09:00-18:00 and 12:00-13:30 overlap; write the spans worked, not the breaks, each after the one before (09:00-12:00, 13:30-17:30)
    """
    pieces = [p.strip() for p in hours.split(",")] if isinstance(hours, str) else list(hours)
    written = ", ".join(map(str, pieces))[:60]
    spans: list[Span] = []
    for piece in pieces:
        try:
            if not (isinstance(piece, str) and _SPAN.fullmatch(piece)):
                raise ValueError
            span = tuple(time.fromisoformat(x) for x in piece.split("-"))
            if not span[0] < span[1]:
                raise ValueError
        except ValueError:
            wide = "" if str(piece).isascii() else "; in ASCII: a full-width comma or dash (\uff0c \uff0d) is none"
            raise ValueError(f"{written!r}: {str(piece)[:40]!r} is no span of the day: write each as HH:MM-HH:MM, two "
                             "digits each and the start before the end, several apart by commas (09:00-18:00, or "
                             f"09:00-12:00, 13:30-17:30 for a lunch break){wide}") from None
        if spans and span[0] < spans[-1][1]:
            before, this = (f"{a:%H:%M}-{b:%H:%M}" for a, b in (spans[-1], span))
            if span[1] > spans[-1][0]:
                raise ValueError(f"{written!r}: {before} and {this} overlap; write the spans worked, not the breaks, "
                                 "each after the one before (09:00-12:00, 13:30-17:30)")
            raise ValueError(f"{written!r}: {this} is written after {before}; write the spans in the order of the day")
        spans.append(span)
    if not spans:
        raise ValueError("no span: write the working day as HH:MM-HH:MM (09:00-18:00, or 09:00-12:00, 13:30-17:30)")
    return tuple(spans)


class Calendar(NamedTuple):
    """The city's working calendar: weekends off, ``holidays`` off, ``workdays`` on (调休 weekend days);
    ``hours`` the spans of a working day (``parse_working_hours``), the breaks between them not counted."""

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    hours: tuple[Span, ...] = ((time(9, 0), time(18, 0)),)
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


def working_seconds(level: ServiceLevel, calendar: Calendar) -> float:
    """The time ``level`` gives in seconds: a working day is the working time of one, its spans added up (7 h for
    ``09:00-12:00, 13:30-17:30``), so days count on the calendar's working time as hours and minutes do.

    >>> lunch = Calendar(hours=parse_working_hours("09:00-12:00, 13:30-17:30"))
    >>> working_seconds(parse_service_level("2 working days"), lunch) / 3600
    14.0
    """
    if level.unit == "d" and level.working:
        return level.amount * sum((datetime.combine(date.min, b) - datetime.combine(date.min, a)).total_seconds()
                                  for a, b in calendar.hours)
    return level.amount * {"s": 1, "min": 60, "h": 3600, "d": 86400}[level.unit]


def deadline(start: float, level: ServiceLevel, calendar: Calendar = Calendar()) -> float:
    """When a case dispatched at ``start`` (epoch seconds) is due.

    Working days, hours and minutes count only time inside the working hours of working days, never a break
    between their spans nor a day off; a working day is a day's working time. The deadline is the instant that
    working time runs out, inside a span or at its end, never in a break or after hours: the time a department can
    meet. From a time worked, ``2 working days`` is the same time two working days on; from a break, the evening or
    a day off, the time is counted from the next span's start (a case sent at 12:45 with 2 working days is due at
    12:00, the end of the morning, not 12:45 at lunch; one sent on Saturday, at the end of Monday's work).
    """
    if not level.working:
        return start + working_seconds(level, calendar)
    left, when = working_seconds(level, calendar), datetime.fromtimestamp(start, calendar.tz)
    day, idle = when.date(), 0
    while idle < 3660:  # ten years of days without working time: a calendar with no working day at all ends here
        idle = 0 if calendar.working(day) and calendar.hours else idle + 1
        if calendar.working(day):
            for opens, closes in ((datetime.combine(day, a, calendar.tz), datetime.combine(day, b, calendar.tz))
                                  for a, b in calendar.hours):
                if when < closes:
                    begin = max(when, opens)
                    available = (closes - begin).total_seconds()
                    if left <= available:  # at a span's end: the end, not the next span's start
                        return (begin + timedelta(seconds=left)).timestamp()
                    left -= available
        day += timedelta(days=1)
        when = datetime.combine(day, time(0, 0), calendar.tz)
    raise ValueError("the working calendar has no working hours")


def since(end: float, level: ServiceLevel, calendar: Calendar = Calendar()) -> float:
    """When a window of ``level`` that ends at ``end`` (epoch seconds) began: ``deadline`` counted back, over the
    spans of working days only, a working day a day's working time. It takes back what ``deadline`` gives: 2 working
    hours before Monday 14:30, with a lunch break, is 11:00 (and 11:00 with 2 working hours is due at 14:30). Where
    the window's start falls at a span's start it is the end of the span worked before (Friday's 17:30 for Monday's
    09:00): the time between was no work, so a case closed then is within the window too.

    >>> lunch = Calendar(hours=parse_working_hours("09:00-12:00, 13:30-17:30"))
    >>> monday = datetime(2026, 11, 23, 14, 30, tzinfo=CITY_TZ).timestamp()
    >>> datetime.fromtimestamp(since(monday, parse_service_level("2 working hours"), lunch), CITY_TZ).isoformat()
    '2026-11-23T11:00:00+08:00'
    >>> datetime.fromtimestamp(since(monday, parse_service_level("1 working day"), lunch), CITY_TZ).isoformat()
    '2026-11-20T14:30:00+08:00'
    """
    if not level.working:
        return end - working_seconds(level, calendar)
    left, when = working_seconds(level, calendar), datetime.fromtimestamp(end, calendar.tz)
    day = when.date()
    for _ in range(3660):  # as ``deadline``
        if calendar.working(day):
            for opens, closes in ((datetime.combine(day, a, calendar.tz), datetime.combine(day, b, calendar.tz))
                                  for a, b in reversed(calendar.hours)):
                if when > opens:
                    finish = min(when, closes)
                    available = (finish - opens).total_seconds()
                    if left < available:  # at a span's start: the end of the one before, as ``deadline`` lands
                        return (finish - timedelta(seconds=left)).timestamp()
                    left -= available
        when = datetime.combine(day, time(0, 0), calendar.tz)  # the day before ends where this one begins
        day -= timedelta(days=1)
    raise ValueError("the working calendar has no working hours")
