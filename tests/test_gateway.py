"""Gateway ingest and API on a real SQLite file: cases, idempotency, dead letters."""

import copy
import hashlib
import io
import json
import time

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from gateway import ingest as ingest_module
from gateway.api import create_app
from gateway.config import TABLES_DIR, load_tables
from gateway.ingest import Ingest
from gateway.storage import Store
from xueliang import wire


def jpeg_photo(size: tuple[int, int] = (320, 240), color: str = "olive") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "JPEG")
    return out.getvalue()


JPEG = jpeg_photo((64, 48), "red")  # a snapshot as a box sends it (ingest reads its headers)


def claiming(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` with its frame header (SOF0) claiming ``width`` x ``height`` pixels."""
    data = bytearray(jpeg)
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def framed(jpeg: bytes, marker: int) -> bytes:
    """``jpeg`` with its frame header's marker (FF C0, baseline) made FF ``marker``. Pillow writes no lossless,
    hierarchical or arithmetic-coded JPEG, so such files are crafted here from a real one; their headers open in
    Pillow as the real kinds' do, which is all the ingest path reads."""
    data = bytearray(jpeg)
    data[data.index(b"\xff\xc0") + 1] = marker
    return bytes(data)


def frame_header(jpeg: bytes) -> bytes:
    """``jpeg``'s frame header segment (SOF0), its marker and length included."""
    sof = jpeg.index(b"\xff\xc0")
    return jpeg[sof:sof + 2 + int.from_bytes(jpeg[sof + 2:sof + 4], "big")]


def scans(repeats: int) -> bytes:
    """A progressive JPEG whose last scan is sent ``repeats`` more times: libjpeg decodes each (with a
    warning), and a 7000x7000 picture took 31 s of CPU for 1,000 of 75 bytes each."""
    out = io.BytesIO()
    Image.new("L", (640, 480), 128).save(out, "JPEG", progressive=True)
    data = out.getvalue()
    last = data[data.rindex(b"\xff\xda"):-2]  # the last scan's header and data, up to the end of image
    return data[:-2] + last * repeats + b"\xff\xd9"


NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z

START = {
    "schema_version": 1, "incident_id": "3f2a9c", "seq": 1, "state": "start", "type": "illegal_parking",
    "box": "box-1", "camera": "gate", "zone": "kerb", "grid": "HQ-DZG-10D-07",
    "location": {"lat": 39.17, "lon": 117.15},
    "started_at": "2026-01-01T00:00:30Z", "observed_at": "2026-01-01T00:00:30Z", "ended_at": None,
    "end_reason": None, "confidence": 0.79, "bbox": [0.84, 0.07, 0.94, 0.17], "track_id": 3,
    "attributes": {"dwell_s": 30, "label": "car"},
    "evidence": {"sha256": hashlib.sha256(JPEG).hexdigest(), "bytes": len(JPEG)},
    "model": {"name": "ssd_mobilenet_v2_coco", "version": "1"},
}
TOPIC = wire.incident_topic("box-1", "gate")


def payload(**changes) -> bytes:
    m = copy.deepcopy(START)
    m.update(changes)
    return json.dumps(m).encode()


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path}/gateway.sqlite")


@pytest.fixture
def ingest(store):
    return Ingest(store, load_tables(TABLES_DIR / "demo.yaml"), clock=lambda: NOW)


def test_start_opens_a_case_with_grid_department_and_deadline(ingest, store):
    assert ingest.handle(wire.evidence_topic("box-1", "gate", "3f2a9c"), JPEG) == "evidence"
    assert ingest.handle(TOPIC, payload()) == "case_created"
    (case,) = store.list_cases()
    assert case["grid"] == "HQ-DZG-10D-07"
    assert (case["category_code"], case["category_name"]) == ("200505", "机动车乱停放")
    assert case["department"] == "traffic-police"
    assert case["deadline"] - case["created_at"] == 3600
    assert store.evidence_bytes(case["evidence_sha256"]) == JPEG


def test_redelivered_message_never_makes_a_second_case(ingest, store):
    assert ingest.handle(TOPIC, payload()) == "case_created"
    assert ingest.handle(TOPIC, payload()) == "duplicate"
    assert ingest.handle(TOPIC, payload(seq=2, state="update")) == "case_updated"
    assert ingest.handle(TOPIC, payload(seq=2, state="update")) == "duplicate"
    assert store.count("cases") == 1 and store.count("incident_events") == 2


def test_an_event_that_reuses_a_recorded_seq_with_other_content_is_a_dead_letter(ingest, store):
    """It was acknowledged as a duplicate, silently: a box that reuses ids lost incidents unseen."""
    assert ingest.handle(TOPIC, payload()) == "case_created"
    other = payload(bbox=[0.1, 0.1, 0.2, 0.2], attributes={"urgent": True})  # another type: test_sequences
    assert ingest.handle_batch([(TOPIC, other), (TOPIC, payload())]) == ["dead_letter", "duplicate"]
    (dead,) = store.list_dead_letters()
    assert dead["reason"] == ("event '3f2a9c' seq 1 differs from the one recorded; "
                              "a box sends each seq of an incident once")
    (case,) = store.list_cases()
    assert case["bbox"] == "[0.84, 0.07, 0.94, 0.17]" and not case["urgent"]


def test_end_records_recheck_evidence_and_stale_events_do_not_overwrite(ingest, store):
    ingest.handle(TOPIC, payload())
    end = payload(seq=3, state="end", ended_at="2026-01-01T00:05:00Z", end_reason="left")
    assert ingest.handle(TOPIC, end) == "case_updated"
    assert ingest.handle(TOPIC, payload(seq=2, state="update", confidence=0.5)) == "case_updated"  # late
    case = store.get_case(1)
    assert case["end_reason"] == "left" and case["last_seq"] == 3 and case["confidence"] == 0.79
    assert [e["action"] for e in case["timeline"]] == ["created", "dispatched", "recheck_evidence"]
    assert case["end_reason"] == "left"


def test_end_arriving_first_still_opens_a_case(ingest, store):
    end = payload(seq=2, state="end", ended_at="2026-01-01T00:05:00Z", end_reason="left")
    assert ingest.handle(TOPIC, end) == "case_created"
    assert store.get_case(1)["end_reason"] == "left"
    assert ingest.handle(TOPIC, payload()) == "case_updated"
    assert store.get_case(1)["end_reason"] == "left"


BAD = [
    (TOPIC, b"{not json", "not JSON"),
    (TOPIC, b"[1, 2]", "not a JSON object"),
    (TOPIC, payload(schema_version=2), "schema_version 2 is not 1"),
    (TOPIC, payload(type="fly_tipping"), "type 'fly_tipping' has no category"),
    (TOPIC, payload(seq=0), "seq"),
    (TOPIC, payload(grid="<script>alert(1)</script>"), "grid"),
    (TOPIC, payload(zone="kerb'; DROP TABLE cases;--"), "zone"),
    (TOPIC, payload(state="end"), "ended_at"),
    (TOPIC, payload(bbox=[0.1, 0.2, 1.7, 0.3]), "bbox"),
    # a case all the same, and its training label, once judged correct, a box of negative width
    (TOPIC, payload(bbox=[0.94, 0.07, 0.84, 0.17]),
     "bbox [0.94, 0.07, 0.84, 0.17]: x2 < x1 or y2 < y1 (x1, y1, the top left corner, come first)"),
    (TOPIC, payload(bbox=[0.84, 0.17, 0.94, 0.07]), "x2 < x1 or y2 < y1"),
    (TOPIC, b"{" + b" " * 20000 + b"}", "exceeds"),
    (wire.incident_topic("other-box", "gate"), payload(), "payload says box 'box-1'"),
    ("xl/v1/box-1/incident", payload(), "topic"),
    (wire.evidence_topic("box-1", "gate", "x"), b"GIF89a", "not a JPEG"),
    (wire.evidence_topic("box-1", "gate", "x"), b"", "evidence of 0 bytes"),
    # each passed the old check of two bytes, and then stopped `xueliang dataset export`
    (wire.evidence_topic("box-1", "gate", "x"), b"\xff\xd8<html><script>alert(1)</script></html>",
     "evidence is not a JPEG (cannot identify image file)"),
    (wire.evidence_topic("box-1", "gate", "x"), JPEG[:40], "evidence is not a JPEG"),
    # cut after its headers: kept, and shown grey below the cut (the export left it out: it does not decode)
    (wire.evidence_topic("box-1", "gate", "x"), jpeg_photo((640, 480), "navy")[:2000],
     "evidence is cut off: its 2,000 bytes end before the JPEG's end-of-image marker"),
    (wire.evidence_topic("box-1", "gate", "x"), JPEG[:JPEG.index(b"\xff\xda")] + b"\xff\xd9",
     "evidence is a JPEG's headers without a picture (no scan)"),
    (wire.evidence_topic("box-1", "gate", "x"), claiming(JPEG, 8000, 6000),
     "evidence of 8000x6000 pixels is more than 40,000,000"),
    (wire.evidence_topic("box-1", "gate", "x"), claiming(JPEG, 65500, 65500), "evidence of more than 40,000,000 pixels"),
    # counted as a photo's are: every browser that shows it, and the training export, decoded each scan
    (wire.evidence_topic("box-1", "gate", "x"), scans(500),
     "a JPEG of 506 scans; at most 64 (a progressive JPEG has about 10)"),
    # Pillow reads a header a segment, and a byte between them, at a time: 2 s and 1.4 s of ingest's CPU each
    (wire.evidence_topic("box-1", "gate", "x"), JPEG[:2] + b"\xff\xe1\x00\x02" * 999_000 + JPEG[2:],
     "a JPEG whose header holds more than 1,000 segments (a camera's has about 10)"),
    (wire.evidence_topic("box-1", "gate", "x"), JPEG[:2] + b"\xff" * 3_990_000 + JPEG[2:],
     "a JPEG with 3,990,000 bytes between its header's segments that begin none (fill bytes, junk); at most 65,536"),
    # Pillow opened their headers (ingest reads no more), libjpeg decodes few of them and browsers fewer: a broken
    # picture on the case page, left out of the training export
    (wire.evidence_topic("box-1", "gate", "x"), framed(JPEG, 0xC3),
     "a lossless JPEG (SOF3): only a baseline, extended or progressive one (SOF0, SOF1, SOF2) is kept, the kinds "
     "every browser and the training export decode"),
    (wire.evidence_topic("box-1", "gate", "x"), framed(JPEG, 0xC5), "a hierarchical JPEG (SOF5): only a baseline"),
    (wire.evidence_topic("box-1", "gate", "x"), framed(JPEG, 0xC7), "a hierarchical lossless JPEG (SOF7)"),
    (wire.evidence_topic("box-1", "gate", "x"), framed(JPEG, 0xC9), "an arithmetic-coded extended JPEG (SOF9)"),
    (wire.evidence_topic("box-1", "gate", "x"), framed(JPEG, 0xCA), "an arithmetic-coded progressive JPEG (SOF10)"),
    (wire.evidence_topic("box-1", "gate", "x"), framed(JPEG, 0xCF),
     "an arithmetic-coded hierarchical lossless JPEG (SOF15)"),
    (wire.evidence_topic("box-1", "gate", "x"), JPEG.replace(frame_header(JPEG), framed(frame_header(JPEG), 0xDE) + frame_header(JPEG)),
     "a hierarchical JPEG (DHP)"),
    (wire.evidence_topic("box-1", "gate", "x"), JPEG.replace(frame_header(JPEG), frame_header(JPEG) * 2),
     "a JPEG of 2 frame headers (SOF0, SOF0); libjpeg refuses a second"),
    (TOPIC, payload(started_at="2026-01-01T00:03:00Z"), "started_at is after observed_at"),
    # the case showed it ended in 2000, or in 2099
    (TOPIC, payload(state="end", ended_at="2000-01-01T00:00:00Z", end_reason="left"), "ended_at is before started_at"),
    (TOPIC, payload(state="end", ended_at="2099-12-31T23:59:59Z", end_reason="left"),
     "ended_at is 2335219169 s after observed_at (more than 300 s)"),
    # bool("false") is True: an urgent case (1 h, not 24) and a case held for review
    (TOPIC, payload(attributes={"urgent": "false"}), "attributes/urgent: 'false' is not of type 'boolean'"),
    (TOPIC, payload(attributes={"urgent": 0}), "attributes/urgent: 0 is not of type 'boolean'"),
    (TOPIC, payload(attributes={"needs_review": "no"}), "attributes/needs_review: 'no' is not of type 'boolean'"),
]


@pytest.mark.parametrize("topic, body, reason", BAD, ids=[r for _, _, r in BAD])
def test_bad_input_goes_to_dead_letters_with_the_reason(ingest, store, topic, body, reason):
    assert ingest.handle(topic, body) == "dead_letter"
    (dead,) = store.list_dead_letters()
    assert reason in dead["reason"] and dead["topic"] == topic
    assert store.count("cases") == 0
    assert ingest.handle(TOPIC, payload()) == "case_created"  # and nothing else is affected


def test_an_incident_ahead_of_the_gateways_clock_is_held_and_taken_once_the_clock_allows_it(store):
    """A box whose clock runs an hour ahead (no NTP in a street office): its real incident was a dead letter,
    acknowledged, and the box deleted it. Now it is held: no dead letter, nothing written (a hostile box costs no
    database work), the box listed with how far ahead; taken once the gateway's clock is within the limit."""
    clock = [NOW]
    ingest = Ingest(store, load_tables(TABLES_DIR / "demo.yaml"), clock=lambda: clock[0])
    ahead = payload(started_at="2026-01-01T01:00:00Z", observed_at="2026-01-01T01:00:30Z")
    assert ingest.handle(TOPIC, ahead) == "ahead_of_clock"
    elsewhere = payload(incident_id="other", location={"lat": 39.2, "lon": 117.2})
    assert ingest.handle_batch([(TOPIC, ahead), (TOPIC, elsewhere)]) == ["ahead_of_clock", "case_created"]
    assert store.count("dead_letters") == 0 and store.count("incident_events") == 1
    (listed,) = ingest.health.parts()["ingest"]["boxes_ahead"].items()
    assert listed[0] == "box-1" and listed[1]["ahead_s"] == 3630
    assert listed[1]["held"] == 1 and listed[1]["deliveries"] == 2  # one message, sent again: held once
    # wrong in another way too: a dead letter, as ever (only the clock's fault is held)
    assert ingest.handle(TOPIC, payload(incident_id="x", started_at="2026-01-01T02:00:00Z",
                                        observed_at="2026-01-01T01:00:30Z")) == "dead_letter"
    clock[0] = NOW + 3400.0  # 230 s behind the incident's time: within the limit
    assert ingest.handle(TOPIC, ahead) == "case_created"


def test_a_held_message_is_counted_once_however_often_its_box_sends_it_again(store):
    """A box an hour ahead resends what is held every 15 s or so: /health said 240 messages held, and the
    metric rose by 240, for one incident held an hour. Each held message (incident id, seq) now counts once,
    its deliveries beside it; the outcome counter still counts every message taken from the broker."""
    from gateway.metrics import REGISTRY

    clock = [NOW]
    ingest = Ingest(store, load_tables(TABLES_DIR / "demo.yaml"), clock=lambda: clock[0])
    ahead = {"started_at": "2026-01-01T01:00:00Z", "observed_at": "2026-01-01T01:00:30Z"}
    start, update = payload(**ahead), payload(**ahead, seq=2, state="update")
    other = payload(**ahead, incident_id="b2", location={"lat": 39.2, "lon": 117.2})
    before = REGISTRY.get_sample_value("xl_gateway_held_messages_total")
    for resend in range(5):
        assert ingest.handle_batch([(TOPIC, start), (TOPIC, update)]) == ["ahead_of_clock"] * 2
        clock[0] += 15.0
    assert ingest.handle(TOPIC, other) == "ahead_of_clock"
    listed = ingest.health.parts()["ingest"]["boxes_ahead"]["box-1"]
    assert listed["held"] == 3 and listed["deliveries"] == 11
    assert REGISTRY.get_sample_value("xl_gateway_held_messages_total") - before == 3
    health, later = ingest.health, time.time() + 2 * 3600.0  # quiet for two hours: no longer listed ...
    assert "box-1" not in health.parts(later)["ingest"]["boxes_ahead"]
    assert health.held_ahead("box-1", ("3f2a9c", 1), 3630.0, later)  # ... and held again, counted afresh
    assert health.parts(later)["ingest"]["boxes_ahead"]["box-1"]["held"] == 1


def test_api_lists_cases_and_serves_evidence(ingest, store):
    ingest.handle(wire.evidence_topic("box-1", "gate", "3f2a9c"), JPEG)
    ingest.handle(TOPIC, payload())
    ingest.handle(TOPIC, b"garbage")
    client = TestClient(create_app(store, load_tables(TABLES_DIR / "demo.yaml"), public_read=True))
    (case,) = client.get("/cases").json()
    assert case["grid"] == "HQ-DZG-10D-07" and case["department"] == "traffic-police"
    assert case["deadline"] == "2026-01-01T01:00:00.000Z" and case["created_at"] == "2026-01-01T00:00:00.000Z"
    assert client.get("/cases", params={"department": "sanitation"}).json() == []
    detail = client.get(f"/cases/{case['id']}").json()
    assert [e["action"] for e in detail["timeline"]] == ["created", "dispatched"]
    image = client.get(case["evidence_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg" and image.content == JPEG
    assert client.get(f"/cases/{case['id']}/evidence.jpg", params={"which": "end"}).status_code == 404
    assert client.get("/cases/999").status_code == 404
    (dead,) = client.get("/dead-letters").json()["dead_letters"]
    assert "not JSON" in dead["reason"]


def test_a_batch_commits_together_and_a_bad_message_in_it_costs_nothing(ingest, store):
    far = {"lat": 30.0, "lon": 110.0}
    items = [
        (wire.evidence_topic("box-1", "gate", "3f2a9c"), JPEG),
        (TOPIC, payload()),
        (TOPIC, payload()),  # redelivered inside the same batch
        (TOPIC, b"{not json"),
        (TOPIC, payload(incident_id="other-1", location=far)),
        (TOPIC, payload(incident_id="3f2a9c", seq=2, state="update")),
    ]
    outcomes = ingest.handle_batch(items)
    assert outcomes == ["evidence", "case_created", "duplicate", "dead_letter", "case_created", "case_updated"]
    assert len(store.list_cases()) == 2
    assert [d["reason"][:4] for d in store.list_dead_letters()] and store.count("dead_letters") == 1


def test_evidence_whose_incident_never_comes_is_quarantined_with_the_reason(ingest, store):
    assert ingest.handle(wire.evidence_topic("box-1", "gate", "ghost"), JPEG + b"ghost") == "evidence"
    assert ingest.handle(wire.evidence_topic("box-1", "gate", "3f2a9c"), JPEG) == "evidence"
    assert ingest.handle(TOPIC, payload()) == "case_created"
    assert store.quarantine_orphan_evidence(NOW - 3600, NOW) == 0  # too young to judge
    assert store.quarantine_orphan_evidence(NOW + 1, NOW + 3601) == 1
    (dead,) = store.list_dead_letters()
    assert "evidence without an incident" in dead["reason"] and "'ghost'" in dead["reason"]
    assert dead["topic"] == wire.evidence_topic("box-1", "gate", "ghost")
    (case,) = store.list_cases()
    assert store.count("evidence") == 1 and store.evidence_bytes(case["evidence_sha256"]) == JPEG


def test_one_picture_sent_for_two_incidents_of_a_box_is_shown_for_both_and_never_for_another_box(ingest, store):
    """The bytes are kept once, under the first incident that sent them; a blocked lens's black picture is the
    same at every fault, and the second fault's case showed "evidence has not arrived"."""
    far = {"lat": 39.30, "lon": 117.30}  # another place: another case
    for iid, location in (("3f2a9c", START["location"]), ("3f2a9d", far)):
        ingest.handle(wire.evidence_topic("box-1", "gate", iid), JPEG)
        assert ingest.handle(TOPIC, payload(incident_id=iid, location=location)) == "case_created"
    topic, body = box_2(incident_id="b2-1", location={"lat": 30.0, "lon": 110.0})  # names box-1's picture
    assert ingest.handle(topic, body) == "case_created"
    client = TestClient(create_app(store, load_tables(TABLES_DIR / "demo.yaml"), public_read=True))
    shown = {}
    for case in client.get("/cases").json():
        (incident,) = client.get(f"/cases/{case['id']}").json()["incidents"]
        url = incident["evidence_url"]
        shown[incident["incident_id"]] = url and client.get(url).content
    assert shown == {"3f2a9c": JPEG, "3f2a9d": JPEG, "b2-1": None}
    case_of = {client.get(f"/cases/{c['id']}").json()["incidents"][0]["incident_id"]: c["id"]
               for c in client.get("/cases").json()}
    served = [client.get(f"/cases/{case_of[i]}/evidence.jpg").status_code for i in ("3f2a9c", "3f2a9d", "b2-1")]
    assert served == [200, 200, 404]  # the case's own snapshot: box-2's case had box-1's picture served


def box_2(**changes) -> tuple[str, bytes]:
    """An event of box-2, on box-2's own topic (so it passes the topic/payload check)."""
    return wire.incident_topic("box-2", "cam-x"), payload(box="box-2", camera="cam-x", **changes)


def test_cameras_left_at_the_templates_location_0_0_are_not_one_place(ingest, store, caplog):
    """Two boxes' cameras in different streets, each config's location left at the template's {lat: 0, lon: 0}:
    0 m apart, the second's car joined the first's case (its department, its grid) and had none of its own. (0, 0)
    is taken for no location: an incident joins cases of its own camera and zone only, and the case shows on no
    map; said once a camera."""
    template = {"lat": 0, "lon": 0}
    assert ingest.handle(TOPIC, payload(location=template)) == "case_created"
    assert ingest.handle(*box_2(incident_id="b2-1", grid="HQ-DZG-10D-08", location=template)) == "case_created"
    assert ingest.handle(TOPIC, payload(incident_id="3f2a9d", location=template)) == "case_merged"  # its own zone's
    assert sorted((c["box"], c["grid"], c["lat"], c["lon"], c["incident_count"]) for c in store.list_cases()) == [
        ("box-1", "HQ-DZG-10D-07", None, None, 2), ("box-2", "HQ-DZG-10D-08", None, None, 1)]
    assert caplog.text.count("sends location (0, 0), its config template's: taken as no location") == 2


def test_the_cameras_at_0_0_remembered_are_capped_and_one_past_them_is_still_said(ingest, store, caplog, monkeypatch):
    """A client making up box or camera names (a broker without the ACL), each incident at (0, 0), grew the set of
    cameras said without end. It keeps PLACELESS_MAX; one past them is taken the same and said at each incident."""
    monkeypatch.setattr(ingest_module, "PLACELESS_MAX", 2, raising=False)  # fails, not errs, without the cap
    template = {"lat": 0, "lon": 0}
    for i in range(4):
        topic = wire.incident_topic(f"made-up-{i}", "cam")
        assert ingest.handle(topic, payload(box=f"made-up-{i}", camera="cam", incident_id=f"m-{i}",
                                            location=template)) == "case_created"
    assert ingest.placeless == {("made-up-0", "cam"), ("made-up-1", "cam")}
    assert ingest.handle(wire.incident_topic("made-up-3", "cam"), payload(
        box="made-up-3", camera="cam", incident_id="m-3b", location=template)) == "case_merged"  # its own zone's
    assert ingest.handle(TOPIC, payload(incident_id="m-5", location=template)) == "case_created"
    assert [c["lat"] for c in store.list_cases()] == [None] * 5
    assert caplog.text.count("sends location (0, 0), its config template's: taken as no location") == 6


def test_cameras_at_0_0_are_named_ten_a_minute_and_the_rest_counted_in_one_line(store, caplog, monkeypatch):
    """A client making up names, each incident at (0, 0): each new camera was a warning, and one past the cameras
    remembered a warning at each incident, a flood's without end. REFUSALS_SAID a minute are named, as refused
    heartbeats are (``boxes.RefusalLog``); the rest are counted and said in one line once the minute is over."""
    monkeypatch.setattr(ingest_module, "PLACELESS_MAX", 15)
    now = [NOW]
    ingest = Ingest(store, load_tables(TABLES_DIR / "demo.yaml"), clock=lambda: now[0])
    template = {"lat": 0, "lon": 0}
    for i in [*range(25), 24, 24, 24, 24, 24]:  # the last not remembered: each of its incidents is one more
        topic = wire.incident_topic(f"made-up-{i}", "cam")
        ingest.handle(topic, payload(box=f"made-up-{i}", camera="cam", incident_id=f"m-{i}", location=template))
        now[0] += 1.0
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.ingest" and "(0, 0)" in r.getMessage()]
    assert len(lines) == 10 and all(line.startswith("box 'made-up-") for line in lines), lines
    now[0] = NOW + 60
    ingest.handle(TOPIC, payload())
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.ingest" and "(0, 0)" in r.getMessage()]
    assert lines[10:] == ["20 more camera(s) sending location (0, 0) in 60 s, not named one by one (at most 10 a "
                          "minute are; each taken as no location, as those named): not remembered 15, new 5"]


def test_another_box_cannot_update_or_end_an_incident_it_did_not_start(ingest, store):
    """Incident ids are not secret (notices carry them): box-2's update and end of box-1's incident
    rewrote the case's picture and closed it as the camera's re-check."""
    assert ingest.handle(TOPIC, payload()) == "case_created"
    before = store.get_case(1)
    assert ingest.handle(*box_2(seq=2, state="update", bbox=[0, 0, 1, 1], confidence=0.01)) == "dead_letter"
    assert ingest.handle(*box_2(seq=3, state="end", ended_at="2026-01-01T00:05:00Z", end_reason="left")) == "dead_letter"
    assert ingest.handle(*box_2(seq=1)) == "dead_letter"  # the start itself again, from box-2
    after = store.get_case(1)
    assert after == before  # bbox, confidence, end, timeline: all as box-1 left them
    for dead in store.list_dead_letters():
        assert dead["topic"] == wire.incident_topic("box-2", "cam-x")
        assert "incident '3f2a9c' belongs to box 'box-1'" in dead["reason"] and "box 'box-2' may not" in dead["reason"]
    assert store.count("incident_events") == 1
    # box-1's own events still count
    assert ingest.handle(TOPIC, payload(seq=2, state="end", ended_at="2026-01-01T00:05:00Z",
                                        end_reason="left")) == "case_updated"
    assert store.get_case(1)["end_reason"] == "left"


def test_a_box_that_uses_another_boxs_incident_id_first_is_not_silently_taken_for_it(ingest, store):
    """box-2 sent box-1's id first: box-1's own start was then a silent duplicate, acknowledged as such
    (so box-1 dropped it), and the city never had its case. Now it is a dead letter naming both boxes."""
    far = {"lat": 30.0, "lon": 110.0}
    topic, body = box_2(location=far)
    outcomes = ingest.handle_batch([(topic, body), (TOPIC, payload()), (TOPIC, payload(incident_id="other-1"))])
    assert outcomes == ["case_created", "dead_letter", "case_created"]  # the rest of the batch commits
    (dead,) = store.list_dead_letters()
    assert dead["topic"] == TOPIC
    assert "belongs to box 'box-2'" in dead["reason"] and "box 'box-1' may not" in dead["reason"]


def test_an_incident_id_the_edge_made_cannot_be_taken_by_another_box_sending_it_first(ingest, store):
    """box-2 sent box-1's id first and owned it: box-1's real incident was refused, and the city never had its
    case. The edge's ids now end with its box id: another box's event, or evidence, under such an id is a dead
    letter, and the owner's incident becomes its case. An id of another form is the first sender's, as before."""
    own = "3f2a9c" * 5 + "00:box-1"  # as wire.owned_incident_id makes it
    squat = box_2(incident_id=own, location={"lat": 30.0, "lon": 110.0})
    evidence = (wire.evidence_topic("box-2", "cam-x", own), JPEG)
    assert ingest.handle_batch([squat, evidence]) == ["dead_letter", "dead_letter"]
    assert ingest.handle(*squat) == "dead_letter"  # sent again: one dead letter for it still
    assert ingest.handle(wire.evidence_topic("box-1", "gate", own), JPEG) == "evidence"
    assert ingest.handle(TOPIC, payload(incident_id=own)) == "case_created"
    assert store.get_case(1)["incident_id"] == own
    reasons = [d["reason"] for d in store.list_dead_letters()]
    assert len(reasons) == 2 and all(f"incident id '{own}' names box 'box-1'" in r and "box 'box-2' may not" in r
                                     for r in reasons), reasons
    assert ingest.handle(*box_2(incident_id="3f2a9c" * 5 + "00:box-2", location={"lat": 30.0, "lon": 110.0})) \
        == "case_created"  # its own


DAY = 86_400.0


def test_a_box_back_after_a_day_offline_sends_no_department_to_what_its_camera_saw_gone(store):
    """Its outbox sends each incident's start and its end ``left`` together, a day old: each was a dispatched case,
    the traffic police sent to a car gone a day. Now it waits for a person, its timeline saying how late it came;
    nothing is lost (the end is the case's re-check evidence). One reported within its service level is dispatched."""
    from gateway.presentation import note_text

    tables = load_tables(TABLES_DIR / "demo.yaml")
    clock = [NOW + DAY]
    ingest = Ingest(store, tables, clock=lambda: clock[0])
    gone = "2026-01-01T00:05:00Z"
    end = payload(seq=2, state="end", observed_at=gone, ended_at=gone, end_reason="left", evidence=None)
    assert ingest.handle_batch([(TOPIC, payload()), (TOPIC, end)]) == ["case_created", "case_updated"]
    (case,) = store.list_cases()
    assert (case["state"], case["dispatched_at"], case["deadline"], case["end_reason"]) == (
        "pending_review", None, None, "left")
    timeline = store.get_case(case["id"])["timeline"]
    assert [e["action"] for e in timeline] == ["created", "flagged", "recheck_evidence"]
    assert timeline[1]["note"] == ("incident 3f2a9c reported 24.0 h after the camera saw it (2026-01-01T00:00:30Z; "
                                   "more than 1h): held for review, not dispatched")
    assert note_text(timeline[1], tables) == ("事件 3f2a9c 在摄像机发现 24 小时 后才送达 (2026-01-01 08:00; 超过 1 小时): "
                                              "提交审核, 未派遣")
    assert store.unpublished(("dispatched",)) == []  # no notice
    seen = wire.iso(clock[0] - 3000)  # 50 min ago: within the hour
    assert ingest.handle(TOPIC, payload(incident_id="recent", location={"lat": 39.2, "lon": 117.2}, started_at=seen,
                                        observed_at=seen)) == "case_created"
    assert store.list_cases()[0]["state"] == "dispatched"


def test_a_days_old_start_does_not_reopen_a_case_closed_minutes_before(store):
    """A case the camera closed minutes ago, and a start its box saw there a day before, sent now from its outbox:
    the case was reopened and its department sent again (the re-check window is by the gateway's clock). It stays
    closed; the start opens a case of its own, held for review for how late it came."""
    from gateway.actions import act
    from gateway.workflow import Action, Role

    tables = load_tables(TABLES_DIR / "demo.yaml")
    clock = [NOW + DAY]
    ingest = Ingest(store, tables, clock=lambda: clock[0])
    seen, gone = wire.iso(clock[0] - 600), wire.iso(clock[0] - 300)
    fresh = {"incident_id": "fresh", "started_at": seen, "observed_at": seen}
    assert ingest.handle(TOPIC, payload(**fresh)) == "case_created"
    end = payload(**dict(fresh, observed_at=gone), seq=2, state="end", ended_at=gone, end_reason="left", evidence=None)
    assert ingest.handle(TOPIC, end) == "case_updated"
    assert act(store, 1, Action.FEEDBACK, Role.DEPARTMENT, "police", clock[0], tables, lambda c: True)["state"] == "closed"
    clock[0] += 300
    assert ingest.handle(TOPIC, payload(incident_id="day-old")) == "case_created"  # seen at NOW + 30 s
    assert [(c["id"], c["state"], c["incident_count"]) for c in store.list_cases()] == [
        (2, "pending_review", 1), (1, "closed", 1)]


def test_an_urgent_lead_nobody_confirmed_does_not_bring_a_dispatched_cases_deadline_forward(store):
    """A spill case dispatched to municipal roads at its ordinary level; a lead at its place the edge could not
    confirm (``needs_review``) that calls itself urgent joins it. It made the case urgent and brought its deadline
    forward to the urgent level, the department's clock changed with nobody having looked. A confirmed urgent
    incident still does."""
    tables = load_tables(TABLES_DIR / "demo.yaml")
    clock = [NOW + DAY]
    ingest = Ingest(store, tables, clock=lambda: clock[0])
    seen = wire.iso(clock[0] - 60)
    spill = {"incident_id": "spill", "type": "spill", "started_at": seen, "observed_at": seen}
    assert ingest.handle(TOPIC, payload(**spill)) == "case_created"
    before = store.list_cases()[0]
    assert (before["state"], bool(before["urgent"])) == ("dispatched", False)
    clock[0] += 60
    lead = payload(**dict(spill, incident_id="lead"), attributes={"needs_review": True, "urgent": True})
    assert ingest.handle(TOPIC, lead) == "case_merged"
    after = store.list_cases()[0]
    assert (after["incident_count"], bool(after["urgent"]), after["deadline"]) == (2, False, before["deadline"])
    confirmed = payload(**dict(spill, incident_id="confirmed"), attributes={"urgent": True})
    assert ingest.handle(TOPIC, confirmed) == "case_merged"
    now_urgent = store.list_cases()[0]
    assert bool(now_urgent["urgent"]) and now_urgent["deadline"] < before["deadline"]


def test_a_lead_nobody_confirmed_does_not_reopen_a_closed_case_and_send_its_department_again(store):
    """A pile taken away and its case closed; minutes later the edge raises a lead there it could not confirm
    (``needs_review``): it reopened the case and sent sanitation again, with nobody having looked. The closed case
    stays closed, the lead waits for review in a case of its own, and each case's timeline names the other."""
    from gateway.actions import act
    from gateway.presentation import note_text
    from gateway.workflow import Action, Role

    tables = load_tables(TABLES_DIR / "demo.yaml")
    clock = [NOW + DAY]
    ingest = Ingest(store, tables, clock=lambda: clock[0])
    seen, gone = wire.iso(clock[0] - 600), wire.iso(clock[0] - 300)
    pile = {"incident_id": "pile", "type": "garbage", "started_at": seen, "observed_at": seen}
    assert ingest.handle(TOPIC, payload(**pile)) == "case_created"
    end = payload(**dict(pile, observed_at=gone), seq=2, state="end", ended_at=gone, end_reason="cleared", evidence=None)
    assert ingest.handle(TOPIC, end) == "case_updated"
    assert act(store, 1, Action.FEEDBACK, Role.DEPARTMENT, "sanitation", clock[0], tables, lambda c: True
               )["state"] == "closed"
    clock[0] += 300
    now = wire.iso(clock[0] - 60)
    lead = payload(**dict(pile, incident_id="lead", started_at=now, observed_at=now),
                   attributes={"needs_review": True})
    assert ingest.handle(TOPIC, lead) == "case_created"
    assert [(c["id"], c["state"], c["incident_count"]) for c in store.list_cases()] == [
        (2, "pending_review", 1), (1, "closed", 1)]
    assert len(store.unpublished(("dispatched",))) == 1  # case 1's first dispatch, nothing since
    closed, held = (store.get_case(i)["timeline"][-1] for i in (1, 2))
    assert (closed["action"], closed["note"]) == (
        "related", "incident lead at the same place waits for review in case 2; this case not reopened")
    assert (held["action"], held["note"]) == (
        "related", "case 1 at the same place closed recently; not reopened without review")
    assert note_text(closed, tables) == "同一地点的事件 lead 待审核, 已另立案件 #2; 本案未重新派遣"
    assert note_text(held, tables) == "同一地点的案件 #1 刚结案; 未经审核不重新派遣"


def test_a_lead_at_a_closed_case_and_a_rejected_one_waits_for_review_as_at_the_closed_one_alone(store):
    """A stain rejected there, then a pile there taken away and its case closed; minutes later a lead there the edge
    could not confirm. It joined the rejected case (a stain judged already) and said nothing on the closed one, though
    the pile may be back: as at the closed case alone, it waits for review in a case of its own, each case's timeline
    naming the other, and the rejected case is left as it was."""
    from gateway.actions import act
    from gateway.workflow import Action, Role

    tables = load_tables(TABLES_DIR / "demo.yaml")
    clock = [NOW + DAY]
    ingest = Ingest(store, tables, clock=lambda: clock[0])
    seen = wire.iso(clock[0] - 900)
    stain = {"incident_id": "stain", "type": "garbage", "started_at": seen, "observed_at": seen}
    assert ingest.handle(TOPIC, payload(**stain, attributes={"needs_review": True})) == "case_created"
    assert act(store, 1, Action.REJECT, Role.OPERATOR, "op", clock[0], tables, lambda c: True)["state"] == "rejected"
    seen, gone = wire.iso(clock[0] - 600), wire.iso(clock[0] - 300)
    pile = dict(stain, incident_id="pile", started_at=seen, observed_at=seen)
    assert ingest.handle(TOPIC, payload(**pile)) == "case_created"
    end = payload(**dict(pile, observed_at=gone), seq=2, state="end", ended_at=gone, end_reason="cleared", evidence=None)
    assert ingest.handle(TOPIC, end) == "case_updated"
    assert act(store, 2, Action.FEEDBACK, Role.DEPARTMENT, "sanitation", clock[0], tables, lambda c: True
               )["state"] == "closed"
    rejected_before = store.get_case(1)
    clock[0] += 300
    now = wire.iso(clock[0] - 60)
    lead = payload(**dict(stain, incident_id="lead", started_at=now, observed_at=now), attributes={"needs_review": True})
    assert ingest.handle(TOPIC, lead) == "case_created"
    assert [(c["id"], c["state"], c["incident_count"]) for c in store.list_cases()] == [
        (3, "pending_review", 1), (2, "closed", 1), (1, "rejected", 1)]
    assert store.get_case(1) == rejected_before
    closed, held = (store.get_case(i)["timeline"][-1] for i in (2, 3))
    assert (closed["action"], closed["note"]) == (
        "related", "incident lead at the same place waits for review in case 3; this case not reopened")
    assert (held["action"], held["note"]) == (
        "related", "case 2 at the same place closed recently; not reopened without review")


def test_evidence_of_the_kinds_every_browser_decodes_is_kept_and_a_photo_of_another_kind_refused(ingest, store):
    """Baseline, extended (SOF1: a camera's 12-bit or extended-table encoder) and progressive evidence is kept. A photo
    is decoded, but that alone let an arithmetic-coded one through: libjpeg decodes SOF9 (Pillow's here reads these
    Huffman bytes as noise without a word), browsers such as Firefox show nothing."""
    from gateway.images import ImageError, check_jpeg

    progressive = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(progressive, "JPEG", progressive=True)
    for n, body in enumerate((JPEG, framed(jpeg_photo((64, 48), "navy"), 0xC1), progressive.getvalue())):
        assert ingest.handle(wire.evidence_topic("box-1", "gate", f"kind-{n}"), body) == "evidence"
    assert store.count("evidence") == 3 and store.count("dead_letters") == 0
    with pytest.raises(ImageError, match=r"an arithmetic-coded extended JPEG \(SOF9\)"):
        check_jpeg(framed(JPEG, 0xC9))
