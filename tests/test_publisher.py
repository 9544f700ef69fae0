"""The outbox: nothing is lost through a broker outage, a restart of the box, or a broker that
takes a message and then loses it; a message leaves the outbox only on a gateway's word (real Mosquitto)."""

import logging
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
import pytest
from paho.mqtt.properties import Properties

from edge.config import Broker
from edge.publisher import Outbox, Publisher
from xueliang import services, wire
from xueliang.mqtt import LOST


class Collector:
    """A subscriber with a persistent session, so the broker keeps its messages while it is away.

    It stands where the gateway would and, like it, acknowledges what it got on the box's ack
    topic in the wire's format; ``confirm=False`` leaves a message unconfirmed (a gateway that
    never committed it), ``skip_first`` does so for the first delivery of each message only.
    """

    def __init__(self, port: int, topic: str, confirm: bool = True, skip_first: bool = False):
        self.messages: list[tuple[str, bytes]] = []
        self.confirm, self.skip_first, self.seen = confirm, skip_first, set()
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="collector", protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.reconnect_delay_set(0.2, 1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg):
        digest = wire.message_digest(msg.topic, msg.payload)
        with self.lock:
            self.messages.append((msg.topic, msg.payload))
            first = digest not in self.seen
            self.seen.add(digest)
        if self.confirm and not (self.skip_first and first):
            client.publish(wire.ack_topic(wire.sender(msg.topic)),
                           wire.encode_ack("collector", time.time(), {digest: "case_created"}), qos=1)

    def wait_for(self, n: int, timeout: float = 20.0) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.05)
        return list(self.messages)

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_messages_sent_during_a_broker_outage_arrive_in_order_afterwards(tmp_path):
    broker = services.mosquitto(tmp_path / "mq").start()
    collector = Collector(broker.port, "xl/v1/b1/cam/#")
    time.sleep(0.3)
    publisher = Publisher("b1", Broker(port=broker.port), Outbox(tmp_path / "outbox.sqlite"))
    publisher.start()
    try:
        assert publisher.connected.wait(10)
        publisher.send([("xl/v1/b1/cam/incident", b"before")])
        assert collector.wait_for(1)[-1] == ("xl/v1/b1/cam/incident", b"before")
        broker.stop()
        assert wait_until(lambda: not publisher.connected.is_set())
        for i in range(20):
            publisher.send([(f"xl/v1/b1/cam/evidence/i{i}", b"\xff\xd8" + bytes(50_000)),
                            ("xl/v1/b1/cam/incident", f"during-{i}".encode())])
        assert publisher.outbox.pending() == 40
        broker.start()
        # at least once: a message whose acknowledgement came late (a loaded machine) is sent, or handed to
        # the persistent subscriber, again and arrives twice; the gateway drops the second by its digest
        expected = ["before"] + [f"during-{i}" for i in range(20)]

        def incidents() -> list[str]:
            return list(dict.fromkeys(p.decode() for t, p in collector.wait_for(0) if t.endswith("/incident")))

        assert wait_until(lambda: len(incidents()) == len(expected), timeout=30)
        assert incidents() == expected
        assert len({t for t, _ in collector.wait_for(0) if "/evidence/" in t}) == 20
        assert wait_until(lambda: publisher.outbox.pending() == 0)
    finally:
        publisher.stop(timeout=1)
        collector.stop()
        broker.stop()


@pytest.mark.slow
def test_pending_messages_survive_a_restart_of_the_box(tmp_path):
    port = services.free_port()
    outbox_path = tmp_path / "outbox.sqlite"
    first = Publisher("b1", Broker(port=port), Outbox(outbox_path))  # the broker is not there
    first.start()
    first.send([("xl/v1/b1/cam/incident", b"one"), ("xl/v1/b1/cam/incident", b"two")])
    first.send([("xl/v1/b1/cam/incident", b"three")])
    first.stop(timeout=0.5)
    first.outbox.close()

    broker = services.mosquitto(tmp_path / "mq", port=port).start()
    collector = Collector(port, "xl/v1/b1/cam/incident")
    time.sleep(0.3)
    second = Publisher("b1", Broker(port=port), Outbox(outbox_path))
    second.start()
    try:
        got = collector.wait_for(3)
        assert [p for _, p in got] == [b"one", b"two", b"three"]
        assert wait_until(lambda: second.outbox.pending() == 0)
    finally:
        second.stop(timeout=1)
        collector.stop()
        broker.stop()


@pytest.mark.slow
def test_a_message_the_broker_took_stays_in_the_outbox_until_a_gateway_confirms_it(tmp_path):
    broker = services.mosquitto(tmp_path / "mq").start()
    collector = Collector(broker.port, "xl/v1/b1/cam/#", confirm=False)
    time.sleep(0.3)
    publisher = Publisher("b1", Broker(port=broker.port, resend_after_s=30), Outbox(tmp_path / "outbox.sqlite"))
    publisher.start()
    try:
        publisher.send([("xl/v1/b1/cam/incident", b"one"), ("xl/v1/b1/cam/incident", b"two")])
        assert len(collector.wait_for(2)) == 2  # the broker took both and delivered them
        time.sleep(1.0)
        assert publisher.outbox.pending() == 2
        stats = publisher.delivery(time.time())
        assert stats["outbox_unconfirmed"] == 2 and stats["outbox_oldest_s"] >= 1.0
        # another box's acknowledgement, one that names nothing of ours, and garbage change nothing
        collector.client.publish(wire.ack_topic("b1"), wire.encode_ack("gw", time.time(), {"0" * 20: "duplicate"}),
                                 qos=1)
        collector.client.publish(wire.ack_topic("b1"), b"not an ack", qos=1)
        time.sleep(0.5)
        assert publisher.outbox.pending() == 2
        digest = wire.message_digest("xl/v1/b1/cam/incident", b"one")
        collector.client.publish(wire.ack_topic("b1"), wire.encode_ack("gw", time.time(), {digest: "dead_letter"}),
                                 qos=1)
        assert wait_until(lambda: publisher.outbox.pending() == 1, 5)
        assert publisher.delivery(time.time())["gateway_dead_letters"] == 1
    finally:
        publisher.stop(timeout=0.5)
        collector.stop()
        broker.stop()


@pytest.mark.slow
def test_what_no_gateway_confirms_is_sent_again_after_the_timeout(tmp_path):
    broker = services.mosquitto(tmp_path / "mq").start()
    collector = Collector(broker.port, "xl/v1/b1/cam/#", skip_first=True)  # the first copy is "lost"
    time.sleep(0.3)
    publisher = Publisher("b1", Broker(port=broker.port, resend_after_s=1), Outbox(tmp_path / "outbox.sqlite"))
    publisher.start()
    try:
        publisher.send([("xl/v1/b1/cam/incident", b"one"), ("xl/v1/b1/cam/incident", b"two")])
        got = collector.wait_for(4, timeout=10)
        assert [p for _, p in got] == [b"one", b"two", b"one", b"two"]
        assert wait_until(lambda: publisher.outbox.pending() == 0, 5)
        assert publisher.resent == 2
    finally:
        publisher.stop(timeout=0.5)
        collector.stop()
        broker.stop()



def test_a_heartbeat_sent_at_qos_0_is_no_outbox_message_when_its_id_comes_round_again(tmp_path):
    """paho reports a QoS 0 send (the heartbeat) as published too, under a message id of the same count as the
    outbox's: each was kept as a PUBACK come early, one a heartbeat, for good (a box up a week had gone round the
    65,535 ids, and they were kept by the tens of thousands). The outbox message that took a kept id next counted
    as taken by the broker at once, and the broker's own answer was lost: one no gateway subscribed to waited its
    whole timeout rather than going again shortly."""
    broker = services.mosquitto(tmp_path / "mq").start()  # no subscriber: the broker says so in its PUBACK
    publisher = Publisher("b1", Broker(port=broker.port), Outbox(tmp_path / "outbox.sqlite"))
    publisher.start()
    try:
        assert publisher.connected.wait(10)
        heartbeat = publisher._client._last_mid + 1
        publisher.publish_status({"box": "b1"})
        time.sleep(1.0)  # its send reported
        publisher._client._last_mid = heartbeat - 1  # the ids gone round: the next message takes the heartbeat's
        publisher.send([("xl/v1/b1/cam/incident", b"one")])
        assert wait_until(lambda: publisher.unrouted == 1, 5), publisher.unrouted
    finally:
        publisher.stop(timeout=0.5)
        broker.stop()


@pytest.mark.slow
def test_a_broker_out_of_reach_is_said_in_the_log_with_why_once_a_minute_and_again_once_it_was_back(tmp_path,
                                                                                                     caplog):
    """paho tries again in silence: a box given a port where no broker listens ran with its cameras online and no
    line saying that nothing it saw went out. The first failed try is said with why, the same one again only after a
    minute (or on another reason), and the first once the broker was back and lost again."""
    port = services.free_port()
    publisher = Publisher("b1", Broker(port=port), Outbox(tmp_path / "outbox.sqlite"))
    publisher._client.reconnect_delay_set(min_delay=1, max_delay=1)
    said = f"cannot reach the MQTT broker at 127.0.0.1:{port} (ConnectionRefusedError: [Errno 111] Connection refused)"

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "MQTT broker" in r.getMessage()]

    publisher.start()
    try:
        assert wait_until(lambda: warnings(), timeout=10)
        time.sleep(2.5)  # two or three more tries, a second apart
        assert warnings() == [f"{said}; 1 try failed, trying again"]
        broker = services.mosquitto(tmp_path / "mq", port=port).start()
        assert publisher.connected.wait(10)
        broker.stop()
        assert wait_until(lambda: len(warnings()) == 2, timeout=10)
        assert warnings()[1] == f"{said}; 1 try failed, trying again"
    finally:
        publisher.stop(timeout=0.5)


@pytest.mark.slow
def test_the_box_s_own_disconnect_as_it_stops_is_no_warning_and_a_lost_broker_still_is(tmp_path, caplog):
    """Every stop of a box (the demo's Ctrl-C too) logged ``WARNING disconnected from broker: Normal disconnection``:
    its own goodbye, nothing to act on. A broker that goes away is still a warning."""
    caplog.set_level(logging.INFO, logger="edge.publisher")
    broker = services.mosquitto(tmp_path / "mq").start()
    publisher = Publisher("b1", Broker(port=broker.port), Outbox(tmp_path / "outbox.sqlite"))
    publisher.start()
    try:
        assert publisher.connected.wait(10)
        broker.stop()
        assert wait_until(lambda: not publisher.connected.is_set(), timeout=10)
        assert [(r.levelno, r.getMessage()) for r in caplog.records if "disconnected from broker" in r.getMessage()] \
            == [(logging.WARNING, f"disconnected from broker: {LOST}")]  # it said "Unspecified error", as of a fault
        broker = services.mosquitto(tmp_path / "mq", port=broker.port).start()
        assert publisher.connected.wait(10)
    finally:
        publisher.stop(timeout=0.5)
        broker.stop()
    said = [(r.levelno, r.getMessage()) for r in caplog.records if "disconnected from broker" in r.getMessage()]
    assert said[1:] == [(logging.INFO, "disconnected from broker (the box is stopping)")], said


@pytest.mark.slow
def test_a_login_the_broker_refuses_or_a_tls_broker_read_without_tls_ca_is_said_once_naming_what_to_set(tmp_path,
                                                                                                        caplog):
    """A wrong broker password logged ``broker refused connection: Not authorized`` and ``disconnected from broker:
    Protocol error`` at every try, naming nothing to fix; a box left without ``tls_ca`` on the shipped broker (TLS)
    logged ``disconnected from broker: Unspecified error`` at every try, never why. Each is said at its first try, then
    as any broker out of reach is (another reason, or a minute on), with the settings to look at."""
    caplog.set_level(logging.INFO, logger="edge.publisher")
    broker = services.mosquitto(tmp_path / "mq", users={"b1": "right"}).start()
    ca = tmp_path / "mq" / "certs" / "ca.crt"

    def said() -> list[tuple[int, str]]:
        return [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]

    try:
        for settings, words in [
            ({"username": "b1", "password": "wrong", "tls_ca": ca},
             f"the MQTT broker at 127.0.0.1:{broker.port} refused the login as 'b1' (Not authorized): the user name "
             "and password are no account of the broker's (the deploy broker's accounts: xueliang broker-account, "
             "then restart it): check broker.username and broker.password; 1 try failed, trying again"),
            ({"username": "b1", "password": "right"},
             f"the MQTT broker at 127.0.0.1:{broker.port} closed the connection before answering the login: a broker "
             "that speaks TLS on this port closes a connection without it: set broker.tls_ca to the CA certificate "
             "that signed the broker's; 1 try failed, trying again"),
        ]:
            caplog.clear()
            publisher = Publisher("b1", Broker(port=broker.port, **settings), Outbox(tmp_path / "outbox.sqlite"))
            publisher._client.reconnect_delay_set(min_delay=1, max_delay=1)
            publisher.start()
            try:
                assert wait_until(said, timeout=10)
                time.sleep(2.5)  # two or three more tries, a second apart
                assert said() == [(logging.ERROR if "refused" in words else logging.WARNING, words)]
            finally:
                publisher.stop(timeout=0.5)
    finally:
        broker.stop()
