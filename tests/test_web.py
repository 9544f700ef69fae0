"""The operators' page in a real headless Chromium against a real gateway process: sign-in with a
token for a session cookie, cases, evidence, timeline, map, report, sign-out and revocation; and
what a person reads there: Chinese and Beijing time throughout, each joined incident's snapshot."""

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
import yaml

from gateway.api import create_app
from gateway.auth import new_token
from gateway.config import load_tables
from gateway.ingest import Ingest
from gateway.presentation import ACTION_NAMES, local_time
from gateway.storage import Store
from xueliang import services, wire

from .conftest import REPO, page_rows, serve, wait_until
from .test_gateway import START
from .test_presentation import gone, jpeg, sighting
from .test_workflow import CITY, incident

SHOTS = REPO / "data" / "screenshots"


def chromium(phone_width: int | None = None):
    """Debian's headless Chromium, a desktop's window or, with ``phone_width``, a phone's screen (Chromium's mobile
    emulation: a phone's user agent and touch, and a page laid out as wide as its viewport meta tag says)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as ChromeService

    binary = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not Path(binary).exists() or not Path(driver_path).exists():
        pytest.fail("Debian chromium and chromium-driver are needed: run `make setup`")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,900", "--lang=zh-CN"):
        options.add_argument(flag)
    if phone_width:
        options.add_experimental_option("mobileEmulation", {
            "deviceMetrics": {"width": phone_width, "height": 780, "pixelRatio": 3.0, "touch": True, "mobile": True},
            "userAgent": "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Mobile"})
    return webdriver.Chrome(options=options, service=ChromeService(driver_path))


@pytest.fixture
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def main_text(browser) -> str:
    """The page's main text, or "" while a new page is still replacing the old one."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    try:
        return browser.find_element(By.TAG_NAME, "main").text
    except WebDriverException:
        return ""


@pytest.mark.slow
def test_operator_finds_a_case_sees_its_evidence_timeline_map_and_report(tmp_path, broker, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    http_port = services.free_port()
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(yaml.safe_dump({"broker": {"port": broker.port}, "database": f"sqlite:///{tmp_path}/gw.sqlite",
                                   "http": {"port": http_port}}))
    gateway = services.xueliang(["gateway", "--config", str(cfg)], tmp_path / "gateway.log")
    try:
        services.wait_port(http_port, gateway, "gateway", timeout=30)
        token = subprocess.run([sys.executable, "-m", "xueliang", "token", "--config", str(cfg), "--name", "ops",
                                "--role", "admin"], capture_output=True, text=True, check=True).stdout.strip()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        import cv2
        import hashlib

        from .test_models import first_frame

        jpeg = cv2.imencode(".jpg", first_frame())[1].tobytes()
        start = dict(START, evidence={"sha256": hashlib.sha256(jpeg).hexdigest(), "bytes": len(jpeg)})
        hostile = dict(START, incident_id="hostile1", zone="z-img", grid="<img src=x onerror=alert(1)>",
                       location={"lat": 39.18, "lon": 117.16})
        client.publish(wire.evidence_topic("box-1", "gate", START["incident_id"]), jpeg, qos=1).wait_for_publish(5)
        client.publish(wire.incident_topic("box-1", "gate"), json.dumps(start), qos=1).wait_for_publish(5)
        client.publish(wire.incident_topic("box-1", "gate"), json.dumps(hostile), qos=1).wait_for_publish(5)
        client.loop_stop()
        base = f"http://127.0.0.1:{http_port}/ui"

        def sign_in(with_token: str):
            browser.get(f"{base}/cases?state=dispatched")
            assert "/ui/login?next=" in browser.current_url  # no session: off to the sign-in form
            browser.find_element(By.NAME, "token").send_keys(with_token)
            browser.find_element(By.CSS_SELECTOR, "#login button").click()

        sign_in("xl_not-a-token")
        wait_until(lambda: "登录失败: 令牌无效" in main_text(browser), 5, message="the refusal shown")
        sign_in(token)
        wait_until(lambda: browser.current_url == f"{base}/cases?state=dispatched", 5, message="back where it was going")
        cookie = browser.get_cookie("xl_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
        assert token not in cookie["value"]

        def rows(reload=True):
            if reload:
                browser.get(f"{base}/cases")
            return browser.find_elements(By.CSS_SELECTOR, "#cases tr")[1:]

        def no_token_anywhere():
            links = [e.get_attribute("href") or e.get_attribute("src") for e in
                     browser.find_elements(By.CSS_SELECTOR, "a, img, form")]
            assert token not in browser.current_url and token not in browser.page_source
            assert not [u for u in links if u and "token" in u]

        wait_until(lambda: len(rows()) == 1, 15, message="the case on the page")  # the hostile grid is refused
        SHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SHOTS / "cases.png"))
        assert "机动车乱停放" in rows()[0].text and "HQ-DZG-10D-07" in rows()[0].text
        no_token_anywhere()
        Select(browser.find_element(By.NAME, "category")).select_by_visible_text("暴露垃圾")
        browser.find_element(By.CSS_SELECTOR, "form.filters button").click()
        wait_until(lambda: "category=garbage" in browser.current_url, 5, message="the filter applied")
        assert rows(reload=False) == []
        rows()[0].find_element(By.TAG_NAME, "a").click()
        assert browser.find_element(By.TAG_NAME, "h1").text.startswith("案件 #")
        image = browser.find_element(By.CSS_SELECTOR, "img[alt='发现']")
        wait_until(lambda: browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image)
                   == 768, 5, message="the evidence image loaded")
        timeline = browser.find_element(By.ID, "timeline").text
        assert "立案" in timeline and "派遣" in timeline
        no_token_anywhere()
        browser.save_screenshot(str(SHOTS / "case.png"))
        browser.get(f"{base}/map")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#map a circle")) == 1  # its case, a link
        assert len(browser.find_elements(By.CSS_SELECTOR, "#map rect.cam")) == 1  # its camera
        assert len(browser.find_elements(By.CSS_SELECTOR, "#map path.grid")) == 8  # the demo city's grids
        browser.get(f"{base}/reports")
        assert "受理 1" in browser.find_element(By.TAG_NAME, "main").text
        assert browser.find_elements(By.CSS_SELECTOR, "#ranking tr")[1].text.startswith("1 交警大队")
        browser.save_screenshot(str(SHOTS / "reports.png"))
        browser.get(f"{base}/overdue")
        assert browser.find_elements(By.CSS_SELECTOR, "#cases tr")[1:] == []
        browser.delete_all_cookies()
        browser.get(f"{base}/cases?token={token}")  # a token in the URL opens nothing
        assert "/ui/login" in browser.current_url and not browser.find_elements(By.ID, "cases")
        sign_in(token)
        wait_until(lambda: browser.find_elements(By.ID, "logout"), 5, message="signed in, the sign-out button shown")
        browser.find_element(By.ID, "logout").click()
        wait_until(lambda: browser.current_url == f"{base}/login", 5, message="signed out")
        rows_after = rows()
        assert rows_after == [] and "/ui/login" in browser.current_url
        # a revoked token ends its sessions at once
        sign_in(token)
        wait_until(lambda: len(rows()) == 1, 5, message="signed in again")
        subprocess.run([sys.executable, "-m", "xueliang", "token", "--config", str(cfg), "--revoke", "ops"],
                       check=True, capture_output=True)
        assert rows() == [] and "/ui/login" in browser.current_url
        page = httpx.get(f"{base}/login")
        assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["referrer-policy"] == "no-referrer"
        print(f"screenshots in {SHOTS}")
    finally:
        gateway.terminate()
        gateway.wait(10)


ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
ENGLISH_WORDS = re.compile(r"[A-Za-z]{3,}")
ENGLISH_ACTION = re.compile(r"\b(" + "|".join(sorted(ACTION_NAMES, key=len, reverse=True)) + r")\b")


@pytest.mark.slow
def test_a_person_reads_chinese_and_beijing_time_and_sees_each_incidents_snapshot(tmp_path, browser):
    from selenium.webdriver.common.by import By

    (tmp_path / "city.yaml").write_text(yaml.safe_dump(CITY, allow_unicode=True))
    tables = load_tables(tmp_path / "city.yaml")
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, tables)
    first_id, first = sighting(ingest, jpeg(40))
    assert ingest.handle(*first) == "case_created"
    second_id, second = sighting(ingest, jpeg(48))
    assert ingest.handle(*second) == "case_merged"
    assert gone(ingest, second, jpeg(56, "gold"), "left") == "case_updated"  # the first is still seen
    assert ingest.handle(*incident(type="garbage", grid="D-S2-G9", location={"lat": 39.3, "lon": 117.3})) == "case_created"
    admin, police, operator = (new_token(store, "root", "admin"),
                               new_token(store, "tp", "department", department="traffic-police"),
                               new_token(store, "op1", "operator", grid="D-S1"))
    with serve(create_app(store, tables)) as base:
        for token, action, extra in ((police, "acknowledge", {}), (police, "request_extension", {"extend_by": "2h"}),
                                     (operator, "approve_extension", {}), (operator, "escalate", {})):
            done = httpx.post(f"{base}/cases/1/actions", json={"action": action, **extra},
                              headers={"Authorization": f"Bearer {token}"})
            assert done.status_code == 200, done.text
        case = store.get_case(1)
        browser.get(f"{base}/ui/login")
        browser.find_element(By.NAME, "token").send_keys(admin)
        browser.find_element(By.CSS_SELECTOR, "#login button").click()
        wait_until(lambda: browser.current_url == f"{base}/ui/cases", 5, message="signed in")

        # the case list: Chinese labels, names from the tables, Beijing times
        main = browser.find_element(By.TAG_NAME, "main").text
        labels = [e.text.split("\n")[0].strip() for e in browser.find_elements(By.CSS_SELECTOR, "form.filters label")]
        assert [label.split(" ")[0] for label in labels] == ["状态", "类别", "部门", "网格编码", "只看超期"]
        row = page_rows(browser, "#cases tr:last-child")[0]
        assert "交警" in row and "网格1 (D-S1-C1-G1)" in row and "traffic-police" not in main
        assert local_time(case["created_at"]) in row and local_time(case["deadline"]) in row
        assert not ISO_UTC.search(main), main
        listed_day = local_time(case["created_at"])[:10]

        # the case: every action, state and note in Chinese, times in Beijing time
        browser.get(f"{base}/ui/cases/1")
        timeline = browser.find_element(By.ID, "timeline").text
        for shown in ("立案", "派遣", "合并事件", "事件结束", "签收", "申请延期", "批准延期", "升级督办", "派往 交警",
                      f"同一地点的事件 {second_id} 并入本案", "2 小时", "指挥中心 op1", "部门 tp", "摄像机 box-1"):
            assert shown in timeline, shown
        main = browser.find_element(By.TAG_NAME, "main").text
        assert not ENGLISH_ACTION.search(main.replace(first_id, "").replace(second_id, "")), main
        assert not ISO_UTC.search(main) and "traffic-police" not in main
        facts = browser.find_element(By.ID, "facts").text
        assert f"处置时限 {local_time(case['deadline'])}" in facts and "升级至 社区1 (D-S1-C1)" in facts

        # each incident joined to the case shows its own snapshots
        def widths(incident_id):
            images = browser.find_elements(By.CSS_SELECTOR, f"section.incident[data-incident='{incident_id}'] img")
            wait_until(lambda: all(browser.execute_script("return arguments[0].complete", i) for i in images), 5,
                       message="the snapshots loaded")
            return [(i.get_attribute("alt"), browser.execute_script("return arguments[0].naturalWidth", i))
                    for i in images]

        assert widths(first_id) == [("发现", 40)]
        assert widths(second_id) == [("发现", 48), ("视频核查", 56)]
        SHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SHOTS / "case-incidents.png"))
        for missing in (f"cases/1/incidents/{first_id}/evidence.jpg?which=end",  # no end snapshot yet
                        f"cases/2/incidents/{first_id}/evidence.jpg",  # not that case's incident
                        "cases/99", "cases/abc", "reports?date=2026-02-30"):
            browser.get(f"{base}/ui/{missing}")
            heading = browser.find_element(By.TAG_NAME, "h1").text
            assert heading in ("没有找到", "请求有误") and browser.find_element(By.ID, "logout"), missing
            assert not ENGLISH_WORDS.search(browser.find_element(By.TAG_NAME, "main").text), missing

        # the report counts the same Beijing day the list shows, departments by name
        browser.get(f"{base}/ui/reports")
        main = browser.find_element(By.TAG_NAME, "main").text
        assert browser.find_element(By.NAME, "date").get_attribute("value") == listed_day
        assert any(line.startswith(f"{listed_day}: 受理 2") for line in main.splitlines()), main
        ranking = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#ranking tr")[1:]]
        assert sorted(r.split(" ")[1] for r in ranking) == ["交警", "城管"]


@pytest.mark.slow  # ~5 s on a loaded machine: a Chromium and two case pages
def test_a_box_that_stopped_is_no_re_check_on_the_case_page_nor_in_the_api(tmp_path, browser):
    """A box stopped (or its camera lost) while a case waits for its re-check: its end's picture shows the car still
    there. The page called it 视频核查 (fact and picture) and an operator read the camera's re-check done; only a
    camera that saw it gone (left, cleared) is one. The API names each incident's end reason."""
    from selenium.webdriver.common.by import By

    (tmp_path / "city.yaml").write_text(yaml.safe_dump(CITY, allow_unicode=True))
    tables = load_tables(tmp_path / "city.yaml")
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, tables)
    stopped_id, stopped = sighting(ingest, jpeg(40))
    assert ingest.handle(*stopped) == "case_created"
    assert gone(ingest, stopped, jpeg(48), "box_stopped") == "case_updated"
    left_id, left = sighting(ingest, jpeg(56), grid="D-S2-G9", location={"lat": 39.3, "lon": 117.3})
    assert ingest.handle(*left) == "case_created"
    assert gone(ingest, left, jpeg(64), "left") == "case_updated"
    admin = new_token(store, "root", "admin")
    with serve(create_app(store, tables)) as base:
        api = {n: httpx.get(f"{base}/cases/{n}", headers={"Authorization": f"Bearer {admin}"}).json() for n in (1, 2)}
        assert [i["end_reason"] for i in api[1]["incidents"] + api[2]["incidents"]] == ["box_stopped", "left"]
        browser.get(f"{base}/ui/login")
        browser.find_element(By.NAME, "token").send_keys(admin)
        browser.find_element(By.CSS_SELECTOR, "#login button").click()
        wait_until(lambda: browser.current_url == f"{base}/ui/cases", 5, message="signed in")
        shown = {}
        for n, incident_id in ((1, stopped_id), (2, left_id)):
            browser.get(f"{base}/ui/cases/{n}")
            pictures = browser.find_elements(By.CSS_SELECTOR, f"section.incident[data-incident='{incident_id}'] img")
            shown[n] = (browser.find_element(By.ID, "facts").text,
                        [p.get_attribute("alt") for p in pictures])
        assert "视频核查" not in shown[1][0] and "事件结束 边缘盒子停止" in shown[1][0]
        assert shown[1][1] == ["发现", "事件结束 (边缘盒子停止)"]
        assert "视频核查 车辆已驶离" in shown[2][0] and shown[2][1] == ["发现", "视频核查"]


CROSS_SITE = ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
              {"Sec-Fetch-Site": "same-site", "Origin": "http://testserver"})


def test_sign_in_and_sign_out_are_refused_from_another_site_and_work_from_the_gateways_own(tmp_path):
    from fastapi.testclient import TestClient

    (tmp_path / "city.yaml").write_text(yaml.safe_dump(CITY, allow_unicode=True))
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    admin, attacker = new_token(store, "root", "admin"), new_token(store, "evil", "department", department="sanitation")
    client = TestClient(create_app(store, load_tables(tmp_path / "city.yaml")))
    for headers in CROSS_SITE:  # another site's page cannot sign anyone in
        refused = client.post("/ui/login", data={"token": attacker}, headers=headers, follow_redirects=False)
        assert refused.status_code == 403 and "操作被拒绝" in refused.text, headers
        assert "set-cookie" not in refused.headers and store.count("sessions") == 0, headers
    for headers in ({"Origin": "http://testserver"}, {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"},
                    {}):  # the gateway's own form; a client that is no browser (curl, scripts) sends neither header
        client.cookies.clear()
        signed_in = client.post("/ui/login", data={"token": admin}, headers=headers, follow_redirects=False)
        assert signed_in.status_code == 303 and "xl_session" in signed_in.cookies, headers
    for headers in CROSS_SITE:  # nor sign them out
        refused = client.post("/ui/logout", headers=headers, follow_redirects=False)
        assert refused.status_code == 403 and "set-cookie" not in refused.headers, headers
    assert client.get("/ui/cases").url.path == "/ui/cases"  # still signed in
    out = client.post("/ui/logout", headers={"Sec-Fetch-Site": "same-origin"}, follow_redirects=False)
    assert out.status_code == 303 and client.get("/ui/cases").url.path == "/ui/login"


def test_the_pages_icon_is_served_without_a_session(tmp_path):
    """A browser asks for /favicon.ico at a site's first page, signed in or not: it was a 404 in every operator's
    console (``test_the_map_draws_the_grids_and_clickable_cases`` reads the console of a real Chromium)."""
    import io

    from fastapi.testclient import TestClient
    from PIL import Image

    (tmp_path / "city.yaml").write_text(yaml.safe_dump(CITY, allow_unicode=True))
    client = TestClient(create_app(Store(f"sqlite:///{tmp_path}/gw.sqlite"), load_tables(tmp_path / "city.yaml")))
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    assert Image.open(io.BytesIO(icon.content)).size == (16, 16)


@pytest.mark.parametrize("public_url", ["https://xl.tianjin.gov.cn/", "https://XL.tianjin.gov.cn:443/xl"])
def test_behind_a_proxy_the_public_urls_page_signs_in_with_a_secure_cookie(tmp_path, public_url):
    """nginx ends TLS and passes the gateway ``Host: 127.0.0.1:8080`` over http: a browser that sends ``Origin`` but
    no ``Sec-Fetch-Site`` named an origin other than the one the request reached, and its sign-in was refused.
    ``http.public_url``'s origin is the page's own; and the cookie of a page on https is Secure, though the
    gateway sees http (uvicorn takes ``X-Forwarded-Proto`` only from a proxy on its own machine)."""
    from fastapi.testclient import TestClient

    (tmp_path / "city.yaml").write_text(yaml.safe_dump(CITY, allow_unicode=True))
    store, tables = Store(f"sqlite:///{tmp_path}/gw.sqlite"), load_tables(tmp_path / "city.yaml")
    admin = new_token(store, "root", "admin")
    page = {"Origin": "https://xl.tianjin.gov.cn"}

    def sign_in(client, headers):
        client.cookies.clear()
        return client.post("/ui/login", data={"token": admin}, headers=headers, follow_redirects=False)

    unset = TestClient(create_app(store, tables), base_url="http://127.0.0.1:8080")
    assert sign_in(unset, page).status_code == 403  # no key: today's rule, the origin the request reached
    client = TestClient(create_app(store, tables, public_url=public_url), base_url="http://127.0.0.1:8080")
    signed_in = sign_in(client, page)
    assert signed_in.status_code == 303 and "; secure" in signed_in.headers["set-cookie"].lower()
    for other in ("https://evil.example", "http://xl.tianjin.gov.cn", "https://xl.tianjin.gov.cn:8443",
                  "https://xl.tianjin.gov.cn.evil.example", "null"):
        assert sign_in(client, {"Origin": other}).status_code == 403, other
    # opened directly (an administrator on the machine): the origin the request reached; over http, a cookie it keeps
    direct = sign_in(client, {"Origin": "http://127.0.0.1:8080"})
    assert direct.status_code == 303 and "secure" not in direct.headers["set-cookie"].lower()
    # a browser that sends Sec-Fetch-Site: its Origin still tells the https page, key or none
    fetched = sign_in(unset, {"Sec-Fetch-Site": "same-origin", **page})
    assert fetched.status_code == 303 and "; secure" in fetched.headers["set-cookie"].lower()


def cookie_attributes(set_cookie: str) -> dict[str, str]:
    """A Set-Cookie's attributes, less its value and how long it lasts."""
    _, *attributes = (part.strip().partition("=") for part in set_cookie.split(";"))
    return {name.lower(): value.lower() for name, _, value in attributes if name.lower() not in ("max-age", "expires")}


@pytest.mark.parametrize("origin", ["https://xl.tianjin.gov.cn", "http://127.0.0.1:8080"])
def test_sign_out_deletes_the_cookie_with_the_attributes_sign_in_set_it_with(tmp_path, origin):
    """Behind a proxy that ends TLS, the sign-in's cookie was Secure and the sign-out's deletion of it was not."""
    from fastapi.testclient import TestClient

    (tmp_path / "city.yaml").write_text(yaml.safe_dump(CITY, allow_unicode=True))
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    client = TestClient(create_app(store, load_tables(tmp_path / "city.yaml"), public_url="https://xl.tianjin.gov.cn/"),
                        base_url="http://127.0.0.1:8080")
    signed_in = client.post("/ui/login", data={"token": new_token(store, "root", "admin")}, headers={"Origin": origin},
                            follow_redirects=False)
    out = client.post("/ui/logout", headers={"Origin": origin}, follow_redirects=False)
    assert signed_in.status_code == out.status_code == 303
    assert out.headers["set-cookie"].startswith('xl_session=""; ') and "max-age=0" in out.headers["set-cookie"].lower()
    assert cookie_attributes(out.headers["set-cookie"]) == cookie_attributes(signed_in.headers["set-cookie"])
    assert ("secure" in cookie_attributes(out.headers["set-cookie"])) == origin.startswith("https:")


@pytest.mark.parametrize("target, followed", [
    ("/ui/cases/1?state=closed", "/ui/cases/1?state=closed"), ("/ui/map", "/ui/map"),
    ("//evil.example/", None), ("/\\evil.example/", None), ("/ui/\\evil.example", None),
    ("/ui/..//evil.example/", None), ("/ui/%2e%2e//evil.example/", None), ("/ui/.%2E//evil.example/", None),
    ("/ui/%2e%2e%2f%2fevil.example", None), ("/ui/%5c%5cevil.example", None), ("/ui/../x", None), ("/ui//x", None),
    ("/ui/./cases", None), ("/ui/cases/..", None), ("https://evil.example/ui/cases", None), ("http:/ui/cases", None),
    ("/docs", None), ("/ui/cases\t", None), ("%2F%2Fevil.example", None)])
def test_sign_in_goes_on_only_to_a_plain_path_under_the_pages(tmp_path, target, followed):
    """``next`` names where to go after signing in: a path under /ui/ as written, or the case list.
    ``/ui/..//x`` passed the check and a browser resolves it to ``//x`` (the same origin, but no page)."""
    from fastapi.testclient import TestClient

    (tmp_path / "city.yaml").write_text(yaml.safe_dump(CITY, allow_unicode=True))
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    admin = new_token(store, "root", "admin")
    client = TestClient(create_app(store, load_tables(tmp_path / "city.yaml")))
    form = client.get("/ui/login", params={"next": target})
    assert f"name=next value='{html.escape(followed or '/ui/cases')}'" in form.text
    signed_in = client.post("/ui/login", data={"token": admin, "next": target}, follow_redirects=False)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == (followed or "/ui/cases")


@pytest.mark.slow
def test_another_sites_page_neither_signs_a_person_in_as_someone_else_nor_out(tmp_path, browser):
    """A page on another origin (localhost, another port) auto-submits the sign-in form with the
    attacker's token, then the sign-out form, in a real Chromium where the person is signed in."""
    import functools
    import http.server
    import threading

    from selenium.webdriver.common.by import By

    (tmp_path / "city.yaml").write_text(yaml.safe_dump(CITY, allow_unicode=True))
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    admin, attacker = new_token(store, "root", "admin"), new_token(store, "evil", "department", department="sanitation")
    site = tmp_path / "attacker"
    site.mkdir()
    with serve(create_app(store, load_tables(tmp_path / "city.yaml"))) as base:
        for name, fields in (("login", f"<input name=token value='{attacker}'><input name=next value=/ui/cases>"),
                             ("logout", "")):
            (site / f"{name}.html").write_text(f"<form id=f method=post action='{base}/ui/{name}'>{fields}</form>"
                                               "<script>document.getElementById('f').submit()</script>")
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
        other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=other.serve_forever, daemon=True).start()
        try:
            browser.get(f"{base}/ui/login")  # the gateway's own form signs in
            browser.find_element(By.NAME, "token").send_keys(admin)
            browser.find_element(By.CSS_SELECTOR, "#login button").click()
            wait_until(lambda: browser.current_url == f"{base}/ui/cases", 5, message="signed in")

            def signed_in_as() -> str:
                browser.get(f"{base}/ui/cases")
                forms = browser.find_elements(By.CSS_SELECTOR, "header form")
                return forms[0].text.split()[0] if forms else ""

            assert signed_in_as() == "root"
            for name in ("login", "logout"):
                browser.get(f"http://localhost:{other.server_port}/{name}.html")
                wait_until(lambda: browser.current_url.startswith(f"{base}/ui/{name}"), 5, message="the form sent")
                assert browser.find_element(By.TAG_NAME, "h1").text == "操作被拒绝", name
                assert signed_in_as() == "root", name
        finally:
            other.shutdown()


def test_a_case_overdue_on_the_command_centres_own_clock_says_whose_lateness_in_the_list(tmp_path):
    """A returned case not sent on, or a lead unreviewed, past the centre's own time was a red row in a department's
    filtered list with nothing to say it was the command centre's lateness, not the department's."""
    from gateway.web import CENTRE_LATE, case_rows

    (tmp_path / "city.yaml").write_text(yaml.safe_dump(CITY, allow_unicode=True))
    tables = load_tables(tmp_path / "city.yaml")
    row = {"id": 1, "category_name": "乱停车", "urgent": False, "grid": None, "department": "police", "level": 0,
           "created_at": 0.0, "camera": "c", "zone": "z", "deadline": 100.0, "recheck_deadline": None,
           "review_deadline": 50.0}
    returned, handling = row | {"state": "returned"}, row | {"id": 2, "state": "handling"}
    assert CENTRE_LATE not in case_rows([returned], tables, now=49.0)
    late = case_rows([returned, handling], tables, now=200.0).split("</tr>")
    assert CENTRE_LATE in late[1] and "class='overdue'" in late[1]  # the header row first
    assert CENTRE_LATE not in late[2] and "class='overdue'" in late[2]  # the department's own lateness
