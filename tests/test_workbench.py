"""The workbench in a real headless Chromium against a real app on SQLite: an operator and a
department take a case from review to closed by clicking in the page (no URL typed after the
sign-in page), the forms refuse a missing or foreign CSRF token, the case list follows new cases
without a reload, and the map shows the grids with clickable cases."""

import io
import json
import re
import time

import httpx
import pytest
import yaml

from gateway.api import create_app
from gateway.auth import hash_token, new_token, session_csrf
from gateway.config import TABLES_DIR, load_tables
from gateway.ingest import Ingest
from gateway.storage import Store
from xueliang import wire

from .conftest import CpuSpent, page_rows, serve, wait_until
from .test_gridmap import grid_extent
from .test_api_limits import HEIC
from .test_presentation import jpeg, sighting
from .test_web import SHOTS, browser  # noqa: F401 (the fixture)
from .test_case_actions import beat
from .test_workflow import CITY, database_url, ended, incident  # noqa: F401 (the fixture)


@pytest.fixture
def city(tmp_path):
    (tmp_path / "city.yaml").write_text(yaml.safe_dump(CITY, allow_unicode=True))
    tables = load_tables(tmp_path / "city.yaml")
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    return tables, store, Ingest(store, tables)


def sign_in(browser, base, token):
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(f"{base}/ui/login")  # the start page: every other page is reached by clicking
    browser.find_element(By.NAME, "token").send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    wait_until(lambda: browser.current_url == f"{base}/ui/cases", 5, message="signed in")


def click(browser, selector):
    from selenium.webdriver.common.by import By

    before = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.CSS_SELECTOR, selector).click()
    wait_until(lambda: _stale(before), 5, message=f"{selector} led on")


def _stale(element) -> bool:
    """Whether the page ``element`` was on is gone (Chromium may also answer that the node no
    longer belongs to the document while the next page replaces it)."""
    from selenium.common.exceptions import WebDriverException

    try:
        element.tag_name
        return False
    except WebDriverException:
        return True


def upright_phone_photo(width: int, height: int) -> bytes:
    """A phone's photo as its sensor stored it, ``width`` x ``height``, with EXIF orientation 6 (the phone held
    upright: shown turned, ``height`` wide) and where it was taken."""
    import io

    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8825).update({1: "N", 2: (39.0, 10.0, 12.5), 3: "E", 4: (117.0, 9.0, 0.5)})
    out = io.BytesIO()
    Image.new("RGB", (width, height), "green").save(out, "JPEG", exif=exif)
    return out.getvalue()


def buttons(browser) -> list[str]:
    from selenium.webdriver.common.by import By

    return [b.get_attribute("id") for b in browser.find_elements(By.CSS_SELECTOR, "#actions button")]


def act(browser, action, note=None, **selects):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    form = browser.find_element(By.CSS_SELECTOR, f"form.act[data-action='{action}']")
    for name, shown in selects.items():
        Select(form.find_element(By.NAME, name)).select_by_visible_text(shown)
    if note:
        form.find_element(By.NAME, "note").send_keys(note)
    click(browser, f"#act-{action}")
    return wait_until(lambda: browser.find_elements(By.ID, "outcome"), 5, message="the outcome shown")[0].text


def facts(browser) -> str:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, "facts").text


@pytest.mark.slow  # ~16 s: four sign-ins and a dozen page loads
def test_operator_and_department_take_a_case_from_review_to_closed_by_clicking(city, browser, tmp_path):
    from selenium.webdriver.common.by import By

    tables, store, ingest = city
    pile, start = sighting(ingest, jpeg(40), type="garbage")  # garbage waits for a person's review
    assert ingest.handle(*start) == "case_created"
    operator = new_token(store, "op1", "operator", grid="D")
    sanitation = new_token(store, "hw", "department", department="sanitation")
    photo, not_photo, heic = tmp_path / "site.jpg", tmp_path / "site-not.jpg", tmp_path / "IMG_0001.HEIC"
    photo.write_bytes(upright_phone_photo(96, 24))
    not_photo.write_bytes(b"\xff\xd8<html><script>alert(1)</script></html>")
    heic.write_bytes(HEIC)
    with serve(create_app(store, tables)) as base:
        sign_in(browser, base, operator)
        click(browser, "#cases a[href='/ui/cases/1']")
        assert "待审核" in facts(browser)
        assert buttons(browser) == ["act-confirm", "act-reject", "act-escalate"]  # what the machine allows an operator now
        assert act(browser, "confirm", "现场核实属实") == "已完成: 审核通过"
        assert "已派遣" in facts(browser) and "环卫" in facts(browser)
        assert buttons(browser) == ["act-return", "act-extend", "act-escalate"]

        # the same form without its CSRF token, or with another session's, changes nothing
        cookie = {"xl_session": browser.get_cookie("xl_session")["value"]}
        form = browser.find_element(By.CSS_SELECTOR, "form.act[data-action='escalate'] input[name=csrf]")
        good = form.get_attribute("value")
        for token in (None, "0" * 64, good[:-1] + ("0" if good[-1] != "0" else "1")):
            refused = httpx.post(f"{base}/ui/cases/1/actions", cookies=cookie, follow_redirects=False,
                                 data={"action": "escalate", **({"csrf": token} if token else {})})
            assert refused.status_code == 403 and "操作被拒绝" in refused.text
        refused = httpx.post(f"{base}/ui/cases/1/photos", cookies=cookie, files={"photo": ("a.jpg", photo.read_bytes())},
                             data={"csrf": "0" * 64})
        assert refused.status_code == 403
        other = httpx.post(f"{base}/ui/login", data={"token": operator}, follow_redirects=False).cookies["xl_session"]
        refused = httpx.post(f"{base}/ui/cases/1/actions", cookies={"xl_session": other},
                             data={"action": "escalate", "csrf": good})  # a token of this person's other session
        assert refused.status_code == 403
        assert store.get_case(1)["level"] == 0 and not [e for e in store.get_case(1)["timeline"] if e["action"] == "photo"]
        done = httpx.post(f"{base}/ui/cases/1/actions", cookies=cookie, data={"action": "escalate", "csrf": good},
                          follow_redirects=False)  # the page's own token does it
        assert done.status_code == 303 and done.headers["location"] == "/ui/cases/1?done=escalate"
        assert store.get_case(1)["level"] == 1

        # the department: its queue, acknowledge, more time, a photo, feedback
        click(browser, "#logout")
        sign_in(browser, base, sanitation)
        click(browser, "header a[href='/ui/queue']")
        assert browser.find_element(By.TAG_NAME, "h1").text == "环卫 待办"
        click(browser, "#cases a[href='/ui/cases/1']")
        assert buttons(browser) == ["act-acknowledge", "act-feedback", "act-return", "act-request_extension"]
        assert not browser.find_elements(By.ID, "verdict-form")  # verdicts are the centre's
        assert act(browser, "acknowledge") == "已完成: 签收"
        assert "处置中" in facts(browser)
        assert act(browser, "request_extension", "需调车辆", extend_by="2 小时") == "已完成: 申请延期"
        assert "申请延期 2 小时" in facts(browser)
        browser.find_element(By.NAME, "photo").send_keys(str(not_photo))  # HTML behind JPEG's first bytes
        click(browser, "#photo-form button")
        assert browser.find_element(By.ID, "outcome").text == "照片未上传: 文件不是可以打开的 JPEG 图片。"
        browser.find_element(By.NAME, "photo").send_keys(str(heic))  # an iPhone's photo as it takes them
        click(browser, "#photo-form button")
        assert "兼容性最佳" in browser.find_element(By.ID, "outcome").text
        browser.find_element(By.NAME, "photo").send_keys(str(photo))
        click(browser, "#photo-form button")
        assert browser.find_element(By.ID, "outcome").text == "已完成: 上传现场照片"
        image = browser.find_element(By.CSS_SELECTOR, "img[alt='现场照片']")
        wait_until(lambda: browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image)
                   == 24, 5, message="the photo shown turned upright, as the phone was held (its EXIF orientation)")
        assert act(browser, "feedback", "已清运") == "已完成: 处置反馈"
        assert "已反馈" in facts(browser) and buttons(browser) == []
        SHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SHOTS / "workbench-department.png"))

        # the operator: while the camera (its box heard) still reports the pile, no 核查结案, and the page says why
        beat(ingest)
        click(browser, "#logout")
        sign_in(browser, base, operator)
        click(browser, "#cases a[href='/ui/cases/1']")
        assert browser.find_element(By.ID, "still-seen").text.startswith(f"摄像机仍在报告此问题 (事件 {pile}, 自 ")
        assert buttons(browser) == ["act-recheck_failed", "act-reopen", "act-extend", "act-escalate"]
        ended(store, ingest, 1)  # its box stopped: its report stands no more

        # a failed action says why in Chinese, then the re-check closes it
        browser.refresh()
        assert buttons(browser) == ["act-close", "act-recheck_failed", "act-reopen", "act-extend", "act-escalate"]
        assert not browser.find_elements(By.ID, "still-seen")
        store_case = store.get_case(1)
        with store.begin() as db:  # someone else closes it meanwhile (the page still shows the buttons)
            from gateway.actions import perform
            from gateway.workflow import Action, Role
            perform(db, store_case, Action.CLOSE, Role.ADMIN, "admin:other", time.time(), tables, "meanwhile")
        assert act(browser, "recheck_failed").startswith("未能核查未通过: 您打开本页后案件已有变动 (当前为「已结案」")
        assert "已结案" in facts(browser)
        assert act(browser, "reopen", "复查仍有垃圾") == "已完成: 重新派遣(复发)"
        click(browser, "#logout")
        sign_in(browser, base, sanitation)
        click(browser, "header a[href='/ui/queue']")
        click(browser, "#cases a[href='/ui/cases/1']")
        assert act(browser, "feedback", "再次清运") == "已完成: 处置反馈"
        click(browser, "#logout")
        sign_in(browser, base, operator)
        click(browser, "#cases a[href='/ui/cases/1']")
        assert act(browser, "close", "视频复核无垃圾") == "已完成: 核查结案"
        assert "已结案" in facts(browser)
        timeline = browser.find_element(By.ID, "timeline").text
        for shown in ("审核通过", "签收", "申请延期", "现场照片", "处置反馈", "核查结案", "部门 hw", "指挥中心 op1",
                      "现场核实属实", "已清运", "视频复核无垃圾"):
            assert shown in timeline, shown
        browser.save_screenshot(str(SHOTS / "workbench-closed.png"))
        assert [e["action"] for e in store.get_case(1)["timeline"]].count("photo") == 1


def test_an_address_under_ui_with_no_page_or_a_forms_address_opened_is_a_page_in_chinese(city):
    """Operators read Chinese: an address under /ui/ with no page (a link typed or cut short) and a form's address
    opened with a GET (a bookmark, a reload after a form) answered the API's {"detail":"Not Found"} and
    {"detail":"Method Not Allowed"}. Now the gateway's error page with the signed-in person's header and the way
    back to the nearest page up the path; the API keeps its JSON."""
    tables, store, ingest = city
    assert ingest.handle(*incident()) == "case_created"
    police = new_token(store, "tp", "department", department="traffic-police")
    with serve(create_app(store, tables)) as base:
        cookies = {"xl_session": httpx.post(f"{base}/ui/login", data={"token": police}).cookies["xl_session"]}
        for method, path, status, heading, back in [
                ("GET", "/ui/nowhere", 404, "没有找到", "/ui/cases"),
                ("GET", "/ui/cases/1/nowhere", 404, "没有找到", "/ui/cases/1"),
                ("GET", "/ui/cases/1/actions", 405, "无法打开此地址", "/ui/cases/1"),
                ("GET", "/ui/cases/1/photos", 405, "无法打开此地址", "/ui/cases/1"),
                ("GET", "/ui/logout", 405, "无法打开此地址", "/ui/cases"),
                ("DELETE", "/ui/cases", 405, "无法打开此地址", "/ui/cases")]:
            answer = httpx.request(method, base + path, cookies=cookies)
            assert (answer.status_code, answer.headers["content-type"]) == (status, "text/html; charset=utf-8"), path
            assert f"<h1>{heading}</h1>" in answer.text and f"<a id=back href='{back}'>" in answer.text, path
            assert ">tp <button id=logout>" in answer.text, path
        assert httpx.get(f"{base}/ui/cases/1/actions").headers["allow"] == "POST"
        assert "id=login-link" in httpx.get(f"{base}/ui/nowhere").text  # no session: the way to sign in
        for path, detail in [("/nowhere", "Not Found"), ("/cases/1/actions", "Method Not Allowed")]:
            assert httpx.get(base + path).json() == {"detail": detail}


@pytest.mark.slow  # ~7 s: a browser, two sign-ins
def test_a_form_sent_after_its_session_ended_leads_through_the_sign_in_back_to_its_page(city, browser):
    """The case page stood open while its session ended (12 hours, or signed out in another tab): a click on 签收
    leads to the sign-in form and, signed in again, back to the case page, the action not taken (it was the POST's
    own path, where a GET answered {"detail":"Method Not Allowed"})."""
    from selenium.webdriver.common.by import By

    tables, store, ingest = city
    assert ingest.handle(*incident()) == "case_created"
    police = new_token(store, "tp", "department", department="traffic-police")
    with serve(create_app(store, tables)) as base:
        sign_in(browser, base, police)
        click(browser, "#cases a[href='/ui/cases/1']")
        assert buttons(browser)[0] == "act-acknowledge"
        store.end_session(hash_token(browser.get_cookie("xl_session")["value"]))
        click(browser, "#act-acknowledge")
        assert browser.current_url == f"{base}/ui/login?next=%2Fui%2Fcases%2F1"
        browser.find_element(By.NAME, "token").send_keys(police)
        click(browser, "#login button")
        assert browser.current_url == f"{base}/ui/cases/1" and browser.find_element(By.TAG_NAME, "h1").text == "案件 #1"
        assert buttons(browser)[0] == "act-acknowledge" and store.get_case(1)["state"] == "dispatched"


@pytest.mark.slow  # ~4 s: a browser, three pages
def test_a_boxs_longest_words_wrap_and_keep_the_boxes_page_the_case_list_and_the_case_page_in_the_window(city, browser):
    """What a box says as long as the wire takes it, without a space: a camera's last error of 300 characters (an RTSP
    server's own words) made the boxes page 3,100 px wide, its outbox, clock and remove button off the window; a camera
    and a zone id of 64 characters each pushed the case list's and the case page's tables past the window's side."""
    from selenium.webdriver.common.by import By

    tables, store, ingest = city
    camera, zone = "C" * 64, "Z" * 64
    assert ingest.handle(*incident(camera=camera, zone=zone)) == "case_created"
    beat = {"box": "box-1", "state": "online", "at": wire.iso(time.time()), "heartbeat_s": 10,
            "cameras": {camera: {"grid": "D-S1-C1-G1", "state": "offline", "last_error": "x" * 300}}}
    assert ingest.handle("xl/v1/box-1/status", json.dumps(beat).encode()) == "heartbeat"
    admin = new_token(store, "root", "admin")
    with serve(create_app(store, tables)) as base:
        sign_in(browser, base, admin)
        for path in ("/ui/boxes", "/ui/cases", "/ui/cases/1"):
            browser.get(base + path)
            assert browser.execute_script("return document.documentElement.scrollWidth") <= \
                browser.execute_script("return window.innerWidth"), path
        browser.get(base + "/ui/boxes")
        assert "x" * 300 in browser.find_element(By.ID, "boxes").text.replace("\n", "")  # all of it, wrapped


@pytest.mark.slow  # ~3 s: a browser
def test_a_snapshot_of_a_strange_shape_keeps_within_the_window_and_its_shape(city, browser):
    """A box's snapshot 16 px wide and 8,000 tall (a camera's stream of a broken shape) was shown at its full height,
    the case page's photos and timeline 8,000 px below it."""
    from PIL import Image

    tables, store, ingest = city
    out = io.BytesIO()
    Image.new("RGB", (16, 8000), "navy").save(out, "JPEG")
    _, start = sighting(ingest, out.getvalue())
    assert ingest.handle(*start) == "case_created"
    with serve(create_app(store, tables)) as base:
        sign_in(browser, base, new_token(store, "root", "admin"))
        browser.get(base + "/ui/cases/1")
        wait_until(lambda: browser.execute_script("return document.querySelector('figure img').complete"), 5)
        width, height, window = browser.execute_script(
            "var r = document.querySelector('figure img').getBoundingClientRect(); "
            "return [r.width, r.height, window.innerHeight]")
        assert height <= window and width < 16 * height / 8000 + 3  # the border's 2 px


@pytest.mark.slow  # ~6 s: a browser
def test_a_long_unbroken_note_and_incident_id_wrap_and_keep_the_case_page_in_the_window(city, browser):
    """A department's note of 2,000 characters without a space (a pasted link) made the case page 19,000 px wide, the
    timeline's time, who and what one character wide; an incident id of 128 characters ran off its heading."""
    from selenium.webdriver.common.by import By

    tables, store, ingest = city
    assert ingest.handle(*incident(incident_id="W" * 128)) == "case_created"
    police = new_token(store, "tp", "department", department="traffic-police")
    with serve(create_app(store, tables)) as base:
        sign_in(browser, base, police)
        click(browser, "#cases a[href='/ui/cases/1']")
        act(browser, "acknowledge", "https://example.org/" + "a" * 1980)
        assert browser.execute_script("return document.documentElement.scrollWidth") <= \
            browser.execute_script("return window.innerWidth")
        lines = browser.execute_script(
            "return [...document.querySelectorAll('#timeline tr:last-child td')].slice(0, 4).map(function (td) {"
            "  var r = document.createRange(); r.selectNodeContents(td); return r.getClientRects().length; })")
        assert lines == [1, 1, 1, 1]  # time, who, what and the state each on one line
        assert browser.find_element(By.CSS_SELECTOR, "#timeline tr:last-child td:last-child").text.endswith("a" * 20)


@pytest.mark.slow
def test_the_case_list_follows_new_cases_without_a_reload(city, browser):
    from selenium.webdriver.common.by import By

    tables, store, ingest = city
    assert ingest.handle(*incident()) == "case_created"
    admin = new_token(store, "root", "admin")
    with serve(create_app(store, tables)) as base:
        sign_in(browser, base, admin)
        assert len(browser.find_elements(By.CSS_SELECTOR, "#cases tr")) == 2
        browser.execute_script("window.stillHere = 'yes'")  # gone if the page reloaded
        time.sleep(1)  # the script has its first fingerprint
        assert ingest.handle(*incident(location={"lat": 39.3, "lon": 117.3})) == "case_created"
        wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#cases tr")) == 3, 15,
                   message="the new case in the list")
        assert browser.execute_script("return window.stillHere") == "yes"
        assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-live-updates") == "1"
        assert not [e for e in browser.get_log("browser") if "Content Security Policy" in e["message"]
                    or "/ui/live" in e["message"]]  # the script ran, nothing of it refused
        policy = httpx.get(f"{base}/ui/login").headers["content-security-policy"]
        assert "script-src 'self';" in policy and "unsafe-inline" not in policy.split("style-src")[0]


@pytest.mark.slow
def test_the_map_draws_the_grids_and_clickable_cases(tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from gateway import storage

    tables = load_tables(TABLES_DIR / "demo.yaml")
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, tables)
    for kind, grid, where in (("illegal_parking", "HQ-DZG-10D-07", (39.1702, 117.1531)),  # two at one camera
                              ("garbage", "HQ-DZG-10D-07", (39.1702, 117.1531)),
                              ("garbage", "HQ-XYM-01-01", (39.169, 117.165))):
        assert ingest.handle(*incident(type=kind, grid=grid, location={"lat": where[0], "lon": where[1]})) \
            == "case_created"
    admin, operator = new_token(store, "root", "admin"), new_token(store, "op-xym", "operator", grid="HQ-XYM")
    with serve(create_app(store, tables)) as base:
        sign_in(browser, base, admin)
        click(browser, "header a[href='/ui/map']")
        # nothing failed to load: the browser's /favicon.ico, at the site's first page, was a 404
        assert not [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        grids = browser.find_elements(By.CSS_SELECTOR, "#map path.grid")
        assert sorted(g.get_attribute("data-grid") for g in grids) == sorted(g.code for g in tables.grids)
        labels = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#map text.grid-label")]
        assert sorted(labels) == ["丁字沽十段第7网格", "丁字沽十段第8网格", "西于庄第1社区第1网格"]
        assert browser.find_element(By.CSS_SELECTOR, "#scale text").text in ("500 米", "1 公里")
        circles = browser.find_elements(By.CSS_SELECTOR, "#map a circle")
        assert len(circles) == 3
        # the two cases at one camera are apart enough to click each
        spots = {(c.get_attribute("cx"), c.get_attribute("cy")) for c in circles}
        assert len(spots) == 3
        SHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SHOTS / "map.png"))
        # the case in 西于庄 lies inside that grid's polygon as drawn
        inside = browser.execute_script(
            "const c = document.querySelector(\"#map a[href='/ui/cases/3'] circle\");"
            "const g = document.querySelector(\"#map path[data-grid='HQ-XYM-01-01']\");"
            "const p = document.getElementById('map').createSVGPoint(); p.x = +c.getAttribute('cx'); p.y = +c.getAttribute('cy');"
            "return g.isPointInFill(p)")
        assert inside is True
        assert "st-dispatched" in browser.find_element(By.CSS_SELECTOR, "#map a[href='/ui/cases/3'] circle").get_attribute("class")
        click(browser, "#map a[href='/ui/cases/3'] circle")
        assert browser.find_element(By.TAG_NAME, "h1").text == "案件 #3"
        # an operator's map holds its own subtree only
        sign_in(browser, base, operator)
        click(browser, "header a[href='/ui/map']")
        assert sorted(g.get_attribute("data-grid") for g in browser.find_elements(By.CSS_SELECTOR, "#map path.grid")) \
            == ["HQ-XYM", "HQ-XYM-01", "HQ-XYM-01-01"]
        assert [a.get_dom_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#map a")] == ["/ui/cases/3"]
        # closed, the case leaves the map, which draws the open ones; chosen by state, as in the list, it is there
        with store.begin() as db:
            storage.update_case(db, 3, {"state": "closed"})
        browser.refresh()
        assert not browser.find_elements(By.CSS_SELECTOR, "#map a")
        assert "网格 3 · 未结案件 0 · 摄像机 0" == browser.find_element(By.ID, "counts").text
        Select(browser.find_element(By.NAME, "state")).select_by_visible_text("已结案")
        click(browser, "form.filters button")
        assert browser.current_url == f"{base}/ui/map?state=closed"
        assert [a.get_dom_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#map a")] == ["/ui/cases/3"]
        assert "「已结案」案件 1" in browser.find_element(By.ID, "counts").text


def test_a_persons_note_is_shown_as_their_words_and_an_extension_as_the_duration_asked_for(city):
    from fastapi.testclient import TestClient

    tables, store, ingest = city
    assert ingest.handle(*incident()) == "case_created"
    police = new_token(store, "tp", "department", department="traffic-police")
    admin = new_token(store, "root", "admin")
    api = TestClient(create_app(store, tables))
    for token, action, extra in (
            (police, "request_extension", {"extend_by": "5 working days", "note": "2h"}),
            (admin, "escalate", {"note": "overdue: the deadline passed at 2026-12-01T00:00:00Z; level 3, to D"}),
            (admin, "approve_extension", {"note": "3 working days"})):
        done = api.post("/cases/1/actions", json={"action": action, **extra}, headers={"Authorization": f"Bearer {token}"})
        assert done.status_code == 200, done.text
    assert store.get_case(1)["level"] == 1
    timeline = api.get("/cases/1", headers={"Authorization": f"Bearer {admin}"}).json()["timeline"]
    assert [(e["note"], e["extend_by"]) for e in timeline if "extension" in e["action"]] == [
        ("2h", "5 working days"), ("3 working days", "5 working days")]
    page = TestClient(create_app(store, tables))
    page.post("/ui/login", data={"token": admin})
    rows = [re.sub(r"<[^>]+>", "|", row) for row in re.findall(r"<tr>(.*?)</tr>", page.get("/ui/cases/1").text)]
    shown = {row.split("|")[5]: row.split("|")[9] for row in rows if "|管理员 root|" in row or "|部门 tp|" in row}
    assert shown == {"申请延期": "5 个工作日 · 2h", "批准延期": "5 个工作日 · 3 working days",
                     "升级督办": "overdue: the deadline passed at 2026-12-01 08:00; level 3, to D"}


def test_the_clocks_escalation_note_reads_in_beijing_time_on_the_page_and_stays_utc_in_the_log_and_api(city):
    """The gateway's own note carries the deadline in UTC (the case log is the record, the API for machines); the
    person reading the case page reads it in Beijing time, as every other time there."""
    from fastapi.testclient import TestClient

    from gateway.presentation import local_time
    from gateway.service import Clock

    tables, store, ingest = city
    assert ingest.handle(*incident()) == "case_created"
    deadline = store.get_case(1)["deadline"]
    assert Clock(store, tables, client=None, every_s=1).escalate_overdue(deadline + 1) == 1
    logged = f"overdue: the deadline passed at {wire.iso(deadline)}; level 1, to D-S1-C1"
    admin = new_token(store, "root", "admin")
    api = TestClient(create_app(store, tables)).get("/cases/1", headers={"Authorization": f"Bearer {admin}"})
    assert [e["note"] for e in api.json()["timeline"] if e["action"] == "escalate"] == [logged]
    page = TestClient(create_app(store, tables))
    page.post("/ui/login", data={"token": admin})
    rows = [re.sub(r"<[^>]+>", "|", row) for row in re.findall(r"<tr>(.*?)</tr>", page.get("/ui/cases/1").text)]
    (shown,) = [row.split("|")[9] for row in rows if "|升级督办|" in row]
    assert shown == f"超期: 处置时限 {local_time(deadline)} 已过; 第 1 级督办, 升级至 {tables.grid_name('D-S1-C1')}"


def test_the_photo_form_checks_its_csrf_token_before_parsing_the_rest_and_takes_few_parts(city):
    from fastapi.testclient import TestClient

    tables, store, ingest = city
    assert ingest.handle(*incident()) == "case_created"
    client = TestClient(create_app(store, tables))
    client.post("/ui/login", data={"token": new_token(store, "tp", "department", department="traffic-police")})
    csrf = session_csrf(client.cookies["xl_session"])
    multipart = {"Content-Type": "multipart/form-data; boundary=b"}

    def part(name: str, value: bytes) -> bytes:
        return b'--b\r\nContent-Disposition: form-data; name="' + name.encode() + b'"\r\n\r\n' + value + b"\r\n"

    tiny = part("x", b"y") * 40_000  # 2 MB of tiny parts: about 4 s of the parser's CPU
    for first, status in ((part("csrf", b"0" * 64), 403), (part("csrf", csrf.encode()), 413)):
        content = first + tiny + b"--b--\r\n"
        spent = CpuSpent()  # this request's CPU: a loaded machine's wait is not the parser's, nor earlier tests' threads
        answer = client.post("/ui/cases/1/photos", content=content, headers=multipart, follow_redirects=False)
        assert answer.status_code == status and spent() < 1.0, (status, answer.status_code, spent())
    photo = jpeg(40)
    kept = client.post("/ui/cases/1/photos", content=part("csrf", csrf.encode()) + part("photo", photo) + b"--b--\r\n",
                       headers=multipart, follow_redirects=False)
    assert kept.status_code == 303 and "done=photo" in kept.headers["location"]
    assert [e["action"] for e in store.get_case(1)["timeline"]].count("photo") == 1


def form_part(name: str, value: bytes, head: bytes = b"", crlf: bytes = b"\r\n") -> bytes:
    return (b"--b" + crlf + b'Content-Disposition: form-data; name="' + name.encode() + b'"' + head + crlf + crlf
            + value + crlf)


PHOTO = jpeg(40)


@pytest.mark.parametrize("body, status, why", [
    (lambda csrf: form_part("csrf", csrf, b"; a=b" * 20_000) + form_part("photo", PHOTO), 413,
     "part 1 of the form has more than 4,096 bytes of headers"),
    (lambda csrf: form_part("csrf", csrf) + form_part("photo", PHOTO, b"; a=b" * 20_000), 413,
     "part 2 of the form has more than 4,096 bytes of headers"),
    (lambda csrf: form_part("csrf", csrf) + form_part("x", b"y", crlf=b"\n") * 40_000 + form_part("photo", PHOTO), 413,
     "at most 16 parts"),
    (lambda csrf: form_part("csrf", csrf) + form_part("photo", b"--c\r\n\r\nx\r\n" * 40_000 + b"--c--",
                                                      b"\r\nContent-Type: multipart/mixed; boundary=c"), 422,
     "part 2 of the form is a multipart/mixed"),
], ids=["headers of the first part", "headers of the photo", "parts parted by LF", "a multipart part"])
def test_the_photo_form_refuses_parts_the_parser_would_spend_more_on_than_their_size(city, body, status, why):
    """Each refused before the parser reads it: a part's headers of 100 kB (Content-Disposition parameters: a second
    of the parser's CPU, 1.5 MB 43 s, under the GIL), parts parted by LF alone (the parser's delimiters too; the count
    took CRLF alone, and 40,000 tiny parts went through), and a part that is a multipart of its own parts."""
    from fastapi.testclient import TestClient

    tables, store, ingest = city
    assert ingest.handle(*incident()) == "case_created"
    client = TestClient(create_app(store, tables))
    client.post("/ui/login", data={"token": new_token(store, "tp", "department", department="traffic-police")})
    csrf = session_csrf(client.cookies["xl_session"]).encode()
    multipart = {"Content-Type": "multipart/form-data; boundary=b"}
    content = body(csrf) + b"--b--\r\n"
    spent = CpuSpent()  # the request's CPU (the app runs in a thread of its own), not earlier tests' threads'
    answer = client.post("/ui/cases/1/photos", content=content, headers=multipart, follow_redirects=False)
    assert answer.status_code == status and why in answer.text, (answer.status_code, answer.text[:300])
    assert spent() < 0.5, spent()
    named = b'; filename="' + "现场照片".encode() * 75 + b'.jpg"\r\nContent-Type: image/jpeg'  # 300 characters
    kept = client.post("/ui/cases/1/photos", content=form_part("csrf", csrf) + form_part("photo", PHOTO, named)
                       + b"--b--\r\n", headers=multipart, follow_redirects=False)
    assert kept.status_code == 303 and "done=photo" in kept.headers["location"]
    assert [e["action"] for e in store.get_case(1)["timeline"]].count("photo") == 1


def test_the_map_keeps_the_city_in_view_and_lists_a_case_placed_far_away(tmp_path):
    from fastapi.testclient import TestClient

    tables = load_tables(TABLES_DIR / "demo.yaml")
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, tables)
    # the second from a box whose config has another city's location (one left at 0, 0 is taken as none now)
    for where in ((39.1702, 117.1531), (31.2304, 121.4737)):
        assert ingest.handle(*incident(grid="HQ-DZG-10D-07", location={"lat": where[0], "lon": where[1]})) \
            == "case_created"
    client = TestClient(create_app(store, tables))
    client.post("/ui/login", data={"token": new_token(store, "root", "admin")})
    page = client.get("/ui/map").text
    assert re.findall(r"<ul id=off-map><li><a href='(/ui/cases/\d+)'>", page) == ["/ui/cases/2"]
    assert min(grid_extent(page, "HQ")) > 200  # the city fills the picture, not a dot in its corner


def test_the_map_draws_the_open_cases_and_those_of_the_state_chosen_as_in_the_list(tmp_path):
    """The map drew closed cases too (last, as the list orders them): a command centre's years of closed cases hid
    what is open now. It draws the open ones; the list's ``state`` filter, chosen as there, draws that state's, and
    its count line says which it counts, the cases with no place among them."""
    from fastapi.testclient import TestClient

    from gateway import storage

    tables = load_tables(TABLES_DIR / "demo.yaml")
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, tables)
    for n in range(3):  # far enough apart not to merge; the third closed
        assert ingest.handle(*incident(grid="HQ-DZG-10D-07", location={"lat": 39.165 + n / 200, "lon": 117.15})) \
            == "case_created"
    assert ingest.handle(*incident(camera="blind", grid="HQ-DZG-10D-07", location=None)) == "case_created"  # no place
    with store.begin() as db:
        for case_id in (3, 4):
            storage.update_case(db, case_id, {"state": "closed"})
    client = TestClient(create_app(store, tables))
    client.post("/ui/login", data={"token": new_token(store, "root", "admin")})

    def drawn(page: str) -> tuple[list[str], str]:
        return re.findall(r"<a href='/ui/cases/(\d+)'", page), re.search(r"<p id=counts>(.*?)</p>", page)[1]

    page = client.get("/ui/map").text
    assert drawn(page) == (["1", "2"], f"网格 {len(tables.grid_shapes)} · 未结案件 2 · 摄像机 1")
    assert "<option value='' selected>未结</option>" in page and "class='case st-closed'" not in page  # nor in the legend
    page = client.get("/ui/map?state=closed").text
    assert drawn(page) == (["3"], f"网格 {len(tables.grid_shapes)} · 「已结案」案件 1 · 摄像机 1 · 1 个案件无坐标, 未画出")
    assert "<option value='closed' selected>已结案</option>" in page
    assert client.get("/ui/cases?state=closed").text.count("<a href='/ui/cases/") == 2  # the list's words and values
    refused = client.get("/ui/map?state=open")
    assert refused.status_code == 422 and "请求有误" in refused.text


def test_a_map_with_nothing_to_draw_counts_the_cases_with_no_place(city):
    """No boundaries in the tables and no case with a place: the map said there was nothing to draw, and not that
    two cases were there, their cameras with no location (with boundaries it counts them)."""
    from fastapi.testclient import TestClient

    tables, store, ingest = city
    assert not tables.grid_shapes
    for n in range(2):
        assert ingest.handle(*incident(camera=f"blind-{n}", location=None)) == "case_created"
    client = TestClient(create_app(store, tables))
    client.post("/ui/login", data={"token": new_token(store, "root", "admin")})
    assert "<p id=counts>暂无网格边界或带坐标的未结案件 · 2 个案件无坐标, 未画出</p>" in client.get("/ui/map").text


def test_the_demo_prints_a_token_for_the_centre_and_each_department(tmp_path):
    """Made in the gateway's database, which is closed after (its write-ahead log gone: the file alone holds them)."""
    from xueliang.demo import DEMO_PEOPLE, demo_tokens, write_configs

    (tmp_path / "gateway").mkdir()
    _, gateway_cfg = write_configs(tmp_path, 1883, 8080, [])
    lines = demo_tokens(gateway_cfg)
    assert not (tmp_path / "gateway" / "gateway.sqlite-wal").exists()
    store = Store(f"sqlite:///{tmp_path}/gateway/gateway.sqlite")
    tables = load_tables(TABLES_DIR / "demo.yaml")
    with serve(create_app(store, tables, public_read=True)) as base:
        for (name, role, department), line in zip(DEMO_PEOPLE, lines[1:], strict=True):
            token = line.split()[-1]
            signed_in = httpx.post(f"{base}/ui/login", data={"token": token}, follow_redirects=False)
            assert signed_in.status_code == 303, line
            page = httpx.get(f"{base}/ui/queue", cookies={"xl_session": signed_in.cookies["xl_session"]})
            assert f">{name} <button id=logout>" in page.text
            if department:
                assert f"<h1>{tables.department_name(department)} 待办</h1>" in page.text
        assert "id=login-link" in httpx.get(f"{base}/ui/cases").text  # a public reader is shown the way to act
    row = store.token(hash_token(lines[1].split()[-1]))
    assert row["role"] == "operator" and row["grid"] == "HQ"


def test_the_queue_puts_overdue_cases_first_and_the_forms_keep_their_limits(city):
    from fastapi.testclient import TestClient

    from gateway import storage
    from gateway.images import MAX_PHOTO_BYTES

    tables, store, ingest = city
    for n in range(3):  # three parking cases for the traffic police, far enough apart not to merge
        assert ingest.handle(*incident(location={"lat": 39.17 + n / 100, "lon": 117.15})) == "case_created"
    now = time.time()
    with store.begin() as db:  # case 2 is overdue; of the others, case 3's deadline comes first
        for case_id, deadline in ((1, now + 7200), (2, now - 60), (3, now + 600)):
            storage.update_case(db, case_id, {"deadline": deadline})
    police = new_token(store, "tp", "department", department="traffic-police")
    client = TestClient(create_app(store, tables))
    assert client.post("/ui/login", data={"token": police}, follow_redirects=False).status_code == 303
    queue = client.get("/ui/queue").text
    assert [int(i) for i in re.findall(r"<a href='/ui/cases/(\d+)'>", queue)] == [2, 3, 1]
    assert "<tr class='overdue'><td><a href='/ui/cases/2'>" in queue
    assert "class='case st-dispatched overdue'" in client.get("/ui/map").text  # ringed in red on the map
    page = client.get("/ui/cases/2").text
    csrf = re.search(r"name=csrf value='([0-9a-f]{64})'", page)[1]
    # a photo past the cap: refused as it streams, in Chinese; nothing kept
    huge = client.post("/ui/cases/2/photos", content=b"x" * (MAX_PHOTO_BYTES + 20000),
                       headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert huge.status_code == 413 and "内容过大" in huge.text
    # an unknown department, an extension past 366 days, an unknown action: said in Chinese, nothing changed
    for fields in ({"action": "return", "extend_by": "400 days"}, {"action": "fly"},
                   {"action": "request_extension", "extend_by": "soon"}):
        r = client.post("/ui/cases/2/actions", data={"csrf": csrf, **fields}, follow_redirects=False)
        assert r.status_code == 303 and "why=invalid" in r.headers["location"], fields
        assert "填写的内容有误" in client.get(r.headers["location"]).text
    assert store.get_case(2)["state"] == "dispatched"
    assert client.post("/ui/cases/2/verdict", data={"csrf": csrf, "verdict": "correct"}).status_code == 403
    assert client.post("/ui/cases/1/actions", data={"csrf": csrf, "action": "return"}).status_code == 200
    assert re.findall(r"<a href='/ui/cases/(\d+)'>", client.get("/ui/queue").text) == ["2", "3"]  # back with the centre
    # another department's case, and reading without a session, act on nothing
    sanitation = new_token(store, "hw", "department", department="sanitation")
    other = TestClient(create_app(store, tables))
    other.post("/ui/login", data={"token": sanitation})
    assert other.post("/ui/cases/2/actions", data={"csrf": csrf, "action": "acknowledge"}).status_code == 403
    own = session_csrf(other.cookies["xl_session"])  # its own token: the case is still not its to see
    refused = other.post("/ui/cases/2/actions", data={"csrf": own, "action": "acknowledge"})
    assert refused.status_code == 404 and "没有找到" in refused.text
    public = TestClient(create_app(store, tables, public_read=True))
    assert "id=actions" not in public.get("/ui/cases/2").text
    assert public.post("/ui/cases/2/actions", data={"action": "acknowledge"}).status_code == 403
    assert store.get_case(2)["state"] == "dispatched"


def many_overdue_cases(store, ingest, n: int, now: float) -> None:
    """``n`` open parking cases for the traffic police, all overdue, the oldest the longest overdue,
    case 7 escalated once: put in one transaction through the storage layer (well under a second)."""
    from gateway import storage

    assert ingest.handle(*incident()) == "case_created"
    template = {k: v for k, v in store.get_case(1).items() if k not in ("id", "timeline", "incidents")}
    with store.begin() as db:
        for number in range(2, n + 1):
            storage.open_case(db, dict(template, incident_id=f"many-{number}"), now, "test")
        for case_id in range(1, n + 1):
            storage.update_case(db, case_id, {"deadline": now - (n + 1 - case_id) * 60, "level": int(case_id == 7)})


def listed(page: str) -> list[int]:
    return [int(i) for i in re.findall(r"<a href='/ui/cases/(\d+)'>", page)]


def every_page(client, url: str) -> tuple[list[int], list[str]]:
    """The cases a list shows on its first page and on every page its "next" links reach, and what each pager says."""
    ids, pagers = [], []
    while url:
        page = client.get(url)
        assert page.status_code == 200, page.text
        ids += listed(page.text)
        pagers.append(re.search(r"<p id=pager>(.*?)</p>", page.text)[1])
        following = re.search(r"<a rel=next href='([^']+)'>", page.text)
        url = following and following[1].replace("&amp;", "&")
    return ids, pagers


def test_the_queue_and_overdue_board_show_the_most_urgent_first_past_their_limit_and_page_to_the_rest(city):
    from fastapi.testclient import TestClient

    tables, store, ingest = city
    n = 1100  # past the queue's old cut of the newest 1,000 and the overdue board's 500
    many_overdue_cases(store, ingest, n, time.time())
    most_urgent_first = [7] + [i for i in range(1, n + 1) if i != 7]  # escalated, then the longest overdue
    police = new_token(store, "tp", "department", department="traffic-police")
    client = TestClient(create_app(store, tables))
    client.post("/ui/login", data={"token": police})
    first = client.get("/ui/queue").text
    assert listed(first) == most_urgent_first[:500]
    assert "第 1–500 条, 共 1100 条, 另有 600 条不在本页" in first
    for url in ("/ui/queue", "/ui/overdue"):
        ids, pagers = every_page(client, url)
        assert ids == most_urgent_first, url
        assert pagers[-1].startswith("第 1001–1100 条, 共 1100 条") and "上一页" in pagers[-1], url
    ids, pagers = every_page(client, "/ui/cases?limit=400")  # the case list: newest first, the paging it asked for
    assert ids == list(range(n, 0, -1)) and len(pagers) == 3
    assert listed(client.get("/ui/cases?offset=1098").text) == [2, 1]
    assert "本页没有案件, 共 1100 条" in client.get("/ui/cases?offset=5000").text
    assert client.get("/ui/cases?limit=1001").status_code == 422


# Each (state, deadline, re-check deadline, level) in minutes from now: ties of level and deadline, a
# deadline past and one to come of both clocks, none running (a feedback with no re-check deadline, a
# case returned or closed), open and closed. The cases are numbered in this order.
MIXED = [("handling", -30, None, 0), ("dispatched", 60, None, 0), ("feedback", -90, -5, 0), ("returned", -200, None, 0),
         ("dispatched", -30, None, 1), ("handling", 60, None, 0), ("feedback", -90, None, 0), ("dispatched", -30, None, 0),
         ("closed", -300, None, 2), ("feedback", -90, 30, 1), ("handling", -30, None, 1), ("dispatched", None, None, 0),
         ("handling", 60, None, 0), ("feedback", -90, -5, 0), ("returned", 60, None, 0)]


def test_the_queue_board_and_lists_order_and_page_alike_on_sqlite_and_postgresql(tmp_path, database_url):
    """Every order here is SQL (``storage.urgency_order``, newest first) with LIMIT/OFFSET: NULLs sort
    first in SQLite and last in PostgreSQL, and rows that tie come back in either database's own
    order unless a unique key breaks the tie. Each page, walked a few rows at a time, gives the
    order ``cases.is_overdue`` and ``running_deadline`` say, on both."""
    from fastapi.testclient import TestClient

    from gateway import storage
    from gateway.cases import is_overdue, running_deadline

    (tmp_path / "city.yaml").write_text(yaml.safe_dump(CITY, allow_unicode=True))
    tables = load_tables(tmp_path / "city.yaml")
    store = Store(database_url)
    assert Ingest(store, tables).handle(*incident()) == "case_created"
    template = {k: v for k, v in store.get_case(1).items() if k not in ("id", "timeline", "incidents")}
    now = time.time()

    def at(minutes):
        return None if minutes is None else now + minutes * 60

    with store.begin() as db:
        for number in range(2, len(MIXED) + 1):
            storage.open_case(db, dict(template, incident_id=f"mixed-{number}"), now, "test")
        for case_id, (state, deadline, recheck, level) in enumerate(MIXED, 1):
            storage.update_case(db, case_id, {"state": state, "deadline": at(deadline), "recheck_deadline": at(recheck),
                                              "level": level})
    cases = [store.get_case(i) for i in range(1, len(MIXED) + 1)]

    def urgent(rows):
        return [r["id"] for r in sorted(rows, key=lambda r: (not is_overdue(r, now), -r["level"],
                                                               running_deadline(r) is None, running_deadline(r) or 0,
                                                               r["id"]))]

    open_cases = [c for c in cases if c["state"] != "closed"]
    assert urgent(open_cases)[:4] == [5, 11, 1, 8]  # escalated and overdue; then, at one deadline, the oldest first
    admin = new_token(store, "root", "admin")
    client = TestClient(create_app(store, tables))
    client.post("/ui/login", data={"token": admin})
    assert every_page(client, "/ui/queue?department=traffic-police&limit=4")[0] == urgent(open_cases)
    assert every_page(client, "/ui/overdue?limit=4")[0] == urgent([c for c in cases if is_overdue(c, now)])
    assert every_page(client, "/ui/cases?limit=4")[0] == list(range(len(MIXED), 0, -1))
    assert [r["id"] for offset in range(0, len(MIXED), 4)
            for r in store.list_cases(urgent_at=now, limit=4, offset=offset)] == urgent(cases)  # the map's order


def test_each_list_pages_live_fingerprint_follows_what_it_shows_in_its_own_order_and_page(city):
    """The live script asked every list page for a fingerprint of the newest cases: the overdue
    board's and the queue's own order, and a page past the first, were not what it looked at."""
    from fastapi.testclient import TestClient

    tables, store, ingest = city
    many_overdue_cases(store, ingest, 5, time.time())  # all overdue, case 1 the longest
    admin = new_token(store, "root", "admin")
    client = TestClient(create_app(store, tables))
    client.post("/ui/login", data={"token": admin})
    pages = {"overdue": "limit=2", "queue": "department=traffic-police&limit=2", "cases": "limit=2&offset=2"}
    shown = {name: listed(client.get(f"/ui/{name}?{query}").text) for name, query in pages.items()}
    marks = {name: client.get(f"/ui/live/{name}?{query}").text for name, query in pages.items()}
    assert shown == {"overdue": [1, 2], "queue": [1, 2], "cases": [3, 2]}
    assert marks == {name: client.get(f"/ui/live/{name}?{query}").text for name, query in pages.items()}  # steady
    assert client.get("/ui/live/overdue?limit=3").text != marks["overdue"]  # another page, another fingerprint

    note = client.post("/cases/5/actions", json={"action": "acknowledge", "note": "已到场"},
                       headers={"Authorization": f"Bearer {new_token(store, 'tp', 'department', department='traffic-police')}"})
    assert note.status_code == 200, note.text  # case 5 is on none of these pages: nothing they show changed
    assert marks == {name: client.get(f"/ui/live/{name}?{query}").text for name, query in pages.items()}

    escalated = client.post("/cases/3/actions", json={"action": "escalate"}, headers={"Authorization": f"Bearer {admin}"})
    assert escalated.status_code == 200, escalated.text  # case 3 leads the board and the queue now
    for name, query in pages.items():
        page = client.get(f"/ui/{name}?{query}").text
        assert listed(page) == {"overdue": [3, 1], "queue": [3, 1], "cases": [3, 2]}[name]
        assert client.get(f"/ui/live/{name}?{query}").text != marks[name], name  # the cases page: case 3's level


@pytest.mark.slow
def test_the_overdue_board_follows_a_case_that_moves_to_its_top_without_a_reload(city, browser):
    tables, store, ingest = city
    many_overdue_cases(store, ingest, 5, time.time())  # the newest, 5 and 4, are not on the board's first page
    admin = new_token(store, "root", "admin")
    with serve(create_app(store, tables)) as base:
        sign_in(browser, base, admin)
        browser.get(f"{base}/ui/overdue?limit=2")

        def board() -> list[int]:
            return [int(text.strip().lstrip("#")) for text in page_rows(browser, "#cases a")]

        assert board() == [1, 2]
        browser.execute_script("window.stillHere = 'yes'")  # gone if the page reloaded
        time.sleep(1)  # the script has its first fingerprint
        escalated = httpx.post(f"{base}/cases/3/actions", json={"action": "escalate"},
                               headers={"Authorization": f"Bearer {admin}"})
        assert escalated.status_code == 200, escalated.text
        wait_until(lambda: board() == [3, 1], 15, message="case 3 at the top of the board")
        assert browser.execute_script("return window.stillHere") == "yes"
        assert "第 1–2 条, 共 5 条" in page_rows(browser, "#pager")[0]


@pytest.mark.slow
def test_an_operator_rejects_a_false_alarm_in_the_page_and_lifts_its_suppression(city, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from gateway import verdicts

    tables, store, ingest = city
    _, start = sighting(ingest, jpeg(40), type="garbage")  # held for review
    assert ingest.handle(*start) == "case_created"
    assert ingest.handle(*incident(location={"lat": 39.3, "lon": 117.3})) == "case_created"  # case 2: another
    operator = new_token(store, "op1", "operator", grid="D")
    sent = []  # the boxes whose suppression list the gateway sends
    with serve(create_app(store, tables, on_suppressions=sent.append)) as base:
        sign_in(browser, base, operator)
        click(browser, "#cases a[href='/ui/cases/1']")
        form = browser.find_element(By.ID, "verdict-form")
        # the form without its CSRF token, or with another, keeps nothing
        cookie = {"xl_session": browser.get_cookie("xl_session")["value"]}
        for token in ({}, {"csrf": "0" * 64}):
            refused = httpx.post(f"{base}/ui/cases/1/verdict", cookies=cookie,
                                 data={"verdict": "false_alarm", "reject": "1", **token})
            assert refused.status_code == 403 and "操作被拒绝" in refused.text
        assert verdicts.latest(store, [1]) == {} and store.get_case(1)["state"] == "pending_review"
        # a wrong type without the right one: said in Chinese, nothing kept
        Select(form.find_element(By.NAME, "verdict")).select_by_visible_text("类型错误")
        click(browser, "#verdict-submit")
        assert browser.find_element(By.ID, "outcome").text.startswith("未能提交研判: 填写的内容有误")
        assert verdicts.latest(store, [1]) == {}

        form = browser.find_element(By.ID, "verdict-form")
        Select(form.find_element(By.NAME, "verdict")).select_by_visible_text("误报")
        form.find_element(By.NAME, "reject").click()
        form.find_element(By.NAME, "note").send_keys("树影")
        click(browser, "#verdict-submit")
        assert browser.find_element(By.ID, "outcome").text == "已完成: 人工研判 (误报)"
        assert "已作废" in facts(browser) and "误报" in facts(browser)
        timeline = browser.find_element(By.ID, "timeline").text
        assert "指挥中心 op1 人工研判 待审核 误报; 树影" in timeline and "指挥中心 op1 作废 已作废" in timeline  # the verdict's row says why
        (held,) = verdicts.listed(store)
        assert held["case_id"] == 1 and sent == [held["box"]]
        shown = browser.find_element(By.ID, "suppressions").text
        assert f"屏蔽 #{held['id']}: 摄像机 {held['camera']}" in shown and "暴露垃圾" in shown

        lift = f"/ui/cases/1/suppressions/{held['id']}/lift"
        csrf = browser.find_element(By.CSS_SELECTOR, "form.lift input[name=csrf]").get_attribute("value")
        assert httpx.post(base + lift, cookies=cookie, data={}).status_code == 403  # the lift form's CSRF too
        elsewhere = httpx.post(base + lift.replace("/cases/1/", "/cases/2/"), cookies=cookie, data={"csrf": csrf},
                               follow_redirects=True)
        assert "未能解除屏蔽" in elsewhere.text and verdicts.listed(store)  # not case 2's to lift
        click(browser, f"#lift-{held['id']}")
        assert browser.find_element(By.ID, "outcome").text == "已完成: 解除屏蔽"
        assert browser.find_element(By.ID, "suppressions").text == "无屏蔽。"
        assert f"屏蔽 #{held['id']} 已解除" in browser.find_element(By.ID, "timeline").text
        assert verdicts.listed(store) == [] and sent == [held["box"]] * 2


@pytest.mark.slow  # ~5 s: a browser
def test_a_case_of_hundreds_of_merged_incidents_loads_the_snapshots_a_person_scrolls_to(city, browser):
    """A case open for weeks at a busy kerb joins every car parked there: its page fetched every incident's snapshot
    at each view (no browser keeps them: no-store), 200 incidents 200 pictures, 30-60 MB of a camera's. Those out of
    sight load as the person scrolls to them."""
    from selenium.webdriver.common.by import By

    from .test_gateway import jpeg_photo

    tables, store, ingest = city
    picture = jpeg_photo((320, 240), "teal")
    for n in range(200):
        incident_id, message = sighting(ingest, picture)
        assert ingest.handle(*message) == ("case_merged" if n else "case_created")
    fetched = []
    app = create_app(store, tables)

    async def counting(scope, receive, send):  # the pictures the browser asked for
        if scope["type"] == "http" and scope["path"].endswith("/evidence.jpg"):
            fetched.append(scope["path"])
        await app(scope, receive, send)

    with serve(counting) as base:
        sign_in(browser, base, new_token(store, "root", "admin"))
        browser.get(f"{base}/ui/cases/1")
        wait_until(lambda: browser.execute_script("return document.readyState") == "complete", 10, message="loaded")
        pictures = browser.find_elements(By.CSS_SELECTOR, "section.incident img")
        assert len(pictures) == 200
        time.sleep(0.5)  # anything the browser still meant to fetch
        assert 0 < len(fetched) < 40, len(fetched)
        browser.execute_script("arguments[0].scrollIntoView()", pictures[-1])
        wait_until(lambda: browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth",
                                                  pictures[-1]) == 320, 10, message="the last snapshot shown")
        assert f"/ui/cases/1/incidents/{incident_id}/evidence.jpg" in fetched


def test_a_photo_the_page_refuses_says_what_to_change_on_the_phone(city):
    """A HEIC photo (an iPhone's by default), a screenshot and a photo of 108 megapixels were each
    照片未上传: 文件不是可以打开的 JPEG 图片: a worker holding the phone's own photo read that as the system's fault."""
    import io

    from fastapi.testclient import TestClient
    from PIL import Image

    from .test_api_limits import bomb_header, png

    tables, store, ingest = city
    assert ingest.handle(*incident()) == "case_created"
    client = TestClient(create_app(store, tables))
    client.post("/ui/login", data={"token": new_token(store, "tp", "department", department="traffic-police")})
    csrf = session_csrf(client.cookies["xl_session"])
    webp = io.BytesIO()
    Image.new("RGB", (8, 8)).save(webp, "WEBP")
    for data, said in ((HEIC, "这是 HEIC/HEIF 格式的照片"), (png(), "这是 PNG、WebP 或 GIF 等格式的图片"),
                       (webp.getvalue(), "这是 PNG、WebP 或 GIF 等格式的图片"),
                       (bomb_header(12000, 9000), "照片像素过多 (最多 5,000 万像素)"),
                       (b"\xff\xd8<html></html>", "文件不是可以打开的 JPEG 图片")):
        r = client.post("/ui/cases/1/photos", data={"csrf": csrf}, files={"photo": ("IMG_0001.jpg", data, "image/jpeg")})
        assert r.status_code == 200 and said in re.search(r"<p id=outcome class=failed>(.*?)</p>", r.text)[1], said
    assert "兼容性最佳" in client.post("/ui/cases/1/photos", data={"csrf": csrf},
                                    files={"photo": ("IMG_0001.HEIC", HEIC, "image/heic")}).text
    assert not [e for e in store.get_case(1)["timeline"] if e["action"] == "photo"]


def test_the_map_draws_the_located_cases_within_its_limit_and_counts_the_rest(city, monkeypatch):
    """A box whose cameras have no location, its cases due first, took every slot of the map's limit: the map drew no
    case and counted those it left out wrong (3 of 6 neither drawn nor counted). Asked of the cases with a place, it
    draws the most urgent of them, and says how many have none and how many the limit leaves out: 2 + 3 + 1 = 6."""
    from fastapi.testclient import TestClient

    from gateway import web

    tables, store, ingest = city
    monkeypatch.setattr(web, "MAP_CASES", 2)
    for n in range(3):  # first made, so due first: the most urgent, from cameras with no location
        assert ingest.handle(*incident(camera=f"blind-{n}", location=None)) == "case_created"
    for n in range(3):  # far enough apart not to merge
        assert ingest.handle(*incident(location={"lat": 39.17 + n / 100, "lon": 117.15})) == "case_created"
    client = TestClient(create_app(store, tables))
    client.post("/ui/login", data={"token": new_token(store, "root", "admin")})
    page = client.get("/ui/map").text
    assert sorted(re.findall(r"<a href='/ui/cases/(\d+)'", page)) == ["4", "5"]  # the located, most urgent first
    assert "未结案件 2 · 摄像机 1" in page
    assert "3 个案件无坐标, 未画出" in page
    assert "另有 1 个案件未画出 (地图只画最紧急的 2 个)" in page
