"""A camera that suddenly opens far more cases than a street has (a camera knocked to face a rubbish depot, a model
file swapped, a box's broker password in other hands: 2,000 made-up incidents were 2,000 dispatched cases): past the
tables' ``new_cases_per_camera_hour`` its new cases are still opened, held for review with the reason, and no
department is sent until a person confirms. The rule (gateway/cases.py) and ingest on a real SQLite file."""

import copy
import json
import logging

import pytest

from gateway.cases import camera_rate_note, over_camera_rate
from gateway.config import TABLES_DIR, GatewayConfigError, load_tables
from gateway.ingest import DatabaseUnavailable, Ingest
from gateway.metrics import Health
from gateway.presentation import note_text
from gateway.storage import Store
from tests.test_poison import fill, small_disk  # noqa: F401 (a fixture)
from xueliang import wire

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
TABLES = load_tables(TABLES_DIR / "demo.yaml")


@pytest.mark.parametrize("opened, limit, held", [
    (0, 3, False), (2, 3, False), (3, 3, True), (5000, 3, True),
    (5000, 0, False), (5000, None, False),  # no limit
])
def test_a_camera_past_its_hours_new_cases_holds_the_next(opened, limit, held):
    assert over_camera_rate(opened, limit) == held


def test_the_note_names_the_camera_its_box_and_the_tables_setting():
    note = camera_rate_note({"box": "box-1", "camera": "gate"}, 20)
    assert note == ("camera gate of box box-1 opened 20 cases within the hour, as many as the city's tables dispatch "
                    "from one camera (new_cases_per_camera_hour): held for review, not dispatched")
    assert note_text({"action": "flagged", "role": "system", "note": note}, TABLES) == (
        "摄像机 gate (盒子 box-1) 一小时内已立案 20 件, 达到单台摄像机每小时派遣上限 (new_cases_per_camera_hour): "
        "提交审核, 未派遣")


def test_the_demo_city_sets_a_street_cameras_limit():
    assert TABLES.new_cases_per_camera_hour == 20


@pytest.mark.parametrize("written, limit, error", [
    ("0", 0, None), ("null", None, None), ("5", 5, None),
    ("-1", None, "new_cases_per_camera_hour: is -1; write 0 or more"),
    ("2.5", None, "new_cases_per_camera_hour: Input should be a valid integer"),
    ("yes", None, "new_cases_per_camera_hour: Input should be a valid integer"),  # YAML's true: not a limit of 1
])
def test_the_limit_is_a_whole_number_or_none(tmp_path, written, limit, error):
    city = tmp_path / "city"
    city.mkdir()
    for f in TABLES_DIR.iterdir():
        (city / f.name).write_bytes(f.read_bytes())
    path = city / "demo.yaml"
    path.write_text(path.read_text() + f"new_cases_per_camera_hour: {written}\n")
    if error is None:
        assert load_tables(path).new_cases_per_camera_hour == limit
        return
    with pytest.raises(GatewayConfigError, match=error):
        load_tables(path)


START = {
    "schema_version": 1, "incident_id": "i", "seq": 1, "state": "start", "type": "illegal_parking",
    "box": "box-1", "camera": "gate", "zone": "kerb", "grid": "HQ-DZG-10D-07", "location": None,
    "started_at": "2026-01-01T00:00:30Z", "observed_at": "2026-01-01T00:00:30Z", "ended_at": None,
    "end_reason": None, "confidence": 0.79, "bbox": [0.84, 0.07, 0.94, 0.17], "track_id": 3,
    "attributes": {"dwell_s": 30, "label": "car"}, "evidence": None,
    "model": {"name": "ssd_mobilenet_v2_coco", "version": "1"},
}


def incident(n: int, camera: str = "gate", at: float = NOW, **changes) -> tuple[str, bytes]:
    """Incident ``n`` of ``camera``, in a zone of its own (each a place apart: none joins another's case)."""
    seen = wire.iso(at - 30)
    m = copy.deepcopy(START) | {"incident_id": f"{camera}-{n}", "camera": camera, "zone": f"z{n}",
                                "started_at": seen, "observed_at": seen} | changes
    return wire.incident_topic("box-1", camera), json.dumps(m).encode()


def test_past_the_limit_a_cameras_new_cases_are_held_with_the_reason_and_the_next_hour_dispatches(tmp_path, caplog):
    """3 an hour: of 8 incidents one batch brings, 3 dispatched and 5 held, each saying why; another camera is its own;
    an incident joining a case opened before is no new case; an hour on, the camera's cases are dispatched again."""
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    tables = TABLES.model_copy(update={"new_cases_per_camera_hour": 3})
    clock, health = [NOW], Health()
    ingest = Ingest(store, tables, clock=lambda: clock[0], health=health)
    with caplog.at_level(logging.WARNING, logger="gateway.ingest"):
        assert ingest.handle_batch([incident(n) for n in range(8)]) == ["case_created"] * 8
    cases = sorted(store.list_cases(), key=lambda c: c["id"])
    assert [c["state"] for c in cases] == ["dispatched"] * 3 + ["pending_review"] * 5
    held = store.get_case(cases[3]["id"])["timeline"]
    assert [(e["action"], e["note"]) for e in held][1:] == [("flagged", camera_rate_note(START, 3))]
    assert {r["case_id"] for r in store.unpublished(("dispatched",))} == {c["id"] for c in cases[:3]}  # no notice
    said = [r.getMessage() for r in caplog.records if "new_cases_per_camera_hour" in r.getMessage()]
    assert len(said) == 1 and "box 'box-1' camera 'gate'" in said[0]  # once, not at each held case
    assert health.parts(NOW)["ingest"]["cameras_over_rate"]["box-1/gate"]["held"] == 5
    # another camera of the box is not held for this one's; a later event of a case is no new case
    assert ingest.handle(*incident(0, camera="yard")) == "case_created"
    assert ingest.handle(*incident(0, seq=2, state="update")) == "case_updated"
    # joining a case is no new case: an incident at a dispatched case's place joins it, not held
    assert ingest.handle(*incident(9, zone="z0")) == "case_merged"
    assert store.count("cases") == 9
    clock[0] = NOW + 3600  # the hour since the flood has passed
    assert ingest.handle(*incident(10, at=clock[0])) == "case_created"
    states = {c["incident_id"]: c["state"] for c in store.list_cases()}
    assert (states["yard-0"], states["gate-10"]) == ("dispatched", "dispatched")


def test_a_batch_the_database_could_not_take_counts_no_held_case(small_disk, caplog):
    """/health's ``held`` counts the cases a camera's rate held, once each: an outsider's full disk (a batch of 10 such
    cases tried again every 2 s for 50 s) showed ``held: 34`` for 10 cases, each failed try counted, and the log said
    the camera over its rate for a batch that was never written."""
    store = Store(f"sqlite:///{small_disk}/gateway.sqlite")
    tables = TABLES.model_copy(update={"new_cases_per_camera_hour": 3})
    health = Health()
    ingest = Ingest(store, tables, clock=lambda: NOW, health=health)
    assert ingest.handle_batch([incident(n) for n in range(3)]) == ["case_created"] * 3
    fill(small_disk / "filler")
    batch = [incident(n) for n in range(3, 5)]
    with caplog.at_level(logging.WARNING, logger="gateway.ingest"):
        for _ in range(3):
            with pytest.raises(DatabaseUnavailable, match="full"):
                ingest.handle_batch(batch)
        with pytest.raises(DatabaseUnavailable, match="full"):
            ingest.handle(*batch[0])
        assert health.parts(NOW)["ingest"].get("cameras_over_rate", {}) == {}  # nothing was held: nothing written
        assert not [r for r in caplog.records if "new_cases_per_camera_hour" in r.getMessage()]
        (small_disk / "filler").unlink()
        assert ingest.handle_batch(batch) == ["case_created"] * 2
    assert health.parts(NOW)["ingest"]["cameras_over_rate"]["box-1/gate"]["held"] == 2
    assert len([r for r in caplog.records if "new_cases_per_camera_hour" in r.getMessage()]) == 1
