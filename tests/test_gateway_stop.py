"""The gateway's stop, seen in a gateway process of its own started by the command line, a real Mosquitto beside it:
SIGTERM (a service manager's stop) leaves its SQLite file whole on its own, as an operator copies it."""

import contextlib
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest

from gateway.service import STOP_REQUESTS_S
from xueliang import services
from xueliang.mqtt import make_client

from .conftest import wait_until
from .test_retire import incident

INCIDENTS = 5


def started(tmp_path, broker_port: int) -> tuple[subprocess.Popen, int]:
    """``xueliang gateway`` on a new SQLite file, answering /health; its stderr in ``tmp_path / "err"``."""
    port = services.free_port()
    (tmp_path / "gateway.yaml").write_text(f"database: sqlite:///{tmp_path / 'gateway.sqlite'}\n"
                                           f"http: {{host: 127.0.0.1, port: {port}}}\n"
                                           f"broker: {{host: 127.0.0.1, port: {broker_port}}}\n")
    with open(tmp_path / "err", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "xueliang", "gateway", "--config", str(tmp_path / "gateway.yaml")],
                                stdout=subprocess.DEVNULL, stderr=err)

    def healthy():
        assert proc.poll() is None, (tmp_path / "err").read_text()[-3000:]
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    wait_until(healthy, 30, message="the gateway answers /health 200")
    return proc, port


def stopped(proc: subprocess.Popen, tmp_path) -> float:
    """SIGTERM: exit 0; how long it took."""
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)  # the unit's TimeoutStopSec is 30 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (tmp_path / "err").read_text()[-3000:]
    return time.monotonic() - began


def copied_alone(tmp_path) -> sqlite3.Connection:
    """The gateway's file, and nothing beside it, copied elsewhere and opened."""
    (tmp_path / "copy").mkdir()
    shutil.copy(tmp_path / "gateway.sqlite", tmp_path / "copy" / "gateway.sqlite")
    return sqlite3.connect(tmp_path / "copy" / "gateway.sqlite")


@pytest.mark.slow  # ~9 s: a gateway process started and fed, its stop waiting STOP_REQUESTS_S for a request
def test_a_gateway_stopped_by_sigterm_leaves_its_file_whole_on_its_own_and_waits_out_a_request_a_bounded_time(
        tmp_path, broker):
    """Its last writes were left in the write-ahead log beside it: the file copied while the gateway was stopped (a
    backup, a move to another machine) lacked the last cases. A client that had sent half a sign-in form and gone
    quiet (a phone out of reach, a slow upload) kept the stop waiting with no end, until the service manager's
    SIGKILL (30 s), its database still open."""
    proc, port = started(tmp_path, broker.port)
    try:
        box = make_client("box-1")
        box.connect("127.0.0.1", broker.port)
        box.loop_start()
        try:
            for i in range(INCIDENTS):
                box.publish(*incident(i), qos=1).wait_for_publish(5)
        finally:
            box.disconnect()
            box.loop_stop()
        db = sqlite3.connect(f"{(tmp_path / 'gateway.sqlite').as_uri()}?mode=ro", uri=True)
        wait_until(lambda: db.execute("SELECT count(*) FROM cases").fetchone()[0] == INCIDENTS, 15,
                   message=f"{INCIDENTS} cases")
        db.close()
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        client.sendall(f"POST /ui/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                       "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ntoken=".encode())
        time.sleep(0.5)  # the request taken, the rest of its form awaited
    finally:
        took = stopped(proc, tmp_path)
    client.close()
    assert STOP_REQUESTS_S <= took < STOP_REQUESTS_S + 10
    said = (tmp_path / "err").read_text()
    assert "Cancel 1 running task(s)" in said and "Traceback" not in said  # said in a line, not 60
    with contextlib.closing(copied_alone(tmp_path)) as copy:
        assert copy.execute("SELECT count(*) FROM cases").fetchone()[0] == INCIDENTS
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert sorted(p.name for p in tmp_path.glob("gateway.sqlite*")) == ["gateway.sqlite"]
