#!/usr/bin/env bash
# Rebuilds models/litter/litter_yolov8n_320.onnx and its manifest from scratch:
# backgrounds (Debian packages, PyPI wheels) -> composed training set -> YOLOv8n trained from
# its yaml -> ONNX -> static int8. Training runs in its own venv (.venv-train) with
# torch==2.14.1 torchvision==0.29.1 (the pair that imports here; see ../shared/INFRA.md);
# the product's venv never gets torch. The training set is composed with domain randomisation and
# hard negatives (make_dataset.py --randomise; RANDOMISE=0 draws synth.py's objects only, as the model
# shipped before issue 10). On the CPU, HOURS (1.0), HOURS2 (0.4), HOURS3 (1.25) and HOURS4 (1.4) bound
# the four training stages (2-4 continue from the previous stage's best weights; HOURS3=0 skips stages 3
# and 4, HOURS4=0 stage 4); a GPU only makes them faster. HOURS5 (0: off) adds a fifth stage on a second
# training set where 40 % of the objects are drawn by models/litter/physical.py (same validation images);
# HOURS6 (0: off; needs HOURS5) a sixth on a third set (more spills, half the objects physical) whose
# validation split has physical objects too: the epoch, the stage and the edge's thresholds are then chosen there.
# Without stages 1-4's runs at hand, a stage can start from the shipped file's weights read back out of it:
# models/litter/onnx_weights.py, then train.py --start (see models/litter/HISTORY.md). On a lent GPU machine (the session tool `device`),
# models/litter/device_train.sh composes and trains there in one command (see its comment). EXTRA_DATA="dir1 dir2": folders written by `xueliang dataset export`,
# their garbage/spill frames added to training and validation in the split each export gave them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export YOLO_OFFLINE=1
if [ ! -x .venv-train/bin/python ]; then
  python3 -m venv .venv-train
  .venv-train/bin/pip install -q torch==2.14.1 torchvision==0.29.1 ultralytics==8.4.190 onnx onnxslim onnxruntime
fi
bash models/litter/fetch_backgrounds.sh
rm -rf data/litter/dataset data/litter/dataset5 data/litter/dataset6 data/litter/runs
val=data/litter/dataset/images/val  # the split the exported stage was validated on
# shellcheck disable=SC2086  # EXTRA_DATA is a list of folders, split on spaces
.venv/bin/python models/litter/make_dataset.py --train 1500 --val 300 --seed 7 \
  $([ "${RANDOMISE:-1}" = 0 ] || echo --randomise) \
  ${EXTRA_DATA:+--extra $EXTRA_DATA}
.venv-train/bin/python models/litter/train.py --epochs 40 --hours "${HOURS:-1.0}"
.venv-train/bin/python models/litter/train.py --stage 2 --epochs 8 --hours "${HOURS2:-0.4}"
if [ "${HOURS3:-1.25}" != 0 ]; then
  .venv-train/bin/python models/litter/train.py --stage 3 --epochs 24 --hours "${HOURS3:-1.25}"
  if [ "${HOURS4:-1.4}" != 0 ]; then
    .venv-train/bin/python models/litter/train.py --stage 4 --epochs 28 --hours "${HOURS4:-1.4}"
    if [ "${HOURS5:-0}" != 0 ]; then
      .venv/bin/python models/litter/make_dataset.py --train 1500 --val 300 --seed 7 --val-seed 8 --randomise \
        --physical 0.4 --out data/litter/dataset5
      .venv-train/bin/python models/litter/train.py --stage 5 --epochs 30 --hours "${HOURS5}" \
        --data data/litter/dataset5/dataset.yaml
      if [ "${HOURS6:-0}" != 0 ]; then
        .venv/bin/python models/litter/make_dataset.py --train 1500 --val 300 --seed 11 --val-seed 8 --randomise \
          --spills 0.6 --physical 0.5 --val-physical 0.4 --out data/litter/dataset6
        .venv-train/bin/python models/litter/train.py --stage 6 --epochs 30 --hours "${HOURS6}" \
          --data data/litter/dataset6/dataset.yaml
        val=data/litter/dataset6/images/val
      fi
    fi
  fi
fi
.venv/bin/python models/litter/write_manifest.py --val "$val"
