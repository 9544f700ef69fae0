"""Shared fixtures: real Mosquitto and RTSP servers on free loopback ports, fixture clips, configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from xueliang import services

REPO = Path(__file__).resolve().parent.parent
CLIP = REPO / "fixtures" / "videos" / "campus-gate.mp4"
TRUTH = yaml.safe_load((REPO / "fixtures" / "videos" / "campus-gate.truth.yaml").read_text())


@pytest.fixture
def broker(tmp_path):
    with services.mosquitto(tmp_path / "mosquitto") as service:
        yield service


@pytest.fixture
def rtsp(tmp_path):
    with services.rtsp_server({"campus-gate": CLIP}, tmp_path) as service:
        yield service


@pytest.fixture
def campus_camera() -> dict:
    camera = dict(TRUTH["camera"])
    camera["url"] = str(CLIP)
    return camera


@pytest.fixture
def edge_config_file(tmp_path, campus_camera) -> Path:
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump({"box": "test-box", "cameras": [campus_camera], "data_dir": str(tmp_path / "edge")}))
    return path
