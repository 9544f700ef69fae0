"""The operators' page in a real headless Chromium against a real gateway process: sign-in with a
token for a session cookie, cases, evidence, timeline, map, report, sign-out and revocation."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
import yaml

from xueliang import services, wire

from .conftest import REPO, wait_until
from .test_gateway import START

SHOTS = REPO / "data" / "screenshots"


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as ChromeService

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not Path(chromium).exists() or not Path(driver_path).exists():
        pytest.fail("Debian chromium and chromium-driver are needed: run `make setup`")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,900", "--lang=zh-CN"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=ChromeService(driver_path))
    yield driver
    driver.quit()


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
        assert "登录失败: unknown token" in browser.find_element(By.TAG_NAME, "main").text
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
        assert "created" in timeline and "dispatched" in timeline
        no_token_anywhere()
        browser.save_screenshot(str(SHOTS / "case.png"))
        browser.get(f"{base}/map")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#map circle")) == 2  # the camera and its open case
        browser.get(f"{base}/reports")
        assert "受理 1" in browser.find_element(By.TAG_NAME, "main").text
        assert browser.find_elements(By.CSS_SELECTOR, "#ranking tr")[1].text.startswith("1 traffic-police")
        browser.save_screenshot(str(SHOTS / "reports.png"))
        browser.get(f"{base}/overdue")
        assert browser.find_elements(By.CSS_SELECTOR, "#cases tr")[1:] == []
        browser.delete_all_cookies()
        browser.get(f"{base}/cases?token={token}")  # a token in the URL opens nothing
        assert "/ui/login" in browser.current_url and not browser.find_elements(By.ID, "cases")
        sign_in(token)
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
