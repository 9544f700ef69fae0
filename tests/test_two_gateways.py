"""Two gateways on one PostgreSQL database, or one SQLite file, ingest at the same moments (two Ingest instances,
each with its own connection pool, in two threads): one place still gets one case, one incident one case. On one
database their clocks delete dead letters, and their writers number rows, without treading on each other."""

import contextlib
import math
import random
import sqlite3
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import create_engine, text

from gateway import ingestdb, numbering, service
from gateway.cases import distance_m, place_locks
from gateway.config import TABLES_DIR, load_tables
from gateway.ingest import Ingest
from gateway.service import DeadLetterRetention
from gateway.storage import Store
from xueliang import wire

from .conftest import wait_until
from .test_flood import BAD, flood
from .test_gateway import payload
from .test_workflow import database_url  # noqa: F401 (fixture)

NOW = 1_767_225_630.0  # START's observed_at, 2026-01-01T00:00:30Z


def shared(a: list[tuple[str, bool]], b: list[tuple[str, bool]]) -> bool:
    """Whether two lock lists make their holders wait for each other (a name in both, exclusive in one)."""
    mine = dict(a)
    return any(name in mine and (exclusive or mine[name]) for name, exclusive in b)


def test_two_incidents_a_merge_could_join_always_meet_at_a_lock():
    rng = random.Random(7)
    for _ in range(20_000):
        radius = rng.choice([0, 1, 30, 100, 1000])
        lat, lon = rng.uniform(-60, 60), rng.uniform(-179, 179)
        bearing, d = rng.uniform(0, 2 * math.pi), rng.uniform(0, radius)
        lat2 = lat + d * math.cos(bearing) / 111_195
        lon2 = lon + d * math.sin(bearing) / (111_195 * math.cos(math.radians(lat)))
        if distance_m(lat, lon, lat2, lon2) > radius:  # the flat step above is a hair off on the sphere
            continue
        a = {"type": "spill", "box": "a", "camera": "c", "zone": "z", "location": {"lat": lat, "lon": lon}}
        b = dict(a, box="b", location={"lat": lat2, "lon": lon2})
        assert shared(place_locks(a, radius), place_locks(b, radius)), (radius, a, b)
    located = {"type": "spill", "box": "a", "camera": "c", "zone": "z", "location": {"lat": 39.0, "lon": 117.0}}
    unlocated = {k: v for k, v in located.items() if k != "location"}
    assert shared(place_locks(located, 30), place_locks(unlocated, 30))  # camera and zone decide then
    assert shared(place_locks(unlocated, 30), place_locks(unlocated, 30))
    far = dict(located, location={"lat": 39.01, "lon": 117.0})  # 1.1 km, one zone: no waiting for each other
    assert not shared(place_locks(located, 30), place_locks(far, 30))


def at_once(*jobs) -> list:
    """Run the jobs in threads released together; their results (an exception is raised here)."""
    go, results = threading.Barrier(len(jobs)), [None] * len(jobs)

    def run(i, job):
        go.wait()
        try:
            results[i] = job()
        except BaseException as exc:  # noqa: BLE001 (raised below, in the test's thread)
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


def place(i: int) -> dict:
    return {"lat": 39.0 + i * 0.01, "lon": 117.0}  # 1.1 km apart: never one case


def near(i: int) -> dict:
    return {"lat": 39.0 + i * 0.01 + 0.0001, "lon": 117.0}  # 11 m from place(i): joins its case


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_gateways_on_postgresql_open_one_case_per_place_and_per_incident(database_url):
    # each camera opens 50 cases in the hour: none held for it (``new_cases_per_camera_hour``), its lock still taken
    tables = load_tables(TABLES_DIR / "demo.yaml").model_copy(update={"new_cases_per_camera_hour": 1000})
    one, two = (Ingest(Store(database_url), tables, clock=lambda: NOW) for _ in range(2))
    a, b = wire.incident_topic("box-a", "gate"), wire.incident_topic("box-b", "gate")

    def event(topic, incident, where, **more):
        box = wire.parse_topic(topic).box
        return topic, payload(box=box, camera="gate", incident_id=incident, location=where, **more)

    # batches: box A's incident and box B's at each of 30 places, in opposite orders
    batch_a = [event(a, f"a-{i}", place(i)) for i in range(30)]
    batch_b = [event(b, f"b-{i}", near(i)) for i in reversed(range(30))]
    at_once(lambda: one.handle_batch(batch_a), lambda: two.handle_batch(batch_b))
    # one message at a time, 20 more places
    for i in range(30, 50):
        at_once(lambda i=i: one.handle(*event(a, f"a-{i}", place(i))), lambda i=i: two.handle(*event(b, f"b-{i}", near(i))))
    # one incident, its start at one gateway and its update at the other (at its place, and, as if the
    # camera had been moved, 1.1 km away: no place lock in common, the case's key decides)
    for i in range(50, 60):
        at_once(lambda i=i: one.handle(*event(a, f"x-{i}", place(i))),
                lambda i=i: two.handle(*event(a, f"x-{i}", place(i), seq=2, state="update")))
        at_once(lambda i=i: one.handle(*event(a, f"y-{i}", place(i + 20))),
                lambda i=i: two.handle(*event(a, f"y-{i}", place(i + 40), seq=2, state="update")))

    store = one.store
    cases = store.list_cases(limit=1000)
    by_place = {}
    for case in cases:
        if case["incident_id"][0] in "ab":
            by_place.setdefault(round((case["lat"] - 39.0) / 0.01), []).append(case["incident_id"])
    assert {i: ids for i, ids in by_place.items() if len(ids) > 1} == {}
    assert len(by_place) == 50
    assert sorted(c["incident_id"] for c in cases if c["incident_id"][0] in "xy") == sorted(
        f"{p}-{i}" for p in "xy" for i in range(50, 60))
    assert [d["reason"] for d in store.list_dead_letters()] == []
    assert store.count("case_incidents") == 120 and store.count("incident_events") == 140


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_gateways_dispatch_a_cameras_hour_of_new_cases_once_between_them(database_url):
    """A camera's incidents at two gateways at once, each at a place of its own: each gateway counted the cases the
    camera opened within the hour before the other's committed, and both dispatched past the tables' limit. The
    camera's lock (``Ingest._places``) makes them count in turn: the limit's dispatched between them, the rest held."""
    tables = load_tables(TABLES_DIR / "demo.yaml").model_copy(update={"new_cases_per_camera_hour": 5})
    one, two = (Ingest(Store(database_url), tables, clock=lambda: NOW) for _ in range(2))
    topic = wire.incident_topic("box-1", "gate")
    for i in range(0, 16, 2):
        at_once(lambda i=i: one.handle(topic, payload(incident_id=f"w-{i}", location=place(i))),
                lambda i=i: two.handle(topic, payload(incident_id=f"w-{i + 1}", location=place(i + 1))))
    states = [c["state"] for c in one.store.list_cases(limit=100)]
    assert (states.count("dispatched"), states.count("pending_review")) == (5, 11)


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("other", [{"camera": "gate-2"}, {"box": "box-2"}], ids=["camera", "box"])
def test_one_incident_id_from_two_cameras_at_two_gateways_at_once_is_one_cameras(database_url, other):
    """Incident 17 of camera gate at one gateway and of another camera (another maker's box numbers per camera) or
    another box at the other, at once. Each read the incident's first event (none yet) before it wrote: the other's
    update, its check passed before gate's start committed, found gate's case when it looked for one, and changed it.
    A third connection holds the key the update is written under, so that gateway waits there, between its check and
    its write, while the other takes gate's start: one camera's events make the incident, the other's is a dead
    letter."""
    tables = load_tables(TABLES_DIR / "demo.yaml")
    one, two = (Ingest(Store(database_url), tables, clock=lambda: NOW) for _ in range(2))
    gate = (wire.incident_topic("box-1", "gate"), payload(incident_id="17"))
    update = dict({"box": "box-1", "camera": "gate"}, **other)
    elsewhere = (wire.incident_topic(update["box"], update["camera"]),  # at a place with no lock in common
                 payload(incident_id="17", seq=2, state="update", location=place(40), **update))
    engine = create_engine(database_url)

    def waiting() -> int:
        with engine.connect() as db:
            return db.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one()

    outcomes = {}

    def take(name, ingest, message):
        return threading.Thread(target=lambda: outcomes.update({name: ingest.handle(*message)}))

    with engine.connect() as gate_keeper:
        gate_keeper.execute(text("INSERT INTO incident_events (incident_id, seq, state, received_at, payload) "
                                 "VALUES ('17', 2, 'update', 0, '{}')"))  # not committed: the update's write waits
        later = take("elsewhere", two, elsewhere)
        later.start()
        wait_until(lambda: waiting() == 1, 10, message="the update waiting to be written")
        first = take("gate", one, gate)
        first.start()
        wait_until(lambda: not first.is_alive() or waiting() == 2, 10, message="gate's start taken, or waiting")
        gate_keeper.rollback()
    for thread in (first, later):
        thread.join(20)
    engine.dispose()
    assert sorted(outcomes.values()) == ["case_created", "dead_letter"], outcomes
    (case,) = one.store.list_cases()
    (dead,) = one.store.list_dead_letters()
    assert dead["reason"].startswith("incident '17' ") and case["incident_count"] == 1
    won = {"box": "box-1", "camera": "gate"} if outcomes["gate"] == "case_created" else update
    assert (case["box"], case["camera"]) == (won["box"], won["camera"])


def test_two_gateways_delete_only_what_is_over_the_dead_letters_budget_between_them(
        database_url, monkeypatch):  # noqa: F811
    """Each gateway's clock deleted the excess over ``dead_letter_mb`` it had summed, a round at a time: rounds of
    the two, taken by turns, deleted it twice. Each round now deletes what is over the budget as the table stands."""
    monkeypatch.setattr(service, "DEAD_LETTERS_PER_ROUND", 3)
    one, two = Store(database_url), Store(database_url)
    flood(one, 25, NOW)  # 25 of 64 kB, the budget 1 MB (16 of them): 9 over, three rounds of 3
    gateways = [DeadLetterRetention(one, days=90, mb=1), DeadLetterRetention(two, days=90, mb=1)]
    for rounds in range(10):  # one's round, the other's, by turns
        if not any([g.sweep(NOW + rounds) for g in gateways]):
            break
    assert one.count("dead_letters") == 16 and one.dead_letter_bytes() == 2**20
    flood(one, 9, NOW + 100, first=25)  # 9 more over: both gateways' rounds at once
    for rounds in range(10):
        if not any(at_once(*(lambda g=g: g.sweep(NOW + 100 + rounds) for g in gateways))):
            break
    assert one.count("dead_letters") == 16 and [d["id"] for d in one.list_dead_letters(limit=1)] == [34]


@pytest.mark.parametrize("numbered", ["after retention", "on a restored backup"])
def test_two_writers_on_one_sqlite_file_never_take_the_same_next_id(tmp_path, monkeypatch, numbered):
    """Where SQLite's own numbering would give an id again (retention deleted the newest dead letters, a backup was
    restored), the next row takes its id from ``numbering``: two writers (ingest's thread and the clock's, or two
    gateways on one file) each read the same id, and the second to insert failed on it (about 1 in 4 such pairs
    released together; here the first held between its read and its insert, every time), or each fixed where the
    tables go on from the backup's mark, the second a margin past the first's. The second now waits for the
    first's commit and takes the id after its."""
    from gateway.restore import first_id

    url = f"sqlite:///{tmp_path}/gw.sqlite"
    one, two = Store(url), Store(url)
    flood(one, 5, NOW, size=10)  # dead letters 1-5
    if numbered == "after retention":
        assert one.delete_dead_letters_before(NOW + 5, 10) == 5  # every one: 1-5 never given again
        first, kept = 6, 0
    else:
        mark = int(NOW // 60) - 60  # an hour before NOW, as ``gateway --backup`` marks its copy
        with contextlib.closing(sqlite3.connect(tmp_path / "gw.sqlite")) as db:
            db.execute(f"PRAGMA user_version = {mark}")
        first, kept = first_id("dead_letters", 5, mark * 60.0, NOW + 10), 5
    claimed, taken = threading.Event(), threading.Event()
    restored_id = numbering.restored_id

    def held(db, table, now):  # one's dead letter, its id read: the other's comes then
        given = restored_id(db, table, now)
        if db.engine is one.engine:
            claimed.set()
            taken.wait(0.5)  # the other waits for this commit: given up on
        return given

    def other():
        claimed.wait(5)
        two.dead_letter(BAD, "refused", b"the other's", NOW + 10)
        taken.set()

    monkeypatch.setattr(numbering, "restored_id", held)
    at_once(lambda: one.dead_letter(BAD, "refused", b"one's", NOW + 10), other)
    two.dead_letter(BAD, "refused", b"after both", NOW + 10)
    assert [d["id"] for d in one.list_dead_letters(limit=3)] == [first + 2, first + 1, first]
    assert one.count("dead_letters") == kept + 3
    one.close()
    two.close()


def _two_ingests(tmp_path) -> tuple[Ingest, Ingest]:
    """Two gateways' ingest on one SQLite file (the service and one started by hand), each with its own Store."""
    url, tables = f"sqlite:///{tmp_path}/gw.sqlite", load_tables(TABLES_DIR / "demo.yaml")
    one, two = (Ingest(Store(url), tables, clock=lambda: NOW) for _ in range(2))
    return one, two


def _meanwhile(monkeypatch, name: str, holder: Ingest, act: Callable[[], str]) -> Callable[[], str]:
    """The other gateway's ``act``, to run beside ``holder``'s: ``ingestdb.<name>`` (a read of ingest's find-or-create)
    made to wait, at ``holder``'s gateway only, just after it read, until ``act`` is done (or half a second, where
    ``act`` waits for ``holder``); ``act`` starts once that read is made."""
    read = getattr(ingestdb, name)
    claimed, taken = threading.Event(), threading.Event()

    def held(db, *args):
        found = read(db, *args)
        if db.engine is holder.store.engine and not claimed.is_set():
            claimed.set()
            taken.wait(0.5)
        return found

    def other() -> str:
        claimed.wait(5)
        try:
            return act()
        finally:
            taken.set()

    monkeypatch.setattr(ingestdb, name, held)
    return other


def test_two_gateways_on_one_sqlite_file_open_one_case_per_place(tmp_path, monkeypatch):
    """Two gateways on one SQLite file (the service and one started by hand), an incident at one place at each, the
    first held between its look for a case near it (none) and opening one: the other never looks meanwhile. SQLite's
    write lock is held from ``lock_places`` (and was from the event's insert, before the look): the other waits for
    the first's commit, finds its case and joins it."""
    one, two = _two_ingests(tmp_path)
    other = _meanwhile(monkeypatch, "candidates", one, lambda: two.handle(
        wire.incident_topic("box-b", "gate"), payload(box="box-b", camera="gate", incident_id="b", location=near(0))))
    outcomes = at_once(lambda: one.handle(wire.incident_topic("box-a", "gate"),
                                          payload(box="box-a", camera="gate", incident_id="a", location=place(0))),
                       other)
    assert outcomes == ["case_created", "case_merged"]
    (case,) = one.store.list_cases()
    assert case["incident_count"] == 2
    one.store.close()
    two.store.close()


def test_one_incident_id_from_two_cameras_at_two_gateways_on_one_sqlite_file_is_one_cameras(tmp_path, monkeypatch):
    """Incident 17 of camera gate at one gateway and of camera gate-2 at the other, on one SQLite file. The other read
    the incident's first event (none yet), gate's start was taken meanwhile, and its update, its check passed, found
    gate's case and changed it. It now holds SQLite's write lock from that read: gate's start waits for its commit,
    and is the dead letter (the incident is gate-2's)."""
    one, two = _two_ingests(tmp_path)
    gate = _meanwhile(monkeypatch, "first_event", two,
                      lambda: one.handle(wire.incident_topic("box-1", "gate"), payload(incident_id="17")))
    outcomes = at_once(gate, lambda: two.handle(wire.incident_topic("box-1", "gate-2"), payload(
        incident_id="17", seq=2, state="update", camera="gate-2", location=place(40))))
    assert outcomes == ["dead_letter", "case_created"]
    (case,) = one.store.list_cases()
    (dead,) = one.store.list_dead_letters()
    assert dead["reason"].startswith("incident '17' ") and (case["camera"], case["incident_count"]) == ("gate-2", 1)
    one.store.close()
    two.store.close()
