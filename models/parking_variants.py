"""Degraded variants of the real campus clip for the parking robustness suite and tests.

Each variant is an ffmpeg re-encode of ``fixtures/videos/campus-gate.mp4`` (made at run
time, never committed) plus how its picture maps to the original's, so the ground-truth
zones of ``campus-gate.truth.yaml`` can be carried over. Nothing here was tuned on: the
variants are what the issue names (mirrored, rescaled, zoomed, dusk, blur, noise, 1 Mb/s,
H.265, key frames 1-8 s apart, 5 fps) and the zone layouts one a city would draw.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
CLIP = REPO / "fixtures" / "videos" / "campus-gate.mp4"
TRUTH = yaml.safe_load((REPO / "fixtures" / "videos" / "campus-gate.truth.yaml").read_text())
FPS = 10  # the clip's frame rate

# A layout with large zones right next to the small kerb bay (the walkway and hatched
# area): the kerb's crop must survive them.
LARGE_NEXT_TO_SMALL = [
    {"id": "walkway", "types": ["illegal_parking"], "dwell_s": 10,
     "polygon": [[0.00, 0.24], [0.79, 0.24], [0.79, 0.62], [0.00, 0.62]]},
    {"id": "hatched", "types": ["illegal_parking"], "dwell_s": 10,
     "polygon": [[0.40, 0.01], [0.79, 0.01], [0.79, 0.23], [0.40, 0.23]]},
]


@dataclass(frozen=True)
class Variant:
    """``vf``: ffmpeg filters; ``codec``: encoder arguments; ``crop``: the part (x, y, w, h in 0..1 of
    the original) the new picture shows; ``mirror``: flipped left-right; ``layout``: extra zones;
    ``arrives_s``: the van is painted out (composed) until then, so its clock starts there;
    ``leaves_s``: painted out from then on, so its incident must end ``left``."""

    name: str
    vf: str = ""
    codec: tuple[str, ...] = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "28", "-g", "20")
    crop: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    mirror: bool = False
    layout: list[dict] = field(default_factory=list)
    arrives_s: float = 0.0
    leaves_s: float | None = None


# the van's place painted with the wall and road beside it, while ``when`` (an ffmpeg expression of t)
PAINT_OUT = "split[a][b];[b]crop=74:61:574:40[p];[a][p]overlay=648:40:enable='{when}'"
# a camera swaying on its pole: the picture moves up to ``a`` of its size each way (periods of 3.1 s across
# and 4.3 s up and down), scaled back to w x h (also the litter evaluation's, models/litter/evaluate.py)
SWAY = ("crop=iw*(1-2*{a}):ih*(1-2*{a}):x='iw*{a}*(1+sin(2*PI*t/3.1))':y='ih*{a}*(1+cos(2*PI*t/4.3))',"
        "scale={w}:{h}")
# a camera knocked at t (by a truck, a loose mount): the picture moves by dx, dy of the original at t and stays
# there; before, it shows the part (a, a, 1-2a, 1-2a), as the installer saw it, scaled back to w x h
KNOCK = ("crop=iw*(1-2*{a}):ih*(1-2*{a}):x='iw*({a}+{dx}*gte(t,{t}))':y='ih*({a}+{dy}*gte(t,{t}))',"
         "scale={w}:{h}")
# a camera knocked at t that also rolled: the picture turns by ``deg`` degrees about its middle at t and stays
# so; before, it shows the part (a, a, 1-2a, 1-2a), scaled back to w x h (the turn's black corners fall
# outside it at 1.5 degrees; at 3, a sliver at two corners)
TURN = ("rotate='{deg}*PI/180*gte(t,{t})':c=black,crop=iw*(1-2*{a}):ih*(1-2*{a}):iw*{a}:ih*{a},"
        "scale={w}:{h}")
DARK_NIGHT = "eq=brightness=-0.3:contrast=0.4:enable='gte(t,{t})',noise=alls=30:allf=t:enable='gte(t,{t})'"


def x264(gop_s: float = 2.0, fps: int = FPS, *extra: str) -> tuple[str, ...]:
    g = str(max(1, int(round(gop_s * fps))))
    return ("-c:v", "libx264", "-preset", "veryfast", "-crf", "28", "-g", g, "-keyint_min", g,
            "-sc_threshold", "0", *extra)


def x265(gop_s: float = 2.0, fps: int = FPS) -> tuple[str, ...]:
    g = int(round(gop_s * fps))
    return ("-c:v", "libx265", "-preset", "ultrafast", "-crf", "30", "-tag:v", "hvc1",
            "-x265-params", f"keyint={g}:min-keyint={g}:scenecut=0:log-level=error:pools=1:frame-threads=1")


VARIANTS = [
    Variant("original", codec=()),
    Variant("mirrored", vf="hflip", codec=x264(), mirror=True),
    Variant("720p", vf="scale=1280:720", codec=x264()),
    Variant("1080p", vf="scale=1920:1080", codec=x264()),
    Variant("zoomed", vf="crop=iw*0.6:ih*0.6:iw*0.4:0,scale=768:576", codec=x264(), crop=(0.4, 0.0, 0.6, 0.6)),
    Variant("dusk", vf="eq=brightness=-0.18:contrast=0.55:gamma=0.8", codec=x264()),
    Variant("blur", vf="gblur=sigma=2", codec=x264()),
    Variant("noise", vf="noise=alls=24:allf=t", codec=x264()),
    Variant("1mbps", codec=("-c:v", "libx264", "-preset", "veryfast", "-b:v", "1M", "-maxrate", "1M",
                            "-bufsize", "1M", "-g", "20")),
    Variant("h265", codec=x265()),
    Variant("gop1s", codec=x264(1)),
    Variant("gop2s", codec=x264(2)),
    Variant("gop4s", codec=x264(4)),
    Variant("gop8s", codec=x264(8)),
    Variant("5fps", vf="fps=5", codec=x264(2, 5)),
    Variant("layout", codec=(), layout=LARGE_NEXT_TO_SMALL),
    # composed: the van's place shows the wall and road beside it until 21 s, as if it arrived then
    Variant("arrives_21s", vf=PAINT_OUT.format(when="lt(t,21)"), codec=x264(), arrives_s=21.0),
    Variant("arrives_21s_dusk", vf=PAINT_OUT.format(when="lt(t,21)") + ",eq=brightness=-0.18:contrast=0.55:gamma=0.8",
            codec=x264(), arrives_s=21.0),
    # composed: the van leaves at 60 s; its incident must end left
    Variant("leaves_60s", vf=PAINT_OUT.format(when="gte(t,60)"), codec=x264(), leaves_s=60.0),
    # the footage of the issue that filed this suite (issue 12), remade: mirrored and rescaled to 1152x864;
    # zoomed, darkened, noisy, H.265 with key frames 3 s apart
    Variant("mirrored_1152x864", vf="hflip,scale=1152:864", codec=x264(), mirror=True),
    Variant("zoomed_dusk_noise_h265_gop3s", vf="crop=iw*0.6:ih*0.6:iw*0.4:0,scale=768:576,"
            "eq=brightness=-0.15:contrast=0.6,noise=alls=18:allf=t", codec=x265(3), crop=(0.4, 0.0, 0.6, 0.6)),
    # the worst case: 720p, blurred, noisy, darker, H.265 with key frames 8 s apart, big zones too
    Variant("720p_dusk_noise_h265_gop8s", vf="scale=1280:720,gblur=sigma=1.2,noise=alls=16:allf=t,"
            "eq=brightness=-0.12:contrast=0.7", codec=x265(8), layout=LARGE_NEXT_TO_SMALL),
    # the whole picture changes at once, the van staying: the camera switches to its grey night mode
    # (brighter, harder) before the dwell is reached; the exposure drops after the incident started
    Variant("night_mode_at_15s", vf="hue=s=0:enable='gte(t,15)',eq=brightness=0.1:contrast=1.4:enable='gte(t,15)'",
            codec=x264()),
    Variant("exposure_drop_at_50s", vf="eq=brightness=-0.2:contrast=0.6:enable='gte(t,50)'", codec=x264()),
    # after the incident started, a night so dark and noisy that the vehicle model no longer finds the
    # van: it stays, or it leaves at 60 s, seen in that night's light
    Variant("dark_night_at_40s", vf=DARK_NIGHT.format(t=40), codec=x264()),
    Variant("dark_night_at_40s_leaves_60s", vf=PAINT_OUT.format(when="gte(t,60)") + "," + DARK_NIGHT.format(t=40),
            codec=x264(), leaves_s=60.0),
    # the camera sways on its pole (wind): the picture moves up to 0.5 % and 1 % of its size each way, on
    # periods of 3.1 s across and 4.3 s up and down
    Variant("sway_0.5pct", vf=SWAY.format(a=0.005, w=768, h=576), codec=x264(), crop=(0.005, 0.005, 0.99, 0.99)),
    Variant("knocked_2pct_at_15s", vf=KNOCK.format(a=0.03, dx=0.02, dy=0.01, t=15, w=768, h=576), codec=x264(),
            crop=(0.03, 0.03, 0.94, 0.94)),
    Variant("knocked_2pct_at_45s", vf=KNOCK.format(a=0.03, dx=0.02, dy=0.01, t=45, w=768, h=576), codec=x264(),
            crop=(0.03, 0.03, 0.94, 0.94)),
    Variant("knocked_5pct_at_45s", vf=KNOCK.format(a=0.06, dx=0.05, dy=-0.03, t=45, w=768, h=576), codec=x264(),
            crop=(0.06, 0.06, 0.88, 0.88)),
    Variant("sway_1pct", vf=SWAY.format(a=0.01, w=768, h=576), codec=x264(), crop=(0.01, 0.01, 0.98, 0.98)),
    # knocked and rolled: the van, in the picture's corner, moves by 1-2 % and turns with it
    Variant("rolled_1.5deg_at_15s", vf=TURN.format(deg=1.5, t=15, a=0.03, w=768, h=576), codec=x264(),
            crop=(0.03, 0.03, 0.94, 0.94)),
    Variant("rolled_1.5deg_at_45s", vf=TURN.format(deg=1.5, t=45, a=0.03, w=768, h=576), codec=x264(),
            crop=(0.03, 0.03, 0.94, 0.94)),
    Variant("rolled_3deg_at_45s", vf=TURN.format(deg=-3.0, t=45, a=0.03, w=768, h=576), codec=x264(),
            crop=(0.03, 0.03, 0.94, 0.94)),
    # ... and turned into the corner the van is cut by: after the turn back, part of its place is black
    Variant("rolled_3deg_into_corner_at_45s", vf=TURN.format(deg=3.0, t=45, a=0.03, w=768, h=576), codec=x264(),
            crop=(0.03, 0.03, 0.94, 0.94)),
]
BY_NAME = {v.name: v for v in VARIANTS}


def make(variant: Variant, out_dir: Path, seconds: float | None = None) -> Path:
    """The variant's clip under ``out_dir`` (made once; ``seconds`` cuts it short)."""
    if not variant.codec and seconds is None:
        return CLIP
    out = out_dir / f"campus-{variant.name}{'' if seconds is None else f'-{seconds:g}s'}.mp4"
    if not out.exists():
        cmd = ["ffmpeg", "-loglevel", "error", "-y", "-i", str(CLIP)]
        if seconds is not None:
            cmd += ["-t", str(seconds)]
        if variant.vf:
            cmd += ["-vf", variant.vf]
        # one encoder thread: x264's output depends on its thread count, which otherwise follows the machine's
        # cores (the 1 Mb/s and mirrored variants came out otherwise on one core than on two); x265 picks its
        # frame threads by the cores too
        cmd += list(variant.codec or x264()) + ["-threads", "1", "-pix_fmt", "yuv420p", "-an", str(out) + ".part.mp4"]
        subprocess.run(cmd, check=True, timeout=600)
        Path(str(out) + ".part.mp4").rename(out)
    return out


def map_point(point: list[float], crop: tuple[float, float, float, float], mirror: bool = False) -> tuple[float, float]:
    """``point`` (0..1 of the original picture) in a picture that shows the part ``crop`` (x, y, w, h in
    0..1 of the original) of it, scaled to fill it, and flipped left-right where ``mirror``; on its edge
    where it falls outside."""
    x, y = point
    cx, cy, cw, ch = crop
    x, y = (x - cx) / cw, (y - cy) / ch
    if mirror:
        x = 1 - x
    return min(1.0, max(0.0, x)), min(1.0, max(0.0, y))


def zones(variant: Variant) -> list[dict]:
    """The truth's zones (and the variant's extra layout) in the variant's picture; a zone that
    falls outside the picture is left out."""
    out = []
    for zone in TRUTH["camera"]["zones"] + variant.layout:
        poly = [map_point(p, variant.crop, variant.mirror) for p in zone["polygon"]]
        xs, ys = [p[0] for p in poly], [p[1] for p in poly]
        if max(xs) - min(xs) < 0.02 or max(ys) - min(ys) < 0.02:
            continue
        out.append({**zone, "polygon": [list(p) for p in poly]})
    return out


def camera(variant: Variant, url: Path) -> dict:
    """An edge-config camera entry for the variant's clip."""
    return {**TRUTH["camera"], "url": str(url), "zones": zones(variant)}
