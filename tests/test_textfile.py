"""The edge's and the gateway's configs read from a pipe: ``--config <(envsubst < x.yaml)`` (bash's process
substitution, a pipe whose writer is there) is read; a named pipe (FIFO) no program writes to is refused after a
bounded wait, where it hung the command without a word. A file named that is not there, or is a folder, is said in
the same words by each reader."""

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from edge.config import ConfigError, check_files, load_config
from gateway.config import GatewayConfigError, load_gateway_config, load_tables
from xueliang import textfile
from xueliang.cli import read_picture

from .test_camera_tls import certificate_authority
from .test_installer_mistakes import EDGE

REPO = Path(__file__).resolve().parent.parent
LOADERS = [pytest.param(load_config, ConfigError, id="edge"),
           pytest.param(load_gateway_config, GatewayConfigError, id="gateway")]


def loaded_in_a_thread(load, path: Path, within_s: float):
    """What ``load(path)`` returned or raised; the test fails where it is still waiting after ``within_s`` (a writer
    is then opened and closed, so that the thread ends)."""
    outcome: dict = {}

    def run():
        try:
            outcome["config"] = load(path)
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within_s)
    if thread.is_alive():
        os.close(os.open(path, os.O_WRONLY))
        thread.join(5)
        pytest.fail(f"still waiting on the pipe {path} after {within_s} s")
    return outcome


@pytest.mark.parametrize("load, error", LOADERS)
def test_a_named_pipe_no_program_writes_to_is_refused_after_a_bounded_wait(tmp_path, monkeypatch, load, error):
    monkeypatch.setattr(textfile, "PIPE_WAIT_S", 0.5)
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    began = time.monotonic()
    outcome = loaded_in_a_thread(load, fifo, 10)
    assert isinstance(outcome.get("error"), error), outcome
    assert str(outcome["error"]) == (f"{fifo}: a named pipe (FIFO) no program is writing to (waited 0.5 s); start the "
                                     "program that writes it first, or name the file itself")
    assert 0.5 <= time.monotonic() - began < 5


@pytest.mark.parametrize("load, error", LOADERS)
def test_a_named_pipe_whose_writer_comes_within_the_wait_is_read(tmp_path, edge_config_file, load, error):
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    text = edge_config_file.read_bytes() if load is load_config else b"database: sqlite:///gw.sqlite\n"

    def write_later():
        time.sleep(0.3)
        with open(fifo, "wb") as f:
            f.write(text[:10])
            f.flush()
            time.sleep(0.2)  # written in two parts, with the writer still there between them
            f.write(text[10:])

    threading.Thread(target=write_later, daemon=True).start()
    outcome = loaded_in_a_thread(load, fifo, 10)
    assert "config" in outcome, outcome


@pytest.mark.slow
def test_configs_from_bashs_process_substitution_are_read(tmp_path, edge_config_file):
    """``<(...)`` is /dev/fd/N, a pipe whose writer (cat, envsubst) is there before the command starts."""
    (tmp_path / "gateway.yaml").write_text(yaml.safe_dump({"database": f"sqlite:///{tmp_path}/gw.sqlite"}))
    script = ("from edge.config import load_config; from gateway.config import load_gateway_config; import sys; "
              "print(load_config(sys.argv[1]).box, load_gateway_config(sys.argv[2]).database)")
    run = subprocess.run(["bash", "-c", '"$0" -c "$1" <(cat "$2") <(sleep 0.3; cat "$3")', sys.executable, script,
                          str(edge_config_file), str(tmp_path / "gateway.yaml")],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout == f"test-box sqlite:///{tmp_path}/gw.sqlite\n"


@pytest.mark.slow
def test_relative_paths_of_a_config_read_from_a_pipe_are_read_from_the_folder_the_command_runs_in(
        tmp_path, campus_camera):
    """``--config <(envsubst < gateway.yaml)`` is /dev/fd/N: its ``tables: gateway/tables/demo.yaml`` was looked for
    in /dev/fd/gateway/... and not found. A config read from a pipe has its relative paths read from the folder the
    command runs in (the edge's all are, as a file's); a file named by its descriptor (``/dev/stdin < FILE``), from
    the file's folder."""
    certificate_authority(tmp_path / "pki", "city CA")
    (tmp_path / "gateway").symlink_to(REPO / "gateway")
    (tmp_path / "conf").mkdir()
    gateway = {"database": "sqlite:///data/gw.sqlite", "tables": "gateway/tables/demo.yaml",
               "broker": {"port": 8883, "tls_ca": "pki/ca.crt"}}
    (tmp_path / "conf" / "gateway.yaml").write_text(yaml.safe_dump(gateway))
    (tmp_path / "conf" / "stdin.yaml").write_text(yaml.safe_dump({**gateway, "tables": "../gateway/tables/demo.yaml"}))
    (tmp_path / "conf" / "edge.yaml").write_text(yaml.safe_dump({
        "box": "b1", "cameras": [campus_camera], "data_dir": "data/edge", "broker": {"port": 8883, "tls_ca": "pki/ca.crt"}}))
    run = subprocess.run(["bash", "-c", 'set -e; "$0" -m xueliang gateway --check --config <(cat conf/gateway.yaml); '
                          '"$0" -m xueliang gateway --check --config /dev/stdin < conf/stdin.yaml; '
                          '"$0" -m xueliang edge --check --config <(cat conf/edge.yaml)', sys.executable],
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count(f"tables {REPO}/gateway/tables/demo.yaml: ") == 2, run.stdout
    assert re.search(r"^/dev/fd/\d+: box b1, broker [\w.]+:8883, data_dir data/edge$", run.stdout, re.M), run.stdout
    assert not (tmp_path / "data").exists()  # neither check opened a database or made the outbox


@pytest.mark.parametrize("folder, says", [(False, "no such file"), (True, "is a folder; name the file")])
def test_a_file_not_there_or_a_folder_is_said_the_same_way_by_each_reader(tmp_path, folder, says):
    """Four readers said it four ways: the configs "no such file", ``edge --check`` "no such file gate.mp" and "is a
    folder; name the video file in it", ``detect`` "is a folder; name the picture"."""
    named = tmp_path / "named"
    if folder:
        named.mkdir()
    (tmp_path / "edge.yaml").write_text(EDGE.replace("rtsp://admin:pw@10.0.0.5:554/Streaming/Channels/101", str(named)))
    with_video = load_config(tmp_path / "edge.yaml")
    readers = [(load_config, ConfigError), (load_gateway_config, GatewayConfigError), (load_tables, GatewayConfigError),
               (read_picture, ValueError), (lambda _: check_files(with_video), ConfigError)]
    said = []
    for read, error in readers:
        with pytest.raises(error) as refused:
            read(named)
        said.append(str(refused.value))
    assert all(f"{named}: {says}" in words for words in said), said
