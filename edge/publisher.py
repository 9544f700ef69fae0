"""MQTT publishing through an on-disk outbox, kept until a gateway confirms it committed it.

Every message is written to SQLite before it is sent and deleted only when a gateway
acknowledges it on ``xl/v1/{box}/ack`` (see ``xueliang.wire``), after its commit. A broker's
PUBACK is not enough: a broker killed after it (Mosquitto does not even keep shared
subscriptions across a crash) would lose the message for good. So a broker outage, a broker
crash or a restart of the box loses nothing: what stays unconfirmed is sent again after
``resend_after_s`` (twice as long each further time), and on start everything pending is sent
again in order. The gateway is idempotent, so a message sent twice is harmless. A message the
broker refuses (e.g. not authorised) moves to ``outbox_refused`` with the reason.

The acknowledgements also tell the gateways' clock (``GatewayClock``). A box whose wall clock is off it by
more than the gateway accepts (``wire.MAX_CLOCK_SKEW_S``) puts the gateways' time on what it makes from then
on (edge/box.py ``wall_offset``), and re-stamps, as it sends them, the queued incidents (made before it knew)
that a gateway would hold, unacknowledged, for times ahead of its clock.

A box whose wall clock is plainly wrong (before ``clock_floor``: a dead clock battery starts it in 1970 or 2000, or
it reads before the gateways' time the box knew when it last ran; or past the ceiling ten years on, a garbage RTC's
2085 or 2100) cannot stamp what it makes before an acknowledgement tells it the time: it stamps it on its boot clock
(2000-01-01 plus the seconds since the machine booted, marked ``attributes.boot_clock`` with the boot's id), holds it
in the outbox, and puts the gateways' time on it once one came (a heartbeat is acknowledged to a box that asks, so
one comes without incidents). At 1970 and 2100 the box had refused its own incidents (no time on the wire is before
2000 or after 2099), at 2000 a gateway held them for review as reported 9,000 days late, and at 2085 held them
unacknowledged as ahead of its clock.

A PUBACK that says "No matching subscribers" (MQTT v5 reason code 0x10) means the broker took the
message and gave it to nobody: no gateway subscription exists at that moment. That happens after
every restart of Mosquitto 2.0: it restores the gateways' persistent sessions but not their shared
subscriptions (``$share/...``; its persistence file keeps only plain ones), so until a gateway
reconnects and subscribes again, what a box sends is dropped. Such a message is sent again soon
(after ``UNROUTED_RESEND_S``, twice as long each further time) instead of after ``resend_after_s``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import secrets
import sqlite3
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import paho.mqtt.client as mqtt

from edge.config import Broker
from edge.twins import Connections, twin_words
from xueliang import wire
from xueliang.mqtt import disconnected, make_client

log = logging.getLogger(__name__)

BOOT = secrets.token_hex(8)  # this start of the box's process: its heartbeats', last will's and stop's ``boot``

MAX_RESEND_AFTER_S = 600.0
UNROUTED_RESEND_S = 1.0  # first resend of a message the broker gave to no subscriber (PUBACK 0x10)
NO_MATCHING_SUBSCRIBERS = 16  # MQTT v5 PUBACK reason code 0x10: taken, but nobody subscribes to it
MAX_UNWRITTEN = 10_000  # messages held in memory while the outbox cannot be written (its disk full), at most
MEMORY_BYTES = 64 << 20  # what an outbox kept in memory (its disk full at start) takes, at most: then it is full
CLOCK_SAMPLES = 5  # acknowledgements whose median tells the gateways' clock
# a wall clock before this is plainly wrong: no box runs this release before it was written (November 2026). No one
# moves it at a release: a box that has heard a gateway knows a later floor (``clock_floor``); and the boot clock's
# times (2000 plus the seconds since the machine booted) are before it
CLOCK_FLOOR = 1_793_491_200.0  # 2026-11-01T00:00:00Z
# a wall clock this long past the floor is plainly wrong too (``GatewayClock.ceiling``): the floor follows the gateways'
# time the box hears, so a right clock reads past it only on a box no gateway told the time for ten years, longer than
# such a box serves (and that one only waits for its first acknowledgement); a garbage RTC's year, any of 2000-2199
# after a battery fault, mostly does. Within it, a clock ahead is found out by the gateways as before (they hold what
# it sends until the box learns their time); what it left in its outbox for a later boot goes, as on the boot clock, as
# of a time unknown (``restamped``)
CLOCK_SPAN_S = 3653 * 86400.0
# the wall clock less the monotonic clock moved by more than this since the box started: the wall clock was set (NTP
# steps it past 0.128 s, or someone set it); reading a time not plainly wrong then, the box takes it for its boot's time
WALL_STEP_S = 1.0
BASE_KEPT_WITHIN_S = 1.0  # a boot's known time kept again only where it moved further (the gateways' median jitters)
KNOWN_TIME_EVERY_S = 600.0  # the gateways' time, as the box knows it, kept beside its outbox at most this often
BOOT_CLOCK = "boot_clock"  # the attribute of an incident stamped on its box's boot clock: the boot's id
# pages the write-ahead log takes before SQLite copies it into the file and begins it again: its default, 1,000
# (4 MiB), wanted that much free disk beside what the outbox holds, and a disk with less (nearly full) failed every
# write for good, the messages confirmed long ago filling it; 64 pages (256 KiB) is a copy every few incidents
WAL_CHECKPOINT_PAGES = 64
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL,
    boot TEXT,
    mono REAL
);
CREATE TABLE IF NOT EXISTS outbox_refused (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS open_incident (
    incident_id TEXT PRIMARY KEY,
    message BLOB NOT NULL,
    created REAL,
    boot TEXT,
    mono REAL
);
CREATE TABLE IF NOT EXISTS boot_base (
    boot TEXT PRIMARY KEY,
    base REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS boot_start (
    boot TEXT PRIMARY KEY,
    wall REAL NOT NULL,
    told REAL
);
"""
# columns added to a table of SCHEMA's since its first release, with their types: an outbox an earlier release wrote
# lacks them, and is given them as it opens (None in its rows); any other column missing is a table of another making
ADDED_COLUMNS = {"outbox": {"boot": "TEXT", "mono": "REAL"},
                 "open_incident": {"created": "REAL", "boot": "TEXT", "mono": "REAL"}}


def boot_id() -> str:
    """This boot of the machine (the kernel's id): the monotonic clock, which the boot clock runs on, begins again
    at each. Where it cannot be read, this start of the process (``BOOT``): what another start made is then taken
    for another boot's, its times sent as they are (never given a wrong one)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:64] or BOOT
    except OSError:
        return BOOT


BOOT_ID = boot_id()


def resend_after(sends: int, first_s: float) -> float:
    """Seconds to wait for a gateway's acknowledgement after send number ``sends`` (1, 2, ...):
    doubling, so a gateway that is down for long is not flooded with copies.

    >>> [resend_after(n, 30.0) for n in (1, 2, 3, 10)]
    [30.0, 60.0, 120.0, 600.0]
    """
    return min(MAX_RESEND_AFTER_S, first_s * 2 ** (sends - 1))


def resend_unrouted_after(unrouted: int) -> float:
    """Seconds to wait before sending again a message the broker gave to no subscriber, after the
    ``unrouted``-th such PUBACK (1, 2, ...): soon, since a gateway that lost its subscription in a
    broker restart is typically back within seconds, then twice as long each time, as ``resend_after``
    does (a long absence of every gateway costs no more sends than a gateway that never confirms).

    >>> [resend_unrouted_after(n) for n in (1, 2, 3, 5, 6, 9, 20)]
    [1.0, 2.0, 4.0, 16.0, 32.0, 256.0, 600.0]
    """
    return resend_after(unrouted, UNROUTED_RESEND_S)


def clock_floor(known: float | None, margin_s: float = wire.MAX_CLOCK_SKEW_S) -> float:
    """The earliest time a right wall clock can read: the newest of ``CLOCK_FLOOR`` (this release was written after
    it) and the gateways' time the box last knew (``known``: ``known_time``, kept at an earlier start) less
    ``margin_s`` (a clock that far behind the gateways' has its times taken). A clock that went back before what the
    box already knew is wrong (its battery died since, or someone set it back by hand), however late the release.

    >>> wire.iso(clock_floor(None)), wire.iso(clock_floor(wire.parse_time("2027-03-01T08:00:00Z")))
    ('2026-11-01T00:00:00.000Z', '2027-03-01T07:55:00.000Z')
    >>> clock_floor(wire.parse_time("2026-10-31T00:00:00Z")) == CLOCK_FLOOR  # a gateway's clock behind the release's
    True
    """
    return CLOCK_FLOOR if known is None else max(CLOCK_FLOOR, known - margin_s)


def known_time_file(outbox: Path) -> Path:
    """Where the gateways' time the box knows is kept, beside its outbox (``b1.outbox.sqlite``: ``b1.outbox.time``):
    a file of its own, the outbox's pages left as they were."""
    return outbox.with_suffix(".time")


def known_time(path: Path) -> float | None:
    """The gateways' time kept in ``path`` (``keep_known_time``); None where none was kept or it cannot be read (the
    floor is then the release's)."""
    try:
        return wire.parse_time(path.read_text("utf-8")[:40].strip())
    except (OSError, UnicodeDecodeError, wire.WireError):
        return None


def keep_known_time(path: Path, at: float) -> None:
    """``at`` kept in ``path`` as ISO 8601 text, replaced whole (written beside it, then renamed: a box killed
    mid-write keeps the one before); OSError where it cannot be (a full disk)."""
    part = path.with_name(path.name + ".part")
    part.write_text(wire.iso(at), "utf-8")
    os.replace(part, path)


@dataclass
class GatewayClock:
    """The gateways' clock as their acknowledgements tell it: each one's ``at`` was written a moment before it
    came. It is kept against the box's monotonic clock (``mono``), which no step of the wall clock moves: the
    median of the gateways' clock less it over the last ``CLOCK_SAMPLES`` acknowledgements (``base``; one odd
    acknowledgement moves nothing; None until one came). ``measured``: the gateways' clock less the wall clock
    (``wall``) at a moment. ``corrected``: the box puts the gateways' time on the wire, decided at each
    acknowledgement: when the two differ by more than ``limit_s`` (the gateway takes such times), and once so,
    until they agree within half of it (near the limit, times on the wire do not jump back and forth).
    ``offset``: what the box adds to its wall clock for the times it puts on the wire, 0 while not corrected.
    Read against the monotonic clock, a wall clock NTP steps after the box was corrected moves nothing on the
    wire: measured against the wall clock, the messages made before the next few acknowledgements carried the
    old offset (an hour off). While no acknowledgement came and the wall clock is before ``floor`` (``clock_floor``) or
    not before ``ceiling`` (plainly wrong: ``plainly_wrong``), the times on the wire are the boot clock
    (``on_boot_clock``): 2000-01-01 plus the monotonic clock. Pure logic: times are passed in.

    >>> clock = GatewayClock()
    >>> clock.observe(gateway_at=1000.0, mono=20.0, wall=1120.0), clock.offset(20.0, 1120.0)  # two minutes ahead
    (False, 0.0)
    >>> clock = GatewayClock()
    >>> clock.observe(gateway_at=1000.0, mono=20.0, wall=4600.5), clock.offset(20.0, 4600.5)  # an hour ahead
    (True, -3600.5)
    >>> clock.offset(mono=21.0, wall=1001.0)  # NTP set the wall clock right: on the wire, the gateways' time
    0.0
    >>> wire.iso(5.0 + GatewayClock().offset(mono=100.0, wall=5.0))  # 1970, no acknowledgement yet: the boot clock
    '2000-01-01T00:01:40.000Z'
    >>> told = wire.parse_time("2027-03-01T08:00:00Z")  # what a gateway told the box before it started again
    >>> back = told - 86400.0  # its wall clock a day behind, after the release
    >>> wire.iso(back + GatewayClock(floor=clock_floor(told)).offset(mono=100.0, wall=back))
    '2000-01-01T00:01:40.000Z'
    >>> wire.iso(GatewayClock().ceiling), GatewayClock().plainly_wrong(wire.parse_time("2085-06-01T00:00:00Z"))
    ('2036-11-01T00:00:00.000Z', True)
    """
    limit_s: float = wire.MAX_CLOCK_SKEW_S
    floor: float = CLOCK_FLOOR
    base: float | None = None
    corrected: bool = False
    samples: deque[float] = field(default_factory=lambda: deque(maxlen=CLOCK_SAMPLES))

    @property
    def ceiling(self) -> float:
        """The first time a right wall clock cannot read: ``CLOCK_SPAN_S`` past ``floor``, and no later than the wire's
        own last (``wire.LATEST``: the box could put no time of such a clock on the wire)."""
        return min(self.floor + CLOCK_SPAN_S, wire.LATEST)

    def plainly_wrong(self, wall: float) -> bool:
        """Whether the wall clock reading ``wall`` is plainly wrong: before ``floor`` or not before ``ceiling``."""
        return not self.floor <= wall < self.ceiling

    def true_time(self, mono: float, wall: float) -> float | None:
        """The box's time at ``mono`` / ``wall`` as it puts it on the wire, where that is a true time; None while it is
        the boot clock (no acknowledgement yet, the wall clock plainly wrong)."""
        if self.base is None and self.plainly_wrong(wall):
            return None
        return wall + self.offset(mono, wall)

    def resume(self, base: float, mono: float, wall: float) -> None:
        """Take up the gateways' clock as an earlier start of the box in this boot of the machine learnt it (``base``:
        their time less the monotonic clock, which a restart of the box leaves running on), at ``mono`` / ``wall``:
        the box puts their time on what it makes at once, as that start did, rather than on its boot clock until an
        acknowledgement comes (a box in 1970 restarted with no gateway reachable held all it saw). Never another
        boot's: its monotonic clock began again.

        >>> clock = GatewayClock()
        >>> clock.resume(base=wire.parse_time("2026-12-06T08:00:00Z"), mono=500.0, wall=5.0)  # 1970 again
        >>> wire.iso(5.0 + clock.offset(mono=500.0, wall=5.0)), clock.corrected
        ('2026-12-06T08:08:20.000Z', True)
        """
        self.samples.append(base)
        self.base = base
        self.corrected = abs(self.measured(mono, wall)) > self.limit_s

    def observe(self, gateway_at: float, mono: float, wall: float) -> bool:
        """One acknowledgement written at ``gateway_at`` that came at ``mono`` (the monotonic clock) and ``wall``
        (the wall clock); True when the box starts or stops putting the gateways' time on the wire."""
        self.samples.append(gateway_at - mono)
        self.base = statistics.median(self.samples)
        was = self.corrected
        self.corrected = abs(self.measured(mono, wall)) > (self.limit_s / 2 if was else self.limit_s)
        return was != self.corrected

    def known(self, mono: float) -> float | None:
        """The gateways' time at ``mono`` (the monotonic clock); None until an acknowledgement came."""
        return None if self.base is None else self.base + mono

    def measured(self, mono: float, wall: float) -> float | None:
        """The gateways' clock less the wall clock at ``mono`` / ``wall``; None until an acknowledgement came."""
        return None if self.base is None else self.base + mono - wall

    def offset(self, mono: float, wall: float) -> float:
        """What to add to the wall clock (at ``mono`` / ``wall``) for the time on the wire."""
        if self.base is None and self.plainly_wrong(wall):
            return wire.EARLIEST + mono - wall
        return self.measured(mono, wall) if self.corrected else 0.0


def on_boot_clock(message: dict, boot: str | None = None) -> dict:
    """``message`` marked ``attributes.boot_clock``, ``boot`` (this boot's id), where a time of it is before
    ``CLOCK_FLOOR``: the box stamped it on its boot clock (``GatewayClock.offset``), and the outbox holds it until
    ``from_boot_clock`` can put the gateways' time on it.

    >>> m = {"started_at": "2000-01-01T00:01:40.000Z", "observed_at": "2000-01-01T00:01:45.000Z", "ended_at": None,
    ...      "attributes": {"dwell_s": 5.0}}
    >>> on_boot_clock(m, "b1")["attributes"], on_boot_clock(dict(m, observed_at="2026-12-06T08:00:00Z"), "b1") == m
    ({'dwell_s': 5.0, 'boot_clock': 'b1'}, False)
    """
    if all(message[name] is None or wire.parse_time(message[name]) >= CLOCK_FLOOR for name in wire.TIME_FIELDS):
        return message
    return {**message, "attributes": {**message["attributes"], BOOT_CLOCK: boot or BOOT_ID}}


def boot_clock_of(payload: bytes) -> str | None:
    """The boot whose clock an incident ``payload`` was stamped on (``attributes.boot_clock``), or None."""
    if BOOT_CLOCK.encode() not in payload:  # the outbox's every incident is read: most have no mark
        return None
    try:
        return wire.decode_incident(payload)["attributes"].get(BOOT_CLOCK)
    except wire.WireError:
        return None


def from_boot_clock(payload: bytes, boot: str, base: float) -> bytes | None:
    """An incident ``payload`` stamped on boot ``boot``'s clock with each time before ``CLOCK_FLOOR`` (on that clock)
    put on the gateways' (``base``: theirs less the monotonic clock, ``GatewayClock.base``), and its mark taken off;
    None for any other payload, and for one of another boot: the monotonic clock it was stamped on ended with that
    boot, so its time cannot be known, and it is sent as it is (a gateway holds it for review as reported late).

    >>> m = {"schema_version": 1, "incident_id": "i-1", "seq": 1, "state": "start", "type": "illegal_parking",
    ...      "box": "b", "camera": "c", "zone": "z", "grid": "G-1", "location": None,
    ...      "started_at": "2000-01-01T00:01:40.000Z", "observed_at": "2000-01-01T00:01:45.000Z", "ended_at": None,
    ...      "end_reason": None, "confidence": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2], "track_id": None,
    ...      "attributes": {"boot_clock": "b1"}, "evidence": None, "model": {"name": "m", "version": "1"}}
    >>> base = wire.parse_time("2026-12-06T08:00:00Z")  # the gateways' clock read 08:00 at the boot
    >>> moved = json.loads(from_boot_clock(wire.encode_incident(m), "b1", base))
    >>> moved["started_at"], moved["observed_at"], moved["attributes"]
    ('2026-12-06T08:01:40.000Z', '2026-12-06T08:01:45.000Z', {})
    >>> from_boot_clock(wire.encode_incident(m), "another boot", base) is None
    True
    """
    if boot_clock_of(payload) != boot:
        return None
    message = wire.decode_incident(payload)
    for name in wire.TIME_FIELDS:
        if message[name] is not None and (t := wire.parse_time(message[name])) < CLOCK_FLOOR:
            message[name] = wire.iso(t - wire.EARLIEST + base)
    message["attributes"] = {k: v for k, v in message["attributes"].items() if k != BOOT_CLOCK}
    try:
        return wire.encode_incident(message)
    except wire.WireError:  # moved out of the wire's years (a gateway's clock as wrong): sent as it is
        return None


def set_right(started: float, wall: float, mono: float, clock: GatewayClock) -> float | None:
    """The time less the monotonic clock (``GatewayClock.base``) where the wall clock was set since the box started
    (``started``: its reading less the monotonic clock then; it moved by more than ``WALL_STEP_S``: NTP, or a person)
    and reads ``wall`` at ``mono``, a time not plainly wrong; None where it was never set (its error, if any, is
    unknown) or was set wrong. What the box learns of its boot's time without a gateway (``Outbox.keep_base``).

    >>> rtc = wire.parse_time("2026-12-06T11:00:00Z")  # an RTC three hours fast, as it read at the monotonic clock's 20
    >>> set_right(rtc - 20.0, rtc + 280.0, 300.0, GatewayClock()) is None  # never set: its error unknown
    True
    >>> wire.iso(set_right(rtc - 20.0, rtc + 280.0 - 3 * 3600.0, 300.0, GatewayClock()))  # NTP set it right
    '2026-12-06T07:59:40.000Z'
    >>> set_right(rtc - 20.0, 280.0, 300.0, GatewayClock()) is None  # set back to 1970
    True
    """
    if abs(wall - mono - started) <= WALL_STEP_S or clock.plainly_wrong(wall):
        return None
    return wall - mono


def from_known_boot_clock(payload: bytes, clock: GatewayClock, mono_now: float, this_boot: str = BOOT_ID,
                          bases: dict[str, float] | None = None) -> bytes | None:
    """An incident ``payload`` stamped on a boot's clock (``from_boot_clock``) put on that boot's known time: this
    boot's the gateways' (``clock.base``), an earlier boot's what it learnt (``bases``, ``Outbox.keep_base``); None for
    any other payload, one of a boot that never learnt its time, and one that known time would leave ahead of the
    gateways' clock (it was wrong: sent as it is, as of a time unknown, never moved at each send).

    >>> clock = GatewayClock()
    >>> _ = clock.observe(gateway_at=wire.parse_time("2026-12-06T08:00:00Z"), mono=500.0, wall=5.0)
    >>> m = {"schema_version": 1, "incident_id": "i-1", "seq": 1, "state": "start", "type": "illegal_parking",
    ...      "box": "b", "camera": "c", "zone": "z", "grid": "G-1", "location": None,
    ...      "started_at": "2000-01-01T00:01:40.000Z", "observed_at": "2000-01-01T00:01:45.000Z", "ended_at": None,
    ...      "end_reason": None, "confidence": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2], "track_id": None,
    ...      "attributes": {"boot_clock": "b0"}, "evidence": None, "model": {"name": "m", "version": "1"}}
    >>> b0 = wire.parse_time("2026-12-05T20:00:00Z")  # boot b0's time less its monotonic clock, as NTP told it
    >>> json.loads(from_known_boot_clock(wire.encode_incident(m), clock, 500.0, "b1", {"b0": b0}))["observed_at"]
    '2026-12-05T20:01:45.000Z'
    >>> from_known_boot_clock(wire.encode_incident(m), clock, 500.0, "b1", {"b0": b0 + 86400.0}) is None  # ahead
    True
    >>> from_known_boot_clock(wire.encode_incident(m), clock, 500.0, "b1") is None  # b0 never learnt it
    True
    """
    if clock.base is None or (mark := boot_clock_of(payload)) is None:
        return None
    base = clock.base if mark == this_boot else (bases or {}).get(mark)
    new = None if base is None else from_boot_clock(payload, mark, base)
    if new is None or mark == this_boot:
        return new
    return None if wire.ahead(wire.decode_incident(new), clock.known(mono_now)) > clock.limit_s else new


def restamped(payload: bytes, queued: tuple[float, str | None, float | None], clock: GatewayClock, mono_now: float,
              this_boot: str = BOOT_ID, bases: dict[str, float] | None = None) -> tuple[bytes, float] | None:
    """An incident ``payload`` a gateway holds for its times (ahead of the gateways' clock at ``mono_now`` by more than
    ``clock.limit_s``) re-stamped from when its row was queued (``queued``: the box's time, boot and monotonic clock,
    as the outbox keeps them, ``waited``), with the box's time to keep for it; None for any other payload, and while no
    acknowledgement told the gateways' clock. Queued in this boot, it takes the gateways' time at its monotonic clock,
    and that becomes its row's: again, it moves only as far as the gateways' clock stepped since. (Moved by the offset
    now, it moved again at each send while it still looked ahead, and one of another garbage clock drifted for good.)
    Of another boot, or kept without one, its clock's error then is unknown (this boot's is another's: a garbage RTC
    reads another year at each boot): it goes on that boot's boot clock, marked ``attributes.boot_clock`` with that
    boot's id, as of a time unknown, which a gateway holds for review; unless that boot learnt its time (``bases``: the
    time less the monotonic clock each earlier boot knew, ``Outbox.bases``): then it takes that boot's time at its
    monotonic clock, as in this boot, never this boot's offset (a garbage RTC reads another year at each boot), and so
    once. A boot's known time that leaves it ahead still was wrong (a clock set by hand): of a time unknown.

    >>> clock = GatewayClock()
    >>> wall = wire.parse_time("2031-05-01T00:00:00Z")  # a garbage RTC's year, within the ceiling
    >>> _ = clock.observe(gateway_at=wire.parse_time("2026-12-06T08:00:00Z"), mono=500.0, wall=wall)
    >>> m = {"schema_version": 1, "incident_id": "i-1", "seq": 1, "state": "start", "type": "illegal_parking",
    ...      "box": "b", "camera": "c", "zone": "z", "grid": "G-1", "location": None,
    ...      "started_at": "2031-04-30T23:57:49.000Z", "observed_at": "2031-04-30T23:58:19.000Z", "ended_at": None,
    ...      "end_reason": None, "confidence": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2], "track_id": None,
    ...      "attributes": {}, "evidence": None, "model": {"name": "m", "version": "1"}}
    >>> created = wall - 100.0  # queued a second after it was seen, 100 s before the acknowledgement
    >>> new, at = restamped(wire.encode_incident(m), (created, "b1", 400.0), clock, 500.0, this_boot="b1")
    >>> json.loads(new)["observed_at"], wire.iso(at), restamped(new, (at, "b1", 400.0), clock, 600.0, "b1")
    ('2026-12-06T07:58:19.000Z', '2026-12-06T07:58:20.000Z', None)
    >>> old = json.loads(restamped(wire.encode_incident(m), (created, "b0", 40.0), clock, 500.0, this_boot="b1")[0])
    >>> old["started_at"], old["observed_at"], old["attributes"]
    ('2000-01-01T00:00:10.000Z', '2000-01-01T00:00:40.000Z', {'boot_clock': 'b0'})
    >>> b0 = clock.known(0.0) - 7200.0  # boot b0 learnt its time: its monotonic clock began two hours before this one's
    >>> new, at = restamped(wire.encode_incident(m), (created, "b0", 40.0), clock, 500.0, "b1", {"b0": b0})
    >>> json.loads(new)["observed_at"], wire.iso(at)
    ('2026-12-06T05:52:19.000Z', '2026-12-06T05:52:20.000Z')
    """
    if clock.base is None:
        return None
    created, boot, mono = queued
    try:
        message = wire.decode_incident(payload)
        gateway_now = clock.known(mono_now)
        if wire.ahead(message, gateway_now) <= clock.limit_s:
            return None
        times = {name: wire.parse_time(message[name]) for name in wire.TIME_FIELDS if message[name] is not None}
        base = None if mono is None else clock.base if boot == this_boot else (bases or {}).get(boot)
        if base is not None:
            shift = base + mono - created
            if boot != this_boot and max(times.values()) + shift - gateway_now > clock.limit_s:
                base = None  # that boot's time was wrong too
        if base is not None:
            created += shift
        else:  # its last time put at that boot's boot clock as it was queued, its first no earlier than 2000
            last = wire.last_seen(message)
            shift = wire.EARLIEST + max(mono or 0.0, last - min(times.values())) - last
            message["attributes"] = {**message["attributes"], BOOT_CLOCK: boot or "unknown"}
        new = wire.encode_incident({**message, **{name: wire.iso(t + shift) for name, t in times.items()}})
    except wire.WireError:  # not an incident, or moved out of the wire's years: sent as it is
        return None
    return None if new == payload else (new, created)


def open_change(topic: str, payload: bytes) -> tuple[str, bytes | None] | None:
    """What a message the outbox takes changes in its open incidents (``Outbox.open_incidents``): an incident's start
    or update is its last message while it is open, its end closes it; (its incident id, the message, or None once
    it ended). None for any other message (evidence, a heartbeat's topic, a payload that is no incident).

    >>> open_change("xl/v1/b/c/incident", b'{"incident_id": "i-1", "seq": 1, "state": "start"}')
    ('i-1', b'{"incident_id": "i-1", "seq": 1, "state": "start"}')
    >>> open_change("xl/v1/b/c/incident", b'{"incident_id": "i-1", "seq": 2, "state": "end"}')
    ('i-1', None)
    >>> open_change("xl/v1/b/c/evidence/i-1", b"\\xff\\xd8"), open_change("xl/v1/b/c/incident", b"one")
    (None, None)
    """
    if not topic.endswith("/incident"):
        return None
    try:
        message = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not (isinstance(message, dict) and isinstance(message.get("incident_id"), str)
            and message.get("state") in ("start", "update", "end")):
        return None
    return message["incident_id"], None if message["state"] == "end" else payload


# a message of the outbox: topic, payload, when it was queued (``waited``: the box's time, boot and monotonic clock)
Queued = tuple[str, bytes, float, str | None, float | None]
# when a message was queued: the box's time, boot and monotonic clock (``waited``; None where not known)
QueuedAt = tuple[float, str | None, float | None]
# an incident not yet ended (``Outbox.open_incidents``): its id, the last message of it the outbox took, and when that
# was queued, as its row of the outbox keeps it (None where not known: an earlier release's, or read back by salvage)
OpenIncident = tuple[str, bytes, float | None, str | None, float | None]


def waited(created: float, boot: str | None, mono: float | None, now: float | None, mono_now: float,
           since_start: float, this_boot: str = BOOT_ID, bases: dict[str, float] | None = None) -> tuple[float, bool]:
    """How long a message of the outbox has waited, and whether that is known. It was queued at ``created`` on the box's
    time (``Publisher.now``: the boot clock while its wall clock was plainly wrong), in boot ``boot`` at its monotonic
    clock ``mono`` (None: queued by an earlier release, or read back from a damaged outbox); ``now`` is the box's time
    now (``GatewayClock.true_time``; None while it cannot tell it), ``mono_now`` the monotonic clock, ``since_start``
    how long this start of the box has run. Queued in this boot, it is read on the monotonic clock, which no step of
    the wall clock moves (a box in 1970 that NTP set right had waited 57 years); of an earlier boot that learnt its time
    (``bases``, as ``restamped`` takes them), on that boot's time at its monotonic clock; else on the box's time, where
    that was right then and is now; else it is unknown, and at least as long as this start has run (it was queued
    before: a box back in 1970 at each boot said 0 s).

    >>> waited(5.0, "b1", 50.0, now=1_796_198_400.0, mono_now=80.0, since_start=40.0, this_boot="b1")
    (30.0, True)
    >>> waited(5.0, "b0", 50.0, now=1_796_198_400.0, mono_now=80.0, since_start=40.0, this_boot="b1")
    (40.0, False)
    """
    if boot == this_boot and mono is not None:
        return max(0.0, mono_now - mono), True
    if now is not None and mono is not None and (base := (bases or {}).get(boot)) is not None:
        created = base + mono
        if now - created >= since_start:
            return now - created, True
    # no release of the box ran before CLOCK_FLOOR: a time before it is the boot clock's, or a wrong wall clock's (an
    # earlier release kept the wall clock's own, not the wire's), as 1970 is
    if now is not None and created >= CLOCK_FLOOR and now - created >= since_start:
        return now - created, True
    return since_start, False


class NotAnOutbox(sqlite3.DatabaseError):
    """An SQLite file that is no outbox: a page of it damaged, another application's file (tables, none of them
    ``outbox``), or a table of it missing a column of ``SCHEMA``'s. ``kind``: ``damaged``, or ``foreign`` for another
    application's file (the name it is moved aside with: an installer finding ``.damaged-`` on an application's
    file looked for a broken disk)."""

    def __init__(self, reason: str, kind: str = "damaged"):
        super().__init__(reason)
        self.kind = kind


ANOTHER_APPLICATIONS = "another application's file"


def of_another_making(db: sqlite3.Connection) -> str | None:
    """What shows ``db`` to be of another making than an outbox, in words, or None: tables, none of them ``outbox``
    (another application's file: the box made its own beside them), or a table of ``SCHEMA``'s that lacks a column.

    >>> db = sqlite3.connect(":memory:")
    >>> _ = db.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, topic TEXT, payload BLOB)")
    >>> of_another_making(db), of_another_making(sqlite3.connect(":memory:"))
    ('table outbox has no column created', None)
    >>> _ = db.execute("ALTER TABLE outbox RENAME TO users")
    >>> of_another_making(db)
    "another application's file: no table outbox, tables users"
    """
    tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                             "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    if tables and "outbox" not in tables:
        more = ", ..." if tables[5:] else ""
        return f"{ANOTHER_APPLICATIONS}: no table outbox, tables {', '.join(tables[:5])}{more}"
    with contextlib.closing(sqlite3.connect(":memory:")) as expected:
        expected.executescript(SCHEMA)
        for (table,) in expected.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                         "AND name NOT LIKE 'sqlite_%'").fetchall():
            has = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            missing = {row[1] for row in expected.execute(f"PRAGMA table_info({table})")} - has - set(
                ADDED_COLUMNS.get(table, {}))
            if has and missing:
                return f"table {table} has no column {', '.join(sorted(missing))}"
    return None


class Outbox:
    """A durable FIFO of (topic, payload) in SQLite; thread-safe. Opened, it is checked: NotAnOutbox where the file
    is none (found before anything in it is changed), SQLite's error where it cannot be written (read-only), at start
    and not later (a page damaged mid-file ended the sender thread at its first read of it, and a table of another
    making failed every incident, 'table outbox has no column named created'). ``path`` None: kept in memory
    (``in_memory``)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.unwritable: str | None = None  # kept in memory: why its file cannot be written
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(":memory:" if path is None else str(path), check_same_thread=False,
                                   isolation_level=None)
        try:
            if path is None:
                page = self._db.execute("PRAGMA page_size").fetchone()[0]
                self._db.execute(f"PRAGMA max_page_count = {MEMORY_BYTES // page}")
            self._check()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            for table, columns in ADDED_COLUMNS.items():
                has = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                for column, kind in columns.items():
                    if column not in has:
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            self._db.execute("BEGIN IMMEDIATE")
            try:  # deletes nothing, but a read-only file refuses it: opening it and reading it do not
                self._db.execute("DELETE FROM outbox WHERE id < 0")
            finally:
                self._db.execute("ROLLBACK")
            with contextlib.suppress(sqlite3.Error):  # a full disk: forgotten at a later start
                self._db.execute("DELETE FROM boot_base WHERE boot != ? AND boot NOT IN "
                                 "(SELECT boot FROM outbox WHERE boot IS NOT NULL) AND boot NOT IN "
                                 "(SELECT boot FROM open_incident WHERE boot IS NOT NULL)", (BOOT_ID,))
        except BaseException:
            self._db.close()
            raise
        self._lock = threading.Lock()

    @classmethod
    def in_memory(cls, why: str) -> Outbox:
        """An outbox in memory, for one whose file cannot be written for ``why`` (its disk full at start:
        edge/outboxfile.py ``open_outbox``): it takes ``MEMORY_BYTES`` at most, then refuses as a full disk does
        (``Publisher.send``).

        >>> outbox = Outbox.in_memory("database or disk is full")
        >>> outbox.put([("t", bytes(MEMORY_BYTES // 2))], 0.0)
        >>> outbox.put([("t", bytes(MEMORY_BYTES // 2))], 0.0)
        Traceback (most recent call last):
        sqlite3.OperationalError: database or disk is full
        >>> outbox.rows()[0][0], outbox.path, outbox.unwritable
        ('t', None, 'database or disk is full')
        """
        outbox = cls(None)
        outbox.unwritable = why
        return outbox

    def _check(self) -> None:
        """NotAnOutbox where a page is damaged, or a table of ``SCHEMA``'s that the file has lacks a column."""
        problem = self._db.execute("PRAGMA quick_check(1)").fetchone()[0]
        if problem != "ok":
            raise NotAnOutbox(f"damaged: {' '.join(problem.split())}")
        if (other := of_another_making(self._db)) is not None:
            raise NotAnOutbox(other, "foreign" if other.startswith(ANOTHER_APPLICATIONS) else "damaged")

    def put(self, items: list[tuple[str, bytes]], now: float, mono: float | None = None, boot: str = BOOT_ID) -> None:
        """Store messages atomically, in order (evidence before its incident), and in the same transaction the open
        incidents they change (``open_change``): a full disk takes both or neither. (A file of open incidents beside
        the outbox, written after it, fell behind it on a full disk: a box killed then ended at its next start none
        of the incidents the outbox had sent, or ended one with the seq of an update the gateway had.) Each is kept
        with when it is queued (``waited``), and so is an incident it leaves open: ``now`` the box's time
        (``Publisher.now``), ``mono`` the monotonic clock, of boot ``boot`` (this one, but for the end of an incident
        an earlier start left open: edge/ledger.py); None where not known."""
        boot_of = None if mono is None else boot
        self.restore([(t, p, now, boot_of, mono) for t, p in items],
                     opened=[(*change, now, boot_of, mono) for t, p in items
                             if (change := open_change(t, p)) is not None])

    def restore(self, rows: list[Queued], refused: list[tuple[str, bytes, float, str]] = (),
                opened: list[OpenIncident | tuple[str, bytes | None]] = (),
                bases: dict[str, float] | None = None) -> None:
        """Store messages, each with when it was first queued (``put``'s; an earlier outbox's time, read back by
        edge/salvage.py, its boot and monotonic clock None), atomically, in order; ``refused`` ones (``refused_rows``)
        beside those it holds; ``opened``, (incident id, its last message, or None where it ended, and when that was
        queued, None where not given), into the open incidents; and the time each boot knew (``bases``)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO outbox(topic, payload, created, boot, mono) VALUES (?, ?, ?, ?, ?)",
                                     rows)
                self._db.executemany("INSERT INTO outbox_refused(topic, payload, created, reason) VALUES (?, ?, ?, ?)",
                                     refused)
                self._db.executemany("INSERT OR REPLACE INTO boot_base(boot, base) VALUES (?, ?)",
                                     (bases or {}).items())
                for incident_id, message, *queued in opened:
                    if message is None:
                        self._db.execute("DELETE FROM open_incident WHERE incident_id = ?", (incident_id,))
                    else:
                        self._db.execute("INSERT OR REPLACE INTO open_incident(incident_id, message, created, boot, "
                                         "mono) VALUES (?, ?, ?, ?, ?)", (incident_id, message, *(queued or [None] * 3)))
                self._db.execute("COMMIT")
            finally:  # a full disk: nothing of it stays, and the outbox takes the next put
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")

    def rows(self) -> list[Queued]:
        """Every message waiting, with when it was queued, in order (as ``restore`` takes them)."""
        with self._lock:
            return self._db.execute("SELECT topic, payload, created, boot, mono FROM outbox ORDER BY id").fetchall()

    def refused_rows(self) -> list[tuple[str, bytes, float, str]]:
        """Every message the broker refused, with when it was queued and why, in order (as ``restore`` takes them)."""
        with self._lock:
            return self._db.execute("SELECT topic, payload, created, reason FROM outbox_refused ORDER BY id").fetchall()

    def open_incidents(self) -> list[OpenIncident]:
        """The incidents not yet ended, each with the last message of it the outbox took (as re-stamped: ``rewrite``)
        and when that was queued, the least recently changed first (as ``restore`` takes them): those a box stopped
        short left open, which its next start ends (edge/ledger.py)."""
        with self._lock:
            return self._db.execute("SELECT incident_id, message, created, boot, mono FROM open_incident "
                                    "ORDER BY rowid").fetchall()

    def keep_base(self, boot: str, base: float, told: bool = False) -> None:
        """What boot ``boot`` learnt of its time: the time less its monotonic clock (``GatewayClock.base``, ``told``,
        or the wall clock's once set right: ``set_right``). A later boot re-stamps what that one queued by it
        (``restamped``): the clock's error of each boot is its own (an RTC three hours fast at each boot, or a garbage
        one's year). Told by a gateway, a later start of the box in the same boot takes it up (``boot``)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR REPLACE INTO boot_base(boot, base) VALUES (?, ?)", (boot, base))
                if told:
                    self._db.execute("UPDATE boot_start SET told = ? WHERE boot = ?", (base, boot))
                self._db.execute("COMMIT")
            finally:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")

    def boot(self, boot: str, wall: float) -> tuple[float, float | None]:
        """What boot ``boot`` of the machine (the kernel's id: ``BOOT_ID``) learnt across the box's starts in it: the
        wall clock less the monotonic clock as its first start read it (``wall``, this start's, where it is the first),
        which ``set_right`` measures a step of the wall clock from, and the gateways' time less the monotonic clock as
        their acknowledgements last told it (``keep_base``; None where none came in this boot). (Each start's own, a box
        restarted by a crash or an upgrade learnt nothing of its boot: NTP stepping the clock before it started, or a
        gateway heard only before it.) Another boot's are forgotten: its monotonic clock ended with it."""
        with self._lock:
            with contextlib.suppress(sqlite3.Error):  # a full disk: this start's own, as where the id is its own
                self._db.execute("DELETE FROM boot_start WHERE boot != ?", (boot,))
                self._db.execute("INSERT OR IGNORE INTO boot_start(boot, wall) VALUES (?, ?)", (boot, wall))
            row = self._db.execute("SELECT wall, told FROM boot_start WHERE boot = ?", (boot,)).fetchone()
        return (wall, None) if row is None else row

    def bases(self) -> dict[str, float]:
        """Each boot's known time (``keep_base``), by its id."""
        with self._lock:
            return dict(self._db.execute("SELECT boot, base FROM boot_base").fetchall())

    def after(self, last_id: int, limit: int) -> list[tuple[int, str, bytes]]:
        with self._lock:
            return self._db.execute("SELECT id, topic, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                                    (last_id, limit)).fetchall()

    def get(self, row_ids: list[int]) -> list[tuple[int, str, bytes]]:
        with self._lock:
            marks = ",".join("?" * len(row_ids))
            return self._db.execute(f"SELECT id, topic, payload FROM outbox WHERE id IN ({marks}) ORDER BY id",
                                    row_ids).fetchall()

    def queued(self, row_id: int) -> tuple[float, str | None, float | None] | None:
        """When a message was queued: the box's time, its boot and its monotonic clock (``waited``); None where it
        left the outbox."""
        with self._lock:
            return self._db.execute("SELECT created, boot, mono FROM outbox WHERE id = ?", (row_id,)).fetchone()

    def rewrite(self, row_id: int, payload: bytes, created: float | None = None) -> None:
        """The message re-stamped (``restamped``): what is sent from now on, and the box's time it was queued at on
        the clock of its new times (``created``; None: kept); in the same write, its incident's open record where that
        is still this message (a later one of it is re-stamped as it is sent): an incident a box killed left open was
        ended from its first times, on the clock a gateway had refused."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                old = self._db.execute("SELECT topic, payload FROM outbox WHERE id = ?", (row_id,)).fetchone()
                self._db.execute("UPDATE outbox SET payload = ?, created = coalesce(?, created) WHERE id = ?",
                                 (payload, created, row_id))
                if old is not None and (change := open_change(*old)) is not None:
                    self._db.execute("UPDATE open_incident SET message = ?, created = coalesce(?, created) "
                                     "WHERE incident_id = ? AND message = ?", (payload, created, change[0], old[1]))
                self._db.execute("COMMIT")
            finally:  # a full disk: neither changed, re-stamped at a later send
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")

    def confirm(self, row_ids: list[int]) -> None:
        """A gateway committed these: they leave the outbox."""
        with self._lock:
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in row_ids])

    def refuse(self, row_id: int, reason: str) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR REPLACE INTO outbox_refused SELECT id, topic, payload, created, ? "
                             "FROM outbox WHERE id = ?", (reason, row_id))
            self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
            self._db.execute("COMMIT")

    def pending(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM outbox").fetchone()[0]

    def oldest(self) -> tuple[float, str | None, float | None] | None:
        """When the oldest message still waiting for a gateway (the first queued) was queued: the box's time, its boot
        and its monotonic clock (``waited``); None where none waits."""
        with self._lock:
            return self._db.execute("SELECT created, boot, mono FROM outbox ORDER BY id LIMIT 1").fetchone()

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass
class Sent:
    """A message out and not yet confirmed: its digest, how often it went, when to send it again."""
    digest: str
    sends: int
    due: float  # time.monotonic()
    unrouted: int = 0  # of those sends, how many the broker gave to no subscriber (PUBACK 0x10)

    def routed_sends(self) -> int:
        """Sends a gateway could have received: they alone lengthen the wait for its confirmation."""
        return max(1, self.sends - self.unrouted)


class Publisher:
    """Sends the outbox to the broker with QoS 1 and deletes what gateways confirm; last-will
    ``offline`` on the box's status topic.

    Only the sender thread touches the in-flight and unconfirmed tables: paho's callbacks just
    hand their news over through a queue. (Taking a lock inside ``on_publish`` while the sender
    holds it around ``publish()`` deadlocks with paho's own mutexes under load.)
    """

    def __init__(self, box: str, broker: Broker, outbox: Outbox, window: int = 64):
        self.box, self.outbox, self.window = box, outbox, window
        self._status_topic = wire.status_topic(box)
        self._ack_topic = wire.ack_topic(box)
        # the client id is the box id, which the deploy broker's ACL makes the user name too
        self._client = make_client(box, broker.username, broker.password, broker.tls_ca)
        # the last will is set before each try to connect, each connection's own (``_on_pre_connect``)
        self._link = 0
        self._client.on_pre_connect = self._on_pre_connect
        self._client.max_inflight_messages_set(window)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._broker = broker
        self._news: queue.SimpleQueue = queue.SimpleQueue()  # ("ack", mid, reason) / ("confirm", payload, None)
        self._inflight: dict[int, int] = {}  # mid -> outbox row id, until the broker's PUBACK; sender thread only
        self._unconfirmed: dict[int, Sent] = {}  # row id -> Sent, until a gateway confirms it
        self._by_digest: dict[str, list[int]] = {}
        self._confirmed: list[int] = []  # rows gateways confirmed that the outbox could not delete yet (disk full)
        self._last_id = 0  # the newest row sent once
        self._held: list[int] = []  # incidents stamped on the boot clock, and those after them, until the time is known
        self._next_resend_check = 0.0  # time.monotonic() of the next look for what is due again
        self._sender_error: str | None = None  # why the sender could not use the outbox last (None: it could)
        self._round_lock = threading.Lock()  # held by the sender thread through a round, and by ``move_to``
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self.connected = threading.Event()
        self.status: dict = {}
        self.resent = self.dead_letters = self.refused = self.disconnects = 0
        self.connections = Connections()  # their lives: another client taking them over (two boxes under one id)
        self.unrouted = 0  # PUBACKs "No matching subscribers": sends no gateway could receive
        self._listeners: dict[str, Callable[[bytes], None]] = {}  # topic -> handler(payload), e.g. the box's suppressions
        # batches the outbox could not take yet, in order, each with when it was queued where not now (``send``)
        self._unwritten: deque[tuple[list[tuple[str, bytes]], QueuedAt | None]] = deque()
        self._unwritten_lock = threading.Lock()
        self.write_error: str | None = None  # why the outbox cannot be written now (None: it can)
        self.unwritten_dropped = 0  # messages given up past MAX_UNWRITTEN
        # written by the sender thread, read by the analyser (gateway_offset)
        kept = None if outbox.path is None else known_time(known_time_file(outbox.path))
        self.clock = GatewayClock(floor=clock_floor(kept))
        self._kept_known = float("-inf")  # the gateways' time last kept beside the outbox (``_keep_known``)
        # the wall clock as this boot's first start read it (``set_right``), and what a gateway told this boot
        self._wall_started, told = outbox.boot(BOOT_ID, time.time() - time.monotonic())
        if told is not None:
            self.clock.resume(told, time.monotonic(), time.time())
        self._kept_base: float | None = told  # this boot's time less the monotonic clock last kept (``_keep_base``)
        self._kept_told = told is not None  # ... and that a gateway told it
        self._began = time.monotonic()  # this start: what the outbox held before waited at least since (``waited``)

    def listen(self, topic: str, handler: Callable[[bytes], None]) -> None:
        """Call ``handler(payload)`` (in paho's thread: hand over, never block) for each message on
        ``topic``, subscribed at every connection; call before ``start``."""
        self._listeners[topic] = handler

    def start(self) -> None:
        if self.clock.plainly_wrong(wall := time.time()):
            then = ("carries the gateways' time, as an earlier start in this boot of the machine learnt it"
                    if self.clock.base is not None else
                    "waits in the outbox until a gateway's acknowledgement tells it the time, then carries the "
                    "gateways' time")
            log.warning("box %s: its wall clock reads %s, %s: it is wrong (a dead clock battery, no time sync, or set "
                        "by hand). What it makes %s", self.box, wire.city_iso(wall), self._wrong_by(wall), then)
        self._client.connect_async(self._broker.host, self._broker.port, keepalive=self._broker.keepalive_s)
        self._client.loop_start()
        self._thread.start()

    def _wrong_by(self, wall: float) -> str:
        """Why the wall clock reading ``wall`` is wrong (``GatewayClock.plainly_wrong``), in words, for the start's
        line: its times in Beijing time, as the line's own ``t`` and every other time an installer reads."""
        floor, ceiling = self.clock.floor, self.clock.ceiling
        since = (f"this release was written ({wire.city_iso(CLOCK_FLOOR)[:10]})" if floor == CLOCK_FLOOR else
                 f"{wire.city_iso(floor)}, {wire.MAX_CLOCK_SKEW_S:.0f} s before the gateways' time it last knew")
        if wall < floor:
            return f"before {since}"
        if ceiling == wire.LATEST:
            return f"past {wire.city_iso(ceiling)}, the wire's last time"
        return f"past {wire.city_iso(ceiling)}, {CLOCK_SPAN_S / 86400 / 365.25:.0f} years after {since}"

    def send(self, items: list[tuple[str, bytes]], queued: QueuedAt | None = None) -> None:
        """Queue messages durably; they go out as soon as the broker is reachable. Where the outbox cannot be
        written (its disk full), they wait in memory, in order, behind any that wait already, and are written
        at the next send or ``write_unwritten``: a full disk had lost each incident made while it lasted. ``queued``:
        the box's time, boot and monotonic clock they are kept as queued at (``Outbox.put``), where not this boot's
        now: the end of an incident an earlier start left open is on that start's clock (edge/ledger.py)."""
        with self._unwritten_lock:
            self._unwritten.append((items, queued))
            held = self._unwritten_count()
            while held > MAX_UNWRITTEN and len(self._unwritten) > 1:  # the oldest go first, counted
                dropped, _ = self._unwritten.popleft()
                held -= len(dropped)
                self.unwritten_dropped += len(dropped)
                log.error("outbox unwritable for too long: %d message(s) given up", len(dropped))
        self.write_unwritten()

    def _unwritten_count(self) -> int:
        """Messages waiting in memory (``send``)."""
        return sum(len(items) for items, _ in self._unwritten)

    def write_unwritten(self) -> None:
        """Write what waits in memory into the outbox, oldest first, as far as it can take it."""
        with self._unwritten_lock:
            while self._unwritten:
                items, queued = self._unwritten[0]
                try:
                    if queued is None:
                        self.outbox.put(items, self.now(), time.monotonic())
                    else:
                        created, boot, mono = queued
                        self.outbox.put(items, created, mono, boot)
                except sqlite3.Error as exc:  # disk full, read-only, an I/O error: the messages wait
                    if self.write_error is None:
                        log.error("outbox cannot be written (%s): %d message(s) wait in memory", exc,
                                  self._unwritten_count())
                    self.write_error = str(exc)
                    return
                self._unwritten.popleft()
            if self.write_error is not None:
                log.info("outbox written again")
                self.write_error = None
        self._wake.set()

    def move_to(self, outbox: Outbox) -> int:
        """What the outbox in memory holds (its disk was full at start) written into ``outbox``, its file, after what
        that holds, and sent from it from now on, as after a restart: what was sent and not yet confirmed is sent
        again (a gateway takes it once). What the broker refused meanwhile is kept beside what the file's refused
        holds, with its reason (it was lost with the memory), and the incidents it holds open beside those the file
        holds (a box stopped short left them open: edge/outboxfile.py ``keep_outbox`` ends them). SQLite's error where
        ``outbox`` cannot take it all: the memory keeps it. Returns how many messages it moved to be sent."""
        with self._round_lock, self._unwritten_lock:
            rows = self.outbox.rows()
            outbox.restore(rows, self.outbox.refused_rows(), self.outbox.open_incidents(), self.outbox.bases())
            self.outbox.close()
            self.outbox = outbox
            # other ids in the file: the sender starts again, and PUBACKs still to come are of no row (ids begin at 1)
            self._inflight = dict.fromkeys(self._inflight, 0)
            self._unconfirmed, self._by_digest, self._confirmed, self._last_id = {}, {}, [], 0
            self._held, self._kept_known, self._kept_base, self._kept_told = [], float("-inf"), None, False
            self._wall_started = outbox.boot(BOOT_ID, self._wall_started)[0]  # the file's where it knew this boot
        self.write_unwritten()
        return len(rows)

    def delivery(self, now: float) -> dict:
        """Where the outbox stands, and the box's clock against the gateways', for the heartbeat and metrics (``now``:
        the wall clock). An outbox kept in memory counts as unwritten, and why its file cannot be written is its write
        error. How long its oldest message has waited is read on the clock it was queued by (``waited``): where that
        cannot be known, ``outbox_oldest_known`` is false and ``outbox_oldest_s`` how long at least."""
        mono = time.monotonic()
        first = self.outbox.oldest()
        oldest_s, known = (0.0, True) if first is None else waited(
            *first, now=self.clock.true_time(mono, now), mono_now=mono, since_start=mono - self._began,
            bases=self.outbox.bases() if first[1] != BOOT_ID else None)
        measured = self.clock.measured(mono, time.time())
        with self._unwritten_lock:
            unwritten = self._unwritten_count()
        pending = self.outbox.pending()
        return {"outbox_pending": pending, "outbox_unwritten": unwritten + (pending if self.outbox.path is None else 0),
                "outbox_write_error": self.write_error or self.outbox.unwritable,
                "outbox_unwritten_dropped": self.unwritten_dropped,
                "outbox_unconfirmed": len(self._unconfirmed), "outbox_held": len(self._held),
                "outbox_oldest_s": round(oldest_s, 1), "outbox_oldest_known": known,
                "outbox_resent": self.resent, "outbox_unrouted": self.unrouted, "outbox_refused": self.refused,
                "gateway_dead_letters": self.dead_letters, "broker_disconnects": self.disconnects,
                "broker_twin": twin_words(self.box) if self.connections.suspected(mono) else None,
                "clock_offset_s": None if measured is None else round(measured, 1),
                "clock_corrected": self.clock.corrected}

    def publish_status(self, status: dict) -> None:
        self.status = status
        if self.connected.is_set():
            # QoS 0: a heartbeat is replaced by the next one, and every QoS 1 ack belongs to the outbox
            self._client.publish(self._status_topic, json.dumps(self._linked(status)), qos=0, retain=True)

    def _linked(self, status: dict) -> dict:
        """``status`` as sent on the connection now held: with its ``link``, which a gateway orders it by against
        that start's last wills (``_last_word``)."""
        return {**status, "link": self._link}

    def _last_word(self) -> dict:
        """The box's ``offline`` on the connection now held, as its last will or its stop: after every heartbeat sent
        on it, before any of the next connection's (``link``)."""
        return {"box": self.box, "state": "offline", "boot": BOOT, "link": self._link}

    def stop(self, timeout: float = 5.0) -> None:
        """Give the gateways up to ``timeout`` to confirm what is pending; the rest stays for next time."""
        deadline = time.monotonic() + timeout
        while self.outbox.pending() and self.connected.is_set() and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=2)
        if self.connected.is_set():
            self._client.publish(self._status_topic, json.dumps(self._last_word()), qos=0,
                                 retain=True).wait_for_publish(1)
        self._client.disconnect()
        self._client.loop_stop()

    # paho's network thread: hand over, never block
    def _on_pre_connect(self, client, userdata) -> None:
        # each connection's own will: the broker says it once it notices the connection gone (a keepalive later, at
        # the next connection, or hours later through a gateway that was down), and its ``link`` orders it after that
        # connection's heartbeats and before the next one's (gateway/boxes.py ``_upsert``)
        self._link += 1
        client.will_set(self._status_topic, json.dumps(self._last_word()), qos=1, retain=True)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            client.on_connect_fail.refused(client, reason_code, self._broker.username)
            self.connections.refused()
            return
        log.info("connected to broker %s:%s", self._broker.host, self._broker.port)
        if self.connections.made(time.monotonic(), client.on_connect_fail.tries):
            log.error(twin_words(self.box))
        client.on_connect_fail.reached()
        client.subscribe([(self._ack_topic, 1)] + [(topic, 1) for topic in self._listeners])
        self.connected.set()
        client.publish(self._status_topic, json.dumps(self._linked(self.status) if self.status else
                                                      {"box": self.box, "state": "online"}), qos=0, retain=True)
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        self.disconnects += 1
        # Mosquitto closes a connection another client takes over with no word (paho: "Unspecified error"), or in
        # releases that send one, "Session taken over"; a keepalive unanswered is the network's, the broker's
        # DISCONNECT (shutting down) its own
        self.connections.lost(time.monotonic(), reason_code == "Session taken over" or (
            reason_code == "Unspecified error" and not flags.is_disconnect_packet_from_server))
        let_in = client.on_connect_fail.lost(client, self._broker.tls_ca is not None)  # else said there
        if self._stop.is_set() and not reason_code.is_failure:  # the box's own goodbye as it stops: nothing to act on
            log.info("disconnected from broker (the box is stopping)")
        elif let_in:
            log.warning("disconnected from broker: %s", disconnected(reason_code, flags))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._news.put(("ack", mid, reason_code))
        self._wake.set()

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic == self._ack_topic:
            self._news.put(("confirm", msg.payload, None))
            self._wake.set()
        elif msg.topic in self._listeners:
            try:
                self._listeners[msg.topic](msg.payload)
            except Exception:  # a listener's bug must not take paho's thread down
                log.exception("handler of %s failed", msg.topic)

    # the sender thread
    def _forget(self, row_id: int) -> None:
        sent = self._unconfirmed.pop(row_id, None)
        if sent is not None:
            rows = self._by_digest.get(sent.digest, [])
            if row_id in rows:
                rows.remove(row_id)
            if not rows:
                self._by_digest.pop(sent.digest, None)

    def _ack(self, mid: int, reason_code) -> None:
        """The broker's PUBACK: refused, or taken (the wait for a gateway starts now)."""
        row_id = self._inflight.pop(mid, None)
        if row_id is None:
            # none of the outbox's: paho reports the heartbeat's QoS 0 send too. (A PUBACK comes no earlier than the
            # mid it answers is in ``_inflight``: both are the sender thread's, and its news are read between rounds.)
            # Kept as a PUBACK come early, each heartbeat's stayed for good, and the outbox message that took its id
            # once the ids went round (a week) counted as taken at once, and the broker's answer to it was lost.
            return
        sent = self._unconfirmed.get(row_id)
        if sent is None:  # a gateway confirmed it before the broker's PUBACK came
            return
        if reason_code is not None and reason_code.is_failure:
            log.error("broker refused outbox message %s: %s", row_id, reason_code)
            self.outbox.refuse(row_id, str(reason_code))
            self._forget(row_id)
            self.refused += 1
        elif reason_code == NO_MATCHING_SUBSCRIBERS:
            # taken and dropped: no gateway subscribes now (e.g. the broker restarted and forgot the
            # gateways' shared subscriptions); send it again as soon as one is likely back
            sent.unrouted += 1
            self.unrouted += 1
            if sent.unrouted == 1:
                log.warning("broker has no subscriber for outbox message %s (no gateway subscribed); "
                            "sending it again shortly", row_id)
            sent.due = time.monotonic() + resend_unrouted_after(sent.unrouted)
        else:
            sent.due = time.monotonic() + resend_after(sent.routed_sends(), self._broker.resend_after_s)

    def _confirm(self, payload: bytes) -> None:
        """A gateway's acknowledgement: what it names leaves the outbox, and its time tells the gateways' clock."""
        try:
            ack = wire.checked_ack(payload)
        except wire.WireError as exc:
            log.warning("acknowledgement not understood, ignored: %s", exc)
            return
        self._gateway_time(ack["at"])
        done = []
        for digest, outcome in ack["messages"].items():
            for row_id in self._by_digest.get(digest, [])[:]:
                if outcome == "dead_letter":
                    log.warning("gateway set outbox message %s aside as a dead letter", row_id)
                    self.dead_letters += 1
                done.append(row_id)
                self._forget(row_id)
        self._confirmed += done

    def _delete_confirmed(self) -> None:
        """What gateways confirmed leaves the outbox; where it cannot be deleted now (a full disk: a delete is a
        write), it is tried again each round, and sent again only after a restart (harmless: the gateway is
        idempotent). It raised into the sender thread, which ended: nothing was sent again until a restart."""
        if not self._confirmed:
            return
        try:
            self.outbox.confirm(self._confirmed)
        except sqlite3.Error as exc:
            self._outbox_failed(exc)
            return
        self._confirmed = []

    def _outbox_failed(self, exc: sqlite3.Error) -> None:
        """Logged once while the same: the sender goes on, and what it could not do it does in a later round."""
        if str(exc) != self._sender_error:
            log.error("outbox cannot be used (%s): what gateways confirmed stays in it, and what waits in it is sent "
                      "once it can be read again", exc)
        self._sender_error = str(exc)

    def _gateway_time(self, at: str) -> None:
        try:
            gateway_at = wire.parse_time(at)
        except wire.WireError:  # the schema leaves ``at`` free: the messages still count
            return
        mono, wall = time.monotonic(), time.time()
        changed = self.clock.observe(gateway_at, mono, wall)
        self._keep_known(mono)
        self._keep_base(self.clock.base, told=True)
        if not changed:
            return
        offset = self.clock.measured(mono, wall)
        if self.clock.corrected:
            way = "ahead of" if offset < 0 else "behind"
            log.warning("the box's wall clock is %.0f s %s the gateways': its messages carry the gateways' time "
                        "(check its time sync)", abs(offset), way)
        else:
            log.info("the box's wall clock agrees with the gateways' again (%.1f s): its messages carry it", offset)

    def _keep_known(self, mono: float) -> None:
        """The gateways' time now kept beside the outbox, at most every ``KNOWN_TIME_EVERY_S``: a wall clock that reads
        before it at the next start is wrong (``clock_floor``). Not kept now (a full disk; an outbox in memory): at
        a later acknowledgement."""
        known = self.clock.known(mono)
        if known is None or self.outbox.path is None or abs(known - self._kept_known) < KNOWN_TIME_EVERY_S:
            return
        try:
            keep_known_time(known_time_file(self.outbox.path), known)
        except OSError:
            return
        self._kept_known = known

    def _keep_base(self, base: float | None, told: bool = False) -> None:
        """This boot's time less the monotonic clock kept in the outbox (``Outbox.keep_base``; ``told``: by a gateway),
        where it moved since it was last; not kept now (a full disk): at a later acknowledgement or heartbeat."""
        if base is None or (self._kept_base is not None and abs(base - self._kept_base) < BASE_KEPT_WITHIN_S
                            and (self._kept_told or not told)):
            return
        try:
            self.outbox.keep_base(BOOT_ID, base, told)
        except sqlite3.Error:
            return
        self._kept_base, self._kept_told = base, self._kept_told or told

    def watch_wall(self) -> None:
        """At each heartbeat: where no gateway told the time yet, the wall clock set right since this boot's first
        start of the box (NTP set an RTC three hours fast right, maybe while the box was down or before it looked)
        tells this boot's time (``set_right``), kept for a later boot to re-stamp what this one queued on the wrong
        clock."""
        if self.clock.base is None:
            self._keep_base(set_right(self._wall_started, time.time(), time.monotonic(), self.clock))

    def gateway_offset(self) -> float:
        """What to add to the wall clock now for the time on the wire (``GatewayClock.offset``)."""
        return self.clock.offset(time.monotonic(), time.time())

    def now(self) -> float:
        """The time on the wire now: the wall clock's moved by ``gateway_offset`` (the gateways' where the box puts
        theirs on what it makes, its boot clock while its wall clock is plainly wrong and no gateway told it the
        time)."""
        return time.time() + self.gateway_offset()

    def _restamp(self, row_id: int, topic: str, payload: bytes) -> bytes:
        """``payload``, or where it was stamped on this boot's clock (``from_boot_clock``), or a gateway holds it for
        times ahead of its clock (made before the box knew the gateways' clock, or in a boot before: ``restamped``),
        re-stamped in the outbox with the gateways' time, or an earlier boot's boot clock."""
        if self.clock.base is None or not topic.endswith("/incident"):
            return payload
        queued, mark = self.outbox.queued(row_id), boot_clock_of(payload)
        of_another = mark not in (None, BOOT_ID) or (queued is not None and queued[1] != BOOT_ID)
        bases = self.outbox.bases() if of_another else {}  # read only for an earlier boot's message
        new, created = from_known_boot_clock(payload, self.clock, time.monotonic(), BOOT_ID, bases), None
        if new is None and queued is not None:
            new, created = restamped(payload, queued, self.clock, time.monotonic(), BOOT_ID, bases) or (None, None)
        if new is None:
            return payload
        try:
            self.outbox.rewrite(row_id, new, created)
        except sqlite3.Error as exc:  # a full disk: sent as it is (a gateway holds it), re-stamped at a later send
            log.warning("outbox message %s not re-stamped: %s", row_id, exc)
            return payload
        if boot_clock_of(new) is not None:
            log.warning("outbox message %s, of an earlier boot, is ahead of the gateways' clock: that boot's clock was "
                        "wrong by what no one can tell now, so it goes on its boot clock, as of a time unknown", row_id)
        else:
            log.info("outbox message %s re-stamped with the gateways' time", row_id)
        return new

    def _holds(self, row_id: int, topic: str, payload: bytes) -> bool:
        """Whether a new row waits for the time: while no gateway told it, an incident stamped on the boot clock;
        and every incident after one, until those are sent (a box's incidents reach the gateways in the order it
        made them)."""
        if not topic.endswith("/incident"):
            return False
        if self._held:
            return True
        if self.clock.base is not None or boot_clock_of(payload) is None:
            return False
        log.warning("outbox message %s and the incidents after it wait for a gateway's acknowledgement to tell the "
                    "time: they were stamped on the box's boot clock (its wall clock is wrong)", row_id)
        return True

    def _release(self, room: int) -> int:
        """The incidents held for the time (``_holds``), oldest first, as ``room`` allows, once a gateway told it;
        returns how many went."""
        went = 0
        for row_id, topic, payload in self.outbox.get(self._held[:room]):
            if not self._publish(row_id, topic, payload):
                break
            went = self._held.index(row_id) + 1
            if not self.connected.is_set():
                break
        self._held = self._held[went:]
        if went and not self._held:
            log.info("the incidents made before the box knew the time are sent, with the gateways' time")
        return went

    def _drain_news(self) -> None:
        while True:
            try:
                kind, a, b = self._news.get_nowait()
            except queue.Empty:
                return
            if kind == "ack":
                self._ack(a, b)
            else:
                self._confirm(a)

    def _publish(self, row_id: int, topic: str, payload: bytes) -> bool:
        """Hand a message to paho; False if paho did not take it. (What it takes while the connection
        is down, NO_CONN, it keeps and sends on reconnect, so that is tracked like the rest.)"""
        sent, new = self._unconfirmed.get(row_id), self._restamp(row_id, topic, payload)
        if sent is not None and new is not payload:  # re-stamped: confirmed under its new digest from now on
            self._forget(row_id)
            sent = self._unconfirmed[row_id] = replace(sent, digest=wire.message_digest(topic, new))
            self._by_digest.setdefault(sent.digest, []).append(row_id)
        info = self._client.publish(topic, new, qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            return False
        if sent is None:
            sent = self._unconfirmed[row_id] = Sent(wire.message_digest(topic, new), 0, 0.0)
            self._by_digest.setdefault(sent.digest, []).append(row_id)
        sent.sends += 1
        sent.due = time.monotonic() + resend_after(sent.routed_sends(), self._broker.resend_after_s)
        self._inflight[info.mid] = row_id
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                with self._round_lock:
                    self._round()
            except sqlite3.Error as exc:  # an I/O error, a damaged page: tried again in the next round
                self._outbox_failed(exc)
                continue
            if self._sender_error is not None and not self._confirmed:
                log.info("outbox used again")
                self._sender_error = None

    def _round(self) -> None:
        """Take the broker's and gateways' news, then send what is due again and what is new, as the window allows."""
        self._drain_news()
        self._delete_confirmed()
        if not self.connected.is_set():
            return
        room = self.window - len(self._inflight)
        if self._held and self.clock.base is not None and room > 0:
            room -= self._release(room)
        now = time.monotonic()
        if room > 0 and now >= self._next_resend_check:  # what no gateway confirmed in time, oldest first
            self._next_resend_check = now + 1.0
            out = set(self._inflight.values())
            due = [i for i, s in self._unconfirmed.items() if s.due <= now and i not in out][:room]
            for row_id, topic, payload in self.outbox.get(due) if due else []:
                if not self._publish(row_id, topic, payload):
                    break
                self.resent += 1
                room -= 1
                if not self.connected.is_set():
                    break
        room = min(room, self._broker.max_unconfirmed - len(self._unconfirmed))
        if room <= 0:
            return
        for row_id, topic, payload in self.outbox.after(self._last_id, room):
            if self._holds(row_id, topic, payload):
                self._held.append(row_id)
            elif not self._publish(row_id, topic, payload):
                break
            self._last_id = row_id
            if not self.connected.is_set():
                break
