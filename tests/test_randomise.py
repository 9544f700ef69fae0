"""The litter training set's domain randomisation and hard negatives (models/litter/randomise.py)."""

import doctest

import numpy as np
import pytest

from models.litter import randomise
from models.litter.make_dataset import compose
from models.litter.randomise import NEGATIVES, Swatches, _draw, camera, flat_spill, furniture, pile
from models.litter.synth import composite


def scenes(seed: int = 0, count: int = 3) -> list[np.ndarray]:
    """Backgrounds with some structure: a gradient, stripes, noise."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        yy, xx = np.mgrid[0:300, 0:400]
        base = np.stack([(xx * (k + 1)) % 256, (yy * 2) % 256, (xx + yy) % 256], axis=2).astype(np.float32)
        out.append((base * 0.6 + rng.integers(0, 100, base.shape)).clip(0, 255).astype(np.uint8))
    return out


def test_doctests():
    assert doctest.testmod(randomise).failed == 0


@pytest.mark.parametrize("name", NEGATIVES)
def test_every_hard_negative_draws_something_in_the_picture(name):
    rng = np.random.default_rng(3)
    swatches = Swatches(rng, scenes(), count=20)
    image = np.full((312, 416, 3), 128, np.uint8)
    draw = _draw(rng, image, name, 208, 220, 50, swatches)
    assert draw is not None
    draw()
    changed = np.abs(image.astype(int) - 128).sum(axis=2) > 6
    assert changed.sum() > 30, f"{name} left the picture as it was"
    assert image.shape == (312, 416, 3) and image.dtype == np.uint8


def test_a_negative_off_the_picture_is_not_drawn():
    rng = np.random.default_rng(1)
    image = np.full((100, 100, 3), 128, np.uint8)
    assert _draw(rng, image, "manhole", 5000, 5000, 20, Swatches(rng, scenes(), count=5)) is None
    assert (image == 128).all()


def test_furniture_returns_what_it_drew():
    rng = np.random.default_rng(5)
    image = np.full((312, 416, 3), 128, np.uint8)
    drawn = furniture(rng, image, Swatches(rng, scenes(), count=20), 4)
    assert len(drawn) == 4 and set(drawn) <= set(NEGATIVES)
    assert (image != 128).any()


@pytest.mark.parametrize("shape", [pile, flat_spill])
def test_randomised_objects_fill_their_box(shape):
    """The label is the visible box: an object must cover most of the box it was given."""
    swatches = Swatches(np.random.default_rng(0), scenes(), count=30)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        layer = shape(rng, 120, 60, swatches)
        ground = np.full((200, 300, 3), 120, np.uint8)
        box = composite(ground, layer, 90, 70)
        assert box is not None, seed
        x1, y1, x2, y2 = box
        assert x2 - x1 >= 0.5 * 120 and y2 - y1 >= 0.4 * 60, (seed, box)
        assert 90 <= x1 and x2 <= 210 and 70 <= y1 and y2 <= 130


@pytest.mark.slow
def test_composed_images_span_the_sizes_and_label_only_litter():
    rng = np.random.default_rng(11)
    backgrounds = scenes(count=4)
    swatches = Swatches(rng, backgrounds, count=40)
    areas, classes, empty = [], set(), 0
    for _ in range(60):
        image, labels = compose(rng, backgrounds, "train", swatches)
        assert image.dtype == np.uint8 and image.ndim == 3
        empty += not labels
        for c, cx, cy, w, h in labels:
            classes.add(c)
            assert 0 <= cx - w / 2 + 1e-6 and cx + w / 2 <= 1 + 1e-6 and 0 <= cy - h / 2 + 1e-6 and cy + h / 2 <= 1 + 1e-6
            areas.append(w * h)
    assert classes == {0, 1}
    assert min(areas) < 0.01 and max(areas) > 0.08  # from about 1 % to about 20 % of the picture
    assert 0 < empty < 30  # some pictures hold only background and hard negatives


def test_camera_keeps_the_picture_and_sometimes_turns_it_grey():
    rng = np.random.default_rng(2)
    image = scenes(count=1)[0]
    outs = [camera(rng, image) for _ in range(40)]
    assert all(o.shape == image.shape and o.dtype == np.uint8 for o in outs)
    grey = [o for o in outs if (np.abs(o[..., 0].astype(int) - o[..., 2]) <= 1).mean() > 0.95]
    assert 0 < len(grey) < 20
