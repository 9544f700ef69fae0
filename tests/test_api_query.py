"""What a city's other systems and careless clients send the API beyond its bodies: HEAD for GET, a query
parameter given twice or not known, a department, category or Open311 ``service_code`` neither the city's tables nor
any case has. Each is answered as the GET, or refused with a 4xx naming the parameter; never taken silently in a way
the client did not mean."""

import socket

import pytest
import yaml
from fastapi.testclient import TestClient

from gateway.api import create_app
from gateway.config import load_tables

from .test_api_limits import city, serving  # noqa: F401 (fixture)
from .test_workflow import CITY, auth


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


@pytest.mark.parametrize("url, name, said", [
    ("/cases?state=dispatched&state=closed", "state", "given 2 times"),  # listed the closed ones alone
    ("/cases?limit=1&limit=1000", "limit", "given 2 times"),
    ("/reports/daily?date=2026-01-01&date=2026-01-02", "date", "given 2 times"),
    ("/cases?departmnet=sanitation", "departmnet", "it takes before_id, category, department, grid, limit, offset"),  # every case
    ("/cases?state[]=closed", "state[]", "no parameter of /cases"),
    ("/cases?sort=-created_at", "sort", "no parameter of /cases"),
    ("/cases/1?fields=id", "fields", "no parameter of /cases/1; it takes none"),
    ("/dead-letters?before=5", "before", "it takes before_id, box, limit"),
    ("/suppressions?lifted=true&lifted=false", "lifted", "given 2 times"),
])
def test_a_query_parameter_given_twice_or_not_known_is_refused_by_name(city, url, name, said):  # noqa: F811
    """FastAPI took the last of a repeated parameter and left a name it did not know: each answer read as filtered."""
    app, store, ingest, client, tokens = city
    r = client.get(url, headers=auth(tokens["admin"]))
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert problem["loc"] == ["query", name] and said in problem["msg"], problem
    kept = client.get("/cases?state=dispatched&grid=D-S1&overdue=false&limit=5&offset=0&token=x",
                      headers=auth(tokens["admin"]))  # a token in the URL is auth's to refuse, without a header
    assert kept.status_code == 200 and len(kept.json()) == 1
    assert client.get("/health?_=1700000000").status_code == 200  # a checker's cache-buster


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_open311_takes_its_clients_extensions_but_a_filter_given_twice_is_its_400(city, fmt):  # noqa: F811
    app, store, ingest, client, tokens = city
    r = client.get(f"/open311/v2/requests.{fmt}?service_code=200505&service_code=200102", headers=auth(tokens["admin"]))
    assert r.status_code == 400 and "service_code: given 2 times" in r.text and "comma-delimited" in r.text, r.text
    # jurisdiction_id the one served (the host name: the test client's), as a client of several cities sends it
    extended = client.get(f"/open311/v2/requests.{fmt}?jurisdiction_id=testserver&api_key=k&extensions=true",
                          headers=auth(tokens["admin"]))
    assert extended.status_code == 200


def city_without_the_police(tmp_path):
    """The tables of ``CITY`` with the traffic police and their parking category taken out (their cases kept)."""
    path = tmp_path / "without.yaml"
    path.write_text(yaml.safe_dump(CITY | {
        "departments": [d for d in CITY["departments"] if d["id"] != "traffic-police"],
        "categories": [c for c in CITY["categories"] if c["type"] != "illegal_parking"]}, allow_unicode=True))
    return load_tables(path)


@pytest.mark.parametrize("url, name, known", [
    ("/cases?department=trafic-police", "department", "city-management, sanitation, traffic-police"),
    ("/cases?department=", "department", "city-management, sanitation, traffic-police"),
    ("/cases?category=parking", "category", "200102, 200505, garbage, illegal_parking"),
    ("/cases?grid=D-S3", "grid", "D, D-S1, D-S1-C1, D-S1-C1-G1, D-S2, D-S2-G9"),
    ("/cases?grid=", "grid", "D, D-S1, D-S1-C1, D-S1-C1-G1, D-S2, D-S2-G9"),
])
def test_a_department_category_or_grid_nobody_has_is_a_422_listing_the_known(city, tmp_path, url, name, known):  # noqa: F811
    """Each was 200 []: a typo read as a department (a grid) with no cases. Known: the tables' and any case's (a
    department or category taken out of the tables keeps its cases, and they are still found)."""
    app, store, ingest, client, tokens = city
    r = client.get(url, headers=auth(tokens["admin"]))
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert problem["loc"] == ["query", name] and problem["msg"].endswith(f"known: {known}"), problem
    assert client.get(url, headers=auth(tokens["police"])).status_code == 422
    kept = TestClient(create_app(store, city_without_the_police(tmp_path)))
    for found in ("/cases?department=traffic-police", "/cases?category=illegal_parking"):
        assert len(kept.get(found, headers=auth(tokens["admin"])).json()) == 2, found
    refused = kept.get(url, headers=auth(tokens["admin"]))
    assert refused.status_code == 422 and refused.json()["detail"][0]["msg"].endswith(known.replace("200505, ", ""))


def test_a_grid_is_known_by_the_tree_or_by_a_case_and_a_city_of_many_grids_lists_sixty(city, tmp_path):  # noqa: F811
    """A grid taken out of the tree keeps its cases, found by it; a tree of thousands of grids lists 60 and a count."""
    app, store, ingest, client, tokens = city
    path = tmp_path / "renamed.yaml"
    path.write_text(yaml.safe_dump(CITY | {"grids": [g for g in CITY["grids"] if g["code"] != "D-S2-G9"] + [
        {"code": f"D-S2-N{n:03}", "name": f"新网格{n}", "parent": "D-S2"} for n in range(100)]}, allow_unicode=True))
    renamed = TestClient(create_app(store, load_tables(path)))
    found = renamed.get("/cases?grid=D-S2-G9", headers=auth(tokens["admin"]))
    assert found.status_code == 200 and [c["grid"] for c in found.json()] == ["D-S2-G9"], found.text
    assert renamed.get("/cases?grid=D-S2-N099", headers=auth(tokens["admin"])).json() == []  # known, no case yet
    r = renamed.get("/cases?grid=D-S2-N100", headers=auth(tokens["admin"]))
    assert r.status_code == 422, r.text
    said = r.json()["detail"][0]["msg"]
    assert said.startswith("'D-S2-N100': no grid of the city's tables or of any case; known: D, D-S1, ") and \
        said.endswith(", D-S2-N053 and 46 more"), said  # 106 known: the tree's 105 and the case's D-S2-G9


@pytest.mark.parametrize("url, said", [
    ("/ui/cases?department=trafic-police", "部门「trafic-police」"),
    ("/ui/cases?category=parking&department=x&state=closed", "类别「parking」、部门「x」"),
    ("/ui/queue?department=trafic-police", "部门「trafic-police」"),
    ("/ui/cases?department=x%E2%80%AE", "部门「x\ufffd」"),  # a right-to-left override reversed what followed it
])
def test_a_page_filtered_by_what_nobody_has_says_so_in_place_of_its_cases(city, url, said):  # noqa: F811
    """The case list and the queue showed no case, as though the department or category had none (a grid: below)."""
    app, store, ingest, client, tokens = city
    client.post("/ui/login", data={"token": tokens["op-s1"]})
    r = client.get(url)
    assert r.status_code == 422 and "<form class=filters>" in r.text, r.text
    assert f"<p id=unknown-filter class=failed>筛选条件有误: 本市的表中没有{said}, 也没有案件属于它" in r.text
    assert "known: " in r.text and "<table id=cases" not in r.text
    live = client.get(url.replace("/ui/", "/ui/live/"))
    assert live.status_code == 200 and live.text == client.get(url.replace("/ui/", "/ui/live/")).text
    for kept in ("/ui/cases?grid=D-S1&department=traffic-police&category=200505", "/ui/cases?department=&grid=",
                 "/ui/queue?department=traffic-police", "/ui/queue?department="):
        shown = client.get(kept)
        assert shown.status_code == 200 and "unknown-filter" not in shown.text and "<table id=cases" in shown.text, kept
    client.post("/ui/login", data={"token": tokens["police"]})  # a department's queue is its own, whatever it picks
    assert client.get("/ui/queue?department=trafic-police").status_code == 200


def test_an_operator_of_a_street_is_told_its_own_grids_alone(city, tmp_path):  # noqa: F811
    """The 422 of a grid nobody has listed the city's every grid code to an operator of one street (and whether a
    code existed: another street's was 200 [], a made-up one 422); a grid taken out of the tree, its cases'. Now a
    grid neither its own nor above it is "not yours" in the same words either way, listing its own alone."""
    app, store, ingest, client, tokens = city
    path = tmp_path / "renamed.yaml"  # D-S2-G9 taken out of the tree, its police case kept
    path.write_text(yaml.safe_dump(CITY | {"grids": [g for g in CITY["grids"] if g["code"] != "D-S2-G9"]},
                                   allow_unicode=True))
    renamed = TestClient(create_app(store, load_tables(path)))
    for grid in ("D-S2", "D-S3", "D-S2-G9"):  # another street's, nobody's, a case's outside the tree
        r = renamed.get(f"/cases?grid={grid}", headers=auth(tokens["op-s1"]))
        assert r.status_code == 422, r.text
        (problem,) = r.json()["detail"]
        assert problem["loc"] == ["query", "grid"] and problem["type"] == "outside_scope", problem
        assert problem["msg"] == f"'{grid}': not a grid of yours (operator of D-S1); yours: D-S1, D-S1-C1, D-S1-C1-G1"
    for grid in ("D", "D-S1", "D-S1-C1-G1"):  # above its street, or its own: its case
        found = renamed.get(f"/cases?grid={grid}", headers=auth(tokens["op-s1"]))
        assert found.status_code == 200 and [c["grid"] for c in found.json()] == ["D-S1-C1-G1"], (grid, found.text)
    assert "D-S2-G9" in renamed.get("/cases?grid=D-S3", headers=auth(tokens["admin"])).text  # the centre's: the city
    renamed.post("/ui/login", data={"token": tokens["op-s1"]})
    page = renamed.get("/ui/cases?grid=D-S2")
    assert page.status_code == 422 and "筛选条件有误: 网格「D-S2」不在您负责的网格范围内" in page.text, page.text
    assert "D-S2-G9" not in page.text and "D, D-S1" not in page.text and "<table id=cases" not in page.text


def test_a_removed_department_or_category_is_listed_only_to_those_who_see_its_cases(city, tmp_path):  # noqa: F811
    """The known values of a filter took in every case's: the sanitation department was told of the traffic police
    (taken out of the tables) and their parking category from cases it never saw. A case's values are listed to
    whoever may see the case, and still found by them."""
    app, store, ingest, client, tokens = city
    kept = TestClient(create_app(store, city_without_the_police(tmp_path)))
    for url, removed in (("/cases?department=trafic-police", "traffic-police"),
                         ("/cases?category=parking", "illegal_parking")):
        r = kept.get(url, headers=auth(tokens["sanitation"]))
        assert r.status_code == 422, r.text
        said = r.json()["detail"][0]["msg"]
        assert "traffic-police" not in said and "illegal_parking" not in said and "200505" not in said, said
        assert removed in kept.get(url, headers=auth(tokens["op-s1"])).json()["detail"][0]["msg"]  # its street's case
    r = kept.get("/open311/v2/requests.json?service_code=2OO102", headers=auth(tokens["sanitation"]))
    assert r.status_code == 400 and "known: 200102 (services.xml" in r.text, r.text
    for url in ("/cases?department=traffic-police", "/cases?category=illegal_parking"):
        assert len(kept.get(url, headers=auth(tokens["op-s1"])).json()) == 1, url


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_open311_service_code_nobody_has_is_its_400_listing_the_known(city, tmp_path, fmt):  # noqa: F811
    """It answered no requests, as though the city had no such request; a code taken out of the tables since is
    still a filter of the requests that have it."""
    app, store, ingest, client, tokens = city
    r = client.get(f"/open311/v2/requests.{fmt}?service_code=200505,2OO102", headers=auth(tokens["admin"]))
    assert r.status_code == 400, r.text
    assert ("service_code '2OO102': no service_code of the city's tables or of any case; known: 200102, 200505 "
            "(services.xml lists the city's)") in r.text
    kept = TestClient(create_app(store, city_without_the_police(tmp_path)))
    assert len(kept.get("/open311/v2/requests.json?service_code=200505", headers=auth(tokens["admin"])).json()) == 2


def test_a_department_filtering_by_another_department_is_told_it_sees_its_own_cases(city):  # noqa: F811
    """The police's token asking for sanitation's cases got [], read as sanitation having none; the pages showed an
    empty list and offered every department to pick. Now a 422 ``outside_scope`` saying a department sees its own,
    the same for a department the tables have as for one nobody has; the pages say so in place of the cases."""
    app, store, ingest, client, tokens = city
    for department in ("sanitation", "trafic-police"):
        r = client.get(f"/cases?department={department}", headers=auth(tokens["police"]))
        assert r.status_code == 422, r.text
        (problem,) = r.json()["detail"]
        assert problem["loc"] == ["query", "department"] and problem["type"] == "outside_scope", problem
        assert problem["msg"] == (f"'{department}': not your department (traffic-police); a department sees its own "
                                  "cases alone")
    assert len(client.get("/cases?department=traffic-police", headers=auth(tokens["police"])).json()) == 2
    client.post("/ui/login", data={"token": tokens["police"]})
    page = client.get("/ui/cases?department=sanitation")
    assert page.status_code == 422 and "部门「sanitation」不是本部门, 部门只能查看本部门的案件" in page.text, page.text
    assert "<table id=cases" not in page.text and "value='sanitation'" not in page.text  # nor offered to pick
    assert client.get("/ui/cases?department=traffic-police").text.count("<tr") == 3  # the head, its two cases


def test_a_department_pages_through_its_cases_by_before_id_and_misses_none_and_sees_none_twice_while_cases_come(
        city):  # noqa: F811 (fixture)
    """Newest first by ``offset``, a case opened between two pages pushed the first page's last case onto the
    second (seen twice), and a case leaving a ``state`` filter pulled one back past it (never seen): ``before_id``,
    the last page's last id, pages on from there whatever comes meanwhile."""
    from .test_workflow import incident

    app, store, ingest, client, tokens = city
    police = auth(tokens["police"])
    for lat in (38.0, 38.1, 38.2, 38.3):
        assert ingest.handle(*incident(grid="D-S1-C1-G1", location={"lat": lat, "lon": 117.0})) == "case_created"
    every = [c["id"] for c in client.get("/cases", headers=police).json()]
    assert len(every) == 6 and every == sorted(every, reverse=True)
    first = [c["id"] for c in client.get("/cases", params={"limit": 3}, headers=police).json()]
    assert ingest.handle(*incident(grid="D-S1-C1-G1", location={"lat": 38.5, "lon": 117.0})) == "case_created"
    rest = [c["id"] for c in client.get("/cases", params={"limit": 3, "before_id": first[-1]}, headers=police).json()]
    assert first + rest == every
    assert client.get("/cases", params={"before_id": 0}, headers=police).status_code == 422
