"""The gateway process: MQTT ingest through a shared subscription, dispatch, and the HTTP API."""

from __future__ import annotations

import json
import logging

import uvicorn
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.api import _case, create_app
from gateway.config import GatewayConfig, load_tables
from gateway.ingest import Ingest
from gateway.storage import Store
from xueliang import wire
from xueliang.mqtt import make_client

log = logging.getLogger(__name__)
SHARE_GROUP = "$share/gateway/"


class MqttIngest:
    """Subscribes with a persistent session so messages wait at the broker while the gateway is down."""

    def __init__(self, config: GatewayConfig, ingest: Ingest):
        self.config, self.ingest = config, ingest
        b = config.broker
        self.client = make_client(b.client_id, b.username, b.password, b.tls_ca)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.5, 2)

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 7 * 86400
        b = self.config.broker
        self.client.connect_async(b.host, b.port, keepalive=15, clean_start=False, properties=props)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def dispatch(self, case_id: int) -> None:
        case = self.ingest.store.get_case(case_id)
        if case:
            body = _case(case)
            self.client.publish(wire.dispatch_topic(case["grid"], case["department"]),
                                json.dumps(body, ensure_ascii=False), qos=1)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused connection: %s", reason_code)
            return
        log.info("gateway connected to broker; subscribing")
        client.subscribe([(SHARE_GROUP + wire.INCIDENT_SUBSCRIPTION, 1), (SHARE_GROUP + wire.EVIDENCE_SUBSCRIPTION, 1)])

    def _on_message(self, client, userdata, msg) -> None:
        self.ingest.handle(msg.topic, msg.payload)


def run_gateway(config: GatewayConfig) -> int:
    tables = load_tables(config.tables)
    store = Store(config.database)
    ingest = Ingest(store, tables)
    mqtt_ingest = MqttIngest(config, ingest)
    ingest.on_case = mqtt_ingest.dispatch
    mqtt_ingest.start()
    try:
        uvicorn.run(create_app(store), host=config.http.host, port=config.http.port, log_level="warning")
    finally:
        mqtt_ingest.stop()
    return 0
