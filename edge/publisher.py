"""MQTT publishing through an on-disk outbox.

Every message is written to SQLite before it is sent and deleted only when the broker
acknowledges it (QoS 1 PUBACK), so a broker outage or a restart of the box loses
nothing: on start, everything pending is sent again in order. A message the broker
refuses (e.g. not authorised) moves to ``outbox_refused`` with the reason.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from edge.config import Broker
from xueliang import wire
from xueliang.mqtt import make_client

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox_refused (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL,
    reason TEXT NOT NULL
);
"""


class Outbox:
    """A durable FIFO of (topic, payload) in SQLite; thread-safe."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def put(self, items: list[tuple[str, bytes]], now: float) -> None:
        """Store messages atomically, in order (evidence before its incident)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT INTO outbox(topic, payload, created) VALUES (?, ?, ?)",
                                 [(t, p, now) for t, p in items])
            self._db.execute("COMMIT")

    def after(self, last_id: int, limit: int) -> list[tuple[int, str, bytes]]:
        with self._lock:
            return self._db.execute("SELECT id, topic, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                                    (last_id, limit)).fetchall()

    def done(self, row_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))

    def refuse(self, row_id: int, reason: str) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR REPLACE INTO outbox_refused SELECT id, topic, payload, created, ? "
                             "FROM outbox WHERE id = ?", (reason, row_id))
            self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
            self._db.execute("COMMIT")

    def pending(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM outbox").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Publisher:
    """Sends the outbox to the broker with QoS 1; last-will ``offline`` on the box's status topic.

    Only the sender thread touches the in-flight table: paho's callbacks just hand their
    news over through a queue. (Taking a lock inside ``on_publish`` while the sender holds
    it around ``publish()`` deadlocks with paho's own mutexes under load.)
    """

    def __init__(self, box: str, broker: Broker, outbox: Outbox, window: int = 64, resume_delay_s: float = 3.0):
        self.box, self.outbox, self.window = box, outbox, window
        self._status_topic = wire.status_topic(box)
        self._client = make_client(f"xl-edge-{box}", broker.username, broker.password, broker.tls_ca)
        self._client.will_set(self._status_topic, json.dumps({"box": box, "state": "offline"}), qos=1, retain=True)
        self._client.max_inflight_messages_set(window)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._broker = broker
        self._news: queue.SimpleQueue = queue.SimpleQueue()  # ("ack", mid, reason) / ("connected", resume_at)
        self._inflight: dict[int, int] = {}  # mid -> outbox row id; sender thread only
        self._early: dict[int, object] = {}  # acks that came before publish() returned their mid
        self._last_id = 0
        self._resume_at = 0.0
        # Mosquitto 2.0 does not keep shared subscriptions across its own restart: after a
        # reconnect without a session, give the gateways a moment to subscribe again.
        self.resume_delay_s = resume_delay_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self.connected = threading.Event()
        self.status: dict = {}

    def start(self) -> None:
        self._client.connect_async(self._broker.host, self._broker.port, keepalive=self._broker.keepalive_s)
        self._client.loop_start()
        self._thread.start()

    def send(self, items: list[tuple[str, bytes]]) -> None:
        """Queue messages durably; they go out as soon as the broker is reachable."""
        self.outbox.put(items, time.time())
        self._wake.set()

    def publish_status(self, status: dict) -> None:
        self.status = status
        if self.connected.is_set():
            # QoS 0: a heartbeat is replaced by the next one, and every QoS 1 ack belongs to the outbox
            self._client.publish(self._status_topic, json.dumps(status), qos=0, retain=True)

    def stop(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.outbox.pending() and self.connected.is_set() and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=2)
        if self.connected.is_set():
            self._client.publish(self._status_topic, json.dumps({"box": self.box, "state": "offline"}),
                                 qos=0, retain=True).wait_for_publish(1)
        self._client.disconnect()
        self._client.loop_stop()

    # paho's network thread: hand over, never block
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused connection: %s", reason_code)
            return
        log.info("connected to broker %s:%s", self._broker.host, self._broker.port)
        delay = 0.0 if flags.session_present else self.resume_delay_s
        self._news.put(("connected", time.monotonic() + delay, None))
        self.connected.set()
        client.publish(self._status_topic, json.dumps(self.status or {"box": self.box, "state": "online"}),
                       qos=0, retain=True)
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        log.warning("disconnected from broker: %s", reason_code)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._news.put(("ack", mid, reason_code))
        self._wake.set()

    # the sender thread
    def _ack(self, mid: int, reason_code) -> None:
        row_id = self._inflight.pop(mid, None)
        if row_id is None:
            self._early[mid] = reason_code
            return
        if reason_code is not None and reason_code.is_failure:
            log.error("broker refused outbox message %s: %s", row_id, reason_code)
            self.outbox.refuse(row_id, str(reason_code))
        else:
            self.outbox.done(row_id)

    def _drain_news(self) -> None:
        while True:
            try:
                kind, a, b = self._news.get_nowait()
            except queue.Empty:
                return
            if kind == "ack":
                self._ack(a, b)
            else:  # paho retransmits what it had in flight; the rest of the outbox is resent after it
                self._last_id = max(self._inflight.values(), default=0)
                self._resume_at = a

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            self._drain_news()
            if not self.connected.is_set() or time.monotonic() < self._resume_at:
                continue
            room = self.window - len(self._inflight)
            if room <= 0:
                continue
            for row_id, topic, payload in self.outbox.after(self._last_id, room):
                info = self._client.publish(topic, payload, qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    break
                self._inflight[info.mid] = row_id
                self._last_id = row_id
                if info.mid in self._early:  # acknowledged before we knew its mid
                    self._ack(info.mid, self._early.pop(info.mid))
