"""A gateway identity no process runs under any more (renamed, or a gateway taken out) keeps its persistent
session in the shared group for 7 days, and the broker keeps giving it its share of the city's messages,
which wait there unread. ``xueliang gateway --retire`` takes what the session holds as a gateway does
(cases, acknowledgements) and ends it (real Mosquitto, the CLI as a process)."""

import logging
import re
import subprocess
import sys
import time

import paho.mqtt.client as mqtt
import pytest

from gateway import service
from gateway.config import Broker, GatewayConfig, GatewayConfigError, TABLES_DIR, load_gateway_config, load_tables
from gateway.ingest import Ingest
from gateway.service import MqttIngest, retire_gateway
from gateway.schema import MIGRATIONS
from gateway.storage import Store
from xueliang import wire
from xueliang.cli import main as cli
from xueliang.mqtt import make_client

from .conftest import Watcher, wait_subscribed, wait_until
from .test_gateway import TOPIC, payload
from .test_gateway_database import an_older_releases_database, schema_version


def gateway(port: int, identity: str, store: Store) -> MqttIngest:
    running = MqttIngest(GatewayConfig(broker=Broker(port=port, client_id=identity)),
                         Ingest(store, load_tables(TABLES_DIR / "demo.yaml"), clock=time.time))
    running.start()
    wait_subscribed(running)
    return running


def incident(i: int) -> tuple[str, bytes]:
    now = time.time()
    return TOPIC, payload(incident_id=f"i-{i}", location={"lat": 39.0 + i * 0.01, "lon": 117.0},
                          observed_at=wire.iso(now), started_at=wire.iso(now - 30))


def session_present(port: int, identity: str) -> bool:
    seen = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=identity, protocol=mqtt.MQTTv5)
    client.on_connect = lambda c, u, flags, rc, p: seen.append(flags.session_present)
    client.connect("127.0.0.1", port, clean_start=False)
    client.loop_start()
    try:
        return wait_until(lambda: seen, 10, message="connected")[0]
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.slow
def test_retire_ingests_what_an_old_identitys_session_holds_and_ends_it(tmp_path, broker, caplog):
    database = f"sqlite:///{tmp_path}/gateway.sqlite"
    store = Store(database)
    (tmp_path / "gateway.yaml").write_text(f"broker: {{host: 127.0.0.1, port: {broker.port}, client_id: new-gw}}\n"
                                           f"database: {database}\n")
    gateway(broker.port, "old-gw", store).stop()  # ran, and was renamed: its session stays at the broker
    caplog.set_level(logging.WARNING, logger="gateway.service")
    live = gateway(broker.port, "new-gw", store)
    assert "the broker held no session for gateway identity 'new-gw'" in caplog.text  # the hint, at the rename
    acks = Watcher(broker.port, ["xl/v1/box-1/ack"])
    box = make_client("box-1")
    box.connect("127.0.0.1", broker.port)
    box.loop_start()
    try:
        sent = [incident(i) for i in range(10)]
        for topic, body in sent:  # each shared out, to the live gateway or the old session, before its PUBACK
            box.publish(topic, body, qos=1).wait_for_publish(5)
        wait_until(lambda: store.count("cases") > 0, 10, message="the live gateway's share")

        run = subprocess.run([sys.executable, "-m", "xueliang", "gateway", "--config", str(tmp_path / "gateway.yaml"),
                              "--retire", "old-gw"], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        held = int(re.search(r"its session held (\d+) message", run.stdout).group(1))
        assert 0 < held < 10  # the old session's share waited at the broker
        assert (f"gateway identity 'old-gw' retired: its session held {held} message(s) (case_created {held}), "
                "ingested and acknowledged; the session is ended") in run.stdout
        # the live gateway's share, committed as it comes (a loaded machine: after the retire, too)
        wait_until(lambda: store.count("cases") == 10, 10, message="every incident a case")
        wait_until(lambda: sum(live.outcomes.values()) == 10 - held, 10, message="the rest taken by the live gateway")
        assert store.count("dead_letters") == 0

        def told() -> set[str]:
            digests = set()
            for _, ack in list(acks.messages):
                digests |= set(wire.decode_ack(ack))
            return digests

        wait_until(lambda: {wire.message_digest(*m) for m in sent} <= told(), 10,
                   message="every incident acknowledged to the box")  # the box may forget every one

        later = [incident(i) for i in range(10, 20)]
        for topic, body in later:
            box.publish(topic, body, qos=1).wait_for_publish(5)
        wait_until(lambda: store.count("cases") == 20, 10, message="every later incident at the live gateway")
        assert not session_present(broker.port, "old-gw")
    finally:
        box.loop_stop()
        acks.stop()
        live.stop()


@pytest.mark.slow
def test_retire_waits_for_what_its_acknowledgements_let_the_broker_send(tmp_path, broker, monkeypatch, capsys):
    """The broker sends a session at most its receive maximum ahead of its acknowledgements (2,000; a session held
    for days holds more), the rest as each is acknowledged. Retire counted its quiet from the last message: a commit
    slower than the quiet, and it ended the session at the acknowledgement, before the broker's next delivery came,
    which the broker dropped with the session. The quiet counts from the last acknowledgement too."""
    database = f"sqlite:///{tmp_path}/gateway.sqlite"
    store = Store(database)
    gateway(broker.port, "old-gw", store).stop()  # the only one in the shared group: its session holds all
    box = make_client("box-1")
    box.connect("127.0.0.1", broker.port)
    box.loop_start()
    try:
        for i in range(2):
            box.publish(*incident(i), qos=1).wait_for_publish(5)
    finally:
        box.loop_stop()
    monkeypatch.setattr(service, "RETIRE_QUIET_S", 0.8)
    monkeypatch.setattr(MqttIngest, "RECEIVE_MAXIMUM", 1)  # one sent ahead: the next once it is acknowledged
    handle_batch, on_message = Ingest.handle_batch, MqttIngest._on_message
    monkeypatch.setattr(Ingest, "handle_batch", lambda self, items: time.sleep(0.8) or handle_batch(self, items))
    # each message reaches the retiring client 0.4 s after the broker sent it (a loaded machine, a far broker)
    monkeypatch.setattr(MqttIngest, "_on_message", lambda self, *a: time.sleep(0.4) or on_message(self, *a))
    config = GatewayConfig(broker=Broker(port=broker.port, client_id="new-gw"), database=database)
    assert retire_gateway(config, "old-gw") == 0
    assert "its session held 2 message(s) (case_created 2)" in capsys.readouterr().out
    assert store.count("cases") == 2
    assert not session_present(broker.port, "old-gw")


@pytest.mark.slow
def test_no_session_at_a_first_start_on_a_new_database_is_said_as_such_and_a_lost_one_warns(tmp_path, broker, caplog):
    """The demo's gateway starts on a new database and a new broker each time: the broker holds no session for it,
    which it warned of at every start. On a database made at that start, its first connection says it as a first
    start's (INFO); a session the broker lost under it, or one missing on a database a gateway used before, warns."""
    url = f"sqlite:///{tmp_path}/gateway.sqlite"

    def started() -> MqttIngest:
        store = Store(url)
        running = MqttIngest(GatewayConfig(broker=Broker(port=broker.port, client_id="gw-1")),
                             Ingest(store, load_tables(TABLES_DIR / "demo.yaml")), first_start=store.made)
        running.start()
        wait_until(lambda: running.state.broker["connected"], 10, message="connected")
        return running

    def said() -> list[tuple[str, str]]:
        found = [(r.levelname, r.getMessage()) for r in caplog.records if "held no session" in r.getMessage()]
        caplog.clear()
        return [(level, re.search(r"'gw-1': ([^.]+)\.", message).group(1)) for level, message in found]

    caplog.set_level(logging.INFO, logger="gateway.service")
    running = started()
    assert said() == [("INFO", "a first start (its database was made now)")]
    broker.stop()  # the broker loses its sessions under it (started again without its persistence file)
    (tmp_path / "mosquitto" / "mosquitto.db").unlink()
    broker.start()
    wait_until(lambda: [r for r in caplog.records if "held no session" in r.getMessage()], 10,
               message="connected again")
    assert said() == [("WARNING", "a first start, a new identity, or a broker that lost its sessions")]
    running.stop()
    running = started()  # the database made before, the session held: nothing to say
    assert running.session_present and said() == []
    running.stop(end_session=True)
    running = started()  # the database made before, the session gone
    running.stop(end_session=True)
    assert said() == [("WARNING", "a first start, a new identity, or a broker that lost its sessions")]


@pytest.mark.slow
def test_retiring_an_identity_without_a_session_says_so(tmp_path, broker, capsys):
    config = GatewayConfig(broker=Broker(port=broker.port, client_id="new-gw"), database=f"sqlite:///{tmp_path}/g.sqlite")
    Store(config.database).close()  # the gateway's, stopped
    assert retire_gateway(config, "never-ran") == 0
    assert sorted(p.name for p in tmp_path.glob("g.sqlite*")) == ["g.sqlite"]  # closed: no write-ahead log beside it
    assert "gateway identity 'never-ran' held no session at the broker" in capsys.readouterr().out
    assert not session_present(broker.port, "never-ran")  # none left behind by looking


def test_retire_upgrades_an_older_releases_database_before_writing_and_says_so(tmp_path, broker, capsys, monkeypatch):
    """Retire ingests into the database, so it brings an older release's file up to this release's schema as a new
    token does, and says so (it did it without a word: a city rolling back found its old gateway refusing the file)."""
    monkeypatch.setattr(service, "RETIRE_QUIET_S", 0.2)  # no session to drain: quick
    path = tmp_path / "gateway.sqlite"
    an_older_releases_database(path, 17)
    (tmp_path / "gateway.yaml").write_text(f"broker: {{host: 127.0.0.1, port: {broker.port}, client_id: new-gw}}\n"
                                           f"database: sqlite:///{path}\n")
    assert cli(["gateway", "--config", str(tmp_path / "gateway.yaml"), "--retire", "never-ran"]) == 0
    out, err = capsys.readouterr()
    assert "gateway identity 'never-ran' held no session" in out
    assert err == (f"note: upgraded database {path} from migration 17 to {MIGRATIONS[-1][0]} before writing (a "
                   "gateway of an older release refuses it now)\n")
    assert schema_version(path) == MIGRATIONS[-1][0]


@pytest.mark.parametrize("broker_yaml, identity, error", [
    # the deploy broker makes the user name the client id: this would take gateway-2's own session
    ("{username: gateway-2, password: x}", "gateway-1", "--retire 'gateway-1': this config logs in as 'gateway-2'"),
    ("{client_id: new-gw}", "old gw/#", "--retire 'old gw/#': not a client id"),
])
def test_retire_refuses_an_identity_it_cannot_connect_as(tmp_path, broker_yaml, identity, error):
    (tmp_path / "gateway.yaml").write_text(f"broker: {broker_yaml}\ndatabase: sqlite:///{tmp_path}/g.sqlite\n")
    with pytest.raises(GatewayConfigError, match=re.escape(error)):
        retire_gateway(load_gateway_config(tmp_path / "gateway.yaml"), identity)


@pytest.mark.slow
def test_retiring_the_identity_a_running_gateway_uses_stops_and_leaves_it_its_session(tmp_path, broker):
    """Connecting as a running gateway takes its session over; it takes it back at once: retire says so,
    ends nothing, and the running gateway keeps taking the city's messages."""
    database = f"sqlite:///{tmp_path}/gateway.sqlite"
    store = Store(database)
    (tmp_path / "gateway.yaml").write_text(f"broker: {{host: 127.0.0.1, port: {broker.port}, client_id: gw}}\n"
                                           f"database: {database}\n")
    live = gateway(broker.port, "gw", store)
    box = make_client("box-1")
    box.connect("127.0.0.1", broker.port)
    box.loop_start()
    try:
        run = subprocess.run([sys.executable, "-m", "xueliang", "gateway", "--config", str(tmp_path / "gateway.yaml"),
                              "--retire", "gw"], capture_output=True, text=True, timeout=60)
        assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
        assert ("error: gateway identity 'gw': the broker ended the connection (" in run.stderr
                and "(a gateway still running under it). 0 message(s) taken; its session was not ended" in run.stderr)
        wait_subscribed(live)  # back, its subscriptions made again
        for i in range(6):
            box.publish(*incident(i), qos=1).wait_for_publish(5)
        wait_until(lambda: store.count("cases") == 6, 10, message="every incident at the running gateway")
    finally:
        box.loop_stop()
        live.stop()


def test_retire_refuses_a_database_not_there_and_makes_none(tmp_path, broker, capsys):
    """Retire acknowledges what it takes to the broker and the boxes: into a database a mistyped path made, it was
    lost in a file no gateway reads. No database there: refused before it connects, nothing made."""
    path = tmp_path / "mistyped.sqlite"
    (tmp_path / "gateway.yaml").write_text(f"broker: {{host: 127.0.0.1, port: {broker.port}, client_id: new-gw}}\n"
                                           f"database: sqlite:///{path}\n")
    assert cli(["gateway", "--config", str(tmp_path / "gateway.yaml"), "--retire", "old-gw"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (f"error: no database at {path}: the gateway makes it at its first start; check the "
                                 "config's database (nothing was made); --retire takes the session's messages into the "
                                 "gateway's database, and none is there\n")
    assert not path.exists()
