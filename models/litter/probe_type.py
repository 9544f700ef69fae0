"""Probe (a measurement, not a model the edge uses): does a small classifier trained only to tell a
garbage pile from a spill, on close crops of the training families, type the objects of the
independent generators better than the litter model's own head does?

The litter model types 18-27 % of the cross objects it finds wrongly, and is as sure of a wrong type
as of a right one (HISTORY.md, "Where the misses come from"). A classifier sees one object, cut tight around
the box the litter model gives it, and has no boxes to learn, so all its capacity
goes to the type. This trains one on the CPU (torch from ``.venv-train``; a few minutes) and judges it.

- **Training crops**: every labelled object of a split written by ``make_dataset.py --randomise``
  (the three training families with ``--physical``), cut square at 1.2-1.6 times its larger side around
  a jittered centre, two cuts per object, 64 x 64. (Cut at 2-4.5 times, as a closer look shows a place,
  a network this small did not learn even its own training crops: 54 % right after four epochs.) **Validation crops** (the epoch is chosen on
  them): the same from the split's validation images (held-out backgrounds and texture family).
- **Judged on** the four independent generators' clips that ``make eval`` writes (cross, cross on
  other scenes, blind, mesh) and the own generator's: one frame per object, midway between its
  appearance and its removal, cut at 1.4 times its box. Beside it, on the crop a closer look would
  show (three times the box), the litter model's type (its best box over the object at its threshold, or "missed").
  Nothing of these sets chooses anything.

    .venv-train/bin/python models/litter/probe_type.py --dataset data/litter/typeprobe/dataset \\
        --out data/litter/typeprobe

    .venv/bin/python models/litter/probe_type.py --judge-only --out data/litter/typeprobe

The first (training) writes ``type.onnx`` and ``crops.npz`` under ``--out``; the second judges it in the
product's venv. Each prints its figures and a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SIDE = 64
CONTEXT = (1.2, 1.6)  # training crops' side over the object's larger side (the judged crops: their middle, 1.4)
JITTER = 0.05  # the training crop's centre moved by up to this share of the object's larger side
SETS = {"own": "clips", "cross": "cross/clips", "cross_other": "cross-other/clips", "blind": "blind/clips",
        "mesh": "mesh/clips"}


def square(image: np.ndarray, cx: float, cy: float, side: float) -> np.ndarray:
    """A square of ``side`` around (cx, cy), padded with the edge's grey where it leaves the picture,
    resized to SIDE.

    >>> picture = np.full((10, 20, 3), 200, np.uint8)
    >>> [float((square(picture, *at, 10) == 114).all(axis=2).mean()) for at in ((0, 0), (10, 5))]  # a corner: 3/4 out
    [0.75, 0.0]
    """
    return cv2.resize(padded(image, cx, cy, side)[0], (SIDE, SIDE), interpolation=cv2.INTER_AREA)


def padded(image: np.ndarray, cx: float, cy: float, side: float) -> tuple[np.ndarray, int, int]:
    """The square of ``side`` (at least 8) around (cx, cy), padded with the edge's grey where it leaves
    the picture, at full resolution, and where its corner lies in the picture."""
    side = max(8, int(round(side)))
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    pad = cv2.copyMakeBorder(image, side, side, side, side, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    return pad[y0 + side:y0 + 2 * side, x0 + side:x0 + 2 * side], x0, y0


def split_crops(folder: Path, rng: np.random.Generator, cuts: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for path in sorted(folder.glob("*.jpg")):
        label = folder.parent.parent / "labels" / folder.name / (path.stem + ".txt")
        lines = label.read_text().split("\n") if label.exists() else []
        image = None
        for line in filter(None, lines):
            k, cx, cy, bw, bh = map(float, line.split())
            if image is None:
                image = cv2.imread(str(path))
            h, w = image.shape[:2]
            big = max(bw * w, bh * h)
            if big < 6:
                continue
            for _ in range(cuts):
                jx, jy = rng.uniform(-JITTER, JITTER, 2) * big
                xs.append(square(image, cx * w + jx, cy * h + jy, big * rng.uniform(*CONTEXT)))
                ys.append(int(k))
    return np.array(xs), np.array(ys)


def clip_crops(folder: Path) -> tuple[list[np.ndarray], list[int], list[np.ndarray], list[str]]:
    """Per object of each clip: the crop at 1.4x its box (SIDE), its class, the 3x crop at full
    resolution with the box in it (for the litter model, as a closer look shows it) and a name."""
    from models.litter.probe_context import objects  # the product venv's: the edge's decoder

    small, labels, full, names = [], [], [], []
    for name, e, frame in objects(folder):
        if "box_px" not in e:
            continue
        x1, y1, x2, y2 = e["box_px"]
        cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, 3 * max(x2 - x1, y2 - y1)
        small.append(square(frame, cx, cy, side * sum(CONTEXT) / 2 / 3))
        labels.append(0 if e["type"] == "garbage" else 1)
        cut, x0, y0 = padded(frame, cx, cy, side)
        full.append((cut.copy(), np.array([x1 - x0, y1 - y0, x2 - x0, y2 - y0], float)))
        names.append(f"{name}:{e['zone']}:{e['type']}")
    return small, labels, full, names


def net():
    import torch.nn as nn

    def block(a, b, stride):
        return nn.Sequential(nn.Conv2d(a, b, 3, stride, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True))
    return nn.Sequential(block(3, 24, 1), block(24, 32, 2), block(32, 32, 1), block(32, 64, 2), block(64, 64, 1),
                         block(64, 128, 2), block(128, 128, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Dropout(0.3), nn.Linear(128, 2))


def augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flips, colour and light, blur, noise: float32 NCHW 0..1 (RGB)."""
    out = batch.astype(np.float32) / 255.0
    n = len(out)
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    grey = out.mean(axis=3, keepdims=True)
    sat = rng.uniform(0.3, 1.5, (n, 1, 1, 1))
    out = grey + (out - grey) * sat
    out = out * rng.uniform(0.8, 1.2, (n, 1, 1, 3)) * rng.uniform(0.6, 1.4, (n, 1, 1, 1)) + rng.uniform(-0.12, 0.12, (n, 1, 1, 1))
    blur = rng.random(n) < 0.25
    for i in np.flatnonzero(blur):
        out[i] = cv2.GaussianBlur(out[i], (0, 0), rng.uniform(0.5, 1.5))
    out = out + rng.normal(0, rng.uniform(0, 0.03), (n, 1, 1, 1)) * rng.standard_normal(out.shape)
    return np.ascontiguousarray(out.clip(0, 1)[..., ::-1].transpose(0, 3, 1, 2), np.float32)  # BGR -> RGB, NCHW


def prepared(batch: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((batch.astype(np.float32) / 255.0)[..., ::-1].transpose(0, 3, 1, 2))


def train(x: np.ndarray, y: np.ndarray, vx: np.ndarray, vy: np.ndarray, epochs: int, out: Path, seed: int) -> dict:
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = net()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=5e-4)
    steps = epochs * ((len(x) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    best, history = (-1.0, None), []
    vt = torch.from_numpy(prepared(vx))
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(x))
        t0 = time.time()
        for i in range(0, len(x), 64):
            idx = order[i:i + 64]
            xb = torch.from_numpy(augment(x[idx], rng))
            loss = torch.nn.functional.cross_entropy(model(xb), torch.from_numpy(y[idx]), label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            acc = float((model(vt).argmax(1).numpy() == vy).mean())
            seen = float((model(torch.from_numpy(prepared(x[:2000]))).argmax(1).numpy() == y[:2000]).mean())
        history.append(round(acc, 4))
        print(f"epoch {epoch + 1}: val right {acc:.3f}, training crops right {seen:.3f} ({time.time() - t0:.0f} s)",
              flush=True)
        if acc > best[0]:
            best = (acc, {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[1])
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 3, SIDE, SIDE), str(out / "type.onnx"), input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}}, opset_version=17,
                      dynamo=False)
    return {"val_right": round(best[0], 4), "val_history": history}


def class_shares(detector, crop: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """The litter model's two class scores at its best anchor whose box overlaps ``box`` (pixels of
    ``crop``) by IoU 0.5 or more, made to sum to one; None where no anchor does."""
    from models.litter import evaluate as ev
    from models.litter.probe_context import anchors

    boxes, scores = anchors(detector, crop)
    near = ev.iou(box, boxes) >= 0.5
    if not near.any():
        return None
    scores = scores[:, near]
    best = scores.max(axis=0).argmax()
    return scores[:, best] / max(float(scores[:, best].sum()), 1e-9)


def judge(onnx_path: Path, eval_root: Path, draw: int = 0) -> dict:
    import onnxruntime as ort

    from models.litter import evaluate as ev

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    defaults = ev.Detection()
    detector, threshold = ev.load_detector(defaults.litter_model), defaults.litter_min_score
    result = {}
    for name, sub in SETS.items():
        small, labels, full, names = clip_crops(eval_root / (sub + (f"-draw{draw}" if draw else "")))
        if not small:
            continue
        logits = session.run(None, {"image": prepared(np.array(small))})[0]
        probe = logits.argmax(1)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probe_shares = e / e.sum(axis=1, keepdims=True)
        model, together = [], []
        for (crop, box), shares in zip(full, probe_shares):
            dets = ev.listed_detections(detector.detect(crop, 0.05))
            called = ev.confused_as(box, dets, threshold)
            model.append(called)
            own = class_shares(detector, crop, box)
            together.append(int(((own if own is not None else shares) + shares).argmax()))
        labels = np.array(labels)
        found = np.array([m != "missed" for m in model])
        model_right = np.array([m == ev.CLASSES[k] for m, k in zip(model, labels)])
        probe_right = probe == labels
        together_right = np.array(together) == labels
        result[name] = {
            "objects": int(len(labels)), "probe_right": int(probe_right.sum()),
            "found_by_model": int(found.sum()), "model_right_found": int(model_right[found].sum()),
            "probe_right_found": int(probe_right[found].sum()),
            "together_right_found": int(together_right[found].sum()),
            "probe_confusion": {ev.CLASSES[k]: {ev.CLASSES[j]: int(((labels == k) & (probe == j)).sum()) for j in (0, 1)}
                                for k in (0, 1)},
            "wrong": [n for n, r in zip(names, probe_right) if not r],
            "model_wrong_found": [n for n, r, f in zip(names, model_right, found) if f and not r]}
        r = result[name]
        print(f"{name}: {r['objects']} objects; probe right {r['probe_right']}/{r['objects']}; on the "
              f"{r['found_by_model']} the litter model finds in the crop: litter model right {r['model_right_found']}, "
              f"probe right {r['probe_right_found']}, the two together right {r['together_right_found']}; "
              f"probe confusion {r['probe_confusion']}", flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", type=Path, default=ROOT / "data/litter/typeprobe/dataset")
    ap.add_argument("--out", type=Path, default=ROOT / "data/litter/typeprobe")
    ap.add_argument("--eval", type=Path, default=ROOT / "data/eval")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--judge-only", action="store_true")
    ap.add_argument("--draw", type=int, default=0, help="judge on this fresh draw's clips (make eval --draw K)")
    args = ap.parse_args()
    out = {}
    if not args.judge_only:
        cache = args.out / "crops.npz"
        if cache.exists():
            z = np.load(cache)
            x, y, vx, vy = z["x"], z["y"], z["vx"], z["vy"]
        else:
            rng = np.random.default_rng(args.seed)
            x, y = split_crops(args.dataset / "images/train", rng, 2)
            vx, vy = split_crops(args.dataset / "images/val", rng, 1)
            np.savez_compressed(cache, x=x, y=y, vx=vx, vy=vy)
        print(f"crops: {len(x)} training ({int((y == 1).sum())} spills), {len(vx)} validation", flush=True)
        out = {"train_crops": int(len(x)), "val_crops": int(len(vx))} | train(x, y, vx, vy, args.epochs, args.out, args.seed)
    if args.judge_only:
        out["judged"] = judge(args.out / "type.onnx", args.eval, args.draw)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
