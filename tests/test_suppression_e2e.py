"""A false alarm rejected with its verdict is not raised again, end to end: the real campus clip
replayed through the edge pipeline, the box's suppressions and its outbox publisher, real
Mosquitto, a real gateway process and its HTTP API."""

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml

from edge.box import Slots, status, to_wire
from edge.config import load_config
from edge.publisher import Outbox, Publisher
from edge.replay import replay
from edge.suppression import Suppressions
from xueliang import services, wire
from xueliang.demo import write_configs

from .conftest import CLIP, TRUTH, city_reviewing_parking, wait_until

BOX = "e2e-box"
SHIFT = 0.125  # the second scene: the same van, an eighth of the frame further left, in the same zone


def http(port: int, path: str, token: str | None = None, body: dict | None = None) -> tuple[int, object]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST" if body is not None else "GET",
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def retained(port: int, topic: str, timeout: float = 5.0) -> dict:
    got = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, m: got.setdefault("payload", json.loads(m.payload))
    client.connect("127.0.0.1", port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    deadline = time.monotonic() + timeout
    while "payload" not in got and time.monotonic() < deadline:
        time.sleep(0.05)
    client.loop_stop()
    client.disconnect()
    return got.get("payload", {})


def start_shifted_clip(tmp_path) -> tuple[subprocess.Popen, Path]:
    """The campus clip with its picture moved left by SHIFT of its width (black on the right): ffmpeg
    started at once, so that it makes the clip while the test does other things."""
    out = tmp_path / "campus-shifted.mp4"
    return subprocess.Popen(["ffmpeg", "-v", "error", "-y", "-i", str(CLIP), "-vf",
                             f"crop=iw*{1 - SHIFT}:ih:iw*{SHIFT}:0,pad=768:576:0:0", "-c:v", "libx264", "-preset", "veryfast",
                             "-g", "25", "-pix_fmt", "yuv420p", str(out)], stdin=subprocess.DEVNULL), out


def shifted_clip(encoding: tuple[subprocess.Popen, Path]) -> Path:
    proc, out = encoding
    assert proc.wait(120) == 0, "ffmpeg failed to make the shifted clip"
    return out


def configs(tmp_path, broker, http_port: int, camera: dict):
    """The box's and the gateway's configs; the city's parking reports wait for a person, so one can be rejected."""
    edge_cfg, gateway_cfg = write_configs(tmp_path, broker.port, http_port, [camera], box=BOX)
    city_reviewing_parking(tmp_path)
    gateway_yaml = yaml.safe_load(gateway_cfg.read_text())
    gateway_cfg.write_text(yaml.safe_dump(dict(gateway_yaml, tables=str(tmp_path / "city.yaml"),
                                               escalation_check_s=0.5)))
    return edge_cfg, gateway_cfg


def admin_token(gateway_cfg) -> str:
    return subprocess.run([sys.executable, "-m", "xueliang", "token", "--config", str(gateway_cfg), "--name",
                           "centre", "--role", "admin"], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.slow
def test_a_false_alarm_rejected_with_its_verdict_is_not_raised_again_and_one_elsewhere_in_its_zone_is(tmp_path,
                                                                                                       broker):
    camera = dict(TRUTH["camera"], url=str(CLIP))
    # the kerb zone reaches further left, so that the shifted van is in it too
    camera["zones"] = [dict(z, polygon=[[0.62, 0.03], [0.97, 0.03], [0.97, 0.22], [0.62, 0.22]])
                       for z in camera["zones"] if z["id"] == "kerb-no-parking"]
    http_port = services.free_port()
    edge_cfg, gateway_cfg = configs(tmp_path, broker, http_port, camera)
    encoding = start_shifted_clip(tmp_path)
    gateway = services.xueliang(["gateway", "--config", str(gateway_cfg)], tmp_path / "gateway.log")
    config = load_config(edge_cfg)
    publisher = Publisher(BOX, config.broker, Outbox(tmp_path / "outbox.sqlite"))
    held = Suppressions()
    publisher.listen(wire.suppressions_topic(BOX), lambda payload: held.on_payload(payload, time.time()))

    def play(video, start: float) -> list[dict]:
        """Replay a clip as the box would send it: what a suppression drops never leaves."""
        sent = []
        for out in replay(config, "campus-gate", str(video), start):
            if held.admit(out.message):
                publisher.send(to_wire(out))
                sent.append(out.message)
        return sent

    try:
        services.wait_port(http_port, gateway, "gateway", timeout=30)
        token = admin_token(gateway_cfg)
        publisher.start()
        assert publisher.connected.wait(10)
        t0 = wire.parse_time("2026-03-02T08:00:00Z")
        first = play(CLIP, t0)
        (van,) = [m for m in first if m["state"] == "start"]
        # every event of the van taken (its case's box is the last one's): one taken after the rejection moved the
        # case's box away from the suppression's on a loaded machine
        last = [round(v, 4) for v in [m for m in first if m["incident_id"] == van["incident_id"]][-1]["bbox"]]
        wait_until(lambda: [[round(v, 4) for v in c["bbox"]] for c in http(http_port, "/cases", token)[1]] == [last],
                   30, message="the van's case, with its last event")
        (case,) = http(http_port, "/cases", token)[1]
        assert case["zone"] == "kerb-no-parking" and case["state"] == "pending_review"
        # the operator: a false alarm (say, the delivery van with a permit), rejected with the verdict
        code, case = http(http_port, f"/cases/{case['id']}/verdict", token, {"verdict": "false_alarm", "reject": True})
        assert code == 201, case
        assert case["state"] == "rejected" and case["verdict"]["verdict"] == "false_alarm"
        assert [e["action"] for e in case["timeline"]][-2:] == ["verdict", "reject"]
        # the box has it over MQTT (retained on its own topic) and says so in its heartbeat
        wait_until(lambda: held.status()["suppressions"], 15, message="the suppression reached the box")
        (item,) = held.status()["suppressions"]
        assert (item["camera"], item["zone"], item["type"]) == ("campus-gate", "kerb-no-parking", "illegal_parking")
        on_wire = retained(broker.port, wire.suppressions_topic(BOX))
        assert on_wire["suppressions"][0]["bbox"] == case["bbox"] and on_wire["suppressions"][0]["case_id"] == case["id"]
        publisher.publish_status(status(BOX, {}, Slots(), publisher.delivery(time.time()), held))
        wait_until(lambda: retained(broker.port, wire.status_topic(BOX), 2).get("suppressions"), 10,
                   message="the heartbeat lists the suppression")
        # the same scene again: the box raises nothing, the gateway hears nothing
        again = play(CLIP, t0 + 3600)
        assert again == [] and held.status()["suppressed_events"] >= 2  # the start and its end
        # the same van elsewhere in the zone: a new case
        elsewhere = play(shifted_clip(encoding), t0 + 7200)
        (moved,) = [m for m in elsewhere if m["state"] == "start"]
        assert moved["zone"] == "kerb-no-parking" and moved["bbox"][0] < van["bbox"][0] - 0.05
        wait_until(lambda: len(http(http_port, "/cases", token)[1]) == 2, 30, message="the case elsewhere")
        cases = http(http_port, "/cases", token)[1]
        assert [c["state"] for c in cases] == ["pending_review", "rejected"]
        assert cases[0]["incident_id"] == moved["incident_id"]
        # lifted: the box's list is empty again, and the place is watched as before
        code, lifted = http(http_port, f"/suppressions/{item['id']}/lift", token, {})
        assert code == 200, lifted
        wait_until(lambda: not held.status()["suppressions"], 15, message="the lifted list reached the box")
        back = play(CLIP, t0 + 10800)
        assert [m["zone"] for m in back if m["state"] == "start"] == ["kerb-no-parking"]
    finally:
        if encoding[0].poll() is None:
            encoding[0].kill()
            encoding[0].wait()
        if publisher.connected.is_set():
            publisher.stop(timeout=2)
        gateway.terminate()
        gateway.wait(10)


@pytest.mark.slow
def test_a_real_box_restarted_after_the_verdict_drops_the_same_false_alarm_and_says_so(tmp_path, broker, rtsp):
    """The edge process itself (RTSP, detector, rules, the analyser's hook): after the verdict it is
    restarted on the same street, sees the van again and sends nothing."""
    camera = dict(TRUTH["camera"], url=f"rtsp://127.0.0.1:{rtsp.port}/campus-gate",  # dwell 10 s: a shorter test
                  zones=[dict(z, dwell_s=min(z.get("dwell_s", 10), 10)) for z in TRUTH["camera"]["zones"]])
    http_port = services.free_port()
    edge_cfg, gateway_cfg = configs(tmp_path, broker, http_port, camera)
    # a heartbeat each second (10 s by default), so that the status that says so comes soon after the drop
    edge_cfg.write_text(yaml.safe_dump(dict(yaml.safe_load(edge_cfg.read_text()), heartbeat_s=1)))
    gateway = services.xueliang(["gateway", "--config", str(gateway_cfg)], tmp_path / "gateway.log")
    edge = None
    try:
        services.wait_port(http_port, gateway, "gateway", timeout=30)
        token = admin_token(gateway_cfg)
        edge = services.xueliang(["edge", "--config", str(edge_cfg)], tmp_path / "edge.log")
        wait_until(lambda: http(http_port, "/cases", token)[1], 150, 1, message="the van's case")
        (case,) = [c for c in http(http_port, "/cases", token)[1] if c["zone"] == "kerb-no-parking"]
        code, body = http(http_port, f"/cases/{case['id']}/verdict", token, {"verdict": "false_alarm", "reject": True})
        assert code == 201, body
        edge.terminate()
        edge.wait(20)
        before = len(http(http_port, "/cases", token)[1])
        edge = services.xueliang(["edge", "--config", str(edge_cfg)], tmp_path / "edge2.log")
        # the van is seen again (dwell 10 s) and dropped: the heartbeat says so, no case comes
        wait_until(lambda: retained(broker.port, wire.status_topic(BOX), 2).get("suppressed_events", 0) >= 1, 120, 0.5,
                   message="the restarted box drops the van:\n" + (tmp_path / "edge2.log").read_text()[-2000:])
        status = retained(broker.port, wire.status_topic(BOX), 2)
        assert [(s["camera"], s["zone"]) for s in status["suppressions"]] == [("campus-gate", "kerb-no-parking")]
        time.sleep(3)
        cases = http(http_port, "/cases", token)[1]
        assert len(cases) == before and not [c for c in cases if c["zone"] == "kerb-no-parking" and c["id"] != case["id"]]
        assert "suppressed by suppression" in (tmp_path / "edge2.log").read_text()
    finally:
        for p in (edge, gateway):
            if p and p.poll() is None:
                p.terminate()
                p.wait(10)
