"""The gateway process: MQTT ingest through a shared subscription, the clock, notices, and the HTTP API;
and the retirement of a gateway identity no process runs under any more (``retire_gateway``).

Notices (a case dispatched, a case escalated) are rows of the case log; a worker publishes
each on MQTT with QoS 1 and marks it published (a conditional update, so several gateway
processes are safe). The clock finds overdue cases and escalates them (二次吹哨).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Iterator, Sequence
import contextlib
import gc
import json
import logging
import queue
import resource
import signal
import socket
import sys
import threading
import time

import uvicorn
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.subscribeoptions import SubscribeOptions
from paho.mqtt.properties import Properties

from gateway import check, connections, presentation, storage, verdicts
from gateway.api import create_app
from gateway.actions import perform
from gateway.cases import escalation, running_deadline
from gateway.config import Broker, GatewayConfig, GatewayConfigError, Http, Tables, load_tables
from gateway.ingest import UNACKNOWLEDGED, DatabaseUnavailable, Ingest, Outcomes, told
from gateway.metrics import CLOCK_FAILURES, DEAD_LETTERS_DELETED, HEARTBEATS, NOTICES, Health
from gateway.storage import Store
from gateway.tally import MinuteTally
from gateway.workflow import CENTRE_CLOCK, Action, CaseState, Role, TransitionError
from xueliang import wire
from xueliang.mqtt import SAY_AGAIN_S, disconnected, make_client

log = logging.getLogger(__name__)
# the boxes' status too, shared: the boxes' table is the gateways' one database; QoS 1 for the last wills, kept
# for a gateway that is down (the heartbeats themselves are QoS 0: what a gateway misses, the next one replaces)
SHARED_SUBSCRIPTIONS = tuple(wire.SHARE_GROUP + topic for topic in (wire.INCIDENT_SUBSCRIPTION, wire.EVIDENCE_SUBSCRIPTION,
                                                                wire.STATUS_SUBSCRIPTION))
# messages wait this long at the broker for a gateway that is down (a restart, an upgrade); a gateway identity
# that never comes back keeps its share of the city's messages as long, unless it is retired (``retire_gateway``)
SESSION_EXPIRY_S = 7 * 86400
# a retired identity's session gave nothing more for this long after its last message and its last acknowledgement
# (which lets the broker send what it held back for the receive maximum): it has given all it held
RETIRE_QUIET_S = 3.0
RETIRE_CONNECT_S = 30.0  # a broker that does not answer a retire in this long is named as unreachable
NOTICES_ACTIONS = ("dispatched", "escalate")  # the case log rows that are also notices
NOTICES_PER_ROUND = 1000
ORPHAN_EVIDENCE_S = 3600.0  # evidence waits this long for its incident before it is quarantined
ORPHANS_PER_ROUND = 100  # set aside in one transaction; a full round has the clock go round again at once
DEAD_LETTERS_PER_ROUND = 1000  # deleted in one transaction; a full round has the clock go round again at once
DEAD_LETTER_BYTES_EVERY_S = 60.0  # the dead letters' budget is looked at this often (every row's header is read)
INGEST_RETRIES = "ingest (its batch kept unacknowledged, tried again every 2 s)"
PUSH_BACK_S = 3600.0  # a case the clock cannot escalate is looked at again after this long
# the clock goes round this often at least, whatever escalation_check_s (up to an hour) says of escalation: the dead
# letters', refused heartbeats' and (0, 0) cameras' minute said (ingest.DeadLetterLog, boxes.RefusalLog), pictures
# set aside and dead letters deleted within a minute
CLOCK_ROUND_MAX_S = 60.0
# Python's cyclic collector runs its youngest generation every 700 container allocations by default, and a report of
# a year's city allocates ~40,000 dicts that all survive the request: each is walked again and again as it is
# promoted. At 10,000 (bench/gateway_scale.py --cases 100000, medians, same run, against 700): /reports/daily
# 388 -> 243 ms, weekly 484 -> 323, /ui/reports 376 -> 227; at 20,000 cases and for ingest (0.34 ms/message) the
# same within noise, as is gc.freeze() on top. The cyclic garbage it lets wait is at most ~10,000 objects.
GC_YOUNG_THRESHOLD = 10_000
# on SIGTERM the requests still running get this long (uvicorn's graceful shutdown), then are cancelled: a client that
# sent half a request and went quiet kept the stop waiting with no end, until the service manager's SIGKILL (30 s)
STOP_REQUESTS_S = 5
STOP_CLOCK_S = 5.0  # the clock's round under way gets this long to end before the database is closed


class MqttIngest:
    """Subscribes with a persistent session so messages wait at the broker while the gateway is down.

    Messages queue up as they arrive; a worker takes whatever is waiting (up to
    ``BATCH_MAX``) and commits it in one transaction, and only then acknowledges each
    message to the broker (manual PUBACK). A gateway that dies before its commit leaves
    the messages unacknowledged, so the broker delivers them again; ingest is idempotent.
    Then it tells each box what became of its messages (``xl/v1/{box}/ack``): a box keeps a
    message until a gateway has said so, whatever the broker lost in between.

    ``retiring``: the session of an identity no gateway runs under any more is taken back (see
    ``retire_gateway``): no reconnection, and the shared subscriptions are dropped instead of made,
    so the broker sends only what the session holds.
    """

    BATCH_MAX = 500
    RECEIVE_MAXIMUM = 2000  # unacknowledged messages the broker may send ahead
    # QoS 0 messages (the boxes' heartbeats) are not held back by RECEIVE_MAXIMUM: while the database is slow or
    # down they are dropped once this many messages wait (the next heartbeat replaces each), not kept in memory
    WAITING_MAX = RECEIVE_MAXIMUM + BATCH_MAX

    def __init__(self, config: GatewayConfig, ingest: Ingest, health: Health | None = None, retiring: bool = False,
                 first_start: bool = False):
        self.config, self.ingest, self.retiring = config, ingest, retiring
        self.first_start = first_start  # its database was made at this start: no gateway ran on it before
        b = config.broker
        self.client = make_client(b.identity, b.username, b.password, b.tls_ca, manual_ack=True, reconnect=not retiring)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = self._on_unsubscribe
        self.client.reconnect_delay_set(0.5, 2)
        self.queue: queue.Queue = queue.Queue()
        self.state = health or Health()
        self.stopping = threading.Event()
        self.failures = Failures()  # the database down: said once a minute, not at every try
        self.worker = threading.Thread(target=self._work, name="ingest", daemon=True)
        self.on_connected = lambda: None  # (paho's thread) e.g. send the boxes' suppressions again
        self.outcomes: collections.Counter = collections.Counter()  # what became of the messages taken
        self.session_present: bool | None = None  # as the broker said at the last connection
        self.cut_off: str | None = None  # retiring: why the broker ended the connection (another client took it)
        self.unsubscribed = threading.Event()
        self.quiet_since = time.monotonic()  # retiring: the last message, acknowledgement or unsubscription

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = self.RECEIVE_MAXIMUM
        b = self.config.broker
        self.worker.start()
        self.client.connect_async(b.host, b.port, keepalive=15, clean_start=False, properties=props)
        self.client.loop_start()

    def stop(self, end_session: bool = False) -> None:
        """Disconnect; the session waits at the broker for the next start, or with ``end_session`` is
        ended (session expiry 0): the broker forgets its subscriptions and sends it nothing more."""
        self.stopping.set()
        self.worker.join(timeout=10)
        props = None
        if end_session:
            props = Properties(PacketTypes.DISCONNECT)
            props.SessionExpiryInterval = 0
        self.client.disconnect(properties=props)
        self.client.loop_stop()

    def drained(self, quiet_s: float) -> bool:
        """Retiring: the subscriptions dropped, every message taken committed and acknowledged, and none came for
        ``quiet_s`` since the last acknowledgement either: the broker sends a session at most ``RECEIVE_MAXIMUM``
        ahead of its acknowledgements, and the rest as they come (counted from the last message only, a commit slower
        than ``quiet_s`` had the session ended at its acknowledgement, and the broker dropped what that let it send)."""
        return (self.unsubscribed.is_set() and self.queue.unfinished_tasks == 0
                and time.monotonic() - self.quiet_since >= quiet_s)

    def _work(self) -> None:
        while not self.stopping.is_set():
            try:
                batch = [self.queue.get(timeout=0.5)]
            except queue.Empty:
                continue
            while len(batch) < self.BATCH_MAX:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            while not self.stopping.is_set():
                try:
                    outcomes = self.ingest.handle_batch([(topic, payload) for topic, payload, _, _ in batch])
                    self.state.committed(outcomes)
                    self.failures.worked(INGEST_RETRIES)
                    break
                except Exception as exc:  # the database failed: keep the batch, unacknowledged, and try again
                    self.failures.failed(INGEST_RETRIES, exc, time.monotonic())
                    self.state.failed(f"{type(exc).__name__}: {exc}", cannot_write=isinstance(exc, DatabaseUnavailable))
                    self.stopping.wait(2.0)
            else:
                return  # stopping: unacknowledged messages are delivered again to the next session
            for _, _, mid, qos in batch:
                if qos:
                    self.client.ack(mid, qos)
            self._confirm(batch, outcomes)
            self.outcomes.update(outcomes)
            self.quiet_since = time.monotonic()  # before the batch is done: drained() waits from its acknowledgement
            for _ in batch:
                self.queue.task_done()

    def _confirm(self, batch: list, outcomes: Outcomes) -> None:
        """Acknowledge the committed batch to the boxes it came from, one message per box; dead
        letters too (they are accounted for, and a box must not send them again), never a held incident
        (its box keeps it and sends it again) nor a status message (no outbox keeps it) but the heartbeat of a box
        that asks the time (``outcomes.asking``). ``at`` is the gateway's clock: a box learns it from it."""
        by_box: dict[str, dict[str, str]] = {}
        for i, ((topic, payload, _, _), outcome) in enumerate(zip(batch, outcomes)):
            if outcome in UNACKNOWLEDGED and i not in outcomes.asking:
                continue
            try:
                messages = by_box.setdefault(wire.sender(topic), {})
            except wire.WireError:  # not a box's topic: nobody to tell
                continue
            digest = wire.message_digest(topic, payload)
            messages[digest] = told(outcome, messages.get(digest))
        at = self.ingest.clock()
        for box, messages in by_box.items():
            try:
                self.client.publish(wire.ack_topic(box), wire.encode_ack(self.config.broker.identity, at, messages),
                                    qos=1)
            except Exception:  # never stops ingest: the box sends them again, and it is logged here
                log.exception("acknowledgement of %d message(s) to box %r not sent", len(messages), box[:64])

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            client.on_connect_fail.refused(client, reason_code, self.config.broker.username)
            self.state.broker_up(False, f"refused: {reason_code}")
            if self.retiring:
                self.cut_off = f"the broker refused the connection ({reason_code}): check the config's account"
            return
        self.state.broker_up(True)
        client.on_connect_fail.reached()
        self.session_present = bool(flags.session_present)
        identity = self.config.broker.identity
        if self.retiring:  # the session gives what it holds; nothing new is shared out to it
            client.unsubscribe(list(SHARED_SUBSCRIPTIONS))
            return
        log.info("gateway %r connected to broker; subscribing", identity)
        # no session at the first connection to a database made at this start is a first start's (the demo's, each
        # time); at a later one, or on a database a gateway used before, it may be a session the broker lost
        first, self.first_start = self.first_start, False
        if not self.session_present:
            log.log(logging.INFO if first else logging.WARNING,
                    "the broker held no session for gateway identity %r: %s. A gateway that ran under another identity "
                    "keeps its share of the city's messages at the broker for %d days after it stopped: end its "
                    "session with `xueliang gateway --config CONFIG --retire OLD_IDENTITY`", identity,
                    "a first start (its database was made now)" if first else
                    "a first start, a new identity, or a broker that lost its sessions", SESSION_EXPIRY_S // 86400)
        # no retained message at subscribe time: boxes never retain incidents or evidence, and a retained one (a
        # hostile or broken client's) came again at every reconnect, each time one more dead letter; a retained
        # status is old news (the box's row keeps what was heard, when it was heard)
        fresh = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
        client.subscribe([(topic, fresh) for topic in SHARED_SUBSCRIPTIONS])
        self.on_connected()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        let_in = client.on_connect_fail.lost(client, self.config.broker.tls_ca is not None)  # else said there
        if self.stopping.is_set() and not reason_code.is_failure:  # its own goodbye as it stops: nothing to act on
            log.info("gateway disconnected from broker (the gateway is stopping)")
        elif let_in:
            log.warning("gateway disconnected from broker: %s", disconnected(reason_code, flags))
        self.state.broker_up(False, f"disconnected: {disconnected(reason_code, flags)}")
        if self.retiring and not self.stopping.is_set():
            self.cut_off = (f"the broker ended the connection ({reason_code}), as it does when another client connects "
                            "under the same identity (a gateway still running under it)")

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        refused = [f"{topic} ({code})" for topic, code in zip(SHARED_SUBSCRIPTIONS, reason_codes) if code.is_failure]
        if refused:
            log.error("the broker refused gateway %r the subscription to %s: it is sent none of those messages; check "
                      "the broker's ACL for its account (the deploy broker's: a gateway account, xueliang "
                      "broker-account FILE gateway NAME)", self.config.broker.identity, ", ".join(refused))
            self.state.broker_subscribed(f"subscription refused: {', '.join(refused)}")
            return
        log.info("gateway %r subscribed: the broker shares the city's messages with it", self.config.broker.identity)
        self.state.broker_subscribed()

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self.quiet_since = time.monotonic()
        self.unsubscribed.set()

    def _on_message(self, client, userdata, msg) -> None:
        self.quiet_since = time.monotonic()
        if msg.qos == 0 and self.queue.qsize() >= self.WAITING_MAX:
            HEARTBEATS.labels("dropped").inc()
            return
        # the raw topic: paho's ``msg.topic`` raises on bytes that are not UTF-8, in paho's own thread
        self.queue.put((msg._topic.decode("utf-8", "replace"), msg.payload, msg.mid, msg.qos))


class Failures:
    """Says a failure that repeats (ingest or a clock step while the database is down): with its traceback the first
    time, and again once ``SAY_AGAIN_S`` passed (whatever the reason: a database going away fails by turns with
    "disk I/O error" and "unable to open"), with how many tries failed since it was last said; its end once it works
    again. A PostgreSQL stopped for 30 s wrote 226 tracebacks (the clock's three steps each round, ingest every
    2 s): an hour's outage some 20 MB of the same lines."""

    def __init__(self) -> None:
        self._said: dict[str, tuple[float, int]] = {}  # what failed: (when it was last said, tries failed since)

    def failed(self, what: str, exc: BaseException, now: float) -> None:
        said = self._said.get(what)
        if said is None or now - said[0] >= SAY_AGAIN_S:
            again = f" ({said[1]} more tr{'y' if said[1] == 1 else 'ies'} failed since it was last said)" \
                if said and said[1] else ""
            log.error("%s failed%s", what, again, exc_info=exc)
            self._said[what] = (now, 0)
        else:
            self._said[what] = (said[0], said[1] + 1)

    def worked(self, what: str) -> None:
        if (said := self._said.pop(what, None)) is not None:
            log.info("%s works again (%d tr%s failed since it was last said)", what, said[1] + 1,
                     "y" if said[1] == 0 else "ies")


class SuppressionSender:
    """Sends a box its whole list of suppressions (retained, QoS 1, ``wire.suppressions_topic``)
    after it changed, and every box's list after each connection to the broker (a broker that lost
    its retained messages gets them again). Several gateways sending the same list is harmless."""

    def __init__(self, store: Store, client):
        self.store, self.client = store, client
        self._lock = threading.Lock()
        self._due: set[str] = set()
        self._everyone = True

    def mark(self, box: str | None = None) -> None:
        """Send ``box``'s list (every box's when None) at the clock's next round."""
        with self._lock:
            if box is None:
                self._everyone = True
            else:
                self._due.add(box)

    def send(self, now: float) -> int:
        with self._lock:
            due, everyone = self._due, self._everyone
            self._due, self._everyone = set(), False
        if everyone:
            due |= set(verdicts.boxes(self.store))
        sent, again = 0, set()
        for box in sorted(due):
            try:
                payload = verdicts.box_payload(self.store, box, now)
            except wire.WireError:  # a stored row the schema refuses: said in the log, never retried each round
                log.exception("suppressions of box %r not sent", box[:64])
                continue
            if self.client.publish(wire.suppressions_topic(box), payload, qos=1, retain=True).rc != 0:
                again.add(box)
            else:
                sent += 1
        if again:
            with self._lock:
                self._due |= again
        return sent


def budget_share(bytes_by_box: dict[str, int], keep_bytes: int) -> int | None:
    """What each box's dead letters may keep of ``keep_bytes`` (the city's ``dead_letter_mb``) where all boxes'
    together are over it: a box under the share keeps all its own, each box over it its newest up to it; None where
    all are within the budget. One box flooding bad messages loses its own oldest, not every other box's (past the
    budget the oldest of all were deleted: a few minutes of one box's flood and every box's were gone).

    >>> budget_share({"flood": 900, "a": 50, "b": 10}, 1000), budget_share({"flood": 2000, "a": 50, "b": 10}, 1000)
    (None, 940)
    >>> budget_share({"x": 600, "y": 600, "a": 100}, 1000)  # two over it share what the others leave
    450
    """
    if sum(bytes_by_box.values()) <= keep_bytes:
        return None
    left, sizes = keep_bytes, sorted(bytes_by_box.values())
    for place, size in enumerate(sizes):
        share = left // (len(sizes) - place)  # what the rest, this box and those larger, may have each
        if size > share:
            return share
        left -= size
    raise AssertionError("unreachable: the sizes together are over keep_bytes")


class DeadLetterRetention:
    """Deletes the dead letters past the city's retention (``dead_letter_days``, ``dead_letter_mb``), the oldest first
    (past the budget, of the boxes holding most: ``budget_share``), ``DEAD_LETTERS_PER_ROUND`` at a time. They were
    never deleted: a box flooding the gateway with bad messages (each kept with up to 64 kB of its payload) grew the
    table without end, and days alone bound nothing within them.
    The budget is looked at every ``DEAD_LETTER_BYTES_EVERY_S`` (every row's header is read), and again at once after
    a full round; each round deletes what is over it as the table stands then (``Store.delete_dead_letters_over``), so
    several gateways' clocks delete it once between them."""

    def __init__(self, store: Store, days: float, mb: int):
        self.store, self.keep_s, self.keep_bytes, self.mb = store, days * 86400.0, mb * 2**20, mb
        self.looked_at: float | None = None  # when the budget was last looked at
        self.more = False  # the last round over the budget was full: more may be over it

    def sweep(self, now: float) -> bool:
        """One round; True where more wait (a full round)."""
        old = self.store.delete_dead_letters_before(now - self.keep_s, DEAD_LETTERS_PER_ROUND)
        over: collections.Counter = collections.Counter()
        due = self.looked_at is None or not 0 <= now - self.looked_at < DEAD_LETTER_BYTES_EVERY_S
        if old < DEAD_LETTERS_PER_ROUND and (self.more or due):
            by_box = self.store.dead_letter_bytes_by_box()
            share = budget_share(by_box, self.keep_bytes)
            if share is not None:
                over = self.store.delete_dead_letters_over(
                    share, sorted((box for box, n in by_box.items() if n > share), key=by_box.get, reverse=True),
                    DEAD_LETTERS_PER_ROUND - old)
            self.more, self.looked_at = over.total() == DEAD_LETTERS_PER_ROUND - old, now
        if old:
            DEAD_LETTERS_DELETED.labels("age").inc(old)
            log.info("%d dead letter(s) deleted, received more than %g days ago (dead_letter_days)", old,
                     self.keep_s / 86400)
        if over:
            DEAD_LETTERS_DELETED.labels("budget").inc(over.total())
            boxes = ", ".join(f"box {box!r} {n}" if box else f"of no box {n}" for box, n in over.most_common(5))
            log.info("%d dead letter(s) deleted past the dead letters' %d MB (dead_letter_mb), the oldest of the "
                     "boxes holding most (each box keeps its newest up to %.1f MB): %s%s", over.total(), self.mb,
                     share / 2**20, boxes, f", and {len(over) - 5} more box(es)" if len(over) > 5 else "")
        return old == DEAD_LETTERS_PER_ROUND or self.more


def escalation_due(now: float, escalated_at: float | None, every_s: float) -> bool:
    """Whether the clock's round at ``now`` looks for overdue cases, the last look at ``escalated_at`` (None: never):
    ``every_s`` (``escalation_check_s``) after it, or at once where the clock was set back.

    >>> escalation_due(100.0, None, 3600.0), escalation_due(160.0, 100.0, 3600.0), escalation_due(3700.0, 100.0, 3600.0)
    (True, False, True)
    """
    return escalated_at is None or not 0 <= now - escalated_at < every_s


def clock_wait(now: float, escalated_at: float, every_s: float) -> float:
    """How long the clock waits for its next round after one at ``now``: until escalation is due, ``CLOCK_ROUND_MAX_S``
    at most. It waited ``escalation_check_s`` (up to an hour), and the other steps with it.

    >>> clock_wait(100.0, 100.0, 3600.0), clock_wait(100.0, 100.0, 5.0), clock_wait(3680.0, 100.0, 3600.0)
    (60.0, 5.0, 20.0)
    """
    return min(CLOCK_ROUND_MAX_S, max(0.0, escalated_at + every_s - now))


class Clock(threading.Thread):
    """Escalates overdue cases every ``every_s``, and at each round, ``CLOCK_ROUND_MAX_S`` apart at most or at once when
    woken, publishes the notices the case log holds and the boxes' suppressions, sets pictures aside, deletes dead
    letters and says the minute's count of dead letters, of refused heartbeats and of cameras at (0, 0) not said one by
    one."""

    def __init__(self, store: Store, tables: Tables, client, every_s: float, health: Health | None = None,
                 suppressions: SuppressionSender | None = None, retention: DeadLetterRetention | None = None,
                 summaries: Sequence[MinuteTally] = ()):
        super().__init__(name="clock", daemon=True)
        self.store, self.tables, self.client, self.every_s = store, tables, client, every_s
        self.suppressions = suppressions
        # ingest's logs of what it says a few of a minute (its dead letters, refused heartbeats, cameras at (0, 0)):
        # each minute's count of the rest said at the round after the minute
        self.summaries = tuple(summaries)
        self.retention = retention or DeadLetterRetention(store, 90.0, 1024)
        self.health = health or Health(every_s)
        self.failures = Failures()
        self.wake = threading.Event()
        self.stop = threading.Event()

    def escalate_overdue(self, now: float) -> int:
        done = 0
        for case in self.store.overdue(now):
            try:
                what = ("re-check" if case["state"] == CaseState.FEEDBACK.value else
                        "review" if case["state"] in {s.value for s in CENTRE_CLOCK} else "deadline")
                to = escalation(case, self.tables.category(case["type"]), self.tables, now)["escalated_grid"]
                with self.store.begin() as db:
                    changed = perform(db, case, Action.ESCALATE, Role.SYSTEM, "clock", now, self.tables,
                                      f"overdue: the {what} passed at {wire.iso(running_deadline(case))}; "
                                      f"level {case['level'] + 1}, to {to}")
                log.info("case %s escalated to %s", case["id"], changed["escalated_grid"])
                done += 1
            except (TransitionError, storage.ConflictError) as exc:  # changed meanwhile: next round decides
                log.warning("case %s not escalated: %s", case["id"], exc)
            except Exception as exc:  # one bad row never stops the clock: it is pushed back, not retried each round
                log.exception("case %s cannot be escalated; looked at again in %.0f s", case["id"], PUSH_BACK_S)
                CLOCK_FAILURES.labels("escalate").inc()
                with self.store.begin() as db:
                    storage.update_case(db, case["id"], {"next_escalation_at": now + PUSH_BACK_S})
                    storage.log(db, case["id"], now, "clock", Role.SYSTEM, "escalation_failed", case["state"],
                                case["state"], f"{type(exc).__name__}: {exc}"[:500])
        return done

    def notice(self, row: dict, case: dict, now: float) -> tuple[str, bytes]:
        """The topic and payload of one notice, checked against ``xueliang/schema/notice.schema.json``;
        WireError or ValueError when the stored case cannot make one."""
        body = presentation.notice(row, case, self.tables, now)
        return wire.notice_topic(body), wire.encode_notice(body)

    def publish_notices(self, now: float) -> None:
        """Send the notices the case log holds (dispatch, escalation), a round at a time: one read
        of their cases and one write marking them sent (a burst of new cases is thousands). A notice
        that cannot be built is set aside (marked, and a dead letter says why), never retried."""
        rows = self.store.unpublished(NOTICES_ACTIONS, limit=NOTICES_PER_ROUND)
        cases = self.store.cases_by_id({row["case_id"] for row in rows})
        sent = []
        for row in rows:
            case = cases.get(row["case_id"])
            if case is None:
                continue
            try:
                topic, payload = self.notice(row, case, now)
                info = self.client.publish(topic, payload, qos=1)
            except Exception as exc:  # built only from checked values; a row from before the checks
                log.exception("notice %s of case %s set aside", row["id"], row["case_id"])
                self.store.dead_letter(f"notice:{row['action']}:case/{row['case_id']}",
                                       f"notice set aside: {type(exc).__name__}: {exc}"[:1000],
                                       json.dumps(row, default=str).encode(), now)
                NOTICES.labels("set_aside").inc()
                sent.append(row["id"])
                continue
            if info.rc != 0:
                break  # not connected: the rest next round
            NOTICES.labels("sent").inc()
            sent.append(row["id"])
        self.store.mark_published(sent, now)
        if len(rows) == NOTICES_PER_ROUND and len(sent) == len(rows):
            self.wake.set()  # more are waiting

    def quarantine(self, now: float) -> int:
        """Set aside the pictures no event named within ``ORPHAN_EVIDENCE_S``, a round at a time, going round again at
        once after a full one: 100 a round (every 5 s) fell behind a box sending pictures faster than 20 a second."""
        moved = self.store.quarantine_orphan_evidence(now - ORPHAN_EVIDENCE_S, now, ORPHANS_PER_ROUND)
        if moved == ORPHANS_PER_ROUND:
            self.wake.set()
        return moved

    def delete_dead_letters(self, now: float) -> None:
        if self.retention.sweep(now):
            self.wake.set()

    def run(self) -> None:
        steps = (("escalate", self.escalate_overdue), ("notices", self.publish_notices),
                 ("quarantine", self.quarantine), ("dead_letters", self.delete_dead_letters))
        if self.suppressions is not None:
            steps += (("suppressions", self.suppressions.send),)
        steps += tuple((f"log_summary_{n}", summary.flush) for n, summary in enumerate(self.summaries))
        failing: set[str] = set()  # the steps whose last run failed (escalation's stays so between its runs)
        escalated_at = None
        while not self.stop.is_set():
            now = time.time()
            for name, step in steps:  # each on its own: a failing step does not keep the others from running
                if name == "escalate":  # at its own cadence: a round woken by a new case, or the minute's, is not it
                    if not escalation_due(now, escalated_at, self.every_s):
                        continue
                    escalated_at = now
                try:
                    step(now)
                    failing.discard(name)
                    self.failures.worked(f"clock step {name}")
                except Exception as exc:
                    CLOCK_FAILURES.labels(name).inc()
                    failing.add(name)
                    self.failures.failed(f"clock step {name}", exc, time.monotonic())
            self.health.clock_round([name for name, _ in steps if name in failing])
            self.wake.wait(clock_wait(time.time(), escalated_at, self.every_s))
            self.wake.clear()


def listen(http: Http) -> socket.socket:
    """The HTTP API's socket, bound; GatewayConfigError naming the field when the host does not resolve
    or the port is taken (another gateway, another service)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(http.host, http.port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (OSError, UnicodeError) as exc:
        raise GatewayConfigError(f"http.host {http.host!r}: not an address of this machine ({exc})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a restart need not wait
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise GatewayConfigError(f"http.port {http.port}: cannot listen on {http.host}:{http.port} "
                                 f"({exc.strerror or exc}); is another gateway running there?") from None
    return sock


def stop_on_sigterm(signum, frame) -> None:
    raise SystemExit(0)


def stopping_already(signum, frame) -> None:
    """A signal during the stop (a second SIGTERM, Ctrl-C again, the demo's SIGTERM after the terminal's SIGINT):
    said, and the stop goes on. It raised SystemExit or KeyboardInterrupt wherever the stop was, in the database's
    close too: the database left open, an SQLite file's last writes in the write-ahead log beside it. The stop past
    its requests is bounded (the clock STOP_CLOCK_S, ingest 10 s, the close's lock wait 5 s), and a service
    manager's SIGKILL (30 s) ends it anyway."""
    log.warning("%s during the stop: ignored, the stop goes on to close the database (SIGKILL ends it at once, and "
                "leaves an SQLite file's last writes in the -wal beside it)", signal.Signals(signum).name)


@contextlib.contextmanager
def stop_not_interrupted() -> Iterator[None]:
    """SIGTERM and SIGINT only said (``stopping_already``) while the stop runs; as they were after it."""
    before = {signum: signal.signal(signum, stopping_already) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


class CancelledAtStop(logging.Filter):
    """Leaves out uvicorn's traceback of each request cancelled at the stop (``STOP_REQUESTS_S``): 60 lines of its
    own and the framework's frames, after its line that says it (``Cancel 1 running task(s), timeout graceful shutdown
    exceeded``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


CANCELLED_AT_STOP = CancelledAtStop()


def run_gateway(config: GatewayConfig) -> int:
    """Everything that can fail on a configuration (tables, database, the HTTP port) comes before
    the MQTT subscription: a gateway whose session joined the shared group and then stopped keeps,
    for the session's 7 days, every other message of the city at the broker."""
    tables = load_tables(config.tables)
    store = Store(config.database)
    with store.begin() as db:
        for line in check.start_warnings(db, tables, storage.database_where(config.database), time.time()):
            log.warning("%s", line)
    http_socket = listen(config.http)
    health = Health(min(config.escalation_check_s, CLOCK_ROUND_MAX_S))  # how often the clock goes round
    said_of_connections = connections.ConnectionLog()
    ingest = Ingest(store, tables, health=health, waiting_pictures_mb=config.waiting_pictures_mb)
    mqtt_ingest = MqttIngest(config, ingest, health, first_start=store.made)
    sender = SuppressionSender(store, mqtt_ingest.client)
    clock = Clock(store, tables, mqtt_ingest.client, config.escalation_check_s, health, sender,
                  DeadLetterRetention(store, config.dead_letter_days, config.dead_letter_mb),
                  (ingest.said, ingest.heartbeats.said, ingest.placeless_said, said_of_connections))
    ingest.on_case = lambda case_id: clock.wake.set()

    def suppressions_changed(box: str | None = None) -> None:
        sender.mark(box)
        clock.wake.set()

    mqtt_ingest.on_connected = suppressions_changed
    mqtt_ingest.start()
    clock.start()
    app = create_app(store, tables, config.http.public_read, on_change=lambda case_id: clock.wake.set(),
                     health_state=health, on_suppressions=suppressions_changed, allowed_hosts=config.http.allowed_hosts,
                     jurisdiction_id=config.http.jurisdiction_id, public_url=config.http.public_url)
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    # uvicorn stops on SIGTERM and then raises it again, to the handler it found: Python's default ended the process
    # there, before the clock and ingest below stopped (a service manager's stop killed them, exit -15); this one ends
    # it through them, exit 0, as the edge box does
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    logging.getLogger("uvicorn.error").addFilter(CANCELLED_AT_STOP)  # once, however many starts
    accept_failures = connections.AcceptFailures(said_of_connections)
    logging.getLogger("asyncio").addFilter(accept_failures)
    admission = connections.Admission(connections.connections_bound(resource.getrlimit(resource.RLIMIT_NOFILE)[0]),
                                      said_of_connections)
    try:
        # uvicorn's lines go through the command's handler (xueliang.cli.JsonLines: one JSON object a line, passwords
        # hidden), not its own (plain text amid the JSON, unmasked); no access log: a request's line is its address,
        # and a page's sign-in typed into it (?token=) was a live token in the log; a request's head and body have
        # their time, and the connections their bound (gateway/connections.py)
        server = uvicorn.Server(uvicorn.Config(app, host=config.http.host, port=config.http.port, log_level="warning",
                                               log_config=None, access_log=False, http=connections.protocol(admission),
                                               backlog=connections.BACKLOG, timeout_graceful_shutdown=STOP_REQUESTS_S))
        server.run(sockets=[http_socket])
    finally:
        logging.getLogger("asyncio").removeFilter(accept_failures)
        with stop_not_interrupted():  # a second SIGTERM or Ctrl-C ended the stop where it was
            clock.stop.set()
            clock.wake.set()
            clock.join(timeout=STOP_CLOCK_S)
            if clock.is_alive():
                log.warning("the clock's round did not end within %.0f s of the stop; the database is closed under it",
                            STOP_CLOCK_S)
            mqtt_ingest.stop()
            # the last: ingest and the clock write to it up to their stop. SQLite's write-ahead log folded into the
            # file and removed (Store.close): a stopped gateway's file, copied alone, held none of its last commits
            store.close()
            log.info("gateway stopped: its database closed")
    return 0


def retire_gateway(config: GatewayConfig, identity: str, timeout_s: float = 600.0,
                   open_store: Callable[[str], Store] = Store) -> int:
    """End the broker session of ``identity``, a gateway identity no process runs under any more (renamed, or
    a gateway taken out), as ``xueliang gateway --config CONFIG --retire IDENTITY`` does. Until it expires
    (``SESSION_EXPIRY_S``) such a session stays in the shared group and the broker keeps giving it its share
    of the city's messages, which wait there unread. This connects as the identity, takes what the session
    holds (ingested into ``config``'s database, committed, acknowledged to the broker and the boxes, as a
    running gateway does), and then ends the session. Prints what it took; 0 once the session is ended.
    ``open_store`` opens the database once the identity is found fit (the CLI's says an upgrade on stderr)."""
    b = config.broker
    if b.username and identity != b.username:
        raise GatewayConfigError(
            f"--retire {identity!r}: this config logs in as {b.username!r}, and a broker with accounts uses the user "
            f"name as the client id (deploy/mosquitto: use_username_as_clientid), so it would take {b.username!r}'s "
            f"session instead: give a config with {identity!r}'s account as broker.username and broker.password")
    try:
        old = config.model_copy(update={"broker": Broker.model_validate(b.model_dump() | {"client_id": identity})})
    except ValueError as exc:
        raise GatewayConfigError(f"--retire {identity!r}: not a client id ({exc.errors()[0]['msg']})") from None
    tables = load_tables(config.tables)
    store = open_store(config.database)
    gateway = MqttIngest(old, Ingest(store, tables, waiting_pictures_mb=config.waiting_pictures_mb), retiring=True)
    gateway.start()
    started, ended = time.monotonic(), False
    try:
        while gateway.cut_off is None and not gateway.drained(RETIRE_QUIET_S):
            if gateway.session_present is None and time.monotonic() - started > RETIRE_CONNECT_S:
                gateway.cut_off = f"no connection to the broker at {b.host}:{b.port} within {RETIRE_CONNECT_S:.0f} s"
            elif time.monotonic() - started > timeout_s:
                break
            time.sleep(0.1)
        ended = gateway.cut_off is None and gateway.drained(RETIRE_QUIET_S)
    finally:  # interrupted, cut off or not drained: the session stays, with what it still holds
        gateway.stop(end_session=ended)
        store.close()  # nothing left beside a stopped gateway's file (Store.close)
    taken = sum(gateway.outcomes.values())
    what = ", ".join(f"{outcome} {n}" for outcome, n in sorted(gateway.outcomes.items()))
    if gateway.cut_off is not None:
        print(f"error: gateway identity {identity!r}: {gateway.cut_off}. {taken} message(s) taken; its session was "
              "not ended", file=sys.stderr)
        return 1
    if not ended:
        failing = gateway.state.ingest["last_error"] if gateway.state.ingest["failing_since"] is not None else None
        why = f"the database failed: {failing}" if failing else "its session still gave messages"
        print(f"error: gateway identity {identity!r}: not done after {timeout_s:.0f} s ({why}; {taken} message(s) "
              "taken); its session was not ended: run it again", file=sys.stderr)
        return 1
    if not gateway.session_present:
        print(f"gateway identity {identity!r} held no session at the broker at {b.host}:{b.port}: nothing to retire")
    else:
        print(f"gateway identity {identity!r} retired: its session held {taken} message(s)"
              f"{f' ({what})' if what else ''}, ingested and acknowledged; the session is ended, and the broker "
              "shares no more messages with it")
    return 0
