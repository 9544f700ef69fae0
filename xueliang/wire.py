"""The wire between edge and gateway: topics, time format, the incident schema, the gateway's
acknowledgements and its notices (dispatch, escalation).

Both sides import this module; it needs only the standard library, jsonschema and fastjsonschema,
so a gateway host never pulls in OpenCV or onnxruntime.

>>> incident_topic("demo-box", "campus-gate")
'xl/v1/demo-box/campus-gate/incident'
>>> parse_topic("xl/v1/demo-box/campus-gate/evidence/abc")
Topic(box='demo-box', camera='campus-gate', kind='evidence', incident_id='abc')
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, NamedTuple

import fastjsonschema

if TYPE_CHECKING:
    import jsonschema

ROOT = "xl/v1"
SCHEMA_VERSION = 1
MAX_ATTRIBUTE_CHARS = 256  # an incident's string attribute, at most (incident.schema.json attributes)
MAX_INCIDENT_BYTES = 16_384
MAX_EVIDENCE_BYTES = 4_000_000
INCIDENT_SUBSCRIPTION = f"{ROOT}/+/+/incident"
EVIDENCE_SUBSCRIPTION = f"{ROOT}/+/+/evidence/+"
# the gateways' shared subscriptions' group: Mosquitto gives each message to one of them (brokeraccounts lets no other
# account subscribe to it)
SHARE_GROUP = "$share/gateway/"
STATUS_SUBSCRIPTION = f"{ROOT}/+/status"  # each box's heartbeat (QoS 0, retained) and its last will (QoS 1)
HEARTBEAT_S = 10.0  # a box's heartbeat interval unless its config says otherwise (and what a gateway assumes)
# Bounds of what a message may hold, so that nothing in it can fail later (in the database, a
# topic, a page or a notice): times within this range, integers of at most 18 digits, finite
# numbers only, objects nested no deeper than MAX_DEPTH (a valid incident is 3 deep).
EARLIEST = 946_684_800.0  # 2000-01-01T00:00:00Z
LATEST = 4_102_444_800.0  # 2100-01-01T00:00:00Z
MAX_INT_DIGITS = 18
MAX_DEPTH = 16
# How far ahead of a gateway's clock an incident's times may be. A message further ahead is right but its box's
# clock is not: the gateway holds it (no acknowledgement, so the box keeps it), and a box that learns from the
# acknowledgements that its wall clock is further off than this puts the gateways' time on its messages.
MAX_CLOCK_SKEW_S = 300.0
IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # box, camera, zone: as in the schema's $defs/ident
# not dots alone (as the schema's incident_id): an id of . or .. made its snapshot's URL .../incidents/../evidence.jpg,
# which browsers shorten to another address (a broken image on the case page; the API's opened the case's first picture)
INCIDENT_ID = re.compile(r"(?!\.+$)[A-Za-z0-9._:-]{1,128}")
# An incident id as xueliang's edge makes it (``owned_incident_id``): 32 hex digits and its box's id. The gateway
# refuses such an id from any other box (``incident_owner``), so no box can take another's incident id by sending
# it first; an id of any other form (a box older than this, another maker's) belongs to the box that sent it first.
_OWNED_INCIDENT_ID = re.compile(r"[0-9a-f]{32}:(?P<box>" + IDENT.pattern + ")")
# ``case:`` begins the gateway's own keys for people's photos (gateway/actions.py), never a box's incident id: evidence a
# box sent under such an id was never quarantined as an orphan, and kept for good (incident.schema.json says so too)
GATEWAY_KEY_PREFIX = "case:"
RESERVED_BOX_IDS = frozenset({"dispatch", "escalations"})  # level 3 words the gateway's topics use
ZONE_TYPES = ("illegal_parking", "garbage", "spill")  # what a zone of xueliang's edge watches
BOX_TYPES = (*ZONE_TYPES, "camera_fault")  # the incident types xueliang's boxes send (the wire takes others too)
# A grid code or department id ends up in a topic level and on pages: letters (Chinese too),
# digits and . _ - only, so never an MQTT wildcard, a level separator, a control character or markup.
GRID_PATTERN = r"^[A-Za-z0-9\u4e00-\u9fff][A-Za-z0-9\u4e00-\u9fff._-]{0,63}$"  # also in the configs
TOPIC_LEVEL = re.compile(GRID_PATTERN)


class WireError(ValueError):
    """A message that does not follow the contract; the text says why."""


class RepeatedKey(WireError):
    """JSON with a key written twice in one object (``key``): ``loads`` refuses it."""

    def __init__(self, key: str):
        super().__init__(f"not JSON: key {key[:64]!r} is written twice in one object")
        self.key = key


class Topic(NamedTuple):
    box: str
    camera: str
    kind: str  # "incident" or "evidence"
    incident_id: str | None


def incident_topic(box: str, camera: str) -> str:
    return f"{ROOT}/{box}/{camera}/incident"


def evidence_topic(box: str, camera: str, incident_id: str) -> str:
    return f"{ROOT}/{box}/{camera}/evidence/{incident_id}"


def status_topic(box: str) -> str:
    return f"{ROOT}/{box}/status"


def status_box(topic: str) -> str | None:
    """The box level of a status topic (``xl/v1/{box}/status``), unchecked; None for any other topic.

    >>> status_box("xl/v1/demo-box/status"), status_box("xl/v1/demo-box/gate/incident")
    ('demo-box', None)
    """
    parts = topic.split("/")
    return parts[2] if len(parts) == 4 and parts[3] == "status" and "/".join(parts[:2]) == ROOT else None


def topic_box(topic: str) -> str:
    """The box a topic names, as far as it names one, unchecked: its dead letters are counted and kept by it.

    >>> topic_box("xl/v1/box-1/gate/incident"), topic_box("other"), topic_box("notice:dispatched:case/7")
    ('box-1', '', '')
    """
    parts = topic.split("/")
    return parts[2][:64] if len(parts) > 2 else ""


def topic_level(value: str, what: str) -> str:
    """``value`` if it is safe as one topic level (see ``TOPIC_LEVEL``), else WireError.

    >>> topic_level("HQ-DZG-10D-07", "grid")
    'HQ-DZG-10D-07'
    >>> topic_level("HQ/+", "grid")
    Traceback (most recent call last):
    ...
    xueliang.wire.WireError: grid 'HQ/+' is not a safe topic level (letters, digits, . _ -; at most 64)
    """
    if not isinstance(value, str) or not TOPIC_LEVEL.fullmatch(value):
        raise WireError(f"{what} {value!r} is not a safe topic level (letters, digits, . _ -; at most 64)")
    return value


def dispatch_topic(department: str) -> str:
    """Where a department receives the cases dispatched to it (QoS 1)."""
    return f"{ROOT}/dispatch/{topic_level(department, 'department')}"


def escalation_topic(grid: str) -> str:
    """Where the second whistle for an overdue case is heard: the grid it was escalated to."""
    return f"{ROOT}/escalations/{topic_level(grid, 'grid')}"


def parse_topic(topic: str) -> Topic:
    """The box, camera and kind a topic names; each level checked as the schema checks the payload.

    >>> parse_topic("xl/v1/box-1/gate/evidence/" + "x" * 200)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    xueliang.wire.WireError: topic's incident id 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' (200 characters) is not 1..128 of ...
    """
    parts = topic.split("/")
    if len(parts) == 5 and parts[4] == "incident" and "/".join(parts[:2]) == ROOT:
        where = Topic(parts[2], parts[3], "incident", None)
    elif len(parts) == 6 and parts[4] == "evidence" and "/".join(parts[:2]) == ROOT:
        where = Topic(parts[2], parts[3], "evidence", parts[5])
    else:
        raise WireError(f"topic {topic[:200]!r} is neither {ROOT}/BOX/CAMERA/incident nor .../evidence/INCIDENT_ID")
    for what, value in (("box", where.box), ("camera", where.camera)):
        if not IDENT.fullmatch(value):
            raise WireError(f"topic's {what} {value[:40]!r} is not 1..64 of A-Z a-z 0-9 . _ - (starting with a letter or digit)")
    if where.box in RESERVED_BOX_IDS:  # its acks and suppressions would land among the notices
        raise WireError(f"topic's box {where.box!r} is reserved: {ROOT}/{where.box}/ carries the gateway's notices")
    if where.incident_id is not None and (not INCIDENT_ID.fullmatch(where.incident_id)
                                          or where.incident_id.startswith(GATEWAY_KEY_PREFIX)):
        raise WireError(f"topic's incident id {where.incident_id[:40]!r} ({len(where.incident_id)} characters) "
                        "is not 1..128 of A-Z a-z 0-9 . _ : - (not dots alone, nor beginning case:, the gateway's own)")
    if where.incident_id is not None:
        check_incident_owner(where.incident_id, where.box)
    return where


def owned_incident_id(box: str, made: str) -> str:
    """The id ``box`` gives on the wire to the incident its rules named ``made`` (32 hex digits).

    >>> owned_incident_id("box-1", "3f2a9c" * 5 + "00")
    '3f2a9c3f2a9c3f2a9c3f2a9c3f2a9c00:box-1'
    >>> incident_owner(_), incident_owner("3f2a9c"), incident_owner("3f2a9c" * 5 + "00:x/y")
    ('box-1', None, None)
    """
    return f"{made}:{box}"


def incident_owner(incident_id: str) -> str | None:
    """The box an incident id names, for an id ``owned_incident_id`` made; None for one of another form."""
    found = _OWNED_INCIDENT_ID.fullmatch(incident_id)
    return found["box"] if found else None


def check_incident_owner(incident_id: str, box: str) -> None:
    """WireError if ``incident_id`` names a box other than ``box``, the one sending it."""
    owner = incident_owner(incident_id)
    if owner is not None and owner != box:
        raise WireError(f"incident id {incident_id!r} names box {owner!r} (an id the edge makes ends with its box's); "
                        f"box {box!r} may not send it")


def incident_file_name(incident_id: str) -> str:
    """An incident's id as a file name may show it on any system (Windows refuses the ``:`` before an id's box, shells
    and zip tools quote it): each character but ``A-Z a-z 0-9 . _ -`` made ``_`` (the box kept), cut at 80, and the
    first 12 hex digits of the id's SHA-256, so ids that differ only where the name cannot show it are two names.

    >>> incident_file_name(owned_incident_id("box-1", "3f2a9c" * 5 + "00"))
    '3f2a9c3f2a9c3f2a9c3f2a9c3f2a9c00_box-1-f7e8ac3ab79f'
    >>> incident_file_name("gate:0001"), incident_file_name("gate_0001")
    ('gate_0001-0ec88718eb3b', 'gate_0001-65fad5faab35')
    """
    shown = re.sub(r"[^A-Za-z0-9._-]", "_", incident_id)[:80]
    return f"{shown}-{hashlib.sha256(incident_id.encode()).hexdigest()[:12]}"


# Beijing time: the city's days, working hours and every time a person reads (pages, reports, logs); never the
# machine's own zone, which a cloud image leaves at UTC and a vendor anywhere
CITY_TZ = timezone(timedelta(hours=8))


def iso(t: float) -> str:
    """Seconds since the epoch as an ISO 8601 UTC string with milliseconds; WireError for a value
    no calendar can show (a row stored before times were checked)."""
    try:
        return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError, TypeError) as exc:
        raise WireError(f"time {t!r} cannot be shown: {exc}") from None


def city_iso(t: float, timespec: str = "seconds") -> str:
    """Seconds since the epoch as a person reads them: Beijing time, ISO 8601 with its offset (``iso`` is the
    wire's, in UTC); WireError as ``iso``.

    >>> city_iso(1767225600.0), city_iso(1767225600.25, "milliseconds")
    ('2026-01-01T08:00:00+08:00', '2026-01-01T08:00:00.250+08:00')
    """
    try:
        return datetime.fromtimestamp(t, CITY_TZ).isoformat(timespec=timespec)
    except (OverflowError, OSError, ValueError, TypeError) as exc:
        raise WireError(f"time {t!r} cannot be shown: {exc}") from None


def parse_time(text: str) -> float:
    """ISO 8601 (a trailing Z allowed) to seconds since the epoch; naive times are UTC.
    A time that is not on the calendar, or outside 2000..2099, is a WireError.

    >>> parse_time("2026-01-01T08:00:00+08:00")
    1767225600.0
    >>> parse_time("2024-02-30T00:00:00Z")
    Traceback (most recent call last):
    ...
    xueliang.wire.WireError: time '2024-02-30T00:00:00Z' is not a real time: day is out of range for month
    """
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        t = dt.timestamp()
    except (ValueError, OverflowError, TypeError, AttributeError) as exc:
        raise WireError(f"time {str(text)[:40]!r} is not a real time: {exc}") from None
    if not EARLIEST <= t < LATEST:
        raise WireError(f"time {text[:40]!r} is outside {iso(EARLIEST)[:4]}..{int(iso(LATEST)[:4]) - 1}")
    return t


@lru_cache(maxsize=None)
def schema(name: str = "incident") -> dict[str, Any]:
    """One of the wire's schemas, ``xueliang/schema/{name}.schema.json`` (incident, ack, notice, suppressions)."""
    return json.loads(resources.files("xueliang").joinpath(f"schema/{name}.schema.json").read_text())


@lru_cache(maxsize=None)
def _validator(name: str) -> jsonschema.protocols.Validator:
    import jsonschema  # only to explain a refused message: 45 ms of every box's, replay's and gateway's start

    cls = jsonschema.validators.validator_for(schema(name))
    return cls(schema(name), format_checker=cls.FORMAT_CHECKER)


def _explain(name: str, message: Any, label: str = "", whole: str = "(message)") -> WireError | None:
    """Why ``message`` breaks schema ``name``, as a WireError naming the field (``label`` first,
    ``whole`` where the message itself is wrong); None when it follows the schema."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator(name).iter_errors(message))
    if error is None:
        return None
    where = "/".join(str(p)[:64] for p in error.absolute_path) or whole
    return WireError(f"{label + ' ' if label else ''}{where}: {error.message[:300]}")


def _check(name: str, message: Any, label: str, whole: str = "(message)") -> Any:
    """``message`` if it follows schema ``name``, else the WireError of ``_explain``. A message that
    follows it takes the compiled fast path only: jsonschema on every notice and acknowledgement
    held the gateway's GIL long enough to halve its ingest (a burst of new cases is a burst of notices)."""
    try:
        _fast_check(name)(message)
    except fastjsonschema.JsonSchemaException as fast_error:
        # raised as made, never held in a local: the frame held its own exception, a cycle holding every frame up the
        # traceback (ingest's whole batch) until Python's cyclic collector ran: 160,000 refused 5-20 kB messages
        # took a gateway's RSS from 90 to 305 MB (test_flood)
        raise _explain(name, message, label, whole) or WireError(  # None: the fast checker alone refused a date-time
            f"{label + ' ' if label else ''}{whole}: {fast_error.message[:300]}") from None
    return message


@lru_cache(maxsize=None)
def _fast_check(name: str = "incident") -> Callable[[Any], Any]:
    """Schema ``name`` compiled to Python (about 12x faster than jsonschema); its relative ``$id``
    is left out so the compiler does not try to fetch it."""
    return fastjsonschema.compile({k: v for k, v in schema(name).items() if k != "$id"})


TIME_FIELDS = ("started_at", "observed_at", "ended_at")


@lru_cache(maxsize=None)
def _time_syntax() -> re.Pattern:
    """How the wire writes a time: the schema's ``$defs/time`` pattern, its digits ASCII (Python's ``\\d`` takes
    ``２０２６``)."""
    return re.compile(schema()["$defs"]["time"]["pattern"], re.ASCII)


def checked_time(text: str, any_year: bool = False) -> float:
    """A time as the wire writes it (RFC 3339: ``2026-12-06T08:00:00.000Z``, or an offset for the Z) in seconds
    since the epoch; WireError saying why not: no zone, another form ISO 8601 allows (a bare day, a week, a space
    for the T), not on the calendar (a leap second, 23:59:60: no box's clock reads it), or outside 2000..2099 unless
    ``any_year`` (a box's heartbeat: its clock may stand in 1970, and that is what to show).

    >>> checked_time("2026-01-01T08:00:00+08:00"), checked_time("1970-01-01T00:00:05.000Z", any_year=True)
    (1767225600.0, 5.0)
    >>> checked_time("2026-01-01T08:00:00")
    Traceback (most recent call last):
    ...
    xueliang.wire.WireError: time '2026-01-01T08:00:00' has no zone (Z, or an offset as +08:00)
    >>> checked_time("2026-12-31T23:59:60Z")
    Traceback (most recent call last):
    ...
    xueliang.wire.WireError: time '2026-12-31T23:59:60Z' is not a real time: second must be in 0..59
    """
    if not _time_syntax().match(text):
        if _time_syntax().match(text + "Z"):
            raise WireError(f"time {text[:40]!r} has no zone (Z, or an offset as +08:00)")
        raise WireError(f"time {text[:40]!r} is not written as the wire's times are (2026-12-06T08:00:00.000Z)")
    if not any_year:
        return parse_time(text)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError) as exc:
        raise WireError(f"time {text[:40]!r} is not a real time: {exc}") from None


def validate_incident(message: dict[str, Any]) -> dict[str, Any]:
    """Return the message if it follows the schema and its times are real, else raise WireError
    naming the field.

    Valid messages take the compiled fast path; jsonschema explains the invalid ones (after a
    depth check: its explanation recurses into the value).
    """
    try:
        _fast_check()(message)
    except fastjsonschema.JsonSchemaException as fast_error:
        if depth(message) > MAX_DEPTH:
            raise WireError(f"(message): nested deeper than {MAX_DEPTH} levels") from None
        _check_times(message)  # a time's own reason (no zone, a leap second) reads better than the schema's pattern
        raise _explain("incident", message) or WireError(  # as made, never held in a local: see ``_check``
            f"(message): {fast_error.message[:300]}") from None
    _check_times(message)
    check_incident_owner(message["incident_id"], message["box"])
    return message


def _check_times(message: dict[str, Any]) -> None:
    for field in TIME_FIELDS:
        if isinstance(message.get(field), str):
            try:
                checked_time(message[field])
            except WireError as exc:
                raise WireError(f"{field}: {exc}") from None


def last_seen(message: dict[str, Any]) -> float:
    """When the camera last saw a valid incident, by its box's clock: the latest of its times (``observed_at``,
    ``ended_at``).

    >>> last_seen({"observed_at": "2026-01-01T01:00:00Z", "ended_at": "2026-01-01T00:59:59Z"})
    1767229200.0
    """
    latest = parse_time(message["observed_at"])
    if message["ended_at"] is not None:
        latest = max(latest, parse_time(message["ended_at"]))
    return latest


def template_location(lat: float, lon: float) -> bool:
    """Whether a camera's location is (0, 0), a config template's value left as it was: the sea off West Africa,
    where no city's camera stands. It is no location: cameras of several boxes left at it stood 0 m apart, and the
    gateway joined their incidents into one case (another street's car to this street's case, its grid never told).

    >>> template_location(0, 0.0), template_location(0.0, 117.15), template_location(39.17, 117.15)
    (True, False, False)
    """
    return lat == 0 and lon == 0


def ahead(message: dict[str, Any], now: float) -> float:
    """Seconds the latest of a valid incident's times (``last_seen``) lies ahead of ``now``.

    >>> ahead({"observed_at": "2026-01-01T01:00:00Z", "ended_at": None}, 1767225600.0)
    3600.0
    """
    return last_seen(message) - now


def depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (without recursion).

    >>> depth({"a": [1, {"b": []}]}), depth(3)
    (4, 0)
    """
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                todo.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise WireError(f"an integer of {len(text.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise WireError(f"number {text[:40]} is out of range")
    return value


def _constant(name: str):
    raise WireError(f"{name} is not a JSON number")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are each written once: of ``{"incident_id": "a", ..., "incident_id": "b"}`` Python
    keeps the last and other parsers the first or neither (RFC 8259: such an object's meaning is unpredictable),
    so what the gateway made a case of and what a reader of the same bytes sees could differ."""
    message = dict(pairs)
    if len(message) != len(pairs):
        seen: set[str] = set()
        raise RepeatedKey(next(key for key, _ in pairs if key in seen or seen.add(key)))
    return message


def loads(payload: bytes) -> Any:
    """JSON from the wire (UTF-8, RFC 8259) with the bounds above, or WireError saying why.

    >>> loads(b'{"confidence": NaN}')
    Traceback (most recent call last):
    ...
    xueliang.wire.WireError: not JSON: NaN is not a JSON number
    >>> loads(b"[" * 5000 + b"]" * 5000)
    Traceback (most recent call last):
    ...
    xueliang.wire.WireError: not JSON: nested too deeply
    >>> loads(b'{"box": "box-1", "seq": 1, "box": "box-2"}')
    Traceback (most recent call last):
    ...
    xueliang.wire.RepeatedKey: not JSON: key 'box' is written twice in one object
    """
    try:
        return json.loads(payload.decode("utf-8"), parse_int=_int, parse_float=_float, parse_constant=_constant,
                          object_pairs_hook=_object)
    except RepeatedKey:
        raise
    except WireError as exc:
        raise WireError(f"not JSON: {exc}") from None
    except RecursionError:
        raise WireError("not JSON: nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        raise WireError(f"not JSON: {str(exc)[:200]}") from None


def decode_incident(payload: bytes) -> dict[str, Any]:
    """Parse and validate an incident payload as it arrives from the broker. Anything wrong with
    it, whatever it holds, is a WireError with the reason; nothing else is raised."""
    if len(payload) > MAX_INCIDENT_BYTES:
        raise WireError(f"payload of {len(payload)} bytes exceeds {MAX_INCIDENT_BYTES}")
    message = loads(payload)
    if not isinstance(message, dict):
        raise WireError("payload is not a JSON object")
    if message.get("schema_version") != SCHEMA_VERSION:
        raise WireError(f"schema_version {message.get('schema_version')!r:.40} is not {SCHEMA_VERSION}")
    return validate_incident(message)


def encode_incident(message: dict[str, Any]) -> bytes:
    return json.dumps(validate_incident(message), ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode()


# End-to-end acknowledgement: a box keeps each message in its outbox until a gateway has committed
# it and says so on the box's own ack topic (a broker's PUBACK is not the gateway's commit).
DIGEST_CHARS = 20


def ack_topic(box: str) -> str:
    """Where gateways confirm a box's messages (QoS 1; the box subscribes to it)."""
    return f"{ROOT}/{box}/ack"


def sender(topic: str) -> str:
    """The box a message came from: the level after the root (the broker's ACL ties it to the account);
    WireError for a topic no box may publish on (nobody to acknowledge).

    >>> sender("xl/v1/demo-box/campus-gate/incident")
    'demo-box'
    """
    parts = topic.split("/", 3)
    if len(parts) < 4 or "/".join(parts[:2]) != ROOT or parts[2] in RESERVED_BOX_IDS:
        raise WireError(f"topic {topic[:200]!r} is not under {ROOT}/BOX/ of a box")
    return parts[2]


def message_digest(topic: str, payload: bytes) -> str:
    """How an acknowledgement names a message: both sides compute it from what crossed the wire,
    for incidents, evidence and unreadable payloads alike.

    >>> message_digest("xl/v1/b/c/incident", b"{}")
    '6100b60099d3706aeb48'
    """
    return hashlib.sha256(topic.encode() + b"\n" + payload).hexdigest()[:DIGEST_CHARS]


def encode_ack(gateway: str, at: float, messages: dict[str, str]) -> bytes:
    """An acknowledgement of committed messages: digest -> what became of each."""
    ack = {"schema_version": SCHEMA_VERSION, "gateway": gateway, "at": iso(at), "messages": messages}
    return json.dumps(_check("ack", ack, "ack"), separators=(",", ":")).encode()


def decode_ack(payload: bytes) -> dict[str, str]:
    """The messages an acknowledgement confirms (digest -> outcome), or WireError saying why not.

    >>> decode_ack(encode_ack("gateway-1", 1767225600.0, {"6100b60099d3706aeb48": "case_created"}))
    {'6100b60099d3706aeb48': 'case_created'}
    """
    return checked_ack(payload)["messages"]


def checked_ack(payload: bytes) -> dict[str, Any]:
    """An acknowledgement, checked: its ``messages`` and ``at``, the gateway's clock when it wrote it (a box
    sets its own by it); WireError saying why not.

    >>> checked_ack(encode_ack("gateway-1", 1767225600.0, {"6100b60099d3706aeb48": "duplicate"}))["at"]
    '2026-01-01T00:00:00.000Z'
    """
    if len(payload) > 300_000:
        raise WireError(f"ack of {len(payload)} bytes is too large")
    return _check("ack", loads(payload), "ack")


# The gateway's notices: a case dispatched to a department, an overdue case escalated to a grid.
NOTICE_TYPES = ("dispatch", "escalation")
NOTICE_CASE_FIELDS = ("id", "incident_id", "type", "category_code", "category_name", "department", "department_name",
                      "grid", "grid_name", "box", "camera", "zone", "lat", "lon", "state", "urgent", "level",
                      "escalated_grid", "created_at", "dispatched_at", "deadline", "reported_at", "overdue",
                      "incident_count", "confidence", "bbox", "evidence_url")


def notice_topic(notice: dict[str, Any]) -> str:
    """Where a notice goes: ``dispatch/{department}`` or ``escalations/{grid}``."""
    return dispatch_topic(notice["to"]) if notice["type"] == "dispatch" else escalation_topic(notice["to"])


def encode_notice(notice: dict[str, Any]) -> bytes:
    """A notice as published, if it follows ``schema/notice.schema.json``; else WireError naming the field."""
    _check("notice", notice, "notice", "(notice)")
    return json.dumps(notice, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def decode_notice(payload: bytes) -> dict[str, Any]:
    """A notice as a department's or a grid's system receives it, checked; WireError saying why not.

    >>> decode_notice(b'{"schema_version": 1, "type": "dispatch"}')
    Traceback (most recent call last):
    ...
    xueliang.wire.WireError: notice (notice): 'at' is a required property
    """
    if len(payload) > 64_000:
        raise WireError(f"notice of {len(payload)} bytes is too large")
    notice = loads(payload)
    encode_notice(notice)
    return notice


# Suppressions: what the gateway tells a box to stop reporting (an operator's false_alarm verdict),
# the box's whole list retained on its own prefix, so a box that (re)connects gets it at once.
MAX_SUPPRESSIONS_BYTES = 300_000


def suppressions_topic(box: str) -> str:
    """Where a box finds its suppressions (retained, QoS 1; gateways write, the box reads)."""
    return f"{ROOT}/{box}/suppressions"


def _check_suppressions(message: Any) -> dict[str, Any]:
    _check("suppressions", message, "suppressions")
    for item in message["suppressions"]:
        x1, y1, x2, y2 = item["bbox"]
        if not (x1 < x2 and y1 < y2):
            raise WireError(f"suppressions: suppression {item['id']} bbox {item['bbox']} is empty (needs x1 < x2, y1 < y2)")
    return message


def encode_suppressions(box: str, at: float, suppressions: list[dict[str, Any]]) -> bytes:
    """A box's whole list of suppressions as published; WireError naming the field if it breaks the schema."""
    message = {"schema_version": SCHEMA_VERSION, "box": box, "at": iso(at), "suppressions": suppressions}
    return json.dumps(_check_suppressions(message), ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def decode_suppressions(payload: bytes) -> list[dict[str, Any]]:
    """The suppressions a box was sent, checked; WireError saying why not.

    >>> s = {"id": 3, "camera": "gate", "zone": "kerb", "type": "illegal_parking", "bbox": [0.1, 0.2, 0.3, 0.4]}
    >>> decode_suppressions(encode_suppressions("box-1", 1767225600.0, [s]))[0]["bbox"]
    [0.1, 0.2, 0.3, 0.4]
    >>> decode_suppressions(encode_suppressions("box-1", 1767225600.0, [dict(s, zone="a/+")]))
    Traceback (most recent call last):
    ...
    xueliang.wire.WireError: suppressions suppressions/0/zone: 'a/+' does not match '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(?!\\\\n)$'
    """
    if len(payload) > MAX_SUPPRESSIONS_BYTES:
        raise WireError(f"suppressions of {len(payload)} bytes exceed {MAX_SUPPRESSIONS_BYTES}")
    return _check_suppressions(loads(payload))["suppressions"]
