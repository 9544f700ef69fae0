"""The gateway's stop, seen in a gateway process of its own started by the command line, a real Mosquitto beside it:
SIGTERM (a service manager's stop) leaves its SQLite file whole on its own, as an operator copies it."""

import contextlib
import json
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest

from gateway.auth import new_token
from gateway.service import STOP_REQUESTS_S
from gateway.storage import Store
from xueliang import services
from xueliang.mqtt import make_client

from .conftest import wait_until
from .test_retire import incident

INCIDENTS = 5


def started(tmp_path, broker_port: int, more: str = "") -> tuple[subprocess.Popen, int]:
    """``xueliang gateway`` on a new SQLite file, answering /health; its stderr in ``tmp_path / "err"``; ``more``: the
    config's further lines."""
    port = services.free_port()
    (tmp_path / "gateway.yaml").write_text(f"database: sqlite:///{tmp_path / 'gateway.sqlite'}\n"
                                           f"http: {{host: 127.0.0.1, port: {port}}}\n"
                                           f"broker: {{host: 127.0.0.1, port: {broker_port}}}\n{more}")
    with open(tmp_path / "err", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "xueliang", "gateway", "--config", str(tmp_path / "gateway.yaml")],
                                stdout=subprocess.DEVNULL, stderr=err)

    def healthy():
        assert proc.poll() is None, (tmp_path / "err").read_text()[-3000:]
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    wait_until(healthy, 30, message="the gateway answers /health 200")
    return proc, port


def stopped(proc: subprocess.Popen, tmp_path, signalled: bool = False) -> None:
    """SIGTERM (unless ``signalled`` already: a second one ends the stop where it is): exit 0."""
    if not signalled:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)  # the unit's TimeoutStopSec is 30 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (tmp_path / "err").read_text()[-3000:]


def copied_alone(tmp_path) -> sqlite3.Connection:
    """The gateway's file, and nothing beside it, copied elsewhere and opened."""
    (tmp_path / "copy").mkdir()
    shutil.copy(tmp_path / "gateway.sqlite", tmp_path / "copy" / "gateway.sqlite")
    return sqlite3.connect(tmp_path / "copy" / "gateway.sqlite")


def answer_of(client: socket.socket) -> bytes:
    """What the gateway sent on ``client`` before it closed the connection."""
    got = b""
    with contextlib.suppress(OSError):
        while chunk := client.recv(65536):
            got += chunk
    return got


@pytest.mark.slow  # ~14 s: a gateway process started and fed, its stop waiting STOP_REQUESTS_S for two requests
def test_a_gateway_stopped_by_sigterm_leaves_its_file_whole_on_its_own_and_waits_out_a_request_a_bounded_time(
        tmp_path, broker):
    """Its last writes were left in the write-ahead log beside it: the file copied while the gateway was stopped (a
    backup, a move to another machine) lacked the last cases. A client that had sent half a sign-in form and gone
    quiet (a phone out of reach, a slow upload) kept the stop waiting with no end, until the service manager's
    SIGKILL (30 s), its database still open. A request still running past that bound (here a verdict whose write
    waits on a lock held past it) used the database after its close: a new connection made the log and its shared
    memory beside the stopped gateway's file again, and a write its client was never answered for went into them
    after the checkpoint. A closed store refuses it: nothing written, nothing beside the file. A second SIGTERM or a
    Ctrl-C while the stop closed the database ended it there (SystemExit, KeyboardInterrupt in the checkpoint): the
    database left open, its last writes in gateway.sqlite-wal beside it; the stop now says so and goes on."""
    path = tmp_path / "gateway.sqlite"
    proc, port = started(tmp_path, broker.port, "escalation_check_s: 60\n")  # no clock round under the lock below
    signalled_at = None
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
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        wait_until(lambda: db.execute("SELECT count(*) FROM cases").fetchone()[0] == INCIDENTS, 15,
                   message=f"{INCIDENTS} cases")
        db.close()
        with Store(f"sqlite:///{path}") as store:
            token = new_token(store, "judge", "admin")
        acknowledged = httpx.post(f"http://127.0.0.1:{port}/cases/1/verdict", json={"verdict": "correct", "note": "ok"},
                                  headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert acknowledged.status_code == 201, acknowledged.text
        time.sleep(0.5)  # the clock's round it woke is over
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        client.sendall(f"POST /ui/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                       "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ntoken=".encode())
        body = json.dumps({"verdict": "correct", "note": "late"}).encode()
        late = socket.create_connection(("127.0.0.1", port), timeout=30)
        late.sendall(f"POST /cases/1/verdict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body[:-1])
        lock = sqlite3.connect(path, isolation_level=None, timeout=0)
        lock.execute("BEGIN IMMEDIATE")  # the late verdict's write waits on it (busy_timeout, 5 s)
        time.sleep(0.5)  # the requests taken, the rest of each body awaited
        proc.send_signal(signal.SIGTERM)
        signalled_at = time.monotonic()
        time.sleep(STOP_REQUESTS_S - 2)
        late.sendall(body[-1:])  # the verdict runs, and waits on the lock past the stop's bound
        # ingest stopped: the stop is in its last part (uvicorn, before it, holds a signal and raises it again once
        # its server is down), on to the close, whose checkpoint waits on the lock (busy_timeout, 5 s)
        wait_until(lambda: "gateway disconnected from broker" in (tmp_path / "err").read_text(), STOP_REQUESTS_S + 10,
                   interval=0.05, message="the requests' bound, the stop on to ingest and the database")
        proc.send_signal(signal.SIGTERM)  # a second stop (the service manager's again, a person's kill)
        proc.send_signal(signal.SIGINT)  # and Ctrl-C: the stop goes on to its end all the same
        wait_until(lambda: "its database closed" in (tmp_path / "err").read_text(), STOP_REQUESTS_S + 10,
                   interval=0.05, message="the stop past its requests and its ingest, its store closed")
        lock.rollback()  # the verdict's write goes on (refused at its commit), unless its lock wait ran out first
        lock.close()
    finally:
        stopped(proc, tmp_path, signalled=signalled_at is not None)
    took = time.monotonic() - signalled_at
    client.close()
    answer = answer_of(late)
    late.close()
    assert STOP_REQUESTS_S <= took < STOP_REQUESTS_S + 10
    assert not answer.startswith(b"HTTP/1.1 2"), answer  # cancelled at the stop's bound: never acknowledged
    assert sorted(p.name for p in tmp_path.glob("gateway.sqlite*")) == ["gateway.sqlite"]
    with contextlib.closing(copied_alone(tmp_path)) as copy:
        assert copy.execute("SELECT count(*) FROM cases").fetchone()[0] == INCIDENTS
        assert copy.execute("SELECT note FROM verdicts").fetchall() == [("ok",)]
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    said = (tmp_path / "err").read_text()
    # said in a line, not 60; the late write's refusal itself (StoreClosed) is test_gateway_database's, as timing here
    # (the lock's 5 s wait against the stop on a loaded machine) decides whether it is refused or times out first
    assert "running task(s)" in said and "Traceback" not in said
    assert "SIGTERM during the stop" in said and "SIGINT during the stop" in said
