"""The operators' page: case list with filters, case page with evidence and timeline, overdue
board, a schematic map of cameras and open cases, and the daily report with its ranking.

Server-rendered HTML; every value from a message or a table is escaped. Everything a person
reads is in Chinese and in Beijing time (``gateway.presentation``: department and grid names from
the city's tables, states, actions and the gateway's own notes). The pages read with
the same scopes as the API, as the principal of a session: a token is exchanged once at
``/ui/login`` for an HttpOnly, SameSite=Strict cookie, so no token is ever in a URL, a link
or a log (with ``http.public_read`` everyone reads without signing in).
"""

from __future__ import annotations

import html
import time
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from gateway.auth import (SESSION_COOKIE, Principal, find_cases, hash_token, may_see, page_reader, scope,
                          session_principal, start_session, visible_case)
from gateway.cases import is_overdue
from gateway.config import Tables
from gateway.presentation import (ACTION_NAMES, END_REASONS, HOW_NAMES, STATE_NAMES, CaseId, Filter, IncidentId, Sha256,
                                  Which, actor_text, city_day, duration_text, evidence_url, incident_evidence_response,
                                  local_time, note_text, period, photo_response, photo_url)
from gateway.reports import summary
from gateway.security import read_capped
from gateway.workflow import CaseState

ERRORS = {  # what a person reads when a page cannot be shown
    404: ("没有找到", "案件或图片不存在, 或不在您的查看范围内。"),
    413: ("内容过大", "提交的内容超过了上限。"),
    422: ("请求有误", "请检查链接中的参数 (日期如 2026-12-05, 案件编号为数字)。"),
}


class PageRoute(APIRoute):
    """A page's errors are pages too: the person reads in Chinese what went wrong (the API's own
    words, for whoever supports them, folded away), not JSON."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as exc:
                if exc.status_code < 400 or exc.status_code == 401:
                    raise  # the way to the sign-in form
                return error_page(exc.status_code, str(exc.detail), session_principal(request))
            except RequestValidationError as exc:
                detail = "; ".join(str(e.get("msg")) for e in exc.errors())[:500]
                return error_page(422, detail, session_principal(request))

        return route


def error_page(status_code: int, detail: str, who: Principal | None) -> HTMLResponse:
    title, text = ERRORS.get(status_code, ("出错了", "请稍后再试。"))
    return page(title, f"<p>{esc(text)}</p><p><a href=/ui/cases>返回案件列表</a></p>"
                f"<details><summary>技术信息</summary><code>{esc(detail)}</code></details>", who, status_code)


web_router = APIRouter(prefix="/ui", tags=["operators' page"], include_in_schema=False, route_class=PageRoute)
STYLE = """
body{font-family:system-ui,"Noto Sans CJK SC",sans-serif;margin:0;background:#f4f6f8;color:#1d2733}
header{background:#1b3a5c;color:#fff;padding:10px 18px;display:flex;gap:18px;align-items:center}
header a{color:#fff;text-decoration:none}main{padding:14px 18px}
table{border-collapse:collapse;width:100%;background:#fff}td,th{padding:6px 8px;border-bottom:1px solid #dde3ea;text-align:left;font-size:14px}
.overdue{color:#b00020;font-weight:600}.urgent{color:#fff;background:#b00020;padding:0 4px;border-radius:3px}.badge{padding:2px 6px;border-radius:4px;background:#e3ecf6}
form.filters{display:flex;gap:8px;margin-bottom:10px;flex-wrap:wrap}img{max-width:640px;border:1px solid #ccd}
.bar{fill:#2f6ea5}.cam{fill:#2f6ea5}.case{fill:#d9480f}
"""


def pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def esc(value) -> str:
    return html.escape("" if value is None else str(value))


def page(title: str, body: str, who: Principal | None = None, status_code: int = 200) -> HTMLResponse:
    nav = "".join(f'<a href="/ui/{p}">{n}</a>' for p, n in
                  (("cases", "案件"), ("overdue", "超期督办"), ("map", "地图"), ("reports", "民情快报")))
    if who is not None and who.name != "public":
        nav += (f"<form method=post action=/ui/logout style='margin-left:auto'>{esc(who.name)} "
                "<button id=logout>退出</button></form>")
    return HTMLResponse(f"<!doctype html><html lang=zh><head><meta charset=utf-8><title>{esc(title)} · 雪亮</title>"
                        f"<style>{STYLE}</style></head><body><header><strong>雪亮 xueliang</strong>{nav}</header>"
                        f"<main><h1>{esc(title)}</h1>{body}</main></body></html>", status_code,
                        headers={"Cache-Control": "no-store"})


def grid_text(tables: Tables, code: str | None) -> str:
    """A grid as people read it: its name, and its code where the name is not the code."""
    if not code:
        return ""
    name = tables.grid_name(code)
    return name if name == code else f"{name} ({code})"


def case_rows(cases: list[dict], tables: Tables) -> str:
    now = time.time()
    rows = []
    for c in cases:
        overdue = is_overdue(c, now)
        rows.append(
            f"<tr class='{'overdue' if overdue else ''}'><td><a href='/ui/cases/{c['id']}'>#{c['id']}</a></td>"
            f"<td>{esc(c['category_name'])}{' <span class=urgent>紧急</span>' if c['urgent'] else ''}</td>"
            f"<td>{esc(grid_text(tables, c['grid']))}</td><td>{esc(tables.department_name(c['department']))}</td>"
            f"<td><span class=badge>{esc(STATE_NAMES.get(c['state'], c['state']))}</span></td>"
            f"<td>{esc(local_time(c['created_at']))}</td><td>{esc(local_time(c['deadline']))}</td>"
            f"<td>{esc(c['level'])}</td><td>{esc(c['camera'])}/{esc(c['zone'])}</td></tr>")
    return ("<table id=cases><tr><th>编号</th><th>类别</th><th>网格</th><th>部门</th><th>状态</th><th>立案时间</th>"
            "<th>处置时限</th><th>督办级别</th><th>点位</th></tr>" + "".join(rows) + "</table>")


LOGIN_FORM = ("<form method=post action=/ui/login id=login><input type=hidden name=next value='{next}'>"
              "<label>令牌 <input type=password name=token autocomplete=off required maxlength=200></label> "
              "<button>登录</button></form><p>{error}</p>")
MAX_FORM_BYTES = 4096


def local_page(target: str | None) -> str:
    """Where to go after signing in: one of these pages, never another site.

    >>> local_page("/ui/cases/3?state=closed"), local_page("//evil.example/ui/"), local_page(None)
    ('/ui/cases/3?state=closed', '/ui/cases', '/ui/cases')
    """
    if target and target.startswith("/ui/") and "\\" not in target and target.isprintable():
        return target
    return "/ui/cases"


@web_router.get("/login", response_class=HTMLResponse)
def login_page(next: str | None = None):  # noqa: A002 (the parameter's name in the URL)
    return page("登录", LOGIN_FORM.format(next=esc(local_page(next)), error=""))


@web_router.post("/login", response_class=HTMLResponse)
async def login(request: Request):
    """Exchange a token (form field ``token``) for a session cookie, once; then back to ``next``."""
    form = parse_qs((await read_capped(request, MAX_FORM_BYTES, "the sign-in form")).decode("utf-8", "replace"))
    target = local_page((form.get("next") or [None])[0])
    store, now = request.app.state.store, time.time()
    token = (form.get("token") or [""])[0]
    try:
        session, expires_at = start_session(store, token, now)
    except ValueError:
        return page("登录", LOGIN_FORM.format(next=esc(target), error=esc(f"登录失败: {sign_in_problem(store, token)}")),
                    status_code=401)
    response = RedirectResponse(target, 303)
    response.set_cookie(SESSION_COOKIE, session, max_age=int(expires_at - now), path="/ui", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


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
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        request.app.state.store.end_session(hash_token(cookie))
    response = RedirectResponse("/ui/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/ui", httponly=True, samesite="strict")
    return response


@web_router.get("/cases", response_class=HTMLResponse)
def cases_page(request: Request, state: CaseState | None = None, category: Filter = None, grid: Filter = None,
               department: Filter = None, overdue: bool = False, principal: Principal = Depends(page_reader)):
    state = state.value if state else None
    store, tables = request.app.state.store, request.app.state.tables
    rows = find_cases(store, tables, principal, state=state, grid=grid or None, department=department or None,
                      category=category or None, overdue_at=time.time() if overdue else None, limit=500)

    def select(name, label, options, current):
        opts = "".join(f"<option value='{esc(v)}' {'selected' if v == current else ''}>{esc(n)}</option>"
                       for v, n in [("", "全部")] + options)
        return f"<label>{label} <select name={name}>{opts}</select></label>"

    filters = (f"<form class=filters>{select('state', '状态', list(STATE_NAMES.items()), state)}"
               f"{select('category', '类别', [(c.type, c.name) for c in tables.categories], category)}"
               f"{select('department', '部门', [(d.id, d.name) for d in tables.departments], department)}"
               f"<label>网格编码 <input name=grid value='{esc(grid or '')}' placeholder='含下级网格'></label>"
               f"<label><input type=checkbox name=overdue value=true {'checked' if overdue else ''}> 只看超期</label>"
               "<button>筛选</button></form>")
    return page("案件列表", filters + case_rows(rows, tables), principal)


def visible(case_id: int, request: Request, principal: Principal) -> dict:
    return visible_case(request.app.state.store, request.app.state.tables, principal, case_id)


def figure(label: str, url: str) -> str:
    return f"<figure><img alt='{esc(label)}' src='{esc(url)}'><figcaption>{esc(label)}</figcaption></figure>"


@web_router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(case_id: CaseId, request: Request, principal: Principal = Depends(page_reader)):
    c, tables = visible(case_id, request, principal), request.app.state.tables
    incidents = "".join(
        f"<section class=incident data-incident='{esc(i['incident_id'])}'><h3>事件 {esc(i['incident_id'])} · "
        f"{esc(HOW_NAMES.get(i['how'], i['how']))} · {esc(local_time(i['linked_at']))}</h3>"
        + (figure("发现", evidence_url(case_id, i["incident_id"], prefix="/ui")) if i["evidence_sha256"] else "")
        + (figure("视频核查", evidence_url(case_id, i["incident_id"], "end", prefix="/ui"))
           if i["end_evidence_sha256"] else "")
        + "</section>" for i in c["incidents"])
    photos = "".join(figure("现场照片", photo_url(case_id, e["note"], prefix="/ui"))
                     for e in c["timeline"] if e["action"] == "photo")
    timeline = "".join(f"<tr><td>{esc(local_time(e['at']))}</td><td>{esc(actor_text(e['actor'], e['role']))}</td>"
                       f"<td>{esc(ACTION_NAMES.get(e['action'], e['action']))}</td>"
                       f"<td>{esc(STATE_NAMES.get(e['to_state'] or '', e['to_state']))}</td>"
                       f"<td>{esc(note_text(e, tables))}</td></tr>"
                       for e in c["timeline"])
    ended = f"{END_REASONS.get(c['end_reason'], c['end_reason'])} {local_time(c['ended_at'])}" if c["end_reason"] else ""
    facts = "".join(f"<tr><th>{k}</th><td>{esc(v)}</td></tr>" for k, v in (
        ("类别", f"{c['category_name']} ({c['category_code']}){' · 紧急' if c['urgent'] else ''}"),
        ("网格", grid_text(tables, c["grid"])), ("部门", tables.department_name(c["department"])),
        ("状态", STATE_NAMES.get(c["state"], c["state"])), ("发现时间", local_time(c["reported_at"])),
        ("派遣时间", local_time(c["dispatched_at"])), ("处置时限", local_time(c["deadline"])),
        ("核查时限", local_time(c["recheck_deadline"])), ("申请延期", duration_text(c["extension_request"])),
        ("督办级别", c["level"]), ("升级至", grid_text(tables, c["escalated_grid"])),
        ("点位", f"{c['box']}/{c['camera']}/{c['zone']}"), ("合并事件数", c["incident_count"]), ("视频核查", ended),
        ("结案时间", local_time(c["closed_at"]))) if v not in ("", None))
    return page(f"案件 #{case_id}", f"<table id=facts>{facts}</table><h2>事件与证据</h2>{incidents}{photos}"
                "<h2>流转记录</h2><table id=timeline><tr><th>时间</th><th>操作者</th><th>动作</th><th>状态</th>"
                f"<th>说明</th></tr>{timeline}</table>", principal)


@web_router.get("/cases/{case_id}/incidents/{incident_id}/evidence.jpg", response_class=Response)
def incident_evidence(case_id: CaseId, incident_id: IncidentId, request: Request, which: Which = "start",
                      principal: Principal = Depends(page_reader)):
    return incident_evidence_response(visible(case_id, request, principal), incident_id, which,
                                      request.app.state.store)


@web_router.get("/cases/{case_id}/photos/{sha256}.jpg", response_class=Response)
def case_photo(case_id: CaseId, sha256: Sha256, request: Request, principal: Principal = Depends(page_reader)):
    visible(case_id, request, principal)
    return photo_response(case_id, sha256, request.app.state.store)


@web_router.get("/overdue", response_class=HTMLResponse)
def overdue_page(request: Request, principal: Principal = Depends(page_reader)):
    s = scope(principal, request.app.state.tables)
    rows = request.app.state.store.list_cases(department=s.get("department"), grids=s.get("grids"),
                                              overdue_at=time.time(), limit=500, hidden_states=s.get("hidden_states"))
    rows.sort(key=lambda r: (-r["level"], r["deadline"]))
    return page("超期督办", case_rows(rows, request.app.state.tables), principal)


@web_router.get("/map", response_class=HTMLResponse)
def map_page(request: Request, principal: Principal = Depends(page_reader)):
    s = scope(principal, request.app.state.tables)
    rows = [r for r in request.app.state.store.list_cases(department=s.get("department"), grids=s.get("grids"), limit=1000,
                                                             hidden_states=s.get("hidden_states"))
            if r["lat"] is not None and r["lon"] is not None]
    if not rows:
        return page("点位地图", "<p>暂无带坐标的案件。</p>", principal)
    lats, lons = [r["lat"] for r in rows], [r["lon"] for r in rows]
    pad = 0.001

    def xy(lat, lon):
        x = 20 + 760 * (lon - min(lons) + pad) / (max(lons) - min(lons) + 2 * pad)
        y = 20 + 460 * (max(lats) + pad - lat) / (max(lats) - min(lats) + 2 * pad)
        return round(x, 1), round(y, 1)

    cams = {(r["box"], r["camera"]): xy(r["lat"], r["lon"]) for r in rows}
    dots = "".join(f"<circle class=cam cx={x} cy={y} r=5><title>{esc(b)}/{esc(c)}</title></circle>"
                   for (b, c), (x, y) in cams.items())
    open_ = [r for r in rows if r["state"] not in (CaseState.CLOSED.value, CaseState.REJECTED.value)]
    dots += "".join(f"<circle class=case cx={xy(r['lat'], r['lon'])[0] + 6} cy={xy(r['lat'], r['lon'])[1] - 6} r=4>"
                    f"<title>#{r['id']} {esc(r['category_name'])}</title></circle>" for r in open_)
    return page("点位地图", f"<svg id=map width=800 height=500 style='background:#fff'>{dots}</svg>"
                f"<p>蓝: 摄像机 {len(cams)} · 橙: 未结案件 {len(open_)}</p>", principal)


@web_router.get("/reports", response_class=HTMLResponse)
def reports_page(request: Request, date: Filter = None, principal: Principal = Depends(page_reader)):
    now = time.time()
    try:
        start, end = period("daily", date or None, now)
    except ValueError as exc:
        raise HTTPException(422, f"date {date!r}: {exc}") from None
    tables = request.app.state.tables
    rows = [r for r in request.app.state.store.cases_between(start, end) if may_see(principal, r, tables)]
    r = summary(rows, start, end, now)
    top = max([c["received"] for c in r["categories"]] + [1])
    bars = "".join(f"<text x=0 y={22 * i + 15}>{esc(c['category'])}</text>"
                   f"<rect class=bar x=160 y={22 * i + 3} width={round(400 * c['received'] / top)} height=16></rect>"
                   f"<text x={170 + round(400 * c['received'] / top)} y={22 * i + 15}>{c['received']}</text>"
                   for i, c in enumerate(r["categories"]))
    ranking = "".join(f"<tr><td>{d['rank']}</td><td>{esc(tables.department_name(d['department']))}</td>"
                      f"<td>{d['closed']}</td><td>{pct(d['on_time_rate'])}</td><td>{d['overdue']}</td></tr>"
                      for d in r["departments"])
    day = city_day(start).isoformat()
    picker = (f"<form class=filters><label>日期 <input type=date name=date value='{esc(day)}'></label>"
              "<button>查看</button></form>")
    head = picker + (f"<p>{esc(day)}: 受理 {r['received']} · 派遣 {r['dispatched']} · 结案 {r['closed']} · "
            f"按期率 {pct(r['on_time_rate'])} · 超期 {r['overdue']}</p>")
    return page("民情快报", head + f"<svg id=chart width=640 height={22 * len(r['categories']) + 10}>{bars}</svg>"
                "<h2>部门排名</h2><table id=ranking><tr><th>名次</th><th>部门</th><th>结案</th><th>按期率</th><th>超期</th></tr>"
                f"{ranking}</table>", principal)
