"""Hostile messages for the gateway, as Hypothesis strategies: every field and topic level of the
wire, replaced by values a buggy box or an attacker would send. Used by tests/test_fuzz.py and
bench/fuzz_gateway.py (the longer run).

Each strategy gives ``(topic, payload)``; ``valid(n)`` gives a good message that must become a
new case (its own incident id and place), to prove ingest still flows afterwards.
"""

from __future__ import annotations

import copy
import json

from hypothesis import strategies as st

from xueliang import wire

from .test_gateway import JPEG, START  # a good incident and its snapshot

TOPIC = wire.incident_topic("box-1", "gate")
RAW = "@@raw@@"


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


# Tokens that are not JSON values Python would write: they go into the text as they stand.
RAW_TOKENS = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" * 4400, "9" * 19,
                              "1e-400", "-0", nested(300), nested(1000), '"\\ud800"', '"\\u0000"',
                              '{"a": ' * 50 + "1" + "}" * 50, "1.0e+308", "12345678901234567890.5"])
# Times that pass the old pattern but no calendar, or lie outside any sane range.
BAD_TIMES = st.sampled_from(["2024-02-30T00:00:00Z", "2026-01-01T25:00:00Z", "2026-01-01T00:60:00Z",
                             "2026-01-01T00:00:60Z", "2026-01-01T00:00:00+24:00", "0000-01-01T00:00:00Z",
                             "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59", "1970-01-01T00:00:00Z",
                             "2026-13-01T00:00:00Z", "2026-01-01T00:00:00.1234567890Z", "2026-01-01T00:00:00Z\n"])
TIME_LIKE = st.from_regex(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)\Z")
# Codes that are unsafe in a topic level or a page.
BAD_CODES = st.sampled_from(["HQ+DZG", "HQ#", "HQ/DZG", "HQ\x00", "<script>alert(1)</script>", "x" * 65,
                             "a\n", " ", "", "网格/7", "$SYS", "..", "HQ-DZG-10D-07\r\n", "\u202eevil", "a\tb"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
HOSTILE_VALUES = (JSON_VALUES | BAD_TIMES | TIME_LIKE | BAD_CODES | st.integers(min_value=2**31)
                  | st.integers(max_value=-1) | st.text(max_size=300) | st.just(RAW))
FIELDS = sorted(START) + ["location.lat", "location.lon", "evidence.sha256", "evidence.bytes", "model.name",
                          "attributes.dwell_s", "attributes.label", "attributes.extra", "bbox.0", "bbox.3"]


def _set(message: dict, path: str, value) -> None:
    """Put ``value`` at the dotted ``path`` (numbers index lists). Where an earlier hostile value took
    a parent's place (``evidence`` became a list, ``bbox`` a shorter list or a string), the path leads
    nowhere and nothing is set.

    >>> m = {"evidence": [1], "bbox": [0, 1]}
    >>> _set(m, "evidence.sha256", "x"); _set(m, "bbox.3", 9); _set(m, "bbox.0", 5); _set(m, "model.name", "y")
    >>> m
    {'evidence': [1], 'bbox': [5, 1], 'model': {'name': 'y'}}
    """
    *parents, last = path.split(".")
    target = message
    for key in parents:
        if isinstance(target, dict):
            target = target.setdefault(key, {})
        elif key.isdigit() and int(key) < len(target):
            target = target[int(key)]
        else:
            return
        if not isinstance(target, dict | list):
            return
    if isinstance(target, dict):
        target[last] = value
    elif last.isdigit() and int(last) < len(target):
        target[int(last)] = value


@st.composite
def hostile_incident(draw) -> tuple[str, bytes]:
    """A good incident with one to three fields replaced by hostile values (or raw tokens)."""
    message = copy.deepcopy(START)
    message["incident_id"] = draw(st.from_regex(r"\Afz-[a-z0-9]{1,12}\Z"))
    raw_token = draw(RAW_TOKENS)
    for path in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True)):
        _set(message, path, draw(HOSTILE_VALUES))
    if draw(st.booleans()):
        message["state"], message["ended_at"], message["end_reason"] = "end", draw(BAD_TIMES | TIME_LIKE), "left"
    text = json.dumps(message, ensure_ascii=draw(st.booleans())).replace(json.dumps(RAW), raw_token)
    return TOPIC, text.encode("utf-8", "surrogatepass")


@st.composite
def hostile_bytes(draw) -> tuple[str, bytes]:
    """Not JSON at all, JSON that is not an object, cut short, or far too big."""
    good = json.dumps(START).encode()
    payload = draw(st.binary(max_size=600) | st.just(good[: draw(st.integers(0, len(good) - 1))])
                   | st.sampled_from([b"[]", b"null", b"1", b'"x"', b"\xff\xfe", good + b"x",
                                      b" " * (wire.MAX_INCIDENT_BYTES + 1), good.replace(b"{", b"{\x00", 1)]))
    return TOPIC, payload


@st.composite
def hostile_evidence(draw) -> tuple[str, bytes]:
    """Evidence with a hostile incident id level, or a payload that is not a JPEG."""
    level = draw(st.from_regex(r"\A[A-Za-z0-9._:-]{1,128}\Z") | st.text(min_size=1, max_size=300)
                 | st.just("x" * 20000))
    payload = draw(st.just(JPEG) | st.binary(max_size=300) | st.just(b"\xff\xd8<html>evil</html>") | st.just(b""))
    return f"xl/v1/box-1/gate/evidence/{level}", payload


@st.composite
def hostile_topic(draw) -> tuple[str, bytes]:
    """A good payload on a topic whose levels are wrong: another box, odd characters, extra levels."""
    box = draw(st.sampled_from(["box-1", "box-2", "<b>", "x" * 65, "网格", ".", "-a"]) | st.text(min_size=1, max_size=70))
    tail = draw(st.sampled_from(["gate/incident", "gate/incident/extra", "incident", "gate/evidence",
                                 "gate/evidence/a/b"]))
    return f"xl/v1/{box}/{tail}", json.dumps(START).encode()


# a box's heartbeat as the edge sends it (edge/box.py ``status``): what hostile_status breaks
HEARTBEAT = {"box": "box-1", "state": "online", "at": "2026-01-01T00:00:00.000Z", "heartbeat_s": 10.0,
             "outbox_pending": 3, "outbox_oldest_s": 42.0, "clock_offset_s": None, "clock_corrected": False,
             "suppressions": [{"id": 1, "camera": "gate", "zone": "kerb", "type": "spill"}], "suppressed_events": 0,
             "cameras": {"gate": {"state": "online", "faults": [], "max_gap_s": 1.5, "analysed_fps": 0.5}}}
HEARTBEAT_FIELDS = sorted(HEARTBEAT) + ["cameras.gate.state", "cameras.gate.faults", "cameras.gate.max_gap_s",
                                        "suppressions.0", "cameras.<b>"]


@st.composite
def hostile_status(draw) -> tuple[str, bytes]:
    """A box's heartbeat with one to three fields replaced by hostile values (or raw tokens), on its own
    topic or another box's."""
    message = copy.deepcopy(HEARTBEAT)
    raw_token = draw(RAW_TOKENS)
    for path in draw(st.lists(st.sampled_from(HEARTBEAT_FIELDS), min_size=1, max_size=3, unique=True)):
        _set(message, path, draw(HOSTILE_VALUES))
    box = draw(st.sampled_from(["box-1", "box-2", "dispatch", "x" * 65]))
    text = json.dumps(message, ensure_ascii=draw(st.booleans())).replace(json.dumps(RAW), raw_token)
    return wire.status_topic(box), text.encode("utf-8", "surrogatepass")


HOSTILE = hostile_incident() | hostile_bytes() | hostile_evidence() | hostile_topic() | hostile_status()


def publishable(topic: str) -> bool:
    """What Mosquitto takes as a topic at all: valid UTF-8 without wildcards, control characters or
    non-characters, not too long (it disconnects a client that sends anything else)."""
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    return 0 < size < 65535 and not any(
        c in "+#" or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xFDD0 <= ord(c) <= 0xFDEF
        or (ord(c) & 0xFFFE) == 0xFFFE for c in topic)


def valid(n: int, box: str = "box-1") -> tuple[str, bytes]:
    """A good incident that opens a case of its own (its own id and place)."""
    message = dict(START, incident_id=f"valid-{n}", box=box, location={"lat": 20 + (n % 6000) * 0.01,
                                                                       "lon": 100 + (n // 6000) * 0.01})
    return wire.incident_topic(box, "gate"), json.dumps(message).encode()


def subscribed(topic: str) -> bool:
    """Whether the gateway's subscriptions (``wire.INCIDENT_SUBSCRIPTION``, ``EVIDENCE_SUBSCRIPTION``,
    ``STATUS_SUBSCRIPTION``) match ``topic``, as MQTT matches: ``+`` is any one level, empty ones included."""
    levels = topic.split("/")
    return any(len(levels) == len(pattern) and all(p in ("+", t) for p, t in zip(pattern, levels))
               for pattern in (wire.INCIDENT_SUBSCRIPTION.split("/"), wire.EVIDENCE_SUBSCRIPTION.split("/"),
                               wire.STATUS_SUBSCRIPTION.split("/")))
