"""The systemd units in deploy/systemd/ (README "Running as a service"): ``systemd-analyze verify`` reads them without
a word, and each unit's ``ExecStart``, run as it is written (its variables from the shipped ``xueliang.env`` with the
test's config and folder, ``/opt/xueliang`` this checkout) in a fresh folder standing for its ``WorkingDirectory``, as
an unprivileged user with the environment systemd gives it, starts and answers, and ends on SIGTERM with exit 0 (no
restart: ``Restart=on-failure``) well inside the unit's ``TimeoutStopSec``; the backup keeps the newest KEEP."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
import functools
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest
import yaml

from xueliang import services

from .conftest import CLIP, REPO, TRUTH, wait_until

UNITS = REPO / "deploy" / "systemd"
INSTALLED = "/opt/xueliang"  # where deploy/install_services.sh puts the venv and deploy/, as the units name them
NAMES = ["xueliang-edge.service", "xueliang-gateway.service", "xueliang-gateway-backup.service",
         "xueliang-gateway-backup.timer"]
BACKUP_NAME = re.compile(r"gateway-\d{4}-\d\d-\d\d-\d{6}\.sqlite")


def unit(name: str) -> dict[str, str]:
    """A unit file's settings, ``Section.Key`` -> value (each written once in these units)."""
    settings, section = {}, ""
    for line in (UNITS / name).read_text().splitlines():
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif line.strip() and not line.startswith("#"):
            key, value = line.split("=", 1)
            assert f"{section}.{key}" not in settings, f"{name}: {key} written twice in [{section}]"
            settings[f"{section}.{key}"] = value
    return settings


def shipped_env() -> dict[str, str]:
    return dict(line.split("=", 1) for line in (UNITS / "xueliang.env").read_text().splitlines()
                if line.strip() and not line.startswith("#"))


def exec_start(name: str, env: dict[str, str]) -> list[str]:
    """The unit's ExecStart as systemd runs it: ``${VAR}`` one word from ``env`` (a variable the env file lacks fails
    here, as it would be empty there), the installed prefix this checkout."""
    words = [re.sub(r"\$\{(\w+)\}", lambda m: env[m[1]], word) for word in shlex.split(unit(name)["Service.ExecStart"])]
    assert words[0].startswith(INSTALLED + "/"), words[0]
    return [str(REPO) + words[0].removeprefix(INSTALLED), *words[1:]]


def seconds(value: str) -> float:
    return float(value.removesuffix("s"))


USER = pwd.getpwnam("nobody")


@pytest.fixture
def workdir():
    """A folder of the unprivileged user's, standing for the unit's WorkingDirectory (pytest's own are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="xl-unit-"))
    if os.geteuid() == 0:
        os.chown(path, USER.pw_uid, USER.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def give(workdir: Path) -> None:
    """Whatever the test wrote in ``workdir`` as root, made the unprivileged user's."""
    if os.geteuid() == 0:
        for path in [workdir, *workdir.rglob("*")]:
            os.chown(path, USER.pw_uid, USER.pw_gid)


@functools.cache
def as_user() -> list[str]:
    """setpriv's words to run a program as ``nobody``. Where this checkout's venv runs an interpreter the user cannot
    reach (one under /root, 0700: what deploy/install_services.sh is for), the user may read and search any folder
    (CAP_DAC_READ_SEARCH), and still write none but its own."""
    words = ["setpriv", f"--reuid={USER.pw_uid}", f"--regid={USER.pw_gid}", "--clear-groups"]
    if subprocess.run([*words, "--", "test", "-x", os.path.realpath(REPO / ".venv" / "bin" / "python")]).returncode:
        words += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    return [*words, "--"]


def run_as_unit(name: str, workdir: Path, logs: Path, **settings: str) -> subprocess.Popen:
    """``name``'s ExecStart in ``workdir``, as ``nobody`` where the test runs as root (setpriv: the program itself,
    no process between, as systemd's ``User=``), with systemd's environment: PATH, the user's, the env file's; its
    stdout and stderr in ``logs``/out and ``logs``/err (the journal's part)."""
    env = shipped_env() | settings
    command = exec_start(name, env)
    if os.geteuid() == 0:
        command = [*as_user(), *command]
    base = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
            "HOME": USER.pw_dir, "USER": USER.pw_name, "LOGNAME": USER.pw_name,
            # this checkout's code, whichever the venv's editable install names (a worktree's venv is another's)
            "PYTHONPATH": str(REPO)}
    with open(logs / "out", "w") as out, open(logs / "err", "w") as err:
        return subprocess.Popen(command, cwd=workdir, env=base | env, stdout=out, stderr=err)


def stopped(name: str, proc: subprocess.Popen, logs: Path) -> float:
    """SIGTERM, as systemd stops it: exit 0 (``Restart=on-failure`` starts nothing again); how long it took."""
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=seconds(unit(name)["Service.TimeoutStopSec"]))
    took = time.monotonic() - began
    assert proc.returncode == 0, (logs / "err").read_text()[-3000:]
    return took


def started_and_stopped(name: str, workdir: Path, logs: Path, ready: Callable[[subprocess.Popen], bool], what: str,
                        **settings: str) -> float:
    """``name``'s ExecStart run (``run_as_unit``), waited on until ``ready(proc)`` (``what`` it waits for), then
    ``stopped``: how long its stop took. Killed, whatever failed, before the test goes on."""
    proc = run_as_unit(name, workdir, logs, **settings)
    try:
        wait_until(lambda: ready(proc), 30, message=what)
        return stopped(name, proc, logs)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze on this machine")
def test_systemd_analyze_verify_reads_every_unit_without_a_word(tmp_path):
    # verify checks that ExecStart is there and executable: the units as installed, /opt/xueliang this checkout
    for name in NAMES:
        (tmp_path / name).write_text((UNITS / name).read_text().replace(INSTALLED, str(REPO)))
    done = subprocess.run(["systemd-analyze", "verify", *NAMES], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    # an unknown key or a value it cannot parse is a warning, exit 0 all the same: its words are the failure
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_the_services_run_as_their_user_restart_on_failure_and_stop_as_the_programs_do():
    env = shipped_env()
    for name in ("xueliang-edge.service", "xueliang-gateway.service"):
        service = unit(name)
        assert service["Service.User"] == "xueliang" and service["Service.Restart"] == "on-failure"
        assert seconds(service["Service.RestartSec"]) >= 5  # a config error is said every 10 s, not 10 times a second
        assert service["Service.NoNewPrivileges"] == "yes" and service["Service.ProtectSystem"] == "strict"
        # what they write (the edge's data_dir, an SQLite database: relative paths) is under the working folder,
        # which StateDirectory makes theirs and writable under ProtectSystem=strict
        assert service["Service.WorkingDirectory"] == "/var/lib/" + service["Service.StateDirectory"]
        # the edge takes up to ~7 s on SIGTERM (incidents ended, 2 s for confirmations), the gateway up to 10 s
        assert seconds(service["Service.TimeoutStopSec"]) >= 20
        assert service["Service.EnvironmentFile"] == "/etc/xueliang/xueliang.env"
    backup = unit("xueliang-gateway-backup.service")
    # systemd sets a StateDirectory's mode at each start (0755 unless named): the installer's 0750 is the units' too
    installer = (REPO / "deploy" / "install_services.sh").read_text()
    assert "install -d -m 0750 -o xueliang -g xueliang /var/lib/xueliang\n" in installer
    for name in ("xueliang-edge.service", "xueliang-gateway.service", "xueliang-gateway-backup.service"):
        assert unit(name)["Service.StateDirectoryMode"] == "0750", name
    assert backup["Service.WorkingDirectory"] == unit("xueliang-gateway.service")["Service.WorkingDirectory"]
    assert env["XUELIANG_BACKUP_DIR"].startswith(backup["Service.WorkingDirectory"] + "/")  # writable there
    assert unit("xueliang-gateway-backup.timer")["Timer.Persistent"] == "true"


@pytest.mark.slow  # ~4 s: the gateway's start and stop
def test_the_gateway_units_command_starts_as_an_unprivileged_user_answers_health_and_stops_on_sigterm(broker, workdir,
                                                                                                     tmp_path):
    """Exit 0 on SIGTERM: uvicorn raised the signal again once its server was done, and Python's default for it ended
    the process there (exit -15), before the gateway's clock and MQTT ingest were stopped (gateway.service)."""
    port = services.free_port()
    (workdir / "gateway.yaml").write_text(yaml.safe_dump({
        "broker": {"host": "127.0.0.1", "port": broker.port},
        "database": "sqlite:///data/gateway/gateway.sqlite",  # relative: the unit's WorkingDirectory
        "http": {"host": "127.0.0.1", "port": port}}))
    give(workdir)
    def healthy(proc: subprocess.Popen) -> bool:
        assert proc.poll() is None, (tmp_path / "err").read_text()[-3000:]
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
        return False
    took = started_and_stopped("xueliang-gateway.service", workdir, tmp_path, healthy, "the gateway answers /health 200",
                               XUELIANG_GATEWAY_CONFIG=str(workdir / "gateway.yaml"))
    assert took < 15
    # a first start and a stop are nothing to act on: the journal's warnings are for what is (a stop logged
    # `WARNING gateway disconnected from broker: Normal disconnection`, its own goodbye)
    levels = [json.loads(line)["level"] for line in (tmp_path / "err").read_text().splitlines() if line.startswith("{")]
    assert levels and set(levels) == {"INFO"}, (tmp_path / "err").read_text()[-3000:]
    database = workdir / "data" / "gateway" / "gateway.sqlite"
    assert database.stat().st_uid == (USER.pw_uid if os.geteuid() == 0 else os.geteuid())


@pytest.mark.slow  # ~5 s: the box's start (its models) and stop
def test_the_edge_units_command_starts_as_an_unprivileged_user_and_stops_on_sigterm_keeping_its_outbox(broker, workdir,
                                                                                                      tmp_path):
    camera = dict(TRUTH["camera"], url=str(CLIP))
    (workdir / "edge.yaml").write_text(yaml.safe_dump({
        "box": "unit-box", "broker": {"host": "127.0.0.1", "port": broker.port}, "cameras": [camera]}))
    give(workdir)
    def said(proc: subprocess.Popen, start: str) -> bool:
        lines = (tmp_path / "err").read_text().splitlines()
        assert proc.poll() is None, lines[-5:]
        # onnxruntime says a word of its own, not JSON, where it cannot keep a file under HOME
        return any(json.loads(line)["msg"].startswith(start) for line in lines if line.startswith("{"))
    # its start line (models loaded, outbox open: the last before its cameras start), and the broker's welcome
    took = started_and_stopped("xueliang-edge.service", workdir, tmp_path,
                               lambda proc: said(proc, "box unit-box: 1 camera(s)") and said(proc, "connected to broker"),
                               "the box starts and connects to the broker",
                               XUELIANG_EDGE_CONFIG=str(workdir / "edge.yaml"))
    assert took < 15
    assert (workdir / "data" / "edge" / "unit-box.outbox.sqlite").is_file()  # default data_dir, relative: the unit's


def backups_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.slow  # ~4 s: two backups run (one refused), each a python start
def test_the_backup_units_command_backs_up_and_keeps_the_newest_keep_touching_no_other_file(workdir, tmp_path):
    from gateway.storage import Store

    (workdir / "data" / "gateway").mkdir(parents=True)
    Store("sqlite:///" + str(workdir / "data" / "gateway" / "gateway.sqlite")).close()
    (workdir / "gateway.yaml").write_text("database: sqlite:///data/gateway/gateway.sqlite\n")  # relative, as shipped
    folder = workdir / "backups"
    folder.mkdir()
    old = [f"gateway-2001-01-0{day}-030000.sqlite" for day in (1, 2, 3)]
    kept_aside = ["gateway-before-upgrade.sqlite", "notes.txt"]
    for name in old + kept_aside:
        (folder / name).write_text(name)
    give(workdir)
    settings = {"XUELIANG_GATEWAY_CONFIG": str(workdir / "gateway.yaml"), "XUELIANG_BACKUP_DIR": str(folder)}

    def backup(keep: str, config: str = settings["XUELIANG_GATEWAY_CONFIG"]) -> subprocess.CompletedProcess:
        proc = run_as_unit("xueliang-gateway-backup.service", workdir, tmp_path,
                           **(settings | {"XUELIANG_GATEWAY_CONFIG": config, "XUELIANG_BACKUP_KEEP": keep}))
        proc.wait(timeout=60)
        return subprocess.CompletedProcess(proc.args, proc.returncode, (tmp_path / "out").read_text(),
                                           (tmp_path / "err").read_text())

    # a KEEP that is no count, and a backup that fails (no database there): an error, exit 2, nothing removed
    for keep in ("0", "two", ""):
        done = backup(keep)
        assert done.returncode == 2 and "error: KEEP" in done.stderr, done.stderr
    (workdir / "missing.yaml").write_text("database: sqlite:///data/gateway/missing.sqlite\n")
    give(workdir)
    done = backup("1", str(workdir / "missing.yaml"))
    assert done.returncode == 2 and "error:" in done.stderr, done.stderr
    assert backups_in(folder) == sorted(old + kept_aside)

    done = backup("2")
    assert done.returncode == 0, done.stderr
    new = [name for name in backups_in(folder) if name not in old + kept_aside]
    assert len(new) == 1 and BACKUP_NAME.fullmatch(new[0]), new
    assert backups_in(folder) == sorted([old[-1], new[0], *kept_aside])  # the newest 2 of its names
    assert done.stdout.count("removed ") == 2, done.stdout
    copy = folder / new[0]
    assert copy.stat().st_mode & 0o777 == 0o600
    with contextlib.closing(sqlite3.connect(f"{copy.as_uri()}?mode=ro", uri=True)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("SELECT count(*) FROM cases").fetchone() == (0,)
