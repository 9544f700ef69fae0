"""A restart of the broker (real Mosquitto, the shipped config: persistence on) while a box has
messages pending: they reach the gateway within seconds of its return, not after resend_after_s.

Mosquitto 2.0 restores a gateway's persistent session from its persistence file but not the
session's shared subscriptions (``$share/gateway/...``: the file keeps only plain ones). Until the
gateway connects again and subscribes, whatever a box publishes matches no subscriber: the broker
answers PUBACK "No matching subscribers" (0x10) and drops it. The box must send it again soon.
"""

import logging
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
import pytest
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.config import Broker
from edge.publisher import Outbox, Publisher
from gateway.config import Broker as GatewayBroker
from gateway.config import GatewayConfig
from gateway.metrics import REGISTRY
from gateway.service import SHARED_SUBSCRIPTIONS, MqttIngest
from xueliang import wire

from .conftest import wait_subscribed, wait_until

RESEND_AFTER_S = 30.0  # the default: what the box would otherwise wait for


class Recorder:
    """Stands for the gateway's ingest: every message is committed as a new case."""

    clock = staticmethod(time.time)  # the gateway's clock, on its acknowledgements

    def __init__(self):
        self.lock = threading.Lock()
        self.payloads: list[bytes] = []

    def handle_batch(self, items):
        with self.lock:
            self.payloads += [payload for _, payload in items]
        return ["case_created"] * len(items)

    def count(self) -> int:
        with self.lock:
            return len(self.payloads)


def gateway(port: int, ingest: Recorder) -> MqttIngest:
    """The gateway's own MQTT side (persistent session, 7-day expiry, shared subscription)."""
    ingest_ = MqttIngest(GatewayConfig(broker=GatewayBroker(port=port, client_id="gateway-1")), ingest)
    ingest_.start()
    wait_subscribed(ingest_)
    return ingest_


def v5_client(client_id: str, port: int, expiry: int | None = None):
    """A connected v5 client; returns (client, CONNACK flags and ``subscribed`` at a SUBACK, PUBACK reason codes by mid)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    connected, flags, pubacks = threading.Event(), {}, {}
    client.on_connect = lambda c, u, f, rc, p: (flags.update(session_present=f.session_present), connected.set())
    client.on_publish = lambda c, u, mid, rc, p: pubacks.__setitem__(mid, rc)
    client.on_subscribe = lambda *_: flags.__setitem__("subscribed", True)
    props = None
    if expiry is not None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = expiry
    client.connect("127.0.0.1", port, clean_start=expiry is None, properties=props)
    client.loop_start()
    assert connected.wait(5)
    return client, flags, pubacks


def test_mosquitto_restores_the_gateways_session_but_not_its_shared_subscription(broker):
    """The broker's behaviour the box must live with (if this fails, Mosquitto now keeps shared
    subscriptions across a restart; the box's quick resend is then merely never needed)."""
    gw, said, _ = v5_client("gateway-1", broker.port, expiry=7 * 86400)
    gw.subscribe([(wire.SHARE_GROUP + wire.INCIDENT_SUBSCRIPTION, 1), ("xl/v1/+/status", 1)])
    wait_until(lambda: said.get("subscribed"), 5, 0.05, message="its SUBACK")
    gw.disconnect()
    gw.loop_stop()
    broker.stop()  # SIGTERM: the persistence file is written at shutdown
    broker.start()
    box, _, pubacks = v5_client("b1", broker.port)
    try:
        shared = box.publish(wire.incident_topic("b1", "cam"), b"x", qos=1)
        plain = box.publish(wire.status_topic("b1"), b"x", qos=1)
        shared.wait_for_publish(5)
        plain.wait_for_publish(5)
        assert pubacks[plain.mid] == 0  # the plain subscription came back (queued for the session)
        assert pubacks[shared.mid] == 16  # "No matching subscribers": dropped
        gw, flags, _ = v5_client("gateway-1", broker.port, expiry=7 * 86400)
        assert flags["session_present"]  # so a CONNACK does not tell the gateway it lost it
        gw.disconnect()
        gw.loop_stop()
    finally:
        box.disconnect()
        box.loop_stop()


@pytest.mark.slow
def test_messages_a_box_sends_before_the_gateway_is_back_after_a_broker_restart_arrive_soon(tmp_path, broker):
    got = Recorder()
    gw = gateway(broker.port, got)
    gw.stop()  # the gateway is away: its session (7 days) waits at the broker
    broker.stop()
    broker.start()
    publisher = Publisher("b1", Broker(port=broker.port, resend_after_s=RESEND_AFTER_S),
                          Outbox(tmp_path / "outbox.sqlite"))
    publisher.start()
    gw = None
    try:
        publisher.send([(wire.incident_topic("b1", "cam"), f'{{"n":{n}}}'.encode()) for n in range(3)])
        # the broker took all three (PUBACK) before the gateway came back
        assert wait_until(lambda: publisher.connected.is_set() and not publisher._inflight
                          and publisher.delivery(time.time())["outbox_unconfirmed"] == 3, 10, 0.05,
                          message="the broker's PUBACKs")
        time.sleep(0.5)
        assert got.count() == 0
        back = time.monotonic()
        gw = gateway(broker.port, got)
        wait_until(lambda: got.count() >= 3, 10, 0.05, message="the box's pending messages at the returned gateway")
        assert time.monotonic() - back < RESEND_AFTER_S / 3
        wait_until(lambda: publisher.outbox.pending() == 0, 5, 0.05, message="the gateway's confirmation")
        assert sorted(set(got.payloads)) == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
        assert publisher.unrouted >= 3 and publisher.delivery(time.time())["outbox_unrouted"] == publisher.unrouted
    finally:
        publisher.stop(timeout=0.5)
        if gw is not None:
            gw.stop()


@pytest.mark.slow
def test_the_gateway_is_shown_subscribed_once_the_broker_confirmed_and_again_after_a_broker_restart(broker, caplog):
    """Connected is not yet subscribed: what a box sends between the gateway's CONNACK and its SUBACK is shared out to
    no gateway (tests waited for it with a fixed sleep, too short on a loaded machine). ``/health``'s broker part says
    ``subscribed`` once the broker confirmed it, and the log says it; lost with the connection, and made again."""
    with caplog.at_level(logging.INFO, logger="gateway.service"):
        gw = gateway(broker.port, Recorder())  # waits until subscribed
    try:
        assert gw.state.parts()["broker"]["subscribed"] is True
        assert "gateway 'gateway-1' subscribed: the broker shares the city's messages with it" in caplog.messages
        broker.stop()
        wait_until(lambda: not gw.state.broker["connected"], 10, 0.05, message="the gateway disconnected")
        assert gw.state.parts()["broker"]["subscribed"] is False
        broker.start()
        wait_subscribed(gw)  # its shared subscriptions made again (the broker kept none of them)
    finally:
        gw.stop()


def test_a_subscription_the_broker_refuses_is_said_and_the_gateway_not_shown_subscribed(caplog):
    """A broker may refuse a subscription in its SUBACK (the deploy broker's accounts do, to any but a gateway's): the
    gateway gets none of those messages, says which and to check the account's ACL, and its broker part is down, and
    ``xl_gateway_broker_subscribed`` 0 on /metrics (``xl_gateway_broker_connected`` alone stayed 1)."""
    def subscribed():
        return REGISTRY.get_sample_value("xl_gateway_broker_subscribed")

    def connected():
        return REGISTRY.get_sample_value("xl_gateway_broker_connected")

    gw = MqttIngest(GatewayConfig(broker=GatewayBroker(port=1, client_id="gateway-1")), Recorder())
    granted, refused = ReasonCode(PacketTypes.SUBACK, identifier=1), ReasonCode(PacketTypes.SUBACK, identifier=0x87)
    with caplog.at_level(logging.INFO, logger="gateway.service"):
        gw._on_subscribe(gw.client, None, 1, [granted, refused, granted], None)
    assert gw.state.broker["subscribed"] is False
    assert caplog.messages == [f"the broker refused gateway 'gateway-1' the subscription to {SHARED_SUBSCRIPTIONS[1]} "
                               "(Not authorized): it is sent none of those messages; check the broker's ACL for its "
                               "account (the deploy broker's: a gateway account, xueliang broker-account FILE gateway "
                               "NAME)"]
    gw.state.broker_up(True)
    gw._on_subscribe(gw.client, None, 1, [granted, refused, granted], None)
    broker = gw.state.parts()["broker"]
    assert broker["state"] == "down" and broker["last_error"].startswith("subscription refused: ")
    assert (subscribed(), connected()) == (0, 1)  # /metrics says it as /health does
    gw.state.broker_up(False)
    gw.state.broker_up(True)  # a new connection
    assert subscribed() == 0
    gw._on_subscribe(gw.client, None, 1, [granted] * 3, None)
    assert gw.state.parts()["broker"]["state"] == "ok" and subscribed() == 1
    gw.state.broker_up(False)
    assert subscribed() == 0
