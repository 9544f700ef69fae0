"""The `xueliang detect` command on real pictures and real models."""

import json
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
