"""The grids' boundaries: the GeoJSON a city's tables name is checked when they load (a mistake
names its grid), and the demo city's file agrees with its grid tree and its cameras."""

import json
import math
import os
import shutil

import pytest
import yaml

from gateway import gridmap
from gateway.config import TABLES_DIR, GatewayConfigError, load_tables
from xueliang.demo import fixture_cameras

SQUARE = [[117.0, 39.0], [117.01, 39.0], [117.01, 39.01], [117.0, 39.01], [117.0, 39.0]]
BOW_TIE = [[117.0, 39.0], [117.01, 39.01], [117.01, 39.0], [117.0, 39.01], [117.0, 39.0]]


def circle(n):
    """A closed ring of ``n`` positions about 1 km across."""
    ring = [[117.0 + 0.005 * math.cos(2 * math.pi * k / (n - 1)), 39.0 + 0.005 * math.sin(2 * math.pi * k / (n - 1))]
            for k in range(n - 1)]
    return ring + [ring[0]]


def feature(code, coordinates, kind="Polygon"):
    return {"type": "Feature", "properties": {"code": code}, "geometry": {"type": kind, "coordinates": coordinates}}


@pytest.mark.parametrize("features, error", [
    ([feature("HQ-NOPE", [SQUARE])], "grid 'HQ-NOPE' has a boundary in the grids' GeoJSON but is not in the grid tree"),
    ([feature("HQ-DZG", [SQUARE[:-1]])], "feature 0 (grid 'HQ-DZG'): polygon 0 ring 0 is not closed"),
    ([feature("HQ", [SQUARE]), feature("HQ-XYM", [[[39.0, 117.0]] + SQUARE[1:4] + [[39.0, 117.0]]])],
     "feature 1 (grid 'HQ-XYM'): polygon 0 ring 0 position 0 [39.0, 117.0] is outside longitude -180..180, "
     "latitude -90..90 (GeoJSON is longitude first)"),
    ([feature("HQ", [SQUARE]), feature("HQ", [SQUARE])], "feature 1 (grid 'HQ'): grid 'HQ' has a second feature"),
    ([feature("HQ", [[[117.0, 39.0], [117.01, 39.0], [117.02, 39.0], [117.0, 39.0]]])],
     "feature 0 (grid 'HQ'): polygon 0 ring 0 encloses no area"),
    ([feature("HQ", [SQUARE], "Point")], "feature 0 (grid 'HQ'): geometry must be a Polygon or MultiPolygon, not Point"),
    ([{"type": "Feature", "properties": {}, "geometry": None}], "feature 0 (grid None): properties.code must name a grid"),
    # a bow-tie: its area the difference of its loops (the symmetric one was refused as enclosing none)
    ([feature("HQ", [BOW_TIE])], "feature 0 (grid 'HQ'): polygon 0 ring 0 crosses itself: edges 0 and 2 cross "
     "([117.0, 39.0]-[117.01, 39.01] and [117.01, 39.0]-[117.0, 39.01]; edge k runs from position k to k + 1)"),
    ([feature("HQ", [[[117.0, 39.0], [117.01, 39.01], [117.01, 39.0], [117.0, 39.005], [117.0, 39.0]]])],
     "feature 0 (grid 'HQ'): polygon 0 ring 0 crosses itself: edges 0 and 2 cross"),
    ([feature("HQ", [SQUARE, circle(10_001)])], "feature 0 (grid 'HQ'): polygon 0 ring 1 has 10001 positions, "
     "at most 10000; simplify the boundary"),
    ([feature("HQ", [[SQUARE]], "MultiPolygon")], None),
    ([feature("HQ", [circle(gridmap.MAX_RING_POSITIONS)])], None),
    ([feature("HQ", [SQUARE[:2] + SQUARE[1:]])], None),  # a position repeated: as GIS tools write them
])
def test_grid_boundaries_are_checked_when_the_tables_load(tmp_path, features, error):
    for name in ("demo.yaml", "demo-grids.csv"):
        shutil.copy(TABLES_DIR / name, tmp_path / name)
    (tmp_path / "demo-grids.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    if error is None:
        assert list(load_tables(tmp_path / "demo.yaml").grid_shapes) == ["HQ"]
        return
    with pytest.raises(GatewayConfigError) as failed:
        load_tables(tmp_path / "demo.yaml")
    assert error in str(failed.value)


def test_a_missing_or_broken_geojson_file_is_named(tmp_path):
    for name in ("demo.yaml", "demo-grids.csv"):
        shutil.copy(TABLES_DIR / name, tmp_path / name)
    with pytest.raises(GatewayConfigError, match="demo-grids.geojson: no such file"):
        load_tables(tmp_path / "demo.yaml")
    (tmp_path / "demo-grids.geojson").write_text("{not json")
    with pytest.raises(GatewayConfigError, match="demo-grids.geojson: not JSON"):
        load_tables(tmp_path / "demo.yaml")
    # too big to read whole (a sparse file: no disk used): refused before it is read
    os.truncate(tmp_path / "demo-grids.geojson", gridmap.MAX_FILE_BYTES + 1)
    with pytest.raises(GatewayConfigError, match=r"demo-grids.geojson: 67,108,865 bytes, at most 67,108,864 \(64 MiB\); simplify"):
        load_tables(tmp_path / "demo.yaml")


def test_the_demo_citys_boundaries_fit_its_grid_tree_and_its_cameras():
    tables = load_tables(TABLES_DIR / "demo.yaml")
    assert set(tables.grid_shapes) == {g.code for g in tables.grids}  # every grid of the tree is drawn
    for code, polygons in tables.grid_shapes.items():  # a grid lies within the grid above it
        parent = tables.parents[code]
        if parent is not None:
            assert all(gridmap.contains(tables.grid_shapes[parent], *gridmap.label_point([p])) for p in polygons), code
    leaves = [g.code for g in tables.grids if g.level == "grid"]
    for a in leaves:  # basic grids do not overlap
        for b in leaves:
            if a != b:
                assert not gridmap.contains(tables.grid_shapes[b], *gridmap.label_point(tables.grid_shapes[a])), (a, b)
    cameras = fixture_cameras()
    assert cameras
    for camera in cameras:  # each demo camera stands in its own grid
        where = camera["location"]
        assert gridmap.contains(tables.grid_shapes[camera["grid"]], where["lon"], where["lat"]), camera["id"]
        assert [c for c, p in tables.grid_shapes.items() if c in leaves and gridmap.contains(p, where["lon"], where["lat"])] \
            == [camera["grid"]], camera["id"]


def test_the_scale_bar_matches_the_projection():
    tables = load_tables(TABLES_DIR / "demo.yaml")
    points = [pt for polys in tables.grid_shapes.values() for p in polys for pt in p[0]]
    proj = gridmap.Projection.fit(points, 900, 600)
    (x0, y0), (x1, _) = proj.xy(117.14, 39.17), proj.xy(117.17, 39.17)
    metres = (117.17 - 117.14) * gridmap.METRES_PER_DEGREE * 0.7752  # cos(39.17°)
    assert (x1 - x0) * proj.metres_per_px == pytest.approx(metres, rel=0.01)
    pixels, label = gridmap.scale_bar(proj.metres_per_px)
    assert label == "500 米" and pixels * proj.metres_per_px == pytest.approx(500, rel=0.01)


def test_demo_yaml_names_the_geojson():
    assert yaml.safe_load((TABLES_DIR / "demo.yaml").read_text())["grids_geojson"] == "demo-grids.geojson"
