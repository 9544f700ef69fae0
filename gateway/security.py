"""What every HTTP response carries, and how a request body is read: with a cap, as it streams.

Bodies: ``BodyCap`` refuses any body over ``MAX_BODY_BYTES`` (413) before the app reads it, whoever
sends it; the photo uploads, which take more, read theirs with ``read_capped`` and a cap of their own. A JSON
body is read as the wire reads a message (``JsonBody``: UTF-8, strict JSON, each key once) and its faults said.

Headers: ``Cache-Control: private, no-store`` unless a route says otherwise (only ``/ui/live.js``
does): evidence, photos, cases and pages show streets, people and number plates, and a command
centre's shared machines and proxies must keep none of them; ``Vary: Authorization, Cookie``: an
answer is its reader's (a case a department may not see is "another case" to it; ``/health``'s details
are an admin's), so a cache that keeps one despite ``no-store`` keys it by its reader; ``nosniff``
(an uploaded photo is never run as HTML), a Content-Security-Policy that
allows no framing and no script but the gateway's own files (the live case list's ``/ui/live.js``;
never an inline one, so markup that slipped into a page runs nothing), ``X-Frame-Options`` for
older browsers and a referrer policy
that sends no URL to other sites.
"""

from __future__ import annotations

import email.message
import json
import logging
import math
import re
from typing import Any

from fastapi import HTTPException, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy.exc import OperationalError
from starlette.datastructures import Headers, MutableHeaders
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.auth import actor, bearer, reader
from gateway.storage import StoreClosed
from xueliang import wire

log = logging.getLogger(__name__)

CSP = ("default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self'; style-src 'unsafe-inline'; "
       "form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
NO_STORE = "private, no-store"
VARY = ("Authorization", "Cookie")  # who reads: a token, or a page's session
HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
           "Cross-Origin-Resource-Policy": "same-origin", "Content-Security-Policy": CSP}  # on every answer
# a JSON action or verdict, a sign-in or case form: a 2,000-character note is a few kB
MAX_BODY_BYTES = 1 << 20


class SecurityHeaders:
    """A pure ASGI middleware (no buffering of request or response bodies) that adds the headers."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
                if "cache-control" not in headers:
                    headers["Cache-Control"] = NO_STORE
                for name in VARY:
                    headers.add_vary_header(name)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HeadAsGet:
    """A pure ASGI middleware: HEAD is answered as GET without the body (RFC 9110 §9.3.2: the same headers, its
    Content-Length too). FastAPI routes only the methods a route names, and every GET here answered HEAD with 405: a
    city's uptime checker (``curl -I /health``) and link checkers read the gateway as down."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_head(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_head)


class BodyCap:
    """A pure ASGI middleware: a request body over ``cap`` bytes is refused with 413, a declared
    Content-Length before a byte is read, a chunked body as soon as it passes the cap. FastAPI reads
    (and parses) a JSON body whole before any dependency runs, the token check too: a 400 MB body
    without a token cost the gateway 1.2 GB before its 401. Paths matching ``uploads`` (photos) are
    left to their routes, which read with ``read_capped`` after checking who sends."""

    def __init__(self, app: ASGIApp, cap: int = MAX_BODY_BYTES, uploads: str = r"(?!)"):
        self.app, self.cap, self.uploads = app, cap, re.compile(uploads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.uploads.fullmatch(scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self.cap:
            too_large = json.dumps({"detail": f"a request body may be at most {self.cap:,} bytes; "
                                              f"this one says {int(declared):,}"})
            await Response(too_large, 413, media_type="application/json")(scope, receive, send)
            return
        received = 0

        async def capped() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.cap:  # the app's exception handlers answer 413 (a page's as a page)
                raise HTTPException(413, f"a request body may be at most {self.cap:,} bytes")
            return message

        await self.app(scope, capped, send)


def is_json(content_type: str | None) -> bool:
    """Whether a request's Content-Type is JSON's, as FastAPI reads it: ``application/json`` or ``application/*+json``.

    >>> is_json("application/json; charset=utf-8"), is_json("application/merge-patch+json"), is_json("text/plain")
    (True, True, False)
    """
    declared = email.message.Message()
    declared["content-type"] = content_type or ""
    subtype = declared.get_content_subtype()
    return declared.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def read_json(body: bytes) -> Any:
    """A request's JSON body as ``wire.loads`` reads an MQTT message (UTF-8, no NaN, each key once in an object), or
    a 422 (``RequestValidationError``) saying why not: where the JSON breaks, or the key written twice.

    >>> try:
    ...     read_json(b'{"action": "acknowledge", "action": "escalate"}')
    ... except RequestValidationError as exc:
    ...     print(exc.errors()[0]["loc"], exc.errors()[0]["msg"])
    ('body', 'action') not JSON: key 'action' is written twice in one object; write it once
    """
    try:
        return wire.loads(body)
    except wire.RepeatedKey as exc:
        raise RequestValidationError([{"type": "repeated_key", "loc": ("body", exc.key[:100]), "input": None,
                                       "msg": f"{exc}; write it once"}]) from None
    except wire.WireError as exc:
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body",), "input": None, "msg": str(exc)}]) from None


def unread_body(content_type: str | None, body: bytes) -> Exception | None:
    """Why FastAPI found no JSON body where a route takes one, in words (it said "Input should be a valid dictionary"
    or "Field required"): a Content-Type other than JSON's, 415, or an empty body; None where it read one."""
    if body and not is_json(content_type):
        said = f"not {content_type[:60]!r}" if content_type else "this one has none"
        return HTTPException(415, f"send the body as JSON, with Content-Type: application/json ({said})")
    if not body:
        return RequestValidationError([{"type": "missing", "loc": ("body",), "input": None, "msg":
                                        'the body is empty: send a JSON object (e.g. {"action": "acknowledge"}) '
                                        "with Content-Type: application/json"}])
    return None


def token_check(dependant: Dependant):
    """The check of the token a route depends on (``actor`` or ``reader``, at any depth), or None."""
    for dependency in dependant.dependencies:
        if dependency.call in (actor, reader):
            return dependency.call
        if found := token_check(dependency):
            return found
    return None


class JsonBody(APIRoute):
    """A route whose body is JSON: the token is checked before a byte of the body is read (FastAPI reads and parses
    the body before any dependency runs: anyone could have the gateway read and parse a 1 MiB body on its event loop
    before the 401, and hold a connection open waiting for a body it declared and never sent); then ``read_json``
    reads it, and what is wrong with it is said in words: a key written twice (FastAPI keeps the last, another
    reader of the same bytes the first: ``{"action": "acknowledge", "action": "escalate"}`` escalated), JSON that
    does not parse (its error and where; "JSON decode error") or is not UTF-8 ("There was an error parsing the
    body", a 400), no Content-Type or another, or no body (as FastAPI found them: ``unread_body``).
    A body ``read_json`` takes, FastAPI's own parse of the same bytes reads the same."""

    def get_route_handler(self):
        handler = super().get_route_handler()
        if self.body_field is None or isinstance(self.body_field.field_info, params.Form):
            return handler  # no body (a photo's route reads its own) or a page's form
        check = token_check(self.dependant)

        async def route(request: Request) -> Response:
            if check is not None:  # the route's own dependency checks it again: one more lookup of the token's row
                await run_in_threadpool(check, request, await run_in_threadpool(bearer, request))
            try:
                content_type, body = request.headers.get("content-type"), await request.body()
            except ClientDisconnect:  # FastAPI's own read said 400 "error parsing the body", no traceback logged
                raise HTTPException(400, "the body was cut off: the connection closed before its end") from None
            if body and is_json(content_type):
                read_json(body)
            try:
                return await handler(request)
            except RequestValidationError as exc:
                if any(tuple(e.get("loc", ())) == ("body",) for e in exc.errors()):
                    raise unread_body(content_type, body) or exc from None
                raise

        return route


async def read_capped(request: Request, cap: int, what: str = "the body") -> bytes:
    """The request body, refused with 413 as soon as it is longer than ``cap`` bytes: a declared
    Content-Length is judged before a byte is read, a chunked body while it streams."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isascii() or not declared.isdigit():
            raise HTTPException(400, f"Content-Length {declared[:40]!r} is not a number of bytes")
        if int(declared) > cap:
            raise HTTPException(413, f"{what} may be at most {cap:,} bytes; this one says {int(declared):,}")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise HTTPException(413, f"{what} may be at most {cap:,} bytes")
            chunks.append(chunk)
    except ClientDisconnect:  # a phone's upload cut off on the way (a lift, a tunnel): logged as the gateway's error,
        # with its traceback, at every one; nobody is left to read the answer, which says so where it is logged
        raise HTTPException(400, f"{what} was cut off: the connection closed after {size:,} bytes") from None
    return b"".join(chunks)


async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    """422 with where and what, echoing a short input only, as strict ASCII JSON: FastAPI's own answer
    fails (a 500) on an input it cannot encode, such as a lone surrogate from a JSON escape, and a bare
    NaN echoed back is no JSON a strict parser reads."""
    detail = []
    for error in exc.errors():
        item = {"type": error.get("type"), "loc": [str(p)[:100] for p in error.get("loc", ())], "msg": error.get("msg")}
        if item["type"] == "extra_forbidden":  # pydantic's "Extra inputs are not permitted" named no field it takes
            item["msg"] = f"not a field of this body (it takes: {', '.join(body_fields(request))})"
        value = error.get("input")
        if isinstance(value, float) and not math.isfinite(value):  # as text: strict JSON has no such number
            item["input"] = str(value)
        elif isinstance(value, str | int | float | bool):
            item["input"] = value[:200] if isinstance(value, str) else value
        detail.append(item)
    return Response(json.dumps({"detail": detail}, ensure_ascii=True, allow_nan=False, default=str), 422,
                    media_type="application/json")


def body_fields(request: Request) -> list[str]:
    """The fields the body of ``request``'s route takes, as a client writes them (its model's aliases)."""
    field = getattr(request.scope.get("route"), "body_field", None)
    model = getattr(getattr(field, "field_info", None), "annotation", None)
    return [f.alias or name for name, f in getattr(model, "model_fields", {}).items()]


DATABASE_RETRY_S = 5  # Retry-After on a 503 for a database that did not answer


def database_down(error: OperationalError) -> str:
    """What a person is told when the database did not answer a request: the driver's first line, short (no SQL,
    no parameters: SQLAlchemy's own text carries both)."""
    said = str(getattr(error, "orig", None) or error).strip().splitlines()
    return f"the database did not answer ({said[0][:200] if said else type(error).__name__}); try again shortly"


async def server_error(request: Request, exc: Exception) -> Response:
    """The 500 of a fault in the gateway's own code (the traceback goes to the log, as Starlette logs it), with the
    headers every other answer has: Starlette's error middleware is outside every middleware, ``SecurityHeaders``
    too, and its bare "Internal Server Error" had none of them (no CSP, no ``no-store``)."""
    return Response(json.dumps({"detail": "the gateway failed on this request; its log says why"}), 500,
                    media_type="application/json",
                    headers={**HEADERS, "Cache-Control": NO_STORE, "Vary": ", ".join(VARY)})


async def gateway_stopping(request: Request, exc: StoreClosed) -> Response:
    """503 with ``Retry-After`` for a request that found the database closed (``Store.close``): the gateway is
    stopping, nothing was written."""
    return Response(json.dumps({"detail": str(exc)}, ensure_ascii=True), 503, media_type="application/json",
                    headers={"Retry-After": str(DATABASE_RETRY_S)})


async def database_unavailable(request: Request, exc: OperationalError) -> Response:
    """503 with ``Retry-After`` where a request found the database down (a PostgreSQL restart, a locked or
    deleted SQLite file, a full disk): it was a bare 500 "Internal Server Error" and a traceback in the log,
    which told neither the person nor a client that trying again later would do."""
    log.warning("%s %s: %s", request.method, request.url.path, database_down(exc))
    return Response(json.dumps({"detail": database_down(exc)}, ensure_ascii=True), 503,
                    media_type="application/json", headers={"Retry-After": str(DATABASE_RETRY_S)})
