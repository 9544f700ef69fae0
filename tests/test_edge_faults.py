"""Edge faults with real processes: dead and hung cameras, bad sources, resolution changes."""

import html
import json
import logging
import signal
import socket
import subprocess
import threading
import time

import pytest
import yaml

from xueliang import services, wire

from .conftest import CLIP, StallingCamera, Watcher, tcp_server, wait_until


def write_edge(tmp_path, broker_port, cameras, box="fault-box"):
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump({"box": box, "broker": {"port": broker_port}, "cameras": cameras,
                                    "heartbeat_s": 1, "data_dir": str(tmp_path / "edge")}))
    return path


def camera(cid, url, **extra):
    return {"id": cid, "url": url, "grid": "G-1", "read_timeout_s": 3, "open_timeout_s": 3, **extra}


def analysed(watcher, box, cid):
    return watcher.latest_json(f"{box}/status").get("cameras", {}).get(cid, {}).get("analysed", 0)


def state(watcher, box, cid):
    return watcher.latest_json(f"{box}/status").get("cameras", {}).get(cid, {}).get("state")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill", "hang"])
def test_a_dead_or_hung_camera_goes_offline_and_comes_back_while_others_keep_their_rate(tmp_path, broker, how):
    failing = services.rtsp_server({"cam": CLIP}, tmp_path / "a").start()
    steady = services.rtsp_server({"cam": CLIP}, tmp_path / "b").start()
    cfg = write_edge(tmp_path, broker.port, [camera("failing", f"rtsp://127.0.0.1:{failing.port}/cam"),
                                             camera("steady", f"rtsp://127.0.0.1:{steady.port}/cam")])
    watcher = Watcher(broker.port, ["xl/v1/fault-box/status"])
    edge = services.xueliang(["edge", "--config", str(cfg)], tmp_path / "edge.log")
    try:
        wait_until(lambda: analysed(watcher, "fault-box", "failing") >= 2 and analysed(watcher, "fault-box", "steady") >= 2,
                   30, message="both cameras analysed")
        if how == "kill":
            failing.stop()
        else:
            failing.signal(signal.SIGSTOP)
        cut = time.monotonic()
        before = analysed(watcher, "fault-box", "steady")
        wait_until(lambda: state(watcher, "fault-box", "failing") == "offline", 10 + 1.5,
                   message="failing camera reported offline")
        assert time.monotonic() - cut <= 11.5
        time.sleep(6)
        # the steady camera kept its rate: key frames every 2 s -> about one analysed frame per 2 s
        gained = analysed(watcher, "fault-box", "steady") - before
        assert gained >= (time.monotonic() - cut) / 2 - 3, gained
        if how == "kill":
            failing.start()
        else:
            failing.signal(signal.SIGCONT)
        back = time.monotonic()
        # a restarted server answers at once (5 s: backoff, a key frame, the 1 s heartbeat); a resumed
        # one first answers its stalled session with bad data, and FFmpeg's RTSP set-up against it
        # then takes several 3 s socket timeouts (seen 9-14 s in full-suite runs, once 20.9 s on a loaded
        # machine: the bound catches a camera that never comes back or a backoff grown to minutes, not speed)
        limit = 5 + 1.5 if how == "kill" else 30
        wait_until(lambda: state(watcher, "fault-box", "failing") == "online", limit + 1, interval=0.1,
                   message="failing camera back online")
        assert time.monotonic() - back <= limit
        assert edge.poll() is None
    finally:
        edge.terminate()
        edge.wait(10)
        watcher.stop()
        failing.stop()
        steady.stop()


def silent_server():
    """A TCP port that accepts and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    return srv


def garbage_server():
    """A TCP port that answers anything with random bytes."""
    import os

    def answer(conn):
        conn.recv(4096)
        conn.sendall(os.urandom(65536))
        time.sleep(0.5)

    return tcp_server(answer)


@pytest.fixture
def resolution_change_clip(tmp_path):
    """An MPEG-TS whose picture size changes from 768x576 to 640x360 mid-stream."""
    parts = []
    for i, size in enumerate(["768x576", "640x360"]):
        part = tmp_path / f"part{i}.ts"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-t", "8", "-i", str(CLIP), "-vf", f"scale={size}",
                        "-c:v", "libx264", "-g", "10", "-f", "mpegts", str(part)], check=True)
        parts.append(part.read_bytes())
    clip = tmp_path / "resize.ts"
    clip.write_bytes(b"".join(parts))
    return clip


SECRET = "s3cr%40et:x"  # a password with an @ (percent-encoded) and a colon


@pytest.mark.slow
def test_bad_sources_get_a_clear_status_and_never_crash_the_box(tmp_path, broker, resolution_change_clip):
    silent, garbage = silent_server(), garbage_server()
    closed = services.free_port()
    zone = {"id": "z", "types": ["illegal_parking"], "polygon": [[0.8, 0.03], [0.97, 0.03], [0.97, 0.22]], "dwell_s": 600}
    cfg = write_edge(tmp_path, broker.port, [
        # as most cameras are addressed: the password was in the log and in the heartbeat retained at the broker
        camera("silent", f"rtsp://admin:{SECRET}@127.0.0.1:{silent.getsockname()[1]}/x"),
        camera("garbage", f"rtsp://admin:{SECRET}@127.0.0.1:{garbage.getsockname()[1]}/x"),
        camera("refused", f"rtsp://admin:{SECRET}@127.0.0.1:{closed}/x"),
        # many a DVR's: the password a parameter of the stream's path
        camera("dvr", f"rtsp://127.0.0.1:{closed}/user=admin&password={SECRET}&channel=1&stream=0.sdp?"),
        camera("resize", str(resolution_change_clip), sampling="rate", zones=[zone]),
    ])
    watcher = Watcher(broker.port, ["xl/v1/fault-box/status"])
    edge = services.xueliang(["edge", "--config", str(cfg)], tmp_path / "edge.log")
    try:
        wait_until(lambda: analysed(watcher, "fault-box", "resize") >= 14, 60, message="resize camera analysed")
        bad = ("silent", "garbage", "refused", "dvr")
        wait_until(lambda: all(state(watcher, "fault-box", c) == "offline" for c in bad),
                   15, message="bad cameras reported offline")
        cams = watcher.latest_json("fault-box/status")["cameras"]
        for cid in bad:
            assert cams[cid]["last_error"] and cams[cid]["analysed"] == 0, cams[cid]
        assert f"rtsp://admin:***@127.0.0.1:{closed}/x" in cams["refused"]["last_error"]
        assert f"rtsp://127.0.0.1:{closed}/user=admin&password=***&channel=1" in cams["dvr"]["last_error"]
        log = (tmp_path / "edge.log").read_text()
        assert "Traceback" not in log
        assert "s3cr" not in log and all(b"s3cr" not in body for _, body in watcher.messages)
        assert edge.poll() is None
    finally:
        edge.terminate()
        edge.wait(10)
        watcher.stop()
        silent.close()
        garbage.close()


def looked_after(readers, stop):
    """The box's watch over its readers (``edge.box.look_after``) every 0.2 s until ``stop``, in a thread."""
    from edge import box

    def run():
        while not stop.wait(0.2):
            box.look_after(readers, box.box_now())

    threading.Thread(target=run, daemon=True).start()


def write_once(pipe) -> None:
    """Open ``pipe`` for writing and close it, where someone has it open for reading."""
    import os

    try:
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # no one reads it
        pass


def write_frames(pipe, frames: int, picture: str = "testsrc=size=160x120:rate=10") -> subprocess.Popen:
    """The system ffmpeg writing ``frames`` frames of ``picture`` into ``pipe`` in real time (10 a second), as
    H.264 in MPEG-TS, each packet as soon as it is made; its open waits for a reader."""
    return subprocess.Popen(["ffmpeg", "-loglevel", "error", "-y", "-re", "-f", "lavfi", "-i", picture,
                             "-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast", "-tune",
                             "zerolatency", "-g", "10", "-flush_packets", "1", "-f", "mpegts", str(pipe)])


@pytest.mark.slow
def test_a_pipe_is_read_whole_when_its_writer_comes_late_and_pauses(tmp_path):
    """A pipe's open waits in the kernel for its writer and its reads for the writer's bytes, where PyAV's
    timeouts never reach: they fired at the first read once the writer was there (the open failed, "Immediate
    exit requested", and the writer died of a broken pipe) or had paused a while (the read failed mid-stream)."""
    import os
    import signal

    from edge.source import open_frames

    pipe = tmp_path / "camera.ts"
    os.mkfifo(pipe)
    got, errors = [], []

    def read():
        try:
            got.extend(t for t, _ in open_frames(str(pipe), 0.1, 0.1, interval_s=0.01, sampling="rate"))
        except Exception as exc:
            errors.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.5)  # five times its open_timeout_s
    # a noise picture: each packet a few hundred kB, more than the pipe holds, so a read takes several
    writer = write_frames(pipe, 30, "nullsrc=size=640x360:rate=10,geq=random(1)*255:128:128")
    try:
        wait_until(lambda: len(got) >= 5 or errors or writer.poll() is not None, 20, message="the first frames")
        writer.send_signal(signal.SIGSTOP)
        time.sleep(1.0)  # ten times its read_timeout_s
        writer.send_signal(signal.SIGCONT)
        assert writer.wait(20) == 0
        reader.join(10)
    finally:
        writer.kill()
        write_once(pipe)
    assert not errors and len(got) == 30, (errors, len(got))


def reading_threads(camera_id: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"camera-{camera_id}-")]


@pytest.mark.slow
def test_a_camera_whose_read_hangs_is_lost_then_read_again_when_its_picture_comes_back(tmp_path, rtsp, monkeypatch):
    """A server whose session stays alive and sends no picture resets FFmpeg's socket timeout with every byte:
    the read hung for good. The camera was marked lost, but read again only once the box restarted."""
    from edge import box, source

    monkeypatch.setattr(box, "CAMERA_LOST_AFTER_S", 8.0)  # (a first frame can take 6 s here)
    monkeypatch.setattr(source, "KEY_FRAME_WAIT_S", 3.0)  # its reads wait its read_timeout_s for a packet
    proxy = StallingCamera(rtsp.port)
    analyser, readers, slots, stop = in_process_analyser(tmp_path, ["cam"], lambda real, i, s: real(i, s),
                                                         url=f"rtsp://127.0.0.1:{proxy.port}/campus-gate")
    reader = readers["cam"]
    # its hang limit: a try of its own (3 s set-up, 3 s probe, 3 s read, the backoff) takes up to 10.9 s, 14 s with
    # its margin; it was 8 s, and a try on a wedged session (6 s, then the backoff) took it there now and then
    limit = box.hang_limit(reader.camera)
    assert limit > box.CAMERA_LOST_AFTER_S

    def faults():
        return [m["state"] for _, m in analyser.publisher.sent
                if m["type"] == "camera_fault" and m["attributes"]["label"] == "offline"]

    looked_after(readers, stop)
    reader.start()
    try:
        wait_until(lambda: reader.health.analysed >= 1, 30, message="the camera analysed")
        proxy.stall()
        # (the box marks it lost, then reads it afresh: the fault can be seen a moment before the new reader)
        wait_until(lambda: faults() == ["start"] and reader.generation == 1, 20, message="the offline fault")
        assert "the read hangs" in reader.health.last_error
        # the camera read afresh, its reads bounded: they fail in their time, and none hangs (a wedged session's
        # open fails at its probe's bound: it sends no packet)
        wait_until(lambda: "the camera's stream was set up but sends no pictures (no packet within 4 s"
                   in reader.health.last_error, 20, message="a bounded try failed")
        time.sleep(limit)  # the hang limit again
        assert reader.generation == 1
        analysed = reader.health.analysed
        proxy.resume()
        wait_until(lambda: reader.health.analysed >= analysed + 2, 30, message="the camera read again")
        wait_until(lambda: faults() == ["start", "end"], 20, message="the offline fault closed")
        # the one hung read, still wedged, or gone (once in CI, 2026-12-07, four workers, it was gone by then: not
        # traced; a read slow in its probe under load may be taken for hung and end in its own time), and no other
        assert reader.generation == 1 and "camera-cam-1" in (names := {t.name for t in reading_threads("cam")}) \
            and names <= {"camera-cam-0", "camera-cam-1"}, names
        proxy.close()  # the sessions end: so does the hung read, its error ignored
        wait_until(lambda: [t.name for t in reading_threads("cam")] == ["camera-cam-1"], 20,
                   message="the hung read ended")
    finally:
        stop.set()
        analyser.join(5)
        proxy.close()


def hevc_clip(folder, gop_s: int):
    """The campus clip's first 10 s as H.265 at 320x240 (10 fps), a key frame every ``gop_s``: its SDP states its
    picture size (sprop-sps), which FFmpeg reads at the open without a packet (its HEVC decoder exports it; H.264's
    does not). The test server answers a first session's DESCRIBE only once its next key frame has come."""
    out = folder / f"campus-hevc-gop{gop_s}.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(CLIP), "-t", "10", "-vf", "scale=320:240",
                    "-c:v", "libx265", "-preset", "ultrafast", "-x265-params",
                    f"keyint={10 * gop_s}:min-keyint={10 * gop_s}:scenecut=0:log-level=error", "-tag:v", "hvc1", "-an",
                    str(out)], check=True, timeout=60)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("sdp", ["no size", "its size"])
def test_a_session_that_plays_and_sends_nothing_fails_its_open_and_is_tried_again_not_lost(tmp_path, monkeypatch,
                                                                                         sdp):
    """A session that is set up (DESCRIBE, SETUP, PLAY answered) and kept alive, and sends no packet: PyAV's interrupt
    ended the open's probe at its bound as if the stream had ended, the open returned the stream its SDP states, and
    its read hung for good, the socket timeout reset by every byte: the camera was offline until the box's hang guard
    read it afresh a minute on, marked lost (a camera_fault). Of an SDP that states no size FFmpeg reads (H.264's, the
    test server's: once in a whole run of the suite, its first session, 2026-12) the stream had none (0x0); of one
    that states it (H.265's sprop-sps: a DVR channel with no signal, an encoder that hangs after its set-up) it had
    the camera's, and looked opened. The open fails at its bound, saying so, and the camera is tried again at once."""
    from edge import source

    clip = CLIP if sdp == "no size" else hevc_clip(tmp_path, gop_s=1)
    monkeypatch.setattr(source, "KEY_FRAME_WAIT_S", 2.0)  # its open's bound: 4 s (its packet wait, 3 s, and 1)
    with services.rtsp_server({"cam": clip}, tmp_path) as server:
        proxy = StallingCamera(server.port)
        proxy.stall()  # from its first session on
        url = f"rtsp://127.0.0.1:{proxy.port}/cam"
        analyser, readers, slots, stop = in_process_analyser(tmp_path, ["cam"], lambda real, i, s: real(i, s), url=url)
        reader = readers["cam"]
        looked_after(readers, stop)
        reader.start()
        try:
            wait_until(lambda: reader.health.last_error, 15, message="the open failed")
            failed_after = reader.health.last_error_at - reader.health.started_at
            assert reader.health.last_error.startswith(f"cannot open {url}: the camera's stream was set up but sends "
                                                       "no pictures (no packet within 4 s of asking for it; "), \
                reader.health.last_error
            proxy.resume()
            wait_until(lambda: reader.health.analysed >= 1, 30, message="the camera analysed")
            assert reader.generation == 0  # tried again in its own time, not found hung and read afresh
            assert not [m for _, m in analyser.publisher.sent if m["type"] == "camera_fault"]
        finally:
            stop.set()
            analyser.join(5)
            proxy.close()
    assert failed_after < 4 + 4, failed_after  # its set-up, then its probe's 4 s


@pytest.mark.slow
def test_a_camera_whose_sdp_states_its_size_opens_when_its_first_key_frame_comes_seconds_late(tmp_path):
    """A live camera whose SDP states its picture size and whose first packet comes with its next key frame, seconds
    after the open (the test server starts each session at one; key frames 5 s apart here): opened and read, not
    taken for a session that sends nothing."""
    from edge.source import open_frames

    with services.rtsp_server({"cam": hevc_clip(tmp_path, gop_s=5)}, tmp_path) as server:
        url = f"rtsp://127.0.0.1:{server.port}/cam"
        next(open_frames(url))  # just past a key frame: the next is 5 s on
        began = time.monotonic()
        t, image = next(open_frames(url))
        waited = time.monotonic() - began
    assert image.shape == (240, 320, 3) and 2.5 < waited < 10.0, (image.shape, waited)


def test_a_camera_whose_slow_opens_keep_failing_is_hung_only_past_its_try_and_its_backoff(tmp_path):
    """A camera given 60 s to open whose opens keep failing (the set-up, then the probe of its streams, each at
    its limit; a read that gets nothing; the backoff) tries again within that: the box took it for hung between
    two tries (its limit was the open's 60 s alone), marked it lost and read it afresh, its reader left behind."""
    from edge import box
    from edge.config import parse_config

    config = parse_config({"box": "b1", "data_dir": str(tmp_path), "cameras": [
        camera("slow", "rtsp://127.0.0.1:9/slow", open_timeout_s=60, read_timeout_s=5)]})
    slots, stop = box.Slots(), threading.Event()
    stop.set()  # a reader read afresh ends at once: the box's decision alone is under test
    reader = box.CameraReader(config.cameras[0], slots, box.Metrics(), stop)
    now = box.box_now()
    # 120 s open, 15 s for a packet (an RTSP camera's wait for its key frame), 1.9 s backoff: 137 s, within its
    # margin (152.6 s)
    reader.health.started_at = reader.health.tried_at = now - 152.0
    box.look_after({"slow": reader}, now)
    assert reader.generation == 0 and slots.depth() == 0
    box.look_after({"slow": reader}, now + 1.0)  # past its longest backoff and its margin: its try hangs
    assert reader.generation == 1 and isinstance(slots.take_all(0)["slow"][1], box.Lost)


def test_a_camera_analysed_once_a_minute_is_neither_offline_nor_hung_between_its_frames(tmp_path):
    """``analysis_interval_s`` may be 60: its reader gives a frame a minute. It was reported offline 8 s after each
    frame, and 60 s after one it was taken for hung: marked lost (its incidents ended, an offline fault opened) and
    read afresh, every minute. Now two missed frames are its limit."""
    from edge import box
    from edge.config import parse_config

    config = parse_config({"box": "b1", "data_dir": str(tmp_path), "cameras": [
        camera("minute", "rtsp://127.0.0.1:9/minute", analysis_interval_s=60)]})
    slots, stop = box.Slots(), threading.Event()
    stop.set()  # a reader read afresh ends at once: the box's decision alone is under test
    reader = box.CameraReader(config.cameras[0], slots, box.Metrics(), stop)
    now = box.box_now()
    reader.health.state, reader.health.tried_at = "online", now - 600.0
    reader.health.last_frame_at = now - 65.0  # its next frame a little late
    assert reader.health.reported_state(now) == "online"
    box.look_after({"minute": reader}, now)
    assert reader.generation == 0 and slots.depth() == 0
    box.look_after({"minute": reader}, now + 56.0)  # two frames missed
    assert reader.health.reported_state(now + 56.0) == "offline"
    assert reader.generation == 1 and isinstance(slots.take_all(0)["minute"][1], box.Lost)


@pytest.mark.slow
def test_the_hung_reads_a_camera_leaves_are_bounded_and_end_when_their_source_answers(tmp_path, monkeypatch):
    """A read the kernel holds (here a terminal's; a file on a network mount that stopped answering) no timeout
    reaches: each hung read is left and the camera read afresh, no more than MAX_ABANDONED_READS left at a time,
    and each ends once its read returns."""
    import os

    from edge import box

    monkeypatch.setattr(box, "CAMERA_LOST_AFTER_S", 0.3)
    terminal, other_end = os.openpty()
    name = os.ttyname(other_end)
    os.close(other_end)
    analyser, readers, slots, stop = in_process_analyser(tmp_path, ["tty"], lambda real, i, s: real(i, s),
                                                         url=name, open_timeout_s=0.1, read_timeout_s=0.1)
    limit = box.hang_limit(readers["tty"].camera)  # most of it the longest backoff
    looked_after(readers, stop)
    readers["tty"].start()
    try:
        wait_until(lambda: readers["tty"].generation == box.MAX_ABANDONED_READS,
                   (box.MAX_ABANDONED_READS + 1) * limit + 5, message="hung reads left")
        time.sleep(1.5 * limit)  # past the hang limit again: no further one
        threads = [t.name for t in reading_threads("tty")]
        assert readers["tty"].generation == box.MAX_ABANDONED_READS, threads
        assert len(threads) == 1 + box.MAX_ABANDONED_READS, threads
        assert readers["tty"].health.last_error.endswith("the read hangs; read afresh")
        os.close(terminal)  # every read of the terminal fails: each hung one ends
        terminal = None
        wait_until(lambda: len(reading_threads("tty")) <= 1, 10, message="the hung reads ended")
    finally:
        stop.set()
        if terminal is not None:
            os.close(terminal)
        analyser.join(5)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["paused", "restarted"])
def test_a_pipe_camera_whose_writer_comes_back_is_read_whole_by_its_one_read(tmp_path, monkeypatch, how):
    """A pipe camera taken for hung (its writer paused, or gone and started again) was read afresh beside its hung
    read: the kernel gave each of the two a share of the writer's bytes once it came back (the fresh read got 59
    of 117 frames, the picture torn). It is marked lost all the same, and its one read goes on: every frame the
    writer sends reaches it."""
    import os
    import signal

    from edge import box
    from edge.config import parse_config

    monkeypatch.setattr(box, "CAMERA_LOST_AFTER_S", 0.3)
    pipe = tmp_path / "camera.ts"
    os.mkfifo(pipe)
    name = f"pipe-{how}"  # its reading threads' names: no other test's
    config = parse_config({"box": "b1", "cameras": [camera(name, str(pipe), open_timeout_s=0.1, read_timeout_s=0.1,
                                                           analysis_interval_s=0.05, sampling="rate")]})
    frames, marks = [], []

    class Kept(box.Slots):  # every frame and mark the reader gives, not only the latest
        def put(self, camera_id, t, item):
            (marks if isinstance(item, box.Lost) else frames).append(item)
            return super().put(camera_id, t, item)

    stop = threading.Event()
    reader = box.CameraReader(config.cameras[0], Kept(), box.Metrics(), stop)
    reads = []  # how many reads of the pipe are alive, every 10 ms

    def count():
        while not stop.wait(0.01):
            reads.append(len(reading_threads(name)))

    threading.Thread(target=count, daemon=True).start()
    looked_after({name: reader}, stop)
    reader.start()
    writer = write_frames(pipe, 20)
    try:
        wait_until(lambda: len(frames) >= 10, 20, message="the first frames")
        if how == "paused":
            writer.send_signal(signal.SIGSTOP)
        else:
            assert writer.wait(20) == 0
        wait_until(lambda: marks, 2 * box.hang_limit(reader.camera) + 5, message="the camera marked lost")
        time.sleep(0.5)  # the box looks after it twice more
        if how == "paused":
            writer.send_signal(signal.SIGCONT)
        else:
            writer = write_frames(pipe, 20)
        assert writer.wait(20) == 0
        sent = 20 if how == "paused" else 40
        wait_until(lambda: len(frames) >= sent, 10, message="every frame")
        time.sleep(0.3)
    finally:
        stop.set()
        writer.kill()
        write_once(pipe)
    assert len(frames) == sent and reader.generation == 0, (len(frames), reader.generation)
    assert max(reads) == 1, reads
    assert "the read hangs; read on when the pipe's writer writes" in marks[0].reason, marks


def scaled_clip(path, size: str):
    """The campus footage's first 20 s at ``size``."""
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-t", "20", "-i", str(CLIP), "-vf", f"scale={size}",
                    "-c:v", "libx264", "-preset", "veryfast", "-g", "10", "-an", str(path)], check=True, timeout=60)
    return path


@pytest.mark.slow
def test_a_camera_whose_frames_are_too_small_for_its_zone_or_of_no_cameras_shape_stops_no_other(tmp_path, broker):
    """A 0.7 % zone on 64x48 frames (a misconfigured sub-stream) is a crop under one pixel: the detector refused
    it and, raised in the batch of every camera's passes, ended the analyser: no camera was analysed again. A
    4000x4 picture made 667 detector images a frame (27 s a round: the steady camera was analysed twice in a
    minute) and a traceback on every frame: it is refused as its camera's fault, naming its size."""
    small = {"id": "z", "types": ["illegal_parking"],
             "polygon": [[0.505, 0.505], [0.512, 0.505], [0.512, 0.512], [0.505, 0.512]]}
    kerb = {"id": "kerb", "types": ["illegal_parking"], "polygon": [[0.8, 0.03], [0.97, 0.03], [0.97, 0.22]]}
    foot = {"id": "foot", "types": ["garbage", "spill"], "polygon": [[0.02, 0.33], [0.42, 0.33], [0.52, 0.47]]}
    cfg = write_edge(tmp_path, broker.port, [
        camera("thumb", str(scaled_clip(tmp_path / "thumb.mp4", "64:48")), sampling="rate", zones=[small]),
        camera("strip", str(scaled_clip(tmp_path / "strip.mp4", "4000:4")), sampling="rate", zones=[kerb, foot]),
        camera("steady", str(CLIP), sampling="rate", zones=[kerb])])
    watcher = Watcher(broker.port, ["xl/v1/fault-box/status"])
    edge = services.xueliang(["edge", "--config", str(cfg)], tmp_path / "edge.log")
    try:
        wait_until(lambda: analysed(watcher, "fault-box", "steady") >= 10 and analysed(watcher, "fault-box", "thumb") >= 3,
                   60, message="both cameras analysed")
        strip = watcher.latest_json("fault-box/status")["cameras"]["strip"]
        assert "a 4000x4 picture is no camera's" in (strip["last_error"] or "") and strip["analysed"] == 0, strip
        assert "Traceback" not in (tmp_path / "edge.log").read_text()
        assert edge.poll() is None
    finally:
        edge.terminate()
        edge.wait(10)
        watcher.stop()


NOW = 1_767_225_600.0  # stream times the wire takes (this century)


class Sent:
    """Where the in-process analyser's messages go: kept, in order (``sent``: topic and parsed JSON)."""

    def __init__(self):
        from edge.publisher import GatewayClock

        self.sent: list[tuple[str, dict]] = []
        self.clock = GatewayClock()  # the gateways' clock, as a publisher learns it from their acknowledgements

    def gateway_offset(self) -> float:
        import time

        return self.clock.offset(time.monotonic(), time.time())

    def send(self, items: list[tuple[str, bytes]]) -> None:
        import json

        self.sent += [(topic, json.loads(body)) for topic, body in items if "/evidence/" not in topic]


KERB = {"id": "kerb", "types": ["illegal_parking"], "polygon": [[0.8, 0.03], [0.97, 0.03], [0.97, 0.22]]}


def in_process_analyser(tmp_path, camera_ids: list[str], detect_many, url: str = "x.mp4", publisher=None,
                        **settings):
    """The real analyser, pipelines and vehicle detector in process, one kerb zone per camera (each reading
    ``url`` once its reader is started, with ``settings`` of its config), the detector's ``detect_many`` wrapped
    by ``detect_many(real, images, min_score)``, sending to ``publisher`` (box ``b1``'s; ``Sent`` where none); started.
    Returns (analyser, readers, slots, stop)."""
    from edge.box import Analyser, CameraReader, Metrics, Slots
    from edge.config import parse_config
    from edge.detector import VEHICLE, load_detectors

    config = parse_config({"box": "b1", "data_dir": str(tmp_path),
                           "cameras": [camera(c, url, zones=[KERB], **settings) for c in camera_ids]})
    detectors = load_detectors(config)
    real = detectors[VEHICLE].detect_many
    detectors[VEHICLE].detect_many = lambda images, min_score: detect_many(real, images, min_score)
    slots, stop, metrics = Slots(), threading.Event(), Metrics()
    readers = {c.id: CameraReader(c, slots, metrics, stop) for c in config.cameras}
    analyser = Analyser(config, detectors, readers, slots, publisher=publisher or Sent(), metrics=metrics, stop=stop)
    analyser.start()
    return analyser, readers, slots, stop


def test_a_detector_that_fails_on_one_cameras_frame_costs_only_that_frame(tmp_path):
    """In process, the real detector and pipelines: a pass that raises on one camera's frame (as the
    sub-pixel crop did) used to end the analyser thread, and every camera's analysis with it."""
    import numpy as np

    def refuse_grey(real, images, min_score):  # the "bad" camera's frames are mid-grey
        if any(int(x.flat[0]) == 128 for x in images):
            raise RuntimeError("refused")
        return real(images, min_score)

    analyser, readers, slots, stop = in_process_analyser(tmp_path, ["bad", "good"], refuse_grey)
    try:
        for i in range(3):
            slots.put("bad", 100.0 + i, np.full((576, 768, 3), 128, np.uint8))
            slots.put("good", 100.0 + i, np.full((576, 768, 3), 30 * (i + 1), np.uint8))
            wait_until(lambda: readers["good"].health.analysed == i + 1, 20, message=f"good camera's frame {i}")
        assert analyser.is_alive() and readers["bad"].health.analysed == 0
    finally:
        stop.set()
        analyser.join(5)


@pytest.mark.slow
def test_a_slow_analysis_round_is_logged_and_analysis_goes_on(tmp_path, caplog):
    """In process, the real detector and pipelines: a round slower than a second (a box past its
    capacity) logged its warning with a name that no longer existed, and the error ended the analyser
    thread: the box kept sending heartbeats and analysed no camera again (found by the litter row of
    bench/edge_capacity.py)."""
    import numpy as np

    def slow(real, images, min_score):
        time.sleep(1.1)
        return real(images, min_score)

    analyser, readers, slots, stop = in_process_analyser(tmp_path, ["gate"], slow)
    try:
        for i in range(2):
            slots.put("gate", 100.0 + i, np.full((576, 768, 3), 30 * (i + 1), np.uint8))
            wait_until(lambda: readers["gate"].health.analysed == i + 1, 20, message=f"frame {i}")
        assert analyser.is_alive()
        assert caplog.text.count("slow analysis round: 1 camera(s), 1 detector image(s)") == 2
        assert caplog.text.count("the costliest: gate (1 image(s), rules and evidence") == 2  # which camera
    finally:
        stop.set()
        analyser.join(5)


@pytest.mark.slow
def test_a_knocked_camera_is_reported_in_its_heartbeat_and_metrics(tmp_path):
    """In process, the real analyser and pipelines: a camera knocked 5 % off says so (the zones follow
    the picture: edge/alignment.py) where the people who keep the boxes look, so it can be re-aimed."""
    import cv2

    from edge.box import status

    analyser, readers, slots, stop = in_process_analyser(tmp_path, ["knocked", "still"], lambda real, i, s: real(i, s))
    ok, frame = cv2.VideoCapture(str(CLIP)).read()
    assert ok
    view = lambda dx: frame[40:-40, 40 + dx:frame.shape[1] - 40 + dx].copy()  # noqa: E731
    try:
        for i in range(12):
            slots.put("knocked", NOW + i, view(0 if i < 4 else 34))  # from 4 s, what it shows 34 px left
            slots.put("still", NOW + i, view(0))
            wait_until(lambda: readers["knocked"].health.analysed == i + 1 and readers["still"].health.analysed == i + 1,
                       20, message=f"frame {i}")
        cams = status("b1", readers, slots, {})["cameras"]
        assert cams["knocked"]["view_shift_pct"][0] == pytest.approx(-100 * 34 / 688, abs=0.5), cams["knocked"]
        assert cams["still"]["view_shift_pct"] == [0.0, 0.0]
        assert cams["knocked"]["view_angle_deg"] == 0.0  # moved, not turned
        gauge = analyser.metrics.registry.get_sample_value("xl_edge_view_shift_ratio", {"camera": "knocked", "axis": "x"})
        assert gauge == pytest.approx(-34 / 688, abs=0.005)
        # and a camera_fault incident, a case for whoever keeps the cameras: to be re-aimed
        faults = [m for _, m in analyser.publisher.sent if m["type"] == "camera_fault"]
        assert [(m["camera"], m["state"], m["attributes"]["label"]) for m in faults] == [("knocked", "start", "shifted")]
        shift = faults[0]["attributes"]
        assert [shift["view_shift_x_pct"], shift["view_shift_y_pct"]] == cams["knocked"]["view_shift_pct"]
    finally:
        stop.set()
        analyser.join(5)


@pytest.mark.slow
def test_a_camera_knocked_while_its_box_was_down_is_seen_as_moved_when_it_comes_back(tmp_path, caplog):
    """In process, the real analyser and pipelines: the box keeps each camera's first picture under its
    data folder; started again after the camera was knocked, it lines up on that, not on the knocked
    picture (which would leave the zones off the ground they were drawn on for good)."""
    import cv2

    from edge.box import view_file

    ok, frame = cv2.VideoCapture(str(CLIP)).read()
    assert ok
    view = lambda dx: frame[40:-40, 40 + dx:frame.shape[1] - 40 + dx].copy()  # noqa: E731

    def run(dx: float, frames: int):
        analyser, readers, slots, stop = in_process_analyser(tmp_path, ["cam"], lambda real, i, s: real(i, s))
        try:
            for i in range(frames):
                slots.put("cam", NOW + i, view(dx))
                wait_until(lambda: readers["cam"].health.analysed == i + 1, 20, message=f"frame {i}")
            return analyser.pipelines["cam"].alignment.shift
        finally:
            stop.set()
            analyser.join(5)

    assert run(0, 3) == (0.0, 0.0)
    (kept,) = (tmp_path / "views").glob("cam-*.png")
    assert kept == view_file(tmp_path, analyser_camera(tmp_path))
    assert run(34, 8)[0] == pytest.approx(-34 / 688, abs=0.005)  # knocked while down: followed
    kept.write_bytes(b"not a picture")  # a damaged file: the next first picture is the view
    assert run(34, 8) == (0.0, 0.0)
    assert "not a kept camera view (unreadable)" in caplog.text


@pytest.mark.parametrize("broken, says", [
    ({"json": "[" * 100_000 + "]" * 100_000}, "not a kept picture size"),  # raised RecursionError: the box did not start
    ({"json": '{"picture_size": [true, 480]}'}, "not a kept picture size"),  # taken for 1 x 480: a wrong cropped fault
    ({"json": "a folder"}, "not a kept picture size"),
    ({"png": "a folder"}, "not a kept camera view (unreadable)"),
    ({"png": b"not a picture"}, "not a kept camera view (unreadable)")],
    ids=["size nested too deep", "size true", "size a folder", "view a folder", "view not a picture"])
def test_a_cameras_broken_kept_view_costs_that_camera_its_view_alone(tmp_path, caplog, broken, says):
    """Each camera's kept view and size are its own files: one broken is that camera's next picture taken for its
    first, with a warning naming the file (the camera's id begins its name); the other cameras keep theirs."""
    import threading

    import numpy as np

    from edge.alignment import SIZE
    from edge.box import Analyser, CameraReader, Metrics, Slots, save_view, view_file
    from edge.config import parse_config
    from edge.detector import load_detectors

    config = parse_config({"box": "b1", "data_dir": str(tmp_path),
                           "cameras": [camera(c, "x.mp4", zones=[KERB]) for c in ("good", "bad")]})
    views = {cam.id: view_file(tmp_path, cam) for cam in config.cameras}
    for path in views.values():
        save_view(path, np.full(SIZE[::-1], 90, np.float32), (640, 480))
    (kind, content), = broken.items()
    path = views["bad"].with_suffix(f".{kind}")
    if content == "a folder":
        path.unlink()
        path.mkdir()
    else:
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    slots, stop, metrics = Slots(), threading.Event(), Metrics()
    readers = {c.id: CameraReader(c, slots, metrics, stop) for c in config.cameras}
    analyser = Analyser(config, load_detectors(config), readers, slots, publisher=Sent(), metrics=metrics, stop=stop)
    good, bad = analyser.pipelines["good"], analyser.pipelines["bad"]
    assert good.alignment.reference is not None and good.first_shape == (640, 480)
    assert bad.first_shape is None and (bad.alignment.reference is None) == (kind == "png")
    assert f"{path}: {says}" in caplog.text


def test_a_camera_never_read_since_its_zones_were_drawn_has_its_faults_held_for_review(tmp_path):
    """An installer's tries (a typo in the url, a wrong password, a camera not yet on its pole) raised an offline fault
    a minute after the box started, and the gateway sent video maintenance, with a day's deadline, to a camera that had
    never worked: a camera with no first picture since its zones were drawn (none kept, none taken in this run) has its
    faults held for a person, saying why (a lens cap left on: blocked); one read before has them go as they did."""
    import numpy as np

    from edge.alignment import SIZE
    from edge.box import Analyser, CameraReader, Lost, Metrics, Slots, save_view, view_file
    from edge.config import parse_config
    from edge.detector import load_detectors
    from edge.pipeline import NEVER_READ

    ids = ("new", "kept", "read", "capped")
    config = parse_config({"box": "b1", "data_dir": str(tmp_path),
                           "cameras": [camera(c, "x.mp4", zones=[KERB]) for c in ids]})
    save_view(view_file(tmp_path, config.cameras[1]), np.full(SIZE[::-1], 90, np.float32), (640, 480))
    slots, stop, metrics = Slots(), threading.Event(), Metrics()
    readers = {c.id: CameraReader(c, slots, metrics, stop) for c in config.cameras}
    analyser = Analyser(config, load_detectors(config), readers, slots, publisher=Sent(), metrics=metrics, stop=stop)
    picture = np.random.default_rng(1).integers(0, 255, (240, 320, 3), np.uint8)
    analyser.pipelines["read"].observe(NOW, picture, [])  # its first picture, in this run
    capped = [o.message for t in range(12) for o in analyser.pipelines["capped"].observe(
        NOW + t, np.full((240, 320, 3), 20, np.uint8), [])]  # shows nothing from its start: never read
    assert [(m["state"], m["attributes"]["label"], m["attributes"]["needs_review"], m["attributes"]["reason"])
            for m in capped] == [("start", "blocked", True, NEVER_READ)]
    for c in ids[:3]:
        slots.put(c, NOW + 20, Lost("401 Unauthorized"))
    analyser._round()
    faults = {m["camera"]: m["attributes"] for _, m in analyser.publisher.sent if m["type"] == "camera_fault"}
    assert faults["new"]["needs_review"] is True and faults["new"]["reason"] == f"401 Unauthorized; {NEVER_READ}"
    for c in ("kept", "read"):
        assert "needs_review" not in faults[c] and faults[c]["reason"] == "401 Unauthorized", c


@pytest.mark.slow
def test_a_camera_turned_while_its_box_was_down_is_a_moved_fault_when_it_comes_back(tmp_path):
    """Turned by a fifth of its width while its box was down: the picture check learns the view it comes
    back with, so only the kept first picture tells that the zones now lie on other ground."""
    import cv2

    ok, frame = cv2.VideoCapture(str(CLIP)).read()
    assert ok
    view = lambda dx: frame[40:-40, 150 + dx:550 + dx].copy()  # noqa: E731

    def run(dx: float, frames: int) -> list[tuple[str, str]]:
        analyser, readers, slots, stop = in_process_analyser(tmp_path, ["cam"], lambda real, i, s: real(i, s))
        try:
            for i in range(frames):
                slots.put("cam", NOW + i, view(dx))
                wait_until(lambda: readers["cam"].health.analysed == i + 1, 20, message=f"frame {i}")
            return [(m["state"], m["attributes"]["label"]) for _, m in analyser.publisher.sent
                    if m["type"] == "camera_fault"]
        finally:
            stop.set()
            analyser.join(5)

    assert run(0, 3) == []
    assert run(80, 8) == [("start", "moved")]  # 80 of 400 pixels
    assert run(2, 8) == []  # re-aimed


@pytest.mark.slow
def test_a_camera_cropped_to_another_shape_while_its_box_was_down_is_a_moved_fault_when_it_comes_back(tmp_path):
    """Its stream cropped from 4:3 to 16:9 while its box was down: the box took the cropped picture for its first,
    and its zones lay on other ground, unseen. The first picture's size is kept beside its view."""
    import cv2

    ok, frame = cv2.VideoCapture(str(CLIP)).read()
    assert ok

    def run(picture, frames: int) -> list[tuple[str, str, str | None]]:
        analyser, readers, slots, stop = in_process_analyser(tmp_path, ["cam"], lambda real, i, s: real(i, s))
        try:
            for i in range(frames):
                slots.put("cam", NOW + i, picture.copy())
                wait_until(lambda: readers["cam"].health.analysed == i + 1, 20, message=f"frame {i}")
            return [(m["state"], m["attributes"]["label"], m["attributes"].get("first_picture_size"))
                    for _, m in analyser.publisher.sent if m["type"] == "camera_fault"]
        finally:
            stop.set()
            analyser.join(5)

    height, width = frame.shape[:2]
    assert run(frame, 3) == []
    assert json.loads(next((tmp_path / "views").glob("cam-*.json")).read_text()) == {"picture_size": [width, height]}
    cropped = frame[(height - width * 9 // 16) // 2:][:width * 9 // 16]  # 4:3 cut to 16:9
    assert run(cropped, 4) == [("start", "moved", f"{width}x{height}")]


def analyser_camera(tmp_path):
    """The camera ``in_process_analyser`` makes, as its config has it."""
    from edge.config import parse_config

    return parse_config({"box": "b1", "data_dir": str(tmp_path), "cameras": [camera("cam", "x.mp4", zones=[KERB])]}
                        ).cameras[0]


def test_a_cameras_kept_view_goes_with_its_zones(tmp_path):
    """Zones drawn again are drawn on another picture: its first picture is kept anew. Another address
    (a camera replaced on its pole, a stream on another port) still watches the same ground."""
    from edge.box import view_file

    cam = analyser_camera(tmp_path)
    moved_zone = cam.zones[0].model_copy(update={"polygon": [(0.7, 0.03), (0.97, 0.03), (0.97, 0.22)]})
    assert view_file(tmp_path, cam) == view_file(tmp_path, cam.model_copy())
    assert view_file(tmp_path, cam) != view_file(tmp_path, cam.model_copy(update={"zones": [moved_zone]}))
    assert view_file(tmp_path, cam) == view_file(tmp_path, cam.model_copy(update={"url": "rtsp://other/x"}))


@pytest.mark.slow
def test_a_file_given_as_a_cameras_url_plays_in_real_time(tmp_path, broker):
    """Read as fast as it could be, a file camera's incidents carried times ahead of the wall clock (a minute
    after 30 s), which the gateway refuses past 5 minutes."""
    kerb = {"id": "kerb", "types": ["illegal_parking"], "polygon": [[0.80, 0.03], [0.97, 0.03], [0.97, 0.22], [0.80, 0.22]],
            "dwell_s": 8}
    cfg = write_edge(tmp_path, broker.port, [camera("file", str(CLIP), zones=[kerb])])
    watcher = Watcher(broker.port, ["xl/v1/fault-box/+/incident"])
    began = time.time()
    edge = services.xueliang(["edge", "--config", str(cfg)], tmp_path / "edge.log")
    try:
        wait_until(lambda: watcher.messages, 60, message="the parked van's incident")
        arrived = time.time()
        import json

        start = json.loads(watcher.messages[0][1])
        observed = wire.parse_time(start["observed_at"])
        assert start["state"] == "start" and observed <= arrived + 1.0, (observed - arrived)
        assert arrived - began >= 8  # its dwell, played in real time (read at full speed: under 3 s)
    finally:
        edge.terminate()
        edge.wait(10)
        watcher.stop()


def offline_faults(analyser) -> list[tuple[str, dict]]:
    return [(topic, m) for topic, m in analyser.publisher.sent
            if m["type"] == "camera_fault" and m["attributes"]["label"] == "offline"]


@pytest.mark.slow
def test_an_offline_fault_says_why_and_its_case_shows_it(tmp_path, monkeypatch):
    """The offline fault carried no reason: a folder for a url, a wrong password and a dead camera looked the same
    on the wire, and maintenance went to the pole for what a URL or a password would fix."""
    from fastapi.testclient import TestClient

    from edge import box
    from edge.config import parse_config
    from edge.pipeline import NEVER_READ, CameraPipeline
    from gateway.api import create_app
    from gateway.auth import new_token
    from gateway.config import TABLES_DIR, load_tables
    from gateway.ingest import Ingest
    from gateway.storage import Store

    monkeypatch.setattr(box, "CAMERA_LOST_AFTER_S", 1.0)
    folder = tmp_path / "videos"
    folder.mkdir()
    analyser, readers, slots, stop = in_process_analyser(tmp_path, ["gate"], lambda real, i, s: real(i, s),
                                                         url=str(folder), grid="HQ-DZG-10D-07")
    readers["gate"].start()
    try:
        wait_until(lambda: offline_faults(analyser), 20, message="the offline fault")
    finally:
        stop.set()
        analyser.join(5)
    topic, fault = offline_faults(analyser)[0]
    reason = fault["attributes"]["reason"]
    assert fault["state"] == "start" and "Is a directory" in reason and str(folder) in reason, reason
    # a longer error is cut to what the wire takes (refused by the schema, the fault was lost)
    fresh = CameraPipeline(parse_config({"box": "b1", "cameras": [camera("gate", "x.mp4")]}),
                           analyser.pipelines["gate"].camera, analyser.detectors)
    cut = fresh.camera_lost(time.time(), "cannot open " + "x" * 1000)[0].message["attributes"]["reason"]
    assert len(cut) == wire.MAX_ATTRIBUTE_CHARS and cut.startswith("cannot open xxx") and cut.endswith(NEVER_READ)
    tables = load_tables(TABLES_DIR / "demo.yaml")
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    assert Ingest(store, tables, clock=time.time).handle(topic, json.dumps(fault).encode()) == "case_created"
    app = create_app(store, tables)
    token = new_token(store, "root", "admin")
    case = TestClient(app).get("/cases/1", headers={"Authorization": f"Bearer {token}"}).json()
    assert case["type"] == "camera_fault" and case["incidents"][0]["reason"] == reason
    # never read since its zones were drawn: held for a person, no department sent to the pole
    assert reason.endswith(NEVER_READ) and case["state"] == "pending_review", case["state"]
    client = TestClient(app)
    client.post("/ui/login", data={"token": token})
    assert f"<p class=reason>摄像机报告的原因: {html.escape(reason)}</p>" in client.get("/ui/cases/1").text


@pytest.mark.slow
def test_a_camera_that_keeps_failing_is_logged_on_its_first_failure_and_each_change_not_each_try(
        tmp_path, monkeypatch, caplog):
    """A camera whose url was a folder was tried every 1.5 s with a warning each time: 40 lines a minute."""
    from edge import box
    from edge.config import parse_config

    monkeypatch.setattr(box, "CAMERA_LOST_AFTER_S", 2.0)
    folder = tmp_path / "videos"
    folder.mkdir()
    config = parse_config({"box": "b1", "cameras": [camera("folder", str(folder))]})
    stop = threading.Event()
    reader = box.CameraReader(config.cameras[0], box.Slots(), box.Metrics(), stop)
    caplog.set_level(logging.DEBUG, logger="edge.box")
    reader.start()
    try:
        wait_until(lambda: reader.health.reconnects >= 5, 20, message="five tries")  # about 4.5 s
    finally:
        stop.set()
    said = [r.getMessage() for r in caplog.records if r.name == "edge.box" and r.levelno == logging.WARNING]
    assert [m.split(" (")[0] for m in said] == ["camera folder reconnecting", "camera folder offline"], said
    assert "Is a directory" in said[0]
    assert sum(1 for r in caplog.records if r.levelno == logging.DEBUG and "camera folder" in r.getMessage()) >= 3


def test_a_cameras_error_with_a_newline_is_one_line_of_the_boxs_log(tmp_path, caplog):
    """A camera's error is text the box did not write (FFmpeg's, a camera server's, the file name in it): a newline
    in it made a second line that read as the box's own once the log's JSON was read, and a right-to-left override
    turned the rest around. The box logs it on one line, those characters escaped as ``repr`` writes them."""
    from edge import box
    from edge.config import parse_config
    from xueliang.cli import JsonLines

    url = str(tmp_path / "gate\n2026-12-07 12:00:00 INFO camera gate online\u202e.mp4")  # no such file
    config = parse_config({"box": "b1", "cameras": [camera("gate", url)]})
    stop = threading.Event()
    reader = box.CameraReader(config.cameras[0], box.Slots(), box.Metrics(), stop)
    caplog.handler.setFormatter(JsonLines())
    caplog.set_level(logging.WARNING, logger="edge.box")
    reader.start()
    try:
        wait_until(lambda: "camera gate reconnecting" in caplog.text, 10, message="the first failure")
    finally:
        stop.set()
    (line,) = caplog.text.splitlines()
    msg = json.loads(line)["msg"]
    assert msg.startswith(f"camera gate reconnecting (cannot open {tmp_path}/gate\\n2026-12-07 12:00:00 INFO camera "
                          "gate online\\u202e.mp4: "), msg
    assert msg.isprintable() and "No such file or directory" in msg, msg
    assert "\n" in reader.health.last_error  # the heartbeat's error as it was (the gateway's pages replace them)


def test_a_camera_back_online_keeps_its_last_error_with_when_it_was(tmp_path):
    """A camera back online still showed its last error (online, "No such file"), with nothing to tell an old
    error from a new one: the heartbeat says when it was, so a camera that comes and goes still says why."""
    from edge import box
    from edge.config import parse_config

    later = tmp_path / "later.mp4"
    config = parse_config({"box": "b1", "cameras": [camera("later", str(later))]})
    stop, slots = threading.Event(), box.Slots()
    reader = box.CameraReader(config.cameras[0], slots, box.Metrics(), stop)
    began = time.time()
    reader.start()
    try:
        wait_until(lambda: reader.health.last_error, 10, message="the first failure")
        failed = time.time()
        later.write_bytes(CLIP.read_bytes())
        wait_until(lambda: reader.health.state == "online", 20, message="the camera online")
        cam = box.status("b1", {"later": reader}, slots, {})["cameras"]["later"]
    finally:
        stop.set()
    assert cam["state"] == "online" and "No such file or directory" in cam["last_error"], cam
    assert began - 0.5 <= wire.parse_time(cam["last_error_at"]) <= failed + 0.5, (cam, began, failed)


@pytest.mark.slow
def test_a_file_camera_played_to_its_end_is_played_again_without_a_failure(tmp_path, caplog):
    """A file loops, as README says: at each end it was a failure ("stream ended"), a WARNING, a reconnect counted
    and its camera's online gauge at 0, and the boxes page showed the error. It says so once at INFO: each end was
    an INFO line, one every 1.5 s here, for good."""
    from edge import box
    from edge.config import parse_config

    clip = tmp_path / "short.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-t", "1.5", "-i", str(CLIP), "-c:v", "libx264", "-g", "5",
                    str(clip)], check=True)
    config = parse_config({"box": "b1", "cameras": [camera("file", str(clip), analysis_interval_s=0.5)]})
    stop, slots = threading.Event(), box.Slots()
    reader = box.CameraReader(config.cameras[0], slots, box.Metrics(), stop)
    caplog.set_level(logging.DEBUG, logger="edge.box")
    reader.start()
    times = []
    try:
        deadline = time.time() + 6.0
        while time.time() < deadline:
            if "file" in (got := slots.take_all(timeout=0.5)):
                times.append(got["file"][0])
    finally:
        stop.set()
    ends = [r.levelname for r in caplog.records if r.name == "edge.box" and "played again" in r.getMessage()]
    assert len(ends) >= 2 and ends[0] == "INFO" and set(ends[1:]) == {"DEBUG"}, ends
    assert len(times) >= 8 and all(b > a for a, b in zip(times, times[1:]))  # its clock runs on across the ends
    assert (reader.health.reconnects, reader.health.last_error, reader.health.state) == (0, None, "online")
    assert "stream ended" not in caplog.text


@pytest.mark.slow
def test_a_file_camera_shorter_than_its_key_frame_spacing_plays_its_length_each_pass(tmp_path):
    """A clip shorter than its key-frame spacing (a probe's 4 s HEVC clip, with the encoder's 10 s; here 1.5 s) gives
    ``sampling: auto`` its first frame alone: its reader waited for that frame only and played the clip again 0.5 s
    on (the 4 s clip at eight times its speed). A pass takes the file's length now, whatever is analysed of it."""
    from edge import box
    from edge.config import parse_config

    clip = tmp_path / "short.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-t", "1.5", "-i", str(CLIP), "-vf", "scale=320:-2", "-an",
                    "-c:v", "libx265", "-preset", "ultrafast", "-g", "250", "-x265-params", "log-level=error:scenecut=0",
                    str(clip)], check=True)
    config = parse_config({"box": "b1", "cameras": [camera("short", str(clip))]})
    passes = []

    class Kept(box.Slots):  # every frame's time, not only the latest
        def put(self, camera_id, t, item):
            passes.append(t)
            return super().put(camera_id, t, item)

    stop = threading.Event()
    reader = box.CameraReader(config.cameras[0], Kept(), box.Metrics(), stop)
    reader.start()
    try:
        wait_until(lambda: len(passes) >= 3, 15, interval=0.05, message="three passes")
    finally:
        stop.set()
    gaps = [b - a for a, b in zip(passes, passes[1:3])]
    assert all(1.2 < gap < 2.5 for gap in gaps), gaps  # one frame a pass (its key frame), each 1.5 s on


@pytest.mark.slow
def test_what_a_file_camera_says_of_its_file_is_said_once_not_at_each_pass(tmp_path, caplog):
    """A file camera is read again at each end, and each read logged its lines about the file at INFO again ("2 video
    streams ...", "no key frame within ..."): for a short clip, two lines every few seconds for good."""
    from edge import box
    from edge.config import parse_config

    clip = tmp_path / "two-streams.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=s=320x240:r=10:d=0.6", "-f",
                    "lavfi", "-i", "testsrc=s=160x120:r=10:d=0.6", "-map", "0", "-map", "1", "-c:v", "libx264",
                    "-preset", "ultrafast", "-g", "250", str(clip)], check=True)
    config = parse_config({"box": "b1", "cameras": [camera("file", str(clip), max_keyframe_gap_s=0.25)]})
    stop = threading.Event()
    reader = box.CameraReader(config.cameras[0], box.Slots(), box.Metrics(), stop)
    caplog.set_level(logging.DEBUG)
    reader.start()
    try:
        wait_until(lambda: caplog.text.count("played again") >= 2, 15, interval=0.05, message="two ends")
    finally:
        stop.set()
    for words in ("2 video streams", "no key frame within"):
        levels = [r.levelname for r in caplog.records if r.name == "edge.source" and words in r.getMessage()]
        assert levels[0] == "INFO" and set(levels[1:]) == {"DEBUG"} and len(levels) >= 2, (words, levels)


def test_a_camera_waiting_on_a_source_that_sends_nothing_says_so_once_and_in_its_heartbeat(
        tmp_path, monkeypatch, caplog):
    """A pipe no one writes to was reported offline with last_error null, and nothing in the log, for the minute
    before it counted as hung."""
    import os

    from edge import box
    from edge.config import parse_config

    monkeypatch.setattr(box, "OFFLINE_AFTER_S", 0.5)
    pipe = tmp_path / "camera.ts"
    os.mkfifo(pipe)
    config = parse_config({"box": "b1", "cameras": [camera("pipe", str(pipe), analysis_interval_s=0.2)]})
    stop, slots = threading.Event(), box.Slots()
    readers = {"pipe": box.CameraReader(config.cameras[0], slots, box.Metrics(), stop)}
    readers["pipe"].start()
    try:
        time.sleep(1.0)
        for _ in range(3):
            box.look_after(readers, box.box_now())
        cam = box.status("b1", readers, slots, {})["cameras"]["pipe"]
    finally:
        stop.set()
        write_once(pipe)  # its open returns
    assert cam["state"] == "offline", cam
    assert "s and no error: its open or read has not returned (a source that sends nothing" in cam["last_error"], cam
    assert wire.parse_time(cam["last_error_at"]) <= time.time()
    assert caplog.text.count("camera pipe offline: no frame for") == 1, caplog.text


@pytest.mark.slow
def test_an_rtsp_stream_that_stops_mid_way_fails_its_read_at_its_packet_wait(tmp_path, monkeypatch):
    """A camera whose stream stops mid-way (the test server stopped: its session sends nothing more) fails its read
    once it has waited its packet wait (KEY_FRAME_WAIT_S, 15 s, here 2 s), as the README says. FFmpeg's demuxer
    waited it twice (its first timeout handed over the frame its parser held): it failed 4.3 s after the stop."""
    from edge import source

    monkeypatch.setattr(source, "KEY_FRAME_WAIT_S", 2.0)
    with services.rtsp_server({"cam": CLIP}, tmp_path) as server:
        frames = source.open_frames(f"rtsp://127.0.0.1:{server.port}/cam", read_timeout_s=1.0)
        next(frames), next(frames)
        server.signal(signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            with pytest.raises(source.SourceError, match="read failed") as failure:
                for _ in frames:
                    pass
            failed = time.monotonic() - stopped
        finally:
            server.signal(signal.SIGCONT)
    assert 2.0 <= failed < 3.2, failed
    assert str(failure.value) == f"rtsp://127.0.0.1:{server.port}/cam: read failed: no packet within 2 s"


@pytest.mark.slow
def test_a_camera_whose_stream_stops_is_lost_counted_from_its_last_frame(tmp_path, monkeypatch):
    """An RTSP camera's read waits KEY_FRAME_WAIT_S (15 s) for a packet before it fails, and the camera was lost
    CAMERA_LOST_AFTER_S (60 s) after that failure: 75 s and more after its last frame, where its operators are told
    60. It is lost counted from its last frame (here: its read waits 3 s and more, it is lost 3 s on)."""
    from edge import box, source
    from edge.config import parse_config

    monkeypatch.setattr(box, "CAMERA_LOST_AFTER_S", 3.0)
    monkeypatch.setattr(source, "KEY_FRAME_WAIT_S", 3.0)
    server = services.rtsp_server({"cam": CLIP}, tmp_path).start()
    config = parse_config({"box": "b1", "cameras": [camera("stops", f"rtsp://127.0.0.1:{server.port}/cam")]})
    marks = []

    class Kept(box.Slots):
        def put(self, camera_id, t, item):
            if isinstance(item, box.Lost):
                marks.append((box.box_now(), reader.health.reconnects))
            return super().put(camera_id, t, item)

    stop = threading.Event()
    reader = box.CameraReader(config.cameras[0], Kept(), box.Metrics(), stop)
    reader.start()
    try:
        wait_until(lambda: reader.health.state == "online", 30, message="the camera online")
        server.signal(signal.SIGSTOP)  # its session sends nothing more, and a new one is answered by no one
        wait_until(lambda: marks, 30, message="the camera lost")
        last = reader.health.last_frame_at
    finally:
        stop.set()
        server.signal(signal.SIGCONT)
        server.stop()
    # its read failed 3 s or more after its last frame: lost there, at its first failure (it was lost at the
    # first failure 3 s after that one, a try or two on)
    (lost_at, failures) = marks[0]
    assert failures == 1 and lost_at - last >= 3.0, (failures, lost_at - last)


def test_a_heartbeats_faults_are_the_fault_incidents_open(tmp_path):
    """The heartbeat's ``faults`` said what the last frame showed, the incidents what lasted: a picture cropped to
    16:9 a few seconds and back showed ``faults=[]`` at once while its moved incident stayed open until cleared 5 s
    later, and one whose shape flipped at each key frame (a stream whose headers disagree) flipped the heartbeat
    each second under one open incident. A lost camera's picture faults end, and leave the heartbeat with them."""
    import cv2
    import numpy as np

    from edge.box import Lost

    ok, frame = cv2.VideoCapture(str(CLIP)).read()
    assert ok
    wide = np.ascontiguousarray(frame[72:504])  # 768x432 of the 768x576 picture
    shapes = [frame] * 3 + [wide] * 3 + [frame] * 6 + [wide, frame, wide] + [frame] * 2
    analyser, readers, slots, stop = in_process_analyser(tmp_path, ["cam"], lambda real, i, s: real(i, s))
    seen = []
    try:
        for i, image in enumerate(shapes + [None]):
            slots.put("cam", NOW + i, Lost("refused") if image is None else image)
            if image is not None:
                wait_until(lambda: readers["cam"].health.analysed == i + 1, 20, 0.01, message=f"frame {i}")
            else:
                wait_until(lambda: any(m["end_reason"] == "camera_lost" for _, m in analyser.publisher.sent
                                       if m["type"] == "camera_fault"), 20, 0.01, message="the camera lost")
            opened = {}
            for _, m in analyser.publisher.sent:
                if m["type"] == "camera_fault" and m["attributes"]["label"] != "offline":
                    opened[m["incident_id"]] = m["attributes"]["label"] if m["state"] != "end" else None
            seen.append((readers["cam"].health.faults, sorted(v for v in opened.values() if v)))
    finally:
        stop.set()
        analyser.join(5)
    assert [said for said, _ in seen] == [opened for _, opened in seen]
    # cropped at 3 s, back at 6 s, cleared at 10 s; flipping from 12 s, until the camera is lost at 17 s
    assert [said for said, _ in seen] == [[]] * 3 + [["moved"]] * 7 + [[]] * 2 + [["moved"]] * 5 + [[]]
