"""A damaged outbox moved aside at start (edge/outboxfile.py ``open_outbox``): what can still be read of it is put
into the new one in its order and sent; the rows on a damaged page alone are lost, counted; the file aside is left
as it was. Real SQLite files, damaged at test time; a real Mosquitto and publisher."""

import copy
import hashlib
import re
import sqlite3
import time

import pytest

from edge.outboxfile import open_outbox
from edge.config import Broker
from edge.publisher import Outbox, Publisher
from edge.salvage import salvage
from xueliang import wire

from .conftest import wait_until
from .test_edge_startup import box_config
from .test_gateway import JPEG, START
from .test_publisher import Collector

PAGE = 4096


def messages(n: int) -> list[tuple[str, bytes]]:
    """``n`` incidents of box ``b1`` as the box queues them: each one's evidence (a JPEG of about 3 kB, told apart
    by a comment) before it."""
    out = []
    for i in range(n):
        incident_id = wire.owned_incident_id("b1", f"{i:032x}")
        comment = f"evidence {i} ".encode() * 200
        evidence = JPEG[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + JPEG[2:]
        incident = {**copy.deepcopy(START), "box": "b1", "incident_id": incident_id}
        out += [(wire.evidence_topic("b1", "gate", incident_id), evidence),
                (wire.incident_topic("b1", "gate"), wire.encode_incident(incident))]
    return out


def outbox_of(path, items) -> None:
    outbox = Outbox(path)
    outbox.put(items, 1_767_225_600.0)
    outbox.close()


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def aside_of(folder):
    (aside,) = folder.glob("b1.outbox.sqlite.damaged-*[0-9]")
    return aside


def one_gap(saved: list, original: list) -> tuple[int, int]:
    """(a, b) where ``saved`` is ``original`` less ``original[a:b]``, in order; AssertionError where it is not."""
    a = next((i for i, (s, o) in enumerate(zip(saved, original)) if s != o), len(saved))
    b = len(original) - (len(saved) - a)
    assert saved == original[:a] + original[b:], "not the original, in order, less one run of rows"
    return a, b


@pytest.mark.slow
def test_the_rows_before_and_after_a_damaged_page_are_sent_in_order(tmp_path, broker, caplog):
    """They were moved aside with the rest and never sent: 600 messages lost for one page of 4 kB."""
    original = messages(300)
    path = tmp_path / "b1.outbox.sqlite"
    outbox_of(path, original)
    data = bytearray(path.read_bytes())
    data[PAGE * 200:PAGE * 201] = b"\x13" * PAGE  # a page two thirds in
    path.write_bytes(data)
    was = digest(path)
    outbox = open_outbox(box_config(tmp_path))
    collector = Collector(broker.port, "xl/v1/b1/gate/#")
    time.sleep(0.3)
    publisher = Publisher("b1", Broker(port=broker.port, resend_after_s=60), outbox)
    publisher.start()
    try:
        wait_until(lambda: outbox.pending() == 0, 30, message="every message salvaged sent and confirmed")
        time.sleep(0.3)  # nothing more comes
        got = collector.wait_for(len(original) + 1, timeout=0)
    finally:
        publisher.stop(timeout=5)
        collector.stop()
        outbox.close()
    a, b = one_gap(got, original)
    assert 0 < a < b < len(original) and b - a <= 3, (a, b)  # the page's rows alone, neither end's
    aside = aside_of(tmp_path)
    assert digest(aside) == was
    assert not list(tmp_path.glob(f"{aside.name}?*"))  # no journal or lock file beside it either
    (record,) = [r for r in caplog.records if "salvaged" in r.getMessage()]
    line = record.getMessage()
    assert record.levelname == "ERROR"
    found = re.search(r"(\d+) message\(s\) salvaged into the new one in [\d.]+ s, in order; (\d+) id\(s\) could not "
                      r"be read; the file is kept as it was", line)
    assert found and int(found[1]) == len(got) and 1 <= int(found[2]) <= b - a, line


def salvaged(tmp_path, caplog) -> list[tuple[str, bytes]]:
    """What ``open_outbox`` put into the new outbox of box ``b1`` in ``tmp_path``, the damaged file moved aside."""
    outbox = open_outbox(box_config(tmp_path))
    try:
        return [(topic, payload) for _, topic, payload in outbox.after(0, 10_000)]
    finally:
        outbox.close()


def test_a_file_cut_mid_page_keeps_what_comes_before_the_cut(tmp_path, caplog):
    original = messages(300)
    path = tmp_path / "b1.outbox.sqlite"
    outbox_of(path, original)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2 + 100])
    got = salvaged(tmp_path, caplog)
    assert len(original) // 3 < len(got) < len(original)
    assert got == original[:len(got)]
    assert f"{len(got)} message(s) salvaged into the new one" in caplog.text


def test_rows_no_publisher_writes_are_skipped_and_counted(tmp_path, caplog):
    """Where a damaged page left a row readable but not a message of this box's (another box's topic, an incident
    that is no JSON, a cut JPEG, a text payload), it is not sent."""
    original = messages(100)
    evidence_topic, evidence = original[0]
    odd = [(wire.evidence_topic("b2", "gate", "3f2a9c"), evidence), (wire.incident_topic("b1", "gate"), b"{not json"),
           (evidence_topic, evidence[:len(evidence) // 2])]
    path = tmp_path / "b1.outbox.sqlite"
    outbox_of(path, original[:150] + odd + original[150:])
    db = sqlite3.connect(path)
    db.execute("INSERT INTO outbox(topic, payload, created) VALUES (?, ?, 0)", (evidence_topic, "text"))
    db.commit()
    db.close()
    data = bytearray(path.read_bytes())
    data[PAGE * 20:PAGE * 21] = b"\x13" * PAGE
    path.write_bytes(data)
    got = salvaged(tmp_path, caplog)
    a, b = one_gap(got, original)
    assert 0 < a < b < 150 and b - a <= 3, (a, b)
    assert f"{len(got)} message(s) salvaged into the new one" in caplog.text
    assert "4 row(s) skipped as no message of this box's (the first: topic of box 'b2')" in caplog.text


def test_an_outbox_of_garbage_salvages_nothing_and_the_box_starts_clean(tmp_path, caplog):
    path = tmp_path / "b1.outbox.sqlite"
    path.write_bytes(b"\x13" * 200_000)
    assert salvaged(tmp_path, caplog) == []
    assert digest(aside_of(tmp_path)) == hashlib.sha256(b"\x13" * 200_000).hexdigest()
    assert re.search(r"outbox .*damaged-\d+T\d+\+0800: nothing salvaged: its tables cannot be read \(file is not a "
                     r"database\)", caplog.text), caplog.text


def test_a_table_of_another_making_salvages_nothing(tmp_path, caplog):
    """Its rows read well, but what they are is not known: nothing is sent."""
    path = tmp_path / "b1.outbox.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, topic TEXT, payload BLOB)")
    db.executemany("INSERT INTO outbox(topic, payload) VALUES (?, ?)", messages(5))
    db.commit()
    db.close()
    was = digest(path)
    assert salvaged(tmp_path, caplog) == []
    assert digest(aside_of(tmp_path)) == was
    assert "nothing salvaged: of another making (table outbox has no column created), nothing in it safe to send" \
           in caplog.text


def test_a_salvage_out_of_time_stops_and_says_where(tmp_path, caplog):
    """A huge damaged outbox must not keep the cameras down: the walk ends at its deadline."""
    original = messages(50)
    path = tmp_path / "b1.outbox.sqlite"
    outbox_of(path, original)
    outbox = Outbox(tmp_path / "new.sqlite")
    done = salvage(path, outbox, "b1", time.monotonic() - 1)
    got = [(topic, payload) for _, topic, payload in outbox.after(0, 1000)]
    outbox.close()
    assert done.stopped == "out of time at id 1" and got == original[:1]


def test_the_incidents_a_damaged_outbox_held_open_are_kept_open_in_the_new_one(tmp_path, caplog):
    """An outbox is damaged mostly by a power cut, when the box had no time to end its incidents: a new one begun
    without them, the next start ended none, and their cases waited for good."""
    original = messages(200)
    path = tmp_path / "b1.outbox.sqlite"
    outbox = Outbox(path)
    outbox.restore([(topic, payload, 0.0, None, None) for topic, payload in original])  # queued; confirmed as open
    (_, start), (_, ended) = original[1], original[3]
    outbox.put([(wire.incident_topic("b1", "gate"), start)], 0.0)
    outbox.put([(wire.incident_topic("b1", "gate"), ended)], 0.0)
    end = {**wire.decode_incident(ended), "seq": 2, "state": "end", "ended_at": START["observed_at"],
           "end_reason": "left", "evidence": None}
    outbox.put([(wire.incident_topic("b1", "gate"), wire.encode_incident(end))], 0.0)
    outbox.close()
    data = bytearray(path.read_bytes())
    data[PAGE * 20:PAGE * 21] = b"\x13" * PAGE  # a page of rows
    path.write_bytes(data)
    outbox = open_outbox(box_config(tmp_path))
    try:
        assert [r[:2] for r in outbox.open_incidents()] == [(wire.decode_incident(start)["incident_id"], start)]
        assert 0 < outbox.pending() < len(original) + 3
    finally:
        outbox.close()
    assert "1 incident(s) it held open kept, ended as the box starts" in caplog.text
