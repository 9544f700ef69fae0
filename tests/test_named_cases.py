"""A case's timeline names other cases (one at the same place, the case a verdict says it repeats): each is named to
a reader who may see it, and is "another case" to one who may not. The case log keeps the number."""

from fastapi.testclient import TestClient

from .test_api_limits import city  # noqa: F401 (fixture)
from .test_workflow import auth, incident

HERE = {"grid": "D-S1-C1-G1", "camera": "kerb-east", "location": {"lat": 39.3, "lon": 117.15}}  # no fixture case here


def page_of(app, token: str, case_id: int) -> str:
    page = TestClient(app)
    page.post("/ui/login", data={"token": token})
    return page.get(f"/ui/cases/{case_id}").text


def test_a_case_at_the_same_place_is_named_only_to_a_reader_who_may_see_it(city):  # noqa: F811
    """A lead held for review and a confirmed incident at the same place each name the other's case. The department
    read the number of the case waiting for review, which is not a department's to see, and, once one of the two was
    redispatched, each department read the number of the other department's case."""
    app, store, ingest, client, tokens = city
    police, sanitation, admin = auth(tokens["police"]), auth(tokens["sanitation"]), auth(tokens["admin"])
    assert ingest.handle(*incident(**HERE, attributes={"needs_review": True})) == "case_created"
    assert ingest.handle(*incident(**HERE)) == "case_created"
    held, sent = sorted(c["id"] for c in store.list_cases())[-2:]
    assert [store.get_case(n)["state"] for n in (held, sent)] == ["pending_review", "dispatched"]

    def related(headers: dict, case_id: int) -> list[str]:
        return [e["note"] for e in client.get(f"/cases/{case_id}", headers=headers).json()["timeline"]
                if e["action"] == "related"]

    def named(token: str, case_id: int, other: int) -> bool:
        """Whether ``token``'s reader reads case ``other``'s number on case ``case_id``'s page (never its link
        where not)."""
        shown = page_of(app, token, case_id)
        assert f"案件 #{other}" in shown or f"/ui/cases/{other}" not in shown, (token, shown)
        return f"案件 #{other}" in shown

    assert related(admin, sent) == [f"case {held} at the same place waits for review"]
    assert related(police, sent) == ["another case at the same place waits for review"]  # no department's yet
    assert (named(tokens["admin"], sent, held), named(tokens["police"], sent, held)) == (True, False)
    assert "同一地点的另一案件 待审核" in page_of(app, tokens["police"], sent)
    # confirmed, it is the police's: then they read its number
    assert client.post(f"/cases/{held}/actions", json={"action": "confirm"}, headers=admin).status_code == 200
    assert related(police, sent) == [f"case {held} at the same place waits for review"]
    # the confirmed incident's case goes to the sanitation: now each department reads the other's as another case
    for who, action in ((police, {"action": "return"}), (admin, {"action": "redispatch", "department": "sanitation"})):
        assert client.post(f"/cases/{sent}/actions", json=action, headers=who).status_code == 200
    assert related(sanitation, sent) == ["another case at the same place waits for review"]
    assert related(police, held) == [f"another case opened at the same place for confirmed incident "
                                     f"{store.get_case(sent)['incident_id']}"]
    for token, case_id, other, shown in (("sanitation", sent, held, False), ("police", held, sent, False),
                                         ("op-s1", sent, held, True), ("admin", held, sent, True)):
        assert named(tokens[token], case_id, other) == shown, (token, case_id)
    # the case log keeps the numbers
    logged = [e["note"] for n in (held, sent) for e in store.get_case(n)["timeline"] if e["action"] == "related"]
    assert logged == [f"case {sent} opened at the same place for confirmed incident "
                      f"{store.get_case(sent)['incident_id']}", f"case {held} at the same place waits for review"]


def test_the_case_a_duplicate_repeats_is_named_only_to_a_reader_who_may_see_it(city):  # noqa: F811
    """A verdict that a case repeats another (``duplicate_of``) named that case to every reader of this one: its
    department read another department's case number, a street's operator another street's."""
    app, store, ingest, client, tokens = city
    police, admin = auth(tokens["police"]), auth(tokens["admin"])
    near, far = sorted(c["id"] for c in client.get("/cases", headers=police).json())  # D-S1's, D-S2's
    for who, action in ((police, {"action": "return"}), (admin, {"action": "redispatch", "department": "sanitation"})):
        assert client.post(f"/cases/{far}/actions", json=action, headers=who).status_code == 200
    r = client.post(f"/cases/{near}/verdict", json={"verdict": "duplicate", "duplicate_of": far}, headers=admin)
    assert r.status_code == 201, r.text

    def api(token: str) -> tuple:
        body = client.get(f"/cases/{near}", headers=auth(tokens[token])).json()
        (note,) = [e["note"] for e in body["timeline"] if e["action"] == "verdict"]
        return body["verdict"]["duplicate_of"], note

    assert api("admin") == (far, f"duplicate: of case {far}") and r.json()["verdict"]["duplicate_of"] == far
    assert api("police") == api("op-s1") == (None, "duplicate: of another case")  # the sanitation's; D-S2's
    for token, shown in (("police", False), ("op-s1", False), ("admin", True)):
        page = page_of(app, tokens[token], near)
        assert (f"案件 #{far}" in page, "重复: 另一案件" in page) == (shown, not shown), (token, page)
    (logged,) = [e["note"] for e in store.get_case(near)["timeline"] if e["action"] == "verdict"]
    assert logged == f"duplicate: of case {far}"
