"""The mesh evaluation generator (models/litter/meshgen.py, drawing in meshdraw.py): the rasteriser, the
plan a truth file promises, and the truth file itself; no video is rendered.
"""

import doctest
import functools

import numpy as np
import pytest
import yaml

from edge.config import parse_config
from edge.geometry import polygon_area
from models.litter import meshdraw, meshgen
from models.litter.meshgen import BOX_FRACTION, ZONE_RATIO, box_inside, overlaps, plan_set, truth_text


@functools.cache
def plans() -> list:
    """The four clips' plans the tests below read, made at their first test, not at collection: they were 1.5 s
    of each worker's start, a worker running none of these tests too."""
    return plan_set(4, seed=11)


@pytest.mark.parametrize("module", [meshgen, meshdraw], ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    assert doctest.testmod(module).failed == 0


def test_rasteriser_fills_a_triangle_and_the_nearer_one_wins():
    far = [[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]]  # the upper-left half of an 8 x 8 picture
    near = [[0.0, 0.0], [8.0, 0.0], [8.0, 8.0]]  # the upper-right half
    uv = np.array(far + near)
    depth = np.array([5.0, 5.0, 5.0, 2.0, 2.0, 2.0])
    zbuf, index, _ = meshdraw.rasterise(uv, depth, np.array([[0, 1, 2], [3, 4, 5]]), 8, 8)
    rows, cols = np.mgrid[0:8, 0:8] + 0.5
    in_far, in_near = cols + rows <= 8, cols >= rows
    assert (index[in_near] == 1).all()  # where both cover, the nearer
    assert (index[in_far & ~in_near] == 0).all()
    assert (index[~in_far & ~in_near] == -1).all() and np.isinf(zbuf[~in_far & ~in_near]).all()
    assert index[6, 1] == 0 and index[1, 5] == 1 and index[7, 4] == -1


def test_a_cube_in_front_of_the_camera_shows_its_near_face():
    cam = meshdraw.Camera(f=100.0, cx=50.0, cy=50.0, height_m=0.5, tilt=0.0)
    cube = meshdraw.cuboid((-0.5, 0.0, 4.5), (0.5, 1.0, 5.5), (1.0, 0.0, 0.0))
    proj = cam.project(cube.verts)
    zbuf, index, _ = meshdraw.rasterise(proj[:, :2], proj[:, 2], cube.faces, 100, 100)
    near_face = {0, 1}  # the z = 4.5 quad, first in cuboid's list
    assert index[50, 50] in near_face
    assert zbuf[50, 50] == pytest.approx(4.5)
    assert index[5, 5] == -1  # outside the cube's outline


def test_camera_ground_round_trip():
    cam = meshdraw.Camera(f=600.0, cx=320.0, cy=180.0, height_m=8.0, tilt=0.2)
    u, v = np.array([100.0, 500.0]), np.array([250.0, 340.0])
    x, z = cam.to_ground(u, v)
    back = cam.project(np.stack([x, np.zeros(2), z], axis=1))
    assert np.allclose(back[:, 0], u) and np.allclose(back[:, 1], v)


@pytest.mark.slow
def test_same_seed_same_plan_and_another_seed_another():
    assert plan_set(2, seed=5) == plan_set(2, seed=5)
    assert plan_set(2, seed=6) != plan_set(2, seed=5)


@pytest.mark.parametrize("clip", range(4))
def test_boxes_lie_in_their_zones_which_lie_in_frame_apart(clip):
    plan = plans()[clip]
    w, h = plan.size
    for s in plan.staged:
        assert box_inside(s.box, s.polygon), (plan.name, s.zone)
        area = (s.box[2] - s.box[0]) * (s.box[3] - s.box[1])
        assert BOX_FRACTION[0] <= area / (w * h) <= BOX_FRACTION[1]
        assert ZONE_RATIO[0] * 0.95 <= polygon_area(s.polygon) / area <= ZONE_RATIO[1] * 1.05
        assert all(0 <= u < w and 0 <= v < h for u, v in s.polygon)
        for f in s.furniture:
            assert box_inside(f.box, s.polygon)
        assert 8.0 <= s.appear_s and s.clear_s - s.appear_s >= 25.0 and plan.duration_s - s.clear_s >= 12.0
    for i, a in enumerate(plan.staged):
        for b in plan.staged[i + 1:]:
            assert not overlaps(a.polygon, b.polygon, gap=0.0)


@pytest.mark.slow
def test_types_are_balanced_over_a_set():
    types = [s.type for p in plan_set(6, seed=3) for s in p.staged]
    assert abs(types.count("garbage") - types.count("spill")) <= 1


@pytest.mark.parametrize("clip", range(4))
def test_truth_parses_as_an_edge_camera(clip):
    plan = plans()[clip]
    truth = yaml.safe_load(truth_text(plan, f"/tmp/{plan.name}.mp4"))
    config = parse_config({"box": "eval", "cameras": [truth["camera"]], "detection": {}}, "x")
    assert [z.id for z in config.cameras[0].zones] == [e["zone"] for e in truth["expect"]]
    for e in truth["expect"]:
        assert e["start_after_s"] == pytest.approx(e["appear_s"] + 10.0)
        assert e["type"] in ("garbage", "spill") and e["count"] == 1
    assert truth["composed"] is True
