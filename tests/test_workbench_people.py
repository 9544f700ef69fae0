"""The workbench as people use it, not as its happy path goes: two operators on one case from two pages, a form
sent twice, a page left open while the case moved on, a department sending an action it has no button for, a long
note in Chinese, and the pages on a phone."""

import re
import threading
import time

import pytest
import yaml
from fastapi.testclient import TestClient

from gateway import actions, storage, verdicts
from gateway.api import create_app
from gateway.auth import new_token
from gateway.config import load_tables
from gateway.ingest import Ingest
from gateway.storage import Store
from gateway.workflow import Action, Role

from .conftest import serve
from .test_web import SHOTS
from .test_workbench import act, city, click, sign_in  # noqa: F401 (the fixture)
from .test_workflow import CITY, database_url, incident  # noqa: F401 (the fixture)


def signed_in(store, tables, token: str) -> TestClient:
    client = TestClient(create_app(store, tables))
    assert client.post("/ui/login", data={"token": token}, follow_redirects=False).status_code == 303
    return client


def page_form(client: TestClient, case_id: int, action: str) -> dict[str, str]:
    """The hidden fields of the case page's form for ``action``, as the page shows them now: what a browser sends
    when the person clicks its button, however long after the page was loaded."""
    page = client.get(f"/ui/cases/{case_id}").text
    form = re.search(rf"<form method=post action='/ui/cases/{case_id}/actions' class=act data-action={action}>(.*?)"
                     "</form>", page)
    assert form, f"no {action} button on the page"
    return dict(re.findall(r"<input type=hidden name=(\w+) value='?([^'>]*)'?>", form[1]))


def send(client: TestClient, case_id: int, form: dict[str, str], **fields: str) -> str:
    """Send a page's form; what the page then says (``#outcome``)."""
    answer = client.post(f"/ui/cases/{case_id}/actions", data={**form, **fields}, follow_redirects=False)
    assert answer.status_code == 303, (answer.status_code, answer.text[:300])
    return re.search(r"<p id=outcome class=\w+>(.*?)</p>", client.get(answer.headers["location"]).text)[1]


def test_a_page_that_showed_the_case_before_another_person_acted_acts_on_nothing_and_says_so(city):
    """Two operators had case 1 open; the second escalated it, the first then clicked 升级督办 on its page: the case
    went up two levels (to the street, past the community), each click a notice. A department asked for 2 hours, an
    operator refused, it asked again for 5 working days, and another operator's page, still showing 2 小时, approved
    5 working days. A form sent twice (a click again while the answer was slow, a browser's resend) did it twice.
    Now the form says which case it showed and the action is taken only on that case; the page says it changed."""
    tables, store, ingest = city
    assert ingest.handle(*incident()) == "case_created"
    first = signed_in(store, tables, new_token(store, "op1", "operator", grid="D"))
    second = signed_in(store, tables, new_token(store, "op2", "operator", grid="D"))
    police = signed_in(store, tables, new_token(store, "tp", "department", department="traffic-police"))

    stale = page_form(first, 1, "escalate")
    assert send(second, 1, page_form(second, 1, "escalate")) == "已完成: 升级督办"
    said = send(first, 1, stale)
    assert said.startswith("未能升级督办: 您打开本页后案件已有变动") and "未执行" in said, said
    assert store.get_case(1)["level"] == 1
    fresh = page_form(first, 1, "escalate")  # the page as it is now: the person sees level 1 and decides again
    assert send(first, 1, fresh) == "已完成: 升级督办" and store.get_case(1)["level"] == 2
    assert send(first, 1, fresh).startswith("未能升级督办: 您打开本页后案件已有变动")  # the same form again
    assert store.get_case(1)["level"] == 2

    assert send(police, 1, page_form(police, 1, "request_extension"), extend_by="2h") == "已完成: 申请延期"
    showing_two_hours = page_form(first, 1, "approve_extension")
    assert "申请延期</th><td>2 小时" in first.get("/ui/cases/1").text
    assert send(second, 1, page_form(second, 1, "refuse_extension")) == "已完成: 驳回延期"
    assert send(police, 1, page_form(police, 1, "request_extension"), extend_by="5 working days") == "已完成: 申请延期"
    assert send(first, 1, showing_two_hours).startswith("未能批准延期: 您打开本页后案件已有变动")
    case = store.get_case(1)
    assert case["extension_request"] == "5 working days"
    assert [e["action"] for e in case["timeline"]].count("approve_extension") == 0


def verdict_form(client: TestClient, case_id: int) -> dict[str, str]:
    """The verdict form's hidden fields as the case page shows them now (as ``page_form``)."""
    form = re.search(r"<form method=post action='/ui/cases/\d+/verdict' id=verdict-form>(.*?)</form>",
                     client.get(f"/ui/cases/{case_id}").text)
    assert form, "no verdict form on the page"
    return dict(re.findall(r"<input type=hidden name=(\w+) value='?([^'>]*)'?>", form[1]))


def test_a_verdict_from_a_page_that_showed_the_case_pending_review_is_not_kept_on_it_dispatched(city):
    """An operator's page showed a pile of litter pending review; another operator confirmed it (dispatched to
    sanitation), and the first, its page unchanged, said 误报: the verdict was kept and its suppression sent to the
    camera's box, on a case dispatched as real. Now the verdict form says which case it showed, as the action forms
    do: nothing is kept and the page says the case changed; on the page as it is now the operator judges again."""
    tables, store, ingest = city
    assert ingest.handle(*incident(type="garbage")) == "case_created"
    first = signed_in(store, tables, new_token(store, "op1", "operator", grid="D"))
    second = signed_in(store, tables, new_token(store, "op2", "operator", grid="D"))

    showing_pending = verdict_form(first, 1)
    assert showing_pending["seen"] == actions.version(store.get_case(1))
    assert send(second, 1, page_form(second, 1, "confirm")) == "已完成: 审核通过"
    answer = first.post("/ui/cases/1/verdict", data={**showing_pending, "verdict": "false_alarm"}, follow_redirects=False)
    said = re.search(r"<p id=outcome class=\w+>(.*?)</p>", first.get(answer.headers["location"]).text)[1]
    assert said.startswith("未能提交研判: 您打开本页后案件已有变动 (当前为「已派遣」") and "未执行" in said, said
    assert verdicts.latest(store, [1]) == {} and verdicts.listed(store) == []
    answer = first.post("/ui/cases/1/verdict", data={**verdict_form(first, 1), "verdict": "correct"})
    assert "已完成: 人工研判 (研判属实)" in answer.text and verdicts.latest(store, [1])[1]["verdict"] == "correct"


def test_an_action_checks_the_case_it_was_decided_on_after_another_writer_commits(tmp_path, database_url):
    """Two clicks at once: the second action's case was read while the first's transaction had not committed, passed
    the check, and its update, once the first committed, went on (the state is the same: escalate, extend). Now the
    case is held before it is read, so the second reads the first's change."""
    (tmp_path / "city.yaml").write_text(yaml.safe_dump(CITY, allow_unicode=True))
    tables, store = load_tables(tmp_path / "city.yaml"), Store(database_url)
    assert Ingest(store, tables).handle(*incident()) == "case_created"
    seen = actions.version(store.get_case(1))
    outcome = []

    def escalate():
        try:
            actions.act(store, 1, Action.ESCALATE, Role.OPERATOR, "operator:op2", time.time(), tables,
                        lambda row: True, seen={seen})
            outcome.append("done")
        except storage.ConflictError as exc:
            outcome.append(type(exc).__name__)

    with store.begin() as db:  # another person's escalation, not yet committed
        storage.apply(db, store.get_case(1), Action.ESCALATE, Role.OPERATOR, "operator:op1", time.time(),
                      values={"level": 1})
        clicked = threading.Thread(target=escalate)
        clicked.start()
        time.sleep(0.5)  # the second click reads the case meanwhile
    clicked.join(10)
    assert outcome == ["StaleCase"] and store.get_case(1)["level"] == 1


def test_a_department_sending_an_action_the_centre_takes_is_refused_not_told_the_case_changed(city):
    """A department's form with 核查结案 or 升级督办 (none of its buttons; a form edited in the browser's tools) was
    answered 未能核查结案: 案件当前为「已派遣」 ... (可能刚被他人处理), as if the case had moved on. Refused: 403."""
    tables, store, ingest = city
    assert ingest.handle(*incident()) == "case_created"
    police = signed_in(store, tables, new_token(store, "tp", "department", department="traffic-police"))
    form = page_form(police, 1, "acknowledge")
    for action in ("close", "escalate", "confirm", "redispatch"):
        answer = police.post("/ui/cases/1/actions", data={**form, "action": action}, follow_redirects=False)
        assert answer.status_code == 403 and "操作被拒绝" in answer.text, (action, answer.status_code)
    assert [e["action"] for e in store.get_case(1)["timeline"]] == ["created", "dispatched"]


@pytest.mark.parametrize("note", ["现场已处理完毕" * 285 + "一二三四五", "🚗" * 1000],
                         ids=["2,000 Chinese characters", "1,000 emoji (2,000 in the browser's count)"])
def test_a_note_as_long_as_the_form_takes_is_kept_in_chinese_or_emoji(city, note):
    """The note's box takes 2,000 characters (maxlength); in Chinese the browser sends each as 9 bytes
    (percent-encoded UTF-8): a note of more than about 900 was answered 内容过大 (413) and the words were lost."""
    tables, store, ingest = city
    assert ingest.handle(*incident()) == "case_created"
    police = signed_in(store, tables, new_token(store, "tp", "department", department="traffic-police"))
    assert send(police, 1, page_form(police, 1, "acknowledge"), note=note) == "已完成: 签收"
    assert store.get_case(1)["timeline"][-1]["note"] == note


@pytest.fixture
def phone():
    from .test_web import chromium

    driver = chromium(phone_width=360)
    yield driver
    driver.quit()


# what a page lays out wider than the screen: the document's width, and each element whose right edge lies past it
# (the name and id of the first dozen), as the page is on the phone
# (not those within a box that scrolls sideways itself: a list of nine columns on a 360 px screen)
OVERFLOW = ("var w = window.innerWidth; function scrolls(e) { for (var p = e.parentElement; p; p = p.parentElement) {"
            " if (['auto', 'scroll'].includes(getComputedStyle(p).overflowX)) { return true; } } return false; }"
            "return [w, document.documentElement.scrollWidth, Array.from(document.querySelectorAll('main *, header *'))"
            ".filter(e => e.getBoundingClientRect().right > w + 1 && !scrolls(e))"
            ".map(e => e.tagName + (e.id ? '#' + e.id : '')).slice(0, 12)]")


@pytest.mark.slow  # ~5 s: a browser, a dozen pages
def test_the_pages_fit_a_phones_screen_and_its_forms_can_be_used_there(city, phone):
    """A department's people act from the street, on a phone (the on-site photo is taken there). The pages had no
    viewport meta tag: a phone laid them out 980 px wide and shrank them to a third, the text too small to read;
    laid out at the phone's 360 px, the header's links stood one character a line, and the case list, the timeline,
    the forms, the map and the report ran off the screen's side. Now every page is as wide as the screen: a list
    too wide for it scrolls within itself (its rows on one line), the timeline's rows stack, pictures shrink."""
    from selenium.webdriver.common.by import By

    from .test_gateway import jpeg_photo
    from .test_presentation import sighting

    tables, store, ingest = city
    _, start = sighting(ingest, jpeg_photo((640, 480), "teal"))
    assert ingest.handle(*start) == "case_created"
    police = new_token(store, "tp", "department", department="traffic-police")
    admin = new_token(store, "root", "admin")
    with serve(create_app(store, tables)) as base:
        sign_in(phone, base, police)
        click(phone, "#cases a[href='/ui/cases/1']")
        assert act(phone, "acknowledge", "车主已联系, 十分钟内驶离 " + "https://example.org/" + "a" * 300) == "已完成: 签收"
        for button in phone.find_elements(By.CSS_SELECTOR, "#actions button, #actions input[name=note], "
                                                           "#photo-form button"):  # each there to tap, on the screen
            box = phone.execute_script("return arguments[0].getBoundingClientRect().toJSON()", button)
            assert 0 <= box["left"] and box["right"] <= 360, (button.get_attribute("outerHTML")[:80], box)
        sign_in(phone, base, admin)
        for path in ("/ui/login", "/ui/cases", "/ui/cases/1", "/ui/queue?department=traffic-police", "/ui/overdue",
                     "/ui/map", "/ui/reports", "/ui/boxes"):
            phone.get(base + path)
            width, laid_out, past = phone.execute_script(OVERFLOW)
            assert (width, laid_out, past) == (360, 360, []), path
            links = phone.execute_script(  # each of the header's links on one line
                "return Array.from(document.querySelectorAll('header a'), a => {"
                " var r = document.createRange(); r.selectNodeContents(a); return r.getClientRects().length; })")
            assert set(links) == {1}, (path, links)
        phone.get(f"{base}/ui/cases/1")
        image = phone.find_element(By.CSS_SELECTOR, "img[alt='发现']")
        phone.execute_script("arguments[0].scrollIntoView()", image)
        assert phone.execute_script("return arguments[0].getBoundingClientRect().right", image) <= 360
        SHOTS.mkdir(parents=True, exist_ok=True)
        phone.save_screenshot(str(SHOTS / "case-phone.png"))
