"""The stationary-vehicle check on real frames of the campus clip, and ByteTrack's low-score continuation."""

import av
import numpy as np
import pytest
import supervision as sv

from edge.rules import Stay
from edge.stationary import Stationary, look, patch
from edge.tracker import make_tracker

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


@pytest.mark.slow
def test_the_parked_van_looks_the_same_a_minute_later_and_its_neighbourhood_does_not():
    first, later = frames_at(0.0, 70.0)
    ref = patch(first, VAN)
    assert look(ref, later, VAN, []) == "same"
    w = VAN[2] - VAN[0]
    beside = (VAN[0] - w, VAN[1], VAN[2] - w, VAN[3])  # the place next to it: wall and road, no van
    empty = first.copy()
    h, W = first.shape[:2]
    x1, y1, x2, y2 = int(VAN[0] * W), int(VAN[1] * h), int(VAN[2] * W), int(VAN[3] * h)
    bx1 = int(beside[0] * W)
    empty[y1:y2, x1:x2] = first[y1:y2, bx1:bx1 + (x2 - x1)]  # the van painted over with what is beside it
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
