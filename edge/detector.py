"""ONNX detectors loaded through their manifests, plus zone-crop inference.

A detector turns a BGR image into ``sv.Detections`` in pixels with the class name in
``data["class_name"]``. Decoders are chosen by the manifest's ``decoder`` field; adding a
model family is one new class registered in ``DECODERS``.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import supervision as sv

from edge.geometry import Box, in_frame, overlap, polygon_to_xyxy, union
from edge.config import ConfigError
from models import ModelError, load_manifest, manifest_path

Image = npt.NDArray[np.uint8]
VEHICLE, LITTER = "vehicle", "litter"  # the detector roles a pipeline plans passes for
Region = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels


class Detector(Protocol):
    name: str
    version: str
    input_side: int  # the model's input, in pixels (the shorter side when not square)
    classes: dict[int, str]  # the model's class ids and names (its manifest's)

    def detect(self, image: Image, min_score: float) -> sv.Detections: ...

    def detect_many(self, images: list[Image], min_score: float) -> list[sv.Detections]:
        """All ``images``: one batched run where the model allows it."""
        ...


def min_scores(detection) -> dict[str, float]:
    """The score threshold of each detector role, from the edge config's ``detection``: the vehicle
    model's is ``track_min_score``, so the tracker can continue tracks on low-score detections; the
    litter model's is ``litter_confirmed_min_score`` while the left-object check is on (the pipeline
    keeps those below ``litter_min_score`` only where the check confirms them)."""
    litter = detection.litter_min_score if detection.left_object == "off" else detection.litter_confirmed_min_score
    return {VEHICLE: detection.track_min_score, LITTER: litter}


def run_passes(detectors: dict[str, Detector], passes: list[tuple[str, Image]],
               min_score: dict[str, float]) -> list[sv.Detections]:
    """Detector passes ``[(model, image)]`` (of one camera or many), one batch per model; results in order."""
    results: list = [None] * len(passes)
    for model, detector in detectors.items():
        mine = [i for i, (m, _) in enumerate(passes) if m == model]
        for i, found in zip(mine, detector.detect_many([passes[i][1] for i in mine], min_score[model])):
            results[i] = found
    return results


class SsdPostprocessed:
    """SSD-style models with post-processing (NMS) inside the graph: boxes, classes, scores, count."""

    def __init__(self, manifest: dict, session: ort.InferenceSession):
        self.name, self.version = manifest["name"], manifest["version"]
        spec = manifest["input"]
        if spec["layout"] != "NHWC" or spec["dtype"] != "uint8":
            raise ModelError(f"{self.name}: decoder ssd_postprocessed needs NHWC uint8 input, manifest says {spec}")
        self._input = spec["name"]
        self._h, self._w = spec["shape"][1], spec["shape"][2]
        self.input_side = min(self._h, self._w)
        self._rgb = spec.get("color", "RGB") == "RGB"
        self._outputs = manifest["outputs"]
        self.classes = {int(k): v for k, v in manifest["classes"].items()}
        self._session = session

    def detect(self, image: Image, min_score: float) -> sv.Detections:
        h, w = image.shape[:2]
        x = cv2.resize(image, (self._w, self._h), interpolation=cv2.INTER_LINEAR)
        if self._rgb:
            x = cv2.cvtColor(x, cv2.COLOR_BGR2RGB)
        boxes, classes, scores, count = self._session.run(self._outputs, {self._input: x[None]})
        n = int(count.reshape(-1)[0])
        boxes, classes, scores = boxes[0, :n], classes[0, :n].astype(int), scores[0, :n]
        keep = scores >= min_score
        boxes, classes, scores = boxes[keep], classes[keep], scores[keep]
        xyxy = np.stack([boxes[:, 1] * w, boxes[:, 0] * h, boxes[:, 3] * w, boxes[:, 2] * h], axis=1)
        xyxy = np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32).reshape(-1, 4)
        names = np.array([self.classes.get(c, f"class_{c}") for c in classes], dtype=object)
        return sv.Detections(
            xyxy=xyxy, confidence=scores.astype(np.float32), class_id=classes, data={"class_name": names}
        )

    def detect_many(self, images: list[Image], min_score: float) -> list[sv.Detections]:
        return [self.detect(x, min_score) for x in images]  # the graph has a fixed batch of 1


class YoloRaw:
    """YOLOv8-style raw output [1, 4 + classes, N] (cx, cy, w, h in input pixels, then class
    scores), letterboxed float input; NMS done here, per class."""

    def __init__(self, manifest: dict, session: ort.InferenceSession):
        self.name, self.version = manifest["name"], manifest["version"]
        spec = manifest["input"]
        if spec["layout"] != "NCHW" or spec["dtype"] != "float32":
            raise ModelError(f"{self.name}: decoder yolo_raw needs NCHW float32 input, manifest says {spec}")
        self._input, self._size = spec["name"], spec["shape"][2]
        self.input_side = self._size
        self._batched = not isinstance(spec["shape"][0], int)  # a named (dynamic) batch axis
        self._outputs = manifest["outputs"]
        self.classes = {int(k): v for k, v in manifest["classes"].items()}
        self._session = session
        self.mirror = bool(manifest.get("mirror", False))  # see ``mirror_mean``

    def prepare(self, image: Image) -> tuple[np.ndarray, float]:
        """Letterbox to the top-left of a square canvas padded with 114, RGB, 0..1, NCHW."""
        h, w = image.shape[:2]
        scale = self._size / max(h, w)
        resized = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_LINEAR)
        canvas = np.full((self._size, self._size, 3), 114, np.uint8)
        canvas[: resized.shape[0], : resized.shape[1]] = resized
        return np.ascontiguousarray(canvas[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255, scale

    def detect(self, image: Image, min_score: float) -> sv.Detections:
        return self.detect_many([image], min_score)[0]

    def detect_many(self, images: list[Image], min_score: float) -> list[sv.Detections]:
        """Several images in one batch when the model's batch axis is dynamic, else one by one. A model
        whose manifest says ``mirror`` also sees mirrored, in a second batch, each image it saw anything
        in at half the threshold (``mirror_mean``); where it saw nothing, only a box the mirror alone
        scores at twice the threshold could pass, and for that the mirrored pass is not spent (on the
        real clean footage half the tiles see nothing: see the litter model's card)."""
        if not self.mirror:
            return self._run(images, min_score)
        seen = self._run(images, min_score / 2)
        looked = [i for i, found in enumerate(seen) if len(found)]
        mirrored = dict(zip(looked, self._run([np.ascontiguousarray(images[i][:, ::-1]) for i in looked],
                                              min_score / 2))) if looked else {}
        return [mirror_mean(found, mirrored.get(i, sv.Detections.empty()), image.shape[1], min_score)
                for i, (image, found) in enumerate(zip(images, seen))]

    def _run(self, images: list[Image], min_score: float) -> list[sv.Detections]:
        prepared = [self.prepare(image) for image in images]
        if self._batched and len(images) > 1:
            outs = self._session.run(self._outputs, {self._input: np.concatenate([x for x, _ in prepared])})[0]
        else:
            outs = [self._session.run(self._outputs, {self._input: x})[0][0] for x, _ in prepared]
        return [self._decode(out, image.shape[:2], scale, min_score)
                for out, image, (_, scale) in zip(outs, images, prepared)]

    def _decode(self, out: np.ndarray, shape: tuple[int, int], scale: float, min_score: float) -> sv.Detections:
        h, w = shape  # out: [4 + classes, N]
        scores = out[4:]
        classes = scores.argmax(axis=0)
        best = scores[classes, np.arange(scores.shape[1])]
        keep = best >= min_score
        if not keep.any():
            return sv.Detections.empty()
        cx, cy, bw, bh = out[:4, keep]
        xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1) / scale
        xyxy = np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32)
        classes = classes[keep]
        names = np.array([self.classes.get(int(c), f"class_{c}") for c in classes], dtype=object)
        found = sv.Detections(xyxy=xyxy, confidence=best[keep].astype(np.float32), class_id=classes.astype(int),
                              data={"class_name": names})
        return found.with_nms(threshold=0.5)


def mirror_mean(seen: sv.Detections, mirrored: sv.Detections, width: int, min_score: float) -> sv.Detections:
    """One image's detections from two views of it, as is (``seen``) and mirrored left to right
    (``mirrored``, in the mirrored image's pixels; both found down to ``min_score / 2``): each box
    scores the mean of its score and that of the same class's best box over it (IoU >= 0.5) in the
    other view, 0 where the other view has none, and lies between the two; those at ``min_score`` or
    more, one NMS per class. The two views are alike: a mirrored image gives the image's boxes, mirrored.
    A pile the model believes from both sides keeps its score, a texture it half-believes from one
    side only loses half of it (measured on the litter model's validation split: see its card).

    >>> one = lambda x1, x2, score: sv.Detections(xyxy=np.array([[x1, 10, x2, 30]], np.float32),
    ...     confidence=np.array([score], np.float32), class_id=np.array([0]), data={"class_name": np.array(["spill"])})
    >>> both = mirror_mean(one(10, 40, 0.5), one(60, 90, 0.3), width=100, min_score=0.3)  # 60..90 is 10..40 here
    >>> both.xyxy.tolist(), [round(float(c), 2) for c in both.confidence]
    ([[10.0, 10.0, 40.0, 30.0]], [0.4])
    >>> len(mirror_mean(one(10, 40, 0.5), sv.Detections.empty(), width=100, min_score=0.3))   # 0.25: one side only
    0
    """
    if len(mirrored):
        x1, y1, x2, y2 = mirrored.xyxy.T
        mirrored = sv.Detections(xyxy=np.stack([width - x2, y1, width - x1, y2], axis=1).astype(np.float32),
                                 confidence=mirrored.confidence, class_id=mirrored.class_id, data=mirrored.data)
    parts = []
    for this, other in ((seen, mirrored), (mirrored, seen)):
        if not len(this):
            continue
        score, xyxy = this.confidence / 2, this.xyxy
        if len(other):
            overlaps = sv.box_iou_batch(this.xyxy, other.xyxy) * (this.class_id[:, None] == other.class_id[None, :])
            best = overlaps.argmax(axis=1)
            both = overlaps.max(axis=1) >= 0.5
            score = score + np.where(both, other.confidence[best], 0.0) / 2
            xyxy = np.where(both[:, None], (this.xyxy + other.xyxy[best]) / 2, this.xyxy)
        parts.append(sv.Detections(xyxy=xyxy.astype(np.float32), confidence=score.astype(np.float32),
                                   class_id=this.class_id, data=this.data))
    found = sv.Detections.merge(parts) if parts else sv.Detections.empty()
    found = found[found.confidence >= min_score] if len(found) else found
    return found.with_nms(threshold=0.45) if len(found) else found


DECODERS = {"ssd_postprocessed": SsdPostprocessed, "yolo_raw": YoloRaw}


def load_detector(name: str, threads: int = 2) -> Detector:
    manifest, path = load_manifest(name)
    decoder = DECODERS.get(manifest.get("decoder", ""))
    if decoder is None:
        raise ModelError(f"model {name!r}: unknown decoder {manifest.get('decoder')!r}; known: {sorted(DECODERS)}")
    return decoder(manifest, session(path, threads))


def session(path: Path, threads: int = 2) -> ort.InferenceSession:
    """A model file's onnxruntime session on the CPU, its threads sleeping between runs rather than spinning: a box
    analyses a frame a second per camera, and a spinning pool takes the cores its decoders need (25 rounds of both
    models on a loaded 2-core machine: 11.6-13.1 s of CPU and 27-52 s spinning, 5.6-6.2 s and 8-14 s not)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load_detectors(config) -> dict[str, Detector]:
    """The detectors an edge config needs: vehicles always, litter when a zone watches garbage or spills. A model
    name that is no model's is a ConfigError naming its field, the litter model's too where no zone needs it."""
    for field in ("model", "litter_model"):
        try:
            manifest_path(getattr(config.detection, field))
        except ModelError as exc:  # "model 'ssd' not found" said not which of the two was meant
            raise ConfigError(f"detection {field}: {exc}") from None
    found = {VEHICLE: load_detector(config.detection.model, config.detection.threads)}
    classes = set(found[VEHICLE].classes.values())
    unknown = [label for label in config.detection.vehicle_labels if label not in classes]
    if unknown:  # a typo ("cars") matched nothing, and the box found no vehicle, silently
        close = {label: difflib.get_close_matches(label, classes, n=1) for label in unknown}
        raise ConfigError("detection vehicle_labels: " + "; ".join(
            f"{label!r} is not a class of model {config.detection.model!r}"
            + (f" (did you mean {close[label][0]!r}?)" if close[label] else "") for label in unknown))
    if any(t in ("garbage", "spill") for cam in config.cameras for zone in cam.zones for t in zone.types):
        found[LITTER] = load_detector(config.detection.litter_model, config.detection.threads)
    return found


MERGE_GROWTH = 1.5  # two zones share a crop only if neither's vehicles shrink more than this against its own crop
MAX_ASPECT = 2.0  # nor if the shared crop is more than twice as wide as high (or the reverse): the model stretches it


def _starts(lo: float, hi: float, side: int, limit: int) -> list[int]:
    """Offsets of windows of ``side`` covering [lo, hi] within [0, limit], overlapping by a quarter or more."""
    span = hi - lo
    if span <= side:
        return [int(min(max(0, (lo + hi) / 2 - side / 2), max(0, limit - side)))]
    n = int(np.ceil((span - side) / (side * 0.75))) + 1
    step = (span - side) / (n - 1)
    return [int(min(max(0, lo + i * step), max(0, limit - side))) for i in range(n)]


def crop_regions(polygons: list[list[tuple[float, float]]], width: int, height: int, max_side: int = 900,
                 pad: float = 0.5) -> list[Region]:
    """Pixel regions the vehicle model runs on so that every zone is seen at a useful scale.

    Each zone gets a square around it, padded by ``pad`` of its size on each side, clipped to
    the frame. A zone whose square would be larger than ``max_side`` (the model's input times
    the most a crop may be shrunk) is tiled with ``max_side`` squares overlapping by a quarter.
    Overlapping regions are merged only when the merge keeps each zone's vehicles big enough:
    no larger than ``max_side``, no more than ``MERGE_GROWTH`` times a member's own region or
    the model's input (300), whichever is larger, no more than ``MAX_ASPECT`` long. No zone is
    ever left without a region.

    >>> crop_regions([[(0.8, 0.03), (0.97, 0.03), (0.97, 0.22)]], 768, 576)
    [(549, 0, 768, 202)]
    >>> kerb = [(0.8, 0.03), (0.97, 0.03), (0.97, 0.22), (0.8, 0.22)]
    >>> road = [(0.0, 0.24), (0.79, 0.24), (0.79, 0.62), (0.0, 0.62)]
    >>> crop_regions([kerb, road], 1280, 720, max_side=900)   # the big zone next door leaves the kerb its crop
    [(915, 0, 1280, 307), (0, 0, 900, 720), (111, 0, 1011, 720)]
    """
    model_side = 300
    regions: list[tuple[list[int], list[float]]] = []  # (x1, y1, x2, y2), own sides of the zones in it
    for poly in polygons:
        x1, y1, x2, y2 = polygon_to_xyxy(poly)
        x1, y1, x2, y2 = x1 * width, y1 * height, x2 * width, y2 * height
        side = max(x2 - x1, y2 - y1) * (1 + 2 * pad)
        if side <= max_side:
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            r = [int(max(0, cx - side / 2)), int(max(0, cy - side / 2)),
                 int(min(width, cx + side / 2)), int(min(height, cy + side / 2))]
            # a zone under a pixel on this frame (a thumbnail sub-stream): one pixel, never an empty crop
            r[0], r[1] = min(r[0], width - 1), min(r[1], height - 1)
            r[2], r[3] = max(r[2], r[0] + 1), max(r[3], r[1] + 1)
            regions.append((r, [max(r[2] - r[0], r[3] - r[1])]))
            continue
        for y in _starts(y1, y2, max_side, height):
            for x in _starts(x1, x2, max_side, width):
                r = [x, y, min(width, x + max_side), min(height, y + max_side)]
                if all(r != other for other, _ in regions):
                    regions.append((r, [max(r[2] - r[0], r[3] - r[1])]))

    def mergeable(a: tuple[list[int], list[float]], b: tuple[list[int], list[float]]) -> list[int] | None:
        (ra, sa), (rb, sb) = a, b
        if not (ra[0] < rb[2] and rb[0] < ra[2] and ra[1] < rb[3] and rb[1] < ra[3]):
            return None
        u = [min(ra[0], rb[0]), min(ra[1], rb[1]), max(ra[2], rb[2]), max(ra[3], rb[3])]
        w, h = u[2] - u[0], u[3] - u[1]
        if max(w, h) > max_side or max(w, h) > MAX_ASPECT * min(w, h):
            return None
        if any(max(w, h) > MERGE_GROWTH * max(model_side, own) for own in sa + sb):
            return None
        return u

    merged = True
    while merged:
        merged = False
        for i in range(len(regions)):
            for j in range(i + 1, len(regions)):
                u = mergeable(regions[i], regions[j])
                if u is not None:
                    regions[i] = (u, regions[i][1] + regions[j][1])
                    del regions[j]
                    merged = True
                    break
            if merged:
                break
    return [tuple(r) for r, _ in regions]


MAX_TILES = 16  # litter tiles one camera's frame may cost (make eval's clips: 1 to 8)


def tile_regions(polygons: list[list[tuple[float, float]]], width: int, height: int,
                 max_tiles: int = MAX_TILES) -> list[Region]:
    """Square tiles a third of the frame wide covering each zone, overlapping by at least a
    quarter, so a pile a few percent of the frame wide is still tens of pixels to the model.
    At most ``max_tiles``: where more would be needed (a tall picture, a short one), the tiles
    are larger, as wide and as high as the frame at most; a 4000x4 picture's zone had taken 667
    tiles of 4x4 pixels a frame, and the analyser from every other camera of the box.

    >>> tile_regions([[(0.02, 0.33), (0.42, 0.33), (0.52, 0.47), (0.02, 0.43)]], 768, 576)
    [(15, 102, 271, 358), (143, 102, 399, 358)]
    >>> len(tile_regions([[(0.02, 0.33), (0.42, 0.33), (0.52, 0.47), (0.02, 0.43)]], 4000, 4))
    14
    """
    side = min(max(64, width // 3), width, height)
    while True:
        tiles: list[Region] = []
        for poly in polygons:
            x1, y1, x2, y2 = polygon_to_xyxy(poly)
            for y in _starts(y1 * height, y2 * height, side, height):
                for x in _starts(x1 * width, x2 * width, side, width):
                    tile = (x, y, min(width, x + side), min(height, y + side))
                    if tile not in tiles:
                        tiles.append(tile)
        if len(tiles) <= max_tiles or side >= max(width, height):  # (there, each zone's tile is the frame: one)
            return tiles
        side = min(max(width, height), side + max(1, side // 4))


def closer_places(still: list[Box], named: list[Box]) -> list[Box]:
    """The places closer looks are cut around: each still, changed place the left-object check sees, with
    the litter model's boxes over it (``named``, from its last pass). For a faint or partly hidden object
    the still place is a piece of it, and a crop three times the piece shows the object at 1.5-3 times
    its size, where the model types piles worse than at three (see the litter model's card).

    >>> closer_places([(0.50, 0.50, 0.52, 0.52)], [(0.49, 0.50, 0.56, 0.55), (0.1, 0.1, 0.2, 0.2)])
    [(0.49, 0.5, 0.56, 0.55)]
    """
    return [union([place] + [box for box in named if overlap(box, place)]) for place in still]


def closer_regions(boxes: list[tuple[float, float, float, float]], width: int, height: int, largest: int,
                   context: float = 3.0, smallest: int = 96) -> list[Region]:
    """Square crops for a closer look at places (boxes 0..1 of the frame): ``context`` times a place's
    longer side, at least ``smallest`` and at most ``largest`` pixels, centred on it within the frame.

    >>> closer_regions([(0.5, 0.5, 0.55, 0.56)], 768, 576, largest=256)
    [(345, 247, 460, 362)]
    """
    out = []
    for x1, y1, x2, y2 in boxes:
        side = int(min(max(context * max((x2 - x1) * width, (y2 - y1) * height), smallest), largest, width, height))
        cx, cy = (x1 + x2) / 2 * width, (y1 + y2) / 2 * height
        x = int(min(max(0, cx - side / 2), width - side))
        y = int(min(max(0, cy - side / 2), height - side))
        out.append((x, y, x + side, y + side))
    return out


def merge_detections(parts: list[sv.Detections], regions: list[Region], vehicle_labels: list[str],
                     full_frame: bool = True) -> sv.Detections:
    """Detections of the full frame (``parts[0]``, when ``full_frame``) and of each region (the
    rest) in frame pixels, one NMS.

    Vehicles go through a single class-agnostic NMS (the same van comes out as car,
    truck and bus on one box); other classes are suppressed per class.
    """
    crops = parts[1:] if full_frame else parts
    merged = sv.Detections.merge(parts[:1] * full_frame + [in_frame(crops, regions)])
    if len(merged) == 0:
        return merged
    is_vehicle = np.isin(merged.data["class_name"], vehicle_labels)
    out = [merged[is_vehicle].with_nms(threshold=0.45, class_agnostic=True)] if is_vehicle.any() else []
    if (~is_vehicle).any():
        out.append(merged[~is_vehicle].with_nms(threshold=0.45))
    return sv.Detections.merge(out)


def detect_frame(
    detector: Detector, image: Image, regions: list[Region], min_score: float, vehicle_labels: list[str],
    full_frame: bool = True,
) -> sv.Detections:
    """Detect on the whole frame (unless ``full_frame`` is False) and on each region, then one NMS
    (see ``merge_detections``)."""
    images = [image] * full_frame + [image[y1:y2, x1:x2] for x1, y1, x2, y2 in regions]
    return merge_detections([detector.detect(x, min_score) for x in images], regions, vehicle_labels, full_frame)
