"""A third drawing family for the litter training set: objects rendered from a lit height field.

``synth.py`` paints flat shapes in painter's order with a vertical light ramp; ``randomise.py``
paints textured polygons the same way and Fourier-outlined spills. This module draws by a
different *method*, so the detector meets piles and spills whose look comes from light on a
surface rather than from a shape's outline:

- **garbage**: a heap built in a *height field* seen from above. Items (bottle capsules, crumpled
  paper from displaced ridged noise, plastic bags as smooth wrinkled domes, boxes as extruded
  rectangles) are dropped onto the heap and kept by a z-buffer (the higher surface wins), each with
  its material (palette colour mixed with a real-picture swatch, shininess, translucency). The
  field is lit by a random sun (Lambert, Blinn-Phong specular, ambient occlusion from the blurred
  height field, shadows marched along the sun), then tilted into an oblique camera view column by
  column (nearer, taller surfaces hide what is behind them; front walls are shaded as walls); the
  shadow it casts on the ground goes to ``shade``.
- **spill**: a film without height. Its outline is anisotropically blurred noise that flows along a
  random downhill direction (a main pool, runs drawn as random walks, droplets), thresholded; its
  material one of: an oil film with thin-film interference colours, a wet patch that darkens the
  ground and mirrors a blurred upside-down "sky" with a Fresnel rise towards the far side, a
  granular spill scattered as individually shaded grains (density falling off at the edge), or
  paint / coloured liquid with a glossy meniscus rim. Sometimes a tyre track or footprints are
  dragged through it.

Every object is rendered at a working resolution of at most ``WORK`` pixels a side, cropped to what
is visible and resized to the box, so it fills the box it is given. All randomness comes from
``rng``; nothing reads files.

>>> from models.litter.randomise import Swatches
>>> rng = np.random.default_rng(0)
>>> swatches = Swatches(rng, [np.full((200, 300, 3), 90, np.uint8)], count=4)
>>> layer = draw(rng, "garbage", 120, 80, swatches)
>>> layer.colour.shape, layer.alpha.shape, layer.shade.shape
((80, 120, 3), (80, 120), (80, 120))
"""

from __future__ import annotations

import cv2
import numpy as np

from models.litter.randomise import Swatches
from models.litter.synth import Layer

WORK = 192  # the largest working side of a spill, in pixels
WORK_HEAP = 128  # and of a heap (its lighting costs more)

# real litter colours, BGR: white paper, newsprint, cardboard, kraft, black/grey/blue/green/white
# bags, clear and green and brown glass, cans (red, silver, blue), yellow and orange plastic
PALETTE = np.float32([
    [235, 238, 240], [200, 205, 205], [90, 140, 185], [70, 110, 150], [30, 30, 32], [95, 95, 100],
    [160, 90, 40], [60, 120, 50], [225, 225, 220], [200, 210, 205], [60, 110, 40], [30, 60, 100],
    [40, 40, 190], [185, 190, 195], [150, 80, 20], [40, 200, 230], [30, 130, 240], [150, 160, 120],
])
EARTH = np.float32([[120, 180, 210], [45, 75, 110], [140, 145, 150], [80, 110, 140], [170, 180, 185],
                    [60, 90, 90], [100, 150, 190]])  # sand, soil, gravel, clay, cement, mud, ochre
PAINT = np.float32([[235, 235, 235], [30, 200, 240], [40, 40, 200], [170, 90, 30], [60, 150, 60],
                    [20, 20, 20], [120, 60, 140], [40, 120, 230]])


# -- shared tools -----------------------------------------------------------------------------------


def _noise(rng: np.random.Generator, h: int, w: int, cells: float, octaves: int = 3) -> np.ndarray:
    """Fractal value noise in about -1..1 with ``cells`` cells across the larger side."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        c = cells * 2 ** o
        gh, gw = max(2, int(c * h / max(h, w)) + 2), max(2, int(c * w / max(h, w)) + 2)
        out += amp * cv2.resize(rng.uniform(-1, 1, (gh, gw)).astype(np.float32), (w, h),
                                interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
    return out / total


def _sun(rng: np.random.Generator) -> np.ndarray:
    az = rng.uniform(0, 2 * np.pi)
    el = rng.uniform(np.radians(25), np.radians(70))
    return np.float32([np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)])


def _normals(height: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) / 8
    n = np.stack([-gx, -gy, np.ones_like(height)], axis=2)
    return n / np.linalg.norm(n, axis=2, keepdims=True)


def _marched_shadow(height: np.ndarray, sun: np.ndarray, steps: int) -> np.ndarray:
    """1 where a point of the height field is in the shadow of a higher point towards the sun."""
    h, w = height.shape
    horiz = float(np.hypot(sun[0], sun[1])) + 1e-6
    dx, dy = sun[0] / horiz, sun[1] / horiz
    rise = sun[2] / horiz  # height gained per pixel walked towards the sun
    shadow = np.zeros((h, w), np.float32)
    pad = steps + 2
    big = cv2.copyMakeBorder(height, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    for t in range(1, steps + 1):
        ox, oy = int(round(dx * t)), int(round(dy * t))
        shifted = big[pad + oy:pad + oy + h, pad + ox:pad + ox + w]
        shadow = np.maximum(shadow, (shifted - height - rise * t > 0.5).astype(np.float32))
    return shadow


def _fit(layer_parts: tuple[np.ndarray, np.ndarray, np.ndarray], w: int, h: int) -> Layer:
    """Crop colour, alpha, shade to what is visible and resize to w x h."""
    colour, alpha, shade = layer_parts
    visible = (alpha > 0.3) | (shade < 0.85)
    if visible.sum() >= 4:
        ys, xs = np.nonzero(visible)
        y1, y2, x1, x2 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        colour, alpha, shade = colour[y1:y2, x1:x2], alpha[y1:y2, x1:x2], shade[y1:y2, x1:x2]
    interp = cv2.INTER_AREA if colour.shape[1] > w else cv2.INTER_LINEAR
    colour = cv2.resize(np.ascontiguousarray(colour), (w, h), interpolation=interp)
    alpha = cv2.resize(np.ascontiguousarray(alpha), (w, h), interpolation=interp)
    shade = cv2.resize(np.ascontiguousarray(shade), (w, h), interpolation=interp)
    return Layer(colour.clip(0, 255).astype(np.float32), alpha.clip(0, 1).astype(np.float32),
                 shade.clip(0.1, 1).astype(np.float32))


def _work_size(w: int, h: int, most: int = WORK) -> tuple[int, int]:
    s = min(1.0, most / max(w, h))
    s = max(s, 32 / max(1, min(w, h)))
    return max(8, int(round(w * s))), max(8, int(round(h * s)))


def _material(rng: np.random.Generator, swatches: Swatches, w: int, h: int, base: np.ndarray) -> np.ndarray:
    """A texture: the palette colour times a swatch's grain, or the swatch recoloured, or a mix."""
    r = rng.random()
    if r < 0.5:
        return swatches.take(rng, w, h, base * np.float32(rng.uniform(0.8, 1.15, 3)))
    tex = swatches.take(rng, w, h)
    if r < 0.75:
        return tex
    k = rng.uniform(0.3, 0.7)
    return tex * k + base * (1 - k)


# -- garbage: a heap in a height field ----------------------------------------------------------------


def _item(rng: np.random.Generator, form: str, gh: int, gw: int, cx: float, cy: float, size: float, yy, xx):
    """(profile height, footprint mask) of one item on a gh x gw ground grid."""
    if form == "bottle":
        length, radius = size * rng.uniform(0.7, 1.2), size * rng.uniform(0.12, 0.22)
        ang = rng.uniform(0, np.pi)
        ux, uy = np.cos(ang), np.sin(ang)
        px, py = xx - cx, yy - cy
        t = np.clip(px * ux + py * uy, -length / 2, length / 2)
        d = np.hypot(px - t * ux, py - t * uy)
        neck = np.where(t > length * 0.25, 0.45 + 0.55 * np.clip((length / 2 - t) / (length * 0.25), 0, 1), 1.0)
        r = radius * neck
        prof = np.sqrt(np.clip(r ** 2 - d ** 2, 0, None))
        return prof, (d < r).astype(np.float32)
    if form == "box":
        bw, bd = size * rng.uniform(0.6, 1.2), size * rng.uniform(0.4, 0.9)
        rect = ((float(cx), float(cy)), (float(bw), float(bd)), float(rng.uniform(0, 180)))
        mask = np.zeros((gh, gw), np.float32)
        cv2.fillConvexPoly(mask, np.int32(cv2.boxPoints(rect)), 1.0)
        height = size * rng.uniform(0.25, 0.6)
        dent = 1 + 0.08 * _noise(rng, gh, gw, 3, 1)  # a slightly crushed lid
        return mask * height * dent, mask
    # paper and bags: a blob footprint from warped distance
    ax, ay = size * rng.uniform(0.35, 0.6), size * rng.uniform(0.3, 0.5)
    ang = rng.uniform(0, np.pi)
    ca, sa = np.cos(ang), np.sin(ang)
    u = ((xx - cx) * ca + (yy - cy) * sa) / ax
    v = (-(xx - cx) * sa + (yy - cy) * ca) / ay
    rr = np.sqrt(u ** 2 + v ** 2) + 0.25 * _noise(rng, gh, gw, 4, 2)
    mask = (rr < 1).astype(np.float32)
    dome = np.sqrt(np.clip(1 - rr ** 2, 0, None))
    if form == "paper":  # crumpled: ridged noise displaces a low dome
        ridges = 1 - np.abs(_noise(rng, gh, gw, rng.uniform(4, 9) * max(gh, gw) / max(4.0, 2 * size), 2))
        return mask * size * (0.12 * dome + 0.22 * ridges * dome ** 0.3), mask
    # bag: a smooth full dome with soft wrinkles
    wr = np.sin(_noise(rng, gh, gw, 3 * max(gh, gw) / max(4.0, 2 * size), 2) * rng.uniform(6, 14))
    return mask * size * (0.45 * dome ** 0.7 + 0.03 * wr), mask


def _garbage(rng: np.random.Generator, w: int, h: int, swatches: Swatches) -> Layer:
    ww, wh = _work_size(w, h, WORK_HEAP)
    gh, gw = int(wh * 1.3) + 4, int(ww * 1.2) + 4  # the ground grid, with room to rise and to spread
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
    height = np.zeros((gh, gw), np.float32)
    colour = np.zeros((gh, gw, 3), np.float32)
    cover = np.zeros((gh, gw), np.float32)
    spec = np.zeros((gh, gw), np.float32)  # specular strength
    shine = np.full((gh, gw), 8, np.float32)  # specular exponent
    # the heap's footprint: an ellipse in the lower part of the ground grid
    fcx, fcy = gw / 2, gh - wh * 0.45
    fax, fay = ww * 0.46, wh * 0.38
    count = int(rng.integers(6, 12) + rng.integers(0, 12) * min(1.0, max(w, h) / 200))
    count = int(count * min(3.0, max(gw, wh) / min(gw, wh)))  # a long heap needs more items to be one heap
    weights = np.float32(rng.dirichlet(np.ones(4)))  # this heap's mix of item kinds
    forms = ("bottle", "box", "paper", "bag")
    pool = [_material(rng, swatches, gw, gh, PALETTE[int(rng.integers(len(PALETTE)))])
            for _ in range(int(rng.integers(3, 7)))]
    for _ in range(count):
        form = forms[int(rng.choice(4, p=weights / weights.sum()))]
        a, rad = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0, 1))
        cx, cy = fcx + np.cos(a) * rad * fax * 0.85, fcy + np.sin(a) * rad * fay * 0.85
        size = min(gw, wh) * rng.uniform(0.15, 0.45) * (1.3 if form in ("bag", "box") else 1.0)
        reach = int(size * 0.9) + 2  # the item's window on the ground grid
        x1, x2 = max(0, int(cx) - reach), min(gw, int(cx) + reach + 1)
        y1, y2 = max(0, int(cy) - reach), min(gh, int(cy) + reach + 1)
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        sl = (slice(y1, y2), slice(x1, x2))
        prof, mask = _item(rng, form, y2 - y1, x2 - x1, cx, cy, size, yy[sl], xx[sl])
        if mask.sum() < 3:
            continue
        base = float(height[int(np.clip(cy, 0, gh - 1)), int(np.clip(cx, 0, gw - 1))]) * rng.uniform(0.5, 0.9)
        top = np.where(mask > 0, base + prof, 0)
        win = top > height[sl]
        if not win.any():
            continue
        # one of the heap's materials, recoloured for this item (a few swatches per heap keep it fast)
        tex = pool[int(rng.integers(len(pool)))][sl] * np.float32(rng.uniform(0.75, 1.25, 3))
        if form == "paper" and rng.random() < 0.4:  # print lines on paper
            lines = (np.sin(yy[sl] * rng.uniform(0.8, 2.0) + xx[sl] * rng.uniform(-0.3, 0.3)) > 0.6).astype(np.float32)
            tex = tex * (1 - 0.35 * lines[..., None])
        height[sl][win] = top[win]
        colour[sl][win] = tex[win]
        cover[sl][win] = {"bottle": rng.uniform(0.7, 0.95), "bag": rng.uniform(0.85, 1.0)}.get(form, 1.0)
        spec[sl][win] = {"bottle": rng.uniform(0.5, 1.0), "bag": rng.uniform(0.2, 0.6), "box": rng.uniform(0.0, 0.15),
                         "paper": rng.uniform(0.0, 0.1)}[form]
        shine[sl][win] = {"bottle": 60.0, "bag": 20.0}.get(form, 6.0)
    if cover.max() == 0:  # nothing landed: one lumpy sack
        prof, mask = _item(rng, "bag", gh, gw, fcx, fcy, min(gw, wh) * 0.8, yy, xx)
        # float32 as the grid it replaces (a bag's profile is float64: OpenCV 5 has no float64 -> float32 Sobel)
        height, cover, colour = prof.astype(np.float32), mask, _material(rng, swatches, gw, gh, PALETTE[4])
        spec[:] = 0.3
    height = cv2.GaussianBlur(height, (0, 0), 0.7)
    # light: Lambert + Blinn-Phong + ambient occlusion + marched shadows
    sun = _sun(rng)
    tilt = rng.uniform(0.35, 0.75)  # how much of the height shows as rise in the picture
    view = np.float32([0, np.sqrt(1 - tilt ** 2), tilt])  # the camera is in front (towards +y), above
    n = _normals(height)
    lambert = np.clip(n @ sun, 0, 1)
    half = (sun + view) / np.linalg.norm(sun + view)
    specular = np.exp(np.log(np.clip(n @ half, 1e-6, 1)) * shine) * spec
    occl = np.clip(1 - 0.06 * (cv2.GaussianBlur(height, (0, 0), max(2.0, gw / 15)) - height), 0.45, 1)
    shadow = _marched_shadow(height, sun, steps=max(4, int(gw / 8)))
    shadow = cv2.GaussianBlur(shadow, (0, 0), 0.8)
    ambient = rng.uniform(0.3, 0.5)
    light = (ambient + (1 - ambient) * lambert * (1 - 0.8 * shadow)) * occl * rng.uniform(0.9, 1.25)
    lit = colour * light[..., None] + 255 * specular[..., None]
    ground_shade = 1 - rng.uniform(0.35, 0.6) * shadow * (cover == 0)
    contact = cv2.GaussianBlur((height > 0.5).astype(np.float32), (0, 0), max(1.0, gw / 40))
    ground_shade = ground_shade * (1 - 0.35 * contact)
    # tilt into the picture: per column, the visible ground point for row r is the nearest (largest y)
    # whose raised top reaches r or above
    rise = height * tilt * rng.uniform(0.9, 1.3)
    ty = yy - rise
    reach = np.minimum.accumulate(ty[::-1], axis=0)[::-1]
    rows = np.arange(gh, dtype=np.float32)
    # reach is non-decreasing down each column, so the answer is the count of rows whose reach <= r, less one
    bins = np.clip(np.ceil(reach), 0, gh).astype(np.int64)
    hist = np.bincount((bins + np.arange(gw)[None, :] * (gh + 1)).ravel(), minlength=gw * (gh + 1))
    src = np.cumsum(hist.reshape(gw, gh + 1), axis=1)[:, :gh].T - 1
    src = np.clip(src, 0, gh - 1)
    cols = np.broadcast_to(np.arange(gw), (gh, gw))
    below = np.minimum(src + 1, gh - 1)
    # seeing a box's front face (a step in height towards the camera) rather than a top
    wall = ((rows[:, None] - ty[src, cols]) > 1.0) & ((height[src, cols] - height[below, cols]) > 1.5)
    wall_light = ambient + (1 - ambient) * max(0.0, float(sun[1]))  # a face whose normal points at the camera (+y)
    out_colour = lit[src, cols]
    out_colour = np.where(wall[..., None], colour[src, cols] * wall_light * occl[src, cols, None], out_colour)
    out_colour = cv2.GaussianBlur(out_colour.astype(np.float32), (0, 0), 0.5)
    out_alpha = cover[src, cols] * (height[src, cols] > 0.3)
    out_shade = ground_shade[src, cols]
    out_shade = np.where(out_alpha > 0, 1.0, out_shade).astype(np.float32)
    out_alpha = cv2.GaussianBlur(out_alpha.astype(np.float32), (0, 0), 0.6)
    return _fit((out_colour.astype(np.float32), out_alpha, out_shade), w, h)


# -- spills: a film whose outline flows downhill --------------------------------------------------------


def _flow_kernel(length: float, angle: float) -> np.ndarray:
    k = int(max(3, length)) | 1
    ker = np.zeros((k, k), np.float32)
    c = k // 2
    dx, dy = np.cos(angle) * c, np.sin(angle) * c
    cv2.line(ker, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1)
    ker = cv2.GaussianBlur(ker, (0, 0), 0.7)
    return ker / ker.sum()


def _spill_outline(rng: np.random.Generator, gh: int, gw: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(body 0..1, thickness 0..1, downhill angle)."""
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    dx, dy = np.cos(angle), np.sin(angle)
    # the pool sits upstream; the field falls off from it, stretched along the flow
    px, py = gw / 2 - dx * gw * 0.15, gh / 2 - dy * gh * 0.15
    ex, ey = xx - px, yy - py  # in a frame where the box is square, so the flow angle means the same
    ex, ey = ex / gw, ey / gh
    u = ex * dx + ey * dy
    v = -ex * dy + ey * dx
    stretch = rng.uniform(0.8, 1.5)
    r = np.sqrt((u / stretch) ** 2 + v ** 2) / 0.35  # the canvas has a margin round the pool's box
    lobes = _noise(rng, gh, gw, rng.uniform(2, 4), 2)  # the pool's big lobes
    rough = cv2.filter2D(_noise(rng, gh, gw, rng.uniform(5, 12), 3), -1,
                         _flow_kernel(max(gh, gw) * rng.uniform(0.05, 0.2), angle), borderType=cv2.BORDER_REFLECT)
    rough = rough / max(1e-3, float(np.abs(rough).max()))
    field = 1 - r ** rng.uniform(1.2, 2.2) + rng.uniform(0.3, 0.6) * lobes + rng.uniform(0.15, 0.4) * rough
    body = (field > rng.uniform(0.1, 0.3)).astype(np.float32)
    # runs: random walks downhill from the pool's edge, thinning out
    canvas = np.zeros((gh, gw), np.float32)
    for _ in range(int(rng.integers(0, 5))):
        x, y = px + rng.normal(0, gw * 0.12), py + rng.normal(0, gh * 0.12)
        width = max(1.0, min(gh, gw) * rng.uniform(0.04, 0.1))
        a = angle + rng.normal(0, 0.4)
        for _ in range(int(rng.integers(6, 16))):
            step = max(gh, gw) * rng.uniform(0.03, 0.07)
            a += rng.normal(0, 0.3)
            nx, ny = x + np.cos(a) * step, y + np.sin(a) * step
            cv2.line(canvas, (int(x), int(y)), (int(nx), int(ny)), 1.0, max(1, int(width)), cv2.LINE_AA)
            x, y, width = nx, ny, width * rng.uniform(0.85, 0.98)
        if rng.random() < 0.6:  # the run ends in a drop
            cv2.circle(canvas, (int(x), int(y)), max(1, int(width * 1.4)), 1.0, -1, cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 8))):  # splashes flung downstream
        d = rng.uniform(0.3, 0.6)
        sx = gw / 2 + dx * gw * d + rng.normal(0, gw * 0.1)
        sy = gh / 2 + dy * gh * d + rng.normal(0, gh * 0.1)
        cv2.circle(canvas, (int(sx), int(sy)), max(1, int(min(gh, gw) * rng.uniform(0.01, 0.04))), 1.0, -1, cv2.LINE_AA)
    body = np.maximum(body, canvas)
    if body.sum() < 0.1 * gh * gw:  # too little left: a plain pool
        body = np.maximum(body, (r < 0.9).astype(np.float32))
    dist = cv2.distanceTransform((body > 0.5).astype(np.uint8), cv2.DIST_L2, 3).astype(np.float32)
    thick = dist / max(1.0, float(dist.max()))
    return cv2.GaussianBlur(body, (0, 0), rng.uniform(0.5, 1.2)), thick, angle


def _tracks(rng: np.random.Generator, gh: int, gw: int) -> np.ndarray:
    """A tyre track (tread band) or a line of footprints across the spill, 0..1."""
    m = np.zeros((gh, gw), np.float32)
    a = rng.uniform(0, np.pi)
    cx, cy = gw * rng.uniform(0.3, 0.7), gh * rng.uniform(0.3, 0.7)
    dx, dy = np.cos(a), np.sin(a)
    L = max(gh, gw)
    if rng.random() < 0.5:
        width = max(2, int(min(gh, gw) * rng.uniform(0.1, 0.2)))
        cv2.line(m, (int(cx - dx * L), int(cy - dy * L)), (int(cx + dx * L), int(cy + dy * L)), 1.0, width)
        yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
        tread = (np.sin(((xx - cx) * dx + (yy - cy) * dy) * 2 * np.pi / max(2.0, width * 0.5)) > 0).astype(np.float32)
        return m * (0.5 + 0.5 * tread)
    size = max(2, int(min(gh, gw) * rng.uniform(0.06, 0.1)))
    for k in range(-6, 7):
        side = (k % 2) * 2 - 1
        fx = cx + dx * k * size * 2.2 - dy * side * size * 0.7
        fy = cy + dy * k * size * 2.2 + dx * side * size * 0.7
        cv2.ellipse(m, (int(fx), int(fy)), (size, max(1, size // 2)), np.degrees(a), 0, 360, 1.0, -1)
    return m


def _grains(rng: np.random.Generator, gh: int, gw: int, body: np.ndarray, thick: np.ndarray, tex: np.ndarray,
            sun: np.ndarray, radius: int, density: float):
    """Scatter shaded grains where the spill is; returns (colour, alpha, shade)."""
    colour = tex * 0.85
    alpha = body * (0.45 + 0.3 * thick) * rng.uniform(0.6, 1.0)  # fine dust between the grains
    shade = 1 - 0.12 * body
    count = int(density * gh * gw / max(1, radius * radius * 2))
    ys = rng.uniform(0, gh, count)
    xs = rng.uniform(0, gw, count)
    yi, xi = ys.astype(int), xs.astype(int)
    keep = rng.random(count) < np.clip(body[yi, xi] * (0.3 + 1.5 * thick[yi, xi]), 0, 1)  # thinner at the edge
    ys, xs = ys[keep].astype(int), xs[keep].astype(int)
    if not len(ys):
        return colour, alpha, shade
    oy, ox = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    inside = oy ** 2 + ox ** 2 <= radius ** 2 + 0.5
    oy, ox = oy[inside], ox[inside]
    facing = 0.75 + 0.45 * (ox * sun[0] + oy * sun[1]) / max(1, radius)  # the side towards the sun is lighter
    grain = rng.uniform(0.6, 1.35, len(ys)).astype(np.float32)
    tint = rng.uniform(0.85, 1.15, (len(ys), 3)).astype(np.float32)
    Y = np.clip(ys[:, None] + oy[None], 0, gh - 1).ravel()
    X = np.clip(xs[:, None] + ox[None], 0, gw - 1).ravel()
    base = tex[ys, xs][:, None, :] * tint[:, None, :] * grain[:, None, None]
    colour[Y, X] = (base * facing[None, :, None]).reshape(-1, 3)
    alpha[Y, X] = 1.0
    # each grain's small shadow on the ground, away from the sun
    sy = np.clip(ys - int(round(sun[1] * radius)), 0, gh - 1)
    sx = np.clip(xs - int(round(sun[0] * radius)), 0, gw - 1)
    shade[sy, sx] = np.minimum(shade[sy, sx], 0.7)
    return colour, alpha, shade


def _spill(rng: np.random.Generator, w: int, h: int, swatches: Swatches) -> Layer:
    gw, gh = _work_size(w, h)
    gw, gh = int(gw * 1.3) + 2, int(gh * 1.3) + 2  # a margin, so that the outline is never cut straight
    body, thick, _flow = _spill_outline(rng, gh, gw)
    sun = _sun(rng)
    yy = np.mgrid[0:gh, 0:gw][0].astype(np.float32)
    material = ("oil", "wet", "grains", "paint")[int(rng.integers(4))]
    if material == "oil":
        depth = rng.uniform(0.3, 0.7)
        shade = 1 - body * depth * (0.6 + 0.4 * thick)
        film = (thick * rng.uniform(1.5, 4) + 0.4 * _noise(rng, gh, gw, rng.uniform(2, 6), 2)) % 1.0
        iri = 0.5 + 0.5 * np.cos(2 * np.pi * (film[..., None] * rng.uniform(1.5, 3) + np.float32([0, 1 / 3, 2 / 3])))
        where = np.clip(_noise(rng, gh, gw, 3, 2) * 2 + rng.uniform(-0.5, 0.6), 0, 1)  # sheen on part of it
        dark = np.float32(rng.uniform([10, 12, 15], [40, 45, 55]))
        colour = dark + where[..., None] * iri * rng.uniform(60, 160)
        colour = colour * (0.8 + 0.4 * swatches.take(rng, gw, gh).mean(axis=2, keepdims=True) / 255)
        alpha = body * rng.uniform(0.4, 0.7)
    elif material == "wet":
        shade = 1 - body * rng.uniform(0.2, 0.5)
        sky = np.float32(rng.choice([[235, 225, 215], [200, 200, 200], [240, 200, 160], [150, 150, 155]]))
        mirror = swatches.take(rng, gw, gh)[::-1] * 0.5 + sky * 0.5  # an upside-down, blurred scene
        mirror = cv2.GaussianBlur(mirror, (0, 0), max(1.0, gw / rng.uniform(15, 40)))
        far = (1 - yy / max(1, gh - 1)) ** rng.uniform(1.0, 3.0)  # the far (upper) side mirrors most
        fresnel = 0.32 + rng.uniform(0.1, 0.45) * far
        colour = mirror * rng.uniform(0.5, 0.9)
        alpha = body * fresnel
    elif material == "grains":
        radius = int(rng.choice([1, 1, 2, 2, 3, 4]))
        tint = EARTH[int(rng.integers(len(EARTH)))] * np.float32(rng.uniform(0.8, 1.2, 3))
        tex = swatches.take(rng, gw, gh, tint) if rng.random() < 0.7 else swatches.take(rng, gw, gh)
        colour, alpha, shade = _grains(rng, gh, gw, body, thick, tex, sun, radius, rng.uniform(0.3, 0.9))
    else:  # paint or a coloured liquid with a glossy meniscus
        base = PAINT[int(rng.integers(len(PAINT)))] if rng.random() < 0.6 else np.float32(rng.uniform(0, 255, 3))
        tex = swatches.take(rng, gw, gh)
        colour = base * (0.85 + 0.3 * tex.mean(axis=2, keepdims=True) / 255) * rng.uniform(0.8, 1.1)
        meniscus = np.sqrt(np.clip(thick * rng.uniform(3, 8), 0, 1)) * 4
        n = _normals(meniscus)
        view = np.float32([0, 0.6, 0.8])
        half = (sun + view) / np.linalg.norm(sun + view)
        gloss = np.clip(n @ half, 0, 1) ** rng.uniform(20, 80) * rng.uniform(0.4, 1.0)
        colour = colour * (0.7 + 0.3 * np.clip(n @ sun, 0, 1))[..., None] + 255 * gloss[..., None]
        alpha = body * rng.uniform(0.75, 1.0)
        shade = 1 - 0.1 * body
    if rng.random() < 0.3:  # a tyre track or footprints dragged through it
        track = _tracks(rng, gh, gw)
        alpha = alpha * (1 - 0.6 * track * body)  # only inside the spill: the label stays the spill's
    return _fit((colour.astype(np.float32), alpha.astype(np.float32), np.asarray(shade, np.float32)), w, h)


def slab(rng: np.random.Generator, w: int, h: int, swatches: Swatches) -> Layer:
    """An opaque spill without height: soil, grit, sand, cement slurry or thick paint lying flat, a
    real-picture texture (earth-tinted or recoloured) with mottling, a sharp flowing outline and no
    lighting of its own. The other spills here are films, stains and speckled grains, and the piles are
    the only opaque textured things, so a detector trained on them alone names such a spill garbage."""
    gw, gh = _work_size(w, h)
    gw, gh = int(gw * 1.3) + 2, int(gh * 1.3) + 2
    body, thick, _flow = _spill_outline(rng, gh, gw)
    body = np.clip((body - 0.5) * rng.uniform(3, 8) + 0.5, 0, 1)  # a sharp edge
    if rng.random() < 0.7:
        tint = EARTH[int(rng.integers(len(EARTH)))] if rng.random() < 0.75 else PAINT[int(rng.integers(len(PAINT)))]
        tex = swatches.take(rng, gw, gh, tint * np.float32(rng.uniform(0.8, 1.2, 3)))
    else:
        tex = swatches.take(rng, gw, gh)
    mottle = 1 + rng.uniform(0.05, 0.3) * _noise(rng, gh, gw, rng.uniform(4, 16), 3)
    colour = tex * mottle[..., None] * (1 + rng.uniform(-0.15, 0.1) * thick[..., None])  # thicker: a shade apart
    alpha = body * rng.uniform(0.85, 1.0)
    shade = 1 - rng.uniform(0.0, 0.12) * body  # a damp rim at most, no shadow of its own
    return _fit((colour.astype(np.float32), alpha.astype(np.float32), np.asarray(shade, np.float32)), w, h)


def draw(rng: np.random.Generator, kind: str, w: int, h: int, swatches: Swatches) -> Layer:
    """One garbage heap or spill filling about a w x h box, rendered from a lit height field or film."""
    if kind not in ("garbage", "spill"):
        raise ValueError(f"unknown kind {kind!r}")
    w, h = max(2, int(w)), max(2, int(h))
    return _garbage(rng, w, h, swatches) if kind == "garbage" else _spill(rng, w, h, swatches)
