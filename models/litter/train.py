"""Train the garbage/spill detector with ultralytics, export ONNX, quantise to static int8.

Runs in the training venv (``.venv-train``: torch==2.14.1 torchvision==0.29.1 ultralytics,
see ``build_litter_model.sh``); the product itself never imports torch or ultralytics.

    YOLO_OFFLINE=1 .venv-train/bin/python models/litter/train.py --epochs 40 --hours 1.0
    YOLO_OFFLINE=1 .venv-train/bin/python models/litter/train.py --stage 2 --epochs 8 --hours 0.4
    YOLO_OFFLINE=1 .venv-train/bin/python models/litter/train.py --stage 3 --epochs 24 --hours 1.25
    YOLO_OFFLINE=1 .venv-train/bin/python models/litter/train.py --stage 4 --epochs 28 --hours 1.4
    YOLO_OFFLINE=1 .venv-train/bin/python models/litter/train.py --stage 5 --epochs 30 --hours 1.25 \
        --data data/litter/dataset5/dataset.yaml  # make_dataset.py --physical 0.4 --out data/litter/dataset5
    # without stage 4's run at hand: from the shipped file's weights (onnx_weights.py)
    YOLO_OFFLINE=1 .venv-train/bin/python models/litter/train.py --stage 5 ... --start data/litter/runs/start/from_onnx.pt
    YOLO_OFFLINE=1 .venv-train/bin/python models/litter/train.py --stage 6 --epochs 30 --hours 1.15 \
        --data data/litter/dataset6/dataset.yaml  # --seed 11 --spills 0.6 --physical 0.5 --val-physical 0.4

YOLOv8n is built from its yaml (no pretrained download), trained at 320 px on the CPU
(a GPU, where one is visible, is used and only makes it faster), exported to ONNX
(opset 17, dynamic batch; the edge feeds 320x320) from the stage whose best epoch scored
highest on validation, then quantised with onnxruntime's static QDQ int8 using
64 training images as calibration. Both files and the recipe go to
``data/litter/runs/export/``; ``write_manifest.py`` (product venv) measures them on the
held-out set and ships the int8 file when it keeps accuracy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NAME = "litter_yolov8n_320"
RUNS = {1: "train", 2: "train2", 3: "train3", 4: "train4", 5: "train5", 6: "train6", 7: "train7"}
# what each stage changes in ultralytics' schedule; stages 2 and 3 start from the previous stage's best weights.
# Stage 2 restarts at full rate without warm-up (validation mAP falls for an epoch or two, then passes
# stage 1); stage 3, for a longer run, warms up an epoch at a tenth of that rate (AdamW's moments start
# again at zero: at full rate the first epoch undoes what was learnt) and decays it tenfold; stage 4
# does the same again from a lower rate (stage 3's validation mAP was still rising at its end), and stage 5
# again on a second training set with a third drawing family (physical.py), and stage 6 again on a third set
# with more spills and a validation split that has physical.py's objects too. Stage 7 continues a GPU run's
# best weights (``device_train.sh`` with START) on a fresh set, as stage 4 did.
SCHEDULE = {1: {"warmup_epochs": 3}, 2: {"warmup_epochs": 0},
            3: {"warmup_epochs": 1, "optimizer": "AdamW", "lr0": 0.0008, "lrf": 0.1},
            4: {"warmup_epochs": 1, "optimizer": "AdamW", "lr0": 0.0005, "lrf": 0.1},
            5: {"warmup_epochs": 1, "optimizer": "AdamW", "lr0": 0.0003, "lrf": 0.1},
            6: {"warmup_epochs": 1, "optimizer": "AdamW", "lr0": 0.0003, "lrf": 0.1},
            7: {"warmup_epochs": 1, "optimizer": "AdamW", "lr0": 0.0005, "lrf": 0.1}}
IMGSZ = 320


def letterbox(image: np.ndarray, size: int) -> np.ndarray:
    """The same pre-processing as edge.detector.YoloRaw: letterbox, RGB, 0..1, NCHW."""
    import cv2

    h, w = image.shape[:2]
    s = size / max(h, w)
    resized = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((size, size, 3), 114, np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    return np.ascontiguousarray(canvas[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255


def first_convolution(model: Path) -> list[str]:
    """The name of the convolution that reads the model's input picture (a list, for nodes_to_exclude)."""
    import onnx

    graph = onnx.load(str(model)).graph
    picture = graph.input[0].name
    return [n.name for n in graph.node if n.op_type == "Conv" and n.input[0] == picture][:1]


def quantise(fp32: Path, int8: Path, calibration: list[Path]) -> None:
    import cv2
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{"images": letterbox(cv2.imread(str(p)), IMGSZ)} for p in calibration])

        def get_next(self):
            return next(self._it, None)

    pre = int8.with_suffix(".pre.onnx").resolve()
    fp32, int8 = fp32.resolve(), int8.resolve()
    calibration = [p.resolve() for p in calibration]
    # onnxruntime leaves its scratch files (sym_shape_infer_temp.onnx, <uuid>.data) in the working folder
    with tempfile.TemporaryDirectory(prefix="xl-quant-") as scratch, contextlib.chdir(scratch):
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        # convolutions only: the head's last Concat mixes box pixels (0..320) with class scores (0..1),
        # and one uint8 scale for both turns every score into 0 or 1 (measured: mAP 0.55 -> 0.0); and not
        # the first, on the picture itself: quantised, it cost the GPU files 0.03-0.04 of validation mAP,
        # kept in float none, at the same speed (HISTORY.md, "int8 without the first convolution")
        quantize_static(str(pre), str(int8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv"], nodes_to_exclude=first_convolution(pre))
    pre.unlink()


def train(args, device: str) -> None:
    """Stage 1 builds YOLOv8n from its yaml (or starts from ``--start``: ``coco_backbone.py``'s backbone
    learnt on real photographs); ``--stage 2`` (and 3) continue from the previous stage's best weights
    with a fresh schedule (``SCHEDULE``; on a CPU one stage's hour is not enough)."""
    from ultralytics import YOLO

    previous = args.start or (args.workdir / RUNS[args.stage - 1] / "weights/best.pt" if args.stage > 1 else None)
    model = YOLO(str(previous)) if previous else YOLO("yolov8n.yaml")
    run = args.workdir / RUNS[args.stage]
    run.mkdir(parents=True, exist_ok=True)
    if (args.data.parent / "recipe.json").exists():  # what this stage's images were composed with
        shutil.copy(args.data.parent / "recipe.json", run / "data.json")
    if args.start:  # where the weights came from, for the recipe
        import torch

        ckpt = torch.load(str(args.start), map_location="cpu", weights_only=False)
        (run / "start.json").write_text(json.dumps(started_from(args.start, ckpt), indent=2) + "\n")
    extra = {"time": args.hours} if args.hours else {}
    # ``pretrained`` is the only way ultralytics keeps given weights: False would start from scratch
    model.train(data=str(args.data), epochs=args.epochs, imgsz=IMGSZ, batch=args.batch, device=device,
                workers=args.workers, seed=args.seed, deterministic=True, pretrained=bool(previous) and str(previous),
                amp=False, plots=False, cache=args.cache or False,
                project=str(args.workdir), name=RUNS[args.stage], exist_ok=True,
                close_mosaic=max(1, args.epochs // 6), fliplr=0.5, degrees=0.0, scale=0.4, mosaic=1.0,
                patience=1000, verbose=False, freeze=args.freeze or None, **SCHEDULE[args.stage], **extra)


def results(run: Path) -> tuple[list[str], list[list[str]]]:
    """The header and rows of a run's results.csv."""
    rows = [[v.strip() for v in line.split(",")] for line in (run / "results.csv").read_text().strip().splitlines()]
    return rows[0], rows[1:]


def validation(run: Path) -> tuple | None:
    """What a run's validation split was composed with (its ``data.json``), None where unrecorded."""
    if not (run / "data.json").exists():
        return None
    data = json.loads((run / "data.json").read_text())
    return tuple(data.get(k, 0.0) for k in ("val_seed", "val", "randomise", "val_physical"))


def best_stage(workdir: Path) -> int:
    """The stage whose best epoch has the highest fitness as ultralytics measures it for best.pt
    (0.1 mAP@0.5 + 0.9 mAP@0.5:0.95 on validation): a later stage is not always better. Only stages
    validated on the same split as the last one are compared: figures on other images say nothing."""
    def fitness(stage: int) -> float:
        header, rows = results(workdir / RUNS[stage])
        i, j = header.index("metrics/mAP50(B)"), header.index("metrics/mAP50-95(B)")
        return max(0.1 * float(r[i]) + 0.9 * float(r[j]) for r in rows)

    done = [s for s in RUNS if (workdir / RUNS[s] / "weights/best.pt").exists()]
    last = validation(workdir / RUNS[max(done)])
    return max((s for s in done if validation(workdir / RUNS[s]) == last), key=fitness)


def relative(path: str | Path) -> str:
    """A path inside the repository as the repository names it (recipes are read on other machines)."""
    path = Path(path)
    return str(path.relative_to(ROOT)) if path.is_absolute() and path.is_relative_to(ROOT) else str(path)


def started_from(start: Path, ckpt: dict) -> dict:
    """What ``--start``'s weights were made by, for ``start.json``. A file ``onnx_weights.py`` or
    ``coco_backbone.py`` wrote says so itself (its ``source`` and ``recipe_stages``). An earlier run's
    ``best.pt`` (``<workdir>/<run>/weights/best.pt``) says nothing: ultralytics keeps no source, so that
    run's own stages are read from its folder, and the first of them that started from a file names it."""
    if ckpt.get("source") is not None or ckpt.get("recipe_stages"):
        return {"weights": str(start), "source": ckpt.get("source"), "earlier_stages": ckpt.get("recipe_stages", [])}
    run = Path(start).resolve().parent.parent
    stage = next((s for s, name in RUNS.items() if name == run.name), None)
    if Path(start).name != "best.pt" or stage is None or not (run / "results.csv").exists():
        return {"weights": str(start), "source": None, "earlier_stages": []}
    earlier = recipe_stages(run.parent, stage)
    origin = next((s["start"] for s in earlier if "start" in s), None)
    source = f"stage {stage}'s best epoch (train.py, {relative(run)})" + (
        f", itself started from {origin['weights']}: {origin['source']}" if origin else ", itself from scratch")
    return {"weights": str(start), "source": source, "earlier_stages": earlier}


def recipe_stages(workdir: Path, chosen: int) -> list[dict]:
    """The stages that made stage ``chosen``'s weights, for the recipe: each run's schedule and last
    epoch; a stage started from a file (``--start``) says so (``start.json``), and the stages before it,
    run elsewhere, are the ones that file's manifest recorded."""
    stages: list[dict] = []
    for stage in range(1, chosen + 1):
        run = workdir / RUNS[stage]
        if not (run / "results.csv").exists():
            continue
        header, rows = results(run)
        entry = {"stage": stage, "epochs_run": len(rows), "schedule": SCHEDULE[stage],
                 "last_epoch": dict(zip(header, rows[-1]))}
        if frozen := run_settings(workdir, stage, Path(), 0, 0).get("freeze"):
            entry["frozen_layers"] = frozen  # train.py --freeze: these layers kept as they started
        if (run / "data.json").exists():
            entry["data"] = json.loads((run / "data.json").read_text())
        if (run / "start.json").exists():
            start = json.loads((run / "start.json").read_text())
            stages = [s for s in start.pop("earlier_stages") if s["stage"] < stage]
            entry["start"] = start
        stages.append(entry)
    return stages


def run_settings(workdir: Path, chosen: int, data: Path, batch: int, seed: int) -> dict:
    """What stage ``chosen`` was trained with, for the recipe and the calibration images: its run's own
    record (ultralytics' ``args.yaml``: the data, batch and seed it was given), or the given ones where
    the run has none. ``--export-only`` is called without the training's arguments (a later session, a
    GPU run fetched back): the recipe it wrote took its own defaults for the run's.

    >>> import tempfile
    >>> work = Path(tempfile.mkdtemp()); (work / RUNS[2]).mkdir()
    >>> _ = (work / RUNS[2] / "args.yaml").write_text("data: /d/six/dataset.yaml\\nbatch: 16\\nseed: 3\\n")
    >>> run_settings(work, 2, Path("/d/one/dataset.yaml"), 32, 7)
    {'data': PosixPath('/d/six/dataset.yaml'), 'batch': 16, 'seed': 3, 'freeze': None}
    >>> run_settings(work, 1, Path("/d/one/dataset.yaml"), 32, 7)["batch"]
    32
    """
    import yaml

    record = workdir / RUNS[chosen] / "args.yaml"
    ran = (yaml.safe_load(record.read_text()) or {}) if record.exists() else {}
    return {"data": Path(ran.get("data") or data), "batch": ran.get("batch", batch), "seed": ran.get("seed", seed),
            "freeze": ran.get("freeze")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / "data/litter/dataset/dataset.yaml")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workdir", type=Path, default=ROOT / "data/litter/runs")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workers", type=int, default=2, help="data-loading processes (2 on this 2-core machine; "
                    "12 on the lent GPU machine's 16 cores, device_train.sh)")
    ap.add_argument("--recipe-command", default="models/build_litter_model.sh",
                    help="the command the recipe names as the one that made the model")
    ap.add_argument("--cache", choices=("ram", "disk"), help="keep the decoded training images (ultralytics' "
                    "cache): ram on the lent GPU machine, where decoding, not the GPU, bounds an epoch")
    ap.add_argument("--hours", type=float, default=0.0, help="train for this long instead of --epochs")
    ap.add_argument("--stage", type=int, choices=tuple(RUNS), default=1,
                    help="1: from scratch; 2 to 7: continue from the previous stage's best weights (7: from --start)")
    ap.add_argument("--start", type=Path, help="continue from these weights (an ultralytics .pt, e.g. from "
                    "onnx_weights.py, or coco_backbone.py's for stage 1) instead of the previous stage's best")
    ap.add_argument("--freeze", type=int, default=0, help="keep the model's first N layers as they start "
                    "(1: coco_backbone.py's backbone learnt on real photographs; only the neck and head learn)")
    ap.add_argument("--export-only", action="store_true", help="export and quantise the best stage's best.pt")
    args = ap.parse_args()
    # ultralytics puts a relative project folder under its own runs/detect/, where best_stage() does not look
    args.workdir = args.workdir.resolve()

    import torch
    from ultralytics import YOLO

    device = "0" if torch.cuda.is_available() else "cpu"
    if not args.export_only:
        train(args, device)
    chosen = best_stage(args.workdir)
    best = args.workdir / RUNS[chosen] / "weights/best.pt"
    trained = YOLO(str(best))
    # dynamic axes: the edge runs all tiles of all cameras in one batch
    fp32 = Path(trained.export(format="onnx", imgsz=IMGSZ, opset=17, dynamic=True, simplify=True, device="cpu"))

    ran = run_settings(args.workdir, chosen, args.data, args.batch, args.seed)
    dataset = ran["data"].parent
    out = args.workdir / "export"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(fp32, out / f"{NAME}.fp32.onnx")
    quantise(out / f"{NAME}.fp32.onnx", out / f"{NAME}.int8.onnx", sorted((dataset / "images/train").glob("*.jpg"))[:64])
    stages = recipe_stages(args.workdir, chosen)
    started = [st["start"] for st in stages if "start" in st]  # the run's record, not this call's
    recipe = {
        "ultralytics": __import__("ultralytics").__version__, "torch": torch.__version__,
        "model": "yolov8n.yaml (from scratch, no pretrained weights)" if not started
        else f"{relative(trained.model.yaml.get('yaml_file', 'yolov8n.yaml'))}, started from {started[0]['weights']}: {started[0]['source']}",
        "imgsz": IMGSZ,
        "stages": stages, "command": args.recipe_command,
        "batch": ran["batch"], "seed": ran["seed"], "device": device,
        "data": json.loads((dataset / "recipe.json").read_text()) if (dataset / "recipe.json").exists() else None,
        "train_images": len(list((dataset / "images/train").glob("*.jpg"))),
        "val_images": len(list((dataset / "images/val").glob("*.jpg"))),
    }
    (out / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
    print(f"exported {out}/{NAME}.fp32.onnx and .int8.onnx; recipe in {out}/recipe.json")


if __name__ == "__main__":
    main()
