"""The grid map: grid boundaries from the city's GeoJSON, checked when the tables load, and the
operators' map drawn from them as SVG (no tile server: it works offline). Pure: no I/O.

A city's tables name the file beside the grid tree (``grids_geojson: demo-grids.geojson``): a
FeatureCollection whose features carry ``properties.code`` (a grid of the tree) and a Polygon or
MultiPolygon in longitude, latitude: WGS 84, as GeoJSON has it, or a Chinese web map's system that the tables name
(``grids_coordinates``), converted to WGS 84 when they load (``to_wgs84``).

>>> shapes = parse_geojson({"type": "FeatureCollection", "features": [{"type": "Feature",
...     "properties": {"code": "G1"}, "geometry": {"type": "Polygon",
...     "coordinates": [[[117.0, 39.0], [117.01, 39.0], [117.01, 39.01], [117.0, 39.01], [117.0, 39.0]]]}}]}, "city")
>>> contains(shapes["G1"], 117.005, 39.005), contains(shapes["G1"], 117.02, 39.005)
(True, False)
>>> parse_geojson({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"code": "G2"},
...     "geometry": {"type": "Polygon", "coordinates": [[[117.0, 39.0], [117.01, 39.0], [117.0, 39.0]]]}}]}, "city")
Traceback (most recent call last):
...
ValueError: city: feature 0 (grid 'G2'): polygon 0 ring 0 has 3 positions; a closed ring needs at least 4, the first repeated last
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from xueliang import coordinates
from xueliang.polygon import crossing_edges

Ring = list[tuple[float, float]]  # (lon, lat), closed: the first position repeated last
Polygon = list[Ring]  # the outer ring, then holes
METRES_PER_DEGREE = 111_320.0  # along a meridian; along a parallel times cos(latitude)
# a ring's positions, at most: a district's surveyed boundary has a few thousand; each ring is checked for
# crossing itself when the tables load (xueliang.polygon.crossing_edges: 0.1 s for 10,000 around a district,
# 8 s for a comb of 10,000 long teeth, its worst)
MAX_RING_POSITIONS = 10_000
# the file, at most: read whole and parsed in memory (about 10x its size) when the tables load; a city's
# boundaries at surveyed detail (thousands of grids, hundreds of positions each) are a few tens of MB
MAX_FILE_BYTES = 64 * 2**20


def _ring(raw, where: str) -> Ring:
    if not isinstance(raw, list):
        raise ValueError(f"{where} is not a list of positions")
    if len(raw) > MAX_RING_POSITIONS:
        raise ValueError(f"{where} has {len(raw)} positions, at most {MAX_RING_POSITIONS}; simplify the boundary "
                         "(a GIS's simplify tool keeps its shape to a metre)")
    ring = []
    for k, position in enumerate(raw):
        if (not isinstance(position, list) or len(position) < 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                           for v in position[:2])):
            raise ValueError(f"{where} position {k} is not [longitude, latitude] in numbers: {str(position)[:60]}")
        lon, lat = float(position[0]), float(position[1])
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise ValueError(f"{where} position {k} [{lon}, {lat}] is outside longitude -180..180, latitude -90..90 "
                             "(GeoJSON is longitude first)")
        ring.append((lon, lat))
    if len(ring) < 4:
        raise ValueError(f"{where} has {len(ring)} positions; a closed ring needs at least 4, the first repeated last")
    if ring[0] != ring[-1]:
        raise ValueError(f"{where} is not closed: its last position {list(ring[-1])} must repeat its first {list(ring[0])}")
    if crossed := crossing_edges(ring):  # a bow-tie: its area the difference of its loops, its label misplaced
        (a, b), (c, d) = ([list(ring[k]), list(ring[k + 1])] for k in crossed)
        raise ValueError(f"{where} crosses itself: edges {crossed[0]} and {crossed[1]} cross ({a}-{b} and {c}-{d}; "
                         "edge k runs from position k to k + 1)")
    if abs(area(ring)) == 0:
        raise ValueError(f"{where} encloses no area")
    return ring


def parse_geojson(data, source: str) -> dict[str, list[Polygon]]:
    """Grid code -> polygons from a GeoJSON FeatureCollection; ValueError naming the feature and grid."""
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection" or not isinstance(data.get("features"), list):
        raise ValueError(f"{source}: must be a GeoJSON FeatureCollection with a list of features")
    shapes: dict[str, list[Polygon]] = {}
    for i, feature in enumerate(data["features"]):
        code = (feature.get("properties") or {}).get("code") if isinstance(feature, dict) else None
        where = f"{source}: feature {i} (grid {code!r})"
        if not isinstance(code, str) or not code:
            raise ValueError(f"{where}: properties.code must name a grid of the grid tree")
        if code in shapes:
            raise ValueError(f"{where}: grid {code!r} has a second feature; put all its parts in one MultiPolygon")
        geometry = feature.get("geometry") or {}
        kind, coordinates = geometry.get("type"), geometry.get("coordinates")
        if kind not in ("Polygon", "MultiPolygon"):
            raise ValueError(f"{where}: geometry must be a Polygon or MultiPolygon, not {str(kind)[:40]}")
        polygons = [coordinates] if kind == "Polygon" else coordinates
        if not isinstance(polygons, list) or not polygons or not all(isinstance(p, list) and p for p in polygons):
            raise ValueError(f"{where}: {kind} coordinates must hold at least one ring")
        shapes[code] = [[_ring(r, f"{where}: polygon {j} ring {k}") for k, r in enumerate(p)]
                        for j, p in enumerate(polygons)]
    return shapes


def to_wgs84(shapes: dict[str, list[Polygon]], system: coordinates.System) -> dict[str, list[Polygon]]:
    """The boundaries drawn in ``system`` (``xueliang.coordinates``) in WGS 84, as the cameras' locations come.

    >>> moved = to_wgs84({"G1": [[[(117.0, 39.0), (117.01, 39.0), (117.0, 39.01), (117.0, 39.0)]]]}, "gcj02")
    >>> [(round(lon, 4), round(lat, 4)) for lon, lat in moved["G1"][0][0][:2]]
    [(116.9939, 38.9991), (117.0039, 38.9991)]
    """
    return {code: [[[coordinates.to_wgs84(lon, lat, system) for lon, lat in ring] for ring in polygon]
                   for polygon in polygons] for code, polygons in shapes.items()}


def area(ring: Ring) -> float:
    """Signed area in square degrees (shoelace), for centroids and empty-ring checks."""
    return sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:])) / 2


def bounds(polygons: list[Polygon]) -> tuple[float, float, float, float]:
    """West, south, east, north of the outer rings: a point outside it is in none of them.

    >>> bounds([[[(117.0, 39.0), (117.01, 39.0), (117.0, 39.02), (117.0, 39.0)]]])
    (117.0, 39.0, 117.01, 39.02)
    """
    lons, lats = zip(*(pt for p in polygons for pt in p[0]))
    return min(lons), min(lats), max(lons), max(lats)


def _in_ring(ring: Ring, lon: float, lat: float) -> bool:
    inside = False
    for (x0, y0), (x1, y1) in zip(ring, ring[1:]):
        if (y0 > lat) != (y1 > lat) and lon < x0 + (lat - y0) * (x1 - x0) / (y1 - y0):
            inside = not inside
    return inside


def contains(polygons: list[Polygon], lon: float, lat: float) -> bool:
    """Whether the point lies inside one of ``polygons`` (in its outer ring, in none of its holes)."""
    return any(_in_ring(p[0], lon, lat) and not any(_in_ring(h, lon, lat) for h in p[1:]) for p in polygons)


def label_point(polygons: list[Polygon]) -> tuple[float, float]:
    """Where a grid's name goes: the centroid of its largest outer ring."""
    ring = max((p[0] for p in polygons), key=lambda r: abs(area(r)))
    a = area(ring)
    cx = sum((x0 + x1) * (x0 * y1 - x1 * y0) for (x0, y0), (x1, y1) in zip(ring, ring[1:])) / (6 * a)
    cy = sum((y0 + y1) * (x0 * y1 - x1 * y0) for (x0, y0), (x1, y1) in zip(ring, ring[1:])) / (6 * a)
    return cx, cy


@dataclass(frozen=True)
class Projection:
    """Longitude/latitude to SVG pixels: equirectangular around the middle latitude (a city is a few
    km across, where this is off by well under 1 %), north up, fitted into width x height.

    >>> p = Projection.fit([(117.0, 39.0), (117.01, 39.01)], 400, 400, margin=0)
    >>> p.xy(117.0, 39.01), round(p.metres_per_px, 2)  # the north-west corner, centred across
    ((44.6, 0.0), 2.78)
    """

    west: float
    north: float
    px_per_deg_lon: float
    px_per_deg_lat: float

    @classmethod
    def fit(cls, points: Iterable[tuple[float, float]], width: float, height: float, margin: float = 30) -> Projection:
        lons, lats = zip(*points)
        shrink = math.cos(math.radians((min(lats) + max(lats)) / 2))
        span_x = max((max(lons) - min(lons)) * shrink, 1e-4)  # one point alone: about 10 m across
        span_y = max(max(lats) - min(lats), 1e-4)
        scale = min((width - 2 * margin) / span_x, (height - 2 * margin) / span_y)  # px per degree of latitude
        x_pad = (width - 2 * margin - span_x * scale) / 2
        y_pad = (height - 2 * margin - span_y * scale) / 2
        return cls(min(lons) - (margin + x_pad) / (scale * shrink), max(lats) + (margin + y_pad) / scale,
                   scale * shrink, scale)

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        return round((lon - self.west) * self.px_per_deg_lon, 1), round((self.north - lat) * self.px_per_deg_lat, 1)

    @property
    def metres_per_px(self) -> float:
        return METRES_PER_DEGREE / self.px_per_deg_lat


def scale_bar(metres_per_px: float, target_px: float = 120) -> tuple[float, str]:
    """A round length near ``target_px`` long: (its pixels, its label).

    >>> scale_bar(5.0), scale_bar(0.4)
    ((100.0, '500 米'), (125.0, '50 米'))
    """
    want = target_px * metres_per_px
    metres = max(m * 10 ** e for e in range(0, 7) for m in (1, 2, 5) if m * 10 ** e <= max(1.5 * want, 1))
    label = f"{metres / 1000:g} 公里" if metres >= 1000 else f"{metres:g} 米"
    return round(metres / metres_per_px, 1), label


@dataclass(frozen=True)
class Mark:
    """A case on the map: where, where it links, its colour classes and its hover text."""

    lon: float
    lat: float
    href: str
    classes: str
    title: str


def _esc(value) -> str:
    return html.escape(str(value))


def _path(polygons: list[Polygon], proj: Projection) -> str:
    return " ".join("M" + " L".join(f"{x},{y}" for x, y in (proj.xy(*pt) for pt in ring[:-1])) + " Z"
                    for polygon in polygons for ring in polygon)


SPACING_PX = 13  # between the centres of two cases' circles (radius 6) spread around one place
RING_MAX_PX = 50  # the widest ring of cases around one place: it stays near its camera, and in the picture
EDGE_PX = 8  # a case whose place lies outside the picture is drawn this far inside its edge


def ring(n: int) -> tuple[float, int]:
    """How ``n`` cases at one place are spread so each can be clicked: (the ring's radius in px, how
    many circles it holds). Past what the widest ring holds, the last slot is a count of the rest.

    >>> ring(1), ring(2), ring(20), ring(300)
    ((0.0, 1), (9.0, 2), (41.4, 20), (50, 24))
    """
    if n == 1:
        return 0.0, 1
    most = int(2 * math.pi * RING_MAX_PX / SPACING_PX)
    if n > most:
        return RING_MAX_PX, most
    return round(max(9.0, SPACING_PX * n / (2 * math.pi)), 1), n


class Drawn(NamedTuple):
    """The map's SVG, and the cases whose place lies outside the grids' picture (drawn at its edge)."""

    svg: str
    off_map: list[Mark]


def render(shapes: dict[str, list[Polygon]], names: dict[str, str], depth: dict[str, int], outer: set[str],
           marks: list[Mark], cameras: list[tuple[float, float, str]], width: int = 900, height: int = 600) -> Drawn:
    """The map as one SVG: grid polygons (outer levels as outlines, basic grids filled and named),
    cameras as squares, cases as circles linking to their page, and a scale bar. ``depth``: a grid's
    level in the tree (outer levels are drawn first); ``outer``: grids with a shaped grid under them
    (drawn as outlines, not named).

    The picture is fitted to the grids (to the cases only where no grid has a boundary): one case
    far away (a box that sends 0, 0) would otherwise shrink the city to a dot. A case outside the
    picture is drawn just inside its edge, in the direction of its place, ringed as ``off-map``.
    Cases at one place are spread on a ring (``ring``) whose last slot, when they are more than it
    holds, counts the rest; the ring is kept whole inside the picture. ``marks`` come most important
    first: those are the ones drawn."""
    points = [pt for polys in shapes.values() for p in polys for pt in p[0]] or [(m.lon, m.lat) for m in marks]
    proj = Projection.fit(points, width, height)
    out = []
    for code in sorted(shapes, key=lambda c: (depth.get(c, 0), c)):
        leaf = code not in outer
        out.append(f"<path class='grid {'leaf' if leaf else 'outer'}' data-grid='{_esc(code)}' fill-rule=evenodd "
                   f"d='{_path(shapes[code], proj)}'><title>{_esc(names.get(code, code))} ({_esc(code)})</title></path>")
    for code in sorted(shapes):
        if code not in outer:
            x, y = proj.xy(*label_point(shapes[code]))
            out.append(f"<text class=grid-label x={x} y={y} text-anchor=middle>{_esc(names.get(code, code))}</text>")

    def inside(x: float, y: float) -> bool:
        return 0 <= x <= width and 0 <= y <= height

    for lon, lat, title in cameras:
        x, y = proj.xy(lon, lat)
        if inside(x, y):
            out.append(f"<rect class=cam x={x - 4} y={y - 4} width=8 height=8><title>{_esc(title)}</title></rect>")
    at_place: dict[tuple[float, float], list[Mark]] = {}
    for m in marks:
        at_place.setdefault(proj.xy(m.lon, m.lat), []).append(m)
    off_map = []
    for (x, y), group in at_place.items():
        radius, slots = ring(len(group))
        off = not inside(x, y)
        if off:
            off_map += group
        keep = radius + EDGE_PX  # the whole ring inside the picture
        x, y = min(max(x, keep), width - keep), min(max(y, keep), height - keep)
        shown = group if len(group) <= slots else group[:slots - 1]
        for k in range(slots):
            angle = 2 * math.pi * k / slots
            cx, cy = round(x + radius * math.cos(angle), 1), round(y + radius * math.sin(angle), 1)
            if k < len(shown):
                m = shown[k]
                classes = m.classes + (" off-map" if off else "")
                title = ("位置在网格范围外: " if off else "") + m.title
                out.append(f"<a href='{_esc(m.href)}'><circle class='{_esc(classes)}' cx={cx} cy={cy} r=6>"
                           f"<title>{_esc(title)}</title></circle></a>")
            else:
                rest = len(group) - len(shown)
                out.append(f"<g class=more><circle cx={cx} cy={cy} r=8></circle><text x={cx} y={cy + 4} "
                           f"text-anchor=middle>+{rest}</text><title>此处另有 {rest} 个案件, 见案件列表</title></g>")
    bar_px, bar_label = scale_bar(proj.metres_per_px)
    x0, y0 = 20, height - 20
    out.append(f"<g id=scale><path class=scale d='M{x0},{y0 - 6} L{x0},{y0} L{x0 + bar_px},{y0} L{x0 + bar_px},{y0 - 6}'/>"
               f"<text x={x0 + bar_px / 2} y={y0 - 9} text-anchor=middle>{_esc(bar_label)}</text></g>")
    return Drawn(f"<svg id=map xmlns='http://www.w3.org/2000/svg' width={width} height={height} "
                 f"viewBox='0 0 {width} {height}'>{''.join(out)}</svg>", off_map)
