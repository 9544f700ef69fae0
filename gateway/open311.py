"""Open311 GeoReport v2, read-only: the city's categories as services, cases as service requests,
for third-party tools (https://wiki.open311.org/GeoReport_v2).

Both formats of the spec: ``.xml`` (its default) and ``.json``. ``requests`` takes the spec's
filters: ``service_request_id`` (comma-delimited; overrides the others), ``service_code`` and
``status`` (comma-delimited), ``start_date``/``end_date`` on ``requested_datetime`` (W3C times,
e.g. ``2026-12-01T00:00:00Z``, or days; without a zone the city's; at most 90 days apart, the last 90 days when
neither is given). At most the spec's 1,000 requests an answer, newest first: ``page`` (from 1) and ``per_page`` (at
most 1,000, the default), the names SeeClickFix's API and the R client r311 use, choose a page, and while another
follows, the answer's ``Link`` header names it (``rel="next"``, RFC 8288): the spec's body has no place for it, and the
list was cut at 1,000 with nothing said.
Errors are the spec's ``[{"code", "description"}]`` (``<errors>`` in XML), whatever answers them (``in_spec_format``:
a missing token, a value FastAPI refuses, a path or method it has no route for). Services are public;
requests take the API's token (``Authorization: Bearer``), and so does ``media_url`` (see the README).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import URL

from gateway.auth import Principal, case_scope, reader, unknown_filter, visible_case
from gateway.deadlines import city_time
from gateway.open311view import Service, ServiceRequest
from gateway.presentation import MAX_ID, georeport, georeport_service, open311_xml, query_checked
from gateway.workflow import CaseState
from xueliang import wire



def jurisdiction_refused(asked: str | None, configured: Sequence[str] | None, host: str) -> str | None:
    """Why a GeoReport ``jurisdiction_id`` is not the one jurisdiction this server serves, or None: one of the ids
    ``configured`` (``http.jurisdiction_id``), else the ``host`` name it is reached by (the spec's ids are domains,
    ``city.gov``), in any case as host names are, or none given (the spec lets a server of one jurisdiction ignore it).

    >>> jurisdiction_refused("GW.city.example", None, "gw.city.example"), jurisdiction_refused("", None, "gw")
    (None, None)
    >>> jurisdiction_refused("tianjin", None, "gw.city.example")
    "jurisdiction_id: this server serves one jurisdiction, gw.city.example (the host it is reached by): write that, or leave jurisdiction_id out; not 'tianjin'"
    >>> jurisdiction_refused("127.0.0.1", ["tianjin.gov.cn", "xl.tianjin.gov.cn"], "127.0.0.1")
    "jurisdiction_id: this server serves one jurisdiction, tianjin.gov.cn (or xl.tianjin.gov.cn): write that, or leave jurisdiction_id out; not '127.0.0.1'"
    """
    served = list(configured or [host])
    if asked is None or not asked.strip() or asked.strip().lower() in {s.lower() for s in served}:
        return None
    named = served[0] + (f" (or {', '.join(served[1:])})" if served[1:] else "")
    where = "" if configured else " (the host it is reached by)"
    return (f"jurisdiction_id: this server serves one jurisdiction, {named}{where}: write that, "
            f"or leave jurisdiction_id out; not {asked[:60]!r}")


def one_jurisdiction(request: Request, jurisdiction_id: Annotated[str | None, Query(
        max_length=253, description="the city's id (the gateway's http.jurisdiction_id, else the host name it is "
                                    "reached by), or none (it serves one jurisdiction)")] = None) -> None:
    """Each path's ``jurisdiction_id``: another city's (a client that keeps several, one entry written wrong) was
    answered with this city's services and requests as if they were that city's. The spec's 404 for an id not found."""
    if problem := jurisdiction_refused(jurisdiction_id, request.app.state.jurisdiction_id, request.url.hostname or ""):
        raise HTTPException(404, problem)


open311 = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"], dependencies=[Depends(query_checked(
    declared_only=False, several="; the spec's lists are one value, comma-delimited (service_code=a,b)")),
    Depends(one_jurisdiction)])
Format = Annotated[str, Path(pattern="^(json|xml)$", description="xml (the spec's default) or json")]
CommaList = Annotated[str | None, Query(max_length=2000, pattern=r"^[^\x00-\x1f\x7f]*$")]
W3Time = Annotated[str | None, Query(max_length=40, description="W3C date-time, e.g. 2026-12-01T00:00:00Z, or a day; "
                                                                 "without a zone, Beijing time")]
MAX_SPAN_S = 90 * 86400
MAX_REQUESTS = 1000  # an answer's, at most (the spec's "first 1000 requests")
Page = Annotated[int, Query(ge=1, le=MAX_ID, description="which page of the requests, from 1 (newest first); the "
                                                         "answer's Link header names the next, while there is one")]
PerPage = Annotated[int, Query(ge=1, le=MAX_REQUESTS, description="requests a page, at most 1000 (the spec's)")]
CLOSED = [CaseState.CLOSED.value, CaseState.REJECTED.value]
OPEN = [s.value for s in CaseState if s.value not in CLOSED]


def described(model: type, root: str, item: str, headers: dict | None = None) -> dict:
    """The 200 of a path answering a list of ``model``, for /openapi.json: JSON as ``model`` describes each (its
    fields in the order they go out), XML as the spec has it, ``<root><item>...``. Described only, not a response
    model: the answer goes out as built (``answer``), in the format the path names."""
    return {200: {"model": list[model], "description": f"a list of {item}s: JSON (.json) or the spec's XML (.xml)",
                  "content": {"text/xml": {"schema": {
                      "type": "string", "description": f"<{root}><{item}>...</{item}></{root}>, an element a field "
                                                       "of the JSON's (an empty one for null)"}}},
                  **({"headers": headers} if headers else {})}}


NEXT_PAGE = {"Link": {"description": '<the next page\'s address>; rel="next", while another page follows',
                      "schema": {"type": "string"}}}


class Open311Error(Exception):
    def __init__(self, code: int, description: str):
        super().__init__(description)
        self.code, self.description = code, description


def answer(fmt: str, root: str, item: str, items: list[dict], status_code: int = 200) -> Response:
    if fmt == "xml":
        return Response(open311_xml(root, item, items), status_code, media_type="text/xml; charset=utf-8")
    return JSONResponse(items, status_code)


def error(fmt: str, exc: Open311Error) -> Response:
    return answer(fmt, "errors", "error", [{"code": exc.code, "description": exc.description}], exc.code)


def in_spec_format(handler: Callable, describe: Callable[[Exception], str] = lambda exc: str(exc.detail),
                   status: int | None = None) -> Callable:
    """The app's exception ``handler``, whose answer on Open311's paths is the spec's error instead, in the format the
    path names (XML, the spec's default, where it names none): ``describe(exc)`` its description, ``status`` its code
    (the handler's where None), the handler's ``WWW-Authenticate``, ``Allow`` and ``Retry-After`` kept. A missing
    token, an over-long value and an unknown path were FastAPI's ``{"detail": ...}``, JSON on an ``.xml`` path too,
    which a GeoReport client reads as no error it knows (the one on an ``.xml`` path as no XML at all)."""
    async def handle(request: Request, exc: Exception) -> Response:
        answer = await handler(request, exc)  # it logs what it logs
        path = request.url.path
        if not path.startswith(f"{open311.prefix}/"):
            return answer
        spec = error("json" if path.endswith(".json") else "xml", Open311Error(status or answer.status_code, describe(exc)))
        for name in ("www-authenticate", "allow", "retry-after"):
            if name in answer.headers:
                spec.headers[name] = answer.headers[name]
        return spec
    return handle


def input_problems(exc: RequestValidationError) -> str:
    """What FastAPI refused in a request, as a spec error's description: each parameter and why."""
    return "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}"
                     for e in exc.errors())[:500]


def _items(text: str | None, what: str) -> list[str] | None:
    if text is None or not text.strip():
        return None
    values = [v.strip() for v in text.split(",") if v.strip()]
    if len(values) > 100:
        raise Open311Error(400, f"{what}: at most 100 values")
    return values


def _time(text: str | None, what: str) -> float | None:
    """A ``start_date`` or ``end_date``: a W3C date-time, or a day; without a zone the city's (``city_time``)."""
    if text is None or not text.strip():
        return None
    try:
        return city_time(text.strip())
    except wire.WireError as exc:
        # a '+' left as it is in a URL's query arrives as a space: "+08:00", Beijing's own offset, most of all
        plus = "; a '+' in a URL's query is read as a space: write it %2B" if " " in text.strip() else ""
        raise Open311Error(400, f"{what}: {exc}; write a W3C date-time such as 2026-12-01T00:00:00Z{plus}") from None


def date_range(start_date: str | None, end_date: str | None, now: float) -> tuple[float, float]:
    """The ``requested_datetime`` range the spec's filters ask for (inclusive), at most 90 days.

    >>> start, end = date_range("2026-12-01T00:00:00+08:00", None, now=0.0)
    >>> wire.iso(start), (end - start) / 86400
    ('2026-11-30T16:00:00.000Z', 90.0)
    """
    start, end = _time(start_date, "start_date"), _time(end_date, "end_date")
    if start is None and end is None:
        end = now
    if start is None:
        start = end - MAX_SPAN_S
    if end is None:
        end = start + MAX_SPAN_S
    if end < start:
        raise Open311Error(400, f"end_date {end_date} is before start_date {start_date}")
    if end - start > MAX_SPAN_S:
        raise Open311Error(400, "start_date and end_date may not span more than 90 days")
    return start, end


def as_reached(url: URL, public_url: str | None) -> URL:
    """``url``, a request's, as its clients reach it: ``public_url`` (``http.public_url``) in place of its scheme, host
    and port, its path before ``url``'s. Behind a proxy those are the proxy's upstream (uvicorn takes the scheme from
    ``X-Forwarded-Proto`` only from a proxy on the same machine, the host from nothing), and a client cannot reach it.

    >>> as_reached(URL("http://127.0.0.1:8080/open311/v2/requests.json?page=2"), "https://xl.tianjin.gov.cn/")
    URL('https://xl.tianjin.gov.cn/open311/v2/requests.json?page=2')
    >>> as_reached(URL("http://127.0.0.1:8080/"), "https://tianjin.gov.cn/xl"), as_reached(URL("http://gw/"), None)
    (URL('https://tianjin.gov.cn/xl/'), URL('http://gw/'))
    """
    if public_url is None:
        return url
    return URL(public_url.rstrip("/") + url.path + (f"?{url.query}" if url.query else ""))


def next_page(url: URL, page: int, window: tuple[float, float] | None) -> str:
    """The address of the page after ``page`` of the requests ``url`` asked for; ``window``, the last 90 days its
    first page took (it gave no dates), is kept, so a case opened meanwhile does not push one into the next page twice.

    >>> next_page(URL("http://gw/requests.json?status=open&page=2"), 2, None)
    'http://gw/requests.json?status=open&page=3'
    >>> next_page(URL("http://gw/requests.json"), 1, (1759449600.0, 1767225600.0))
    'http://gw/requests.json?page=2&start_date=2025-10-03T00%3A00%3A00.000Z&end_date=2026-01-01T00%3A00%3A00.000Z'
    """
    pinned = {"start_date": wire.iso(window[0]), "end_date": wire.iso(window[1])} if window else {}
    return str(url.include_query_params(page=page + 1, **pinned))


def service_requests(request: Request, who: Principal, service_request_id: str | None, service_code: str | None,
                     start_date: str | None, end_date: str | None, status: str | None, page: int = 1,
                     per_page: int = MAX_REQUESTS) -> tuple[list[dict], str | None]:
    """One page of the requests ``who`` may see, and the address of the next page (None after the last)."""
    store, tables = request.app.state.store, request.app.state.tables
    s = case_scope(who, tables)
    query: dict = {"department": s.get("department"), "grids": s.get("grids"), "hidden_states": s.get("hidden_states"),
                   "limit": per_page + 1, "offset": (page - 1) * per_page}  # one more: is there a next page
    window = None
    ids = _items(service_request_id, "service_request_id")
    if ids is not None:  # the spec: it overrides all other arguments
        # ASCII digits: str.isdigit() holds for "²", which int() refuses
        if not all(i.isascii() and i.isdigit() and 1 <= int(i) <= MAX_ID for i in ids):
            raise Open311Error(400, f"service_request_id: comma-delimited request numbers (1 to {MAX_ID}), not "
                                    f"{service_request_id[:60]!r}")
        query["ids"] = [int(i) for i in ids]
    else:
        query["codes"] = _items(service_code, "service_code")
        if query["codes"] and (problem := unknown_filter(store, tables, who, "service_code", query["codes"],
                                                             time.time())):
            raise Open311Error(400, f"service_code {problem} (services.xml lists the city's)")
        statuses = _items(status, "status")
        if statuses is not None:
            if not set(statuses) <= {"open", "closed"}:
                raise Open311Error(400, f"status: open or closed, comma-delimited, not {status!r}")
            query["states"] = (OPEN if "open" in statuses else []) + (CLOSED if "closed" in statuses else [])
        # to the millisecond, as a next page's address writes the window it keeps
        query["created_from"], query["created_to"] = date_range(start_date, end_date, math.floor(time.time() * 1e3) / 1e3)
        if not (start_date or "").strip() and not (end_date or "").strip():
            window = query["created_from"], query["created_to"]
    rows = store.list_cases(**query)
    public_url = request.app.state.public_url
    after = next_page(as_reached(request.url, public_url), page, window) if len(rows) > per_page else None
    rows = rows[:per_page]
    updated = store.last_changes([r["id"] for r in rows])
    base = str(as_reached(request.base_url, public_url))
    return [georeport(r, tables, base, updated.get(r["id"])) for r in rows], after


@open311.get("/services.{fmt}", responses=described(Service, "services", "service"))
def services(request: Request, fmt: Format):
    """The city's categories (``service_code`` is the city's category code, ``group`` its department);
    public, like the tables they come from."""
    return answer(fmt, "services", "service", [georeport_service(c) for c in request.app.state.tables.categories])


@open311.get("/requests.{fmt}", responses=described(ServiceRequest, "service_requests", "request", NEXT_PAGE))
def requests_(request: Request, fmt: Format, who: Principal = Depends(reader), service_request_id: CommaList = None,
              service_code: CommaList = None, start_date: W3Time = None, end_date: W3Time = None,
              status: CommaList = None, page: Page = 1,
              per_page: PerPage = MAX_REQUESTS):
    """Cases the token may see as service requests, newest first, a page of at most 1000; the Link header names
    the next page while there is one."""
    try:
        items, after = service_requests(request, who, service_request_id, service_code, start_date, end_date, status,
                                        page, per_page)
    except Open311Error as exc:
        return error(fmt, exc)
    response = answer(fmt, "service_requests", "request", items)
    if after is not None:
        response.headers["Link"] = f'<{after}>; rel="next"'
    return response


@open311.get("/requests/{request_id}.{fmt}",
             responses=described(ServiceRequest, "service_requests", "request"))
def request_one(request: Request, request_id: Annotated[int, Path(ge=1, le=MAX_ID)], fmt: Format,
                who: Principal = Depends(reader)):
    store, tables = request.app.state.store, request.app.state.tables
    try:
        row = visible_case(store, tables, who, request_id)
    except HTTPException:
        return error(fmt, Open311Error(404, f"no service request {request_id}"))
    base = str(as_reached(request.base_url, request.app.state.public_url))
    item = georeport(row, tables, base, store.last_changes([row["id"]]).get(row["id"]))
    return answer(fmt, "service_requests", "request", [item])
