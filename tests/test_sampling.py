"""Sampling that fits the rules: key frames only while they come often enough, H.265 too."""

import logging
import subprocess
import time

import pytest

from edge import source
from edge.config import Camera, Rules
from edge.source import CLOCK_AHEAD_S, CLOCK_BEHIND_S, anchor, keyframe_gap_limit, open_camera, open_frames
from xueliang import services

from .conftest import CLIP

KERB = {"id": "kerb", "types": ["illegal_parking"], "polygon": [[0.8, 0.03], [0.97, 0.03], [0.97, 0.22]]}


@pytest.fixture(scope="module")
def hevc_gop3(tmp_path_factory):
    """The campus clip's first 20 s as H.265 with a key frame every 3 s (made here with ffmpeg), at 320x240: its
    tests read frames' times, and at 768x576 its encode took the quick loop 4-20 s."""
    out = tmp_path_factory.mktemp("hevc") / "campus-hevc-gop3.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(CLIP), "-t", "20", "-vf", "scale=320:240",
                    "-c:v", "libx265",
                    "-preset", "ultrafast", "-x265-params", "keyint=30:min-keyint=30:scenecut=0:log-level=error",
                    "-tag:v", "hvc1", "-an", str(out)], check=True, timeout=120)
    return out


@pytest.mark.parametrize("dwell_s, gap_s, limit", [(180, 10, 5.0), (30, 10, 5.0), (9, 10, 3.0), (180, 4, 2.0)])
def test_the_tolerated_key_frame_gap_comes_from_the_rules(dwell_s, gap_s, limit):
    camera = Camera(id="c", url="x", grid="g", zones=[{**KERB, "dwell_s": dwell_s}])
    assert keyframe_gap_limit(camera, Rules(gap_s=gap_s)) == limit
    assert keyframe_gap_limit(camera.model_copy(update={"max_keyframe_gap_s": 1.5}), Rules(gap_s=gap_s)) == 1.5


def test_no_zones_gets_the_documented_default():
    assert keyframe_gap_limit(Camera(id="c", url="x", grid="g"), Rules()) == 6.0


def test_hevc_key_frames_3s_apart_stay_on_the_key_frame_path(hevc_gop3):
    """Key frames within the rules' gap: key frames only, from the first frame."""
    times = [round(t, 1) for t, _ in open_frames(str(hevc_gop3), sampling="auto", max_keyframe_gap_s=5.0)]
    assert times == [0.0, 3.0, 6.0, 9.0, 12.0, 15.0, 18.0]
    # a rule that tolerates less than 3 s: every second from the first frame, decoded again from the key
    # frame once the gap is past
    times = [round(t, 1) for t, _ in open_frames(str(hevc_gop3), sampling="auto", max_keyframe_gap_s=2.5)]
    assert times == [float(s) for s in range(20)], times


def test_auto_holds_a_bounded_number_of_packets_between_key_frames(hevc_gop3, monkeypatch):
    """Packets whose time cannot be read would be held until the next key frame, however far: past
    ``MAX_HELD_PACKETS`` the reader decodes every frame from the last key frame instead."""
    monkeypatch.setattr(source, "MAX_HELD_PACKETS", 5)
    times = [round(t, 1) for t, _ in open_frames(str(hevc_gop3), sampling="auto", max_keyframe_gap_s=5.0)]
    assert times == [float(s) for s in range(20)], times


@pytest.mark.slow
def test_a_file_with_the_encoders_default_gop_is_sampled_from_its_start(tmp_path):
    """x264's defaults (a key frame every 250 frames, here 25 s; B-frames): ``auto`` saw no second key frame
    within the rules' gap, and skipping to key frames from the first frame analysed the file at 0 s and
    25 s only (with B-frames, nothing after the fallback either). A composed clip or an NVR export is
    often so. Now every second from the first frame to the end: once the rules' gap (3.3 s) has passed
    without a key frame, the reader decodes the file again from its key frame."""
    clip = tmp_path / "gop250.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(CLIP), "-t", "30", "-r", "10", "-c:v", "libx264",
                    "-preset", "veryfast", "-g", "250", "-bf", "2", "-threads", "1", "-an", str(clip)],
                   check=True, timeout=120)
    times = [round(t, 1) for t, _ in open_frames(str(clip), sampling="auto", max_keyframe_gap_s=3.3)]
    assert times == [float(s) for s in range(30)], times


@pytest.mark.slow
def test_hevc_camera_over_rtsp_is_read_on_key_frames(hevc_gop3, tmp_path):
    with services.rtsp_server({"hevc": hevc_gop3}, tmp_path) as server:
        started = time.monotonic()
        times = []
        for t, image in open_frames(f"rtsp://127.0.0.1:{server.port}/hevc", sampling="keyframes"):
            assert image.shape == (240, 320, 3)
            times.append(t)
            if len(times) == 4:
                break
    gaps = [b - a for a, b in zip(times[1:], times[2:])]  # the first frame of an RTSP stream comes untimed
    assert all(2.5 <= g <= 3.5 for g in gaps), times
    assert time.monotonic() - started < 20


@pytest.mark.slow
def test_an_rtsps_camera_written_in_capitals_is_read_over_tls(tmp_path):
    """The edge config takes rtsp:// and rtsps:// in any case, as FFmpeg reads them (``RTSP://`` it knows as no
    protocol: the camera failed at run time), and reads rtsps:// as the live RTSP stream it is (the test server
    serving TLS with deploy/make_certs.sh's certificate)."""
    certs = tmp_path / "certs"
    subprocess.run(["bash", str(services.DEPLOY / "make_certs.sh"), str(certs)], check=True, timeout=60)
    tls = (certs / "server.crt", certs / "server.key")
    with services.rtsp_server({"campus-gate": CLIP}, tmp_path, tls=tls) as server:
        camera = Camera(id="c", url=f"RTSPS://127.0.0.1:{server.port}/campus-gate", grid="g")
        frames = open_camera(camera, Rules())
        times = [next(frames)[0], next(frames)[0]]
        frames.close()
    assert camera.url.startswith("rtsps://") and times[0] == 0.0 and 1.0 <= times[1] <= 5.0, times


@pytest.fixture(scope="module")
def clock_steps(tmp_path_factory):
    """MPEG-TS clips of the campus footage whose clock steps back: 'restart' is two 8 s parts that
    each start at 0 (a camera's clock reset, a looped file); 'jump' goes 8 s, then an hour ahead
    for 8 s, then back to 16 s (a camera's NTP correction)."""
    folder = tmp_path_factory.mktemp("clock")

    def part(name, skip, offset):
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-ss", str(skip), "-t", "8", "-i", str(CLIP),
                        "-vf", "scale=320:240", "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-an",
                        "-output_ts_offset", str(offset), "-f", "mpegts", str(folder / name)], check=True, timeout=60)
        return (folder / name).read_bytes()

    (folder / "restart.ts").write_bytes(part("a.ts", 0, 0) + part("b.ts", 8, 0))
    (folder / "jump.ts").write_bytes(part("a.ts", 0, 0) + part("c.ts", 8, 3600) + part("d.ts", 16, 16))
    return folder


@pytest.mark.parametrize("clip, seconds", [("restart.ts", 16), ("jump.ts", 24)])
@pytest.mark.parametrize("sampling", ["rate", "keyframes"])
def test_a_clock_that_steps_back_goes_on_and_every_part_is_analysed(clock_steps, clip, seconds, sampling):
    times = [t for t, _ in open_frames(str(clock_steps / clip), sampling=sampling)]
    assert all(b > a for a, b in zip(times, times[1:])), times  # never back: trackers and rules need that
    assert len(times) >= seconds - 2, times  # about one a second (key frames every second), every part of it


def test_a_live_cameras_clock_that_jumps_ahead_keeps_the_box_on_its_own_clock(clock_steps):
    """Played live (one frame a second of the box's clock), the hour-ahead part neither moves the
    box's times an hour ahead (the gateway refuses those) nor makes them go back."""
    base, last, times = None, 0.0, []
    for i, (rel, _) in enumerate(open_frames(str(clock_steps / "jump.ts"), sampling="rate")):
        now = 1.7e9 + i
        base = anchor(base, rel, now, live=True, last=last)
        last = base + rel
        times.append(last)
        assert now - 2 <= last <= now + CLOCK_AHEAD_S, (i, rel, last - now)
    assert all(b > a for a, b in zip(times, times[1:]))


def test_a_live_cameras_clock_that_runs_slow_keeps_the_box_on_its_own_clock(tmp_path):
    """A camera whose clock runs at half speed (its frames stamped 0.5 s apart, sent a second apart): played live,
    its times fell behind the box's by half of all the time it was read (an hour of it, half an hour), so its
    incidents' times were long past and a car's dwell was counted at half its length. They stay within the stretch
    ``auto`` may decode again at once (``frame_spacing``, 6 s here) and ``CLOCK_BEHIND_S`` of the box's clock."""
    clip = tmp_path / "slow.ts"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t",
                    "60", "-vf", "setpts=0.5*PTS", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", "10", "-f",
                    "mpegts", str(clip)], check=True, timeout=60)
    base, last, times = None, 0.0, []
    for rel, _ in open_frames(str(clip), sampling="rate"):  # one a second of its clock: two of the box's
        now = 1.7e9 + 2 * rel
        base = anchor(base, rel, now, live=True, last=last, spacing=6.0)
        last = base + rel
        times.append(last)
        assert now - 6.0 - CLOCK_BEHIND_S <= last <= now, (rel, last - now)
    assert len(times) >= 29 and all(b > a for a, b in zip(times, times[1:])), times


@pytest.mark.slow
@pytest.mark.parametrize("sampling", ["auto", "rate"])
def test_a_live_stream_whose_clock_stands_still_ends_its_read_saying_so(tmp_path, sampling):
    """A live source (a pipe here, an RTSP camera alike) whose frames keep coming, stamped with one time from 2 s on:
    none was due to the sampler, so nothing was analysed, and the camera looked as if it sent nothing (offline, then
    lost as a read that hangs), however long its clock stood still. Its read ends once it has stood still for
    read_timeout_s, saying so."""
    import os

    pipe = tmp_path / "cam.ts"
    os.mkfifo(pipe)
    writer = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "quiet", "-y", "-re", "-f", "lavfi", "-t", "20",
                               "-i", "testsrc2=size=160x120:rate=10", "-vf",
                               "setpts='if(gte(N,20),20/10/TB,PTS)'", "-fps_mode", "passthrough", "-pix_fmt", "yuv420p",
                               "-c:v", "libx264", "-g", "10", "-bf", "0", "-f", "mpegts", str(pipe)])
    times = []
    try:
        with pytest.raises(source.SourceError, match=r"cam.ts: its frames' time has stood still for 2 s: the "
                                                     r"source's clock \(its stream's timestamps\) is stuck"):
            for t, _ in open_frames(str(pipe), read_timeout_s=2.0, sampling=sampling):
                times.append(t)
    finally:
        writer.kill()
        writer.wait()
    assert times and max(times) < 2.5, times


@pytest.mark.parametrize("sampling", ["auto", "keyframes", "rate"])
def test_a_raw_h264_stream_without_timestamps_is_counted_at_its_frame_rate(tmp_path, sampling):
    """A raw H.264 stream (a file path, or a feed saved as .h264) carries no time: it gave its first
    frame and then nothing, the camera analysed once."""
    raw = tmp_path / "campus.h264"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-t", "8", "-i", str(CLIP), "-vf", "scale=320:240",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-an", "-f", "h264", str(raw)],
                   check=True, timeout=60)
    times = [round(t, 1) for t, _ in open_frames(str(raw), sampling=sampling)]
    assert times == [float(s) for s in range(8)]


@pytest.mark.slow
@pytest.mark.parametrize("keys, expected", [
    # an encoder's scene cuts put key frames close together now and then in a long GOP (x264's defaults at
    # 25 fps: 0, 2.6, 9.7, 15.2 s); each second from the last close one on
    ("0,2.5,25", [0.0, 2.5] + [s + 0.5 for s in range(3, 30)]),
    # a camera whose key frames come further apart after a while (re-configured while running): with
    # B-frames, going back to every frame there handed out key frames only until the next one (25 s)
    ("0,2,4,6,8,25", [0.0, 2.0, 4.0, 6.0] + [float(s) for s in range(8, 30)]),
])
def test_key_frames_that_stop_coming_within_the_gap_do_not_lose_the_frames_between(tmp_path, keys, expected):
    clip = tmp_path / "keys.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(CLIP), "-t", "30", "-r", "10", "-c:v", "libx264",
                    "-preset", "veryfast", "-g", "250", "-sc_threshold", "0", "-force_key_frames", keys,
                    "-bf", "2", "-threads", "1", "-an", str(clip)], check=True, timeout=120)
    times = [round(t, 1) for t, _ in open_frames(str(clip), sampling="auto", max_keyframe_gap_s=3.3)]
    assert times == expected, times


@pytest.mark.slow
def test_a_camera_whose_key_frames_stop_coming_is_read_every_second_over_rtsp(tmp_path, caplog):
    """The same on a live stream: key frames every 2 s for 8 s, then none for 12 s (the file loops). The line that
    says so hides the camera's password (it was logged whole, at every connection of a camera with a long GOP)."""
    clip = tmp_path / "keys.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(CLIP), "-t", "20", "-r", "10", "-c:v", "libx264",
                    "-preset", "veryfast", "-g", "250", "-sc_threshold", "0", "-force_key_frames", "0,2,4,6,8",
                    "-bf", "2", "-threads", "1", "-an", str(clip)], check=True, timeout=120)
    caplog.set_level(logging.INFO, logger="edge.source")
    with services.rtsp_server({"keys": clip}, tmp_path) as server:
        times = []
        for t, _ in open_frames(f"rtsp://admin:s3cret@127.0.0.1:{server.port}/keys", sampling="auto",
                                max_keyframe_gap_s=3.3):
            times.append(t)
            if len(times) == 16:
                break
    gaps = [b - a for a, b in zip(times[1:], times[2:])]  # the first frame of an RTSP stream comes untimed
    assert max(gaps) <= 2.2 and sum(g <= 1.1 for g in gaps) >= 8, times
    assert "rtsp://admin:***@127.0.0.1" in caplog.text and "no key frame within" in caplog.text, caplog.text
    assert "s3cret" not in caplog.text


@pytest.mark.slow
def test_a_clip_with_b_frames_served_over_rtsp_is_timed_in_the_order_it_is_shown(tmp_path):
    """x264's defaults put B-frames in (sent before the frames they come between): the test server stamped each
    frame with the time it sent it, so a camera read through it had frames 0.2, 0.1, 0.5, 0.4, 0.6, 0.3 s ...
    apart from the first (a long GOP's read on ``auto``: its 2nd frame 11.6 s after its 1st). Each comes 0.1 s on,
    to the hundredth: the times are the stream's stamps, and the server stamps a frame when it is made, as a camera
    does (stamped when sent, one it sent 25 ms late on a loaded machine came 0.125 s after the one before)."""
    clip = tmp_path / "bframes.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t",
                    "4", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", "10", "-threads", "1", str(clip)],
                   check=True, timeout=60)
    with services.rtsp_server({"bframes": clip}, tmp_path) as server:
        times = []
        for t, _ in open_frames(f"rtsp://127.0.0.1:{server.port}/bframes", sampling="rate", interval_s=0.05):
            times.append(round(t, 2))
            if len(times) == 16:
                break
    steps = [round(b - a, 2) for a, b in zip(times[1:], times[2:])]  # the first frame of an RTSP stream is untimed
    assert steps == [0.1] * 14, times


@pytest.mark.slow
def test_a_camera_that_starts_at_its_next_key_frame_10_s_away_is_read_with_its_default_timeouts(tmp_path,
                                                                                                 monkeypatch):
    """A camera (or a proxy before it) that starts each session at its next key frame, key frames 10 s apart (an
    H.264+ / smart-codec camera's long GOP): its open waited read_timeout_s (5 s) for a packet and was refused, read
    only where a try fell within 5 s of its next key frame. Its open now waits for it, with the camera's default
    timeouts; a session that sends nothing is still given up on, saying why."""
    clip = tmp_path / "gop250.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t",
                    "20", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", "250", "-keyint_min", "250", "-sc_threshold",
                    "0", str(clip)], check=True, timeout=60)
    with services.rtsp_server({"long": clip}, tmp_path) as server:
        time.sleep(1.0)  # past the key frame at 0 s: the next comes 10 s on (the test server starts clients at one)
        url = f"rtsp://admin:s3cret@127.0.0.1:{server.port}/long"
        began = time.monotonic()
        t, image = next(open_frames(url))
        assert image.shape == (120, 160, 3) and 5.0 < time.monotonic() - began < 11.0
        monkeypatch.setattr(source, "KEY_FRAME_WAIT_S", 2.0)  # (just past a key frame: the next is 10 s on)
        with pytest.raises(source.SourceError) as refused:
            next(open_frames(url, read_timeout_s=2.0))
        assert str(refused.value).startswith(
            f"cannot open rtsp://admin:***@127.0.0.1:{server.port}/long: no packet within 2 s of asking for the "
            "stream; a camera that starts it at its next key frame sends nothing until then: one whose key frames "
            "are further apart needs its read_timeout_s set above their interval"), refused.value


@pytest.mark.slow
@pytest.mark.parametrize("size, max_width, analysed", [
    ("5120x2880", 0, (2160, 3840)),  # 5K: 14.7 MP, analysed at 4K UHD's 8.3 MP
    ("1024x128", 64, (8, 64)),  # 4000x2 at 640's height had rounded to 0: every read failed, "Operation not supported"
])
def test_a_picture_is_analysed_at_most_at_4k_and_never_zero_high(tmp_path, size, max_width, analysed):
    clip = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"color=c=gray:s={size}:r=1:d=2",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(clip)], check=True, timeout=60)
    frames = [image.shape[:2] for _, image in open_frames(str(clip), max_width=max_width)]
    assert frames and set(frames) == {analysed}


@pytest.fixture(scope="module")
def phone_clips(tmp_path_factory):
    """The campus clip's first 2 s stored as it is, with a display matrix that turns it by 90, 180 or 270
    degrees, as a phone stores what it films in portrait or upside down (ffmpeg's ``rotate``, no re-encoding)."""
    folder = tmp_path_factory.mktemp("phone")
    for rotate in (90, 180, 270):
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-t", "2", "-i", str(CLIP), "-c", "copy", "-an",
                        "-metadata:s:v:0", f"rotate={rotate}", str(folder / f"turned{rotate}.mp4")],
                       check=True, timeout=60)
    return folder


@pytest.mark.parametrize("rotate", [90, 180, 270])
def test_a_clip_stored_on_its_side_is_analysed_upright(phone_clips, rotate):
    """Analysed as stored, a phone's portrait clip lay on its side: a zone drawn on the picture as seen lay on
    other ground, and the evidence was sideways. Upright is as FFmpeg's players show it."""
    import numpy as np

    clip = phone_clips / f"turned{rotate}.mp4"
    width, height = (576, 768) if rotate in (90, 270) else (768, 576)
    shown = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(clip), "-frames:v", "1", "-f", "rawvideo",
                            "-pix_fmt", "bgr24", "-"], capture_output=True, check=True, timeout=60).stdout
    shown = np.frombuffer(shown, np.uint8).reshape(height, width, 3)
    _, first = next(open_frames(str(clip)))
    assert first.shape == shown.shape and np.abs(first.astype(int) - shown).mean() < 1
    _, narrow = next(open_frames(str(clip), max_width=400))  # max_width is the width as seen
    assert narrow.shape[:2] == ((534, 400) if rotate in (90, 270) else (300, 400))


# VP9 at its fastest (-cpu-used 8): still one key frame in 60; its default took 1.5 s of the quick loop to encode
@pytest.mark.parametrize("codec, suffix", [(["libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"], "webm"),
                                           (["libsvtav1", "-preset", "12", "-svtav1-params", "keyint=-1"], "mkv")])
def test_a_vp9_or_av1_stream_whose_key_frames_stop_coming_loses_none_of_the_frames_between(tmp_path, codec, suffix):
    """VP9's decoder skips no frame, nor AV1's told to once it is open: on the key-frame path it handed out the
    frames between, which were not analysed and yet counted as seen, so decoding again from the key frame passed
    them over (0, 2.6, 3.6 ...: the seconds up to the gap were lost, at each connection of such a camera)."""
    clip = tmp_path / f"one-key.{suffix}"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10",
                    "-t", "6", "-c:v", *codec, "-g", "600", str(clip)], check=True, timeout=60)
    times = [round(t, 1) for t, _ in open_frames(str(clip), sampling="auto", max_keyframe_gap_s=2.5)]
    assert times == [float(s) for s in range(6)], times


@pytest.mark.parametrize("rotate, shown", [(0, (240, 427)), (90, (427, 240))])
def test_a_picture_of_non_square_pixels_is_analysed_as_wide_as_it_is_shown(tmp_path, rotate, shown):
    """An analogue encoder's D1 stream or an anamorphic one stores its picture narrower than it is shown (its
    pixels' aspect ratio, SAR 4:3 here): analysed as stored, its vehicles were three quarters as wide to the
    detector and in the evidence. Turned by a display matrix too, it is widened first, then turned, as players do."""
    import numpy as np

    stored, clip = tmp_path / "stored.mp4", tmp_path / "anamorphic.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10",
                    "-t", "1", "-vf", "setsar=4/3", "-c:v", "libx264", str(stored)], check=True, timeout=60)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(stored), "-c", "copy", "-metadata:s:v:0",
                    f"rotate={rotate}", str(clip)], check=True, timeout=60)  # (ffmpeg 5 keeps it only so)
    as_shown = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(clip), "-frames:v", "1", "-vf",
                               f"scale={shown[1]}:{shown[0]}", "-f", "rawvideo", "-pix_fmt", "bgr24", "-"],
                              capture_output=True, check=True, timeout=60).stdout
    as_shown = np.frombuffer(as_shown, np.uint8).reshape(*shown, 3)
    _, first = next(open_frames(str(clip)))
    assert first.shape == as_shown.shape and np.abs(first.astype(int) - as_shown).mean() < 4
    _, narrow = next(open_frames(str(clip), max_width=200))  # max_width is the width as seen
    assert narrow.shape[:2] == ((112, 200) if rotate == 0 else (356, 200))


@pytest.fixture(scope="module")
def stream_switch(tmp_path_factory):
    """A camera's stream that switches between its main stream, 320x180 of square pixels, and its sub stream, the
    same 16:9 picture stored 240x180 of 4:3 pixels (an NVR's D1-like sub stream), 3 s each, both ways (MPEG-TS)."""
    folder = tmp_path_factory.mktemp("switch")

    def part(name, size, sar, offset):
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25",
                        "-t", "3", "-vf", f"scale={size},setsar={sar}", "-pix_fmt", "yuv420p", "-c:v", "libx264",
                        "-g", "25", "-output_ts_offset", str(offset), "-f", "mpegts", str(folder / name)],
                       check=True, timeout=60)
        return (folder / name).read_bytes()

    main, sub = part("main.ts", "320:180", "1", 0), part("sub.ts", "240:180", "4/3", 3)
    (folder / "to-sub.ts").write_bytes(main + sub)
    (folder / "to-main.ts").write_bytes(part("sub0.ts", "240:180", "4/3", 0) + part("main3.ts", "320:180", "1", 3))
    return folder


@pytest.mark.parametrize("sampling", ["auto", "keyframes", "rate"])
@pytest.mark.parametrize("name", ["to-sub.ts", "to-main.ts"])
def test_a_stream_switching_to_pixels_of_another_shape_keeps_each_frames_own(stream_switch, name, sampling):
    """The decoder's pixel aspect ratio is that of the pictures it decodes now, ahead of the frames it hands out (its
    reordering, its threads): where a stream switched, the last 2 s of 320x180 frames were widened by the sub
    stream's 4:3 to 427x180, or the sub stream's first 240x180 ones not widened: a picture of another shape, which
    raises a moved fault and ends the zones' incidents (``CameraPipeline.reshaped``). Every frame is shown 320x180."""
    shapes = [image.shape[:2] for _, image in open_frames(str(stream_switch / name), sampling=sampling,
                                                          interval_s=0.04)]
    assert len(shapes) >= (140 if sampling == "rate" else 6) and set(shapes) == {(180, 320)}, shapes


def test_pixels_no_camera_has_are_the_cameras_fault_and_named(tmp_path):
    clip = tmp_path / "thin-pixels.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10",
                    "-t", "1", "-vf", "setsar=20/1", "-c:v", "libx264", str(clip)], check=True, timeout=60)
    with pytest.raises(source.SourceError, match=r"a 6400x240 picture is no camera's: .* \(stored 320x240, its "
                                                 r"pixels 20:1\); not analysed"):
        next(open_frames(str(clip)))


def with_display_matrix(plain, out, matrix):
    """``plain`` (an MP4 of the identity matrix) with its track's matrix replaced: FFmpeg 5's command line writes
    turns alone, no mirror."""
    import struct

    data = plain.read_bytes()
    at = data.index(struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000), data.index(b"tkhd"))
    out.write_bytes(data[:at] + struct.pack(">9i", *matrix) + data[at + 36:])
    return out


@pytest.mark.parametrize("matrix, flip", [((-0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000), 1),
                                          ((0x10000, 0, 0, 0, -0x10000, 0, 0, 0, 0x40000000), 0)])
def test_a_clip_whose_display_matrix_mirrors_it_is_analysed_as_shown(tmp_path, matrix, flip):
    """A mirror (a selfie camera's) read as a turn of 180 degrees was analysed upside down and mirrored the other
    way; one upside down by a mirror (the matrix of a camera mounted on a ceiling) was analysed as stored."""
    import cv2
    import numpy as np

    plain = tmp_path / "plain.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10",
                    "-t", "1", "-c:v", "libx264", str(plain)], check=True, timeout=60)
    mirrored = with_display_matrix(plain, tmp_path / "mirrored.mp4", matrix)
    _, stored = next(open_frames(str(plain)))
    _, shown = next(open_frames(str(mirrored)))
    assert np.array_equal(shown, cv2.flip(stored, flip))


def test_a_clip_turned_by_other_than_a_quarter_is_analysed_as_stored_and_said(tmp_path, caplog):
    plain, turned = tmp_path / "plain.mp4", tmp_path / "leaning.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10",
                    "-t", "1", "-c:v", "libx264", str(plain)], check=True, timeout=60)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(plain), "-c", "copy", "-metadata:s:v:0",
                    "rotate=45", str(turned)], check=True, timeout=60)
    with caplog.at_level("WARNING", logger="edge.source"):
        assert next(open_frames(str(turned)))[1].shape == (240, 320, 3)
    assert "leaning.mp4: its display matrix turns the picture 45 degrees; only quarter turns are followed" in caplog.text


@pytest.fixture(scope="module")
def intra_refresh(tmp_path_factory):
    """20 s of an intra-refresh H.264 stream (no key frame but the first: a recovery point each second, the
    picture refreshed column by column; low-latency cameras' setting), as an MPEG-TS recording."""
    clip = tmp_path_factory.mktemp("refresh") / "refresh.ts"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25",
                    "-t", "20", "-c:v", "libx264", "-x264-params", "intra-refresh=1:keyint=25", str(clip)],
                   check=True, timeout=60)
    return clip


def test_an_intra_refresh_stream_is_analysed_every_second_on_auto(intra_refresh, caplog):
    """Its recovery points are key frames to the demuxer and none to the decoder, which skipped them on the key-frame
    path: the camera was analysed once a connection, and looked as if it sent nothing."""
    with caplog.at_level("INFO", logger="edge.source"):
        times = [t for t, _ in open_frames(str(intra_refresh), sampling="auto")]
    assert len(times) >= 16 and times[-1] > 19, times  # from the third recovery point on, every second
    assert "3 key frames in a row gave no picture (the decoder skips them: an intra refresh's recovery" in caplog.text


def test_an_intra_refresh_stream_read_on_key_frames_alone_says_to_read_it_otherwise(intra_refresh):
    with pytest.raises(source.SourceError, match="3 key frames in a row gave no picture .* set the camera's sampling "
                                                 "to auto or rate"):
        list(open_frames(str(intra_refresh), sampling="keyframes"))


@pytest.mark.slow
@pytest.mark.parametrize("sampling", ["auto", "rate"])
def test_a_stream_whose_codec_changes_mid_way_ends_its_read_saying_so(tmp_path, sampling):
    """Two recordings joined (H.264 for 2 s, then H.265): the rest went to the H.264 decoder, which refused most of it
    and took the packets it read as key frames without a picture; the read ended at the end as if all was read (a
    file camera played its first 2 s again and again, replay printed what they held and exited 0)."""
    def part(name, codec, seconds, offset):
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25",
                        "-t", str(seconds), "-c:v", *codec, "-g", "25", "-output_ts_offset", str(offset), "-f",
                        "mpegts", str(tmp_path / name)], check=True, timeout=60)
        return (tmp_path / name).read_bytes()

    joined = tmp_path / "joined.ts"
    joined.write_bytes(part("a.ts", ["libx264"], 2, 0) + part("b.ts", [
        "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"], 20, 2))
    times = []
    with pytest.raises(source.SourceError, match=r"joined.ts: 250 packets in a row gave no picture; no h264 stream any "
                                                 r"more \(its codec changed mid-way\?\)"):
        for t, _ in open_frames(str(joined), sampling=sampling):
            times.append(t)
    assert times == [0.0, 1.0]


@pytest.mark.parametrize("sampling", ["auto", "rate"])
def test_a_read_ended_leaves_no_frame_nor_decoder_thread_behind_for_the_garbage_collector(tmp_path, sampling):
    """A camera that reconnects every few seconds: each read's decoder threads (several a read, one more than the
    cores) ended only when Python's cycle collector next ran, as each frame whose display matrix was looked at was
    held in a cycle with its side data; a soak of a box with a flapping camera had 25-160 threads for 4 cameras."""
    import gc
    import os

    import av

    clip = tmp_path / "small.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
                    "-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", str(clip)], check=True)
    threads = lambda: len(os.listdir("/proc/self/task"))  # noqa: E731
    gc.collect()
    before = threads()
    gc.freeze()  # what the worker held before is none of this test's: the collections look at its objects only
    gc.disable()
    try:
        for _ in range(5):  # reads ended mid-way (a camera cut off) and at the end
            frames = open_frames(str(clip), sampling=sampling)
            next(frames), next(frames)
            frames.close()
        list(open_frames(str(clip), sampling=sampling))
        after = threads()
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, av.VideoFrame)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.unfreeze()
        gc.enable()
    assert left == [] and after <= before, (len(left), before, after)


@pytest.mark.parametrize("gop, b_frames", [(25, 0), (50, 2)])
def test_an_mpeg_ps_is_timed_as_the_same_stream_in_mpeg_ts(tmp_path, gop, b_frames):
    """An MPEG-PS (GB/T 28181's video; a relay's ``ffmpeg -c copy -f mpeg``) states a time on one packet in
    eight, a key frame mostly not: of 5 s with key frames 1 s apart, one key frame was analysed, not 5, and on
    ``rate`` the frames after a stamp, not the second's first (1.04, 2.12 s); a small B-frame had the time of the
    frame after it (every frame on ``rate`` after it a frame late)."""
    ts, ps = tmp_path / "gop1s.ts", tmp_path / "gop1s.mpg"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                    "-t", "5", "-c:v", "libx264", "-g", str(gop), "-bf", str(b_frames), "-threads", "1", str(ts)],
                   check=True, timeout=60)
    subprocess.run(["ffmpeg", "-loglevel", "quiet", "-y", "-i", str(ts), "-c", "copy", "-f", "mpeg", str(ps)],
                   check=True, timeout=60)
    for sampling, interval_s in [("auto", 1.0), ("keyframes", 0.01), ("rate", 0.01)]:
        want = [round(t, 2) for t, _ in open_frames(str(ts), sampling=sampling, interval_s=interval_s)]
        got = [round(t, 2) for t, _ in open_frames(str(ps), sampling=sampling, interval_s=interval_s)]
        assert got == want, (sampling, got)
    assert len(want) == 125 and want[-1] == 4.96


@pytest.mark.parametrize("sampling", ["auto", "keyframes"])
def test_a_live_streams_key_frames_are_each_handed_out_as_they_come(tmp_path, sampling):
    """A live stream with B-frames (x264's defaults; the campus clip's too) read on key frames: the decoder held each
    key frame's picture back until two more frames had come to it (H.264's reordering), on this path the next two key
    frames: each was analysed 4 s late, an RTSP camera's 2nd frame came 5 s after its 1st, and the 4 s a read held
    when it ended (a camera's reconnect) were never analysed. Here a pipe's writer has sent 5 s of key frames 2 s
    apart and waits: those at 0, 2 and 4 s are handed out while it does."""
    import os
    import threading

    ts = tmp_path / "bframes.ts"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t",
                    "8", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", "20", "-keyint_min", "20", "-sc_threshold",
                    "0", "-f", "mpegts", str(ts)], check=True, timeout=60)
    data = ts.read_bytes()
    pipe = tmp_path / "camera.pipe"
    os.mkfifo(pipe)
    done = threading.Event()

    def write():
        with open(pipe, "wb") as out:
            out.write(data[:len(data) * 5 // 8 // 188 * 188])  # about 5 s: the key frames at 0, 2 and 4 s
            out.flush()
            done.wait(20)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    times: list[float] = []
    reader = threading.Thread(target=lambda: times.extend(t for t, _ in open_frames(str(pipe), sampling=sampling)),
                              daemon=True)
    reader.start()
    deadline = time.monotonic() + 10
    while len(times) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    handed = [round(t, 2) for t in times]
    done.set()
    writer.join(5)
    reader.join(5)
    assert handed == [0.0, 2.0, 4.0], handed


@pytest.mark.slow
def test_an_rtsp_cameras_key_frames_are_each_analysed_from_its_first_on(tmp_path):
    """The campus clip (B-frames, key frames 2 s apart) over RTSP, as the edge reads it (``auto``): its 2nd frame came
    5 s after its 1st (the decoder held each key frame back two key frames), and the first frame with a time, which
    the probe's packets read ahead bring a second after the untimed first, was passed over where the analysis
    interval is longer than that second. Every key frame is analysed, each as it comes."""
    with services.rtsp_server({"campus-gate": CLIP}, tmp_path) as server:
        frames = open_frames(f"rtsp://127.0.0.1:{server.port}/campus-gate", sampling="auto", interval_s=1.5)
        times = [next(frames)[0]]
        began = time.monotonic()
        times += [next(frames)[0], next(frames)[0]]
        took = time.monotonic() - began
        frames.close()
    assert [round(t, 1) for t in times] == [0.0, 1.5, 3.5] and took < 4.5, (times, took)
