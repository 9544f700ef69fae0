"""No incident is dispatched from what was always there: garbage and spill detections the edge
cannot confirm as new go to the gateway marked ``needs_review``, whose case waits for a person."""

import json
import subprocess
import time

import numpy as np
import pytest
import supervision as sv
import yaml
from fastapi.testclient import TestClient

from edge.config import parse_config
from edge.detector import LITTER as LITTER_MODEL, load_detectors, min_scores, run_passes
from edge.pipeline import CameraPipeline
from models.litter.synth import composite, render

from gateway.api import create_app
from gateway.auth import new_token
from gateway.config import load_tables
from gateway.ingest import Ingest
from gateway.presentation import note_text
from gateway.storage import Store

from .conftest import REPO
from .test_litter import LITTER, ROAD_ZONE, _replay, campus_frames
from .test_workflow import CITY, act, auth, database_url, end_of, incident, seen  # noqa: F401 (a fixture)

ZONES = yaml.safe_load(LITTER.read_text())["camera"]["zones"]


@pytest.mark.slow
def test_a_pile_there_when_the_camera_came_up_is_sent_for_review(tmp_path):
    """The composed clip from 30 s on: the pile (10-55 s) and the spill (25-65 s) are already there
    at the first frame, so the left-object check cannot see them arrive: incidents for review only."""
    clip = tmp_path / "late-start.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-ss", "30", "-i", str(REPO / "fixtures/videos/campus-litter.mp4"),
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "20", str(clip)], check=True, timeout=120)
    zones = [dict(z, persistence_s=10) for z in ZONES]
    messages, _ = _replay(LITTER, tmp_path, zones=zones, video=str(clip))
    starts = [m for m in messages if m["state"] == "start" and m["type"] in ("garbage", "spill")]
    assert starts, "the detector should still see the pile and the spill"
    assert all(m["attributes"]["needs_review"] is True for m in starts), starts


@pytest.mark.slow
def test_a_pile_that_arrives_is_dispatched_without_review(tmp_path):
    messages, _ = _replay(LITTER, tmp_path)
    starts = [m for m in messages if m["state"] == "start" and m["type"] in ("garbage", "spill")]
    assert {m["type"] for m in starts} == {"garbage", "spill"}
    assert all(m["attributes"]["needs_review"] is False for m in starts), starts


def test_the_gateway_holds_a_case_the_edge_marks_for_review(tmp_path):
    """Real SQLite: garbage needs no review in this city, yet an incident marked needs_review starts
    pending_review (no dispatch, no deadline) until an operator confirms it; an unmarked one is dispatched."""
    city = dict(CITY, categories=[dict(c, review=False) for c in CITY["categories"]])
    (tmp_path / "city.yaml").write_text(yaml.safe_dump(city, allow_unicode=True))
    tables = load_tables(tmp_path / "city.yaml")
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, tables)
    far = {"lat": 39.0, "lon": 117.0}
    garbage = {"type": "garbage", "zone": "kerb"}
    assert ingest.handle(*incident(**garbage, attributes={"source": "detector", "needs_review": True})) == "case_created"
    assert ingest.handle(*incident(**garbage, attributes={"needs_review": False}, location=far)) == "case_created"
    held, dispatched = sorted(store.list_cases(), key=lambda c: c["id"])
    assert (held["state"], held["dispatched_at"], held["deadline"]) == ("pending_review", None, None)
    assert dispatched["state"] == "dispatched" and dispatched["deadline"] is not None
    client = TestClient(create_app(store, tables))
    token = new_token(store, "op", "operator", grid="D-S1")
    assert act(client, token, held["id"], "confirm").status_code == 200
    assert client.get(f"/cases/{held['id']}", headers=auth(token)).json()["state"] == "dispatched"


Pile = tuple[int, int, int, int, int, int]  # width, height, x, y in the campus picture; there from, until (s)


def _two_piles(old: Pile, new: Pile | None, frames: int, persistence_s: int = 10, detection: dict | None = None,
               named: tuple[tuple[int, int, int, int], int] | None = None) -> list[tuple[int, dict]]:
    """The campus camera, the real litter model and left-object check, a garbage zone over the road: two piles drawn
    (``old`` first; ``new`` None: ``old`` alone), each there from and until the times it says; ``named``: a box (x1,
    y1, x2, y2 in the campus picture) the litter model also names garbage (0.5) at each pass from a time on, as it
    may bare ground (a faint score, a shadow, its box for what lay there). The messages, each with its time in
    seconds."""
    config = parse_config({"box": "b1", "detection": detection or {}, "cameras": [
        {"id": "gate", "url": "unused.mp4", "grid": "G-1", "zones": [
            {"id": "road", "types": ["garbage"], "persistence_s": persistence_s, "clear_s": 5, "polygon": ROAD_ZONE}]}]})
    pipeline = CameraPipeline(config, config.cameras[0], load_detectors(config))
    rng = np.random.default_rng(3)
    drawn = [(render(rng, "garbage", w, h, "heldout"), x, y, since, until)
             for w, h, x, y, since, until in (p for p in (old, new) if p is not None)]
    t0, events = 1_767_225_600.0, []
    for t, frame in enumerate(campus_frames(step=10)[:frames]):
        frame = frame.copy()
        for pile, x, y, since, until in drawn:
            if since <= t < until:
                composite(frame, pile, x, y)
        passes = pipeline.plan(t0 + t, frame)
        parts = run_passes(pipeline.detectors, passes, min_scores(config.detection))
        litter = [i for i, (model, _) in enumerate(passes) if model == LITTER_MODEL]
        if named is not None and t >= named[1] and litter:  # on the first tile, in its pixels
            (x1, y1, x2, y2), (left, top, *_) = named[0], pipeline._litter_regions[0]
            garbage = next(i for i, name in pipeline.detectors[LITTER_MODEL].classes.items() if name == "garbage")
            box = sv.Detections(np.array([[x1 - left, y1 - top, x2 - left, y2 - top]], np.float32),
                                confidence=np.array([0.5], np.float32), class_id=np.array([garbage]),
                                data={"class_name": np.array(["garbage"], dtype=object)})
            parts[litter[0]] = sv.Detections.merge([parts[litter[0]], box])
        events += [(t, o.message) for o in pipeline.observe(t0 + t, frame, parts)]
    return events


@pytest.mark.slow
def test_a_pile_dumped_where_one_is_held_for_review_is_dispatched_on_its_own():
    """The campus camera, the real litter model and left-object check: a small pile lies on the road
    when the camera comes up (held for review), a larger one is dumped over it at 20 s and taken away
    at 50 s. The held incident cannot carry the new pile: it gets its own incident, dispatched, that
    ends ``cleared`` once the ground is back to what the camera first saw, while the held one stays."""
    events = _two_piles(old=(50, 30, 350, 345, 0, 75), new=(70, 40, 340, 335, 20, 50), frames=75)
    starts = [(t, m) for t, m in events if m["state"] == "start"]
    assert [m["attributes"]["needs_review"] for _, m in starts] == [True, False], starts
    (held_t, held), (new_t, dispatched) = starts
    assert held_t == 10 and 30 <= new_t <= 45, (held_t, new_t)
    assert dispatched["attributes"]["source"] == "detector+left_object" and dispatched["evidence"]
    ends = [(t, m) for t, m in events if m["state"] == "end"]
    assert [(m["incident_id"], m["end_reason"]) for _, m in ends] == [(dispatched["incident_id"], "cleared")], ends
    assert 50 <= ends[0][0] <= 60


def test_a_confirmed_incident_never_joins_a_case_pending_review(tmp_path):
    """Real SQLite: a stain's case waits for review; a pile the edge confirms at the same place opens
    its own case, dispatched, and the camera's "cleared" for it is closure evidence for that case only."""
    city = dict(CITY, categories=[dict(c, review=False) for c in CITY["categories"]])
    (tmp_path / "city.yaml").write_text(yaml.safe_dump(city, allow_unicode=True))
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, load_tables(tmp_path / "city.yaml"))
    garbage = {"type": "garbage", "zone": "kerb"}
    stain = incident(**garbage, attributes={"source": "detector", "needs_review": True})
    pile = incident(**garbage, attributes={"source": "detector+left_object", "needs_review": False})
    assert ingest.handle(*stain) == "case_created"
    assert ingest.handle(*pile) == "case_created"
    assert ingest.handle(*end_of(pile, reason="cleared")) == "case_updated"
    held, dispatched = sorted(store.list_cases(), key=lambda c: c["id"])
    assert (held["state"], held["incident_count"], held["end_reason"]) == ("pending_review", 1, None)
    assert (dispatched["state"], dispatched["end_reason"]) == ("dispatched", "cleared")
    assert dispatched["deadline"] is not None
    # each case says the other is there: the reviewer may find one object became two cases
    pile_id = json.loads(pile[1])["incident_id"]

    def related(case_id: int) -> list[str]:
        return [e["note"] for e in store.get_case(case_id)["timeline"] if e["action"] == "related"]

    assert related(held["id"]) == [f"case {dispatched['id']} opened at the same place for confirmed incident "
                                   f"{pile_id}"]
    assert related(dispatched["id"]) == [f"case {held['id']} at the same place waits for review"]
    tables = load_tables(tmp_path / "city.yaml")
    shown = [note_text(e, tables) for e in store.get_case(held["id"])["timeline"] if e["action"] == "related"]
    assert shown == [f"同一地点经确认的事件 {pile_id} 已另立案件 #{dispatched['id']}, 如为同一问题请作废本案"]
    # a second lead still waiting for review joins the held case, and relates to nothing
    again = incident(**garbage, attributes={"source": "detector", "needs_review": True})
    assert ingest.handle(*again) == "case_merged"
    assert len(related(held["id"])) == 1


def test_a_lead_a_person_rejected_does_not_come_back_for_review(tmp_path, database_url):
    """Real SQLite and PostgreSQL: a stain on a patched road is held for review and rejected. Raised again (the edge
    restarted, or lost sight of it for a while), the same lead at the same place joins the rejected
    case, noted in its timeline, instead of waiting in the review queue again; after the category's
    rejected_window it is a new case for review. A pile the edge confirms there is dispatched."""
    from gateway.actions import act as perform_act
    from gateway.workflow import Action, Role

    categories = [dict(c, review=False, rejected_window="2h") for c in CITY["categories"]]
    roads = dict(next(c for c in categories if c["type"] == "garbage"), type="spill", code="200107", name="道路遗撒")
    (tmp_path / "city.yaml").write_text(yaml.safe_dump(dict(CITY, categories=categories + [roads]), allow_unicode=True))
    tables = load_tables(tmp_path / "city.yaml")
    store = Store(database_url)
    clock = [time.time()]  # hours pass on the gateway's clock; the messages' own times are not the point here
    ingest = Ingest(store, tables, clock=lambda: clock[0], max_clock_skew_s=86400)
    spill = {"type": "spill", "zone": "sealed-road"}

    def lead():
        return incident(**spill, attributes={"source": "detector", "needs_review": True})

    assert ingest.handle(*lead()) == "case_created"
    (stain,) = store.list_cases()
    assert stain["state"] == "pending_review"
    perform_act(store, stain["id"], Action.REJECT, Role.OPERATOR, "op", clock[0] + 60, tables, lambda c: True, "crack sealing")
    clock[0] += 3600
    again = lead()
    assert ingest.handle(*again) == "case_merged"
    assert ingest.handle(*end_of(again, reason="cleared")) == "case_updated"
    (case,) = store.list_cases()
    assert (case["id"], case["state"], case["incident_count"]) == (stain["id"], "rejected", 2)
    notes = [e["note"] for e in store.get_case(stain["id"])["timeline"] if e["action"] == "merged"]
    assert notes == [f"incident {json.loads(again[1])['incident_id']}: a lead the camera could not confirm, at "
                     "the place of this rejected case; not raised for review again"]
    shown = [note_text(e, tables) for e in store.get_case(stain["id"])["timeline"] if e["action"] == "merged"]
    assert shown == [f"同一地点未经确认的线索 {json.loads(again[1])['incident_id']} 并入本已作废案件, 不再提交审核"]
    # a lead of the other type, or one after the window, waits for review again
    assert ingest.handle(*incident(type="garbage", zone="sealed-road",
                                   attributes={"source": "detector", "needs_review": True})) == "case_created"
    clock[0] += 2 * 3600
    assert ingest.handle(*lead()) == "case_created"
    # a spill the edge confirms at the same place is new: dispatched, whatever was rejected there
    assert ingest.handle(*incident(**spill, attributes={"source": "detector+left_object", "needs_review": False},
                                   **seen(clock[0]))) == "case_created"  # seen now: reported late, it would be held
    states = sorted((c["type"], c["state"]) for c in store.list_cases())
    assert states == [("garbage", "pending_review"), ("spill", "dispatched"), ("spill", "pending_review"),
                      ("spill", "rejected")]


@pytest.mark.slow
def test_a_dumped_pile_stays_open_while_it_lies_there_though_the_check_stops_seeing_it_still():
    """As above, but once the new pile's incident is dispatched the left-object check reports no still,
    changed ground anywhere (as it did on make eval's swayed garage clip, where the dispatched spill
    ended 8-12 s before it was taken away): the open incident is kept at its place until its ground is
    back, so it ends after the pile is taken away at 50 s, not clear_s after it was dispatched."""
    config = parse_config({"box": "b1", "cameras": [{"id": "gate", "url": "unused.mp4", "grid": "G-1", "zones": [
        {"id": "road", "types": ["garbage"], "persistence_s": 10, "clear_s": 5, "polygon": ROAD_ZONE}]}]})
    pipeline = CameraPipeline(config, config.cameras[0], load_detectors(config))
    observe, dispatched = pipeline.left.observe, []

    def blind_once_dispatched(t, image, exclude=()):
        static = observe(t, image, exclude)
        return np.zeros_like(static) if dispatched else static

    pipeline.left.observe = blind_once_dispatched
    t0 = 1_767_225_600.0
    rng = np.random.default_rng(3)
    old, new = render(rng, "garbage", 50, 30, "heldout"), render(rng, "garbage", 70, 40, "heldout")
    events = []
    for t, frame in enumerate(campus_frames(step=10)[:75]):
        frame = frame.copy()
        composite(frame, old, 350, 345)
        if 20 <= t < 50:
            composite(frame, new, 340, 335)
        out = [o.message for o in pipeline.analyse(t0 + t, frame)]
        events += [(t, m) for m in out]
        dispatched += [(t, m) for m in out if m["state"] == "start" and not m["attributes"]["needs_review"]]
    assert len(dispatched) == 1 and dispatched[0][0] < 45, events
    ends = [t for t, m in events if m["state"] == "end" and m["incident_id"] == dispatched[0][1]["incident_id"]]
    assert ends and 50 <= ends[0] <= 60, (dispatched[0][0], ends)


@pytest.mark.slow
def test_a_held_lead_taken_away_ends_though_another_pile_lies_in_the_zone_with_left_object_either():
    """``left_object: either``, the campus camera and the real litter model: a small pile lies on the road
    when the camera comes up (held for review at 10 s) and is taken away at 30 s; a larger one is dumped
    beside it at 15 s and stays (dispatched on its own). Where the detector named nothing at the held
    lead's place, the zone's largest still, changed region stood in for its sighting: the other pile kept
    the held lead open, its box moved onto that pile, for as long as it lay there. Now it ends ``cleared``;
    the dispatched pile is not taken for it, nor the small pile's ghost (the bare ground it leaves, which the
    check's background learnt with the pile there: a still, changed region some 9 s after it went)."""
    events = _two_piles(old=(40, 24, 305, 345, 0, 30), new=(70, 40, 390, 340, 15, 50), frames=50,
                        detection={"left_object": "either"})
    starts = [(t, m) for t, m in events if m["state"] == "start"]
    assert [m["attributes"]["needs_review"] for _, m in starts] == [True, False], starts
    (held_t, held), (new_t, dispatched) = starts
    assert held_t == 10 and 25 <= new_t <= 40, (held_t, new_t)
    ends = [(t, m["incident_id"], m["end_reason"]) for t, m in events if m["state"] == "end"]
    assert [e[1:] for e in ends] == [(held["incident_id"], "cleared")], events
    assert 35 <= ends[0][0] <= 45, ends
    # the held lead's messages never stood on the dispatched pile
    held_boxes = [m["bbox"] for _, m in events if m["incident_id"] == held["incident_id"]]
    assert all(b[0] < dispatched["bbox"][0] for b in held_boxes), (held_boxes, dispatched["bbox"])


@pytest.mark.slow
def test_the_ground_a_held_lead_leaves_is_not_raised_as_a_new_object_with_left_object_either():
    """``left_object: either``: a pile lies on the road when the camera comes up (held for review at 10 s) and is
    taken away at 30 s; its lead ends ``cleared``. The bare ground it leaves is a ghost to the check (its background
    learnt the pile, not the ground): a still, changed region from some 9 s after it went, for about ten minutes.
    With nothing open in the zone, that region was taken for a new object and dispatched (at 50 s) to clean bare
    ground. The place of an incident that ended is remembered with the ground it left; a region there that shows
    that ground stands in for nothing."""
    events = _two_piles(old=(50, 30, 330, 345, 0, 30), new=None, frames=80, detection={"left_object": "either"})
    starts = [(t, m) for t, m in events if m["state"] == "start"]
    assert [(t, m["attributes"]["needs_review"]) for t, m in starts] == [(10, True)], events
    ends = [(t, m["incident_id"], m["end_reason"]) for t, m in events if m["state"] == "end"]
    assert [e[1:] for e in ends] == [(starts[0][1]["incident_id"], "cleared")] and 33 <= ends[0][0] <= 45, ends


@pytest.mark.slow
def test_the_ground_a_held_lead_leaves_is_not_confirmed_as_a_new_object():
    """``left_object: confirm`` (the default): a pile lies on the road when the camera comes up (held for review at
    10 s) and is taken away at 30 s; its lead ends ``cleared`` (39 s). From 40 s the detector names the bare place
    where it lay (first at the pass of 51 s: nothing changed in the zone before). The check's background learnt the
    pile, not the ground: its ghost, a still, changed region from some 9 s after it went, confirmed the detection, and
    bare ground was dispatched at 61 s. Confirmed by nothing, the detection goes for review (71 s), as the pile did."""
    events = _two_piles(old=(50, 30, 330, 345, 0, 30), new=None, frames=80, named=((330, 345, 380, 375), 40))
    starts = [(t, m["attributes"]["needs_review"]) for t, m in events if m["state"] == "start"]
    assert [r for _, r in starts] == [True, True] and starts[0][0] == 10, events


@pytest.mark.slow
def test_a_pile_put_down_where_a_held_lead_was_taken_away_is_dispatched():
    """As above, but a new pile is put down at 45 s on the place of the one taken away: it differs from the ground
    that one left, and is dispatched at its persistence, as it would be on ground the camera had always seen."""
    events = _two_piles(old=(50, 30, 330, 345, 0, 30), new=(60, 36, 325, 342, 45, 80), frames=80)
    starts = [(t, m["attributes"]["needs_review"]) for t, m in events if m["state"] == "start"]
    assert [r for _, r in starts] == [True, False] and 55 <= starts[1][0] <= 62, events


@pytest.mark.slow
def test_a_pile_put_down_beside_a_held_lead_keeps_its_clock_when_the_lead_ends():
    """The pile put down at 20 s is confirmed some seconds later, and its persistence (15 s) has not run when the
    held lead ends (taken away at 32 s, ended at 39 s): its clock goes on in the zone's rule, and it starts at its
    persistence (43 s), as it would have beside no lead. Begun again when the lead ended, it started at 55 s."""
    events = _two_piles(old=(50, 30, 315, 350, 0, 32), new=(50, 30, 405, 350, 20, 65), frames=65, persistence_s=15)
    starts = [(t, m) for t, m in events if m["state"] == "start"]
    assert [m["attributes"]["needs_review"] for _, m in starts] == [True, False], starts
    (_, held), (new_t, dispatched) = starts
    assert 40 <= new_t <= 47, new_t
    assert dispatched["incident_id"] != held["incident_id"]


@pytest.mark.slow
def test_a_pile_raised_beside_a_held_lead_is_not_raised_again_when_the_lead_ends():
    """The pile put down at 20 s is dispatched (38 s) while the lead beside it is held; the lead is taken away at
    40 s and ends (53 s). The zone's own rule, free again, saw the pile as new and dispatched it a second time, under
    another id, at 64 s: two cases for one pile. One incident, dispatched once."""
    events = _two_piles(old=(50, 30, 315, 350, 0, 40), new=(50, 30, 405, 350, 20, 75), frames=75)
    starts = [(t, m) for t, m in events if m["state"] == "start"]
    assert [m["attributes"]["needs_review"] for _, m in starts] == [True, False], starts
    assert 30 <= starts[1][0] <= 40, starts
    ends = [m["incident_id"] for _, m in events if m["state"] == "end"]
    assert ends == [starts[0][1]["incident_id"]], ends   # the held lead ended; the pile's incident is open
