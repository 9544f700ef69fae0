"""The gateway's HTTP API: an app factory, token auth, and one router per resource.

Tokens are stored hashed (sha256). A department's token sees and acts on its own cases,
an operator's token the cases in its grid subtree, an admin's all. Every mutating call is
authorised, applied through the state machine and written to the case's audit trail.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from gateway import storage
from gateway.cases import dispatch_deadline
from gateway.config import Tables
from gateway.deadlines import deadline, parse_service_level
from gateway.reports import summary
from gateway.storage import Store
from gateway.workflow import Action, Role, TransitionError
from xueliang import wire

CITY_TZ = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    department: str | None = None
    grid: str | None = None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(store: Store, name: str, role: str, department: str | None = None, grid: str | None = None) -> str:
    """Make a token, keep only its hash, return it once."""
    token = "xl_" + secrets.token_urlsafe(24)
    store.add_token(hash_token(token), name, Role(role).value, department, grid, time.time())
    return token


class TimelineEntry(BaseModel):
    at: str
    actor: str
    role: str
    action: str
    from_state: str | None = None
    to_state: str | None = None
    note: str | None = None
    photo_url: str | None = None


class Case(BaseModel):
    id: int
    incident_id: str
    type: str
    category_code: str
    category_name: str
    department: str
    grid: str
    box: str
    camera: str
    zone: str
    lat: float | None
    lon: float | None
    state: str
    created_at: str
    dispatched_at: str | None
    deadline: str | None
    overdue: bool
    urgent: bool
    level: int
    escalated_grid: str | None
    reported_at: str
    closed_at: str | None
    confidence: float
    bbox: list[float]
    incident_count: int
    evidence_url: str | None
    ended_at: str | None
    end_reason: str | None
    end_evidence_url: str | None


class CaseDetail(Case):
    timeline: list[TimelineEntry]
    incidents: list[dict]


class DeadLetter(BaseModel):
    id: int
    received_at: str
    topic: str
    reason: str
    bytes: int


class ActionRequest(BaseModel):
    action: Action
    note: str | None = Field(default=None, max_length=2000)
    department: str | None = Field(default=None, title="For redispatch: the new department")
    extend_by: str | None = Field(default=None, title="For extend: e.g. 2h, 1 working day")


def _iso(t: float | None) -> str | None:
    return wire.iso(t) if t is not None else None


def case_view(row: dict, now: float | None = None) -> dict:
    now = time.time() if now is None else now
    out = dict(row)
    for key in ("created_at", "dispatched_at", "deadline", "reported_at", "closed_at", "ended_at"):
        out[key] = _iso(row.get(key))
    out["overdue"] = bool(row["deadline"] is not None and row["deadline"] < now
                          and row["state"] in ("dispatched", "handling", "feedback"))
    out["urgent"] = bool(row["urgent"])
    out["bbox"] = json.loads(row["bbox"])
    out["evidence_url"] = f"/cases/{row['id']}/evidence.jpg" if row["evidence_sha256"] else None
    out["end_evidence_url"] = f"/cases/{row['id']}/evidence.jpg?which=end" if row["end_evidence_sha256"] else None
    if "timeline" in row:
        out["timeline"] = [dict(e, at=wire.iso(e["at"]), photo_url=f"/cases/{row['id']}/photos/{e['note']}.jpg"
                                if e["action"] == "photo" else None) for e in row["timeline"]]
        out["incidents"] = [dict(i, linked_at=wire.iso(i["linked_at"])) for i in row["incidents"]]
    return out


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_tables(request: Request) -> Tables:
    return request.app.state.tables


def optional_principal(request: Request, authorization: str | None = Header(default=None)) -> Principal | None:
    if not authorization and request.query_params.get("token"):  # links from the operators' page
        authorization = f"Bearer {request.query_params['token']}"
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    row = request.app.state.store.token(hash_token(token.strip())) if scheme.lower() == "bearer" else None
    if row is None:
        raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
    return Principal(row["name"], Role(row["role"]), row["department"], row["grid"])


def reader(request: Request, who: Principal | None = Depends(optional_principal)) -> Principal:
    if who is not None:
        return who
    if request.app.state.public_read:
        return Principal("public", Role.ADMIN)
    raise HTTPException(401, "a token is needed (Authorization: Bearer ...)", headers={"WWW-Authenticate": "Bearer"})


def actor(who: Principal | None = Depends(optional_principal)) -> Principal:
    if who is None:
        raise HTTPException(401, "a token is needed to change a case", headers={"WWW-Authenticate": "Bearer"})
    return who


def subtree(tables: Tables, grid: str) -> list[str]:
    return [g.code for g in tables.grids if grid in tables.ancestors(g.code)] or [grid]


def scope(who: Principal, tables: Tables) -> dict:
    if who.role == Role.DEPARTMENT:
        return {"department": who.department}
    if who.role == Role.OPERATOR:
        return {"grids": subtree(tables, who.grid or "")}
    return {}


def may_see(who: Principal, case: dict, tables: Tables) -> bool:
    s = scope(who, tables)
    return (s.get("department") in (None, case["department"])) and ("grids" not in s or case["grid"] in s["grids"])


cases_router = APIRouter(prefix="/cases", tags=["cases"])


@cases_router.get("", response_model=list[Case])
def list_cases(store: Store = Depends(get_store), tables: Tables = Depends(get_tables), who: Principal = Depends(reader),
               state: str | None = None, grid: str | None = None, department: str | None = None,
               category: str | None = Query(None, description="incident type"), overdue: bool = False,
               limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)):
    s = scope(who, tables)
    if s.get("department") and department not in (None, s["department"]):
        return []
    now = time.time()
    rows = store.list_cases(state, grid, s.get("department", department), category, now if overdue else None,
                            s.get("grids"), limit, offset)
    return [case_view(r, now) for r in rows]


def _visible_case(case_id: int, store: Store, tables: Tables, who: Principal) -> dict:
    row = store.get_case(case_id)
    if row is None or not may_see(who, row, tables):
        raise HTTPException(404, f"no case {case_id}")
    return row


@cases_router.get("/{case_id}", response_model=CaseDetail)
def get_case(case_id: int, store: Store = Depends(get_store), tables: Tables = Depends(get_tables),
             who: Principal = Depends(reader)):
    return case_view(_visible_case(case_id, store, tables, who))


@cases_router.get("/{case_id}/evidence.jpg", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
def case_evidence(case_id: int, which: str = Query("start", pattern="^(start|end)$"), store: Store = Depends(get_store),
                  tables: Tables = Depends(get_tables), who: Principal = Depends(reader)):
    row = _visible_case(case_id, store, tables, who)
    sha = row["evidence_sha256"] if which == "start" else row["end_evidence_sha256"]
    data = store.evidence_bytes(sha) if sha else None
    if data is None:
        raise HTTPException(404, f"case {case_id}: {which} evidence has not arrived")
    return Response(data, media_type="image/jpeg")


def photo_owner(case_id: int) -> str:
    """Photos people upload to a case are kept with the evidence under this owner."""
    return f"case:{case_id}"


@cases_router.post("/{case_id}/photos", response_model=CaseDetail, status_code=201)
async def add_photo(case_id: int, request: Request, store: Store = Depends(get_store),
                    tables: Tables = Depends(get_tables), who: Principal = Depends(actor)):
    """A department's on-site photo (JPEG body), e.g. with its feedback; kept and shown on the timeline."""
    data = await request.body()
    if not data or len(data) > wire.MAX_EVIDENCE_BYTES or not data.startswith(b"\xff\xd8"):
        raise HTTPException(422, f"send one JPEG of 1..{wire.MAX_EVIDENCE_BYTES} bytes as the request body")
    now = time.time()
    row = _visible_case(case_id, store, tables, who)
    sha = hashlib.sha256(data).hexdigest()
    with store.begin() as db:
        storage.add_evidence(db, sha, data, photo_owner(case_id), "-", "-", now)
        storage.log(db, case_id, now, f"{who.role.value}:{who.name}", who.role, "photo", row["state"], row["state"],
                    sha)
    return case_view(store.get_case(case_id))


@cases_router.get("/{case_id}/photos/{sha256}.jpg", response_class=Response,
                  responses={200: {"content": {"image/jpeg": {}}}})
def get_photo(case_id: int, sha256: str, store: Store = Depends(get_store), tables: Tables = Depends(get_tables),
              who: Principal = Depends(reader)):
    _visible_case(case_id, store, tables, who)
    data = store.evidence_bytes(sha256, owner=photo_owner(case_id))
    if data is None:
        raise HTTPException(404, f"case {case_id} has no photo {sha256}")
    return Response(data, media_type="image/jpeg")


@cases_router.post("/{case_id}/actions", response_model=CaseDetail)
def act(case_id: int, body: ActionRequest, request: Request, store: Store = Depends(get_store),
        tables: Tables = Depends(get_tables), who: Principal = Depends(actor)):
    now = time.time()
    category_of = {c.type: c for c in tables.categories}
    try:
        with store.begin() as db:
            row = store.get_case(case_id)
            if row is None or not may_see(who, row, tables):
                raise HTTPException(404, f"no case {case_id}")
            category = category_of[row["type"]]
            values: dict = {}
            if body.action in (Action.CONFIRM, Action.REDISPATCH):
                if body.action == Action.REDISPATCH:
                    if body.department not in {d.id for d in tables.departments}:
                        raise HTTPException(422, f"redispatch needs a known department, got {body.department!r}")
                    values["department"] = body.department
                values |= {"dispatched_at": now, "deadline": dispatch_deadline(category, tables, now, bool(row["urgent"])),
                           "level": 0, "next_escalation_at": None}
            if body.action == Action.EXTEND:
                if not body.extend_by:
                    raise HTTPException(422, "extend needs extend_by, e.g. '2h' or '1 working day'")
                try:
                    level = parse_service_level(body.extend_by)
                except ValueError as exc:
                    raise HTTPException(422, str(exc)) from None
                values["deadline"] = deadline(row["deadline"] or now, level, tables.calendar)
                values["next_escalation_at"] = None
            note = body.note or (f"to {body.department}" if body.department else None)
            case = storage.apply(db, row, body.action, who.role, f"{who.role.value}:{who.name}", now, note, values)
            if body.action in (Action.CONFIRM, Action.REDISPATCH):
                storage.log(db, case_id, now, "gateway", Role.SYSTEM, "dispatched", case["state"], case["state"],
                            case["department"], case["department"])
            # the camera already saw the problem gone (a later sighting would have cleared that, and a
            # reopening too): the re-check is done. Not compared with dispatched_at: that is the
            # gateway's clock, ended_at the box's, and an end may arrive in the same batch as its start.
            if (body.action == Action.FEEDBACK and category.auto_close and row["end_reason"] in ("left", "cleared")
                    and row["ended_at"] is not None):
                storage.apply(db, case, Action.CLOSE, Role.SYSTEM, "gateway", now, "closed on the camera's re-check")
    except TransitionError as exc:
        raise HTTPException(409, str(exc)) from None
    except storage.ConflictError as exc:
        raise HTTPException(409, str(exc)) from None
    request.app.state.on_change(case_id)
    return case_view(store.get_case(case_id))


dead_router = APIRouter(prefix="/dead-letters", tags=["dead letters"])


@dead_router.get("", response_model=list[DeadLetter])
def list_dead_letters(store: Store = Depends(get_store), who: Principal = Depends(reader),
                      limit: int = Query(100, ge=1, le=1000)):
    if who.role not in (Role.ADMIN, Role.OPERATOR):
        raise HTTPException(403, "dead letters are for operators")
    return [dict(r, received_at=wire.iso(r["received_at"])) for r in store.list_dead_letters(limit)]


reports_router = APIRouter(prefix="/reports", tags=["reports"])


def period(kind: str, day: str | None, now: float) -> tuple[float, float]:
    start_day = datetime.fromisoformat(day).date() if day else datetime.fromtimestamp(now, CITY_TZ).date()
    if kind == "weekly":
        start_day -= timedelta(days=start_day.weekday())
    start = datetime(start_day.year, start_day.month, start_day.day, tzinfo=CITY_TZ).timestamp()
    return start, start + (7 if kind == "weekly" else 1) * 86400


@reports_router.get("/{kind}")
def report(kind: str, date: str | None = Query(None, description="YYYY-MM-DD in the city's time zone"),
           store: Store = Depends(get_store), tables: Tables = Depends(get_tables), who: Principal = Depends(reader)):
    if kind not in ("daily", "weekly"):
        raise HTTPException(404, "reports are daily or weekly")
    now = time.time()
    try:
        start, end = period(kind, date, now)
    except ValueError:
        raise HTTPException(422, f"date {date!r} is not YYYY-MM-DD") from None
    rows = [r for r in store.cases_between(start, end) if may_see(who, r, tables)]
    return {"kind": kind, "from": wire.iso(start), "to": wire.iso(end), **summary(rows, start, end, now)}


open311 = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"])


@open311.get("/services.json")
def services(tables: Tables = Depends(get_tables)):
    return [{"service_code": c.code, "service_name": c.name, "description": f"{c.name} ({c.type})", "metadata": False,
             "type": "realtime", "keywords": c.type, "group": c.department} for c in tables.categories]


def georeport(row: dict) -> dict:
    return {"service_request_id": str(row["id"]), "status": "closed" if row["state"] in ("closed", "rejected") else "open",
            "status_notes": row["state"], "service_name": row["category_name"], "service_code": row["category_code"],
            "description": f"{row['category_name']}: camera {row['camera']} zone {row['zone']}",
            "agency_responsible": row["department"], "requested_datetime": _iso(row["created_at"]),
            "updated_datetime": _iso(row["closed_at"] or row["dispatched_at"] or row["created_at"]),
            "expected_datetime": _iso(row["deadline"]), "address": row["grid"], "address_id": row["grid"],
            "lat": row["lat"], "long": row["lon"],
            "media_url": f"/cases/{row['id']}/evidence.jpg" if row["evidence_sha256"] else None}


@open311.get("/requests.json")
def requests_(store: Store = Depends(get_store), tables: Tables = Depends(get_tables), who: Principal = Depends(reader),
              service_code: str | None = None, status: str | None = Query(None, pattern="^(open|closed)$")):
    s = scope(who, tables)
    rows = store.list_cases(department=s.get("department"), grids=s.get("grids"), limit=1000)
    out = [georeport(r) for r in rows if service_code in (None, r["category_code"])]
    return [r for r in out if status in (None, r["status"])]


@open311.get("/requests/{request_id}.json")
def request_one(request_id: int, store: Store = Depends(get_store), tables: Tables = Depends(get_tables),
                who: Principal = Depends(reader)):
    return [georeport(_visible_case(request_id, store, tables, who))]


def create_app(store: Store, tables: Tables, public_read: bool = False, on_change=None) -> FastAPI:
    app = FastAPI(title="xueliang gateway", version="1")
    app.state.store, app.state.tables, app.state.public_read = store, tables, public_read
    app.state.on_change = on_change or (lambda case_id: None)
    for router in (cases_router, dead_router, reports_router, open311):
        app.include_router(router)

    @app.get("/health", tags=["health"])
    def health() -> dict:
        return {"status": "ok", "cases": store.count("cases")}

    from gateway.web import web_router  # the page builds on this module's reads and scopes

    app.include_router(web_router)
    return app
