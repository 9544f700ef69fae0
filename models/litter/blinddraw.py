"""Sprites for the BLIND evaluation generator (``blindgen.py``): garbage, spills, street furniture and
passers-by, drawn from scratch with numpy and OpenCV (no texture files). Evaluation only: nothing
here is used for training or for any choice.

Every drawing function takes the size in pixels the object must fill, the perspective at its place
(``flatten``: how much the ground is squashed vertically, 1 when looking straight down) and a
``numpy.random.Generator``, and returns a ``Sprite``: colour and coverage, a ``shade`` multiplier for
the ground under it (contact shadow, wetness) and the object's extent, so that the planned box is the
box drawn (``fit``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
SS = 3  # supersampling of every canvas: edges are averaged when it is shrunk to the frame
LIGHT = np.array([-0.45, -0.55, 0.70]) / np.linalg.norm([-0.45, -0.55, 0.70])  # x right, y down, z to the camera


@dataclass(frozen=True)
class Sprite:
    """What a drawing puts into a frame: ``out = ground * shade; out = out * (1 - alpha) + rgb * alpha``.
    ``box`` (x1, y1, x2, y2, exclusive) is the object's extent inside these arrays (not its shadow)."""

    rgb: F32  # h, w, 3 BGR, 0..255
    alpha: F32  # h, w
    shade: F32  # h, w
    box: tuple[int, int, int, int]


# ---------------------------------------------------------------- helpers


def noise(rng: np.random.Generator, h: int, w: int, cell: float, octaves: int = 3) -> F32:
    """Smooth fractal value noise in about -1..1, features about ``cell`` pixels across.

    >>> noise(np.random.default_rng(0), 20, 30, 8).shape
    (20, 30)
    """
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
        grid = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp, cell = amp * 0.5, max(1.5, cell / 2)
    return out / total


def soft(mask: F32, sigma: float) -> F32:
    return cv2.GaussianBlur(mask, (0, 0), max(0.3, sigma)) if sigma > 0 else mask


def blob(
    rng: np.random.Generator,
    h: int,
    w: int,
    cx: float,
    cy: float,
    rx: float,
    ry: float,
    wobble: float = 0.08,
    angle: float = 0.0,
) -> F32:
    """A filled closed shape: an ellipse with random low harmonics on its radius."""
    t = np.linspace(0, 2 * np.pi, 90, endpoint=False)
    r = np.ones_like(t)
    for k in range(2, 6):
        r += rng.uniform(0, wobble) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    x, y = rx * r * np.cos(t), ry * r * np.sin(t)
    ca, sa = np.cos(angle), np.sin(angle)
    pts = np.stack([cx + ca * x - sa * y, cy + sa * x + ca * y], 1)
    mask = np.zeros((h, w), np.float32)
    cv2.fillPoly(mask, [np.round(pts * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift=2)
    return mask


def dome_light(mask: F32, bump: F32 | None = None, spec_power: float = 30.0) -> tuple[F32, F32]:
    """Diffuse and specular light on a puffy shape whose height follows the distance to its edge."""
    dist = cv2.distanceTransform((mask > 0.5).astype(np.uint8), cv2.DIST_L2, 5).astype(np.float32)
    height = np.sqrt(dist / max(1.0, float(dist.max())))
    if bump is not None:
        height = height + bump
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) * 4
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) * 4
    n = np.dstack([-gx, -gy, np.ones_like(gx)])
    n /= np.linalg.norm(n, axis=2, keepdims=True)
    diffuse = np.clip(n @ LIGHT.astype(np.float32), 0, 1)
    half = LIGHT + np.array([0, 0, 1.0])
    half /= np.linalg.norm(half)
    spec = np.clip(n @ half.astype(np.float32), 0, 1) ** spec_power
    return diffuse.astype(np.float32), spec.astype(np.float32)


def fit(rgb: F32, alpha: F32, shade: F32, extent: F32, w: int, h: int) -> Sprite:
    """Scale a canvas so that its extent (``extent > 0.3``) becomes exactly ``w`` x ``h`` pixels."""
    ys, xs = np.nonzero(extent > 0.3)
    if len(xs) == 0:
        raise ValueError("fit: the drawing is empty; nothing covers more than 30%")
    x1, x2, y1, y2 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    ch0, cw0 = alpha.shape
    shade = 1 - (1 - shade) * taper(ch0, cw0, int(min(x1, cw0 - x2)) + 1, int(min(y1, ch0 - y2)) + 1)
    sx, sy = w / (x2 - x1), h / (y2 - y1)
    ch, cw = alpha.shape
    nw, nh = max(1, round(cw * sx)), max(1, round(ch * sy))

    def rs(a: F32) -> F32:
        return cv2.resize(a, (nw, nh), interpolation=cv2.INTER_AREA if sx < 1 else cv2.INTER_LINEAR)

    bx, by = round(x1 * sx), round(y1 * sy)
    return Sprite(rs(rgb), np.clip(rs(alpha), 0, 1), np.clip(rs(shade), 0, 1), (bx, by, bx + w, by + h))


def resized(sprite: Sprite, w: int, h: int) -> Sprite:
    """The same sprite with its extent stretched to ``w`` x ``h`` (big passers-by are drawn small, then
    enlarged: near the camera they would cost a second a frame)."""
    x1, y1, x2, y2 = sprite.box
    sx, sy = w / (x2 - x1), h / (y2 - y1)
    ch, cw = sprite.alpha.shape
    size = (max(1, round(cw * sx)), max(1, round(ch * sy)))

    def rs(a: F32) -> F32:
        return cv2.resize(a, size, interpolation=cv2.INTER_LINEAR)

    bx, by = round(x1 * sx), round(y1 * sy)
    return Sprite(rs(sprite.rgb), rs(sprite.alpha), rs(sprite.shade), (bx, by, bx + w, by + h))


def canvas(w: int, h: int, margin: float = 0.25) -> tuple[int, int, int, int]:
    """Working canvas size (supersampled, with a margin for shadows and spray) and the margin in pixels."""
    mx, my = int(w * SS * margin) + 4, int(h * SS * margin) + 4
    return w * SS + 2 * mx, h * SS + 2 * my, mx, my


def over(rgb: F32, alpha: F32, colour: F32, a: F32) -> None:
    """Paint ``colour`` (h, w, 3 or 3) with coverage ``a`` over the canvas, in place."""
    rgb *= (1 - a)[..., None]
    rgb += np.asarray(colour, np.float32) * a[..., None]
    alpha[:] = alpha + a * (1 - alpha)


def contact_shadow(mask: F32, depth: float, spread: float, dy: float, base: float = 0.35) -> F32:
    """Ground darkening under an object: the lowest ``base`` share of its silhouette (where it meets the
    ground), pushed a little down the frame and blurred; 1 where there is no shadow."""
    rows = np.nonzero(mask.max(1) > 0.3)[0]
    if len(rows) == 0:
        return np.ones_like(mask)
    top, bottom = rows[0], rows[-1]
    band = max(2.0, (bottom - top) * base)
    weight = np.clip((np.arange(mask.shape[0], dtype=np.float32) - (bottom - band)) / band, 0, 1)[:, None]
    m = np.roll(mask * weight, int(dy), axis=0)
    return 1 - depth * np.clip(soft(m, spread) * 1.4, 0, 1)


def taper(h: int, w: int, mx: int, my: int) -> F32:
    """1 inside the canvas, falling to 0 over its margins: shadows and sheen never end in a hard edge."""
    ry = np.clip(np.minimum(np.arange(h), h - 1 - np.arange(h)) / max(1, my * 0.7), 0, 1)
    rx = np.clip(np.minimum(np.arange(w), w - 1 - np.arange(w)) / max(1, mx * 0.7), 0, 1)
    return (ry[:, None] * rx[None, :]).astype(np.float32)


# ---------------------------------------------------------------- garbage

BAG_COLOURS = {
    "black": (28, 28, 30),
    "dark grey": (62, 64, 66),
    "white": (218, 222, 220),
    "blue": (150, 92, 38),
    "green": (52, 112, 48),
    "yellow": (40, 190, 225),
    "red": (44, 40, 170),
    "pink": (160, 130, 225),
    "woven": (200, 205, 200),
}


def bag(
    rng: np.random.Generator, h: int, w: int, cx: float, cy: float, rx: float, ry: float, colour: str, top_down: bool
) -> tuple[F32, F32]:
    """One tied plastic bag (or a woven sack): colour and coverage on an h x w canvas."""
    angle = rng.uniform(-0.5, 0.5) if not top_down else rng.uniform(0, np.pi)
    mask = blob(rng, h, w, cx, cy, rx, ry, 0.07, angle)
    knot_dir = -np.pi / 2 + angle if not top_down else rng.uniform(0, 2 * np.pi)
    kx, ky = cx + np.cos(knot_dir) * ry * 0.95, cy + np.sin(knot_dir) * ry * 0.95
    for side in (-1, 1):  # the two ears of the knot
        ex = kx + side * rx * 0.25 + np.cos(knot_dir) * ry * 0.15
        ey = ky + np.sin(knot_dir) * ry * 0.25
        cv2.fillPoly(mask, [np.int32([[kx - rx * 0.12, ky], [kx + rx * 0.12, ky], [ex, ey]])], 1.0, cv2.LINE_AA)
    woven = colour == "woven"
    cell = max(2.0, min(rx, ry) / 3)
    wrinkles = (1 - np.abs(noise(rng, h, w, cell, 2))) ** 4 * (0.06 if woven else 0.18)
    diffuse, spec = dome_light(mask, wrinkles, rng.uniform(15, 60))
    albedo = np.array(BAG_COLOURS[colour], np.float32) * rng.uniform(0.85, 1.12)
    col = albedo * (0.35 + 0.75 * diffuse[..., None])
    if woven:  # striped polypropylene sack, matt
        stripes = (np.sin((np.arange(w) - cx) / max(2, rx / 5) * np.pi)[None, :] > 0.75).astype(np.float32)
        tint = np.array([rng.choice([60, 150]), 60, rng.choice([60, 170])], np.float32)
        col = col * (1 - 0.5 * stripes[..., None]) + 0.5 * stripes[..., None] * tint * diffuse[..., None]
        spec = spec * 0.15
    shine = 200 if colour in ("black", "dark grey") else 120
    col = col + spec[..., None] * rng.uniform(0.6, 1.2) * shine
    return np.clip(col, 0, 255).astype(np.float32), mask


def bag_heap(rng: np.random.Generator, w: int, h: int, flatten: float) -> Sprite:
    """A heap of 1-7 tied bags, the back ones higher up the frame, drawn back to front."""
    cw, ch, mx, my = canvas(w, h)
    rgb, alpha = np.zeros((ch, cw, 3), np.float32), np.zeros((ch, cw), np.float32)
    top_down = flatten > 0.8
    n = int(rng.integers(1, 8))
    palette = list(BAG_COLOURS)
    main = rng.choice(palette, p=[0.3, 0.1, 0.15, 0.1, 0.08, 0.07, 0.05, 0.05, 0.1])
    size = w * SS / (1.1 + 0.55 * np.sqrt(n))
    spots = []
    for _ in range(n):
        u, v = rng.uniform(-1, 1), rng.uniform(-1, 1)
        cx = mx + w * SS * (0.5 + 0.33 * u)
        cy = my + h * SS * (0.62 + 0.25 * v) if not top_down else my + h * SS * (0.5 + 0.3 * v)
        spots.append((cy, cx))
    for cy, cx in sorted(spots):
        colour = main if rng.random() < 0.6 else rng.choice(palette)
        rx = size * rng.uniform(0.4, 0.6)
        ry = rx * (rng.uniform(0.9, 1.3) if not top_down else rng.uniform(0.7, 1.0))
        c, a = bag(rng, ch, cw, cx, cy, rx, ry, str(colour), top_down)
        over(rgb, alpha, c, a)
    shade = contact_shadow(
        alpha, rng.uniform(0.45, 0.7), max(w, h) * SS * 0.06, h * SS * 0.04, 1.0 if top_down else 0.35
    )
    return fit(rgb, alpha, shade, alpha, w, h)


def cardboard(rng: np.random.Generator, w: int, h: int, flatten: float) -> Sprite:
    """One to four cardboard boxes in perspective (top, front and side faces), tape, print, an open flap;
    sometimes a flattened box lying beside them."""
    cw, ch, mx, my = canvas(w, h)
    rgb, alpha = np.zeros((ch, cw, 3), np.float32), np.zeros((ch, cw), np.float32)
    upright = np.sqrt(max(0.0, 1 - flatten**2))
    n = int(rng.integers(1, 5))
    boxes = []
    for k in range(n):  # the first and largest box fills the canvas's height, so ``fit`` hardly stretches
        bw = w * SS * (rng.uniform(0.45, 0.75) if k == 0 else rng.uniform(0.25, 0.5))
        shape_d, shape_h = rng.uniform(0.5, 1.0) * max(flatten, 0.15), rng.uniform(0.5, 1.0) * upright
        tall = h * SS * (rng.uniform(0.8, 1.0) if k == 0 else rng.uniform(0.3, 0.7))
        scale = tall / max(1e-3, (shape_d + shape_h) * bw)
        bd, bh = shape_d * bw * scale, shape_h * bw * scale
        x = mx + rng.uniform(0, w * SS - bw)
        y = my + h * SS - bh - rng.uniform(0, max(0.0, h * SS - bh - bd))
        boxes.append((y, x, bw, bd, bh))
    if rng.random() < 0.35:  # a flattened box on the ground
        fw = w * SS * rng.uniform(0.4, 0.7)
        boxes.append(
            (
                my + h * SS - fw * max(flatten, 0.15) * 0.7,
                mx + rng.uniform(0, w * SS - fw),
                fw,
                fw * max(flatten, 0.15) * 0.7,
                1.5,
            )
        )
    kraft = np.array([rng.uniform(75, 110), rng.uniform(125, 155), rng.uniform(165, 200)], np.float32)
    for y, x, bw, bd, bh in sorted(boxes):
        skew = rng.uniform(-0.2, 0.2) * bw * max(flatten, 0.3)
        base = kraft * rng.uniform(0.8, 1.1)
        front = np.float32([[x, y], [x + bw, y], [x + bw, y + bh], [x, y + bh]])
        top = np.float32([[x + skew, y - bd], [x + bw + skew, y - bd], [x + bw, y], [x, y]])
        side = (
            np.float32([[x + bw, y], [x + bw + skew, y - bd], [x + bw + skew, y - bd + bh], [x + bw, y + bh]])
            if skew > 0
            else np.float32([[x, y], [x + skew, y - bd], [x + skew, y - bd + bh], [x, y + bh]])
        )
        tex = noise(rng, ch, cw, max(3, bw / 6), 2)[..., None] * 10
        for poly, light in ((side, 0.5), (front, 0.68), (top, 1.05)):
            m = np.zeros((ch, cw), np.float32)
            cv2.fillPoly(m, [np.round(poly * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift=2)
            over(rgb, alpha, np.clip(base * light + tex, 0, 255), m)
            cv2.polylines(
                rgb,
                [np.round(poly * 4).astype(np.int32)],
                True,
                (base * light * 0.55).tolist(),
                max(1, int(bw / 60)),
                cv2.LINE_AA,
                shift=2,
            )
        t = rng.uniform(0.42, 0.5)  # tape along the top, glossy
        tape = np.float32(
            [
                [x + skew + bw * t, y - bd],
                [x + skew + bw * (t + 0.12), y - bd],
                [x + bw * (t + 0.12), y],
                [x + bw * t, y],
            ]
        )
        m = np.zeros((ch, cw), np.float32)
        cv2.fillPoly(m, [np.round(tape * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift=2)
        over(rgb, alpha, np.clip(base * 1.25 + 25, 0, 255), m * 0.6)
        if bh > 8 and rng.random() < 0.7:  # printing on the front
            px, py = x + bw * rng.uniform(0.1, 0.5), y + bh * rng.uniform(0.2, 0.5)
            ink = (40, 40, 40) if rng.random() < 0.6 else (140, 60, 30)
            cv2.rectangle(rgb, (int(px), int(py)), (int(px + bw * 0.3), int(py + bh * 0.15)), ink, -1, cv2.LINE_AA)
        if bd > 6 and rng.random() < 0.4:  # an open flap standing up
            flap = np.float32(
                [
                    [x + skew, y - bd],
                    [x + bw * 0.5 + skew, y - bd],
                    [x + bw * 0.45 + skew * 1.4, y - bd - bh * 0.35 - bd * 0.3],
                    [x + skew * 1.4, y - bd - bh * 0.3],
                ]
            )
            m = np.zeros((ch, cw), np.float32)
            cv2.fillPoly(m, [np.round(flap * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift=2)
            over(rgb, alpha, base * 0.9, m)
    shade = contact_shadow(
        alpha, rng.uniform(0.35, 0.6), max(w, h) * SS * 0.05, h * SS * 0.03, 1.0 if flatten > 0.8 else 0.35
    )
    return fit(rgb, alpha, shade, alpha, w, h)


def litter_item(rng: np.random.Generator, rgb: F32, alpha: F32, cx: float, cy: float, s: float) -> None:
    """One small piece of litter, ``s`` pixels long, painted in place: cup, bottle, can, paper, food box."""
    ch, cw = alpha.shape
    kind = rng.choice(["cup", "bottle", "can", "paper", "foam", "wrapper"], p=[0.2, 0.2, 0.15, 0.2, 0.1, 0.15])
    ang = rng.uniform(0, np.pi)
    m = np.zeros((ch, cw), np.float32)
    if kind in ("bottle", "can", "cup"):
        length, width = (
            (s, s * 0.3) if kind == "bottle" else (s * 0.55, s * 0.3) if kind == "can" else (s * 0.45, s * 0.35)
        )
        dx, dy = np.cos(ang) * length / 2, np.sin(ang) * length / 2
        cv2.line(m, (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy)), 1.0, max(1, int(width)), cv2.LINE_AA)
        colour = {
            "bottle": [(200, 210, 205), (70, 130, 60), (40, 80, 120)][rng.integers(3)],
            "can": [(40, 40, 190), (190, 190, 195), (160, 80, 30)][rng.integers(3)],
            "cup": [(235, 240, 240), (60, 90, 150), (50, 50, 200)][rng.integers(3)],
        }[str(kind)]
        a = m * (0.65 if kind == "bottle" and colour[0] > 150 else 1.0)
        over(rgb, alpha, np.float32(colour), a)
        hl = np.zeros_like(m)  # a highlight along its length
        cv2.line(
            hl,
            (int(cx - dx * 0.8), int(cy - dy * 0.8 - width * 0.2)),
            (int(cx + dx * 0.8), int(cy + dy * 0.8 - width * 0.2)),
            1.0,
            max(1, int(width * 0.25)),
            cv2.LINE_AA,
        )
        over(rgb, alpha, np.float32([245, 245, 245]), hl * m * 0.7)
    else:
        rx = s * (0.4 if kind != "foam" else 0.35)
        m = blob(rng, ch, cw, cx, cy, rx, rx * rng.uniform(0.5, 0.9), 0.25 if kind == "paper" else 0.05, ang)
        colour = {
            "paper": (225, 228, 230),
            "foam": (238, 240, 240),
            "wrapper": [(30, 160, 220), (180, 60, 40), (40, 40, 40)][rng.integers(3)],
        }[str(kind)]
        diffuse, _ = dome_light(m, noise(rng, ch, cw, max(2, s / 4), 1) * 0.3)
        over(rgb, alpha, np.float32(colour) * (0.55 + 0.5 * diffuse[..., None]), m)


def scattered_litter(rng: np.random.Generator, w: int, h: int, flatten: float, pxm: float) -> Sprite:
    """Cups, bottles, cans, paper and wrappers strewn over the ground, thicker in the middle; now and
    then a split bag among them."""
    cw, ch, mx, my = canvas(w, h)
    rgb, alpha = np.zeros((ch, cw, 3), np.float32), np.zeros((ch, cw), np.float32)
    item = float(np.clip(0.25 * pxm, w / 9, w / 3)) * SS  # about 25 cm long, but at least a few across
    n = int(np.clip(w * h * SS * SS / (item * item) * rng.uniform(0.15, 0.35), 10, 220))
    if rng.random() < 0.4:
        c, a = bag(
            rng,
            ch,
            cw,
            mx + w * SS * rng.uniform(0.35, 0.65),
            my + h * SS * 0.5,
            w * SS * 0.16,
            w * SS * 0.16 * max(flatten, 0.5),
            str(rng.choice(["black", "white", "blue"])),
            flatten > 0.8,
        )
        over(rgb, alpha, c, a)
    for _ in range(n):
        r, t = rng.uniform(0, 1) ** 0.8 * 0.45, rng.uniform(0, 2 * np.pi)
        cx, cy = mx + w * SS * (0.5 + r * np.cos(t)), my + h * SS * (0.5 + r * np.sin(t))
        litter_item(rng, rgb, alpha, cx, cy, item * rng.uniform(0.6, 1.4))
    shade = contact_shadow(alpha, 0.35, item * 0.15, item * 0.08, 1.0)
    return fit(rgb, alpha, shade, cv2.dilate((alpha > 0.3).astype(np.float32), np.ones((3, 3), np.uint8)), w, h)


RUBBLE = [(150, 152, 155), (128, 130, 130), (60, 75, 150), (80, 95, 170), (170, 180, 190), (100, 104, 108)]


def rubble(rng: np.random.Generator, w: int, h: int, flatten: float) -> Sprite:
    """A mound of broken concrete, brick and tile: chunks drawn back to front over a dusty base."""
    cw, ch, mx, my = canvas(w, h)
    rgb, alpha = np.zeros((ch, cw, 3), np.float32), np.zeros((ch, cw), np.float32)
    mound = blob(rng, ch, cw, mx + w * SS / 2, my + h * SS * 0.6, w * SS * 0.5, h * SS * 0.42, 0.1)
    dust = soft(mound, w * SS * 0.015) * 0.5
    over(rgb, alpha, np.float32([175, 180, 185]) * rng.uniform(0.8, 1.05), dust)
    palette = [RUBBLE[0], RUBBLE[1], RUBBLE[5]] + [
        RUBBLE[i] for i in rng.choice([2, 3, 4], int(rng.integers(0, 3)), replace=False)
    ]
    chunk = max(3.0, w * SS / rng.uniform(8, 16))
    ys, xs = np.nonzero(mound > 0.5)
    order = rng.choice(len(xs), min(len(xs), int(len(xs) / (chunk * chunk) * 2.5) + 6))
    for k in sorted(order, key=lambda k: ys[k]):
        cx, cy, s = xs[k], ys[k], chunk * rng.uniform(0.4, 1.3)
        t = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(4, 8))))
        pts = np.stack(
            [cx + s * np.cos(t) * rng.uniform(0.6, 1, len(t)), cy + s * np.sin(t) * rng.uniform(0.6, 1, len(t))], 1
        )
        m = np.zeros((ch, cw), np.float32)
        cv2.fillPoly(m, [np.round(pts * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift=2)
        height = 1 - (cy - my) / (h * SS)  # the top of the mound catches more light
        light = rng.uniform(0.55, 1.05) * (0.8 + 0.3 * height)
        colour = np.float32(palette[rng.integers(len(palette))]) * light
        over(rgb, alpha, colour, m)
        cv2.polylines(rgb, [np.round(pts * 4).astype(np.int32)], True, (colour * 0.6).tolist(), 1, cv2.LINE_AA, shift=2)
    if rng.random() < 0.4:  # a few bent reinforcing bars
        for _ in range(int(rng.integers(1, 4))):
            x0, y0 = mx + rng.uniform(0.2, 0.8) * w * SS, my + rng.uniform(0.3, 0.7) * h * SS
            m = np.zeros((ch, cw), np.float32)
            cv2.line(
                m,
                (int(x0), int(y0)),
                (int(x0 + rng.uniform(-0.3, 0.3) * w * SS), int(y0 - rng.uniform(0.1, 0.3) * h * SS)),
                1.0,
                max(1, int(chunk / 6)),
                cv2.LINE_AA,
            )
            over(rgb, alpha, np.float32([40, 50, 70]), m)
    extent = alpha
    shade = contact_shadow(mound, rng.uniform(0.3, 0.5), w * SS * 0.05, h * SS * 0.03, 1.0 if flatten > 0.8 else 0.35)
    return fit(rgb, alpha, shade, extent, w, h)


def mixed_dump(rng: np.random.Generator, w: int, h: int, flatten: float, pxm: float) -> Sprite:
    """Fly-tipping: an old mattress (leaning or lying) with bags and a box beside it."""
    cw, ch, mx, my = canvas(w, h)
    rgb, alpha = np.zeros((ch, cw, 3), np.float32), np.zeros((ch, cw), np.float32)
    upright = np.sqrt(max(0.0, 1 - flatten**2))
    mw = w * SS * rng.uniform(0.55, 0.8)
    lying = flatten > 0.6 or rng.random() < 0.5
    mh = mw * (0.55 * max(flatten, 0.2) if lying else 0.75 * upright + 0.1)
    x0, y0 = mx + rng.uniform(0, w * SS - mw), my + h * SS - mh - rng.uniform(0, 0.2) * h * SS
    quad = np.float32(
        [[x0 + mw * 0.05, y0], [x0 + mw, y0 + mh * 0.05], [x0 + mw * 0.95, y0 + mh], [x0, y0 + mh * 0.95]]
    )
    m = np.zeros((ch, cw), np.float32)
    cv2.fillPoly(m, [np.round(quad * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift=2)
    fabric = np.float32(
        [(205, 215, 222), (200, 200, 196), (190, 170, 150), (150, 175, 200)][rng.integers(4)]
    ) * rng.uniform(0.85, 1.05)
    quilt = (
        np.sin(np.arange(cw) / max(3, mw / 9) * np.pi)[None, :]
        * np.sin(np.arange(ch) / max(3, mh / 5) * np.pi)[:, None]
    )
    stains = np.clip(noise(rng, ch, cw, max(4, mw / 5), 2) * 2 - 0.6, 0, 1)
    colour = fabric[None, None, :] * (0.9 + 0.05 * quilt[..., None]) * (1 - 0.3 * stains[..., None])
    colour[..., 0] *= 1 - 0.3 * stains  # stains are yellowish-brown
    over(rgb, alpha, colour, m)
    cv2.polylines(
        rgb,
        [np.round(quad * 4).astype(np.int32)],
        True,
        (fabric * 0.6).tolist(),
        max(1, int(mw / 50)),
        cv2.LINE_AA,
        shift=2,
    )
    for _ in range(int(rng.integers(1, 4))):
        rx = w * SS * rng.uniform(0.1, 0.17)
        c, a = bag(
            rng,
            ch,
            cw,
            mx + rng.uniform(0.15, 0.85) * w * SS,
            my + h * SS - rx * 1.1,
            rx,
            rx * (1.15 if flatten < 0.8 else 0.85),
            str(rng.choice(list(BAG_COLOURS))),
            flatten > 0.8,
        )
        over(rgb, alpha, c, a)
    if rng.random() < 0.5:
        for _ in range(6):
            litter_item(
                rng,
                rgb,
                alpha,
                mx + rng.uniform(0.1, 0.9) * w * SS,
                my + rng.uniform(0.7, 0.95) * h * SS,
                max(4.0, 0.25 * pxm * SS),
            )
    shade = contact_shadow(
        alpha, rng.uniform(0.35, 0.6), max(w, h) * SS * 0.05, h * SS * 0.03, 1.0 if flatten > 0.8 else 0.35
    )
    return fit(rgb, alpha, shade, alpha, w, h)


# ---------------------------------------------------------------- spills


def spill_field(rng: np.random.Generator, ch: int, cw: int, mx: int, my: int, w: int, h: int, rough: float) -> F32:
    """A puddle-shaped field, positive inside: two to four overlapping soft lobes plus fractal noise
    (so the outline is irregular at every scale)."""
    yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
    field = np.full((ch, cw), -1.0, np.float32)
    for _ in range(int(rng.integers(2, 5))):
        cx, cy = mx + w * SS * rng.uniform(0.3, 0.7), my + h * SS * rng.uniform(0.3, 0.7)
        rx, ry = w * SS * rng.uniform(0.2, 0.38), h * SS * rng.uniform(0.2, 0.38)
        field = np.maximum(field, 1 - ((xx - cx) / rx) ** 2 - ((yy - cy) / ry) ** 2)
    return field + rough * noise(rng, ch, cw, max(4, min(w, h) * SS / 4), 4)


def droplets(rng: np.random.Generator, inside: F32, count: int, size: float) -> F32:
    """Small splashes just outside a spill's edge."""
    ch, cw = inside.shape
    edge = cv2.dilate((inside > 0.5).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=int(size * 2) + 1)
    ys, xs = np.nonzero(edge & (inside < 0.5))
    out = np.zeros((ch, cw), np.float32)
    for k in rng.choice(len(xs), min(count, len(xs)), replace=False) if len(xs) else []:
        cv2.ellipse(
            out,
            (int(xs[k]), int(ys[k])),
            (max(1, int(size * rng.uniform(0.3, 1))),) * 2,
            0,
            0,
            360,
            1.0,
            -1,
            cv2.LINE_AA,
        )
    return out


def tyre_tracks(rng: np.random.Generator, mask: F32, width: float) -> F32:
    """Two parallel wheel tracks dragged out of a spill, fading with distance."""
    ch, cw = mask.shape
    ys, xs = np.nonzero(mask > 0.5)
    if len(xs) == 0:
        return np.zeros_like(mask)
    k = rng.integers(len(xs))
    x0, y0 = xs[k], ys[k]
    direction = rng.choice([-1, 1])
    out = np.zeros((ch, cw), np.float32)
    for off in (-width * 1.6, width * 1.6):
        x_end = x0 + direction * cw * rng.uniform(0.4, 0.7)
        cv2.line(
            out,
            (int(x0), int(y0 + off)),
            (int(x_end), int(y0 + off + rng.uniform(-0.1, 0.1) * ch)),
            1.0,
            max(1, int(width)),
            cv2.LINE_AA,
        )
    fade = np.clip(1.15 - np.abs(np.arange(cw) - x0)[None, :] / (cw * 0.5), 0, 1)
    fade = fade * (fade > 0.12)  # the wheels have shed the paint: the track stops
    tread = 0.6 + 0.4 * (np.sin(np.arange(cw) / max(1.5, width * 0.6))[None, :] > 0)
    return out * fade * tread


def oil(rng: np.random.Generator, w: int, h: int) -> Sprite:
    """Engine oil or diesel: near-black, a faint rainbow film at the rim, a dull sheen, splashes."""
    cw, ch, mx, my = canvas(w, h, 0.15)
    field = spill_field(rng, ch, cw, mx, my, w, h, rng.uniform(0.3, 0.6))
    mask = soft((field > 0).astype(np.float32), SS * 0.7)
    mask = np.maximum(mask, droplets(rng, mask, int(rng.integers(3, 15)), SS * min(w, h) / 25))
    dist = cv2.distanceTransform((mask > 0.5).astype(np.uint8), cv2.DIST_L2, 5).astype(np.float32)
    rim = max(2.0, min(w, h) * SS * 0.12)
    band = np.clip(1 - dist / rim, 0, 1) * (mask > 0.5)
    hue = ((dist / rim * 1.3 + noise(rng, ch, cw, rim, 2) * 0.6) * 180) % 180
    hsv = np.dstack([hue, np.full_like(hue, 120), np.full_like(hue, 95)]).astype(np.uint8)
    rainbow = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR).astype(np.float32)
    dark = np.float32([rng.uniform(14, 30), rng.uniform(16, 30), rng.uniform(20, 36)])
    tex = 1 + 0.25 * noise(rng, ch, cw, max(3, w * SS / 8), 3)[..., None]
    colour = dark * tex * np.ones((ch, cw, 1), np.float32)
    colour = colour * (1 - 0.3 * band[..., None]) + rainbow * 0.3 * band[..., None]
    sheen = np.clip(noise(rng, ch, cw, max(4, w * SS / 3), 2) * 2.5 - 0.8, 0, 1) * rng.uniform(0.1, 0.3)
    colour = colour + sheen[..., None] * np.float32([170, 160, 150])
    alpha = mask * rng.uniform(0.7, 0.92)
    return fit(colour, alpha, 1 - 0.15 * soft(mask, SS * 2), mask, w, h)


def wet_patch(rng: np.random.Generator, w: int, h: int, sky: tuple[float, float, float]) -> Sprite:
    """Water, a burst pipe or washing-out: the ground darker with soft edges and a weak mirror of the sky."""
    cw, ch, mx, my = canvas(w, h, 0.15)
    field = spill_field(rng, ch, cw, mx, my, w, h, rng.uniform(0.4, 0.8))
    mask = soft(np.clip(field * 3, 0, 1), SS * min(w, h) * 0.04)
    if rng.random() < 0.5:  # a trail running off downhill
        mask = np.maximum(mask, soft(tyre_tracks(rng, mask, SS * min(w, h) * 0.05), SS) * 0.8)
    depth = rng.uniform(0.2, 0.38)
    shade = 1 - depth * mask
    gloss = np.clip(noise(rng, ch, cw, max(4, w * SS / 4), 2) + 0.3, 0, 1) * mask * rng.uniform(0.1, 0.3)
    colour = np.ones((ch, cw, 3), np.float32) * np.float32(sky)
    return fit(colour, gloss, shade, mask, w, h)


GRANULAR = {
    "sand": (130, 175, 205),
    "soil": (45, 65, 95),
    "gravel": (125, 128, 132),
    "cement": (185, 188, 190),
    "coal": (35, 35, 38),
    "red clay": (55, 85, 160),
}


def granular(rng: np.random.Generator, w: int, h: int) -> Sprite:
    """Sand, soil, gravel, cement or coal spread from a lorry: speckled, thinning out into loose grains."""
    cw, ch, mx, my = canvas(w, h, 0.15)
    field = spill_field(rng, ch, cw, mx, my, w, h, rng.uniform(0.4, 0.9))
    density = np.clip(field * 1.6, 0, 1)
    name = str(rng.choice(list(GRANULAR)))
    base = np.float32(GRANULAR[name]) * rng.uniform(0.85, 1.15)
    speck = rng.normal(0, 1, (ch, cw)).astype(np.float32)
    colour = base * (1 + 0.22 * speck[..., None] + 0.12 * noise(rng, ch, cw, max(3, w * SS / 6), 2)[..., None])
    grains = np.clip((density - rng.uniform(0, 1, (ch, cw)).astype(np.float32)) / 0.25 + 0.5, 0, 1)
    alpha = np.maximum(grains, np.clip(density * 2 - 1, 0, 1)) * (density > 0.12)
    if rng.random() < 0.4:  # a heap where the load came off
        diffuse, _ = dome_light(np.clip(density * 2 - 1.2, 0, 1))
        colour = colour * (0.75 + 0.4 * diffuse[..., None])
    cover = soft(alpha.astype(np.float32), SS * 1.5)  # the share of ground the grains hide, locally
    return fit(np.clip(colour, 0, 255), alpha.astype(np.float32), 1 - 0.12 * soft(density, SS * 2), cover * 2.5, w, h)


PAINT = {
    "white": (236, 238, 238),
    "yellow": (30, 200, 245),
    "red": (35, 35, 190),
    "blue": (175, 95, 30),
    "green": (60, 150, 55),
    "orange": (30, 120, 235),
    "grey slurry": (150, 152, 150),
    "mud": (45, 70, 100),
}


def paint(rng: np.random.Generator, w: int, h: int) -> Sprite:
    """Spilt paint, concrete slurry or mud: glossy, opaque, splattered, often with wheel tracks."""
    cw, ch, mx, my = canvas(w, h, 0.15)
    field = spill_field(rng, ch, cw, mx, my, w, h, rng.uniform(0.25, 0.5))
    mask = soft((field > 0).astype(np.float32), SS * 0.6)
    mask = np.maximum(mask, droplets(rng, mask, int(rng.integers(5, 25)), SS * min(w, h) / 30))
    if rng.random() < 0.5:
        mask = np.maximum(mask, tyre_tracks(rng, mask, SS * min(w, h) * 0.06))
    name = str(rng.choice(list(PAINT)))
    base = np.float32(PAINT[name]) * rng.uniform(0.85, 1.05)
    diffuse, spec = dome_light(
        (mask > 0.5).astype(np.float32) * 0.3, noise(rng, ch, cw, max(3, w * SS / 10), 2) * 0.08, 40
    )
    colour = base * (0.8 + 0.25 * diffuse[..., None]) + spec[..., None] * 120
    alpha = mask * (0.95 if name not in ("grey slurry", "mud") else rng.uniform(0.7, 0.9))
    return fit(np.clip(colour, 0, 255), alpha, 1 - 0.1 * soft(mask, SS * 2), mask * 3, w, h)
