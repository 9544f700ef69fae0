"""The HTTP API's connections: how long a client may take to send its request, and how many the gateway holds.

uvicorn (0.55, h11) waited with no end for a request's head and for a body's next bytes (its keep-alive timer runs only
after a response), and accepted connections until the process had no file left: an outsider's probe held 1,100
connections each sending ``GET /health HTTP/1.1 ... X-a: `` and nothing more, at the open-file limit a systemd service
gets (1,024), and no other client was answered while they stayed; asyncio meanwhile logged ``socket.accept() out of
system resource`` with its traceback ~3,000 times a second. Here a request's head and a body's bytes each have
``HEAD_WAIT_S`` (then a 408 and the connection closed), and the connections are ``connections_bound`` at most: past it
the one that has waited longest for a head is closed for the new one (a client whose request is in is never closed for
another), and with none waiting the new one gets a 503 at once. uvicorn's own ``limit_concurrency`` does not do this:
it counts the connections, but answers its 503 only once a request's head is in, which a half-sent head never is, so
each still holds its file. What is closed is said once a minute in a line with the count (``ConnectionLog``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any, Literal

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from gateway.tally import MinuteTally

log = logging.getLogger(__name__)

# a request's head is in within this long of its connection's start or of the answer before it on the connection, and
# a body's bytes never stop this long; else the client is answered 408 and the connection closed (an idle connection
# after an answer is closed sooner, by uvicorn's keep-alive timer: 5 s)
HEAD_WAIT_S = 10.0
# open files kept from the HTTP connections: the database's (a pool of 15 SQLite connections, 3 files each), the
# broker's socket, the event loop's, the logs', uvicorn's burst of accepted sockets not yet admitted (BACKLOG)
FILES_KEPT = 128
# paho-mqtt (2.2) waits for the broker in select(), which takes no file descriptor above 1023: its socket, made again
# at each reconnect, takes the lowest number free, so the files open stay under 1,024 whatever the limit
SELECT_FILES = 1024
# the connections the kernel queues for the gateway, and so the most asyncio accepts in one go before any is admitted
# (uvicorn's default, 2,048, was past the files kept: accepted sockets failed for want of files before one was closed)
BACKLOG = 64

Why = Literal["head", "body", "full", "refused", "accept"]
SAID = {"head": "request head not in within {s:.0f} s (408)", "body": "request body stalled {s:.0f} s (408)",
        "full": "waiting for a head, closed for a new connection at the bound (408)",
        "refused": "refused at the bound, none waiting for a head (503)",
        "accept": "not accepted: the process's open files ran out"}


def connections_bound(files: int) -> int:
    """The HTTP connections the gateway holds at most, given its open-file limit (``RLIMIT_NOFILE``'s soft limit; -1,
    ``RLIM_INFINITY``, none): ``FILES_KEPT`` under it, and under select()'s 1,024 (``SELECT_FILES``).

    >>> connections_bound(1024), connections_bound(524288), connections_bound(-1), connections_bound(256)
    (896, 896, 896, 128)
    >>> connections_bound(100)  # a limit too low to keep FILES_KEPT: a few connections all the same
    16
    """
    usable = SELECT_FILES if files < 0 else min(files, SELECT_FILES)
    return max(usable - FILES_KEPT, 16)


class ConnectionLog(MinuteTally):
    """Says what was closed or refused: the first of each kind in a minute in a line of its own, the rest in one line
    with their count once the minute is over (``MinuteTally``: ``flush`` at the gateway's clock's rounds too)."""

    def __init__(self, window_s: float = 60.0):
        super().__init__(_say_counted, per_key=1, at_most=len(SAID), window_s=window_s)

    def say(self, why: Why, client: Any, now: float) -> None:
        if self.take(why, now):
            log.warning("HTTP connection from %s %s; more within the minute are counted, said in one line",
                        _address(client), SAID[why].format(s=HEAD_WAIT_S))


def _say_counted(quiet: collections.Counter, seconds: float) -> None:
    log.warning("%d more HTTP connection(s) in %.0f s closed or refused: %s", quiet.total(), seconds,
                ", ".join(f"{n} {SAID[why].format(s=HEAD_WAIT_S)}" for why, n in quiet.most_common()))


def _address(client: Any) -> str:
    return f"{client[0]}:{client[1]}" if client else "a client"


class Admission:
    """The HTTP connections open, and of them those waiting for a request's head, the longest waiting first."""

    def __init__(self, bound: int, said: ConnectionLog):
        self.bound, self.said = bound, said
        self.open: set[BoundedH11Protocol] = set()
        self.waiting: dict[BoundedH11Protocol, None] = {}  # in the order they began to wait

    def admit(self, connection: BoundedH11Protocol) -> bool:
        """Whether ``connection`` is let in: under the bound, or once the one waiting longest for a head is closed."""
        if len(self.open) >= self.bound:
            if not self.waiting:
                return False
            next(iter(self.waiting)).close_for("full")
        self.open.add(connection)
        return True

    def gone(self, connection: BoundedH11Protocol) -> None:
        self.open.discard(connection)
        self.waiting.pop(connection, None)


class AcceptFailures(logging.Filter):
    """asyncio's line, with its traceback, for each accept that found no file left (on Linux it tries up to the
    backlog's count of accepts at once, each failing and said): counted in ``said`` instead."""

    def __init__(self, said: ConnectionLog):
        super().__init__()
        self.said = said

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith("socket.accept() out of system resource"):
            return True
        self.said.say("accept", None, time.time())
        return False


REFUSED = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 38\r\n"
           b"connection: close\r\n\r\nbusy: too many connections; try again")
TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 connection, with ``HEAD_WAIT_S`` on a request's head and on a body's bytes, let in by its
    server's ``admission`` (``protocol``)."""

    admission: Admission

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.wait: asyncio.TimerHandle | None = None
        self.waiting_for: Literal["head", "body"] | None = None
        self.refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if not self.admission.admit(self):
            self.refused = True
            self.admission.said.say("refused", transport.get_extra_info("peername"), time.time())
            transport.write(REFUSED)
            transport.close()
            return
        super().connection_made(transport)
        self._watch(new_cycle=True)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.refused:
            return
        self._watch_no_more()
        self.admission.gone(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch(new_cycle=True)

    def _watch(self, new_cycle: bool = False) -> None:
        """The clock for what the client owes now: a head (from the connection's start or the last answer, however
        its bytes come), a body's next bytes, or nothing (its request is in, being answered)."""
        if self.transport.is_closing():
            self._watch_no_more()
        elif self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE:
            if new_cycle or self.waiting_for != "head":
                self._start("head")
        elif self.conn.their_state is h11.SEND_BODY:
            self._start("body")
        else:
            self._watch_no_more()

    def _start(self, waiting_for: Literal["head", "body"]) -> None:
        self._watch_no_more()
        self.waiting_for = waiting_for
        if waiting_for == "head":
            self.admission.waiting[self] = None
        self.wait = self.loop.call_later(HEAD_WAIT_S, self._waited)

    def _watch_no_more(self) -> None:
        if self.wait is not None:
            self.wait.cancel()
        self.wait, self.waiting_for = None, None
        self.admission.waiting.pop(self, None)

    def _waited(self) -> None:
        self.wait = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:  # the gateway stopped reading (the app has not taken what came): not the client's
            self._start(self.waiting_for or "body")
            return
        self.close_for(self.waiting_for or "head")

    def close_for(self, why: Literal["head", "body", "full"]) -> None:
        """408 (where no answer has begun) and the connection closed, said in the log's minute."""
        answering = why == "body" and self.cycle is not None and self.cycle.response_started
        self._watch_no_more()
        self.admission.gone(self)
        self.admission.said.say(why, self.client, time.time())
        if not answering:
            self.transport.write(TIMED_OUT)
        self.transport.close()


def protocol(admission: Admission) -> type[BoundedH11Protocol]:
    """The class uvicorn makes each connection of (``uvicorn.Config(http=...)``), let in by ``admission``."""
    return type("GatewayH11Protocol", (BoundedH11Protocol,), {"admission": admission})
