"""The grids' boundaries: the GeoJSON a city's tables name is checked when they load (a mistake
names its grid), and the demo city's file agrees with its grid tree and its cameras."""

import json
import re
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


def test_the_grid_files_mistakes_name_each_file_by_its_path_as_the_tables_give_it(tmp_path):
    """A feature of the GeoJSON was named by the file's bare name, a row of the CSV by its whole path: an installer
    finds the file the tables named by its whole path, whichever it is."""
    for name in ("demo.yaml", "demo-grids.csv"):
        shutil.copy(TABLES_DIR / name, tmp_path / name)
    (tmp_path / "demo-grids.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        feature("HQ", [SQUARE[:-1]])]}))
    with pytest.raises(GatewayConfigError) as failed:
        load_tables(tmp_path / "demo.yaml")
    assert str(failed.value).startswith(f"{tmp_path / 'demo-grids.geojson'}: feature 0 (grid 'HQ'): polygon 0 ring 0 ")
    with (tmp_path / "demo-grids.csv").open("a") as csv:
        csv.write("HQ-X,,grid,HQ\n")
    with pytest.raises(GatewayConfigError) as failed:
        load_tables(tmp_path / "demo.yaml")
    assert str(failed.value).startswith(f"{tmp_path / 'demo-grids.csv'} row ")


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


def demo_map(marks, cameras=()):
    tables = load_tables(TABLES_DIR / "demo.yaml")
    shapes = tables.grid_shapes
    return gridmap.render(shapes, tables.grid_names, {c: len(tables.ancestors(c)) for c in shapes},
                          {up for c in shapes for up in tables.ancestors(c)[1:]}, marks, list(cameras))


def circles(svg: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"<circle[^>]* cx=(-?[\d.]+) cy=(-?[\d.]+)", svg)]


def grid_extent(svg: str, code: str) -> tuple[float, float]:
    d = re.search(rf"data-grid='{code}' fill-rule=evenodd d='([^']+)'", svg)[1]
    xs, ys = zip(*((float(x), float(y)) for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)", d)))
    return max(xs) - min(xs), max(ys) - min(ys)


def test_a_case_far_from_the_city_is_drawn_at_the_edge_and_listed_not_shrinking_the_city():
    at_home = gridmap.Mark(117.155, 39.17, "/ui/cases/1", "case", "#1")
    far = gridmap.Mark(0.0, 0.0, "/ui/cases/2", "case", "#2")  # a box that sends 0, 0
    alone, with_far = demo_map([at_home]), demo_map([at_home, far], [(0.0, 0.0, "摄像机 far")])
    assert grid_extent(with_far.svg, "HQ") == grid_extent(alone.svg, "HQ")
    assert min(grid_extent(with_far.svg, "HQ")) > 200  # the city fills the picture, not a dot
    assert with_far.off_map == [far] and alone.off_map == []
    (x, y), = circles(with_far.svg.split("/ui/cases/2")[1])[:1]
    assert 0 < x < 900 and 0 < y < 600 and "off-map" in with_far.svg and "位置在网格范围外: #2" in with_far.svg
    assert "摄像机 far" not in with_far.svg  # a camera off the map is not drawn at the edge


@pytest.mark.parametrize("n, lon, lat", [(100, 117.155, 39.17), (300, 117.155, 39.17), (300, 0.0, 0.0),
                                         (30, 117.2, 39.17)])
def test_many_cases_at_one_place_stay_inside_the_map_each_clickable_the_rest_counted(n, lon, lat):
    drawn = demo_map([gridmap.Mark(lon, lat, f"/ui/cases/{i}", "case", f"#{i}") for i in range(1, n + 1)])
    radius, slots = gridmap.ring(n)
    spots = circles(drawn.svg)  # the cases' circles and the count's
    assert len(spots) == slots and all(6 <= x <= 900 - 6 and 6 <= y <= 600 - 6 for x, y in spots)
    assert min(math.dist(a, b) for a in spots for b in spots if a != b) >= gridmap.SPACING_PX - 1
    linked = re.findall(r"<a href='/ui/cases/(\d+)'>", drawn.svg)
    assert linked == [str(i) for i in range(1, slots)]  # the first ones given: the most urgent
    assert f"+{n - slots + 1}</text>" in drawn.svg and f"此处另有 {n - slots + 1} 个案件" in drawn.svg
