"""``xueliang demo``: the whole product on this machine, on embedded defaults.

Serves every clip in fixtures/videos/ that has a ``*.truth.yaml`` as an RTSP camera, starts
Mosquitto, the gateway (SQLite under the data folder) and an edge box for those cameras,
and prints each case as it is created.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from xueliang import services

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures" / "videos"
DEMO_MARK = ".xueliang-demo"  # in a demo's data folder: the demo may empty it at its next start


def fixture_cameras() -> list[dict]:
    """Camera entries (edge-config form) of the fixture clips, url = the clip's path."""
    cameras = []
    for truth in sorted(FIXTURES.glob("*.truth.yaml")):
        camera = yaml.safe_load(truth.read_text())["camera"]
        camera["url"] = str((REPO / camera["url"]).resolve())
        cameras.append(camera)
    return cameras


def write_configs(data: Path, broker_port: int, http_port: int, cameras: list[dict], box: str = "demo-box") -> tuple[Path, Path]:
    edge = {"box": box, "broker": {"host": "127.0.0.1", "port": broker_port}, "cameras": cameras,
            "data_dir": str(data / "edge")}
    gateway = {"broker": {"host": "127.0.0.1", "port": broker_port}, "database": f"sqlite:///{data}/gateway/gateway.sqlite",
               "http": {"host": "127.0.0.1", "port": http_port, "public_read": True,
                        "allowed_hosts": ["127.0.0.1", "localhost"]}}
    edge_path, gateway_path = data / "edge.yaml", data / "gateway.yaml"
    edge_path.write_text(yaml.safe_dump(edge, allow_unicode=True, sort_keys=False))
    gateway_path.write_text(yaml.safe_dump(gateway, allow_unicode=True, sort_keys=False))
    return edge_path, gateway_path


def fetch_cases(http_port: int) -> list[dict] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/cases", timeout=2) as r:
            return json.loads(r.read())
    except OSError:
        return None


def beijing(iso: str) -> str:
    """An API time (UTC, ``Z``) as the pages show it: the terminal printed ``20:24:08.487Z`` for a deadline the case
    page showed as ``04:24``, the next morning.

    >>> beijing("2026-12-06T20:24:08.487Z")
    '2026-12-07 04:24:08'
    """
    from gateway.presentation import local_time
    from xueliang.wire import parse_time

    return local_time(parse_time(iso), seconds=True)


def describe(case: dict, http_port: int) -> str:
    return (f"case {case['id']}: {case['category_name']} ({case['category_code']}) grid {case['grid']} -> "
            f"{case['department']}, deadline {beijing(case['deadline'])}; camera {case['camera']} zone {case['zone']}, "
            f"reported {beijing(case['reported_at'])}; "
            f"evidence http://127.0.0.1:{http_port}{case['evidence_url']}")


DEMO_PEOPLE = (("ops", "operator", None), ("traffic-police", "department", "traffic-police"),
               ("sanitation", "department", "sanitation"), ("municipal-roads", "department", "municipal-roads"))


def demo_tokens(gateway_cfg: Path) -> list[str]:
    """Tokens for the demo's people (the command centre over the whole city, and the departments of
    its three problems), valid a week, printed once: sign in with one at /ui/login to act in the page."""
    from gateway.auth import new_token
    from gateway.config import load_gateway_config, load_tables
    from gateway.storage import Store

    config = load_gateway_config(gateway_cfg)
    root = load_tables(config.tables).centre
    lines = ["sign in at /ui/login with one of these tokens (valid 7 days):"]
    with Store(config.database) as store:  # closed: its write-ahead log folded into the file
        for name, role, department in DEMO_PEOPLE:
            token = new_token(store, name, role, department=department, grid=root if role == "operator" else None,
                              lifetime_s=7 * 86400)
            lines.append(f"  {name:16} {role:10} {token}")
    return lines


def _stop(signum, frame) -> None:
    """SIGTERM or SIGHUP (a service manager, a closed terminal): end as Ctrl-C does, the demo's processes with it
    (each runs in a session of its own, out of the signal's reach: they were left running)."""
    raise SystemExit(128 + signum)


def take_data(data_dir: Path) -> int | str:
    """The demo's data folder, made or emptied and held (a lock on the folder itself, for as long as this process
    lives): its descriptor, or why it cannot be the demo's. A second demo on the same folder, on another port,
    had emptied it under the first (its database, its broker's files)."""
    data = data_dir.resolve()
    try:
        data.mkdir(parents=True, exist_ok=True)
        held = os.open(data, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        return f"cannot be made or opened ({exc.strerror or exc})"
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(held)
        return "another xueliang demo is using it; stop that one, or name another folder"
    try:
        children = list(data.iterdir())
        if children and not (data / DEMO_MARK).exists():  # `--data data` from the repository root had wiped data/eval
            os.close(held)
            return f"a folder with files the demo did not make; name a new or empty one, or a demo's own (it holds {DEMO_MARK})"
        for child in children:  # a demo starts from an empty case book
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        (data / DEMO_MARK).write_text("made by xueliang demo; it empties this folder at its next start\n")
    except OSError as exc:
        os.close(held)
        return f"cannot be emptied or written ({exc.strerror or exc})"
    return held


def run_demo(once: bool, port: int, data_dir: Path, timeout_s: float) -> int:
    with socket.socket() as probe:  # a port someone else holds answered the demo's wait: its tokens and URL were
        try:                          # printed for another server before the gateway failed
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no owner
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            print(f"error: --port {port}: cannot listen on 127.0.0.1 ({exc.strerror}); name a free one", file=sys.stderr)
            return 2
    held = take_data(data_dir)
    if isinstance(held, str):
        print(f"error: --data {data_dir}: {held}", file=sys.stderr)
        return 2
    data = data_dir.resolve()
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop)
    try:
        return _run(once, port, data, timeout_s)
    finally:
        os.close(held)


def _run(once: bool, port: int, data: Path, timeout_s: float) -> int:
    cameras = fixture_cameras()
    if not cameras:
        print(f"error: no fixture clips with a *.truth.yaml in {FIXTURES}", file=sys.stderr)
        return 2
    broker = services.mosquitto(data / "mosquitto")
    rtsp = services.rtsp_server({c["id"]: Path(c["url"]) for c in cameras}, data)
    for c in cameras:
        c["url"] = f"rtsp://127.0.0.1:{rtsp.port}/{c['id']}"
    edge_cfg, gateway_cfg = write_configs(data, broker.port, port, cameras)
    procs = []
    try:
        broker.start()
        rtsp.start()
        print(f"broker mqtt://127.0.0.1:{broker.port}; cameras: " + ", ".join(c["url"] for c in cameras), flush=True)
        procs.append(services.xueliang(["gateway", "--config", str(gateway_cfg)], data / "gateway.log"))
        services.wait_port(port, procs[0], "gateway", timeout=30)
        procs.append(services.xueliang(["edge", "--config", str(edge_cfg)], data / "edge.log"))
        for line in demo_tokens(gateway_cfg):
            print(line, flush=True)
        print(f"gateway API http://127.0.0.1:{port}/cases, operators' page http://127.0.0.1:{port}/ui/cases; "
              f"logs in {data}; waiting for cases (times in Beijing time; "
              f"a vehicle must stay for its zone's dwell time, a pile or spill for its persistence time) ...",
              flush=True)
        seen: set[int] = set()
        started = time.monotonic()
        while True:
            for p, name in zip(procs, ("gateway", "edge")):
                if p.poll() is not None:
                    print(f"error: the {name} exited with code {p.returncode}; see {data / (name + '.log')}")
                    return 1
            for case in sorted(fetch_cases(port) or [], key=lambda c: c["id"]):
                if case["id"] not in seen:
                    seen.add(case["id"])
                    print(describe(case, port), flush=True)
            if once and seen:
                return 0
            if once and time.monotonic() - started > timeout_s:
                print(f"error: no case within {timeout_s:.0f}s; see {data / 'edge.log'} and {data / 'gateway.log'}")
                return 1
            time.sleep(1.0)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except Exception:
                p.kill()
        rtsp.stop()
        broker.stop()
