"""Two boxes under one box id, told from the box's own broker connection: pure logic, time passed in, no I/O.

The box id is the MQTT client id, so two boxes run with one config (copied to the next box, its ``box:`` not changed)
take each other's connection: Mosquitto 2.0 closes the older one, with no reason code (paho: "Unspecified error"),
as the other connects, a second or two after it was made. Each box logged only ``disconnected from broker``, about
once every two seconds, as it does for a broker restarting or a cable pulled. What tells them apart is what follows:
a box whose connection was taken over connects again at its first try (the broker is there), while a broker
restarting refuses the tries in between and a cable pulled lets them time out, or is noticed only when a keepalive
goes unanswered ("Keep alive timeout") long after the connection was made. (A broker back within the box's
reconnect delay, 1 s, is there at the first try too: one crashing five times a minute, each within seconds of the
box's connect, and started again at once by its supervisor, reads as a twin. Hence "probably" in the line.)

>>> twin = [Link(made=t, dropped=t + 1.0, closed=True, failed_after=0) for t in range(0, 10, 2)]
>>> twin_suspected(twin, now=10.0), twin_suspected(twin[:-1], now=10.0), twin_suspected(twin, now=80.0)
(True, False, False)
>>> restarts = [Link(made=t, dropped=t + 1.0, closed=True, failed_after=2) for t in range(0, 20, 4)]
>>> twin_suspected(restarts, now=20.0)
False
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

TAKEOVERS = 5  # connections taken over within WINDOW_S that make a twin: a broker restarting is refused in between
WINDOW_S = 60.0
TAKEN_WITHIN_S = 5.0  # a twin takes it within seconds of its making (1 to 2 s measured: reconnects are 1 s apart)
SAY_AGAIN_S = 300.0  # while it lasts, the line is said again this often


@dataclass(frozen=True)
class Link:
    """One connection to the broker that was lost, on the monotonic clock: when it was made and lost, whether the
    broker closed it under the box (paho's "Unspecified error", or MQTT v5's "Session taken over"; not a keepalive
    gone unanswered, not the box's own goodbye), and how many tries failed before the box connected again."""

    made: float
    dropped: float
    closed: bool
    failed_after: int


def taken_over(link: Link) -> bool:
    """Whether ``link`` looks taken over by another client with its client id: closed by the broker within
    ``TAKEN_WITHIN_S`` of its making, and the next try connected at once.

    >>> taken_over(Link(made=0.0, dropped=1.5, closed=True, failed_after=0))
    True
    >>> taken_over(Link(made=0.0, dropped=1.5, closed=True, failed_after=1))  # the broker refused the next try
    False
    >>> taken_over(Link(made=0.0, dropped=40.0, closed=True, failed_after=0))  # up 40 s: a broker restarted quickly
    False
    """
    return link.closed and link.failed_after == 0 and link.dropped - link.made <= TAKEN_WITHIN_S


def twin_suspected(links: Iterable[Link], now: float) -> bool:
    """Whether another client probably connects with the box's client id: ``TAKEOVERS`` of ``links`` lost within
    ``WINDOW_S`` before ``now`` look taken over."""
    return sum(taken_over(link) and now - link.dropped <= WINDOW_S for link in links) >= TAKEOVERS


def say_twin(suspected: bool, said: float | None, now: float) -> bool:
    """Whether to say the twin line at ``now`` (``said``: when it was last said, None: never): once, then at most
    every ``SAY_AGAIN_S`` while it lasts.

    >>> say_twin(True, None, 10.0), say_twin(True, 10.0, 70.0), say_twin(True, 10.0, 310.0), say_twin(False, None, 9.0)
    (True, False, True, False)
    """
    return suspected and (said is None or now - said >= SAY_AGAIN_S)


class Connections:
    """The lives of one client's broker connections as paho reports them, for ``twin_suspected``: its network thread
    alone calls ``made``, ``refused`` and ``lost``; ``suspected`` may be read from any thread (``links`` is replaced
    whole, never changed). Times on the monotonic clock, passed in.

    >>> c = Connections()
    >>> said = []
    >>> for t in range(0, 12, 2):  # a twin takes each connection a second after it was made
    ...     said.append(c.made(float(t), failed_tries=0))
    ...     c.lost(t + 1.0, closed=True)
    >>> said
    [False, False, False, False, False, True]
    >>> c.suspected(12.0), c.made(12.0, failed_tries=0), c.suspected(80.0)
    (True, False, False)
    """

    def __init__(self) -> None:
        self.links: tuple[Link, ...] = ()  # those lost within WINDOW_S before the last connect, oldest first
        self._made: float | None = None  # when the connection now held was made (None: none is)
        self._lost: tuple[float, float, bool] | None = None  # the last lost (made, dropped, closed), until a connect
        self._refused = 0  # tries the broker answered with a refusal since then (paho's on_connect_fail counts none)
        self._said: float | None = None  # when the twin line was last said

    def made(self, now: float, failed_tries: int) -> bool:
        """A connection made at ``now``, ``failed_tries`` after the last was lost (paho's ``on_connect_fail``);
        whether to say the twin line now (``say_twin``)."""
        if self._lost is not None:
            made, dropped, closed = self._lost
            link = Link(made, dropped, closed, failed_tries + self._refused)
            self.links = tuple(k for k in self.links if now - k.dropped <= WINDOW_S) + (link,)
        self._made, self._lost, self._refused = now, None, 0
        if say := say_twin(self.suspected(now), self._said, now):
            self._said = now
        return say

    def refused(self) -> None:
        """The broker answered a try with a refusal (a CONNACK's failure)."""
        self._refused += 1

    def lost(self, now: float, closed: bool) -> None:
        """The connection held was lost at ``now``; ``closed``: by the broker, under the box (``Link``)."""
        if self._made is not None:
            self._lost, self._made = (self._made, now, closed), None

    def suspected(self, now: float) -> bool:
        """Whether another client probably connects with this client's id (``twin_suspected``)."""
        return twin_suspected(self.links, now)


def twin_words(box: str) -> str:
    """The line said in the box's log and status while another client probably connects with its client id."""
    return (f"box {box!r}: its broker connection is taken over within seconds of each connect, again and again: "
            f"another client probably connects with its client id {box!r} (the box id), most likely a second box "
            f"run with a copy of this config. Give each box its own box: (and its own broker account)")
