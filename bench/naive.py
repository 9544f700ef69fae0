"""The naive baseline for the edge benchmark: decode every frame with OpenCV, detect every 5th.

Usage: python bench/naive.py URL [URL ...]; prints one JSON line of per-camera counters every 2 s.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")

import cv2  # noqa: E402

from edge.detector import load_detector  # noqa: E402

counts: dict[str, list[int]] = {}


def camera(url: str, key: str, detector) -> None:
    cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 10000,
                                                 cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000])
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            time.sleep(0.5)
            continue
        n += 1
        counts[key][0] += 1
        if n % 5 == 0:
            detector.detect(frame, 0.4)
            counts[key][1] += 1


def main(urls: list[str]) -> None:
    detector = load_detector("ssd_mobilenet_v2_coco", threads=1)
    for i, url in enumerate(urls):
        counts[f"cam{i}"] = [0, 0]
        threading.Thread(target=camera, args=(url, f"cam{i}", detector), daemon=True).start()
    while True:
        time.sleep(2)
        print(json.dumps({"at": time.time(), "cameras": {k: {"decoded": v[0], "analysed": v[1]} for k, v in counts.items()}}),
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
