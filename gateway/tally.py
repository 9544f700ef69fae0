"""A log's minute: of a flood of like lines, the first few are said one by one, the rest counted and said in one line.

The dead letters (``ingest.DeadLetterLog``), refused heartbeats and cameras at (0, 0) (``boxes.RefusalLog``) each said
a line per message: 10,000 bad messages, 10,000 lines. They share ``MinuteTally``: its window, its lock, and what a
clock set back does.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Hashable

KEYS_MAX = 10_000  # keys counted apart in a minute (a client making up box ids); those past it are counted together


class MinuteTally:
    """Of what a log says in a minute, the first ``per_key`` of each key and ``at_most`` in all are said one by one
    (``take``); the rest are counted by key, and ``say_counted(counted, seconds)`` says them in one line once the
    minute is over (or the clock was set back), at the next ``take`` or ``flush``. Time is passed in. The gateway's
    clock calls ``flush`` at each of its rounds (``service.Clock``): said at the next message alone, a flood that
    stopped kept its last minute's count unsaid until some later message came. Ingest's thread and the clock's call
    it: a lock keeps the counts whole.

    >>> tally = MinuteTally(lambda counted, s: print(f"{counted.total()} more in {s:.0f} s: {dict(counted)}"),
    ...                     per_key=2, at_most=3)
    >>> [tally.take("a", t) for t in (0.0, 1.0, 2.0)], tally.take("b", 3.0), tally.take("c", 4.0)
    ([1, 2, 0], 1, 0)
    >>> tally.flush(59.0)  # within the minute: nothing
    >>> tally.flush(60.0)
    2 more in 60 s: {'a': 1, 'c': 1}
    >>> tally.take("a", 61.0), tally.take("c", 62.0), tally.take("c", 62.0), tally.take("c", 63.0)  # a new minute
    (1, 1, 2, 0)
    >>> tally.flush(10.0)  # the clock set back: said, and a new minute from there
    1 more in -50 s: {'c': 1}
    >>> tally.take("c", 11.0)
    1
    """

    def __init__(self, say_counted: Callable[[collections.Counter, float], None], *, per_key: int, at_most: int,
                 window_s: float = 60.0, others: Hashable = "(others)"):
        self.say_counted, self.per_key, self.at_most, self.window_s = say_counted, per_key, at_most, window_s
        self.others = others  # the key of those counted past KEYS_MAX
        self.since: float | None = None
        self.said: collections.Counter = collections.Counter()
        self.quiet: collections.Counter = collections.Counter()
        self._lock = threading.Lock()

    def take(self, key: Hashable, now: float) -> int:
        """Which of ``key``'s this minute this one is, said one by one (1 to ``per_key``); 0: counted, not said."""
        with self._lock:
            self._flush(now)
            if self.said[key] < self.per_key and self.said.total() < self.at_most:
                self.said[key] += 1
                return self.said[key]
            if key not in self.quiet and len(self.quiet) >= KEYS_MAX:
                key = self.others
            self.quiet[key] += 1
            return 0

    def counted(self) -> int:
        """How many this minute are counted, not said."""
        return self.quiet.total()

    def flush(self, now: float) -> None:
        """Say what was counted, not said, once the minute is over (or the clock was set back)."""
        with self._lock:
            self._flush(now)

    def _flush(self, now: float) -> None:
        if self.since is not None and 0 <= now - self.since < self.window_s:
            return
        if self.quiet:
            self.say_counted(self.quiet, now - self.since)
        self.since, self.said, self.quiet = now, collections.Counter(), collections.Counter()
