"""An OUTSIDER's independent illegal-parking set: composed clips of real vehicles parking on another
real camera's ground, with their truth, for judging the parking rules on what they were never tuned on.

    python models/parkgen.py --out data/eval/parkgen [--only arrive-stay,swap] [--width 800]

Written by someone who had read only README.md, the incident schema and shared/{FIXTURES,DOMAIN,MODELS}.md:
the scene list (``models/parkgen_scenes.md``) was written and committed first, then this generator, and the
clips made, before the parking rules (``edge/rules.py``, ``edge/stationary.py``, ``edge/tracker.py``) or the
project's own parking evaluation (``models/parking_variants.py``, ``eval_parking.py``) were read.

What it draws from (nothing downloaded here; all of it fetched by the project's own scripts):
- **the ground**: the OpenTrafficCam small-town junction camera (``data/litter/evalsrc/clean/junction-*.mp4``,
  ``models/litter/fetch_clean_footage.sh``; GPL-3.0), the per-pixel median of both clips' first 3 s (their
  traffic taken out; the white van parked at the shop stays, a real parked vehicle outside every zone);
- **vehicles**, real pictures cut with a hand-made polygon: the white pickup of darknet's ``dog.jpg``, the blue
  estate car and the green skip lorry of the junction footage's own first frame (``junction-truck.mp4``);
- **people**: the two men in front of the bus in ultralytics' ``bus.jpg`` (GrabCut inside a hand-made box)
  (both stills in ``data/litter/backgrounds/heldout/``, ``models/litter/fetch_backgrounds.sh``).
Each sprite is scaled with the ground's perspective (its size linear in its anchor's distance below the
horizon), casts a soft shadow, and drives in along a straight path, stops, and may drive off out of the picture.
The camera: sensor noise on every frame, a cloud or dusk on some clips, H.264 (x264 on one thread, so every
machine writes the same bytes) at 10 fps, a key frame every 1 s (4 s on one clip).

Each clip ``NAME.mp4`` has ``NAME.truth.json`` beside it: the zones (fractions of the picture) and dwell, each
vehicle's stop in a zone (``arrive``: stopped inside; ``leave``: starts to drive off; null: still there at the
end), and the incidents due: ``start_due`` = arrive + dwell, ``left_at`` = leave (or null).

>>> s = SCENES["brief-stop"]
>>> (s.seconds, [v.arrive for v in s.vehicles], due_incidents(s))
(40.0, [5.0], [])
>>> [(i["zone"], i["start_due"], i["left_at"]) for i in due_incidents(SCENES["swap"])]
[('kerb-east', 25.0, 32.0), ('kerb-east', 58.0, None)]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLEAN = ROOT / "data/litter/evalsrc/clean"
STILLS = ROOT / "data/litter/backgrounds/heldout"
BASE_W, BASE_H, FPS = 800, 600, 10
HORIZON_Y = 20.0  # the ground's horizon row at 800x600: sizes grow with the anchor's distance below it
DWELL_S = 20.0
DRIVE_S = 3.0  # seconds to drive from the edge of the picture to the stop, and from it out of the picture

# zones at 800x600 as fractions (a strip of road along the right-hand kerb; a box in the near paved area)
ZONES = {
    "kerb-east": [[0.70, 0.27], [0.86, 0.27], [0.92, 0.40], [0.74, 0.40]],
    "junction-box": [[0.30, 0.48], [0.85, 0.48], [0.85, 0.68], [0.30, 0.68]],
}


@dataclass(frozen=True)
class SpriteSource:
    """A real vehicle or person: where to cut it, its hand-made outline, and its width at an anchor row."""

    name: str
    polygon: tuple[tuple[float, float], ...]  # in the source picture's pixels
    width_at: tuple[float, float]  # (width in px, anchor row) on the 800x600 ground
    grabcut: bool = False


SPRITES = {
    # dog.jpg 768x576: the white pickup parked behind the dog, side on, facing right (leaves over its cab)
    "pickup": SpriteSource("pickup", tuple((x / 2 + 460, y / 2 + 60) for x, y in (
        (15, 120), (30, 95), (45, 45), (65, 32), (240, 40), (245, 62), (300, 70), (330, 80), (370, 120),
        (440, 135), (460, 150), (455, 190), (420, 205), (385, 222), (150, 205), (125, 200), (20, 160))),
        (112.0, 176.0)),
    # junction-truck.mp4 frame 0, 800x600: the blue estate car by the right-hand kerb, three-quarter rear view
    "estate": SpriteSource("estate", tuple((x / 2 + 570, y / 2 + 130) for x, y in (
        (15, 75), (45, 35), (100, 22), (190, 18), (240, 25), (270, 50), (280, 95), (278, 140), (245, 150),
        (240, 162), (205, 158), (120, 150), (95, 157), (70, 140), (30, 110), (15, 100))),
        (135.0, 210.0)),
    # the same frame: the green skip lorry crossing the junction, side on
    "lorry": SpriteSource("lorry", tuple((x / 2 + 110, y / 2 + 82) for x, y in (
        (20, 30), (40, 15), (110, 12), (120, 22), (250, 25), (268, 40), (280, 130), (275, 150), (250, 165),
        (150, 185), (60, 165), (35, 130), (25, 100))),
        (134.0, 176.0)),
    # bus.jpg 810x1080: the two men standing in front of the bus, one cut-out (a pair walking together)
    "people": SpriteSource("people", ((52, 399), (346, 399), (346, 899), (52, 899)), (57.0, 210.0), grabcut=True),
}


@dataclass(frozen=True)
class Vehicle:
    """One sprite's visit: drives in to ``stop`` (x, y anchor at 800x600), stopped from ``arrive`` to ``leave``."""

    sprite: str
    stop: tuple[float, float]
    arrive: float
    leave: float | None  # None: still there at the end
    zone: str | None  # the zone its stop is in (None: outside every zone)
    enter_from: tuple[float, float] = (1000.0, 120.0)
    exit_to: tuple[float, float] = (-300.0, 260.0)


@dataclass(frozen=True)
class Passer:
    """Something that passes through without stopping: from ``start`` at ``a`` to ``end`` at ``b`` (anchors)."""

    sprite: str
    start: tuple[float, float]
    end: tuple[float, float]
    a: float
    b: float


@dataclass(frozen=True)
class Scene:
    name: str
    seconds: float
    vehicles: tuple[Vehicle, ...]
    passers: tuple[Passer, ...] = ()
    light: tuple[tuple[float, float], ...] = ((0.0, 1.0),)  # (time, gain) breakpoints, linear between
    noise: tuple[tuple[float, float], ...] = ((0.0, 2.0),)  # (time, sigma) breakpoints
    crf: int = 26
    gop_s: float = 1.0
    tint: float = 0.0  # 0..1: how far the light turns blue at its darkest (dusk)
    note: str = ""


K = (665.0, 222.0)  # the kerb-east stop
KO = (665.0, 266.0)  # just beyond kerb-east's near edge (0.40 * 600 = 240): the anchor 26 px outside
J = (480.0, 370.0)  # the junction-box stop
KERB_IN, KERB_OUT = (980.0, 150.0), (-250.0, 300.0)
BOX_IN, BOX_OUT = (1150.0, 370.0), (-350.0, 370.0)

SCENES = {s.name: s for s in (
    Scene("arrive-stay", 45.0, (Vehicle("pickup", K, 6.0, None, "kerb-east", KERB_IN, KERB_OUT),)),
    Scene("arrive-leave", 55.0, (Vehicle("estate", J, 5.0, 40.0, "junction-box", BOX_IN, BOX_OUT),)),
    Scene("brief-stop", 40.0, (Vehicle("pickup", K, 5.0, 15.0, "kerb-east", KERB_IN, KERB_OUT),),
          note="stops 10 s, well short of the dwell: must raise nothing"),
    Scene("peds-in-front", 62.0, (Vehicle("estate", K, 5.0, 48.0, "kerb-east", KERB_IN, KERB_OUT),),
          (Passer("people", (560.0, 238.0), (780.0, 238.0), 12.5, 18.5),
           Passer("people", (790.0, 240.0), (560.0, 240.0), 28.5, 35.0))),
    Scene("lorry-in-front", 64.0, (Vehicle("pickup", J, 5.0, 50.0, "junction-box", BOX_IN, BOX_OUT),),
          (Passer("lorry", (-250.0, 430.0), (1100.0, 430.0), 15.5, 23.5),
           Passer("lorry", (1100.0, 430.0), (-250.0, 430.0), 30.5, 38.5))),
    Scene("cloud", 60.0, (Vehicle("estate", K, 4.0, 46.0, "kerb-east", KERB_IN, KERB_OUT),),
          light=((0.0, 1.0), (16.0, 1.0), (18.0, 0.55), (36.0, 0.55), (38.0, 1.0))),
    Scene("dusk-noise", 55.0, (Vehicle("pickup", J, 5.0, None, "junction-box", BOX_IN, BOX_OUT),),
          light=((0.0, 1.0), (10.0, 1.0), (40.0, 0.30)), noise=((0.0, 2.0), (10.0, 2.0), (40.0, 9.0)),
          crf=36, tint=1.0),
    Scene("outside-zone", 45.0, (Vehicle("pickup", KO, 6.0, None, None, KERB_IN, KERB_OUT),),
          note="parks with its anchor 26 px beyond kerb-east's near edge: must raise nothing"),
    Scene("side-by-side", 60.0, (
        Vehicle("estate", (330.0, 370.0), 5.0, 38.0, "junction-box", BOX_IN, BOX_OUT),
        Vehicle("pickup", (600.0, 370.0), 9.0, None, "junction-box", BOX_IN, BOX_OUT))),
    Scene("swap", 75.0, (
        Vehicle("pickup", K, 5.0, 32.0, "kerb-east", KERB_IN, KERB_OUT),
        Vehicle("estate", K, 38.0, None, "kerb-east", KERB_IN, KERB_OUT)),
          note="a new vehicle in the same place 6 s after the first left: a new incident, not the old clock"),
    Scene("noisy-longgop", 58.0, (Vehicle("pickup", K, 6.0, 42.0, "kerb-east", KERB_IN, KERB_OUT),),
          noise=((0.0, 6.0),), crf=34, gop_s=4.0),
)}


def due_incidents(scene: Scene, dwell_s: float = DWELL_S) -> list[dict]:
    """The incidents a scene must raise: one per vehicle stopped in a zone for at least the dwell."""
    due = []
    for v in scene.vehicles:
        if v.zone is None:
            continue
        end = v.leave if v.leave is not None else scene.seconds
        if end - v.arrive >= dwell_s + 2.0:  # a margin of two analysed frames for a stop ending at the dwell
            due.append({"zone": v.zone, "sprite": v.sprite, "arrive": v.arrive, "start_due": v.arrive + dwell_s,
                        "left_at": v.leave})
    return due


def truth(scene: Scene) -> dict:
    return {
        "clip": scene.name, "seconds": scene.seconds, "fps": FPS, "dwell_s": DWELL_S, "zones": ZONES,
        "note": scene.note,
        "vehicles": [{"sprite": v.sprite, "zone": v.zone, "stop": [v.stop[0] / BASE_W, v.stop[1] / BASE_H],
                      "arrive": v.arrive, "leave": v.leave} for v in scene.vehicles],
        "passers": [{"sprite": p.sprite, "from": p.a, "to": p.b} for p in scene.passers],
        "incidents": due_incidents(scene),
    }


# ---- material ---------------------------------------------------------------------------------------------

class MissingSource(FileNotFoundError):
    pass


def _need(path: Path, script: str) -> Path:
    if not path.is_file():
        raise MissingSource(f"{path}: not there; run {script} first")
    return path


def _frames(path: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while len(out) < n:
        ok, frame = cap.read()
        if not ok:
            break
        out.append(frame)
    cap.release()
    if not out:
        raise MissingSource(f"{path}: no frame could be read")
    return out


def load_material(frames: int = 60) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The 800x600 ground (the median of each clip's first ``frames``) and each sprite as (BGR, alpha 0..1)."""
    fetch = "models/litter/fetch_clean_footage.sh"
    cyc = _frames(_need(CLEAN / "junction-cyclist.mp4", fetch), frames)
    truck = _frames(_need(CLEAN / "junction-truck.mp4", fetch), max(frames, 1))
    ground = np.median(np.stack(cyc + truck), axis=0).astype(np.uint8)
    if ground.shape[:2] != (BASE_H, BASE_W):
        ground = cv2.resize(ground, (BASE_W, BASE_H), interpolation=cv2.INTER_AREA)
    pictures = {
        "pickup": cv2.imread(str(_need(STILLS / "darknet-dog.jpg", "models/litter/fetch_backgrounds.sh"))),
        "estate": truck[0], "lorry": truck[0],
        "people": cv2.imread(str(_need(STILLS / "ultralytics-bus.jpg", "models/litter/fetch_backgrounds.sh"))),
    }
    sprites = {}
    for name, src in SPRITES.items():
        pic = pictures[name]
        poly = np.array(src.polygon, np.float32)
        x0, y0 = np.floor(poly.min(axis=0)).astype(int)
        x1, y1 = np.ceil(poly.max(axis=0)).astype(int)
        cut = pic[y0:y1, x0:x1].copy()
        if src.grabcut:
            # on the box and a 40 px margin at half size: the whole picture took 5 s for the same outline
            m = 40
            ax0, ay0 = max(x0 - m, 0), max(y0 - m, 0)
            around = cv2.resize(pic[ay0:y1 + m, ax0:x1 + m], None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
            mask = np.zeros(around.shape[:2], np.uint8)
            bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
            cv2.setRNGSeed(7)
            cv2.grabCut(around, mask, ((x0 - ax0) // 2, (y0 - ay0) // 2, (x1 - x0) // 2, (y1 - y0) // 2), bgd, fgd, 4,
                        cv2.GC_INIT_WITH_RECT)
            fg = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.float32)
            fg = cv2.resize(fg, (pic[ay0:y1 + m, ax0:x1 + m].shape[1], pic[ay0:y1 + m, ax0:x1 + m].shape[0]))
            alpha = fg[y0 - ay0:y1 - ay0, x0 - ax0:x1 - ax0]
        else:
            alpha = np.zeros(cut.shape[:2], np.float32)
            cv2.fillPoly(alpha, [np.round(poly - (x0, y0)).astype(np.int32)], 1.0)
        alpha = cv2.GaussianBlur(alpha, (5, 5), 0)
        if name == "pickup":  # a sunny photo: brought down towards the junction's overcast light
            cut = np.clip(cut.astype(np.float32) * 0.82, 0, 255).astype(np.uint8)
        sprites[name] = (cut, alpha)
    return ground, sprites


# ---- drawing ----------------------------------------------------------------------------------------------

def _interp(points: tuple[tuple[float, float], ...], t: float) -> float:
    ts, vs = zip(*points)
    return float(np.interp(t, ts, vs))


def anchor_at(v: Vehicle, t: float, seconds: float) -> tuple[float, float] | None:
    """Where a vehicle's anchor is at ``t`` (None: not in the picture)."""
    if t < v.arrive - DRIVE_S:
        return None
    if t < v.arrive:
        f = (t - (v.arrive - DRIVE_S)) / DRIVE_S
        f = 1 - (1 - f) ** 2  # slowing down into the stop
        return (v.enter_from[0] + (v.stop[0] - v.enter_from[0]) * f,
                v.enter_from[1] + (v.stop[1] - v.enter_from[1]) * f)
    if v.leave is None or t < v.leave:
        return v.stop
    if t < v.leave + DRIVE_S:
        f = ((t - v.leave) / DRIVE_S) ** 2  # pulling away
        return (v.stop[0] + (v.exit_to[0] - v.stop[0]) * f, v.stop[1] + (v.exit_to[1] - v.stop[1]) * f)
    return None


def paste(frame: np.ndarray, sprite: tuple[np.ndarray, np.ndarray], src: SpriteSource,
          anchor: tuple[float, float], k: float, shadow: bool) -> None:
    """Draws a sprite with its bottom centre at ``anchor`` (800x600 px), the whole picture scaled by ``k``."""
    rgb, alpha = sprite
    width0, row0 = src.width_at
    w = width0 * max(anchor[1] - HORIZON_Y, 1.0) / (row0 - HORIZON_Y) * k
    scale = w / rgb.shape[1]
    sw, sh = max(int(round(rgb.shape[1] * scale)), 1), max(int(round(rgb.shape[0] * scale)), 1)
    x0, y0 = int(round(anchor[0] * k - sw / 2)), int(round(anchor[1] * k - sh))
    H, W = frame.shape[:2]
    if shadow:  # a soft contact shadow under the body
        sh_mask = np.zeros((H, W), np.float32)
        cv2.ellipse(sh_mask, (int(anchor[0] * k), int(anchor[1] * k - sh * 0.04)),
                    (max(int(sw * 0.52), 1), max(int(sh * 0.10), 1)), 0, 0, 360, 1.0, -1)
        sh_mask = cv2.GaussianBlur(sh_mask, (0, 0), max(sh * 0.04, 0.8))
        frame[:] = (frame * (1 - 0.45 * sh_mask[..., None])).astype(np.uint8)
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + sw, W), min(y0 + sh, H)
    if cx0 >= cx1 or cy0 >= cy1:
        return
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    r = cv2.resize(rgb, (sw, sh), interpolation=interp)[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
    a = cv2.resize(alpha, (sw, sh), interpolation=interp)[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0, None]
    region = frame[cy0:cy1, cx0:cx1].astype(np.float32)
    frame[cy0:cy1, cx0:cx1] = (region * (1 - a) + r.astype(np.float32) * a).astype(np.uint8)


def render(scene: Scene, ground: np.ndarray, sprites: dict, width: int, t: float,
           rng: np.random.Generator) -> np.ndarray:
    k = width / BASE_W
    height = int(round(BASE_H * k)) // 2 * 2
    frame = cv2.resize(ground, (width, height), interpolation=cv2.INTER_AREA) if k != 1 else ground.copy()
    things = []  # (anchor row, sprite name, anchor, shadow)
    for v in scene.vehicles:
        a = anchor_at(v, t, scene.seconds)
        if a is not None:
            things.append((a[1], v.sprite, a, True))
    for p in scene.passers:
        if p.a <= t <= p.b:
            f = (t - p.a) / (p.b - p.a)
            a = (p.start[0] + (p.end[0] - p.start[0]) * f, p.start[1] + (p.end[1] - p.start[1]) * f)
            things.append((a[1], p.sprite, a, p.sprite != "people"))
    for _, name, a, shadow in sorted(things, key=lambda x: x[0]):  # far ones first: nearer ones hide them
        paste(frame, sprites[name], SPRITES[name], a, k, shadow)
    gain = _interp(scene.light, t)
    img = frame.astype(np.float32) * gain
    if scene.tint:
        dark = (1.0 - gain) * scene.tint  # dusk: blue up, red down as the light goes
        img *= np.array([1.0 + 0.25 * dark, 1.0, 1.0 - 0.25 * dark], np.float32)
    sigma = _interp(scene.noise, t)
    if sigma > 0:
        img += rng.normal(0.0, sigma, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_clip(scene: Scene, out_dir: Path, material=None, width: int = BASE_W, seconds: float | None = None) -> Path:
    """Writes ``NAME.mp4`` and ``NAME.truth.json`` into ``out_dir``; returns the clip's path."""
    ground, sprites = material if material is not None else load_material()
    out_dir.mkdir(parents=True, exist_ok=True)
    clip = out_dir / f"{scene.name}.mp4"
    k = width / BASE_W
    height = int(round(BASE_H * k)) // 2 * 2
    n = int(round((seconds if seconds is not None else scene.seconds) * FPS))
    rng = np.random.default_rng(sum(map(ord, scene.name)))  # the same noise on every machine
    cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}",
           "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-preset", "veryfast", "-threads", "1",
           "-crf", str(scene.crf), "-g", str(int(scene.gop_s * FPS)), "-keyint_min", str(int(scene.gop_s * FPS)),
           "-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p", str(clip)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    try:
        for i in range(n):
            proc.stdin.write(render(scene, ground, sprites, width, i / FPS, rng).tobytes())
    finally:
        proc.stdin.close()
        rc = proc.wait()
    if rc != 0:
        raise RuntimeError(f"ffmpeg failed ({rc}) writing {clip}")
    t = truth(scene)
    if seconds is not None:
        t["seconds"] = seconds
    (out_dir / f"{scene.name}.truth.json").write_text(json.dumps(t, indent=1) + "\n")
    return clip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "data/eval/parkgen")
    ap.add_argument("--only", default="", help="comma-separated scene names (default: all)")
    ap.add_argument("--width", type=int, default=BASE_W)
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(SCENES)
    unknown = [n for n in names if n not in SCENES]
    if unknown:
        print(f"error: no scene {unknown}; known: {list(SCENES)}", file=sys.stderr)
        return 2
    try:
        material = load_material()
    except MissingSource as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name in names:
        clip = make_clip(SCENES[name], args.out, material, args.width)
        print(f"{clip} ({SCENES[name].seconds:.0f} s, {len(due_incidents(SCENES[name]))} incidents due)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
