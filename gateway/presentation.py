"""What people and machines see of a case: one module for the HTTP API, the operators' pages,
Open311 and the MQTT notices (neither the API nor the pages import the other).

Machines read ISO 8601 UTC (``2026-12-05T02:30:00.000Z``) and the tables' ids; people read
Beijing time (``2026-12-05 10:30``) and Chinese: department and grid names from the city's
tables, states, actions and roles from the tables below.

>>> local_time(wire.parse_time("2026-12-05T02:30:00Z"))
'2026-12-05 10:30'
>>> ACTION_NAMES["request_extension"], STATE_NAMES["feedback"], duration_text("1 working day")
('申请延期', '已反馈', '1 个工作日')
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Collection
from datetime import date, datetime, timedelta
from typing import Annotated
from xml.etree import ElementTree

from fastapi import HTTPException, Path, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from gateway.cases import RECHECK_REASONS, is_overdue
from gateway.config import Tables
from gateway.deadlines import CITY_TZ, parse_service_level
from gateway.images import ImageError, check_scans, without_metadata
from gateway.metrics import found_damaged
from gateway.storage import DamagedPicture, Store
from gateway.workflow import Role
from xueliang import wire
from xueliang.characters import hidden

log = logging.getLogger(__name__)

# --- what the API and the pages take in a URL ---
MAX_ID = 2**31 - 1  # PostgreSQL's integer column; SQLite itself overflows past 2**63
CaseId = Annotated[int, Path(ge=1, le=MAX_ID, description="the case's number")]
# compiled: Python's engine (pydantic's own has no look-ahead, and the wire's id is not dots alone by one)
IncidentId = Annotated[str, Path(pattern=re.compile(f"^{wire.INCIDENT_ID.pattern}$"),
                                 description="an incident joined to the case")]
# a filter value: what a code in the city's tables can be, without control characters (NUL breaks PostgreSQL)
Filter = Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")]
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="cases skipped: the list pages' paging")]
Limit = Annotated[int, Query(ge=1, le=1000, description="cases a list page shows")]
Which = Annotated[str, Query(pattern="^(start|end)$", description="start: when it was found; end: the camera's re-check")]
Sha256 = Annotated[str, Path(pattern="^[0-9a-f]{64}$")]
BoxId = Annotated[str, Path(pattern=f"^{wire.IDENT.pattern}$", description="the box's id")]
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)  # reports cover this century
TOKEN_PARAMETERS = frozenset({"token", "access_token"})  # ``auth`` answers them: a token in a URL is not accepted


def query_checked(declared_only: bool, several: str = "") -> Callable[[Request], None]:
    """A router's dependency refusing (422, each parameter named) a query parameter given more than once, and with
    ``declared_only`` one its route does not take. FastAPI takes the last of ``limit=10&limit=20`` and leaves a name it
    does not know: ``state=dispatched&state=feedback`` listed the feedback cases alone, ``departmnet=sanitation`` or
    ``state[]=closed`` every case, each as though filtered. ``several``: what to write instead (Open311's lists)."""
    def check(request: Request) -> None:
        taken = _query_names(request.scope["route"].dependant)
        items = request.query_params.multi_items()
        problems = []
        for name in dict.fromkeys(k for k, _ in items):
            values = [v for k, v in items if k == name]
            if name in taken and len(values) > 1:
                problems.append({"type": "repeated", "loc": ("query", name), "input": values[-1][:200],
                                 "msg": f"given {len(values)} times; give it once{several}"})
            elif declared_only and name not in taken and name not in TOKEN_PARAMETERS:
                problems.append({"type": "unknown", "loc": ("query", name), "input": values[-1][:200],
                                 "msg": f"no parameter of {request.url.path}; it takes "
                                        f"{', '.join(sorted(taken)) or 'none'}"})
        if problems:
            raise RequestValidationError(problems[:20])
    return check


def _query_names(dependant: Dependant) -> set[str]:
    return {f.alias for f in dependant.query_params} | {n for d in dependant.dependencies for n in _query_names(d)}


def note_hidden(note: str) -> str:
    r"""A person's note's control and invisible formatting characters (``characters.hidden``) that the API and the pages
    refuse, line breaks and tabs aside (a note's own; a browser sends a text area's lines as CR LF): a right-to-left
    override (U+202E) reversed the rest of its row of the case's timeline, and made one person's words read as
    other words. "" for none.

    >>> note_hidden("已到场\r\n车已挪走\t12:00"), note_hidden("已到场\u202e00:21")
    ('', 'U+202E')
    """
    return hidden(note, keep="\r\n\t")

# --- Chinese for people: every state, action (the log-only ones too), role and end reason ---
STATE_NAMES = {
    "pending_review": "待审核", "dispatched": "已派遣", "handling": "处置中", "feedback": "已反馈",
    "closed": "已结案", "returned": "已回退", "ledger": "挂账", "rejected": "已作废",
}
LOG_ONLY_ACTIONS = {  # case-log rows that are no workflow.Action
    "created": "立案", "dispatched": "派遣", "merged": "合并事件", "recheck_evidence": "视频核查",
    "incident_ended": "事件结束", "photo": "现场照片", "flagged": "网格待核", "escalation_failed": "升级失败",
    "verdict": "人工研判", "suppression_lifted": "解除屏蔽", "related": "同址案件", "photo_reused": "照片重复",
    "still_open": "事件未结束",
}
ACTION_NAMES = {
    "confirm": "审核通过", "reject": "作废", "acknowledge": "签收", "feedback": "处置反馈", "close": "核查结案",
    "recheck_failed": "核查未通过", "return": "回退", "redispatch": "重新派遣", "ledger": "挂账",
    "reopen": "重新派遣(复发)", "extend": "延期", "escalate": "升级督办", "request_extension": "申请延期",
    "approve_extension": "批准延期", "refuse_extension": "驳回延期", **LOG_ONLY_ACTIONS,
}
ROLE_NAMES = {"system": "系统", "operator": "指挥中心", "department": "部门", "admin": "管理员"}
END_REASONS = {"left": "车辆已驶离", "cleared": "已清除", "stream_ended": "视频结束", "camera_lost": "摄像机失联",
               "box_stopped": "边缘盒子停止"}
HOW_NAMES = {"opened": "立案", "merged": "合并", "reopened": "复发"}
VERDICT_NAMES = {"correct": "研判属实", "false_alarm": "误报", "wrong_type": "类型错误", "wrong_place": "位置错误",
                 "duplicate": "重复"}
UNIT_NAMES = {"s": "秒", "min": "分钟", "h": "小时", "d": "天"}
# the boxes page: a box's state (silent: no heartbeat for 3 of its intervals), its cameras' states and faults
BOX_STATE_NAMES = {"online": "在线", "offline": "离线", "silent": "失联"}
CAMERA_STATE_NAMES = {"online": "在线", "connecting": "连接中", "reconnecting": "重连中", "offline": "离线"}
FAULT_NAMES = {"frozen": "画面冻结", "blocked": "镜头遮挡", "moved": "视角改变", "shifted": "视角偏移", "offline": "离线"}
WORKING_UNIT_NAMES = {"min": "个工作分钟", "h": "个工作小时", "d": "个工作日"}

# --- times ---
_ISO_IN_TEXT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)")


def end_kind(end_reason: str | None) -> str:
    """What an incident's end is called where its picture is shown: 视频核查 only where the camera saw the problem
    gone; a box stopped or a camera lost is an end (事件结束), its picture the problem as last seen, never a re-check."""
    return "视频核查" if end_reason in RECHECK_REASONS else "事件结束"


def end_label(end_reason: str | None) -> str:
    """``end_kind``, and the reason where the end is no re-check (a picture's caption).

    >>> end_label("left")
    '视频核查'
    >>> end_label("box_stopped")
    '事件结束 (边缘盒子停止)'
    """
    kind = end_kind(end_reason)
    if kind == "视频核查" or not end_reason:
        return kind
    return f"{kind} ({END_REASONS.get(end_reason, end_reason)})"


def iso(t: float | None) -> str | None:
    """A stored time for machines (ISO 8601 UTC); None for one no calendar can show (stored before
    times were checked)."""
    try:
        return wire.iso(t) if t is not None else None
    except wire.WireError:
        return None


def local_time(t: float | None, seconds: bool = False) -> str:
    """A stored time for people: Beijing time to the minute (or the second); empty when there is none."""
    try:
        return datetime.fromtimestamp(t, CITY_TZ).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else "")) \
            if t is not None else ""
    except (OverflowError, OSError, ValueError, TypeError):
        return ""


def span_text(seconds: float) -> str:
    """A length of time as people read it, in the largest unit that keeps it at 2 or more.

    >>> span_text(42.4), span_text(300), span_text(7300), span_text(3 * 86400)
    ('42 秒', '5 分钟', '2 小时', '3 天')
    """
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size:.0f} {UNIT_NAMES[unit]}"
    return f"{seconds:.0f} {UNIT_NAMES['s']}"


def city_day(t: float) -> date:
    """The city's calendar day of ``t``: reports and the case list count days in Beijing time."""
    return datetime.fromtimestamp(t, CITY_TZ).date()


def local_text(text: str | None) -> str:
    """``text`` with every ISO 8601 time in it shown in Beijing time.

    >>> local_text("camera: left at 2026-12-05T02:30:00.000Z")
    'camera: left at 2026-12-05 10:30'
    """
    def shown(m: re.Match) -> str:
        try:
            return local_time(wire.parse_time(m.group(0)))
        except wire.WireError:
            return m.group(0)
    return _ISO_IN_TEXT.sub(shown, text or "")


def duration_text(text: str | None) -> str:
    """A service level or extension as people read it (``2h`` -> ``2 小时``); as written if it is none."""
    try:
        level = parse_service_level(text or "")
    except ValueError:
        return text or ""
    amount = f"{level.amount:g}"
    return f"{amount} {(WORKING_UNIT_NAMES if level.working else UNIT_NAMES)[level.unit]}"


def period(kind: str, day: str | None, now: float) -> tuple[float, float]:
    """A report's [start, end) in epoch seconds: a city day, or the city week (Monday on) holding
    ``day``; ValueError for a day that is not YYYY-MM-DD in this century, or after today (``now``'s city day:
    a day not yet come showed today's overdue cases as its own).

    >>> start, end = period("daily", "2026-12-05", now=2e9)
    >>> iso(start), (end - start) / 3600
    ('2026-12-04T16:00:00.000Z', 24.0)
    >>> period("daily", "2026-12-06", now=start)
    Traceback (most recent call last):
    ...
    ValueError: date '2026-12-06' is after today (2026-12-05)
    """
    start_day = date.fromisoformat(day) if day else city_day(now)
    if not FIRST_DAY <= start_day <= LAST_DAY:
        raise ValueError(f"date {day!r} is outside {FIRST_DAY}..{LAST_DAY}")
    if start_day > city_day(now):
        raise ValueError(f"date {day!r} is after today ({city_day(now)})")
    if kind == "weekly":
        start_day -= timedelta(days=start_day.weekday())
    start = datetime(start_day.year, start_day.month, start_day.day, tzinfo=CITY_TZ).timestamp()
    return start, start + (7 if kind == "weekly" else 1) * 86400


# --- the case for machines (the API, notices) ---

def bbox(text: str) -> list[float]:
    """The stored box; empty when it cannot be shown as JSON (NaN, stored before numbers were checked)."""
    try:
        box = json.loads(text)
        return box if all(isinstance(v, int | float) and math.isfinite(v) for v in box) else []
    except (TypeError, ValueError):
        return []


def evidence_url(case_id: int, incident_id: str | None = None, which: str = "start", prefix: str = "") -> str:
    """Where a case's snapshot is served: the case's own (its first incident's), or one incident's.

    >>> evidence_url(3), evidence_url(3, "inc-2", "end", prefix="/ui")
    ('/cases/3/evidence.jpg', '/ui/cases/3/incidents/inc-2/evidence.jpg?which=end')
    """
    path = f"{prefix}/cases/{case_id}" + (f"/incidents/{incident_id}" if incident_id else "") + "/evidence.jpg"
    return path + ("?which=end" if which == "end" else "")


def photo_url(case_id: int, sha256: str, prefix: str = "") -> str:
    return f"{prefix}/cases/{case_id}/photos/{sha256}.jpg"


def case_view(row: dict, tables: Tables, now: float | None = None, shown: Collection[int] = frozenset()) -> dict:
    """A stored case as the API shows it: times in ISO 8601 UTC, the overdue flag, evidence URLs
    (the case's and each joined incident's), the names people call its department and grid; its timeline as read
    by a reader who may see the other cases ``shown`` (``as_read``)."""
    now = time.time() if now is None else now
    out = dict(row)
    for key in ("created_at", "dispatched_at", "deadline", "reported_at", "closed_at", "ended_at", "fed_back_at",
                "recheck_deadline", "review_deadline"):
        out[key] = iso(row.get(key))
    out["overdue"] = is_overdue(row, now)
    out["urgent"] = bool(row["urgent"])
    out["bbox"] = bbox(row["bbox"])
    out["department_name"] = tables.department_name(row["department"])
    out["grid_name"] = tables.grid_name(row["grid"])
    out["evidence_url"] = evidence_url(row["id"]) if row["evidence_sha256"] else None
    out["end_evidence_url"] = evidence_url(row["id"], which="end") if row["end_evidence_sha256"] else None
    if "timeline" in row:
        timeline = as_read(row["timeline"], shown)
        reused = reused_photos(timeline)
        out["timeline"] = [dict(e, at=iso(e["at"]), photo_url=photo_url(row["id"], e["note"])
                                if e["action"] == "photo" else None,
                                same_picture_as=reused_case(reused.get(e["note"]))
                                if e["action"] == "photo" else None) for e in timeline]
        out["incidents"] = [
            {"incident_id": i["incident_id"], "how": i["how"], "linked_at": iso(i["linked_at"]),
             "evidence_url": evidence_url(row["id"], i["incident_id"]) if i.get("evidence_sha256") else None,
             "end_evidence_url": evidence_url(row["id"], i["incident_id"], "end") if i.get("end_evidence_sha256")
             else None, "end_reason": i.get("end_reason"), "reason": i.get("reason")}
            for i in row["incidents"]]
    return out


# --- the images, as served to the API and the pages alike ---

def picture_response(data: bytes, what: str) -> Response:
    """Stored JPEG bytes as served; 410 for one of more than ``images.MAX_SCANS`` scans, kept before ingest
    counted them: every browser that shows it decodes each scan (minutes of an operator's CPU), so it is
    withheld, the reason named, as it would be refused today. Counting is a walk over the bytes, nothing
    decoded (a 4 MB snapshot: milliseconds)."""
    try:
        check_scans(data)
    except ImageError as exc:
        raise HTTPException(410, f"{what} is withheld: {exc}; it was kept before the gateway counted scans, "
                                 "and a browser would decode each one") from None
    return Response(data, media_type="image/jpeg")


def kept_picture(read: Callable[[], bytes | None]) -> bytes | None:
    """What ``read`` returns (a ``Store`` read of a picture); a picture damaged (``storage.DamagedPicture``) is a 500
    that says which and what to do, logged and counted once (``metrics.found_damaged``): the case and its other
    pictures are served as ever."""
    try:
        return read()
    except DamagedPicture as exc:
        if found_damaged(exc.sha256):
            log.error("%s", exc)
        raise HTTPException(500, str(exc)) from None


def evidence_response(row: dict, which: str, store: Store) -> Response:
    """A case's own snapshot (its first incident's), where one of its incidents shows those bytes (``row``
    from ``store.get_case``): a box that named another box's picture had it served as its case's."""
    key = "evidence_sha256" if which == "start" else "end_evidence_sha256"
    sha = row[key]
    data = kept_picture(lambda: store.evidence_bytes(sha)) if sha and any(i[key] == sha for i in row["incidents"]) \
        else None
    if data is None:
        raise HTTPException(404, f"case {row['id']}: {which} evidence has not arrived")
    return picture_response(data, f"case {row['id']}'s {which} evidence")


def incident_evidence_response(row: dict, incident_id: str, which: str, store: Store) -> Response:
    """The snapshot of one incident joined to the case ``row`` (from ``store.get_case``); 404 for an
    incident that is not this case's."""
    linked = next((i for i in row["incidents"] if i["incident_id"] == incident_id), None)
    if linked is None:
        raise HTTPException(404, f"case {row['id']} has no incident {incident_id}")
    sha = linked["evidence_sha256"] if which == "start" else linked["end_evidence_sha256"]
    data = kept_picture(lambda: store.evidence_bytes(sha)) if sha else None
    if data is None:
        raise HTTPException(404, f"case {row['id']}: incident {incident_id}'s {which} evidence has not arrived")
    return picture_response(data, f"case {row['id']}: incident {incident_id}'s {which} evidence")


def photo_response(case_id: int, sha256: str, store: Store) -> Response:
    """A photo added to a case, without what the phone wrote beside the picture (``images.without_metadata``: a
    photo kept before the gateway left it out is served as one kept now)."""
    data = kept_picture(lambda: store.photo_bytes(case_id, sha256))
    if data is None:
        raise HTTPException(404, f"case {case_id} has no photo {sha256}")
    return picture_response(without_metadata(data), f"case {case_id}'s photo {sha256}")


# --- the case for people (the pages) ---

def actor_text(actor: str, role: str) -> str:
    """Who did it, as people read it: ``department:tp`` -> ``部门 tp``; the gateway and its clock are 系统.

    >>> actor_text("box:demo-box", "system"), actor_text("clock", "system"), actor_text("operator:op1", "operator")
    ('摄像机 demo-box', '系统', '指挥中心 op1')
    """
    kind, _, name = actor.partition(":")
    if kind == "box":
        return f"摄像机 {name}"
    if not name:
        return ROLE_NAMES.get(role, role) if actor in ("gateway", "clock") else actor
    return f"{ROLE_NAMES.get(kind, kind)} {name}"


def _escalate_note(m: re.Match, tables: Tables) -> str:
    what = {"re-check": "核查时限", "review": "指挥中心时限"}.get(m["what"], "处置时限")
    return f"超期: {what} {local_text(m['at'])} 已过; 第 {m['level']} 级督办, 升级至 {tables.grid_name(m['to'])}"


def _verdict_note(m: re.Match, tables: Tables) -> str:
    """``wrong_type: garbage; box redrawn [...]; a person's words`` -> ``类型错误: 暴露垃圾; 重画框 [...]; ...``"""
    shown = VERDICT_NAMES.get(m["verdict"], m["verdict"])
    if m["detail"]:
        duplicate = re.fullmatch(f"of {naming()}", m["detail"])
        category = tables.category(m["detail"])
        shown += f": {case_words(duplicate)}" if duplicate else f": {category.name if category else m['detail']}"
    rest = (m["rest"] or "").replace("box redrawn ", "重画框 ", 1)
    return f"{shown}; {rest}" if rest else shown


def _late_note(m: re.Match, tables: Tables) -> str:
    clock = (f", 按盒子 {m['box']} 的时钟 (比网关{'慢' if m['way'] == 'behind' else '快'} {duration_text(m['off'])}, "
             "发现时间可能有误)") if m["box"] else ""
    return (f"事件 {m['iid']} 在摄像机发现 {duration_text(m['late'])} 后才送达 ({local_text(m['at'])}; 超过 "
            f"{duration_text(m['limit'])}){clock}: 提交审核, 未派遣")


def naming(sign: str = "") -> str:
    """The pattern of another case a note names: ``case 12`` (``case #12`` with ``sign``), its ``other`` group, or
    ``another case`` where its reader may not see it (``as_read``)."""
    return rf"(?P<other>case {re.escape(sign)}(?P<case>\d+)|another case)"


GATEWAY_WORDED = ("verdict", "suppression_lifted", "photo")  # rows whose note the gateway composes, whoever acted
# the notes the gateway itself writes, each as people read it; a person's note is shown as written
REUSED = re.compile(rf"photo (?P<sha>[0-9a-f]{{64}}) is the same picture as {naming('#')}'s photo of (?P<at>\S+)")
RELATED = [re.compile(rf"{naming()} opened at the same place for confirmed incident (?P<iid>\S+)"),
           re.compile(rf"{naming()} at the same place waits for review"),
           re.compile(rf"incident (?P<iid>\S+) at the same place waits for review in {naming()}; this case not reopened"),
           re.compile(rf"{naming()} at the same place closed recently; not reopened without review")]
DUPLICATE = re.compile(rf"duplicate: of {naming()}(?:; .*)?", re.S)  # a verdict's (``verdicts.verdict_note``)
# each note that names another case, by its row's action
NAMING: list[tuple[str, re.Pattern]] = [("photo_reused", REUSED), *(("related", p) for p in RELATED),
                                        ("verdict", DUPLICATE)]
_SYSTEM_NOTES: list[tuple[str, re.Pattern, Callable[[re.Match, Tables], str]]] = [
    ("created", re.compile(r"(?P<type>\w+) in zone (?P<zone>.+)"),
     lambda m, t: f"摄像机发现{(c := t.category(m['type'])) and c.name or m['type']} · 区域 {m['zone']}"),
    ("dispatched", re.compile(r"(?P<dept>[^ ]+)(?: .+)?"), lambda m, t: f"派往 {t.department_name(m['dept'])}"),
    ("merged", re.compile(r"incident (?P<iid>\S+) at the same place"), lambda m, t: f"同一地点的事件 {m['iid']} 并入本案"),
    ("merged", re.compile(r"incident (?P<iid>\S+): a lead the camera could not confirm, at the place of this rejected "
                          r"case; not raised for review again"),
     lambda m, t: f"同一地点未经确认的线索 {m['iid']} 并入本已作废案件, 不再提交审核"),
    ("reopen", re.compile(r"the problem came back: incident (?P<iid>\S+)"),
     lambda m, t: f"问题再次出现 (事件 {m['iid']}), 重新派遣"),
    ("recheck_evidence", re.compile(r"camera: (?P<why>\w+) at (?P<at>\S+)"),
     lambda m, t: f"摄像机核查: {END_REASONS.get(m['why'], m['why'])} ({local_text(m['at'])})"),
    ("incident_ended", re.compile(r"camera: (?P<why>\w+) for incident (?P<iid>\S+); still seen: (?P<still>.+)"),
     lambda m, t: f"摄像机: 事件 {m['iid']} {END_REASONS.get(m['why'], m['why'])}; 仍可见: {m['still']}"),
    ("close", re.compile(r"closed on the camera's re-check"), lambda m, t: "视频核查通过, 自动结案"),
    ("still_open", re.compile(r"closed while incident (?P<iid>\S+) was still open: its box (?P<box>\S+) not heard since "
                              r"(?P<at>\S+)"),
     lambda m, t: f"结案时事件 {m['iid']} 尚未结束: 其边缘盒子 {m['box']} 自 {local_text(m['at'])} 起失联, "
                  "摄像机的报告不作为核查依据"),
    ("photo_reused", REUSED,
     lambda m, t: f"该照片与{case_words(m)} {local_text(m['at'])} 的照片为同一张图片, 请核实是否到场"),
    ("escalate", re.compile(r"overdue: the (?P<what>deadline|re-check|review) passed at (?P<at>\S+); "
                            r"level (?P<level>\d+), to (?P<to>\S+)"), _escalate_note),
    ("flagged", re.compile(r"grid (?P<grid>\S+) is not in the city's grid tree: raised to the centre for review"),
     lambda m, t: f"网格 {m['grid']} 不在本市网格表中: 提交指挥中心审核"),
    ("flagged", re.compile(r"camera location \((?P<lat>\S+), (?P<lon>\S+)\) lies "
                           r"(?:in grid (?P<there>\S+)'s boundary, )?outside grid (?P<grid>\S+)'s: the case stays in its zone's grid"),
     lambda m, t: f"摄像机位置 ({m['lat']}, {m['lon']}) "
                  + (f"在网格 {t.grid_name(m['there'])} ({m['there']}) 范围内, " if m["there"] else "")
                  + f"不在网格 {t.grid_name(m['grid'])} ({m['grid']}) 范围内: 仍按区域所设网格立案, 请核对区域的网格或摄像机位置"),
    ("flagged", re.compile(r"incident (?P<iid>\S+) ended \((?P<why>\w+) at (?P<at>\S+)\) before its start reached the "
                           r"gateway: held for review, not dispatched"),
     lambda m, t: f"事件 {m['iid']} 的发现未送达网关, 只收到其结束 ({END_REASONS.get(m['why'], m['why'])}, "
                  f"{local_text(m['at'])}): 提交审核, 未派遣"),
    ("flagged", re.compile(r"incident (?P<iid>\S+) reported (?P<late>.+?) after the camera saw it \((?P<at>\S+); more "
                           r"than (?P<limit>.+?)\)(?: by box (?P<box>\S+)'s clock, (?P<off>.+?) (?P<way>behind|ahead of) "
                           r"the gateway's)?: held for review, not dispatched"), _late_note),
    ("flagged", re.compile(r"incident (?P<iid>\S+) stamped on box (?P<box>\S+)'s boot clock \(its time unknown\): held "
                           r"for review, not dispatched"),
     lambda m, t: f"事件 {m['iid']} 按盒子 {m['box']} 的开机时钟计时 (发现时间未知): 提交审核, 未派遣"),
    ("flagged", re.compile(r"camera (?P<camera>\S+) of box (?P<box>\S+) opened (?P<n>\d+) cases within the hour, as "
                           r"many as the city's tables dispatch from one camera \(new_cases_per_camera_hour\): held for "
                           r"review, not dispatched"),
     lambda m, t: f"摄像机 {m['camera']} (盒子 {m['box']}) 一小时内已立案 {m['n']} 件, 达到单台摄像机每小时派遣上限 "
                  "(new_cases_per_camera_hour): 提交审核, 未派遣"),
    ("escalation_failed", re.compile(r"(?P<error>.+)", re.S), lambda m, t: f"升级失败: {local_text(m['error'])}"),
    ("verdict", re.compile(r"(?P<verdict>[a-z_]+)(?:: (?P<detail>[^;]+))?(?:; (?P<rest>.*))?", re.S), _verdict_note),
    ("suppression_lifted", re.compile(r"suppression (?P<id>\d+) lifted"), lambda m, t: f"屏蔽 #{m['id']} 已解除"),
    ("related", RELATED[0],
     lambda m, t: f"同一地点经确认的事件 {m['iid']} 已另立{case_words(m, '案件')}, 如为同一问题请作废本案"),
    ("related", RELATED[1], lambda m, t: f"同一地点的{case_words(m)} 待审核"),
    ("related", RELATED[2],
     lambda m, t: f"同一地点的事件 {m['iid']} 待审核, 已另立{case_words(m, '案件')}; 本案未重新派遣"),
    ("related", RELATED[3], lambda m, t: f"同一地点的{case_words(m)} 刚结案; 未经审核不重新派遣"),
]


def reused_photos(timeline: list[dict]) -> dict[str, re.Match]:
    """The case's photos that are the same picture as another case's (its ``photo_reused`` rows), by their sha256."""
    return {m["sha"]: m for e in timeline if e["action"] == "photo_reused" and e["role"] == Role.SYSTEM.value
            and (m := REUSED.fullmatch(e["note"] or ""))}


def reused_case(found: re.Match | None) -> int | None:
    """The other case a ``reused_photos`` entry names; None where it names none (or said "another case")."""
    return int(found["case"]) if found and found["case"] else None


def case_words(found: re.Match, hidden: str = "另一案件") -> str:
    """The other case a note names (``NAMING``) as people read it: 案件 #12, or ``hidden`` where the reader may not
    see it (the note says "another case": ``as_read``)."""
    return f"案件 #{found['case']}" if found["case"] else hidden


def other_case(entry: dict) -> re.Match | None:
    """The match of a timeline row whose note, in the gateway's words, names another case (``NAMING``); else None."""
    if entry["role"] != Role.SYSTEM.value and entry["action"] not in GATEWAY_WORDED:
        return None  # a person's words are theirs, as written
    return next((m for action, pattern in NAMING if action == entry["action"]
                 and (m := pattern.fullmatch(entry["note"] or ""))), None)


def named_cases(timeline: list[dict]) -> set[int]:
    """The other cases the timeline's notes name (a reused photo's, one at the same place, the one a duplicate
    repeats): whether its reader may see each is ``as_read``'s question."""
    return {int(m["case"]) for e in timeline if (m := other_case(e)) and m["case"]}


def as_read(timeline: list[dict], shown: Collection[int]) -> list[dict]:
    """``timeline`` as read by one who may see the other cases ``shown`` and none else: a note naming a case not
    among them (``NAMING``) says "another case" where it said "case 12" (the rest kept: it says little). Its number
    named another department's case to a department (the photo's, the duplicate's, after a redispatch the one at the
    same place), one pending review to a department, another street's to a street's operator. The case log keeps it
    as written.

    >>> row = {"action": "photo_reused", "role": "system",
    ...        "note": f"photo {'ab' * 32} is the same picture as case #12's photo of 2026-12-01T08:00:00.000Z"}
    >>> as_read([row], {12}) == [row], as_read([row], {7})[0]["note"][70:]
    (True, " is the same picture as another case's photo of 2026-12-01T08:00:00.000Z")
    >>> as_read([{"action": "verdict", "role": "operator", "note": "duplicate: of case 12; seen twice"}], ())[0]["note"]
    'duplicate: of another case; seen twice'
    """
    def read(entry: dict) -> dict:
        m = other_case(entry)
        if m is None or not m["case"] or int(m["case"]) in shown:
            return entry
        note = entry["note"]
        return dict(entry, note=f"{note[:m.start('other')]}another case{note[m.end('other'):]}")
    return [read(e) for e in timeline]


def note_text(entry: dict, tables: Tables) -> str:
    """A timeline entry's note as people read it: the gateway's own notes (its rows, and the few it
    composes for a person: a verdict, a lifted suppression, a photo) in Chinese from its templates;
    a person's note as they wrote it, times in Beijing time, after the duration an extension asked
    for or granted (from its own field, ``extend_by``, never read out of the note). A person's note
    that reads like one of the gateway's is still the person's: it is never shown as the gateway's.

    >>> from gateway.config import TABLES_DIR, load_tables
    >>> t = load_tables(TABLES_DIR / "demo.yaml")
    >>> note_text({"action": "dispatched", "role": "system", "note": "traffic-police"}, t)
    '派往 交警大队'
    >>> note_text({"action": "request_extension", "role": "department", "note": "2h", "extend_by": "5 working days"}, t)
    '5 个工作日 · 2h'
    """
    note, action = entry.get("note"), entry["action"]
    if entry["role"] != Role.SYSTEM.value and action not in GATEWAY_WORDED:
        parts = [duration_text(entry["extend_by"])] if entry.get("extend_by") else []
        return " · ".join(parts + ([local_text(note)] if note else []))
    if note is None:
        return ""
    if action == "photo":
        return "照片"
    for name, pattern, show in _SYSTEM_NOTES:
        if name == action and (m := pattern.fullmatch(note)):
            return show(m, tables)
    return local_text(note)


# --- Open311 GeoReport v2 ---

def georeport(row: dict, tables: Tables, base_url: str, updated_at: float | None) -> dict:
    """A case as an Open311 service request; ``media_url`` absolute (``base_url`` is the API's root).
    ``updated_at`` is the case's last change (its newest case-log row)."""
    return {"service_request_id": str(row["id"]), "status": "closed" if row["state"] in ("closed", "rejected") else "open",
            "status_notes": STATE_NAMES.get(row["state"], row["state"]), "service_name": row["category_name"],
            "service_code": row["category_code"], "description": f"{row['category_name']}: 摄像机 {row['camera']} "
            f"区域 {row['zone']}", "agency_responsible": tables.department_name(row["department"]),
            "service_notice": None, "requested_datetime": iso(row["created_at"]),
            "updated_datetime": iso(updated_at or row["created_at"]), "expected_datetime": iso(row["deadline"]),
            "address": tables.grid_name(row["grid"]), "address_id": row["grid"], "zipcode": None,
            "lat": row["lat"], "long": row["lon"],
            "media_url": base_url.rstrip("/") + evidence_url(row["id"]) if row["evidence_sha256"] else None}


def georeport_service(category) -> dict:
    return {"service_code": category.code, "service_name": category.name,
            "description": f"{category.name} ({category.type})", "metadata": False, "type": "realtime",
            "keywords": category.type, "group": category.department}


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def open311_xml(root: str, item: str, items: list[dict]) -> bytes:
    """Open311's XML (the spec's default format): ``<root><item><field>value</field>...``, every
    value escaped by the standard library; characters XML 1.0 cannot carry are left out.

    >>> open311_xml("services", "service", [{"service_name": "<b>&\\x01", "metadata": False, "group": None}])
    b"<?xml version='1.0' encoding='utf-8'?>\\n<services><service><service_name>&lt;b&gt;&amp;</service_name><metadata>false</metadata><group /></service></services>"
    """
    top = ElementTree.Element(root)
    for values in items:
        element = ElementTree.SubElement(top, item)
        for key, value in values.items():
            field = ElementTree.SubElement(element, key)
            if value is not None:
                field.text = _NOT_XML.sub("", str(value).lower() if isinstance(value, bool) else str(value))
    return ElementTree.tostring(top, encoding="utf-8", xml_declaration=True)


# --- the notices on MQTT (xueliang/schema/notice.schema.json) ---

def notice(row: dict, case: dict, tables: Tables, now: float) -> dict:
    """The notice a case-log row makes (``dispatched``: to the department; ``escalate``: to the grid
    it was escalated to), as ``wire.encode_notice`` checks it."""
    view = case_view(case, tables, now)
    dispatch = row["action"] == "dispatched"
    to = row["target"] or (case["department"] if dispatch else case["grid"])
    return {"schema_version": wire.SCHEMA_VERSION, "type": "dispatch" if dispatch else "escalation",
            "at": iso(row["at"]), "to": to,
            "to_name": tables.department_name(to) if dispatch else tables.grid_name(to),
            "note": None if dispatch else row["note"],
            "case": {key: view[key] for key in wire.NOTICE_CASE_FIELDS}}
