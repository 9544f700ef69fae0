"""The HTTP API's limits on a real SQLite gateway (and a real uvicorn where the wire matters):
permission before a photo's body, bodies capped while they stream, photos decoded, security
headers, tokens in the header only with expiry and revocation, no 500 for bad input, dead
letters paged and scoped; migrations 4 and 5 on SQLite and PostgreSQL."""

import io
import json
import logging
import select
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager
from urllib.parse import unquote

import httpx
import pytest
import uvicorn
import yaml
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import event, insert, text

from gateway import schema, storage
from gateway.api import create_app
from gateway.auth import SESSION_COOKIE, new_token, session_csrf
from gateway.config import Tables, load_tables
from gateway.images import MAX_PHOTO_BYTES
from gateway.ingest import Ingest
from gateway.storage import Store
from xueliang import services, wire
from xueliang.cli import main as cli

from .conftest import wait_until
from .test_gateway import claiming, scans
from .test_workflow import (CITY, JPEG, auth, database_url, ended, incident, jpeg_photo,  # noqa: F401 (fixtures)
                            undo_migrations_after_3)


@pytest.fixture
def city(tmp_path):
    return make_city(tmp_path, f"sqlite:///{tmp_path}/gw.sqlite")


@pytest.fixture
def city_on_both(tmp_path, database_url):  # noqa: F811 (fixture)
    """The same city on SQLite and on a real PostgreSQL (which refuses NUL and has 32-bit ids)."""
    return make_city(tmp_path, database_url)


def make_city(tmp_path, url: str):
    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump(CITY, allow_unicode=True))
    tables = load_tables(path)
    store = Store(url)
    ingest = Ingest(store, tables)
    app = create_app(store, tables)
    tokens = {"admin": new_token(store, "root", "admin"),
              "police": new_token(store, "tp", "department", department="traffic-police"),
              "sanitation": new_token(store, "san", "department", department="sanitation"),
              "op-s1": new_token(store, "op1", "operator", grid="D-S1")}
    for grid in ("D-S1-C1-G1", "D-S2-G9"):  # two police cases, far apart
        assert ingest.handle(*incident(grid=grid, location={"lat": 39.17 if grid.startswith("D-S1") else 39.0,
                                                            "lon": 117.15})) == "case_created"
    return app, store, ingest, TestClient(app), tokens


@contextmanager
def serving(app):
    """The app behind a real uvicorn on a free loopback port."""
    port = services.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 10, message="uvicorn started")
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def post_raw(port: int, path: str, headers: dict, chunks=(), limit_s: float = 10.0) -> tuple[int, int]:
    """POST over a plain socket, sending ``chunks`` (chunked encoding) only while the server has not
    answered yet. Returns (status, body bytes sent before the answer came)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=limit_s)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock.sendall(head.encode("latin-1"))
    sent, deadline = 0, time.monotonic() + limit_s
    try:
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0] or time.monotonic() > deadline:
                break  # the server has answered (or closed): stop sending
            try:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        select.select([sock], [], [], limit_s)
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
        return int(status_line.split()[1]), sent
    finally:
        sock.close()


def test_a_photos_permission_is_settled_before_its_body_is_read(city):
    app, store, ingest, client, tokens = city
    case_id = client.get("/cases", headers=auth(tokens["police"])).json()[0]["id"]
    huge = {"Content-Type": "image/jpeg", "Content-Length": str(300_000_000)}
    with serving(app) as port:
        # the 300 MB are never sent: each answer comes on the headers alone
        assert post_raw(port, f"/cases/{case_id}/photos", huge) == (401, 0)
        assert post_raw(port, f"/cases/{case_id}/photos", huge | auth(tokens["sanitation"])) == (404, 0)
        assert post_raw(port, f"/cases/{case_id}/photos", huge | auth(tokens["police"])) == (413, 0)
        assert post_raw(port, "/cases/99999999999/photos", huge | auth(tokens["police"])) == (422, 0)


def test_a_streamed_photo_is_cut_off_at_the_cap_not_buffered(city):
    app, store, ingest, client, tokens = city
    case_id = client.get("/cases", headers=auth(tokens["police"])).json()[0]["id"]
    chunks = (b"\xff\xd8" + b"\0" * (1 << 20) for _ in range(300))  # 300 MB, chunked, no Content-Length
    with serving(app) as port:
        status, sent = post_raw(port, f"/cases/{case_id}/photos", {"Transfer-Encoding": "chunked"} | JPEG | auth(tokens["police"]),
                                chunks, limit_s=30)
    assert status == 413
    assert MAX_PHOTO_BYTES < sent < MAX_PHOTO_BYTES + 24 * (1 << 20)  # the cap plus what socket buffers held
    assert store.count("evidence") == 0


@pytest.mark.parametrize("path", ["/cases/{id}/actions", "/cases/{id}/verdict", "/ui/cases/{id}/actions", "/ui/login"])
def test_a_json_or_form_body_over_the_cap_is_refused_on_its_headers_token_or_not(city, path):
    """FastAPI read and parsed a JSON body whole before the token was checked: 400 MB without a token
    cost the gateway 1.2 GB of memory before its 401."""
    app, store, ingest, client, tokens = city
    case_id = client.get("/cases", headers=auth(tokens["admin"])).json()[0]["id"]
    path = path.format(id=case_id)
    huge = {"Content-Type": "application/json", "Content-Length": str(400_000_000)}
    with serving(app) as port:
        assert post_raw(port, path, huge) == (413, 0)  # the 400 MB are never sent
        assert post_raw(port, path, huge | auth(tokens["admin"])) == (413, 0)
    r = client.post(path, headers=auth(tokens["admin"]), json={"action": "acknowledge", "note": "x" * (2 << 20)})
    assert r.status_code == 413 and "at most 1,048,576 bytes" in r.text


def test_a_streamed_json_body_is_cut_off_at_the_cap_not_buffered(city):
    app, store, ingest, client, tokens = city
    case_id = client.get("/cases", headers=auth(tokens["admin"])).json()[0]["id"]
    chunks = (b'{"note": "' if i == 0 else b"x" * (1 << 20) for i in range(300))  # 300 MB, no Content-Length
    with serving(app) as port:
        status, sent = post_raw(port, f"/cases/{case_id}/actions", auth(tokens["admin"])  # without one: 401, unread
                                | {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}, chunks, limit_s=30)
    assert status == 413
    assert sent < 24 * (1 << 20)  # the 1 MiB cap plus what socket buffers held
    r = client.post(f"/cases/{case_id}/actions", headers=auth(tokens["police"]), json={"action": "acknowledge"})
    assert r.status_code == 200 and r.json()["state"] == "handling"  # a body under the cap goes through


@pytest.mark.parametrize("body, said", [
    ('{"verdict": "correct", "bbox": [NaN, 0, 1, 1]}', "not JSON: NaN is not a JSON number"),
    ('{"verdict": "correct", "bbox": [1e999, 0, 1, 1]}', "not JSON: number 1e999 is out of range"),
    ('{"action": "acknowledge", "department": -Infinity}', "not JSON: -Infinity is not a JSON number"),
])
def test_a_body_with_nan_or_infinity_is_a_422_in_strict_json(city, body, said):
    """The 422 echoed the input as a bare NaN, which strict JSON parsers refuse; the body is read as strict JSON now,
    as the wire's messages are, and refused for it."""
    app, store, ingest, client, tokens = city
    case_id = client.get("/cases", headers=auth(tokens["admin"])).json()[0]["id"]
    path = f"/cases/{case_id}/{'verdict' if 'verdict' in body else 'actions'}"
    r = client.post(path, content=body, headers={"Content-Type": "application/json"} | auth(tokens["admin"]))
    assert r.status_code == 422

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    (detail,) = json.loads(r.text, parse_constant=refuse)["detail"]
    assert detail["loc"] == ["body"] and detail["msg"] == said, detail


def bomb_header(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header claims ``width`` x ``height`` pixels."""
    return claiming(jpeg_photo((16, 16)), width, height)


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "PNG")
    return out.getvalue()


# how an iPhone's photo begins (an ISO media file of brand heic): sent from its files as IMG_0001.jpg, or as image/jpeg
HEIC = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64


@pytest.mark.parametrize("body, content_type, status, reason", [
    (b"\xff\xd8\xff\xe0<html><script>alert(document.cookie)</script></html>", "image/jpeg", 422, "not a JPEG image"),
    (jpeg_photo()[:400], "image/jpeg", 422, "not a JPEG image"),
    (png(), "image/jpeg", 422, "a PNG picture, not a JPEG: send the camera's JPEG photo, or save it as JPEG"),
    (HEIC, "image/jpeg", 422, "a HEIC/HEIF photo, not a JPEG: set the phone's camera to take JPEG (on an iPhone, "
                              "Settings > Camera > Formats > Most Compatible)"),
    (b"RIFF\x24\0\0\0WEBPVP8 " + b"\0" * 24, "application/octet-stream", 422, "a WebP picture, not a JPEG"),
    (b"", "image/jpeg", 422, "no photo: the body is empty (0 bytes)"),
    (bomb_header(8000, 8000), "image/jpeg", 422, "a photo of 8000x8000 pixels is more than 50,000,000"),
    (bomb_header(60000, 60000), "image/jpeg", 422, "a photo of more than 50,000,000 pixels"),
    (scans(500), "image/jpeg", 422, "a JPEG of 506 scans; at most 64 (a progressive JPEG has about 10)"),
    (scans(0), "image/jpeg", 201, None),
    (scans(0)[:2] + b"\xff\xfe\x00\x02" * 1_900_000 + scans(0)[2:], "image/jpeg", 422,
     "a JPEG whose header holds more than 1,000 segments"),  # 7.6 MB of empty comments: 4 s of Pillow's CPU
    (jpeg_photo(), "text/html", 415, "send the photo with Content-Type: image/jpeg (not 'text/html')"),
    (jpeg_photo(), None, 415, "send the photo with Content-Type: image/jpeg (this one has none)"),  # it was taken
    (jpeg_photo(), "", 415, "send the photo with Content-Type: image/jpeg (this one has none)"),
    (jpeg_photo(), "image/jpeg", 201, None),
    (jpeg_photo(), "application/octet-stream", 201, None),
], ids=["html-behind-jpeg-magic", "truncated", "png", "heic", "webp", "empty", "pixel-bomb", "pillow-bomb", "scan-bomb", "progressive", "segment-bomb",
        "declared-html", "undeclared", "declared-empty", "jpeg", "octet-stream"])
def test_a_photo_is_a_jpeg_that_decodes(city, body, content_type, status, reason):
    app, store, ingest, client, tokens = city
    case_id = client.get("/cases", headers=auth(tokens["police"])).json()[0]["id"]
    declared = {} if content_type is None else {"Content-Type": content_type}
    r = client.post(f"/cases/{case_id}/photos", content=body, headers=declared | auth(tokens["police"]))
    assert r.status_code == status, r.text
    if reason:
        assert reason in r.json()["detail"]
        assert store.count("evidence") == 0


def test_the_same_photo_on_two_cases_is_served_for_both(city):
    app, store, ingest, client, tokens = city
    first, second = sorted(c["id"] for c in client.get("/cases", headers=auth(tokens["police"])).json())
    photo = jpeg_photo(color="teal")
    urls = []
    for case_id in (first, second, second):  # the second case twice: one entry
        r = client.post(f"/cases/{case_id}/photos", content=photo, headers=JPEG | auth(tokens["police"]))
        assert r.status_code == 201, r.text
        urls.append([e["photo_url"] for e in r.json()["timeline"] if e["photo_url"]])
    assert len(urls[1]) == 1 and urls[1] == urls[2] and urls[0] != urls[1]
    for (url,) in urls[:2]:
        r = client.get(url, headers=auth(tokens["police"]))
        assert r.status_code == 200 and r.content == photo and r.headers["content-type"] == "image/jpeg"
    assert store.count("evidence") == 1  # the bytes are kept once
    assert client.get(urls[0][0].replace(f"/cases/{first}/", f"/cases/{first}/").replace(
        photo_sha(photo), "0" * 64), headers=auth(tokens["police"])).status_code == 404


def test_a_closed_case_takes_no_photo_until_the_centre_reopens_it(city):
    """A department's photo on a closed case was taken (201), as though it still worked on a case nobody follows: the
    case was closed on its re-check's evidence, and a problem back is the case reopened by the centre."""
    app, store, ingest, client, tokens = city
    case_id = client.get("/cases", headers=auth(tokens["police"])).json()[0]["id"]
    ended(store, ingest, case_id)  # its box stopped: an admin's close is taken (not while the camera still sees it)
    for action, token in (("acknowledge", "police"), ("feedback", "police"), ("close", "admin")):
        assert client.post(f"/cases/{case_id}/actions", json={"action": action},
                           headers=auth(tokens[token])).status_code == 200, action
    r = client.post(f"/cases/{case_id}/photos", content=jpeg_photo(), headers=JPEG | auth(tokens["police"]))
    assert r.status_code == 409 and r.json()["detail"] == (
        f"case {case_id} is closed: a photo is not added to a closed case; if the problem is back, ask the command "
        "centre to reopen it (action reopen), then add the photo"), r.text
    r = client.post(f"/cases/{case_id}/photos", content=jpeg_photo(), headers=JPEG | auth(tokens["admin"]))
    assert r.status_code == 409 and f'reopen it first (POST /cases/{case_id}/actions with {{"action": "reopen"}})' \
        in r.json()["detail"], r.text
    with serving(app) as port:  # refused on the headers, its 300 MB never read
        assert post_raw(port, f"/cases/{case_id}/photos", {"Content-Type": "image/jpeg", "Content-Length": "300000000"}
                        | auth(tokens["police"])) == (409, 0)
    page = TestClient(app)
    page.post("/ui/login", data={"token": tokens["police"]})
    shown = page.get(f"/ui/cases/{case_id}").text
    assert "<p id=photo-form>案件已结案, 不再收照片; 问题若再次出现, 由指挥中心重新打开案件后再上传。</p>" in shown
    r = page.post(f"/ui/cases/{case_id}/photos", data={"csrf": session_csrf(page.cookies[SESSION_COOKIE])},
                  files={"photo": ("IMG_0001.jpg", jpeg_photo(), "image/jpeg")})
    assert "<p id=outcome class=failed>照片未上传: 案件已结案, 不再收照片" in r.text, r.text
    assert store.count("evidence") == 0
    assert client.post(f"/cases/{case_id}/actions", json={"action": "reopen"},
                       headers=auth(tokens["admin"])).status_code == 200
    again = client.post(f"/cases/{case_id}/photos", content=jpeg_photo(), headers=JPEG | auth(tokens["police"]))
    assert again.status_code == 201, again.text
    assert "enctype=multipart/form-data id=photo-form" in page.get(f"/ui/cases/{case_id}").text  # the form is back


def photo_sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("path", ["/cases", "/cases/1", "/cases/1/evidence.jpg", "/ui/login", "/ui/cases", "/nowhere",
                                  "/openapi.json", "/docs", "/health"])
def test_every_response_carries_the_security_headers(city, path):
    app, store, ingest, client, tokens = city
    carries_the_security_headers(client.get(path, headers=auth(tokens["admin"]), follow_redirects=False))


def carries_the_security_headers(r: httpx.Response) -> None:
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY" and r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["content-security-policy"].startswith("default-src 'none'; script-src 'self';")
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_a_fault_of_the_gateways_own_is_a_500_with_the_security_headers(city):
    """Starlette's error middleware, outside every other, answered a fault in the gateway's code with a bare 500 and
    none of the headers (no CSP, no ``no-store``); its handler now sets them. A route that fails stands for the
    fault (README: no input makes a 500, so only a fault of the gateway's own does)."""
    app, store, *_ = city
    failing = create_app(store, app.state.tables)

    @failing.get("/fails")
    def fails() -> dict:
        raise RuntimeError("a fault of the gateway's own")

    r = TestClient(failing, raise_server_exceptions=False).get("/fails")
    assert r.status_code == 500 and "RuntimeError" not in r.text
    carries_the_security_headers(r)
    assert r.headers["cache-control"] == "private, no-store"


def test_a_host_not_listed_is_a_400_with_the_security_headers_before_a_case_is_read(city):
    """With ``http.public_read`` a page on the internet whose name has been pointed at the gateway's address (DNS
    rebinding) read the cases through the browser of anyone inside the city's network who opened it: nothing
    looked at the Host its requests named. Over a real uvicorn, as such a browser sends them. The 400 carries the
    headers every other answer does (it had none: the Host check was outside the middleware that adds them)."""
    app, store, *_ = city
    public = create_app(store, app.state.tables, public_read=True, allowed_hosts=["gateway.city.local", "127.0.0.1"])
    # one client, its connection kept as a browser keeps it (a client a request, each loading certificates: 5 s)
    with serving(public) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        for path in ("/cases", "/ui/cases", "/cases/1/evidence.jpg", "/open311/v2/requests.json", "/health"):
            for host in (f"evil.example:{port}", "evil.example", "127.0.0.1.evil.example", "city.local", ""):
                refused = http.get(path, headers={"Host": host})
                assert (refused.status_code, refused.text) == (400, "Invalid host header"), (path, host)
                carries_the_security_headers(refused)
            for host in (f"127.0.0.1:{port}", "gateway.city.local", f"Gateway.City.Local:{port}"):
                assert http.get(path, headers={"Host": host}).status_code in (200, 404), (path, host)
        assert {c["id"] for c in http.get("/cases", headers={"Host": "gateway.city.local"}).json()} == {1, 2}


def test_the_api_is_described_at_openapi_json_with_its_token_and_no_page_loads_a_cdn(city):
    """/docs loaded Swagger UI from a CDN (blank on a city's intranet) under a looser CSP, and its
    "Try it out" could send no token: /openapi.json, for an OpenAPI tool of one's own, says how."""
    app, store, ingest, client, tokens = city
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert client.get(path).status_code == 404, path
    described = client.get("/openapi.json").json()
    assert described["components"]["securitySchemes"]["token"] == {
        "type": "http", "scheme": "bearer", "description": "a token from `xueliang token`, as `Authorization: Bearer <token>`"}
    for path, method in (("/cases", "get"), ("/cases/{case_id}/actions", "post"), ("/open311/v2/requests.{fmt}", "get")):
        assert described["paths"][path][method]["security"] == [{"token": []}], path
    assert "security" not in described["paths"]["/open311/v2/services.{fmt}"]["get"]  # public
    health = described["paths"]["/health"]["get"]  # the token was said to be needed: it adds the details
    assert health["security"] == [{"token": []}, {}]  # OpenAPI's empty requirement: or none
    assert client.get("/health").json()["status"] == "ok" and "cases" not in client.get("/health").json()
    # with a token, how many cases it may see: the city's two for an admin, not for the operator of one street
    assert [client.get("/health", headers=auth(tokens[who])).json()["cases"] for who in ("admin", "op-s1", "sanitation")] \
        == [2, 1, 0]
    assert client.get("/cases", headers=auth(tokens["admin"])).status_code == 200  # as the scheme says
    assert client.get("/cases", headers={"Authorization": "Basic eDp5"}).json()["detail"] == \
        "the Authorization header must read 'Bearer <token>'"


def test_openapi_json_says_what_each_route_takes_and_answers_as_the_routes_do(city):
    """With ``http.public_read`` every read was still described as needing the token, and /health's 503 (a
    part down: broker, database, ingest, clock) was not described. Each operation's security is checked
    against the route itself: where the token is optional a request without one is not refused."""
    app, store, ingest, client, tokens = city
    values = {"case_id": "1", "incident_id": "x", "sha256": "0" * 64, "kind": "daily", "fmt": "json",
              "request_id": "1", "suppression_id": "1", "box": "box-1"}
    for public_read in (False, True):
        anyone = TestClient(create_app(store, app.state.tables, public_read=public_read))
        described = anyone.get("/openapi.json").json()
        optional = set()
        for path, operations in described["paths"].items():
            for method, operation in operations.items():
                url = path.format(**values)
                if {} in operation.get("security", [{}]):
                    optional.add((method, path))
                    assert anyone.request(method, url).status_code != 401, (public_read, method, url)
                else:
                    assert operation["security"] == [{"token": []}], (method, path)
                    assert anyone.request(method, url).status_code == 401, (public_read, method, url)
        reads = {("get", p) for p in ("/cases", "/cases/{case_id}", "/cases/{case_id}/evidence.jpg",
                                      "/cases/{case_id}/incidents/{incident_id}/evidence.jpg",
                                      "/cases/{case_id}/photos/{sha256}.jpg", "/dead-letters", "/boxes", "/reports/{kind}",
                                      "/suppressions", "/open311/v2/requests.{fmt}",
                                      "/open311/v2/requests/{request_id}.{fmt}")}
        public = {("get", "/health"), ("get", "/metrics"), ("get", "/open311/v2/services.{fmt}")}
        assert optional == public | (reads if public_read else set()), public_read
        assert "503" in described["paths"]["/health"]["get"]["responses"]
        assert all("503" in operation["responses"] for operations in described["paths"].values()
                   for operation in operations.values())  # every route answers 503 when the database does not



def test_openapi_json_lists_401_where_a_token_is_needed_and_403_where_a_role_is_refused_as_a_served_gateway_answers(
        city):
    """/openapi.json described neither 401 nor 403: a client made from it had no word for a missing token or a
    refused role. Over a real uvicorn, with and without ``http.public_read``, each operation lists 401 exactly where
    a request without a token gets it, and 403 exactly where a department's or an operator's token does."""
    app, store, ingest, client, tokens = city
    values = {"case_id": "1", "incident_id": "x", "sha256": "0" * 64, "kind": "daily", "fmt": "json",
              "request_id": "1", "suppression_id": "1", "box": "box-1"}
    bodies = {"/cases/{case_id}/verdict": {"verdict": "correct"}, "/cases/{case_id}/actions": {"action": "acknowledge"}}
    for public_read in (False, True):
        with serving(create_app(store, app.state.tables, public_read=public_read)) as port, \
                httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            described = http.get("/openapi.json").json()
            needing, refusing = set(), set()
            for path, operations in described["paths"].items():
                for method, operation in operations.items():
                    url, body, listed = path.format(**values), bodies.get(path), operation["responses"]
                    without = http.request(method, url, json=body).status_code
                    assert ("401" in listed) == (without == 401), (public_read, method, path, without, listed)
                    if without == 401:
                        needing.add((method, path))
                        assert listed["401"]["description"].startswith("no token, or one unknown, expired or revoked")
                    roles = {http.request(method, url, json=body, headers=auth(tokens[who])).status_code
                             for who in ("police", "op-s1")}
                    assert ("403" in listed) == (403 in roles), (public_read, method, path, roles, listed)
                    if 403 in roles:
                        refusing.add((method, path))
                        assert "'s token: " in listed["403"]["description"], listed["403"]
            assert refusing == {("post", "/cases/{case_id}/verdict"), ("post", "/cases/{case_id}/actions"),
                                ("get", "/suppressions"),
                                ("post", "/suppressions/{suppression_id}/lift"), ("get", "/dead-letters"),
                                ("get", "/boxes"), ("delete", "/boxes/{box}")}, public_read
            assert ("get", "/health") not in needing and ("get", "/open311/v2/services.{fmt}") not in needing
            assert (("get", "/cases") in needing) != public_read  # a read is public with http.public_read
            assert ("post", "/cases/{case_id}/actions") in needing  # acting needs a token all the same


def test_no_response_with_a_picture_or_a_case_may_be_kept_by_a_browser_or_proxy(city):
    """Evidence and photos show streets, people and plates; the shared machines of a command centre
    and the city's proxies kept them (no Cache-Control). Over real HTTP: every picture, case, list
    and page answers ``private, no-store``; only the live list's script may be revalidated."""
    import httpx

    from .test_presentation import jpeg, sighting

    app, store, ingest, client, tokens = city
    incident_id, start = sighting(ingest, jpeg(40), grid="D-S2-G9", location={"lat": 39.3, "lon": 117.3})
    assert ingest.handle(*start) == "case_created"
    case_id = max(c["id"] for c in client.get("/cases", headers=auth(tokens["admin"])).json())
    photo = client.post(f"/cases/{case_id}/photos", content=jpeg_photo(), headers=JPEG | auth(tokens["police"]))
    assert photo.status_code == 201, photo.text
    (photo_url,) = [e["photo_url"] for e in photo.json()["timeline"] if e["photo_url"]]
    pictures = [f"/cases/{case_id}/evidence.jpg", f"/cases/{case_id}/incidents/{incident_id}/evidence.jpg", photo_url]
    with serving(app) as port:
        base = f"http://127.0.0.1:{port}"
        signed_in = httpx.post(f"{base}/ui/login", data={"token": tokens["admin"]})
        session = {"xl_session": signed_in.cookies["xl_session"]}
        for url, kwargs in [(path, {"headers": auth(tokens["admin"])}) for path in pictures] + [
                ("/ui" + path, {"cookies": session}) for path in pictures[1:]]:  # the pages show each incident's
            r = httpx.get(base + url, **kwargs)
            assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", url
            assert r.headers["cache-control"] == "private, no-store", url
        for url in (f"/cases/{case_id}", "/cases", "/open311/v2/requests.json", "/reports/daily", "/nowhere"):
            assert httpx.get(base + url, headers=auth(tokens["admin"])).headers["cache-control"] == "private, no-store", url
        for url in (f"/ui/cases/{case_id}", "/ui/cases", "/ui/queue", "/ui/map", "/ui/live/cases", "/ui/cases/99"):
            assert httpx.get(base + url, cookies=session).headers["cache-control"] == "private, no-store", url
        assert httpx.get(f"{base}/ui/live.js").headers["cache-control"] == "no-cache"  # its own: no one's data


def test_every_answer_varies_by_who_reads_it_and_a_case_is_never_answered_not_modified(city):
    """A case's body depends on its reader (another case a department may not see is "another case"), under one ETag,
    the version If-Match guards. No cache may give one reader's body to another: every answer says it varies by
    Authorization and Cookie (a cache that ignores ``no-store`` still keys by them), and If-None-Match is never
    answered 304 from that shared tag."""
    app, store, ingest, client, tokens = city
    case_id = client.get("/cases", headers=auth(tokens["police"])).json()[0]["id"]
    client.post("/ui/login", data={"token": tokens["admin"]})
    for url, headers in [(f"/cases/{case_id}", auth(tokens["admin"])), (f"/cases/{case_id}", auth(tokens["police"])),
                         ("/health", {}), (f"/ui/cases/{case_id}", {}), ("/ui/live.js", {})]:
        r = client.get(url, headers=headers)
        assert r.status_code == 200 and r.headers.get("vary") == "Authorization, Cookie", (url, r.headers)
    read = client.get(f"/cases/{case_id}", headers=auth(tokens["police"]))
    again = client.get(f"/cases/{case_id}", headers=auth(tokens["police"]) | {"If-None-Match": read.headers["etag"]})
    assert (again.status_code, again.json()) == (200, read.json())


def test_the_bare_address_leads_a_person_to_the_cases_page(city):
    """``http://gateway:8080/`` typed into a browser answered ``{"detail":"Not Found"}``, and ``/ui`` a 404 page."""
    app, store, ingest, client, tokens = city
    for path in ("/", "/ui", "/ui/"):
        r = client.get(path, follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, "/ui/cases"), path
        carries_the_security_headers(r)
    assert client.get("/", follow_redirects=True).url.path == "/ui/login"  # no session: the sign-in first
    assert "/" not in client.get("/openapi.json").json()["paths"]


def test_a_token_is_taken_from_the_header_only(city):
    app, store, ingest, client, tokens = city
    r = client.get("/cases", params={"token": tokens["admin"]})
    assert r.status_code == 401 and "a token in the URL is not accepted" in r.json()["detail"]
    assert client.get("/cases", headers=auth(tokens["admin"])).status_code == 200
    assert client.get("/cases", headers={"Authorization": tokens["admin"]}).status_code == 401  # no scheme
    r = client.get("/ui/cases", params={"token": tokens["admin"], "state": "dispatched"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login?next=")
    # nor carried on by a page: the way back from the sign-in and the pager's links copied it into more addresses
    assert tokens["admin"] not in unquote(r.headers["location"]) and "dispatched" in r.headers["location"]
    client.post("/ui/login", data={"token": tokens["admin"]})
    page = client.get("/ui/cases", params={"token": tokens["admin"], "limit": 1})
    assert page.status_code == 200 and "rel=next" in page.text and tokens["admin"] not in page.text


def test_expired_and_revoked_tokens_answer_401_with_the_reason(city, tmp_path, capsys):
    app, store, ingest, client, tokens = city
    old = new_token(store, "old", "admin", lifetime_s=60, now=time.time() - 120)
    r = client.get("/cases", headers=auth(old))
    # a person reads it: Beijing time with its offset, as token --list and the pages show times
    expired = wire.city_iso(store.token(storage_hash(old))["expires_at"])
    assert r.status_code == 401 and r.json()["detail"] == f"token 'old' expired at {expired}; ask for a new one"
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"database": str(store.engine.url), "tables": str(tmp_path / "city.yaml")}))
    assert cli(["token", "--config", str(config), "--name", "fresh", "--role", "admin", "--expires", "2h"]) == 0
    fresh = capsys.readouterr().out.strip()
    assert client.get("/cases", headers=auth(fresh)).status_code == 200
    assert store.token(storage_hash(fresh))["expires_at"] == pytest.approx(time.time() + 7200, abs=30)
    assert cli(["token", "--config", str(config), "--list"]) == 0
    listed = capsys.readouterr().out
    assert fresh[:11] in listed and fresh not in listed and "tp\t" in listed
    assert cli(["token", "--config", str(config), "--revoke", fresh[:9]]) == 0  # by its prefix
    assert "revoked fresh" in capsys.readouterr().out
    r = client.get("/cases", headers=auth(fresh))
    revoked = wire.city_iso(store.token(storage_hash(fresh))["revoked_at"])
    assert r.status_code == 401 and r.json()["detail"] == f"token 'fresh' was revoked at {revoked}; ask for a new one"
    assert revoked.endswith("+08:00")
    assert cli(["token", "--config", str(config), "--revoke", "tp"]) == 0  # by its name
    assert client.get("/cases", headers=auth(tokens["police"])).status_code == 401
    assert client.get("/cases", headers=auth(tokens["admin"])).status_code == 200  # the others still work
    assert cli(["token", "--config", str(config), "--revoke", "nobody"]) == 2
    assert cli(["token", "--config", str(config), "--name", "x", "--role", "admin", "--expires", "forever"]) == 2


def test_token_list_shows_expiry_and_revocation_in_beijing_time(city, tmp_path, capsys):
    """``token --list`` printed 2026-01-01T04:00:00.000Z where every page, report and log line shows Beijing time."""
    app, store, ingest, client, tokens = city
    new_token(store, "night-shift", "admin", lifetime_s=4 * 3600, now=1_767_225_600.0)  # 2026-01-01T08:00+08:00
    store.revoke_tokens("op1", None, 1_767_229_200.5)
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"database": str(store.engine.url), "tables": str(tmp_path / "city.yaml")}))
    assert cli(["token", "--config", str(config), "--list"]) == 0
    listed = {line.split("\t")[0]: line.split("\t")[-1] for line in capsys.readouterr().out.splitlines()}
    assert listed["night-shift"] == "expires 2026-01-01T12:00:00+08:00"
    assert listed["op1"] == "revoked 2026-01-01T09:00:00+08:00"


BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


@pytest.mark.parametrize("name", ["x\x1b[31mred", "a\nb", "tab\there", "zero\u200bwidth"]
                         + [f"evil{c}abc" for c in BIDI_CONTROLS])
def test_a_token_name_with_control_or_bidi_characters_is_refused(city, tmp_path, capsys, name):
    """It went as it was into --list (a terminal's escapes), timelines and logs; a bidi control
    (``evil\u202eabc`` reads "evilcba") makes one name read as another on the pages."""
    app, store, ingest, client, tokens = city
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"database": str(store.engine.url), "tables": str(tmp_path / "city.yaml")}))
    before = len(store.tokens())
    assert cli(["token", "--config", str(config), "--name", name, "--role", "admin"]) == 2
    hidden = next(c for c in name if not c.isascii() or not c.isprintable())
    assert f"has control or invisible formatting characters (U+{ord(hidden):04X})" in capsys.readouterr().err
    with pytest.raises(ValueError, match="invisible formatting"):  # whoever makes a token, not only the CLI
        new_token(store, name, "admin")
    assert len(store.tokens()) == before
    assert cli(["token", "--config", str(config), "--name", "交警 值班 (night)", "--role", "admin"]) == 0


def test_a_token_name_past_64_characters_is_refused_and_one_of_64_is_shown_whole(city_on_both, tmp_path, capsys):
    """A name of 5,000 characters was taken on SQLite (shown whole in every page's header and cut at
    128, its role included, in the timelines) and stopped the command with PostgreSQL's traceback
    ("value too long for type character varying(128)")."""
    app, store, ingest, client, tokens = city_on_both
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"database": str(store.engine.url), "tables": str(tmp_path / "city.yaml")}))
    before = len(store.tokens())
    for name in ("x" * 65, "值" * 65, "y" * 5000):
        assert cli(["token", "--config", str(config), "--name", name, "--role", "admin"]) == 2
        assert f"is {len(name)} characters long; at most 64" in capsys.readouterr().err
        with pytest.raises(ValueError, match="at most 64"):  # whoever makes a token, not only the CLI
            new_token(store, name, "admin")
    assert len(store.tokens()) == before
    longest = "交警值班" * 16
    police = new_token(store, longest, "department", department="traffic-police")
    acted = client.post("/cases/1/actions", json={"action": "acknowledge"}, headers=auth(police))
    assert acted.status_code == 200, acted.text
    assert acted.json()["timeline"][-1]["actor"] == f"department:{longest}"


@pytest.mark.parametrize("args, expected", [
    (["--expires", "2 working days"], "--expires '2 working days': write a number and a unit"),  # counted from 1970
    (["--expires", "1831d"], "at most 5 years (1830d)"),
    (["--revoke", "xl_ab"], "a prefix names a token from 7 characters on, its xl_ included"),
])
def test_token_options_that_cannot_mean_what_they_say_are_refused(city, tmp_path, capsys, args, expected):
    app, store, ingest, client, tokens = city
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"database": str(store.engine.url), "tables": str(tmp_path / "city.yaml")}))
    before = [(t["name"], t["revoked_at"]) for t in store.tokens()]
    assert cli(["token", "--config", str(config), "--name", "x", "--role", "admin", *args]) == 2
    assert expected in capsys.readouterr().err
    assert [(t["name"], t["revoked_at"]) for t in store.tokens()] == before


@pytest.mark.parametrize("command, options", [("token", ["--list"]), ("token", ["--revoke", "tp"]),
                                               ("dataset export", ["--since", "2026-12-01", "--out", "OUT"])])
def test_a_command_that_reads_the_database_refuses_a_path_with_none(tmp_path, capsys, command, options):
    """A mistyped SQLite path made a new, empty database (and its folders): ``token --list`` listed no tokens and
    ``dataset export`` exported nothing, each without a word."""
    config = tmp_path / "gateway.yaml"
    missing = tmp_path / "typo" / "gw.sqlite"
    config.write_text(yaml.safe_dump({"database": f"sqlite:///{missing}"}))
    options = [str(tmp_path / "out") if o == "OUT" else o for o in options]
    assert cli([*command.split(), "--config", str(config), *options]) == 2
    assert f"error: no database at {missing}" in capsys.readouterr().err
    assert not missing.parent.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("command, options", [("token", ["--list"]), ("token", ["--revoke", "tp"]),
                                               ("token", ["--name", "x", "--role", "admin"]),
                                               ("dataset export", ["--since", "2026-12-01", "--out", "OUT"])])
def test_a_command_on_a_path_the_system_cannot_look_at_says_so(tmp_path, capsys, command, options):
    """The gateway's user run from a folder it may not search (root's home) with the shipped relative database: a
    traceback (PermissionError) where the gateway's start says an ``error:``. Root passes every folder, so a name too
    long stands for it here: the same OSError from the same look."""
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"database": f"sqlite:///{tmp_path / ('x' * 300) / 'gw.sqlite'}"}))
    options = [str(tmp_path / "out") if o == "OUT" else o for o in options]
    assert cli([*command.split(), "--config", str(config), *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: database ") and "File name too long" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gateway.yaml"]


def storage_hash(token: str) -> str:
    from gateway.auth import hash_token

    return hash_token(token)


def test_a_page_session_ends_with_its_token(city):
    app, store, ingest, client, tokens = city
    r = client.post("/ui/login", data={"token": tokens["op-s1"], "next": "/ui/cases?state=dispatched"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/cases?state=dispatched"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert tokens["op-s1"] not in cookie
    page = client.get("/ui/cases")
    assert page.status_code == 200 and page.text.count("<tr class=") == 1  # its grid subtree only
    assert client.post("/ui/login", data={"token": tokens["op-s1"], "next": "//evil.example/"},
                       follow_redirects=False).headers["location"] == "/ui/cases"
    store.revoke_tokens("op1", "", time.time())
    assert client.get("/ui/cases", follow_redirects=False).status_code == 303
    bad = client.post("/ui/login", data={"token": tokens["op-s1"]})
    assert bad.status_code == 401 and "吊销" in bad.text  # revoked, said in Chinese on the page


@pytest.mark.parametrize("note, code", [("已到场\u202e12:00", "U+202E"), ("zero\u200bwidth", "U+200B"),
                                        ("x\x1b[31mred", "U+001B"), ("one\u2028line", "U+2028")])
def test_a_note_with_control_or_bidi_characters_is_refused_naming_the_field_and_the_character(city, note, code):
    """A person's note with a right-to-left override (U+202E) reversed the rest of its row of the case's timeline (one
    person's words could be made to read as other words), and a terminal escape or an invisible one was kept as sent.
    Refused with the field and the character, by the API and by the case page's forms (which say it is the note's
    unseen characters: the generic "check what you filled in" left a pasted zero-width space to be sent again); lines
    and tabs are a note's own."""
    app, store, ingest, client, tokens = city
    for path, token, body in (("/cases/1/actions", "police", {"action": "acknowledge"}),
                              ("/cases/1/verdict", "admin", {"verdict": "correct"})):
        r = client.post(path, json=dict(body, note=note), headers=auth(tokens[token]))
        assert r.status_code == 422, (path, r.text)
        (detail,) = r.json()["detail"]
        assert detail["loc"] == ["body", "note"] and "note" in detail["msg"] and code in detail["msg"], detail
    signed_in = client.post("/ui/login", data={"token": tokens["admin"]}, follow_redirects=False)
    form = {"csrf": session_csrf(signed_in.cookies[SESSION_COOKIE]), "note": note}
    for path, fields in (("/ui/cases/1/actions", {"action": "escalate"}), ("/ui/cases/1/verdict", {"verdict": "correct"})):
        r = client.post(path, data=dict(form, **fields), follow_redirects=False)
        assert r.status_code == 303 and "why=hidden" in r.headers["location"], (path, r.headers.get("location"))
        assert "说明中有看不见的控制字符或格式字符" in client.get(r.headers["location"]).text
    case = client.get("/cases/1", headers=auth(tokens["admin"])).json()
    assert case["state"] == "dispatched" and [e["action"] for e in case["timeline"]] == ["created", "dispatched"]
    kept = client.post("/cases/1/actions", json={"action": "acknowledge", "note": "已到场\r\n车已挪走\t12:00"},
                       headers=auth(tokens["police"]))
    assert kept.status_code == 200 and kept.json()["timeline"][-1]["note"] == "已到场\r\n车已挪走\t12:00"


BAD_REQUESTS = [
    ("GET", "/cases/99999999999999999999999", None),
    ("GET", "/cases/0", None),
    ("GET", "/cases/2147483648", None),  # past PostgreSQL's integer
    ("GET", "/cases?department=a%00b", None),  # NUL: PostgreSQL refuses it in text
    ("GET", "/cases/-5/evidence.jpg", None),
    ("GET", "/cases/1/photos/..%2f..%2fetc.jpg", None),
    ("GET", "/cases?offset=99999999999999999999", None),
    ("GET", "/cases?limit=100000000000000000000000", None),
    ("GET", "/cases?state=nonsense", None),
    ("GET", "/cases?grid=%00", None),
    ("GET", "/cases?category=%F0%9F%92%A9", None),
    ("GET", "/reports/daily?date=0001-01-01", None),
    ("GET", "/reports/weekly?date=9999-12-31", None),
    ("GET", "/reports/daily?date=2026-02-30", None),
    ("GET", "/reports/daily?date=2099-01-01", None),  # not yet come: today's overdue showed under it
    ("GET", "/reports/daily?date=%D9%A2%D9%A0%D9%A2%D9%A6-01-01", None),  # Arabic-Indic digits
    ("GET", "/reports/monthly", None),
    ("GET", "/open311/v2/requests/99999999999999999999.json", None),
    ("GET", "/dead-letters?before_id=99999999999999999999", None),
    ("GET", "/dead-letters?limit=0", None),
    ("GET", "/ui/cases/99999999999999999999999", None),
    ("GET", "/ui/reports?date=0001-01-01", None),
    ("GET", "/ui/cases?state=%00", None),
    ("POST", "/cases/1/actions", {"action": "extend", "extend_by": "99999999999 working days"}),
    ("POST", "/cases/1/actions", {"action": "extend", "extend_by": "9" * 400 + "h"}),
    ("POST", "/cases/1/actions", {"action": "extend", "extend_by": "367d"}),
    ("POST", "/cases/1/actions", {"action": "acknowledge", "note": "\ud800"}),
    ("POST", "/cases/1/actions", {"action": "acknowledge", "note": "a\x00b"}),
    ("POST", "/cases/1/actions", {"action": "redispatch", "department": "\ud83d"}),
    ("POST", "/cases/1/actions", {"action": "acknowledge", "note": ["not", "text"]}),
    ("POST", "/cases/99999999999999999999/actions", {"action": "acknowledge"}),
]


@pytest.mark.parametrize("method, url, body", BAD_REQUESTS, ids=[f"{m} {u} {b}"[:80] for m, u, b in BAD_REQUESTS])
def test_bad_input_is_a_4xx_that_says_why_and_cases_stay_readable(city_on_both, method, url, body):
    app, store, ingest, client, tokens = city_on_both
    if url.startswith("/ui/"):  # pages read as the principal of a session
        assert client.post("/ui/login", data={"token": tokens["admin"]}, follow_redirects=False).status_code == 303
    else:
        client.cookies.set("xl_session", "nonsense")  # and the API ignores cookies
    content = json.dumps(body).encode() if body is not None else None  # ensure_ascii: lone surrogates as \\ud800
    r = client.request(method, url, content=content, headers=auth(tokens["admin"]) | {"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    if r.headers["content-type"] == "application/json":  # Open311's in its spec's format
        assert r.json()[0]["description"] if url.startswith("/open311/") else r.json()["detail"]
    for case in client.get("/cases", headers=auth(tokens["admin"])).json():
        assert client.get(f"/cases/{case['id']}", headers=auth(tokens["admin"])).status_code == 200


def test_an_extension_within_a_year_still_works(city):
    app, store, ingest, client, tokens = city
    case_id = client.get("/cases", headers=auth(tokens["admin"])).json()[0]["id"]
    r = client.post(f"/cases/{case_id}/actions", json={"action": "extend", "extend_by": "3 working days"},
                    headers=auth(tokens["admin"]))
    assert r.status_code == 200, r.text


def test_dead_letters_are_paged_and_scoped_to_the_grid_subtree(city):
    app, store, ingest, client, tokens = city
    for i in range(7):  # refused messages that name a grid in the operator's subtree
        assert ingest.handle(*incident(grid="D-S1-C1-G1", seq=-i)) == "dead_letter"
    for i in range(3):  # ... outside it
        assert ingest.handle(*incident(grid="D-S2-G9", seq=-i)) == "dead_letter"
    assert ingest.handle(wire.incident_topic("box-1", "gate"), b"{not json") == "dead_letter"  # nobody's grid
    assert ingest.handle(wire.incident_topic("box-1", "gate"), b"[" * 3000) == "dead_letter"
    admin = client.get("/dead-letters", params={"limit": 5}, headers=auth(tokens["admin"])).json()
    assert admin["total"] == 12 and len(admin["dead_letters"]) == 5
    seen, page = [d["id"] for d in admin["dead_letters"]], admin
    while page["next_before_id"]:
        page = client.get("/dead-letters", params={"limit": 5, "before_id": page["next_before_id"]},
                          headers=auth(tokens["admin"])).json()
        seen += [d["id"] for d in page["dead_letters"]]
    assert len(seen) == len(set(seen)) == 12 and seen == sorted(seen, reverse=True)
    operator = client.get("/dead-letters", headers=auth(tokens["op-s1"])).json()
    assert operator["total"] == 7 and {d["grid"] for d in operator["dead_letters"]} == {"D-S1-C1-G1"}
    assert operator["next_before_id"] is None
    r = client.get("/dead-letters", headers=auth(tokens["police"]))
    assert r.status_code == 403 and "operators and admins" in r.json()["detail"]


def test_dead_letters_name_their_box_and_are_filtered_by_it(city):
    """Dead letters are kept by the box their topic names (migration 22): the API shows it, and ``?box=`` lists one
    box's (an outsider's flood from one box buried the others' among thousands), its total too, in the token's scope;
    a notice's names none."""
    app, store, ingest, client, tokens = city
    for i, box in enumerate(("box-1", "box-2", "box-2")):
        assert ingest.handle(wire.incident_topic(box, "gate"), b"{not json %d" % i) == "dead_letter"
    with store.begin() as db:
        storage.dead_letter(db, "notice:dispatched:case/7", "no department", b"{}", time.time())
    admin = auth(tokens["admin"])
    listed = client.get("/dead-letters", headers=admin).json()
    assert [d["box"] for d in listed["dead_letters"]] == [None, "box-2", "box-2", "box-1"]
    two = client.get("/dead-letters", params={"box": "box-2", "limit": 1}, headers=admin).json()
    assert two["total"] == 2 and [d["box"] for d in two["dead_letters"]] == ["box-2"]
    rest = client.get("/dead-letters", params={"box": "box-2", "before_id": two["next_before_id"]}, headers=admin)
    assert [d["box"] for d in rest.json()["dead_letters"]] == ["box-2"] and rest.json()["next_before_id"] is None
    assert client.get("/dead-letters", params={"box": "box-9"}, headers=admin).json()["total"] == 0
    operator = client.get("/dead-letters", params={"box": "box-2"}, headers=auth(tokens["op-s1"])).json()
    assert operator["total"] == 0  # no grid of its subtree named
    fields = app.openapi()["components"]["schemas"]["DeadLetter"]["properties"]
    assert "box" in fields and "box" in [p["name"] for p in app.openapi()["paths"]["/dead-letters"]["get"]["parameters"]]


def test_migrations_4_and_5_keep_photos_and_tokens(database_url):  # noqa: F811 (fixture)
    store = Store(database_url)
    photo, now = jpeg_photo(), time.time()
    with store.begin() as db:  # a photo and a token as version 3 kept them
        storage.add_evidence(db, photo_sha(photo), photo, "case:7", "-", "-", now)
    store.add_token("a" * 64, "legacy", "admin", None, None, now - 400 * 86400)
    with store.begin() as db:
        undo_migrations_after_3(db)
        db.execute(text("DELETE FROM schema_migrations WHERE version > 3"))
    store.engine.dispose()
    store = Store(database_url)
    assert store.photo_bytes(7, photo_sha(photo)) == photo and store.photo_bytes(8, photo_sha(photo)) is None
    legacy = store.token("a" * 64)  # expires 90 days after the upgrade, not at once
    assert legacy["expires_at"] == pytest.approx(time.time() + 90 * 86400, abs=60) and legacy["revoked_at"] is None
    with store.begin() as db:
        db.execute(insert(schema.dead_letters).values(received_at=now, topic="t", reason="r", payload=b"{}",
                                                       grid="D-S1"))
    assert store.list_dead_letters(grids=["D-S1"])[0]["grid"] == "D-S1"
    store.add_session("b" * 64, "a" * 64, now, now + 60)
    assert store.session("b" * 64)["name"] == "legacy"


def test_an_operator_over_more_grids_than_a_statement_takes_parameters_sees_its_lists(tmp_path, database_url):  # noqa: F811
    """An operator of a street of 70,000 grids: each grid of its scope was one parameter of ``grid IN (...)``, more than
    PostgreSQL takes in a statement (65,535) and SQLite as built by default (32,766), and each list it asked for was a
    500. Its cases, dead letters and suppressions are still its subtree's alone. On SQLite, the limit of a build
    before 3.32 (999) and 1,000 grids past it: 70,000 grids took the quick loop 7 s."""
    store = Store(database_url)
    last = 70_001
    if store.engine.dialect.name == "sqlite":  # Debian's SQLite takes 250,000 parameters; an older build's limit
        last = 1_001
        event.listen(store.engine, "connect", lambda conn, _: conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999))
        store.engine.dispose()
    many = [{"code": f"D-S1-C1-G{i}", "name": f"网格{i}", "parent": "D-S1-C1"} for i in range(2, last + 1)]
    tables = Tables.model_validate(dict(CITY, grids=CITY["grids"] + many))
    ingest = Ingest(store, tables)
    for grid, lat in ((f"D-S1-C1-G{last}", 39.17), ("D-S2-G9", 39.0)):  # far apart: two cases
        assert ingest.handle(*incident(grid=grid, location={"lat": lat, "lon": 117.15})) == "case_created"
    for grid in ("D-S1-C1-G5", "D-S2-G9"):
        assert ingest.handle(*incident(grid=grid, seq=-1)) == "dead_letter"
    client, operator = TestClient(create_app(store, tables)), auth(new_token(store, "op", "operator", grid="D-S1"))
    cases = client.get("/cases", headers=operator)
    assert cases.status_code == 200 and [c["grid"] for c in cases.json()] == [f"D-S1-C1-G{last}"]
    assert [c["grid"] for c in client.get("/cases", params={"grid": "D-S1-C1"}, headers=operator).json()] == [
        f"D-S1-C1-G{last}"]
    dead = client.get("/dead-letters", headers=operator).json()
    assert dead["total"] == 1 and [d["grid"] for d in dead["dead_letters"]] == ["D-S1-C1-G5"]
    assert client.get("/suppressions", headers=operator).json() == []
    assert client.post("/suppressions/1/lift", headers=operator).status_code == 404
    requests = client.get("/open311/v2/requests.json", headers=operator)
    assert requests.status_code == 200 and len(requests.json()) == 1


def phone_photo() -> bytes:
    """A phone's JPEG held upright (EXIF orientation 6) with what phones write beside the picture: where it was
    taken (EXIF GPS and XMP), the phone's make and serial number, a colour profile, and a second picture appended
    after the end of the image (the multi-picture format's)."""
    from PIL import ImageCms

    exif = Image.Exif()
    exif[0x0112], exif[0x010F], exif[0xA431] = 6, "Xiaomi", "SN-4471-HOME"
    exif.get_ifd(0x8825).update({1: "N", 2: (39.0, 10.0, 12.5), 3: "E", 4: (117.0, 9.0, 0.5)})
    out = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(out, "JPEG", exif=exif, icc_profile=ImageCms.ImageCmsProfile(
        ImageCms.createProfile("sRGB")).tobytes())
    data = out.getvalue()
    xmp = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta><exif:GPSLatitude>39,10.2N</exif:GPSLatitude></x:xmpmeta>"
    app1 = b"\xff\xe1" + (len(xmp) + 2).to_bytes(2, "big") + xmp
    return data[:2] + app1 + data[2:] + jpeg_photo((8, 8))


def test_a_phone_photo_is_kept_and_served_without_where_it_was_taken_but_turned_as_taken(city):
    """A department's photo was kept and served as sent: its EXIF GPS (a worker's photo taken at home named their
    address to whoever reads the case, anyone with http.public_read), XMP and the phone's serial number with it."""
    app, store, ingest, client, tokens = city
    case_id = client.get("/cases", headers=auth(tokens["police"])).json()[0]["id"]
    photo = phone_photo()
    r = client.post(f"/cases/{case_id}/photos", content=photo, headers=JPEG | auth(tokens["police"]))
    assert r.status_code == 201, r.text
    (url,) = [e["photo_url"] for e in r.json()["timeline"] if e["photo_url"]]
    served = client.get(url, headers=auth(tokens["police"])).content
    with store.engine.connect() as db:
        (kept,) = [row[0] for row in db.execute(text("SELECT data FROM evidence"))]
    for data in (served, kept):
        shown = Image.open(io.BytesIO(data))
        assert dict(shown.getexif()) == {0x0112: 6}  # turned upright in a browser, as the phone was held
        assert shown.info.get("icc_profile") == Image.open(io.BytesIO(photo)).info["icc_profile"]
        assert b"Xiaomi" not in data and b"SN-4471" not in data and b"GPSLatitude" not in data
        assert data.count(b"\xff\xd8") == 1  # the appended picture left out
        assert shown.tobytes() == Image.open(io.BytesIO(photo)).tobytes()  # the picture itself as sent
    assert url.endswith(f"/{photo_sha(kept)}.jpg")


def test_a_photo_kept_with_its_gps_before_is_served_without_it(city):
    app, store, ingest, client, tokens = city
    case_id = client.get("/cases", headers=auth(tokens["police"])).json()[0]["id"]
    photo = phone_photo()
    sha = photo_sha(photo)
    with store.begin() as db:  # as the gateway kept it before it left the metadata out
        storage.add_evidence(db, sha, photo, f"{wire.GATEWAY_KEY_PREFIX}{case_id}", "-", "-", time.time())
        storage.add_case_photo(db, case_id, sha, time.time())
    served = client.get(f"/cases/{case_id}/photos/{sha}.jpg", headers=auth(tokens["police"])).content
    assert dict(Image.open(io.BytesIO(served)).getexif()) == {0x0112: 6} and b"GPSLatitude" not in served


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/cases/{id}/photos", "/ui/cases/{id}/photos"])
def test_a_photo_cut_off_on_the_way_keeps_nothing_and_logs_no_error(city, path, caplog):
    """A phone's upload that lost its connection halfway was logged as the gateway's error, "Exception in ASGI
    application" and a traceback of ClientDisconnect, at each one."""
    app, store, ingest, client, tokens = city
    case_id = client.get("/cases", headers=auth(tokens["police"])).json()[0]["id"]
    photo = jpeg_photo((400, 300))
    headers = {"Content-Type": "image/jpeg", "Content-Length": str(len(photo)), "Authorization": f"Bearer {tokens['police']}"}
    if path.startswith("/ui"):
        client.post("/ui/login", data={"token": tokens["police"]})
        headers = {"Content-Type": "multipart/form-data; boundary=b", "Content-Length": str(len(photo) + 200),
                   "Cookie": f"{SESSION_COOKIE}={client.cookies[SESSION_COOKIE]}"}
    with serving(app) as port:
        logging.getLogger("uvicorn.error").addHandler(caplog.handler)  # uvicorn's own loggers propagate no further
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        head = f"POST {path.format(id=case_id)} HTTP/1.1\r\nHost: x\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(head.encode() + b"\r\n" + photo[:len(photo) // 2])
        time.sleep(0.3)
        sock.close()  # the rest never comes
        time.sleep(1)  # the gateway sees the connection closed (its error was logged within 0.1 s)
        assert httpx.get(f"http://127.0.0.1:{port}/cases", headers=auth(tokens["police"])).status_code == 200
        logging.getLogger("uvicorn.error").removeHandler(caplog.handler)
    assert not [r for r in caplog.records if r.levelname == "ERROR"], [r.getMessage() for r in caplog.records]
    assert store.count("evidence") == 0


def test_openapi_json_lists_each_status_a_route_answers_and_the_body_it_answers_with(city):
    """A department's system made from /openapi.json had no word for a case not there or not its own (404), an
    action the case's state refuses (409), a body not JSON (415) or too large (413), and no shape for any error's
    body: each is listed now, and each answer, a success's too, is checked against the schema listed for it."""
    import jsonschema

    app, store, ingest, client, tokens = city
    described = client.get("/openapi.json").json()
    police, admin = auth(tokens["police"]), auth(tokens["admin"])
    case_id = next(c["id"] for c in client.get("/cases", headers=police).json())
    others = client.get("/cases", params={"department": "sanitation"}, headers=admin).json()
    tried = [
        ("get", "/cases/{case_id}", f"/cases/{case_id}", police, {}),                   # 200
        ("get", "/cases/{case_id}", "/cases/99999", police, {}),                        # 404: no such case
        ("get", "/cases/{case_id}/evidence.jpg", "/cases/99999/evidence.jpg", police, {}),
        ("get", "/cases/{case_id}/incidents/{incident_id}/evidence.jpg", f"/cases/{case_id}/incidents/x/evidence.jpg",
         police, {}),
        ("post", "/cases/{case_id}/actions", "/cases/99999/actions", police, {"json": {"action": "acknowledge"}}),
        ("post", "/cases/{case_id}/actions", f"/cases/{case_id}/actions", police, {"json": {"action": "close"}}),  # 403
        ("post", "/cases/{case_id}/actions", f"/cases/{case_id}/actions", police,
         {"content": b'{"action": "acknowledge"}'}),                                     # 415: no Content-Type
        ("post", "/cases/{case_id}/actions", f"/cases/{case_id}/actions", police,
         {"content": b"{" + b" " * (1 << 20) + b"}", "headers": {"Content-Type": "application/json"}}),  # 413
        ("post", "/cases/{case_id}/actions", f"/cases/{case_id}/actions", police, {"json": {"action": "acknowledge"}}),
        ("post", "/cases/{case_id}/actions", f"/cases/{case_id}/actions", police,
         {"json": {"action": "acknowledge"}}),                                           # 409: acknowledged already
        ("post", "/cases/{case_id}/verdict", "/cases/99999/verdict", admin, {"json": {"verdict": "correct"}}),
        ("post", "/cases/{case_id}/verdict", f"/cases/{case_id}/verdict", admin,
         {"json": {"verdict": "correct", "reject": True}}),                              # 409: not pending review
        ("post", "/cases/{case_id}/photos", "/cases/99999/photos", police,
         {"content": b"x", "headers": {"Content-Type": "image/jpeg"}}),
        ("get", "/cases", "/cases", {}, {}),                                            # 401
        ("get", "/cases", "/cases?token=x", {}, {}),
        ("get", "/dead-letters", "/dead-letters", police, {}),                          # 403
        ("delete", "/boxes/{box}", "/boxes/box-9", admin, {}),                          # 404
        ("get", "/reports/{kind}", "/reports/monthly", police, {}),                      # 404
        ("get", "/reports/{kind}", "/reports/daily?date=2099-01-01", police, {}),        # 422, in words
        ("get", "/reports/{kind}", "/reports/daily?date=x", police, {}),                 # 422, by value
        ("get", "/open311/v2/requests/{request_id}.{fmt}", "/open311/v2/requests/99999.json", police, {}),  # 404
        ("get", "/open311/v2/requests.{fmt}", "/open311/v2/requests.json?page=0", police, {}),  # the spec's 400
        ("get", "/open311/v2/requests.{fmt}", "/open311/v2/requests.json", {}, {}),     # 401
    ]
    assert not others  # the police case is another department's to the sanitation token: 404 as one not there
    for method, path, url, headers, extra in tried:
        extra = dict(extra, headers=headers | extra.get("headers", {}))
        answer = client.request(method, url, **extra)
        listed = described["paths"][path][method]["responses"]
        assert str(answer.status_code) in listed, (method, url, answer.status_code, sorted(listed))
        content = listed[str(answer.status_code)].get("content", {})
        if answer.headers["content-type"].startswith("application/json"):
            assert "application/json" in content, (method, url, answer.status_code, listed[str(answer.status_code)])
            schema = dict(content["application/json"]["schema"], components=described["components"])
            jsonschema.validate(answer.json(), schema, cls=jsonschema.Draft202012Validator)
    assert client.get(f"/cases/{case_id}", headers=auth(tokens["sanitation"])).status_code == 404


def test_a_sign_in_waiting_on_a_locked_database_keeps_no_other_request_waiting(city, tmp_path):
    """The sign-in form's route ran the database on the server's one event loop: its session's write, waiting on
    another writer's lock (up to SQLite's 5 s busy timeout, or a slow PostgreSQL), held up every other request with
    it, /health and the stop's bound too. A route's database work runs in the thread pool: the loop answers on."""
    app, store, ingest, client, tokens = city
    with serving(app) as port:
        base = f"http://127.0.0.1:{port}"
        lock = sqlite3.connect(tmp_path / "gw.sqlite", isolation_level=None, timeout=0)
        lock.execute("BEGIN IMMEDIATE")  # another writer: the sign-in's new session waits on it
        signed_in = {}
        sign_in = threading.Thread(target=lambda: signed_in.update(
            answer=httpx.post(f"{base}/ui/login", data={"token": tokens["admin"]}, timeout=10)))
        sign_in.start()
        try:
            time.sleep(0.3)  # the sign-in at its write
            began = time.monotonic()
            health = httpx.get(f"{base}/health", timeout=2)
            took = time.monotonic() - began
            assert health.status_code == 200 and took < 1, took
            assert sign_in.is_alive()  # waiting still, on the lock
        finally:
            lock.rollback()
            lock.close()
            sign_in.join(10)
    assert signed_in["answer"].status_code == 303 and SESSION_COOKIE in signed_in["answer"].cookies
