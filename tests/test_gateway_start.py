"""What the gateway's start sets for the whole process, seen in a gateway process of its own."""

import contextlib
import signal
import subprocess
import sys

import httpx
import pytest

from gateway.service import GC_YOUNG_THRESHOLD
from xueliang import services

from .conftest import wait_until

# the real start (tables, database, HTTP socket, MQTT client, clock), up to the HTTP server, which says what it finds
STARTED = """
import gc, sys, uvicorn
from gateway.config import load_gateway_config
from gateway.service import run_gateway
uvicorn.Server.run = lambda server, sockets=None: print("threshold", gc.get_threshold()[0], flush=True)
sys.exit(run_gateway(load_gateway_config(sys.argv[1])))
"""


@pytest.mark.slow  # a gateway process started (about 3 s)
def test_a_started_gateway_collects_its_youngest_objects_less_often(tmp_path):
    """A report of a year's city builds ~40,000 dicts that live through the request; with the default threshold
    (700) the cyclic collector walks them over and over (gateway.service.GC_YOUNG_THRESHOLD)."""
    (tmp_path / "gateway.yaml").write_text(f"database: sqlite:///{tmp_path / 'gateway.sqlite'}\n"
                                           f"http: {{port: {services.free_port()}}}\n"
                                           f"broker: {{port: {services.free_port()}}}\n")
    run = subprocess.run([sys.executable, "-c", STARTED, str(tmp_path / "gateway.yaml")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"threshold {GC_YOUNG_THRESHOLD}\n" in run.stdout
    assert GC_YOUNG_THRESHOLD > 700


@pytest.mark.slow  # a gateway process started and stopped (about 3 s)
def test_a_gateway_stopped_with_sigterm_stops_its_clock_and_ingest_and_exits_0(tmp_path):
    """A service manager stops the gateway with SIGTERM: uvicorn raised it again once its server was done, and Python's
    default for it ended the process there (exit -15), before the clock and MQTT ingest were stopped."""
    port = services.free_port()
    (tmp_path / "gateway.yaml").write_text(f"database: sqlite:///{tmp_path / 'gateway.sqlite'}\n"
                                           f"http: {{port: {port}}}\nbroker: {{port: {services.free_port()}}}\n")
    with open(tmp_path / "err", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "xueliang.cli", "gateway", "--config",
                                 str(tmp_path / "gateway.yaml")], stderr=err)
    try:
        def answers() -> bool:
            assert proc.poll() is None, (tmp_path / "err").read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 503  # no broker there
        wait_until(answers, 30, message="the gateway answers /health")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, (tmp_path / "err").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
