"""Probe (a measurement, not part of the edge): does the litter model's type depend on how much
ground around an object it sees?

For each staged object of a clip set ``make eval`` wrote (``data/eval/...``), the frame at the middle
of its stay, cut square around it at 1.5, 3, 6 and 12 times its longer side (the edge's tiles are a
third of the frame wide; its closer looks about three times an object), and on each cut the model's
best garbage and spill scores over the anchors whose box overlaps the object's (IoU > 0.3), before any
threshold. Prints one JSON line per object, then per model and cut: objects seen (a score above 0.1),
those whose higher score is their type, and the same for spills; then a final JSON line.

    .venv/bin/python models/litter/probe_context.py data/eval/cross/clips \\
        shipped=models/litter/litter_yolov8n_320 B=data/litter/candidates/gpu4/installed/litter_yolov8n_320

Each model is NAME=PATH, PATH without its ``.onnx`` / ``.manifest.json``. A few seconds a set.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import yaml

from edge.detector import YoloRaw
from models.litter.evaluate import iou

CUTS = (1.5, 3.0, 6.0, 12.0)
SEEN = 0.1


def load(path: str) -> YoloRaw:
    manifest = json.loads(Path(f"{path}.manifest.json").read_text())
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return YoloRaw(manifest, ort.InferenceSession(f"{path}.onnx", options, providers=["CPUExecutionProvider"]))


def anchors(model: YoloRaw, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The model's raw anchors on ``image``, before NMS: their boxes (pixels of ``image``, x1 y1 x2 y2)
    and their class scores ([classes, anchors])."""
    x, scale = model.prepare(image)
    out = model._session.run(model._outputs, {model._input: x})[0][0]  # [4 + classes, anchors]
    cx, cy, w, h = out[:4]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1) / scale, out[4:]


def type_scores(model: YoloRaw, image: np.ndarray, box) -> tuple[float, float]:
    """The best (garbage, spill) score over the raw anchors overlapping ``box`` (pixels of ``image``)."""
    boxes, scores = anchors(model, image)
    near = iou(np.asarray(box, np.float32), boxes) > 0.3
    if not near.any():
        return 0.0, 0.0
    return round(float(scores[0][near].max()), 2), round(float(scores[1][near].max()), 2)


def objects(clips: Path):
    """(clip name, staged object, its frame at mid-stay) for every truth file under ``clips``."""
    for truth_path in sorted(clips.glob("*.truth.yaml")):
        truth = yaml.safe_load(truth_path.read_text())
        video = cv2.VideoCapture(truth["camera"]["url"])
        for e in truth["expect"]:
            video.set(cv2.CAP_PROP_POS_MSEC, (e["appear_s"] + e["clear_s"]) / 2 * 1000)
            ok, frame = video.read()
            if ok:
                yield truth_path.name.removesuffix(".truth.yaml"), e, frame
        video.release()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clips", type=Path)
    ap.add_argument("models", nargs="+", help="NAME=PATH (without .onnx)")
    a = ap.parse_args()
    models = {name: load(path) for name, path in (m.split("=", 1) for m in a.models)}
    rows = []
    for clip, e, frame in objects(a.clips):
        height, width = frame.shape[:2]
        x1, y1, x2, y2 = e["box_px"]
        side, cx, cy = max(x2 - x1, y2 - y1), (x1 + x2) / 2, (y1 + y2) / 2
        row = {"clip": clip, "type": e["type"], "side_px": side}
        for cut in CUTS:
            half = side * cut / 2
            l, t = int(max(0, cx - half)), int(max(0, cy - half))
            r, b = int(min(width, cx + half)), int(min(height, cy + half))
            for name, model in models.items():
                row[f"{name}@{cut}"] = type_scores(model, frame[t:b, l:r], (x1 - l, y1 - t, x2 - l, y2 - t))
        rows.append(row)
        print(json.dumps(row))
    summary = {}
    for name in models:
        for cut in CUTS:
            seen = [r for r in rows if max(r[f"{name}@{cut}"]) > SEEN]
            right = [r for r in seen if ("garbage", "spill")[int(np.argmax(r[f"{name}@{cut}"]))] == r["type"]]
            spills = [r for r in seen if r["type"] == "spill"]
            summary[f"{name}@{cut}"] = {"objects": len(rows), "seen": len(seen), "right_type": len(right),
                                        "spills_seen": len(spills),
                                        "spills_right": sum(r["type"] == "spill" for r in right)}
            s = summary[f"{name}@{cut}"]
            print(f"{name} x{cut}: seen {s['seen']}/{s['objects']}, right type {s['right_type']}/{s['seen']}; "
                  f"spills right {s['spills_right']}/{s['spills_seen']}")
    print(json.dumps({"clips": str(a.clips), "cuts": summary}))


if __name__ == "__main__":
    main()
