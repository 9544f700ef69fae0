"""The edge boxes as the gateway hears them: each box's heartbeat on ``xl/v1/{box}/status`` checked, the latest kept
(one row per box, ``schema.boxes``; this module is its one writer), what the boxes page shows of it, and an admin's
removal of a box (``remove``: a retired one, listed as silent until then; a status message from it lists it again).
An operator sees the boxes with a camera in its grid subtree, and of them those cameras alone (``listed``); a box
whose heartbeat names no camera's grid (a release older than the cameras' ``grid``) only an admin sees.

A box publishes its status every ``heartbeat_s`` (QoS 0, retained: edge/box.py ``status``), ``{"box": ...,
"state": "offline"}`` when it stops, and its broker the same as its last will (QoS 1) when its connection dies.
Their ``boot`` (the box's start), ``link`` (its connection to the broker in that start) and ``seq`` (the
heartbeat's number in the start) order them whatever order gateways write them in (``_upsert``).
A box speaks only for itself: the broker's ACL lets account ``{box}`` write ``xl/v1/{box}/status`` alone, and the
payload's ``box`` must be the topic's, as for incidents.

A refused heartbeat is not a dead letter. The dead letters keep what a box would otherwise send again and what
cases are made of; a heartbeat is replaced by the next one within ``heartbeat_s``, and a box whose heartbeats are
all wrong (an old or newer release, a bug) would add 8,640 rows a day to them. Each is counted
(``xl_gateway_heartbeats{outcome=REASON}``), and said at most once per box per ``REFUSAL_NOTE_S``: on the box's row,
so the page tells a box that is silent from one whose heartbeats are refused, and in the log, ``REFUSALS_SAID`` a
minute at most whatever the names (``RefusalLog``).

>>> beat = decode("box-1", b'{"box": "box-1", "state": "online", "at": "2026-01-01T00:00:00Z", "cameras": {}}')
>>> beat.heartbeat_s, beat.full
(10.0, True)
>>> decode("box-1", b'{"box": "box-2", "state": "online"}')
Traceback (most recent call last):
...
gateway.boxes.Refused: payload says box 'box-2' but came on xl/v1/box-1/status: a box speaks only for itself
"""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import Collection
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import and_, bindparam, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from gateway.ingestdb import Prepared
from gateway.metrics import HEARTBEATS
from gateway.schema import boxes
from gateway.storage import Store, database_now
from gateway.tally import MinuteTally
from gateway.workflow import Role
from xueliang import wire
from xueliang.characters import neutralised

log = logging.getLogger(__name__)

HEARTBEAT, HEARTBEAT_REFUSED = "heartbeat", "heartbeat_refused"  # ingest's outcomes (acknowledged: ``asks_time``)
SILENT_AFTER = 3  # heartbeat intervals without one: the box is silent
MAX_HEARTBEAT_BYTES = 262_144  # 36 cameras are 15 kB, a full list of 1,000 suppressions 90 kB more
MAX_CAMERAS = 1_000
MAX_FAULTS = 16
MAX_ZONE_GRIDS = 64  # a camera's zones' own grids, at most (a config's zones are few)
MAX_SUPPRESSIONS = 1_000  # as the suppressions' schema allows a box
BOXES_MAX = 10_000  # rows kept at most: a box not among them is refused once they are full (see ``Heartbeats``)
TWIN_SHOWN_S = 300.0  # two boxes under one id are shown this long after their starts were last heard in turn
REFUSAL_NOTE_S = 300.0  # a box's refused heartbeats are logged and noted on its row at most this often
NOTED_MAX = 1_000  # boxes whose last note is remembered (topics name them: the broker's ACL bounds them, a test
# broker does not)
# a client making up a box name for each message had each refusal said (the once per box never applies): 224 lines in
# 8 min of the soak (bench/soak.py), a flood's lines without end. Those past it a minute are counted in one line
REFUSALS_SAID = 10
TEXT_CHARS = 300
READERS = frozenset({Role.ADMIN, Role.OPERATOR})  # who sees the boxes (page and API), as the dead letters
REMOVERS = frozenset({Role.ADMIN})  # who removes a box from them (page and API): ``remove``


def _plain(text: str) -> str:
    """Free text from a box as any database and page take it: at most TEXT_CHARS characters, each control or invisible
    formatting character or lone surrogate as U+FFFD (PostgreSQL refuses NUL; neither driver encodes a surrogate)."""
    return neutralised(text[:TEXT_CHARS])


def _real_time(text: str) -> str:
    """A time as the wire writes it (``wire.checked_time``: with its zone, on the calendar), of any year: a box whose
    clock stands in 1970 (no battery) is the one to show. One with no zone was read as UTC: a box writing Beijing
    time so showed its clock 8 h off, not why."""
    wire.checked_time(text, any_year=True)
    return text


Ident = Annotated[str, Field(pattern=f"^{wire.IDENT.pattern}$")]
Grid = Annotated[str, Field(pattern=wire.GRID_PATTERN)]
Word = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Count = Annotated[int, Field(ge=0, le=10**15)]
Seconds = Annotated[float, Field(ge=0, le=1e10)]
Text = Annotated[str, AfterValidator(_plain)]


class Checked(BaseModel):
    """Strict types (``"5"`` or ``true`` is no count), finite numbers, fields this gateway does not read ignored (a
    newer box adds some: gateways are upgraded first, but a box must not go silent on the page for it)."""

    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False, frozen=True)


class CameraStatus(Checked):
    grid: Grid | None = Field(None, title="its grid, as its config names it (none from a box older than this)")
    zone_grids: list[Grid] = Field(default_factory=list, max_length=MAX_ZONE_GRIDS,
                                   title="its zones' own grids, where a zone names one other than the camera's")
    state: Word = Field(title="connecting, online, reconnecting or offline")
    faults: list[Word] = Field(default_factory=list, max_length=MAX_FAULTS, title="frozen, blocked, moved, ...")
    max_gap_s: Seconds = Field(0.0, title="longest wait between two analysed frames since the last heartbeat")
    analysed_fps: Annotated[float, Field(ge=0, le=1_000)] = 0.0
    reconnects: Count = 0
    last_error: Text | None = Field(None, title="why its reader last failed (a refused connection, a 401, ...)")
    last_error_at: Annotated[str, Field(max_length=40), AfterValidator(_real_time)] | None = Field(
        None, title="when, by the box's wall clock (kept once the camera is back)")


class SuppressionHeld(Checked):
    id: Annotated[int, Field(ge=1, le=2**31 - 1)]
    camera: Ident
    zone: Ident
    type: Word


class Heartbeat(Checked):
    """A box's status message as checked: a heartbeat (``cameras`` present), or its state alone (its last will,
    its stop, or its first word before it has a heartbeat)."""

    box: Ident
    state: Literal["online", "offline"]
    at: Annotated[str, Field(max_length=40), AfterValidator(_real_time)] | None = Field(
        None, title="when the box made it, by its wall clock")
    boot: Ident | None = Field(None, title="the box's start that made it (random at each start)")
    link: Annotated[int, Field(ge=1, le=2**63 - 1)] | None = Field(
        None, title="the box's connection to the broker it was sent on, in that start, from 1 (a last will's: the "
        "connection it ends)")
    seq: Annotated[int, Field(ge=1, le=2**63 - 1)] | None = Field(None, title="its number in that start, from 1")
    heartbeat_s: Annotated[float, Field(gt=0, le=3_600)] = wire.HEARTBEAT_S
    outbox_pending: Count = 0
    outbox_unconfirmed: Count = 0
    outbox_oldest_s: Seconds = 0.0
    outbox_oldest_known: bool = Field(True, title="false: the oldest was queued before the box's start, its clock "
                                      "plainly wrong then or now (1970), its age unknown: outbox_oldest_s is how long "
                                      "at least")
    outbox_unwritten: Count = 0
    outbox_write_error: Text | None = None
    outbox_held: Count = 0
    clock_offset_s: Annotated[float, Field(ge=-1e10, le=1e10)] | None = Field(
        None, title="the gateways' clock less the box's wall clock, from their acknowledgements")
    clock_corrected: bool = False
    cameras: dict[Ident, CameraStatus] | None = Field(None, max_length=MAX_CAMERAS)
    suppressions: list[SuppressionHeld] = Field(default_factory=list, max_length=MAX_SUPPRESSIONS)
    suppressed_events: Count = 0

    @property
    def full(self) -> bool:
        return self.cameras is not None

    def order(self) -> tuple[str, int | None, int] | None:
        """``(boot, link, seq)``: what orders the box's heartbeats without its wall clock (``link`` None from a box
        older than it); None from a box older than them (or one that sends ``boot`` without ``seq``)."""
        return (self.boot, self.link, self.seq) if self.boot is not None and self.seq is not None else None

    @property
    def asks_time(self) -> bool:
        """A heartbeat of a box that has heard no gateway's clock since it started (no ``clock_offset_s``): the gateway
        acknowledges it once recorded (ingest's ``Outcomes.asking``), and the acknowledgement's ``at`` tells the box the
        time. A box whose wall clock is wrong (a dead clock battery: 1970) holds its incidents until then
        (edge/publisher.py ``GatewayClock``), and one whose camera is down has no other message to be acknowledged.
        Other status messages are not: each box's heartbeat every 10 s, its last will, its stop.

        >>> Heartbeat(box="b", state="online", cameras={}).asks_time, Heartbeat(box="b", state="offline").asks_time
        (True, False)
        >>> Heartbeat(box="b", state="online", cameras={}, clock_offset_s=0.2).asks_time
        False
        """
        return self.full and self.state == "online" and self.clock_offset_s is None

    @property
    def last_word(self) -> bool:
        """A last will or a stop that says which connection it ends: after every heartbeat sent on it."""
        return not self.full and self.state == "offline" and self.boot is not None and self.link is not None

    def sent_at(self) -> float | None:
        return None if self.at is None else wire.checked_time(self.at, any_year=True)


class Refused(Exception):
    """A status message refused: ``box`` the topic's (the sender), ``kind`` the metric's label, the text why."""

    def __init__(self, box: str, kind: str, reason: str):
        super().__init__(reason)
        self.box, self.kind, self.reason = box, kind, reason


def _explain(exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    where = "/".join(str(p)[:64] for p in first["loc"]) or "(message)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg'][:200]}{more}"


def decode(box: str, payload: bytes) -> Heartbeat:
    """The status message ``payload`` that came on ``xl/v1/{box}/status``, checked; Refused saying why not."""
    if box in wire.RESERVED_BOX_IDS or not wire.IDENT.fullmatch(box):
        raise Refused(box[:64], "not_a_box", f"{wire.ROOT}/{box[:64]}/status is no box's status topic (a box id is "
                      "1..64 of A-Z a-z 0-9 . _ -, and not a level the gateway's notices use)")
    if len(payload) > MAX_HEARTBEAT_BYTES:
        raise Refused(box, "too_large", f"{len(payload)} bytes, more than {MAX_HEARTBEAT_BYTES}")
    try:
        message = wire.loads(payload)
    except wire.WireError as exc:
        raise Refused(box, "not_json", str(exc)) from None
    if not isinstance(message, dict):
        raise Refused(box, "invalid", "not a JSON object")
    try:
        beat = Heartbeat.model_validate(message)
    except ValidationError as exc:
        raise Refused(box, "invalid", _explain(exc)) from None
    if beat.box != box:
        raise Refused(box, "other_box", f"payload says box {beat.box!r} but came on {wire.status_topic(box)}: "
                      "a box speaks only for itself")
    return beat


_COLUMNS = ("state", "heard_at", "sent_at", "heartbeat", "boot", "link", "seq", "ended_link")
HEARTBEAT_ROW, LAST_WORD_ROW, STATE_ROW = "heartbeat", "last_word", "state"  # what a status message writes


def _upsert(dialect, kind: str):
    """A status message's row made, or changed where the message comes later in its box's order than what is stored.

    A start's messages are ordered by ``(link, seq)``, a last will or a stop (``LAST_WORD_ROW``) after every
    heartbeat of the connection it ends: gateways write them in any order (one wrote a heartbeat late, its ingest
    held back; the broker said a connection's will after the box had connected again, or kept it for a gateway that
    was down). A heartbeat (``HEARTBEAT_ROW``) replaces the stored one where it comes later, or is of another start
    (a new boot is the box started again), or either is of a box older than ``boot`` and ``seq`` (none: it replaces
    as before); it sets the box online unless a last word of its start ended its connection or a later one
    (``ended_link``: a heartbeat written after the will of its own connection is late, and a dead box showed
    online). A last word sets the box offline where the stored heartbeat is of its start and of no later connection,
    or of none (a box older than ``boot``); one of an earlier connection or start, said once the broker noticed it
    gone after the box had connected again or started again, is left (a running box showed offline until its next
    heartbeat). A message of the state alone (``STATE_ROW``: a box's first word, or a will or stop of a box older
    than ``link``) sets the state alone: an ``offline`` is left where the stored heartbeat is of another start."""
    values = {c: bindparam(c) for c in ("box", *_COLUMNS)}
    stmt = dialect(boxes).values(values)
    link = func.coalesce(boxes.c.link, 0)  # 0: a box older than links, whose every message has none
    if kind == HEARTBEAT_ROW:  # heard by the database's clock: gateways sharing it may not agree on the time
        stmt = dialect(boxes).values(values | {"heard_at": database_now()})
        new = stmt.excluded
        new_link, same = func.coalesce(new.link, 0), boxes.c.boot == new.boot
        later = or_(link < new_link, and_(link == new_link, func.coalesce(boxes.c.seq, 0) < new.seq))
        other = boxes.c.boot != new.boot  # NULL (not true) where either has none
        back = and_(other, boxes.c.prev_boot == new.boot)  # a start heard again after another's: two boxes
        return stmt.on_conflict_do_update(
            index_elements=[boxes.c.box],
            set_={**{c: getattr(new, c) for c in _COLUMNS},
                  "state": case((and_(same, boxes.c.ended_link >= new_link), "offline"), else_=new.state),
                  "ended_link": case((same, boxes.c.ended_link), else_=None),
                  "prev_boot": case((other, boxes.c.boot), else_=boxes.c.prev_boot),
                  "twin_at": case((back, database_now()), else_=boxes.c.twin_at),
                  "twin_boots": case((back, new.boot + " " + boxes.c.boot), else_=boxes.c.twin_boots)},
            where=or_(boxes.c.boot.is_(None), new.boot.is_(None), boxes.c.boot != new.boot, later)
        ).returning(boxes.c.twin_at, boxes.c.twin_boots, boxes.c.heard_at)
    if kind == LAST_WORD_ROW:  # typed: PostgreSQL names no type for a parameter in WHERE alone
        said, ends = bindparam("boot", type_=boxes.c.boot.type), bindparam("ended_link", type_=boxes.c.link.type)
        return stmt.on_conflict_do_update(
            index_elements=[boxes.c.box],
            set_={"state": bindparam("state"), "boot": said,
                  "ended_link": case((and_(boxes.c.boot == said, boxes.c.ended_link > ends), boxes.c.ended_link),
                                     else_=ends)},
            where=or_(boxes.c.boot.is_(None), and_(boxes.c.boot == said, link <= ends)))
    # the row made for a new box keeps no start, as it has no seq to go with it
    state = bindparam("state", type_=boxes.c.state.type)
    said = bindparam("said_boot", type_=boxes.c.boot.type)
    return stmt.on_conflict_do_update(
        index_elements=[boxes.c.box], set_={"state": state},
        where=or_(state != "offline", boxes.c.boot.is_(None), said.is_(None), boxes.c.boot == said))


_UPSERTS = {(name, kind): Prepared(_upsert(dialect, kind))  # (dialect, what the message writes)
            for name, dialect in (("sqlite", sqlite_insert), ("postgresql", pg_insert))
            for kind in (HEARTBEAT_ROW, LAST_WORD_ROW, STATE_ROW)}


_KNOWN = Prepared(select(boxes.c.box).where(boxes.c.box == bindparam("box")))
_HOW_MANY = Prepared(select(func.count()).select_from(boxes))


class RefusalLog(MinuteTally):
    """Which refused heartbeats are said: each box's at most once per ``REFUSAL_NOTE_S`` (``due``: on its row, and
    in the log), and of those ``REFUSALS_SAID`` a minute in the log at most, whatever the names; the rest are counted
    by kind and said in one line once the minute is over (``MinuteTally``: ``flush`` at the gateway's clock's rounds
    too, as the dead letters' count: ``ingest.DeadLetterLog``). ``what`` and ``counted`` say in that line what was
    counted and where else it shows, to ``logger``: ingest's cameras at (0, 0) are named so too (``named`` alone: said
    once a camera).

    >>> said = RefusalLog(said_max=1)
    >>> said.due("a", 0.0), said.due("a", 10.0), said.due("b", 10.0)
    (True, False, True)
    >>> said.named("a", 0.0), said.named("b", 10.0), said.counted()
    (True, False, 1)
    """

    def __init__(self, window_s: float = 60.0, said_max: int = REFUSALS_SAID, *,
                 what: str = "box(es) whose heartbeats were refused",
                 counted: str = "each refusal is counted in xl_gateway_heartbeats", logger: logging.Logger = log):
        super().__init__(self._say_counted, per_key=said_max, at_most=said_max, window_s=window_s)
        self.what, self.counted_as, self.log = what, counted, logger
        self._noted: dict[str, float] = {}  # box -> when its last refusal was said

    def due(self, box: str, now: float) -> bool:
        """Whether a refusal of ``box`` is to be said now (the first, or none said for REFUSAL_NOTE_S)."""
        with self._lock:
            if now - self._noted.get(box, float("-inf")) < REFUSAL_NOTE_S:
                return False
            self._noted[box] = now
            if len(self._noted) > NOTED_MAX:
                del self._noted[min(self._noted, key=self._noted.get)]
            return True

    def named(self, kind: str, now: float) -> bool:
        """Whether a refusal that is ``due`` is said by name in the log now; False: counted under ``kind``."""
        return self.take(kind, now) > 0

    def _say_counted(self, quiet: collections.Counter, seconds: float) -> None:
        kinds = ", ".join(f"{kind} {n}" for kind, n in quiet.most_common())
        self.log.warning("%d more %s in %.0f s, not named one by one (at most %d a minute are; %s): %s",
                         quiet.total(), self.what, seconds, self.at_most, self.counted_as, kinds)


class Heartbeats:
    """Ingest's part for status messages: ``checked`` needs no database, ``apply`` writes (one upsert per heartbeat,
    in ingest's transaction). At most ``BOXES_MAX`` boxes are kept: one beyond them is refused (``unknown_box``),
    so a client that makes up box ids (a broker without the ACL) cannot grow the table without end. Used by ingest's
    one worker thread."""

    def __init__(self) -> None:
        self._known: set[str] = set()  # boxes this process found in the table
        self._twins: dict[str, float] = {}  # box -> when two boxes under its id were last heard (``_twins_heard``)
        self.said = RefusalLog()

    def checked(self, box: str, payload: bytes) -> Heartbeat | Refused:
        """The message checked, or why it is refused; never raises."""
        try:
            return decode(box, payload)
        except Refused as refused:
            return refused
        except Exception as exc:  # a bug in a check: this message is refused, the others go on
            log.exception("checking a heartbeat of box %r failed", box[:64])
            return Refused(box[:64], "internal", f"internal error while checking: {type(exc).__name__}: {exc}")

    def apply(self, db: Connection, item: Heartbeat | Refused, now: float) -> str:
        """Record a checked message (``HEARTBEAT``), or say why it is refused (``HEARTBEAT_REFUSED``), at most once per
        box in REFUSAL_NOTE_S by ``now``, this gateway's clock (the row is timed by the database's), and in the log as
        ``RefusalLog`` allows."""
        if isinstance(item, Heartbeat):
            try:
                HEARTBEATS.labels("recorded" if self._record(db, item) else "late").inc()
                return HEARTBEAT
            except Refused as refused:
                item = refused
        HEARTBEATS.labels(item.kind).inc()
        if self.said.due(item.box, now):
            if self.said.named(item.kind, now):
                log.warning("heartbeat of box %r refused: %s (said once per box in %.0f s; all are counted in "
                            "xl_gateway_heartbeats)", item.box, item.reason, REFUSAL_NOTE_S)
            db.execute(update(boxes).where(boxes.c.box == item.box)  # by the clock its heartbeats are heard by
                       .values(refused_at=database_now(), refused_reason=item.reason[:TEXT_CHARS]))
        return HEARTBEAT_REFUSED

    def _record(self, db: Connection, beat: Heartbeat) -> bool:
        """Whether ``beat`` was written; False where the stored row comes later in the box's order (``_upsert``:
        another gateway wrote it first), or ``beat`` is an ``offline`` of another start than the stored row's."""
        if beat.box not in self._known:
            if _KNOWN.first(db, {"box": beat.box}) is None and _HOW_MANY.first(db, {})[0] >= BOXES_MAX:
                raise Refused(beat.box, "unknown_box", f"box {beat.box!r} is not among the {BOXES_MAX} boxes the "
                              "gateway keeps, and there is no room for another")
            if len(self._known) < BOXES_MAX:
                self._known.add(beat.box)
        row = dict.fromkeys(_COLUMNS) | {"box": beat.box, "state": beat.state}
        if beat.full:
            kind = HEARTBEAT_ROW
            boot, link, seq = beat.order() or (None, None, None)
            row.update(sent_at=beat.sent_at(), heartbeat=beat.model_dump_json(), boot=boot, link=link, seq=seq)
        elif beat.last_word:
            kind = LAST_WORD_ROW
            row.update(boot=beat.boot, ended_link=beat.link)
        else:
            kind = STATE_ROW
            row["said_boot"] = beat.boot
        if kind != HEARTBEAT_ROW:
            return _UPSERTS[db.dialect.name, kind].run(db, row).rowcount != 0
        written = _UPSERTS[db.dialect.name, kind].first(db, row)
        if written is not None and written[0] is not None and written[2] - written[0] < TWIN_SHOWN_S:
            self._twins_heard(beat.box, written[1], written[2])
        return written is not None

    def _twins_heard(self, box: str, boots: str, at: float) -> None:
        """Say once in the log that two boxes run under ``box``'s id (the row says so while it lasts: ``view``), and
        again where they stopped for ``TWIN_SHOWN_S`` and came back: once by each gateway that hears them."""
        last = self._twins.get(box)
        self._twins[box] = at
        if len(self._twins) > NOTED_MAX:
            del self._twins[min(self._twins, key=self._twins.get)]
        if last is None or at - last >= TWIN_SHOWN_S:
            log.error("box %r: heartbeats of two starts in turn (boot %s): two boxes run with this box id (a config "
                      "copied to the next box, its box: not changed?). Each takes the other's connection to the broker: "
                      "their incidents and the confirmations of them are late, and the boxes page shows each in turn. "
                      "Give each box its own id", box, " and ".join(sorted(boots.split())))


# --- what the boxes page and /boxes show ---

def stored(text: str | None) -> Heartbeat | None:
    """A row's heartbeat; None for none, or one this release cannot read (kept by another)."""
    if text is None:
        return None
    try:
        return Heartbeat.model_validate(json.loads(text))
    except (ValueError, ValidationError):
        return None


def view(row: dict, now: float, grids: Collection[str] | None = None) -> dict:
    """A box as the page and the API show it at ``now`` (times in seconds since the epoch, by the database's clock, as
    its row's ``heard_at``): ``silent`` when no heartbeat came for more than ``SILENT_AFTER`` of its intervals, its
    cameras (those in ``grids`` alone, an operator's; None: all) and their grids (none known: a box older than the
    cameras' grid), outbox and clock. The clock's offset is the box's own measure (``clock_offset_s``); before it has
    one, the gateway's, from the heartbeat's time against its arrival (by the database's clock). ``clock_off``: further off than the gateway accepts an incident's times
    (``wire.MAX_CLOCK_SKEW_S``). ``refused_*``: its heartbeats refused since the last it took.

    >>> beat = Heartbeat(box="b", state="online", at="2026-01-01T00:00:00Z", heartbeat_s=10.0,
    ...                  cameras={"gate": CameraStatus(grid="G-1", state="online"),
    ...                           "yard": CameraStatus(grid="G-2", state="offline")})
    >>> row = {"box": "b", "state": "online", "heard_at": 1767225900.0, "sent_at": 1767225600.0,
    ...        "heartbeat": beat.model_dump_json(), "refused_at": None, "refused_reason": None}
    >>> v = view(row, now=1767225920.0)
    >>> v["silent"], v["cameras_up"], v["cameras_total"], v["clock_offset_s"], v["clock_offset_by"], v["clock_off"]
    (False, 1, 2, 300.0, 'gateway', False)
    >>> view(row, now=1767225931.0)["silent"]
    True
    >>> v = view(row, now=1767225920.0, grids={"G-2"})
    >>> v["grids"], v["cameras_up"], v["cameras_total"]
    (['G-2'], 0, 1)
    """
    beat = stored(row["heartbeat"])
    heartbeat_s = beat.heartbeat_s if beat else wire.HEARTBEAT_S
    heard = row["heard_at"]
    offset, by = None, None
    if beat and beat.clock_offset_s is not None:
        offset, by = beat.clock_offset_s, "box"
    elif heard is not None and row["sent_at"] is not None:
        offset, by = round(heard - row["sent_at"], 1), "gateway"
    cameras = [{"camera": cid, "grid": c.grid, "zone_grids": list(c.zone_grids), "state": c.state,
                "faults": list(c.faults), "max_gap_s": c.max_gap_s, "last_error": c.last_error,
                "last_error_at": c.last_error_at}
               for cid, c in sorted((beat.cameras or {}).items() if beat else [])
               if grids is None or c.grid in grids or any(g in grids for g in c.zone_grids)]
    refused = row["refused_at"] is not None and (heard is None or row["refused_at"] > heard)
    twins = row.get("twin_at") is not None and now - row["twin_at"] < TWIN_SHOWN_S
    return {"box": row["box"], "state": row["state"], "heard_at": heard, "heartbeat_s": heartbeat_s,
            "silent": silent(heard, heartbeat_s, now),
            "grids": sorted({g for c in cameras for g in (c["grid"], *c["zone_grids"]) if g is not None}),
            "cameras": cameras, "cameras_total": len(cameras),
            "cameras_up": sum(1 for c in cameras if c["state"] == "online"),
            "outbox_pending": beat.outbox_pending if beat else None,
            "outbox_oldest_s": beat.outbox_oldest_s if beat else None,
            "outbox_oldest_known": beat.outbox_oldest_known if beat else None,
            "outbox_unwritten": beat.outbox_unwritten if beat else None,
            "outbox_write_error": beat.outbox_write_error if beat else None,
            "outbox_held": beat.outbox_held if beat else None,
            "clock_offset_s": offset, "clock_offset_by": by,
            "clock_off": offset is not None and abs(offset) > wire.MAX_CLOCK_SKEW_S,
            "clock_corrected": bool(beat and beat.clock_corrected),
            "suppressions": len(beat.suppressions) if beat else 0,
            "refused_at": row["refused_at"] if refused else None,
            "refused_reason": row["refused_reason"] if refused else None,
            "twin_at": row["twin_at"] if twins else None,
            "twin_boots": sorted(row["twin_boots"].split()) if twins else None}


def silent(heard_at: float | None, heartbeat_s: float, now: float) -> bool:
    """Whether a box last heard at ``heard_at`` (None: never) is silent at ``now``: no word from it for more than
    ``SILENT_AFTER`` of its heartbeat intervals (the boxes page's 失联; a case's close weighs its camera's report by it).

    >>> silent(100.0, 10.0, now=130.0), silent(100.0, 10.0, now=130.5), silent(None, 10.0, now=0.0)
    (False, True, True)
    """
    return heard_at is None or now - heard_at > SILENT_AFTER * heartbeat_s


_ROW = Prepared(select(boxes).where(boxes.c.box == bindparam("box")))


def clock_offset(db: Connection, box: str) -> float | None:
    """The gateways' clock less ``box``'s, as the boxes page shows it (``view``'s ``clock_offset_s``); None where no
    heartbeat of it tells. Read in ingest's transaction, on the driver's cursor (``Prepared``): in a batch's pipeline
    mode on PostgreSQL, SQLAlchemy's result had no row to give."""
    rows = _ROW.dicts(db, {"box": box})
    return view(rows[0], 0.0)["clock_offset_s"] if rows else None


def troubled(v: dict) -> bool:
    """A box the page lists first: silent, offline, a camera down, its clock off, its outbox unwritable or its
    heartbeats refused."""
    return bool(v["silent"] or v["state"] != "online" or v["cameras_up"] < v["cameras_total"] or v["clock_off"]
                or v["outbox_write_error"] or v["refused_at"] or v["twin_at"])


def listed(store: Store, grids: Collection[str] | None = None) -> tuple[float, list[dict]]:
    """The time now by the database's clock, and the boxes kept, viewed then: every one (``grids`` None: an admin's),
    or those with a camera in ``grids`` (an operator's subtree, ``auth.scope``), each with those cameras alone; the
    troubled ones first, each part by box id. A box whose heartbeat names no grid (older software, or none heard) is
    in no operator's. By the clock they were heard by, whichever gateway serves the page: judged by its own clock, a
    box written by a gateway whose clock is behind the page's flapped silent while it was heard."""
    with store.engine.connect() as db:
        now = db.execute(select(database_now())).scalar_one()
        rows = [dict(r._mapping) for r in db.execute(select(boxes))]
    among = None if grids is None else frozenset(grids)
    views = [v for v in (view(r, now, among) for r in rows) if among is None or v["cameras"]]
    return now, sorted(views, key=lambda v: (not troubled(v), v["box"]))


def kept(store: Store, box: str) -> dict | None:
    """The box ``box`` viewed now (by the database's clock, as ``listed``), or None if none is kept."""
    with store.engine.connect() as db:
        now = db.execute(select(database_now())).scalar_one()
        row = db.execute(select(boxes).where(boxes.c.box == box)).first()
    return view(dict(row._mapping), now) if row else None


def remove(store: Store, box: str, by: str) -> bool:
    """Remove ``box`` from the boxes kept (a retired box, else listed as silent for good), saying in the log who did
    (``by``, as the case log names people); False if none is kept. Nothing bans it: a status message from it again
    (a heartbeat, its stop, its last will) makes its row again, and its heartbeats are taken as before."""
    with store.begin() as db:
        row = db.execute(select(boxes.c.heard_at, boxes.c.state).where(boxes.c.box == box)).first()
        if row is None or db.execute(boxes.delete().where(boxes.c.box == box)).rowcount == 0:
            return False
    heard = wire.city_iso(row.heard_at) if row.heard_at is not None else "never"
    log.info("box %r removed from the boxes by %s (it was %s, last heartbeat %s); a status message from it lists it "
             "again", box, by, row.state, heard)
    return True
