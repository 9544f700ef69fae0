"""Domain randomisation and hard negatives for the litter training set (``make_dataset.py``).

A detector trained only on ``synth.py``'s drawings learns that generator's look (its hue bands,
its ellipse bags, its blob spills) and misses piles and spills drawn any other way. This module
widens what a "pile" and a "spill" look like and shows the detector what is *not* one:

- **Textures from real pictures**: ``Swatches`` cuts squares at random scales from the split's own
  backgrounds (streets, buildings, aerial photos, people) and recolours them; objects are painted
  with them, so neither colour nor grain says "garbage" or "spill".
- **Other shapes**: piles of textured polygons, boxes and bags stacked with light from above and a
  contact shadow (``pile``); flat spills with Fourier outlines, squashed by the ground plane, as
  paint, scattered grains, a darkening stain with sheen, or a translucent tint (``flat_spill``).
- **Hard negatives**, drawn and *not* labelled (``furniture``): bollards, cones, manhole covers,
  drain grates, road markings and arrows, kerb stones, planters, cast shadows of poles and trees,
  puddles that mirror the scene, fallen leaves.
- **Scene randomisation** (``camera``): a ground of another texture in perspective, white balance,
  gamma, grey (night) pictures, motion and focus blur, low resolution, noise; then either a JPEG
  quality or an H.264 intra frame (``h264``: a camera stream smooths faint ground where JPEG makes
  blocks), as ``make_dataset.py`` chooses.

Every function draws from a seeded ``numpy.random.Generator``; nothing reads files.

>>> rng = np.random.default_rng(0)
>>> swatches = Swatches(rng, [np.full((200, 300, 3), 90, np.uint8)], count=4)
>>> layer = flat_spill(rng, 90, 40, swatches)
>>> layer.alpha.shape, float(layer.shade.min()) >= 0.1
((40, 90), True)
>>> ground = np.full((240, 320, 3), 128, np.uint8)
>>> names = furniture(rng, ground, swatches, count=3)
>>> len(names) == 3 and int(ground.std()) > 0
True
"""

from __future__ import annotations

import io

import cv2
import numpy as np

from models.litter.synth import Layer

NEGATIVES = ("bollard", "cone", "manhole", "grate", "marking", "arrow", "kerb", "planter", "shadow",
             "tree_shadow", "puddle", "leaves")


class Swatches:
    """Square texture cuts from real pictures, recoloured on use."""

    def __init__(self, rng: np.random.Generator, images: list[np.ndarray], count: int = 400, side: int = 96):
        self.items = []
        for _ in range(count):
            im = images[int(rng.integers(len(images)))]
            h, w = im.shape[:2]
            s = int(rng.uniform(0.06, 0.5) * min(h, w))
            y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
            self.items.append(cv2.resize(im[y:y + s, x:x + s], (side, side), interpolation=cv2.INTER_AREA))

    def take(self, rng: np.random.Generator, w: int, h: int, tint: np.ndarray | None = None) -> np.ndarray:
        """An h x w float32 BGR texture: a swatch, flipped, recoloured (or ``tint`` times its grain)."""
        sw = self.items[int(rng.integers(len(self.items)))]
        sw = sw[:, ::-1] if rng.random() < 0.5 else sw
        tex = cv2.resize(sw, (max(2, w), max(2, h)), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        if tint is not None:
            grey = tex.mean(axis=2, keepdims=True)
            return (tint * (0.55 + 0.45 * grey / max(1.0, float(grey.mean())))).clip(0, 255)
        hsv = cv2.cvtColor(tex.clip(0, 255).astype(np.uint8), cv2.COLOR_BGR2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(0, 180)) % 180
        hsv[..., 1] = (hsv[..., 1] * rng.uniform(0.2, 2.0)).clip(0, 255)
        hsv[..., 2] = (hsv[..., 2] * rng.uniform(0.5, 1.5) + rng.uniform(-30, 30)).clip(0, 255)
        return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)


def _outline(rng: np.random.Generator, h: int, w: int, harmonics: int, rough: float) -> np.ndarray:
    """A filled star-shaped outline with a random Fourier radius, filling most of an h x w box (0..1)."""
    t = np.linspace(0, 2 * np.pi, 180, endpoint=False)
    r = np.ones_like(t)
    for k in range(2, 2 + harmonics):
        r += rough / k * rng.uniform(0.3, 1.0) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    r = r / r.max()
    pts = np.stack([w / 2 + r * np.cos(t) * (w / 2 - 1), h / 2 + r * np.sin(t) * (h / 2 - 1)], axis=1)
    mask = np.zeros((h, w), np.float32)
    cv2.fillPoly(mask, [np.int32(pts)], 1.0, cv2.LINE_AA)
    return mask


def _soft(mask: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(mask, (0, 0), max(0.5, sigma)) if sigma > 0 else mask


def _ellipse(h: int, w: int, cx, cy, ax, ay, angle=0.0) -> np.ndarray:
    m = np.zeros((h, w), np.float32)
    cv2.ellipse(m, (int(cx), int(cy)), (max(1, int(ax)), max(1, int(ay))), angle, 0, 360, 1.0, -1, cv2.LINE_AA)
    return m


def pile(rng: np.random.Generator, w: int, h: int, swatches: Swatches) -> Layer:
    """A garbage pile: 3-12 textured items (polygons, boxes, bags) stacked, lit from above."""
    colour = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w), np.float32)
    yy = np.mgrid[0:h, 0:w][0].astype(np.float32)
    shade = 1 - rng.uniform(0.15, 0.5) * _soft(_ellipse(h, w, w / 2, h * 0.78, w * 0.48, h * 0.22), w / 20)
    n = int(rng.integers(3, 13))
    for i in range(n):
        cx = rng.uniform(0.2, 0.8) * w
        cy = rng.uniform(0.35, 0.8) * h
        size = rng.uniform(0.15, 0.45) * w
        form = rng.choice(["poly", "box", "bag", "poly"])
        if form == "poly":
            pts = np.int32([[cx + rng.uniform(-1, 1) * size * 0.6, cy + rng.uniform(-1, 1) * size * 0.4]
                            for _ in range(int(rng.integers(3, 9)))])
            mask = np.zeros((h, w), np.float32)
            cv2.fillPoly(mask, [cv2.convexHull(pts) if rng.random() < 0.6 else pts], 1.0, cv2.LINE_AA)
        elif form == "box":
            bw, bh = size * rng.uniform(0.7, 1.3), size * rng.uniform(0.5, 1.0)
            rect = ((float(cx), float(cy)), (float(bw), float(bh)), float(rng.uniform(-25, 25)))
            mask = np.zeros((h, w), np.float32)
            cv2.fillConvexPoly(mask, np.int32(cv2.boxPoints(rect)), 1.0, cv2.LINE_AA)
        else:
            mask = _ellipse(h, w, cx, cy, size * rng.uniform(0.5, 0.8), size * rng.uniform(0.4, 0.7),
                            rng.uniform(-40, 40))
        if mask.sum() < 4:
            continue
        fill = swatches.take(rng, w, h) if rng.random() < 0.8 else \
            np.broadcast_to(np.float32(rng.uniform(0, 255, 3)), (h, w, 3)).copy()
        top = cy - size * 0.5
        light = 1.2 - 0.5 * ((yy - top) / (size + 1)).clip(0, 1) + rng.uniform(-0.1, 0.1)
        m = mask[..., None] * rng.uniform(0.85, 1.0)
        colour[:] = colour * (1 - m) + fill * light[..., None] * m
        if rng.random() < 0.4:  # a dark outline where items meet
            edge = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
            colour[:] = colour * (1 - 0.5 * edge[..., None])
        alpha[:] = np.maximum(alpha, mask)
    if alpha.max() < 0.5:  # nothing drawn: one big textured lump
        alpha = _outline(rng, h, w, 6, 0.5)
        colour = swatches.take(rng, w, h)
    return Layer(colour.clip(0, 255), _soft(alpha, 0.6).clip(0, 1), shade.astype(np.float32))


def flat_spill(rng: np.random.Generator, w: int, h: int, swatches: Swatches) -> Layer:
    """A spill lying flat on the ground: paint, scattered grains, a dark stain with sheen, or a tint."""
    outline = _outline(rng, h, w, int(rng.integers(3, 10)), rng.uniform(0.3, 1.2))
    if rng.random() < 0.5:  # droplets and runs around the main body
        for _ in range(int(rng.integers(1, 8))):
            outline = np.maximum(outline, _ellipse(h, w, rng.uniform(0, w), rng.uniform(0, h),
                                                   rng.uniform(0.02, 0.12) * w, rng.uniform(0.02, 0.1) * h))
    body = _soft(outline, rng.uniform(0, 0.03) * w)
    colour = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w), np.float32)
    shade = np.ones((h, w), np.float32)
    mode = rng.choice(["paint", "grains", "stain", "tint"])
    earth = np.float32(rng.uniform([20, 40, 60], [170, 200, 230]))  # sand, soil, clay, cement, in BGR
    if mode == "paint":
        colour[:] = swatches.take(rng, w, h, earth if rng.random() < 0.5 else None)
        alpha = body * rng.uniform(0.6, 1.0)
        shade = 1 - 0.15 * body
    elif mode == "grains":
        colour[:] = swatches.take(rng, w, h, earth if rng.random() < 0.7 else None)
        density = rng.uniform(0.35, 0.95)
        grains = (rng.random((h, w)) < density).astype(np.float32)
        if rng.random() < 0.5:
            k = int(rng.integers(2, 5))
            grains = cv2.resize((rng.random((h // k + 1, w // k + 1)) < density).astype(np.float32), (w, h),
                                interpolation=cv2.INTER_NEAREST)
        alpha = body * grains * rng.uniform(0.7, 1.0)
        shade = 1 - 0.1 * body
    elif mode == "stain":
        depth = rng.uniform(0.25, 0.8)
        shade = 1 - body * depth * (0.85 + 0.3 * swatches.take(rng, w, h).mean(axis=2) / 255)
        if rng.random() < 0.6:  # oil film or wet sheen
            colour[:] = swatches.take(rng, w, h)
            alpha = body * rng.uniform(0.05, 0.35)
    else:
        colour[:] = np.float32(rng.uniform(0, 255, 3))
        alpha = body * rng.uniform(0.3, 0.7)
    return Layer(colour.clip(0, 255), alpha.clip(0, 1), shade.clip(0.1, 1).astype(np.float32))


# -- hard negatives: drawn straight into the picture, never labelled ------------------------------


def _blend(image: np.ndarray, mask: np.ndarray, fill: np.ndarray) -> None:
    """``fill`` over ``image`` where ``mask`` (0..1) says, in place. A fill may hold NaN where the mask is 0:
    ``new_ground``'s perspective maps the row of its vanishing line, above the horizon, to infinity, and
    OpenCV interpolates NaN there (about once in 7,000 composed images); 0 times NaN is NaN, which became
    a black pixel."""
    m = mask[..., None]
    image[:] = (image.astype(np.float32) * (1 - m) + np.nan_to_num(fill) * m).clip(0, 255).astype(np.uint8)


def _darken(image: np.ndarray, mask: np.ndarray, depth: float) -> None:
    image[:] = (image.astype(np.float32) * (1 - depth * mask[..., None])).clip(0, 255).astype(np.uint8)


def _cylinder(w: int) -> np.ndarray:
    """Horizontal shading of a lit cylinder, 0.5..1.15."""
    x = np.linspace(-1, 1, max(1, w))
    return (0.5 + 0.65 * np.sqrt(np.clip(1 - (x - 0.3) ** 2 / 1.7, 0, 1))).astype(np.float32)


def furniture(rng: np.random.Generator, image: np.ndarray, swatches: Swatches, count: int) -> list[str]:
    """Draw ``count`` hard negatives into ``image`` (in place); the labelled objects go on top."""
    H, W = image.shape[:2]
    drawn = []
    for _ in range(count * 3):
        if len(drawn) == count:
            break
        name = str(rng.choice(NEGATIVES))
        y_frac = rng.uniform(0.3, 0.95)
        near = 0.5 + 0.7 * y_frac  # things nearer the camera (lower) are bigger
        s = int(W * rng.uniform(0.04, 0.16) * near)
        x, y = int(rng.integers(0, W)), int(y_frac * H)
        draw = _draw(rng, image, name, x, y, s, swatches)
        if draw is None:  # off the picture
            continue
        draw()
        drawn.append(name)
    return drawn


def _draw(rng, image, name, x, y, s, swatches):
    """Plan one negative at (x, y) of size ~s: a function that draws it, or None when it is off the picture."""
    H, W = image.shape[:2]
    s = max(6, s)

    def full(x1, y1, x2, y2):
        x1, y1, x2, y2 = max(0, int(x1)), max(0, int(y1)), min(W, int(x2)), min(H, int(y2))
        return None if x2 - x1 < 3 or y2 - y1 < 3 else (x1, y1, x2, y2)

    canvas = np.zeros((H, W), np.float32)
    if name in ("bollard", "cone", "planter"):
        bw = max(3, s // 3 if name == "bollard" else s // 2 if name == "cone" else s)
        bh = int(bw * (rng.uniform(2.0, 4.0) if name == "bollard" else rng.uniform(1.3, 2.0) if name == "cone"
                       else rng.uniform(0.5, 0.9)))
        area = full(x - bw / 2, y - bh, x + bw / 2 + bw, y + bh * 0.2)
        if area is None:
            return None

        def draw():
            sh = canvas.copy()  # its shadow on the ground, to one side
            cv2.ellipse(sh, (int(x + bw * 0.6), int(y)), (int(bw * 0.9), max(1, int(bw * 0.25))), 0, 0, 360, 1.0, -1)
            _darken(image, _soft(sh, bw / 8), rng.uniform(0.2, 0.45))
            body = canvas.copy()
            if name == "cone":
                cv2.fillConvexPoly(body, np.int32([[x - bw / 2, y], [x + bw / 2, y], [x, y - bh]]), 1.0, cv2.LINE_AA)
                fill = np.float32([20, 90, 235]) * rng.uniform(0.7, 1.1)
            elif name == "bollard":
                cv2.rectangle(body, (int(x - bw / 2), int(y - bh)), (int(x + bw / 2), int(y)), 1.0, -1)
                fill = np.float32(rng.choice([[150, 150, 150], [40, 200, 230], [40, 40, 40], [200, 200, 200]]))
            else:
                cv2.rectangle(body, (int(x - bw / 2), int(y - bh)), (int(x + bw / 2), int(y)), 1.0, -1)
                fill = np.float32(rng.uniform(60, 180, 3))
            tex = swatches.take(rng, W, H, fill) * 0.5 + fill * 0.5
            x1, x2 = max(0, int(x - bw / 2)), min(W, int(x + bw / 2) + 1)
            shading = np.ones((H, W), np.float32)
            if x2 > x1:
                shading[:, x1:x2] = _cylinder(x2 - x1)[None]
            _blend(image, body, tex * shading[..., None])
            if name in ("cone", "bollard") and rng.random() < 0.7:  # reflective bands
                band = canvas.copy()
                for k in range(int(rng.integers(1, 3))):
                    yb = int(y - bh * (0.35 + 0.3 * k))
                    cv2.rectangle(band, (int(x - bw / 2), yb), (int(x + bw / 2), yb + max(1, bh // 10)), 1.0, -1)
                _blend(image, band * body, np.float32([235, 235, 235]))
            if name == "planter":  # greenery on top
                top = canvas.copy()
                cv2.ellipse(top, (int(x), int(y - bh)), (int(bw * 0.55), max(2, int(bh * 0.6))), 0, 180, 360, 1.0, -1)
                _blend(image, top, swatches.take(rng, W, H, np.float32([40, 120, 50])))
        return draw
    if name in ("manhole", "grate", "puddle", "marking", "arrow", "kerb"):
        flat = rng.uniform(0.25, 0.5)  # ground-plane squash
        ww = s * (rng.uniform(3, 8) if name == "kerb" else rng.uniform(1.0, 2.5))
        hh = s * flat * (0.6 if name == "kerb" else 1.0)
        area = full(x - ww / 2, y - hh / 2, x + ww / 2, y + hh / 2)
        if area is None:
            return None

        def draw():
            m = canvas.copy()
            if name == "manhole":
                cv2.ellipse(m, (int(x), int(y)), (int(ww / 2.5), max(2, int(hh / 2))), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
                metal = swatches.take(rng, W, H, np.float32([70, 72, 75]) * rng.uniform(0.6, 1.4))
                _blend(image, m, metal)
                rim = canvas.copy()
                cv2.ellipse(rim, (int(x), int(y)), (int(ww / 2.5), max(2, int(hh / 2))), 0, 0, 360, 1.0, 2, cv2.LINE_AA)
                _darken(image, rim, 0.5)
            elif name == "grate":
                cv2.rectangle(m, (int(x - ww / 3), int(y - hh / 2)), (int(x + ww / 3), int(y + hh / 2)), 1.0, -1)
                slots = m.copy()
                step = max(2, int(ww / rng.uniform(6, 14)))
                slots[:, (np.arange(W) // max(1, step // 2)) % 2 == 0] = 0
                _blend(image, m, np.float32([90, 90, 90]))
                _darken(image, slots, rng.uniform(0.5, 0.85))
            elif name == "puddle":
                m = np.zeros((H, W), np.float32)
                out = _outline(rng, max(3, int(hh)), max(3, int(ww)), 5, 0.6)
                x1, y1 = int(x - ww / 2), int(y - hh / 2)
                ys, xs = slice(max(0, y1), min(H, y1 + out.shape[0])), slice(max(0, x1), min(W, x1 + out.shape[1]))
                m[ys, xs] = out[ys.start - y1:ys.stop - y1, xs.start - x1:xs.stop - x1]
                mirror = image[::-1].astype(np.float32) * rng.uniform(0.5, 0.9) + np.float32([20, 5, 0])
                _blend(image, _soft(m, 1.5), mirror)
            elif name == "kerb":
                cv2.rectangle(m, (int(x - ww / 2), int(y - hh / 2)), (int(x + ww / 2), int(y + hh / 2)), 1.0, -1)
                _blend(image, m, swatches.take(rng, W, H, np.float32([175, 175, 170]) * rng.uniform(0.7, 1.2)))
                face = canvas.copy()
                cv2.rectangle(face, (int(x - ww / 2), int(y)), (int(x + ww / 2), int(y + hh / 2)), 1.0, -1)
                _darken(image, face, 0.3)
            else:  # a painted line, a crossing stripe or an arrow, worn
                if name == "arrow":
                    pts = np.float32([[0, 0.35], [0.6, 0.35], [0.6, 0], [1, 0.5], [0.6, 1], [0.6, 0.65], [0, 0.65]])
                else:
                    pts = np.float32([[0, 0.2], [1, 0.0], [1, 0.8], [0, 1.0]])
                if rng.random() < 0.5:
                    pts = pts[:, ::-1]
                cv2.fillPoly(m, [np.int32(pts * [ww, hh] + [x - ww / 2, y - hh / 2])], 1.0, cv2.LINE_AA)
                worn = (rng.random((H, W)) < rng.uniform(0.7, 1.0)).astype(np.float32)
                paint = np.float32([230, 230, 230]) if rng.random() < 0.7 else np.float32([40, 200, 230])
                _blend(image, m * worn * rng.uniform(0.6, 0.95), paint)
        return draw
    if name in ("shadow", "tree_shadow"):
        ww, hh = s * rng.uniform(2, 6), s * rng.uniform(0.5, 2)
        area = full(x - ww / 2, y - hh / 2, x + ww / 2, y + hh / 2)
        if area is None:
            return None

        def draw():
            m = canvas.copy()
            if name == "shadow":  # a pole's or a sign's shadow: long, straight-edged
                angle = rng.uniform(-0.6, 0.6)
                thick = max(2, int(s * rng.uniform(0.08, 0.3)))
                cv2.line(m, (int(x - ww / 2), int(y - angle * ww / 2)), (int(x + ww / 2), int(y + angle * ww / 2)),
                         1.0, thick)
                if rng.random() < 0.4:
                    cv2.rectangle(m, (int(x + ww / 2 - s / 2), int(y - s / 3)), (int(x + ww / 2 + s / 2), int(y + s / 3)),
                                  1.0, -1)
            else:  # dappled canopy shade
                x1, y1, x2, y2 = area
                cells = rng.uniform(-1, 1, (int(rng.integers(3, 8)), int(rng.integers(4, 12)))).astype(np.float32)
                m[y1:y2, x1:x2] = (cv2.resize(cells, (x2 - x1, y2 - y1), interpolation=cv2.INTER_CUBIC) > 0.1)
            _darken(image, _soft(m, rng.uniform(0.5, 3)), rng.uniform(0.25, 0.6))
        return draw
    # fallen leaves, scattered
    ww, hh = s * rng.uniform(1.5, 4), s * rng.uniform(0.5, 1.2)
    area = full(x - ww / 2, y - hh / 2, x + ww / 2, y + hh / 2)
    if area is None:
        return None

    def draw():
        for _ in range(int(rng.integers(8, 60))):
            m = _ellipse(H, W, x + rng.uniform(-0.5, 0.5) * ww, y + rng.uniform(-0.5, 0.5) * hh,
                         max(1, s * rng.uniform(0.03, 0.08)), max(1, s * rng.uniform(0.015, 0.04)), rng.uniform(0, 180))
            hue = np.float32(rng.choice([[30, 90, 170], [20, 120, 200], [40, 130, 90], [30, 60, 110]]))
            _blend(image, m, hue * rng.uniform(0.7, 1.2))
    return draw


# -- the camera ---------------------------------------------------------------------------------------


def new_ground(rng: np.random.Generator, image: np.ndarray, swatches: Swatches) -> None:
    """Replace the lower part of ``image`` with another ground texture seen in perspective (in place)."""
    H, W = image.shape[:2]
    horizon = int(H * rng.uniform(0.2, 0.6))
    tint = np.float32([rng.uniform(60, 190)] * 3) * np.float32(rng.uniform(0.85, 1.15, 3))
    tex = swatches.take(rng, W, W, tint if rng.random() < 0.6 else None)
    src = np.float32([[0, 0], [W, 0], [W, W], [0, W]])
    spread = rng.uniform(0.15, 0.45) * W
    dst = np.float32([[W / 2 - spread, horizon], [W / 2 + spread, horizon], [W * 1.6, H], [-W * 0.6, H]])
    warped = cv2.warpPerspective(tex, cv2.getPerspectiveTransform(src, dst), (W, H), borderMode=cv2.BORDER_REFLECT)
    mask = np.zeros((H, W), np.float32)
    mask[horizon:] = 1
    _blend(image, _soft(mask, 2), warped)


def camera(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """What cameras do to a picture: white balance, gamma, grey at night, blur, low resolution, noise."""
    out = image.astype(np.float32)
    out = out * np.float32(rng.uniform(0.8, 1.2, 3)) * rng.uniform(0.6, 1.3) + rng.uniform(-25, 25)
    out = 255 * (out.clip(0, 255) / 255) ** rng.uniform(0.6, 1.6)
    night = rng.random() < 0.1  # an infrared night picture: grey, made so after the noise below
    r = rng.random()
    if r < 0.2:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 2.0))
    elif r < 0.35:  # motion blur along a random direction
        k = int(rng.integers(3, 9))
        kernel = np.zeros((k, k), np.float32)
        cv2.line(kernel, (0, int(rng.integers(k))), (k - 1, int(rng.integers(k))), 1.0, 1)
        out = cv2.filter2D(out, -1, kernel / max(1.0, kernel.sum()))
    if rng.random() < 0.3:  # a lower-resolution stream, scaled up
        h, w = out.shape[:2]
        f = rng.uniform(0.3, 0.75)
        out = cv2.resize(cv2.resize(out, (max(8, int(w * f)), max(8, int(h * f))), interpolation=cv2.INTER_AREA),
                         (w, h), interpolation=cv2.INTER_LINEAR)
    out = out + rng.normal(0, rng.uniform(0, 8), out.shape)
    if night:
        out = np.repeat(out.mean(axis=2, keepdims=True), 3, axis=2)
    return out.clip(0, 255).astype(np.uint8)


def h264(image: np.ndarray, crf: int) -> np.ndarray:
    """The picture as one H.264 intra frame at ``crf`` shows it (libx264, 4:2:0): what every camera
    stream the edge reads does to low-contrast ground, which JPEG does differently (blocks, not
    smoothing). An odd last row or column is kept as it was. PyAV is imported here, not above: a
    machine that composes without ``--h264`` (a lent GPU machine, ``device_train.sh``) has none."""
    import av

    h, w = image.shape[:2]
    even = np.ascontiguousarray(image[: h - h % 2, : w - w % 2])
    buf = io.BytesIO()
    with av.open(buf, "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = even.shape[1], even.shape[0], "yuv420p"
        # one thread: with zerolatency x264 cuts a frame into a slice per thread, and the thread count
        # follows the machine's cores, so the same picture came out otherwise on another machine
        stream.options = {"crf": str(crf), "preset": "veryfast", "tune": "zerolatency"}
        stream.thread_count = 1
        for packet in [*stream.encode(av.VideoFrame.from_ndarray(even, format="bgr24")), *stream.encode()]:
            out.mux(packet)
    buf.seek(0)
    with av.open(buf, "r", format="h264") as stream_in:
        decoded = next(stream_in.decode(video=0)).to_ndarray(format="bgr24")
    result = image.copy()
    result[: decoded.shape[0], : decoded.shape[1]] = decoded
    return result
