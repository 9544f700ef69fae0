"""What a city's other systems and careless clients send the API beyond its bodies: HEAD for GET, a query
parameter given twice or not known, an Open311 ``service_code`` the city has not. Each is answered as the GET,
or refused with a 4xx naming the parameter; never taken silently in a way the client did not mean."""

import socket

import pytest

from .test_api_limits import city, serving  # noqa: F401 (fixture)
from .test_workflow import auth


@pytest.mark.parametrize("path, token", [("/health", None), ("/cases", "admin"), ("/cases/1", "admin"),
                                         ("/open311/v2/services.xml", None), ("/ui/login", None)])
def test_head_is_answered_as_get_without_the_body(city, path, token):  # noqa: F811 (fixture)
    """An uptime checker's ``curl -I /health`` was 405: the gateway read as down."""
    app, store, ingest, client, tokens = city
    headers = auth(tokens[token]) if token else {}
    got, head = client.get(path, headers=headers), client.head(path, headers=headers)
    assert head.status_code == got.status_code == 200, (head.status_code, head.text)
    assert head.content == b"" and head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content))
    assert head.headers["content-security-policy"] == got.headers["content-security-policy"]
    assert client.head("/cases").status_code == 401 and client.head("/nowhere").status_code == 404
    refused = client.head("/cases/1/actions", headers=auth(tokens["admin"]))  # POST alone
    assert refused.status_code == 405 and refused.headers["allow"] == "POST"


def test_head_on_the_wire_has_the_length_and_no_body(city):  # noqa: F811 (fixture)
    app, store, ingest, client, tokens = city
    with serving(app) as port, socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, get = answer.split(b"HTTP/1.1 ")[1:]
    assert head.startswith(b"200") and head.endswith(b"\r\n\r\n"), head  # no body before the next answer
    assert get.startswith(b"200") and get.endswith(b'"database":{"state":"ok"}}}'), get
