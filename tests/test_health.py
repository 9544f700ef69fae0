"""Picture faults on real frames: frozen, covered lens, view moved; and the camera_fault incident."""

import numpy as np
import pytest

from edge.config import parse_config
from edge.detector import load_detector
from edge.health import PictureCheck, thumbnail
from edge.pipeline import CameraPipeline
from edge.source import open_frames

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
