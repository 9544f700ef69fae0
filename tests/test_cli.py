"""The `xueliang detect` command on real pictures and real models."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from .conftest import REPO


@pytest.mark.parametrize("model", ["litter_yolov8n_320", "ssd_mobilenet_v2_coco"])
@pytest.mark.slow
def test_detect_prints_an_empty_list_when_nothing_is_found(tmp_path, model):
    """A plain grey picture has nothing above the threshold: an empty list, not a KeyError."""
    image = tmp_path / "grey.jpg"
    cv2.imwrite(str(image), np.full((240, 320, 3), 128, np.uint8))
    run = subprocess.run([sys.executable, "-m", "xueliang.cli", "detect", str(image), "--model", model, "--json"],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == []


def xueliang(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xueliang.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def png_claiming(path, width: int, height: int) -> None:
    """A small PNG whose header claims ``width`` x ``height``: grey, deflated to a few hundred kB per 10^8 pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compressobj(9)
    body = b"".join(rows.compress(b"\0" + b"\x80" * width) for _ in range(height)) + rows.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))


@pytest.mark.slow
def test_detect_refuses_a_picture_too_large_to_be_a_cameras_without_decoding_it(tmp_path):
    bomb = tmp_path / "bomb.png"
    png_claiming(bomb, 9000, 9000)  # 81 MP: over the 64 MP limit; OpenCV's own is 1024 MP
    run = xueliang("detect", str(bomb), "--json")
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert f"error: cannot read image {bomb}: over 67,108,864 pixels, or damaged" in run.stderr


@pytest.mark.slow
@pytest.mark.parametrize("progressive", [0, 1], ids=["baseline", "progressive"])
def test_detect_refuses_a_jpeg_cut_off_and_reads_it_whole(tmp_path, progressive):
    """Cut at 60 %, a camera's frame decoded with its lower part grey, and was analysed without a word (libjpeg's
    "Premature end of JPEG file" on stderr the only hint)."""
    from .conftest import CLIP

    ok, frame = cv2.VideoCapture(str(CLIP)).read()
    assert ok
    whole, cut = tmp_path / "whole.jpg", tmp_path / "cut.jpg"
    cv2.imwrite(str(whole), frame, [cv2.IMWRITE_JPEG_PROGRESSIVE, progressive])
    data = whole.read_bytes()
    cut.write_bytes(data[:len(data) * 6 // 10])
    run = xueliang("detect", str(cut), "--json")
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert f"error: cannot read image {cut}: the JPEG is cut off (it ends before its end-of-image marker)" in run.stderr
    run = xueliang("detect", str(whole), "--json")
    assert run.returncode == 0 and "car" in [d["label"] for d in json.loads(run.stdout)], run.stderr[-2000:]


@pytest.mark.slow
def test_detect_with_the_config_of_a_camera_watching_litter_prints_its_crops(tmp_path):
    import yaml

    image = tmp_path / "frame.jpg"
    cv2.imwrite(str(image), np.full((576, 768, 3), 128, np.uint8))
    zone = {"id": "kerb", "types": ["garbage"], "polygon": [[0.1, 0.5], [0.9, 0.5], [0.9, 0.9], [0.1, 0.9]]}
    config = tmp_path / "edge.yaml"
    config.write_text(yaml.safe_dump({"box": "b1", "cameras": [{"id": "c1", "url": "x", "grid": "G-1",
                                                                "zones": [zone]}]}))
    run = xueliang("detect", str(image), "--json", "--config", str(config))
    assert run.returncode == 0, run.stderr[-2000:]  # it stopped on "no litter detector was given"
    assert "camera c1: 768x576, vehicle model on" in run.stderr and json.loads(run.stdout) == []


@pytest.mark.parametrize("name, content, says", [
    ("gone.jpg", None, "no such file"),
    ("folder.jpg", "folder", "is a folder; name the file"),
    ("empty.jpg", b"", "the file is empty (0 bytes)"),
    ("notes.jpg", "camera gate-3 frame".encode(), "not a picture OpenCV decodes (JPEG, PNG, BMP, TIFF, WebP), or a "
                                                 "damaged one"),
])
def test_detect_says_why_it_cannot_read_a_picture(tmp_path, capsys, name, content, says):
    """"cannot read image" was all it said, of a file not there, a folder, an empty file and a text alike."""
    from xueliang.cli import main

    path = tmp_path / name
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    assert main(["detect", str(path)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: cannot read image {path}: {says}"


@pytest.mark.slow  # the detect command in a process of its own, its models loaded
def test_detect_refuses_a_named_pipe_rather_than_wait_for_a_writer(tmp_path):
    """cv2.imread cannot read a pipe, and waited for good on one no program writes to."""
    pipe = tmp_path / "frame.jpg"
    os.mkfifo(pipe)
    run = xueliang("detect", str(pipe), timeout=30)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert f"error: cannot read image {pipe}: is not a file (a pipe or a device); save the picture to a file" \
        in run.stderr


@pytest.mark.parametrize("score", ["nan", "0", "1.5", "-0.1", "high"])
def test_detect_refuses_a_score_threshold_that_is_not_between_0_and_1(score):
    run = xueliang("detect", "any.jpg", "--min-score", score)
    assert run.returncode == 2 and "error: argument --min-score:" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.slow
@pytest.mark.parametrize("start, expected", [
    ("yesterday", "error: --start yesterday: time 'yesterday' is not a real time"),
    ("1970-01-01T00:00:00Z", "error: --start 1970-01-01T00:00:00Z: time '1970-01-01T00:00:00Z' is outside 2000..2099"),
])
def test_replay_names_a_start_time_the_wire_cannot_carry(edge_config_file, start, expected):
    run = xueliang("replay", str(REPO / "fixtures" / "videos" / "campus-gate.mp4"), "--config", str(edge_config_file),
                   "--camera", "campus-gate", "--start", start)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert expected in run.stderr


@pytest.mark.slow
def test_a_gateway_only_install_names_its_config_errors(tmp_path):
    """Without the edge's packages (the ``gateway`` extra alone), the error handler's own import of the edge's
    config failed, and a config mistake came out as two chained tracebacks."""
    bad = tmp_path / "gateway.yaml"
    bad.write_text("database: 5\n")
    block = "import sys\nfor m in ('supervision', 'cv2', 'onnxruntime', 'av'): sys.modules[m] = None\n"
    run = subprocess.run([sys.executable, "-c", block + "from xueliang.cli import main\n"
                          f"sys.exit(main(['gateway', '--config', {str(bad)!r}]))"],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert f"error: {bad}: database: is read by YAML as a number, and this setting is text" in run.stderr


@pytest.mark.slow
def test_the_demo_empties_only_a_folder_it_made(tmp_path):
    kept = tmp_path / "eval" / "results.json"
    kept.parent.mkdir()
    kept.write_text("{}")
    run = xueliang("demo", "--once", "--data", str(tmp_path), "--timeout", "1")
    assert run.returncode == 2 and "a folder with files the demo did not make" in run.stderr, run.stderr[-2000:]
    assert kept.read_text() == "{}"  # `--data data` from the repository root had wiped data/eval


@pytest.mark.slow
def test_the_demo_on_a_taken_port_says_so_before_printing_anything_else(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        run = xueliang("demo", "--once", "--data", str(tmp_path / "demo"), "--port", str(port), "--timeout", "1")
    assert run.returncode == 2 and run.stdout == "", run.stdout[-2000:]  # it printed tokens for the other server
    assert f"error: --port {port}: cannot listen on 127.0.0.1" in run.stderr


def children_of(pid: int) -> list[int]:
    """The ids of the live processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit():
                stat = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
                if int(stat[1]) == pid and stat[0] != "Z":
                    found.append(int(entry))
        except (OSError, IndexError, ValueError):
            pass
    return found


def alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_a_second_demo_on_a_running_demos_folder_is_refused_and_a_stopped_demo_leaves_no_process(tmp_path):
    """A second demo on another port emptied the first's folder under it (its database, its broker's files); a
    demo ended with SIGTERM (a service manager, a closed terminal) left its broker, cameras, gateway and edge
    running, each in a session of its own."""
    import signal
    import socket
    from xueliang.services import free_port

    from .conftest import wait_until

    data, children = tmp_path / "demo", []
    first = subprocess.Popen([sys.executable, "-m", "xueliang.cli", "demo", "--data", str(data), "--port",
                              str(free_port())], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    try:
        for line in first.stdout:
            if line.startswith("gateway API"):
                break
        else:
            pytest.fail(f"the demo ended with {first.wait()} before its gateway answered")
        database = data / "gateway" / "gateway.sqlite"
        inode = database.stat().st_ino
        second = xueliang("demo", "--once", "--data", str(data), "--port", str(free_port()), "--timeout", "1")
        assert second.returncode == 2 and second.stdout == "", second.stdout[-2000:]
        assert f"error: --data {data}: another xueliang demo is using it" in second.stderr, second.stderr[-2000:]
        assert database.stat().st_ino == inode and (data / "mosquitto" / "mosquitto.conf").exists()
        children = children_of(first.pid)
        assert len(children) == 4, children  # broker, RTSP server, gateway, edge
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 128 + signal.SIGTERM
        wait_until(lambda: not any(map(alive, children)), 15, message="the demo's processes are still running")
        with socket.socket() as s:  # its port is free again
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", int(first.args[first.args.index("--port") + 1])))
    finally:
        for pid in [first.pid, *children_of(first.pid), *children]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("how, says", [
    ("a file", "cannot be made or opened (File exists)"),
    ("read-only", "cannot be made or opened (Read-only file system)"),
])
def test_a_demo_data_folder_it_cannot_use_is_refused_before_anything_starts(tmp_path, how, says):
    import contextlib

    from .test_outbox_full import mounted_tmpfs

    with contextlib.ExitStack() as stack:
        if how == "a file":
            data = tmp_path / "demo"
            data.write_text("notes")
        else:
            data = stack.enter_context(contextlib.contextmanager(mounted_tmpfs)(tmp_path, "1M", "ro", ",ro")) / "demo"
        run = xueliang("demo", "--once", "--data", str(data), "--port", "18093", "--timeout", "1")
    assert run.returncode == 2 and run.stdout == "" and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert f"error: --data {data}: {says}" in run.stderr


@pytest.mark.parametrize("port", ["0", "65536", "99999", "http"])
def test_a_demo_port_that_is_no_port_is_refused(tmp_path, port):
    run = xueliang("demo", "--once", "--data", str(tmp_path / "demo"), "--port", port, "--timeout", "1")
    assert run.returncode == 2 and "error: argument --port:" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "demo").exists()


@pytest.mark.slow
def test_replay_of_a_file_with_no_picture_to_decode_says_so(edge_config_file, tmp_path):
    """A text file named .jpg, or a clip cut off before its first picture, printed nothing and exited 0: read as
    a clip in which nothing happened."""
    text = tmp_path / "frame.jpg"
    text.write_text("hello\n")
    run = xueliang("replay", str(text), "--config", str(edge_config_file), "--camera", "campus-gate")
    assert run.returncode == 2 and run.stdout == "" and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert f"error: {text}: no picture in it could be decoded" in run.stderr


def test_replay_of_a_still_picture_says_it_is_no_video(edge_config_file, tmp_path, capsys):
    """A JPEG named for the video replayed as one frame: nothing printed, exit 0, as a clip in which nothing happened."""
    from xueliang.cli import main

    still = tmp_path / "gate.jpg"
    cv2.imwrite(str(still), np.full((240, 320, 3), 128, np.uint8))
    assert main(["replay", str(still), "--config", str(edge_config_file), "--camera", "campus-gate"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and f"error: {still}: one picture only (a still picture, or a video shorter than the 1 s " \
        "between analysed frames)" in err, err[-2000:]


def test_a_log_line_and_its_traceback_show_no_password():
    """What the box logs of a reader's unforeseen failure (``camera %s reader failed``, with the traceback, in
    edge.box) is the exception's own text: one that quoted the camera's url showed its password in the log, though
    the heartbeat's ``last_error`` of the same failure hid it. Every log line passes ``without_password``."""
    import io
    import logging

    from xueliang.cli import JsonLines

    url = "rtsp://admin:S3cr3t-PW@10.0.0.5:554/Streaming/Channels/101"
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonLines())
    log = logging.getLogger("test.secrets")
    log.addHandler(handler)
    try:
        log.warning("camera gate-3: opening %s", url)
        try:
            raise ValueError(f"no decoder for {url}")
        except ValueError:
            log.exception("camera %s reader failed", "gate-3")
    finally:
        log.removeHandler(handler)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert "S3cr3t" not in out.getvalue(), out.getvalue()
    hidden = url.replace("S3cr3t-PW", "***")
    assert lines[0]["msg"] == f"camera gate-3: opening {hidden}"
    assert lines[1]["msg"] == "camera gate-3 reader failed"
    assert f"ValueError: no decoder for {hidden}" in lines[1]["exc"]


def test_an_exceptions_own_text_is_one_line_of_its_traceback_in_the_log():
    """An exception's text is often another program's (FFmpeg's, a camera server's, a file name): a newline in it kept
    the line's JSON one line, but once ``exc`` was read its text went on in lines of their own, a frame's ("  File
    ...") or another exception's ("KeyError: ...") to look at. Each exception's text in the chain, and each of its
    notes, is one line, escaped as a message is; the traceback's own lines are as Python writes them."""
    import io
    import logging

    from xueliang.cli import JsonLines

    tail = '\n  File "/usr/lib/forged.py", line 1, in <module>\nKeyError: forged\u202e'
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonLines())
    log = logging.getLogger("test.forged")
    log.addHandler(handler)
    try:
        try:
            try:
                raise OSError(f"cannot open gate.mp4{tail}")
            except OSError as exc:
                error = ValueError(f"no decoder{tail}")
                error.add_note(f"camera gate{tail}")
                raise error from exc
        except ValueError:
            log.exception("camera %s reader failed", "gate")
    finally:
        log.removeHandler(handler)
    (line,) = out.getvalue().splitlines()
    lines = json.loads(line)["exc"].splitlines()
    shown = tail.replace("\n", "\\n").replace("\u202e", "\\u202e")
    assert f"OSError: cannot open gate.mp4{shown}" in lines
    assert lines[-2:] == [f"ValueError: no decoder{shown}", f"camera gate{shown}"], lines
    assert not [said for said in lines if "forged" in said and not said.endswith(shown)], lines
    assert lines[0] == "Traceback (most recent call last):" and lines[-3].startswith("    raise error from exc")


@pytest.mark.slow
def test_the_gateways_http_server_logs_as_the_gateway_does_and_never_a_token_in_an_address(tmp_path, broker):
    """uvicorn logged with its own handler: plain lines ("WARNING:  Invalid HTTP request received.") amid the JSON,
    which no password rule saw. A token typed into the address (a page opened as /ui/cases?token=...) must not be
    in the log either: uvicorn's access log would print each request's address."""
    import socket
    import urllib.request

    import yaml

    from xueliang import services

    token = "xl_S3cr3tT0kenInTheAddress"
    port = services.free_port()
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(yaml.safe_dump({"broker": {"port": broker.port}, "database": f"sqlite:///{tmp_path}/gw.sqlite",
                                   "http": {"port": port}}))
    gateway = services.xueliang(["gateway", "--config", str(cfg)], tmp_path / "gateway.log")
    try:
        services.wait_port(port, gateway, "gateway", timeout=30)
        for path in (f"/ui/cases?token={token}", f"/cases?token={token}", f"/health?token={token}"):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10).close()
            except urllib.error.HTTPError:
                pass  # refused or not found: its request line is what an access log prints
        for request in (f"GET /ui/cases?token={token} HTTP/1.1\r\nHost: a b\r\n\0\r\n\r\n",  # no HTTP: uvicorn says so
                        f"GET /ui/cases?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: upgrade\r\n"
                        "Upgrade: h2c\r\n\r\n"):  # an upgrade it does not know: uvicorn says so
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(request.encode())
                assert s.recv(100).startswith(b"HTTP/1.1 ")
    finally:
        gateway.terminate()
        gateway.wait(timeout=15)
    log = (tmp_path / "gateway.log").read_text()
    assert token not in log, log
    assert all(line.startswith("{") for line in log.splitlines()), log  # each line one JSON object, uvicorn's too
    lines = [json.loads(line) for line in log.splitlines()]
    said = {line["msg"] for line in lines if line["logger"] == "uvicorn.error"}
    assert {"Invalid HTTP request received.", "Unsupported upgrade request."} <= said, log


def test_a_gateway_commands_error_does_not_import_the_edge_to_name_it(tmp_path):
    """An error's exit asked every module whose errors are named for its error class, importing each: a gateway
    command's mistyped config imported the edge's config (and scipy with it), ~4 s on a busy box. Only a module
    already imported can have raised its error."""
    code = ("import sys; from xueliang.cli import main; "
            f"rc = main(['gateway', '--config', {str(tmp_path / 'missing.yaml')!r}, '--check']); "
            "print(rc, 'edge.config' in sys.modules, 'scipy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["2", "False", "False"], done.stderr
    assert "missing.yaml: no such file" in done.stderr
