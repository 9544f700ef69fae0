"""A camera's current picture from the command line, for the installer at a box with no monitor: `detect` on a
camera's rtsp:// url, and `snapshot` (each camera's picture with its zones drawn) on the real RTSP test server."""

import json

import cv2
import numpy as np
import pytest
import yaml

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


def near_yellow(pixels) -> "np.ndarray":
    """Which pixels are the zones' outline colour, as a JPEG gives it back."""
    from edge.evidence import ZONE_COLOUR

    return np.abs(pixels.astype(int) - ZONE_COLOUR).max(axis=-1) < 60


def on_outline(picture, polygon) -> float:
    """The share of points along ``polygon``'s edges (corners and their labels' ends left out) where the picture
    shows the outline colour within a pixel."""
    h, w = picture.shape[:2]
    hits = []
    for (x1, y1), (x2, y2) in zip(polygon, polygon[1:] + polygon[:1]):
        for f in np.linspace(0.1, 0.9, 17):
            x, y = round((x1 + f * (x2 - x1)) * w), round((y1 + f * (y2 - y1)) * h)
            hits.append(near_yellow(picture[max(0, y - 1):y + 2, max(0, x - 1):x + 2]).any())
    return float(np.mean(hits))


def test_snapshot_writes_each_cameras_picture_with_its_zones_drawn_and_a_dead_camera_fails_alone(
        camera_server, tmp_path, capsys):
    """The installer's only pictures were the 128x96 grey views of data_dir/views/: the zones were drawn blind."""
    kerb = [[0.1, 0.5], [0.5, 0.5], [0.5, 0.8], [0.1, 0.8]]
    footpath = [[0.6, 0.2], [0.9, 0.2], [0.9, 0.45]]
    dead = services.free_port()  # nothing listens there
    config = tmp_path / "box.yaml"
    config.write_text(yaml.safe_dump({"box": "b1", "data_dir": str(tmp_path / "edge"), "cameras": [
        {"id": "gate", "url": f"rtsp://user:pw@127.0.0.1:{camera_server.port}/campus-gate", "grid": "G-1", "zones": [
            {"id": "kerb", "types": ["illegal_parking"], "polygon": kerb},
            {"id": "footpath", "types": ["garbage", "spill"], "polygon": footpath}]},
        {"id": "dead", "url": f"rtsp://user:pw@127.0.0.1:{dead}/s1", "grid": "G-1"},
        {"id": "clip", "url": str(CLIP), "grid": "G-1"}]}))
    out = tmp_path / "pictures"
    assert main(["snapshot", "--config", str(config), "--out", str(out)]) == 1
    said = capsys.readouterr()
    assert sorted(said.out.splitlines()) == [
        f"camera clip: {out / 'clip.jpg'} (768x576, no zones: it detects nothing until zones are drawn)",
        f"camera gate: {out / 'gate.jpg'} (768x576, 2 zone(s) drawn)"]
    assert f"error: camera dead: cannot open rtsp://user:***@127.0.0.1:{dead}/s1: Connection refused" \
        in said.err.splitlines() and "pw" not in said.err
    assert sorted(p.name for p in out.iterdir()) == ["clip.jpg", "gate.jpg"]
    gate, clip = (cv2.imread(str(out / name)) for name in ("gate.jpg", "clip.jpg"))
    assert gate.shape == clip.shape == (576, 768, 3)  # full size
    assert on_outline(gate, kerb) >= 0.95 and on_outline(gate, footpath) >= 0.95
    assert near_yellow(gate).mean() < 0.05 and near_yellow(clip).mean() < 0.01  # the outlines, not the picture


def test_snapshot_of_a_camera_not_in_the_config_names_it_and_reads_none(edge_config_file, tmp_path, capsys):
    out = tmp_path / "pictures"
    assert main(["snapshot", "--config", str(edge_config_file), "gate-3", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "error: camera 'gate-3' is not in the config; known: ['campus-gate']"
    assert not out.exists()
