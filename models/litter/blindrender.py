"""Draws a BLIND evaluation clip from its plan (``blindplan.py``) and encodes it: the view's still,
the furniture baked in, the staged objects (spills spreading), people and cars crossing, light that
drifts, a cloud shadow, snow at night, camera shake and sensor noise, then libx264 with ``-threads 1``
so the same plan gives the same bytes. Evaluation only.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from models.litter import blinddraw as draw
from models.litter import blindprops as props
from models.litter.blindplan import ClipPlan, Furniture, Mover, Staged
from models.litter.blindscenes import Box, View, ground_scale, object_box, to_image

def load_plate(view: View, size: tuple[int, int], src: Path) -> npt.NDArray[np.float32]:
    """The view's still at ``size``: the source picture (a video: its frames aligned on the middle one
    and median-stacked, which removes falling snow), cropped and scaled."""
    path = src / view.source
    if not path.exists():
        raise FileNotFoundError(f"blindgen: {path} is missing; run models/litter/fetch_blind_sources.sh")
    if path.suffix in (".ts", ".mp4"):
        cap = cv2.VideoCapture(str(path))
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(cv2.resize(frame, (frame.shape[1] // 2, frame.shape[0] // 2), interpolation=cv2.INTER_AREA))
        mid = len(frames) // 2
        ref = cv2.cvtColor(frames[mid], cv2.COLOR_BGR2GRAY).astype(np.float32)
        stack = []
        for f in frames[max(0, mid - 15) : mid + 16]:
            (dx, dy), _ = cv2.phaseCorrelate(ref, cv2.cvtColor(f, cv2.COLOR_BGR2GRAY).astype(np.float32))
            stack.append(
                cv2.warpAffine(
                    f, np.float32([[1, 0, -dx], [0, 1, -dy]]), (f.shape[1], f.shape[0]), borderMode=cv2.BORDER_REFLECT
                )
            )
        image = np.median(np.stack(stack), axis=0).astype(np.uint8)
    else:
        image = cv2.imread(str(path))
    ih, iw = image.shape[:2]
    x0, y0, x1, y1 = view.crop
    image = image[int(y0 * ih) : int(round(y1 * ih)), int(x0 * iw) : int(round(x1 * iw))]
    interp = cv2.INTER_AREA if size[0] < image.shape[1] else cv2.INTER_CUBIC
    return cv2.resize(image, size, interpolation=interp).astype(np.float32)


@dataclass(frozen=True)
class Light:
    """What ``lit`` needs of the picture, measured once: its median brightness and colour cast."""

    median: float
    cast: npt.NDArray[np.float32]

    @staticmethod
    def of(plate: npt.NDArray[np.float32]) -> "Light":
        mean = plate.reshape(-1, 3).mean(0)
        return Light(max(1.0, float(np.median(plate))), ((mean / mean.mean()) ** 0.5).astype(np.float32))


def lit(sprite: draw.Sprite, plate: npt.NDArray[np.float32], box: Box, view: View, light: Light) -> draw.Sprite:
    """The sprite's colours put into the picture's light: the view's exposure, the local brightness
    around the box (lamp pools, building shadows) and the picture's colour cast; softened a little."""
    x1, y1, x2, y2 = box
    pad_x, pad_y = max(8, x2 - x1), max(8, y2 - y1)
    around = plate[max(0, y1 - pad_y) : y2 + pad_y, max(0, x1 - pad_x) : x2 + pad_x]
    local = float(around.mean()) / light.median if around.size else 1.0
    gain = view.exposure * float(np.clip(local, 0.6, 1.5)) ** 0.6
    rgb = cv2.GaussianBlur(sprite.rgb * (gain * light.cast), (0, 0), 0.6)
    return draw.Sprite(rgb, cv2.GaussianBlur(sprite.alpha, (0, 0), 0.5), sprite.shade, sprite.box)


def staged_sprite(s: Staged, view: View) -> draw.Sprite:
    rng = np.random.default_rng(s.seed)
    w, h = s.box[2] - s.box[0], s.box[3] - s.box[1]
    if s.kind == "bags":
        return draw.bag_heap(rng, w, h, s.flatten)
    if s.kind == "boxes":
        return draw.cardboard(rng, w, h, s.flatten)
    if s.kind == "litter":
        return draw.scattered_litter(rng, w, h, s.flatten, s.pxm)
    if s.kind == "rubble":
        return draw.rubble(rng, w, h, s.flatten)
    if s.kind == "dump":
        return draw.mixed_dump(rng, w, h, s.flatten, s.pxm)
    if s.kind == "oil":
        return draw.oil(rng, w, h)
    if s.kind == "water":
        return draw.wet_patch(rng, w, h, view.sky)
    if s.kind == "granular":
        return draw.granular(rng, w, h)
    return draw.paint(rng, w, h)


def furniture_sprite(f: Furniture, view: View) -> draw.Sprite:
    rng = np.random.default_rng(f.seed)
    w, h = f.box[2] - f.box[0], f.box[3] - f.box[1]
    return {
        "cone": lambda: props.cone(rng, w, h, f.flatten),
        "manhole": lambda: props.manhole(rng, w, h),
        "grate": lambda: props.grate(rng, w, h),
        "marking": lambda: props.marking(rng, w, h),
        "puddle": lambda: props.puddle(rng, w, h, view.sky),
    }[f.kind]()


def paste(
    frame: npt.NDArray[np.float32], sprite: draw.Sprite, x: int, y: int, reveal: npt.NDArray[np.float32] | None = None
) -> None:
    """Put a sprite into the frame with its extent's top-left at (x, y), in place; ``reveal`` scales it
    (0..1 per sprite pixel) while a spill spreads."""
    ox, oy = x - sprite.box[0], y - sprite.box[1]
    h, w = sprite.alpha.shape
    fh, fw = frame.shape[:2]
    x0, y0, x1, y1 = max(0, ox), max(0, oy), min(fw, ox + w), min(fh, oy + h)
    if x0 >= x1 or y0 >= y1:
        return
    sl = (slice(y0 - oy, y1 - oy), slice(x0 - ox, x1 - ox))
    a, shade, rgb = sprite.alpha[sl], sprite.shade[sl], sprite.rgb[sl]
    if reveal is not None:
        a, shade = a * reveal[sl], 1 - (1 - shade) * reveal[sl]
    roi = frame[y0:y1, x0:x1]
    roi *= shade[..., None]
    roi *= (1 - a)[..., None]
    roi += rgb * a[..., None]


def spread(sprite: draw.Sprite, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """Per pixel of a spill sprite, when (0..1 of its spreading time) the liquid reaches it: distance
    from where it started, a little irregular."""
    h, w = sprite.alpha.shape
    x1, y1, x2, y2 = sprite.box
    ox, oy = rng.uniform(x1, x2), rng.uniform(y1, y2)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.sqrt(((xx - ox) / max(1, x2 - x1)) ** 2 + ((yy - oy) / max(1, y2 - y1)) ** 2)
    d = d + 0.15 * draw.noise(rng, h, w, max(3, min(w, h) / 4), 2)
    return (d - d.min()) / max(1e-6, float(d.max() - d.min()))


def mover_sprite(m: Mover, view: View, size: tuple[int, int], t: float) -> tuple[draw.Sprite, int, int] | None:
    """The mover at time ``t`` and where its extent's top-left goes; None when it is not in the frame."""
    g = view.geometry
    length = math.dist(m.start, m.end)
    travelled = (t - m.start_s) * m.speed
    if travelled < 0 or travelled > length or length == 0:
        return None
    share = travelled / length
    x = m.start[0] + (m.end[0] - m.start[0]) * share
    z = m.start[1] + (m.end[1] - m.start[1]) * share
    u, v = to_image(g, size, x, z)
    pxm, flat = ground_scale(g, size, v)
    if m.kind == "person":
        dims = (0.55, 0.4, 1.7) if g.horizon is not None else (0.55, 0.55, 0.0)
    else:
        along_x = abs(m.end[0] - m.start[0]) > abs(m.end[1] - m.start[1])
        dims = (4.4, 1.8, 0.0) if along_x and g.horizon is None else (1.8, 4.4, 1.25)
    box = object_box(g, size, u, v, dims)
    w, h = box[2] - box[0], box[3] - box[1]
    if w < 2 or h < 2 or box[2] < 0 or box[0] > size[0] or box[3] < 0 or box[1] > size[1]:
        return None
    rng = np.random.default_rng(m.seed)
    shrink = min(1.0, 120 / max(w, h))  # drawn at most 120 pixels, then enlarged
    sw, sh = max(2, round(w * shrink)), max(2, round(h * shrink))
    if m.kind == "person":
        colours = (int(rng.integers(6)), int(rng.integers(3)))
        sprite = props.person(colours, sw, sh, flat, (travelled / 1.4) % 1.0)
    else:
        palette = [(235, 235, 235), (40, 40, 40), (150, 150, 155), (140, 40, 30), (40, 40, 160), (90, 90, 95)]
        sprite = props.car(palette[int(rng.integers(len(palette)))], sw, sh, flat, g.horizon is None and along_x)
    if shrink < 1.0:
        sprite = draw.resized(sprite, w, h)
    return sprite, box[0], box[1]


def snowfall(rng: np.random.Generator, size: tuple[int, int], amount: int) -> npt.NDArray[np.float32]:
    """One frame's falling flakes as coverage (0..1), streaked by the exposure; flakes move far between
    two frames, so a handful of these drawn at random reads as snowfall."""
    w, h = size
    layer = np.zeros((h, w), np.float32)
    xs, ys = rng.uniform(0, w, amount), rng.uniform(0, h * 0.95, amount)
    lengths, drift = rng.uniform(2, 12, amount) * (ys / h + 0.3), rng.uniform(-0.5, 0.1, amount)
    for x, y, length, dx, b in zip(xs, ys, lengths, drift, rng.uniform(0.35, 0.9, amount)):
        cv2.line(layer, (int(x), int(y)), (int(x + dx * length), int(y + length)), float(b), 1, cv2.LINE_AA)
    return layer * 0.8


def cloud_field(rng: np.random.Generator, size: tuple[int, int]) -> npt.NDArray[np.float32]:
    """A soft cloud shadow three frames wide that slides across (0 clear .. 1 full shadow)."""
    w, h = size
    n = draw.noise(rng, h, w * 3, max(8, w / 3), 2)
    field = np.clip((n - 0.05) * 3, 0, 1)
    field[:, :w] = 0  # the clip starts in sunshine
    return cv2.GaussianBlur(field, (0, 0), w / 25)


def render(plan: ClipPlan, view: View, src: Path, out: Path) -> None:
    """Draw every frame of ``plan`` and encode it to ``out`` (H.264, yuv420p, ``-threads 1``)."""
    w, h = plan.size
    rng = np.random.default_rng(plan.seed)
    plate = load_plate(view, plan.size, src)
    base = plate.copy()
    measured = Light.of(plate)
    for f in plan.furniture:
        paste(base, lit(furniture_sprite(f, view), plate, f.box, view, measured), f.box[0], f.box[1])
    sprites = [lit(staged_sprite(s, view), plate, s.box, view, measured) for s in plan.staged]
    reveals = [spread(sp, rng) if s.grow_s > 0 else None for s, sp in zip(plan.staged, sprites)]
    light = plan.light
    cloud = cloud_field(rng, plan.size) if light["cloud"] else None
    # sensor noise and, at night, the flakes: added to each frame from a small pool (one add a frame)
    overlays = [rng.normal(0, light["noise"], (h, w, 3)).astype(np.float32) for _ in range(6)]
    if view.night:
        flake = 200 - float(np.median(plate))
        overlays = [o + flake * snowfall(rng, plan.size, int(w * h / 900))[..., None] for o in overlays]
    tint = rng.uniform(-0.02, 0.02, 3).astype(np.float32)
    cmd = [
        "ffmpeg",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "bgr24",
        "-s",
        f"{w}x{h}",
        "-r",
        str(plan.fps),
        "-i",
        "-",
        "-an",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-threads",
        "1",
        "-b:v",
        f"{plan.bitrate_k}k",
        "-maxrate",
        f"{int(plan.bitrate_k * 1.5)}k",
        "-bufsize",
        f"{plan.bitrate_k * 2}k",
        "-g",
        str(2 * plan.fps),
        "-pix_fmt",
        "yuv420p",
        "-fflags",
        "+bitexact",
        "-flags:v",
        "+bitexact",
        "-map_metadata",
        "-1",
        str(out),
    ]
    enc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    try:
        for i in range(plan.frames):
            t = i / plan.fps
            frame = base.copy()
            for s, sp, rev in zip(plan.staged, sprites, reveals):
                if t >= s.clear_s:
                    continue
                if t >= s.appear_s:
                    paste(frame, sp, s.box[0], s.box[1])
                elif rev is not None and t >= s.appear_s - s.grow_s:
                    p = (t - (s.appear_s - s.grow_s)) / s.grow_s
                    paste(frame, sp, s.box[0], s.box[1], np.clip((p * 1.1 - rev) / 0.1, 0, 1))
            for m in plan.movers:
                drawn = mover_sprite(m, view, plan.size, t)
                if drawn is not None:
                    sprite, x, y = drawn
                    box = (x, y, x + sprite.box[2] - sprite.box[0], y + sprite.box[3] - sprite.box[1])
                    paste(frame, lit(sprite, plate, box, view, measured), x, y)
            gain = (
                1
                + light["drift"] * math.sin(2 * math.pi * t / light["period_s"] + light["phase"])
                + light["trend"] * (t / plan.duration_s - 0.5)
            )
            colour = (gain * (1 + tint * math.sin(2 * math.pi * t / 47.0))).astype(np.float32)
            if cloud is not None:
                off = int(min(2 * w, t * light["cloud_speed"] * w))
                frame *= (1 - light["cloud_depth"] * cloud[:, off : off + w])[..., None] * colour
            else:
                frame *= colour
            frame += overlays[(i * 5 + i // 4) % len(overlays)]
            image = np.clip(frame, 0, 255, out=frame).astype(np.uint8)
            a = light["shake_px"]
            if a > 0:
                dx = a * (0.7 * math.sin(2 * math.pi * t / 2.3) + 0.3 * math.sin(2 * math.pi * t / 0.41 + 1.0))
                dy = a * 0.6 * (0.7 * math.sin(2 * math.pi * t / 3.1 + 2.0) + 0.3 * math.sin(2 * math.pi * t / 0.53))
                image = cv2.warpAffine(
                    image, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), borderMode=cv2.BORDER_REFLECT
                )
            enc.stdin.write(image.tobytes())
    finally:
        enc.stdin.close()
        if enc.wait() != 0:
            raise RuntimeError(f"blindgen: ffmpeg failed on {out}")
