"""Picture faults on real frames: frozen, covered lens, view moved; and the camera_fault incident."""

import cv2
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


def test_a_still_picture_given_as_a_cameras_file_is_frozen_and_its_zones_raise_nothing_until_it_moves(tmp_path, frames):
    """A JPEG renamed x.mp4 plays as a one-frame video, played again at each end as a box plays a file: the picture
    check calls it frozen at frozen_after_s, and a frozen picture shows nothing of the ground as it is now. The van
    parked in it had been raised (its dwell shorter than frozen_after_s here), and its incident went on as if seen
    for as long as the picture stood still; now it ends camera_lost with the fault, and is raised again only once the
    camera's picture moves."""
    still = tmp_path / "x.mp4"
    still.write_bytes(cv2.imencode(".jpg", frames[0])[1].tobytes())
    kerb = {"id": "kerb", "types": ["illegal_parking"], "dwell_s": 4,
            "polygon": [[0.80, 0.03], [0.97, 0.03], [0.97, 0.22], [0.80, 0.22]]}
    config = parse_config({"box": "b1", "cameras": [{"id": "gate", "url": str(still), "grid": "G-1", "zones": [kerb]}]})
    pipeline = CameraPipeline(config, config.cameras[0], {"vehicle": load_detector("ssd_mobilenet_v2_coco")})
    pipeline.picture.frozen_after_s = 25.0  # 30 s by default
    t0, outs = 1_767_225_600.0, []
    for i in range(60):  # 30 s of the file played again every half second, as a box plays it
        [(_, image)] = list(open_frames(str(still)))
        outs += [(i / 2, o.message) for o in pipeline.analyse(t0 + i / 2, image)]
    for i, image in enumerate(frames[1:16], 30):  # then the camera's live picture, a frame a second
        outs += [(i, o.message) for o in pipeline.analyse(t0 + i, image)]
    said = [(t, m["type"], m["state"], m["attributes"]["label"], m["end_reason"]) for t, m in outs
            if m["state"] != "update"]
    parking = [(t, state, why) for t, kind, state, _, why in said if kind == "illegal_parking"]
    assert [(t, label, state) for t, kind, state, label, _ in said if kind == "camera_fault"] == [
        (25.5, "frozen", "start"), (35, "frozen", "end")]
    assert [(state, why) for _, state, why in parking] == [("start", None), ("end", "camera_lost"), ("start", None)]
    assert parking[0][0] < 25.5 and parking[1][0] == 25.5 and parking[2][0] >= 31 + 4, parking
