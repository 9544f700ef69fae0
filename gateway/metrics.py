"""What the gateway process counts (Prometheus, served at ``/metrics``) and the state of its
parts (served at ``/health``): an operator sees a lost broker, a stopped ingest or a stuck clock
at once, and why.

One registry per process; the MQTT client, the ingest worker and the clock write, the HTTP API reads.
"""

from __future__ import annotations

import collections
import threading
import time

from prometheus_client import CollectorRegistry, Counter, Gauge

from xueliang.wire import iso

REGISTRY = CollectorRegistry()
MESSAGES = Counter("xl_gateway_messages", "Messages taken from the broker, by outcome, each delivery counted "
                   "(case_created, case_merged, case_updated, case_reopened, duplicate, evidence, dead_letter, "
                   "ahead_of_clock: held, not acknowledged, for times ahead of the gateway's clock, so counted at "
                   "each resend, xl_gateway_held_messages counts each once; heartbeat, heartbeat_refused: a box's "
                   "status, xl_gateway_heartbeats says why)",
                   ["outcome"], registry=REGISTRY)
HELD = Counter("xl_gateway_held_messages", "Incident messages held for times ahead of the gateway's clock, each "
               "counted once however often its box sends it again", registry=REGISTRY)
HEARTBEATS = Counter("xl_gateway_heartbeats", "Box status messages (xl/v1/{box}/status) by outcome: recorded, late (a later one of the same start was "
                     "stored first, by another gateway: kept), or "
                     "refused for a reason (too_large, not_json, invalid, other_box: a box speaking for another, "
                     "not_a_box, unknown_box: no room for another box, internal), or dropped unread while the "
                     "database held ingest back (QoS 0: the next one replaces it)", ["outcome"], registry=REGISTRY)
INGEST_FAILURES = Counter("xl_gateway_ingest_failures", "Batches not committed because the database failed "
                          "(kept unacknowledged and tried again)", registry=REGISTRY)
INGEST_FAILING = Gauge("xl_gateway_ingest_failing", "1 while ingest cannot commit (the database fails)",
                       registry=REGISTRY)
NOTICES = Counter("xl_gateway_notices", "Notices (dispatch, escalation) by outcome: sent, or set_aside when one "
                  "could not be built (a dead letter says why)", ["outcome"], registry=REGISTRY)
DEAD_LETTERS_DELETED = Counter("xl_gateway_dead_letters_deleted", "Dead letters the clock deleted past the city's "
                               "retention: age (older than dead_letter_days), budget (the oldest, past dead_letter_mb)",
                               ["why"], registry=REGISTRY)
CLOCK_FAILURES = Counter("xl_gateway_clock_failures", "Clock steps that failed (escalation, notices, quarantine, dead_letters, suppressions)",
                         ["step"], registry=REGISTRY)

DAMAGED_PICTURES = Counter("xl_gateway_damaged_pictures", "Kept pictures (snapshots, frames, photos) found damaged "
                           "when asked for, their bytes no longer matching their sha256: answered 500, never served; "
                           "each counted (and logged) once, again only when DAMAGED_REMEMBERED others came after it; "
                           "restore them from a backup (gateway --check names them all)", registry=REGISTRY)
DAMAGED_REMEMBERED = 1000  # pictures found damaged, each counted and logged once: the oldest forgotten past this
_damaged: collections.OrderedDict[str, None] = collections.OrderedDict()
_damaged_lock = threading.Lock()


def found_damaged(sha256: str) -> bool:
    """Count picture ``sha256`` found damaged; True the first time (to log it once: a page showing it asks again at
    each view, a client that retries at each try), False when it is counted already."""
    with _damaged_lock:
        if sha256 in _damaged:
            _damaged.move_to_end(sha256)
            return False
        _damaged[sha256] = None
        if len(_damaged) > DAMAGED_REMEMBERED:
            _damaged.popitem(last=False)
    DAMAGED_PICTURES.inc()
    return True


BROKER_CONNECTED = Gauge("xl_gateway_broker_connected", "1 while the gateway's MQTT connection is up",
                         registry=REGISTRY)
BROKER_SUBSCRIBED = Gauge("xl_gateway_broker_subscribed", "1 once the broker granted the gateway's shared "
                          "subscriptions on this connection; 0 until it answered, while disconnected, or when it "
                          "refused one (the gateway is sent none of those messages: /health's broker part is down, "
                          "its last_error says which)", registry=REGISTRY)
CLOCK_LAST_ROUND = Gauge("xl_gateway_clock_last_round_timestamp_seconds", "When the clock last finished a round",
                         registry=REGISTRY)
BOXES_AHEAD = Gauge("xl_gateway_boxes_ahead", "Boxes whose incidents were held within the hour for times ahead of "
                    "the gateway's clock (the box's clock is wrong; /health names them)", registry=REGISTRY)
CAMERAS_OVER_RATE = Gauge("xl_gateway_cameras_over_rate", "Cameras whose new cases were held for review within the "
                          "hour for opening the tables' new_cases_per_camera_hour (a camera turned, a detector gone "
                          "wrong, a box's password in other hands; /health names them)", registry=REGISTRY)
AHEAD_SHOWN_S = 3600.0  # a box is listed as ahead this long after its last held incident
AHEAD_BOXES_MAX = 1000  # boxes listed at most (topics name them: the broker's ACL bounds them, a test broker does not)
OVER_RATE_SHOWN_S = 3600.0  # a camera is listed over its rate this long after its last case held for it
OVER_RATE_MAX = 1000  # cameras listed at most, the one heard of longest ago forgotten past it
# held messages remembered, to count each once (a box resends what is held every 15 s or so): the oldest
# resent is forgotten past this, and counted again if sent again; about 2 MB
HELD_MESSAGES_MAX = 10_000


class Health:
    """The state of the gateway's parts for ``/health``: the broker connection, ingest (is it
    committing?), the clock (is it going round?), the database (can it write, as ingest found out: a
    full disk still answers the read ``/health`` makes, and a write there at every call would cost a
    commit and the writer's lock)."""

    def __init__(self, clock_every_s: float = 5.0) -> None:
        self._lock = threading.Lock()
        self.clock_every_s = clock_every_s
        self.started_at = time.time()
        # subscribed: the broker confirmed the shared subscriptions (SUBACK) since the last connection
        self.broker: dict = {"connected": False, "subscribed": False, "since": None, "last_error": None}
        self._refused = False  # the broker refused a shared subscription on this connection
        self.ingest: dict = {"failing_since": None, "last_error": None, "last_commit_at": None}
        self.clock: dict = {"last_round_at": None, "failed_steps": []}
        self.database: dict = {"cannot_write_since": None, "last_error": None}
        self.ahead: dict[str, dict] = {}  # box -> its held incidents: how far ahead, how many, since, last_at
        self._held: collections.OrderedDict[tuple[str, str, int], None] = collections.OrderedDict()  # (box, id, seq)
        self.over_rates: dict[str, dict] = {}  # "box/camera" -> its cases held for its rate: how many, since, last_at

    # --- written by the parts ---
    def committed(self, outcomes: list[str], now: float | None = None) -> None:
        for outcome, n in collections.Counter(outcomes).items():  # one update per outcome, not per message
            MESSAGES.labels(outcome).inc(n)
        with self._lock:
            self.ingest.update(failing_since=None, last_commit_at=time.time() if now is None else now)
            self.database["cannot_write_since"] = None
        INGEST_FAILING.set(0)

    def failed(self, error: str, now: float | None = None, cannot_write: bool = False) -> None:
        """Ingest could not commit; ``cannot_write`` when the database said so (``DatabaseUnavailable``)."""
        INGEST_FAILURES.inc()
        INGEST_FAILING.set(1)
        now = time.time() if now is None else now
        with self._lock:
            self.ingest["last_error"] = error[:500]
            if self.ingest["failing_since"] is None:
                self.ingest["failing_since"] = now
            if cannot_write:
                self.database["last_error"] = error[:500]
                if self.database["cannot_write_since"] is None:
                    self.database["cannot_write_since"] = now

    def broker_up(self, up: bool, reason: str | None = None, now: float | None = None) -> None:
        BROKER_CONNECTED.set(1 if up else 0)
        with self._lock:
            if up != self.broker["connected"]:
                self.broker["since"] = time.time() if now is None else now
            self.broker["connected"] = up
            if not up:
                self.broker["subscribed"] = False
                BROKER_SUBSCRIBED.set(0)
            if up:
                self._refused = False  # a new connection asks again
            if reason:
                self.broker["last_error"] = reason[:300]

    def broker_subscribed(self, refused: str | None = None) -> None:
        """The broker answered the shared subscriptions (SUBACK); ``refused``: those it refused, in words. Refused,
        the gateway is sent none of those messages: its broker part is down until a connection's are granted."""
        with self._lock:
            self.broker["subscribed"] = refused is None
            BROKER_SUBSCRIBED.set(1 if refused is None else 0)
            self._refused = refused is not None
            if refused is not None:
                self.broker["last_error"] = refused[:300]

    def clock_round(self, failed_steps: list[str], now: float | None = None) -> None:
        now = time.time() if now is None else now
        CLOCK_LAST_ROUND.set(now)
        with self._lock:
            self.clock.update(last_round_at=now, failed_steps=list(failed_steps))

    def held_ahead(self, box: str, message: tuple[str, int], ahead_s: float, now: float | None = None) -> bool:
        """A delivery of ``box``'s incident ``message`` (its id and seq) held for times ``ahead_s`` ahead of the
        gateway's clock: ``held`` counts each message once (its box sends it again until it is taken),
        ``deliveries`` every time; True when the box was not listed (the caller logs it: once per box, not at
        every resend)."""
        now = time.time() if now is None else now
        key = (box, *message)
        with self._lock:
            self._forget_quiet(now)
            new = box not in self.ahead
            entry = self.ahead.setdefault(box, {"since": now, "held": 0, "deliveries": 0})
            if key in self._held:
                self._held.move_to_end(key)
            else:
                self._held[key] = None
                entry["held"] += 1
                HELD.inc()
                if len(self._held) > HELD_MESSAGES_MAX:
                    self._held.popitem(last=False)
            entry.update(ahead_s=round(ahead_s), deliveries=entry["deliveries"] + 1, last_at=now)
            if len(self.ahead) > AHEAD_BOXES_MAX:
                self._forget([min(self.ahead, key=lambda b: self.ahead[b]["last_at"])])
            BOXES_AHEAD.set(len(self.ahead))
        return new

    def over_rate(self, box: str, camera: str, now: float | None = None) -> bool:
        """A case of ``box``'s ``camera`` held for review for the cases it opened within the hour (the tables'
        ``new_cases_per_camera_hour``), counted under ``/health``'s ingest ``cameras_over_rate`` until an hour passes
        without one; True when the camera was not listed (the caller logs it: once, not at each case). Counted once the
        case is committed: a batch the database could not take is counted at the try that wrote it."""
        now = time.time() if now is None else now
        with self._lock:
            self._forget_quiet(now)
            key = f"{box}/{camera}"
            new = key not in self.over_rates
            entry = self.over_rates.setdefault(key, {"since": now, "held": 0})
            entry.update(held=entry["held"] + 1, last_at=now)
            if len(self.over_rates) > OVER_RATE_MAX:
                del self.over_rates[min(self.over_rates, key=lambda k: self.over_rates[k]["last_at"])]
            CAMERAS_OVER_RATE.set(len(self.over_rates))
        return new

    def _forget_quiet(self, now: float) -> None:
        self._forget([b for b, entry in self.ahead.items() if entry["last_at"] < now - AHEAD_SHOWN_S])
        for key in [k for k, entry in self.over_rates.items() if entry["last_at"] < now - OVER_RATE_SHOWN_S]:
            del self.over_rates[key]

    def _forget(self, boxes: list[str]) -> None:
        """No longer list ``boxes``, nor remember their held messages: listed again, a box counts afresh."""
        if not boxes:
            return
        for box in boxes:
            del self.ahead[box]
        gone = set(boxes)
        self._held = collections.OrderedDict((key, None) for key in self._held if key[0] not in gone)

    # --- read by /health ---
    def parts(self, now: float | None = None) -> dict[str, dict]:
        """Each part's state (``ok`` or ``down``) and details."""
        now = time.time() if now is None else now
        with self._lock:
            broker, ingest, clock, database = dict(self.broker), dict(self.ingest), dict(self.clock), dict(self.database)
            broker_ok = broker["connected"] and not self._refused
            self._forget_quiet(now)
            BOXES_AHEAD.set(len(self.ahead))
            CAMERAS_OVER_RATE.set(len(self.over_rates))
            ingest["boxes_ahead"] = {box: {**entry, "since": iso(entry["since"]), "last_at": iso(entry["last_at"])}
                                     for box, entry in sorted(self.ahead.items())}
            ingest["cameras_over_rate"] = {key: {**entry, "since": iso(entry["since"]), "last_at": iso(entry["last_at"])}
                                           for key, entry in sorted(self.over_rates.items())}
        late = max(3 * self.clock_every_s, 30.0)
        last = clock["last_round_at"]
        clock_ok = (last or self.started_at) > now - late and not clock["failed_steps"]
        return {"broker": {"state": "ok" if broker_ok else "down", **broker},
                "ingest": {"state": "ok" if ingest["failing_since"] is None else "down", **ingest},
                "clock": {"state": "ok" if clock_ok else "down", **clock},
                "database": {"state": "ok" if database["cannot_write_since"] is None else "down", **database}}
