"""The second independent parking set's generator (models/parkgen2.py): a tiny clip and its truth, as the scorer
(models/eval_parkgen.py --set parkgen2) reads them."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from edge.config import parse_config
from models import eval_parkgen, parkgen2


def test_a_tiny_clip_and_its_truth(tmp_path):
    cv2 = pytest.importorskip("cv2")
    if not parkgen2.MOTORWAY.exists() or not parkgen2.SPRITES["estate"][0].exists():
        pytest.skip("the motorway clip or the stills are not fetched (models/litter/fetch_*.sh)")
    cap = cv2.VideoCapture(str(parkgen2.MOTORWAY))
    ok, first = cap.read()  # one real frame of the ground stands for the median (3 s) here
    assert ok
    base = cv2.resize(first[180:540, 300:940], (parkgen2.W, parkgen2.H))
    scene = parkgen2.scenes()["brief-stop"]
    cuts = {"estate": parkgen2.cut("estate")}
    clip = tmp_path / "brief-stop.mp4"
    parkgen2.render(scene, clip, base, cuts, 0.25)
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-show_entries",
         "stream=codec_name,width,height,r_frame_rate,nb_read_packets", "-of", "json", str(clip)],
        capture_output=True, text=True, check=True).stdout)["streams"][0]
    assert probe == {"codec_name": "h264", "width": 240, "height": 134, "r_frame_rate": "12/1",
                     "nb_read_packets": str(45 * 12)}

    truth = parkgen2.truth("brief-stop", scene, cuts)
    assert truth["incidents"] == []  # 14 s stopped, under the 25 s dwell
    (v,) = truth["vehicles"]
    assert (v["zone"], v["arrive"], v["leave"]) == ("shoulder", 8.0, 22.0)
    # the vehicle's stop is inside the zone it is scored in, and the zone makes a camera the edge takes
    assert cv2.pointPolygonTest(np.float32(truth["zones"]["shoulder"]), v["stop"], False) > 0
    parse_config({"box": "t", "cameras": [eval_parkgen.camera(clip, truth)], "data_dir": str(tmp_path / "edge")})


def test_every_scene_due_as_its_list_says():
    cuts = {s: np.zeros((100, 200, 4), np.uint8) for s in parkgen2.SPRITES}  # the stop's x, y only
    due = {n: [(i["arrive"], i["start_due"], i["left_at"]) for i in parkgen2.truth(n, s, cuts)["incidents"]]
           for n, s in parkgen2.scenes().items()}
    assert due["brief-stop"] == []
    assert due["two-in-line"] == [(5.0, 30.0, None), (12.0, 37.0, None)]
    assert due["arrive-leave"] == [(5.0, 30.0, 42.0)]
    assert due["across-edge"] == [(7.0, 32.0, None)]  # the motorbike beside the zone is due nothing
    assert all(len(d) >= 1 for n, d in due.items() if n != "brief-stop")
