"""The gateway's HTTP API: an app factory, token auth, and one router per resource.

Who may do what is ``gateway.auth`` (tokens in the Authorization header only). Every mutating
call is authorised, applied through the state machine and written to the case's audit trail.
Inputs are bounded where they are declared (ids, filters, dates, bodies), so a bad request is
a 4xx that says what was wrong, never a 500.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from sqlalchemy.exc import OperationalError

from gateway import actions, boxes, etags, storage, verdicts
from gateway.auth import (TOKEN_OPTIONAL, Principal, actor, bearer, count_found, find_cases, may_see, reader,
                          refusals_described, report_figures, scope, seen_cases, token_optional_for_public_reads,
                          unknown_filters, visible_case)
from gateway.config import Tables
from gateway.metrics import REGISTRY, Health
from gateway.images import MAX_PHOTO_BYTES, MAX_SCANS, ImageError, check_jpeg, without_metadata
from gateway.open311 import in_spec_format, input_problems, open311
from gateway.presentation import (MAX_ID, BoxId, CaseId, Filter, IncidentId, Sha256, Which, case_view,
                                  evidence_response, incident_evidence_response, iso, named_cases, note_hidden, period,
                                  photo_response, query_checked)
from gateway.reports import machine_precision
from gateway.reportview import Report
from gateway.security import (BodyCap, HeadAsGet, JsonBody, SecurityHeaders, database_down, database_unavailable,
                              gateway_stopping, read_capped, server_error, validation_error)
from gateway.storage import Store
from gateway.web import PAGE_ICON, not_a_page, web_router
from gateway.workbench import workbench_router
from gateway.workflow import Action, CaseState, Role, TransitionError, role_refused
from xueliang import wire

class TimelineEntry(BaseModel):
    at: str
    actor: str
    role: str
    action: str
    from_state: str | None = None
    to_state: str | None = None
    note: str | None = None  # the words of whoever acted (for the gateway's own rows, its text)
    extend_by: str | None = None  # an extension's duration: asked for, granted, refused or given
    photo_url: str | None = None
    # a photo that is the same picture as one on this other case (re-sent, re-saved or slightly cropped): the
    # ``photo_reused`` row after it says whose and when; kept, and counted with the feedback, but to be checked.
    # None too where the reader may not see that case: the row after it then says "another case's photo"
    same_picture_as: int | None = None


class Case(BaseModel):
    id: int
    incident_id: str
    type: str
    category_code: str
    category_name: str
    department: str
    department_name: str = Field(title="What people call the department (the city's tables)")
    grid: str
    grid_name: str = Field(title="What people call the grid (the city's tables)")
    box: str
    camera: str
    zone: str
    lat: float | None
    lon: float | None
    state: str
    created_at: str | None  # None only for a time stored before times were checked
    dispatched_at: str | None
    deadline: str | None
    overdue: bool
    urgent: bool
    level: int
    escalated_grid: str | None
    fed_back_at: str | None = Field(None, title="The department's feedback: its clock stopped here")
    recheck_deadline: str | None = Field(None, title="While in feedback: the re-check's own deadline")
    review_deadline: str | None = Field(None, title="While pending review or returned: the command centre's own "
                                        "deadline, to confirm or reject the lead, to send the case on")
    extension_request: str | None = Field(None, title="More time the department asked for, awaiting an operator")
    reported_at: str | None
    closed_at: str | None
    confidence: float
    bbox: list[float]
    incident_count: int
    evidence_url: str | None
    ended_at: str | None
    end_reason: str | None
    end_evidence_url: str | None


class IncidentLink(BaseModel):
    incident_id: str
    how: str = Field(title="opened, merged or reopened: how it joined the case")
    linked_at: str | None
    evidence_url: str | None = Field(title="This incident's snapshot when it was found")
    end_evidence_url: str | None = Field(title="This incident's snapshot at its end (a re-check only where "
                                        "end_reason is left or cleared)")
    end_reason: str | None = Field(None, title="Why it ended: left or cleared (the camera saw it gone: evidence for "
                                   "closure), box_stopped, camera_lost or stream_ended (no longer watched: no re-check)")
    reason: str | None = Field(None, title="A camera fault's cause as its box last gave it (attributes.reason: its "
                               "reader's error, e.g. a refused connection or a 401)")


class VerdictView(BaseModel):
    verdict: verdicts.Verdict
    at: str
    actor: str
    right_type: str | None = Field(None, title="wrong_type: what it was")
    duplicate_of: int | None = Field(None, title="duplicate: the case it repeats (null too where the reader may not "
                                     "see that case: the verdict's timeline row then says \"of another case\")")
    bbox: list[float] | None = Field(None, title="the object's box as redrawn (x1, y1, x2, y2 in 0..1)")
    note: str | None = None


class CaseDetail(Case):
    timeline: list[TimelineEntry]
    incidents: list[IncidentLink]
    verdict: VerdictView | None = Field(None, title="the newest verdict on this machine-made case")


class DeadLetter(BaseModel):
    id: int
    received_at: str
    topic: str
    reason: str
    grid: str | None = Field(title="the grid its payload named; none: admins only")
    box: str | None = Field(title="the box its topic names, as named (an outsider's too); none: a notice's, or a "
                        "topic naming no box")
    bytes: int


class DeadLetterPage(BaseModel):
    total: int = Field(title="dead letters in your scope, all pages")
    dead_letters: list[DeadLetter] = Field(title="newest first")
    next_before_id: int | None = Field(title="pass as before_id for the next page; none after the last")


class ActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt note was dropped and the rest done

    action: Action
    note: str | None = Field(default=None, max_length=2000)
    department: str | None = Field(default=None, max_length=64, title="For redispatch: the new department")
    extend_by: str | None = Field(default=None, max_length=64, title="For extend and request_extension: e.g. 2h, 1 working day (at most 366 days)")

    @field_validator("note", "department", "extend_by")
    @classmethod
    def storable(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        try:
            value.encode()
        except UnicodeEncodeError:  # "\ud800" in JSON: no database stores it
            raise ValueError("must be text without unpaired surrogates") from None
        if "\x00" in value:
            raise ValueError("must be text without NUL characters")
        if codes := note_hidden(value):
            raise ValueError(f"{info.field_name}: has control or invisible formatting characters ({codes}); "
                             "write it without them")
        return value


class VerdictRequest(BaseModel):
    """An operator's verdict on a machine-made case."""

    model_config = ConfigDict(extra="forbid")

    verdict: verdicts.Verdict
    right_type: str | None = Field(None, max_length=40, pattern=r"^[a-z][a-z0-9_]{0,39}$",
                                   title="wrong_type: the incident type it really was (the city's tables)")
    duplicate_of: int | None = Field(None, ge=1, le=MAX_ID, title="duplicate: the case it repeats")
    bbox: list[Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]] | None = Field(
        None, min_length=4, max_length=4, title="the object's box redrawn: x1, y1, x2, y2 in 0..1 of the frame")
    reject: bool = Field(False, title="false_alarm or duplicate: reject the case too (while pending review)")
    note: str | None = Field(None, max_length=2000)

    @field_validator("note")
    @classmethod
    def storable(cls, value: str | None, info: ValidationInfo) -> str | None:
        return ActionRequest.storable(value, info)

    @model_validator(mode="after")
    def consistent(self) -> "VerdictRequest":
        verdicts.check(self.verdict, right_type=self.right_type, duplicate_of=self.duplicate_of, bbox=self.bbox,
                       reject=self.reject)
        return self


class Suppression(BaseModel):
    id: int
    case_id: int | None
    box: str
    camera: str
    zone: str
    type: str
    bbox: list[float] = Field(title="the suppressed region: x1, y1, x2, y2 in 0..1 of the frame")
    grid: str
    created_at: str
    created_by: str
    lifted_at: str | None
    lifted_by: str | None


def suppression_view(row: dict) -> dict:
    return dict(row, created_at=wire.iso(row["created_at"]), lifted_at=iso(row["lifted_at"]))


def detail(row: dict, tables: Tables, store: Store, who: Principal) -> dict:
    """A case as CaseDetail shows it to ``who``: its view (another case its timeline names, by number only where
    ``who`` may see it), and its newest verdict (the case it says this one repeats, likewise)."""
    found = verdicts.latest(store, [row["id"]]).get(row["id"])
    shown = seen_cases(store, tables, who, named_cases(row["timeline"]))  # a duplicate's too: its verdict's row
    verdict = found and dict(found, at=wire.iso(found["at"]),
                             duplicate_of=found["duplicate_of"] if found["duplicate_of"] in shown else None)
    return case_view(row, tables, shown=shown) | {"verdict": verdict or None}


def judge(who: Principal) -> Principal:
    if who.role not in (Role.ADMIN, Role.OPERATOR):
        raise HTTPException(403, "verdicts and suppressions are for operators and admins")
    return who


def refused(description: str) -> dict:
    """A route's (or a router's) ``responses`` for the role it refuses: /openapi.json lists its 403."""
    return {403: {"description": description}}


FOR_JUDGES = refused("a department's token: verdicts and suppressions are for operators and admins")


# the API's own routes take the parameters they declare, each once (/health and /metrics anything: a checker's
# cache-buster; Open311 what the spec's clients send, its extensions too, each of its own once)
DECLARED = query_checked(declared_only=True)


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_tables(request: Request) -> Tables:
    return request.app.state.tables


# each router's JSON bodies read as the wire's messages are (JsonBody: each key once, faults said in words)
cases_router = APIRouter(prefix="/cases", tags=["cases"], dependencies=[Depends(DECLARED)], route_class=JsonBody)


@cases_router.get("", response_model=list[Case])
def list_cases(store: Store = Depends(get_store), tables: Tables = Depends(get_tables), who: Principal = Depends(reader),
               state: CaseState | None = None, grid: Filter = None, department: Filter = None,
               category: Annotated[str | None, Query(max_length=40, pattern="^[A-Za-z0-9_.-]+$",
                                                     description="incident type or the city's category code")] = None,
               overdue: bool = False, limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=MAX_ID),
               before_id: int | None = Query(None, ge=1, le=MAX_ID, description=(
                   "the last id of the page before: the next page, whatever cases came or changed meanwhile "
                   "(offset counts from the newest, which moves as cases come)"))):
    """Cases the token may see, newest first; ``grid`` selects that grid and everything under it. A ``department``,
    ``category`` or ``grid`` that neither the city's tables nor any case names is a 422 listing those known."""
    now = time.time()
    if problems := unknown_filters(store, tables, who, now, department=department, category=category, grid=grid):
        raise RequestValidationError(problems)
    rows = find_cases(store, tables, who, state=state and state.value, grid=grid, department=department,
                      category=category, overdue_at=now if overdue else None, limit=limit, offset=offset,
                      before_id=before_id)
    return [case_view(r, tables, now) for r in rows]


def readable_case(case_id: CaseId, store: Store = Depends(get_store), tables: Tables = Depends(get_tables),
                  who: Principal = Depends(reader)) -> dict:
    return visible_case(store, tables, who, case_id)


def changeable_case(case_id: CaseId, store: Store = Depends(get_store), tables: Tables = Depends(get_tables),
                    who: Principal = Depends(actor)) -> dict:
    return visible_case(store, tables, who, case_id)


ETAG = {"ETag": {"description": "the case's entity tag: send it as If-Match to act only on the case as read",
                 "schema": {"type": "string"}}}
THE_CASE = ETAG | {"Content-Location": {"description": "/cases/{id}: the body is the case as it is now",
                                        "schema": {"type": "string"}}}


class Stale(BaseModel):
    detail: str = Field(title="why nothing was done: the case changed, or If-Match was not a list of entity tags")
    case: CaseDetail = Field(title="the case as it is now (its ETag in the header): decide again on it")


class Refusal(BaseModel):
    """The body of every error the API answers (Open311's paths answer the spec's own), but a 422 that names the
    request's values one by one (``HTTPValidationError``)."""
    detail: str = Field(title="what was wrong and, where it helps, what to do")


NOT_SEEN = {404: {"description": "no such case, or one the token may not see"}}
JSON_BODY = {413: {"description": "a body of more than 1 MiB"},
             415: {"description": "no Content-Type, or one other than application/json"}}
REFUSED_NOW = {409: {"description": "the case's state does not allow it now: the answer says why (an action: from "
                                    "which states it is taken; a close: the incident its camera still reports)"}}
STALE = {412: {"model": Stale, "headers": ETAG, "description": "If-Match names none of the case's tags (it changed "
               "since it was read) or is not a list of entity tags: nothing was done"}}
IfMatch = Annotated[str | None, Header(
    alias="If-Match", description="the ETag of GET /cases/{id} (or several, comma-separated; `*`: any): change the "
    "case only if it is still that one, else 412. Without it the request is taken on the case as it is.")]


@dataclass(frozen=True)
class Precondition:
    """A request's If-Match: ``seen``, the case versions it accepts (None: any, without If-Match or with ``*``), the
    header as sent, and why it is no list of entity tags where it is not (``seen`` is then empty: none)."""
    value: str | None = None
    seen: frozenset[str] | None = None
    problem: str | None = None


def precondition(request: Request, if_match: IfMatch = None) -> Precondition:
    """The If-Match of a request that changes a case: an action, a verdict, a photo."""
    if if_match is None:
        return Precondition()
    # several If-Match lines are one list (RFC 9110 §5.3; FastAPI's str is the first line); a value that is not a
    # list of entity tags is a false condition (§13.1.1), never a request taken unconditionally
    value = ", ".join(request.headers.getlist("If-Match"))
    try:
        return Precondition(value, etags.if_match(value))
    except ValueError as exc:
        return Precondition(value, frozenset(), f"If-Match {value[:60]!r} is not \"*\" or a list of entity tags: {exc}")


def precondition_failed(case_id: int, asked: Precondition, who: Principal, tables: Tables,
                        store: Store) -> JSONResponse:
    """412: the case as it is now and why the request was not taken, with its ETag."""
    row = visible_case(store, tables, who, case_id)
    tag = etags.etag(row)
    why = asked.problem or f"case {row['id']} changed since it was read: If-Match names none of its tags"
    if asked.problem is None and "W/" in asked.value:
        why = (f"If-Match names no tag case {row['id']} has: a weak tag (W/) never matches, If-Match compares "
               "strong tags (RFC 9110 §13.1.1)")
    said = Stale(detail=f"{why}; nothing was done: it is {tag} now", case=CaseDetail(**detail(row, tables, store, who)))
    return JSONResponse(said.model_dump(mode="json"), 412, headers={"ETag": tag})


def the_case(response: Response, case_id: int, tables: Tables, store: Store, who: Principal) -> dict:
    """The answer to a request that changed the case: the case's own representation (RFC 9110 §8.7), so its ETag
    is the tag to send next."""
    row = store.get_case(case_id)
    response.headers["ETag"], response.headers["Content-Location"] = etags.etag(row), f"/cases/{case_id}"
    return detail(row, tables, store, who)


@cases_router.get("/{case_id}", response_model=CaseDetail, responses={200: {"headers": ETAG}, **NOT_SEEN})
def get_case(response: Response, row: dict = Depends(readable_case), tables: Tables = Depends(get_tables),
             store: Store = Depends(get_store), who: Principal = Depends(reader)):
    response.headers["ETag"] = etags.etag(row)
    return detail(row, tables, store, who)


JPEG_RESPONSE = {200: {"content": {"image/jpeg": {}}}, **NOT_SEEN,
                 410: {"description": f"withheld: a JPEG of more than {MAX_SCANS} scans, kept before ingest counted them"}}


@cases_router.get("/{case_id}/evidence.jpg", response_class=Response, responses=JPEG_RESPONSE)
def case_evidence(which: Which = "start", row: dict = Depends(readable_case), store: Store = Depends(get_store)):
    """The snapshot of the incident that opened the case (``incidents[].evidence_url`` has each one's)."""
    return evidence_response(row, which, store)


@cases_router.get("/{case_id}/incidents/{incident_id}/evidence.jpg", response_class=Response, responses=JPEG_RESPONSE)
def incident_evidence(incident_id: IncidentId, which: Which = "start", row: dict = Depends(readable_case),
                      store: Store = Depends(get_store)):
    """The snapshot of one incident joined to the case (by merge or reopening too)."""
    return incident_evidence_response(row, incident_id, which, store)


PHOTO_BODY = {"requestBody": {"required": True, "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}}}


@cases_router.post("/{case_id}/photos", response_model=CaseDetail, status_code=201, openapi_extra=PHOTO_BODY,
                   responses={201: {"headers": THE_CASE}, **STALE, **NOT_SEEN,
                              409: {"description": "the case is closed: reopened first, it takes photos again"},
                              413: {"description": f"more than {MAX_PHOTO_BYTES:,} bytes"},
                              415: {"description": "no Content-Type, or one other than image/jpeg "
                                                   "(or application/octet-stream)"},
                              422: {"description": "not a JPEG that decodes, or too many pixels"}})
async def add_photo(request: Request, response: Response, row: dict = Depends(changeable_case),
                    asked: Precondition = Depends(precondition), who: Principal = Depends(actor),
                    store: Store = Depends(get_store), tables: Tables = Depends(get_tables)):
    """A department's on-site photo (a JPEG body of at most 8 MB and 50 megapixels), e.g. with its
    feedback; kept and shown on the timeline. Who may add it is settled before the body is read; with
    If-Match (the case's ETag), it is added only to the case as the client read it."""
    if refused := actions.photo_refused(row, who.role):  # before its 8 MB are read
        raise HTTPException(409, refused)
    # none declared is refused as a JSON body's is (it was taken as a JPEG): a client that names no type has not
    # said what it sends
    declared = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if declared not in ("image/jpeg", "application/octet-stream"):
        said = f"not {declared[:60]!r}" if declared else "this one has none"
        raise HTTPException(415, f"send the photo with Content-Type: image/jpeg ({said})")
    data = await read_capped(request, MAX_PHOTO_BYTES, "a photo")
    try:
        await run_in_threadpool(check_jpeg, data)
    except ImageError as exc:
        raise HTTPException(422, f"send one JPEG photo as the body: {exc}") from None
    data = await run_in_threadpool(without_metadata, data)
    try:
        await run_in_threadpool(actions.keep_photo, store, row["id"], who.role, f"{who.role.value}:{who.name}", data,
                                time.time(), lambda case: may_see(who, case, tables), asked.seen)
    except actions.NotVisible as exc:  # no longer its case: redispatched while the photo came
        raise HTTPException(404, str(exc)) from None
    except actions.CaseClosed as exc:  # closed while the photo came
        raise HTTPException(409, str(exc)) from None
    except actions.StaleCase:
        return await run_in_threadpool(precondition_failed, row["id"], asked, who, tables, store)
    return await run_in_threadpool(the_case, response, row["id"], tables, store, who)


@cases_router.get("/{case_id}/photos/{sha256}.jpg", response_class=Response, responses=JPEG_RESPONSE)
def get_photo(sha256: Sha256, row: dict = Depends(readable_case), store: Store = Depends(get_store)):
    return photo_response(row["id"], sha256, store)


NOT_YOUR_ACTION = refused("a department's or an operator's token: an action its role never takes, whatever the case's "
                          "state (a department's close, an operator's acknowledge)")


@cases_router.post("/{case_id}/actions", response_model=CaseDetail,
                   responses={200: {"headers": THE_CASE}, **STALE, **NOT_YOUR_ACTION, **NOT_SEEN, **REFUSED_NOW,
                              **JSON_BODY})
def act(case_id: CaseId, body: ActionRequest, request: Request, response: Response,
        asked: Precondition = Depends(precondition), store: Store = Depends(get_store),
        tables: Tables = Depends(get_tables), who: Principal = Depends(actor)):
    """Take an action on the case. With If-Match (the case's ETag), only on the case as the client read it. 403 for an
    action the token's role never takes, whatever the case's state (as the case page refuses it)."""
    if why := role_refused(who.role, body.action):  # told of its role, not of states it can never act from
        raise HTTPException(403, why)
    try:
        actions.act(store, case_id, body.action, who.role, f"{who.role.value}:{who.name}", time.time(), tables,
                    lambda row: may_see(who, row, tables), body.note, extend_by=body.extend_by,
                    department=body.department, seen=asked.seen)
    except actions.NotVisible as exc:
        raise HTTPException(404, str(exc)) from None
    except actions.StaleCase:
        return precondition_failed(case_id, asked, who, tables, store)
    except (TransitionError, storage.ConflictError) as exc:
        raise HTTPException(409, str(exc)) from None
    except ValueError as exc:  # a request the action cannot take (an unknown department, no extend_by)
        raise HTTPException(422, str(exc)) from None
    request.app.state.on_change(case_id)
    return the_case(response, case_id, tables, store, who)


@cases_router.post("/{case_id}/verdict", response_model=CaseDetail, status_code=201,
                   responses={201: {"headers": THE_CASE}, **STALE, **FOR_JUDGES, **NOT_SEEN, **REFUSED_NOW,
                              **JSON_BODY})
def record_verdict(case_id: CaseId, body: VerdictRequest, request: Request, response: Response,
                   asked: Precondition = Depends(precondition), store: Store = Depends(get_store),
                   tables: Tables = Depends(get_tables), who: Principal = Depends(actor)):
    """An operator's verdict on the case (the newest is the case's); a false_alarm also makes a
    suppression that the case's box receives at once, and with ``reject`` the case is rejected
    (from pending review). 403 for departments, 404 for a case out of scope, 409 for a
    rejection the state forbids, 412 for a case changed since the If-Match's tag, 422 for a
    verdict that does not fit the case or the tables."""
    judge(who)
    try:
        boxes = verdicts.judge(store, tables, case_id, body.verdict, who.role, f"{who.role.value}:{who.name}",
                               time.time(), lambda row: may_see(who, row, tables), right_type=body.right_type,
                               duplicate_of=body.duplicate_of, bbox=body.bbox, note=body.note, reject=body.reject,
                               seen=asked.seen)
    except actions.NotVisible as exc:
        raise HTTPException(404, str(exc)) from None
    except actions.StaleCase:
        return precondition_failed(case_id, asked, who, tables, store)
    except (TransitionError, storage.ConflictError) as exc:
        raise HTTPException(409, str(exc)) from None
    except ValueError as exc:  # a verdict that does not fit the case or the tables
        raise HTTPException(422, str(exc)) from None
    request.app.state.on_change(case_id)
    for box in boxes:
        request.app.state.on_suppressions(box)
    return the_case(response, case_id, tables, store, who)


suppressions_router = APIRouter(prefix="/suppressions", tags=["suppressions"], responses=FOR_JUDGES,
                                  dependencies=[Depends(DECLARED)], route_class=JsonBody)


@suppressions_router.get("", response_model=list[Suppression])
def list_suppressions(store: Store = Depends(get_store), tables: Tables = Depends(get_tables),
                      who: Principal = Depends(reader), box: Filter = None,
                      lifted: bool = Query(False, description="the lifted ones too"),
                      limit: int = Query(1000, ge=1, le=1000)):
    """Suppressions newest first: an operator those of its grid subtree, an admin all."""
    judge(who)
    rows = verdicts.listed(store, box=box, grids=scope(who, tables).get("grids"), lifted=lifted, limit=limit)
    return [suppression_view(r) for r in rows]


@suppressions_router.post("/{suppression_id}/lift", response_model=Suppression,
                          responses={404: {"description": "no such suppression in force in the token's scope"}})
def lift_suppression(suppression_id: Annotated[int, PathParam(ge=1, le=MAX_ID)], request: Request,
                     store: Store = Depends(get_store), tables: Tables = Depends(get_tables),
                     who: Principal = Depends(actor)):
    """Lift a suppression: its box reports that place again (the box's list is sent at once)."""
    judge(who)
    row = verdicts.lift(store, suppression_id, f"{who.role.value}:{who.name}", who.role, time.time(),
                        scope(who, tables).get("grids"))
    if row is None:
        raise HTTPException(404, f"no suppression {suppression_id} in force")
    request.app.state.on_suppressions(row["box"])
    if row["case_id"] is not None:
        request.app.state.on_change(row["case_id"])
    return suppression_view(row)


dead_router = APIRouter(prefix="/dead-letters", tags=["dead letters"], dependencies=[Depends(DECLARED)],
                        responses=refused("a department's token: dead letters are for operators and admins"),
                        route_class=JsonBody)


@dead_router.get("", response_model=DeadLetterPage)
def list_dead_letters(store: Store = Depends(get_store), tables: Tables = Depends(get_tables),
                      who: Principal = Depends(reader), limit: int = Query(100, ge=1, le=1000),
                      before_id: int | None = Query(None, ge=1, le=MAX_ID, description="next_before_id of the last page"),
                      box: Filter = None):
    """Messages the gateway refused, newest first, a page at a time: an operator sees those that
    named a grid of its subtree, an admin all (those naming no known grid too); ``box`` those of one box."""
    if who.role not in (Role.ADMIN, Role.OPERATOR):
        raise HTTPException(403, "dead letters are for operators and admins")
    grids = scope(who, tables).get("grids")
    items = store.list_dead_letters(limit, before_id, grids, box)
    return {"total": store.count_dead_letters(grids, box),
            "dead_letters": [dict(r, received_at=wire.iso(r["received_at"]), box=r["box"] or None) for r in items],
            "next_before_id": items[-1]["id"] if len(items) == limit else None}


class BoxCamera(BaseModel):
    camera: str
    grid: str | None = Field(title="its grid, as its box's config names it; none: a box older than this")
    zone_grids: list[str] = Field(title="its zones' own grids, where a zone names one other than the camera's")
    state: str = Field(title="connecting, online, reconnecting or offline")
    faults: list[str] = Field(title="picture faults it reports: frozen, blocked, moved, shifted, offline")
    max_gap_s: float = Field(title="longest wait between two analysed frames before the heartbeat")
    last_error: str | None = Field(None, title="why its reader last failed (a refused connection, a 401, ...)")
    last_error_at: str | None = Field(None, title="when, by the box's wall clock (kept once the camera is back)")


class BoxView(BaseModel):
    box: str
    state: str = Field(title="online, or offline: it stopped, or its broker's last will said its connection died")
    heard_at: str | None = Field(title="when its latest heartbeat came, the database's clock (the gateways'); none: "
                                 "never")
    heartbeat_s: float = Field(title="its heartbeat interval")
    silent: bool = Field(title=f"no heartbeat for more than {boxes.SILENT_AFTER} of its intervals")
    grids: list[str] = Field(title="its cameras' grids (an operator's: of its cameras in the operator's grids); none: "
                                   "its heartbeat names none (a box older than this: listed to admins alone)")
    cameras: list[BoxCamera] = Field(title="its cameras (an operator's: those in the operator's grids)")
    cameras_up: int
    cameras_total: int
    outbox_pending: int | None = Field(title="messages in its outbox, awaiting a gateway's acknowledgement")
    outbox_oldest_s: float | None = Field(title="how long the oldest of them has waited (at least, where not known)")
    outbox_oldest_known: bool | None = Field(title="false: the oldest was queued before the box's start, its clock "
                                             "plainly wrong then or now (1970): how long it has waited is unknown")
    outbox_unwritten: int | None = Field(title="messages held in memory: the outbox cannot be written")
    outbox_write_error: str | None
    outbox_held: int | None = Field(title="incidents among them it holds until a gateway's acknowledgement tells it "
                                    "the time (its wall clock plainly wrong)")
    clock_offset_s: float | None = Field(title="the gateways' clock less the box's (below zero: the box is ahead)")
    clock_offset_by: str | None = Field(title="box: from the gateways' acknowledgements; gateway: from the heartbeat's "
                                        "own time against its arrival, before the box has measured it")
    clock_off: bool = Field(title="further off than the gateway accepts an incident's times (clock_limit_s)")
    clock_corrected: bool = Field(title="its messages carry the gateways' time")
    suppressions: int = Field(title="suppressions it holds")
    refused_at: str | None = Field(title="its heartbeats refused since the latest taken: when last said")
    refused_reason: str | None
    twin_at: str | None = Field(None, title="two boxes run under this box id (a config copied, its box not changed): "
                                "when their starts' heartbeats were last heard in turn (shown for 5 min after)")
    twin_boots: list[str] | None = Field(None, title="those two starts (each heartbeat's boot)")


class BoxesView(BaseModel):
    now: str = Field(title="the gateways' time, the database's clock, by which each box is heard and judged silent")
    clock_limit_s: float = Field(title="how far ahead of the gateway's clock an incident's times may be")
    boxes: list[BoxView] = Field(title="the troubled first (silent, offline, a camera down, clock off, outbox "
                                       "unwritable, heartbeats refused, two boxes under one id), each part by box id")


boxes_router = APIRouter(prefix="/boxes", tags=["boxes"], dependencies=[Depends(DECLARED)],
                         responses=refused("a department's token: the boxes are for operators and admins"),
                         route_class=JsonBody)


@boxes_router.get("", response_model=BoxesView)
def list_boxes(store: Store = Depends(get_store), tables: Tables = Depends(get_tables),
               who: Principal = Depends(reader)):
    """Each edge box as its latest heartbeat tells it (``/ui/boxes`` shows the same); for operators and admins. An
    operator gets the boxes with a camera in its grid subtree, and of each those cameras alone; an admin all."""
    if who.role not in boxes.READERS:
        raise HTTPException(403, "the boxes are for operators and admins")
    now, views = boxes.listed(store, scope(who, tables).get("grids"))
    return {"now": wire.iso(now), "clock_limit_s": wire.MAX_CLOCK_SKEW_S,
            "boxes": [dict(v, heard_at=iso(v["heard_at"]), refused_at=iso(v["refused_at"]),
                           twin_at=iso(v["twin_at"])) for v in views]}


@boxes_router.delete("/{box}", status_code=204, response_class=Response, responses={
        **refused("an operator's or a department's token: only admins remove a box"),
        404: {"description": "no such box is kept (never heard, or removed already)"}})
def remove_box(box: BoxId, store: Store = Depends(get_store), who: Principal = Depends(actor)):
    """Remove a box from ``/boxes`` and ``/ui/boxes`` (a retired box, listed as silent until then); for admins, the
    log says who. Nothing bans it: a status message from it again (a heartbeat, its stop) lists it again."""
    if who.role not in boxes.REMOVERS:
        raise HTTPException(403, "only admins remove a box")
    if not boxes.remove(store, box, f"{who.role.value}:{who.name}"):
        raise HTTPException(404, f"no box {box!r} is kept")
    return Response(status_code=204)


reports_router = APIRouter(prefix="/reports", tags=["reports"], dependencies=[Depends(DECLARED)], route_class=JsonBody)


@reports_router.get("/{kind}", response_model=Report,
                    responses={404: {"description": "a kind other than daily or weekly"}})
def report(kind: str, day: Annotated[str | None, Query(alias="date", max_length=10, pattern="^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
                                                      description="YYYY-MM-DD in the city's time zone")] = None,
           store: Store = Depends(get_store), tables: Tables = Depends(get_tables), who: Principal = Depends(reader)):
    if kind not in ("daily", "weekly"):
        raise HTTPException(404, "reports are daily or weekly")
    now = time.time()
    try:
        start, end = period(kind, day, now)
    except ValueError as exc:
        raise HTTPException(422, f"date {day!r}: {exc}") from None
    rows, figures = report_figures(who, store, tables, start, end, now)
    judged = verdicts.latest(store, [r["id"] for r in rows])
    return {"kind": kind, "from": wire.iso(start), "to": wire.iso(end), **figures,
            "machine": machine_precision(rows, judged, start, end)}


HEALTH_DOWN = {503: {"description": "a part is down (broker, database, ingest, clock): the same body, `down` names them",
                     "content": {"application/json": {"schema": {"type": "object"}}}}}
DATABASE_DOWN = {503: {"description": "the database did not answer (security.database_unavailable): try again after "
                                      "Retry-After seconds"}}
UPLOADS = r"(/ui)?/cases/[^/]+/photos"  # the API's and the case page's photo: 8 MB, read by the route itself


def removed_named(request: Request) -> None:
    """Each request's first: the tables know what the departments taken out of them that cases name were called
    (``Store.removed_departments``, as of a minute ago at most). A database that does not answer leaves them as they
    were: the route's own read says so, and ``/health`` answers on."""
    app = request.app
    try:
        removed = app.state.store.removed_departments(app.state.tables.department_ids, time.time())
    except OperationalError:
        return
    if removed != app.state.tables.removed:
        app.state.tables = app.state.tables.with_removed(removed)


OPEN311_ERRORS = {"application/json": {"schema": {
    "type": "array", "items": {"type": "object", "required": ["code", "description"],
                               "properties": {"code": {"type": "integer"}, "description": {"type": "string"}}}}},
    "text/xml": {"schema": {"type": "string", "description": "<errors><error><code/><description/></error></errors>"}}}


def errors_described(schema: dict) -> dict:
    """``schema`` (/openapi.json) with the body of each error it lists: ``Refusal`` (``{"detail": "..."}``), a 422
    either that or FastAPI's list of the values refused; on Open311's paths the spec's errors, JSON or XML as the
    path names, a bad value its 400 (never FastAPI's 422). A client made from it had no shape for any error."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Refusal"] = Refusal.model_json_schema()
    refusal = {"$ref": "#/components/schemas/Refusal"}
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            responses = operation["responses"]
            if path.startswith("/open311/"):
                responses.pop("422", None)
                responses["400"] = {"description": "a parameter's value the spec or the gateway does not take"}
                if "{request_id}" in path:
                    responses["404"] = {"description": "no such request, or one the token may not see"}
                for status, response in responses.items():  # new dicts: one response may be every route's
                    if int(status) >= 400:
                        responses[status] = dict(response, content=OPEN311_ERRORS)
                continue
            for status, response in responses.items():
                if status == "422":
                    listed = response.get("content", {}).get("application/json", {}).get("schema")
                    body = {"anyOf": [s for s in (listed, refusal) if s]}
                    responses[status] = dict(response, content={"application/json": {"schema": body}})
                elif int(status) >= 400 and "content" not in response:
                    responses[status] = dict(response, content={"application/json": {"schema": refusal}})
    return schema


def create_app(store: Store, tables: Tables, public_read: bool = False, on_change=None,
               health_state: Health | None = None, on_suppressions=None,
               allowed_hosts: Sequence[str] = ("*",), jurisdiction_id: Sequence[str] | None = None,
               public_url: str | None = None) -> FastAPI:
    # /openapi.json describes the API; no /docs or /redoc: FastAPI's pages load their script from a CDN
    # (blank on a city's intranet) and need an inline one, which no page of the gateway's CSP runs
    app = FastAPI(title="xueliang gateway", version="1", docs_url=None, redoc_url=None, responses=DATABASE_DOWN,
                  dependencies=[Depends(removed_named)])
    app.add_middleware(HeadAsGet)
    app.add_middleware(BodyCap, uploads=UPLOADS)
    # a Host not listed (http.allowed_hosts) is a 400 before anything reads the request; a listed
    # www. name does not redirect the bare one to it (www_redirect), a host not listed is refused
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts), www_redirect=False)
    # outermost, so that 400 has the headers too: it reads nothing of the request, it adds to the answer's head
    app.add_middleware(SecurityHeaders)
    # Open311's paths answer every error in the spec's format (a bad value: its 400, as its own checks answer)
    app.add_exception_handler(RequestValidationError, in_spec_format(validation_error, input_problems, 400))
    app.add_exception_handler(OperationalError, in_spec_format(database_unavailable, database_down))
    app.add_exception_handler(storage.StoreClosed, in_spec_format(gateway_stopping, str))  # a request past the stop
    app.add_exception_handler(Exception, server_error)  # Starlette's error middleware calls it, outermost
    # /ui/ in Chinese, Open311's in the spec's format, the rest FastAPI's JSON
    app.add_exception_handler(StarletteHTTPException, in_spec_format(not_a_page))
    app.state.store, app.state.tables, app.state.public_read = store, tables, public_read
    app.state.jurisdiction_id = jurisdiction_id  # Open311's; None: the host the gateway is reached by
    app.state.public_url = public_url  # what absolute URLs it hands out start with; None: the request's own address
    app.state.on_change = on_change or (lambda case_id: None)
    app.state.on_suppressions = on_suppressions or (lambda box: None)  # a box's list changed: send it
    routers = (cases_router, dead_router, reports_router, suppressions_router, boxes_router, open311)
    for router in routers:
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    @app.get("/ui", include_in_schema=False)
    @app.get("/ui/", include_in_schema=False)
    def home() -> RedirectResponse:
        """The gateway's bare address, as a person types it into a browser: the cases page (the sign-in first where
        there is no session). It answered the API's JSON 404, and ``/ui`` the pages' 404."""
        return RedirectResponse("/ui/cases", 303)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(PAGE_ICON, media_type="image/x-icon")

    @app.get("/health", tags=["health"], openapi_extra=TOKEN_OPTIONAL, responses=HEALTH_DOWN)
    def health(response: Response, who: Principal | None = Depends(bearer)) -> dict:
        """``ok``, or 503 naming the parts that are down (broker, database, ingest, clock). Without a
        token only the states; with one how many cases it may see too, and with an admin's the parts' details
        (errors, times, the boxes ahead of the clock)."""
        now = time.time()
        # the database's writes as ingest found them; an API without a gateway process: the read below only
        parts = health_state.parts(now) if health_state else {"database": {"state": "ok"}}
        try:
            store.check_file()  # a SQLite file deleted under the gateway still answers reads
            cases = store.count("cases") if who is None else count_found(store, tables, who)
        except Exception as exc:
            cases = None
            parts["database"] |= {"state": "down", "last_error": f"{type(exc).__name__}: {exc}"[:300]}
        down = sorted(name for name, part in parts.items() if part["state"] != "ok")
        if down:
            response.status_code = 503
        out = {"status": "down" if down else "ok", "down": down}
        states = {name: {"state": part["state"]} for name, part in parts.items()}
        if who is None:
            return out | {"parts": states}
        if who.role != Role.ADMIN:  # the details name hosts, paths, the driver's words and boxes: an admin's alone
            return out | {"cases": cases, "parts": states}
        shown = {name: {k: iso(v) if k.endswith(("_at", "since")) else v for k, v in part.items()}
                 for name, part in parts.items()}
        return out | {"cases": cases, "parts": shown}

    @app.get("/metrics", tags=["health"], response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics of this gateway process (messages by outcome, ingest failures, notices)."""
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    app.include_router(web_router)
    app.include_router(workbench_router)

    def openapi() -> dict:  # the routers' own routes: the app's are wrapped once included (FastAPI 0.165)
        schema = FastAPI.openapi(app)
        if public_read:
            token_optional_for_public_reads(schema, [r for router in routers for r in router.routes])
        return errors_described(refusals_described(schema))

    app.openapi = openapi
    return app
