"""Committed model files: sha256 as the manifest says, and they really detect."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from edge.detector import crop_regions, detect_frame, load_detector
from models import MODELS_DIR, ModelError, load_manifest

from .conftest import CLIP, TRUTH

MANIFESTS = sorted(MODELS_DIR.glob("*/*.manifest.json"))


@pytest.mark.parametrize("manifest_path", MANIFESTS, ids=lambda p: p.name)
def test_every_model_matches_its_manifest_and_has_a_card(manifest_path):
    manifest = json.loads(manifest_path.read_text())
    onnx_file = manifest_path.parent / manifest["file"]
    assert hashlib.sha256(onnx_file.read_bytes()).hexdigest() == manifest["sha256"]
    # converted from a package that ships weights, or trained here with a recipe that rebuilds it
    assert (manifest["source"].get("package") and manifest.get("conversion")) or \
        (manifest["source"].get("weights") and manifest.get("recipe") and manifest.get("validation"))
    assert manifest["classes"]
    assert (manifest_path.parent / "CARD.md").exists()
    assert onnx_file.stat().st_size < 20 * 1024 * 1024


def test_the_edge_scores_litter_at_the_threshold_chosen_on_validation():
    """edge/config.py's litter_min_score and litter_confirmed_min_score defaults are the scores
    write_manifest.py chose for the shipped file."""
    from edge.config import Detection

    defaults = Detection()
    manifest = json.loads((MODELS_DIR / "litter" / f"{defaults.litter_model}.manifest.json").read_text())
    assert defaults.litter_min_score == manifest["validation"]["min_score"]
    assert defaults.litter_confirmed_min_score == manifest["validation"]["confirmed_min_score"]


def test_the_edge_threshold_is_the_best_f1_among_precise_enough_scores():
    """write_manifest.py's rule on the shipped file's recorded figures: the best mean F1 among the scores
    whose mean precision reaches MIN_PRECISION, and that is the manifest's min_score."""
    from models.litter.write_manifest import MIN_PRECISION

    v = json.loads((MODELS_DIR / "litter" / "litter_yolov8n_320.manifest.json").read_text())["validation"]
    f1, precision = v["by_min_score"]["mean_f1"], v["by_min_score"]["mean_precision"]
    allowed = [s for s in f1 if precision[s] >= MIN_PRECISION]
    assert allowed and float(max(allowed, key=f1.get)) == v["min_score"]
    # confirmed by the left-object check, a detection needs no precision floor: the best F1 of all
    assert min(v["min_score"], float(max(f1, key=f1.get))) == v["confirmed_min_score"]


def test_training_exports_the_stage_whose_best_epoch_scored_highest(tmp_path):
    """A later stage is not always better: train.py picks by ultralytics' fitness on validation."""
    from models.litter.train import RUNS, best_stage

    header = "epoch,metrics/mAP50(B),metrics/mAP50-95(B)\n"
    for stage, rows in {1: ["1,0.50,0.30", "2,0.56,0.31"], 2: ["1,0.06,0.02", "2,0.52,0.29"]}.items():
        run = tmp_path / RUNS[stage]
        (run / "weights").mkdir(parents=True)
        (run / "weights/best.pt").write_bytes(b"")
        (run / "results.csv").write_text(header + "\n".join(rows) + "\n")
    assert best_stage(tmp_path) == 1
    (tmp_path / RUNS[2] / "results.csv").write_text(header + "1,0.57,0.33\n")
    assert best_stage(tmp_path) == 2


def test_stages_validated_on_other_images_are_not_compared(tmp_path):
    """Stage 6 is validated on a split with physical.py's objects: its mAP is not comparable to stage 5's,
    so the last stage's validation split decides which stages compete."""
    import json

    from models.litter.train import RUNS, best_stage

    header = "epoch,metrics/mAP50(B),metrics/mAP50-95(B)\n"
    plain = {"val_seed": 8, "val": 300, "randomise": True, "physical": 0.4}
    for stage, rows, data in ((5, "1,0.44,0.25", plain), (6, "1,0.38,0.20", {**plain, "val_physical": 0.4})):
        run = tmp_path / RUNS[stage]
        (run / "weights").mkdir(parents=True)
        (run / "weights/best.pt").write_bytes(b"")
        (run / "results.csv").write_text(header + rows + "\n")
        (run / "data.json").write_text(json.dumps(data))
    assert best_stage(tmp_path) == 6  # lower mAP, but on harder images than stage 5's
    (tmp_path / RUNS[6] / "data.json").write_text(json.dumps({**plain, "physical": 0.5, "seed": 11}))
    assert best_stage(tmp_path) == 5  # the same validation images: the higher mAP wins


def test_a_stage_started_from_a_file_records_the_stages_that_made_the_file(tmp_path):
    """Stage 5 run from weights read back out of the shipped file (``--start``): the recipe names the
    file and takes stages 1-4 from the file's manifest, not from runs that are not here."""
    import json

    from models.litter.train import RUNS, recipe_stages

    header = "epoch,metrics/mAP50(B),metrics/mAP50-95(B)\n"
    run = tmp_path / RUNS[5]
    run.mkdir()
    (run / "results.csv").write_text(header + "1,0.45,0.24\n2,0.47,0.26\n")
    earlier = [{"stage": s, "epochs_run": 3} for s in (1, 2, 3, 4)]
    (run / "start.json").write_text(json.dumps({"weights": "from_onnx.pt", "source": "read back from x.onnx",
                                                "earlier_stages": earlier}))
    stages = recipe_stages(tmp_path, 5)
    assert [s["stage"] for s in stages] == [1, 2, 3, 4, 5]
    assert stages[4]["start"] == {"weights": "from_onnx.pt", "source": "read back from x.onnx"}
    assert stages[4]["epochs_run"] == 2 and stages[4]["last_epoch"]["metrics/mAP50(B)"] == "0.47"
    # without a start file the stages are the runs found, in order
    (run / "start.json").unlink()
    assert [s["stage"] for s in recipe_stages(tmp_path, 5)] == [5]


def test_a_stage_started_from_an_earlier_runs_best_epoch_carries_that_runs_stages(tmp_path):
    """``--start data/litter/runs/train/weights/best.pt``: ultralytics' file names no source, so the
    recipe had "started from .../best.pt: None" and lost the COCO backbone stage 1 had started from."""
    import json

    from models.litter.train import RUNS, recipe_stages, started_from

    header = "epoch,metrics/mAP50(B),metrics/mAP50-95(B)\n"
    first = tmp_path / RUNS[1]
    (first / "weights").mkdir(parents=True)
    (first / "results.csv").write_text(header + "1,0.40,0.20\n2,0.52,0.28\n")
    (first / "start.json").write_text(json.dumps({"weights": "coco_mnv2.pt", "source": "COCO backbone",
                                                  "earlier_stages": []}))
    start = started_from(first / "weights/best.pt", {"model": "ultralytics' own keys, no source"})
    assert [s["stage"] for s in start["earlier_stages"]] == [1]
    assert "stage 1's best epoch" in start["source"] and "coco_mnv2.pt: COCO backbone" in start["source"]
    fifth = tmp_path / RUNS[5]
    fifth.mkdir()
    (fifth / "results.csv").write_text(header + "1,0.58,0.33\n")
    (fifth / "start.json").write_text(json.dumps(start))
    stages = recipe_stages(tmp_path, 5)
    assert [s["stage"] for s in stages] == [1, 5]
    assert stages[0]["start"]["source"] == "COCO backbone"  # the recipe's model line names the first start
    # a file that says where it came from is taken at its word; any other file is unknown, not guessed
    assert started_from(tmp_path / "x.pt", {"source": "read back", "recipe_stages": [{"stage": 2}]}) == {
        "weights": str(tmp_path / "x.pt"), "source": "read back", "earlier_stages": [{"stage": 2}]}
    assert started_from(tmp_path / "other/weights/best.pt", {})["source"] is None


def test_altered_model_file_is_refused(tmp_path, monkeypatch):
    import models

    src = MODELS_DIR / "vehicle"
    dst = tmp_path / "vehicle"
    dst.mkdir()
    manifest = json.loads((src / "ssd_mobilenet_v2_coco.manifest.json").read_text())
    (dst / "ssd_mobilenet_v2_coco.manifest.json").write_text(json.dumps(manifest))
    data = bytearray((src / manifest["file"]).read_bytes())
    data[-1] ^= 0xFF
    (dst / manifest["file"]).write_bytes(bytes(data))
    monkeypatch.setattr(models, "MODELS_DIR", tmp_path)
    with pytest.raises(ModelError, match="sha256"):
        models.load_manifest("ssd_mobilenet_v2_coco")
    with pytest.raises(ModelError, match="not found"):
        models.load_manifest("no_such_model")


def first_frame() -> np.ndarray:
    with av.open(str(CLIP)) as container:
        return next(container.decode(video=0)).to_ndarray(format="bgr24")


def test_ssd_finds_the_parked_van_in_its_zone_with_crops():
    image = first_frame()
    h, w = image.shape[:2]
    zone = next(z for z in TRUTH["camera"]["zones"] if z["id"] == "kerb-no-parking")
    detector = load_detector("ssd_mobilenet_v2_coco")
    found = detect_frame(detector, image, crop_regions([zone["polygon"]], w, h), 0.4, ["car", "truck", "bus", "motorcycle"])
    vehicles = found[np.isin(found.data["class_name"], ["car", "truck", "bus", "motorcycle"])]
    (xs, ys) = zone["polygon"][0], zone["polygon"][2]
    anchors = [((x1 + x2) / 2 / w, y2 / h) for x1, _, x2, y2 in vehicles.xyxy]
    inside = [a for a in anchors if xs[0] <= a[0] <= ys[0] and xs[1] <= a[1] <= ys[1]]
    assert len(inside) == 1  # the van, once: one NMS across vehicle classes
    assert (found.data["class_name"] == "person").sum() >= 3  # the pedestrians on the road


@pytest.mark.slow
def test_detect_cli_prints_json(tmp_path):
    import cv2

    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), first_frame())
    run = subprocess.run([sys.executable, "-m", "xueliang", "detect", str(path), "--json"],
                         capture_output=True, text=True, timeout=60, check=True)
    rows = json.loads(run.stdout)
    assert {"label", "score", "box"} <= set(rows[0])
    labels = [r["label"] for r in rows]
    assert "person" in labels and "car" in labels
    for r in rows:
        x1, y1, x2, y2 = r["box"]
        assert 0 <= x1 < x2 <= 768 and 0 <= y1 < y2 <= 576 and 0 < r["score"] <= 1


def test_a_detectors_threads_sleep_between_runs():
    """A box runs its models once a second a camera, beside its decoders: threads left spinning after each run
    took the cores (on a loaded 2-core machine, twice the CPU and two to four times the wall time)."""
    options = load_detector("litter_yolov8n_320")._session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_manifest_loader_returns_the_onnx_path():
    manifest, path = load_manifest("ssd_mobilenet_v2_coco")
    assert path.exists() and manifest["input"]["shape"] == [1, 300, 300, 3]


def test_thresholds_from_one_pass_are_what_a_pass_per_threshold_gives(tmp_path):
    """write_manifest.py scores every candidate threshold from one detector pass (metrics_by_score):
    the real litter model on frames of the committed clip, labelled from its truth file."""
    import cv2
    import yaml

    from models.litter.evaluate import detector_metrics, metrics_by_score

    truth = yaml.safe_load(CLIP.with_name("campus-litter.truth.yaml").read_text())
    video = cv2.VideoCapture(str(CLIP.with_name("campus-litter.mp4")))
    fps, items = video.get(cv2.CAP_PROP_FPS), []
    for t in (5, 20, 30, 45, 60):
        video.set(cv2.CAP_PROP_POS_FRAMES, int(t * fps))
        ok, frame = video.read()
        assert ok
        path = tmp_path / f"{t}.jpg"
        cv2.imwrite(str(path), frame)
        h, w = frame.shape[:2]
        items.append((path, [f"{['garbage', 'spill'].index(e['type'])} {e['centre'][0]} {e['centre'][1]} "
                             f"{e['size_px'][0] / w} {e['size_px'][1] / h}"
                             for e in truth["expect"] if e["appear_s"] <= t < e["clear_s"]]))
    detector = load_detector("litter_yolov8n_320")
    scores = [0.1, 0.3, 0.5]
    together = metrics_by_score(detector, items, scores)
    assert together == {s: detector_metrics(detector, items, s) for s in scores}
    assert together[0.1]["garbage"]["objects"] == 3 and together[0.1]["spill"]["objects"] == 3
    # the thresholds do cut: fewer found at 0.5 than at 0.1
    found = {s: sum(m[c]["recall"] * m[c]["objects"] for c in ("garbage", "spill")) for s, m in together.items()}
    assert found[0.1] > found[0.5]


def test_the_litter_model_sees_each_frame_as_is_and_mirrored():
    """The litter manifest says ``mirror`` as write_manifest.py chose the thresholds with it; the
    detector runs several tiles together (a batch, then one of the mirrors it needs) and gives what it
    gives one by one; a tile it sees nothing in is not looked at mirrored; and a mirrored frame's
    detections are the frame's, mirrored (the second view's boxes are put back right)."""
    import cv2

    from models.litter.write_manifest import MIRROR

    manifest, _ = load_manifest("litter_yolov8n_320")
    assert manifest["mirror"] is MIRROR and manifest["validation"]["mirror"] is MIRROR
    detector = load_detector("litter_yolov8n_320")
    assert detector.mirror is MIRROR
    video = cv2.VideoCapture(str(CLIP.with_name("campus-litter.mp4")))
    video.set(cv2.CAP_PROP_POS_FRAMES, int(30 * video.get(cv2.CAP_PROP_FPS)))
    ok, frame = video.read()
    assert ok
    h, w = frame.shape[:2]
    # around the fixture's pile and spill at 30 s (truth centres 0.211, 0.391 and 0.859, 0.395), and all of it
    tiles = [frame[int(0.2 * h): int(0.6 * h), : int(0.4 * w)], frame[int(0.2 * h): int(0.6 * h), int(0.6 * w):], frame]
    batched = detector.detect_many(tiles, 0.2)
    for tile, found in zip(tiles, batched):
        alone = detector.detect(tile, 0.2)
        assert np.array_equal(found.xyxy, alone.xyxy) and np.array_equal(found.confidence, alone.confidence)
    assert len(batched[0]) and len(batched[1])
    # a tile it sees nothing in at half the threshold (bare grey) is not looked at mirrored
    runs = []
    session = detector._session

    class Counting:
        def run(self, outputs, feed):
            runs.append(len(next(iter(feed.values()))))
            return session.run(outputs, feed)

    detector._session = Counting()
    try:
        grey = np.full_like(tiles[0], 128)
        found = detector.detect_many([grey, tiles[0]], 0.3)
    finally:
        detector._session = session
    assert runs == [2, 1] and len(found[0]) == 0 and len(found[1]) == len(detector.detect(tiles[0], 0.3))
    tile = tiles[0]
    w = tile.shape[1]
    found = detector.detect(tile, 0.2)
    mirrored = detector.detect(np.ascontiguousarray(tile[:, ::-1]), 0.2)
    order, back = np.argsort(-found.confidence, kind="stable"), np.argsort(-mirrored.confidence, kind="stable")
    np.testing.assert_allclose(mirrored.confidence[back], found.confidence[order], rtol=1e-6)
    x1, y1, x2, y2 = mirrored.xyxy[back].T
    np.testing.assert_allclose(np.stack([w - x2, y1, w - x1, y2], axis=1), found.xyxy[order], atol=1e-3)


def _generator(root: Path) -> Path:
    """A set generator for ``made_by``: writes its folder (the last argument) with the time and its first argument."""
    generator = root / "gen.py"
    generator.write_text("import pathlib, sys, time\nout = pathlib.Path(sys.argv[-1]); out.mkdir(parents=True)\n"
                         "(out / 'made').write_text(str(time.time_ns()) + sys.argv[1])\n")
    return generator


def test_make_eval_makes_a_cached_set_again_when_its_generator_changes(tmp_path, monkeypatch):
    """models/litter/evaluate.py's made_by: the same command from the same sources reuses the set;
    an edited generator or other arguments make it again."""
    from models.litter import evaluate

    monkeypatch.setattr(evaluate, "ROOT", tmp_path)
    generator = _generator(tmp_path)
    out = tmp_path / "set"

    def made(count: str) -> str:
        evaluate.made_by(out, [sys.executable, "gen.py", count], ["gen.py"])
        return (out / "made").read_text()

    first = made("3")
    assert made("3") == first  # cached
    assert made("4") != first and made("4").endswith("4")  # other arguments
    before = made("4")
    generator.write_text(generator.read_text() + "# changed\n")
    assert made("4") != before  # the generator changed


def test_make_eval_reuses_a_set_made_from_another_checkout_of_the_same_data(tmp_path, monkeypatch):
    """A run from a second checkout (a git worktree with ``data`` linked to the first's) finds the set
    the first made, from the same command and sources, and does not make it again."""
    from models.litter import evaluate

    main, worktree = tmp_path / "main", tmp_path / "worktree"
    for root in (main, worktree):
        root.mkdir()
        _generator(root)
    (main / "data").mkdir()
    (worktree / "data").symlink_to(main / "data")

    def made(root) -> str:
        monkeypatch.setattr(evaluate, "ROOT", root)
        evaluate.made_by(root / "data" / "set", [sys.executable, "gen.py"], ["gen.py"])
        return (main / "data" / "set" / "made").read_text()

    first = made(main)
    assert made(worktree) == first


def test_make_eval_names_each_set_by_a_digest_of_its_files(tmp_path):
    """The digest ``make eval`` prints per set changes with any file's bytes or name, not with its
    ``made_by.json`` or the folder's place: two runs scored the same sets when their digests agree."""
    from models.litter.evaluate import digest

    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        (folder / "images").mkdir(parents=True)
        (folder / "images" / "x.jpg").write_bytes(b"\xff\xd8one")
        (folder / "made_by.json").write_text(str(folder))
    assert digest(a) == digest(b) and len(digest(a)) == 12
    (b / "images" / "x.jpg").write_bytes(b"\xff\xd8two")
    assert digest(a) != digest(b)
    (b / "images" / "x.jpg").write_bytes(b"\xff\xd8one")
    (b / "images" / "x.jpg").rename(b / "images" / "y.jpg")
    assert digest(a) != digest(b)


def test_make_eval_names_the_fetched_files_whose_bytes_changed(tmp_path):
    """``changed_fetched``: a fetched file with other bytes than recorded, or only on one side, is named;
    the same bytes are not."""
    import hashlib

    from models.litter.evaluate import FETCHED, FETCHED_RECORD, changed_fetched

    (tmp_path / "evalsrc").mkdir()
    (tmp_path / "evalsrc" / "a.png").write_bytes(b"a")
    (tmp_path / "evalsrc" / "new.png").write_bytes(b"n")
    record = (f"{hashlib.sha256(b'a').hexdigest()}  evalsrc/a.png\n{hashlib.sha256(b'n').hexdigest()}  evalsrc/new.png\n")
    assert changed_fetched(record, tmp_path) == []
    (tmp_path / "evalsrc" / "a.png").write_bytes(b"b")
    (tmp_path / "evalsrc" / "new.png").unlink()
    record += f"{'0' * 64}  evalsrc/gone.png\n"
    assert changed_fetched(record, tmp_path) == ["evalsrc/a.png", "evalsrc/gone.png", "evalsrc/new.png"]
    # the committed record reads as sha256sum lines, one per fetched file
    lines = FETCHED_RECORD.read_text().splitlines()
    assert lines and all(len(line.split("  ", 1)[0]) == 64 for line in lines)
    assert FETCHED.name == "litter"
