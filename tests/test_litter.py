"""Garbage piles and road spills: the trained model, the left-object check, the rules, replayed clips."""

import functools
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import supervision as sv
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.config import parse_config
from edge.detector import load_detector, min_scores, run_passes
from edge.leftobject import LeftObject, covered
from edge.pipeline import CONFIRM_COVER, CameraPipeline
from models.litter.synth import composite, render
from xueliang import wire

from .conftest import CLIP, REPO

LITTER = REPO / "fixtures/videos/campus-litter.truth.yaml"
LITTER_TRUTH = yaml.safe_load(LITTER.read_text())


@functools.cache
def _campus_seconds() -> tuple[np.ndarray, ...]:
    """The campus clip's frames one a second (every 10th), decoded once in a test process, read-only: each of 35
    calls decoded the whole clip again (about 1 s of CPU each)."""
    cap = cv2.VideoCapture(str(CLIP))
    frames, i = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            return tuple(frames)
        if i % 10 == 0:
            frame.setflags(write=False)
            frames.append(frame)
        i += 1


def campus_frames(step: int = 10) -> list[np.ndarray]:
    """Every ``step``-th frame of the campus clip (a multiple of 10: one a second or fewer), each a copy to paint on."""
    if step % 10:
        raise ValueError(f"campus_frames: step {step} is no multiple of 10 (the frames are kept one a second)")
    return [frame.copy() for frame in _campus_seconds()[::step // 10]]


@pytest.fixture(scope="module")
def litter_model():
    return load_detector("litter_yolov8n_320")


@pytest.mark.slow
def test_model_finds_held_out_piles_and_spills_on_real_frames(litter_model):
    """A regression guard, not the evaluation (that is `make eval`): 12 tiles of the real campus
    frame, each with a held-out pile and spill; the shipped model finds 20 of 24."""
    tile = campus_frames(step=400)[0][100:356, 20:276]  # 256 px of footpath and road, as the edge tiles it
    found_objects = 0
    for seed in range(12):
        frame = tile.copy()
        rng = np.random.default_rng(100 + seed)
        placed = {"garbage": composite(frame, render(rng, "garbage", 60, 42, "heldout"), 30, 60),
                  "spill": composite(frame, render(rng, "spill", 90, 40, "heldout"), 140, 150)}
        found = litter_model.detect(frame, 0.3)
        for label, (x1, y1, x2, y2) in placed.items():
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            boxes = found.xyxy[found.data["class_name"] == label] if len(found) else np.zeros((0, 4))
            found_objects += any(a <= cx <= c and b <= cy <= d for a, b, c, d in boxes)
    assert found_objects >= 14, found_objects  # a broken export (e.g. int8 on the head) finds 0


@pytest.mark.slow
def test_model_sees_nothing_on_clean_real_frames(litter_model):
    frames = campus_frames(step=100)
    hits = [len(litter_model.detect(f, 0.4)) for f in frames]
    assert sum(hits) == 0, hits


@pytest.mark.slow
def test_left_object_check_finds_a_new_pile_on_real_footage_and_ignores_walkers():
    frames = campus_frames(step=10)  # one frame a second
    check = LeftObject()
    rng = np.random.default_rng(5)
    layer = render(rng, "garbage", 50, 36, "heldout")
    box = None
    fractions = []
    for t, frame in enumerate(frames[:40]):
        if t >= 10:
            frame = frame.copy()
            px = composite(frame, layer, 150, 205)
            box = (px[0] / 768, px[1] / 576, px[2] / 768, px[3] / 576)
        static = check.observe(float(t), frame)
        if box:
            fractions.append(covered(static, box))
    assert max(fractions[:2]) < 0.2  # just arrived: still moving against the short-term picture
    # then still, changed ground under the pile, enough to confirm a detection (walkers dip it)
    assert np.median(fractions[10:]) > 0.5 and min(fractions[10:]) >= CONFIRM_COVER
    # away from the pile, people walk but nothing stays: little static foreground elsewhere
    static[int(0.3 * static.shape[0]):int(0.5 * static.shape[0]), int(0.18 * static.shape[1]):int(0.3 * static.shape[1])] = 0
    assert static.mean() < 0.01


def _replay(truth_path, tmp_path, zones=None, video=None, left_object="confirm"):
    truth = yaml.safe_load(truth_path.read_text())
    camera = dict(truth["camera"])
    camera["url"] = str(REPO / (video or camera["url"]))
    if zones is not None:
        camera["zones"] = zones
    config = {"box": "eval", "broker": {"host": "127.0.0.1"}, "cameras": [camera],
              "detection": {"left_object": left_object}}
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(config))
    parse_config(config)  # a typo fails here, not as an empty replay
    t0 = "2026-11-22T08:00:00Z"
    out = subprocess.run([sys.executable, "-m", "xueliang.cli", "replay", "--config", str(path),
                          "--camera", camera["id"], "--start", t0, camera["url"]],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")], wire.parse_time(t0)


@pytest.mark.slow
def test_replay_of_the_composed_clip_gives_each_staged_object_once(tmp_path):
    messages, t0 = _replay(LITTER, tmp_path)
    for expect in LITTER_TRUTH["expect"]:
        starts = [m for m in messages if m["state"] == "start" and m["type"] == expect["type"]]
        assert len(starts) == 1, (expect, starts)
        start = starts[0]
        assert start["zone"] == expect["zone"]
        delay = wire.parse_time(start["observed_at"]) - t0 - expect["start_after_s"]
        assert -1.0 <= delay <= 5.0, delay
        assert start["evidence"] and start["model"]["name"] == "litter_yolov8n_320"
        assert start["attributes"]["source"] == "detector+left_object"
        ends = [m for m in messages if m["incident_id"] == start["incident_id"] and m["state"] == "end"]
        assert len(ends) == 1 and ends[0]["end_reason"] == "cleared", ends
        assert 0 <= wire.parse_time(ends[0]["observed_at"]) - t0 - expect["clear_s"] <= 10.0
    spill = next(m for m in messages if m["type"] == "spill" and m["state"] == "start")
    assert spill["attributes"]["urgent"] is False  # a stain a few percent of the carriageway


@pytest.mark.slow
@pytest.mark.parametrize("name, codec", [
    ("clip.avi", ["-c:v", "mjpeg", "-q:v", "4"]),  # every frame a key frame
    ("clip.mkv", ["-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le",  # 10-bit, default GOP
                  "-x265-params", "log-level=error"]),
])
def test_the_composed_clip_written_by_another_tool_gives_each_staged_object_once(tmp_path, name, codec):
    """What another generator or an NVR export may write: each staged object once, its type, on time."""
    video = tmp_path / name
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(REPO / LITTER_TRUTH["camera"]["url"]), *codec,
                    "-an", str(video)], check=True, timeout=300)
    messages, t0 = _replay(LITTER, tmp_path, video=str(video))
    for expect in LITTER_TRUTH["expect"]:
        starts = [m for m in messages if m["state"] == "start" and m["type"] == expect["type"]]
        assert [m["zone"] for m in starts] == [expect["zone"]], (expect, starts)
        assert not starts[0]["attributes"].get("needs_review")
        assert -1.0 <= wire.parse_time(starts[0]["observed_at"]) - t0 - expect["start_after_s"] <= 6.0


@pytest.mark.slow
def test_replay_of_the_real_clip_with_litter_zones_raises_nothing(tmp_path):
    messages, _ = _replay(LITTER, tmp_path, video="fixtures/videos/campus-gate.mp4")
    assert [m for m in messages if m["type"] in ("garbage", "spill")] == []


def test_litter_zone_fields_are_checked_with_their_names():
    camera = {"id": "c1", "url": "x.mp4", "grid": "G1",
              "zones": [{"id": "kerb", "types": ["garbage"], "polygon": [[0, 0], [1, 0], [1, 1]],
                         "persistence_s": -5}]}
    with pytest.raises(Exception) as err:
        parse_config({"box": "b1", "cameras": [camera]})
    assert "camera 'c1' zone 'kerb' persistence_s" in str(err.value)


@pytest.mark.slow
def test_a_pile_people_keep_crossing_is_still_between_them():
    """A pile on the real campus footage that a passer-by crosses every third second, cut out with the
    person's box as the pipeline does: the short-term background remembers each passer-by for
    seconds and never settled on the pile, so it was never still there and a detection over it was
    never confirmed. As it was when last seen with nobody in front, it is still between two
    passers-by, also at the look right after one (compared with the look before, the passer-by, it
    was not: a detection there waited for the next look, 10 s on the campus road in ``make eval``)."""
    frames = campus_frames(step=10)[:40]  # one frame a second
    layer = render(np.random.default_rng(5), "garbage", 50, 36, "heldout")
    rng = np.random.default_rng(6)
    confirmed = []
    check = LeftObject()
    for t, frame in enumerate(frames):
        exclude = []
        if t >= 10:
            frame = frame.copy()
            x1, y1, x2, y2 = composite(frame, layer, 150, 205)
            box = (x1 / 768, y1 / 576, x2 / 768, y2 / 576)
            if t % 3 == 0:  # a passer-by in a dark coat, in front of the pile
                coat = (x1 - 6, y1 - 70, x2 + 6, y2 + 4)
                frame[coat[1]:coat[3], coat[0]:coat[2]] = rng.integers(30, 70, (coat[3] - coat[1], coat[2] - coat[0], 3),
                                                                       dtype=np.uint8)
                exclude = [(coat[0] / 768, coat[1] / 576, coat[2] / 768, coat[3] / 576)]
        static = check.observe(float(t), frame, exclude)
        if t >= 15 and t % 3:
            confirmed.append(covered(static, box) >= CONFIRM_COVER)
    # still at every look without a passer-by (the look right after one included)
    assert all(confirmed), confirmed


def _stays(frames, paint, box, start=10, check=None):
    """Feed ``frames`` (one a second) to a left-object check, ``paint`` applied from ``start`` on;
    the share of ``box`` (pixels) that is static foreground over the last 10 s, and the whole mask."""
    check = check or LeftObject()
    H, W = frames[0].shape[:2]
    norm = (box[0] / W, box[1] / H, box[2] / W, box[3] / H)
    fractions, static = [], None
    for t, frame in enumerate(frames):
        if t >= start:
            frame = paint(frame.copy(), t)
        static = check.observe(float(t), frame)
        fractions.append(covered(static, norm))
    return float(np.median(fractions[-10:])), static


ROAD = (330, 330, 430, 380)  # pixels of the light concrete road in the campus clip, where people seldom stop


@pytest.mark.slow
def test_left_object_sees_sand_on_light_concrete_that_grey_levels_miss():
    """Light sand on the light road: lightness within a few levels, but yellower and grainy."""
    frames = campus_frames(step=10)[:40]
    x1, y1, x2, y2 = ROAD
    rng = np.random.default_rng(2)
    grain = rng.uniform(0.82, 1.12, (y2 - y1, x2 - x1, 1))

    def sand(frame, t):
        region = frame[y1:y2, x1:x2].astype(np.float32)
        lab = cv2.cvtColor(region.astype(np.uint8), cv2.COLOR_BGR2LAB).astype(np.float32)
        lab[..., 2] += 14  # toward yellow; lightness kept
        tinted = cv2.cvtColor(lab.clip(0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR).astype(np.float32)
        frame[y1:y2, x1:x2] = (tinted * grain).clip(0, 255).astype(np.uint8)
        return frame
    before, after = frames[5][y1:y2, x1:x2], sand(frames[5].copy(), 0)[y1:y2, x1:x2]
    grey = lambda im: cv2.cvtColor(im, cv2.COLOR_BGR2GRAY).astype(float)  # noqa: E731
    assert abs(grey(after).mean() - grey(before).mean()) < 8  # what the grey-only check saw: a few levels
    share, _ = _stays(frames, sand, ROAD)
    assert share >= CONFIRM_COVER * 2, share


@pytest.mark.slow
def test_left_object_sees_water_on_asphalt_but_not_a_shadow():
    """Water darkens like a shadow, but it smooths the grain and mirrors the sky; a shadow keeps both."""
    frames = campus_frames(step=10)[:40]
    x1, y1, x2, y2 = ROAD
    h, w = y2 - y1, x2 - x1
    rng = np.random.default_rng(4)
    gloss = (cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 3) > 0.52)[..., None]

    def water(frame, t):
        region = frame[y1:y2, x1:x2].astype(np.float32)
        smooth = cv2.GaussianBlur(region, (0, 0), 2.5)
        wet = smooth * 0.72
        wet = np.where(gloss, wet * 0.6 + np.float32([235, 225, 215]) * 0.4, wet)  # bright sky in the gloss
        frame[y1:y2, x1:x2] = wet.clip(0, 255).astype(np.uint8)
        return frame

    def shadow(frame, t):  # a lamp post's or a van's shadow, bigger than the place, soft-edged
        mask = np.zeros(frame.shape[:2], np.float32)
        mask[y1 - 30:y2 + 30, x1 - 40:x2 + 40] = 1
        mask = cv2.GaussianBlur(mask, (0, 0), 8)[..., None]
        frame[:] = (frame * (1 - 0.35 * mask)).clip(0, 255).astype(np.uint8)
        return frame
    wet_share, _ = _stays(frames, water, ROAD)
    shadow_share, _ = _stays(frames, shadow, ROAD)
    assert wet_share >= CONFIRM_COVER * 2, wet_share
    assert shadow_share < CONFIRM_COVER / 2, shadow_share


def lighter(frame: np.ndarray, gain: float) -> np.ndarray:
    """``frame`` in ``gain`` times the light."""
    return np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8)


@pytest.mark.slow
def test_left_object_is_silent_while_the_light_changes():
    """The real clip dimming to 65 % and back over 30 s (a cloud): no more still, changed ground
    than in the clip as it is (people who stop for a chat, here with no detector to cut them out)."""
    frames = campus_frames(step=10)[:60]

    def cloud(frame, t):
        return lighter(frame, 1 - 0.35 * np.sin(np.pi * min(1.0, (t - 10) / 30)) if t >= 10 else 1.0)
    shares = {}
    for name, light in (("as is", lambda f, t: f), ("cloud", cloud)):
        check = LeftObject()
        shares[name] = max(float(check.observe(float(t), light(f, t)).mean()) for t, f in enumerate(frames))
    assert shares["as is"] < 0.03 and shares["cloud"] <= shares["as is"] + 0.005, shares


def texture(height: int = 518, width: int = 768, seed: int = 1) -> np.ndarray:
    """A still camera's picture of rough ground: blurred colour noise over the whole range."""
    noise = np.random.default_rng(seed).integers(0, 255, (height, width, 3), np.uint8)
    return cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 3), None, 0, 255, cv2.NORM_MINMAX)


def ground_and_pile(height: int = 384, width: int = 512, seed: int = 1, pile_seed: int = 3,
                    size: tuple[int, int] = (90, 70), at: tuple[int, int] = (160, 200)):
    """A left-object check that has seen rough ground (``texture``) for 5 looks, that ground, and the same
    with a pile of ``size`` put at ``at`` (pixels)."""
    frame = texture(height=height, width=width, seed=seed)
    check = LeftObject()
    for t in range(5):
        check.observe(float(t), frame)
    pile = frame.copy()
    composite(pile, render(np.random.default_rng(pile_seed), "garbage", *size, "heldout"), *at)
    return check, frame, pile


def test_a_still_camera_whose_small_picture_is_130_rows_high_is_not_taken_to_sway():
    """A 768x518 camera (the cross set's garage) is seen by the check at 192x130, where OpenCV's phase
    correlation reads a still picture as moved half a pixel down (``edge.phase``): every look was moved
    back by it, the background learnt the moved picture, and the still picture showed 1.4 % of static
    foreground."""
    check = LeftObject()
    frame = texture()
    assert max(float(check.observe(float(t), frame).mean()) for t in range(40)) == 0.0


@pytest.mark.parametrize("gain, before_confirmed", [(1.0, False), (1.15, False), (0.87, False), (1.15, True),
                                                      (0.87, True)])
def test_a_place_whose_object_was_taken_away_as_the_light_changed_reads_as_its_ground(gain, before_confirmed):
    """The cross set's light rises and falls by about 15 %. Its garage pile, taken away as the light
    rose, read 13-19 % unlike its ground (``GONE_COVER`` is 5 %) until the light came back 12 s later,
    and its incident ended 16.5 s after the pile was gone: the ground is now seen in today's light.
    The light may also change between a pile's arrival and its confirmation (``before_confirmed``):
    the background under the pile stood out, so it kept the light before the pile, and was read as if
    it had the confirmation's (another garage pile came as the light was lowest and was confirmed 11 s
    later, 13 % lighter: taken away, its place read 70-78 % unlike its ground and the incident stayed
    open to the end of the clip). A pile there still differs from its ground in any light."""
    from edge.pipeline import GONE_COVER

    check, frame, pile = ground_and_pile()
    box = (0.3, 0.5, 0.5, 0.7)
    light = lambda t, t0, span: 1 + (gain - 1) * min(1.0, (t - t0) / span)  # noqa: E731  a slow change
    if before_confirmed:
        for t in range(5, 25):
            check.observe(float(t), lighter(pile, light(t, 5, 15)))
        ground = check.ground(box)
    else:
        for t in range(5, 20):
            check.observe(float(t), pile)
        ground = check.ground(box)
        for t in range(20, 60):  # the background follows the light
            check.observe(float(t), lighter(pile, light(t, 20, 20)))
    check.observe(60.0, lighter(pile, gain))
    assert check.unlike(ground, box) > 0.2
    check.observe(61.0, lighter(frame, gain))
    assert check.unlike(ground, box) < GONE_COVER


@pytest.mark.parametrize("gain", [1.0, 1.15, 0.87])
def test_a_place_shows_its_object_as_it_looked_in_any_light_and_not_what_replaced_it(gain):
    """``LeftObject.look`` keeps the pile as the check saw it; ``like`` says how much of it the place still
    shows: all of it, in 15 % more or less light; little once another thing stands there instead, though
    the place differs from its ground as much as with the pile; nothing to say while people hide it."""
    check, frame, pile = ground_and_pile()
    box = (0.3, 0.5, 0.5, 0.7)
    for t in range(5, 20):
        check.observe(float(t), pile)
    ground = check.ground(box)
    look = check.look(ground, box)
    assert look is not None and check.like(look, box) == 1.0
    for t in (20, 21):  # the light changed at once: the first look is compared at the background's light before
        check.observe(float(t), lighter(pile, gain))
    assert check.like(look, box) > 0.95
    other = pile.copy()
    other[192:269, 154:256] = texture(height=77, width=102, seed=9)  # the box, filled with other ground
    check.observe(22.0, lighter(other, gain))
    assert check.unlike(ground, box) > 0.5 and check.like(look, box) < 0.2
    check.observe(23.0, pile, exclude=[box])
    assert check.like(look, box) is None


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), gain=st.floats(0.8, 1.25), looks=st.integers(2, 40))
def test_a_pile_shows_as_itself_through_a_change_of_light_and_not_once_taken_away(seed, gain, looks):
    """Property of ``LeftObject.like`` against the pipeline's threshold: a pile (any ground, any pile), its
    look kept when it was confirmed and never followed, shows at least ``LIKE_COVER`` of itself (it is
    there) at every look while the light drifts to anything from 20 % darker to 25 % lighter over
    ``looks`` looks (a cloud's few seconds, or slowly), and after, and less than ``LIKE_COVER`` once it is
    taken away in that light. (The pipeline follows the look while it shows nine tenths of it; far greater
    changes than these, 30 % darker, left a high-contrast pile showing 55 % of itself against its first
    look: the check's light model scales lightness + ``L_OFFSET``, which dark and clipped pixels do not
    follow exactly.) Until 2026-12-06 it held only from 10 looks: ``test_a_pile_through_a_fast_drift_of_light``.
    A light that jumps by a fifth between two looks: ``test_a_pile_shows_as_itself_at_the_first_look_after_the_light_jumps``.
    A still camera read as moving in a slow fall of light (seed 689):
    ``test_a_pile_through_a_slow_fall_of_light_with_a_still_camera``."""
    from edge.pipeline import LIKE_COVER

    check, frame, pile = ground_and_pile(192, 256, seed, seed, (45, 35), (80, 100))
    box = (0.3, 0.5, 0.5, 0.7)
    for t in range(5, 15):
        check.observe(float(t), pile)
    look = check.look(check.ground(box), box)
    assert look is not None
    for k in range(1, looks + 3):  # the drift, then two looks in the final light
        check.observe(15.0 + k, lighter(pile, 1 + (gain - 1) * min(1.0, k / looks)))
        assert check.like(look, box) >= LIKE_COVER, k
    check.observe(20.0 + looks, lighter(frame, gain))
    assert check.like(look, box) < LIKE_COVER


def a_pile_through_a_fall_of_light(seed: int, over: int, looks: int) -> None:
    """A confirmed pile (ground and pile of ``seed``) shows as itself at each of ``looks`` looks while the light
    falls by a fifth ``over`` looks, and the check learns its scene once."""
    from edge.pipeline import LIKE_COVER

    check, frame, pile = ground_and_pile(192, 256, seed, seed, (45, 35), (80, 100))
    box = (0.3, 0.5, 0.5, 0.7)
    for t in range(5, 15):
        check.observe(float(t), pile)
    look = check.look(check.ground(box), box)
    for k in range(1, looks + 1):
        check.observe(15.0 + k, lighter(pile, 1 - 0.2 * min(1.0, k / over)))
        assert check.like(look, box) >= LIKE_COVER, k
    assert check.scene == 1


def test_a_pile_through_a_slow_fall_of_light_with_a_still_camera():
    """Found by the light property (2026-12-06; seed 689, the light 20 % lower over 19 looks): the pile showed
    0.44 of itself after the fall, taken for gone while it lay there. Not the light model: phase correlation of
    the picture against the background, which keeps the ground under the pile, read the still camera as moved,
    0.7 px at the 7th look and 3 px by the 21st (peaks 0.5-0.7: the bright pile against its ground in another
    light), and each look was moved back by it. Leaving what stands out (the last look's static foreground) out
    of that correlation, as people and vehicles are, fixed it and lost a knocked camera's spill on draw 24 (not
    merged: models/litter/HISTORY.md, "What stands out left out of the sway's phase correlation"). Reading it so only
    where a move was read lost a knocked camera's spill on draw 25: the filled pixels match the background exactly at
    no shift and pulled the knock's first look to "still" (HISTORY.md, "The sway's phase correlation read again").
    Now phase correlation's read is refused where the median of the ground's own moves (optical flow on a grid,
    ``edge.flow``) says the picture stood still: it reads 0.01-0.02 px here (HISTORY.md, "Phase correlation's move
    refused where the ground's own moves say still")."""
    a_pile_through_a_fall_of_light(seed=689, over=19, looks=21)


def test_a_pile_through_a_fast_drift_of_light():
    """Found by the property above when it allowed 5 looks (CI, 2026-12-06: seed 147, gain 0.80, 5 looks): at the
    4th look of the light falling 20 % over 5, phase correlation read the picture as moved 6.7 px down with a peak
    of -0.06 (nothing alike), the check moved the picture back by it, found most of it changed, and learnt the
    scene again from the moved picture; the pile's look, kept before, then showed 0.15 of itself: taken for gone
    while it lay there. A move whose peak is under ``MIN_RESPONSE`` is not taken back now."""
    a_pile_through_a_fall_of_light(seed=147, over=5, looks=7)


@pytest.mark.parametrize("seed, gain", [(63, 0.8), (168, 0.8), (203, 1.25)])
def test_a_pile_shows_as_itself_at_the_first_look_after_the_light_jumps(seed, gain):
    """The light 20 % darker (or 25 % lighter) from one look to the next: the look's picture is compared at the
    background's lightness before it learnt that look, and the kept look of the pile was relit to the lightness
    after (the background learns the new light at once where nothing stands out), so the pile showed 0.34-0.47 of
    itself at that look (these three, of 55 in 715 grounds and lights, seeds 0-1000 by 7, 0.8-0.85 and 1.2-1.25;
    all were themselves again at the next look). Both are now at the lightness the picture is compared at; one of
    the 715 still showed 0.47 (seed 945, 25 % lighter: the picture's chroma is not brought to that lightness;
    bringing it, as a kept look's is, doubled the still, changed ground of the real clip under a cloud,
    ``test_left_object_is_silent_while_the_light_changes``: 0.024 to 0.045, 2026-12-06)."""
    from edge.pipeline import LIKE_COVER

    check, frame, pile = ground_and_pile(192, 256, seed, seed, (45, 35), (80, 100))
    box = (0.3, 0.5, 0.5, 0.7)
    for t in range(5, 15):
        check.observe(float(t), pile)
    look = check.look(check.ground(box), box)
    check.observe(15.0, lighter(pile, gain))
    assert check.like(look, box) >= LIKE_COVER
    check.observe(16.0, lighter(frame, gain))
    assert check.like(look, box) < LIKE_COVER


def test_a_place_at_the_edge_of_a_swaying_picture_reads_as_its_ground():
    """Moved back onto the background, a swaying picture's edge strip is a copy of its last row or
    column: not the ground, so it is left out like ground behind a passer-by."""
    from edge.pipeline import GONE_COVER

    frame = texture(height=384, width=512)
    h, w = frame.shape[:2]
    box = (0.0, 0.85, 0.12, 1.0)  # the bottom-left corner
    check = LeftObject()
    for t in range(5):
        check.observe(float(t), frame)
    ground = check.ground(box)
    for t, (dx, dy) in enumerate([(6, -6), (-6, 6), (5, -4), (-4, 5)], start=5):  # 2 to 2.5 px of the check's
        swayed = cv2.warpAffine(frame, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), borderMode=cv2.BORDER_REFLECT)
        check.observe(float(t), swayed)
        assert check.unlike(ground, box) < GONE_COVER, (dx, dy)


@pytest.mark.slow
@pytest.mark.parametrize("shake, moved_back, gone", [(0, False, False), (1, False, True), (0, True, True)])
def test_a_place_whose_object_was_taken_away_reads_as_its_ground_though_the_camera_shook(
        monkeypatch, shake, moved_back, gone):
    """The campus camera's road edge with its stone bollards, and the same picture shaken by 4 and 3
    pixels (one pixel of the check's picture): the edges of the stones move, not the ground. Compared
    with the ground as it was, it reads as the ground again once a shift of a pixel is allowed
    (``SHAKE``), or once the picture is moved back onto the background (``SWAY_MIN``); compared pixel
    for pixel it did not, and a removed pile's incident was kept open. A pile there differs from its
    ground however the picture is shifted."""
    from edge import leftobject
    from edge.pipeline import GONE_COVER

    monkeypatch.setattr(leftobject, "SHAKE", shake)
    if not moved_back:
        monkeypatch.setattr(leftobject, "SWAY_MIN", float("inf"))
    frame = campus_frames(step=400)[0]
    h, w = frame.shape[:2]
    shaken = cv2.warpAffine(frame, np.float32([[1, 0, 4], [0, 1, 3]]), (w, h), borderMode=cv2.BORDER_REPLICATE)
    box = (0.0, 0.4, 0.3, 0.55)
    check = LeftObject()
    for t in range(5):
        check.observe(float(t), frame)
    ground = check.ground(box)
    check.observe(5.0, shaken)
    assert (check.unlike(ground, box) < GONE_COVER) == gone
    with_pile = shaken.copy()
    composite(with_pile, render(np.random.default_rng(3), "garbage", 120, 60, "heldout"), 40, 250)
    check.observe(6.0, with_pile)
    assert check.unlike(ground, box) > 0.2


@pytest.mark.slow
def test_zones_watching_both_types_raise_one_incident_of_the_right_type_per_object(tmp_path):
    """Each zone of the composed clip now watches garbage and spill: the pile is still one garbage
    incident (sanitation) and the spill one spill incident (roads), not one of each."""
    zones = [dict(z, types=["garbage", "spill"]) for z in LITTER_TRUTH["camera"]["zones"]]
    messages, _ = _replay(LITTER, tmp_path, zones=zones)
    starts = [m for m in messages if m["state"] == "start" and m["type"] in ("garbage", "spill")]
    assert sorted((m["zone"], m["type"]) for m in starts) == sorted((e["zone"], e["type"]) for e in LITTER_TRUTH["expect"])


def _litter_at(*boxes: tuple, score: float = 0.6, label: str = "garbage") -> sv.Detections:
    if not boxes:
        return sv.Detections.empty()
    return sv.Detections(xyxy=np.array(boxes, np.float32), confidence=np.full(len(boxes), score, np.float32),
                         class_id=np.full(len(boxes), ("garbage", "spill").index(label)),
                         data={"class_name": np.array([label] * len(boxes))})


W, H = 768, 576
ROAD_ZONE = [[300 / W, 320 / H], [470 / W, 320 / H], [470 / W, 400 / H], [300 / W, 400 / H]]
PILE_BOX = (350, 345, 400, 375)  # frame pixels


def _given_detections(zones: dict, boxes_at, score: float = 0.6, vehicles_at=None,
                      detection: dict | None = None, opacity: float = 1.0, closer_only: list | None = None,
                      answer_at=None, types: tuple[str, ...] = ("garbage",), pile_s: tuple[int, int] = (15, 45),
                      then: np.ndarray | None = None, drawn_at=None, rules: dict | None = None,
                      bare_at=None) -> list[tuple[int, dict]]:
    """The campus camera, 75 s, a real pile put at ``PILE_BOX`` at 15 s and taken away at 45 s, through
    the real pipeline (vehicle model, left-object check); the litter model's answer is given:
    ``boxes_at(t)``, frame pixels, garbage at ``score``, and the vehicle model's too where
    ``vehicles_at(t)`` is (its full-frame answer); ``detection``: the config's, over the defaults;
    ``opacity``: the pile's (a faint one, as a thin spill); ``closer_only``: a list, the model sees the
    boxes only on the closer looks' crops that hold them whole, not on its tiles, and the list gets the
    crops of each pass; ``answer_at(t)``: the (label, score) the model gives instead of garbage at ``score``;
    ``types``: what the zones watch; ``pile_s``: when the pile is put down and taken away; ``then``: a
    picture put where the pile lay once it is taken away; ``drawn_at(t)``: frame-pixel boxes painted dark
    grey over the picture at second ``t`` (a person the vehicle model's answer stands for); ``rules``: the config's;
    ``bare_at(t)``: frame-pixel boxes where the pile's ground shows at second ``t`` as if the pile were not there.
    The messages, by second."""
    config = parse_config({"box": "b1", "detection": detection or {}, "rules": rules or {}, "cameras": [
        {"id": "gate", "url": "unused.mp4", "grid": "G-1", "zones": [
            {"id": zone, "types": list(types), "persistence_s": 10, "clear_s": 5, "polygon": polygon}
            for zone, polygon in zones.items()]}]})
    detectors = {"vehicle": load_detector("ssd_mobilenet_v2_coco"), "litter": load_detector("litter_yolov8n_320")}
    pipeline = CameraPipeline(config, config.cameras[0], detectors)
    pile = render(np.random.default_rng(5), "garbage", 50, 30, "heldout")
    t0, events = 1_767_225_600.0, []
    for t, frame in enumerate(campus_frames(step=10)[:max(75, pile_s[1] + 12)]):
        ground, frame = frame, frame.copy()
        if pile_s[0] <= t < pile_s[1]:
            composite(frame, pile, *PILE_BOX[:2], opacity=opacity)
        elif t >= pile_s[1] and then is not None:
            x, y = PILE_BOX[:2]
            frame[y:y + then.shape[0], x:x + then.shape[1]] = then
        for x1, y1, x2, y2 in bare_at(t) if bare_at else []:
            frame[y1:y2, x1:x2] = ground[y1:y2, x1:x2]
        for x1, y1, x2, y2 in drawn_at(t) if drawn_at else []:
            frame[y1:y2, x1:x2] = (60, 60, 70)
        passes = pipeline.plan(t0 + t, frame)
        vehicles = vehicles_at(t) if vehicles_at else \
            run_passes(detectors, [p for p in passes if p[0] == "vehicle"], min_scores(config.detection))
        # the litter model's answer on each tile (and closer look), in its pixels
        looks = [(region, closer_only is None) for region in pipeline._litter_regions]
        if closer_only is not None and passes:
            closer_only.append((t, list(pipeline._closer)))
            looks += [(region, True) for region in pipeline._closer]
        label, said = answer_at(t) if answer_at else ("garbage", score)
        litter = [_litter_at(*[(x1 - rx, y1 - ry, x2 - rx, y2 - ry) for x1, y1, x2, y2 in boxes_at(t)
                                if sees and rx <= x1 and ry <= y1 and x2 <= rx2 and y2 <= ry2], score=said, label=label)
                  for (rx, ry, rx2, ry2), sees in looks]
        events += [(t, o.message) for o in pipeline.observe(t0 + t, frame, vehicles + litter if passes else [])]
    return events


@pytest.mark.slow
def test_a_dispatched_pile_the_model_later_calls_spill_is_not_raised_again_for_the_other_department():
    """A zone watching both types. The model calls the pile garbage (0.6) from 15 s, then spill (0.95)
    from 36 s, so the place's vote turns to spill at about 50 s, while the garbage incident is open.
    The spill rule raised a second incident at the same place, to the roads department, for a pile
    sanitation already had. The open incident's place keeps its type: one incident, garbage, cleared."""
    events = _given_detections({"road": ROAD_ZONE}, lambda t: [PILE_BOX] * (15 <= t < 65), types=("garbage", "spill"),
                               answer_at=lambda t: ("garbage", 0.6) if t < 36 else ("spill", 0.95), pile_s=(15, 65))
    got = [(t, m["type"], m["state"], m["end_reason"]) for t, m in events]
    assert [g[1:] for g in got] == [("garbage", "start", None), ("garbage", "end", "cleared")], got


@pytest.mark.slow
@pytest.mark.parametrize("left_object", ["confirm", "either"])
def test_a_pile_in_two_overlapping_zones_is_one_incident(left_object):
    """Two zones over the same road, both holding the pile's bottom-centre: one incident, in the zone
    that raised it first, the first listed (each zone raised the pile before: two cases for one pile, as
    on ``make eval``'s garage floor). Under ``either`` the other zone took the pile's still, changed
    ground for a sighting of its own, where the detector's was left to the first: two incidents again."""
    kerb = [[360 / W, 300 / H], [520 / W, 300 / H], [520 / W, 420 / H], [360 / W, 420 / H]]
    events = _given_detections({"kerb": kerb, "road": ROAD_ZONE}, lambda t: [PILE_BOX] * (15 <= t < 45),
                               detection={"left_object": left_object})
    got = [(t, m["zone"], m["state"], m["end_reason"]) for t, m in events]
    assert [g[1:] for g in got] == [("kerb", "start", None), ("kerb", "end", "cleared")], got


@pytest.mark.slow
def test_a_removed_pile_ends_cleared_though_the_detector_still_sees_something_there():
    """The litter detector keeps reporting the pile at its place after it was taken away at 45 s (as
    on a stained floor). The incident ends ``cleared`` because the ground there looks as it did before
    the pile came; it was kept open to the end before."""
    events = _given_detections({"road": ROAD_ZONE}, lambda t: [PILE_BOX] * (t >= 15))
    got = [(t, m["state"], m["end_reason"], m["attributes"]["needs_review"]) for t, m in events]
    assert [g[1:] for g in got[:2]] == [("start", None, False), ("end", "cleared", False)], got
    assert 25 <= got[0][0] <= 35 and 45 <= got[1][0] <= 52, got
    # what the detector goes on reporting there, never confirmed, is at most held for review
    assert all(review for _, state, _, review in got[2:] if state == "start"), got


@pytest.mark.slow
def test_a_removed_pile_ends_cleared_though_something_else_now_stands_where_it_lay():
    """The pile is taken away at 45 s and a board is put where it lay, which the detector does not
    name. Its place differs from the ground before the pile came, so the incident was kept open on
    its last sighting to the end (as a spill on a yard whose ground the check had read wrong: its
    place read 31-47 % unlike that ground after it was taken away, ``make eval --draw 5``'s long-GOP
    copy). What shows there is not the pile as it last looked: the incident ends ``cleared``."""
    board = np.zeros((30, 50, 3), np.uint8)
    board[:] = (150, 90, 40)  # BGR: a blue board
    board[::6] = (230, 230, 230)  # with white slats
    events = _given_detections({"road": ROAD_ZONE}, lambda t: [PILE_BOX] * (15 <= t < 45), then=board)
    got = [(t, m["state"], m["end_reason"], m["attributes"]["needs_review"]) for t, m in events]
    assert [g[1:] for g in got] == [("start", None, False), ("end", "cleared", False)], got
    assert 25 <= got[0][0] <= 35 and 45 <= got[1][0] <= 52, got


@pytest.mark.slow
def test_a_removed_pile_ends_cleared_though_its_place_differs_a_little_from_the_ground_before():
    """The pile is taken away at 45 s and a small dark mark is left where it lay (a tenth of its box,
    as a swaying picture's edges left on draw 8's road): the place reads some 11 % unlike the ground
    before the pile came, under ``CONFIRM_COVER``, and shows less than a third of the pile as it last
    looked. The incident was kept open on its last sighting to the end (43 s past the clear time on
    the swayed road); the place does not show the pile: it ends ``cleared``."""
    x1, y1, x2, y2 = PILE_BOX
    mark = campus_frames(step=10)[0][y1:y2, x1:x2].copy()
    mark[13:17, 20:30] = (40, 40, 40)
    events = _given_detections({"road": ROAD_ZONE}, lambda t: [PILE_BOX] * (15 <= t < 45), then=mark)
    got = [(t, m["state"], m["end_reason"], m["attributes"]["needs_review"]) for t, m in events]
    assert [g[1:] for g in got] == [("start", None, False), ("end", "cleared", False)], got
    assert 25 <= got[0][0] <= 35 and 45 <= got[1][0] <= 55, got


@pytest.mark.slow
@pytest.mark.parametrize("closer_looks", [2, 0])
def test_a_pile_the_model_sees_only_close_up_is_seen_by_a_closer_look_at_its_still_changed_ground(closer_looks):
    """The litter model finds the pile (at ``PILE_BOX`` from 15 to 45 s) only on a crop around it, not in
    its tiles a third of the frame wide (as the cross sets' small piles and spills: see the card). The
    left-object check sees still, changed ground there, so the next passes also look at a crop three
    times its size around it: the incident is raised, dispatched, and ends cleared. Without closer
    looks nothing is raised; and none is planned while the ground is as it was."""
    crops: list = []
    events = _given_detections({"road": ROAD_ZONE}, lambda t: [PILE_BOX], closer_only=crops,
                               detection={"closer_looks": closer_looks})
    got = [(t, m["state"], m["end_reason"], m["attributes"]["needs_review"]) for t, m in events]
    planned = [t for t, regions in crops if regions]
    if not closer_looks:
        assert got == [] and planned == [], (got, planned)
        return
    assert [g[1:] for g in got] == [("start", None, False), ("end", "cleared", False)], got
    assert 25 <= got[0][0] <= 35 and 45 <= got[1][0] <= 52, got
    assert planned and 15 <= planned[0] <= 25 and max(planned) <= 52, planned
    x1, y1, x2, y2 = PILE_BOX
    for t, regions in crops:
        if 20 <= t < 45:  # the crop holds the pile, at three times its size or so
            assert any(rx <= x1 and ry <= y1 and x2 <= rx2 and y2 <= ry2 and 100 <= rx2 - rx <= 256
                       for rx, ry, rx2, ry2 in regions), (t, regions)


@pytest.mark.slow
def test_a_pile_is_not_cleared_while_it_lies_there_though_the_detector_lost_it():
    """The litter detector sees the pile only from 15 to 30 s (a weak spill it sees now and then), while
    it lies there until 45 s, with people standing in front of it at times. The incident ended
    ``cleared`` at 35 s, the pile still there: false evidence for closing the case. The left-object
    check sees the place still unlike its ground before (and, while people hide it, saw it so at its
    last look), so the incident is kept until the pile is taken away."""
    person = (340, 290, 410, 380)

    def vehicles_at(t):
        if t not in (33, 34, 38, 39):
            return [sv.Detections.empty()]
        return [sv.Detections(xyxy=np.array([person], np.float32), confidence=np.array([0.9], np.float32),
                              class_id=np.array([1]), data={"class_name": np.array(["person"])})]
    events = _given_detections({"road": ROAD_ZONE}, lambda t: [PILE_BOX] * (15 <= t < 30), vehicles_at=vehicles_at)
    got = [(t, m["state"], m["end_reason"], m["attributes"]["needs_review"]) for t, m in events]
    assert [g[1:] for g in got] == [("start", None, False), ("end", "cleared", False)], got
    assert 25 <= got[0][0] <= 35 and 45 <= got[1][0] <= 52, got


def _person(box: tuple[int, int, int, int], seconds: tuple[int, int]):
    """``_given_detections``' ``vehicles_at``: the vehicle model sees a person at ``box`` (frame pixels)
    from ``seconds[0]`` to ``seconds[1]`` (paint them with ``drawn_at``), and nothing else."""
    def vehicles_at(t):
        if not seconds[0] <= t < seconds[1]:
            return [sv.Detections.empty()]
        return [sv.Detections(xyxy=np.array([box], np.float32), confidence=np.array([0.9], np.float32),
                              class_id=np.array([1]), data={"class_name": np.array(["person"])})]
    return vehicles_at


@pytest.mark.slow
def test_a_pile_confirmed_before_people_stood_in_front_of_it_starts_at_its_persistence():
    """A pile put down at 15 s; the detector first runs on it at about 24 s (the change gate) and the
    check confirms it then. A person stands beside it from 28 to 40 s, over half of it (not enough to
    be taken for the pile, but the check, which leaves out people and their edges, sees a sixth of the
    box): it cannot tell whether the pile is still there when its persistence is up at about 34 s. The
    pile was confirmed, and is named there now: it starts then, dispatched. It waited for the check to
    see it again, after the person left and the check stopped remembering them (as a spill on draw 7's
    campus yard did, 13 s late)."""
    person = (330, 300, 379, 380)
    events = _given_detections({"road": ROAD_ZONE}, lambda t: [PILE_BOX] * (15 <= t < 60),
                               vehicles_at=_person(person, (28, 40)), pile_s=(15, 60),
                               drawn_at=lambda t: [person] * (28 <= t < 40))
    got = [(t, m["state"], m["end_reason"], m["attributes"]["needs_review"]) for t, m in events]
    assert [g[1:] for g in got] == [("start", None, False), ("end", "cleared", False)], got
    assert 30 <= got[0][0] <= 36 and 60 <= got[1][0] <= 67, got


@pytest.mark.slow
def test_a_lead_people_stood_in_front_of_all_along_is_held_and_says_the_detector_alone_saw_it():
    """A person stands over half of the pile's place from before it is put down at 15 s until after it
    is taken away: the check cannot tell at any look, never confirms it, and the pile is held for
    review at twice the persistence. Its message said ``source: detector+left_object`` (the check's
    word "cannot tell" taken for agreement); the detector alone saw it."""
    person = (330, 300, 379, 380)
    events = _given_detections({"road": ROAD_ZONE}, lambda t: [PILE_BOX] * (15 <= t < 60),
                               vehicles_at=_person(person, (14, 70)), pile_s=(15, 60),
                               drawn_at=lambda t: [person] * (14 <= t < 70))
    got = [(m["state"], m["attributes"]["needs_review"], m["attributes"]["source"]) for _, m in events]
    assert got == [("start", True, "detector"), ("end", True, "none")], got


@pytest.mark.slow
def test_a_pile_too_small_to_move_the_change_gate_is_looked_at_once_the_check_sees_it():
    """A pile put down at 15 s changes too little of its zone to move the change gate, so the detector
    first ran on it at 24 s, at its floor, and its persistence ran from then (started at 34 s). The
    left-object check sees its ground still and changed at 19 s, a place the last pass did not look at
    closer: the detector runs at the next look, and the pile starts at 30 s."""
    events = _given_detections({"road": ROAD_ZONE}, lambda t: [PILE_BOX] * (15 <= t < 45))
    got = [(t, m["state"], m["end_reason"], m["attributes"]["needs_review"]) for t, m in events]
    assert [g[1:] for g in got] == [("start", None, False), ("end", "cleared", False)], got
    assert got[0][0] <= 31, got


@pytest.mark.slow
def test_a_removed_pile_ends_cleared_though_a_person_stands_over_most_of_its_place():
    """A pile put down at 15 s and taken away at 45 s by a person who stands over most of its place from
    44 to 70 s (the check, which leaves out people and their edges, sees a third of the box and a fifth
    of the pile). The part of the pile's place in view reads as the ground did: the pile is gone, and the
    incident ends cleared about the clear time later. It stayed open on its last sighting until the
    person left, to 74 s (as a pile on draw 11's campus road did, 20.8 s after it was taken away)."""
    person = (330, 300, 372, 380)
    events = _given_detections({"road": ROAD_ZONE}, lambda t: [PILE_BOX] * (15 <= t < 45),
                               vehicles_at=_person(person, (44, 70)), drawn_at=lambda t: [person] * (44 <= t < 70))
    got = [(t, m["state"], m["end_reason"], m["attributes"]["needs_review"]) for t, m in events]
    assert [g[1:] for g in got] == [("start", None, False), ("end", "cleared", False)], got
    assert 25 <= got[0][0] <= 35 and 48 <= got[1][0] <= 56, got


@pytest.mark.slow
def test_a_faint_object_is_not_cleared_while_it_lies_there_though_the_detector_lost_it():
    """The same, with the pile at 30 % opacity (a thin spill): the left-object check sees its place
    10-15 % unlike its ground before, under ``CONFIRM_COVER`` though it confirmed it, and far from
    the ground's ``GONE_COVER``. The incident ended ``cleared`` at 40 s, the object still there; it
    is now kept until the object is taken away."""
    events = _given_detections({"road": ROAD_ZONE}, lambda t: [PILE_BOX] * (15 <= t < 30), opacity=0.3)
    got = [(t, m["state"], m["end_reason"], m["attributes"]["needs_review"]) for t, m in events]
    assert [g[1:] for g in got] == [("start", None, False), ("end", "cleared", False)], got
    assert 25 <= got[0][0] <= 35 and 45 <= got[1][0] <= 52, got


@pytest.mark.slow
def test_a_faint_spill_that_reads_as_its_ground_is_kept_while_the_detector_names_it_and_it_shows_itself():
    """A thin spill (30 % opacity) from 15 s, dispatched at about 34 s; at 35 s it dries to half that: its
    place now reads 2 % unlike its ground before (under ``GONE_COVER``) and still shows all of the spill's
    pixels as it last looked, and the detector names it until 60 s. It was judged gone at once and ended
    at 39 s, the spill still there and named (as a faint spill on draw 12's yard was, 15.8 s before it
    was taken away); it now ends cleared once the detector no longer names it."""
    x1, y1, x2, y2 = PILE_BOX
    dried = campus_frames(step=10)[0][y1:y2, x1:x2].copy()
    composite(dried, render(np.random.default_rng(5), "garbage", 50, 30, "heldout"), 0, 0, opacity=0.15)
    events = _given_detections({"road": ROAD_ZONE}, lambda t: [PILE_BOX] * (15 <= t < 60), opacity=0.3,
                               pile_s=(15, 35), then=dried)
    got = [(t, m["state"], m["end_reason"], m["attributes"]["needs_review"]) for t, m in events]
    assert [g[1:] for g in got] == [("start", None, False), ("end", "cleared", False)], got
    assert 25 <= got[0][0] <= 35 and 60 <= got[1][0] <= 67, got


@pytest.mark.slow
def test_a_weak_detection_counts_only_where_the_ground_changed():
    """Two signals agreeing: the litter detector's answer is given at 0.27, under litter_min_score
    (0.3) and over litter_confirmed_min_score (0.25 here; the shipped model's defaults leave no band,
    see its card). On the road, where the pile lies from 15 to 45 s, the left-object check sees new
    ground under the weak box: the incident is dispatched and ends cleared. On the footpath the same
    weak box lies over ground that never changed: nothing at all, not even a case for review."""
    path = [[60 / W, 420 / H], [230 / W, 420 / H], [230 / W, 500 / H], [60 / W, 500 / H]]
    events = _given_detections({"road": ROAD_ZONE, "path": path},
                               lambda t: [(120, 445, 170, 475)] + [PILE_BOX] * (15 <= t < 45), score=0.27,
                               detection={"litter_min_score": 0.3, "litter_confirmed_min_score": 0.25})
    got = [(t, m["zone"], m["state"], m["end_reason"], m["attributes"]["needs_review"]) for t, m in events]
    assert [g[1:] for g in got] == [("road", "start", None, False), ("road", "end", "cleared", False)], got
    assert 25 <= got[0][0] <= 35 and 45 <= got[1][0] <= 55, got


@pytest.mark.slow
def test_a_pile_under_the_vehicle_models_whole_road_car_is_seen():
    """The vehicle model answers, on every frame, one "car" at 0.42 over most of the picture (as it
    does on the real motorway and dual carriageway clips: the road seen from afar as one car). That
    box is no vehicle in front of the pile: the pile's incident is dispatched and ends cleared. Before,
    the pile was dropped as part of that car, and its ground hidden from the left-object check, on
    every frame."""
    road = (40, 60, 740, 560)  # 79 % of the 768x576 frame

    def vehicles_at(t):
        return [sv.Detections(xyxy=np.array([road], np.float32), confidence=np.array([0.42], np.float32),
                              class_id=np.array([3]), data={"class_name": np.array(["car"])})]
    events = _given_detections({"road": ROAD_ZONE}, lambda t: [PILE_BOX] * (15 <= t < 45), vehicles_at=vehicles_at)
    got = [(t, m["state"], m["end_reason"], m["attributes"]["needs_review"]) for t, m in events]
    assert [g[1:] for g in got] == [("start", None, False), ("end", "cleared", False)], got
    assert 25 <= got[0][0] <= 35 and 45 <= got[1][0] <= 55, got


@pytest.mark.slow
def test_a_pile_under_the_road_the_vehicle_model_names_one_car_starts_on_time():
    """The vehicle model names a stretch of road one "car" (0.45) over 38 % of the picture, under the half that
    ``MAX_BOX_AREA`` drops, at every pass from 20 s (as on the real motorway clips: 34-48 %, at 0.42-0.5). The pile
    put down at 15 s lies in it, a hundredth of it. That box is no car over the pile: the pile starts on time and
    ends cleared. Before, each sighting was dropped as part of that car, and nothing was raised (on ``make eval
    --draw 31``'s motorway, under such a box now and then, two piles started 18 s late)."""
    road = (60, 290, 700, 552)  # 38 % of the 768x576 frame

    def vehicles_at(t):
        if t < 20:
            return [sv.Detections.empty()]
        return [sv.Detections(xyxy=np.array([road], np.float32), confidence=np.array([0.45], np.float32),
                              class_id=np.array([3]), data={"class_name": np.array(["car"])})]
    events = _given_detections({"road": ROAD_ZONE}, lambda t: [PILE_BOX] * (15 <= t < 45), vehicles_at=vehicles_at)
    got = [(t, m["state"], m["end_reason"], m["attributes"]["needs_review"]) for t, m in events]
    assert [g[1:] for g in got] == [("start", None, False), ("end", "cleared", False)], got
    assert 25 <= got[0][0] <= 35 and 45 <= got[1][0] <= 55, got


@pytest.mark.slow
def test_a_pile_a_car_drove_past_is_not_that_car():
    """A car stops on the road at 8 s over the place where a pile is put at 15 s, and drives on at
    14 s; the tracker carries its track on over the pile on the vehicle model's weak answers there
    (a "car" at 0.2, as SSD gives on a pile). What the vehicle model is not sure of (under its
    min_score) neither makes the pile a car nor hides the ground from the left-object check: the
    pile's incident is dispatched. Before, it was dropped as part of the car, all the time."""
    car = (330, 320, 420, 385)

    def vehicles_at(t):
        score = 0.9 if 8 <= t < 14 else 0.2 if t >= 14 else None
        if score is None:
            return [sv.Detections.empty()]
        return [sv.Detections(xyxy=np.array([car], np.float32), confidence=np.array([score], np.float32),
                              class_id=np.array([3]), data={"class_name": np.array(["car"])})]
    events = _given_detections({"road": ROAD_ZONE}, lambda t: [PILE_BOX] * (15 <= t < 45), vehicles_at=vehicles_at)
    got = [(t, m["state"], m["end_reason"], m["attributes"]["needs_review"]) for t, m in events]
    assert [g[1:] for g in got] == [("start", None, False), ("end", "cleared", False)], got
    assert 25 <= got[0][0] <= 35 and 45 <= got[1][0] <= 55, got


@pytest.mark.slow
def test_a_crawling_car_the_vehicle_model_names_now_and_then_is_no_pile():
    """A dark car crawls along the road's edge from 10 s (1 px a second); the vehicle model names it (0.9) only
    every third second and misses it between, and the litter model calls it garbage (0.6) on every pass. On
    the passes where the car is named its "pile" is that car; between them nothing said so, the left-object
    check saw still, changed ground under it (the car's body), and a garbage incident was dispatched (as the
    backbone from COCO did on the swayed real motorway: ``models/litter/HISTORY.md``). A box like the one a
    vehicle was named in seconds before is that vehicle: nothing is dispatched."""
    def car(t):
        return (320 + (t - 10), 330, 410 + (t - 10), 380)

    def vehicles_at(t):
        if not (10 <= t < 60 and t % 3 == 0):
            return [sv.Detections.empty()]
        return [sv.Detections(xyxy=np.array([car(t)], np.float32), confidence=np.array([0.9], np.float32),
                              class_id=np.array([3]), data={"class_name": np.array(["car"])})]
    crawling = lambda t: [car(t)] * (10 <= t < 60)  # noqa: E731
    events = _given_detections({"road": ROAD_ZONE}, crawling, vehicles_at=vehicles_at, drawn_at=crawling,
                               pile_s=(70, 70))
    dispatched = [(t, m["state"]) for t, m in events if not m["attributes"]["needs_review"]]
    assert dispatched == [], events


@pytest.mark.slow
def test_a_pile_the_vehicle_model_once_calls_a_car_starts_on_time():
    """The vehicle model names the pile itself a car (0.42, just over min_score) once, at the first pass that sees it
    (20 s; put down at 15), and never again: no track follows it. That "car" is the pile: kept in mind for the three
    passes after, it held the pile back 12 s here (34 -> 46 s; 8 s on ``make eval --draw 28``'s ``x-campus-road-9``).
    Dispatched as without it: the pass that names the car drops the pile, the next one starts its clock."""
    def vehicles_at(t):
        if t != 20:  # the first pass after the pile is put down (at 15 s)
            return [sv.Detections.empty()]
        return [sv.Detections(xyxy=np.array([PILE_BOX], np.float32), confidence=np.array([0.42], np.float32),
                              class_id=np.array([3]), data={"class_name": np.array(["car"])})]
    events = _given_detections({"road": ROAD_ZONE}, lambda t: [PILE_BOX] * (15 <= t < 45), vehicles_at=vehicles_at)
    got = [(t, m["state"], m["end_reason"], m["attributes"]["needs_review"]) for t, m in events]
    assert [g[1:] for g in got] == [("start", None, False), ("end", "cleared", False)], got
    assert got[0][0] <= 34, got


def _road_with_pile_and_car(check: LeftObject, seconds, ground_shows_at: int | None = None) -> None:
    """``check`` shown a grey road, one look a second over ``seconds``: a pile put down at 10 s (its ground showing
    at the look ``ground_shows_at``), and a dark car crawling 2 px a second beside it from 10 s."""
    road = np.clip(np.random.default_rng(3).normal(120, 4, (144, 192, 3)), 0, 255).astype(np.uint8)
    for t in seconds:
        frame = road.copy()
        if t >= 10:
            if t != ground_shows_at:
                frame[40:56, 30:60] = (40, 140, 190)  # the pile
            x = 100 + 2 * (t - 10)
            frame[90:110, x:x + 20] = (50, 50, 55)  # the car
        check.observe(float(t), frame)


def test_the_ground_under_a_left_pile_differed_long_before_and_under_a_crawling_car_not():
    """The left-object check on a grey road, one look a second: a pile put down at 10 s, and a dark car crawling
    2 px a second (its length in 10 s). At 25 s all of what differs under the pile differed 8 s before, a fifth of
    what differs under the car (``LeftObject.stayed``); before 8 s of looks it cannot tell."""
    check = LeftObject(width=192)
    _road_with_pile_and_car(check, range(6))
    assert check.stayed((30 / 192, 40 / 144, 60 / 192, 56 / 144)) is None
    _road_with_pile_and_car(check, range(6, 26))
    x = 100 + 2 * 15
    assert check.stayed((30 / 192, 40 / 144, 60 / 192, 56 / 144)) > 0.9
    assert check.stayed((x / 192, 90 / 144, (x + 20) / 192, 110 / 144)) < 0.3


def test_a_look_that_could_not_judge_the_place_does_not_say_the_pile_moved():
    """The grey road and pile of the test before: at 20 s a passer-by no box was drawn for stands over the pile, in
    the ground's own colours, so that its place reads as the bare ground at that one look. That look could not judge
    the place (what showed there moved against the short-term background) and says nothing of whether the pile
    stayed; before, it was counted, and all that differs under the pile at 25 s "had not differed" at 20 s
    (``stayed`` 0.0: moved). The car crawling beside it still reads as moved."""
    check = LeftObject(width=192)
    _road_with_pile_and_car(check, range(26), ground_shows_at=20)
    x = 100 + 2 * 15
    assert check.stayed((30 / 192, 40 / 144, 60 / 192, 56 / 144)) > 0.9
    assert check.stayed((x / 192, 90 / 144, (x + 20) / 192, 110 / 144)) < 0.3


@pytest.mark.slow
def test_a_pile_its_ground_showing_at_one_look_starts_on_time():
    """The pile put down at 15 s, named on every pass from 16 s; at 26 s one look sees the ground under most of it
    (a passer-by in the ground's colours the vehicle model did not name, or a shadow that makes a spill read as its
    ground). That look said what differs under the pile had not differed there: moved, and nothing started until the
    look was 8 s old (35 s here; a spill held 4 s on ``make eval --draw 33``'s ``x-campus-yard-7``). A look whose
    picture of the place was moving cannot say whether the pile stayed."""
    x1, y1, x2, y2 = PILE_BOX
    events = _given_detections({"road": ROAD_ZONE}, lambda t: [PILE_BOX] * (16 <= t < 45),
                               vehicles_at=lambda t: [sv.Detections.empty()],
                               bare_at=lambda t: [(x1, y1, x2 - 10, y2)] * (t == 26))
    got = [(t, m["state"], m["end_reason"], m["attributes"]["needs_review"]) for t, m in events]
    assert [g[1:] for g in got] == [("start", None, False), ("end", "cleared", False)], got
    assert got[0][0] <= 30, got


@pytest.mark.slow
def test_a_dark_car_crawling_along_the_road_unnamed_is_no_pile():
    """A small dark car crawls along the road from 10 s, 4 px a second (its length in 10 s), the detectors run at every
    second (as on the real dual carriageway, whose traffic moves the change gate at every frame); the vehicle model
    never names it, the litter model calls it garbage (0.6) on every pass. Each box overlaps the one before, so one
    clock followed it, and the left-object check's short-term background, catching up with its dark body, saw still,
    changed ground under it: a garbage incident was dispatched at 20 s (as the backbone from COCO did on the swayed
    real dual carriageway, ``models/litter/HISTORY.md``). What is left stays where it was left: all of what differs
    under a pile differed at each look of the 8 s before, little of what differs under the car. Held for review."""
    def car(t):
        return (300 + 4 * (t - 10), 355, 340 + 4 * (t - 10), 375)
    crawling = lambda t: [car(t)] * (10 <= t < 40)  # noqa: E731
    events = _given_detections({"road": ROAD_ZONE}, crawling, vehicles_at=lambda t: [sv.Detections.empty()],
                               drawn_at=crawling, pile_s=(70, 70), rules={"change_gate": 0})
    dispatched = [(t, m["state"]) for t, m in events if not m["attributes"]["needs_review"]]
    assert dispatched == [], events


@pytest.mark.slow
def test_a_pile_first_seen_in_part_and_named_in_shifting_boxes_starts_on_time():
    """A pile put down at 15 s: the litter model names the bag in the hand that puts it down (the pass at 12 s, above
    it), then the pile's left half (20 s), then the whole of it in boxes a few pixels off each other. Its clock begins
    on the bag. What differs under the boxes at its persistence differed at each look of the 8 s before (the pile's
    ground, however the boxes move over it): dispatched by its persistence after it was put down and the pass
    spacing, as before the left-object check asked how long the ground under a box had differed. (Boxes asked to be
    where the clock's first, or its sighting of 8 s before, was: the clock that began on the bag went for review, as
    on ``make eval --draw 30``'s ``x-campus-road-3``; a spill the model named by one part, then another, was
    missed.)"""
    def boxes_at(t):
        if 12 <= t < 15:
            return [(340, 325, 372, 352)]
        if not 15 <= t < 45:
            return []
        if t < 24:
            return [(350, 345, 375, 375)]
        d = (t % 3) * 2 - 2
        return [(350 + d, 345 - d, 400 + d, 375 + d)]
    events = _given_detections({"road": ROAD_ZONE}, boxes_at, vehicles_at=lambda t: [sv.Detections.empty()])
    got = [(t, m["state"], m["end_reason"], m["attributes"]["needs_review"]) for t, m in events]
    assert [g[1:] for g in got] == [("start", None, False), ("end", "cleared", False)], got
    assert got[0][0] <= 30, got


@pytest.mark.slow
def test_a_small_pile_seen_by_a_camera_knocked_as_it_was_first_named_starts_on_time():
    """The campus camera knocked 3 % across and 1.5 % up (``make eval``'s knock) 2 s after a pile narrower than that
    was put down, at the pass the detector first named it (the knock moved the change gate). Until the alignment
    follows the knock (its hold) the left-object check takes the move back as a sway, and the rule's clocks are in
    the picture as it was; from the knock's second look (``Alignment.knocked``) the litter model's box, in the moved
    picture, is taken back with it. Before, the box lay off the check's still pixels: a clock unconfirmed, and
    another once the knock was followed, started at 26 s, not by the pile's persistence from its first look or
    the one after (22-23 s; ``x-campus-yard-7`` on draw 33: 6 s late, ``models/litter/HISTORY.md``)."""
    m, (dx, dy) = 24, (23, -9)  # what the camera shows moves 23 px (3 % of 720) left and 9 px (1.7 % of 528) down
    pile_at, knocked_at, pile = (350, 345), 12, render(np.random.default_rng(5), "garbage", 20, 16, "heldout")
    zone = [[(x - m) / (W - 2 * m), (y - m) / (H - 2 * m)] for x, y in ((260, 300), (480, 300), (480, 420), (260, 420))]
    config = parse_config({"box": "b1", "cameras": [{"id": "gate", "url": "unused.mp4", "grid": "G-1", "zones": [
        {"id": "road", "types": ["garbage"], "persistence_s": 10, "clear_s": 5, "polygon": zone}]}]})
    detectors = {"vehicle": load_detector("ssd_mobilenet_v2_coco"), "litter": load_detector("litter_yolov8n_320")}
    pipeline = CameraPipeline(config, config.cameras[0], detectors)
    t0, starts = 1_767_225_600.0, []
    for t, frame in enumerate(campus_frames(step=10)[:40]):
        frame = frame.copy()
        if t >= 10:
            composite(frame, pile, *pile_at)
        ox, oy = (m + dx, m + dy) if t >= knocked_at else (m, m)
        view = np.ascontiguousarray(frame[oy:H - 2 * m + oy, ox:W - 2 * m + ox])
        passes = pipeline.plan(t0 + t, view)
        # the litter model names the pile where the picture it is shown has it: moved, or moved back once followed
        sx, sy = (round(v * n) for v, n in zip(pipeline.alignment.shift, (W - 2 * m, H - 2 * m)))
        x, y = pile_at[0] - ox - sx, pile_at[1] - oy - sy
        litter = [_litter_at(*[(x - rx, y - ry, x + 20 - rx, y + 16 - ry)] * (t >= 10 and rx <= x and x + 20 <= rx2
                                                                          and ry <= y and y + 16 <= ry2))
                  for rx, ry, rx2, ry2 in pipeline._litter_regions]
        vehicles = run_passes(detectors, [p for p in passes if p[0] == "vehicle"], min_scores(config.detection))
        starts += [(t, o.message) for o in pipeline.observe(t0 + t, view, vehicles + litter if passes else [])
                   if o.message["type"] == "garbage" and o.message["state"] == "start"]
    assert pipeline.alignment.shift[0] == pytest.approx(-dx / (W - 2 * m), abs=0.006)  # the knock was followed
    assert [not message["attributes"]["needs_review"] for _, message in starts] == [True], starts
    assert starts[0][0] <= 23, starts


def swayed(frame: np.ndarray, t: int, pixels: float = 5.0) -> np.ndarray:
    """The frame as a camera swaying on its pole shows it at second ``t``: moved up to ``pixels``."""
    dx, dy = pixels * np.sin(2 * np.pi * t / 3.1), pixels * np.cos(2 * np.pi * t / 4.3)
    return cv2.warpAffine(frame, np.float32([[1, 0, dx], [0, 1, dy]]), frame.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)


@pytest.mark.slow
def test_a_pile_seen_by_a_swaying_camera_is_still_and_nothing_else_is():
    """The campus camera swaying by up to 5 pixels (0.7 % of its width): the check's picture is moved back
    onto its background. Before, the pile's ground never read as still (its median share was 0.0), so
    no detection over it was confirmed and its incident only went for review."""
    frames = campus_frames(step=10)  # one frame a second
    check = LeftObject()
    layer = render(np.random.default_rng(5), "garbage", 50, 36, "heldout")
    fractions, static = [], None
    for t, frame in enumerate(frames[:40]):
        frame = frame.copy()
        if t >= 10:
            px = composite(frame, layer, 150, 205)
            box = (px[0] / 768, px[1] / 576, px[2] / 768, px[3] / 576)
        static = check.observe(float(t), swayed(frame, t))
        if t >= 10:
            fractions.append(covered(static, box))
    assert np.median(fractions[10:]) > 0.5 and np.percentile(fractions[10:], 25) >= CONFIRM_COVER, fractions
    static[int(0.3 * static.shape[0]):int(0.5 * static.shape[0]), int(0.18 * static.shape[1]):int(0.3 * static.shape[1])] = 0
    assert static.mean() < 0.01  # the sway itself (every edge moving) is no static foreground
    assert check.scene == 1  # nor a new scene to learn


@pytest.mark.slow
def test_the_strip_a_knocked_camera_no_longer_shows_is_not_new_ground(tmp_path):
    """The campus camera knocked 4 % at 10 s: once its picture is moved back (edge/alignment.py) the
    strip it no longer shows, on the left, is black, still and unlike the ground there before. With
    the left-object check alone raising incidents (``either``), a zone along that edge got one."""
    config = parse_config({"box": "b1", "detection": {"left_object": "either"}, "cameras": [
        {"id": "gate", "url": "unused.mp4", "grid": "G-1", "zones": [
            {"id": "west-edge", "types": ["garbage"], "persistence_s": 10, "clear_s": 5,
             "polygon": [[0.0, 0.45], [0.12, 0.45], [0.12, 0.95], [0.0, 0.95]]}]}]})
    detectors = {"vehicle": load_detector("ssd_mobilenet_v2_coco"), "litter": load_detector("litter_yolov8n_320")}
    pipeline = CameraPipeline(config, config.cameras[0], detectors)
    t0, messages = 1_767_225_600.0, []
    for t, frame in enumerate(campus_frames(step=10)[:45]):
        dx = 30 if t >= 10 else 0  # what the camera shows moves 30 px (4 % of 736) left
        view = np.ascontiguousarray(frame[16:-16, 16 + dx:frame.shape[1] - 16 - 30 + dx])
        messages += [o.message for o in pipeline.analyse(t0 + t, view)]
    assert pipeline.alignment.shift[0] == pytest.approx(-30 / 706, abs=0.006)
    assert [m for m in messages if m["type"] == "garbage"] == []
