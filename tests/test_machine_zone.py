"""A machine whose zone is not Beijing's (a cloud image left at UTC, a vendor's in New York with its DST): what the box
and the gateway write for people is in the city's time all the same. Each test sets the process's zone (``TZ`` and
``time.tzset``) and puts it back."""

import contextlib
import logging
import os
import time
from datetime import datetime

import pytest

from edge.outboxfile import open_outbox
from xueliang.cli import JsonLines
from xueliang.wire import CITY_TZ

from .test_edge_startup import box_config

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


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_a_damaged_outbox_is_moved_aside_named_with_beijing_time(tmp_path, zone):
    """The file aside was named by the machine's clock in its own zone: a box in New York named the file 13 h
    before the ERROR line and the gateway's pages said it happened."""
    (tmp_path / "b1.outbox.sqlite").write_bytes(b"not an outbox, " * 1000)
    with machine_zone(zone):
        before = datetime.now(CITY_TZ).replace(microsecond=0)
        open_outbox(box_config(tmp_path)).close()
        after = datetime.now(CITY_TZ)
    (aside,) = tmp_path.glob("b1.outbox.sqlite.damaged-*")
    named = datetime.strptime(aside.name.rsplit("-", 1)[1], "%Y%m%dT%H%M%S%z")
    assert named.utcoffset() == CITY_TZ.utcoffset(None) and before <= named <= after, aside.name
