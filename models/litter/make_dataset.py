"""Compose the garbage/spill training set: real backgrounds + procedural objects, YOLO labels.

    python models/litter/make_dataset.py [--train 1200] [--val 300] [--seed 7] [--extra EXPORT ...]

Reads ``data/litter/backgrounds/{train,heldout}`` (``fetch_backgrounds.sh``) and writes
``data/litter/dataset/`` with ``images/``, ``labels/`` and ``dataset.yaml``. The split
keeps whole backgrounds apart: validation images are composed only on held-out
backgrounds with the held-out texture family, so neither their scenes nor their colours
and grain were seen in training. Each image is a crop of a background (the edge runs the
detector on padded crops around the zones), with 0-3 objects scaled and flattened by
their height in the picture, some partly hidden behind a strip of another scene (a
passer-by or a car), then blurred, re-lit and JPEG-compressed at random.

``--randomise`` composes with domain randomisation and hard negatives instead
(``randomise.py``): textures cut from the split's own pictures, 0-4 unlabelled hard
negatives (street furniture, markings, shadows, puddles, leaves), objects from 0.3 % to 20 %
of the crop's area, 40 % drawn by ``synth.py`` (half of those repainted with real textures)
and 60 % by ``randomise.py``, another ground in perspective for a quarter of the images, 20 %
with no object, the camera randomised (``randomise.camera``) and a JPEG quality from 20 to 95.
The shipped model was trained on this (``build_litter_model.sh`` passes it unless ``RANDOMISE=0``).

``--h264``, ``--spills`` and ``--val-seed`` compose a training split otherwise (a share of its
images as one H.264 intra frame shows them, another share of spills) beside the same validation
images; the shipped model uses none of them (a fifth stage trained so was measured and not shipped,
see HISTORY.md).

``--close SHARE`` makes that share of the randomised training images a close view: one object over 15-45 %
of the crop, as the edge's closer looks show a place (three times its still, changed ground, which is
often less than the whole object). At the default 0 the split is composed byte for byte as before.

``--physical SHARE`` draws that share of the randomised training split's objects with a third family,
``physical.py`` (heaps rendered from a lit height field, spills as flowing films of oil, water, grains or
paint), instead of ``synth.py``/``randomise.py``. ``--val-physical SHARE`` does the same for the validation
split, so that the epoch and the edge's thresholds are chosen on objects like the ones trained on. At the
default 0 each split is composed byte for byte as before.

``--shards N`` composes the training split as N pieces, each with its own random stream (spawned from
``--seed`` by numpy's ``SeedSequence``), so that ``--processes`` of them are drawn at once: the images
depend on the seed and N, not on how many processes drew them. The lent GPU machine's 16 cores compose
thousands of images so (``device_train.sh``). At the default 1 the split is one stream, as before.

``--extra`` adds folders written by ``xueliang dataset export`` (real frames operators judged:
``exported.litter_items``), each image to the split the export gave it, as ``x<N>-<name>``
(N: the folder's place in the list).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from models.litter import physical as physical_family  # noqa: E402
from models.litter.exported import litter_items  # noqa: E402
from models.litter.randomise import Swatches, camera, flat_spill, furniture, h264, new_ground, pile  # noqa: E402
from models.litter.synth import CLASSES, Layer, composite, render  # noqa: E402
OUT_SIDE = 416


def _load(folder: Path) -> list[np.ndarray]:
    images = [cv2.imread(str(p)) for p in sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png"))]
    return [im for im in images if im is not None and min(im.shape[:2]) >= 120]


def retexture(rng: np.random.Generator, layer: Layer, swatches: Swatches) -> Layer:
    """``layer`` painted with a real texture, keeping its light and shade."""
    h, w = layer.alpha.shape
    grey = layer.colour.mean(axis=2, keepdims=True)
    covered = layer.alpha > 0.3
    mean = float(grey[covered].mean()) if covered.any() else 1.0
    colour = swatches.take(rng, w, h) * (grey / max(mean, 1.0)).clip(0.4, 1.6)
    return Layer(colour.clip(0, 255), layer.alpha, layer.shade)


def draw_object(rng: np.random.Generator, kind: str, w: int, h: int, family: str, swatches: Swatches) -> Layer:
    if rng.random() < 0.4:
        layer = render(rng, kind, w, h, family)
        return retexture(rng, layer, swatches) if rng.random() < 0.5 else layer
    return pile(rng, w, h, swatches) if kind == "garbage" else flat_spill(rng, w, h, swatches)


def compose(rng: np.random.Generator, backgrounds: list[np.ndarray], family: str,
            swatches: Swatches | None = None, spills: float = 0.5, physical: float = 0.0,
            slabs: float = 0.0, close: float = 0.0) -> tuple[np.ndarray, list]:
    """One training image and its labels [(class, cx, cy, w, h) normalised]; with ``swatches``, randomised;
    ``spills``: the share of objects that are spills; ``physical``: with ``swatches``, the share of objects
    drawn by ``physical.draw``; ``slabs``: with ``swatches``, the share of spills drawn as opaque slabs by
    ``physical.slab``; ``close``: with ``swatches``, the share of images that are a close view, one object
    over 15-45 % of the crop, as the edge's closer looks show a place (at 0 no random number is drawn for
    any of the three, so the image is as before)."""
    bg = backgrounds[int(rng.integers(len(backgrounds)))]
    H, W = bg.shape[:2]
    side = int(min(H, W) * rng.uniform(0.4, 1.0))
    cw, ch = min(W, int(side * rng.uniform(1.0, 1.4))), side
    x0, y0 = int(rng.integers(0, W - cw + 1)), int(rng.integers(0, H - ch + 1))
    scale = OUT_SIDE / max(cw, ch)
    image = cv2.resize(bg[y0:y0 + ch, x0:x0 + cw], (int(cw * scale), int(ch * scale)), interpolation=cv2.INTER_AREA)
    h, w = image.shape[:2]
    if swatches is not None:
        if rng.random() < 0.25:
            new_ground(rng, image, swatches)
        furniture(rng, image, swatches, int(rng.integers(0, 5)))
    labels = []
    n = 0 if rng.random() < (0.12 if swatches is None else 0.2) else int(rng.integers(1, 4))
    near = bool(close) and swatches is not None and rng.random() < close
    n = 1 if near else n
    taken: list[tuple[int, int, int, int]] = []
    for _ in range(n):
        # at an even share, the draw of the sets composed before --spills, so they are composed byte for byte
        kind = CLASSES[int(rng.integers(2))] if spills == 0.5 else CLASSES[int(rng.random() < spills)]
        y_frac = rng.uniform(0.4, 0.6) if near else rng.uniform(0.25, 0.95)
        if swatches is None:
            ow = int(w * rng.uniform(0.08, 0.42) * (0.55 + 0.6 * y_frac))
            oh = max(8, int(ow * rng.uniform(0.35, 0.75) * (0.6 + 0.5 * y_frac) * (1.25 if kind == "garbage" else 1.0)))
            ow = max(10, ow)
        else:  # 0.3 % to 20 % of the crop's area; a close view's one object 15 % to 45 %
            aspect = rng.uniform(0.35, 0.75) * (0.6 + 0.5 * y_frac) * (1.25 if kind == "garbage" else 1.0)
            lo, hi = (0.15, 0.45) if near else (0.003, 0.2)
            area = np.exp(rng.uniform(np.log(lo), np.log(hi))) * w * h
            ow = int(min(0.9 * w, max(10, np.sqrt(area / aspect))))
            oh = int(min((0.8 if near else 0.6) * h, max(8, ow * aspect)))
        x = int(rng.integers(-ow // 5, max(1, w - ow + ow // 5)))
        y = int(y_frac * h - oh / 2)
        if any(x < b[2] and b[0] < x + ow and y < b[3] and b[1] < y + oh for b in taken):
            continue
        if swatches is None:
            layer = render(rng, kind, ow, oh, family)
        elif slabs and kind == "spill" and rng.random() < slabs:
            layer = physical_family.slab(rng, ow, oh, swatches)
        elif physical and rng.random() < physical:
            layer = physical_family.draw(rng, kind, ow, oh, swatches)
        else:
            layer = draw_object(rng, kind, ow, oh, family, swatches)
        keep = None
        occluder = None
        if rng.random() < 0.3:  # a passer-by or a vehicle in front of part of it
            other = backgrounds[int(rng.integers(len(backgrounds)))]
            sw = max(4, int(ow * rng.uniform(0.15, 0.45)))
            sh = min(h, other.shape[0], int(oh * rng.uniform(1.3, 3.0)))
            sx = x + int(rng.uniform(-0.1, 0.9) * ow)
            sy = min(h - sh, max(0, y + oh - sh + int(rng.uniform(0, 0.3) * oh)))
            keep = np.zeros((h, w), np.uint8)
            x1, x2 = max(0, sx), min(w, sx + sw)
            if x2 > x1:
                keep[sy:sy + sh, x1:x2] = 1
                oy, ox = int(rng.integers(0, other.shape[0] - sh + 1)), int(rng.integers(0, other.shape[1] - (x2 - x1) + 1))
                occluder = (sy, x1, other[oy:oy + sh, ox:ox + x2 - x1])
        box = composite(image, layer, x, y, keep, opacity=rng.uniform(0.75, 1.0))
        if occluder is not None:
            sy, x1, patch = occluder
            image[sy:sy + patch.shape[0], x1:x1 + patch.shape[1]] = patch
        if box is None:
            continue
        bx1, by1, bx2, by2 = box
        taken.append((x, y, x + ow, y + oh))
        labels.append((CLASSES.index(kind), (bx1 + bx2) / 2 / w, (by1 + by2) / 2 / h, (bx2 - bx1) / w, (by2 - by1) / h))
    if swatches is not None:
        return camera(rng, image), labels
    image = image.astype(np.float32) * rng.uniform(0.6, 1.3) + rng.uniform(-25, 25)
    if rng.random() < 0.35:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.6))
    image = image + rng.normal(0, rng.uniform(0, 6), image.shape)
    return image.clip(0, 255).astype(np.uint8), labels


def write_split(rng, backgrounds, family, count, out: Path, split: str, randomise: bool = False,
                streamed: float = 0.0, spills: float = 0.5, physical: float = 0.0, name: str = "",
                slabs: float = 0.0, close: float = 0.0) -> int:
    """``count`` composed images and labels in ``out``; randomised ones take textures from the same backgrounds.
    A share ``streamed`` of them is stored as an H.264 stream would show it (``randomise.h264``, CRF 26-44)
    instead of as a JPEG of quality 20-95. A share ``physical`` of randomised objects is drawn by
    ``physical.py``, and a share ``slabs`` of their spills as opaque slabs; a share ``close`` of randomised
    images is a close view of one object. Files are named ``<name>-<i>``
    (``name``: the split's by default)."""
    name = name or split
    swatches = Swatches(rng, backgrounds) if randomise else None
    (out / "images" / split).mkdir(parents=True, exist_ok=True)
    (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    objects = 0
    for i in range(count):
        image, labels = compose(rng, backgrounds, family, swatches, spills, physical, slabs, close)
        quality = int(rng.integers(45 if swatches is None else 20, 95))
        if streamed and rng.random() < streamed:
            image, quality = h264(image, int(rng.integers(26, 45))), 95
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        (out / "images" / split / f"{name}-{i:05d}.jpg").write_bytes(jpeg.tobytes())
        (out / "labels" / split / f"{name}-{i:05d}.txt").write_text(
            "".join(f"{c} {cx:.5f} {cy:.5f} {bw:.5f} {bh:.5f}\n" for c, cx, cy, bw, bh in labels))
        objects += len(labels)
    return objects


_SHARDED: dict = {}  # what every shard reads, given once to each process (``_share``)


def _share(sharded: dict) -> None:
    _SHARDED.update(sharded)
    cv2.setNumThreads(1)  # one core per process


def _write_shard(k: int) -> int:
    a = _SHARDED
    count = a["count"] // a["shards"] + (k < a["count"] % a["shards"])
    return write_split(np.random.default_rng(a["seeds"][k]), a["backgrounds"], "train", count, a["out"], "train",
                       a["randomise"], a["streamed"], a["spills"], a["physical"], name=f"train-{k:02d}",
                       slabs=a["slabs"], close=a["close"])


def write_train_split(seed: int, shards: int, processes: int, backgrounds, count: int, out: Path,
                      randomise: bool, streamed: float, spills: float, physical: float, slabs: float = 0.0,
                      close: float = 0.0) -> int:
    """The training split: one random stream from ``seed`` (``shards`` 1, as before), or ``shards`` streams
    spawned from it, drawn by ``processes`` processes at once; returns the objects drawn. The processes
    are started afresh (``spawn``), not forked: a fork of a process with threads (a test run, OpenCV's
    own pool) can hang."""
    if shards <= 1:
        return write_split(np.random.default_rng(seed), backgrounds, "train", count, out, "train", randomise,
                           streamed, spills, physical, slabs=slabs, close=close)
    sharded = dict(seeds=np.random.SeedSequence(seed).spawn(shards), shards=shards, count=count, out=out,
                   backgrounds=backgrounds, randomise=randomise, streamed=streamed, spills=spills, physical=physical,
                   slabs=slabs, close=close)
    with multiprocessing.get_context("spawn").Pool(max(1, min(processes, shards)), _share, (sharded,)) as pool:
        return sum(pool.map(_write_shard, range(shards)))


def add_exports(out: Path, folders: list[Path]) -> dict[str, int]:
    """Copy each export's garbage/spill images and renumbered labels into ``out``'s split of the same
    name; returns the images added per split. Named after the synthetic ones (``train-…`` sorts
    before ``x…``): train.py's int8 calibration, the first 64 training images, stays synthetic."""
    added = {"train": 0, "val": 0}
    for n, folder in enumerate(folders):
        for split in added:
            for image, labels in litter_items(folder, split):
                name = f"x{n}-{image.stem}"
                (out / "images" / split / f"{name}.jpg").write_bytes(image.read_bytes())
                (out / "labels" / split / f"{name}.txt").write_text("".join(line + "\n" for line in labels))
                added[split] += 1
    return added


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=1200)
    ap.add_argument("--val", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--val-seed", type=int, default=None,
                    help="the validation split's seed (default: --seed + 1); the same value gives the same "
                         "validation images whatever the training split is made with")
    ap.add_argument("--shards", type=int, default=1,
                    help="compose the training split as this many independently seeded pieces (1: one stream, as "
                         "before); the images depend on --seed and this, not on --processes")
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                    help="how many shards are composed at once (default: one per core)")
    ap.add_argument("--h264", type=float, default=0.0,
                    help="share of training images stored as an H.264 stream shows them (CRF 26-44), as every "
                         "frame the edge reads is; the rest as JPEG")
    ap.add_argument("--spills", type=float, default=0.5, help="share of training objects that are spills")
    ap.add_argument("--physical", type=float, default=0.0,
                    help="with --randomise, share of training objects drawn by physical.py (lit height-field heaps, "
                         "flowing film spills); 0 composes as before")
    ap.add_argument("--slabs", type=float, default=0.0,
                    help="with --randomise, share of training spills drawn as opaque slabs (physical.slab: soil, grit, "
                         "thick paint lying flat); 0 composes as before")
    ap.add_argument("--close", type=float, default=0.0,
                    help="with --randomise, share of training images that are a close view: one object over 15-45 %% "
                         "of the crop, as the edge's closer looks show a place; 0 composes as before")
    ap.add_argument("--val-physical", type=float, default=0.0,
                    help="with --randomise, share of validation objects drawn by physical.py; 0 composes as before")
    ap.add_argument("--test", type=int, default=0,
                    help="write only a test split of this many images (held-out backgrounds and textures, "
                         "its own seed): the set `make eval` scores, never seen in training or model selection")
    ap.add_argument("--randomise", action="store_true",
                    help="domain randomisation and hard negatives (randomise.py), as the shipped model was trained; "
                         "without it, synth.py's drawings only (the model shipped before issue 10)")
    ap.add_argument("--backgrounds", type=Path, default=ROOT / "data/litter/backgrounds")
    ap.add_argument("--out", type=Path, default=ROOT / "data/litter/dataset")
    ap.add_argument("--extra", type=Path, nargs="*", default=[],
                    help="folders written by `xueliang dataset export`: their garbage/spill frames join "
                         "the training and validation sets, each in the split the export gave it")
    args = ap.parse_args()
    train_bg, heldout_bg = _load(args.backgrounds / "train"), _load(args.backgrounds / "heldout")
    if not train_bg or not heldout_bg:
        sys.exit(f"no backgrounds under {args.backgrounds}: run models/litter/fetch_backgrounds.sh first")
    for folder in args.extra:  # a wrong folder is said before the minutes of composing
        try:
            litter_items(folder, "train")
        except ValueError as exc:
            sys.exit(str(exc))
    if args.test:
        n_test = write_split(np.random.default_rng(args.seed + 2), heldout_bg, "heldout", args.test, args.out, "test",
                             args.randomise)
        print(f"test set: {args.test} images ({n_test} objects) in {args.out}")
        return
    n_train = write_train_split(args.seed, args.shards, args.processes, train_bg, args.train, args.out, args.randomise,
                                args.h264, args.spills, args.physical, args.slabs, args.close)
    val_seed = args.seed + 1 if args.val_seed is None else args.val_seed
    n_val = write_split(np.random.default_rng(val_seed), heldout_bg, "heldout", args.val, args.out, "val", args.randomise,
                        physical=args.val_physical)
    (args.out / "dataset.yaml").write_text(
        f"path: {args.out}\ntrain: images/train\nval: images/val\nnames:\n"
        + "".join(f"  {i}: {name}\n" for i, name in enumerate(CLASSES)))
    # what the set was composed with, for the model's recipe (train.py) and manifest (write_manifest.py)
    (args.out / "recipe.json").write_text(json.dumps(
        {"seed": args.seed, "shards": args.shards, "val_seed": val_seed, "train": args.train, "val": args.val, "randomise": args.randomise,
         "h264": args.h264, "spills": args.spills, "physical": args.physical, "slabs": args.slabs,
         "close": args.close, "val_physical": args.val_physical, "extra": [str(f) for f in args.extra]}, indent=2) + "\n")
    print(f"dataset: {args.train} train images ({n_train} objects, {len(train_bg)} backgrounds), "
          f"{args.val} val images ({n_val} objects, {len(heldout_bg)} held-out backgrounds) in {args.out}")
    if args.extra:
        added = add_exports(args.out, args.extra)
        print(f"exported frames: {added['train']} train and {added['val']} val images from {len(args.extra)} folders")


if __name__ == "__main__":
    main()
