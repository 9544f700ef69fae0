"""A camera's current picture from the command line, for the installer at a box with no monitor: `detect` on a
camera's rtsp:// url, and `snapshot` (each camera's picture with its zones drawn) on the real RTSP test server."""

import json

import pytest

from xueliang import services
from xueliang.cli import main

from .conftest import CLIP


@pytest.fixture(scope="module")
def camera_server(tmp_path_factory):
    """One RTSP test server for the module (about 1 s to start) serving the campus clip as a live camera."""
    with services.rtsp_server({"campus-gate": CLIP}, tmp_path_factory.mktemp("rtsp")) as server:
        yield server


def test_detect_reads_a_cameras_rtsp_url_as_the_box_does(camera_server, capsys):
    """The url was taken for a file's path: "cannot read image rtsp:/user:pw@...: no such file" (its // made one /,
    the password shown); an installer needed ffmpeg to see what the detector sees."""
    assert main(["detect", f"rtsp://user:pw@127.0.0.1:{camera_server.port}/campus-gate", "--json"]) == 0
    assert "car" in [d["label"] for d in json.loads(capsys.readouterr().out)]


def test_detect_on_a_camera_that_cannot_be_opened_says_why_without_its_password(capsys):
    port = services.free_port()  # nothing listens there
    assert main(["detect", f"RTSP://user:pw@127.0.0.1:{port}/s1"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"error: cannot open rtsp://user:***@127.0.0.1:{port}/s1: Connection refused"
    assert "pw" not in err
