"""Evaluates the vehicle detector on the campus clip, which COCO training never saw.

Ground truth is hand-labelled in fixtures/videos/campus-gate.boxes.json: the two parked
vehicles' boxes (they do not move in the clip). Per sampled frame (1/s) it counts
whether each parked vehicle is found (IoU >= 0.5) on the full frame, with zone crops, and
on the crops alone (what the edge runs when every zone has a crop), and vehicle detections
anywhere else (false alarms: the road has only pedestrians).
Prints a table and a last line of JSON.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import yaml

from edge.detector import crop_regions, detect_frame, load_detector
from edge.source import open_frames

REPO = Path(__file__).resolve().parent.parent
VEHICLES = ["car", "motorcycle", "bus", "truck"]


def iou(a, b) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def main(min_score: float = 0.4) -> dict:
    truth = json.loads((REPO / "fixtures/videos/campus-gate.boxes.json").read_text())
    camera = yaml.safe_load((REPO / "fixtures/videos/campus-gate.truth.yaml").read_text())["camera"]
    detector = load_detector("ssd_mobilenet_v2_coco")
    results = {}
    for mode in ("full_frame", "zone_crops", "crops_only"):
        hits = {name: 0 for name in truth["objects"]}
        scores = {name: [] for name in truth["objects"]}
        false_alarms, frames = 0, 0
        for _, image in open_frames(str(REPO / "fixtures/videos/campus-gate.mp4")):
            h, w = image.shape[:2]
            regions = crop_regions([z["polygon"] for z in camera["zones"] if z["id"] == "kerb-no-parking"], w, h) \
                if mode != "full_frame" else []
            found = detect_frame(detector, image, regions, min_score, VEHICLES, full_frame=mode != "crops_only")
            boxes = [(b.tolist(), float(s)) for b, s, n in zip(found.xyxy, found.confidence, found.data["class_name"])
                     if n in VEHICLES]
            matched = set()
            for name, ref in truth["objects"].items():
                best = max(((iou(b, ref), i, s) for i, (b, s) in enumerate(boxes)), default=(0, None, 0))
                if best[0] >= 0.5:
                    hits[name] += 1
                    scores[name].append(best[2])
                    matched.add(best[1])
            false_alarms += len(boxes) - len(matched)
            frames += 1
        results[mode] = {
            "frames": frames,
            **{f"{name}_recall": round(hits[name] / frames, 3) for name in truth["objects"]},
            **{f"{name}_median_score": round(statistics.median(scores[name]), 3) if scores[name] else None
               for name in truth["objects"]},
            "false_vehicle_detections_per_frame": round(false_alarms / frames, 3),
        }
    for mode, r in results.items():
        print(f"{mode:>11}: " + ", ".join(f"{k}={v}" for k, v in r.items()))
    summary = {"model": "ssd_mobilenet_v2_coco", "min_score": min_score, **results}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main(*(float(a) for a in sys.argv[1:2]))
