"""The independent parking set's generator (models/parkgen.py) and scorer (models/eval_parkgen.py).

The generator writes a real H.264 clip (ffmpeg) and a truth whose zones parse as an edge config; the scorer
matches incidents to the truth by zone, time and place, and counts a second incident for one vehicle as false.
"""

import doctest
import json
import subprocess

import pytest

from edge.config import parse_config
from models import eval_parkgen, parkgen


def test_docstring_examples_run():
    assert doctest.testmod(parkgen).failed == 0


def test_every_stop_lies_in_its_zone_and_outside_the_others():
    import cv2
    import numpy as np

    for scene in parkgen.SCENES.values():
        for v in scene.vehicles:
            inside = [z for z, poly in parkgen.ZONES.items()
                      if cv2.pointPolygonTest((np.array(poly) * [parkgen.BASE_W, parkgen.BASE_H]).astype(np.float32),
                                              v.stop, False) > 0]
            assert inside == ([v.zone] if v.zone else []), (scene.name, v)


def test_generator_writes_a_playable_clip_and_its_truth(tmp_path):
    try:
        material = parkgen.load_material(frames=3)  # the median of a few frames: a rougher ground, enough here
    except parkgen.MissingSource as e:
        pytest.skip(str(e))
    clip = parkgen.make_clip(parkgen.SCENES["swap"], tmp_path, material, width=160, seconds=2.0)
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
         "stream=codec_name,width,height,nb_read_frames", "-of", "json", str(clip)],
        check=True, capture_output=True, text=True).stdout)["streams"][0]
    assert (probe["codec_name"], probe["width"], probe["height"], probe["nb_read_frames"]) == ("h264", 160, 120, "20")
    truth = json.loads((tmp_path / "swap.truth.json").read_text())
    assert [(i["start_due"], i["left_at"]) for i in truth["incidents"]] == [(25.0, 32.0), (58.0, None)]
    parse_config({"box": "t", "cameras": [eval_parkgen.camera(clip, truth)], "data_dir": str(tmp_path / "edge")})


TRUTH = {"seconds": 60.0, "incidents": [{"zone": "z", "arrive": 5.0, "start_due": 25.0, "left_at": 40.0}],
         "vehicles": [{"zone": "z", "arrive": 5.0, "leave": 40.0, "stop": [0.5, 0.6]}]}


def seen(started, end_reason=None, ended=None, anchor=(0.5, 0.6), zone="z"):
    return {"id": str(started), "zone": zone, "started_at": started, "anchor": anchor, "end_reason": end_reason,
            "ended_at": ended, "label": "car"}


@pytest.mark.parametrize("incidents, expected", [
    ([seen(26.0, "left", 41.0)], {"start_error_s": [1.0], "end_error_s": [1.0], "missed": 0, "false_incidents": 0,
                                  "false_left": 0, "left_missing": 0}),
    ([], {"start_error_s": [], "end_error_s": [], "missed": 1, "false_incidents": 0, "false_left": 0,
          "left_missing": 0}),
    ([seen(25.0, "left", 30.0)], {"start_error_s": [0.0], "end_error_s": [], "missed": 0, "false_incidents": 0,
                                  "false_left": 1, "left_missing": 0}),
    ([seen(25.0, "stream_ended", 60.0), seen(42.0, "left", 40.0)],
     {"start_error_s": [0.0], "end_error_s": [], "missed": 0, "false_incidents": 1, "false_left": 0,
      "left_missing": 1}),
    ([seen(25.0, "left", 40.0), seen(25.0, "left", 40.0, anchor=(0.9, 0.6), zone="other")],
     {"start_error_s": [0.0], "end_error_s": [0.0], "missed": 0, "false_incidents": 1, "false_left": 0,
      "left_missing": 0}),
], ids=["late-by-1s", "missed", "left-while-there", "second-for-one-vehicle", "other-zone"])
def test_score(incidents, expected):
    result = eval_parkgen.score(incidents, TRUTH)
    assert {k: result[k] for k in expected} == expected
