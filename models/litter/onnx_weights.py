"""Weights to continue training from, taken out of a shipped ONNX file.

The training runs (``data/litter/runs``) are not kept in the repository, so a session without them
can only continue from what ships: ``litter_yolov8n_320.onnx``, exported from a fused YOLOv8n
(batch norm folded into each convolution) and quantised (int8 weights, int32 biases, each with its
scale). This reads every convolution's weight and bias back to float (``DequantizeLinear`` done by
hand: ``(q - zero_point) * scale`` along the channel axis) and puts them into an unfused YOLOv8n
built from its yaml: the weight into the convolution, the bias into its batch norm as the shift,
with a scale of 1 over a running variance of 1 - eps, so the module computes what the fused one did.
The result is what the shipped file computes up to its int8 rounding of the activations (measured by
``--check``), saved as an ultralytics checkpoint that ``train.py --start`` continues from.

    .venv-train/bin/python models/litter/onnx_weights.py models/litter/litter_yolov8n_320.onnx \
        data/litter/runs/start/from_onnx.pt --calibration data/litter/dataset/images/train \
        --check data/litter/dataset/images/val
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import numpy as np  # noqa: E402


def dequantised(path: Path) -> dict[str, np.ndarray]:
    """Every float tensor named like a module parameter (``model.2.cv1.conv.weight``), read back from
    the file's initializers and the ``DequantizeLinear`` nodes that turn them into floats."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    conv_inputs = {i for node in graph.node if node.op_type == "Conv" for i in node.input[1:]}
    out = {name: init[name].astype(np.float32) for name in conv_inputs if name in init}  # left in float
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in init:
            continue
        q, scale = init[node.input[0]].astype(np.float64), init[node.input[1]].astype(np.float64)
        zero = init[node.input[2]].astype(np.float64) if len(node.input) > 2 else np.zeros_like(scale)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if scale.ndim == 1 and q.ndim > 1:  # per channel: broadcast along the axis
            shape = [1] * q.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        name = node.output[0].removesuffix("_DequantizeLinear_Output")
        out[name] = ((q - zero) * scale).astype(np.float32)
    return out


def unfused_model(tensors: dict[str, np.ndarray], classes: dict[int, str]):
    """A YOLOv8n (ultralytics ``DetectionModel``) whose every layer computes what the fused file does."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel("yolov8n.yaml", nc=len(classes), verbose=False)
    modules = dict(model.named_modules())
    used = set()
    with torch.no_grad():
        for name, value in tensors.items():
            owner, _, field = name.rpartition(".")
            if owner.endswith(".conv") and owner.removesuffix(".conv") in modules \
                    and hasattr(modules[owner.removesuffix(".conv")], "bn"):
                block = modules[owner.removesuffix(".conv")]
                used.add(owner.removesuffix(".conv"))
                if field == "weight":
                    block.conv.weight.copy_(torch.from_numpy(value))
                else:  # the folded bias becomes the batch norm's shift
                    block.bn.weight.fill_(1.0)
                    block.bn.bias.copy_(torch.from_numpy(value))
                    block.bn.running_mean.zero_()
                    block.bn.running_var.fill_(1.0 - block.bn.eps)
            elif owner in modules and isinstance(getattr(modules[owner], field, None), torch.nn.Parameter):
                getattr(modules[owner], field).copy_(torch.from_numpy(value))
            else:
                raise ValueError(f"{name}: no such parameter in yolov8n.yaml with {len(classes)} classes")
    convs = [n for n, m in modules.items() if hasattr(m, "bn") and isinstance(m.bn, torch.nn.BatchNorm2d)]
    missing = [n for n in convs if n not in used]
    if missing:
        raise ValueError(f"the file has no weights for {missing[:5]}")
    model.names = dict(classes)
    return model


def calibrate_norms(model, images: list[Path], within=None) -> None:
    """Give each batch norm (of ``within``, a part of ``model``; all of it by default) the statistics its
    input really has over ``images``, and the scale and shift that undo them, so the block still computes
    ``conv(x) + bias`` in eval mode and nearly the same in training, where batch norm divides by the
    batch's own statistics. Left at mean 0 and variance 1, the first training batch would normalise every
    channel afresh and undo what the file had learnt."""
    import cv2
    import torch

    from train import IMGSZ, letterbox  # same folder

    norms = {n: m for n, m in (within or model).named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(name):
        def keep(_module, inputs):
            stats[name] = (inputs[0].mean(dim=(0, 2, 3)), inputs[0].var(dim=(0, 2, 3)))
        return keep

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in norms.items()]
    x = torch.from_numpy(np.concatenate([letterbox(cv2.imread(str(p)), IMGSZ) for p in images]))
    model.eval()
    with torch.no_grad():
        model(x)
        for name, norm in norms.items():
            mean, var = stats[name]
            var = var.clamp(min=1e-4)
            bias = norm.bias.clone()
            norm.running_mean.copy_(mean)
            norm.running_var.copy_(var - norm.eps).clamp_(min=1e-6)
            norm.weight.copy_(torch.sqrt(norm.running_var + norm.eps))
            norm.bias.copy_(bias + mean)
    for h in handles:
        h.remove()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def checkpoint(model, out: Path, source: str, stages: list[dict]) -> None:
    """An ultralytics checkpoint (``YOLO(out)`` loads it; ``train(pretrained=out)`` starts from it) saying where
    its weights came from (``source``) and the stages that made them (``stages``), for ``train.py``'s recipe."""
    import torch
    from ultralytics.cfg import DEFAULT_CFG_DICT

    out.parent.mkdir(parents=True, exist_ok=True)
    model.args = dict(DEFAULT_CFG_DICT)
    torch.save({"model": model.float(), "train_args": {}, "epoch": -1, "date": None,
                "source": source, "recipe_stages": stages}, out)


def save(model, out: Path, source: Path) -> None:
    """``checkpoint`` of weights read back from the shipped file ``source``, with its manifest's stages."""
    manifest = source.with_suffix(".manifest.json")
    stages = json.loads(manifest.read_text())["recipe"]["stages"] if manifest.exists() else []
    checkpoint(model, out, f"weights read back from {source.name} (sha256 {sha256(source)}) by onnx_weights.py", stages)


def check(model, onnx_path: Path, images: list[Path]) -> float:
    """The largest difference in class score between the rebuilt model and the ONNX file, over
    ``images`` (both fed the edge's own letterbox). The weights are read back exactly; what differs is the
    file's int8 rounding of every convolution's input (static QDQ: each of its QuantizeLinear nodes is on an
    activation), carried through some sixty layers: 0.12 on the shipped file over 16 validation images."""
    import cv2
    import onnxruntime as ort
    import torch

    from train import IMGSZ, letterbox  # same folder

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    model.eval()
    worst = 0.0
    for path in images:
        x = letterbox(cv2.imread(str(path)), IMGSZ)
        want = session.run(None, {"images": x})[0]
        with torch.no_grad():
            got = model(torch.from_numpy(x))[0].numpy()
        worst = max(worst, float(np.abs(want[:, 4:] - got[:, 4:]).max()))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("onnx", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--classes", default="garbage,spill")
    ap.add_argument("--calibration", type=Path, required=True,
                    help="a folder of training images to measure each convolution's output on")
    ap.add_argument("--check", type=Path, help="a folder of images to compare the two on")
    args = ap.parse_args()
    model = unfused_model(dequantised(args.onnx), dict(enumerate(args.classes.split(","))))
    calibrate_norms(model, sorted(args.calibration.glob("*.jpg"))[:64])
    if args.check:
        images = sorted(args.check.glob("*.jpg"))[:16]
        print(f"largest class-score difference from {args.onnx.name} on {len(images)} images: "
              f"{check(model, args.onnx, images):.4f}")
    save(model, args.out, args.onnx)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
