"""Shared fixtures: real Mosquitto and RTSP servers on free loopback ports, fixture clips, configs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from xueliang import services

REPO = Path(__file__).resolve().parent.parent
CLIP = REPO / "fixtures" / "videos" / "campus-gate.mp4"
TRUTH = yaml.safe_load((REPO / "fixtures" / "videos" / "campus-gate.truth.yaml").read_text())


needs_two_cores = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs a second core to run on one and on all")


def on_one_core_and_on_all(script: str) -> tuple[str, str]:
    """What the Python ``script`` prints run pinned to one core and run on all: an encoder whose output
    follows the machine's cores prints otherwise."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    one, every = (subprocess.run([*pin, sys.executable, "-c", script], capture_output=True, text=True, check=True,
                                 cwd=REPO, env=env).stdout for pin in (["taskset", "-c", "0"], []))
    return one, every


def pytest_configure(config):
    """``make test`` runs the tests in two pytest-xdist workers (most process-level tests wait on a
    clock: a dwell, a keepalive, a broker's restart); each worker gives ports from its own share."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", ... in a worker, unset otherwise
    if worker:
        services.share_ports(int(worker.removeprefix("gw")), int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))


def pytest_collection_modifyitems(config, items):
    """The ``slow`` tests first, each part in its collected order: pytest-xdist's worksteal hands each worker a
    run of the collection and steals by count, so a test of a minute or two collected late (a variant's encode
    and replay) ran on past the rest as a tail. Each worker sorts the same collection the same way, as xdist needs.
    (A module fixture one slow and one quick test share may then be made twice, once in each part.)"""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def broker(tmp_path):
    with services.mosquitto(tmp_path / "mosquitto") as service:
        yield service


@pytest.fixture
def rtsp(tmp_path):
    with services.rtsp_server({"campus-gate": CLIP}, tmp_path) as service:
        yield service


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """One real PostgreSQL server for the whole session (each test makes a fresh database on it, see
    test_workflow.database_url). Defined here, not imported into each test module: an imported
    session fixture is a separate fixture per module, and each started (and stopped) a server of its own."""
    from sqlalchemy import create_engine

    with services.postgres(tmp_path_factory.mktemp("pg")) as server:
        engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{server.port}/postgres")

        def takes_connections():  # it listens a moment before it does ("the database system is starting up")
            try:
                with engine.connect():
                    return True
            except Exception:
                return False

        wait_until(takes_connections, 30, message="PostgreSQL takes connections")
        engine.dispose()
        yield server


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


class Watcher:
    """Subscribes to topics on the real broker and keeps what arrives (status, incidents, evidence)."""

    def __init__(self, port: int, topics: list[str]):
        import threading

        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), f"watcher of {topics} not subscribed within 10 s"  # nothing sent before is missed

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append((msg.topic, msg.payload))

    def latest_json(self, suffix: str) -> dict:
        import json

        with self.lock:
            for topic, payload in reversed(self.messages):
                if topic.endswith(suffix):
                    return json.loads(payload)
        return {}

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


def page_rows(browser, selector: str, attribute: str | None = None) -> list:
    """The text of each element ``selector`` finds on the page (as shown, ``innerText``), or ``(attribute's value,
    text)`` pairs, read in one script in the page: a live list (gateway/static/live.js) swaps its table between a
    find and a read of the elements found, and a read of one found before failed (StaleElementReferenceException;
    CI, twice)."""
    found = browser.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]),"
        " e => [arguments[1] === null ? null : e.getAttribute(arguments[1]), e.innerText])", selector, attribute)
    return [text for _, text in found] if attribute is None else [tuple(pair) for pair in found]


def wait_until(predicate, timeout: float, interval: float = 0.2, message: str = "condition not met"):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{message} within {timeout:.0f}s")


def wait_subscribed(gateway, timeout: float = 10, after: int = 0) -> None:
    """Wait until the broker confirmed ``gateway``'s subscriptions (its SUBACK, since its last connection): a message
    a box sends before is shared out to no gateway. ``gateway``: an ``MqttIngest``, or a gateway process's log file,
    read from byte ``after`` (its size when the process started: an earlier process's lines there say nothing)."""
    if isinstance(gateway, Path):
        said = b"subscribed: the broker shares the city's messages with it"
        wait_until(lambda: said in gateway.read_bytes()[after:], timeout, 0.05,
                   message=f"the gateway logging to {gateway.name} subscribed")
        return
    wait_until(lambda: gateway.state.broker["subscribed"], timeout, 0.05,
               message=f"gateway {gateway.config.broker.identity!r} subscribed")


class CpuSpent:
    """The process's CPU since this was made, less what the threads already running then spent meanwhile (earlier
    tests' leftovers: a broker client's loop, a decoder's threads): what work started here costs, on a machine
    however loaded. The thread that made it is counted, and a thread that ended meanwhile (its CPU stays the process's).

    >>> spent = CpuSpent(); spent() < 5.0
    True
    """

    def __init__(self):
        me = threading.get_native_id()
        self.others = [tid for tid in _thread_ids() if tid != me]
        self.began, self.others_began = time.process_time(), _threads_cpu(self.others)

    def __call__(self) -> float:
        return time.process_time() - self.began - (_threads_cpu(self.others) - self.others_began)


def _thread_ids() -> list[int]:
    return [int(tid) for tid in os.listdir("/proc/self/task")]


def _threads_cpu(tids: list[int]) -> float:
    """CPU seconds (user and system) the threads ``tids`` of this process have spent; those gone count nothing."""
    total = 0
    for tid in tids:
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the name, which may hold spaces: state is field 3
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15
    return total / os.sysconf("SC_CLK_TCK")


def serve(app):
    """A real HTTP server (uvicorn, in a thread) for ``app`` on a free loopback port, as a context
    manager that yields its base URL; for HTTP clients and browsers that must talk over a socket."""
    import contextlib
    import threading

    import uvicorn

    @contextlib.contextmanager
    def running():
        port = services.free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
        thread.start()
        try:
            wait_until(lambda: server.started, 10, 0.05, message="the HTTP server listening")
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(10)

    return running()


def city_reviewing_parking(tmp_path: Path) -> Path:
    """The demo city's tables, with its parking reports held for a person's review (so one can be
    judged or rejected); written to ``tmp_path/city.yaml``, the files they name by full path."""
    from gateway.config import TABLES_DIR

    city = yaml.safe_load((TABLES_DIR / "demo.yaml").read_text())
    for key, value in city.items():  # the files the tables name, beside them
        if isinstance(value, str) and (TABLES_DIR / value).is_file():
            city[key] = str(TABLES_DIR / value)
    for c in city["categories"]:
        if c["type"] == "illegal_parking":
            c["review"] = True
    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump(city, allow_unicode=True))
    return path


def tcp_server(answer: Callable[[socket.socket], None]) -> socket.socket:
    """A TCP port on 127.0.0.1 that gives each connection to ``answer`` (one at a time) until it is closed:
    a camera that answers wrongly, or too slowly. The answer's OSError (the client gone) ends that connection."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            try:
                answer(conn)
            except OSError:
                pass
            finally:
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv


class StallingCamera:
    """The real RTSP test server behind a proxy on 127.0.0.1:``port`` whose sessions can wedge: from ``stall()``
    every session, open or opened until ``resume()``, is kept alive (a 4-byte interleaved packet on a channel no
    stream uses, every 0.3 s) and sent no picture, for good, as by a camera server whose sessions hang; after
    ``resume()`` new sessions are served. No socket timeout trips on a wedged session: the bytes keep coming.
    ``close()`` ends them all."""

    def __init__(self, upstream_port: int):
        self.upstream, self.stalled, self.closed = upstream_port, False, threading.Event()
        self.wedged: list[threading.Event] = []  # each session's: sent no picture
        self.srv = socket.socket()  # not tcp_server's: the sessions run side by side
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.port = self.srv.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def stall(self) -> None:
        self.stalled = True
        for wedged in self.wedged:
            wedged.set()

    def resume(self) -> None:
        self.stalled = False

    def close(self) -> None:
        self.closed.set()
        for s in [self.srv, *self.sockets]:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.srv.accept()
            except OSError:
                return
            wedged = threading.Event()
            if self.stalled:
                wedged.set()
            self.wedged.append(wedged)
            threading.Thread(target=self._session, args=(client, wedged), daemon=True).start()

    def _session(self, client: socket.socket, wedged: threading.Event) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream))
        self.sockets += [client, upstream]
        sending = threading.Lock()

        def send(data: bytes) -> None:
            with sending:
                client.sendall(data)

        def requests():  # the client's requests (and its keep-alives) go up as they are
            while data := client.recv(65536):
                upstream.sendall(data)

        def keep_alive():
            while not self.closed.wait(0.3):
                if wedged.is_set():
                    send(b"$\x07\x00\x04ping")

        for f in (requests, keep_alive):
            threading.Thread(target=_quietly(f), daemon=True).start()
        stream = upstream.makefile("rb")
        try:
            while first := stream.read(1):
                if first == b"$":  # an interleaved packet: channel, length, payload; even channels carry RTP
                    head = stream.read(3)
                    message = first + head + stream.read(int.from_bytes(head[1:], "big"))
                    if wedged.is_set() and head[0] % 2 == 0:
                        continue
                else:  # an RTSP response: headers, then as many bytes as Content-Length says
                    message = first
                    while not message.endswith(b"\r\n\r\n"):
                        message += stream.read(1)
                    length = [line.split(b":")[1] for line in message.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")]
                    message += stream.read(int(length[0])) if length else b""
                send(message)
        except (OSError, ValueError):  # (ValueError: a read of the socket close() closed)
            pass
        finally:
            for s in (upstream, client):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


def _quietly(f: Callable[[], None]) -> Callable[[], None]:
    def run():
        try:
            f()
        except OSError:  # the session ended
            pass
    return run
