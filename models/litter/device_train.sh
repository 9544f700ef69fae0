#!/usr/bin/env bash
# Trains the garbage/spill detector on a lent GPU machine (the session tool `device`: one H200, 16
# cores, Python 3.12 with torch, torchvision, onnxruntime, OpenCV and PyYAML but no ultralytics and no
# PyAV, nothing reachable from it, 64 MiB of working tree carried, 15 minutes of device time a session,
# 10 a command). Three steps; only the second runs there:
#
#   bash models/litter/device_train.sh prepare
#       here: the wheels that machine lacks into .whl/ (ultralytics 8.4.190 and what it needs beyond the
#       machine's packages; polars 0.20.31, whose wheel is half the size of today's, so that the repo,
#       the wheels and the backgrounds stay under 64 MiB), and the backgrounds (fetch_backgrounds.sh)
#   run(command="bash models/litter/device_train.sh train", carry=[".whl", "data/litter/backgrounds"],
#       timeout_s=600)
#       there: composes the training set on all 16 cores (make_dataset.py --shards: 8,000 images in under a
#       minute), trains YOLOv8n from its yaml until BUDGET (540 s from the command's start, less the
#       EXPORT_S the export needs: the machine's start, this command and the transfers fit the session's
#       15 minutes once, with a little over), exports ONNX, quantises, and leaves in $OUT the fp32 and
#       int8 files, recipe.json, results.csv, the log and the best weights
#   bash models/litter/device_train.sh finish DIR
#       here, DIR being the run's files_at: the files into data/litter/runs/export/, the same
#       validation split composed here (only it: a minute, not five), write_manifest.py (installs the
#       chosen file under models/litter/ and chooses its thresholds); then `make eval` says whether it
#       ships (HISTORY.md's rules; `git checkout models/litter` puts the shipped file back when it does not)
#
# The training set follows the last CPU stages' lesson (HISTORY.md): all three drawing families from the
# first epoch (--physical) and a validation split with the third family's objects too (--val-physical),
# so that the best epoch and the thresholds are chosen on what the model was trained to see. On the CPU
# the images were few (1,200 to 2,400) because an epoch cost minutes; there, decoding and augmenting bound
# an epoch, not the GPU, so the images are many and kept decoded in memory (train.py --cache ram). TRAIN,
# SHARDS, VAL, PHYSICAL, VAL_PHYSICAL, SPILLS, SLABS (make_dataset.py --slabs), SEED, BUDGET, EXPORT_S,
# EPOCHS (what ultralytics plans the closing epochs without mosaic by; BUDGET decides when it stops),
# BATCH and WORKERS change it; START, an ultralytics .pt carried along, continues from those weights
# (train.py's stage 7) instead of from the yaml (coco_backbone.py's start too: the architecture is the .pt's), FREEZE
# keeps its first N layers as they start (1: that backbone learnt on real photographs); PY is the Python that runs it (python3 there). Tried here on the CPU at a small scale
# (TRAIN=64 SHARDS=4 VAL=10 BUDGET=90 WORKERS=2 BATCH=16 PY=.venv-train/bin/python), and twice there
# (2026-12-04): with the defaults (composed in 73 s with the install, 54 epochs, done in 497 s; the
# machine's start and the transfers about 40 s more), then with START, SEED=17, SPILLS=0.65, BUDGET=245,
# EXPORT_S=40 (11 epochs, 247 s); what they made and why neither shipped: HISTORY.md, "A first GPU-trained
# candidate" and the section after it.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
TRAIN="${TRAIN:-8000}" SHARDS="${SHARDS:-16}" VAL="${VAL:-300}" PHYSICAL="${PHYSICAL:-0.4}"
VAL_PHYSICAL="${VAL_PHYSICAL:-0.4}" SPILLS="${SPILLS:-0.5}" SLABS="${SLABS:-0}" SEED="${SEED:-7}" BUDGET="${BUDGET:-540}"
EXPORT_S="${EXPORT_S:-80}" EPOCHS="${EPOCHS:-60}" BATCH="${BATCH:-64}" WORKERS="${WORKERS:-12}"
compose() {  # $1: the Python; the same images wherever it runs with the same numpy and OpenCV
  "$1" models/litter/make_dataset.py --train "$TRAIN" --shards "$SHARDS" --val "$VAL" --seed "$SEED" --val-seed 8 \
    --randomise --physical "$PHYSICAL" --val-physical "$VAL_PHYSICAL" --spills "$SPILLS" --slabs "$SLABS" --out data/litter/dataset
}
case "${1:-}" in
  prepare)
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    rm -rf .whl
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
      ultralytics==8.4.190 ultralytics-thop==2.2.3 ultralytics-platform==0.1.99 polars==0.20.31 onnxslim==0.1.98
    [ -n "$(ls -A data/litter/backgrounds/train 2>/dev/null)" ] || bash models/litter/fetch_backgrounds.sh
    tree=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
    extra=$(du -cb .whl data/litter/backgrounds | tail -1 | cut -f1)
    echo "device_train: repo $((tree / 1048576)) MiB + wheels and backgrounds $((extra / 1048576)) MiB (the limit is 64 MiB)"
    [ $((tree + extra)) -lt $((64 * 1048576)) ] || { echo "device_train: too much to carry" >&2; exit 1; }
    ;;
  train)
    PY="${PY:-python3}"
    out="${OUT:?OUT: the folder whose files come back}"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site YOLO_OFFLINE=1 PYTHONUNBUFFERED=1
    rm -rf data/litter/dataset /tmp/xl-runs
    { nvidia-smi -L 2>&1 || true; echo "cores: $(nproc); $("$PY" --version)"
      compose "$PY"
      hours=$("$PY" -c "print(round(max(60, $BUDGET - $SECONDS - $EXPORT_S) / 3600, 4))")
      echo "device_train: ${SECONDS} s gone; training for $hours h"
      "$PY" models/litter/train.py ${START:+--stage 7 --start "$START"} ${FREEZE:+--freeze "$FREEZE"} --epochs "$EPOCHS" --hours "$hours" \
        --batch "$BATCH" --cache ram \
        --workers "$WORKERS" --seed "$SEED" --data data/litter/dataset/dataset.yaml --workdir /tmp/xl-runs \
        --recipe-command "models/litter/device_train.sh train (on a lent GPU machine)"
      echo "device_train: done in ${SECONDS} s"
    } 2>&1 | tee "$out/train.log"
    run=/tmp/xl-runs/train${START:+7}
    cp $run/weights/best.pt "$out/"  # to export here, should the export there fail
    cp /tmp/xl-runs/export/litter_yolov8n_320.fp32.onnx /tmp/xl-runs/export/litter_yolov8n_320.int8.onnx \
      /tmp/xl-runs/export/recipe.json $run/results.csv "$out/"
    ;;
  finish)
    from="${2:?finish DIR: the folder the files of the run came back to}"
    export_dir=data/litter/runs/export
    rm -rf data/litter/runs && mkdir -p "$export_dir"
    cp "$from"/litter_yolov8n_320.fp32.onnx "$from"/litter_yolov8n_320.int8.onnx "$from"/recipe.json "$export_dir/"
    cp "$from"/results.csv "$from"/train.log data/litter/runs/ 2>/dev/null || true
    rm -rf data/litter/dataset
    TRAIN=0 SHARDS=1 compose .venv/bin/python  # the validation split alone: the training images stayed there
    .venv/bin/python models/litter/write_manifest.py --val data/litter/dataset/images/val
    echo "device_train: installed under models/litter/ (edge/config.py's two litter score defaults must be the thresholds above); now make eval, and git checkout models/litter edge/config.py if it is refused"
    ;;
  *)
    echo "usage: $0 prepare | train | finish DIR   (see the comment at the top)" >&2
    exit 2
    ;;
esac
