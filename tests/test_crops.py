"""Crop planning: every parking zone is seen at a useful scale, whatever other zones the camera has."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.detector import closer_places, closer_regions, crop_regions

KERB = [(0.80, 0.03), (0.97, 0.03), (0.97, 0.22), (0.80, 0.22)]
BAY = [(0.60, 0.05), (0.70, 0.05), (0.70, 0.15), (0.60, 0.15)]
WALKWAY = [(0.00, 0.24), (0.79, 0.24), (0.79, 0.62), (0.00, 0.62)]
HATCHED = [(0.40, 0.01), (0.79, 0.01), (0.79, 0.23), (0.40, 0.23)]
EVERYTHING = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]


def box_px(poly, w, h):
    return min(x for x, _ in poly) * w, min(y for _, y in poly) * h, max(x for x, _ in poly) * w, max(y for _, y in poly) * h


def scale_for(poly, regions, w, h) -> float:
    """How much the zone's best region is shrunk to the 300 px input (the zone must lie inside it)."""
    x1, y1, x2, y2 = box_px(poly, w, h)
    fits = [r for r in regions if r[0] <= x1 + 1 and r[1] <= y1 + 1 and r[2] >= x2 - 1 and r[3] >= y2 - 1]
    return min(max(r[2] - r[0], r[3] - r[1]) for r in fits) / 300 if fits else float("inf")


@pytest.mark.parametrize("w, h", [(768, 576), (1280, 720), (1920, 1080)])
@pytest.mark.parametrize("layout", [[KERB], [KERB, WALKWAY, HATCHED], [KERB, BAY, HATCHED], [EVERYTHING, KERB]])
def test_a_small_zone_keeps_its_own_scale_next_to_large_ones(layout, w, h):
    regions = crop_regions(layout, w, h, max_side=900)
    alone = crop_regions([KERB], w, h, max_side=900)
    assert scale_for(KERB, regions, w, h) <= 1.5 * max(1.0, scale_for(KERB, alone, w, h))
    for r in regions:
        assert max(r[2] - r[0], r[3] - r[1]) <= 900 and 0 <= r[0] < r[2] <= w and 0 <= r[1] < r[3] <= h


@pytest.mark.parametrize("poly", [KERB, BAY, WALKWAY, HATCHED, EVERYTHING])
def test_no_zone_is_left_without_crops_covering_it(poly):
    w, h = 1920, 1080
    regions = crop_regions([poly, KERB], w, h, max_side=900)
    x1, y1, x2, y2 = box_px(poly, w, h)
    step = 10
    for x in range(int(x1), int(x2), step):
        for y in range(int(y1), int(y2), step):
            assert any(r[0] <= x <= r[2] and r[1] <= y <= r[3] for r in regions), (x, y)


def test_two_small_neighbouring_bays_share_one_crop():
    left = [(0.60, 0.05), (0.68, 0.05), (0.68, 0.15), (0.60, 0.15)]
    right = [(0.69, 0.05), (0.77, 0.05), (0.77, 0.15), (0.69, 0.15)]
    assert len(crop_regions([left, right], 1280, 720, max_side=900)) == 1


def test_a_zone_larger_than_the_crop_limit_is_tiled():
    regions = crop_regions([EVERYTHING], 1920, 1080, max_side=900)
    assert len(regions) == 6 and all(r[2] - r[0] == 900 for r in regions)


@pytest.mark.parametrize("zone, w, h", [
    ([(0.51, 0.51), (0.52, 0.51), (0.52, 0.52), (0.51, 0.52)], 32, 24),  # a thumbnail sub-stream
    ([(0.999, 0.999), (1.0, 0.999), (1.0, 1.0)], 32, 24),
    ([(0.0, 0.0), (0.001, 0.0), (0.0, 0.001)], 640, 360),
])
def test_a_zone_under_a_pixel_still_gets_a_pixel_never_an_empty_crop(zone, w, h):
    for x1, y1, x2, y2 in crop_regions([zone], w, h):
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h


@settings(max_examples=300, deadline=None)
@given(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1),
       st.sampled_from([(768, 576), (1920, 1080), (352, 288), (64, 48), (2560, 1440)]), st.integers(16, 1000))
def test_a_closer_look_is_a_square_crop_in_the_frame_around_its_place(a, b, c, d, size, largest):
    """Whatever the still, changed place (down to none wide, at the frame's edge) and the frame: the
    closer look's crop is square, inside the frame, not empty, at most ``largest`` (or the frame's
    shorter side), and holds the place's centre; a place it can hold whole, it holds."""
    w, h = size
    box = (min(a, c), min(b, d), max(a, c), max(b, d))
    ((x1, y1, x2, y2),) = closer_regions([box], w, h, largest=largest)
    side = x2 - x1
    assert side == y2 - y1 and 0 < side <= min(largest, w, h)
    assert 0 <= x1 and 0 <= y1 and x2 <= w and y2 <= h
    cx, cy = (box[0] + box[2]) / 2 * w, (box[1] + box[3]) / 2 * h
    assert x1 - 1 <= cx <= x2 + 1 and y1 - 1 <= cy <= y2 + 1
    if max((box[2] - box[0]) * w, (box[3] - box[1]) * h) * 3 <= min(largest, w, h):
        assert x1 - 1 <= box[0] * w and box[2] * w <= x2 + 1 and y1 - 1 <= box[1] * h and box[3] * h <= y2 + 1


boxes = st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)).map(
    lambda v: (min(v[0], v[2]), min(v[1], v[3]), max(v[0], v[2]), max(v[1], v[3])))


@settings(max_examples=300, deadline=None)
@given(boxes, st.lists(boxes, max_size=4))
def test_a_closer_look_holds_the_model_boxes_over_its_place_and_no_others(place, named):
    """A still, changed place that is a piece of an object (a faint spill, a pile half behind a passer-by):
    the closer look is cut around the place and every box the model put over it, so on a frame that can
    hold three times that, the whole object is in the crop; a box elsewhere does not widen it."""
    (got,) = closer_places([place], named)
    over = [b for b in named if b[0] < place[2] and place[0] < b[2] and b[1] < place[3] and place[1] < b[3]]
    for b in [place] + over:
        assert got[0] <= b[0] and got[1] <= b[1] and b[2] <= got[2] and b[3] <= got[3], (got, b)
    assert got[0] in [b[0] for b in [place] + over] and got[2] in [b[2] for b in [place] + over]
    assert got[1] in [b[1] for b in [place] + over] and got[3] in [b[3] for b in [place] + over]
    w, h = 1920, 1080
    ((x1, y1, x2, y2),) = closer_regions([got], w, h, largest=1080)
    if max((got[2] - got[0]) * w, (got[3] - got[1]) * h) * 3 <= h:
        for b in over:
            assert x1 - 1 <= b[0] * w and b[2] * w <= x2 + 1 and y1 - 1 <= b[1] * h and b[3] * h <= y2 + 1
