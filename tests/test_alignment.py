"""A knocked camera's shift, on real frames of the campus clip (people walking through them) seen
through a window that moves as the camera would: knocked, swaying, turned away, in other light."""

import itertools
import math

import cv2
import numpy as np
import pytest

from edge.alignment import HOLD_S, Alignment
from edge.source import open_frames

from .conftest import CLIP

M = 48  # pixels of margin around the window: the most a test moves the camera


@pytest.fixture(scope="module")
def frames():
    return [image for _, image in open_frames(str(CLIP), sampling="rate")][:60]  # one a second


def window(frame: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """What a camera whose view moved ``dx``, ``dy`` pixels right and down shows (so what it
    sees moves the other way in its picture)."""
    h, w = frame.shape[:2]
    x, y = M + round(dx), M + round(dy)
    return np.ascontiguousarray(frame[y:y + h - 2 * M, x:x + w - 2 * M])


def run(alignment: Alignment, pictures: list[np.ndarray], start: float = 0.0) -> list[bool]:
    return [alignment.look(start + t, p) for t, p in enumerate(pictures)]


def test_a_knocked_camera_is_followed_within_the_hold_and_its_picture_moved_back(frames):
    a = Alignment()
    still = [window(f, 0, 0) for f in frames[:10]]
    knocked = [window(f, 30, -20) for f in frames[10:30]]  # 4.4 % of 672 across, 4.2 % of 480 up
    changed = run(a, still + knocked)
    assert not any(changed[:10])
    (when,) = [t for t, c in enumerate(changed) if c]
    assert 10 + HOLD_S - 1 <= when <= 10 + HOLD_S + 2
    w, h = still[0].shape[1], still[0].shape[0]
    assert a.shift == pytest.approx((-30 / w, 20 / h), abs=0.005)  # what it shows moved left and down
    before, after = still[-1].astype(int), a.aligned(knocked[-1]).astype(int)
    inner = (slice(40, -40), slice(50, -50))
    moved_back = np.abs(after[inner] - before[inner]).mean()
    as_knocked = np.abs(knocked[-1].astype(int)[inner] - before[inner]).mean()
    assert moved_back < as_knocked / 2, (moved_back, as_knocked)


def test_a_knocked_camera_that_rolled_is_followed_and_its_picture_turned_back(frames):
    """Knocked, it turned 2 degrees about the middle of its picture and moved 10 px: phase correlation
    alone reads the turn as a move that changes from look to look; the turn is measured too."""
    a = Alignment()

    def rolled(frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        turn = cv2.getRotationMatrix2D((w / 2, h / 2), -2.0, 1.0)
        turn[0, 2] -= 10  # what it shows moves 10 px left
        return window(cv2.warpAffine(frame, turn, (w, h)), 0, 0)

    still = [window(f, 0, 0) for f in frames[:10]]
    knocked = [rolled(f) for f in frames[10:30]]
    changed = run(a, still + knocked)
    assert not any(changed[:10]) and sum(changed) == 1
    assert a.angle == pytest.approx(2.0, abs=0.2) and a.shift[0] == pytest.approx(-10 / 672, abs=0.004)
    inner = (slice(40, -40), slice(50, -50))
    before = window(frames[29], 0, 0).astype(int)[inner]  # what it showed of the same moment, unknocked
    after, as_knocked = a.aligned(knocked[-1]).astype(int)[inner], knocked[-1].astype(int)[inner]
    assert np.abs(after - before).mean() < np.abs(as_knocked - before).mean() / 3


def test_a_camera_re_aimed_near_enough_is_as_it_came_up(frames):
    """Re-aimed by hand to 4 px (0.6 %) of where it was: no shift left, so its ``shifted`` fault ends."""
    a = Alignment()
    run(a, [window(f, 0, 0) for f in frames[:5]] + [window(f, -25, 0) for f in frames[5:20]])
    assert a.shift[0] > 0.03
    run(a, [window(f, 4, -2) for f in frames[20:35]], start=20)
    assert a.shift == (0.0, 0.0)


@pytest.mark.parametrize("share", [0.005, 0.01, 0.02])
def test_a_camera_swaying_in_wind_is_not_followed(frames, share):
    """To and fro by up to ``share`` of the picture each way, periods 3.1 s across and 4.3 s up and
    down (the parking suite's sway): the stationary and left-object checks handle that themselves."""
    a = Alignment()
    w, h = 672, 480
    sway = [window(f, share * w * math.sin(2 * math.pi * t / 3.1), share * h * math.sin(2 * math.pi * t / 4.3))
            for t, f in enumerate(frames)]
    assert not any(run(a, sway)) and a.shift == (0.0, 0.0)


def test_a_knocked_camera_seen_every_2_s_is_followed_within_the_hold(frames):
    a = Alignment()
    looks = [window(f, 0, 0) for f in frames[:10:2]] + [window(f, 30, -20) for f in frames[10:40:2]]
    changed, knocked = zip(*[(a.look(2.0 * k, picture), a.knocked) for k, picture in enumerate(looks)])
    (when,) = [k for k, c in enumerate(changed) if c]
    assert when == 5 + 2  # the third look after the knock, 4 s on
    assert [k for k, c in enumerate(knocked) if c] == [5 + 1]  # knocked, not followed yet: the second look


@pytest.mark.parametrize("share", [0.005, 0.01, 0.02])
def test_a_camera_swaying_in_wind_is_never_taken_for_knocked(frames, share):
    """The sway above: no look of it is a knock not followed yet, by which the left-object check's sway would move
    the detector's boxes (``edge/pipeline.py``)."""
    a = Alignment()
    w, h = 672, 480
    knocked = []
    for t, f in enumerate(frames):
        a.look(float(t), window(f, share * w * math.sin(2 * math.pi * t / 3.1), share * h * math.sin(2 * math.pi * t / 4.3)))
        knocked.append(a.knocked)
    assert not any(knocked)


def test_other_light_and_noise_are_not_a_move(frames):
    rng = np.random.default_rng(3)
    still = [window(f, 0, 0) for f in frames[:10]]
    night = [np.clip(window(f, 0, 0) * 0.4 + rng.normal(0, 20, still[0].shape), 0, 255).astype(np.uint8)
             for f in frames[10:40]]
    a = Alignment()
    assert not any(run(a, still + night)) and a.shift == (0.0, 0.0)


def test_a_camera_turned_to_another_view_is_not_followed(frames):
    a = Alignment()
    turned = [np.ascontiguousarray(window(f, 0, 0)[::-1, ::-1]) for f in frames[10:30]]
    assert not any(run(a, [window(f, 0, 0) for f in frames[:10]] + turned)) and a.shift == (0.0, 0.0)


def test_a_camera_turned_by_a_fifth_is_moved_not_followed_until_re_aimed(frames):
    """Looks that agree on a move beyond ``MAX_SHIFT`` from the first picture: the zones watch other
    ground. Not followed, but ``moved`` (the ``moved`` fault; the picture check, which learns the view
    as it goes, cannot see a camera turned while its box was down); re-aimed, it is not."""
    a = Alignment()
    part = lambda frame, dx: np.ascontiguousarray(frame[100:400, 150 + dx:550 + dx])  # noqa: E731
    run(a, [part(f, 0) for f in frames[:5]])
    assert not any(run(a, [part(f, 80) for f in frames[5:20]], start=5))  # 80 of 400 pixels: 20 %
    assert a.moved and a.shift == (0.0, 0.0)
    run(a, [part(f, 2) for f in frames[20:35]], start=20)
    assert not a.moved and a.shift == (0.0, 0.0)


def test_a_covered_lens_at_start_is_not_the_view_to_line_up_on(frames):
    a = Alignment()
    black = [np.full_like(window(frames[0], 0, 0), 3)] * 5
    assert not any(run(a, black + [window(f, 0, 0) for f in frames[5:15]]))
    run(a, [window(f, 20, 0) for f in frames[15:30]], start=15)
    assert a.shift[0] == pytest.approx(-20 / 672, abs=0.005)


def test_an_unmoved_picture_is_handed_back_as_is(frames):
    picture = window(frames[0], 0, 0)
    assert Alignment().aligned(picture) is picture


@pytest.mark.slow
@pytest.mark.parametrize("share", [0.01, 0.0125, 0.015])
def test_a_camera_swaying_in_wind_seen_every_2_s_is_not_followed_whatever_its_phase(frames, share):
    """Seen at key frames 2 s apart, a sway (the periods above, moved by a fraction of a pixel, from
    every pair of starting phases) can show three looks on one side that agree for the hold; it has
    passed through that place before and left it, as a knocked camera does not. Two of the 64 starting
    phases of the 1.25 % sway were taken for a knock before (found on the cross clips swayed by 1 %)."""
    w, h = 672, 480

    def at(frame: np.ndarray, dx: float, dy: float) -> np.ndarray:
        move = np.float32([[1, 0, -(M + dx)], [0, 1, -(M + dy)]])
        return cv2.warpAffine(frame, move, (frame.shape[1] - 2 * M, frame.shape[0] - 2 * M))

    followed = []
    for px, py in itertools.product(range(8), range(8)):
        a = Alignment()
        for k in range(30):
            t = 2.0 * k
            dx = share * w * math.sin(2 * math.pi * t / 3.1 + px * math.pi / 4)
            dy = share * h * math.sin(2 * math.pi * t / 4.3 + py * math.pi / 4)
            if a.look(t, at(frames[k * 2 % len(frames)], dx, dy)):
                followed.append((px, py, t, a.shift))
    assert followed == []
