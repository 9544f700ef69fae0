"""Chinese web maps' coordinates to WGS 84 (GPS's, GeoJSON's, the wire's). Pure: no I/O.

A city's grid boundaries are often drawn on AMap or Tencent, which publish positions in GCJ-02 (WGS 84 moved by
an obfuscating offset of 100-700 m), or on Baidu, in BD-09 (GCJ-02 moved again, about 1 km from WGS 84 in all);
Tianditu's CGCS2000 and a GPS's WGS 84 agree to well under a metre. The offset's formula is public (the one
``coordtransform`` and ``eviltransform`` implement); its inverse has no closed form and is found here by
iteration, to well under a metre. Positions are (longitude, latitude), as GeoJSON has them.

>>> lon, lat = to_wgs84(121.531541859215, 31.17530398364597, "gcj02")  # eviltransform's Shanghai point
>>> round(lon, 6), round(lat, 6)
(121.527211, 31.177428)
>>> to_wgs84(2.2945, 48.8584, "gcj02")  # outside China's bound no offset applies
(2.2945, 48.8584)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Literal

System = Literal["wgs84", "gcj02", "bd09"]
SYSTEMS: tuple[System, ...] = ("wgs84", "gcj02", "bd09")
NAMES = {"wgs84": "WGS 84 (GPS, Tianditu)", "gcj02": "GCJ-02 (AMap, Tencent)", "bd09": "BD-09 (Baidu)"}
# the rectangle the offset's published formula applies in: mainland China and more (Hong Kong, Taiwan, a strip of
# its neighbours); outside it the web maps show WGS 84 as it is
BOUND = (72.004, 0.8293, 137.8347, 55.8271)  # west, south, east, north
_A = 6378245.0  # the Krasovsky ellipsoid's semi-major axis and eccentricity squared, as the formula has them
_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0  # BD-09's own rotation
_CLOSE_DEG = 1e-9  # the iterations stop within this of the point (0.1 mm); they get there in 3 to 5 steps
_STEPS = 30


def in_bound(lon: float, lat: float) -> bool:
    """Whether the offset applies to the point (``BOUND``).

    >>> in_bound(117.15, 39.17), in_bound(2.2945, 48.8584)
    (True, False)
    """
    west, south, east, north = BOUND
    return west <= lon <= east and south <= lat <= north


def _offset(lon: float, lat: float) -> tuple[float, float]:
    """GCJ-02's offset at a WGS 84 point, in degrees (longitude, latitude)."""
    x, y = lon - 105.0, lat - 35.0
    waves = (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    north = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x)) + waves
             + (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
             + (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0)
    east = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x)) + waves
            + (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
            + (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0)
    phi = math.radians(lat)
    w = 1 - _EE * math.sin(phi) ** 2  # metres on the ellipsoid to degrees
    return (east * 180.0 / (_A / math.sqrt(w) * math.cos(phi) * math.pi),
            north * 180.0 / (_A * (1 - _EE) / (w * math.sqrt(w)) * math.pi))


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """The published offset formula.

    >>> lon, lat = wgs84_to_gcj02(116.404, 39.915)  # coordtransform's example
    >>> round(lon, 6), round(lat, 6)
    (116.410244, 39.916404)
    """
    if not in_bound(lon, lat):
        return lon, lat
    d_lon, d_lat = _offset(lon, lat)
    return lon + d_lon, lat + d_lat


def gcj02_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    """Baidu's shift of a GCJ-02 point as ``coordtransform`` publishes it (Baidu's own is unpublished;
    ``eviltransform`` writes π where this has 3000π/180, which lands some 10 m away).

    >>> lon, lat = gcj02_to_bd09(116.404, 39.915)  # coordtransform's example
    >>> round(lon, 6), round(lat, 6)
    (116.410369, 39.921337)
    """
    if not in_bound(lon, lat):
        return lon, lat
    z = math.hypot(lon, lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def _inverse(forward: Callable[[float, float], tuple[float, float]], lon: float, lat: float) -> tuple[float, float]:
    """The point ``forward`` moves onto (lon, lat): each step moves the guess by what its image misses by. The
    offsets change by well under a thousandth of a degree per degree, so each step gains three digits or more."""
    x, y = lon, lat
    for _ in range(_STEPS):
        fx, fy = forward(x, y)
        x, y = x + (lon - fx), y + (lat - fy)
        if abs(lon - fx) < _CLOSE_DEG and abs(lat - fy) < _CLOSE_DEG:
            break
    return x, y


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """The iterative inverse of ``wgs84_to_gcj02``.

    >>> lon, lat = gcj02_to_wgs84(113.9171764808363, 22.540796131694766)  # eviltransform's Shenzhen point
    >>> round(lon, 6), round(lat, 6)
    (113.912316, 22.543847)
    """
    return _inverse(wgs84_to_gcj02, lon, lat)


def bd09_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """The iterative inverse of ``gcj02_to_bd09``.

    >>> lon, lat = bd09_to_gcj02(116.41036949371029, 39.92133699351021)
    >>> round(lon, 6), round(lat, 6)
    (116.404, 39.915)
    """
    return _inverse(gcj02_to_bd09, lon, lat)


def to_wgs84(lon: float, lat: float, system: System) -> tuple[float, float]:
    """A point written in ``system`` in WGS 84 (BD-09 through GCJ-02).

    >>> lon, lat = to_wgs84(116.41036949371029, 39.92133699351021, "bd09")  # coordtransform's (116.404, 39.915)
    >>> (round(lon, 6), round(lat, 6)) == tuple(round(v, 6) for v in gcj02_to_wgs84(116.404, 39.915))
    True
    """
    if system == "bd09":
        lon, lat = bd09_to_gcj02(lon, lat)
    return gcj02_to_wgs84(lon, lat) if system in ("gcj02", "bd09") else (lon, lat)


def from_wgs84(lon: float, lat: float, system: System) -> tuple[float, float]:
    """A WGS 84 point as ``system`` writes it."""
    if system in ("gcj02", "bd09"):
        lon, lat = wgs84_to_gcj02(lon, lat)
    return gcj02_to_bd09(lon, lat) if system == "bd09" else (lon, lat)


def readings(lon: float, lat: float) -> Iterator[tuple[System, System, float, float]]:
    """Where a point written in one system falls on a map drawn in another, both taken for the same system:
    (the point's system, the map's, the point as the map has it), the likeliest mix-ups first (a camera's GPS
    position on a map drawn on AMap, and the other way round).

    >>> first = next(readings(117.15, 39.17))
    >>> first[:2], round(first[2], 4), round(first[3], 4)  # a WGS 84 point lies here on a GCJ-02 map
    (('wgs84', 'gcj02'), 117.1564, 39.1711)
    """
    for point, drawn in (("wgs84", "gcj02"), ("gcj02", "wgs84"), ("wgs84", "bd09"), ("bd09", "wgs84"),
                         ("gcj02", "bd09"), ("bd09", "gcj02")):
        yield (point, drawn, *from_wgs84(*to_wgs84(lon, lat, point), drawn))
