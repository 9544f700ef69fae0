"""Clients that send half a request and go quiet, against a gateway process of its own (a real Mosquitto beside it),
its open-file limit low as a service's (gateway/connections.py). An outsider's probe held 1,100 connections each
sending a request's head but its end, at the 1,024 files a systemd service gets: no other client was answered while
they stayed, and asyncio logged 30 MB of tracebacks in 20 s."""

import asyncio
import contextlib
import errno
import logging
import socket
import subprocess
import sys
import time

import httpx
import pytest

from gateway import connections
from gateway.auth import new_token
from gateway.storage import Store
from xueliang import services

from .conftest import REPO, wait_until
from .test_gateway_stop import answer_of

HEAD_WAIT_S = 1.5  # connections.HEAD_WAIT_S (10 s), shortened in the gateway's process
FILES = 256  # the gateway's open-file limit: connections.connections_bound(256) connections
HALF_SENT = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: "

GATEWAY = """
import resource, sys
from gateway import connections
from gateway.auth import new_token
from gateway.storage import Store
connections.HEAD_WAIT_S = float(sys.argv[1])
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[2]), resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
from xueliang.cli import main
sys.exit(main(["gateway", "--config", sys.argv[3]]))
"""


@contextlib.contextmanager
def gateway(tmp_path, broker_port: int):
    """A gateway with ``HEAD_WAIT_S`` and ``FILES``, answering /health; its port, and its stderr's file."""
    port = services.free_port()
    (tmp_path / "gateway.yaml").write_text(f"database: sqlite:///{tmp_path / 'gateway.sqlite'}\n"
                                           f"http: {{host: 127.0.0.1, port: {port}}}\n"
                                           f"broker: {{host: 127.0.0.1, port: {broker_port}}}\n")
    with open(tmp_path / "err", "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", GATEWAY, str(HEAD_WAIT_S), str(FILES),
                                 str(tmp_path / "gateway.yaml")], stdout=subprocess.DEVNULL, stderr=err, cwd=REPO)
    try:
        wait_until(lambda: health(port) == 200, 30, message="the gateway answers /health 200")
        yield port, tmp_path / "err"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def health(port: int, timeout: float = 2.0) -> int | None:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=timeout).status_code


def closed_with_408(client: socket.socket) -> bool:
    """Whether the gateway has answered ``client`` 408 by now (without waiting)."""
    client.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        return client.recv(64).startswith(b"HTTP/1.1 408 ")
    return False


@pytest.mark.slow  # ~6 s: a gateway process started, two bounds waited out
def test_a_half_sent_head_or_a_stalled_body_is_answered_408_and_closed_after_the_bound(tmp_path, broker):
    """uvicorn waited for the rest with no end. The head's bound runs from the connection's start however its bytes
    come (a byte a second kept it open before); a body's, from its last bytes; a request in and answered is not cut."""
    with gateway(tmp_path, broker.port) as (port, err):
        head = socket.create_connection(("127.0.0.1", port), timeout=HEAD_WAIT_S + 5)
        head.sendall(HALF_SENT)
        body = socket.create_connection(("127.0.0.1", port), timeout=HEAD_WAIT_S * 2 + 5)
        with Store(f"sqlite:///{tmp_path / 'gateway.sqlite'}") as store:
            token = new_token(store, "judge", "admin")  # (a request without one is refused before its body)
        body.sendall(b"POST /cases/1/verdict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer %s\r\nContent-Length: 40\r\n\r\n{" % token.encode())
        started = time.monotonic()
        for _ in range(3):  # a byte every half bound: the head still due at the bound
            time.sleep(HEAD_WAIT_S / 2)
            with contextlib.suppress(OSError):
                head.sendall(b"a")
                body.sendall(b" ")
        assert answer_of(head).startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - started < HEAD_WAIT_S + 1
        assert answer_of(body).startswith(b"HTTP/1.1 408 ")  # its bytes stopped, HEAD_WAIT_S later
        assert HEAD_WAIT_S * 2 < time.monotonic() - started < HEAD_WAIT_S * 3 + 1
        assert health(port) == 200
    said = err.read_text()
    assert said.count("HTTP connection from 127.0.0.1") == 2 and "Traceback" not in said, said[-3000:]
    assert "request head not in within 2 s (408)" in said and "request body stalled 2 s (408)" in said


@pytest.mark.slow  # ~6 s: a gateway process started, its bound of connections filled twice over
def test_a_good_client_is_answered_while_more_half_sent_heads_are_held_than_the_gateway_has_files(tmp_path, broker):
    """Past ``connections_bound`` the one waiting longest for its head is closed for the new one: a good client,
    whose request comes at once, is answered; asyncio's traceback for each accept that found no file, 3,000 a
    second, is gone, and the log says what was closed in a line or two."""
    with gateway(tmp_path, broker.port) as (port, err):
        held = []
        try:
            for _ in range(FILES + 100):
                client = socket.create_connection(("127.0.0.1", port), timeout=5)
                client.sendall(HALF_SENT)
                held.append(client)
            answers = [health(port, timeout=3) for _ in range(3)]
            time.sleep(0.3)
            closed = sum(closed_with_408(client) for client in held)
        finally:
            for client in held:
                client.close()
    assert answers == [200] * 3
    assert closed >= len(held) - connections.connections_bound(FILES)
    said = err.read_text()
    assert "out of system resource" not in said and "Traceback" not in said, said[-3000:]
    assert len(said.splitlines()) < 20, said[-3000:]
    assert "waiting for a head, closed for a new connection at the bound (408)" in said


def test_the_connections_closed_in_a_minute_are_said_in_one_line_with_their_count(caplog):
    """A line a connection was a line a second for each slow client; the first of each kind is said, the rest once
    the minute is over (at the gateway's clock's round, ``flush``)."""
    caplog.set_level(logging.WARNING, logger="gateway.connections")
    said = connections.ConnectionLog()
    for n in range(1000):
        said.say("head", ("10.0.0.7", 40000 + n), n * 0.05)
    said.say("refused", ("10.0.0.8", 40000), 50.0)
    said.say("refused", ("10.0.0.8", 40001), 51.0)
    said.flush(59.0)
    said.flush(60.0)
    assert [r.getMessage() for r in caplog.records] == [
        "HTTP connection from 10.0.0.7:40000 request head not in within 10 s (408); more within the minute are "
        "counted, said in one line",
        "HTTP connection from 10.0.0.8:40000 refused at the bound, none waiting for a head (503); more within the "
        "minute are counted, said in one line",
        "1000 more HTTP connection(s) in 60 s closed or refused: 999 request head not in within 10 s (408), 1 refused "
        "at the bound, none waiting for a head (503)"]


def test_asyncios_line_for_each_accept_that_found_no_file_is_counted_not_said(caplog):
    """asyncio said each with its traceback, ~3,000 a second (30 MB of log in 20 s); another of its errors is still
    said as it was."""
    caplog.set_level(logging.WARNING)
    loop = asyncio.new_event_loop()
    failures = connections.AcceptFailures(connections.ConnectionLog())
    logging.getLogger("asyncio").addFilter(failures)
    try:
        for _ in range(3000):
            loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                         "exception": OSError(errno.EMFILE, "Too many open files")})
        loop.call_exception_handler({"message": "something else"})
    finally:
        logging.getLogger("asyncio").removeFilter(failures)
        loop.close()
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("gateway.connections", "HTTP connection from a client not accepted: the process's open files ran out; more "
                                "within the minute are counted, said in one line"),
        ("asyncio", "something else")]
