"""The shipped broker (deploy/mosquitto/: TLS, passwords, ACL, user names as client ids, saved every
second), run as shipped, with real gateway processes: a box publishes only under its own
prefix, no account takes over another's session, a department writes nothing and reads only its
dispatches, and a broker killed with SIGKILL mid-stream loses no incident end to end."""

import json
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import yaml

from edge.config import Broker
from edge.publisher import Outbox, Publisher
from xueliang import services, wire
from xueliang.mqtt import make_client

from .conftest import wait_subscribed, wait_until
from .test_gateway import JPEG, START
from .test_workflow import seen

USERS = {"box-1": "box-secret", "box-2": "box2-secret", "gateway-1": "gateway-secret",
         "gateway-2": "gateway2-secret", "traffic-police": "dept-secret", "command-centre": "centre-secret"}


@pytest.fixture
def secure_broker(tmp_path):
    with services.mosquitto(tmp_path / "mq", users=USERS) as service:
        yield service


def ca(tmp_path):
    return tmp_path / "mq" / "certs" / "ca.crt"


def incident(box: str, n: int) -> tuple[str, bytes]:
    """A valid incident of ``box``, each ``n`` at its own place (no merging), so each is a case."""
    message = dict(START, **seen(time.time()), box=box, incident_id=f"{box}-{n}", evidence=None,
                   location={"lat": 30 + n * 0.001, "lon": {"box-1": 110, "box-2": 111}.get(box, 112)})
    return wire.incident_topic(box, "gate"), json.dumps(message).encode()


class Gateway:
    """A real gateway process logged in as ``user``, its SQLite database under ``tmp_path``."""

    def __init__(self, tmp_path, broker, user: str, database: str | None = None):
        self.db = tmp_path / "gateway.sqlite"
        self.http_port = services.free_port()
        config = tmp_path / f"{user}.yaml"
        config.write_text(yaml.safe_dump({
            "broker": {"port": broker.port, "username": user, "password": USERS[user], "tls_ca": str(ca(tmp_path))},
            "database": database or f"sqlite:///{self.db}", "escalation_check_s": 0.5,
            "http": {"port": self.http_port, "public_read": True, "allowed_hosts": ["127.0.0.1"]}}))
        log = tmp_path / f"{user}.log"
        after = log.stat().st_size if log.exists() else 0  # a gateway started again appends to its log
        self.proc = services.xueliang(["gateway", "--config", str(config)], log)
        services.wait_port(self.http_port, self.proc, "gateway", timeout=30)
        wait_subscribed(log, after=after)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(10)


def count(db, sql: str) -> int:
    try:
        with sqlite3.connect(str(db), timeout=5) as conn:
            return conn.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def events(db) -> int:
    return count(db, "SELECT count(*) FROM incident_events")


class Client:
    """A plain MQTT client of one account (``client_id`` may claim another's); what it gets and hears."""

    def __init__(self, tmp_path, broker, user: str, client_id: str | None = None, subscribe: str | None = None,
                 password: str | None = None):
        self.messages, self.pubacks, self.subacks, self.disconnects = [], {}, [], 0
        self.connack = threading.Event()
        self.refused = None
        self.client = make_client(client_id or user, user, password or USERS[user], ca(tmp_path))
        self.client.reconnect_delay_set(0.2, 1)

        def on_connect(c, u, f, rc, p):
            self.refused = rc if rc.is_failure else None
            if subscribe and not rc.is_failure:
                c.subscribe(subscribe, qos=1)
            self.connack.set()

        def on_disconnect(c, u, f, rc, p):
            self.disconnects += 1

        self.client.on_connect = on_connect
        self.client.on_disconnect = on_disconnect
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.client.on_publish = lambda c, u, mid, rc, p: self.pubacks.__setitem__(mid, rc)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.extend(rcs)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self.connack.wait(10), f"no CONNACK for {user}"

    def publish(self, topic: str, payload: bytes):
        info = self.client.publish(topic, payload, qos=1)
        wait_until(lambda: info.mid in self.pubacks, 10, 0.05, message=f"PUBACK for {topic}")
        return self.pubacks[info.mid]

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.slow
def test_anonymous_and_wrong_password_are_refused(secure_broker, tmp_path):
    for user, password in [(None, None), ("box-1", "wrong")]:
        client = make_client("intruder", user, password, ca(tmp_path))
        codes = []
        client.on_connect = lambda c, u, f, rc, p: codes.append(rc)
        client.connect("127.0.0.1", secure_broker.port)
        client.loop_start()
        wait_until(lambda: codes, 5, message="CONNACK")
        client.loop_stop()
        assert codes[0].is_failure


@pytest.mark.slow
def test_a_box_publishes_its_own_topics_and_a_refused_message_is_set_aside_without_a_disconnect(secure_broker,
                                                                                               tmp_path):
    gateway = Gateway(tmp_path, secure_broker, "gateway-1")
    broker = Broker(port=secure_broker.port, username="box-1", password=USERS["box-1"], tls_ca=ca(tmp_path))
    publisher = Publisher("box-1", broker, Outbox(tmp_path / "outbox.sqlite"))
    try:
        publisher.start()
        assert publisher.connected.wait(10)
        forged = dict(START, box="box-2", incident_id="forged")
        publisher.send([(wire.evidence_topic("box-1", "gate", START["incident_id"]), JPEG),
                        (wire.incident_topic("box-2", "gate"), json.dumps(forged).encode()),
                        (wire.incident_topic("box-1", "gate"), json.dumps(START).encode()),
                        (wire.incident_topic("box-1", "gate"), b"not json")])
        # set aside at once, the others go on: the outbox drains on the gateway's acknowledgements,
        # the dead letter's too (accounted for, never sent again)
        wait_until(lambda: publisher.outbox.pending() == 0, 15, message="outbox drained by the gateway's acks")
        assert publisher.disconnects == 0 and publisher.dead_letters == 1 and publisher.resent == 0
        assert count(gateway.db, "SELECT count(*) FROM dead_letters") == 1
        assert count(gateway.db, "SELECT count(*) FROM cases") == 1
        assert count(gateway.db, "SELECT count(*) FROM evidence") == 1
        db = sqlite3.connect(str(tmp_path / "outbox.sqlite"))
        refused = db.execute("SELECT topic, reason FROM outbox_refused").fetchall()
        assert refused == [(wire.incident_topic("box-2", "gate"), "Not authorized")]
        time.sleep(1)
        assert count(gateway.db, "SELECT count(*) FROM cases") == 1 and publisher.disconnects == 0
        # its status reaches the gateway (the ACL lets gateways read xl/v1/+/status); another box may not write it
        wait_until(lambda: count(gateway.db, "SELECT count(*) FROM boxes WHERE box = 'box-1'") == 1, 10,
                   message="box-1's status kept")
        liar = Client(tmp_path, secure_broker, "box-2")
        try:
            assert liar.publish(wire.status_topic("box-1"), b'{"box": "box-1", "state": "offline"}').is_failure
        finally:
            liar.stop()
        time.sleep(0.5)
        assert count(gateway.db, "SELECT count(*) FROM boxes WHERE state = 'offline'") == 0
    finally:
        publisher.stop(timeout=1)
        gateway.stop()


@pytest.mark.slow
def test_a_box_that_claims_another_clients_id_takes_over_no_session(secure_broker, tmp_path):
    gateway = Gateway(tmp_path, secure_broker, "gateway-1")
    box1 = Client(tmp_path, secure_broker, "box-1")
    box2 = Client(tmp_path, secure_broker, "box-2")
    try:
        n = 0
        while events(gateway.db) == 0:  # until the gateway's shared subscription is there
            box1.publish(*incident("box-1", n))
            n += 1
            time.sleep(0.5)
        wait_until(lambda: events(gateway.db) == n, 10, message="probes ingested")
        gateway.proc.terminate()  # its persistent session keeps what comes meanwhile
        gateway.proc.wait(10)
        for i in range(5):
            box1.publish(*incident("box-1", 100 + i))
        # box-1, with its own password, claims the gateway's client id, then box-2's, again and again
        for _ in range(5):
            for claimed in ("gateway-1", "box-2"):
                intruder = Client(tmp_path, secure_broker, "box-1", client_id=claimed)
                intruder.stop()
        assert box2.disconnects == 0
        assert not box2.publish(*incident("box-2", 1)).is_failure
        gateway = Gateway(tmp_path, secure_broker, "gateway-1")
        wait_until(lambda: events(gateway.db) == n + 6, 20, message="the 6 incidents queued in the gateway's session")
        assert box2.disconnects == 0
    finally:
        box1.stop()
        box2.stop()
        gateway.stop()


@pytest.mark.slow
def test_a_box_that_joins_the_gateways_shared_group_takes_no_message_from_them(secure_broker, tmp_path):
    """A box's account subscribing to the gateways' shared subscriptions is refused (SUBACK Not authorized):
    granted, Mosquitto handed it its share of every box's messages, refused their delivery to it and dropped them
    (5 of 10 incidents never reached a gateway, no dead letter, no log line)."""
    gateway = Gateway(tmp_path, secure_broker, "gateway-1")
    intruder = Client(tmp_path, secure_broker, "box-1")
    box2 = Client(tmp_path, secure_broker, "box-2")
    try:
        shared = [f"$share/gateway/{topic}" for topic in (wire.INCIDENT_SUBSCRIPTION, wire.EVIDENCE_SUBSCRIPTION,
                                                          wire.STATUS_SUBSCRIPTION)]
        intruder.client.subscribe([(topic, 1) for topic in shared + ["#", "xl/v1/box-2/#"]])
        wait_until(lambda: len(intruder.subacks) == 5, 5, 0.05, message="SUBACK")
        assert [code.getName() for code in intruder.subacks] == ["Not authorized"] * 5
        for n in range(10):
            assert not box2.publish(*incident("box-2", n)).is_failure
        wait_until(lambda: count(gateway.db, "SELECT count(*) FROM cases") == 10, 5,
                   message="box-2's 10 incidents became cases")
        assert intruder.messages == [] and intruder.disconnects == 0
    finally:
        intruder.stop()
        box2.stop()
        gateway.stop()


@pytest.mark.slow
def test_a_department_writes_nothing_and_reads_only_its_dispatches(secure_broker, tmp_path):
    gateway = Gateway(tmp_path, secure_broker, "gateway-1")
    department = Client(tmp_path, secure_broker, "traffic-police", subscribe="#")
    box1 = Client(tmp_path, secure_broker, "box-1", subscribe="#")
    try:
        # "#" is refused both; each subscribes to what it may read, and then hears only that
        wait_until(lambda: department.subacks and box1.subacks, 5, 0.05, message="SUBACKs")
        assert [c.getName() for c in department.subacks + box1.subacks] == ["Not authorized"] * 2
        department.client.subscribe([("xl/v1/dispatch/#", 1), (wire.dispatch_topic("traffic-police"), 1)])
        box1.client.subscribe(wire.ack_topic("box-1"), 1)
        wait_until(lambda: len(department.subacks) == 3 and len(box1.subacks) == 2, 5, 0.05, message="SUBACKs")
        assert [c.getName() for c in department.subacks[1:] + box1.subacks[1:]] == [
            "Not authorized", "Granted QoS 1", "Granted QoS 1"]
        # a forged incident under the department's own name, and under a box's
        for box in ("traffic-police", "box-1"):
            topic, body = incident(box, 1)
            assert department.publish(topic, body).getName() == "Not authorized"
        assert department.publish(wire.dispatch_topic("sanitation"), b"{}").getName() == "Not authorized"
        assert department.disconnects == 0
        n = 0
        while events(gateway.db) == 0:  # a box's real incident becomes a case dispatched to traffic-police
            box1.publish(*incident("box-1", n))
            n += 1
            time.sleep(0.5)
        wait_until(lambda: any(t == wire.dispatch_topic("traffic-police") for t, _ in department.messages), 20,
                   message="the dispatch reached the department")
        time.sleep(1)
        assert {t for t, _ in department.messages} == {wire.dispatch_topic("traffic-police")}
        assert count(gateway.db, "SELECT count(*) FROM incident_events WHERE incident_id LIKE 'traffic-police%'") == 0
        assert count(gateway.db, "SELECT count(*) FROM cases") == events(gateway.db)
        # a box hears only its own acknowledgements, nobody's dispatches or other boxes' traffic
        assert {t for t, _ in box1.messages} == {wire.ack_topic("box-1")}
    finally:
        department.stop()
        box1.stop()
        gateway.stop()


@pytest.mark.slow
def test_broker_killed_mid_stream_loses_no_incident_end_to_end(secure_broker, tmp_path):
    """Two boxes stream 1,000 incidents each to two gateways; the broker is killed with SIGKILL
    mid-stream and restarted while the gateways are held stopped, so the boxes reconnect and send
    before any gateway subscribes again (Mosquitto 2.0.11 restores no shared subscription)."""
    total_per_box = 1000
    gateways = [Gateway(tmp_path, secure_broker, "gateway-1"),
                Gateway(tmp_path, secure_broker, "gateway-2", database=f"sqlite:///{tmp_path}/gateway.sqlite")]
    publishers = [Publisher(box, Broker(port=secure_broker.port, username=box, password=USERS[box],
                                        tls_ca=ca(tmp_path), resend_after_s=3),
                            Outbox(tmp_path / f"{box}.outbox.sqlite")) for box in ("box-1", "box-2")]
    db = gateways[0].db
    try:
        for p in publishers:
            p.start()
        sent = 0
        for n in range(total_per_box):
            for p in publishers:
                p.send([incident(p.box, n)])
            sent += 2
            if n == total_per_box // 3:
                wait_until(lambda: events(db) > 200, 30, message="ingest under way")
                secure_broker.signal(signal.SIGKILL)
                secure_broker.proc.wait(5)
                for g in gateways:
                    g.proc.send_signal(signal.SIGSTOP)
                secure_broker.start()
                wait_until(lambda: all(p.connected.is_set() for p in publishers), 20, message="boxes back")
            time.sleep(0.004)
        time.sleep(2)  # the boxes send into a broker no gateway is subscribed to
        for g in gateways:
            g.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: events(db) >= sent, 120, message=f"all {sent} incidents ingested")
        wait_until(lambda: all(p.outbox.pending() == 0 for p in publishers), 30, message="outboxes confirmed")
        lost = sent - count(db, "SELECT count(DISTINCT incident_id) FROM incident_events")
        resent = sum(p.resent for p in publishers)
        print(f"broker SIGKILL mid-stream: {sent} incidents sent, {lost} lost, {resent} sent again")
        assert lost == 0
        assert count(db, "SELECT count(*) FROM cases") == sent  # and not one twice
    finally:
        for p in publishers:
            p.stop(timeout=0.5)
        for g in gateways:
            g.stop()


@pytest.mark.slow
def test_a_box_reads_only_its_own_suppressions_and_writes_none(secure_broker, tmp_path):
    """The gateway sends box-1 its suppressions (retained, on xl/v1/box-1/suppressions) through the
    shipped ACL; box-1 cannot forge its own list, box-2 neither reads nor writes box-1's."""
    import subprocess
    import sys

    from edge.suppression import Suppressions

    gateway = Gateway(tmp_path, secure_broker, "gateway-1")
    broker = Broker(port=secure_broker.port, username="box-1", password=USERS["box-1"], tls_ca=ca(tmp_path))
    publisher = Publisher("box-1", broker, Outbox(tmp_path / "outbox.sqlite"))
    held = Suppressions()
    publisher.listen(wire.suppressions_topic("box-1"), lambda payload: held.on_payload(payload, time.time()))
    box2 = Client(tmp_path, secure_broker, "box-2", subscribe="xl/v1/+/suppressions")
    try:
        token = subprocess.run([sys.executable, "-m", "xueliang", "token", "--config", str(tmp_path / "gateway-1.yaml"),
                                "--name", "centre", "--role", "admin"], capture_output=True, text=True,
                               check=True).stdout.strip()
        time.sleep(1)
        publisher.start()
        assert publisher.connected.wait(10)
        publisher.send([incident("box-1", 1)])
        wait_until(lambda: count(gateway.db, "SELECT count(*) FROM cases") == 1, 15, message="the case")
        import urllib.request
        request = urllib.request.Request(f"http://127.0.0.1:{gateway.http_port}/cases/1/verdict", method="POST",
                                         data=json.dumps({"verdict": "false_alarm"}).encode(),
                                         headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 201
        wait_until(lambda: held.status()["suppressions"], 15, message="box-1 has its suppression")
        # box-1 forging its own list is refused and set aside; box-2 may not write it either
        forged = wire.encode_suppressions("box-1", time.time(), [])
        publisher.send([(wire.suppressions_topic("box-1"), forged)])
        wait_until(lambda: publisher.refused == 1, 10, message="the forged list refused")
        assert box2.publish(wire.suppressions_topic("box-1"), forged).getName() == "Not authorized"
        assert box2.publish(wire.suppressions_topic("box-2"), forged).getName() == "Not authorized"
        time.sleep(1)
        assert len(held.status()["suppressions"]) == 1 and box2.messages == []
        assert [c.getName() for c in box2.subacks] == ["Not authorized"]
    finally:
        box2.stop()
        publisher.stop(timeout=1)
        gateway.stop()


@pytest.mark.slow
def test_the_command_centre_reads_the_overdue_notices_and_writes_nothing(secure_broker, tmp_path):
    """No account of the shipped ACL could read xl/v1/escalations/#, where the gateway sends them."""
    centre = Client(tmp_path, secure_broker, "command-centre", subscribe="xl/v1/escalations/#")
    gateway = Client(tmp_path, secure_broker, "gateway-1")
    try:
        wait_until(lambda: centre.subacks, 5, 0.05, message="SUBACK")
        assert [c.getName() for c in centre.subacks] == ["Granted QoS 1"]
        notice = wire.escalation_topic("HQ-DZG-10D")
        assert gateway.publish(notice, b"{}").getName() == "Success"
        # none subscribed to it here (the centre may not: "No matching subscribers"), and not refused
        assert not gateway.publish(wire.dispatch_topic("traffic-police"), b"{}").is_failure
        wait_until(lambda: any(t == notice for t, _ in centre.messages), 10, message="the notice reached the centre")
        time.sleep(0.5)
        assert {t for t, _ in centre.messages} == {notice}  # not the departments' dispatches
        assert centre.publish(notice, b"{}").getName() == "Not authorized"
        assert centre.disconnects == 0
    finally:
        centre.stop()
        gateway.stop()


@pytest.mark.slow
def test_a_box_given_a_ca_that_did_not_sign_the_brokers_certificate_says_so(secure_broker, tmp_path, caplog):
    """A box given the wrong CA certificate (here the system's bundle, which did not sign the broker's) failed
    every TLS handshake in silence, its cameras online, nothing going out."""
    broker = Broker(port=secure_broker.port, username="box-1", password=USERS["box-1"],
                    tls_ca=Path("/etc/ssl/certs/ca-certificates.crt"))
    publisher = Publisher("box-1", broker, Outbox(tmp_path / "outbox.sqlite"))
    publisher.start()
    try:
        wait_until(lambda: "cannot reach" in caplog.text, 10, message="the failure said")
        assert not publisher.connected.is_set()
        assert f"cannot reach the MQTT broker at 127.0.0.1:{secure_broker.port} (SSLCertVerificationError: " \
               "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed" in caplog.text
    finally:
        publisher.stop(timeout=0.5)


def test_broker_account_makes_an_account_the_shipped_broker_takes(tmp_path):
    """`xueliang broker-account` writes the file Mosquitto's dynamic-security plugin reads: the account logs in with
    the password given, may subscribe to its own topics only; a bad name or kind is an error, nothing written; made
    again, it says what changed."""
    import subprocess
    import sys

    service = services.mosquitto(tmp_path / "mq", users={"box-7": "made-by-the-test"})
    accounts = tmp_path / "mq" / "accounts.json"
    accounts.unlink()

    def account(*args, password="s3cret pw"):
        return subprocess.run([sys.executable, "-m", "xueliang", "broker-account", str(accounts), *args],
                              input=password + "\n", capture_output=True, text=True)

    for args in (["box", "box/+"], ["box", "dispatch"], ["robot", "box-7"], ["department", "x", "--grid", "A"]):
        made = account(*args)
        assert made.returncode == 2 and "error:" in made.stderr and not accounts.exists(), made.stderr
    assert account("box", "box-7", password="first").stdout.startswith(f"{accounts}: box account 'box-7' made; ")
    # made again, it says what it did (it said 'made' as of a new account, the old password gone without a word)
    assert account("box", "box-7").stdout.startswith(f"{accounts}: box account 'box-7': password changed; ")
    assert account("gateway", "gateway-1", password="gw").returncode == 0
    assert account("box", "box-8").returncode == 0
    assert account("gateway", "box-8").stdout.startswith(
        f"{accounts}: account 'box-8' made again as gateway (it was a box's), a new password; ")
    assert account("--remove", "box-8").returncode == 0
    assert [c["username"] for c in json.loads(accounts.read_text())["clients"]] == ["box-7", "gateway-1"]
    with service:
        for password, refused in (("made-by-the-test", True), ("s3cret pw", False)):
            codes = []
            c = make_client("box-7", "box-7", password, ca(tmp_path))
            c.on_connect = lambda cl, u, f, rc, p: codes.append(rc)
            c.on_subscribe = lambda cl, u, mid, rcs, p: codes.extend(rcs)
            c.connect("127.0.0.1", service.port)
            c.loop_start()
            wait_until(lambda: codes, 5, 0.05, message="CONNACK")
            assert codes[0].is_failure is refused
            if not refused:
                c.subscribe([("$share/gateway/xl/v1/+/+/incident", 1), (wire.ack_topic("box-7"), 1)])
                wait_until(lambda: len(codes) == 3, 5, 0.05, message="SUBACK")
                assert [code.getName() for code in codes[1:]] == ["Not authorized", "Granted QoS 1"]
            c.disconnect()
            c.loop_stop()


@pytest.mark.slow
def test_a_gateway_whose_subscriptions_the_broker_refuses_is_down_on_health(secure_broker, tmp_path):
    """A gateway logged in with an account that may not join the gateways' shared group (a box's, given by mistake)
    is sent nothing: /health answered 200, its broker part ``ok``, and a monitoring system saw nothing wrong while
    the city's incidents went to the other gateways or waited at the broker (an outsider administrator's probe); then
    /metrics showed it connected and nothing else (an outsider's second look)."""
    http_port = services.free_port()
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({
        "broker": {"port": secure_broker.port, "username": "box-2", "password": USERS["box-2"],
                   "tls_ca": str(ca(tmp_path))},
        "database": f"sqlite:///{tmp_path / 'gateway.sqlite'}", "http": {"port": http_port}}))
    gateway = services.xueliang(["gateway", "--config", str(config)], tmp_path / "gateway.log")
    try:
        services.wait_port(http_port, gateway, "gateway", timeout=30)
        client = __import__("httpx").Client(base_url=f"http://127.0.0.1:{http_port}", timeout=5)
        wait_until(lambda: "refused gateway 'box-2' the subscription" in (tmp_path / "gateway.log").read_text(), 10,
                   message="the refusal logged")
        answer = client.get("/health")
        assert answer.status_code == 503 and answer.json()["down"] == ["broker"], answer.text
        metrics = client.get("/metrics").text  # a monitoring system that reads /metrics sees it too
        assert "xl_gateway_broker_connected 1.0" in metrics and "xl_gateway_broker_subscribed 0.0" in metrics
    finally:
        gateway.terminate()
        gateway.wait(10)
