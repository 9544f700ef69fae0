"""Zone and box geometry for the edge, in one place (supervision's style: small pure functions).

Zones and boxes travel in normalised frame coordinates (x, y in 0..1, boxes as x1, y1, x2,
y2); pixels appear only where an image is cut or drawn, through ``box_to_pixels`` and
``polygon_to_pixels``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import supervision as sv

Point = tuple[float, float]
Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in 0..1 of the frame (or pixels where said)


def point_in_polygon(point: Point, polygon: list[Point]) -> bool:
    """Even-odd ray casting; points on an edge may fall either way.

    >>> point_in_polygon((0.5, 0.5), [(0, 0), (1, 0), (1, 1), (0, 1)])
    True
    >>> point_in_polygon((1.5, 0.5), [(0, 0), (1, 0), (1, 1), (0, 1)])
    False
    """
    x, y = point
    inside = False
    j = len(polygon) - 1
    for i in range(len(polygon)):
        xi, yi = polygon[i]
        xj, yj = polygon[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def polygon_to_xyxy(polygon: list[Point]) -> Box:
    """The bounding box of a polygon.

    >>> polygon_to_xyxy([(0.8, 0.03), (0.97, 0.03), (0.97, 0.22)])
    (0.8, 0.03, 0.97, 0.22)
    """
    xs, ys = [x for x, _ in polygon], [y for _, y in polygon]
    return min(xs), min(ys), max(xs), max(ys)


def polygon_area(polygon: list[Point]) -> float:
    """Shoelace area in frame fractions.

    >>> polygon_area([(0, 0), (0.5, 0), (0.5, 0.5), (0, 0.5)])
    0.25
    """
    return abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(polygon, polygon[1:] + polygon[:1]))) / 2


def polygon_to_pixels(polygon: list[Point], width: int, height: int) -> npt.NDArray[np.int32]:
    """A polygon in pixels of a ``width`` x ``height`` picture, as OpenCV draws and fills it.

    >>> polygon_to_pixels([(0.5, 0.0), (1.0, 1.0), (0.0, 1.0)], 64, 48).tolist()
    [[32, 0], [64, 48], [0, 48]]
    """
    return np.array([[x * width, y * height] for x, y in polygon], dtype=np.int32)


def box_to_pixels(box: Box, width: int, height: int, min_size: int = 1) -> tuple[int, int, int, int]:
    """The pixels a box covers (outward rounding, at least ``min_size`` wide and high), for slicing.

    >>> box_to_pixels((0.1, 0.1, 0.52, 0.5), 10, 10)
    (1, 1, 6, 5)
    """
    x1, y1 = int(box[0] * width), int(box[1] * height)
    x2 = max(x1 + min_size, int(math.ceil(box[2] * width - 1e-9)))
    y2 = max(y1 + min_size, int(math.ceil(box[3] * height - 1e-9)))
    return x1, y1, x2, y2


def normalise(xyxy: tuple[float, float, float, float], width: int, height: int) -> Box:
    """A pixel box in 0..1 of the frame.

    >>> normalise((384, 144, 768, 576), 768, 576)
    (0.5, 0.25, 1.0, 1.0)
    """
    return xyxy[0] / width, xyxy[1] / height, xyxy[2] / width, xyxy[3] / height


def anchor(box: Box) -> Point:
    """The bottom-centre of a box: where a vehicle stands.

    >>> anchor((0.8, 0.1, 0.9, 0.2))
    (0.8500000000000001, 0.2)
    """
    return (box[0] + box[2]) / 2, box[3]


def box_area(box: Box) -> float:
    """A box's area; a normalised box's is its share of the picture.

    >>> box_area((0.25, 0.5, 0.75, 1.0))
    0.25
    """
    return (box[2] - box[0]) * (box[3] - box[1])


def inside(a: Box, b: Box) -> float:
    """The share of box ``a`` that lies inside box ``b``.

    >>> inside((0, 0, 2, 2), (1, 0, 3, 2))
    0.5
    """
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / max(1e-9, (a[2] - a[0]) * (a[3] - a[1]))


def overlap(a: Box, b: Box) -> bool:
    """Whether two boxes share any area.

    >>> overlap((0, 0, 1, 1), (0.5, 0.5, 2, 2)), overlap((0, 0, 1, 1), (1, 0, 2, 1))
    (True, False)
    """
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def union(boxes: list[Box]) -> Box:
    """The smallest box holding all of ``boxes``.

    >>> union([(0.1, 0.2, 0.3, 0.4), (0.2, 0.1, 0.5, 0.3)])
    (0.1, 0.1, 0.5, 0.4)
    """
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes.

    >>> iou((0, 0, 2, 2), (1, 0, 3, 2))
    0.3333333333333333
    """
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def in_frame(parts: list[sv.Detections], regions: list[tuple[int, int, int, int]]) -> sv.Detections:
    """Detections made on crops (``parts[i]`` on pixel ``regions[i]``) moved into frame pixels, in one set;
    the caller's detections stay as they were.

    >>> d = sv.Detections(xyxy=np.array([[0, 0, 10, 10]], np.float32))
    >>> in_frame([d], [(100, 50, 300, 250)]).xyxy.tolist(), d.xyxy.tolist()
    ([[100.0, 50.0, 110.0, 60.0]], [[0.0, 0.0, 10.0, 10.0]])
    """
    shifted = []
    for (x1, y1, _, _), found in zip(regions, parts):
        if len(found):
            found = found[np.ones(len(found), dtype=bool)]  # a copy
            found.xyxy = sv.move_boxes(found.xyxy, np.array([x1, y1])).astype(np.float32)
            shifted.append(found)
    return sv.Detections.merge(shifted) if shifted else sv.Detections.empty()
