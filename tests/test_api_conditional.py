"""An API client acts only on the case it last read, as a case page's form does (tests/test_workbench_people.py):
``GET /cases/{id}`` gives the case's ETag, ``POST /cases/{id}/actions`` with an If-Match naming another tag is 412
with the case as it is now, and If-Match's ``*``, lists and garbage are read as RFC 9110 §13.1.1 says. Through a
real uvicorn: a department's system and an operator, each with its own connection."""

import hashlib
import re
import threading
import time

import httpx
import pytest

from gateway import actions, verdicts
from gateway.workflow import Action, Role

from .test_api_limits import make_city, serving
from .test_workflow import JPEG, auth, database_url, incident, jpeg_photo  # noqa: F401 (fixtures)

STRONG = re.compile(r'"[0-9a-f]{16}"')


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """One gateway on SQLite for the module (its tests each read the case's tag first): base URL, tokens, store."""
    tmp = tmp_path_factory.mktemp("conditional")
    app, store, ingest, _, tokens = make_city(tmp, f"sqlite:///{tmp}/gw.sqlite")
    with serving(app) as port:
        yield f"http://127.0.0.1:{port}", tokens, store, ingest


def tag_of(client: httpx.Client, token: str, case_id: int = 1) -> str:
    r = client.get(f"/cases/{case_id}", headers=auth(token))
    assert r.status_code == 200, r.text
    return r.headers["ETag"]


def test_an_action_on_the_case_as_last_read_is_taken_and_one_on_a_case_since_changed_is_412(gateway):
    """A department asked for 2 hours; an operator who had read the case before escalated it all the same, and every
    API client acted on whatever the case had become. Now the operator's If-Match names the case it read: 412, the
    case as it is now in the body (the request it did not see), nothing done; with the new tag it acts."""
    url, tokens, store, ingest = gateway
    with httpx.Client(base_url=url) as police, httpx.Client(base_url=url) as operator:
        read, level = tag_of(operator, tokens["op-s1"]), store.get_case(1)["level"]
        assert STRONG.fullmatch(read), read  # strong: If-Match compares strongly, a W/ tag would never match
        asked = police.post("/cases/1/actions", json={"action": "request_extension", "extend_by": "2h"},
                            headers=auth(tokens["police"]) | {"If-Match": tag_of(police, tokens["police"])})
        assert asked.status_code == 200, asked.text
        now = asked.headers["ETag"]
        assert now != read and now == tag_of(operator, tokens["op-s1"])
        assert asked.headers["Content-Location"] == "/cases/1"  # the body (and so the tag) is the case's new self

        stale = operator.post("/cases/1/actions", json={"action": "escalate"},
                              headers=auth(tokens["op-s1"]) | {"If-Match": read})
        assert stale.status_code == 412, stale.text
        said = stale.json()
        assert "changed" in said["detail"] and now in said["detail"], said["detail"]
        assert (said["case"]["extension_request"], said["case"]["level"]) == ("2h", level)
        assert stale.headers["ETag"] == now and store.get_case(1)["level"] == level

        # a merged incident adds to the case without changing what an action is decided on: the tag holds
        assert ingest.handle(*incident(location={"lat": 39.17005, "lon": 117.15})) == "case_merged"
        assert tag_of(operator, tokens["op-s1"]) == now
        fresh = operator.post("/cases/1/actions", json={"action": "escalate"},
                              headers=auth(tokens["op-s1"]) | {"If-Match": now})
        assert fresh.status_code == 200 and fresh.json()["level"] == level + 1, fresh.text
        assert fresh.headers["ETag"] == tag_of(operator, tokens["op-s1"]) != now

        # without If-Match, as every client before this: acts on the case as it is
        unconditional = police.post("/cases/1/actions", json={"action": "acknowledge"}, headers=auth(tokens["police"]))
        assert unconditional.status_code == 200 and unconditional.json()["state"] == "handling", unconditional.text


@pytest.mark.parametrize("if_match, status", [
    (lambda tag: "*", 200),  # any current case (§13.1.1, 1)
    (lambda tag: f'"0123456789abcdef", {tag}', 200),  # any listed tag that matches (§13.1.1, 2)
    (lambda tag: ['"0123456789abcdef"', tag], 200),  # two If-Match lines are one list (§5.3)
    (lambda tag: f',{tag} ,, "0123456789abcdef"', 200),  # empty elements and spaces are allowed in a list (§5.6.1)
    (lambda tag: '"0123456789abcdef"', 412),  # another case than this
    (lambda tag: f"W/{tag}", 412),  # weak: If-Match compares strongly (§8.8.3.2), it never matches
    (lambda tag: tag.strip('"'), 412),  # not quoted: not an entity tag (§13.1.1, 3: otherwise, false)
    (lambda tag: f"*, {tag}", 412),  # "*" or a list, not both
    (lambda tag: "garbage; drop table cases", 412),
    (lambda tag: tag[:-1], 412),  # unterminated
    (lambda tag: "", 412),  # a list of no tags: none matches
], ids=["star", "list", "two lines", "empty elements", "another tag", "weak", "unquoted", "star and a tag",
        "garbage", "unterminated", "empty"])
def test_if_match_star_lists_and_malformed_values_as_rfc_9110_reads_them(gateway, if_match, status):
    """A condition that is false or not a condition at all is 412, never an unconditional action: a client that
    meant to guard its action and sent the tag wrongly must not act on a case it did not see."""
    url, tokens, store, _ = gateway
    with httpx.Client(base_url=url) as operator:
        tag = tag_of(operator, tokens["op-s1"])
        before = store.get_case(1)["deadline"]
        value = if_match(tag)
        headers = [*auth(tokens["op-s1"]).items(), *[("If-Match", v) for v in ([value] if isinstance(value, str)
                                                                               else value)]]
        r = operator.post("/cases/1/actions", json={"action": "extend", "extend_by": "1h"}, headers=headers)
        assert r.status_code == status, r.text[:300]
        if status == 200:
            assert store.get_case(1)["deadline"] > before and r.headers["ETag"] != tag
        else:
            assert store.get_case(1)["deadline"] == before and r.headers["ETag"] == tag
            assert r.json()["case"]["id"] == 1 and "nothing was done" in r.json()["detail"], r.json()["detail"]


def test_if_match_on_a_case_out_of_scope_is_404_not_412(gateway):
    """A precondition is weighed only where the request would otherwise succeed (§13.2.1): a case the token may not
    see is 404 whatever the If-Match, and a 412's body would have shown it."""
    url, tokens, _, _ = gateway
    with httpx.Client(base_url=url) as sanitation:
        for value in ("*", '"0123456789abcdef"', "garbage"):
            r = sanitation.post("/cases/1/actions", json={"action": "acknowledge"},
                                headers=auth(tokens["sanitation"]) | {"If-Match": value})
            assert r.status_code == 404 and "case" not in r.json(), (value, r.text)


def test_two_clients_acting_on_the_same_tag_at_once_one_acts_the_other_is_412(tmp_path, database_url):
    """A department's system asks for more time while an operator escalates, both on the case as each read it, their
    requests at once: both were taken (the escalation on a request the operator never saw). Now one is."""
    app, store, _, _, tokens = make_city(tmp_path, database_url)
    with serving(app) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}") as reader:
        tag = tag_of(reader, tokens["admin"])
        sends = {"police": {"action": "request_extension", "extend_by": "2h"}, "op-s1": {"action": "escalate"}}
        together, answers = threading.Barrier(len(sends)), {}

        def send(who):
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                together.wait(10)
                answers[who] = client.post("/cases/1/actions", json=sends[who],
                                           headers=auth(tokens[who]) | {"If-Match": tag})

        threads = [threading.Thread(target=send, args=(who,)) for who in sends]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert sorted(a.status_code for a in answers.values()) == [200, 412], {w: a.text for w, a in answers.items()}
        won = next(a for a in answers.values() if a.status_code == 200)
        lost = next(a for a in answers.values() if a.status_code == 412)
        assert lost.headers["ETag"] == won.headers["ETag"] == tag_of(reader, tokens["admin"])
        case = store.get_case(1)
        assert case["level"] + (case["extension_request"] == "2h") == 1, case


def test_a_verdict_or_a_photo_on_a_case_since_changed_is_412_and_keeps_nothing(gateway):
    """An operator judged a case, a department sent its photo, each on the case as it had read it, after another had
    given it more time: both were kept on a case neither had seen, and neither could say which case it meant. Now
    their If-Match says it, as an action's does: 412 with the case as it is now, nothing kept; with its tag, taken."""
    url, tokens, store, _ = gateway
    with httpx.Client(base_url=url) as police, httpx.Client(base_url=url) as operator:
        police_read, operator_read = tag_of(police, tokens["police"]), tag_of(operator, tokens["op-s1"])
        extended = httpx.post(f"{url}/cases/1/actions", json={"action": "extend", "extend_by": "1h"},
                              headers=auth(tokens["admin"]))  # the centre gives it an hour more
        assert extended.status_code == 200, extended.text
        now, photo = extended.headers["ETag"], jpeg_photo((64, 48), "teal")
        photos = lambda: [e["note"] for e in store.get_case(1)["timeline"] if e["action"] == "photo"]  # noqa: E731
        kept = photos()

        stale = police.post("/cases/1/photos", content=photo, headers=JPEG | auth(tokens["police"]) | {"If-Match": police_read})
        assert stale.status_code == 412 and stale.headers["ETag"] == now, stale.text[:300]
        assert "changed" in stale.json()["detail"] and photos() == kept
        added = police.post("/cases/1/photos", content=photo, headers=JPEG | auth(tokens["police"]) | {"If-Match": now})
        assert added.status_code == 201 and photos() == [*kept, hashlib.sha256(photo).hexdigest()], added.text[:300]
        # a photo adds to the case without changing what is decided on it: the tag holds, and is the answer's
        assert added.headers["ETag"] == now == tag_of(police, tokens["police"])
        assert added.headers["Content-Location"] == "/cases/1"

        judged = {"verdict": "wrong_place", "note": "对面路口"}
        stale = operator.post("/cases/1/verdict", json=judged, headers=auth(tokens["op-s1"]) | {"If-Match": operator_read})
        assert stale.status_code == 412 and stale.headers["ETag"] == now, stale.text[:300]
        assert stale.json()["case"]["verdict"] is None and verdicts.latest(store, [1]) == {}
        for value, status in (("garbage", 412), (f"W/{now}", 412), (now, 201)):
            r = operator.post("/cases/1/verdict", json=judged, headers=auth(tokens["op-s1"]) | {"If-Match": value})
            assert r.status_code == status, (value, r.text[:300])
        assert r.json()["verdict"]["verdict"] == "wrong_place" and len(verdicts.listed(store, case_id=1)) == 0
        assert r.headers["ETag"] == now and r.headers["Content-Location"] == "/cases/1"
        again = operator.post("/cases/1/verdict", json={"verdict": "correct"}, headers=auth(tokens["op-s1"]))
        assert again.status_code == 201, again.text  # without If-Match, as every client before this


def test_a_rejection_waits_for_a_confirmation_being_written_and_is_412_on_the_case_it_made(gateway):
    """An operator rejects a false alarm still pending review while another confirms it, the confirmation not yet
    committed: the verdict read the case before the confirmation was written, as pending review. Now it holds the case
    first, as an action does, and weighs its If-Match on the dispatched case the confirmation left: 412."""
    url, tokens, store, ingest = gateway
    assert ingest.handle(*incident(type="garbage", location={"lat": 39.171, "lon": 117.15})) == "case_created"
    (case_id,) = [c["id"] for c in store.list_cases(state="pending_review")]
    with httpx.Client(base_url=url) as operator:
        tag, answer = tag_of(operator, tokens["op-s1"], case_id), []
        rejecting = threading.Thread(target=lambda: answer.append(operator.post(
            f"/cases/{case_id}/verdict", json={"verdict": "false_alarm", "reject": True},
            headers=auth(tokens["op-s1"]) | {"If-Match": tag})))
        with store.begin() as db:  # another operator's confirmation, not yet committed
            actions.perform(db, store.get_case(case_id), Action.CONFIRM, Role.OPERATOR, "operator:op2", time.time(),
                            ingest.tables)
            rejecting.start()
            time.sleep(0.5)  # the rejection reads the case meanwhile
        rejecting.join(10)
    assert answer[0].status_code == 412, answer[0].text[:300]
    assert answer[0].json()["case"]["state"] == "dispatched" and store.get_case(case_id)["state"] == "dispatched"
    assert verdicts.latest(store, [case_id]) == {} and verdicts.listed(store, case_id=case_id) == []


def test_the_openapi_schema_shows_if_match_etag_and_the_412(gateway):
    url, _, _, _ = gateway
    schema = httpx.get(f"{url}/openapi.json").json()
    paths = schema["paths"]
    action = paths["/cases/{case_id}/actions"]["post"]
    assert [p["in"] for p in action["parameters"] if p["name"].lower() == "if-match"] == ["header"]
    assert "ETag" in action["responses"]["200"]["headers"]
    assert "ETag" in action["responses"]["412"]["headers"]
    said = action["responses"]["412"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][said]["properties"]) == {"detail", "case"}
    assert "ETag" in paths["/cases/{case_id}"]["get"]["responses"]["200"]["headers"]
    for path in ("/cases/{case_id}/verdict", "/cases/{case_id}/photos"):  # the requests that change a case alike
        post = paths[path]["post"]
        assert [p["in"] for p in post["parameters"] if p["name"].lower() == "if-match"] == ["header"], path
        assert {"ETag", "Content-Location"} <= set(post["responses"]["201"]["headers"]), path
        assert post["responses"]["412"] == action["responses"]["412"], path
