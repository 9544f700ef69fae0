"""Who sees which box: each camera's grid in the heartbeat the edge makes (edge/box.py ``status``), checked by the
gateway; an operator sees on ``/ui/boxes``, ``/ui/live/boxes`` and ``/boxes`` the boxes with a camera in its grid
subtree, and of them those cameras alone; an admin every box; a box of older software, whose heartbeat names no
grid, admins alone, its grids said unknown."""

import hashlib
import json
import re
import threading
import time

import pytest
from fastapi.testclient import TestClient

from edge.box import CameraReader, Metrics, Slots, box_now, status
from edge.config import Camera
from gateway import boxes
from gateway.api import create_app
from gateway.auth import new_token
from gateway.config import Broker as GatewayBroker
from gateway.config import GatewayConfig
from gateway.ingest import Ingest
from gateway.service import MqttIngest
from gateway.storage import Store
from xueliang import wire
from xueliang.mqtt import make_client

from .conftest import wait_subscribed, wait_until
from .test_boxes import TABLES, signed_in

DZG_07, DZG_08, XYM = "HQ-DZG-10D-07", "HQ-DZG-10D-08", "HQ-XYM-01-01"  # two streets of the demo tables' HQ


def made(box: str, cameras: dict[str, tuple[str, str]]) -> dict:
    """The heartbeat edge/box.py makes for ``box`` whose cameras (id: (grid, state)) are as their readers set them."""
    slots, stop, metrics = Slots(), threading.Event(), Metrics()
    readers = {}
    for cid, (grid, state) in cameras.items():
        readers[cid] = CameraReader(Camera(id=cid, url=f"rtsp://127.0.0.1:9/{cid}", grid=grid), slots, metrics, stop)
        readers[cid].health.state, readers[cid].health.last_frame_at = state, box_now()
    return status(box, readers, slots, {}, heartbeat_s=10.0)


def older(body: dict) -> dict:
    """The same heartbeat from a box older than the cameras' grid in it."""
    return dict(body, cameras={cid: {k: v for k, v in c.items() if k not in ("grid", "zone_grids")}
                               for cid, c in body["cameras"].items()})


def heartbeats() -> dict[str, dict]:
    """What each box says, sent now: two cameras in one street, one camera in each street, one in the other street.
    Made when a test sends them, not when the module is read: a heartbeat made at collection and heard more than
    ``wire.MAX_CLOCK_SKEW_S`` later (a long suite) told of a box's clock off, and every box was listed troubled."""
    return {
        "box-dzg": made("box-dzg", {"gate": (DZG_07, "online"), "kerb": (DZG_08, "reconnecting")}),
        "box-both": made("box-both", {"east": (DZG_07, "online"), "west": (XYM, "reconnecting")}),
        "box-xym": made("box-xym", {"yard": (XYM, "online")}),
        "box-old": older(made("box-old", {"lane": (DZG_07, "online")})),
    }


def test_a_zone_on_another_grids_street_shows_the_box_to_that_grids_operator():
    """A camera of one grid whose zone names a neighbouring grid (its kerb across the street): that grid's operator
    gets the zone's cases, so sees the box and that camera too; an operator of neither grid does not."""
    kerb = {"id": "kerb", "types": ["illegal_parking"], "polygon": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]], "grid": XYM}
    own = {"id": "gate", "types": ["garbage"], "polygon": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]], "grid": DZG_07}
    slots, stop, metrics = Slots(), threading.Event(), Metrics()
    camera = Camera(id="gate", url="rtsp://127.0.0.1:9/gate", grid=DZG_07, zones=[kerb, own])
    body = status("box-kerb", {"gate": CameraReader(camera, slots, metrics, stop)}, slots, {}, heartbeat_s=10.0)
    assert body["cameras"]["gate"]["zone_grids"] == [XYM]  # the camera's own grid is not said twice
    beat = boxes.decode("box-kerb", json.dumps(body).encode())
    row = {"box": "box-kerb", "state": "online", "heard_at": time.time(), "sent_at": time.time(),
           "heartbeat": beat.model_dump_json(), "refused_at": None, "refused_reason": None}
    assert [c["camera"] for c in boxes.view(row, time.time(), grids={XYM})["cameras"]] == ["gate"]
    assert boxes.view(row, time.time(), grids={XYM})["grids"] == [DZG_07, XYM]
    assert boxes.view(row, time.time(), grids={DZG_08})["cameras"] == []
    with pytest.raises(boxes.Refused):  # a zone grid is a grid code, as the camera's
        boxes.decode("box-kerb", json.dumps(dict(body, cameras={"gate": dict(body["cameras"]["gate"],
                                                                              zone_grids=["HQ/+"])})).encode())


def test_the_edge_says_each_cameras_grid_and_the_gateway_checks_it_or_takes_a_heartbeat_without():
    beat = boxes.decode("box-both", json.dumps(heartbeats()["box-both"]).encode())
    assert {cid: c.grid for cid, c in beat.cameras.items()} == {"east": DZG_07, "west": XYM}
    old = boxes.decode("box-old", json.dumps(heartbeats()["box-old"]).encode())
    assert old.cameras["lane"].grid is None and old.cameras["lane"].state == "online"
    for grid, why in (("HQ/+", "String should match pattern"), ("<b>x</b>", "String should match pattern"),
                      ("x" * 65, "String should match pattern"), (7, "Input should be a valid string")):
        body = dict(heartbeats()["box-dzg"], cameras={"gate": {"grid": grid, "state": "online"}})
        with pytest.raises(boxes.Refused, match=f"cameras/gate/grid: {why}"):
            boxes.decode("box-dzg", json.dumps(body).encode())


def table(page: str) -> str:
    """The boxes page's listing, as ``/ui/live/boxes`` takes its fingerprint of it."""
    return re.search(r"<table id=boxes>.*?</table>", page, re.S)[0]


def live_matches(client: TestClient) -> bool:
    """Whether the live fingerprint is that of the listing the page shows (read within one second: the listing
    says how long ago each box was heard)."""
    shown, live = table(client.get("/ui/boxes").text), client.get("/ui/live/boxes").text
    return live == hashlib.sha256(shown.encode()).hexdigest()[:16]


@pytest.mark.slow
def test_over_mosquitto_an_operator_sees_the_boxes_and_cameras_of_its_grids_and_an_admin_all(tmp_path, broker):
    """Four boxes' heartbeats over a real Mosquitto to a real gateway's ingest; the gateway's pages and API as each
    reader gets them. An operator sees only the boxes with a camera in its grid subtree, and of those only its
    cameras (counts and the cameras down); a box of older software (no grid in its heartbeat) only an admin, told
    its grids are unknown; the live refresh shows what the page shows."""
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    gateway = MqttIngest(GatewayConfig(broker=GatewayBroker(port=broker.port, client_id="gateway-1")),
                         Ingest(store, TABLES))
    gateway.start()
    senders = []
    try:
        wait_subscribed(gateway)
        for box, body in heartbeats().items():  # each box speaks for itself, as the deploy broker's ACL makes it
            client = make_client(box)
            client.connect("127.0.0.1", broker.port)
            client.loop_start()
            senders.append(client)
            client.publish(wire.status_topic(box), json.dumps(body), qos=0).wait_for_publish(5)
        # the outcomes are counted once a batch is committed and answered (a heartbeat that asks the time is
        # acknowledged first): the rows can be there a moment before the count
        wait_until(lambda: store.count("boxes") == 4 and gateway.outcomes["heartbeat"] == 4, 10, 0.05,
                   message="the four boxes heard")
        assert gateway.outcomes["heartbeat_refused"] == 0

        app = create_app(store, TABLES)
        api = TestClient(app)

        def listed(token: str) -> dict[str, dict]:
            answer = api.get("/boxes", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200, answer.text
            return {b["box"]: b for b in answer.json()["boxes"]}

        def cameras(b: dict) -> dict[str, tuple[str, str]]:
            return {c["camera"]: (c["grid"], c["state"]) for c in b["cameras"]}

        street = new_token(store, "op-dzg", "operator", grid="HQ-DZG")  # the street: both its grids
        seen = listed(street)
        # box-dzg first, troubled (its kerb camera down); box-both not for it (the camera down is the other street's)
        assert list(seen) == ["box-dzg", "box-both"]
        assert cameras(seen["box-dzg"]) == {"gate": (DZG_07, "online"), "kerb": (DZG_08, "reconnecting")}
        assert (seen["box-dzg"]["cameras_up"], seen["box-dzg"]["cameras_total"]) == (1, 2)
        assert cameras(seen["box-both"]) == {"east": (DZG_07, "online")}  # its west camera is the other street's
        assert (seen["box-both"]["cameras_up"], seen["box-both"]["cameras_total"], seen["box-both"]["grids"]) == (
            1, 1, [DZG_07])
        one_grid = listed(new_token(store, "op-07", "operator", grid=DZG_07))  # one grid of it, not its parent
        assert {b: cameras(v) for b, v in one_grid.items()} == {
            "box-both": {"east": (DZG_07, "online")}, "box-dzg": {"gate": (DZG_07, "online")}}
        other = new_token(store, "op-xym", "operator", grid="HQ-XYM")  # the other street
        seen = listed(other)
        assert list(seen) == ["box-both", "box-xym"]  # box-both troubled for it: its camera there is down
        assert cameras(seen["box-both"]) == {"west": (XYM, "reconnecting")}
        assert (seen["box-both"]["cameras_up"], seen["box-both"]["cameras_total"]) == (0, 1)
        assert listed(new_token(store, "op-none", "operator", grid="HQ-DZG-10D-99")) == {}  # no camera in its grid
        admin = new_token(store, "root", "admin")
        seen = listed(admin)
        assert list(seen) == ["box-both", "box-dzg", "box-old", "box-xym"]
        assert seen["box-old"]["grids"] == [] and cameras(seen["box-old"]) == {"lane": (None, "online")}
        assert (seen["box-both"]["cameras_total"], seen["box-both"]["grids"]) == (2, [DZG_07, XYM])
        # a department is still refused
        department = new_token(store, "tp", "department", department="traffic-police")
        assert api.get("/boxes", headers={"Authorization": f"Bearer {department}"}).status_code == 403

        # the page, and its live refresh, as the API
        page = signed_in(app, other)
        shown = page.get("/ui/boxes").text
        assert re.findall(r"data-box='([^']+)'", shown) == ["box-both", "box-xym"]
        assert "盒子 2 台" in shown and "只列出有摄像机在网格 西于庄街道 (HQ-XYM) 及其下级网格内的盒子" in shown
        row = re.search(r"<tr data-box='box-both'>.*?</tr>", shown)[0]
        assert "0/1" in row and "未在线: west (重连中)" in row and "east" not in row
        assert "网格: 西于庄第1社区第1网格 (HQ-XYM-01-01)" in row and "丁字沽" not in row
        wait_until(lambda: live_matches(page), 5, 0.1, message="the live fingerprint is the operator's page's")
        street_page = signed_in(app, street)
        assert page.get("/ui/live/boxes").text != street_page.get("/ui/live/boxes").text
        nobody = signed_in(app, new_token(store, "op-none2", "operator", grid="HQ-DZG-10D-99"))
        empty = nobody.get("/ui/boxes").text
        assert "data-box=" not in empty and "网格 HQ-DZG-10D-99 及其下级网格内尚无边缘盒子的摄像机。" in empty
        whole = signed_in(app, admin)
        shown = whole.get("/ui/boxes").text
        assert re.findall(r"data-box='([^']+)'", shown) == ["box-both", "box-dzg", "box-old", "box-xym"]
        assert "盒子 4 台" in shown and "id=box-scope" not in shown
        row = re.search(r"<tr data-box='box-old'>.*?</tr>", shown)[0]
        assert "网格未知</span>: 心跳未注明摄像机所在网格 (盒子软件较旧, 升级后按网格列给各网格的操作员); 现仅管理员可见" in row
        assert "网格: 丁字沽十段第7网格 (HQ-DZG-10D-07)、西于庄第1社区第1网格 (HQ-XYM-01-01)" in shown
        wait_until(lambda: live_matches(whole), 5, 0.1, message="the live fingerprint is the admin's page's")

        # the old box upgraded: its next heartbeat names its camera's grid, and its operators see it
        senders[3].publish(wire.status_topic("box-old"), json.dumps(made("box-old", {"lane": (DZG_07, "online")})),
                           qos=0).wait_for_publish(5)
        wait_until(lambda: "box-old" in listed(street), 10, 0.05, message="the upgraded box shown to its operator")
        assert "box-old" not in listed(other)
    finally:
        for client in senders:
            client.loop_stop()
            client.disconnect()
        gateway.stop()
