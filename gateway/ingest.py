"""Ingest: MQTT messages in, cases created or updated, or dead letters with the reason.

``Ingest.handle(topic, payload)`` never raises for bad input: whatever a message holds, it
becomes a case event, a duplicate or a dead letter with the reason, and the process keeps
running. ``Ingest.handle_batch(items)`` does the same for many messages in one transaction:
the commit is the costly part, so a batch costs little more than one message. If anything in
the batch fails (a race with another gateway, a bug), the batch is rolled back and each
message is handled alone, so one message never costs the others. Only a failure of the
database itself (``DatabaseUnavailable``) stops ingest, and then nothing is acknowledged.
An incident whose times are ahead of the gateway's clock is held (``AHEAD_OF_CLOCK``): not acknowledged,
so its box keeps it and sends it again, and taken once the gateway's clock allows it. A box's status message
(``xl/v1/{box}/status``) is recorded or refused by ``gateway.boxes``, never a dead letter.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import re
import time
from collections.abc import Callable

from gateway import dberrors, ingestdb, storage
from gateway.actions import perform
from gateway.boxes import HEARTBEAT, HEARTBEAT_REFUSED, Heartbeat, Heartbeats, Refused, RefusalLog, clock_offset
from gateway.cases import (CAMERA_RATE_WINDOW_S, NOT_ENDED, camera_rate_note, case_grid, choose, held_for_review,
                           incident_update, is_lone_end, is_recheck, is_urgent, late_note, merged_urgent, needs_review,
                           new_case, not_its_evidence, not_its_incident, outside_its_grid, over_camera_rate,
                           pending_beside, place_locks, rejected_here, reported_late)
from gateway.config import WAITING_PICTURES_MB, Tables
from gateway.images import ImageError, check_evidence
from gateway.metrics import Health
from gateway.storage import Store
from gateway.tally import MinuteTally
from gateway.workflow import Action, CaseState, Role
from xueliang import wire

log = logging.getLogger(__name__)
AHEAD_OF_CLOCK = "ahead_of_clock"  # the outcome of a held incident: never acknowledged to its box
UNACKNOWLEDGED = frozenset({AHEAD_OF_CLOCK, HEARTBEAT, HEARTBEAT_REFUSED})  # outcomes no box is told of
# pictures kept under one incident id: a box sends a snapshot and a frame at its start and at its end (four); a box
# that sent 10,000 under one id had them all kept (a picture no event names waits ORPHAN_EVIDENCE_S to be set aside)
MAX_EVIDENCE_PER_INCIDENT = 8
# pictures of one box no event named yet, kept at most: a box sends each just before the event that names it, and
# has 1,000 messages out at most (the edge's max_unconfirmed), events held for its clock among them; a box spreading
# pictures over made-up incident ids, 8 each, had them all kept for the hour an orphan waits (``ORPHAN_EVIDENCE_S``),
# faster than the clock set them aside
MAX_UNNAMED_PER_BOX = 5000
# cameras whose location (0, 0) was said, remembered at most: a client making up box or camera names (a broker without
# the ACL) grew the set by each; one past it is said again at each incident (a city has few so configured), and of
# all, ten a minute are named (``Ingest.placeless_said``): each new name was a line, and each incident past the cap
PLACELESS_MAX = 10_000


# a flood of 10,000 bad messages wrote 10,000 warnings: each box's first few of a kind a minute are said, the rest
# counted (xl_gateway_messages_total{outcome="dead_letter"} counts each, the table keeps each) and said in one line
SAID_PER_KIND = 5  # a minute, of one box and one kind of reason (``reason_kind``)
SAID_AT_MOST = 100  # a minute, in all (a client making up box ids)


def reason_kind(reason: str) -> str:
    """A dead letter's reason without the values it quotes or counts: what its lines are limited by.

    >>> reason_kind("incident 'a-1' has 8 pictures kept already (8: ...)")
    'incident _ has _ pictures kept already (_: ...)'
    """
    return re.sub(r"'[^']*'|\"[^\"]*\"|\d+(?:\.\d+)?", "_", reason)[:120]


class DeadLetterLog(MinuteTally):
    """Says dead letters in the log: the first ``SAID_PER_KIND`` of each box and kind of reason in a minute, at
    most ``SAID_AT_MOST`` in all, one by one; the rest in one line once the minute is over, with the boxes and reasons
    that sent most (``MinuteTally``: ``flush`` at the gateway's clock's rounds too)."""

    def __init__(self, window_s: float = 60.0):
        super().__init__(_say_dead_letters_counted, per_key=SAID_PER_KIND, at_most=SAID_AT_MOST, window_s=window_s,
                         others=("(others)", ""))

    def say(self, box: str, where: str, reason: str, now: float) -> None:
        """One dead letter of ``box``; ``where`` says it in the line (``on TOPIC``, ``from box 'b'``)."""
        if n := self.take((box, reason_kind(reason)), now):
            more = " (more of the kind from this box within the minute are counted, not said one by one)" \
                if n == SAID_PER_KIND else ""
            log.warning("dead letter %s: %s%s", where, reason, more)


def _say_dead_letters_counted(quiet: collections.Counter, seconds: float) -> None:
    top = ", ".join(f"box {box[:64]!r} {n} ({kind})" for (box, kind), n in quiet.most_common(5))
    rest = len(quiet) - 5
    log.warning("%d more dead letter(s) in %.0f s not said one by one (each is in the dead letters and in "
                "xl_gateway_messages_total{outcome=\"dead_letter\"}): %s%s", quiet.total(), seconds, top,
                f", and {rest} more box(es) or reason(s)" if rest > 0 else "")


def told(outcome: str, other: str | None) -> str:
    """What a box is told of a message two copies of which came in one batch (sent again before a gateway confirmed
    it), given the outcomes of both: what the message did beats ``duplicate`` (the copy applied after it), and either
    beats a dead letter (a copy set aside on a race lost while handled alone); of two alike, the first.

    >>> told("duplicate", "case_created"), told("dead_letter", "duplicate"), told("case_created", None)
    ('case_created', 'duplicate', 'case_created')
    """
    if other is None:
        return outcome
    rank = {"dead_letter": 0, "duplicate": 1}
    return outcome if rank.get(outcome, 2) > rank.get(other, 2) else other


class Outcomes(list[str]):
    """What became of each message of a batch, in its order (``Ingest.handle_batch``): the outcomes the metrics count
    and the acknowledgements name. ``asking``: the places of the heartbeats recorded whose box asks the time
    (``Heartbeat.asks_time``), acknowledged as incidents are: told by the heartbeat as ingest checked it, its JSON
    not read twice."""

    def __init__(self, outcomes: list[str], asking: frozenset[int] = frozenset()):
        super().__init__(outcomes)
        self.asking = asking


class DatabaseUnavailable(RuntimeError):
    """The database itself failed (down, locked, full, read-only, its file gone): stop, keep the messages
    (unacknowledged, they come again), try again later. Told from a message's fault by the error
    (``dberrors.cannot_write``, ``dberrors.contended``) and by asking the database (``Store.reachable``):
    a full disk still answers reads."""


class AheadOfClock(Exception):
    """An incident right in every way but its times, further ahead of the gateway's clock than
    ``max_clock_skew_s``: its box's clock is wrong (no NTP in a street office), and the incident is real."""

    def __init__(self, box: str, message: tuple[str, int], ahead_s: float):
        super().__init__(f"box {box!r}: times {ahead_s:.0f} s ahead of the gateway's clock")
        self.box, self.message, self.ahead_s = box, message, ahead_s


def in_seq_order(work: list[tuple]) -> list[tuple]:
    """A batch's checked messages, ``(index, topic, checked)``, with each incident's events in the order of
    their ``seq``, in the places its events held (others keep theirs): a box sends an unconfirmed start
    again after ``resend_after_s``, so its end may come first, and applied first it is a lone end
    (``cases.is_lone_end``).

    >>> ev = lambda i, iid, seq: (i, wire.Topic("b", "c", "incident", None), ({"incident_id": iid, "seq": seq}, None))
    >>> [w[0] for w in in_seq_order([ev(0, "a", 3), ev(1, "x", 9), ev(2, "a", 1)])]
    [2, 1, 0]
    """
    places: dict[str, list[int]] = {}
    for place, (_, where, checked) in enumerate(work):
        if where.kind != "evidence":
            places.setdefault(checked[0]["incident_id"], []).append(place)
    ordered = list(work)
    for held in places.values():
        for place, item in zip(held, sorted((work[p] for p in held), key=lambda w: w[2][0]["seq"])):
            ordered[place] = item
    return ordered


class Ingest:
    def __init__(self, store: Store, tables: Tables, clock: Callable[[], float] = time.time,
                 on_case: Callable[[int], None] | None = None, max_clock_skew_s: float = wire.MAX_CLOCK_SKEW_S,
                 health: Health | None = None, waiting_pictures_mb: int = WAITING_PICTURES_MB):
        self.store, self.tables, self.clock = store, tables, clock
        self.waiting_pictures_mb = waiting_pictures_mb
        self.max_clock_skew_s = max_clock_skew_s
        self.on_case = on_case or (lambda case_id: None)
        self.health = health or Health()  # lists the boxes whose incidents are held for their clocks
        self.heartbeats = Heartbeats()
        self.placeless: set[tuple[str, str]] = set()  # cameras at (0, 0) already said, PLACELESS_MAX at most
        self.placeless_said = RefusalLog(what="camera(s) sending location (0, 0)", logger=log,
                                         counted="each taken as no location, as those named")
        self.said = DeadLetterLog()
        self._rate_held: set[int] = set()  # the cases the transaction under way holds for their camera's rate

    def handle(self, topic: str, payload: bytes) -> str:
        """Process one message in a transaction of its own; returns what happened (for logs and
        tests). A bad message becomes a dead letter; only DatabaseUnavailable is raised."""
        now = self.clock()
        self.said.flush(now)
        self.placeless_said.flush(now)
        box = wire.status_box(topic)
        for attempt in range(3):
            try:
                if box is not None:
                    item = self.heartbeats.checked(box, payload)
                    with self.store.begin() as db:
                        return self.heartbeats.apply(db, item, now)
                where = wire.parse_topic(topic)
                if where.kind == "evidence":
                    return self._evidence(topic, where, payload, now)
                return self._incident(where, payload, now)
            except wire.WireError as exc:
                return self._dead(topic, str(exc), payload, now)
            except AheadOfClock as exc:
                return self._held(exc)
            except Exception as exc:  # a bug, or the database: tell them apart by the error and by asking the database
                if not self.store.reachable():
                    raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
                if attempt < 2 and dberrors.is_transient(exc):  # e.g. locked by another gateway
                    time.sleep(0.2)
                    continue
                if dberrors.cannot_write(exc) or dberrors.contended(exc):  # full, read-only, ...: not the message
                    raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
                if box is not None:  # a heartbeat is never a dead letter: the next one comes
                    log.exception("ingest failed on %s; refused", topic[:200])
                    return HEARTBEAT_REFUSED
                log.exception("ingest failed on %s; set aside", topic[:200])
                return self._dead(topic, f"internal error: {type(exc).__name__}: {exc}", payload, now)
        raise AssertionError("unreachable")

    def _dead(self, topic: str, reason: str, payload: bytes, now: float) -> str:
        self.said.say(wire.topic_box(topic), f"on {topic[:200]}", reason, now)
        try:
            self.store.dead_letter(topic, reason, payload, now)
        except Exception as exc:  # the message is not lost: unacknowledged, it comes again
            raise DatabaseUnavailable(f"cannot write a dead letter: {type(exc).__name__}: {exc}") from exc
        return "dead_letter"

    def _held(self, exc: AheadOfClock) -> str:
        """Neither a dead letter nor acknowledged, and no database work (a box sending such messages on purpose
        costs the gateway less than one sending bad ones): the box keeps the message and sends it again, and
        it is taken once the gateway's clock allows it. Said once per box, with how far ahead."""
        if self.health.held_ahead(exc.box, exc.message, exc.ahead_s):
            log.warning("%s (more than %.0f s): its incidents are held, not acknowledged, until the gateway's clock "
                        "reaches them; check the box's time sync", exc, self.max_clock_skew_s)
        return AHEAD_OF_CLOCK

    def handle_batch(self, items: list[tuple[str, bytes]]) -> Outcomes:
        """Process many messages, all good ones in one transaction; outcomes in order, and the heartbeats that ask
        the time among them (``Outcomes.asking``).

        Checking a message can only set that message aside (a dead letter with the reason), written in
        the batch's transaction: a batch the database failed (full, locked, gone) is tried again whole, and
        each of its dead letters was kept again at every try. If applying the batch fails and the database
        still answers, the batch is rolled back and each message is handled alone, so one message never
        costs the others; if the database does not answer, DatabaseUnavailable is raised and nothing is
        acknowledged.
        """
        now = self.clock()
        self.said.flush(now)
        self.placeless_said.flush(now)
        outcomes: list[str] = [""] * len(items)
        work, beats, refused = [], [], []
        for i, (topic, payload) in enumerate(items):
            box = wire.status_box(topic)
            if box is not None:
                beats.append((i, self.heartbeats.checked(box, payload)))
                continue
            try:
                where = wire.parse_topic(topic)
                work.append((i, where, self._checked(where, payload, now)))
            except wire.WireError as exc:
                refused.append((i, str(exc)))
            except AheadOfClock as exc:
                outcomes[i] = self._held(exc)
            except Exception as exc:  # a bug in a check: this message is set aside, the others go on
                log.exception("checking a message on %s failed; set aside", topic[:200])
                refused.append((i, f"internal error while checking: {type(exc).__name__}: {exc}"))
        work = in_seq_order(work)
        applied, waiting = [], {}
        self._rate_held.clear()
        try:
            with self.store.begin() as db, ingestdb.pipelined(db):
                for i, reason in refused:
                    self.said.say(wire.topic_box(items[i][0]), f"on {items[i][0][:200]}", reason, now)
                    storage.dead_letter(db, items[i][0], reason, items[i][1], now)
                    outcomes[i] = "dead_letter"
                # evidence takes its incident's own lock: whose it is (``_add_evidence``) and an incident's first event
                # looking for others' evidence (``_apply``) never both miss the other at two gateways
                ingestdb.lock_places(db, [self._places(*checked) if where.kind != "evidence" else (where.incident_id, [])
                                         for _, where, checked in work])
                for i, where, checked in work:
                    if where.kind == "evidence":
                        outcomes[i] = self._add_evidence(db, items[i][0], where, checked, items[i][1], now, waiting)
                    else:
                        outcomes[i], case_id = self._apply(db, *checked, items[i][1], now)
                        applied.append((outcomes[i], case_id, *checked))
                # last, and by box: two gateways' batches take the boxes' rows in one order, holding nothing else then
                for i, item in sorted(beats, key=lambda beat: beat[1].box):
                    outcomes[i] = self.heartbeats.apply(db, item, now)
        except Exception as exc:
            if dberrors.cannot_write(exc) or not self.store.reachable():
                raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
            log.info("batch of %d rolled back (%s: %s); handling each alone", len(refused) + len(work) + len(beats),
                     type(exc).__name__, exc)
            for i in [i for i, _ in refused] + [i for i, _, _ in work] + [i for i, _ in beats]:
                outcomes[i] = self.handle(*items[i])
            return self._outcomes(outcomes, beats)
        for done in applied:
            self._committed(*done)
        return self._outcomes(outcomes, beats)

    @staticmethod
    def _outcomes(outcomes: list[str], beats: list[tuple[int, Heartbeat | Refused]]) -> Outcomes:
        """``outcomes`` with the places of the heartbeats recorded whose box asks the time, as checked in the batch."""
        return Outcomes(outcomes, frozenset(i for i, beat in beats if isinstance(beat, Heartbeat) and beat.asks_time
                                            and outcomes[i] == HEARTBEAT))

    def _checked(self, where: wire.Topic, payload: bytes, now: float):
        """Everything about a message that needs no database: the evidence's sha256, or (message, category)."""
        if where.kind == "evidence":
            try:
                check_evidence(payload)
            except ImageError as exc:
                raise wire.WireError(str(exc)) from None
            return hashlib.sha256(payload).hexdigest()
        message = wire.decode_incident(payload)
        if (message["box"], message["camera"]) != (where.box, where.camera):
            raise wire.WireError(f"payload says box {message['box']!r} camera {message['camera']!r} "
                                 f"but was published on {where.box!r}/{where.camera!r}")
        if (place := message.get("location")) and wire.template_location(place["lat"], place["lon"]):
            message["location"] = None  # joined by camera and zone, as an incident of a camera with no location
            if (where.box, where.camera) not in self.placeless:
                kind = "new" if len(self.placeless) < PLACELESS_MAX else "not remembered"
                if kind == "new":
                    self.placeless.add((where.box, where.camera))
                if self.placeless_said.named(kind, now):
                    log.warning("box %r camera %r sends location (0, 0), its config template's: taken as no location "
                                "(its incidents join cases of its own zones only, and show on no map); set the "
                                "camera's location in the box's config", where.box, where.camera)
        x1, y1, x2, y2 = message["bbox"]
        if x2 < x1 or y2 < y1:  # the training export wrote it as a label of negative width or height
            raise wire.WireError(f"bbox {message['bbox']}: x2 < x1 or y2 < y1 (x1, y1, the top left corner, come first)")
        category = self.tables.category(message["type"])
        if category is None:
            raise wire.WireError(f"type {message['type']!r} has no category in the city's tables")
        if not self.tables.knows(message["grid"]) and self.tables.unknown_grid == "dead_letter":
            raise wire.WireError(f"grid {message['grid']!r} is not in the city's grid tree "
                                 "(the tables' unknown_grid: dead_letter)")
        observed, started = wire.parse_time(message["observed_at"]), wire.parse_time(message["started_at"])
        if started > observed + 1.0:
            raise wire.WireError("started_at is after observed_at")
        if message["ended_at"] is not None:  # the case shows it, and a re-check closes on it
            ended = wire.parse_time(message["ended_at"])
            if ended < started - 1.0:
                raise wire.WireError("ended_at is before started_at")
            if ended > observed + self.max_clock_skew_s:  # one clock stamps both: no wrong clock explains it
                raise wire.WireError(f"ended_at is {ended - observed:.0f} s after observed_at "
                                     f"(more than {self.max_clock_skew_s:.0f} s)")
        # last: only a message right in every other way is held (late messages are normal: an outbox)
        ahead = wire.ahead(message, now)
        if ahead > self.max_clock_skew_s:
            raise AheadOfClock(message["box"], (message["incident_id"], message["seq"]), ahead)
        return message, category

    def _evidence(self, topic: str, where: wire.Topic, payload: bytes, now: float) -> str:
        sha = self._checked(where, payload, now)
        with self.store.begin() as db:
            ingestdb.lock_places(db, [(where.incident_id, [])])
            return self._add_evidence(db, topic, where, sha, payload, now)

    def _add_evidence(self, db, topic: str, where: wire.Topic, sha: str, payload: bytes, now: float,
                      waiting: dict[str, int] | None = None) -> str:
        """Keep a snapshot, in the caller's transaction, or set it aside where its incident is another box's or
        camera's (``not_its_evidence``), or has ``MAX_EVIDENCE_PER_INCIDENT`` pictures kept already: only the database
        knows, as for an event (``_apply``), or its box has ``MAX_UNNAMED_PER_BOX`` pictures waiting for their events
        already, or ``waiting_pictures_mb`` of them with this one (counted once a batch, in ``waiting``, [pictures,
        bytes] a box: counted at each picture, a flood was taken 15 times slower). The same bytes sent again are kept
        once, as they were."""
        waiting = {} if waiting is None else waiting
        wrong = not_its_evidence(ingestdb.first_event(db, where.incident_id), where.incident_id, where.box,
                                 where.camera)
        new = not wrong and not storage.evidence_kept(db, sha)
        if new and (kept := ingestdb.evidence_count(db, where.incident_id)) >= MAX_EVIDENCE_PER_INCIDENT:
            wrong = (f"incident {where.incident_id!r} has {kept} pictures kept already, the most one incident keeps "
                     f"({MAX_EVIDENCE_PER_INCIDENT}: a box sends a snapshot and a frame at its start and its end)")
        named = new and ingestdb.named_by_event(db, where.incident_id, sha)
        if new and not wrong and not named and where.box not in waiting:
            waiting[where.box] = list(ingestdb.unnamed_evidence(db, where.box, MAX_UNNAMED_PER_BOX))
        if new and not wrong and not named and waiting[where.box][0] >= MAX_UNNAMED_PER_BOX:
            wrong = (f"box {where.box!r} has {MAX_UNNAMED_PER_BOX} pictures waiting for an event of its to name them, "
                     "the most a box has waiting (a box sends a picture just before the event that names it); a "
                     f"picture for incident {where.incident_id!r} is not kept")
        elif new and not wrong and not named and \
                waiting[where.box][1] + len(payload) > self.waiting_pictures_mb * 2**20:
            wrong = (f"box {where.box!r} has {waiting[where.box][1] / 2**20:.1f} MB of pictures waiting for an event "
                     f"of its to name them, and a picture of {len(payload)} bytes for incident {where.incident_id!r} "
                     f"would take it past {self.waiting_pictures_mb} MB, the most a box has waiting "
                     "(waiting_pictures_mb); it is not kept")
        if wrong:
            self.said.say(where.box, f"from box {where.box!r}", wrong, now)
            storage.dead_letter(db, topic, wrong, payload, now)
            return "dead_letter"
        if storage.add_evidence(db, sha, payload, where.incident_id, where.box, where.camera, now) and not named:
            waiting[where.box][0] += 1
            waiting[where.box][1] += len(payload)
        return "evidence"

    def _incident(self, where: wire.Topic, payload: bytes, now: float) -> str:
        message, category = self._checked(where, payload, now)
        for attempt in range(3):  # two gateways may act on the same case at once: the loser retries
            try:
                self._rate_held.clear()
                with self.store.begin() as db:
                    ingestdb.lock_places(db, [self._places(message, category)])
                    outcome, case_id = self._apply(db, message, category, payload, now)
                break
            except Exception as exc:
                if attempt == 2 or not dberrors.lost_race(exc):
                    raise
        self._committed(outcome, case_id, message, category)
        return outcome

    def _places(self, message: dict, category) -> tuple[str, list[tuple[str, bool]]]:
        """What ``ingestdb.lock_places`` takes for an incident event before ``_apply`` may look for its case, and
        its camera's, where the tables limit its new cases (``cases_opened``): two gateways each counted one
        fewer than the limit and both dispatched."""
        camera = [(f"camera:{message['box']}/{message['camera']}", True)] if self.tables.new_cases_per_camera_hour \
            else []
        return message["incident_id"], place_locks(message, category.merge_radius_m) + camera

    def _committed(self, outcome: str, case_id: int | None, message: dict, category) -> None:
        """After the commit: log a new case, count one its camera's rate held (``/health``: a batch the database
        could not take, tried again every 2 s, counted its held cases at each try), wake the clock for its notices."""
        if outcome == "case_created":
            log.info("case %s opened for incident %s (%s, grid %s)", case_id, message["incident_id"],
                     category.name, message["grid"])
        if case_id in self._rate_held and self.health.over_rate(message["box"], message["camera"], self.clock()):
            log.warning("box %r camera %r opened %d cases within the hour (the tables' new_cases_per_camera_hour): "
                        "its new cases are held for review, not dispatched, until it opens fewer; a camera turned, a "
                        "detector gone wrong or its box's password in other hands? (/health lists it)",
                        message["box"], message["camera"], self.tables.new_cases_per_camera_hour)
        if case_id is not None:
            self.on_case(case_id)

    def _apply(self, db, message: dict, category, payload: bytes, now: float) -> tuple[str, int | None]:
        """All of one incident event's effect, in the caller's transaction. An event for an incident of
        another box, camera, zone or type (``not_its_incident``), or one that reuses a recorded (incident_id, seq)
        with other content, is refused here (``_refused``): only the database knows, and refusing it so costs the
        rest of a batch nothing."""
        first = ingestdb.first_event(db, message["incident_id"])
        wrong = not_its_incident(first, message)
        if wrong:
            return self._refused(db, message, payload, now, wrong)
        text = payload.decode("utf-8")
        if not ingestdb.record_event(db, message, text, now):
            if ingestdb.recorded_payload(db, message["incident_id"], message["seq"]) != text:  # not a redelivery
                return self._refused(db, message, payload, now, f"event {message['incident_id']!r} seq {message['seq']} "
                                     "differs from the one recorded; a box sends each seq of an incident once")
            return "duplicate", None
        ingestdb.name_evidence(db, message)
        if first is None:  # its first event, which says whose the incident is: the others' snapshots sent before it
            for row in ingestdb.others_evidence(db, message["incident_id"], message["box"], message["camera"]):
                wrong = not_its_evidence(message, message["incident_id"], row["box"], row["camera"])
                self.said.say(row["box"], f"from box {row['box']!r}", wrong, now)
                storage.set_aside_evidence(db, row, wrong, now)
        actor = f"box:{message['box']}"
        case = ingestdb.case_of_incident(db, message["incident_id"])
        outcome = "case_updated"
        if case is None:
            since = category.window_start("recheck_window", now, self.tables.calendar)
            grid = case_grid(message, self.tables)  # cases of its own grid only (``ingestdb.candidates``)
            near = ingestdb.candidates(db, message, grid, since, category.merge_radius_m)
            held = held_for_review(message, category, self.tables, now)
            limit, opened = self.tables.new_cases_per_camera_hour, 0
            if not held and limit:  # counted in this transaction: two gateways (``_places``' camera lock) agree
                opened = ingestdb.cases_opened(db, message["box"], message["camera"], now - CAMERA_RATE_WINDOW_S, limit)
                held = held_for_review(message, category, self.tables, now, opened)
            kind, case = choose(message, category, near, now, held, calendar=self.tables.calendar)
            # a closed case named here (``choose``: held, not reopened) comes first: the problem a department handled
            # may be back, and a person looks, as at the closed case alone; a rejected stain there does not decide it
            if kind == "new" and case is None and needs_review(message):
                stain = rejected_here(message, category, ingestdb.rejected_near(
                    db, message, grid, category.window_start("rejected_window", now, self.tables.calendar),
                    category.merge_radius_m))
                if stain is not None:  # a person rejected this lead already: not to the review queue again
                    storage.link(db, message["incident_id"], stain["id"], "merged", now)
                    storage.update_case(db, stain["id"], {"incident_count": stain["incident_count"] + 1})
                    storage.log(db, stain["id"], now, actor, Role.SYSTEM, "merged", stain["state"], stain["state"],
                                f"incident {message['incident_id']}: a lead the camera could not confirm, at the "
                                "place of this rejected case; not raised for review again")
                    return "case_merged", stain["id"]
            if kind == "new":
                case_id = storage.open_case(db, new_case(message, category, self.tables, now, held), now, actor,
                                            self.tables)
                if over_camera_rate(opened, limit):
                    storage.log(db, case_id, now, "gateway", Role.SYSTEM, "flagged", None, None,
                                camera_rate_note(message, limit))
                    self._rate_held.add(case_id)  # counted and said once it is committed (``_committed``)
                if not held:
                    for twin in pending_beside(message, category, near):
                        storage.log(db, twin["id"], now, "gateway", Role.SYSTEM, "related", twin["state"], twin["state"],
                                    f"case {case_id} opened at the same place for confirmed incident "
                                    f"{message['incident_id']}")
                        storage.log(db, case_id, now, "gateway", Role.SYSTEM, "related", None, None,
                                    f"case {twin['id']} at the same place waits for review")
                if case is not None:  # held: a closed case here is not reopened, its department not sent again
                    storage.log(db, case["id"], now, "gateway", Role.SYSTEM, "related", case["state"], case["state"],
                                f"incident {message['incident_id']} at the same place waits for review in case "
                                f"{case_id}; this case not reopened")
                    storage.log(db, case_id, now, "gateway", Role.SYSTEM, "related", None, None,
                                f"case {case['id']} at the same place closed recently; not reopened without review")
                if not self.tables.knows(message["grid"]):
                    storage.log(db, case_id, now, "gateway", Role.SYSTEM, "flagged", None, None,
                                f"grid {message['grid']} is not in the city's grid tree: raised to the centre "
                                "for review")
                if outside := outside_its_grid(message, self.tables):  # said, never re-routed: the zone says
                    storage.log(db, case_id, now, "gateway", Role.SYSTEM, "flagged", None, None, outside)
                if is_lone_end(message):
                    storage.log(db, case_id, now, "gateway", Role.SYSTEM, "flagged", None, None,
                                f"incident {message['incident_id']} ended ({message['end_reason']} at "
                                f"{message['ended_at']}) before its start reached the gateway: held for review, "
                                "not dispatched")
                late = reported_late(message, category, self.tables, now)
                if late is not None:
                    storage.log(db, case_id, now, "gateway", Role.SYSTEM, "flagged", None, None,
                                late_note(message, category.late_limit(is_urgent(message)), late,
                                          clock_offset(db, message["box"])))
                return "case_created", case_id
            storage.link(db, message["incident_id"], case["id"], "merged" if kind == "merge" else "reopened", now)
            if kind == "reopen":
                urgent = is_urgent(message)  # the deadline of the new cycle follows the new incident
                storage.update_case(db, case["id"], {"incident_count": case["incident_count"] + 1, "urgent": urgent})
                perform(db, dict(case, urgent=urgent), Action.REOPEN, Role.SYSTEM, actor, now, self.tables,
                        f"the problem came back: incident {message['incident_id']}")
                return "case_reopened", case["id"]
            # the problem is there again: the camera's earlier "gone" no longer holds; an urgent incident brings the
            # deadline forward, unless it is held (a lead nobody confirmed changed the department's clock)
            storage.update_case(db, case["id"], {"incident_count": case["incident_count"] + 1, **NOT_ENDED,
                                                 **({} if held else merged_urgent(case, message, category, self.tables,
                                                                                  now))})
            storage.log(db, case["id"], now, actor, Role.SYSTEM, "merged", case["state"], case["state"],
                        f"incident {message['incident_id']} at the same place")
            if not is_lone_end(message):
                return "case_merged", case["id"]
            outcome = "case_merged"  # a lone end joins as its start would have, and ends below
        # an end while another incident joined to the case is still seen is no evidence the problem is gone
        still = ingestdb.unended_incidents(db, case["id"]) if message["state"] == "end" else []
        if case["incident_id"] == message["incident_id"]:  # the case's own incident: keep its picture current
            storage.update_case(db, case["id"], incident_update(message, with_end=not still),
                                last_seq_below=message["seq"])
            first = (message.get("evidence") or {}).get("sha256") if message["state"] == "start" else None
            if first and case["evidence_sha256"] is None:  # its start came after its end: the case's picture
                storage.update_case(db, case["id"], {"evidence_sha256": first})
        if is_recheck(message) and still:
            storage.log(db, case["id"], now, actor, Role.SYSTEM, "incident_ended", case["state"], case["state"],
                        f"camera: {message['end_reason']} for incident {message['incident_id']}; "
                        f"still seen: {', '.join(still)}")
        elif is_recheck(message):
            self._recheck(db, case, message, category, actor, now)
        return outcome, case["id"]

    def _refused(self, db, message: dict, payload: bytes, now: float, reason: str) -> tuple[str, None]:
        """A dead letter found only by asking the database, written in the batch's own transaction."""
        self.said.say(message["box"], f"from box {message['box']!r}", reason, now)
        storage.dead_letter(db, wire.incident_topic(message["box"], message["camera"]), reason, payload, now)
        return "dead_letter", None

    def _recheck(self, db, case: dict, message: dict, category, actor: str, now: float) -> None:
        """The camera saw the problem gone: evidence for closure (视频核查)."""
        storage.update_case(db, case["id"], {"ended_at": wire.parse_time(message["ended_at"]),
                                             "end_reason": message["end_reason"],
                                             "end_evidence_sha256": (message.get("evidence") or {}).get("sha256")})
        storage.log(db, case["id"], now, actor, Role.SYSTEM, "recheck_evidence", case["state"], case["state"],
                    f"camera: {message['end_reason']} at {message['ended_at']}")
        if case["state"] == CaseState.FEEDBACK.value and category.auto_close:
            perform(db, case, Action.CLOSE, Role.SYSTEM, "gateway", now, self.tables, "closed on the camera's re-check")
