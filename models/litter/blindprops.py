"""Street furniture (static hard negatives: cones, covers, grates, road paint, puddles) and passers-by
(people, cars) for the BLIND evaluation generator, drawn from scratch like ``blinddraw.py``'s objects
and returned as its ``Sprite``. Evaluation only.
"""

from __future__ import annotations

import cv2
import numpy as np

from models.litter.blinddraw import SS, Sprite, canvas, contact_shadow, fit, noise, over, soft, spill_field

# ---------------------------------------------------------------- furniture (static hard negatives)


def cone(rng: np.random.Generator, w: int, h: int, flatten: float) -> Sprite:
    """A traffic cone: orange with white bands on a black base (seen from above: rings)."""
    cw, ch, mx, my = canvas(w, h)
    rgb, alpha = np.zeros((ch, cw, 3), np.float32), np.zeros((ch, cw), np.float32)
    orange = np.float32([20, 90, 235]) * rng.uniform(0.85, 1.05)
    W, H = w * SS, h * SS
    m = np.zeros((ch, cw), np.float32)
    if flatten > 0.8:
        cx, cy = mx + W / 2, my + H / 2
        cv2.rectangle(m, (mx, my), (mx + W, my + H), 1.0, -1)
        over(rgb, alpha, np.float32([30, 30, 30]), m)
        for r, c in ((0.42, orange), (0.3, np.float32([230, 230, 230])), (0.2, orange)):
            m = np.zeros((ch, cw), np.float32)
            cv2.circle(m, (int(cx), int(cy)), int(W * r), 1.0, -1, cv2.LINE_AA)
            over(rgb, alpha, c, m)
    else:
        base_h = H * 0.1
        cv2.rectangle(m, (mx, int(my + H - base_h)), (mx + W, my + H), 1.0, -1)
        over(rgb, alpha, np.float32([28, 28, 28]), m)
        body = np.float32(
            [
                [mx + W * 0.45, my],
                [mx + W * 0.55, my],
                [mx + W * 0.88, my + H - base_h],
                [mx + W * 0.12, my + H - base_h],
            ]
        )
        m = np.zeros((ch, cw), np.float32)
        cv2.fillPoly(m, [np.round(body * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift=2)
        xs = np.arange(cw, dtype=np.float32)
        round_light = (0.7 + 0.45 * np.clip(1 - np.abs(xs - (mx + W * 0.4)) / (W * 0.4), 0, 1))[None, :, None]
        colour = orange * round_light * np.ones((ch, 1, 1), np.float32)
        for a, b in ((0.28, 0.42), (0.55, 0.66)):
            colour[int(my + H * a) : int(my + H * b)] = np.float32([225, 228, 228]) * round_light[0]
        over(rgb, alpha, colour, m)
    shade = contact_shadow(alpha, 0.4, W * 0.15, H * 0.04, 1.0 if flatten > 0.8 else 0.2)
    return fit(rgb, alpha, shade, alpha, w, h)


def manhole(rng: np.random.Generator, w: int, h: int) -> Sprite:
    """A round cast-iron cover with a rim and a raised pattern, flattened by perspective via ``fit``."""
    cw, ch, mx, my = canvas(w, h, 0.1)
    W = w * SS
    m = np.zeros((ch, cw), np.float32)
    cv2.ellipse(m, (cw // 2, ch // 2), (W // 2, h * SS // 2), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
    r = np.sqrt(((xx - cw / 2) / (W / 2)) ** 2 + ((yy - ch / 2) / (h * SS / 2)) ** 2)
    iron = np.float32([48, 50, 52]) * rng.uniform(0.8, 1.4)
    pattern = ((np.sin(xx / max(2, W / 14)) * np.sin(yy / max(2, h * SS / 14))) > 0.3).astype(np.float32)
    colour = iron * (1 + 0.35 * pattern[..., None] * (r < 0.8)[..., None] + 0.5 * ((r > 0.85) & (r < 0.95))[..., None])
    colour = colour + 12 * noise(rng, ch, cw, max(3, W / 8), 2)[..., None]
    return fit(colour, m * 0.95, np.ones_like(m), m, w, h)


def grate(rng: np.random.Generator, w: int, h: int) -> Sprite:
    """A rectangular drain grate: a metal frame with dark slots."""
    cw, ch, mx, my = canvas(w, h, 0.1)
    rgb, alpha = np.zeros((ch, cw, 3), np.float32), np.zeros((ch, cw), np.float32)
    W, H = w * SS, h * SS
    m = np.zeros((ch, cw), np.float32)
    cv2.rectangle(m, (mx, my), (mx + W, my + H), 1.0, -1)
    over(rgb, alpha, np.float32([70, 72, 75]) * rng.uniform(0.8, 1.3), m)
    slots = int(rng.integers(5, 10))
    vertical = W >= H
    for k in range(slots):
        s = np.zeros((ch, cw), np.float32)
        if vertical:
            x = mx + W * (k + 0.6) / (slots + 0.2)
            cv2.rectangle(s, (int(x), int(my + H * 0.12)), (int(x + W / slots * 0.45), int(my + H * 0.88)), 1.0, -1)
        else:
            y = my + H * (k + 0.6) / (slots + 0.2)
            cv2.rectangle(s, (int(mx + W * 0.12), int(y)), (int(mx + W * 0.88), int(y + H / slots * 0.45)), 1.0, -1)
        over(rgb, alpha, np.float32([12, 12, 14]), s)
    return fit(rgb, alpha, np.ones_like(alpha), m, w, h)


def marking(rng: np.random.Generator, w: int, h: int) -> Sprite:
    """Worn road paint: an arrow, a stop bar or a hatched box, white or yellow."""
    cw, ch, mx, my = canvas(w, h, 0.1)
    W, H = w * SS, h * SS
    m = np.zeros((ch, cw), np.float32)
    kind = rng.choice(["arrow", "bars", "hatch"])
    if kind == "arrow":
        shaft = np.int32(
            [[mx + W * 0.4, my + H], [mx + W * 0.6, my + H], [mx + W * 0.6, my + H * 0.4], [mx + W * 0.4, my + H * 0.4]]
        )
        head = np.int32([[mx, my + H * 0.45], [mx + W, my + H * 0.45], [mx + W * 0.5, my]])
        cv2.fillPoly(m, [shaft, head], 1.0, cv2.LINE_AA)
    elif kind == "bars":
        for k in range(3):
            cv2.rectangle(m, (mx, int(my + H * k / 2.6)), (mx + W, int(my + H * k / 2.6 + H * 0.18)), 1.0, -1)
    else:
        cv2.rectangle(m, (mx, my), (mx + W, my + H), 1.0, max(2, int(min(W, H) * 0.08)))
        for k in range(-4, 5):
            cv2.line(
                m,
                (int(mx + W / 2 + k * W / 6), my),
                (int(mx + W / 2 + k * W / 6 + H), my + H),
                1.0,
                max(2, int(min(W, H) * 0.06)),
            )
        m[:my], m[my + H :], m[:, :mx], m[:, mx + W :] = 0, 0, 0, 0
    paint_colour = np.float32([225, 228, 228]) if rng.random() < 0.6 else np.float32([40, 190, 230])
    wear = np.clip(noise(rng, ch, cw, max(3, W / 10), 3) * 1.5 + 0.75, 0, 1)
    return fit(np.ones((ch, cw, 3), np.float32) * paint_colour, m * wear * 0.85, np.ones_like(m), m, w, h)


def puddle(rng: np.random.Generator, w: int, h: int, sky: tuple[float, float, float]) -> Sprite:
    """Standing rainwater in a dip of the road: darker, with a clear mirror of the sky."""
    cw, ch, mx, my = canvas(w, h, 0.1)
    field = spill_field(rng, ch, cw, mx, my, w, h, 0.2)
    mask = soft((field > 0).astype(np.float32), SS * 1.5)
    colour = np.ones((ch, cw, 3), np.float32) * np.float32(sky) * 0.9
    return fit(colour, mask * 0.5, 1 - 0.35 * mask, mask, w, h)


# ---------------------------------------------------------------- passers-by


def _poly(ch: int, cw: int, points: list[tuple[float, float]]) -> np.ndarray:
    m = np.zeros((ch, cw), np.float32)
    cv2.fillPoly(m, [np.round(np.float32(points) * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift=2)
    return m


def _limb(ch: int, cw: int, a: tuple[float, float], b: tuple[float, float], width: float) -> np.ndarray:
    m = np.zeros((ch, cw), np.float32)
    cv2.line(m, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), 1.0, max(1, int(width)), cv2.LINE_AA)
    return m


def person(rng_colours: tuple[int, int], w: int, h: int, flatten: float, phase: float) -> Sprite:
    """A walking person, one phase of the stride (0..1): head, coat with swinging arms, legs and shoes;
    from above, shoulders and head."""
    top, legs = rng_colours
    coats = [(40, 40, 45), (120, 60, 30), (60, 60, 140), (150, 150, 150), (30, 80, 40), (200, 200, 205)]
    trousers = [(35, 30, 30), (90, 60, 40), (60, 60, 62)]
    coat, trouser = np.float32(coats[top % len(coats)]), np.float32(trousers[legs % len(trousers)])
    cw, ch, mx, my = canvas(w, h, 0.3)
    rgb, alpha = np.zeros((ch, cw, 3), np.float32), np.zeros((ch, cw), np.float32)
    W, H = w * SS, h * SS
    cx = mx + W / 2
    if flatten > 0.8:
        m = np.zeros((ch, cw), np.float32)
        cv2.ellipse(m, (int(cx), my + H // 2), (W // 2, H // 4), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
        over(rgb, alpha, coat, m)
        m = np.zeros((ch, cw), np.float32)
        cv2.circle(m, (int(cx), my + H // 2), max(1, W // 5), 1.0, -1, cv2.LINE_AA)
        over(rgb, alpha, np.float32([30, 35, 45]), m)
    else:
        swing = np.sin(phase * 2 * np.pi)
        hip_y, shoulder_y = my + H * 0.53, my + H * 0.17
        for side in (-1, 1):  # legs, the far one darker
            hip = (cx + side * W * 0.14, hip_y)
            foot = (cx + side * W * 0.12 + side * swing * W * 0.35, my + H * 0.97)
            over(rgb, alpha, trouser * (0.8 if side < 0 else 1.0), _limb(ch, cw, hip, foot, W * 0.24))
            shoe = np.zeros((ch, cw), np.float32)
            cv2.ellipse(
                shoe,
                (int(foot[0]), int(foot[1])),
                (max(1, int(W * 0.16)), max(1, int(H * 0.02))),
                0,
                0,
                360,
                1.0,
                -1,
                cv2.LINE_AA,
            )
            over(rgb, alpha, np.float32([25, 25, 28]), shoe)
        body = [
            (cx - W * 0.42, shoulder_y),
            (cx + W * 0.42, shoulder_y),
            (cx + W * 0.36, my + H * 0.6),
            (cx - W * 0.36, my + H * 0.6),
        ]
        shade = np.linspace(1.1, 0.8, cw, dtype=np.float32)[None, :, None]
        over(rgb, alpha, coat * shade, _poly(ch, cw, body))
        for side in (-1, 1):  # arms swing against the legs
            hand = (cx + side * W * 0.46 - side * swing * W * 0.25, my + H * 0.52)
            over(rgb, alpha, coat * 0.85, _limb(ch, cw, (cx + side * W * 0.38, shoulder_y + H * 0.02), hand, W * 0.16))
        head = np.zeros((ch, cw), np.float32)
        cv2.ellipse(
            head,
            (int(cx), int(my + H * 0.075)),
            (max(1, int(H * 0.05)), max(1, int(H * 0.065))),
            0,
            0,
            360,
            1.0,
            -1,
            cv2.LINE_AA,
        )
        over(rgb, alpha, np.float32([75, 100, 140]), head)
        hair = np.zeros((ch, cw), np.float32)
        cv2.ellipse(
            hair,
            (int(cx), int(my + H * 0.06)),
            (max(1, int(H * 0.052)), max(1, int(H * 0.05))),
            0,
            180,
            360,
            1.0,
            -1,
            cv2.LINE_AA,
        )
        over(rgb, alpha, np.float32([30, 30, 35]), hair)
    shadow = np.zeros((ch, cw), np.float32)
    cv2.ellipse(shadow, (int(cx), my + H), (int(W * 0.6), max(1, int(W * 0.6 * max(flatten, 0.2)))), 0, 0, 360, 1.0, -1)
    return fit(rgb, alpha, 1 - 0.4 * soft(shadow, W * 0.2), alpha, w, h)


def car(colour: tuple[int, int, int], w: int, h: int, flatten: float, along_x: bool) -> Sprite:
    """A car. From straight above: a rounded body with windscreen and rear window across it. Along the
    road from a height: its top (bonnet or boot, glass, roof) above its rear face (window, lights,
    bumper, tyres), the split set by how flat the ground is seen."""
    cw, ch, mx, my = canvas(w, h, 0.15)
    rgb, alpha = np.zeros((ch, cw, 3), np.float32), np.zeros((ch, cw), np.float32)
    W, H = w * SS, h * SS
    body = np.float32(colour)
    glass = np.float32([45, 40, 38])
    if flatten > 0.8:
        m = np.zeros((ch, cw), np.float32)
        r = int(min(W, H) * 0.2)
        cv2.rectangle(m, (mx + r, my), (mx + W - r, my + H), 1.0, -1)
        cv2.rectangle(m, (mx, my + r), (mx + W, my + H - r), 1.0, -1)
        for x, y in ((mx + r, my + r), (mx + W - r, my + r), (mx + r, my + H - r), (mx + W - r, my + H - r)):
            cv2.circle(m, (x, y), r, 1.0, -1, cv2.LINE_AA)
        over(rgb, alpha, body, m)
        g = np.zeros((ch, cw), np.float32)
        if along_x:
            for a, b in ((0.22, 0.34), (0.72, 0.8)):
                cv2.rectangle(g, (int(mx + W * a), int(my + H * 0.12)), (int(mx + W * b), int(my + H * 0.88)), 1.0, -1)
        else:
            for a, b in ((0.22, 0.34), (0.72, 0.8)):
                cv2.rectangle(g, (int(mx + W * 0.12), int(my + H * a)), (int(mx + W * 0.88), int(my + H * b)), 1.0, -1)
        over(rgb, alpha, glass, g * m)
        return fit(rgb, alpha, contact_shadow(m, 0.5, min(W, H) * 0.1, H * 0.05, 1.0), m, w, h)
    top = H * 4.4 * flatten / (4.4 * flatten + 1.25 * np.sqrt(max(0.0, 1 - flatten**2)))
    x0, x1, yt, yb = mx, mx + W, my + top, my + H
    waist = yt + (yb - yt) * 0.42  # where the cabin's glass meets the body
    over(
        rgb,
        alpha,
        body * 1.08,
        _poly(ch, cw, [(x0 + W * 0.1, my), (x1 - W * 0.1, my), (x1 - W * 0.12, yt), (x0 + W * 0.12, yt)]),
    )
    over(
        rgb,
        alpha,
        glass * 1.4,
        _poly(
            ch,
            cw,
            [
                (x0 + W * 0.16, my + top * 0.25),
                (x1 - W * 0.16, my + top * 0.25),
                (x1 - W * 0.14, my + top * 0.7),
                (x0 + W * 0.14, my + top * 0.7),
            ],
        ),
    )
    over(
        rgb,
        alpha,
        glass,
        _poly(ch, cw, [(x0 + W * 0.12, yt), (x1 - W * 0.12, yt), (x1 - W * 0.02, waist), (x0 + W * 0.02, waist)]),
    )
    over(rgb, alpha, body * 0.75, _poly(ch, cw, [(x0, waist), (x1, waist), (x1, yb - H * 0.05), (x0, yb - H * 0.05)]))
    for a in (0.03, 0.8):
        lamp = np.zeros((ch, cw), np.float32)
        lo, hi = waist + (yb - waist) * 0.1, waist + (yb - waist) * 0.35
        cv2.rectangle(lamp, (int(x0 + W * a), int(lo)), (int(x0 + W * (a + 0.17)), int(hi)), 1.0, -1)
        over(rgb, alpha, np.float32([35, 30, 175]), lamp)
    tyres = np.zeros((ch, cw), np.float32)
    for a in (0.05, 0.77):
        cv2.rectangle(tyres, (int(x0 + W * a), int(yb - H * 0.1)), (int(x0 + W * (a + 0.18)), int(yb)), 1.0, -1)
    over(rgb, alpha, np.float32([22, 22, 24]), tyres)
    bumper = np.zeros((ch, cw), np.float32)
    cv2.rectangle(
        bumper,
        (int(x0 + W * 0.02), int(waist + (yb - waist) * 0.6)),
        (int(x1 - W * 0.02), int(waist + (yb - waist) * 0.78)),
        1.0,
        -1,
    )
    over(rgb, alpha, body * 0.5, bumper)
    return fit(rgb, alpha, contact_shadow(alpha, 0.55, W * 0.08, H * 0.03, 0.25), alpha, w, h)
