"""What seeing each tile mirrored too costs the litter model (``make bench``). Last line JSON.

The committed campus clip cut into the tiles an edge box would run for a camera with three garbage
or spill zones, at 30 s (a pile and a spill in view) and at 1 s (nothing put there yet); one litter
pass (``detect_many``: the tiles in one batch, and the mirrors of those it saw anything in) timed
with the manifest's ``mirror`` on and off, turn about, ``--rounds`` times ``--repeats`` passes.
Medians and their ratios, from the same run: these machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.detector import load_detector  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    detector = load_detector("litter_yolov8n_320", args.threads)
    video = cv2.VideoCapture(str(ROOT / "fixtures/videos/campus-litter.mp4"))
    shipped, rows = detector.mirror, {}
    for at in (30, 1):
        video.set(cv2.CAP_PROP_POS_FRAMES, int(at * video.get(cv2.CAP_PROP_FPS)))
        ok, frame = video.read()
        if not ok:
            sys.exit("could not read the campus clip")
        h, w = frame.shape[:2]
        side = w // 3  # the edge tiles a litter zone with squares a third of the frame wide
        tiles = [frame[0:side, 0:side], frame[h // 3: h // 3 + side, side: 2 * side], frame[h - side: h, w - side: w]]
        detector.mirror = False
        looked = sum(bool(len(found)) for found in detector.detect_many(tiles, 0.15))
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.rounds):
            for mirror in (False, True):
                detector.mirror = mirror
                detector.detect_many(tiles, 0.3)  # warm
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    detector.detect_many(tiles, 0.3)
                    times[mirror].append(time.perf_counter() - start)
        plain, mirrored = (statistics.median(times[m]) * 1000 for m in (False, True))
        rows[f"at_{at}s"] = {"tiles": len(tiles), "mirrored_tiles": looked, "plain_ms": round(plain, 1),
                             "mirrored_ms": round(mirrored, 1), "ratio": round(mirrored / plain, 2)}
        print(f"litter pass at {at} s, {len(tiles)} tiles of {side} px ({looked} seen mirrored too), {args.threads} "
              f"threads: plain {plain:.1f} ms, mirror on {mirrored:.1f} ms (median of {len(times[True])})")
    detector.mirror = shipped
    print(json.dumps({"bench": "litter_cost", **rows, "shipped_mirror": shipped}))


if __name__ == "__main__":
    main()
