"""Sampling that fits the rules: key frames only while they come often enough, H.265 too."""

import subprocess
import time

import pytest

from edge.config import Camera, Rules
from edge.source import keyframe_gap_limit, open_frames
from xueliang import services

from .conftest import CLIP

KERB = {"id": "kerb", "types": ["illegal_parking"], "polygon": [[0.8, 0.03], [0.97, 0.03], [0.97, 0.22]]}


@pytest.fixture(scope="module")
def hevc_gop3(tmp_path_factory):
    """The campus clip's first 20 s as H.265 with a key frame every 3 s (made here with ffmpeg)."""
    out = tmp_path_factory.mktemp("hevc") / "campus-hevc-gop3.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(CLIP), "-t", "20", "-c:v", "libx265",
                    "-preset", "ultrafast", "-x265-params", "keyint=30:min-keyint=30:scenecut=0:log-level=error",
                    "-tag:v", "hvc1", "-an", str(out)], check=True, timeout=120)
    return out


@pytest.mark.parametrize("dwell_s, gap_s, limit", [(180, 10, 5.0), (30, 10, 5.0), (9, 10, 3.0), (180, 4, 2.0)])
def test_the_tolerated_key_frame_gap_comes_from_the_rules(dwell_s, gap_s, limit):
    camera = Camera(id="c", url="x", grid="g", zones=[{**KERB, "dwell_s": dwell_s}])
    assert keyframe_gap_limit(camera, Rules(gap_s=gap_s)) == limit
    assert keyframe_gap_limit(camera.model_copy(update={"max_keyframe_gap_s": 1.5}), Rules(gap_s=gap_s)) == 1.5


def test_no_zones_gets_the_documented_default():
    assert keyframe_gap_limit(Camera(id="c", url="x", grid="g"), Rules()) == 6.0


def test_hevc_key_frames_3s_apart_stay_on_the_key_frame_path(hevc_gop3):
    times = [round(t, 1) for t, _ in open_frames(str(hevc_gop3), sampling="auto", max_keyframe_gap_s=5.0)]
    assert times == [0.0, 3.0, 6.0, 9.0, 12.0, 15.0, 18.0]
    # a rule that tolerates less than 3 s decodes every frame and samples each second
    times = [round(t, 1) for t, _ in open_frames(str(hevc_gop3), sampling="auto", max_keyframe_gap_s=2.5)]
    assert times[:2] == [0.0, 3.0] and len(times) >= 14 and max(b - a for a, b in zip(times, times[1:])) <= 3.1


@pytest.mark.slow
def test_hevc_camera_over_rtsp_is_read_on_key_frames(hevc_gop3, tmp_path):
    with services.rtsp_server({"hevc": hevc_gop3}, tmp_path) as server:
        started = time.monotonic()
        times = []
        for t, image in open_frames(f"rtsp://127.0.0.1:{server.port}/hevc", sampling="keyframes"):
            assert image.shape == (576, 768, 3)
            times.append(t)
            if len(times) == 4:
                break
    gaps = [b - a for a, b in zip(times[1:], times[2:])]  # the first frame of an RTSP stream comes untimed
    assert all(2.5 <= g <= 3.5 for g in gaps), times
    assert time.monotonic() - started < 20
