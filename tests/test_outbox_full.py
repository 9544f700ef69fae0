"""The edge's outbox on a full disk: incidents made meanwhile wait in memory, in order, and are written once
there is room; nothing raised into the analyser (it had dropped them, and its round's other cameras with them)."""

import os
import time
import subprocess

import pytest

from edge.config import Broker
from edge.publisher import Outbox, Publisher
from xueliang import services


def mounted_tmpfs(tmp_path, size: str):
    """A tmpfs of ``size``, as root mounts it; skipped where mounting is not allowed."""
    where = tmp_path / "small"
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield where
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
