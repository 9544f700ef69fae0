"""Evidence: the snapshot for people (the frame as JPEG with the incident's box and zone drawn), the frame as the
camera gave it (for training: a detector must never learn the drawn box), and a camera's picture with all its zones
drawn and labelled (``xueliang snapshot``: the installer's)."""

from __future__ import annotations

import cv2
import numpy as np

from edge.geometry import Box, Point, box_to_pixels, polygon_to_pixels

ZONE_COLOUR = (0, 220, 255)  # BGR: yellow, a zone's outline and its label
BOX_COLOUR = (0, 0, 255)  # red, the incident's box and its caption


def snapshot(image: np.ndarray, box: Box, zone: list[Point], caption: str, quality: int = 85) -> bytes:
    """JPEG bytes of ``image`` with the zone outline (yellow) and the box (red) drawn."""
    h, w = image.shape[:2]
    out = image.copy()
    draw_zone(out, zone)
    x1, y1, x2, y2 = box_to_pixels(box, w, h)
    cv2.rectangle(out, (x1, y1), (x2, y2), BOX_COLOUR, 2)
    cv2.putText(out, caption, (max(0, x1), max(14, y1 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, BOX_COLOUR, 1, cv2.LINE_AA)
    return _jpeg(out, quality)


def zones_snapshot(image: np.ndarray, zones: list[tuple[list[Point], str]], quality: int = 90) -> bytes:
    """JPEG bytes of ``image`` with each zone's outline drawn as the evidence draws it (yellow) and its label (the
    zone's id and what it watches) over its topmost corner: what an installer checks the zones against.

    >>> picture = cv2.imdecode(np.frombuffer(zones_snapshot(np.zeros((96, 128, 3), np.uint8),
    ...     [([(0.25, 0.5), (0.75, 0.5), (0.75, 0.9)], "kerb: illegal_parking")]), np.uint8), cv2.IMREAD_COLOR)
    >>> int(np.abs(picture[48, 64].astype(int) - ZONE_COLOUR).max()) < 40  # the outline's top edge: yellow, as a JPEG's
    True
    """
    out = image.copy()
    for polygon, label in zones:
        draw_zone(out, polygon, label)
    return _jpeg(out, quality)


def draw_zone(out: np.ndarray, zone: list[Point], label: str | None = None) -> None:
    """Draw ``zone``'s outline on ``out`` (in place), and ``label`` above its topmost corner, inside the picture,
    a dark rim around its letters to read on a bright road; sized to the picture (a 1080p picture's labels twice a
    768-wide one's)."""
    h, w = out.shape[:2]
    corners = polygon_to_pixels(zone, w, h)
    cv2.polylines(out, [corners], isClosed=True, color=ZONE_COLOUR, thickness=2)
    if not label:
        return
    scale = max(0.5, w / 1600)
    thick = max(1, round(scale * 2))
    (tw, th), below = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x, y = corners[int(np.argmin(corners[:, 1]))]
    # its letters' feet (g, p) and rim clear of the outline
    at = (int(min(max(0, x), max(0, w - tw))), int(max(th + 2, y - 6 - below)))
    cv2.putText(out, label, at, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(out, label, at, cv2.FONT_HERSHEY_SIMPLEX, scale, ZONE_COLOUR, thick, cv2.LINE_AA)


def frame_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of ``image`` as it is, nothing drawn."""
    return _jpeg(image, quality)


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, jpg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return jpg.tobytes()
