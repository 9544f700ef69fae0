"""The gateway's HTTP API: an app factory and one router per resource."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from gateway.storage import Store
from xueliang import wire


class TimelineEntry(BaseModel):
    at: str
    actor: str
    action: str
    note: str | None = None


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
    deadline: str
    reported_at: str
    confidence: float
    bbox: list[float]
    evidence_url: str | None
    ended_at: str | None
    end_reason: str | None
    end_evidence_url: str | None


class CaseDetail(Case):
    timeline: list[TimelineEntry]


class DeadLetter(BaseModel):
    id: int
    received_at: str
    topic: str
    reason: str
    bytes: int


def get_store(request: Request) -> Store:
    return request.app.state.store


def _case(row: dict) -> dict:
    out = dict(row)
    for key in ("created_at", "deadline", "reported_at", "ended_at"):
        out[key] = wire.iso(row[key]) if row[key] is not None else None
    out["bbox"] = json.loads(row["bbox"])
    out["evidence_url"] = f"/cases/{row['id']}/evidence.jpg" if row["evidence_sha256"] else None
    out["end_evidence_url"] = f"/cases/{row['id']}/evidence.jpg?which=end" if row["end_evidence_sha256"] else None
    if "timeline" in row:
        out["timeline"] = [dict(e, at=wire.iso(e["at"])) for e in row["timeline"]]
    return out


cases_router = APIRouter(prefix="/cases", tags=["cases"])


@cases_router.get("", response_model=list[Case])
def list_cases(store: Store = Depends(get_store), state: str | None = None, grid: str | None = None,
               department: str | None = None, limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)):
    return [_case(r) for r in store.list_cases(state, grid, department, limit, offset)]


@cases_router.get("/{case_id}", response_model=CaseDetail)
def get_case(case_id: int, store: Store = Depends(get_store)):
    row = store.get_case(case_id)
    if row is None:
        raise HTTPException(404, f"no case {case_id}")
    return _case(row)


@cases_router.get("/{case_id}/evidence.jpg", response_class=Response,
                  responses={200: {"content": {"image/jpeg": {}}}})
def case_evidence(case_id: int, which: str = Query("start", pattern="^(start|end)$"), store: Store = Depends(get_store)):
    row = store.get_case(case_id)
    if row is None:
        raise HTTPException(404, f"no case {case_id}")
    sha = row["evidence_sha256"] if which == "start" else row["end_evidence_sha256"]
    data = store.evidence_bytes(sha) if sha else None
    if data is None:
        raise HTTPException(404, f"case {case_id}: {which} evidence has not arrived")
    return Response(data, media_type="image/jpeg")


dead_router = APIRouter(prefix="/dead-letters", tags=["dead letters"])


@dead_router.get("", response_model=list[DeadLetter])
def list_dead_letters(store: Store = Depends(get_store), limit: int = Query(100, ge=1, le=1000)):
    return [dict(r, received_at=wire.iso(r["received_at"])) for r in store.list_dead_letters(limit)]


def create_app(store: Store) -> FastAPI:
    app = FastAPI(title="xueliang gateway", version="1")
    app.state.store = store
    app.include_router(cases_router)
    app.include_router(dead_router)

    @app.get("/health", tags=["health"])
    def health() -> dict:
        return {"status": "ok", "cases": store.count("cases")}

    return app
