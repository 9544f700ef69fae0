"""From a real street clip to a grid case: real RTSP server, Mosquitto, edge and gateway processes."""

import json
import signal
import time
import urllib.request

import paho.mqtt.client as mqtt
import pytest

from xueliang import services, wire
from xueliang.demo import write_configs

from .conftest import TRUTH

# the kerb's dwell here: 10 s rather than the clip's 30 s (the van is parked from the first frame, so it shows the same
# thing: one case, not before its dwell) and saves the suite 20 s
KERB_DWELL_S = 10


def get(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        body = r.read()
        return json.loads(body) if r.headers.get_content_type() == "application/json" else body


def retained_status(broker_port: int, box: str, timeout: float = 5.0) -> dict:
    got = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, m: got.setdefault("status", json.loads(m.payload))
    client.connect("127.0.0.1", broker_port)
    client.subscribe(wire.status_topic(box), qos=1)
    client.loop_start()
    deadline = time.monotonic() + timeout
    while "status" not in got and time.monotonic() < deadline:
        time.sleep(0.05)
    client.loop_stop()
    client.disconnect()
    return got.get("status", {})


@pytest.mark.slow
def test_parked_van_becomes_one_case_with_grid_department_and_deadline(tmp_path, broker, rtsp):
    camera = dict(TRUTH["camera"], url=f"rtsp://127.0.0.1:{rtsp.port}/campus-gate",
                  zones=[dict(z, dwell_s=KERB_DWELL_S) if z["id"] == "kerb-no-parking" else z
                         for z in TRUTH["camera"]["zones"]])
    http_port = services.free_port()
    edge_cfg, gateway_cfg = write_configs(tmp_path, broker.port, http_port, [camera], box="e2e-box")
    gateway = services.xueliang(["gateway", "--config", str(gateway_cfg)], tmp_path / "gateway.log")
    edge = None
    try:
        services.wait_port(http_port, gateway, "gateway", timeout=30)
        edge = services.xueliang(["edge", "--config", str(edge_cfg)], tmp_path / "edge.log")
        started = time.monotonic()
        cases = []
        while not cases and time.monotonic() - started < 150:
            assert edge.poll() is None, (tmp_path / "edge.log").read_text()[-3000:]
            cases = get(http_port, "/cases")
            time.sleep(1)
        assert cases, "no case within 150 s:\n" + (tmp_path / "edge.log").read_text()[-3000:]
        elapsed = time.monotonic() - started
        assert elapsed >= KERB_DWELL_S  # not before the dwell time
        # pedestrians cross the junction and lawn zones (dwell 10 s) all the time: give them longer
        time.sleep(12)
        cases = get(http_port, "/cases")
        assert len(cases) == 1, cases
        case = cases[0]
        assert (case["zone"], case["camera"], case["box"]) == ("kerb-no-parking", "campus-gate", "e2e-box")
        assert case["grid"] == "HQ-DZG-10D-07" and case["department"] == "traffic-police"
        assert case["category_name"] == "机动车乱停放" and case["state"] == "dispatched"
        assert wire.parse_time(case["deadline"]) - wire.parse_time(case["created_at"]) == pytest.approx(3600, abs=0.01)
        assert get(http_port, case["evidence_url"])[:2] == b"\xff\xd8"
        status = retained_status(broker.port, "e2e-box")
        assert status["state"] == "online"
        # how the outbox stands: the gateway confirmed the case's messages
        assert status["outbox_unconfirmed"] == 0 and status["broker_disconnects"] == 0
        assert {"outbox_pending", "outbox_oldest_s", "outbox_resent", "gateway_dead_letters"} <= set(status)
        # the gateway keeps the box's latest heartbeat: the boxes page's JSON says what the box said
        (box,) = get(http_port, "/boxes")["boxes"]
        assert (box["box"], box["state"], box["silent"], box["heartbeat_s"]) == ("e2e-box", "online", False, 10.0)
        assert (box["cameras_up"], box["cameras_total"]) == (1, 1) and not box["clock_off"]
        # the box dies: its last will says so
        edge.send_signal(signal.SIGKILL)
        edge.wait(10)
        deadline = time.monotonic() + 40
        while retained_status(broker.port, "e2e-box").get("state") != "offline":
            assert time.monotonic() < deadline, "last will never published"
            time.sleep(1)
        deadline = time.monotonic() + 10
        while (box := get(http_port, "/boxes")["boxes"][0])["state"] != "offline":  # the gateway took the will too
            assert time.monotonic() < deadline, box
            time.sleep(0.5)
        assert box["cameras_total"] == 1  # what it said last is kept
        # structured logs: every line of both processes is one JSON object
        logs = {name: [json.loads(line) for line in (tmp_path / f"{name}.log").read_text().splitlines()]
                for name in ("edge", "gateway")}
        assert all({"t", "level", "logger", "msg"} <= set(line) for lines in logs.values() for line in lines)
        assert any(line["msg"].startswith(f"case {case['id']} opened") and "机动车乱停放" in line["msg"]
                   for line in logs["gateway"])
    finally:
        for p in (edge, gateway):
            if p and p.poll() is None:
                p.terminate()
                p.wait(10)
