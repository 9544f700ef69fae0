"""The one way both sides open an MQTT v5 client: credentials and TLS from their broker config."""

from __future__ import annotations

from pathlib import Path

import paho.mqtt.client as mqtt


def make_client(client_id: str, username: str | None = None, password: str | None = None,
                tls_ca: Path | None = None, manual_ack: bool = False, reconnect: bool = True) -> mqtt.Client:
    """An MQTT v5 client; with ``manual_ack`` the application sends PUBACK itself (after it has committed);
    without ``reconnect`` a lost connection stays lost."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                         manual_ack=manual_ack, reconnect_on_failure=reconnect)
    if username:
        client.username_pw_set(username, password)
    if tls_ca:
        client.tls_set(ca_certs=str(tls_ca))
    return client
