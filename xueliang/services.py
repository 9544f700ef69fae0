"""Real services for the demo and the tests: Mosquitto and the RTSP test server, on loopback.

Each is a real process with a generated config on a free port; ``stop()`` ends it.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xueliang import brokeraccounts

RTSP_SERVER = Path(__file__).resolve().parent / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"


class ServiceError(RuntimeError):
    pass


_given: set[int] = set()  # ports this process has handed out: never twice
_share = (0, 1)  # (this process's share, shares) of the port range: see share_ports


def share_ports(index: int, count: int) -> None:
    """Processes that hand out ports side by side (parallel test workers) each take their own
    ``index``-th of ``count`` slices of the range: one cannot give a port another has just given and
    not yet bound."""
    global _share
    if not 0 <= index < count:
        raise ValueError(f"port share {index} of {count}")
    _share = (index, count)


def ephemeral_low(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> int:
    """The lowest port the kernel gives the local end of an outgoing connection (32768 by default)."""
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port on 127.0.0.1 nothing is bound to, for a server about to start, drawn *below* the
    kernel's ephemeral range: a port from ``bind(0)`` lies inside that range, where every outgoing
    connection also takes its local port, and one made before the server binds can take it (seen in
    CI: a gateway's HTTP port "address already in use"), and in this process's share of it (``share_ports``)."""
    top = ephemeral_low()
    bottom = max(1024, top - 12000)
    index, count = _share
    size = (top - bottom) // count
    low, high = bottom + index * size, bottom + (index + 1) * size
    for _ in range(500):
        port = random.randrange(low, high)
        if port in _given:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    with socket.socket() as s:  # all of them busy: let the kernel pick
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"{what} exited with code {proc.returncode} before listening on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceError(f"{what} did not listen on port {port} within {timeout:.0f}s")


class Service:
    """A child process listening on ``port``."""

    def __init__(self, name: str, argv: list[str], port: int, log_path: Path, env: dict | None = None,
                 scratch: Path | None = None):
        self.name, self.argv, self.port, self.log_path, self.env = name, argv, port, log_path, env
        self.scratch = scratch  # a folder of its own, removed when the service stops for good
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> "Service":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                     start_new_session=True)
        wait_port(self.port, self.proc, self.name, timeout)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGCONT)  # in case a test paused it
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(self, *exc) -> None:
        self.stop()
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def __enter__(self) -> "Service":
        return self.start()


DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


BROKER_CONFIG = DEPLOY / "mosquitto" / "mosquitto.conf"
SECURITY = ("cafile", "certfile", "keyfile", "plugin", "plugin_opt_config_file", "use_username_as_clientid")


def broker_config(shipped: str, port: int, files: dict[str, Path | str | int]) -> str:
    """The shipped Mosquitto config with only its address, port and file paths changed (``files``:
    option -> path, or a test's own value of an option it has). Without ``plugin_opt_config_file`` (the accounts)
    it is the same broker open to anonymous clients on loopback: no TLS, accounts or user-name client ids, the rest
    as shipped.

    >>> print(broker_config("listener 8883 10.0.0.10\\nallow_anonymous false\\nplugin /x.so\\n"
    ...                     "persistence true\\n", 1883, {}))
    listener 1883 127.0.0.1
    user root
    allow_anonymous true
    persistence true
    <BLANKLINE>
    """
    lines, missing = [], set(files)
    for line in shipped.splitlines():
        option = line.split(" ", 1)[0]
        if option == "listener":
            line = f"listener {port} 127.0.0.1"
        elif option in files:
            line = f"{option} {files[option]}"
            missing.discard(option)
        elif option in SECURITY and "plugin_opt_config_file" not in files:
            continue
        elif option == "allow_anonymous":
            line = f"allow_anonymous {'false' if 'plugin_opt_config_file' in files else 'true'}"
        lines.append(line)
        if option == "listener":
            lines.append("user root")  # reads the test's root-only files (see INFRA.md)
    if missing:
        raise ServiceError(f"{BROKER_CONFIG} has no {', '.join(sorted(missing))} line to point at the test's files")
    return "\n".join(lines) + "\n"


def mosquitto(work: Path, port: int | None = None, users: dict[str, str] | None = None,
              limits: dict[str, int] | None = None) -> Service:
    """Mosquitto on 127.0.0.1 with deploy/mosquitto/mosquitto.conf, persistence under ``work``.

    With ``users`` (name -> password) it is the shipped broker exactly: TLS with a CA made by
    deploy/make_certs.sh (``work/certs/ca.crt``), the accounts' file of the dynamic-security plugin as
    `xueliang broker-account` makes it (each account's kind read off its name as the demo city's are named:
    ``box-*``, ``gateway-*``, ``command-centre``, any other a department), user names as client ids. Without,
    the same broker open to anonymous clients (the demo and most tests).
    ``limits``: options of the shipped config given a test's smaller values (``max_inflight_bytes``); each must be
    in it.
    """
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise ServiceError("mosquitto is not installed: run `make setup` (Debian package mosquitto)")
    port = port or free_port()
    work.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path | str | int] = {"persistence_location": f"{work}/", **(limits or {})}  # the / is needed
    if users:
        certs = work / "certs"
        if not (certs / "ca.crt").exists():
            subprocess.run(["bash", str(DEPLOY / "make_certs.sh"), str(certs)], check=True)
        accounts = brokeraccounts.empty()
        for name, password in users.items():
            kind = ("box" if name.startswith("box-") else "gateway" if name.startswith("gateway-")
                    else "centre" if name == "command-centre" else "department")
            accounts = brokeraccounts.with_account(accounts, kind, name, password, os.urandom(12))
        brokeraccounts.write(work / "accounts.json", accounts)
        files |= {"cafile": certs / "ca.crt", "certfile": certs / "server.crt", "keyfile": certs / "server.key",
                  "plugin_opt_config_file": work / "accounts.json"}
    conf = work / "mosquitto.conf"
    conf.write_text(broker_config(BROKER_CONFIG.read_text(), port, files))
    return Service("mosquitto", [binary, "-c", str(conf)], port, work / "mosquitto.log")


def rtsp_server(mounts: dict[str, Path], work: Path, port: int | None = None,
                tls: tuple[Path, Path] | None = None, clocks: dict[str, dict[str, float]] | None = None) -> Service:
    """The GStreamer test server (xueliang/rtsp_server.py) serving each file as rtsp://127.0.0.1:PORT/NAME; with
    ``tls`` (a certificate and its key, PEM) as rtsps://127.0.0.1:PORT/NAME, showing that certificate; ``clocks``:
    a mount's frames stamped by a camera's wrong clock (``{"cam": {"rate": 0.99}}``: its ``Clock``'s settings)."""
    if not Path(SYSTEM_PYTHON).exists():
        raise ServiceError(f"{SYSTEM_PYTHON} is missing; the RTSP test server needs Debian's python3-gi")
    port = port or free_port()
    argv = [SYSTEM_PYTHON, str(RTSP_SERVER), "--port", str(port)]
    if tls is not None:
        argv += ["--tls-cert", str(Path(tls[0]).resolve()), "--tls-key", str(Path(tls[1]).resolve())]
    for name, clock in (clocks or {}).items():
        argv += ["--clock", f"{name}:" + ",".join(f"{k}={v}" for k, v in clock.items())]
    argv += [f"{k}={Path(v).resolve()}" for k, v in mounts.items()]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return Service("rtsp-server", argv, port, work / "rtsp-server.log", env=env)


def xueliang(args: list[str], log_path: Path) -> subprocess.Popen:
    """Run ``python -m xueliang ARGS`` as a child process (its own process group)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "xueliang", *args], stdout=open(log_path, "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def postgres(work: Path, port: int | None = None) -> Service:
    """A throw-away PostgreSQL cluster (Debian's postgresql) under ``work``, trust auth on loopback.

    As root, the server runs as the ``postgres`` user the Debian package creates.
    URL: ``postgresql+psycopg://postgres@127.0.0.1:PORT/postgres``.
    """
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bins:
        raise ServiceError("PostgreSQL is not installed: run `make setup` (Debian package postgresql)")
    bindir = bins[-1].parent
    port = port or free_port()
    work.mkdir(parents=True, exist_ok=True)
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    # the cluster lives where the postgres user can reach it (pytest's folders are root-only)
    cluster = Path(tempfile.mkdtemp(prefix="xueliang-pg-"))
    if as_user:
        shutil.chown(cluster, "postgres")
    data = cluster / "data"
    if not data.exists():
        subprocess.run(as_user + [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                                  "--no-sync"], check=True, capture_output=True)
    argv = as_user + [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
                      "-k", str(cluster), "-c", "fsync=off"]
    return Service("postgres", argv, port, work / "postgres.log", scratch=cluster)
