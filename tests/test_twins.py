"""Two boxes under one box id (a config copied to the next box, ``box:`` not changed) say so themselves: each took the
other's broker connection every second or two and logged only ``disconnected from broker: Unspecified error``, as for
a broker restarting. A broker restarting, a cable pulled or one connection lost now and then is no twin."""

import logging
import time

import pytest

from edge.config import Broker
from edge.publisher import Outbox, Publisher
from edge.twins import SAY_AGAIN_S, Connections, Link, twin_suspected, twin_words
from xueliang import services


def lives(start: float, up_s: float, gap_s: float, n: int, closed: bool = True, failed_after: int = 0) -> list[Link]:
    """``n`` connections from ``start``, each up ``up_s`` and made again ``gap_s`` after it was lost."""
    return [Link(made=(t := start + i * (up_s + gap_s)), dropped=t + up_s, closed=closed, failed_after=failed_after)
            for i in range(n)]


@pytest.mark.parametrize("links, now, expected", [
    (lives(0, up_s=1.0, gap_s=1.0, n=5), 10.0, True),  # Mosquitto 2.0 with two boxes: up 1 s, connected again 1 s on
    (lives(0, up_s=1.0, gap_s=1.0, n=45), 90.0, True),  # as measured: 45 times in 90 s each
    (lives(0, up_s=4.5, gap_s=1.0, n=5), 28.0, True),  # a busy broker: each taken within 5 s still
    (lives(0, up_s=1.0, gap_s=1.0, n=4), 8.0, False),  # four in a minute: a broker restarted now and then
    (lives(0, up_s=1.0, gap_s=1.0, n=5), 70.0, False),  # the twin gone a minute ago: said no more
    (lives(0, up_s=1.0, gap_s=14.0, n=5), 75.0, False),  # five spread over more than a minute
    # a broker restarting again and again: the tries in between are refused
    (lives(0, up_s=1.0, gap_s=3.0, n=10, failed_after=2), 40.0, False),
    # a cable pulled again and again: the tries in between time out, or a keepalive goes unanswered
    (lives(0, up_s=1.0, gap_s=3.0, n=10, failed_after=1), 40.0, False),
    (lives(0, up_s=1.0, gap_s=1.0, n=10, closed=False), 20.0, False),
    (lives(0, up_s=20.0, gap_s=1.0, n=5), 105.0, False),  # up 20 s each: not a takeover's seconds
])
def test_a_twin_is_told_from_a_broker_restarting_and_a_cable_by_how_the_connections_end(links, now, expected):
    assert twin_suspected(links, now) is expected


def test_the_twin_line_is_said_once_then_every_few_minutes_while_it_lasts():
    c, said, t = Connections(), [], 0.0

    def flap(until: float, failed_tries: int = 0) -> None:
        nonlocal t
        while t < until:
            if c.made(t, failed_tries):
                said.append(t)
            c.lost(t + 1.0, closed=True)
            t += 2.0

    flap(SAY_AGAIN_S + 20.0)
    assert said == [10.0, 310.0]
    assert c.suspected(t)
    flap(t + 100.0, failed_tries=1)  # the twin switched off; a broker restarting in a loop since: no twin
    assert not c.suspected(t) and said == [10.0, 310.0]
    flap(t + 200.0)  # back a minute and a half later: said again SAY_AGAIN_S after it last was, not sooner
    assert said == [10.0, 310.0, 610.0]


def test_a_refused_connect_between_counts_as_a_failed_try():
    c = Connections()
    for t in range(0, 20, 2):
        c.made(float(t), failed_tries=0)
        c.lost(t + 1.0, closed=True)
        c.refused()  # e.g. "Server unavailable" from a broker starting up
    assert not c.suspected(20.0)


@pytest.mark.slow
def test_two_boxes_with_one_box_id_each_say_so_in_the_log_once_and_in_the_status(tmp_path, caplog):
    broker = services.mosquitto(tmp_path / "mq").start()
    boxes = [Publisher("b1", Broker(port=broker.port), Outbox(tmp_path / f"outbox-{i}.sqlite")) for i in range(2)]
    for box in boxes:  # as the box's 1 s, in a quarter of the time: each connection is taken within seconds as there
        box._client.reconnect_delay_set(min_delay=0.25, max_delay=1)

    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and "client id" in r.getMessage()]

    try:
        for box in boxes:
            box.start()
        deadline = time.monotonic() + 20
        while len(said()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # more takeovers: said once only
        assert said() == [twin_words("b1")] * 2, said()
        assert "another client probably connects with its client id 'b1'" in said()[0] and "box:" in said()[0]
        assert [box.delivery(time.time())["broker_twin"] for box in boxes] == [twin_words("b1")] * 2
    finally:
        for box in boxes:
            box.stop(timeout=0.2)
        broker.stop()
