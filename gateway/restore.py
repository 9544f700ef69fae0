"""A gateway started on a backup restored: what it says, and where its case numbers go on from.

``gateway --backup`` marks its copy with the time it was made (SQLite's ``user_version``, which the gateway uses for
nothing else; in minutes since 1970, as a signed 32-bit field holds seconds only until 2038). The gateway that was lost went on numbering cases after that time, and its notices, evidence links and
phone calls name them; SQLite numbers a new case one past the last in the file, so the restored gateway gave those
numbers again, to other incidents (a drill: case 22 given twice). The other ids a reader outside meets went the same
way: a suppression's (a box's list and its log, ``POST /suppressions/{id}/lift``, the case pages) and a dead letter's
(``GET /dead-letters`` and its pages). The first of those rows numbered on a marked file fixes where each of these
tables goes on from (``first_id``), and the mark is cleared in its transaction: a restart before it keeps the mark.
The other tables' ids never leave the database (a case-log row's, a verdict's: their case's number names them).
A PostgreSQL database has no such mark: ``pg_restore`` puts each table's sequence back where the dump left it, and
``gateway --restored-at TIME`` (``backup_time``) moves them on by the same margins (``numbering.renumber_restored``).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import NamedTuple

from gateway.deadlines import city_time
from xueliang.wire import CITY_TZ, WireError


class Margin(NamedTuple):
    """How far past a backup's last id a table goes on: ``lost`` ids and ``a_minute`` more for each minute since."""
    lost: int
    a_minute: int


# the tables whose ids are seen outside, by name. Cases: past the last case in the backup, two years of the largest
# city counted here (50,000 cases a year), for a lost gateway that numbered cases fast (a flood) or long (an old
# backup restored), and one more a minute since the backup, ten times that city's pace: a backup restored twice (a
# drill and then for real, or a restored gateway lost before its own first backup) goes on past what the first gave.
# Suppressions: an operator's false alarm each, fewer than cases. Dead letters: a box sending what the gateway
# refuses makes one of each message, thousands an hour (ids stay under 2**31, the API's: 53 million a year)
MARGINS = {"cases": Margin(100_000, 1), "suppressions": Margin(100_000, 1), "dead_letters": Margin(1_000_000, 100)}


def first_id(table: str, last_id: int, backed_up_at: float, now: float) -> int:
    """The id of the first row of ``table`` (one of ``MARGINS``) a gateway restored from the backup made at
    ``backed_up_at``, whose last row there is ``last_id``, numbers at ``now``: past any the lost gateway could have
    given since (a clock before the backup's: none a minute).

    >>> first_id("cases", 21, backed_up_at=1_767_225_600, now=1_767_225_600 + 3600)
    100081
    >>> first_id("cases", 21, backed_up_at=1_767_225_600, now=1_767_225_600 - 3600)
    100021
    >>> first_id("dead_letters", 21, backed_up_at=1_767_225_600, now=1_767_225_600 + 3600)
    1006021
    """
    lost, a_minute = MARGINS[table]
    return last_id + lost + a_minute * math.ceil(max(0.0, now - backed_up_at) / 60)


def restored_words(backed_up_at: float, last_id: int, now: float) -> str:
    """What the gateway's start and ``gateway --check`` say of a database restored from the backup made at
    ``backed_up_at`` (Beijing time, as the pages show times), its last case ``last_id``, no case numbered since.

    >>> print(restored_words(1_767_225_600, 21, now=1_767_225_600 + 3600))  # doctest: +NORMALIZE_WHITESPACE
    a backup made at 2026-01-01 08:00:00 (Beijing time), its last case 21: cases after that time are not in it (the
    boxes do not send them again); new cases are numbered from 100081 on (100,000 past its last and one a minute
    since the backup), past any the lost gateway gave (its suppressions and dead letters likewise)
    """
    first = first_id("cases", last_id, backed_up_at, now)
    return (f"{backup_made(backed_up_at)}, its last case {last_id}: cases after that time are not in it "
            f"(the boxes do not send them again); new cases are numbered from {first} on "
            f"({MARGINS['cases'].lost:,} past its last and one a minute since the backup), past any the lost gateway "
            "gave (its suppressions and dead letters likewise)")


def backup_made(backed_up_at: float) -> str:
    """A backup by its time, as ``restored_words`` and ``gateway --check`` name it.

    >>> backup_made(1_767_225_600)
    'a backup made at 2026-01-01 08:00:00 (Beijing time)'
    """
    return f"a backup made at {datetime.fromtimestamp(backed_up_at, CITY_TZ):%Y-%m-%d %H:%M:%S} (Beijing time)"


# the zones pg_dump's header names by their abbreviations (strftime's %Z, the zone of the machine it ran on) that are
# read here: Asia/Shanghai's CST is China Standard Time (Beijing), the city's, not America's Central time
ZONES = {"UTC": "+00:00", "GMT": "+00:00", "CST": "+08:00"}
_HEADER = re.compile(r"^\s*;?\s*Archive created at\s+", re.IGNORECASE)
_ZONED = re.compile(r"^(?P<time>\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d)?)\s+(?P<zone>[A-Za-z]+)$")


def backup_time(text: str, now: float) -> float:
    """When the PostgreSQL dump ``gateway --restored-at`` is told of was made, seconds since the epoch: its header's
    line as ``pg_restore -l FILE`` writes it (``;     Archive created at 2026-12-07 18:40:12 CST``, the line or the
    time; UTC, GMT and CST, China's, the zones read), or a time as a person writes it (``dataset export --since``'s
    ``city_time``: without a zone, Beijing time). ValueError saying what to write for another, and for a time later
    than ``now`` (no dump restored was made then).

    >>> backup_time(";     Archive created at 2026-01-01 08:00:00 CST", now=1_796_000_000)
    1767225600.0
    >>> backup_time("2026-01-01 00:00:00 UTC", 1_796_000_000) == backup_time("2026-01-01T08:00", 1_796_000_000)
    True
    """
    given = _HEADER.sub("", text.strip())
    if zoned := _ZONED.match(given):
        zone = zoned["zone"].upper()
        if zone not in ZONES:
            raise ValueError(f"its zone {zoned['zone']} is not known here (UTC and CST, China's, are): write it "
                             f"with its zone's offset ({zoned['time'].replace(' ', 'T')}+08:00 for Beijing)")
        given = f"{zoned['time']}{ZONES[zone]}"
    try:
        made = city_time(given)
    except WireError as exc:
        raise ValueError(f"{exc}; write the dump's time as its header says it (pg_restore -l FILE | grep 'Archive "
                         "created at'), or as 2026-12-07T18:40:12 (Beijing time)") from None
    if made > now:
        raise ValueError(f"{datetime.fromtimestamp(made, CITY_TZ):%Y-%m-%d %H:%M:%S} (Beijing time) is later than now: "
                         "a dump is made before it is restored; write its time as its header says it (pg_restore -l "
                         "FILE | grep 'Archive created at')")
    return made
