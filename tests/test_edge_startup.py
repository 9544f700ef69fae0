"""`xueliang edge` with settings that validate but cannot be used on this machine: one `error:` line naming
the field, exit 2, never a traceback; a damaged outbox is moved aside and the box starts."""

import re
import socket
import subprocess
import sys
import time

import pytest
import yaml

from xueliang import services

from .conftest import CLIP, wait_until


def write(tmp_path, **settings):
    path = tmp_path / "edge.yaml"
    camera = {"id": "gate", "url": str(CLIP), "grid": "G-1"}
    path.write_text(yaml.safe_dump({"box": "start-box", "broker": {"port": services.free_port()},
                                    "cameras": [camera], "data_dir": str(tmp_path / "edge"), **settings}))
    return path


def edge(config, timeout=60):
    return subprocess.run([sys.executable, "-m", "xueliang", "edge", "--config", str(config)],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["data_dir under a file", "tls_ca missing", "tls_ca not a certificate",
                                  "metrics_port taken"])
def test_settings_this_machine_cannot_use_are_named_errors(tmp_path, case):
    (tmp_path / "afile").write_text("not a folder, not a certificate\n")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    settings, expected = {
        "data_dir under a file": ({"data_dir": str(tmp_path / "afile" / "sub")},
                                  "error: data_dir .*afile/sub: cannot keep the outbox there \\(Not a directory\\)"),
        "tls_ca missing": ({"broker": {"tls_ca": str(tmp_path / "nope.crt")}},
                           "error: broker tls_ca .*nope.crt: cannot be used as the CA certificate \\(No such file"),
        "tls_ca not a certificate": ({"broker": {"tls_ca": str(tmp_path / "afile")}},
                                     "error: broker tls_ca .*afile: cannot be used as the CA certificate"),
        "metrics_port taken": ({"metrics_port": taken.getsockname()[1]},
                               f"error: metrics_port {taken.getsockname()[1]}: cannot serve metrics on 127.0.0.1"),
    }[case]
    try:
        run = edge(write(tmp_path, **settings))
    finally:
        taken.close()
    assert run.returncode == 2, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert re.match(expected, lines[0]), lines[0]


def test_an_empty_broker_host_is_refused_with_its_field(tmp_path):
    from edge.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="broker host: String should have at least 1 character"):
        load_config(write(tmp_path, broker={"host": ""}))


@pytest.mark.slow
def test_a_damaged_outbox_is_moved_aside_and_the_box_starts(tmp_path):
    config = write(tmp_path, heartbeat_s=1)
    outbox = tmp_path / "edge" / "start-box.outbox.sqlite"
    outbox.parent.mkdir(parents=True)
    outbox.write_bytes(b"\x13" * 20_000)  # not an SQLite file
    box = services.xueliang(["edge", "--config", str(config)], tmp_path / "edge.log")
    try:
        wait_until(lambda: any(outbox.parent.glob("start-box.outbox.sqlite.damaged-*")), 60,
                   message="the damaged outbox moved aside")
        wait_until(lambda: "a new one begun" in (tmp_path / "edge.log").read_text(), 10, message="the reason logged")
        time.sleep(2)
        assert box.poll() is None, (tmp_path / "edge.log").read_text()[-2000:]
        aside = next(outbox.parent.glob("start-box.outbox.sqlite.damaged-*"))
        assert aside.read_bytes() == b"\x13" * 20_000  # kept as it was, for whoever wants to look
        assert outbox.read_bytes()[:16] == b"SQLite format 3\x00"
    finally:
        box.terminate()
        box.wait(10)
    assert "Traceback" not in (tmp_path / "edge.log").read_text()
