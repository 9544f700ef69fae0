"""Whether a hand-drawn polygon crosses itself: an edge zone, a grid's boundary in the city's tables.

A polygon whose outline crosses itself (a "bow-tie": corners listed out of order) has a shoelace
area that is the difference of its loops, not their sum, so the edge's urgent-spill share and the
map's label point came out wrong. Both sides refuse one when their configuration loads; this
module needs only the standard library, so the gateway host loads it without numpy.

>>> crossing_edges([(0, 0), (1, 1), (1, 0), (0, 1)])  # a bow-tie: edge 0 runs from point 0 to point 1
(0, 2)
>>> crossing_edges([(0, 0), (1, 0), (1, 1), (0, 1)]) is None
True
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

Point = tuple[float, float]


def _side(a: Point, b: Point, c: Point) -> int:
    """Which side of the line a-b the point c lies on: 1 left, -1 right, 0 on it."""
    cross = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return (cross > 0) - (cross < 0)


def _within(a: Point, b: Point, c: Point) -> bool:
    """Whether c, on the line a-b, lies between a and b."""
    return min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(a[1], b[1])


def segments_meet(p: Point, q: Point, r: Point, s: Point) -> bool:
    """Whether the segments p-q and r-s share a point (crossing, touching or overlapping).

    >>> segments_meet((0, 0), (2, 2), (0, 2), (2, 0)), segments_meet((0, 0), (1, 0), (2, 0), (3, 0))
    (True, False)
    >>> segments_meet((0, 0), (2, 0), (1, 0), (1, 5))  # one ends on the other
    True
    """
    d1, d2 = _side(r, s, p), _side(r, s, q)
    if d1 == d2 != 0:  # p-q wholly on one side of r-s
        return False
    d3, d4 = _side(p, q, r), _side(p, q, s)
    if d3 == d4 != 0:
        return False
    if 0 not in (d1, d2, d3, d4):  # each ends on both sides of the other
        return True
    return ((d1 == 0 and _within(r, s, p)) or (d2 == 0 and _within(r, s, q))
            or (d3 == 0 and _within(p, q, r)) or (d4 == 0 and _within(p, q, s)))


def crossing_edges(points: Sequence[Point]) -> tuple[int, int] | None:
    """The first two edges that cross or touch, ``(i, j)`` with ``i < j``, or None: edge ``k`` runs
    from point ``k`` to point ``k + 1``, the last one back to the first.

    Edges that follow each other share a point, which is no crossing. A point repeated right after
    itself is taken as one point (its edge has no length, and no area, containment or drawing
    changes with it): GeoJSON repeats a ring's first position last, GIS tools sometimes repeat
    others; the polygon is not rewritten. Edges are swept by their left end and each is compared
    with those whose extents overlap it: about n log n for an outline, n² at worst, so callers
    bound the number of points first.

    >>> crossing_edges([(0, 0), (2, 0), (2, 2), (2, 2), (1, -1), (0, 2)])  # edge 2 has no length
    (0, 3)
    >>> crossing_edges([(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]) is None  # a closed ring
    True
    """
    edges = sorted((min(p[0], q[0]), max(p[0], q[0]), min(p[1], q[1]), max(p[1], q[1]), k, p, q)
                   for k, (p, q) in enumerate(zip(points, [*points[1:], *points[:1]])) if p != q)
    rank = {e[4]: i for i, e in enumerate(sorted(edges, key=lambda e: e[4]))}
    ring = len(edges) - 1

    found: list[tuple[int, int]] = []
    active: dict[int, tuple] = {}  # edges not wholly left of the current one, by number
    ends: list[tuple[float, int]] = []  # their right ends, a heap
    for x0, x1, y0, y1, k, p, q in edges:  # by their left ends
        while ends and ends[0][0] < x0:
            del active[heapq.heappop(ends)[1]]
        for _, _, _, _, a, r, s in [e for e in active.values() if e[3] >= y0 and e[2] <= y1]:
            if abs(rank[a] - rank[k]) not in (1, ring) and segments_meet(p, q, r, s):  # neighbours share a point
                found.append((min(a, k), max(a, k)))
        active[k] = (x0, x1, y0, y1, k, p, q)
        heapq.heappush(ends, (x1, k))
    return min(found, default=None)
