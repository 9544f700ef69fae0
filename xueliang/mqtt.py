"""The one way both sides open an MQTT v5 client: credentials and TLS from their broker config."""

from __future__ import annotations

import logging
import re
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)
SAY_AGAIN_S = 60.0  # a broker that stays out of reach for the same reason is said again this often
# a connection that ended with no DISCONNECT from the broker: paho names it "Unspecified error", as of a fault, and
# Mosquitto 2.0 closes its connections so as it stops or restarts (an administrator's restart read as a failure)
LOST = ("the connection closed with no word from the broker (the broker stopped or restarted, the network between "
        "dropped it, or another client connected under this client id)")


def disconnected(reason_code: object, flags: mqtt.DisconnectFlags) -> str:
    """Why a connection ended (paho's ``on_disconnect``), in words: the broker's reason where it sent one, else
    ``LOST`` for paho's "Unspecified error" of a connection closed under it.

    >>> disconnected("Unspecified error", mqtt.DisconnectFlags(is_disconnect_packet_from_server=False)) == LOST
    True
    >>> disconnected("Server shutting down", mqtt.DisconnectFlags(is_disconnect_packet_from_server=True))
    'Server shutting down'
    """
    if str(reason_code) == "Unspecified error" and not flags.is_disconnect_packet_from_server:
        return LOST
    return str(reason_code)


class ConnectFailures:
    """Logs a client's failed tries to reach its broker (paho's ``on_connect_fail``, which it calls from the
    ``except OSError`` around its try, so the exception is the one being handled), a login the broker refused
    (``refused``) and a connection it closed before answering the login (``lost``): the first, a change of reason,
    and the same again once ``SAY_AGAIN_S`` passed, each with how many tries failed since it was last reached.
    paho tries again in silence: a box given a wrong broker host or port, or a CA the broker's certificate is not
    signed by, ran with no line saying that nothing it saw went out; a wrong password was said at every try, naming
    nothing to set, and a TLS broker read without ``tls_ca`` as "Unspecified error" at every try."""

    def __init__(self) -> None:
        self.tries = 0  # failed since the broker was last reached
        self._said: tuple[str, float] | None = None  # the reason last logged, and when
        self._answer: str | None = None  # the broker's answer to the login of the connection now held

    def __call__(self, client: mqtt.Client, userdata: object) -> None:
        exc = sys.exc_info()[1]
        self._failed(client, f"cannot reach the MQTT broker at {client.host}:{client.port} (" +
                     (f"{type(exc).__name__}: {exc}" if exc is not None else "no reason given") + ")")

    def refused(self, client: mqtt.Client, reason_code: object, username: str | None) -> None:
        """The broker answered the login with ``reason_code``, a refusal (paho's ``on_connect``)."""
        self._answer = "refused"
        if str(reason_code) in ("Not authorized", "Bad user name or password") and username:
            hint = ("the user name and password are no account of the broker's (the deploy broker's accounts: "
                    "xueliang broker-account, then restart it): check broker.username and broker.password")
        elif str(reason_code) in ("Not authorized", "Bad user name or password"):
            hint = "no user name was given, and the broker takes no anonymous client: set broker.username and broker.password"
        else:
            hint = "check the config's broker settings"
        login = f" as {username!r}" if username else ""
        self._failed(client, f"the MQTT broker at {client.host}:{client.port} refused the login{login} ({reason_code}): "
                     f"{hint}", logging.ERROR)

    def lost(self, client: mqtt.Client, tls: bool) -> bool:
        """A connection ended (paho's ``on_disconnect``): True where the broker had let it in, a loss to say as such;
        one it refused was said as such, and one it closed before answering the login is said here, a failed try."""
        answer, self._answer = self._answer, None
        if answer is not None:
            return answer == "accepted"
        self._failed(client, f"the MQTT broker at {client.host}:{client.port} closed the connection before answering "
                     "the login" + ("" if tls else ": a broker that speaks TLS on this port closes a connection "
                                    "without it: set broker.tls_ca to the CA certificate that signed the broker's"))
        return False

    def _failed(self, client: mqtt.Client, reason: str, level: int = logging.WARNING) -> None:
        self.tries += 1
        now = time.monotonic()
        if self._said is None or self._said[0] != reason or now - self._said[1] >= SAY_AGAIN_S:
            log.log(level, "%s; %d tr%s failed, trying again", reason, self.tries, "y" if self.tries == 1 else "ies")
            self._said = (reason, now)

    def reached(self) -> None:
        """The broker was reached and let the client in: the next failure is said at once."""
        self.tries, self._said, self._answer = 0, None, "accepted"


def broker_host(host: str) -> str:
    """A broker's ``host`` as a config writes it; ValueError for a URL or a port written into it, which paho looked up
    as a name, failing every try at run time ("cannot reach the MQTT broker at mqtt://10.0.0.10:1883").

    >>> broker_host("10.0.0.10"), broker_host("mqtt.city.local"), broker_host("::1")
    ('10.0.0.10', 'mqtt.city.local', '::1')
    >>> broker_host("10.0.0.10:8883")
    Traceback (most recent call last):
    ...
    ValueError: '10.0.0.10:8883' has a port in it: write the host alone (10.0.0.10) and port: 8883
    """
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", host):
        raise ValueError(f"{host[:80]!r} is a URL: write the broker's host alone (10.0.0.10, mqtt.city.local), its port "
                         "under port and TLS with tls_ca")
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        raise ValueError(f"{host[:80]!r} has a port in it: write the host alone ({name}) and port: {port}")
    if re.search(r"[\s/]", host):
        raise ValueError(f"{host[:80]!r} is not a host: write the broker's name or address alone (10.0.0.10)")
    return host


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
    client.on_connect_fail = ConnectFailures()
    return client
