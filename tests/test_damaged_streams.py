"""Streams damaged on the network or on disk, and a camera that answers a byte at a time: each is read
as far as it can be, or given up on in its own time with the reason, never hung on."""

import json
import random
import re
import subprocess
import sys
import time

import pytest
import yaml

from edge import source
from edge.config import load_config
from edge.replay import replay
from edge.source import SourceError, open_frames
from xueliang.wire import parse_time

from .conftest import CLIP, TRUTH, tcp_server


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """The campus clip's first 12 s, a key frame every second, its index first (made here with ffmpeg)."""
    out = tmp_path_factory.mktemp("damaged") / "clip.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-t", "12", "-i", str(CLIP), "-c:v", "libx264",
                    "-preset", "ultrafast", "-g", "25", "-movflags", "+faststart", "-an", str(out)], check=True, timeout=120)
    return out


def damaged(path, out, start: float, every: int, length: int, seed: int = 1):
    """A copy of ``path`` with ``length`` random bytes every ``every`` bytes from ``start`` (a share of the file)
    on: the container's index stays whole, the packets there do not."""
    data = bytearray(path.read_bytes())
    rng = random.Random(seed)
    for at in range(int(len(data) * start), len(data) - length - 1000, every):
        data[at:at + length] = rng.randbytes(length)
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("sampling, frames", [("rate", 11), ("auto", 4), ("keyframes", 4)])
def test_damaged_packets_are_skipped_and_the_rest_is_read(clip, tmp_path, sampling, frames, caplog):
    spots = damaged(clip, tmp_path / "spots.mp4", start=0.3, every=50_000, length=2000)
    times = [t for t, _ in open_frames(str(spots), sampling=sampling)]
    # the clean copy gives 12 frames, one a second; before, the first damaged packet ended the read after 1-2
    assert len(times) >= frames and times[-1] >= 9.5, times
    assert "damaged packet(s) skipped" in caplog.text


def test_a_stream_that_stays_undecodable_ends_with_the_reason(clip, tmp_path, monkeypatch):
    rest = damaged(clip, tmp_path / "rest.mp4", start=0.4, every=2000, length=2000)
    assert len(list(open_frames(str(rest), sampling="rate"))) >= 4  # fewer than 250 refused: read to its end
    monkeypatch.setattr(source, "MAX_BAD_PACKETS", 5)
    times = []
    with pytest.raises(SourceError, match=r"rest\.mp4: 5 packets in a row could not be decoded \(the last: "):
        for t, _ in open_frames(str(rest), sampling="rate"):
            times.append(t)
    assert 3 <= len(times) <= 6 and times[-1] < 5.5  # what came before the damage was read


@pytest.fixture
def trickle_server():
    """An "RTSP camera" that accepts and answers one byte every 0.2 s, for ever: no read ever times out."""
    def answer(conn):
        while True:
            conn.sendall(b"R")
            time.sleep(0.2)

    srv = tcp_server(answer)
    yield srv.getsockname()[1]
    srv.close()


@pytest.mark.slow
def test_a_camera_that_answers_a_byte_at_a_time_is_given_up_on_after_the_open_timeout(trickle_server, monkeypatch):
    monkeypatch.setattr(source, "KEY_FRAME_WAIT_S", 0.5)  # (an open's bound is at least its wait for a key frame)
    began = time.monotonic()
    with pytest.raises(SourceError, match=r"cannot open rtsp://127\.0\.0\.1:\d+/cam: not set up within 1\.5 s"):
        next(open_frames(f"rtsp://127.0.0.1:{trickle_server}/cam", open_timeout_s=1.5, read_timeout_s=0.5))
    assert time.monotonic() - began < 6  # it hung for good before, each byte resetting the socket timeout


@pytest.mark.slow
def test_replay_of_a_recording_damaged_after_an_incident_started_ends_it_then_says_why(
        edge_config_file, tmp_path, monkeypatch):
    # the van is parked from the first frame and its incident starts at 30 s; from about 60 % of the file
    # (some 50 s in) every packet is damaged
    broken = damaged(CLIP, tmp_path / "broken.mp4", start=0.6, every=3000, length=3000)
    monkeypatch.setattr(source, "MAX_BAD_PACKETS", 3)
    config = load_config(edge_config_file)
    out = []
    with pytest.raises(SourceError, match="could not be decoded"):
        for o in replay(config, "campus-gate", str(broken), parse_time("2026-03-02T08:00:00Z")):
            out.append(o.message)
    starts = [m for m in out if m["state"] == "start" and m["zone"] == "kerb-no-parking"]
    assert len(starts) == 1
    ends = [m for m in out if m["state"] == "end" and m["incident_id"] == starts[0]["incident_id"]]
    assert [e["end_reason"] for e in ends] == ["stream_ended"]


@pytest.mark.slow
def test_replay_of_a_cut_off_mp4_prints_what_it_saw_then_says_where_it_is_cut_and_exits_3(clip, tmp_path):
    """An MP4 copied short (its index whole, the rest of its packets missing) was replayed to the cut and exited 0,
    with only a damaged packet's warning: its evidence read as whole."""
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[:int(clip.stat().st_size * 0.6)])
    # the van, parked from the first frame, raised before the cut (its detector passes a second apart: confirmed)
    kerb = {**TRUTH["camera"]["zones"][0], "dwell_s": 4}
    config = tmp_path / "edge.yaml"
    config.write_text(yaml.safe_dump({"box": "test-box", "data_dir": str(tmp_path / "edge"),
                                      "rules": {"redetect_floor_s": 1},
                                      "cameras": [{**TRUTH["camera"], "url": str(clip), "zones": [kerb]}]}))
    run = subprocess.run([sys.executable, "-m", "xueliang", "replay", str(cut), "--config", str(config),
                          "--camera", "campus-gate"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 3, run.stderr
    messages = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(m["state"], m.get("end_reason")) for m in messages] == [("start", None), ("end", "stream_ended")]
    said = re.search(r"error: \S*cut\.mp4 is damaged: cut off at about ([\d.]+) s in, of the 12\.0 s its index "
                     r"states.*incidents open where it ends ended stream_ended", run.stderr)
    assert said and 5 <= float(said[1]) <= 9, run.stderr  # 60 % of 12 s


def test_an_empty_file_is_named_empty(tmp_path):
    """A copy that never ran leaves a file of 0 bytes: FFmpeg said only "Invalid data found when processing input"."""
    empty = tmp_path / "cam.mp4"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match=r"cam\.mp4: the file is empty \(0 bytes\)"):
        next(iter(open_frames(str(empty))))
    garbage = tmp_path / "not.mp4"
    garbage.write_bytes(b"not a video" * 10)
    with pytest.raises(SourceError, match="cannot open .*not.mp4: (?!the file is empty)"):
        next(iter(open_frames(str(garbage))))


def test_a_stream_joined_mid_gop_is_read_from_its_first_key_frame_and_nothing_before_counts_as_damage(tmp_path):
    """A camera or a pipe joined between key frames (no intra refresh) sends P-frames first, its parameter sets
    (SPS/PPS) only with its next key frame, 12 s on here (a GOP of 300 at 25 fps, a smart codec's). The decoder
    refused each of those packets: 250 in a row ended the read as 'could not be decoded', and the camera never came
    up (fewer were counted as damage). Now they are passed over undecoded, and the first picture analysed is the
    key frame's, whole."""
    import av
    import numpy as np

    whole = tmp_path / "whole.h264"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t",
                    "16", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", "300", "-keyint_min", "300", "-sc_threshold",
                    "0", "-f", "h264", str(whole)], check=True, timeout=60)
    with av.open(str(whole)) as container:
        packets = [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]
    with av.open(str(whole)) as container:
        key_picture = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)][300]
    joined = tmp_path / "joined.h264"
    joined.write_bytes(b"".join(packets[1:]))  # from the first P-frame on: 299 before the key frame
    damage = source.Damage()
    frames = list(open_frames(str(joined), sampling="rate", damage=damage))
    assert len(frames) == 4 and frames[0][0] == 0.0, [t for t, _ in frames]  # the last 4 s, one frame a second
    assert np.array_equal(frames[0][1], key_picture)
    assert damage.refused == 0 and damage.words() is None, damage


def test_a_live_stream_whose_first_key_frame_comes_late_is_not_taken_for_a_stuck_clock(tmp_path):
    """A live source joined between key frames gives its first picture only with its next key frame, a GOP after
    the open (up to 15 s for a camera, KEY_FRAME_WAIT_S). That first frame was taken for one whose time had stood
    still since the open, past read_timeout_s: the read ended ('its frames' time has stood still'), and so did the
    next, and the next; the camera never came up. Here a pipe whose writer sends P-frames, then its key frame 1.5 s
    on (read_timeout_s 1 s)."""
    import os
    import threading

    import av

    ts = tmp_path / "camera.ts"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t",
                    "6", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-bf", "0", "-g", "50", "-f", "mpegts", str(ts)],
                   check=True, timeout=60)
    with av.open(str(ts)) as container:
        starts = [(p.pos, p.is_keyframe) for p in container.demux(video=0) if p.size]
    data = ts.read_bytes()
    # from 0.2 s in (its probe has 1.8 s of P-frames, past its analyzeduration: the open returns) to the key frame
    cut, key = starts[5][0] // 188 * 188, [pos for pos, keyed in starts if keyed][1] // 188 * 188
    pipe = tmp_path / "camera.pipe"
    os.mkfifo(pipe)

    def write():
        with open(pipe, "wb") as out:
            out.write(data[cut:key])
            out.flush()
            time.sleep(1.5)
            out.write(data[key:])

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    times = [t for t, _ in open_frames(str(pipe), read_timeout_s=1.0)]
    writer.join(5)
    assert [round(t, 3) for t in times] == [0.0, 2.0], times  # its key frames (sampling auto), 2 s apart


def test_an_mp4_cut_off_within_its_index_is_said_so_not_a_python_error(tmp_path):
    """An MP4 with its index first (moov), cut off inside it, states a video track and not its codec: the camera's
    fault said "AttributeError: 'NoneType' object has no attribute 'width'", with a traceback at each try."""
    whole = tmp_path / "whole.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=5:duration=1",
                    "-c:v", "libx264", "-preset", "ultrafast", "-movflags", "+faststart", str(whole)],
                   check=True, timeout=60)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:data.index(b"moov") + 400])
    with pytest.raises(SourceError, match=r"cut\.mp4: its video stream states no codec FFmpeg decodes \(a file cut "
                                          r"off within its index"):
        next(iter(open_frames(str(cut))))


def test_an_mp4_without_its_index_is_said_so(tmp_path):
    """A recording stopped before it wrote its index at the end (or a copy cut off before it): FFmpeg said "Invalid
    data found when processing input", as of a file that is no video at all."""
    whole = tmp_path / "whole.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=5:duration=1",
                    "-c:v", "libx264", "-preset", "ultrafast", str(whole)], check=True, timeout=60)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:data.index(b"moov") - 100])
    with pytest.raises(SourceError, match=r"cut\.mp4: an MP4 with no index \(no moov box\): a recording stopped"):
        next(iter(open_frames(str(cut))))
