"""Open311 GeoReport v2 over a real HTTP server (uvicorn on a free port) on a real gateway
database, read with httpx and with a third-party GeoReport client from PyPI (georeport 0.3.1)."""

import copy
import hashlib
import json
import time
from datetime import datetime, timedelta
from xml.etree import ElementTree

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from gateway.api import create_app
from gateway.auth import new_token
from gateway.config import load_tables
from gateway.deadlines import CITY_TZ
from gateway.ingest import Ingest
from gateway.storage import Store
from xueliang import wire

from .conftest import serve
from .test_presentation import jpeg
from .test_workflow import CITY, ended, incident

HOSTILE_NAME = "网格1 <b>&amp;"  # markup in the city's own table (a character XML 1.0 cannot carry: open311_xml's example)


@pytest.fixture
def gateway(tmp_path):
    city = copy.deepcopy(CITY)
    for grid in city["grids"]:
        if grid["code"] == "D-S1-C1-G1":
            grid["name"] = HOSTILE_NAME
    (tmp_path / "city.yaml").write_text(yaml.safe_dump(city, allow_unicode=True))
    tables = load_tables(tmp_path / "city.yaml")
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, tables)
    picture = jpeg(40)
    message = incident(evidence={"sha256": hashlib.sha256(picture).hexdigest(), "bytes": len(picture)})
    ingest.handle(wire.evidence_topic("box-1", "gate", json.loads(message[1])["incident_id"]), picture)
    assert ingest.handle(*message) == "case_created"
    assert ingest.handle(*incident(type="garbage", grid="D-S2-G9", location={"lat": 39.3, "lon": 117.3})) == "case_created"
    return tables, store, picture


def spec_error(answer: httpx.Response, fmt: str) -> tuple[int, str]:
    """The code and description of the spec's one error in ``answer``, in the format ``fmt`` its path names."""
    if fmt == "json":
        assert answer.headers["content-type"] == "application/json", answer.text
        ((code, description),) = [(e["code"], e["description"]) for e in answer.json()]
    else:
        assert answer.headers["content-type"].startswith("text/xml"), answer.text
        root = ElementTree.fromstring(answer.content)
        assert root.tag == "errors", answer.text
        code, description = int(root.findtext("error/code")), root.findtext("error/description")
    assert code == answer.status_code and description, answer.text
    return code, description


@pytest.mark.slow
def test_requests_tell_the_last_change_filter_by_date_and_name_the_agency_and_place(gateway):
    tables, store, picture = gateway
    admin = {"Authorization": f"Bearer {new_token(store, 'root', 'admin')}"}
    police = {"Authorization": f"Bearer {new_token(store, 'tp', 'department', department='traffic-police')}"}
    ended(store, Ingest(store, tables), 1)  # its box stopped: the admin's close below is taken
    with serve(create_app(store, tables)) as base, httpx.Client(base_url=f"{base}/open311/v2", timeout=10) as api:
        def one(headers=admin) -> dict:
            (request,) = api.get("/requests/1.json", headers=headers).json()
            return request

        request = one()
        assert (request["agency_responsible"], request["address"], request["address_id"]) == (
            "交警", HOSTILE_NAME, "D-S1-C1-G1")
        # updated_datetime is the case's last change, whoever made it
        for who, action, extra in ((police, "acknowledge", {}), (police, "request_extension", {"extend_by": "1h"}),
                                   (admin, "approve_extension", {}), (admin, "escalate", {}),
                                   (police, "feedback", {"note": "moved on"}), (admin, "close", {})):
            before = one()["updated_datetime"]
            time.sleep(0.01)
            done = httpx.post(f"{base}/cases/1/actions", json={"action": action, **extra}, headers=who)
            assert done.status_code == 200, done.text
            last = done.json()["timeline"][-1]["at"]
            assert one()["updated_datetime"] == last and last > before, action
        assert one(police)["updated_datetime"] == last

        # media_url: absolute, and read with the same token as the request
        media = one()["media_url"]
        assert media == f"{base}/cases/1/evidence.jpg"
        assert httpx.get(media).status_code == 401
        got = httpx.get(media, headers=admin)
        assert (got.status_code, got.headers["content-type"], got.content) == (200, "image/jpeg", picture)

        ids = lambda **q: sorted(int(r["service_request_id"]) for r in api.get("/requests.json", params=q,  # noqa: E731
                                                                                  headers=admin).json())
        now = time.time()
        assert ids() == [1, 2]
        assert ids(start_date="2030-01-01T00:00:00Z") == []
        assert ids(start_date=wire.iso(now - 3600), end_date=wire.iso(now + 3600)) == [1, 2]
        assert ids(end_date=wire.iso(now - 3600)) == []
        assert ids(start_date="2026-01-01T00:00:00+08:00", end_date="2026-01-02T00:00:00+08:00") == []
        assert ids(status="open") == [2] and ids(status="closed,open") == [1, 2] and ids(status="closed") == [1]
        assert ids(service_code="200102") == [2] and ids(service_code="200505,200102") == [1, 2]
        assert ids(service_request_id="2,1", start_date="2030-01-01T00:00:00Z") == [1, 2]  # overrides the others
        assert [int(r["service_request_id"]) for r in api.get("/requests.json", headers=police).json()] == [1]

        for query in ({"start_date": "yesterday"}, {"start_date": "2024-02-30T00:00:00Z"},
                      {"start_date": "2026-01-01T00:00:00Z", "end_date": "2025-12-01T00:00:00Z"},
                      {"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"},
                      {"status": "pending"}, {"service_request_id": "1,x"}):
            answer = api.get("/requests.json", params=query, headers=admin)
            assert answer.status_code == 400 and answer.json()[0]["code"] == 400, (query, answer.text)
            xml = api.get("/requests.xml", params=query, headers=admin)
            error = ElementTree.fromstring(xml.content).find("error")
            assert xml.status_code == 400 and error.findtext("code") == "400" and error.findtext("description")
        assert api.get("/requests.json", params={"start_date": "x" * 41}, headers=admin).status_code == 400
        missing = api.get("/requests/99.xml", headers=admin)
        assert missing.status_code == 404 and ElementTree.fromstring(missing.content).findtext("error/code") == "404"


def test_xml_is_the_specs_format_with_every_value_escaped(gateway):
    tables, store, picture = gateway
    admin = {"Authorization": f"Bearer {new_token(store, 'root', 'admin')}"}
    with serve(create_app(store, tables)) as base, httpx.Client(base_url=f"{base}/open311/v2", timeout=10) as api:
        answer = api.get("/requests.xml", headers=admin)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/xml")
        assert b"<b>" not in answer.content and b"&lt;b&gt;&amp;amp;" in answer.content
        root = ElementTree.fromstring(answer.content)
        assert root.tag == "service_requests"
        by_id = {r.findtext("service_request_id"): r for r in root.findall("request")}
        police_case = by_id["1"]
        assert police_case.findtext("address") == HOSTILE_NAME
        assert police_case.findtext("agency_responsible") == "交警" and police_case.findtext("service_code") == "200505"
        assert police_case.findtext("media_url") == f"{base}/cases/1/evidence.jpg"
        assert wire.parse_time(police_case.findtext("requested_datetime")) <= wire.parse_time(
            police_case.findtext("updated_datetime"))
        assert by_id["2"].findtext("media_url") == ""  # no snapshot: an empty element
        services = ElementTree.fromstring(api.get("/services.xml").content)  # public, like the tables
        assert [s.findtext("service_code") for s in services.findall("service")] == ["200505", "200102"]
        assert services.find("service").findtext("metadata") == "false"
        (one,) = ElementTree.fromstring(api.get("/requests/2.xml", headers=admin).content).findall("request")
        assert one.findtext("agency_responsible") == "城管" and one.findtext("address") == "网格9"  # routed by the grid
        assert api.get("/requests.html", headers=admin).status_code == 400


def test_a_request_number_in_other_digits_is_the_specs_400_not_a_500(gateway):
    """"²" and "١" are digits to str.isdigit(); the first broke int() (a 500 and a traceback in the log)."""
    tables, store, picture = gateway
    admin = {"Authorization": f"Bearer {new_token(store, 'root', 'admin')}"}
    with serve(create_app(store, tables)) as base, httpx.Client(base_url=f"{base}/open311/v2", timeout=10) as api:
        for ids in ("²", "1,²", "١", "𝟏"):
            answer = api.get("/requests.json", params={"service_request_id": ids}, headers=admin)
            assert answer.status_code == 400, (ids, answer.text)
            assert "request numbers" in answer.json()[0]["description"] and ids in answer.json()[0]["description"]
        assert [r["service_request_id"] for r in api.get("/requests.json", params={"service_request_id": "01"},
                                                         headers=admin).json()] == ["1"]


def test_every_error_on_open311s_paths_is_the_specs_in_the_format_the_path_names(gateway):
    """A missing token, a value FastAPI refuses, an unknown path or method were FastAPI's ``{"detail": ...}``: JSON on
    an ``.xml`` path too, no XML a GeoReport client parses, and on a ``.json`` path no ``[{"code", "description"}]``."""
    tables, store, picture = gateway
    admin = {"Authorization": f"Bearer {new_token(store, 'root', 'admin')}"}

    with serve(create_app(store, tables)) as base, httpx.Client(base_url=f"{base}/open311/v2", timeout=10) as api:
        for fmt in ("json", "xml"):
            missing = api.get(f"/requests.{fmt}")
            assert spec_error(missing, fmt)[0] == 401 and missing.headers["www-authenticate"].startswith("Bearer")
            assert spec_error(api.get(f"/requests/1.{fmt}", headers={"Authorization": "Bearer nope"}), fmt)[0] == 401
            for query in ({"start_date": "x" * 41}, {"status": "open\x01"}, {"service_code": "9" * 2001}):
                code, description = spec_error(api.get(f"/requests.{fmt}", params=query, headers=admin), fmt)
                assert code == 400 and next(iter(query)) in description, (query, description)
            for number in ("abc", "0", "99999999999"):
                code, description = spec_error(api.get(f"/requests/{number}.{fmt}", headers=admin), fmt)
                assert code == 400 and "request_id" in description, (number, description)
            assert spec_error(api.get(f"/services/200505.{fmt}"), fmt)[0] == 404  # no service definitions: metadata false
            posted = api.post(f"/requests.{fmt}", data={"service_code": "200505"}, headers=admin)  # read-only
            assert spec_error(posted, fmt)[0] == 405 and posted.headers["allow"] == "GET"
        code, description = spec_error(api.get("/requests.html", headers=admin), "xml")  # the spec's default format
        assert code == 400 and "fmt" in description
        assert httpx.get(f"{base}/cases/abc", headers=admin).json()["detail"]  # the API's own stay FastAPI's


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_jurisdiction_id_other_than_the_one_served_is_the_specs_404_naming_it(gateway, fmt):
    """``jurisdiction_id=tianjin`` (or any) was answered as if it were this city's: a client that keeps several
    cities' endpoints, one entry's id or address written wrong, was given this city's requests as another's."""
    tables, store, picture = gateway
    admin = {"Authorization": f"Bearer {new_token(store, 'root', 'admin')}"}
    client = TestClient(create_app(store, tables), base_url="http://gw.city.example")
    for path in (f"services.{fmt}", f"requests.{fmt}", f"requests/1.{fmt}"):
        for served in ("gw.city.example", "GW.City.Example", ""):  # none given: the spec's server of one ignores it
            answer = client.get(f"/open311/v2/{path}", params={"jurisdiction_id": served}, headers=admin)
            assert answer.status_code == 200, (path, answer.text)
        wrong = client.get(f"/open311/v2/{path}", params={"jurisdiction_id": "tianjin"}, headers=admin)
        assert spec_error(wrong, fmt) == (404, "jurisdiction_id: this server serves one jurisdiction, gw.city.example "
                                               "(the host it is reached by): write that, or leave jurisdiction_id out; "
                                               "not 'tianjin'"), (path, wrong.text)


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_behind_a_proxy_that_rewrites_host_the_configured_jurisdiction_id_is_the_one_served(gateway, fmt):
    """nginx in front, the gateway on 127.0.0.1: the host it is reached by was the proxy's upstream name, and a
    client sending the city's public id was refused, its only way out to send none. With ``http.jurisdiction_id``
    exactly the ids configured are served, in any case; the host reached by is another's."""
    tables, store, picture = gateway
    admin = {"Authorization": f"Bearer {new_token(store, 'root', 'admin')}"}
    app = create_app(store, tables, jurisdiction_id=["open311.tianjin.gov.cn", "xl.tianjin.gov.cn"])
    client = TestClient(app, base_url="http://127.0.0.1:8080")  # Host as the proxy rewrote it
    for path in (f"services.{fmt}", f"requests.{fmt}", f"requests/1.{fmt}"):
        for served in ("open311.tianjin.gov.cn", "OPEN311.Tianjin.gov.cn", "xl.tianjin.gov.cn", ""):
            answer = client.get(f"/open311/v2/{path}", params={"jurisdiction_id": served}, headers=admin)
            assert answer.status_code == 200, (path, served, answer.text)
        for other in ("127.0.0.1", "tianjin"):
            wrong = client.get(f"/open311/v2/{path}", params={"jurisdiction_id": other}, headers=admin)
            assert wrong.status_code == 404, (path, other, wrong.text)
            assert spec_error(wrong, fmt) == (404, "jurisdiction_id: this server serves one jurisdiction, "
                                                   "open311.tianjin.gov.cn (or xl.tianjin.gov.cn): write that, or "
                                                   f"leave jurisdiction_id out; not {other!r}")


@pytest.mark.parametrize("public_url, base", [
    ("https://xl.tianjin.gov.cn/", "https://xl.tianjin.gov.cn"),
    ("https://tianjin.gov.cn:8443/xl", "https://tianjin.gov.cn:8443/xl"),  # a port, and a path the proxy serves it under
    (None, "http://127.0.0.1:8080"),  # unset: the address the request came to
])
def test_behind_a_proxy_the_urls_handed_out_are_the_public_url(gateway, public_url, base):
    """nginx in front, the gateway on 127.0.0.1: ``media_url`` and the next page's ``Link`` were the proxy's upstream
    (``http://127.0.0.1:8080/cases/1/evidence.jpg``), which no client reaches. ``http.public_url`` is theirs."""
    tables, store, picture = gateway
    admin = {"Authorization": f"Bearer {new_token(store, 'root', 'admin')}"}
    client = TestClient(create_app(store, tables, public_url=public_url), base_url="http://127.0.0.1:8080")
    one = client.get("/open311/v2/requests/1.json", headers=admin).json()[0]
    assert one["media_url"] == f"{base}/cases/1/evidence.jpg"
    xml = ElementTree.fromstring(client.get("/open311/v2/requests.xml", params={"status": "open"}, headers=admin).content)
    assert {r.findtext("media_url") for r in xml} == {f"{base}/cases/1/evidence.jpg", ""}
    first = client.get("/open311/v2/requests.json", params={"per_page": 1}, headers=admin)
    after = first.links["next"]["url"]
    assert after.startswith(f"{base}/open311/v2/requests.json?per_page=1&page=2&start_date="), after
    second = client.get(after.removeprefix(base), headers=admin).json()  # the page it names, as the proxy passes it on
    assert [r["service_request_id"] for r in first.json() + second] == ["2", "1"]


def test_a_date_or_time_without_a_zone_is_the_citys_as_everywhere_else(gateway):
    """``start_date=2026-12-01T09:00:00`` from a tool in the city was read as UTC: 17:00 Beijing time, the morning's
    requests left out without a word (``dataset export --since`` and ``replay --start`` read it as Beijing time)."""
    tables, store, picture = gateway
    admin = {"Authorization": f"Bearer {new_token(store, 'root', 'admin')}"}
    beijing = lambda t: datetime.fromtimestamp(t, CITY_TZ).replace(tzinfo=None)  # noqa: E731 (a clock on the wall)
    now = time.time()
    with serve(create_app(store, tables)) as base, httpx.Client(base_url=f"{base}/open311/v2", timeout=10) as api:
        def ids(**query) -> list[str]:
            answer = api.get("/requests.json", params=query, headers=admin)
            assert answer.status_code == 200, answer.text
            return sorted(r["service_request_id"] for r in answer.json())

        an_hour_ago, in_an_hour = (beijing(now + s).isoformat(timespec="seconds") for s in (-3600, 3600))
        assert ids(start_date=an_hour_ago) == ["1", "2"]  # read as UTC: 7 hours ahead, none
        assert ids(end_date=an_hour_ago) == []  # read as UTC: 9 hours after, both
        assert ids(start_date=an_hour_ago, end_date=in_an_hour) == ["1", "2"]
        today = beijing(now).date()
        assert ids(start_date=today.isoformat(), end_date=(today + timedelta(days=1)).isoformat()) == ["1", "2"]
        assert ids(start_date=f"{an_hour_ago}+08:00") == ["1", "2"] and ids(start_date=f"{an_hour_ago}Z") == []
        # a '+' left unencoded in the query is a space by the time it is read: said, with the way to write it
        unencoded = api.get(f"/requests.json?start_date={an_hour_ago}+08:00", headers=admin)
        assert unencoded.status_code == 400 and "%2B" in unencoded.json()[0]["description"]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_third_party_georeport_client_reads_a_city_that_publishes_its_requests(gateway, fmt):
    """georeport (PyPI) sends no Authorization header: it reads a gateway with ``http.public_read``."""
    from georeport import GeoReport

    tables, store, picture = gateway
    with serve(create_app(store, tables, public_read=True)) as base:
        client = GeoReport(f"{base}/open311/v2", output_format=fmt)
        services = client.get_service_list()
        assert {s["service_code"] for s in services} == {"200505", "200102"}
        now = time.time()
        found = client.get_service_requests(start_date=wire.iso(now - 86400), end_date=wire.iso(now + 60),
                                            status="open")
        found = [found] if isinstance(found, dict) else found  # xmltodict: one element is no list
        assert sorted(r["service_request_id"] for r in found) == ["1", "2"]
        one = client.get_service_request("1")
        assert (one["agency_responsible"], one["address_id"], one["service_code"]) == ("交警", "D-S1-C1-G1", "200505")
        assert one["media_url"] == f"{base}/cases/1/evidence.jpg"
        assert httpx.get(one["media_url"]).content == picture
        assert one["updated_datetime"] >= one["requested_datetime"]


def test_more_requests_than_the_specs_1000_come_in_pages_and_the_answer_names_the_next(tmp_path):
    """1,001 cases in the last 90 days: the answer was the newest 1,000, and nothing said one was left out. An answer
    is still at most the spec's 1,000, ``page`` and ``per_page`` choose a page, and the ``Link`` header names the next
    while there is one, in the window the first page took: a case opened meanwhile does not push one into it twice."""
    (tmp_path / "city.yaml").write_text(yaml.safe_dump(CITY, allow_unicode=True))
    tables = load_tables(tmp_path / "city.yaml")
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, tables)
    places = [incident(location={"lat": 39.0 + i * 0.001, "lon": 117.15}) for i in range(1001)]  # 111 m apart
    assert set(ingest.handle_batch(places[:500]) + ingest.handle_batch(places[500:])) == {"case_created"}
    admin = {"Authorization": f"Bearer {new_token(store, 'root', 'admin')}"}
    ids = lambda answer: [int(r["service_request_id"]) for r in answer.json()]  # noqa: E731
    with serve(create_app(store, tables)) as base, httpx.Client(base_url=f"{base}/open311/v2", timeout=30,
                                                                headers=admin) as api:
        first = api.get("/requests.json")
        assert ids(first) == list(range(1001, 1, -1))
        assert ingest.handle(*incident(location={"lat": 38.0, "lon": 117.15})) == "case_created"  # case 1002
        last = api.get(first.links["next"]["url"])
        assert ids(last) == [1] and "next" not in last.links and "link" not in last.headers
        pages, url = [], "/requests.xml?status=open&per_page=400"
        while url:
            answer = api.get(url)
            pages.append([int(r.findtext("service_request_id")) for r in ElementTree.fromstring(answer.content)])
            url = answer.links.get("next", {}).get("url")
        assert [len(p) for p in pages] == [400, 400, 202] and sum(pages, []) == list(range(1002, 0, -1))
        assert api.get("/requests.json", params={"page": 12, "per_page": 100}).json() == []
        for query in ({"per_page": 1001}, {"per_page": 0}, {"page": 0}, {"page": "x"}):
            answer = api.get("/requests.json", params=query)
            assert answer.status_code == 400 and next(iter(query)) in answer.json()[0]["description"], query


def test_openapi_json_describes_every_key_open311_answers_in_json_and_the_xml_beside_it(gateway):
    """An integrator found Open311's 200 answers undescribed in /openapi.json (no schema: a client made from it had
    nothing to read). Each key of a real answer, a service and a service request, is described with its meaning; the
    ``.xml`` path's answer as the spec's XML; the answers themselves as they were (key order included)."""
    tables, store, picture = gateway
    client = TestClient(create_app(store, tables))
    admin = {"Authorization": f"Bearer {new_token(store, 'root', 'admin')}"}
    described = client.get("/openapi.json").json()
    models = described["components"]["schemas"]
    answers = {"/open311/v2/services.{fmt}": client.get("/open311/v2/services.json").json(),
               "/open311/v2/requests.{fmt}": client.get("/open311/v2/requests.json", headers=admin).json(),
               "/open311/v2/requests/{request_id}.{fmt}": client.get("/open311/v2/requests/1.json", headers=admin).json()}
    for path, got in answers.items():
        content = described["paths"][path]["get"]["responses"]["200"]["content"]
        assert content["text/xml"]["schema"]["type"] == "string", path
        listed = content["application/json"]["schema"]
        assert listed["type"] == "array", path
        props = models[listed["items"]["$ref"].rsplit("/", 1)[-1]]["properties"]
        assert got and all(list(item) == list(props) for item in got), (path, set(got[0]) ^ set(props))
        assert all(p.get("title") for p in props.values()), path
    assert "Link" in described["paths"]["/open311/v2/requests.{fmt}"]["get"]["responses"]["200"]["headers"]
    assert list(answers["/open311/v2/services.{fmt}"][0]) == ["service_code", "service_name", "description",
                                                             "metadata", "type", "keywords", "group"]
