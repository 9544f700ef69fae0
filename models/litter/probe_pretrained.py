"""Probe (a measurement, not a model the edge uses): do features learnt on real photographs carry
garbage and spills across generators better than the litter model learnt from composed images?

The only real-photograph weights here are the vehicle model's (``models/vehicle``, SSD-MobileNet-v2
trained on COCO). This takes its MobileNetV2 feature maps at three depths (mean and max over space)
for a crop around each labelled object (1.6 times its larger side, at least 32 px) and for as many
crops of bare ground of the same sizes away from the objects, fits an L2-regularised logistic
regression on the *own* generator's stills (``make eval``'s own and randomised test splits; the L2
weight chosen by fitting on the first and judging on the second) and judges it on the *cross*
generator's stills, which no part of it saw:

- litter against bare ground: the area under the ROC curve, and how many garbage piles and spills
  score above the bare-ground crop at 1, 5 and 10 % of the ground called litter;
- garbage against spill: on every cross object, and on those the litter model itself finds at its
  threshold, beside the litter model's own type on those.

Runs in the product's venv with the ``onnx`` package added (``.venv/bin/pip install onnx``; it
exposes the feature maps, and the edge never needs it), on the sets ``make eval`` writes under
``data/eval``. Prints its figures and a final JSON line. About three minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from models.litter import evaluate as ev  # noqa: E402  (the litter model as make eval runs it)

VEHICLE = ROOT / "models/vehicle/ssd_mobilenet_v2_coco.onnx"
LAYERS = [f"FeatureExtractor/MobilenetV2/{name}/Relu6"
          for name in ("expanded_conv_6/expand", "expanded_conv_13/expand", "Conv_1")]
CONTEXT = 1.6  # crop side over the object's larger side
RIDGES = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)  # the L2 weights tried, on standardised features


def backbone() -> ort.InferenceSession:
    """The vehicle model with its MobileNetV2 feature maps (``LAYERS``, uint8 NHWC) as outputs."""
    import onnx  # only here: the edge never needs it

    model = onnx.load(str(VEHICLE))
    for name in LAYERS:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.UINT8, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def features(session: ort.InferenceSession, crops: list[np.ndarray]) -> np.ndarray:
    """Per crop: mean and max over space of each layer, concatenated."""
    name = session.get_inputs()[0].name
    rows = []
    for crop in crops:
        maps = session.run(LAYERS, {name: cv2.resize(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), (300, 300))[None]})
        rows.append(np.concatenate([f(m.astype(np.float32), axis=(0, 1, 2)) for m in maps for f in (np.mean, np.max)]))
    return np.array(rows)


def square(cx: float, cy: float, side: float, w: int, h: int) -> tuple[int, int, int, int]:
    x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    return x0, y0, int(min(w, cx + side / 2)), int(min(h, cy + side / 2))


def crops(root: Path, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray], list[tuple]]:
    """Object crops with their class (0 garbage, 1 spill), ground crops, and per object (image path,
    its box in pixels) for running the litter model on the same objects."""
    rng = np.random.default_rng(seed)
    things, labels, ground, where = [], [], [], []
    for path, lines in ev.yolo_items(root / "images" / "test"):
        image = cv2.imread(str(path))
        h, w = image.shape[:2]
        boxes, sides = [], []
        for line in lines:
            k, cx, cy, bw, bh = map(float, line.split())
            box = ((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h)
            side = max(32.0, CONTEXT * max(bw * w, bh * h))
            x0, y0, x1, y1 = square(cx * w, cy * h, side, w, h)
            boxes.append(box)
            sides.append(side)
            if x1 - x0 >= 8 and y1 - y0 >= 8:
                things.append(image[y0:y1, x0:x1])
                labels.append(int(k))
                where.append((path, np.array(box)))
        for side in sides:  # one crop of bare ground per object, the same size, in the lower two thirds
            side = min(side, w - 1, h - 1)
            for _ in range(20):
                x0, y0 = rng.uniform(0, w - side), rng.uniform(min(h / 3, h - side), h - side)
                if all(x0 + side < b[0] or x0 > b[2] or y0 + side < b[1] or y0 > b[3] for b in boxes):
                    ground.append(image[int(y0):int(y0 + side), int(x0):int(x0 + side)])
                    break
    return things, np.array(labels), ground, where


def fit(x: np.ndarray, y: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """L2-regularised logistic regression over standardised features, by Newton's method: (mean,
    scale, weights with bias). ``ridge`` weighs the squared weights against the summed log loss."""
    mean, scale = x.mean(0), x.std(0) + 1e-6
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    target = (y > 0).astype(float)
    weights = np.zeros(z.shape[1])
    penalty = ridge * np.eye(z.shape[1])
    penalty[-1, -1] = 0.0  # the bias is free
    for _ in range(25):
        p = 1 / (1 + np.exp(-np.clip(z @ weights, -30, 30)))
        step = np.linalg.solve(z.T @ (z * (p * (1 - p))[:, None]) + penalty + 1e-9 * np.eye(z.shape[1]),
                               z.T @ (p - target) + penalty @ weights)
        weights -= step
        if np.abs(step).max() < 1e-6:
            break
    return mean, scale, weights


def chosen_fit(parts: list[tuple[np.ndarray, np.ndarray]], judge) -> tuple[tuple, float]:
    """The ridge weight that does best (``judge(scores, y)``) fitted on the first part and judged on the
    second, then the fit on both with it."""
    (x1, y1), (x2, y2) = parts
    ridge = max(RIDGES, key=lambda r: judge(score(fit(x1, y1, r), x2), y2))
    return fit(np.vstack([x1, x2]), np.r_[y1, y2], ridge), ridge


def score(model: tuple[np.ndarray, np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
    mean, scale, weights = model
    return np.hstack([(x - mean) / scale, np.ones((len(x), 1))]) @ weights


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """The chance that a positive scores above a negative (ties count half).

    >>> auc(np.array([2.0, 3.0]), np.array([1.0, 2.0]))
    0.875
    """
    above = (positive[:, None] > negative[None, :]).mean() + 0.5 * (positive[:, None] == negative[None, :]).mean()
    return round(float(above), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval", type=Path, default=ROOT / "data/eval", help="where make eval wrote its sets")
    args = parser.parse_args()
    session = backbone()
    train = [crops(args.eval / name) for name in ("testset", "testset-randomised")]
    things, labels, ground, where = crops(args.eval / "cross" / "stills")
    f_things = [features(session, t) for t, _, _, _ in train]
    f_ground = [features(session, g) for _, _, g, _ in train]
    litter, litter_ridge = chosen_fit(
        [(np.vstack([t, g]), np.r_[np.ones(len(t)), np.zeros(len(g))]) for t, g in zip(f_things, f_ground)],
        lambda s, y: auc(s[y > 0], s[y == 0]))
    kind, kind_ridge = chosen_fit([(t, y) for t, (_, y, _, _) in zip(f_things, train)],
                                  lambda s, y: float(np.mean((s > 0) == (y > 0))))
    x_things, x_ground = features(session, things), features(session, ground)
    s_things, s_ground = score(litter, x_things), score(litter, x_ground)
    out = {"train_objects": sum(map(len, f_things)), "train_ground": sum(map(len, f_ground)),
           "ridge": {"litter": litter_ridge, "type": kind_ridge},
           "cross_objects": int(len(things)), "cross_ground": int(len(ground)),
           "litter_vs_ground_auc": auc(s_things, s_ground), "recall_at_ground_called": {}}
    for share in (0.01, 0.05, 0.10):
        cut = float(np.quantile(s_ground, 1 - share))
        out["recall_at_ground_called"][f"{share:.0%}"] = {
            c: round(float(np.mean(s_things[labels == i] > cut)), 3) for i, c in enumerate(ev.CLASSES)}
    spill = score(kind, x_things) > 0
    out["type_right_all"] = round(float(np.mean(spill == (labels == 1))), 3)
    # the litter model's type on the objects it finds (IoU >= 0.5 at its threshold), beside the probe's there
    defaults = ev.Detection()  # the edge's litter model and threshold, as make eval scores them
    detector, threshold = ev.load_detector(defaults.litter_model), defaults.litter_min_score
    listed: dict[Path, list] = {}
    model_right, probe_right = [], []
    for i, (path, box) in enumerate(where):
        if path not in listed:
            listed[path] = ev.listed_detections(detector.detect(cv2.imread(str(path)), 0.05))
        called = ev.confused_as(box, listed[path], threshold)
        if called != "missed":
            model_right.append(called == ev.CLASSES[labels[i]])
            probe_right.append(bool(spill[i]) == (labels[i] == 1))
    out["found_by_model"] = len(model_right)
    out["type_right_found"] = {"litter_model": round(float(np.mean(model_right)), 3) if model_right else None,
                               "probe": round(float(np.mean(probe_right)), 3) if probe_right else None}
    print(f"probe: fitted on {out['train_objects']} own-generator objects and {out['train_ground']} ground crops; "
          f"judged on {out['cross_objects']} cross objects and {out['cross_ground']} ground crops")
    print(f"litter vs ground: AUC {out['litter_vs_ground_auc']}; recall with 1/5/10 % of ground called litter: "
          + "; ".join(f"{k} " + ", ".join(f"{c} {v}" for c, v in r.items())
                      for k, r in out["recall_at_ground_called"].items()))
    print(f"garbage vs spill: right on {out['type_right_all']} of all cross objects; on the {out['found_by_model']} "
          f"the litter model finds at {threshold}: litter model {out['type_right_found']['litter_model']}, "
          f"probe {out['type_right_found']['probe']}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
