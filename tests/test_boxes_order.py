"""A box's state on the boxes page whatever order its status messages are written in: its heartbeats (``boot``,
``link``, ``seq``) and its last wills (``boot``, ``link``), written by gateways sharing one database, one of them late
(its ingest held back), or said by the broker once it noticed a connection gone (after the box had connected again,
or, held for a gateway that was down, hours later)."""

import itertools
import json
import socket
import time

import pytest

from edge.box import status
from gateway import boxes
from gateway.ingest import Ingest
from gateway.service import MqttIngest
from gateway.config import GatewayConfig
from gateway.config import Broker as GatewayBroker
from gateway.storage import Store
from xueliang import wire

from .conftest import Watcher, wait_subscribed, wait_until
from .test_boxes import BOX, TABLES, edge_box, heartbeat, kept, rows
from .test_gateway import NOW
from .test_workflow import database_url  # noqa: F401 (the fixture)


def said(made: dict, box: str, message: tuple) -> bytes:
    """``("H", boot, link, seq)``: a heartbeat as the edge makes it (``made``), its order as given (None: left out,
    as a box older than it sends it); ``("W", boot, link)``: a last will (or a stop)."""
    kind, boot, link, *seq = message
    if kind == "H":
        body = {k: v for k, v in made.items() if k not in ("boot", "link", "seq")} | {"box": box}
        order = {"boot": boot, "link": link, "seq": seq[0]}
    else:
        body, order = {"box": box, "state": "offline"}, {"boot": boot, "link": link}
    return json.dumps({**body, **{k: v for k, v in order.items() if v is not None}}).encode()


ORDERS = [  # the messages as written, in turn by two gateways; the state shown, and the seq of the heartbeat shown
    # the box died: the heartbeats its last connection sent, written after its will, leave it offline (and the page
    # shows what the last of them said)
    ([("H", "a", 1, 2), ("W", "a", 1), ("H", "a", 1, 1)], "offline", 2),
    ([("H", "a", 1, 1), ("W", "a", 1), ("H", "a", 1, 2)], "offline", 2),  # a later one: it showed online
    ([("H", "a", 1, 1), ("W", "a", 1), ("W", "a", 1)], "offline", 1),  # the will said again
    ([("W", "a", 1), ("H", "a", 1, 1)], "offline", 1),  # its will written first
    ([("H", "a", 1, 3), ("W", "a", 2), ("H", "a", 2, 4)], "offline", 4),  # its second link's will before its beat
    # a blip: the box connected again and said so (its last heartbeat again, on its new link): online at once
    ([("H", "a", 1, 1), ("W", "a", 1), ("H", "a", 2, 1)], "online", 1),  # it waited for the next heartbeat
    ([("H", "a", 1, 1), ("H", "a", 2, 1), ("W", "a", 1)], "online", 1),  # the will said after: it showed offline
    ([("H", "a", 2, 3), ("W", "a", 1), ("H", "a", 1, 2)], "online", 3),
    ([("H", "a", 2, 3), ("W", "a", 2), ("H", "a", 3, 3), ("H", "a", 2, 4)], "online", 3),
    # started again (a new boot): online, an earlier start's will left
    ([("H", "a", 1, 1), ("W", "a", 1), ("H", "b", 1, 1)], "online", 1),
    ([("H", "b", 1, 1), ("W", "a", 1)], "online", 1),
    # a box older than links orders its heartbeats by seq alone, its will after none: a heartbeat after it is taken
    ([("H", "a", None, 1), ("W", "a", None), ("H", "a", None, 2)], "online", 2),
    ([("H", "a", None, 2), ("W", "a", None), ("H", "a", None, 1)], "offline", 2),
    # and one older than boot and seq, by arrival alone
    ([("H", None, None, None), ("W", None, None), ("H", None, None, None)], "online", None),
]


def test_a_boxs_state_is_its_latest_status_message_in_its_own_order(tmp_path, database_url):  # noqa: F811
    """Two gateways on one database write each box's messages in turn, in the order given (``ORDERS``, a box each)."""
    gateways = [Ingest(Store(database_url), TABLES, clock=lambda: NOW) for _ in range(2)]
    made = json.loads(heartbeat(tmp_path))
    for n, (messages, _, _) in enumerate(ORDERS):
        for i, message in enumerate(messages):
            outcome = gateways[i % 2].handle(wire.status_topic(f"box-{n}"), said(made, f"box-{n}", message))
            assert outcome == boxes.HEARTBEAT
    shown = rows(gateways[0].store)
    wrong = [(messages, (state, seq), (shown[f"box-{n}"]["state"], kept(gateways[0].store, f"box-{n}")[1]))
             for n, (messages, state, seq) in enumerate(ORDERS)
             if (shown[f"box-{n}"]["state"], kept(gateways[0].store, f"box-{n}")[1]) != (state, seq)]
    assert wrong == []


def cut_off(client) -> None:
    """The box's connection dies under it (a cable, a NAT forgetting it): its client notices and connects again."""
    client.socket().shutdown(socket.SHUT_RDWR)


@pytest.mark.slow
def test_a_real_boxs_blip_and_death_over_mosquitto_show_right_in_every_order(tmp_path, broker):
    """A real box's publisher over real Mosquitto to a real gateway: its connection dies and it connects again, then
    it dies. What the broker said on its status topic, written in every order (as gateways sharing a database, one
    held back, may write them), leaves it offline once dead, and online while it runs."""
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    gateway = MqttIngest(GatewayConfig(broker=GatewayBroker(port=broker.port, client_id="gateway-1")),
                         Ingest(store, TABLES))
    watcher = Watcher(broker.port, [wire.status_topic(BOX)])
    publisher, readers, slots = edge_box(tmp_path, port=broker.port)

    def beat() -> None:
        publisher.publish_status(status(BOX, readers, slots, publisher.delivery(time.time()), heartbeat_s=10.0))

    def heard(n: int) -> list[dict]:
        return wait_until(lambda: len(watcher.messages) >= n and [json.loads(p) for _, p in watcher.messages],
                          10, 0.05, message=f"{n} status messages")

    try:
        gateway.start()
        wait_subscribed(gateway)
        publisher.status = status(BOX, readers, slots, publisher.delivery(time.time()), heartbeat_s=10.0)
        publisher.start()  # its first word: its status
        assert publisher.connected.wait(10)
        heard(1)
        beat()
        heard(2)
        cut_off(publisher._client)  # a blip: the broker says its will, the box connects again and says its status
        assert [(m["state"], m["link"]) for m in heard(4)] == [("online", 1), ("online", 1), ("offline", 1),
                                                               ("online", 2)]
        # online as soon as it is back: before, offline until its next heartbeat (10 s here; up to an hour's)
        wait_until(lambda: rows(store)[BOX]["state"] == "online" and gateway.queue.unfinished_tasks == 0, 5, 0.05,
                   message="the box online again without a heartbeat")
        beat()
        heard(5)
        publisher._client.loop_stop()
        cut_off(publisher._client)  # it dies: the broker says its second connection's will
        said_ = heard(6)
        wait_until(lambda: rows(store)[BOX]["state"] == "offline", 5, 0.05, message="the box offline")
    finally:
        watcher.stop()
        publisher.connected.clear()  # dead: its stop says nothing (it would have on a connection it held)
        publisher.stop(timeout=0)
        gateway.stop()
    payloads = [p for _, p in watcher.messages]
    first = said_[0]["seq"]  # heartbeats are numbered from the process's start
    assert [(m["state"], m["link"], m.get("seq")) for m in said_] == [
        ("online", 1, first), ("online", 1, first + 1), ("offline", 1, None), ("online", 2, first + 1),
        ("online", 2, first + 2), ("offline", 2, None)]
    # what it said until each moment, written in every order, each order as a box of its own
    ingest, n = Ingest(Store(f"sqlite:///{tmp_path}/orders.sqlite"), TABLES, clock=lambda: NOW), itertools.count()
    shown = {}
    with ingest.store.begin() as db:
        for until, alive in ((3, False), (5, True), (6, False)):
            for order in itertools.permutations(payloads[:until]):
                box = f"box-{next(n)}"
                for payload in order:
                    beat = ingest.heartbeats.checked(box, json.dumps({**json.loads(payload), "box": box}).encode())
                    assert ingest.heartbeats.apply(db, beat, NOW) == boxes.HEARTBEAT
                shown[box] = (until, "online" if alive else "offline")
    states = {v["box"]: (v["state"], v["heard_at"] is not None) for v in boxes.listed(ingest.store)[1]}
    wrong = [(box, shown[box], states[box]) for box in shown if states[box] != (shown[box][1], True)]
    assert wrong == [], f"{len(wrong)} of {len(shown)} orders wrong, e.g. {wrong[:3]}"
