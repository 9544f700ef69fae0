"""Evidence: the snapshot for people (the frame as JPEG with the incident's box and zone drawn) and the
frame as the camera gave it (for training: a detector must never learn the drawn box)."""

from __future__ import annotations

import cv2
import numpy as np

from edge.geometry import Box, Point, box_to_pixels, polygon_to_pixels


def snapshot(image: np.ndarray, box: Box, zone: list[Point], caption: str, quality: int = 85) -> bytes:
    """JPEG bytes of ``image`` with the zone outline (yellow) and the box (red) drawn."""
    h, w = image.shape[:2]
    out = image.copy()
    cv2.polylines(out, [polygon_to_pixels(zone, w, h)], isClosed=True, color=(0, 220, 255), thickness=2)
    x1, y1, x2, y2 = box_to_pixels(box, w, h)
    cv2.rectangle(out, (x1, y1), (x2, y2), (0, 0, 255), 2)
    cv2.putText(out, caption, (max(0, x1), max(14, y1 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 255), 1, cv2.LINE_AA)
    ok, jpg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return jpg.tobytes()


def frame_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of ``image`` as it is, nothing drawn."""
    ok, jpg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return jpg.tobytes()
