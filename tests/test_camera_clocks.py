"""A camera's own clock gone wrong, served over real RTSP (the test server's ``--clock``: its frames' RTP times run
slow, stand still or step) and read through ``open_frames``, its times put on the box's clock by ``anchor`` as the
box's reader does: what the README promises of each."""

import re
import subprocess
import threading
import time

import pytest

from edge.source import CLOCK_AHEAD_S, CLOCK_BEHIND_S, SourceError, anchor, open_frames
from xueliang import services

CLOCKS = {
    "slow": {"rate": 0.25},  # a clock at quarter speed: one 1 % slow falls as far behind only after 10 minutes
    "stuck": {"stall_at_s": 3},
    "ahead": {"step_at_s": 3, "step_s": 3600},  # the camera's NTP sets its clock an hour on
    "back": {"step_at_s": 5, "step_s": -4},  # ... or 4 s back
}


@pytest.fixture(scope="module")
def cameras(tmp_path_factory):
    """The test server serving a 30 s clip (key frames a second apart) under each of ``CLOCKS``; each mount's clock
    counts from its first client's connection."""
    folder = tmp_path_factory.mktemp("clocks")
    clip = folder / "clip.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t",
                    "30", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", "10", "-bf", "0", str(clip)],
                   check=True, timeout=60)
    with services.rtsp_server(dict.fromkeys(CLOCKS, clip), folder, clocks=CLOCKS) as server:
        yield server


def url(server, name: str) -> str:
    return f"rtsp://127.0.0.1:{server.port}/{name}"


def on_the_boxs_clock(url: str, seconds: float, spacing: float = 1.0, **read) -> list[tuple[float, float, float]]:
    """``(box time, stream time, box's clock)`` of each frame read from ``url`` for ``seconds`` from its first; a read
    that gives no packet for 5 s ends (``bound_reads``), as the box's of a camera found hung."""
    base, last, frames, began = None, 0.0, [], None
    for rel, _ in open_frames(url, bound_reads=True, **read):
        now = time.monotonic()
        began = began or now
        base = anchor(base, rel, now, live=True, last=last, spacing=spacing)
        last = base + rel
        frames.append((last, rel, now))
        if now - began > seconds:
            return frames
    raise AssertionError(f"{url}: the read ended after {len(frames)} frames")


@pytest.mark.slow
def test_a_camera_clock_that_runs_slow_is_pulled_back_to_the_boxs(cameras):
    """Its frames' times fall behind the box's by three quarters of all the time it is read: from ``spacing`` (1 s
    here) and ``CLOCK_BEHIND_S`` behind they go on from now, so its incidents stay within that of the box's clock."""
    frames = on_the_boxs_clock(url(cameras, "slow"), 11.0, sampling="rate", interval_s=0.1)
    bound = 1.0 + CLOCK_BEHIND_S + 0.6  # (it falls 0.3 s further behind at each sampled frame)
    (_, rel0, now0), (_, rel, now) = frames[0], frames[-1]
    assert now - now0 - (rel - rel0) > bound, frames  # its clock ran slow: left alone, further behind than that
    behind = [now - at for at, _, now in frames]
    assert max(behind) <= bound and min(behind) >= -CLOCK_AHEAD_S, behind
    assert all(b[0] > a[0] for a, b in zip(frames, frames[1:])), frames


@pytest.mark.slow
def test_a_camera_clock_that_stands_still_ends_the_read_saying_so(cameras):
    """Frames go on coming, all stamped with one time from 3 s on: none is due to the sampler, nothing analysed. The
    read ends once the time has stood still for ``read_timeout_s``, saying the camera's clock is stuck."""
    times, ended = [], []

    def read():
        try:
            for t, _ in open_frames(url(cameras, "stuck"), read_timeout_s=2.0):
                times.append(t)
        except SourceError as exc:
            ended.append(str(exc))

    reader = threading.Thread(target=read, daemon=True)  # (left alone, the read went on for good, giving nothing)
    reader.start()
    reader.join(10.0)
    assert ended and re.search(r"/stuck: its frames' time has stood still for 2 s: the source's clock \(its "
                               r"stream's timestamps\) is stuck; read again", ended[0]), (ended, times)
    assert times and max(times) <= 3.0, times


@pytest.mark.slow
def test_a_camera_clock_stepped_an_hour_ahead_goes_on_from_now(cameras):
    """Its NTP sets the camera's clock an hour on mid-stream: its frames go on from now, never more than
    ``CLOCK_AHEAD_S`` ahead of the box's clock (the gateway refuses an incident from its future) nor back."""
    frames = on_the_boxs_clock(url(cameras, "ahead"), 4.0)
    assert frames[-1][1] > 3600, frames  # the step came
    # behind its arrival by the jitter of its coming at most (25 ms under make test's load: 0.01 s failed there)
    assert all(now - 1.0 <= at <= now + CLOCK_AHEAD_S for at, _, now in frames), frames
    assert all(b[0] > a[0] for a, b in zip(frames, frames[1:])), frames


@pytest.mark.slow
def test_a_camera_clock_stepped_back_goes_on_from_its_last_frame(cameras):
    """Set 4 s back mid-stream: the stream time never goes back (trackers and rules need that) and goes on from its
    last frame, a key frame a second analysed on but the one just after the last (not due to the sampler), not 4 s
    of nothing while the stream caught up with where it had been."""
    frames = on_the_boxs_clock(url(cameras, "back"), 6.0)
    assert "mount back: its clock set -4 s" in cameras.log_path.read_text()  # the step came, 3 s or so in
    gaps = [b[2] - a[2] for a, b in zip(frames, frames[1:])]
    assert all(b[1] > a[1] for a, b in zip(frames, frames[1:])) and max(gaps) <= 2.5, frames
    assert all(b[0] > a[0] for a, b in zip(frames, frames[1:])), frames
