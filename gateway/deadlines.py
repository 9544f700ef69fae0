"""Service levels written with units, and the deadlines they give. Pure logic.

>>> parse_service_level("1h")
ServiceLevel(amount=1.0, unit='h', working=False)
>>> parse_service_level("3 working days")
ServiceLevel(amount=3.0, unit='d', working=True)
>>> deadline(0.0, parse_service_level("30s"))
30.0
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import NamedTuple

UNITS = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "min": 60, "minute": 60, "minutes": 60, "m": 60,
         "h": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(working\s+)?([a-z]+)\s*$")


class ServiceLevel(NamedTuple):
    amount: float
    unit: str  # s, min, h, d
    working: bool


def parse_service_level(text: str) -> ServiceLevel:
    m = _PATTERN.match(str(text).lower())
    if not m or m.group(3) not in UNITS:
        raise ValueError(f"service level {text!r}: write a number and a unit, e.g. '30s', '1h', '3 working days'")
    unit = {1: "s", 60: "min", 3600: "h", 86400: "d"}[UNITS[m.group(3)]]
    if m.group(2) and unit != "d":
        raise ValueError(f"service level {text!r}: 'working' applies to days only")
    return ServiceLevel(float(m.group(1)), unit, bool(m.group(2)))


def deadline(start: float, level: ServiceLevel, holidays: frozenset[date] = frozenset(),
             tz: timezone = timezone(timedelta(hours=8))) -> float:
    """When a case dispatched at ``start`` (epoch seconds) is due.

    Working days skip Saturdays, Sundays and ``holidays`` (dates in the city's time zone).
    """
    if not level.working:
        return start + level.amount * {"s": 1, "min": 60, "h": 3600, "d": 86400}[level.unit]
    when = datetime.fromtimestamp(start, tz)
    remaining = level.amount
    while remaining > 0:
        when += timedelta(days=1)
        if when.weekday() < 5 and when.date() not in holidays:
            remaining -= 1
    return when.timestamp()
