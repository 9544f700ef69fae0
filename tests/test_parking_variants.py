"""The parked van on degraded re-encodes of the real campus clip, made at test time with ffmpeg
(models/parking_variants.py; the full list runs in `make eval`)."""

import re
from pathlib import Path

import numpy as np
import pytest

from edge.config import parse_config
from edge.replay import replay
from models import parking_variants as pv
from models.eval_parking import score
from xueliang.wire import parse_time

from .conftest import needs_two_cores, on_one_core_and_on_all

T0 = parse_time("2026-03-02T08:00:00Z")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("variants")


def run(variant: pv.Variant, clip: Path, **rules) -> list[dict]:
    config = parse_config({"box": "t", "cameras": [pv.camera(variant, clip)], "rules": rules, "data_dir": "unused"})
    out = []
    for o in replay(config, "campus-gate", str(clip), T0):
        m = dict(o.message)
        for k in ("started_at", "observed_at", "ended_at"):
            m[k] = None if m[k] is None else round(parse_time(m[k]) - T0, 3)
        out.append(m)
    return out


def assert_goal(messages: list[dict]) -> None:
    result = score(messages, pv.TRUTH["expect"])
    assert result["false_incidents"] == 0 and result["false_left"] == 0 and result["label_flips"] == 0, result
    (error,) = result["start_error_s"].values()
    assert error is not None and abs(error) <= 3, result


@pytest.mark.slow
def test_h265_with_key_frames_3s_apart_starts_on_time_without_a_false_left(clips):
    variant = pv.Variant("h265-gop3s", codec=pv.x265(3))
    assert_goal(run(variant, pv.make(variant, clips, seconds=40)))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dusk", "720p_dusk_noise_h265_gop8s"])  # every variant: make eval
def test_degraded_variant_meets_the_goal(clips, name):
    variant = pv.BY_NAME[name]
    assert_goal(run(variant, pv.make(variant, clips)))


@pytest.mark.slow
def test_left_only_once_the_place_looks_empty(clips):
    # composed: from 50 s the van is painted over with the wall and road beside it (the van "leaves")
    variant = pv.Variant("van-leaves", vf="split[a][b];[b]crop=74:61:574:40[p];[a][p]overlay=648:40:"
                         "enable='gte(t,50)'", codec=pv.x264())
    messages = run(variant, pv.make(variant, clips, seconds=72), leave_s=10)
    kerb = [m for m in messages if m["zone"] == "kerb-no-parking"]
    assert [(m["state"], m["end_reason"]) for m in kerb] == [("start", None), ("end", "left")]
    start, end = kerb
    assert abs(start["started_at"] - 30) <= 3
    assert 47 <= end["ended_at"] <= 50.5 and 60 <= end["observed_at"] <= 63, end
    assert start["attributes"]["label"] == end["attributes"]["label"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["arrives_21s", "arrives_21s_dusk"])
def test_a_van_that_arrives_gets_its_clock_from_its_arrival(clips, name):
    variant = pv.BY_NAME[name]
    messages = run(variant, pv.make(variant, clips, seconds=60))
    result = score(messages, pv.TRUTH["expect"], variant.arrives_s)
    assert result["start_error_s"]["kerb-no-parking"] is not None
    assert 0 <= result["start_error_s"]["kerb-no-parking"] <= 2.5, result  # seen on the next key frame (2 s)
    assert result["false_incidents"] == 0 and result["false_left"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dark_night_at_40s", "dark_night_at_40s_leaves_60s"])
def test_a_van_the_detector_loses_in_a_dark_night_keeps_its_incident_until_it_leaves(clips, name):
    """From 40 s the picture is so dark and noisy that the vehicle model no longer finds the van.
    Before, its place then read empty and the incident ended ``left`` at 50 s, the van still there."""
    variant = pv.BY_NAME[name]
    messages = run(variant, pv.make(variant, clips, seconds=72))
    result = score(messages, pv.TRUTH["expect"], leaves_s=variant.leaves_s)
    assert result["false_left"] == 0 and result["false_incidents"] == 0, result
    if variant.leaves_s is not None:  # seen gone in the night light: ended when last seen, 10 s later
        (end,) = [m for m in messages if m["state"] == "end"]
        assert end["end_reason"] == "left"
        assert -3 <= result["left_error_s"] <= 0.5 and end["observed_at"] <= variant.leaves_s + 13, (result, end)
    else:
        assert [m["end_reason"] for m in messages if m["state"] == "end"] == ["stream_ended"], messages


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sway_0.5pct", "sway_1pct"])
def test_a_camera_swaying_in_the_wind_starts_the_van_on_time(clips, name):
    """The picture moves up to 0.5 % or 1 % each way (a camera on a pole in wind). Before, at 0.5 % the
    van's picture moved out of its box at every pass, each detection was taken for another vehicle, and
    the van never became an incident; at 1 % the car parked at the kerb zone's edge (its anchor in on
    14 of 40 passes) was kept by its passes inside and became a false incident at 34 s."""
    variant = pv.BY_NAME[name]
    assert_goal(run(variant, pv.make(variant, clips, seconds=45)))


@pytest.mark.slow
@pytest.mark.parametrize("name, seconds", [("knocked_2pct_at_15s", 55), ("knocked_5pct_at_45s", None),
                                           ("rolled_3deg_at_45s", None)])
def test_a_camera_knocked_on_its_pole_keeps_its_zones_on_the_ground(clips, name, seconds):
    """The picture moves 2 % (at 15 s) or 5 % (at 45 s, the van's incident open) and stays there, or
    turns 3 degrees about its middle (at 45 s), which moves the van in its corner by 2 % and turns it.
    Before, the 2 % one carried a car parked beside the kerb zone into it (a false incident at 46 s),
    and after the 5 % one the van became a second stay and a second incident at 76 s; so did the turned
    one, whose turn was not followed at all (its incident ended `left` at 56 s with the van there)."""
    variant = pv.BY_NAME[name]
    messages = run(variant, pv.make(variant, clips, seconds=seconds))
    assert_goal(messages)
    kerb = [m for m in messages if m["zone"] == "kerb-no-parking"]
    assert len({m["incident_id"] for m in kerb}) == 1 and kerb[-1]["end_reason"] == "stream_ended", kerb
    # the van's box stays where it was on the picture the zones were drawn on (moved back: 0.2-0.4 % off)
    boxes = np.array([m["bbox"] for m in kerb])
    assert (boxes.max(axis=0) - boxes.min(axis=0)).max() < 0.01, boxes
    # the camera is to be re-aimed: a camera_fault while it stays knocked, ended with the stream
    fault = [(m["state"], m["attributes"]["label"], m["end_reason"]) for m in messages if m["type"] == "camera_fault"]
    assert fault[0][:2] == ("start", "shifted") and fault[-1] == ("end", "shifted", "stream_ended"), fault


@pytest.mark.slow
@needs_two_cores
def test_a_variant_is_the_same_file_on_one_core_as_on_all():
    """x264's output depends on its thread count, which followed the machine's cores (so do x265's frame
    threads): the 1 Mb/s and mirrored variants came out otherwise on a 2-core machine than pinned to one
    core, so the parking suite replayed other clips on machines of other sizes. They encode on one thread now."""
    one, every = on_one_core_and_on_all(
        "import hashlib, tempfile; from pathlib import Path; from models import parking_variants as pv; "
        "print(*(hashlib.sha256(pv.make(pv.BY_NAME[n], Path(tempfile.mkdtemp()), seconds=3).read_bytes()).hexdigest()"
        " for n in ('1mbps', 'h265')))")
    assert one == every and len(one.split()) == 2, (one, every)


def test_the_readme_counts_the_variants_the_suite_runs():
    """The README said 28 variants, then 31, in the paragraph that also said 35: each count is the list's."""
    text = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    counts = re.findall(r"on the (\d+) variants of the campus clip|paragraph\): all (\d+) variants within the goal", text)
    assert [int(a or b) for a, b in counts] == [len(pv.VARIANTS)] * 2
