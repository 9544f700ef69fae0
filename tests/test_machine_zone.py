"""A machine whose zone is not Beijing's (a cloud image left at UTC, a vendor's in New York with its DST): what the box
and the gateway write for people is in the city's time all the same. Each test sets the process's zone (``TZ`` and
``time.tzset``) and puts it back."""

import contextlib
import logging
import os
import time
from datetime import datetime

import pytest

from xueliang.cli import JsonLines
from xueliang.wire import CITY_TZ

ZONES = ["UTC", "America/New_York", "Asia/Shanghai"]


@contextlib.contextmanager
def machine_zone(name: str):
    was = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if was is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = was
        time.tzset()


@pytest.mark.parametrize("zone", ZONES)
def test_a_log_line_is_timed_in_beijing_time_with_its_offset(zone):
    """Logging's own time was the machine's, with no zone: on a UTC server a line at 09:00 in the city said 01:00,
    8 h off the page's times for the same case (13 h in New York's summer)."""
    record = logging.LogRecord("gateway.ingest", logging.INFO, __file__, 1, "case %s created", ("c-1",), None)
    record.created, record.msecs = datetime(2026, 7, 1, 9, 0, 0, 250_000, CITY_TZ).timestamp(), 250.0
    with machine_zone(zone):
        line = JsonLines().format(record)
    assert '"t": "2026-07-01T09:00:00.250+08:00"' in line, line

