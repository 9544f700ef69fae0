"""The operators' pages: case list with filters, overdue board, the grid map (``gateway.gridmap``
draws it), the daily report with its ranking, the edge boxes (``gateway.boxes``), sign-in and
sign-out, and what every page shares (its frame, escaping, error pages). The case page and its
forms, the department's queue and the live list's script are the workbench (``gateway.workbench``).

Server-rendered HTML; every value from a message or a table is escaped. Everything a person
reads is in Chinese and in Beijing time (``gateway.presentation``: department and grid names from
the city's tables, states, actions and the gateway's own notes). The pages read with
the same scopes as the API, as the principal of a session: a token is exchanged once at
``/ui/login`` for an HttpOnly, SameSite=Strict cookie, so no token is ever in a URL, a link
or a log (with ``http.public_read`` everyone reads without signing in).
"""

from __future__ import annotations

import html
import io
import logging
import time
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from PIL import Image, ImageDraw
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.auth import (PUBLIC, SESSION_COOKIE, Principal, check_same_origin, count_found, find_cases, form_page,
                          hash_token, kept_query, over_https, page_reader, report_figures, scope, session_principal,
                          start_session, unknown_filters, visible_case)
from gateway.cases import is_overdue
from gateway import boxes, gridmap
from gateway.config import Tables
from gateway.images import MAX_PHOTO_BYTES
from gateway.presentation import (BOX_STATE_NAMES, CAMERA_STATE_NAMES, FAULT_NAMES, STATE_NAMES, CaseId, Filter,
                                  IncidentId, Limit, Offset, Sha256, Which, city_day, incident_evidence_response,
                                  local_time, period, photo_response, span_text)
from gateway.security import DATABASE_RETRY_S, database_down, read_capped
from gateway.storage import StoreClosed
from gateway.workflow import CENTRE_CLOCK, DEPARTMENT_CLOCK, OPEN_STATES, CaseState, Role
from xueliang import wire
from xueliang.characters import neutralised

log = logging.getLogger(__name__)

ERRORS = {  # what a person reads when a page cannot be shown
    403: ("操作被拒绝", "表单已失效或您无权执行此操作, 请刷新页面后重试。"),
    404: ("没有找到", "页面、案件或图片不存在, 或不在您的查看范围内。"),
    405: ("无法打开此地址", "此地址不接受这样的请求 (表单的提交地址不能在浏览器中直接打开), 请回到页面重新操作。"),
    410: ("图片不予显示", "这张图片是旧版网关收下的, 扫描段过多, 浏览器解码它会占用数分钟, 因此不再提供。"),
    413: ("内容过大", f"提交的内容超过了上限 (现场照片最大 {MAX_PHOTO_BYTES // 1_000_000} MB: 请用相机的普通分辨率重拍, "
                      "或压缩后再上传)。"),
    503: ("数据库暂时不可用", "网关暂时无法读写数据库, 请稍后刷新本页。"),
    422: ("请求有误", "请检查链接中的参数 (日期如 2026-12-05, 案件编号为数字)。"),
}


class PageRoute(APIRoute):
    """A page's errors are pages too: the person reads in Chinese what went wrong (the API's own
    words, for whoever supports them, folded away), not JSON. The signed-in person is looked up in the thread pool, as
    everything that reads the database from the server's one event loop must be: a database slow to answer held up
    every other request while it waited."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as exc:
                if exc.status_code < 400 or exc.status_code == 401:
                    raise  # the way to the sign-in form
                return error_page(exc.status_code, str(exc.detail), await run_in_threadpool(session_principal, request))
            except RequestValidationError as exc:
                detail = "; ".join(str(e.get("msg")) for e in exc.errors())[:500]
                return error_page(422, detail, await run_in_threadpool(session_principal, request))
            except OperationalError as exc:  # the signed-in person is not looked up: that reads the database too
                log.warning("%s %s: %s", request.method, request.url.path, database_down(exc))
                answer = error_page(503, database_down(exc), None)
                answer.headers["Retry-After"] = str(DATABASE_RETRY_S)
                return answer
            except StoreClosed as exc:  # a request the stop did not wait for
                answer = error_page(503, str(exc), None)
                answer.headers["Retry-After"] = str(DATABASE_RETRY_S)
                return answer

        return route


def error_page(status_code: int, detail: str, who: Principal | None, back: str = "/ui/cases") -> HTMLResponse:
    """The page of an error: what went wrong in Chinese, a way ``back`` (a page's path), the technical words folded."""
    title, text = ERRORS.get(status_code, ("出错了", "请稍后再试。"))
    way = "返回案件列表" if back == "/ui/cases" else "返回页面"
    return page(title, f"<p>{esc(text)}</p><p><a id=back href='{esc(back)}'>{way}</a></p>"
                f"<details><summary>技术信息</summary><code>{esc(detail)}</code></details>", who, status_code)


async def not_a_page(request: Request, exc: StarletteHTTPException) -> Response:
    """An address under /ui/ with no page, or a method its page does not take (a form's address opened with a GET):
    the error page in Chinese, back to the nearest page up its path; they answered the API's English JSON
    (``{"detail":"Not Found"}``, ``Method Not Allowed``). The pages' own errors are ``PageRoute``'s; the way to the
    sign-in form (a redirect, a 401) and every other address keep FastAPI's answer."""
    if not (request.url.path + "/").startswith("/ui/") or exc.status_code < 400 or exc.status_code == 401:
        return await http_exception_handler(request, exc)
    try:
        who = await run_in_threadpool(session_principal, request)
    except (OperationalError, StoreClosed):  # the database down or closed: the page without the signed-in person
        who = None
    answer = error_page(exc.status_code, str(exc.detail), who, form_page(request))
    answer.headers.update(exc.headers or {})  # a 405's Allow
    return answer


web_router = APIRouter(prefix="/ui", tags=["operators' page"], include_in_schema=False, route_class=PageRoute)
# main: an unbroken id (an incident's, 128 characters) wraps; the timeline: its note (2,000 characters, a pasted link)
# wraps anywhere and the columns before it keep their line (a 2,000-character note made the page 19,000 px wide
# and its time, who and what one character wide); a cell of a box's own words (.said: its ids, a camera's error, why a
# heartbeat was refused; the case page's facts) wraps anywhere too: a camera's error of 300 characters without a space
# made the boxes page 3,100 px wide and a camera and zone id of 64 each the case list's, the others off the window
# A picture keeps within the window's height too (its shape kept): a box's snapshot of 16 x 8000 px pushed the case
# page's photos and timeline 8,000 px down
# A phone (a department's people act from the street) lays a page out as wide as its screen (the viewport meta tag;
# without it, 980 px shrunk to a third): the header and the forms wrap, pictures, the map and the chart shrink to it,
# a list too wide for it scrolls within itself, its rows on one line, and the timeline's rows stack, their note below
STYLE = """
body{font-family:system-ui,"Noto Sans CJK SC",sans-serif;margin:0;background:#f4f6f8;color:#1d2733}
header{background:#1b3a5c;color:#fff;padding:10px 18px;display:flex;flex-wrap:wrap;gap:6px 18px;align-items:center}
header a{color:#fff;text-decoration:none}header a,header form{white-space:nowrap}main{padding:14px 18px}
table{border-collapse:collapse;width:100%;background:#fff}td,th{padding:6px 8px;border-bottom:1px solid #dde3ea;text-align:left;font-size:14px}
.overdue{color:#b00020;font-weight:600}.centre-late{font-size:.85em}.urgent,.redispatch{color:#fff;background:#b00020;padding:0 4px;border-radius:3px}.badge{padding:2px 6px;border-radius:4px;background:#e3ecf6}
form.filters{display:flex;gap:8px;margin-bottom:10px;flex-wrap:wrap}img{max-width:min(640px,100%);border:1px solid #ccd}input,select{max-width:100%}
.bar{fill:#2f6ea5}.cam{fill:#1b3a5c}.case{fill:#d9480f;stroke:#fff;stroke-width:1.5}
.pair{display:flex;gap:12px;flex-wrap:wrap}.pair img{max-width:min(640px,45vw)}figure img{max-height:80vh}
#actions{display:flex;flex-direction:column;gap:6px;margin-bottom:10px}form.act{display:flex;flex-wrap:wrap;gap:8px;align-items:center}form.act button{min-width:9em}
#outcome{padding:8px 12px;border-radius:4px}.done{background:#e3f4e8}.failed{background:#fde8e8;color:#b00020}
#map{background:#fff;border:1px solid #ccd}.grid.outer{fill:none;stroke:#5b7da3;stroke-width:2;stroke-dasharray:6 3}
.grid.leaf{fill:#eaf1f8;stroke:#7d96b3;stroke-width:1}.grid-label{font-size:12px;fill:#33475b;paint-order:stroke;stroke:#fff;stroke-width:3px}.scale{fill:none;stroke:#1d2733;stroke-width:2}
.st-pending_review{fill:#f59f00}.st-dispatched{fill:#d9480f}.st-handling{fill:#1c7ed6}.st-feedback{fill:#7048e8}
.st-returned{fill:#e64980}.st-closed{fill:#2b8a3e}.st-ledger{fill:#868e96}.st-rejected{fill:#adb5bd}
circle.overdue{stroke:#b00020;stroke-width:3}circle.off-map{stroke:#1d2733;stroke-dasharray:2 2}
.more circle{fill:#fff;stroke:#1b3a5c;stroke-width:1.5}.more text{font-size:10px;fill:#1b3a5c}.legend span{margin-right:12px}
.flag{color:#b00020;font-weight:600}main{overflow-wrap:break-word}
#timeline td:not(:last-child){white-space:nowrap}#timeline td:last-child{overflow-wrap:anywhere}td.said,#facts td{overflow-wrap:anywhere}
#map,#chart{max-width:100%;height:auto}
@media (max-width:640px){main{padding:10px}#cases,#ranking,#boxes{display:block;overflow-x:auto}#cases th,#cases td{white-space:nowrap}
#timeline,#timeline tbody,#timeline tr{display:block}#timeline tr:first-child{display:none}
#timeline tr{border-bottom:1px solid #dde3ea;padding:6px 0}#timeline td{display:inline;border:0;padding:0 6px 0 0}
#timeline td:last-child{display:block}}
"""


LIVE_SCRIPT = "<script src=/ui/live.js defer></script>"  # gateway.workbench says why a script


def pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def esc(value) -> str:
    return html.escape("" if value is None else str(value))


def page(title: str, body: str, who: Principal | None = None, status_code: int = 200, live: bool = False) -> HTMLResponse:
    """A whole page; ``live``: its list (#cases, or #boxes) follows changes without a reload (``/ui/live.js``)."""
    nav = "".join(f'<a href="/ui/{p}">{n}</a>' for p, n in
                  (("cases", "案件"), ("queue", "部门待办"), ("overdue", "超期督办"), ("map", "地图"),
                   ("reports", "民情快报"), ("boxes", "边缘盒子")))
    if who is not None and who.name != "public":
        nav += (f"<form method=post action=/ui/logout style='margin-left:auto'>{esc(who.name)} "
                "<button id=logout>退出</button></form>")
    else:  # reading without a session (public_read): acting needs one
        nav += "<a id=login-link href=/ui/login style='margin-left:auto'>登录</a>"
    return HTMLResponse(f"<!doctype html><html lang=zh><head><meta charset=utf-8><meta name=viewport content='width=device-width, initial-scale=1'><title>{esc(title)} · 雪亮</title>"
                        f"<style>{STYLE}</style>{LIVE_SCRIPT if live else ''}</head><body><header><strong>雪亮 xueliang</strong>{nav}</header>"
                        f"<main><h1>{esc(title)}</h1>{body}</main></body></html>", status_code)


def page_icon() -> bytes:
    """The pages' icon (``/favicon.ico``, 16 px), drawn here: an eye (雪亮, sharp eyes) on the header's blue. A
    browser asks for it at a site's first page and logged the 404 in every operator's console."""
    picture = Image.new("RGB", (16, 16), "#1b3a5c")
    draw = ImageDraw.Draw(picture)
    draw.ellipse((1, 4, 14, 11), fill="#fff")
    draw.ellipse((5, 5, 10, 10), fill="#1b3a5c")
    ico = io.BytesIO()
    picture.save(ico, "ICO", sizes=[(16, 16)])
    return ico.getvalue()


PAGE_ICON = page_icon()


def grid_text(tables: Tables, code: str | None) -> str:
    """A grid as people read it: its name, and its code where the name is not the code."""
    if not code:
        return ""
    name = tables.grid_name(code)
    return name if name == code else f"{name} ({code})"


REDISPATCH_MARK = "部门已撤销 · 待重新派遣"


def unrouted(case: dict, tables: Tables) -> bool:
    """Whether a case is with a department taken out of the tables since (dispatched or handling: its bare id was
    shown, nothing said): no notice reaches it, and it waits to be moved (``gateway --move-cases``, or returned and
    redispatched). One waiting for review or its re-check is not: sent on, it goes where the tables route it now."""
    return case["state"] in {s.value for s in DEPARTMENT_CLOCK} and not tables.knows_department(case["department"])


def department_choices(tables: Tables) -> list[tuple[str, str]]:
    """A filter's departments: the tables', then those taken out of them that cases name (by the name they last
    had, marked): their cases wait to be redispatched, and no filter could pick them."""
    return [(d.id, d.name) for d in tables.departments] + [(d, tables.department_name(d)) for d in sorted(tables.removed)]


CENTRE_LATE = "指挥中心超期"  # a case overdue on the command centre's own clock: no department's lateness


def case_rows(cases: list[dict], tables: Tables, now: float | None = None) -> str:
    """The list's rows; one overdue on the command centre's own clock (a lead unreviewed, a case returned and not sent
    on: ``CENTRE_CLOCK``) says so beside its state, as it stands in a department's row of a filtered list."""
    now = time.time() if now is None else now
    centre = {s.value for s in CENTRE_CLOCK}
    rows = []
    for c in cases:
        overdue = is_overdue(c, now)
        late = f" <span class=centre-late>{CENTRE_LATE}</span>" if overdue and c["state"] in centre else ""
        rows.append(
            f"<tr class='{'overdue' if overdue else ''}'><td><a href='/ui/cases/{c['id']}'>#{c['id']}</a></td>"
            f"<td>{esc(c['category_name'])}{' <span class=urgent>紧急</span>' if c['urgent'] else ''}</td>"
            f"<td>{esc(grid_text(tables, c['grid']))}</td><td>{esc(tables.department_name(c['department']))}"
            f"{f' <span class=redispatch>{REDISPATCH_MARK}</span>' if unrouted(c, tables) else ''}</td>"
            f"<td><span class=badge>{esc(STATE_NAMES.get(c['state'], c['state']))}</span>{late}</td>"
            f"<td>{esc(local_time(c['created_at']))}</td><td>{esc(local_time(c['deadline']))}</td>"
            f"<td>{esc(c['level'])}</td><td class=said>{esc(c['camera'])}/{esc(c['zone'])}</td></tr>")
    return ("<table id=cases><tr><th>编号</th><th>类别</th><th>网格</th><th>部门</th><th>状态</th><th>立案时间</th>"
            "<th>处置时限</th><th>督办级别</th><th>点位</th></tr>" + "".join(rows) + "</table>")


PAGE_ROWS = 500  # the cases a list page shows unless its link asks for others (``limit``, at most 1000)


def pager(request: Request, offset: int, limit: int, shown: int, total: int) -> str:
    """Which of how many cases a list shows, and links to those before and after (the page's own
    filters kept): a list that stops at its limit says so, and the rest are a click away."""
    def link(at: int, text: str, rel: str) -> str:
        query = urlencode({**kept_query(request), "offset": at, "limit": limit})
        return f" <a rel={rel} href='{esc(request.url.path)}?{esc(query)}'>{text}</a>"

    text = (f"第 {offset + 1}–{offset + shown} 条, 共 {total} 条" if shown else f"本页没有案件, 共 {total} 条")
    if total > shown:
        text += f", 另有 {total - shown} 条不在本页"
    if offset > 0:
        text += link(max(0, offset - limit), "上一页", "prev")
    if offset + shown < total:
        text += link(offset + limit, "下一页", "next")
    return f"<p id=pager>{text}</p>"


LOGIN_FORM = ("<form method=post action=/ui/login id=login><input type=hidden name=next value='{next}'>"
              "<label>令牌 <input type=password name=token autocomplete=off required maxlength=200></label> "
              "<button>登录</button></form><p>{error}</p>")
MAX_FORM_BYTES = 4096


def local_page(target: str | None) -> str:
    """Where to go after signing in: one of these pages, never another site nor another path of this
    one. ``next`` is followed only as a plain path under ``/ui/``: no scheme or host, no backslash,
    no empty, ``.`` or ``..`` segment, percent-encoded or not (a browser resolves ``/ui/..//x`` to
    ``//x`` and ``%2e%2e`` as ``..``); anything else goes to the case list.

    >>> local_page("/ui/cases/3?state=closed"), local_page("//evil.example/ui/"), local_page(None)
    ('/ui/cases/3?state=closed', '/ui/cases', '/ui/cases')
    >>> local_page("/ui/..//evil.example/"), local_page("/ui/%2E%2e/x"), local_page("/ui/cases?next=//x")
    ('/ui/cases', '/ui/cases', '/ui/cases?next=//x')
    """
    if not target or not target.isprintable() or "\\" in target:
        return "/ui/cases"
    parts = urlsplit(target)
    segments = unquote(parts.path).split("/")
    if (parts.scheme or parts.netloc or not parts.path.startswith("/ui/") or "\\" in unquote(parts.path)
            or any(s in ("", ".", "..") for s in segments[1:-1]) or segments[-1] in (".", "..")):
        return "/ui/cases"
    return target


@web_router.get("/login", response_class=HTMLResponse)
def login_page(next: str | None = None):  # noqa: A002 (the parameter's name in the URL)
    return page("登录", LOGIN_FORM.format(next=esc(local_page(next)), error=""))


@web_router.post("/login", response_class=HTMLResponse)
async def login(request: Request):
    """Exchange a token (form field ``token``) for a session cookie, once; then back to ``next``.
    Only from this gateway's own page (``auth.check_same_origin``). The session is written in the thread pool: on
    the event loop, a write waiting on another's lock (SQLite's busy timeout, 5 s) held up every other request."""
    check_same_origin(request)
    form = parse_qs((await read_capped(request, MAX_FORM_BYTES, "the sign-in form")).decode("utf-8", "replace"))
    target = local_page((form.get("next") or [None])[0])
    store, now = request.app.state.store, time.time()
    token = (form.get("token") or [""])[0]
    try:
        session, expires_at = await run_in_threadpool(start_session, store, token, now)
    except ValueError:
        problem = await run_in_threadpool(sign_in_problem, store, token)
        return page("登录", LOGIN_FORM.format(next=esc(target), error=esc(f"登录失败: {problem}")), status_code=401)
    response = RedirectResponse(target, 303)
    response.set_cookie(SESSION_COOKIE, session, max_age=int(expires_at - now), **session_cookie(request))
    return response


def session_cookie(request: Request) -> dict:
    """The session cookie's attributes, for the answer to ``request``: the same where it is set and where it is
    deleted (the deletion carried no Secure where the sign-in's cookie had it)."""
    return {"path": "/ui", "httponly": True, "samesite": "strict", "secure": over_https(request)}


def sign_in_problem(store, token: str) -> str:
    """Why a token opens no session, as people read it (``auth.token_problem`` says it for the API)."""
    row = store.token(hash_token(token.strip()))
    if row is None:
        return "令牌无效"
    if row["revoked_at"] is not None:
        return f"令牌 {row['name']} 已于 {local_time(row['revoked_at'])} 吊销, 请申请新令牌"
    return f"令牌 {row['name']} 已于 {local_time(row['expires_at'])} 过期, 请申请新令牌"


@web_router.post("/logout")
def logout(request: Request):
    """End the session and drop its cookie; only from this gateway's own page (``auth.check_same_origin``)."""
    check_same_origin(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        request.app.state.store.end_session(hash_token(cookie))
    response = RedirectResponse("/ui/login", 303)
    response.delete_cookie(SESSION_COOKIE, **session_cookie(request))
    return response


FILTER_NAMES = {"department": "部门", "category": "类别", "grid": "网格"}


def unknown_filter_note(request: Request, principal: Principal, **values: str | None) -> str:
    """What a list page shows in place of its cases where a filter of its address can select none of those
    ``principal`` may see (``auth.unknown_filters``: a department, category or grid neither the city's tables nor any
    case names; to an operator of a street, a grid not its own; to a department, another department); "" where each
    can (an empty value is the page's 全部). Such an address (a typo in a link, a grid code mistyped) showed an empty
    list, read as no case there."""
    problems = unknown_filters(request.app.state.store, request.app.state.tables, principal, time.time(),
                               **{name: value or None for name, value in values.items()})
    if not problems:
        return ""
    said = []
    for kind, names, words in (("unknown_value", FILTER_NAMES, "本市的表中没有{}, 也没有案件属于它"),
                               ("outside_scope", ("grid",), "{}不在您负责的网格范围内"),
                               ("outside_scope", ("department",), "{}不是本部门, 部门只能查看本部门的案件")):
        if which := "、".join(f"{FILTER_NAMES[p['loc'][1]]}「{neutralised(p['input'])}」" for p in problems
                             if p["type"] == kind and p["loc"][1] in names):
            said.append(words.format(which))
    return (f"<p id=unknown-filter class=failed>筛选条件有误: {esc('; '.join(said))} "
            "(链接或输入可能有误), 因此没有列出案件。请在筛选栏中重新选择或输入。</p><details><summary>技术信息</summary>"
            f"<code>{esc(neutralised('; '.join(p['msg'] for p in problems)))}</code></details>")


def cases_filter_note(request: Request, category: Filter = None, grid: Filter = None, department: Filter = None,
                      principal: Principal = Depends(page_reader)) -> str:
    """``unknown_filter_note`` of ``/ui/cases``' filters, once a request: its list and its page's status share it."""
    return unknown_filter_note(request, principal, category=category, grid=grid, department=department)


def cases_listing(request: Request, state: CaseState | None = None, category: Filter = None, grid: Filter = None,
                  department: Filter = None, overdue: bool = False, offset: Offset = 0, limit: Limit = PAGE_ROWS,
                  principal: Principal = Depends(page_reader), note: str = Depends(cases_filter_note)) -> str:
    """What ``/ui/cases`` shows of its cases (the table and its pager): the cases the reader may see
    that the filters select, newest first, a page at a time, or why its filters select none. Its live fingerprint is
    made of the same."""
    if note:
        return note
    store, tables = request.app.state.store, request.app.state.tables
    selected = dict(state=state.value if state else None, grid=grid or None, department=department or None,
                    category=category or None, overdue_at=time.time() if overdue else None)
    rows = find_cases(store, tables, principal, **selected, limit=limit, offset=offset)
    total = count_found(store, tables, principal, **selected)
    return case_rows(rows, tables) + pager(request, offset, limit, len(rows), total)


@web_router.get("/cases", response_class=HTMLResponse)
def cases_page(request: Request, state: CaseState | None = None, category: Filter = None, grid: Filter = None,
               department: Filter = None, overdue: bool = False, listing: str = Depends(cases_listing),
               principal: Principal = Depends(page_reader), note: str = Depends(cases_filter_note)):
    """The case list (``cases_listing``) under its filters; a 422 where a filter can select no case, the filters
    kept to correct."""
    state = state.value if state else None
    tables = request.app.state.tables

    def select(name, label, options, current):
        return choice(name, label, [("", "全部")] + options, current)

    departments = department_choices(tables) if principal.role != Role.DEPARTMENT else [  # it sees its own alone
        (principal.department, tables.department_name(principal.department))]
    filters = (f"<form class=filters>{select('state', '状态', list(STATE_NAMES.items()), state)}"
               f"{select('category', '类别', [(c.type, c.name) for c in tables.categories], category)}"
               f"{select('department', '部门', departments, department)}"
               f"<label>网格编码 <input name=grid value='{esc(grid or '')}' placeholder='含下级网格'></label>"
               f"<label><input type=checkbox name=overdue value=true {'checked' if overdue else ''}> 只看超期</label>"
               "<button>筛选</button></form>")
    return page("案件列表", filters + listing, principal, 422 if note else 200, live=True)


def choice(name: str, label: str, options: list[tuple[str, str]], current: str | None) -> str:
    """A filter's drop-down: ``options`` (value, what a person reads), the one whose value is ``current`` chosen."""
    opts = "".join(f"<option value='{esc(v)}' {'selected' if v == current else ''}>{esc(n)}</option>"
                   for v, n in options)
    return f"<label>{label} <select name={name}>{opts}</select></label>"


def visible(case_id: int, request: Request, principal: Principal) -> dict:
    return visible_case(request.app.state.store, request.app.state.tables, principal, case_id)


def figure(label: str, url: str) -> str:
    """A snapshot or photo with its caption, fetched when the person scrolls near it (``loading=lazy``): a case that
    joined every car parked at a busy kerb for weeks fetched each one's picture at every view, none kept (no-store),
    200 incidents 200 pictures."""
    return (f"<figure><img loading=lazy alt='{esc(label)}' src='{esc(url)}'><figcaption>{esc(label)}</figcaption>"
            "</figure>")


@web_router.get("/cases/{case_id}/incidents/{incident_id}/evidence.jpg", response_class=Response)
def incident_evidence(case_id: CaseId, incident_id: IncidentId, request: Request, which: Which = "start",
                      principal: Principal = Depends(page_reader)):
    return incident_evidence_response(visible(case_id, request, principal), incident_id, which,
                                      request.app.state.store)


@web_router.get("/cases/{case_id}/photos/{sha256}.jpg", response_class=Response)
def case_photo(case_id: CaseId, sha256: Sha256, request: Request, principal: Principal = Depends(page_reader)):
    visible(case_id, request, principal)
    return photo_response(case_id, sha256, request.app.state.store)


def overdue_listing(request: Request, offset: Offset = 0, limit: Limit = PAGE_ROWS,
                    principal: Principal = Depends(page_reader)) -> str:
    """What ``/ui/overdue`` shows: the overdue cases the reader may see, the most escalated and
    longest overdue first (``storage.urgency_order``, in SQL: a page's limit cuts the least urgent),
    a page at a time."""
    store, tables, now = request.app.state.store, request.app.state.tables, time.time()
    rows = find_cases(store, tables, principal, overdue_at=now, urgent_at=now, limit=limit, offset=offset)
    total = count_found(store, tables, principal, overdue_at=now)
    return case_rows(rows, tables) + pager(request, offset, limit, len(rows), total)


@web_router.get("/overdue", response_class=HTMLResponse)
def overdue_page(listing: str = Depends(overdue_listing), principal: Principal = Depends(page_reader)):
    return page("超期督办", listing, principal, live=True)


MAP_CASES = 1000  # the cases the map draws, the most urgent first (``storage.urgency_order``)
MAP_OPEN = "未结"  # what the map shows unless its ``state`` asks for another: the open cases (``OPEN_STATES``)


@web_router.get("/map", response_class=HTMLResponse)
def map_page(request: Request, state: CaseState | None = None, principal: Principal = Depends(page_reader)):
    """The grids of the city's tables (those in the principal's scope) with the open cases on them or, with ``state``
    (the case list's filter, chosen as there), those in that state; coloured by state (overdue ringed in red), each
    linking to its page; drawn here, no tiles. The closed, rejected and ledger cases of years drowned the open ones.
    A case whose place lies outside the grids is drawn at the map's edge and listed below it; those with no place (a
    camera with no location) and those past ``MAP_CASES`` are counted below it."""
    store, tables, now = request.app.state.store, request.app.state.tables, time.time()
    s = scope(principal, tables)
    shown = [state.value] if state else sorted(o.value for o in OPEN_STATES)
    rows = find_cases(store, tables, principal, urgent_at=now, limit=MAP_CASES, located=True, states=shown)
    located = count_found(store, tables, principal, located=True, states=shown)
    unlocated = count_found(store, tables, principal, states=shown) - located
    grids = set(s["grids"]) if "grids" in s else None
    shapes = {code: polys for code, polys in tables.grid_shapes.items() if grids is None or code in grids}
    cases_shown = f"「{STATE_NAMES[state.value]}」案件" if state else f"{MAP_OPEN}案件"
    undrawn = [f"{unlocated} 个案件无坐标, 未画出"] if unlocated > 0 else []
    if located > len(rows):
        undrawn.append(f"另有 {located - len(rows)} 个案件未画出 (地图只画最紧急的 {MAP_CASES} 个), 见案件列表")
    options = [("", MAP_OPEN), *STATE_NAMES.items()]  # the list's, its 全部 the open ones
    filters = (f"<form class=filters>{choice('state', '状态', options, state.value if state else '')}"
               "<button>筛选</button></form>")
    if not shapes and not rows:  # nothing to draw: those with no place counted still
        said = " · ".join([f"暂无网格边界或带坐标的{cases_shown}", *undrawn])
        return page("网格地图", f"{filters}<p id=counts>{said}</p>", principal)
    outer = {up for code in shapes for up in tables.ancestors(code)[1:]}
    marks = [gridmap.Mark(r["lon"], r["lat"], f"/ui/cases/{r['id']}",
                          f"case st-{r['state']}{' overdue' if is_overdue(r, now) else ''}",
                          f"#{r['id']} {r['category_name']} · {STATE_NAMES.get(r['state'], r['state'])}"
                          f"{' · 超期' if is_overdue(r, now) else ''}") for r in rows]
    cameras = {(r["box"], r["camera"]): (r["lon"], r["lat"], f"摄像机 {r['box']}/{r['camera']}") for r in rows}
    drawn = gridmap.render(shapes, tables.grid_names, {c: len(tables.ancestors(c)) for c in shapes}, outer, marks,
                           list(cameras.values()))
    legend = "".join(f"<span><svg width=14 height=14><circle class='case st-{k}' cx=7 cy=7 r=5></circle></svg> {esc(v)}</span>"
                     for k, v in STATE_NAMES.items() if k in shown)
    legend += ("<span><svg width=14 height=14><circle class='case overdue' cx=7 cy=7 r=5></circle></svg> 超期</span>"
               "<span><svg width=14 height=14><circle class='case off-map' cx=7 cy=7 r=5></circle></svg> 网格范围外</span>"
               "<span><svg width=14 height=14><rect class=cam x=3 y=3 width=8 height=8></rect></svg> 摄像机</span>")
    said = " · ".join([f"网格 {len(shapes)}", f"{cases_shown} {len(marks)}", f"摄像机 {len(cameras)}", *undrawn])
    notes = f"<p id=counts>{said}</p>"
    if drawn.off_map:  # a box that sends 0, 0 or another city's place: said, and a click away
        items = "".join(f"<li><a href='{esc(m.href)}'>{esc(m.title)}</a></li>" for m in drawn.off_map[:50])
        more = f"<li>等, 共 {len(drawn.off_map)} 个</li>" if len(drawn.off_map) > 50 else ""
        notes += f"<p>位置在网格范围外的案件 (画在地图边缘):</p><ul id=off-map>{items}{more}</ul>"
    return page("网格地图", f"{filters}{drawn.svg}<p class=legend>{legend}</p>{notes}", principal)


@web_router.get("/reports", response_class=HTMLResponse)
def reports_page(request: Request, date: Filter = None, principal: Principal = Depends(page_reader)):
    now = time.time()
    try:
        start, end = period("daily", date or None, now)
    except ValueError as exc:
        raise HTTPException(422, f"date {date!r}: {exc}") from None
    tables = request.app.state.tables
    _, r = report_figures(principal, request.app.state.store, tables, start, end, now)
    top = max([c["received"] for c in r["categories"]] + [1])
    bars = "".join(f"<text x=0 y={22 * i + 15}>{esc(c['category'])}</text>"
                   f"<rect class=bar x=160 y={22 * i + 3} width={round(400 * c['received'] / top)} height=16></rect>"
                   f"<text x={170 + round(400 * c['received'] / top)} y={22 * i + 15}>{c['received']}</text>"
                   for i, c in enumerate(r["categories"]))
    ranking = "".join(f"<tr><td>{d['rank']}</td><td>{esc(tables.department_name(d['department']))}</td>"
                      f"<td>{d['closed']}</td><td>{pct(d['on_time_rate'])}</td><td>{d['overdue']}"
                      f"{as_of_now(d['deadline_as_of_now'])}</td></tr>" for d in r["departments"])
    day = city_day(start).isoformat()
    picker = (f"<form class=filters><label>日期 <input type=date name=date value='{esc(day)}'></label>"
              "<button>查看</button></form>")
    head = picker + (f"<p>{esc(day)}: 受理 {r['received']} · 派遣 {r['dispatched']} · 结案 {r['closed']} · "
            f"按期率 {pct(r['on_time_rate'])} · 超期 {r['overdue']}{as_of_now(r['deadline_as_of_now'])}</p>"
            f"{centre_line(r['centre'])}")
    height = 22 * len(r["categories"]) + 10  # drawn in the box its viewBox says, and shrunk with it on a phone
    return page("民情快报", head + f"<svg id=chart width=640 height={height} viewBox='0 0 640 {height}'>{bars}</svg>"
                "<h2>部门排名</h2><table id=ranking><tr><th>名次</th><th>部门</th><th>结案</th><th>按期率</th><th>超期</th></tr>"
                f"{ranking}</table>", principal)


def centre_line(c: dict | None) -> str:
    """The command centre's own lateness (``reports.centre``), none in a department's report: its deadlines from the
    tables of now, as the page says."""
    if c is None:
        return ""
    return (f"<p id=centre>指挥中心 (待审核、已回退): 新增 {c['began']} · 办结 {c['ended']}, 其中超时 {c['ended_late']}"
            f" · 仍在等待 {c['waiting']}, 其中超时 {c['overdue']} <span class=flag>(时限按现行审核时限计)"
            "</span></p>")


def as_of_now(n: int) -> str:
    """Said beside a report's figures judged on a case's deadline of now (``reports``: a dispatch logged before
    migration 14 recorded none, and an extension or a later round moved the case's since): they may be off."""
    return f" <span class=flag>(其中 {n} 项按案件现行时限计: 升级前的派遣未记当时时限)</span>" if n else ""


def box_grids(v: dict, tables: Tables) -> str:
    """Under a box's id: its cameras' grids, or that they are unknown (a box older than the cameras' grid in its
    heartbeat, or none heard), which only admins see (``boxes.listed``)."""
    if v["grids"]:
        return "网格: " + esc("、".join(grid_text(tables, g) for g in v["grids"]))
    if v["cameras_total"]:
        return ("<span class=flag>网格未知</span>: 心跳未注明摄像机所在网格 (盒子软件较旧, 升级后按网格列给各网格的操作员); "
                "现仅管理员可见")
    return "<span class=flag>网格未知</span>: 心跳中没有摄像机; 仅管理员可见"


def box_row(v: dict, now: float, tables: Tables, removable: bool = False) -> str:
    """One box of ``/ui/boxes`` (``boxes.view``), as people read it, its grids under its id; ``removable``: with its
    remove button, which asks first (``/ui/boxes/{box}/remove``, the workbench's)."""
    state = esc(BOX_STATE_NAMES.get(v["state"], v["state"]))
    if v["state"] != "online":
        state = f"<span class=flag>{state}</span>"
    if v["silent"]:
        state += f" · <span class=flag>{BOX_STATE_NAMES['silent']}</span>"
    if v["refused_at"] is not None:
        state += (f"<br><span class=flag>心跳被拒收 ({esc(local_time(v['refused_at'], seconds=True))}): "
                  f"{esc(v['refused_reason'])}</span>")
    if v["twin_at"] is not None:  # each takes the other's broker connection: their incidents are late
        state += (f"<br><span class=flag>两台盒子使用同一编号 ({esc(local_time(v['twin_at'], seconds=True))}, 启动 "
                  f"{esc(' 与 '.join(v['twin_boots']))}): 请为每台盒子设置各自的编号</span>")
    heard = (f"{esc(local_time(v['heard_at'], seconds=True))} ({esc(span_text(now - v['heard_at']))}前)"
             if v["heard_at"] is not None else "从未收到心跳")
    down = [c for c in v["cameras"] if c["state"] != "online"]
    faulty = [c for c in v["cameras"] if c["faults"]]
    cameras = f"{v['cameras_up']}/{v['cameras_total']}"
    if down:
        cameras += " <span class=flag>未在线: " + ", ".join(
            f"{esc(c['camera'])} ({esc(CAMERA_STATE_NAMES.get(c['state'], c['state']))}"
            + (f": {esc(c['last_error'])}" if c["last_error"] else "") + ")" for c in down) + "</span>"
    if faulty:
        cameras += " · 故障: " + ", ".join(
            f"{esc(c['camera'])} ({esc('、'.join(FAULT_NAMES.get(f, f) for f in c['faults']))})" for c in faulty)
    outbox = "" if v["outbox_pending"] is None else f"{v['outbox_pending']} 条"
    if v["outbox_pending"]:
        if v["outbox_oldest_known"] is False:  # queued before the box's start, its clock plainly wrong then or now
            outbox += f", 最早的已等至少 {esc(span_text(v['outbox_oldest_s']))} (时钟有误, 确切时长未知)"
        else:
            outbox += f", 最早的已等 {esc(span_text(v['outbox_oldest_s']))}"
    if v["outbox_held"]:  # within the pending: they go once an acknowledgement tells the box the time
        outbox += f", 其中 {v['outbox_held']} 条等待校时"
    if v["outbox_unwritten"]:
        outbox += f", 另有 {v['outbox_unwritten']} 条未能写入"
    if v["outbox_write_error"]:
        outbox += f" <span class=flag>无法写入: {esc(v['outbox_write_error'])}</span>"
    offset = v["clock_offset_s"]
    if offset is None:
        clock = "未知"
    else:  # the gateways' clock less the box's: below zero, the box is ahead
        clock = "一致" if abs(offset) < 1 else f"{'快' if offset < 0 else '慢'} {esc(span_text(offset))}"
        if v["clock_offset_by"] == "gateway":
            clock += " (网关测得)"
        if v["clock_off"]:
            clock = f"<span class=flag>{clock}, 超过 {esc(span_text(wire.MAX_CLOCK_SKEW_S))}</span>"
        if v["clock_corrected"]:
            clock += " · 已改用网关时间"
    remove = (f"<td><form method=get action='/ui/boxes/{esc(v['box'])}/remove' class=remove>"
              f"<button id='remove-{esc(v['box'])}'>移除</button></form></td>") if removable else ""
    return (f"<tr data-box='{esc(v['box'])}'><td class=said>{esc(v['box'])}<br><small>{box_grids(v, tables)}</small>"
            "</td>"
            f"<td class=said>{state}</td><td>{heard}</td>"
            f"<td class=said>{cameras}</td><td class=said>{outbox}</td><td>{clock}</td>{remove}</tr>")


def removes_boxes(who: Principal) -> bool:
    """Whether ``who`` may remove a box (``boxes.REMOVERS``): a signed-in admin, never public reading."""
    return who is not PUBLIC and who.role in boxes.REMOVERS


def box_views(request: Request, principal: Principal = Depends(page_reader)) -> tuple[float, list[dict]]:
    """The gateways' time and the boxes as ``boxes.listed`` gives them then to ``principal`` (an operator those with
    a camera in its grid subtree, an admin all), read once a request (FastAPI keeps a dependency's answer for the
    request: the page's table and its head share it, and the live fingerprint is scoped as the page)."""
    if principal.role not in boxes.READERS:
        raise HTTPException(403, "the boxes page is for operators and admins")
    return boxes.listed(request.app.state.store, scope(principal, request.app.state.tables).get("grids"))


def boxes_listing(request: Request, shown: tuple[float, list[dict]] = Depends(box_views),
                  principal: Principal = Depends(page_reader)) -> str:
    """What ``/ui/boxes`` shows of the boxes (its table), the troubled first, with a remove button each for an
    admin; its live fingerprint is made of the same, so the page follows a heartbeat, a box turning silent, one
    coming back and one removed without a reload."""
    now, views = shown
    removable = removes_boxes(principal)
    none = (f"网格 {esc(grid_text(request.app.state.tables, principal.grid))} 及其下级网格内尚无边缘盒子的摄像机。"
            if principal.role == Role.OPERATOR else "尚未收到任何边缘盒子的心跳。")
    rows = "".join(box_row(v, now, request.app.state.tables, removable) for v in views) or (
        f"<tr><td colspan={7 if removable else 6}>{none}</td></tr>")
    return ("<table id=boxes><tr><th>盒子</th><th>状态</th><th>最后心跳</th><th>摄像机 (在线/总数)</th>"
            f"<th>待发消息</th><th>时钟偏差</th>{'<th>移除</th>' if removable else ''}</tr>" + rows + "</table>")


def removal_outcome(request: Request) -> str:
    """What the last removal did, from the redirect's query (``removed=`` or ``missing=``, a box's id). Only a box's
    id is shown (``wire.IDENT``): the query is anyone's to write, and a link to ``?removed=<any words>`` put those
    words in the gateway's own green line (``已移除边缘盒子 全部盒子。请访问 ...``), a right-to-left override reversing
    the rest of it."""
    q = request.query_params
    removed, missing = (q.get(k, "") for k in ("removed", "missing"))
    if wire.IDENT.fullmatch(removed):
        return f"<p id=outcome class=done>已移除边缘盒子 {esc(removed)}。它若再发来心跳, 将重新列出。</p>"
    if wire.IDENT.fullmatch(missing):
        return f"<p id=outcome class=failed>未能移除: 列表中没有边缘盒子 {esc(missing)} (可能刚被他人移除)。</p>"
    return ""


@web_router.get("/boxes", response_class=HTMLResponse)
def boxes_page(request: Request, listing: str = Depends(boxes_listing),
               shown: tuple[float, list[dict]] = Depends(box_views), principal: Principal = Depends(page_reader)):
    """The edge boxes as their latest heartbeats tell them (``gateway.boxes``), the troubled first: when each was
    last heard (silent after 3 of its heartbeat intervals), its cameras up and those down, its outbox, its clock
    against the gateways'; with the gateway's own time. For operators and admins (as the dead letters); an admin
    removes a retired box (``removes_boxes``)."""
    now, views = shown
    head = (f"<p id=gateway-time>网关时间 {esc(local_time(now, seconds=True))} · 盒子 {len(views)} 台 · "
            f"失联 {sum(v['silent'] for v in views)} 台 · 时钟偏差超过 {esc(span_text(wire.MAX_CLOCK_SKEW_S))} "
            f"{sum(v['clock_off'] for v in views)} 台</p><p>超过 {boxes.SILENT_AFTER} 个心跳周期没有收到心跳的盒子为失联; "
            "时钟偏差以网关时间为准: 盒子时钟快于网关超过 "
            f"{esc(span_text(wire.MAX_CLOCK_SKEW_S))}, 其事件暂缓受理, 直至盒子改用网关时间。</p>")
    if principal.role == Role.OPERATOR:
        head += (f"<p id=box-scope>只列出有摄像机在网格 {esc(grid_text(request.app.state.tables, principal.grid))} "
                 "及其下级网格内的盒子, 摄像机也只列出这些; 心跳未注明网格的盒子 (软件较旧) 只列给管理员。</p>")
    return page("边缘盒子", removal_outcome(request) + head + listing, principal, live=True)
