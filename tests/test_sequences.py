"""Sequences of incident events, as a broker and an outbox deliver them, against ingest on a real SQLite file.

The edge sends each incident's start, updates and end once, in order; what reaches a gateway is any order with any
repeats (QoS 1 redelivery, an outbox sending again what no gateway confirmed, two gateways of one broker group), some
of it days late. Hypothesis draws such sequences, with people acting on the cases between them, and checks what a
command-centre operator relies on:

- one case per incident;
- no state change without a person but the camera's own: a recurrence reopens a closed case, a re-check closes one
  in feedback;
- a case the camera closes has the re-check evidence the pipeline requires (every incident joined to it ended
  ``left`` or ``cleared``);
- nothing silently lost: each message is applied, a duplicate of bytes already taken, or a dead letter with the
  reason; ingest keeps going.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
import tempfile
import threading
import time

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import select

from gateway.actions import act
from gateway.cases import RECHECK_REASONS
from gateway.config import TABLES_DIR, Broker, GatewayConfig, load_tables
from gateway.ingest import Ingest
from gateway.service import MqttIngest
from gateway.schema import case_incidents, dead_letters, incident_events
from gateway.storage import Store
from gateway.workflow import Action, CaseState, Role, TransitionError
from xueliang import wire
from xueliang.mqtt import make_client

from .conftest import Watcher, wait_subscribed, wait_until
from .test_gateway import NOW, START

TABLES = load_tables(TABLES_DIR / "demo.yaml")
HERE, THERE = {"lat": 39.17, "lon": 117.15}, {"lat": 39.30, "lon": 117.30}  # one place, and another


def event(incident: str, seq: int, state: str, *, camera: str = "gate", zone: str = "kerb", at: float = 0.0,
          location: dict = HERE, end_reason: str = "left", type: str = "illegal_parking", now: float = NOW
          ) -> tuple[str, bytes]:
    """One event of box-1 as its outbox holds it (the same bytes however often it is sent), ``at`` seconds after
    ten minutes before ``now``."""
    m = copy.deepcopy(START)
    started, observed = wire.iso(now - 600 + at), wire.iso(now - 600 + at + 30 * seq)
    m.update(incident_id=incident, seq=seq, state=state, camera=camera, zone=zone, type=type, location=location,
             started_at=started, observed_at=observed, confidence=round(0.5 + seq / 100, 2))
    if state == "end":
        m.update(ended_at=observed, end_reason=end_reason, evidence=None)
    return wire.incident_topic("box-1", camera), json.dumps(m).encode()


def lifecycle(incident: str, end_reason: str, **where) -> list[tuple[str, bytes]]:
    return [event(incident, 1, "start", **where), event(incident, 2, "update", **where),
            event(incident, 3, "end", end_reason=end_reason, **where)]


DAY = 86_400.0
# incidents at one place (each joins the first's case, or reopens it; one the camera lost, one days late), one
# elsewhere; then what no edge sends but a broker may deliver: an id sent again by another camera of the box, a seq
# sent again with other content (a box restarted, counting from 1), times an hour ahead of the gateway (held)
MESSAGES = (lifecycle("a", "left") + lifecycle("b", "cleared", at=120.0) + lifecycle("d", "camera_lost", at=300.0)
            + lifecycle("e", "left", at=-3 * DAY) + lifecycle("c", "camera_lost", location=THERE, zone="far")
            + [event("a", 4, "end", camera="gate-2"), event("b", 1, "start", at=900.0),
               event("f", 1, "start", at=7200.0)])
PERSON = {Action.ACKNOWLEDGE: Role.DEPARTMENT, Action.FEEDBACK: Role.DEPARTMENT, Action.CONFIRM: Role.OPERATOR,
          Action.CLOSE: Role.OPERATOR, Action.RECHECK_FAILED: Role.OPERATOR, Action.REJECT: Role.OPERATOR}
IDENTITY = ("box", "camera", "zone", "type")
APPLIED = {"case_created", "case_merged", "case_updated", "case_reopened"}


class Delivery(RuleBasedStateMachine):
    @initialize()
    def open_store(self):
        self.folder = tempfile.TemporaryDirectory()
        self.store = Store(f"sqlite:///{self.folder.name}/gw.sqlite")
        self.now = NOW
        # two gateways of one broker group on one database: either may get any message, or a redelivery of it
        self.ingests = [Ingest(self.store, TABLES, clock=lambda: self.now) for _ in range(2)]
        self.taken: dict[tuple[str, int], bytes] = {}  # (incident, seq) -> the bytes first applied
        self.first: dict[str, dict] = {}  # incident -> its first event applied

    def teardown(self):
        if hasattr(self, "store"):
            self.store.engine.dispose()
            self.folder.cleanup()

    def _account(self, items: list[tuple[str, bytes]], outcomes: list[str]) -> None:
        """Each message applied, a duplicate of the bytes taken before, or a dead letter with the reason."""
        dead = self.store.count("dead_letters")
        for (topic, body), outcome in zip(items, outcomes):
            m = json.loads(body)
            key = (m["incident_id"], m["seq"])
            if outcome in APPLIED:
                assert key not in self.taken, (key, outcome)
                first = self.first.setdefault(m["incident_id"], m)  # an incident's camera, zone and type are its own
                assert [first[k] for k in IDENTITY] == [m[k] for k in IDENTITY], (first, m)
                self.taken[key] = body
            elif outcome == "duplicate":
                assert self.taken.get(key) == body, (key, "a duplicate of bytes never taken")
            elif outcome == "ahead_of_clock":  # not acknowledged: its box sends it again
                assert wire.ahead(m, self.now) > wire.MAX_CLOCK_SKEW_S
            else:
                assert outcome == "dead_letter", outcome
        # a message set aside twice (in one batch, or again later) is one dead letter
        new = {wire.message_digest(t, b) for (t, b), o in zip(items, outcomes) if o == "dead_letter"} - self.dead_seen
        assert dead - self.dead_before == len(new)

    def _dead_digests(self) -> set[str]:
        with self.store.engine.connect() as db:
            return set(db.execute(select(dead_letters.c.digest)).scalars())

    def _before(self) -> None:
        self.dead_before, self.dead_seen = self.store.count("dead_letters"), self._dead_digests()
        self.states = {c["id"]: c["state"] for c in self.store.list_cases(limit=1000)}

    @rule(i=st.integers(0, len(MESSAGES) - 1), gateway=st.integers(0, 1))
    def deliver(self, i, gateway):
        self._before()
        self._account([MESSAGES[i]], [self.ingests[gateway].handle(*MESSAGES[i])])
        self._only_the_camera_moved()

    @rule(picks=st.lists(st.integers(0, len(MESSAGES) - 1), min_size=1, max_size=8), gateway=st.integers(0, 1))
    def deliver_batch(self, picks, gateway):
        self._before()
        items = [MESSAGES[i] for i in picks]
        self._account(items, self.ingests[gateway].handle_batch(items))
        self._only_the_camera_moved()

    @rule(action=st.sampled_from(sorted(PERSON)), pick=st.integers(0, 3))
    def person_acts(self, action, pick):
        listed = self.store.list_cases(limit=1000)
        if not listed:
            return
        case = listed[pick % len(listed)]
        try:
            done = act(self.store, case["id"], action, PERSON[action], "someone", self.now, TABLES, lambda c: True)
        except TransitionError:
            return
        if action == Action.FEEDBACK and done["state"] == CaseState.CLOSED.value:  # the camera saw it gone before
            self._has_recheck_evidence(done)

    @rule(minutes=st.sampled_from([1, 20, 90]))
    def time_passes(self, minutes):
        self.now += 60 * minutes

    def _only_the_camera_moved(self) -> None:
        """What a message did to a case's state: a recurrence reopened it, or a re-check closed it in feedback."""
        for case in self.store.list_cases(limit=1000):
            before = self.states.get(case["id"])
            if before is None or before == case["state"]:
                continue
            assert (before, case["state"]) in {("closed", "dispatched"), ("feedback", "closed")}, \
                (case["id"], before, case["state"])
            if case["state"] == CaseState.CLOSED.value:
                self._has_recheck_evidence(case)

    def _has_recheck_evidence(self, case: dict) -> None:
        with self.store.engine.connect() as db:
            joined = {r[0] for r in db.execute(select(case_incidents.c.incident_id)
                                               .where(case_incidents.c.case_id == case["id"]))}
            ended = {r[0]: json.loads(r[1])["end_reason"] for r in db.execute(
                select(incident_events.c.incident_id, incident_events.c.payload)
                .where(incident_events.c.state == "end", incident_events.c.incident_id.in_(joined)))}
        assert case["end_reason"] in RECHECK_REASONS, case
        assert set(ended) == joined, (case["id"], joined, ended)

    @invariant()
    def one_case_per_incident(self):
        if not hasattr(self, "store"):
            return
        with self.store.engine.connect() as db:
            seen = {r[0] for r in db.execute(select(incident_events.c.incident_id))}
            linked = [r[0] for r in db.execute(select(case_incidents.c.incident_id))]
        assert sorted(linked) == sorted(seen)  # each incident with an event taken is in exactly one case

    @invariant()
    def a_case_shows_its_incidents_latest_event(self):
        for case in self.store.list_cases(limit=1000) if hasattr(self, "store") else []:
            own = max(seq for (incident, seq) in self.taken if incident == case["incident_id"])
            assert case["last_seq"] == own, (case["id"], case["last_seq"], own)


@pytest.mark.slow
def test_any_order_and_any_repeat_of_events_keeps_the_operators_invariants():
    run = Delivery.TestCase
    run.settings = settings(max_examples=60, stateful_step_count=25, deadline=None, database=None,
                            suppress_health_check=[HealthCheck.too_slow])
    run().runTest()


def test_an_incident_id_another_camera_zone_or_type_of_its_box_sends_is_a_dead_letter(tmp_path):
    """A box that numbers incidents per camera (another maker's) sends id 17 from two cameras: the second camera's
    update rewrote the first's case with a box in another picture, and its end ``left`` was the case's re-check and
    closed it. An incident's camera, zone and type are its first event's: an event saying otherwise is a dead letter
    naming both, and the case stays as its own incident left it."""
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, TABLES, clock=lambda: NOW)
    assert ingest.handle(*event("17", 1, "start")) == "case_created"
    assert act(store, 1, Action.FEEDBACK, Role.DEPARTMENT, "police", NOW, TABLES, lambda c: True)["state"] == "feedback"
    before = store.get_case(1)
    others = [event("17", 2, "update", camera="gate-2"), event("17", 3, "end", camera="gate-2"),
              event("17", 4, "end", zone="footpath"), event("17", 5, "end", type="spill")]
    assert ingest.handle_batch(others[:2]) == ["dead_letter"] * 2
    assert [ingest.handle(*m) for m in others[2:]] == ["dead_letter"] * 2
    assert store.get_case(1) == before  # still in feedback, its picture and its end untouched
    reasons = [d["reason"] for d in reversed(store.list_dead_letters())]
    assert reasons[0] == ("incident '17' is camera 'gate' zone 'kerb' illegal_parking (its first event); this event "
                          "says camera 'gate-2' zone 'kerb' illegal_parking: an incident's camera, zone and type never "
                          "change")
    assert "zone 'footpath'" in reasons[2] and "zone 'kerb' spill:" in reasons[3]
    assert ingest.handle(*event("17", 2, "end")) == "case_updated"  # its own camera's end closes it
    assert store.get_case(1)["state"] == "closed"


@pytest.mark.slow
def test_an_outbox_flushed_twice_to_two_gateways_of_one_group_is_each_incidents_one_case(tmp_path, broker):
    """A box back after a day offline sends its outbox (each incident's start, update and end, a day old), then,
    nothing confirmed yet, all of it again; two gateways of one broker group on one SQLite file split it as the broker
    chooses. Each incident is one case with its end; every message is acknowledged to the box, applied once (the other
    copy a duplicate); nothing is a dead letter."""
    database = f"sqlite:///{tmp_path}/gw.sqlite"
    stores = [Store(database) for _ in range(2)]
    gateways = [MqttIngest(GatewayConfig(broker=Broker(port=broker.port, client_id=f"gw-{i}")),
                           Ingest(store, TABLES, clock=time.time)) for i, store in enumerate(stores)]
    acks = Watcher(broker.port, [wire.ack_topic("box-1")])
    box = make_client("box-1")
    try:
        for g in gateways:
            g.start()
        for g in gateways:
            wait_subscribed(g)
        box.connect("127.0.0.1", broker.port)
        box.loop_start()
        outbox = [m for i in range(12) for m in lifecycle(f"i-{i}", "left", location={"lat": 39.0 + i * 0.01,
                                                                                      "lon": 117.0},
                                                           now=time.time() - DAY)]
        for topic, body in outbox + outbox:
            box.publish(topic, body, qos=1).wait_for_publish(5)
        digests = {wire.message_digest(t, b) for t, b in outbox}

        def acknowledged() -> set[str]:
            return {digest for _, ack in list(acks.messages) for digest in wire.decode_ack(ack)}

        taken = lambda: sum(g.outcomes.total() for g in gateways)  # noqa: E731
        wait_until(lambda: taken() == 2 * len(outbox) and acknowledged() == digests, 20,
                   message="every copy taken and every message acknowledged")
        told = sum((g.outcomes for g in gateways), Counter())
        assert told["duplicate"] == len(outbox) and told.total() == 2 * len(outbox), told  # each applied once
        store = stores[0]
        assert store.count("dead_letters") == 0
        cases = store.list_cases(limit=100)
        assert sorted(c["incident_id"] for c in cases) == [f"i-{i}" for i in sorted(range(12), key=str)]
        assert all(c["end_reason"] == "left" and c["last_seq"] == 3 for c in cases), cases
    finally:
        box.loop_stop()
        acks.stop()
        for g in gateways:
            g.stop()


@pytest.mark.slow
def test_a_message_sent_twice_in_one_batch_is_acknowledged_with_what_it_did(tmp_path, broker):
    """A box sends a start again before any gateway confirmed it (``resend_after_s``), and both copies reach one
    gateway's batch: the first opens the case, the second is a duplicate of it. The acknowledgement named the message
    once, with the last copy's outcome ("duplicate"), though the message made the case: it says "case_created"."""
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    gateway = MqttIngest(GatewayConfig(broker=Broker(port=broker.port, client_id="gw-0")),
                         Ingest(store, TABLES, clock=time.time))
    # both copies wait in its queue before its worker takes any, as they do while it commits an earlier batch

    def work() -> None:
        wait_until(lambda: gateway.queue.qsize() == 2, 10, message="both copies waiting")
        gateway._work()

    gateway.worker = threading.Thread(target=work, name="ingest", daemon=True)
    acks = Watcher(broker.port, [wire.ack_topic("box-1")])
    box = make_client("box-1")
    try:
        gateway.start()
        wait_subscribed(gateway)
        box.connect("127.0.0.1", broker.port)
        box.loop_start()
        start = event("i-1", 1, "start", now=time.time())
        for _ in range(2):
            box.publish(*start, qos=1).wait_for_publish(5)
        wait_until(lambda: acks.messages and gateway.outcomes.total() == 2, 10, message="the acknowledgement")
        assert gateway.outcomes == Counter(case_created=1, duplicate=1)  # one batch: one acknowledgement
        assert [wire.decode_ack(ack) for _, ack in acks.messages] == [{wire.message_digest(*start): "case_created"}]
    finally:
        box.loop_stop()
        acks.stop()
        gateway.stop()
