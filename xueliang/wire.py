"""The wire between edge and gateway: topics, time format and the incident schema.

Both sides import this module; it needs only the standard library, jsonschema and fastjsonschema,
so a gateway host never pulls in OpenCV or onnxruntime.

>>> incident_topic("demo-box", "campus-gate")
'xl/v1/demo-box/campus-gate/incident'
>>> parse_topic("xl/v1/demo-box/campus-gate/evidence/abc")
Topic(box='demo-box', camera='campus-gate', kind='evidence', incident_id='abc')
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from typing import Any, NamedTuple

import fastjsonschema
import jsonschema

ROOT = "xl/v1"
SCHEMA_VERSION = 1
MAX_INCIDENT_BYTES = 16_384
MAX_EVIDENCE_BYTES = 4_000_000
INCIDENT_SUBSCRIPTION = f"{ROOT}/+/+/incident"
EVIDENCE_SUBSCRIPTION = f"{ROOT}/+/+/evidence/+"


class WireError(ValueError):
    """A message that does not follow the contract; the text says why."""


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


def dispatch_topic(department: str) -> str:
    """Where a department receives the cases dispatched to it (QoS 1)."""
    return f"{ROOT}/dispatch/{department}"


def escalation_topic(grid: str) -> str:
    """Where the second whistle for an overdue case is heard: the grid it was escalated to."""
    return f"{ROOT}/escalations/{grid}"


def parse_topic(topic: str) -> Topic:
    parts = topic.split("/")
    if len(parts) == 5 and parts[4] == "incident" and "/".join(parts[:2]) == ROOT:
        return Topic(parts[2], parts[3], "incident", None)
    if len(parts) == 6 and parts[4] == "evidence" and "/".join(parts[:2]) == ROOT:
        return Topic(parts[2], parts[3], "evidence", parts[5])
    raise WireError(f"topic {topic!r} is neither {ROOT}/BOX/CAMERA/incident nor .../evidence/INCIDENT_ID")


def iso(t: float) -> str:
    """Seconds since the epoch as an ISO 8601 UTC string with milliseconds."""
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> float:
    """ISO 8601 (a trailing Z allowed) to seconds since the epoch; naive times are UTC."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(resources.files("xueliang").joinpath("schema/incident.schema.json").read_text())


@lru_cache(maxsize=1)
def _validator() -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema())
    return cls(schema(), format_checker=cls.FORMAT_CHECKER)


@lru_cache(maxsize=1)
def _fast_check() -> Callable[[Any], Any]:
    """The schema compiled to Python (about 12x faster than jsonschema); its relative ``$id``
    is left out so the compiler does not try to fetch it."""
    return fastjsonschema.compile({k: v for k, v in schema().items() if k != "$id"})


def validate_incident(message: dict[str, Any]) -> dict[str, Any]:
    """Return the message if it follows the schema, else raise WireError naming the field.

    Valid messages take the compiled fast path; jsonschema explains the invalid ones.
    """
    try:
        _fast_check()(message)
        return message
    except fastjsonschema.JsonSchemaException:
        pass
    error = jsonschema.exceptions.best_match(_validator().iter_errors(message))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(message)"
        raise WireError(f"{where}: {error.message[:300]}")
    return message


def decode_incident(payload: bytes) -> dict[str, Any]:
    """Parse and validate an incident payload as it arrives from the broker."""
    if len(payload) > MAX_INCIDENT_BYTES:
        raise WireError(f"payload of {len(payload)} bytes exceeds {MAX_INCIDENT_BYTES}")
    try:
        message = json.loads(payload.decode("utf-8"))  # JSON on the wire is UTF-8 (RFC 8259)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise WireError("payload is not a JSON object")
    if message.get("schema_version") != SCHEMA_VERSION:
        raise WireError(f"schema_version {message.get('schema_version')!r} is not {SCHEMA_VERSION}")
    return validate_incident(message)


def encode_incident(message: dict[str, Any]) -> bytes:
    return json.dumps(validate_incident(message), ensure_ascii=False, separators=(",", ":")).encode()
