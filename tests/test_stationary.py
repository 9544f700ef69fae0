"""The stationary-vehicle check on real frames of the campus clip, and ByteTrack's low-score continuation."""

import av
import cv2
import numpy as np
import pytest
import supervision as sv

from edge.config import parse_config
from edge.detector import load_detector
from edge.pipeline import CameraPipeline
from edge.rules import Stay
from edge.stationary import SAME_BELOW, Stationary, difference, look, patch
from edge.tracker import make_tracker
from xueliang.wire import parse_time

from .conftest import CLIP

VAN = (648 / 768, 40 / 576, 722 / 768, 101 / 576)  # fixtures/videos/campus-gate.boxes.json


def frames_at(*seconds: float) -> list[np.ndarray]:
    out, wanted = [], list(seconds)
    with av.open(str(CLIP)) as container:
        for frame in container.decode(video=0):
            if wanted and frame.time >= wanted[0]:
                out.append(frame.to_ndarray(format="bgr24"))
                wanted.pop(0)
    return out


def van_pixels(frame: np.ndarray) -> tuple[int, int, int, int]:
    h, w = frame.shape[:2]
    return int(VAN[0] * w), int(VAN[1] * h), int(VAN[2] * w), int(VAN[3] * h)


def without_van(frame: np.ndarray) -> np.ndarray:
    """The frame with the van painted over with what is beside it (wall and road)."""
    empty = frame.copy()
    x1, y1, x2, y2 = van_pixels(frame)
    empty[y1:y2, x1:x2] = frame[y1:y2, 2 * x1 - x2:x1]
    return empty


def upside_down(frame: np.ndarray) -> np.ndarray:
    """Another vehicle at the van's place: the van's picture turned upside down."""
    other = frame.copy()
    x1, y1, x2, y2 = van_pixels(frame)
    other[y1:y2, x1:x2] = frame[y1:y2, x1:x2][::-1, ::-1]
    return other


def night(frame: np.ndarray, seed: int = 0) -> np.ndarray:
    """The camera's night picture: grey, a third of the contrast, dark, noisy."""
    grey = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR).astype(np.float32)
    noise = np.random.default_rng(seed).normal(0, 8, frame.shape)
    return np.clip(grey * 0.35 + 15 + noise, 0, 255).astype(np.uint8)


@pytest.mark.slow
def test_the_parked_van_looks_the_same_a_minute_later_and_its_neighbourhood_does_not():
    first, later = frames_at(0.0, 70.0)
    ref = patch(first, VAN)
    assert look(ref, later, VAN, []) == "same"
    empty = without_van(first)
    assert look(ref, empty, VAN, []) == "empty"
    person = (VAN[0] + 0.02, VAN[1] - 0.05, VAN[0] + 0.05, VAN[3] + 0.02)
    assert look(ref, empty, VAN, [person]) == "occluded"


@pytest.mark.slow
def test_stationary_keeps_the_patch_of_the_last_clear_detection():
    first, later = frames_at(0.0, 40.0)
    check = Stationary()
    stay = Stay(key=1, box=VAN, detected_at=0.0)
    check.remember("kerb", [stay], 0.0, first, [VAN])
    assert check.views("kerb", [stay], later, []) == {1: "same"}
    # a detection with a person in front does not replace the clear patch
    blocked = later.copy()
    blocked[:] = 0
    check.remember("kerb", [Stay(1, VAN, 40.0)], 40.0, blocked, [VAN, (VAN[0], VAN[1], VAN[0] + 0.05, VAN[3])])
    assert check.views("kerb", [stay], later, []) == {1: "same"}
    check.remember("kerb", [], 41.0, later, [])  # the stay is gone: its patch is forgotten
    assert check.views("kerb", [stay], later, []) == {}


@pytest.mark.slow
def test_a_detection_over_a_stay_is_told_to_be_its_vehicle_or_another():
    first, later = frames_at(0.0, 70.0)
    check = Stationary()
    assert check.same_vehicle("kerb", 1, later, VAN, []) is None  # no picture of the stay yet
    check.remember("kerb", [Stay(key=1, box=VAN, detected_at=0.0)], 0.0, first, [VAN])
    jittered = (VAN[0] + 0.01, VAN[1] - 0.01, VAN[2] + 0.01, VAN[3])  # the detector's box a little off
    assert check.same_vehicle("kerb", 1, later, jittered, [jittered]) is True
    other = upside_down(later)
    assert check.same_vehicle("kerb", 1, other, VAN, [VAN]) is False
    behind = (VAN[0] - 0.02, VAN[1] - 0.03, VAN[2] - 0.02, VAN[3] - 0.03)  # a car further away, overlapping it
    assert check.same_vehicle("kerb", 1, other, VAN, [VAN, behind]) is False
    in_front = (VAN[0] + 0.02, VAN[1] + 0.03, VAN[2] + 0.02, VAN[3] + 0.03)  # nearer the camera: cannot tell
    assert check.same_vehicle("kerb", 1, other, VAN, [VAN, in_front]) is None
    # the whole picture darker and flatter (the exposure dropped): the van's picture changed with the
    # rest but kept its shape, so it is the van; a picture of another shape tells nothing then
    dark = (later.astype(np.float32) * 0.5 + 10).astype(np.uint8)
    assert check.same_vehicle("kerb", 1, dark, VAN, [VAN]) is True
    other_dark = (other.astype(np.float32) * 0.5 + 10).astype(np.uint8)
    assert check.same_vehicle("kerb", 1, other_dark, VAN, [VAN]) is None


@pytest.mark.slow
def test_a_van_the_detector_loses_at_night_is_still_there_and_its_leaving_is_seen_in_that_light():
    """The camera switches to night mode and the detector no longer finds the parked van. Before, its
    place read "empty" from then on, and the incident ended ``left`` with the van still there."""
    first, later, last = frames_at(0.0, 40.0, 70.0)
    check = Stationary()
    stay = Stay(key=1, box=VAN, detected_at=0.0)
    check.remember("kerb", [stay], 0.0, first, [VAN])
    assert look(patch(first, VAN), night(later), VAN, []) == "empty"  # the plain comparison fails
    assert check.views("kerb", [stay], night(later), []) == {1: "same"}
    assert check.views("kerb", [stay], night(last, seed=1), []) == {1: "same"}
    # from then on the night picture is the reference: the van leaving is seen in the night light
    assert check.views("kerb", [stay], night(without_van(last), seed=2), []) == {1: "empty"}
    # a detection over it in the night light is the van; another vehicle there is not
    assert check.same_vehicle("kerb", 1, night(last, seed=3), VAN, [VAN]) is True
    assert check.same_vehicle("kerb", 1, night(upside_down(last), seed=4), VAN, [VAN]) is False


@pytest.mark.slow
def test_a_van_that_leaves_as_the_light_changes_is_seen_gone():
    """The whole picture changes and the van's place does not keep its shape: that is the place
    empty (what is beside the van), not the van in other light."""
    first, later = frames_at(0.0, 40.0)
    check = Stationary()
    stay = Stay(key=1, box=VAN, detected_at=0.0)
    check.remember("kerb", [stay], 0.0, first, [VAN])
    assert check.views("kerb", [stay], night(without_van(later)), []) == {1: "empty"}
    person = (VAN[0] + 0.02, VAN[1] - 0.05, VAN[0] + 0.05, VAN[3] + 0.02)
    assert check.views("kerb", [stay], night(without_van(later)), [person]) == {1: "occluded"}


def _painted_cars(car_at) -> list[tuple[int, str]]:
    """The campus camera, 40 s, through the real pipeline (tracker, dwell rule, stationary check) with
    a no-parking zone on the road (dwell 10 s); at each second a car painted at one place, ``car_at(t)``
    its number (its colours), and the vehicle model's answer given: a car there, at 0.7. The starts."""
    config = parse_config({"box": "b1", "detection": {"zone_crops": False}, "cameras": [
        {"id": "gate", "url": "unused.mp4", "grid": "G-1", "zones": [
            {"id": "road", "types": ["illegal_parking"], "dwell_s": 10,
             "polygon": [[0.3, 0.45], [0.6, 0.45], [0.6, 0.75], [0.3, 0.75]]}]}]})
    pipeline = CameraPipeline(config, config.cameras[0], {"vehicle": load_detector("ssd_mobilenet_v2_coco")})
    x1, y1, x2, y2 = 300, 320, 390, 380
    found = sv.Detections(xyxy=np.array([(x1, y1, x2, y2)], np.float32), confidence=np.array([0.7], np.float32),
                          class_id=np.array([3]), data={"class_name": np.array(["car"])})
    t0, starts = 1_767_225_600.0, []
    for t, frame in enumerate(frames_at(*range(40))):
        colours = np.random.default_rng(car_at(t)).integers(0, 256, (3, 3))
        frame[y1:y2, x1:x2] = colours[0]  # body, windows, bumper
        frame[y1 + 10:y1 + 30, x1 + 10:x2 - 10] = colours[1]
        frame[y2 - 12:y2, x1:x2] = colours[2]
        passes = pipeline.plan(t0 + t, frame)
        starts += [(t, o.message["zone"]) for o in pipeline.observe(t0 + t, frame, [found] if passes else [])
                   if o.message["state"] == "start"]
    return starts


@pytest.mark.slow
def test_a_lane_of_cars_at_one_place_raises_nothing_and_a_parked_car_does():
    """Flowing traffic as the motorway camera shows it: another car at the same place every 2 s, each
    detected at the same box (the tracker keeps one id). Before, that was one car parked there for 40 s."""
    assert _painted_cars(lambda t: t // 2) == []
    starts = _painted_cars(lambda t: 0)
    assert len(starts) == 1 and 10 <= starts[0][0] <= 14, starts


def _queue_in_front(queued_from: int, queued_to: int, van_leaves: int | None = None, seconds: int = 70,
                    tight: int = 0) -> list[dict]:
    """The real pipeline on the campus camera's first ``seconds``, the vehicle model's answers given: the van
    (until ``van_leaves``, then the wall and road beside it), and from ``queued_from`` to ``queued_to`` a car
    (the van's picture, dimmed and turned) stopped in front of it, a third of its height lower, that hides
    most of it, its detected box ``tight`` pixels inside it on each side. The messages, their times from the first
    frame."""
    config = parse_config({"box": "b1", "detection": {"zone_crops": False}, "cameras": [
        {"id": "gate", "url": "unused.mp4", "grid": "G-1", "zones": [
            {"id": "kerb", "types": ["illegal_parking"], "dwell_s": 30,
             "polygon": [[0.80, 0.03], [0.97, 0.03], [0.97, 0.22], [0.80, 0.22]]}]}]})
    pipeline = CameraPipeline(config, config.cameras[0], {"vehicle": load_detector("ssd_mobilenet_v2_coco")})
    x1, y1, x2, y2 = van = 648, 40, 722, 101
    queued = (x1 - 6, y1 + 20, x2 + 6, y2 + 20)
    t0, messages = 1_767_225_600.0, []
    for t, frame in enumerate(frames_at(*range(seconds))):
        car = cv2.resize(frame[y1:y2, x1:x2], (x2 - x1 + 12, y2 - y1))[:, ::-1] // 2 + 40
        boxes = [] if van_leaves is not None and t >= van_leaves else [van]
        if not boxes:
            frame = without_van(frame)
        if queued_from <= t < queued_to:
            a1, b1, a2, b2 = queued
            frame[b1:b2, a1:a2] = car
            boxes = [(a1 + tight, b1 + tight, a2 - tight, b2 - tight)]  # the van, hidden, is not detected
        found = sv.Detections(xyxy=np.array(boxes, np.float32).reshape(-1, 4),
                              confidence=np.full(len(boxes), 0.8, np.float32), class_id=np.full(len(boxes), 3),
                              data={"class_name": np.array(["car"] * len(boxes))})
        messages += [o.message for o in pipeline.observe(t0 + t, frame, [found])]
    messages += [o.message for o in pipeline.close(t0 + seconds, "stream_ended")]
    for m in messages:
        m.update({k: parse_time(m[k]) - t0 for k in ("started_at", "observed_at", "ended_at") if m[k] is not None})
    return messages


@pytest.mark.slow
def test_a_car_queueing_in_front_of_the_parked_van_hides_it_and_does_not_take_its_place():
    """From 35 s to 55 s a car stops in front of the van. Before, that car was taken to stand in the van's
    place: the van's incident ended `left` at 45 s, the van still there."""
    messages = _queue_in_front(35, 55)
    assert [(m["state"], m["end_reason"]) for m in messages] == [("start", None), ("end", "stream_ended")]


@pytest.mark.slow
def test_a_queue_whose_box_is_tighter_than_its_car_does_not_make_the_van_behind_it_leave():
    """The car queueing in front of the van is detected in a box 10 % of its height (6 pixels) tighter than it
    on each side: the band of the van's place kept clear of that box takes in the car's roof. Before, that band
    differed from the van's roof and the van, still there, ended `left` 10 s after the queue came."""
    messages = _queue_in_front(35, 55, tight=6)
    assert [(m["state"], m["end_reason"]) for m in messages] == [("start", None), ("end", "stream_ended")]


@pytest.mark.slow
def test_a_van_leaving_behind_a_queue_is_seen_gone_while_the_queue_still_stands():
    """The van leaves at 40 s while a car queueing in front of it (35 s to 64 s, short of the dwell) still
    hides most of its place: the band above the queue shows the wall where the van's roof was. Before, the
    van's place read hidden until the queue drove on, and its end went at 74 s (then leave_s more)."""
    messages = _queue_in_front(35, 64, van_leaves=40, seconds=80)
    assert [(m["state"], m["end_reason"]) for m in messages] == [("start", None), ("end", "left")]
    end = messages[1]
    assert end["ended_at"] == 34  # last seen before the queue came
    assert end["observed_at"] == 40 + 10  # leave_s after it was seen gone, the queue still there


@pytest.mark.slow
def test_a_small_car_parked_in_a_parked_lorrys_box_is_its_own_incident_and_the_lorrys_goes_on():
    """The real pipeline on the campus camera's first 70 s, the vehicle model's answers given: a lorry (a
    painted block) parked in a zone from the first frame, and from 20 s a small car parked in front of it,
    its box wholly inside the lorry's. Before, the lorry's picture changed where the car stood, with no box
    reaching lower: its detection was taken for another vehicle, its incident ended `left` at 30 s and
    began again, the lorry still there; and the car was taken for a part of the lorry."""
    config = parse_config({"box": "b1", "detection": {"zone_crops": False}, "cameras": [
        {"id": "gate", "url": "unused.mp4", "grid": "G-1", "zones": [
            {"id": "road", "types": ["illegal_parking"], "dwell_s": 15,
             "polygon": [[0.2, 0.4], [0.75, 0.4], [0.75, 0.8], [0.2, 0.8]]}]}]})
    pipeline = CameraPipeline(config, config.cameras[0], {"vehicle": load_detector("ssd_mobilenet_v2_coco")})
    lorry, car = (200, 250, 500, 430), (240, 340, 330, 410)
    noise = np.random.default_rng(1).integers(0, 256, (lorry[3] - lorry[1], lorry[2] - lorry[0], 3), np.uint8)
    body = cv2.GaussianBlur(noise, (0, 0), 6) * 2
    t0, messages = 1_767_225_600.0, []
    for t, frame in enumerate(frames_at(*range(70))):
        frame[lorry[1]:lorry[3], lorry[0]:lorry[2]] = body
        boxes, names = [lorry], ["truck"]
        if t >= 20:
            x1, y1, x2, y2 = car
            frame[y1:y2, x1:x2] = (40, 40, 160)
            frame[y1 + 10:y1 + 30, x1 + 10:x2 - 10] = (90, 70, 60)
            boxes, names = [lorry, car], ["truck", "car"]
        found = sv.Detections(xyxy=np.array(boxes, np.float32), confidence=np.full(len(boxes), 0.8, np.float32),
                              class_id=np.full(len(boxes), 3), data={"class_name": np.array(names)})
        messages += [o.message for o in pipeline.observe(t0 + t, frame, [found])]
    assert [(m["state"], m["attributes"]["label"], parse_time(m["started_at"]) - t0) for m in messages] == [
        ("start", "truck", 15), ("start", "car", 35)]


def detections(boxes, scores) -> sv.Detections:
    return sv.Detections(xyxy=np.array(boxes, np.float32), confidence=np.array(scores, np.float32),
                         class_id=np.full(len(boxes), 2))


def test_bytetrack_continues_a_track_on_low_scores_but_starts_none_from_them():
    tracker = make_tracker(1.0, min_score=0.4, gap_s=10)
    van, cone = [648, 40, 722, 101], [100, 200, 130, 240]
    ids = []
    for t in range(12):
        score = 0.58 if t < 2 else 0.16  # the van's score falls under min_score for ten frames
        out = tracker.update(detections([van, cone], [score, 0.3]))
        ids.append({tuple(b.astype(int)): int(i) for b, i in zip(out.xyxy, out.tracker_id)})
    assert all(i[tuple(van)] == ids[1][tuple(van)] >= 0 for i in ids[1:])
    assert all(i[tuple(cone)] == -1 for i in ids)  # 0.3 never starts a track


def shaken(frame: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The frame as a camera swaying on its pole shows it: moved ``dx``, ``dy`` pixels."""
    return cv2.warpAffine(frame, np.float32([[1, 0, dx], [0, 1, dy]]), frame.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)


@pytest.mark.slow
@pytest.mark.parametrize("dx, dy", [(4, -3), (-7, 5), (8, 8)])
def test_a_camera_swaying_on_its_pole_still_shows_the_van_and_not_another(dx, dy):
    """The picture moved a few pixels (wind): the van's place is looked at where its neighbourhood
    moved it. Before, the van's own picture moved out of its box, so every detection of it was taken
    for another vehicle and no stay was ever confirmed: a parked van never became an incident."""
    first, later = frames_at(0.0, 40.0)
    check = Stationary()
    stay = Stay(key=1, box=VAN, detected_at=0.0)
    check.remember("kerb", [stay], 0.0, first, [VAN])
    assert look(patch(first, VAN), shaken(later, dx, dy), VAN, []) == "empty"  # the fixed box alone fails
    assert check.views("kerb", [stay], shaken(later, dx, dy), []) == {1: "same"}
    assert check.same_vehicle("kerb", 1, shaken(later, dx, dy), VAN, [VAN]) is True
    # the van gone, or another vehicle in its place, in the swaying picture: not the van
    assert check.views("kerb", [stay], shaken(without_van(later), dx, dy), []) == {1: "empty"}
    assert check.same_vehicle("kerb", 1, shaken(upside_down(later), dx, dy), VAN, [VAN]) is False


def _van_and_part_messages(painted_from: int | None, part=(655, 45, 700, 75), colour=(40, 40, 160),
                           painted_to: int = 60, van_missed: bool = False, van_leaves: int | None = None,
                           seconds: int = 60) -> list[dict]:
    """The real pipeline on the campus camera's first ``seconds``, the vehicle model's answers given: the van (until
    ``van_leaves``, then the wall and road beside it), and a box inside it (under two thirds of its width, half its
    height) named a car at every pass, from the first frame over the van's own picture (its roof box), or from
    ``painted_from`` to ``painted_to`` over a block of ``colour`` painted there then (a small car parked in front of
    it), the van not detected on those passes where ``van_missed``. The messages, their times from the first frame."""
    config = parse_config({"box": "b1", "detection": {"zone_crops": False}, "cameras": [
        {"id": "gate", "url": "unused.mp4", "grid": "G-1", "zones": [
            {"id": "kerb", "types": ["illegal_parking"], "dwell_s": 30,
             "polygon": [[0.80, 0.03], [0.97, 0.03], [0.97, 0.22], [0.80, 0.22]]}]}]})
    pipeline = CameraPipeline(config, config.cameras[0], {"vehicle": load_detector("ssd_mobilenet_v2_coco")})
    van = (648, 40, 722, 101)
    t0, messages = 1_767_225_600.0, []
    for t, frame in enumerate(frames_at(*range(seconds))):
        boxes = [van, part]
        if van_leaves is not None and t >= van_leaves:
            frame, boxes = without_van(frame), [part]
        if painted_from is not None and not painted_from <= t < painted_to:
            boxes = [b for b in boxes if b != part]
        elif painted_from is not None:
            x1, y1, x2, y2 = part
            frame[y1:y2, x1:x2] = colour
            frame[y1 + 5:y1 + 15, x1 + 5:x2 - 5] = (90, 70, 60)
            boxes = [part] if van_missed else boxes
        found = sv.Detections(xyxy=np.array(boxes, np.float32).reshape(-1, 4),
                              confidence=np.full(len(boxes), 0.8, np.float32), class_id=np.full(len(boxes), 3),
                              data={"class_name": np.array(["car"] * len(boxes))})
        messages += [o.message for o in pipeline.observe(t0 + t, frame, [found])]
    messages += [o.message for o in pipeline.close(t0 + seconds, "stream_ended")]
    for m in messages:
        m.update({k: parse_time(m[k]) - t0 for k in ("started_at", "observed_at", "ended_at") if m[k] is not None})
    return messages


def _van_and_part(painted_from: int | None, part=(655, 45, 700, 75), colour=(40, 40, 160)) -> list[tuple[str, float]]:
    """``_van_and_part_messages``' starts (label, when from the first frame)."""
    return [(m["attributes"]["label"], m["started_at"])
            for m in _van_and_part_messages(painted_from, part, colour) if m["state"] == "start"]


@pytest.mark.slow
def test_a_part_the_detector_names_a_car_beside_its_van_from_the_start_raises_no_incident_of_its_own():
    """A box inside the van's, over its own picture (a roof box, a bike rack), named a car beside the van at every
    pass: it was in the van's picture from the first frame, so it is the van. Before, it was its own incident
    (smaller than the van's box both ways, detected beside it): two incidents for one van."""
    assert _van_and_part(None) == [("car", 30)]


@pytest.mark.slow
def test_a_car_that_came_into_the_vans_box_after_it_is_still_its_own_incident():
    """The same box, over a block painted there from 20 s on (a small car parked in front of the van): the van's
    picture from before showed the van there, not the block, so it is an incident of its own."""
    assert _van_and_part(20) == [("car", 30), ("car", 50)]


@pytest.mark.slow
def test_a_small_car_that_came_into_the_vans_box_after_it_is_its_own_incident():
    """A block painted from 20 s on over under a tenth of the van's box (a motorbike parked in front of a bus): the
    van's picture, taken at every pass where so little covers it, takes it in. Its picture from before the
    box first stood inside it did not show it: an incident of its own. Before, it was in the van's picture from
    the pass after it came and taken for a part of the van."""
    assert _van_and_part(20, part=(670, 60, 686, 76)) == [("car", 30), ("car", 50)]


@pytest.mark.slow
@pytest.mark.parametrize("part", [(652, 78, 690, 101), (668, 80, 684, 101)])  # a car, a motorbike
def test_a_small_vehicle_parked_in_front_of_the_van_when_the_box_restarted_is_its_own_incident(part):
    """A block painted from the first frame over the van's lower part, down to its ground line (a small car, or a
    motorbike on under a tenth of its box, parked in front of it before the box restarted): both first seen on
    one pass, so the van's picture from before anything stood in front of it shows the block too. It stands on
    the ground where the van does, as no roof box or rack does: an incident of its own. Before, it was taken for a
    part of the van (of two stays first seen together, the larger is the older) and raised nothing."""
    assert _van_and_part(0, part=part) == [("car", 30), ("car", 30)]


@pytest.mark.slow
def test_a_small_car_that_changes_the_vans_picture_where_it_stands_does_not_make_the_van_another_vehicle():
    """A dark block painted from 20 s over under a tenth of the van's box (a small car stopping in front of it)
    changes the van's picture by 28 grey levels, but only where it stands. Before, the van's detection then was
    taken for another vehicle in its place: the van's clock began again at 20 s (its start at 50 s), and the block,
    first seen beside that new stay, was taken for a part of it."""
    first, later = frames_at(0.0, 40.0)
    other = upside_down(later)  # another vehicle in the van's place
    for frame in (later, other):
        frame[62:82, 668:688] = (30, 30, 90)
    car = (668 / 768, 62 / 576, 688 / 768, 82 / 576)
    assert difference(patch(first, VAN), patch(later, VAN)) > SAME_BELOW + 10
    check = Stationary()
    check.remember("kerb", [Stay(key=1, box=VAN, detected_at=0.0)], 0.0, first, [VAN])
    assert check.same_vehicle("kerb", 1, later, VAN, [VAN, car]) is True
    assert check.same_vehicle("kerb", 1, other, VAN, [VAN, car]) is False  # the rest tells another vehicle still
    assert _van_and_part(20, part=(668, 62, 688, 82), colour=(30, 30, 90)) == [("car", 30), ("car", 50)]


@pytest.mark.slow
def test_a_small_car_stopping_in_front_of_the_van_the_detector_misses_shows_the_van_still_there():
    """A dark block painted over under a tenth, or a quarter, of the van's box (a small car stopping in front of it)
    on a pass where the detector misses the van: the van's place is the same but where the car's box stands
    (``same_around``). Before, the tenth read `empty` (and the quarter `occluded`); the van gone, it still does."""
    first, later = frames_at(0.0, 40.0)
    check = Stationary()
    stay = Stay(key=1, box=VAN, detected_at=0.0)
    check.remember("kerb", [stay], 0.0, first, [VAN])
    for x1, y1, x2, y2 in [(668, 62, 688, 82), (660, 70, 700, 101)]:
        car = (x1 / 768, y1 / 576, x2 / 768, y2 / 576)
        there, gone = later.copy(), without_van(later)
        for frame in (there, gone):
            frame[y1:y2, x1:x2] = (30, 30, 90)
        assert check.views("kerb", [stay], there, [car]) == {1: "same_around"}
        assert check.views("kerb", [stay], gone, [car]) == {1: "empty"}


@pytest.mark.slow
def test_a_small_car_parked_in_front_of_the_van_the_detector_misses_does_not_make_the_van_leave():
    """From 35 s a small car (under a tenth of the van's box) parks in front of the van, and the detector sees the car
    and misses the van. Before, the van's place read empty: its incident ended `left` at 45 s, the van still there
    (and the van, detected again, would have started its clock again). The car, beside the van, is an incident of its
    own; the van leaving as the car comes is still seen gone."""
    car = (668, 62, 688, 82)
    messages = _van_and_part_messages(35, part=car, colour=(30, 30, 90), painted_to=80, van_missed=True, seconds=80)
    assert [(m["state"], m["started_at"], m["end_reason"]) for m in messages if m["state"] != "update"] == [
        ("start", 30, None), ("start", 65, None), ("end", 30, "stream_ended"), ("end", 65, "stream_ended")]
    messages = _van_and_part_messages(35, part=car, colour=(30, 30, 90), van_missed=True, van_leaves=35)
    assert [(m["state"], m["observed_at"], m["end_reason"]) for m in messages] == [
        ("start", 30, None), ("end", 45, "left")]


EDGE_ZONE = [[0.5365, 0.2222], [0.6146, 0.2222], [1.0, 0.4907], [1.0, 0.787]]  # the second parking set's shoulder


def _edge_of_frame(ground: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
    """The second parking set's ``edge-of-frame`` on ``ground`` (960x540): a saloon drives in across the picture's
    right edge, caught at 4 s still driving in (a blur 60 px into the picture), stopped from 5 s 100 px into it, the
    rest of it out of the picture; sensor noise on every frame."""
    frame = ground + rng.integers(0, 3, ground.shape, np.uint8)
    left, top = {4: (900, 250)}.get(int(t), (860, 280) if t > 4 else (None, None))
    if left is not None:
        frame[top:383, left:] = 230  # a white body, dark windows
        frame[295:320, left + 10:] = (30, 30, 30)
    return frame


def test_a_car_stopped_at_the_pictures_edge_opens_the_change_gate_by_its_quarter_of_the_zone():
    """The second parking set's ``edge-of-frame``: the pass the change gate opened at 4 s caught the saloon driving
    in and named nothing; stopped, it had moved its zone's whole box by 3.9 grey levels since (the gate: 4), the
    few per cent of the box it covers at its edge, and the detector waited for its floor (14 s): the clock began
    9 s late. A parking zone's box is looked at in quarters too (the car's moved 10.9, over twice the gate): the
    pass at 6 s names it and the clock begins when it stopped."""
    config = parse_config({"box": "b1", "detection": {"zone_crops": False}, "cameras": [
        {"id": "motorway", "url": "unused.mp4", "grid": "G-1",
         "zones": [{"id": "shoulder", "types": ["illegal_parking"], "dwell_s": 25, "polygon": EDGE_ZONE}]}]})
    pipeline = CameraPipeline(config, config.cameras[0], {"vehicle": load_detector("ssd_mobilenet_v2_coco")})
    parked = sv.Detections(xyxy=np.array([(860, 280, 960, 383)], np.float32), confidence=np.array([0.58], np.float32),
                           class_id=np.array([3]), data={"class_name": np.array(["car"])})
    ground = cv2.resize(frames_at(0)[0], (960, 540))  # the campus camera's ground
    t0, passed, starts = 1_767_225_600.0, [], []
    rng = np.random.default_rng(1)
    for t in range(0, 46, 2):
        frame = _edge_of_frame(ground, t, rng)
        passes = pipeline.plan(t0 + t, frame)
        passed += [t] * bool(passes)
        found = [parked] if passes and t > 4 else [sv.Detections.empty()] if passes else []
        starts += [o.message["started_at"] for o in pipeline.observe(t0 + t, frame, found)
                   if o.message["type"] == "illegal_parking" and o.message["state"] == "start"]
    assert passed[:3] == [0, 4, 6]
    assert [parse_time(s) - t0 for s in starts] == [6 + 25], starts


def test_a_litter_zones_box_is_looked_at_whole_by_the_change_gate():
    """The same car at the edge of a garbage zone's box: the gate looks at a litter zone's box whole, as before
    (a litter-only camera's passes, what bounds how many such cameras a core takes, are as they were)."""
    config = parse_config({"box": "b1", "cameras": [
        {"id": "motorway", "url": "unused.mp4", "grid": "G-1",
         "zones": [{"id": "shoulder", "types": ["garbage"], "polygon": EDGE_ZONE}]}]})
    pipeline = CameraPipeline(config, config.cameras[0], {"vehicle": load_detector("ssd_mobilenet_v2_coco"),
                                                          "litter": load_detector("litter_yolov8n_320")})
    ground = cv2.resize(frames_at(0)[0], (960, 540))
    t0, passed = 1_767_225_600.0, []
    rng = np.random.default_rng(1)
    for t in range(0, 10, 2):
        frame = _edge_of_frame(ground, t, rng)
        passes = pipeline.plan(t0 + t, frame)
        passed += [t] * bool(passes)
        pipeline.observe(t0 + t, frame, [sv.Detections.empty()] * len(passes))
    assert passed == [0, 4]
