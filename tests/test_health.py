"""Picture faults on real frames: frozen, covered lens, view moved; and the camera_fault incident."""

import numpy as np
import pytest

from edge.config import parse_config
from edge.detector import load_detector
from edge.health import PictureCheck, thumbnail
from edge.pipeline import CameraPipeline
from edge.source import open_frames
from xueliang import wire

from .conftest import CLIP


@pytest.fixture(scope="module")
def frames():
    return [image for _, image in open_frames(str(CLIP), sampling="rate")][:40]


def run(check, images, start=0.0):
    return [check.observe(start + t, thumbnail(img)) for t, img in enumerate(images)]


def test_live_scene_raises_no_fault(frames):
    assert all(f == set() for f in run(PictureCheck(), frames))


def test_frozen_picture_after_its_time(frames):
    faults = run(PictureCheck(frozen_after_s=30), frames[:5] + [frames[5]] * 40)
    assert faults[20] == set() and "frozen" in faults[-1]


def test_covered_lens(frames):
    covered = [np.full_like(frames[0], 20)] * 15
    faults = run(PictureCheck(blocked_after_s=10), frames[:10] + covered)
    assert "blocked" not in faults[15] and "blocked" in faults[-1]


def test_view_moved(frames):
    turned = [np.ascontiguousarray(img[::-1, ::-1]) for img in frames[10:25]]  # the camera now looks elsewhere
    faults = run(PictureCheck(moved_after_s=10), frames[:10] + turned)
    assert "moved" in faults[-1] and "moved" not in faults[12]


def test_blocked_camera_becomes_a_camera_fault_incident_and_clears(frames):
    config = parse_config({"box": "b1", "cameras": [{"id": "gate", "url": str(CLIP), "grid": "G-1"}]})
    pipeline = CameraPipeline(config, config.cameras[0], {"vehicle": load_detector("ssd_mobilenet_v2_coco")})
    covered = [np.full_like(frames[0], 10)] * 12
    outs = []
    for t, img in enumerate(frames[:5] + covered + frames[5:20]):
        outs += pipeline.observe(1_767_225_600.0 + t, img, [])  # the wire takes times in 2000..2099
    states = [(o.message["type"], o.message["state"], o.message["attributes"]["label"], o.message["end_reason"]) for o in outs]
    assert states == [("camera_fault", "start", "blocked", None), ("camera_fault", "end", "blocked", "cleared")]
    assert all(o.evidence for o in outs) and outs[0].message["zone"] == "camera"


def test_times_on_the_wire_follow_the_wall_clock_while_the_rules_keep_the_boxs_own(frames):
    """A box whose wall clock NTP sets back an hour: the box gives its pipelines its own clock (edge/box.py box_now,
    which a step does not move) and the step as ``wall_offset``; the blocked lens is a fault after the same looks
    as ever, and its times on the wire are the wall clock's."""
    config = parse_config({"box": "b1", "cameras": [{"id": "gate", "url": str(CLIP), "grid": "G-1"}]})
    runs = {}
    for offset in (0.0, -3600.0):
        pipeline = CameraPipeline(config, config.cameras[0], {"vehicle": load_detector("ssd_mobilenet_v2_coco")})
        covered = [np.full_like(frames[0], 10)] * 12
        outs = []
        for t, img in enumerate(frames[:5] + covered + frames[5:20]):
            if t == 3:
                pipeline.wall_offset = offset  # the step came between two looks
            outs += pipeline.observe(1_767_225_600.0 + t, img, [])
        runs[offset] = [(o.message["state"], wire.parse_time(o.message["observed_at"])) for o in outs]
    assert [state for state, _ in runs[-3600.0]] == [state for state, _ in runs[0.0]] == ["start", "end"]
    assert [at for _, at in runs[-3600.0]] == [at - 3600.0 for _, at in runs[0.0]]


def test_the_boxs_own_clock_is_not_moved_by_a_step_of_the_wall_clock(monkeypatch):
    from edge import box

    before, offset = box.box_now(), box.wall_offset()
    real = box.time.time
    monkeypatch.setattr(box.time, "time", lambda: real() - 3600.0)  # NTP sets the wall clock back an hour
    assert 0 <= box.box_now() - before < 1.0  # frames of live cameras were pinned to the last one's time for that hour
    assert abs(box.wall_offset() - offset + 3600.0) < 1.0
