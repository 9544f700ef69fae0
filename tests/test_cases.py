"""Cases from incidents, pure logic (gateway/cases.py): what a report that comes long after the camera saw its
incident does, and what it no longer does to a case closed since."""

import pytest

from gateway.cases import choose, held_for_review, late_note, reported_late
from gateway.config import TABLES_DIR, load_tables
from xueliang import wire

TABLES = load_tables(TABLES_DIR / "demo.yaml")
HOUR, DAY = 3600.0, 86_400.0
FRIDAY = wire.parse_time("2026-01-02T02:00:00Z")  # 10:00 Beijing time, a working day before a weekend
SKEW = wire.MAX_CLOCK_SKEW_S


def sighting(type: str = "illegal_parking", seen: float = FRIDAY, **more) -> dict:
    """A start as the gateway has it once checked, its camera having seen it at ``seen``."""
    return {"incident_id": "i-1", "type": type, "box": "b", "camera": "c", "zone": "z", "grid": "HQ-DZG-10D-07",
            "state": "start", "observed_at": wire.iso(seen), "ended_at": None, "attributes": {}, **more}


@pytest.mark.parametrize("message, after_s, late", [
    (sighting(), HOUR + SKEW, False),  # parking, 1h: within it and what a box's clock may be behind
    (sighting(), HOUR + SKEW + 1, True),
    (sighting(), DAY, True),  # a box back after a day offline
    # garbage, 3 working days: from Friday to Wednesday, the weekend not counted
    (sighting("garbage"), 5 * DAY, False),
    (sighting("garbage"), 5 * DAY + SKEW + 1, True),
    # spill, 1 working day; one the edge marks urgent, 1h
    (sighting("spill"), 2 * HOUR, False),
    (sighting("spill", attributes={"urgent": True}), 2 * HOUR, True),
])
def test_a_report_is_late_past_its_service_level_counted_from_when_the_camera_saw_it(message, after_s, late):
    category = TABLES.category(message["type"])
    assert (reported_late(message, category, TABLES, FRIDAY + after_s) is not None) == late
    assert held_for_review(message, category, TABLES, FRIDAY + after_s) == late


def test_a_citys_late_after_overrides_the_service_level():
    parking = TABLES.category("illegal_parking").model_copy(update={"late_after": "15 min"})  # seldom there long
    assert reported_late(sighting(), parking, TABLES, FRIDAY + 15 * 60 + SKEW) is None
    assert reported_late(sighting(), parking, TABLES, FRIDAY + 20 * 60 + SKEW) == 20 * 60 + SKEW


def test_a_late_incident_stamped_on_a_boot_clock_says_its_time_is_unknown():
    """One a box stamped on a boot's clock and sent from a later boot (``attributes.boot_clock``) has no real time:
    its note said it was reported thousands of days after the camera saw it."""
    on_boot = sighting(seen=wire.EARLIEST + 50, attributes={"boot_clock": "the boot before"})
    late = reported_late(on_boot, TABLES.category("illegal_parking"), TABLES, FRIDAY)
    assert late_note(on_boot, "1h", late, None) == (
        "incident i-1 stamped on box b's boot clock (its time unknown): held for review, not dispatched")


CLOSED = {"id": 4, "type": "illegal_parking", "box": "b", "camera": "c", "zone": "z", "state": "closed",
          "created_at": FRIDAY - HOUR, "closed_at": FRIDAY}


@pytest.mark.parametrize("seen, kind", [
    (FRIDAY + 60, "reopen"),  # seen after it closed: the problem came back
    (FRIDAY - SKEW, "reopen"),  # as far before as a box's clock may be behind
    (FRIDAY - SKEW - 1, "new"),
    (FRIDAY - DAY, "new"),  # a day old, from a box back after a day offline
])
def test_only_an_incident_seen_after_a_case_closed_reopens_it(seen, kind):
    """A start a day old, sent by a box back online, reopened a case closed minutes before (the window is by the
    gateway's clock) and sent its department to it again; it opens a case of its own now."""
    assert choose(sighting(seen=seen), TABLES.category("illegal_parking"), [CLOSED], FRIDAY + 300,
                  held=False, calendar=TABLES.calendar)[0] == kind


PARKING = TABLES.category("illegal_parking")


@pytest.mark.parametrize("message, category, now", [
    (sighting("garbage", attributes={"needs_review": True}), TABLES.category("garbage"), FRIDAY + 300),  # a lead
    (sighting(grid="NOWHERE-1"), PARKING, FRIDAY + 300),  # raised to the centre
    (sighting(), PARKING.model_copy(update={"review": True}), FRIDAY + 300),  # a reviewed category
    (sighting(state="end", ended_at=wire.iso(FRIDAY + 60), end_reason="left"), PARKING, FRIDAY + 300),
    (sighting(seen=FRIDAY + 60), PARKING.model_copy(update={"late_after": "15 min"}), FRIDAY + 60 + 20 * 60 + SKEW),
], ids=["needs_review", "unknown_grid", "reviewed_category", "lone_end", "late"])
def test_an_incident_held_for_review_never_reopens_a_closed_case(message, category, now):
    """A lead the edge could not confirm, seen where a case closed minutes before, reopened it and sent its
    department again with nobody having looked. It opens a case of its own, held for review, naming the closed one."""
    message, closed = dict(message, type=category.type), dict(CLOSED, type=category.type)
    held = held_for_review(message, category, TABLES, now)
    assert held and choose(message, category, [closed], now, held, calendar=TABLES.calendar) == ("new", closed)
    assert choose(sighting(type=category.type), category, [closed], now, held=False, calendar=TABLES.calendar) == \
        ("reopen", closed)


def test_a_late_incident_still_joins_an_open_case_at_its_place():
    still_open = dict(CLOSED, state="dispatched", closed_at=None)
    assert choose(sighting(seen=FRIDAY - DAY), TABLES.category("illegal_parking"), [still_open, CLOSED],
                  FRIDAY + 300, held=True, calendar=TABLES.calendar) == ("merge", still_open)
