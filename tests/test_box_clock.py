"""A box whose wall clock runs an hour ahead of the gateway's (no NTP in a street office) loses nothing: the real
broker, the gateway's ingest on SQLite, the box's publisher and outbox. Its incidents were dead letters, and the
box deleted them on the gateway's word."""

import time

import pytest

from edge.config import Broker
from edge.publisher import Outbox, Publisher
from gateway.config import TABLES_DIR, GatewayConfig, load_tables
from gateway.config import Broker as GatewayBroker
from gateway.ingest import Ingest
from gateway.service import MqttIngest
from gateway.storage import Store
from xueliang import wire

from .conftest import wait_until
from .test_gateway import START, TOPIC

HOUR = 3600.0


def incident(t: float, **changes) -> bytes:
    """START as the box makes it at ``t`` on the clock it puts on the wire."""
    return wire.encode_incident({**START, "started_at": wire.iso(t), "observed_at": wire.iso(t), **changes})


@pytest.fixture
def stack(tmp_path, broker):
    """(gateway's ingest, its store, how far its clock is behind this machine's, the box's publisher): the
    gateway's clock an hour behind, so the box's wall clock (this machine's) is an hour ahead of it."""
    behind = [HOUR]
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    ingest = Ingest(store, load_tables(TABLES_DIR / "demo.yaml"), clock=lambda: time.time() - behind[0])
    gateway = MqttIngest(GatewayConfig(broker=GatewayBroker(port=broker.port, client_id="gateway-1")), ingest)
    gateway.start()
    publisher = Publisher("box-1", Broker(port=broker.port, resend_after_s=1), Outbox(tmp_path / "outbox.sqlite"))
    try:
        wait_until(lambda: gateway.state.broker["connected"], 10, 0.05, message="gateway connected")
        time.sleep(0.5)  # its subscriptions
        publisher.start()
        assert publisher.connected.wait(10)
        yield ingest, store, behind, publisher
    finally:
        publisher.stop(timeout=0.5)
        gateway.stop()


@pytest.mark.slow
def test_an_incident_ahead_of_the_gateways_clock_stays_in_the_outbox_until_the_gateway_takes_it(stack):
    """No acknowledgement tells this box the gateway's clock (no evidence before the incident): it keeps sending
    it, the gateway holds it each time (no dead letter) and lists the box, and takes it once its clock allows."""
    ingest, store, behind, publisher = stack
    publisher.send([(TOPIC, incident(time.time()))])
    wait_until(lambda: publisher.resent >= 1, 15, 0.05, message="sent again for want of an acknowledgement")
    assert store.count("dead_letters") == 0 and publisher.outbox.pending() == 1
    assert publisher.delivery(time.time())["gateway_dead_letters"] == 0
    listed = ingest.health.parts()["ingest"]["boxes_ahead"]["box-1"]
    assert abs(listed["ahead_s"] - HOUR) < 10 and listed["held"] >= 1
    behind[0] = 0.0  # the gateway's clock reaches the incident's time
    wait_until(lambda: publisher.outbox.pending() == 0, 20, message="taken and acknowledged")
    (case,) = store.list_cases()
    assert case["incident_id"] == START["incident_id"] and store.count("dead_letters") == 0
