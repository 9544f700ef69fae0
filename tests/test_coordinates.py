"""Coordinates from Chinese web maps: a boundary map drawn on AMap or Baidu, or a camera's location read off one,
is converted to WGS 84 when it loads (``grids_coordinates`` in the tables, ``coordinates`` in a box's config), and
a camera that lies outside its grid only because the two sides are in different systems is said to be so."""

import json
import re
import shutil
import time

import pytest
import yaml

from edge.config import ConfigError, parse_config
from edge.detector import load_detector
from edge.pipeline import CameraPipeline
from gateway.cases import distance_m, outside_its_grid
from gateway.config import TABLES_DIR, GatewayConfigError, load_tables
from xueliang import coordinates
from xueliang.coordinates import from_wgs84, gcj02_to_bd09, gcj02_to_wgs84, to_wgs84, wgs84_to_gcj02

# published reference points, (longitude, latitude): eviltransform's test values (Shanghai, Shenzhen, Beijing) and
# coordtransform's example (Tiananmen), WGS 84 -> GCJ-02
WGS_GCJ = [
    ((121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),
    ((113.912316, 22.543847), (113.9171764808363, 22.540796131694766)),
    ((116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),
    ((116.404, 39.915), (116.41024449916938, 39.91640428150164)),
]
# coordtransform's example, GCJ-02 -> BD-09
GCJ_BD = [((116.404, 39.915), (116.41036949371029, 39.92133699351021))]


def metres(a, b):
    return distance_m(a[1], a[0], b[1], b[0])


@pytest.mark.parametrize("wgs, gcj", WGS_GCJ)
def test_gcj02_matches_the_published_reference_points_both_ways(wgs, gcj):
    assert metres(wgs84_to_gcj02(*wgs), gcj) < 0.01
    assert metres(gcj02_to_wgs84(*gcj), wgs) < 0.01  # the iterative inverse: well under the metre asked of it
    assert metres(to_wgs84(*gcj, "gcj02"), wgs) < 0.01 and metres(from_wgs84(*wgs, "gcj02"), gcj) < 0.01
    assert 400 < metres(wgs, gcj) < 700  # what was wrong by it


@pytest.mark.parametrize("gcj, bd", GCJ_BD)
def test_bd09_matches_the_published_reference_point_and_goes_through_gcj02(gcj, bd):
    assert metres(gcj02_to_bd09(*gcj), bd) < 0.01
    assert metres(to_wgs84(*bd, "bd09"), gcj02_to_wgs84(*gcj)) < 0.01
    assert metres(from_wgs84(*gcj02_to_wgs84(*gcj), "bd09"), bd) < 0.01


def test_the_inverses_hold_across_china_and_outside_it_nothing_moves():
    for lon in range(74, 136, 4):
        for lat in range(19, 54, 3):
            for system in ("gcj02", "bd09"):
                back = to_wgs84(*from_wgs84(lon + 0.37, lat + 0.61, system), system)
                assert metres(back, (lon + 0.37, lat + 0.61)) < 0.01, (lon, lat, system)
    for outside in [(2.2945, 48.8584), (-74.0445, 40.6892), (151.2153, -33.8568)]:  # Paris, New York, Sydney
        assert all(to_wgs84(*outside, s) == from_wgs84(*outside, s) == outside for s in coordinates.SYSTEMS)


# a basic grid of the demo tree ~200 m across around (117.15, 39.17) in WGS 84, and the camera standing in it
SQUARE = [(117.149, 39.169), (117.151, 39.169), (117.151, 39.171), (117.149, 39.171), (117.149, 39.169)]
CAMERA = {"lat": 39.1702, "lon": 117.1503}


def tables_drawn_in(tmp_path, system, written=None):
    """The demo tables with one boundary, ``SQUARE`` as a map in ``system`` draws it; ``written`` the
    ``grids_coordinates`` the tables say (none written: left out)."""
    shutil.copy(TABLES_DIR / "demo-grids.csv", tmp_path / "demo-grids.csv")
    demo = re.sub(r"^grids_coordinates:.*\n", "", (TABLES_DIR / "demo.yaml").read_text(), flags=re.M)
    (tmp_path / "demo.yaml").write_text(demo + (f"\ngrids_coordinates: {written}\n" if written is not None else ""))
    ring = [list(from_wgs84(lon, lat, system)) for lon, lat in SQUARE]
    (tmp_path / "demo-grids.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": "HQ-DZG-10D-07"}, "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
    return load_tables(tmp_path / "demo.yaml")


@pytest.mark.parametrize("system", ["gcj02", "bd09", "wgs84"])
def test_a_boundary_map_drawn_on_a_chinese_web_map_is_converted_to_wgs84_when_the_tables_load(tmp_path, system):
    tables = tables_drawn_in(tmp_path, system, written=system)
    assert tables.grids_coordinates == system
    loaded = tables.grid_shapes["HQ-DZG-10D-07"][0][0]
    assert max(metres(a, b) for a, b in zip(loaded, SQUARE)) < 0.01
    assert tables.grids_at(CAMERA["lon"], CAMERA["lat"]) == ["HQ-DZG-10D-07"]
    assert outside_its_grid({"grid": "HQ-DZG-10D-07", "location": CAMERA}, tables) is None


def test_the_tables_coordinate_system_is_one_of_three_and_says_something(tmp_path):
    with pytest.raises(GatewayConfigError, match=r"grids_coordinates: Input should be 'wgs84', 'gcj02' or 'bd09'"):
        tables_drawn_in(tmp_path, "gcj02", written="GCJ-02")
    tables_drawn_in(tmp_path, "gcj02", written="gcj02")
    text = (tmp_path / "demo.yaml").read_text().replace("grids_geojson:", "# grids_geojson:")
    (tmp_path / "bare.yaml").write_text(text)
    with pytest.raises(GatewayConfigError, match="grids_coordinates: gcj02 says what the grids' boundary map is drawn "
                       "in, and the tables name none; write grids_geojson or leave grids_coordinates out"):
        load_tables(tmp_path / "bare.yaml")


@pytest.mark.parametrize("drawn, said", [
    ("gcj02", "read as WGS 84 (GPS, Tianditu) on a boundary map drawn in GCJ-02 (AMap, Tencent), it lies inside"),
    ("bd09", "read as WGS 84 (GPS, Tianditu) on a boundary map drawn in BD-09 (Baidu), it lies inside"),
])
def test_a_camera_outside_its_grid_only_because_the_map_is_in_another_system_says_so_and_names_the_keys(
        tmp_path, drawn, said):
    tables = tables_drawn_in(tmp_path, drawn)  # drawn on AMap or Baidu, the tables not told
    note = outside_its_grid({"grid": "HQ-DZG-10D-07", "box": "b1", "location": CAMERA}, tables)
    assert note.startswith("camera location (39.1702, 117.1503) lies outside grid HQ-DZG-10D-07's: the case stays "
                           "in its zone's grid; " + said), note
    assert ("the location and the map are likely in different coordinate systems: set grids_coordinates in the "
            "tables (now wgs84) to the map's, and coordinates in box 'b1''s config to its cameras' (wgs84, gcj02 or "
            "bd09)") in note, note


def test_a_camera_off_its_grid_by_a_chinese_maps_offset_is_said_so_and_one_truly_elsewhere_is_not(tmp_path):
    tables = tables_drawn_in(tmp_path, "wgs84")
    on_amap = dict(zip(("lon", "lat"), from_wgs84(CAMERA["lon"], CAMERA["lat"], "gcj02")))  # read off AMap
    note = outside_its_grid({"grid": "HQ-DZG-10D-07", "box": "b1", "location": on_amap}, tables)
    assert "read as GCJ-02 (AMap, Tencent) on a boundary map drawn in WGS 84 (GPS, Tianditu), it lies inside" in note
    far = {"lat": 39.19, "lon": 117.17}  # 3 km off: no reading brings it in
    note = outside_its_grid({"grid": "HQ-DZG-10D-07", "box": "b1", "location": far}, tables)
    assert note == ("camera location (39.19, 117.17) lies outside grid HQ-DZG-10D-07's: the case stays in its "
                    "zone's grid")


def box_config(top=None, camera=None):
    cam = {"id": "gate", "url": "x.mp4", "grid": "HQ-DZG-10D-07", "location": {"lat": 39.17, "lon": 117.15}}
    return parse_config({"box": "b1", **(top or {}), "cameras": [{**cam, **(camera or {})}]})


@pytest.fixture(scope="module")
def vehicle_model():
    return load_detector("ssd_mobilenet_v2_coco")


@pytest.mark.parametrize("top, camera, system", [
    (None, None, "wgs84"),
    ({"coordinates": "gcj02"}, None, "gcj02"),
    ({"coordinates": "gcj02"}, {"coordinates": "bd09"}, "bd09"),  # a camera's own wins
    ({"coordinates": "bd09"}, {"coordinates": "wgs84"}, "wgs84"),
])
def test_a_boxs_cameras_locations_go_on_the_wire_in_wgs84_from_the_system_they_are_written_in(
        vehicle_model, top, camera, system):
    config = box_config(top, camera)
    pipeline = CameraPipeline(config, config.cameras[0], {"vehicle": vehicle_model})
    t = time.time()
    sent = [o.message for o in pipeline.camera_lost(t, "refused") + pipeline.camera_lost(t + 3600, "refused")]
    assert sent, "no fault raised"
    lon, lat = to_wgs84(117.15, 39.17, system)
    assert sent[0]["location"] == {"lat": lat, "lon": lon}


def test_a_cameras_coordinate_system_misspelt_is_refused_naming_the_camera():
    with pytest.raises(ConfigError, match=r"camera 'gate' coordinates: Input should be 'wgs84', 'gcj02' or 'bd09'"):
        box_config(camera={"coordinates": "amap"})
    with pytest.raises(ConfigError, match=r"coordinates: Input should be 'wgs84', 'gcj02' or 'bd09'"):
        box_config(top={"coordinates": "GCJ02"})


def test_edge_check_shows_where_a_camera_written_in_another_system_is_sent(tmp_path, capsys, monkeypatch):
    """An installer who read the locations off AMap or Baidu sees, before the box runs, the WGS 84 position that the
    map will show; a camera written in WGS 84 is printed as before."""
    from xueliang.cli import main

    monkeypatch.chdir(tmp_path)  # the cameras' files, where the box reads them
    for name in "abcd":
        (tmp_path / f"{name}.mp4").touch()
    path = tmp_path / "edge.yaml"
    cameras = [{"id": "amap", "url": "a.mp4", "grid": "G", "location": {"lat": 39.913345, "lon": 116.384047}},
               {"id": "baidu", "url": "b.mp4", "grid": "G", "coordinates": "bd09",
                "location": {"lat": 39.17, "lon": 117.15}},
               {"id": "gps", "url": "c.mp4", "grid": "G", "coordinates": "wgs84",
                "location": {"lat": 39.17, "lon": 117.15}},
               {"id": "paris", "url": "d.mp4", "grid": "G", "location": {"lat": 48.8584, "lon": 2.2945}}]
    path.write_text(yaml.safe_dump({"box": "b1", "coordinates": "gcj02", "cameras": cameras}))
    assert main(["edge", "--config", str(path), "--check"]) == 0, capsys.readouterr().err
    lines = [line for line in capsys.readouterr().out.splitlines() if "no zones" not in line]  # none drawn yet
    lon, lat = to_wgs84(117.15, 39.17, "bd09")
    assert lines[1:] == [
        "  camera amap: a.mp4, grid G, 0 zone(s)",
        "    location 39.913345, 116.384047 in GCJ-02 (AMap, Tencent): sent in WGS 84 as 39.911954, 116.377817",
        "  camera baidu: b.mp4, grid G, 0 zone(s)",
        f"    location 39.17, 117.15 in BD-09 (Baidu): sent in WGS 84 as {lat:.6f}, {lon:.6f}",
        "  camera gps: c.mp4, grid G, 0 zone(s)",
        "  camera paris: d.mp4, grid G, 0 zone(s)",
        "    location 48.8584, 2.2945 in GCJ-02 (AMap, Tencent): sent as written (outside mainland China no offset "
        "applies)"]
