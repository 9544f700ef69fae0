"""The workbench: where people act on cases in the page. The case page with a button for exactly
the actions the state machine allows this principal now, each a form applied through
``actions.act`` (the API's own code); for operators on a machine-made case, the verdict form and
the case's suppression with its lift button (``verdicts.judge`` and ``verdicts.lift``, as the
API's routes); a department's queue (吹哨报到) with its on-site photo; an admin's removal of an
edge box, asked first; and the live case list's script and the cheap endpoint it polls.

Every form that changes a case carries the session's CSRF token (``auth.csrf_token``) and is
refused with 403 without it. After an action the page goes back to the case (303), saying in
Chinese what was done or why it was not.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from gateway import actions, boxes, storage, verdicts
from gateway.auth import (CSRF_FIELD, PUBLIC, Principal, check_csrf, count_found, csrf_token, find_cases, may_see,
                          page_reader, removed, scope, seen_cases)
from gateway.config import Tables
from gateway.images import MAX_PHOTO_BYTES, MAX_PHOTO_PIXELS, ImageError, check_jpeg, without_metadata
from gateway.presentation import (ACTION_NAMES, END_REASONS, HOW_NAMES, MAX_ID, STATE_NAMES, VERDICT_NAMES, BoxId,
                                  CaseId, Filter, Limit, Offset, actor_text, as_read, case_words, duration_text,
                                  end_kind, end_label, evidence_url, local_text, local_time, named_cases, note_hidden,
                                  note_text, photo_url, reused_photos)
from gateway.security import read_capped
from gateway.web import (PAGE_ROWS, REDISPATCH_MARK, PageRoute, boxes_listing, case_rows, cases_listing,
                         department_choices, esc, figure, grid_text, overdue_listing, page, pager, removes_boxes,
                         unknown_filter_note, unrouted, visible)
from gateway.workflow import OPEN_STATES, TRANSITIONS, UNDISPATCHED, Action, CaseState, Role, TransitionError, role_refused

workbench_router = APIRouter(prefix="/ui", tags=["operators' page"], include_in_schema=False, route_class=PageRoute)
# a note of 2,000 characters as a browser sends it, each percent-encoded UTF-8: 9 bytes a Chinese character, 12 an
# emoji (24,000 bytes), and the rest of the form (8 kB refused a Chinese note of more than about 900 characters)
MAX_FORM_BYTES = 32768
MAX_UPLOAD_BYTES = MAX_PHOTO_BYTES + 16384  # the photo and its multipart envelope
EXTENSIONS = ("2h", "4h", "1 working day", "3 working days", "5 working days")  # what a form offers to extend by
DONE = "已完成: {}"
CLOSED_PHOTO = "照片未上传: 案件已结案, 不再收照片; 问题若再次出现, 由指挥中心重新打开案件后再上传。"
FAILED = {  # why an action from a page was not done, as people read it
    "state": "未能{action}: 案件当前为「{state}」, 现在不能这样操作 (可能刚被他人处理), 请查看最新状态。",
    "seen": "未能{action}: 摄像机仍在报告此问题, 未结案 (见「办理」处的说明); 摄像机看到问题消失后案件自动结案, "
            "或选择「核查未通过」退回部门。",
    "stale": "未能{action}: 您打开本页后案件已有变动 (当前为「{state}」, 可能刚被他人处理, 或同一表单提交了两次), 未执行; "
             "请查看下面的最新状态和流转记录, 需要时再操作。",
    "invalid": "未能{action}: 填写的内容有误 (部门、延期时长或说明), 请检查后重试。",
    # the page cannot show what it refused: a zero-width space pasted from a chat looks like nothing at all
    "hidden": "未能{action}: 说明中有看不见的控制字符或格式字符 (常随复制的文字带入), 请删去说明重新输入后再试。",
    "not_jpeg": "照片未上传: 文件不是可以打开的 JPEG 图片。",
    # a worker's phone sends these as its photo (images.ImageError's kinds): each says what to change on the phone
    "heic": "照片未上传: 这是 HEIC/HEIF 格式的照片 (苹果等手机的「高效」格式), 系统只收 JPEG。请在手机「设置 > 相机 > "
            "格式」中选「兼容性最佳」(兼容格式) 后重拍, 或把照片转存为 JPEG 再上传。",
    "other_picture": "照片未上传: 这是 PNG、WebP 或 GIF 等格式的图片 (如截图), 不是 JPEG; 请上传相机拍的 JPEG 照片, "
                     "或转存为 JPEG 再上传。",
    "too_many_pixels": f"照片未上传: 照片像素过多 (最多 {MAX_PHOTO_PIXELS // 10_000:,} 万像素); 请用相机的普通分辨率"
                       "重拍 (不用 5000 万、1 亿像素模式), 或缩小后再上传。",
    "no_photo": "照片未上传: 请先选择一张 JPEG 照片。",
    "closed": CLOSED_PHOTO,
    "verdict": "未能提交研判: 填写的内容有误 (类型错误须选正确类型, 重复须填另一案件编号, 只有误报和重复可同时作废), "
               "请检查后重试。",
    "lifted": "未能解除屏蔽: 该屏蔽已不在生效 (可能刚被他人解除), 请查看最新状态。",
}
JUDGES = (Role.OPERATOR, Role.ADMIN)  # who records verdicts and lifts suppressions (as the API's ``judge``)
ANSWERS = (Action.APPROVE_EXTENSION, Action.REFUSE_EXTENSION)  # offered only while a department's request waits
LIVE_JS = Path(__file__).resolve().parent / "static" / "live.js"


def allowed_actions(case: dict, who: Principal) -> list[Action]:
    """The actions ``who`` may take on ``case`` now, in the table's order (none for public reading).

    >>> allowed_actions({"state": "dispatched"}, Principal("tp", Role.DEPARTMENT, "traffic-police"))
    [<Action.ACKNOWLEDGE: 'acknowledge'>, <Action.FEEDBACK: 'feedback'>, <Action.RETURN: 'return'>, <Action.REQUEST_EXTENSION: 'request_extension'>]
    """
    if who is PUBLIC:
        return []
    return [a for a, (sources, _, roles) in TRANSITIONS.items() if case["state"] in sources and who.role in roles
            and (a not in ANSWERS or case.get("extension_request"))]


def action_form(case: dict, action: Action, csrf: str, departments: list[tuple[str, str]]) -> str:
    extra = ""
    if action == Action.REDISPATCH:
        options = "".join(f"<option value='{esc(d)}' {'selected' if d == case['department'] else ''}>{esc(n)}</option>"
                          for d, n in departments)
        extra = f"<label>改派部门 <select name=department>{options}</select></label>"
    if action in (Action.EXTEND, Action.REQUEST_EXTENSION):
        options = "".join(f"<option value='{esc(v)}'>{esc(duration_text(v))}</option>" for v in EXTENSIONS)
        extra = f"<label>延期 <select name=extend_by>{options}</select></label>"
    return (f"<form method=post action='/ui/cases/{case['id']}/actions' class=act data-action={action.value}>"
            f"<input type=hidden name={CSRF_FIELD} value='{esc(csrf)}'><input type=hidden name=action value={action.value}>"
            f"<input type=hidden name=seen value={actions.version(case)}>"
            f"<button id='act-{action.value}'>{esc(ACTION_NAMES[action.value])}</button>"
            f"{extra}<input name=note maxlength=2000 size=40 placeholder='说明 (可选)'></form>")


def photo_form(case_id: int, csrf: str) -> str:
    return (f"<form method=post action='/ui/cases/{case_id}/photos' enctype=multipart/form-data id=photo-form>"
            f"<input type=hidden name={CSRF_FIELD} value='{esc(csrf)}'>"
            f"<label>现场照片 (JPEG, 最大 {MAX_PHOTO_BYTES // 1_000_000} MB) <input type=file name=photo accept='image/jpeg'>"
            "</label> <button>上传照片</button></form>")


def verdict_form(case: dict, csrf: str, categories: list[tuple[str, str]]) -> str:
    """What an operator says the machine-made case was (``verdicts.Verdict``), on the case the page shows (``seen``,
    as the action forms: a 误报 said of a case pending review is not kept on one since dispatched)."""
    case_id = case["id"]
    kinds = "".join(f"<option value='{v.value}'>{esc(VERDICT_NAMES[v.value])}</option>" for v in verdicts.Verdict)
    types = "".join(f"<option value='{esc(t)}'>{esc(n)}</option>" for t, n in categories)
    return (f"<form method=post action='/ui/cases/{case_id}/verdict' id=verdict-form>"
            f"<input type=hidden name={CSRF_FIELD} value='{esc(csrf)}'>"
            f"<input type=hidden name=seen value={actions.version(case)}>"
            f"<label>研判 <select name=verdict>{kinds}</select></label> "
            f"<label>正确类型 <select name=right_type><option value=''>(类型错误时选择)</option>{types}</select></label> "
            f"<label>重复于案件 # <input name=duplicate_of type=number min=1 max={MAX_ID} size=6></label> "
            "<label><input type=checkbox name=reject value=1> 同时作废 (误报、重复)</label> "
            "<input name=note maxlength=2000 size=30 placeholder='说明 (可选)'> <button id=verdict-submit>提交研判</button></form>")


def suppression_rows(case_id: int, rows: list[dict], csrf: str, tables: Tables) -> str:
    """The suppressions this case's false alarm made, each with its lift button."""
    def one(r: dict) -> str:
        category = tables.category(r["type"])
        return (f"<li data-suppression={r['id']}>屏蔽 #{r['id']}: 摄像机 {esc(r['camera'])} · 区域 {esc(r['zone'])} · "
                f"{esc(category.name if category else r['type'])} · 范围 {esc(r['bbox'])} · "
                f"{esc(local_time(r['created_at']))} {esc(actor_text(r['created_by'], ''))}"
                f"<form method=post action='/ui/cases/{case_id}/suppressions/{r['id']}/lift' class=lift>"
                f"<input type=hidden name={CSRF_FIELD} value='{esc(csrf)}'>"
                f"<button id='lift-{r['id']}'>解除屏蔽</button></form></li>")
    return f"<ul id=suppressions>{''.join(one(r) for r in rows)}</ul>" if rows else "<p id=suppressions>无屏蔽。</p>"


def outcome(request: Request, state: str) -> str:
    """What the last form did, from the redirect's query (``done=`` or ``failed=`` and ``why=``)."""
    q = request.query_params
    if q.get("done"):
        what = {"photo": "上传现场照片", "verdict": f"人工研判 ({VERDICT_NAMES.get(q.get('verdict', ''), '')})"}.get(
            q["done"], ACTION_NAMES.get(q["done"], ""))
        return f"<p id=outcome class=done>{esc(DONE.format(what))}</p>"
    if q.get("failed") and q.get("why") in FAILED:
        action = {"verdict": "提交研判"}.get(q["failed"]) or ACTION_NAMES.get(q["failed"], "操作")
        text = FAILED[q["why"]].format(action=action, state=STATE_NAMES.get(state, state))
        return f"<p id=outcome class=failed>{esc(text)}</p>"
    return ""


@workbench_router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(case_id: CaseId, request: Request, principal: Principal = Depends(page_reader)):
    c, tables, store = visible(case_id, request, principal), request.app.state.tables, request.app.state.store

    def pair(start_url: str | None, end_url: str | None, why: str | None) -> str:  # found and ended, side by side
        return ("<div class=pair>" + (figure("发现", start_url) if start_url else "")
                + (figure(end_label(why), end_url) if end_url else "") + "</div>")

    incidents = "".join(
        f"<section class=incident data-incident='{esc(i['incident_id'])}'><h3>事件 {esc(i['incident_id'])} · "
        f"{esc(HOW_NAMES.get(i['how'], i['how']))} · {esc(local_time(i['linked_at']))}</h3>"
        + (f"<p class=reason>摄像机报告的原因: {esc(i['reason'])}</p>" if i["reason"] else "")
        + pair(i["evidence_sha256"] and evidence_url(case_id, i["incident_id"], prefix="/ui"),
               i["end_evidence_sha256"] and evidence_url(case_id, i["incident_id"], "end", prefix="/ui"),
               i.get("end_reason"))
        + "</section>" for i in c["incidents"])
    # another case a note names is named (a photo's, linked) to one who may see it; to others it is 另一案件
    read = as_read(c["timeline"], seen_cases(store, tables, principal, named_cases(c["timeline"])))
    reused = reused_photos(read)
    photos = "".join(figure("现场照片" + (f" · 与{case_words(reused[e['note']])} 的照片为同一张图片"
                                        if e["note"] in reused else ""), photo_url(case_id, e["note"], prefix="/ui"))
                     for e in read if e["action"] == "photo")
    doubts = "; ".join(f"现场照片与{reused_link(m)} {esc(local_text(m['at']))} 的照片为同一张图片" for m in reused.values())
    timeline = "".join(f"<tr><td>{esc(local_time(e['at']))}</td><td>{esc(actor_text(e['actor'], e['role']))}</td>"
                       f"<td>{esc(ACTION_NAMES.get(e['action'], e['action']))}</td>"
                       f"<td>{esc(STATE_NAMES.get(e['to_state'] or '', e['to_state']))}</td>"
                       f"<td>{esc(note_text(e, tables))}</td></tr>"
                       for e in read)
    ended = f"{END_REASONS.get(c['end_reason'], c['end_reason'])} {local_time(c['ended_at'])}" if c["end_reason"] else ""
    # a re-check is the camera seeing it gone; a box stopped or a camera lost saw nothing of the kind
    ended_as = end_kind(c["end_reason"])  # the fact names the reason itself
    facts = "".join(f"<tr><th>{k}</th><td>{v if k == '照片存疑' else esc(v)}</td></tr>" for k, v in (
        ("类别", f"{c['category_name']} ({c['category_code']}){' · 紧急' if c['urgent'] else ''}"),
        ("网格", grid_text(tables, c["grid"])),
        ("部门", tables.department_name(c["department"]) + (f" · {REDISPATCH_MARK}" if unrouted(c, tables) else "")),
        ("状态", STATE_NAMES.get(c["state"], c["state"])), ("发现时间", local_time(c["reported_at"])),
        ("派遣时间", local_time(c["dispatched_at"])), ("处置时限", local_time(c["deadline"])),
        ("核查时限", local_time(c["recheck_deadline"])), ("指挥中心时限", local_time(c.get("review_deadline"))),
        ("申请延期", duration_text(c["extension_request"])),
        ("督办级别", c["level"]), ("升级至", grid_text(tables, c["escalated_grid"])),
        ("点位", f"{c['box']}/{c['camera']}/{c['zone']}"), ("合并事件数", c["incident_count"]), (ended_as, ended),
        ("照片存疑", doubts),  # HTML, its parts escaped: a link to each other case the reader may see
        ("结案时间", local_time(c["closed_at"])), ("人工研判", verdict_text(verdicts.latest(store, [case_id]).get(case_id))))
        if v not in ("", None))
    csrf = csrf_token(request)
    work = ""
    if csrf and principal is not PUBLIC and removed(principal, tables):
        work = "<h2>办理</h2><p id=actions>本部门已不在本市部门表中: 可查看案件, 不能办理; 由指挥中心重新派遣。</p>"
    elif csrf and principal is not PUBLIC:
        departments = [(d.id, d.name) for d in tables.departments]
        offered = allowed_actions(c, principal)
        seen = actions.seen_now(store, c, time.time()) if Action.CLOSE in offered else []
        forms = "".join(action_form(c, a, csrf, departments) for a in offered if not (seen and a == Action.CLOSE))
        work = (f"<h2>办理</h2>{still_seen_note(seen, tables.category(c['type']))}"
                f"<div id=actions>{forms or '<p>当前没有可执行的操作。</p>'}</div>"
                + (f"<p id=photo-form>{esc(CLOSED_PHOTO.removeprefix('照片未上传: '))}</p>"
                   if actions.photo_refused(c, principal.role) else photo_form(case_id, csrf)))
        if principal.role in JUDGES and c["box"]:  # a machine-made case: what it was, and what it suppresses
            work += ("<h2>人工研判</h2>" + verdict_form(c, csrf, [(k.type, k.name) for k in tables.categories])
                     + suppression_rows(case_id, verdicts.listed(store, case_id=case_id), csrf, tables))
    return page(f"案件 #{case_id}", outcome(request, c["state"]) + f"<table id=facts>{facts}</table>{work}"
                f"<h2>事件与证据</h2>{incidents}{photos}"
                "<h2>流转记录</h2><table id=timeline><tr><th>时间</th><th>操作者</th><th>动作</th><th>状态</th>"
                f"<th>说明</th></tr>{timeline}</table>", principal)


def still_seen_note(seen: list[actions.OpenIncident], category) -> str:
    """What the case page says above its buttons while the camera still reports the problem (``actions.seen_now``):
    核查结案 is not offered then (``actions.close_refused``), and what to do instead."""
    if not seen:
        return ""
    first = seen[0]
    more = f" 等 {len(seen)} 个事件" if len(seen) > 1 else ""
    since = f", 自 {local_time(first.started_at)}" if first.started_at is not None else ""
    then = ("摄像机看到问题消失后案件自动结案" if category is None or category.auto_close
            else "摄像机看到问题消失后再核查结案")
    return (f"<p id=still-seen class=failed>摄像机仍在报告此问题 (事件 {esc(first.incident_id)}{more}{esc(since)}): "
            f"暂不能核查结案; {then}, 或选择「核查未通过」退回部门。</p>")


def reused_link(found: re.Match) -> str:
    """The other case a ``photo_reused`` row names (``presentation.reused_photos``), as a link to its page; 另一案件
    where the reader may not see it (``presentation.as_read``)."""
    return f"<a href='/ui/cases/{int(n)}'>案件 #{int(n)}</a>" if (n := found["case"]) else case_words(found)


def verdict_text(verdict: dict | None) -> str:
    return f"{VERDICT_NAMES[verdict['verdict']]} ({local_time(verdict['at'])})" if verdict else ""


def acting(principal: Principal, tables: Tables) -> Principal:
    """Only a signed-in person acts from a page (public reading changes nothing), and no department taken out of the
    tables (``auth.removed``)."""
    if principal is PUBLIC:
        raise HTTPException(403, "sign in to act on a case")
    if problem := removed(principal, tables):
        raise HTTPException(403, problem)
    return principal


def back(case_id: int, **query: str) -> RedirectResponse:
    return RedirectResponse(f"/ui/cases/{case_id}?{urlencode(query)}", 303)


async def read_form(request: Request, what: str) -> dict[str, str]:
    """A page's form (urlencoded, capped), after its CSRF token is checked (403 without it)."""
    raw = await read_capped(request, MAX_FORM_BYTES, what)
    form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}
    check_csrf(request, form.get(CSRF_FIELD))
    return form


def judging(principal: Principal, tables: Tables) -> Principal:
    who = acting(principal, tables)
    if who.role not in JUDGES:
        raise HTTPException(403, "verdicts and suppressions are for operators and admins")
    return who


@workbench_router.post("/cases/{case_id}/actions")
async def act_in_page(case_id: CaseId, request: Request, principal: Principal = Depends(page_reader)):
    """One action from the case page's form (``action``, ``note``, ``department``, ``extend_by``)."""
    who = acting(principal, request.app.state.tables)
    form = await read_form(request, "the action form")
    name = form.get("action", "")
    try:
        action = Action(name)
    except ValueError:
        return back(case_id, failed="action", why="invalid")
    if why := role_refused(who.role, action):  # none of its buttons: a form edited, not a case that moved on
        raise HTTPException(403, why)
    note = form.get("note", "").strip() or None
    if note is not None and (len(note) > 2000 or note_hidden(note)):
        return back(case_id, failed=action.value, why="hidden" if note_hidden(note) else "invalid")
    store, tables = request.app.state.store, request.app.state.tables
    try:
        await run_in_threadpool(actions.act, store, case_id, action, who.role, f"{who.role.value}:{who.name}",
                                time.time(), tables, lambda row: may_see(who, row, tables), note,
                                extend_by=form.get("extend_by") or None, department=form.get("department") or None,
                                seen={form["seen"]} if form.get("seen") else None)
    except actions.NotVisible as exc:
        raise HTTPException(404, str(exc)) from None
    except actions.StaleCase:  # the page showed another case than this: a person decides again on what it is now
        return back(case_id, failed=action.value, why="stale")
    except actions.StillSeen:
        return back(case_id, failed=action.value, why="seen")
    except (TransitionError, storage.ConflictError):
        return back(case_id, failed=action.value, why="state")
    except ValueError:
        return back(case_id, failed=action.value, why="invalid")
    request.app.state.on_change(case_id)
    return back(case_id, done=action.value)


@workbench_router.post("/cases/{case_id}/verdict")
async def verdict_in_page(case_id: CaseId, request: Request, principal: Principal = Depends(page_reader)):
    """The verdict form (``verdict``, ``right_type``, ``duplicate_of``, ``reject``, ``note``), applied
    by ``verdicts.judge`` as the API's verdict route; what the form leaves blank or does not use is
    not sent on (a wrong type's select and a duplicate's number are ignored for other verdicts)."""
    who = judging(principal, request.app.state.tables)
    form = await read_form(request, "the verdict form")
    try:
        verdict = verdicts.Verdict(form.get("verdict", ""))
        number = form.get("duplicate_of", "").strip()
        duplicate_of = int(number) if verdict == verdicts.Verdict.DUPLICATE and number.isdigit() else None
        if duplicate_of is not None and not 1 <= duplicate_of <= MAX_ID:
            raise ValueError(f"duplicate_of {duplicate_of} is no case number")
        note = form.get("note", "").strip() or None
        if note is not None and note_hidden(note):
            return back(case_id, failed="verdict", why="hidden")
        if note is not None and len(note) > 2000:
            raise ValueError("the note is over 2,000 characters")
        boxes = await run_in_threadpool(
            verdicts.judge, request.app.state.store, request.app.state.tables, case_id, verdict, who.role,
            f"{who.role.value}:{who.name}", time.time(), lambda row: may_see(who, row, request.app.state.tables),
            right_type=(form.get("right_type") or None) if verdict == verdicts.Verdict.WRONG_TYPE else None,
            duplicate_of=duplicate_of, note=note, reject=form.get("reject") == "1",
            seen={form["seen"]} if form.get("seen") else None)
    except actions.NotVisible as exc:
        raise HTTPException(404, str(exc)) from None
    except actions.StaleCase:  # the page showed another case than this: a person judges again what it is now
        return back(case_id, failed="verdict", why="stale")
    except (TransitionError, storage.ConflictError):
        return back(case_id, failed="reject", why="state")
    except ValueError:
        return back(case_id, failed="verdict", why="verdict")
    request.app.state.on_change(case_id)
    for box in boxes:
        request.app.state.on_suppressions(box)
    return back(case_id, done="verdict", verdict=verdict.value)


def lifts(case_id: int, suppression_id: int, request: Request, who: Principal) -> bool:
    """Whether ``suppression_id`` is one of the case's still in force, the case one ``who`` sees (404 if not)."""
    visible(case_id, request, who)
    return suppression_id in {r["id"] for r in verdicts.listed(request.app.state.store, case_id=case_id)}


@workbench_router.post("/cases/{case_id}/suppressions/{suppression_id}/lift")
async def lift_in_page(case_id: CaseId, suppression_id: CaseId, request: Request,
                       principal: Principal = Depends(page_reader)):
    """The lift button beside a case's suppression (``verdicts.lift``, as the API's lift route)."""
    who = judging(principal, request.app.state.tables)
    await read_form(request, "the lift form")
    if not await run_in_threadpool(lifts, case_id, suppression_id, request, who):
        return back(case_id, failed="suppression_lifted", why="lifted")  # not this case's, or lifted already
    row = await run_in_threadpool(verdicts.lift, request.app.state.store, suppression_id,
                                  f"{who.role.value}:{who.name}", who.role, time.time(),
                                  scope(who, request.app.state.tables).get("grids"))
    if row is None:
        return back(case_id, failed="suppression_lifted", why="lifted")
    request.app.state.on_suppressions(row["box"])
    if row["case_id"] is not None:
        request.app.state.on_change(row["case_id"])
    return back(case_id, done="suppression_lifted")


MAX_FORM_PARTS = 16  # the photo form has two (csrf, photo); the parser spends ~0.1 ms of CPU on each part
# a part's headers, at most: a browser's are its Content-Disposition (the field's and the file's name: 300 Chinese
# characters are 900 bytes) and a Content-Type; the parser's cost grows faster than their length (1.5 MB of
# Content-Disposition parameters took 43 s of CPU, under the GIL)
MAX_PART_HEAD = 4096


class FormRefused(ValueError):
    """A multipart form the photo route does not parse: ``status`` (413 or 422) and why."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def form_boundary(content_type: str) -> bytes | None:
    """The multipart boundary a Content-Type names, or None.

    >>> form_boundary('multipart/form-data; boundary="----x1"'), form_boundary("multipart/form-data")
    (b'----x1', None)
    """
    message = email.message.Message()
    message["Content-Type"] = content_type
    boundary = message.get_boundary()
    return boundary.encode("latin-1", "replace") if boundary else None


def delimiters(body: bytes, boundary: bytes) -> Iterator[re.Match]:
    """Each ``--boundary`` at a line's start in ``body``, as the standard library's parser takes a delimiter: after
    CR, LF or CRLF (not CRLF alone, as browsers send it), or at the start; found by a scan, nothing parsed. A few more
    than the parser's (it wants nothing else on the line), never fewer.

    >>> [m.start() for m in delimiters(b'--b\\r\\nA\\n--b\\rB\\r\\n--bc\\r\\n--b--', b"b")]
    [0, 7, 14, 20]
    """
    if body.startswith(b"--" + boundary):
        yield re.match(re.escape(b"--" + boundary), body)
    for m in re.finditer(rb"(?<=[\r\n])--" + re.escape(boundary), body):
        yield m


def first_part(body: bytes, boundary: bytes) -> bytes:
    """The body cut after its first part and closed: what the parser reads to check the form's CSRF
    token (its first field) before it reads the rest.

    >>> first_part(b'--b\\r\\nA\\r\\n--b\\r\\nB\\r\\n--b--\\r\\n', b"b")
    b'--b\\r\\nA\\r\\n--b--\\r\\n'
    >>> first_part(b'--b\\nA\\n--b\\nB\\n--b--\\n', b"b")  # LF alone: the parser's delimiters too
    b'--b\\nA\\n--b--\\r\\n'
    """
    found = [m for m, _ in zip(delimiters(body, boundary), range(2))]
    return body if len(found) < 2 else body[:found[1].start()] + b"--" + boundary + b"--\r\n"


def check_parts(body: bytes, boundary: bytes) -> None:
    """FormRefused unless the parser's cost on ``body`` is bounded: at most ``MAX_FORM_PARTS`` parts (413), the
    headers of each at most ``MAX_PART_HEAD`` bytes (413), and none a multipart or a message itself (422: the
    parser takes their parts and headers too, uncounted). A scan, and each part's headers parsed alone.

    >>> check_parts(b'--b\\r\\nContent-Disposition: form-data; name="a"\\r\\n\\r\\nx\\r\\n--b--\\r\\n', b"b")
    >>> check_parts(b'--b\\r\\nContent-Disposition: form-data; name="a"' + b"; a=b" * 1000 + b'\\r\\n\\r\\nx\\r\\n', b"b")
    Traceback (most recent call last):
    ...
    gateway.workbench.FormRefused: part 1 of the form has more than 4,096 bytes of headers
    """
    for n, m in enumerate(delimiters(body, boundary), start=1):
        if n > MAX_FORM_PARTS + 1:  # the closing delimiter is one more
            raise FormRefused(413, f"the photo form has at most {MAX_FORM_PARTS} parts; this one has more")
        if body.startswith(b"--", m.end()):  # the closing delimiter: what follows is not read
            continue
        window = body[m.end():m.end() + MAX_PART_HEAD + 2]
        lines = window.splitlines()  # the parser's lines: CR, LF or CRLF
        if "" not in (blank := [line.decode("latin-1") for line in lines[1:]]):  # no blank line: no end of headers
            if m.end() + len(window) < len(body):
                raise FormRefused(413, f"part {n} of the form has more than {MAX_PART_HEAD:,} bytes of headers")
            continue  # the body ends within its headers: the parser reads no more
        head = "\r\n".join(blank[:blank.index("")]).encode("latin-1")
        if len(head) > MAX_PART_HEAD:
            raise FormRefused(413, f"part {n} of the form has more than {MAX_PART_HEAD:,} bytes of headers")
        kind = email.parser.BytesHeaderParser(policy=email.policy.HTTP).parsebytes(head + b"\r\n\r\n")
        if kind.get_content_maintype() in ("multipart", "message"):
            raise FormRefused(422, f"part {n} of the form is a {kind.get_content_type()}; send each field as a "
                                   "part of the form itself")


def multipart_fields(content_type: str, body: bytes) -> dict[str, bytes]:
    """The fields of a multipart/form-data body by name (the standard library's MIME parser; the
    body was read with its cap already).

    >>> multipart_fields("multipart/form-data; boundary=b", b'--b\\r\\nContent-Disposition: form-data; name="csrf"'
    ...                  b'\\r\\n\\r\\nabc\\r\\n--b--\\r\\n')
    {'csrf': b'abc'}
    """
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields = {}
    if message.is_multipart():
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name and name not in fields:
                fields[name] = part.get_payload(decode=True) or b""
    return fields


@workbench_router.post("/cases/{case_id}/photos")
async def photo_in_page(case_id: CaseId, request: Request, principal: Principal = Depends(page_reader)):
    """An on-site photo from the case page (multipart: ``csrf`` first, as the form orders it and
    browsers send it, then ``photo``); the API's checks: who may add it before the body is read, 413
    past the cap as it streams, a JPEG that decodes. The standard library's parser costs about
    2 s of CPU per MB of tiny parts (under the GIL: ingest and every page wait), so the form's
    CSRF token is read from the first part alone and the parts are then counted (a scan for the
    boundary, milliseconds): another site's or a forged form costs nothing, a session's own at most
    ``MAX_FORM_PARTS`` parts."""
    who = acting(principal, request.app.state.tables)
    case = await run_in_threadpool(visible, case_id, request, who)
    if actions.photo_refused(case, who.role):  # who may add it, before the body is read
        return back(case_id, failed="photo", why="closed")
    content_type = request.headers.get("content-type", "")
    boundary = form_boundary(content_type)
    if not content_type.lower().startswith("multipart/form-data") or not boundary:
        raise HTTPException(422, "send the photo form as multipart/form-data")
    body = await read_capped(request, MAX_UPLOAD_BYTES, "a photo")
    try:
        first = await run_in_threadpool(first_part, body, boundary)  # a scan of 8 MB: 0.2 s, not on the event loop
        await run_in_threadpool(check_parts, first, boundary)
        check_csrf(request, (await run_in_threadpool(multipart_fields, content_type, first)).get(
            CSRF_FIELD, b"").decode("utf-8", "replace"))
        await run_in_threadpool(check_parts, body, boundary)
    except FormRefused as exc:
        raise HTTPException(exc.status, str(exc)) from None
    fields = await run_in_threadpool(multipart_fields, content_type, body)
    data = fields.get("photo", b"")
    if not data:
        return back(case_id, failed="photo", why="no_photo")
    if len(data) > MAX_PHOTO_BYTES:
        raise HTTPException(413, f"a photo may be at most {MAX_PHOTO_BYTES:,} bytes")
    try:
        await run_in_threadpool(check_jpeg, data)
    except ImageError as exc:
        return back(case_id, failed="photo", why=exc.kind)
    data = await run_in_threadpool(without_metadata, data)
    tables = request.app.state.tables
    try:
        await run_in_threadpool(actions.keep_photo, request.app.state.store, case_id, who.role,
                                f"{who.role.value}:{who.name}", data, time.time(),
                                lambda row: may_see(who, row, tables))
    except actions.NotVisible as exc:  # no longer its case: redispatched while the photo came
        raise HTTPException(404, str(exc)) from None
    except actions.CaseClosed:  # closed while the photo came
        return back(case_id, failed="photo", why="closed")
    request.app.state.on_change(case_id)
    return back(case_id, done="photo")


def queue_department(principal: Principal, department: str | None) -> str | None:
    """Whose queue: a department's own, for others the one they picked (None: every department's)."""
    return principal.department if principal.role == Role.DEPARTMENT else (department or None)


def queue_filter_note(request: Request, department: Filter = None, principal: Principal = Depends(page_reader)) -> str:
    """``unknown_filter_note`` of the department others pick for ``/ui/queue`` (a department's own is its queue)."""
    return "" if principal.role == Role.DEPARTMENT else unknown_filter_note(request, principal, department=department)


def queue_listing(request: Request, department: Filter = None, offset: Offset = 0, limit: Limit = PAGE_ROWS,
                  principal: Principal = Depends(page_reader), note: str = Depends(queue_filter_note)) -> str:
    """What ``/ui/queue`` shows: a department's open cases, overdue first (the most escalated first),
    then the nearest deadline (``storage.urgency_order``, in SQL: a page's limit cuts the least
    urgent), a page at a time; or why the department picked has none."""
    if note:
        return note
    store, tables, now = request.app.state.store, request.app.state.tables, time.time()
    mine = principal.role == Role.DEPARTMENT
    chosen = queue_department(principal, department)
    # a returned case waits for the centre to dispatch it again: on the centre's view, not the department's
    open_states = sorted(s.value for s in OPEN_STATES - UNDISPATCHED - ({CaseState.RETURNED} if mine else set()))
    rows = find_cases(store, tables, principal, department=chosen, states=open_states, urgent_at=now, limit=limit,
                      offset=offset)
    total = count_found(store, tables, principal, department=chosen, states=open_states)
    return case_rows(rows, tables) + pager(request, offset, limit, len(rows), total)


@workbench_router.get("/queue", response_class=HTMLResponse)
def queue_page(request: Request, department: Filter = None, listing: str = Depends(queue_listing),
               principal: Principal = Depends(page_reader), note: str = Depends(queue_filter_note)):
    """A department's queue (吹哨报到, ``queue_listing``); others pick a department."""
    tables = request.app.state.tables
    chosen = queue_department(principal, department)
    picker = ""
    if principal.role != Role.DEPARTMENT:
        options = "".join(f"<option value='{esc(d)}' {'selected' if d == chosen else ''}>{esc(name)}</option>"
                          for d, name in department_choices(tables))
        picker = (f"<form class=filters><label>部门 <select name=department><option value=''>全部</option>{options}"
                  "</select></label><button>查看</button></form>")
    title = f"{tables.department_name(chosen)} 待办" if chosen else "部门待办"
    return page(title, picker + listing, principal, 422 if note else 200, live=True)


# --- removing a box (admins): a retired box, listed as silent until then ---

def removing(principal: Principal) -> Principal:
    """Only a signed-in admin removes a box (``web.removes_boxes``)."""
    if not removes_boxes(principal):
        raise HTTPException(403, "only admins remove a box")
    return principal


def boxes_back(**query: str) -> RedirectResponse:
    return RedirectResponse(f"/ui/boxes?{urlencode(query)}", 303)


@workbench_router.get("/boxes/{box}/remove", response_class=HTMLResponse)
def remove_box_page(box: BoxId, request: Request, principal: Principal = Depends(page_reader)):
    """What removing ``box`` means, and the button that does it: the boxes page's remove button asks here first
    (a page, not a script's dialog: the CSP runs no inline script, and it asks without scripts too)."""
    removing(principal)
    found = boxes.kept(request.app.state.store, box)
    if found is None:
        return boxes_back(missing=box)
    heard = (f"最后心跳 {local_time(found['heard_at'], seconds=True)}" if found["heard_at"] is not None
             else "从未收到心跳")
    return page("移除边缘盒子",
                f"<p id=remove-what>确认从列表中移除边缘盒子 <strong>{esc(box)}</strong> ({esc(heard)})?</p>"
                "<p>移除只删去网关记下的盒子状态, 不影响盒子本身和已有案件; 它若再发来心跳, 将重新列出。</p>"
                f"<form method=post action='/ui/boxes/{esc(box)}/remove' id=remove-form>"
                f"<input type=hidden name={CSRF_FIELD} value='{esc(csrf_token(request))}'>"
                "<button id=remove-confirm>确认移除</button> <a href=/ui/boxes id=remove-cancel>取消</a></form>",
                principal)


@workbench_router.post("/boxes/{box}/remove")
async def remove_box_in_page(box: BoxId, request: Request, principal: Principal = Depends(page_reader)):
    """The confirmation's form: ``boxes.remove``, as the API's ``DELETE /boxes/{box}``; back to the boxes page,
    saying what was done."""
    who = removing(principal)
    await read_form(request, "the remove form")
    removed = await run_in_threadpool(boxes.remove, request.app.state.store, box, f"{who.role.value}:{who.name}")
    return boxes_back(**{"removed" if removed else "missing": box})


# --- the live case list ---
# Why a script and not <meta http-equiv=refresh>: a refresh reloads the whole page on a timer
# whether or not anything changed, flickers, loses the scroll and whatever is half-chosen in the
# filters. One small same-origin script (script-src 'self', no inline script: the CSP still
# refuses any injected one) asks a cheap endpoint every few seconds whether the list changed and
# swaps in the new table only then. Without scripts the list still works, by reloading.
# Each list page has its own fingerprint, of exactly what it shows (its listing, with its own
# order, page and filters): a fingerprint of the newest cases missed a change on page 2, on the
# overdue board and in the queue, and a case moving up the queue as its deadline passed.

@workbench_router.get("/live.js")
def live_script():
    return Response(LIVE_JS.read_bytes(), media_type="text/javascript", headers={"Cache-Control": "no-cache"})


def fingerprint(listing: str) -> PlainTextResponse:
    return PlainTextResponse(hashlib.sha256(listing.encode()).hexdigest()[:16])


@workbench_router.get("/live/cases", response_class=PlainTextResponse)
def live_cases(listing: str = Depends(cases_listing)):
    """The fingerprint of what ``/ui/cases`` with the same query shows."""
    return fingerprint(listing)


@workbench_router.get("/live/overdue", response_class=PlainTextResponse)
def live_overdue(listing: str = Depends(overdue_listing)):
    """The fingerprint of what ``/ui/overdue`` with the same query shows."""
    return fingerprint(listing)


@workbench_router.get("/live/boxes", response_class=PlainTextResponse)
def live_boxes(listing: str = Depends(boxes_listing)):
    """The fingerprint of what ``/ui/boxes`` shows."""
    return fingerprint(listing)


@workbench_router.get("/live/queue", response_class=PlainTextResponse)
def live_queue(listing: str = Depends(queue_listing)):
    """The fingerprint of what ``/ui/queue`` with the same query shows."""
    return fingerprint(listing)
