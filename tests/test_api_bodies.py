"""What a careless or hostile client sends the API in its bodies and headers, on a real SQLite gateway: a JSON key
written twice, a body with no or another Content-Type, JSON that does not parse, two Authorization headers. Each is
refused with a 4xx that says what was wrong, and the case stays as it was."""

import asyncio

import pytest

from .test_api_limits import city  # noqa: F401 (fixture)
from .test_workflow import auth

JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("path, body, key", [
    ("actions", '{"action": "acknowledge", "action": "escalate"}', "action"),  # Python kept the last: escalated
    ("actions", '{"action": "escalate", "note": "a", "note": "b"}', "note"),
    ("verdict", '{"verdict": "correct", "verdict": "false_alarm", "reject": true}', "verdict"),
])
def test_a_json_key_written_twice_is_refused_naming_it_and_nothing_is_done(city, path, body, key):  # noqa: F811
    """Python keeps the last of a key written twice, another reader of the same bytes (a proxy's audit, a
    department's own log) the first: what was done and what was seen to be asked differed."""
    app, store, ingest, client, tokens = city
    case_id = client.get("/cases", headers=auth(tokens["admin"])).json()[0]["id"]
    case = client.get(f"/cases/{case_id}", headers=auth(tokens["admin"])).json()
    r = client.post(f"/cases/{case_id}/{path}", content=body, headers=JSON | auth(tokens["admin"]))
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert problem["loc"] == ["body", key], problem
    assert problem["msg"] == f"not JSON: key '{key}' is written twice in one object; write it once"
    assert client.get(f"/cases/{case_id}", headers=auth(tokens["admin"])).json() == case


@pytest.mark.parametrize("content_type, body, status, said", [
    (None, b'{"action": "acknowledge"}', 415,
     "send the body as JSON, with Content-Type: application/json (this one has none)"),
    ("text/plain", b'{"action": "acknowledge"}', 415, "(not 'text/plain')"),
    ("application/x-www-form-urlencoded", b"action=acknowledge", 415, "(not 'application/x-www-form-urlencoded')"),
    ("application/json", b'{"action": "acknowledge",}', 422,
     "not JSON: Expecting property name enclosed in double quotes: line 1 column 26 (char 25)"),
    ("application/json", b'{"action": "acknowledge", "note": "\xff"}', 422, "not JSON: 'utf-8' codec can't decode"),
    ("application/json", b"", 422, "the body is empty: send a JSON object"),
    ("application/json", b'["acknowledge"]', 422, "valid dictionary"),  # JSON, but no object: FastAPI's words
])
def test_a_body_that_is_no_json_object_says_what_was_wrong(city, content_type, body, status, said):  # noqa: F811
    """Each was "Input should be a valid dictionary", "JSON decode error" or "There was an error parsing the body"
    (a 400), whatever the body's fault."""
    app, store, ingest, client, tokens = city
    case_id = client.get("/cases", headers=auth(tokens["police"])).json()[0]["id"]
    headers = auth(tokens["police"]) | ({"Content-Type": content_type} if content_type else {})
    r = client.post(f"/cases/{case_id}/actions", content=body, headers=headers)
    assert r.status_code == status and said in r.text, r.text
    assert client.get(f"/cases/{case_id}", headers=auth(tokens["police"])).json()["state"] == "dispatched"
    # without a token: the token is refused first, whatever the body (JSON that does not parse was a 422)
    anyone = client.post(f"/cases/{case_id}/actions", content=body,
                         headers={"Content-Type": content_type} if content_type else {})
    assert anyone.status_code == 401, anyone.text
    sent = client.post(f"/cases/{case_id}/actions", content=b'{"action": "acknowledge"}',
                       headers=auth(tokens["police"]) | {"Content-Type": "application/json; charset=utf-8"})
    assert sent.status_code == 200 and sent.json()["state"] == "handling"


@pytest.mark.parametrize("first, second", [("admin", "junk"), ("junk", "admin"), ("admin", "police")])
def test_two_authorization_headers_are_a_400(city, first, second):  # noqa: F811
    """The first was taken: an admin's token, then anything, read as the admin (RFC 9110 §5.3: a header that is no
    list is sent once)."""
    app, store, ingest, client, tokens = city
    token = {"admin": tokens["admin"], "police": tokens["police"], "junk": "junk"}
    headers = [("Authorization", f"Bearer {token[first]}"), ("Authorization", f"Bearer {token[second]}")]
    r = client.get("/cases", headers=headers)
    assert r.status_code == 400 and r.json()["detail"] == ("the Authorization header is sent 2 times; send one, "
                                                           "with one token"), r.text
    spec = client.get("/open311/v2/requests.json", headers=headers)
    assert spec.status_code == 400 and "sent 2 times" in spec.json()[0]["description"]
    assert client.post("/cases/1/actions", json={"action": "escalate"}, headers=headers).status_code == 400
    assert client.get("/cases", headers=auth(token[first] if first != "junk" else token[second])).status_code == 200


def test_a_json_body_cut_off_on_the_way_is_a_400_that_says_so(city, caplog):  # noqa: F811
    """Read before FastAPI's own read (which said 400 "There was an error parsing the body"), a cut-off body raised
    the ASGI server's ClientDisconnect: the gateway's 500, with its traceback logged."""
    app, store, ingest, client, tokens = city
    messages, sent = [{"type": "http.request", "body": b'{"action":', "more_body": True}, {"type": "http.disconnect"}], []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    headers = [(b"host", b"x"), (b"content-type", b"application/json"),
               (b"authorization", f"Bearer {tokens['admin']}".encode())]
    asyncio.run(app({"type": "http", "method": "POST", "path": "/cases/1/actions", "raw_path": b"/cases/1/actions",
                     "query_string": b"", "headers": headers, "http_version": "1.1", "scheme": "http",
                     "server": ("x", 80), "client": ("127.0.0.1", 1), "root_path": ""}, receive, send))
    assert sent[0]["status"] == 400 and b"the body was cut off" in sent[1]["body"]
    assert "Traceback" not in caplog.text and "Exception in ASGI" not in caplog.text


@pytest.mark.parametrize("path", ["actions", "verdict"])
@pytest.mark.parametrize("authorization", [None, "Bearer xl_unknown", "Basic cm9vdDpyb290"])
def test_a_json_body_is_not_read_before_the_token_is_refused(city, path, authorization):  # noqa: F811
    """Anyone on the network could make the gateway read and parse up to 1 MiB of JSON on its event loop before
    the 401 (10 ms a request; deep or odd JSON refused as JSON, not as no token), and hold a connection open
    while the body it declared never came: the token is refused first, the body left unread."""
    app, store, ingest, client, tokens = city
    reads, sent = [], []

    async def receive():
        reads.append(1)
        return {"type": "http.request", "body": b"[" * 1000, "more_body": True}

    async def send(message):
        sent.append(message)

    headers = [(b"host", b"x"), (b"content-type", b"application/json"), (b"content-length", b"1000000")]
    headers += [(b"authorization", authorization.encode())] if authorization else []
    asyncio.run(app({"type": "http", "method": "POST", "path": f"/cases/1/{path}", "raw_path": f"/cases/1/{path}".encode(),
                     "query_string": b"", "headers": headers, "http_version": "1.1", "scheme": "http",
                     "server": ("x", 80), "client": ("127.0.0.1", 1), "root_path": ""}, receive, send))
    assert sent[0]["status"] == 401, sent
    assert reads == []


@pytest.mark.parametrize("path, body, key", [
    ("actions", {"action": "feedback", "nots": "cleared at 9"}, "nots"),  # the department's words dropped unsaid
    ("actions", {"action": "redispatch", "departmnet": "sanitation"}, "departmnet"),
    ("verdict", {"verdict": "wrong_type", "righttype": "spill"}, "righttype"),
])
def test_a_body_key_the_route_does_not_take_is_refused_naming_it(city, path, body, key):  # noqa: F811
    """A key no field of the body is (a misspelt ``note``) was dropped and the rest done: the department's note
    lost without a word, as the query's unknown parameters were before they were refused."""
    app, store, ingest, client, tokens = city
    case_id = client.get("/cases", headers=auth(tokens["admin"])).json()[0]["id"]
    case = client.get(f"/cases/{case_id}", headers=auth(tokens["admin"])).json()
    r = client.post(f"/cases/{case_id}/{path}", json=body, headers=auth(tokens["admin"]))
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert problem["loc"] == ["body", key], problem
    assert problem["msg"].startswith("not a field of this body (it takes: "), problem
    assert ("note" if path == "actions" else "right_type") in problem["msg"], problem
    assert client.get(f"/cases/{case_id}", headers=auth(tokens["admin"])).json() == case
