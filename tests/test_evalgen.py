"""The evaluation generator (models/litter/evalgen.py): its zones, its ground plane and its labels."""

import subprocess

import numpy as np
import pytest
import yaml

from edge.geometry import polygon_area
from models.litter.evalgen import FURNITURE, OTHER_SCENES, SCENES, Scene, Textures, _scene_frames, draw_object, plan_clip, put
from models.litter.evaluate import regopped_truths, score_clip

from .conftest import CLIP


@pytest.mark.parametrize("scene", SCENES + OTHER_SCENES, ids=lambda s: s.name)
def test_zones_are_seven_to_eight_times_the_object_and_hold_it(scene):
    W, H = 768, 576
    for seed in range(5):
        plan = plan_clip(np.random.default_rng(seed), scene, W, H, 80.0)
        zones = {z["id"]: z for z in plan["zones"]}
        for o in plan["objects"]:
            if o["type"] not in ("garbage", "spill"):
                continue
            x1, y1, x2, y2 = o["box_px"]
            zone = zones[o["zone"]]
            ratio = polygon_area([tuple(p) for p in zone["polygon"]]) * W * H / ((x2 - x1) * (y2 - y1))
            clipped = any(v in (0.0, 1.0) for p in zone["polygon"] for v in p)  # cut by the frame's edge
            assert (6.9 <= ratio <= 8.1) or (clipped and ratio <= 8.1), ratio
            assert zone["types"] == ["garbage", "spill"] and zone["persistence_s"] == 10 and zone["clear_s"] == 5
            assert 0 < o["appear_s"] < o["clear_s"] - 20 and o["clear_s"] <= 80 - 16


def test_farther_objects_are_drawn_smaller():
    """The ground plane: the same object is narrower higher in the picture (nearer the horizon)."""
    from models.litter.evalgen import _size_at
    scene = SCENES[0]
    near, far = _size_at(scene, 0.9, 1.0, 576), _size_at(scene, 0.4, 1.0, 576)
    assert near[0] > 1.5 * far[0] and near[1] > far[1]


@pytest.mark.parametrize("kind", ["garbage", "spill", *FURNITURE])
def test_objects_change_the_ground_and_only_litter_is_labelled(kind):
    rng = np.random.default_rng(3)
    d = draw_object(rng, Textures.synthetic(), kind, 60, 40)
    frame = np.full((100, 120, 3), 128, np.uint8)
    box = put(frame, d, 30, 30)
    assert box is not None and np.abs(frame.astype(int) - 128).sum() > 0
    assert d.labelled == (kind in ("garbage", "spill"))


T0 = 1_780_300_800.0  # evaluate.T0
EXPECT = [{"zone": "a", "type": "garbage", "appear_s": 5, "clear_s": 40, "start_after_s": 15},
          {"zone": "b", "type": "spill", "appear_s": 5, "clear_s": 40, "start_after_s": 15}]


def _start(kind, zone, at, review=False):
    """An incident's start message, ``at`` seconds into the clip."""
    from xueliang.wire import iso
    return {"state": "start", "type": kind, "zone": zone, "incident_id": f"{kind}{zone}{at}",
            "observed_at": iso(T0 + at), "attributes": {"needs_review": review}}


def test_scoring_counts_review_wrong_type_and_furniture_apart():
    from xueliang.wire import iso
    messages = [_start("garbage", "a", 16), _start("garbage", "b", 17), _start("spill", "b", 3, review=True),
                {"state": "end", "incident_id": "garbagea16", "observed_at": iso(T0 + 44), "end_reason": "cleared"}]
    r = score_clip(messages, EXPECT, {"a": 5, "b": 5})
    assert (r["dispatched"], r["held"], r["true_dispatched"], r["found_dispatched"]) == (2, 1, 1, 1)
    assert r["confusion"]["spill"]["garbage"] == 1 and r["confusion"]["garbage"]["garbage"] == 1
    assert r["start_delays"] == [1.0] and len(r["false"]) == 2
    assert r["objects"] == ["garbage in a: start +1.0 s, cleared +4.0 s", "spill in b: only as garbage"]


def test_the_clean_footage_zones_are_valid_litter_zones():
    """The false-alarm clips' zones (evaluate.CLEAN_FOOTAGE) pass the edge's own config checks."""
    from edge.config import parse_config
    from models.litter.evaluate import CLEAN_FOOTAGE

    for name, (source_s, zones) in CLEAN_FOOTAGE.items():
        assert 0 < source_s <= 30, name
        config = parse_config({"box": "eval", "cameras": [{"id": "c", "url": name, "grid": "HQ-1", "zones": zones}]}, name)
        parsed = config.cameras[0].zones
        assert [z.id for z in parsed] == [z["id"] for z in zones]
        assert all(set(z.types) == {"garbage", "spill"} for z in parsed)


def test_footage_shorter_than_a_clip_plays_again_only_where_the_scene_says(tmp_path):
    """The other scenes' clean footage is 30 s; a clip is 80 s: it plays again (the same frames)."""
    import cv2

    clip = tmp_path / "short.avi"
    out = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(30):  # 3 s
        out.write(np.full((48, 64, 3), i * 8, np.uint8))
    out.release()
    looped = Scene("short", str(clip), 0.1, 10, ((0.1, 0.5, 0.4, 0.8),), (0.5, 0.3), loop=True)
    frames, fps = _scene_frames(looped, 8.0, 10.0)
    assert fps == 10.0 and len(frames) == 80 and frames[30] is frames[0] and frames[79] is frames[19]
    once, _ = _scene_frames(Scene("short", str(clip), 0.1, 10, ((0.1, 0.5, 0.4, 0.8),), (0.5, 0.3)), 8.0, 10.0)
    assert len(once) == 30


def test_a_set_counts_what_a_rule_for_keeping_a_change_names():
    """``summarise`` over clips: objects dispatched with their type, and dispatched incidents that
    match none (a pile called spill is both a miss and a false one); held ones are neither."""
    from models.litter.evaluate import summarise
    one = score_clip([_start("garbage", "a", 16), _start("garbage", "b", 17)], EXPECT, {"a": 5, "b": 5})
    two = score_clip([_start("garbage", "a", 18), _start("spill", "b", 19), _start("spill", "a", 3, review=True)],
                     EXPECT, {"a": 5, "b": 5})
    s = summarise({"one": one, "two": two})
    assert (s["right_typed_dispatched"], s["false_dispatched"], s["held"]) == (3, 1, 1)
    assert (s["staged"], s["dispatched"], s["recall"]) == (4, 4, 0.75)
    assert s["confusion"]["spill"] == {"garbage": 1, "spill": 1, "missed": 0}
    assert list(s["per_clip"]) == ["one", "two"]
    assert s["object_starts"].keys() == {"one #0", "two #0", "two #1"}  # "one #1" only as garbage
    assert s["object_starts"]["two #0"] - s["object_starts"]["one #0"] == pytest.approx(2.0)


def test_a_fresh_draw_has_seeds_and_folders_of_its_own_and_draw_0_is_the_sets_as_always(tmp_path):
    """``make eval --draw K``: the four independent sets drawn again where no earlier draw (and no
    default set) lies, each generator with a seed no other set or draw has."""
    from models.litter.evaluate import drawn_sets

    draws = {k: drawn_sets(tmp_path, k) for k in (0, 1, 2)}
    assert draws[0][0] == "" and all(seed == [] for _, seed in draws[0][1].values())
    assert [folder.relative_to(tmp_path).as_posix() for folder, _ in draws[0][1].values()] == \
        ["cross/clips", "cross-other/clips", "blind/clips", "mesh/clips"]
    folders = [folder for _, sets in draws.values() for folder, _ in sets.values()]
    seeds = [tuple(seed) for k, (_, sets) in draws.items() if k for _, seed in sets.values()]
    assert len(set(folders)) == 12 and len(set(seeds)) == 8


@pytest.mark.slow
def test_a_regopped_clip_has_one_key_frame_in_250_frames_and_its_own_truth(tmp_path):
    """``make eval``'s long-GOP replay (``--gop``): the clip re-encoded with x264's default key-frame
    interval (its 30 s at 10 fps: key frames at 0 s and 25 s only), the truth file a copy pointing at it."""
    short = tmp_path / "short.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(CLIP), "-t", "30", "-r", "10", "-c:v", "libx264",
                    "-preset", "veryfast", "-an", str(short)], check=True, timeout=120)
    truth = tmp_path / "c.truth.yaml"
    truth.write_text(yaml.safe_dump({"camera": {"id": "c", "url": str(short), "zones": []}, "expect": []}))
    [told] = regopped_truths([truth], tmp_path / "gop", 250)
    url = yaml.safe_load(told.read_text())["camera"]["url"]
    assert told.name == "c-gop250.truth.yaml" and url.endswith("/short-gop250.mp4")
    keys = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-skip_frame", "nokey", "-show_entries",
                           "frame=pts_time", "-of", "csv=p=0", url], capture_output=True, text=True, check=True)
    assert [round(float(t.strip(",") or 0)) for t in keys.stdout.split()] == [0, 25]


def test_an_incident_is_counted_for_the_object_its_box_is_on_not_for_the_zone_it_was_raised_in():
    """Two zones that overlap, an object in each and both in both (the cross set's garage): each zone's
    garbage incident about the one pile is one find and one false, and the other object, raised only
    as spill, is a wrong type, though a garbage incident was raised in its zone."""
    pile, other = (0.08, 0.80, 0.33, 0.99), (0.36, 0.79, 0.60, 0.98)  # two piles, the other one seen as spill
    expect = [{**EXPECT[0], "zone": "b", "box": pile}, {**EXPECT[0], "zone": "a", "box": other}]
    at = lambda m, box: {**m, "bbox": list(box)}
    messages = [at(_start("garbage", "a", 16), (0.12, 0.83, 0.30, 0.99)), at(_start("garbage", "b", 16), (0.12, 0.83, 0.30, 0.99)),
                at(_start("spill", "a", 16.5), (0.36, 0.85, 0.43, 0.95)), at(_start("spill", "b", 16.5), (0.36, 0.85, 0.43, 0.95))]
    r = score_clip(messages, expect, {"a": 5, "b": 5})
    assert r["objects"] == ["garbage in b: start +1.0 s", "garbage in a: only as spill"]
    assert r["confusion"]["garbage"] == {"garbage": 1, "spill": 1, "missed": 0}
    assert sorted(r["false"]) == [("garbage", "b", 16.0, "dispatched"), ("spill", "a", 16.5, "dispatched"),
                                  ("spill", "b", 16.5, "dispatched")]
    zone_only = score_clip([{k: v for k, v in m.items() if k != "bbox"} for m in messages], expect, {"a": 5, "b": 5})
    assert zone_only["objects"] == ["garbage in b: start +1.0 s", "garbage in a: start +1.0 s"]  # as counted before


def test_an_incident_whose_box_reaches_a_neighbours_is_counted_for_the_object_holding_most_of_it():
    """Draw 12's garage (``x-garage-floor-5``): a spill and a pile side by side, the pile raised as spill
    and the spill as garbage, each incident's box within the margin of the other object's. Two wrong
    types, not two finds with odd ends (the spill "cleared 3.1 s early" at the pile's clear, the pile
    "12.6 s late" at the spill's)."""
    from xueliang.wire import iso
    spill, pile = (0.311, 0.772, 0.561, 0.971), (0.121, 0.797, 0.342, 0.996)
    expect = [{"zone": "litter-1", "type": "spill", "appear_s": 12.2, "clear_s": 49.1, "start_after_s": 22.2, "box": spill},
              {"zone": "litter-2", "type": "garbage", "appear_s": 14.8, "clear_s": 41.4, "start_after_s": 24.8, "box": pile}]
    end = lambda m, at: {"state": "end", "incident_id": m["incident_id"], "observed_at": iso(T0 + at), "end_reason": "cleared"}
    on_pile = {**_start("spill", "litter-1", 32), "bbox": [0.133, 0.835, 0.307, 0.955]}
    on_spill = {**_start("garbage", "litter-1", 44), "bbox": [0.352, 0.800, 0.451, 0.913]}
    r = score_clip([on_pile, on_spill, end(on_pile, 46), end(on_spill, 54)], expect, {"litter-1": 5, "litter-2": 5})
    assert r["objects"] == ["spill in litter-1: only as garbage", "garbage in litter-2: only as spill"]
    assert r["confusion"] == {"garbage": {"garbage": 0, "spill": 1, "missed": 0}, "spill": {"garbage": 1, "spill": 0, "missed": 0}}
    assert r["end_delays"] == [] and sorted(f[0] for f in r["false"]) == ["garbage", "spill"]
    alone = score_clip([on_pile, end(on_pile, 46)], expect[:1], {"litter-1": 5})  # no neighbour: the margin still holds
    assert alone["objects"] == ["spill in litter-1: start +9.8 s, cleared -3.1 s"]


def test_a_staged_objects_box_is_where_the_edge_sees_it_in_a_knocked_cameras_view(tmp_path):
    """``truth_boxes``: pixels over the clip's size, moved into the view a knocked camera's truth names."""
    import cv2

    from models.litter.evaluate import truth_boxes

    clip = tmp_path / "c.avi"
    out = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (200, 100))
    out.write(np.zeros((100, 200, 3), np.uint8))
    out.release()
    truth = {"camera": {"url": str(clip)}, "expect": [{"box_px": [20, 50, 120, 100]}, {"zone": "a"}]}
    assert truth_boxes(truth) == [(0.1, 0.5, 0.6, 1.0), None]
    knocked = truth_boxes({**truth, "view": [0.1, 0.1, 0.8, 0.8]})[0]
    assert knocked == pytest.approx((0.0, 0.5, 0.625, 1.0))
