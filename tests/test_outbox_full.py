"""The edge's outbox on a full disk: incidents made meanwhile wait in memory, in order, and are written once
there is room; nothing raised into the analyser (it had dropped them, and its round's other cameras with them)."""

import contextlib
import os
import time
import subprocess

import pytest

from edge.config import Broker
from edge.publisher import Outbox, Publisher
from xueliang import services


def mounted_tmpfs(tmp_path, size: str, name: str = "small", options: str = ""):
    """A tmpfs of ``size`` (and ``options``, e.g. ``,nr_inodes=16``) at ``tmp_path / name``, as root mounts it;
    skipped where mounting is not allowed."""
    where = tmp_path / name
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}{options}", "tmpfs", str(where)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:  # as a context manager (test_edge_startup's), a failing test throws into the yield: unmounted still
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    yield from mounted_tmpfs(tmp_path, "1M")


@pytest.fixture
def tiny_disk(tmp_path):
    yield from mounted_tmpfs(tmp_path, "512k")


def fill(disk) -> None:
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:  # ENOSPC
        pass
    finally:
        os.close(fd)


def test_messages_made_while_the_disk_is_full_wait_in_memory_and_are_written_in_order_once_it_has_room(small_disk):
    outbox = Outbox(small_disk / "box.outbox.sqlite")
    publisher = Publisher("box-1", Broker(port=services.free_port()), outbox)  # never started: nothing leaves
    publisher.send([("t/0", b"before")])
    fill(small_disk)
    batches = [[(f"t/{i}/evidence", b"\xff\xd8" + bytes(30_000)), (f"t/{i}", b"incident %d" % i)] for i in range(1, 6)]
    for batch in batches:
        publisher.send(batch)  # raised "database or disk is full" into the analyser, and the messages were gone
    state = publisher.delivery(0.0)
    assert state["outbox_unwritten"] >= 2 and "full" in state["outbox_write_error"]
    (small_disk / "filler").unlink()
    publisher.write_unwritten()  # as the heartbeat does
    state = publisher.delivery(0.0)
    assert state["outbox_unwritten"] == 0 and state["outbox_write_error"] is None
    topics = [topic for _, topic, _ in outbox.after(0, 100)]
    assert topics == ["t/0"] + [topic for batch in batches for topic, _ in batch]  # each evidence before its incident


@pytest.mark.slow
def test_what_gateways_confirm_while_the_disk_is_full_is_deleted_once_it_has_room_and_sending_goes_on(small_disk,
                                                                                                      broker):
    """A gateway's confirmation deletes from the outbox, a write: on a full disk it raised into the sender thread,
    which ended, and nothing was sent again until the box restarted."""
    from .test_publisher import Collector, wait_until

    outbox = Outbox(small_disk / "box.outbox.sqlite")
    publisher = Publisher("box-1", Broker(port=broker.port), outbox)
    publisher.start()
    collector = None
    try:
        assert publisher.connected.wait(10)
        publisher.send([("xl/v1/box-1/cam/incident", b"written before")])  # no gateway yet: sent again, soon
        fill(small_disk)
        collector = Collector(broker.port, "xl/v1/box-1/cam/#")  # confirms it: its delete cannot be written
        assert wait_until(lambda: collector.wait_for(1, 0)), "the first message sent again to the gateway"
        time.sleep(1.0)  # its confirmation taken (and its delete refused)
        assert outbox.pending() == 1
        (small_disk / "filler").unlink()
        publisher.send([("xl/v1/box-1/cam/incident", b"written after")])
        assert wait_until(lambda: outbox.pending() == 0, 10), "both deleted once the disk had room"
        assert [payload for _, payload in collector.wait_for(2, 0)][-1] == b"written after"
    finally:
        publisher.stop(timeout=0)
        outbox.close()
        if collector is not None:
            collector.stop()


def test_messages_confirmed_as_they_come_leave_room_on_a_nearly_full_disk(tiny_disk):
    """The write-ahead log grew to 4 MiB before SQLite copied it back (its default): with less free beside the
    outbox, it filled the disk with messages confirmed long ago, and every write failed from the 38th on, for good."""
    outbox = Outbox(tiny_disk / "box.outbox.sqlite")
    for row_id in range(1, 501):  # 1.5 MB through 512 KiB: written, sent, confirmed, deleted
        outbox.put([("t", bytes([row_id % 256]) * 3000)], 0.0)
        outbox.confirm([row_id])
    assert outbox.pending() == 0


@pytest.mark.slow
def test_a_box_started_on_a_full_disk_runs_sends_its_incidents_and_writes_them_once_there_is_room(small_disk, broker,
                                                                                                   tmp_path):
    """A box rebooted on a disk filled (by logs, over months) stopped at start, and stayed down, every incident its
    cameras saw lost, until someone freed room. Now it runs with its outbox in memory: a parked van's incident from a
    real clip reaches a subscriber while the disk is full, and is in the outbox's file once there is room, after
    the message the file held from before."""
    import json
    import sqlite3

    import yaml

    from .conftest import CLIP, Watcher, wait_until
    from .test_edge_faults import camera

    path = small_disk / "edge" / "full-box.outbox.sqlite"
    before = Outbox(path)
    before.put([("xl/v1/full-box/old/incident", b"queued before the reboot")], 0.0)
    before.close()
    fill(small_disk)
    kerb = {"id": "kerb", "types": ["illegal_parking"], "dwell_s": 8,
            "polygon": [[0.80, 0.03], [0.97, 0.03], [0.97, 0.22], [0.80, 0.22]]}
    config = tmp_path / "edge.yaml"
    config.write_text(yaml.safe_dump({"box": "full-box", "broker": {"port": broker.port}, "heartbeat_s": 1,
                                      "cameras": [camera("file", str(CLIP), zones=[kerb])],
                                      "data_dir": str(small_disk / "edge")}))
    watcher = Watcher(broker.port, ["xl/v1/full-box/+/incident", "xl/v1/full-box/status"])  # confirms nothing
    log = tmp_path / "edge.log"
    box = services.xueliang(["edge", "--config", str(config)], log)
    try:
        def incidents():
            assert box.poll() is None, log.read_text()[-2000:]  # stopped at start: "error: outbox ... cannot be used"
            return [p for t, p in watcher.messages if t == "xl/v1/full-box/file/incident"]

        first = wait_until(incidents, 60, message="the parked van's incident, the disk full")[0]
        status = wait_until(lambda: (s := watcher.latest_json("full-box/status")).get("outbox_unwritten") and s, 5,
                            message="the heartbeat counting the incident held in memory")
        assert "free on its disk" in status["outbox_write_error"], status
        (said,) = [line for line in log.read_text().splitlines() if "cannot be written" in line]
        assert f"outbox {path} cannot be written (" in said and "held in memory" in said
        (small_disk / "filler").unlink()
        wait_until(lambda: watcher.latest_json("full-box/status").get("outbox_write_error", "") is None, 10,
                   message="the heartbeat without the write error")
        with sqlite3.connect(path) as db:
            payloads = [p for (p,) in db.execute("SELECT payload FROM outbox ORDER BY id")]
        assert payloads[0] == b"queued before the reboot" and first in payloads, payloads
        assert json.loads(first)["state"] == "start"
    finally:
        box.terminate()
        box.wait(10)
        watcher.stop()
    assert "Traceback" not in log.read_text()
    assert len([line for line in log.read_text().splitlines() if "cannot be written" in line]) == 1


def test_a_new_file_on_a_small_read_only_disk_is_said_to_be_on_a_read_only_disk(tmp_path):
    """A database to be made on a small disk mounted read-only was said to be kept out by "836 KiB free on its disk"
    (its free space under the 1 MiB counted as low), not by the mount."""
    from xueliang.sqlitefile import out_of_reach

    with contextlib.contextmanager(mounted_tmpfs)(tmp_path, "512k", options=",ro") as folder:
        assert out_of_reach(folder / "gw.sqlite") == "its disk is mounted read-only"
    with contextlib.contextmanager(mounted_tmpfs)(tmp_path, "512k", "written") as folder:  # small, not read-only
        assert out_of_reach(folder / "gw.sqlite") == "512 KiB free on its disk"
