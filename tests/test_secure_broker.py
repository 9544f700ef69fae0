"""TLS, passwords and the ACL in deploy/: a box publishes only under its own prefix."""

import json
import sqlite3
import time
import urllib.request

import pytest
import yaml

from edge.config import Broker
from edge.publisher import Outbox, Publisher
from xueliang import services, wire
from xueliang.mqtt import make_client

from .conftest import wait_until
from .test_gateway import JPEG, START

USERS = {"box-1": "box-secret", "gateway": "gateway-secret"}


@pytest.fixture
def secure_broker(tmp_path):
    with services.mosquitto(tmp_path / "mq", users=USERS) as service:
        yield service


def test_anonymous_and_wrong_password_are_refused(secure_broker, tmp_path):
    ca = tmp_path / "mq" / "certs" / "ca.crt"
    for user, password in [(None, None), ("box-1", "wrong")]:
        client = make_client("intruder", user, password, ca)
        codes = []
        client.on_connect = lambda c, u, f, rc, p: codes.append(rc)
        client.connect("127.0.0.1", secure_broker.port)
        client.loop_start()
        wait_until(lambda: codes, 5, message="CONNACK")
        client.loop_stop()
        assert codes[0].is_failure


def test_box_publishes_own_topics_over_tls_and_is_refused_for_another_box(secure_broker, tmp_path):
    ca = tmp_path / "mq" / "certs" / "ca.crt"
    http_port = services.free_port()
    gateway_cfg = tmp_path / "gateway.yaml"
    gateway_cfg.write_text(yaml.safe_dump({
        "broker": {"port": secure_broker.port, "username": "gateway", "password": USERS["gateway"], "tls_ca": str(ca)},
        "database": f"sqlite:///{tmp_path}/gw.sqlite", "http": {"port": http_port, "public_read": True}}))
    gateway = services.xueliang(["gateway", "--config", str(gateway_cfg)], tmp_path / "gateway.log")
    broker = Broker(port=secure_broker.port, username="box-1", password=USERS["box-1"], tls_ca=ca)
    publisher = Publisher("box-1", broker, Outbox(tmp_path / "outbox.sqlite"), resume_delay_s=0)
    try:
        services.wait_port(http_port, gateway, "gateway", timeout=30)
        time.sleep(1)
        publisher.start()
        assert publisher.connected.wait(10)
        forged = dict(START, box="box-2", incident_id="forged")
        publisher.send([(wire.evidence_topic("box-1", "gate", START["incident_id"]), JPEG),
                        (wire.incident_topic("box-1", "gate"), json.dumps(START).encode()),
                        (wire.incident_topic("box-2", "gate"), json.dumps(forged).encode())])
        wait_until(lambda: publisher.outbox.pending() == 0, 10, message="outbox drained")

        def cases():
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/cases", timeout=3) as r:
                return json.loads(r.read())

        found = wait_until(cases, 10, message="case over TLS")
        assert [c["incident_id"] for c in found] == [START["incident_id"]]
        db = sqlite3.connect(str(tmp_path / "outbox.sqlite"))
        refused = db.execute("SELECT topic, reason FROM outbox_refused").fetchall()
        assert refused == [(wire.incident_topic("box-2", "gate"), "Not authorized")]
        time.sleep(1)
        assert len(cases()) == 1
    finally:
        publisher.stop(timeout=1)
        gateway.terminate()
        gateway.wait(10)
