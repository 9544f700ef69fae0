"""An admin removes a retired box from the boxes page and /boxes (it was listed as silent for good): operators and
departments are refused, the log says who removed it, and a box that speaks again is listed again."""

import logging
import re
import time

import pytest
from fastapi.testclient import TestClient

from gateway.api import create_app
from gateway.auth import SESSION_COOKIE, new_token, session_csrf
from gateway.boxes import HEARTBEAT
from gateway.config import Broker as GatewayBroker
from gateway.config import GatewayConfig
from gateway.ingest import Ingest
from gateway.service import MqttIngest
from gateway.storage import Store
from xueliang import wire
from xueliang.mqtt import make_client

from .conftest import page_rows, serve, wait_subscribed, wait_until
from .test_boxes import BOX, TABLES, heartbeat, rows, signed_in
from .test_web import browser, main_text  # noqa: F401 (the fixture)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def two_boxes(tmp_path) -> Store:
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, TABLES, clock=time.time)
    for box in (BOX, "box-2"):
        assert ingest.handle(wire.status_topic(box), heartbeat(tmp_path, box)) == HEARTBEAT
    return store


def test_an_admin_removes_a_box_through_the_api_others_are_refused_and_the_log_says_who(tmp_path, caplog):
    store = two_boxes(tmp_path)
    api = TestClient(create_app(store, TABLES))
    admin = bearer(new_token(store, "root", "admin"))
    assert api.delete(f"/boxes/{BOX}").status_code == 401
    for token in (new_token(store, "op1", "operator", grid="HQ"),
                  new_token(store, "tp", "department", department="traffic-police")):
        refused = api.delete(f"/boxes/{BOX}", headers=bearer(token))
        assert refused.status_code == 403 and refused.json()["detail"] == "only admins remove a box", refused.text
    assert set(rows(store)) == {BOX, "box-2"}
    unknown = api.delete("/boxes/box-9", headers=admin)
    assert unknown.status_code == 404 and unknown.json()["detail"] == "no box 'box-9' is kept"
    assert api.delete("/boxes/-x", headers=admin).status_code == 422  # no box's id
    with caplog.at_level(logging.INFO, logger="gateway.boxes"):
        removed = api.delete(f"/boxes/{BOX}", headers=admin)
    assert removed.status_code == 204 and removed.content == b""
    # its last heartbeat in Beijing time with its offset, as a person reading the log reads every time there
    assert re.search(r"box 'box-1' removed from the boxes by admin:root \(it was online, last heartbeat "
                     r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00\)", caplog.text), caplog.text
    assert [b["box"] for b in api.get("/boxes", headers=admin).json()["boxes"]] == ["box-2"]
    assert api.delete(f"/boxes/{BOX}", headers=admin).status_code == 404  # removed already
    # with http.public_read anyone reads the boxes; removing one still takes an admin's token
    assert TestClient(create_app(store, TABLES, public_read=True)).delete("/boxes/box-2").status_code == 401
    assert set(rows(store)) == {"box-2"}


def csrf_of(page: str) -> str:
    return re.search(r"name=csrf value='([0-9a-f]{64})'", page)[1]


def test_the_boxes_page_offers_admins_alone_to_remove_a_box_and_asks_first(tmp_path):
    store = two_boxes(tmp_path)
    app = create_app(store, TABLES)
    operator = signed_in(app, new_token(store, "op1", "operator", grid="HQ"))
    shown = operator.get("/ui/boxes").text
    assert f"data-box='{BOX}'" in shown and "remove-" not in shown and "<th>移除</th>" not in shown
    own = session_csrf(operator.cookies[SESSION_COOKIE])  # its session's own token: the role is refused, not the form
    for refused in (operator.get(f"/ui/boxes/{BOX}/remove"), operator.post(f"/ui/boxes/{BOX}/remove", data={"csrf": own})):
        assert refused.status_code == 403 and "only admins remove a box" in refused.text
    public = TestClient(create_app(store, TABLES, public_read=True))  # reading without signing in
    assert "remove-" not in public.get("/ui/boxes").text and public.get(f"/ui/boxes/{BOX}/remove").status_code == 403
    assert set(rows(store)) == {BOX, "box-2"}

    admin = signed_in(app, new_token(store, "root", "admin"))
    shown = admin.get("/ui/boxes").text
    assert f"<form method=get action='/ui/boxes/{BOX}/remove' class=remove><button id='remove-{BOX}'>移除</button>" \
        in shown and "<th>移除</th>" in shown
    asking = admin.get(f"/ui/boxes/{BOX}/remove")  # the button asks first: nothing is removed yet
    assert asking.status_code == 200 and "确认从列表中移除边缘盒子 <strong>box-1</strong> (最后心跳 20" in asking.text
    assert "id=remove-confirm>确认移除</button>" in asking.text and set(rows(store)) == {BOX, "box-2"}
    assert admin.post(f"/ui/boxes/{BOX}/remove", data={}).status_code == 403  # without the session's CSRF token
    done = admin.post(f"/ui/boxes/{BOX}/remove", data={"csrf": csrf_of(asking.text)}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/ui/boxes?removed={BOX}"
    assert set(rows(store)) == {"box-2"}
    after = admin.get(done.headers["location"]).text
    assert "已移除边缘盒子 box-1。它若再发来心跳, 将重新列出。" in after and f"data-box='{BOX}'" not in after
    again = admin.post(f"/ui/boxes/{BOX}/remove", data={"csrf": csrf_of(asking.text)}, follow_redirects=False)
    assert again.headers["location"] == f"/ui/boxes?missing={BOX}"  # another admin was first
    assert "未能移除: 列表中没有边缘盒子 box-1" in admin.get(again.headers["location"]).text
    assert admin.get(f"/ui/boxes/{BOX}/remove", follow_redirects=False).headers["location"] == f"/ui/boxes?missing={BOX}"


@pytest.mark.parametrize("query", [{"removed": "全部盒子。系统已迁移, 请到 http://evil.example 重新登录"},
                                   {"missing": "box-1\u202e列出将"}, {"removed": "<b>x</b>"}, {"removed": "x" * 65}])
def test_a_link_to_the_boxes_page_puts_no_words_of_its_own_in_the_removals_outcome(tmp_path, query):
    """The outcome line names a box's id from the query; a link anyone can write names no box with other words."""
    store = two_boxes(tmp_path)
    admin = signed_in(create_app(store, TABLES), new_token(store, "root", "admin"))
    shown = admin.get("/ui/boxes", params=query)
    assert shown.status_code == 200 and "id=outcome" not in shown.text and f"data-box='{BOX}'" in shown.text
    assert "已移除边缘盒子 box-2。" in admin.get("/ui/boxes", params={"removed": "box-2"}).text


@pytest.mark.slow
def test_a_removed_box_stays_removed_across_a_gateway_restart_until_it_speaks_again_over_mosquitto(tmp_path, broker):
    """Removal bans nothing: the box's next heartbeat, over a real Mosquitto, lists it again. Its retained status,
    which a gateway connecting afresh could be sent, does not (the gateway asks for none at subscribe time)."""
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    config = GatewayConfig(broker=GatewayBroker(port=broker.port, client_id="gateway-1"))
    gateway = MqttIngest(config, Ingest(store, TABLES))
    gateway.start()
    box = make_client(BOX)
    try:
        wait_subscribed(gateway)
        box.connect("127.0.0.1", broker.port)
        box.loop_start()
        box.publish(wire.status_topic(BOX), heartbeat(tmp_path), qos=0, retain=True).wait_for_publish(5)
        wait_until(lambda: BOX in rows(store), 10, 0.05, message="the box heard")
        api = TestClient(create_app(store, TABLES))
        admin = bearer(new_token(store, "root", "admin"))
        assert api.delete(f"/boxes/{BOX}", headers=admin).status_code == 204
        removed_at = time.time()
        gateway.stop()  # a gateway restarting: its retained status is not taken again
        gateway = MqttIngest(config, Ingest(store, TABLES))
        gateway.start()
        wait_subscribed(gateway)
        time.sleep(0.5)  # a retained status, were one sent (right after the SUBACK), taken
        assert BOX not in rows(store) and api.get("/boxes", headers=admin).json()["boxes"] == []
        box.publish(wire.status_topic(BOX), heartbeat(tmp_path), qos=0, retain=True).wait_for_publish(5)
        wait_until(lambda: BOX in rows(store), 10, 0.05, message="the box listed again")
        assert rows(store)[BOX]["heard_at"] > removed_at
        assert [b["box"] for b in api.get("/boxes", headers=admin).json()["boxes"]] == [BOX]
    finally:
        box.loop_stop()
        box.disconnect()
        gateway.stop()


@pytest.mark.slow
def test_in_chromium_an_admin_removes_a_box_after_confirming_and_an_operator_sees_no_button(tmp_path, browser):
    from selenium.webdriver.common.by import By

    store = two_boxes(tmp_path)

    def sign_in(base: str, token: str) -> None:
        browser.delete_all_cookies()
        browser.get(f"{base}/ui/login?next=%2Fui%2Fboxes")
        browser.find_element(By.NAME, "token").send_keys(token)
        browser.find_element(By.CSS_SELECTOR, "#login button").click()
        wait_until(lambda: browser.current_url == f"{base}/ui/boxes", 5, message="signed in, on the boxes page")

    with serve(create_app(store, TABLES)) as base:
        sign_in(base, new_token(store, "op1", "operator", grid="HQ"))
        assert len(page_rows(browser, "#boxes tr[data-box]")) == 2
        assert browser.find_elements(By.CSS_SELECTOR, "#boxes button") == []  # no remove button for an operator

        sign_in(base, new_token(store, "root", "admin"))
        browser.find_element(By.ID, f"remove-{BOX}").click()
        wait_until(lambda: browser.find_elements(By.ID, "remove-confirm"), 5, message="asked to confirm")
        assert "确认从列表中移除边缘盒子 box-1" in main_text(browser) and set(rows(store)) == {BOX, "box-2"}
        browser.find_element(By.ID, "remove-cancel").click()  # not yet: back, nothing removed
        wait_until(lambda: browser.current_url == f"{base}/ui/boxes", 5, message="back on the boxes page")
        assert set(rows(store)) == {BOX, "box-2"}
        browser.find_element(By.ID, f"remove-{BOX}").click()
        wait_until(lambda: browser.find_elements(By.ID, "remove-confirm"), 5, message="asked to confirm")
        browser.find_element(By.ID, "remove-confirm").click()
        wait_until(lambda: "已移除边缘盒子 box-1" in main_text(browser), 5, message="the removal said")
        assert [box for box, _ in page_rows(browser, "#boxes tr[data-box]", "data-box")] \
            == ["box-2"]
        assert set(rows(store)) == {"box-2"}
