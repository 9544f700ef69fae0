"""The litter training set's domain randomisation and hard negatives (models/litter/randomise.py)."""

import doctest
import warnings

import numpy as np
import pytest

from models.litter import randomise
from models.litter.make_dataset import compose, write_split, write_train_split
from models.litter.randomise import NEGATIVES, Swatches, _draw, camera, flat_spill, furniture, h264, pile
from models.litter.synth import composite

from .conftest import needs_two_cores, on_one_core_and_on_all


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


def test_h264_smooths_faint_ground_more_the_higher_the_crf_and_keeps_the_picture():
    rng = np.random.default_rng(5)
    image = np.full((241, 321, 3), 120, np.uint8)  # odd sides: the last row and column are kept as they were
    image[60:180, 80:240] = (120 + rng.normal(0, 6, (120, 160, 3))).clip(0, 255).astype(np.uint8)  # sand on concrete
    faint = {crf: h264(image, crf) for crf in (26, 44)}
    assert all(o.shape == image.shape and o.dtype == np.uint8 for o in faint.values())
    assert (faint[44][-1] == image[-1]).all() and (faint[44][:, -1] == image[:, -1]).all()
    grain = {crf: float(o[60:180, 80:240].astype(np.float32).std()) for crf, o in faint.items()}
    assert grain[44] < 0.6 * grain[26] <= float(image[60:180, 80:240].std())
    assert abs(float(faint[44][60:180, 80:240].mean()) - 120) < 3  # the ground keeps its level


@pytest.mark.slow  # two Python processes, as test_parking_variants' twin
@needs_two_cores
def test_h264_gives_the_same_picture_on_one_core_as_on_all():
    """x264 with zerolatency cut the frame into a slice per thread, and its thread count followed the
    cores: the same picture came out otherwise on a 2-core machine than pinned to one core (and so the
    randomised training set differed from machine to machine). It encodes on one thread now."""
    one, every = on_one_core_and_on_all(
        "import hashlib, numpy as np; from models.litter.randomise import h264; "
        "rng = np.random.default_rng(3); image = (rng.random((360, 640, 3)) * 255).astype(np.uint8); "
        "print(hashlib.sha256(h264(image, 30).tobytes()).hexdigest())")
    assert one == every and len(one.strip()) == 64


@pytest.mark.slow
def test_the_spill_share_sets_the_classes_and_the_validation_seed_keeps_the_validation_split(tmp_path):
    backgrounds = scenes(count=3)
    counts = {}
    for share in (0.2, 0.8):
        rng = np.random.default_rng(3)
        swatches = Swatches(rng, backgrounds, count=20)
        classes = [c for _ in range(40) for c, *_ in compose(rng, backgrounds, "train", swatches, spills=share)[1]]
        counts[share] = classes.count(1) / len(classes)
    assert counts[0.2] < 0.35 and counts[0.8] > 0.65
    # a training split made otherwise (another seed, streamed frames) beside the same validation split
    made = {}
    for name, streamed in (("jpeg", 0.0), ("streamed", 1.0)):
        write_split(np.random.default_rng(8), backgrounds, "heldout", 3, tmp_path / name, "val", True)
        write_split(np.random.default_rng(17), backgrounds, "train", 3, tmp_path / name, "train", True, streamed)
        made[name] = {p.relative_to(tmp_path / name): p.read_bytes() for p in (tmp_path / name).rglob("*.*")}
    val = [k for k in made["jpeg"] if k.parts[1] == "val"]
    assert len(val) == 6 and all(made["jpeg"][k] == made["streamed"][k] for k in val)
    assert any(made["jpeg"][k] != made["streamed"][k] for k in made["jpeg"] if k.parts[1] == "train" and k.suffix == ".jpg")


@pytest.mark.slow
def test_a_sharded_training_split_is_the_same_however_many_processes_draw_it(tmp_path):
    backgrounds = scenes(count=3)
    made = {}
    for processes in (1, 2):
        out = tmp_path / str(processes)
        objects = write_train_split(7, 3, processes, backgrounds, 7, out, True, 0.0, 0.5, 0.0)
        made[processes] = {p.name: p.read_bytes() for p in sorted((out / "images/train").glob("*.jpg"))}
        labels = sum(len(p.read_text().splitlines()) for p in (out / "labels/train").glob("*.txt"))
        assert objects == labels
    # 7 images in 3 shards of 3, 2 and 2, each named by its shard
    assert sorted(made[1]) == [f"train-00-0000{i}.jpg" for i in range(3)] + [
        f"train-{k:02d}-0000{i}.jpg" for k in (1, 2) for i in range(2)]
    assert made[1] == made[2]
    # the shards are drawn from streams of their own: not three copies of one
    assert len({made[1]["train-00-00000.jpg"], made[1]["train-01-00000.jpg"], made[1]["train-02-00000.jpg"]}) == 3
    # one shard is the one stream of before, named as before
    write_train_split(7, 1, 2, backgrounds, 2, tmp_path / "one", True, 0.0, 0.5, 0.0)
    write_split(np.random.default_rng(7), backgrounds, "train", 2, tmp_path / "before", "train", True)
    assert [p.read_bytes() for p in sorted((tmp_path / "one/images/train").glob("*.jpg"))] == [
        p.read_bytes() for p in sorted((tmp_path / "before/images/train").glob("*.jpg"))]


def test_a_fill_that_is_not_a_number_where_the_mask_is_zero_leaves_the_picture_as_it_was():
    # new_ground's perspective interpolates NaN on its vanishing line, above the horizon the mask covers
    image = np.full((6, 8, 3), 128, np.uint8)
    fill = np.full((6, 8, 3), 40, np.float32)
    fill[:2] = np.nan
    mask = np.zeros((6, 8), np.float32)
    mask[3:] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        randomise._blend(image, mask, fill)
    assert (image[:3] == 128).all() and (image[3:] == 40).all()
