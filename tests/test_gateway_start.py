"""What the gateway's start sets for the whole process, seen in a gateway process of its own."""

import subprocess
import sys

import pytest

from gateway.service import GC_YOUNG_THRESHOLD
from xueliang import services

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
