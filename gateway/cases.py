"""Cases from incidents: pure logic, time passed in, no I/O.

A case is what the centre handles. An incident either opens a new case, joins an open
case of the same type nearby (merge), or reopens a case closed there a short while ago
(recurrence). Grid, category, department and deadline come from the city's tables.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Literal

from gateway import gridmap
from gateway.config import Category, Tables
from gateway.deadlines import Calendar, deadline, parse_service_level
from gateway.workflow import (CENTRE_CLOCK, DEPARTMENT_CLOCK, OPEN_STATES, Action, CaseState, Clock, TransitionError,
                              effect)
from xueliang import coordinates, wire

RECHECK_REASONS = ("left", "cleared")  # the camera saw the problem gone


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres.

    >>> round(distance_m(39.17, 117.15, 39.1701, 117.15))
    11
    """
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(h))


def same_place(message: dict, case: dict, radius_m: float) -> bool:
    """Within ``radius_m`` when both have a location; otherwise the same camera and zone."""
    loc = message.get("location")
    if loc and case.get("lat") is not None and case.get("lon") is not None:
        return distance_m(loc["lat"], loc["lon"], case["lat"], case["lon"]) <= radius_m
    return (message["box"], message["camera"], message["zone"]) == (case["box"], case["camera"], case["zone"])


def place_locks(message: dict, radius_m: float) -> list[tuple[str, bool]]:
    """The locks (name, exclusive) an incident holds while it looks for a case to join and opens one if
    none (``choose``): two gateways on one PostgreSQL must not both find nothing and both open a case.

    Any two incidents ``same_place`` could match share a lock, exclusive on one side at least; others
    rarely do, so gateways at different places do not wait for each other. A located incident locks the
    cells of a grid of its type (4 merge radii a side) that a box half the radius around it overlaps:
    two places within the radius have overlapping boxes, so both lock the cell where they overlap
    (1 to 4 cells, mostly 1). Where either has no location, ``same_place`` compares camera and zone:
    the zone's lock, exclusive for an incident without a location, shared for one with (two located
    incidents of one zone meet in the cells).

    >>> place_locks({"type": "spill", "box": "b", "camera": "c", "zone": "z"}, 30)
    [('spill/b/c/z', True)]
    >>> here = {"type": "spill", "box": "b", "camera": "c", "zone": "z", "location": {"lat": 39.17, "lon": 117.1502}}
    >>> place_locks(here, 30)  # near a cell's east edge: that cell and the next
    [('spill/b/c/z', False), ('spill@36232,108363', True), ('spill@36232,108364', True)]
    >>> there = dict(here, box="b2", location={"lat": 39.17, "lon": 117.15052})  # 28 m east, in the next cell
    >>> place_locks(there, 30)
    [('spill/b2/c/z', False), ('spill@36232,108364', True)]
    """
    zone = (f"{message['type']}/{message['box']}/{message['camera']}/{message['zone']}", not message.get("location"))
    loc = message.get("location")
    if not loc:
        return [zone]
    radius_deg = max(radius_m, 1.0) / 111_000  # 111.2 km per degree of latitude on distance_m's sphere
    cell = 4 * radius_deg
    half_lat = 0.51 * radius_deg + 1e-6  # a hair over half (candidates' box adds 1e-6 degrees too)
    half_lon = half_lat / max(0.01, math.cos(math.radians(loc["lat"])))
    rows = range(math.floor((loc["lat"] - half_lat) / cell), math.floor((loc["lat"] + half_lat) / cell) + 1)
    cols = range(math.floor((loc["lon"] - half_lon) / cell), math.floor((loc["lon"] + half_lon) / cell) + 1)
    return [zone] + [(f"{message['type']}@{r},{c}", True) for r in rows for c in cols]


def not_its_incident(first: dict | None, message: dict) -> str | None:
    """Why ``message`` is no event of the incident whose first event the gateway received was ``first``, or None.

    Incident ids are not secret (notices carry them): another box's event must not close or rewrite the case. Nor
    may another camera, zone or type of the same box: a box that numbers incidents per camera (another maker's)
    sent id 17 from two cameras, and the second camera's end was taken for the first's re-check. The edge never
    changes them within an incident (its rule is one camera's zone and type; a box restarted ends an incident
    with its last message's).

    >>> start = {"incident_id": "17", "box": "b", "camera": "gate", "zone": "kerb", "type": "spill"}
    >>> not_its_incident(None, start), not_its_incident(start, dict(start, seq=2))
    (None, None)
    >>> not_its_incident(start, dict(start, camera="gate-2"))  # doctest: +NORMALIZE_WHITESPACE
    "incident '17' is camera 'gate' zone 'kerb' spill (its first event); this event says camera 'gate-2' zone
    'kerb' spill: an incident's camera, zone and type never change"
    """
    if first is None:
        return None
    if first.get("box") != message["box"]:
        return (f"incident {message['incident_id']!r} belongs to box {first.get('box')!r}, which sent it first; "
                f"box {message['box']!r} may not send events for it")
    said = [(m.get("camera"), m.get("zone"), m.get("type")) for m in (first, message)]
    if said[0] != said[1]:
        return (f"incident {message['incident_id']!r} is camera {said[0][0]!r} zone {said[0][1]!r} {said[0][2]} (its "
                f"first event); this event says camera {said[1][0]!r} zone {said[1][1]!r} {said[1][2]}: an "
                "incident's camera, zone and type never change")
    return None


def not_its_evidence(first: dict | None, incident_id: str, box: str, camera: str) -> str | None:
    """Why evidence that ``box`` sent from ``camera`` under ``incident_id`` is none of that incident's, whose first
    event the gateway received was ``first``, or None (no event yet: its incident may come after it, as it does).

    A case shows only the pictures its incident's own box sent; evidence under another box's id (one of the plain
    ids older boxes and other makers send: an id the edge makes names its box, ``wire.check_incident_owner``) was kept
    and never shown, nor quarantined as an orphan (the id is known): kept for good.

    >>> start = {"incident_id": "17", "box": "b", "camera": "gate"}
    >>> not_its_evidence(None, "17", "b2", "gate"), not_its_evidence(start, "17", "b", "gate")
    (None, None)
    >>> not_its_evidence(start, "17", "b2", "cam-x")
    "incident '17' belongs to box 'b', which sent it first; box 'b2' may not send evidence for it"
    >>> not_its_evidence(start, "17", "b", "gate-2")
    "incident '17' is camera 'gate' (its first event); this evidence came from camera 'gate-2': an incident's camera never changes"
    """
    if first is None:
        return None
    if first.get("box") != box:
        return (f"incident {incident_id!r} belongs to box {first.get('box')!r}, which sent it first; box {box!r} may "
                "not send evidence for it")
    if first.get("camera") != camera:
        return (f"incident {incident_id!r} is camera {first.get('camera')!r} (its first event); this evidence came "
                f"from camera {camera!r}: an incident's camera never changes")
    return None


def choose(message: dict, category: Category, candidates: list[dict], now: float, held: bool, *,
           calendar: Calendar) -> tuple[Literal["new", "merge", "reopen"], dict | None]:
    """What a new incident does: join an open case, reopen a recently closed one, or open a case.

    ``candidates`` are cases of the same type (any state); the nearest in time wins. An incident
    that goes straight to a department (not ``held``, see ``held_for_review``) never joins a case
    still pending review: the edge confirmed something new where it had only a doubt (a pile
    dumped on a stain that was there when the camera came up), and a person's doubt about the
    stain must not hold back the pile. A ``held`` incident never reopens a closed case, since reopening
    sends its department again with nobody having looked: a lead the edge could not confirm, a lone end
    (``is_lone_end``: the problem came back and went, or nobody watches it any more), a late report, a
    reviewed category or an unknown grid. It opens a case of its own, held for review, and ``choose`` names
    the closed case it did not reopen (``("new", closed)``) for both timelines; a person who rejects the lead
    leaves the closed case closed, as it was handled. Nor does an incident the camera
    last saw (``wire.last_seen``, by its own times) before the case closed, less what a box's clock may be
    behind (``wire.MAX_CLOCK_SKEW_S``): the problem did not come back after the case closed, its report came
    late (a box back after a day offline sends its outbox at once), and it opens a case of its own
    (held for review where it is late, ``reported_late``) or joins an open one.

    >>> closed = {"id": 4, "type": "spill", "box": "b", "camera": "c", "zone": "z", "state": "closed",
    ...           "created_at": 1767225000.0, "closed_at": 1767225600.0}  # closed at 2026-01-01T00:00:00Z
    >>> start = {"type": "spill", "box": "b", "camera": "c", "zone": "z", "state": "start",
    ...          "observed_at": "2026-01-01T00:01:00Z", "ended_at": None}
    >>> from gateway.config import TABLES_DIR, load_tables
    >>> tables = load_tables(TABLES_DIR / "demo.yaml")
    >>> spill, city = tables.category("spill"), tables.calendar
    >>> end = dict(start, state="end")
    >>> now = 1767225700.0
    >>> [choose(m, spill, [closed], now, held, calendar=city)[0] for m, held in ((start, False), (end, True))]
    ['reopen', 'new']
    >>> lead = dict(start, attributes={"needs_review": True})  # held: nobody confirmed it
    >>> choose(lead, spill, [closed], now, held=True, calendar=city) == ("new", closed)
    True
    >>> choose(dict(start, observed_at="2025-12-31T00:00:00Z"), spill, [closed], now, True, calendar=city)  # a day late
    ('new', None)
    """
    here = _here(message, category, candidates)
    opened_since = category.window_start("merge_window", now, calendar) if category.merge_window else -math.inf
    open_ = [c for c in here if c["state"] in {s.value for s in OPEN_STATES} and c["created_at"] >= opened_since
             and (held or c["state"] != CaseState.PENDING_REVIEW.value)]
    if open_:
        return "merge", max(open_, key=lambda c: c["created_at"])
    seen = wire.last_seen(message)
    closed = [c for c in here if c["state"] == CaseState.CLOSED.value and c["closed_at"] is not None
              and c["closed_at"] >= category.window_start("recheck_window", now, calendar)
              and seen >= c["closed_at"] - wire.MAX_CLOCK_SKEW_S]
    latest = max(closed, key=lambda c: c["closed_at"], default=None)
    if latest is not None and not held:
        return "reopen", latest
    return "new", latest  # held: the closed case it did not reopen, if any


def pending_beside(message: dict, category: Category, candidates: list[dict]) -> list[dict]:
    """The cases of the same type at the same place still pending review, beside which an incident
    that goes straight to a department opens its own case (see ``choose``). Each is noted on the
    other: one object may have become two cases (a lead the edge could not confirm at first, then
    confirmed), and the reviewer should see it before judging the held one."""
    return [c for c in _here(message, category, candidates) if c["state"] == CaseState.PENDING_REVIEW.value]


def rejected_here(message: dict, category: Category, rejected: list[dict]) -> dict | None:
    """The rejected case a lead the edge could not confirm joins, if any: the latest of ``rejected``
    (cases a person rejected within the category's ``rejected_window``) of its type at its place. A
    stain on a patched road, raised for review again whenever the edge restarts or loses sight of it,
    does not come back to the review queue each time; an incident the edge confirmed (a pile dumped
    there later) never joins one, and a category held for review as a whole does not make a lead one.

    >>> from gateway.config import TABLES_DIR, load_tables
    >>> garbage = load_tables(TABLES_DIR / "demo.yaml").category("garbage")
    >>> lead = {"type": "garbage", "box": "b", "camera": "c", "zone": "z", "attributes": {"needs_review": True}}
    >>> stain = {"id": 7, "type": "garbage", "box": "b", "camera": "c", "zone": "z", "state": "rejected"}
    >>> rejected_here(lead, garbage, [stain])["id"], rejected_here(dict(lead, attributes={}), garbage, [stain])
    (7, None)
    """
    if not needs_review(message):
        return None
    here = [c for c in _here(message, category, rejected) if c["state"] == CaseState.REJECTED.value]
    return max(here, key=lambda c: c["id"], default=None)


def _here(message: dict, category: Category, candidates: list[dict]) -> list[dict]:
    """The candidates of the message's type within the category's merge radius."""
    return [c for c in candidates if c["type"] == message["type"] and same_place(message, c, category.merge_radius_m)]


def case_grid(message: dict, tables: Tables) -> str:
    """The grid of the case ``message`` opens or joins: its own, or the centre where the tree does not know it.

    >>> from gateway.config import TABLES_DIR, load_tables
    >>> tables = load_tables(TABLES_DIR / "demo.yaml")
    >>> case_grid({"grid": "HQ-XYM-01-01"}, tables), case_grid({"grid": "HQ-OLD-01"}, tables)
    ('HQ-XYM-01-01', 'HQ')
    """
    return message["grid"] if tables.knows(message["grid"]) else tables.centre


def outside_its_grid(message: dict, tables: Tables) -> str | None:
    """The note for a case whose camera's location lies outside its zone's grid on the city's boundary map (the
    nearest grid up the tree that has a boundary), or None: the zone's grid wins, as it did, and the case is not
    moved; an operator hears of it (a zone's grid mistyped, or a camera's location). Where the location would lie
    inside had it or the map been read in another coordinate system (a GPS position on a map drawn on AMap), the note
    says so and names the keys that say each side's. Nothing without a boundary map, a location, or a grid the tree
    knows (that one is flagged already).

    >>> from gateway.config import TABLES_DIR, load_tables
    >>> tables = load_tables(TABLES_DIR / "demo.yaml")
    >>> here = {"grid": "HQ-XYM-01-01", "location": {"lat": 39.17, "lon": 117.165}}
    >>> outside_its_grid(here, tables) is None
    True
    >>> outside_its_grid(dict(here, location={"lat": 39.17, "lon": 117.15}), tables)
    "camera location (39.17, 117.15) lies in grid HQ-DZG-10D-07's boundary, outside grid HQ-XYM-01-01's: the case stays in its zone's grid"
    """
    place, grid = message.get("location"), message["grid"]
    if not place or not tables.grid_shapes or not tables.grids or not tables.knows(grid):
        return None
    mapped = next((g for g in tables.ancestors(grid) if g in tables.grid_shapes), None)
    at = tables.grids_at(place["lon"], place["lat"])
    if mapped is None or mapped in at:
        return None
    there = max(at, key=lambda g: len(tables.ancestors(g)), default=None)  # the smallest grid holding it
    where = f"lies in grid {there}'s boundary, outside" if there else "lies outside"
    note = f"camera location ({place['lat']}, {place['lon']}) {where} grid {mapped}'s: the case stays in its zone's grid"
    # a GPS position on a map drawn on AMap lies 100-700 m off, every camera of the city by as much; one camera
    # alone cannot tell it from a zone's grid mistyped for a neighbour's that far off, so the note says both
    mixed = next(((point, drawn) for point, drawn, lon, lat in coordinates.readings(place["lon"], place["lat"])
                  if gridmap.contains(tables.grid_shapes[mapped], lon, lat)), None)
    if mixed is None:
        return note
    box = f"box {message['box']!r}'s" if message.get("box") else "the box's"
    return (f"{note}; read as {coordinates.NAMES[mixed[0]]} on a boundary map drawn in {coordinates.NAMES[mixed[1]]}, "
            "it lies inside: where its box's other cameras lie off their grids as far, the location and the map are "
            "likely in different coordinate systems: set "
            f"grids_coordinates in the tables (now {tables.grids_coordinates}) to the map's, and coordinates in {box} "
            f"config to its cameras' ({', '.join(coordinates.SYSTEMS[:-1])} or {coordinates.SYSTEMS[-1]})")


def new_case(message: dict, category: Category, tables: Tables, now: float, held: bool) -> dict:
    """The row of a case opened from ``message`` at ``now``, ``held`` for review (``held_for_review``) or dispatched;
    the clock starts at dispatch."""
    location = message.get("location") or {}
    urgent = is_urgent(message)
    row = {
        "incident_id": message["incident_id"],
        "type": message["type"],
        "category_code": category.code,
        "category_name": category.name,
        "department": tables.department_for(category, message["grid"]),
        "grid": case_grid(message, tables),
        "box": message["box"],
        "camera": message["camera"],
        "zone": message["zone"],
        "lat": location.get("lat"),
        "lon": location.get("lon"),
        "state": (CaseState.PENDING_REVIEW if held else CaseState.DISPATCHED).value,
        "created_at": now,
        "dispatched_at": None if held else now,
        "deadline": None if held else dispatch_deadline(category, tables, now, urgent),
        "urgent": urgent,
        "reported_at": wire.parse_time(message["started_at"]),
        "confidence": message["confidence"],
        "bbox": json.dumps(message["bbox"]),
        "evidence_sha256": None if is_lone_end(message) else (message.get("evidence") or {}).get("sha256"),
        "last_seq": message["seq"],
        "level": 0,
        "escalated_grid": None,
        "next_escalation_at": None,
        "closed_at": None,
        "incident_count": 1,
        "ended_at": None,
        "end_reason": None,
        "end_evidence_sha256": None,
        "fed_back_at": None,
        "recheck_deadline": None,
        "review_deadline": review_deadline(category, tables, now) if held else None,
        "extension_request": None,
    }
    return row | incident_update(message)  # a lone end's snapshot is the end's (the place seen gone)


def dispatch_deadline(category: Category, tables: Tables, now: float, urgent: bool = False) -> float:
    return deadline(now, category.level(urgent), tables.calendar)


def review_deadline(category: Category, tables: Tables, now: float) -> float:
    """When the command centre's own wait that begins at ``now`` is due: a lead held for review to be confirmed or
    rejected, a case a department returned to be sent on (the category's ``review_service_level``).

    >>> from datetime import datetime
    >>> from gateway.config import TABLES_DIR, load_tables
    >>> tables = load_tables(TABLES_DIR / "demo.yaml")
    >>> monday = datetime(2026, 11, 23, 17, 0, tzinfo=wire.CITY_TZ).timestamp()  # 1 h of the working day left
    >>> datetime.fromtimestamp(review_deadline(tables.category("garbage"), tables, monday), wire.CITY_TZ).isoformat()
    '2026-11-24T10:00:00+08:00'
    """
    return deadline(now, parse_service_level(category.review_service_level), tables.calendar)


def review_due(tables: Tables, since: float | None) -> Callable[[dict, float], float | None]:
    """For a report (``reports.centre``): when a centre's wait of a case begun at ``began`` was due, from then and its
    category's ``review_service_level`` as the tables say now (the case log records no review deadline); none for a
    wait begun before ``since`` (the upgrade to ``CENTRE_CLOCK_MIGRATION``: it ran no clock; None: the database was made
    with it) or a category the tables no longer have.

    >>> from gateway.config import TABLES_DIR, load_tables
    >>> due = review_due(load_tables(TABLES_DIR / "demo.yaml"), since=1e9)
    >>> due({"type": "garbage"}, 2e9) - 2e9, due({"type": "garbage"}, 1), due({"type": "gone"}, 2e9)
    (7200.0, None, None)
    """
    def due(case: dict, began: float) -> float | None:
        category = tables.category(case["type"])
        if category is None or (since is not None and began < since):
            return None
        return review_deadline(category, tables, began)
    return due


def held_for_review(message: dict, category: Category, tables: Tables, now: float, camera_opened: int = 0) -> bool:
    """Whether a case opened from ``message`` at ``now`` waits for a person: the category is reviewed, the
    grid is unknown (raised to the centre), the edge asks for it, it is a lone end (``is_lone_end``), it
    was reported late (``reported_late``), or its camera opened ``camera_opened`` cases within the hour before, as
    many as the tables dispatch from one (``over_camera_rate``)."""
    return (category.review or not tables.knows(message["grid"]) or needs_review(message) or is_lone_end(message)
            or reported_late(message, category, tables, now) is not None
            or over_camera_rate(camera_opened, tables.new_cases_per_camera_hour))


CAMERA_RATE_WINDOW_S = 3600.0  # the hour of the tables' new_cases_per_camera_hour, up to the case's opening


def over_camera_rate(opened: int, limit: int | None) -> bool:
    """Whether a camera that opened ``opened`` cases within the hour (``CAMERA_RATE_WINDOW_S``) has its next new case
    held for review: ``limit`` or more (the tables' ``new_cases_per_camera_hour``; 0 or None: no limit). Every case it
    opened counts, held ones too: a camera that went wrong stays held while it goes on, and is dispatched again an hour
    after it calmed. A camera knocked to face a rubbish depot, a model file swapped or a box's password in other hands
    opened a case for everything it sent, and each sent a department: now a person looks first, and nothing is lost.
    An incident that joins or ends a case opens none, and is never held for it.

    >>> over_camera_rate(19, 20), over_camera_rate(20, 20), over_camera_rate(5000, 0), over_camera_rate(5000, None)
    (False, True, False, False)
    """
    return bool(limit) and opened >= limit


def camera_rate_note(message: dict, limit: int) -> str:
    """The timeline's word on a case held because its camera opened ``limit`` cases within the hour already
    (``over_camera_rate``: counted up to the limit, the most it need read).

    >>> camera_rate_note({"box": "box-1", "camera": "gate"}, 20)  # doctest: +NORMALIZE_WHITESPACE
    "camera gate of box box-1 opened 20 cases within the hour, as many as the city's tables dispatch from one camera
    (new_cases_per_camera_hour): held for review, not dispatched"
    """
    return (f"camera {message['camera']} of box {message['box']} opened {limit} cases within the hour, as many as the "
            "city's tables dispatch from one camera (new_cases_per_camera_hour): held for review, not dispatched")


def reported_late(message: dict, category: Category, tables: Tables, now: float) -> float | None:
    """How long before ``now`` the camera saw an incident (its ``observed_at``) whose first event reaches the
    gateway only once the category's ``late_limit`` (its service level, unless ``late_after`` says otherwise),
    counted from then, has passed, and ``wire.MAX_CLOCK_SKEW_S`` more (what a box's clock may be behind
    uncorrected); None for one reported in time. A box back after a day offline sends its outbox at once: its
    start and its end ``left`` made a dispatched case, and the department was sent to a car gone a day ago. A
    person decides (``late_note`` says why), as for a case the department would already be overdue on.

    >>> from gateway.config import TABLES_DIR, load_tables
    >>> tables = load_tables(TABLES_DIR / "demo.yaml")
    >>> parking = tables.category("illegal_parking")  # service level 1h
    >>> start = {"type": "illegal_parking", "observed_at": "2026-01-01T00:00:00Z"}
    >>> seen = wire.parse_time(start["observed_at"])
    >>> reported_late(start, parking, tables, seen + 3900), reported_late(start, parking, tables, seen + 3901)
    (None, 3901.0)
    """
    seen = wire.parse_time(message["observed_at"])
    due = deadline(seen, parse_service_level(category.late_limit(is_urgent(message))), tables.calendar)
    return now - seen if now - wire.MAX_CLOCK_SKEW_S > due else None


def late_note(message: dict, limit: str, late_s: float, clock_offset_s: float | None) -> str:
    """The timeline's word on a case held for review because its incident was reported ``late_s`` after the camera
    saw it, more than ``limit`` (``reported_late``). Where its box's clock is off the gateways' by more than an
    incident's times may be (``clock_offset_s``, the gateways' clock less the box's, as the boxes page shows it),
    it says so: the time may be the clock's. A box whose clock battery is dead stands in 2000 after each start
    until a gateway's acknowledgement tells it the time (edge/publisher.py ``GatewayClock``): what it made before
    is held so where no one can know its time (a box older than the boot clock, or what it made in a boot before).
    One marked ``attributes.boot_clock`` (stamped on a boot's clock, sent from a boot before) has no time to count
    from: the note says its time is unknown.

    >>> m = {"incident_id": "3f2a9c", "box": "box-1", "observed_at": "2026-01-01T00:00:30Z"}
    >>> late_note(m, "1h", 86_400.0, -2.0)
    'incident 3f2a9c reported 24.0 h after the camera saw it (2026-01-01T00:00:30Z; more than 1h): held for review, not dispatched'
    >>> late_note(dict(m, observed_at="2000-01-01T00:03:00Z"), "1h", 8.2e8, 8.2e8)  # doctest: +NORMALIZE_WHITESPACE
    "incident 3f2a9c reported 9491 days after the camera saw it (2000-01-01T00:03:00Z; more than 1h) by box box-1's
    clock, 9491 days behind the gateway's: held for review, not dispatched"
    >>> late_note(dict(m, attributes={"boot_clock": "b0"}), "1h", 8.2e8, None)
    "incident 3f2a9c stamped on box box-1's boot clock (its time unknown): held for review, not dispatched"
    """
    if (message.get("attributes") or {}).get("boot_clock") is not None:  # its times count from a boot, not a date
        return (f"incident {message['incident_id']} stamped on box {message['box']}'s boot clock (its time unknown): "
                "held for review, not dispatched")
    clock = ""
    if clock_offset_s is not None and abs(clock_offset_s) > wire.MAX_CLOCK_SKEW_S:
        clock = (f" by box {message['box']}'s clock, {_span(abs(clock_offset_s))} "
                 f"{'behind' if clock_offset_s > 0 else 'ahead of'} the gateway's")
    return (f"incident {message['incident_id']} reported {_span(late_s)} after the camera saw it "
            f"({message['observed_at']}; more than {limit}){clock}: held for review, not dispatched")


def _span(seconds: float) -> str:
    """A time span written as a service level is, so the pages show it in Chinese (``presentation.duration_text``).

    >>> _span(90.0), _span(9000.0), _span(200_000.0)
    ('2 min', '2.5 h', '2 days')
    """
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def is_lone_end(message: dict) -> bool:
    """Asked of the first event the gateway has of an incident (one that would open a case): its end, the
    start never received (lost with a box's damaged outbox, or a dead letter), or not yet (a resent start
    comes after its end). The camera saw a problem, and saw it gone (``left``, ``cleared``) or stopped
    watching it (``box_stopped``, ``camera_lost``, ``stream_ended``): a person decides, no department is sent.
    An incident still seen would come back as an ``update`` or a new start."""
    return message["state"] == "end"


def needs_review(message: dict) -> bool:
    """The edge asks for a person (``attributes.needs_review``): a garbage or spill detection it could
    not confirm as new, e.g. something that was there when the camera came up; a camera fault of a camera
    never read since its zones were drawn (an installation not finished)."""
    return (message.get("attributes") or {}).get("needs_review") is True  # the schema holds it to a boolean


def is_urgent(message: dict) -> bool:
    """The edge marks an incident urgent (``attributes.urgent``): a spill that endangers traffic."""
    return (message.get("attributes") or {}).get("urgent") is True  # "false" is refused by the schema


def merged_urgent(case: dict, message: dict, category: Category, tables: Tables, now: float) -> dict:
    """What an urgent incident joining a case that was not changes: the case becomes urgent and
    its deadline comes forward to the urgent service level (never later than it was)."""
    if case["urgent"] or not is_urgent(message):
        return {}
    values: dict = {"urgent": True}
    if case["deadline"] is not None:
        values["deadline"] = min(case["deadline"], dispatch_deadline(category, tables, now, True))
    return values


NOT_ENDED = {"ended_at": None, "end_reason": None, "end_evidence_sha256": None}  # no camera "gone" on the case


def incident_update(message: dict, with_end: bool = True) -> dict:
    """What a later event of the case's own incident changes on it; its end only ``with_end``
    (not while another incident joined to the case is still seen)."""
    values = {"last_seq": message["seq"], "confidence": message["confidence"], "bbox": json.dumps(message["bbox"])}
    if message["state"] == "end" and with_end:
        values |= {"ended_at": wire.parse_time(message["ended_at"]), "end_reason": message["end_reason"],
                   "end_evidence_sha256": (message.get("evidence") or {}).get("sha256")}
    return values


def is_recheck(message: dict) -> bool:
    """An end that is evidence for closure: the camera saw the car leave, the pile or spill go."""
    return message["state"] == "end" and message["end_reason"] in RECHECK_REASONS


def escalation(case: dict, category: Category, tables: Tables, now: float) -> dict:
    """The second whistle for an overdue case: one level up the grid tree, and again after
    another service level if it is still overdue. An overdue re-check (in feedback) is the
    centre's own, not the department's: it goes to the root of the tree. A lead nobody reviewed or a returned case
    nobody sent on (``CENTRE_CLOCK``) is the command centre's of its grid: one level up at a time, as a department's,
    looked at again after another ``review_service_level``."""
    level = case["level"] + 1
    chain = tables.ancestors(case["grid"])
    to = chain[-1] if case["state"] == CaseState.FEEDBACK.value else chain[min(level, len(chain) - 1)]
    again = (review_deadline(category, tables, now) if case["state"] in {s.value for s in CENTRE_CLOCK}
             else dispatch_deadline(category, tables, now, bool(case["urgent"])))
    return {"level": level, "escalated_grid": to, "next_escalation_at": again}


def running_deadline(case: dict) -> float | None:
    """The deadline that runs now: the department's while it handles, the re-check's in feedback, the command
    centre's own while a lead waits for review or a returned case to be sent on (``review_deadline``)."""
    if case["state"] in {s.value for s in DEPARTMENT_CLOCK}:
        return case["deadline"]
    if case["state"] == CaseState.FEEDBACK.value:
        return case.get("recheck_deadline")
    if case["state"] in {s.value for s in CENTRE_CLOCK}:
        return case.get("review_deadline")
    return None


def is_overdue(case: dict, now: float) -> bool:
    """Past the deadline that runs now (a department that fed back in time is not overdue).

    >>> is_overdue({"state": "handling", "deadline": 10.0}, now=11.0)
    True
    >>> is_overdue({"state": "feedback", "deadline": 10.0, "recheck_deadline": 50.0}, now=11.0)
    False
    >>> is_overdue({"state": "returned", "deadline": 10.0, "review_deadline": 50.0}, now=51.0)  # the centre's
    True
    """
    due = running_deadline(case)
    return due is not None and due < now


def action_values(case: dict, action: Action, category: Category, tables: Tables, now: float, *,
                  extend_by: str | None = None, department: str | None = None) -> dict:
    """The columns ``action`` changes on ``case`` besides its state (``workflow.EFFECTS``): one
    place for what confirm, redispatch, reopen, feedback, extend, escalate and the rest do to the
    clock, whoever performs them. Raises TransitionError or ValueError for a request that cannot be.

    >>> from gateway.config import TABLES_DIR, load_tables
    >>> tables = load_tables(TABLES_DIR / "demo.yaml")
    >>> case = {"state": "closed", "type": "illegal_parking", "urgent": False, "level": 2, "grid": "HQ-DZG-10D-07",
    ...         "deadline": 0.0, "closed_at": 5.0, "extension_request": None}
    >>> v = action_values(case, Action.REOPEN, tables.category("illegal_parking"), tables, now=100.0)
    >>> v["deadline"], v["level"], v["closed_at"], v["dispatched_at"]
    (3700.0, 0, None, 100.0)
    """
    clock, _ = effect(action)
    values: dict = {}
    if action == Action.REDISPATCH:
        if department not in {d.id for d in tables.departments}:
            raise ValueError(f"redispatch needs a known department, got {department!r}")
        values["department"] = department
    if action == Action.REQUEST_EXTENSION:
        parse_service_level(extend_by or "")  # ValueError names what is wrong
        values["extension_request"] = extend_by
    if action in (Action.APPROVE_EXTENSION, Action.REFUSE_EXTENSION):
        if not case.get("extension_request"):
            raise TransitionError(f"no request for more time is waiting on this case ({action.value})")
        extend_by = case["extension_request"]
        values["extension_request"] = None
    if clock == Clock.START and action != Action.REDISPATCH and not tables.knows_department(case.get("department")):
        # a department taken out of the tables: a confirm, reopen or failed re-check sent its notice to a topic
        # nobody hears; the case goes where the tables route it now
        values["department"] = tables.department_for(category, case["grid"])
    if clock == Clock.START:
        values |= {"dispatched_at": now, "deadline": dispatch_deadline(category, tables, now, bool(case["urgent"])),
                   "level": 0, "escalated_grid": None, "next_escalation_at": None, "fed_back_at": None,
                   "recheck_deadline": None, "review_deadline": None, "extension_request": None}
        if action == Action.REOPEN:
            values |= {"closed_at": None, **NOT_ENDED}
    elif clock == Clock.RECHECK:
        values |= {"fed_back_at": now, "next_escalation_at": None, "extension_request": None,
                   "recheck_deadline": deadline(now, parse_service_level(category.recheck_service_level),
                                                tables.calendar)}
    elif clock == Clock.EXTEND:
        if not extend_by:
            raise ValueError("extend needs extend_by, e.g. '2h' or '1 working day'")
        column = "recheck_deadline" if case["state"] == CaseState.FEEDBACK.value else "deadline"
        values |= {column: deadline(case.get(column) or now, parse_service_level(extend_by),
                                    tables.calendar), "next_escalation_at": None}
    elif clock == Clock.REVIEW:  # the centre's own clock starts afresh, its escalation from the case's grid
        values |= {"review_deadline": review_deadline(category, tables, now), "level": 0, "escalated_grid": None,
                   "next_escalation_at": None, "extension_request": None}
    elif clock == Clock.ESCALATE:
        values |= escalation(case, category, tables, now)
    elif clock == Clock.STOP:
        values |= {"next_escalation_at": None, "extension_request": None, "review_deadline": None}
    return values
