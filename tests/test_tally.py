"""The minute shared by the dead letters', refused heartbeats' and (0, 0) cameras' logs (``gateway.tally``)."""

import collections

from gateway import tally
from gateway.tally import MinuteTally


def lines():
    said = []
    return said, lambda counted, seconds: said.append((dict(counted), round(seconds)))


def test_a_clock_set_back_within_the_minute_says_the_count_and_starts_a_new_minute():
    said, say = lines()
    minute = MinuteTally(say, per_key=1, at_most=1)
    assert [minute.take("a", 1000.0 + t) for t in range(3)] == [1, 0, 0]
    assert minute.take("a", 500.0) == 1 and said == [({"a": 2}, -500)]  # set back: said, and said one by one again
    minute.flush(559.0)
    assert minute.take("a", 559.0) == 0 and said == [({"a": 2}, -500)]  # a minute from 500
    minute.flush(560.0)
    assert said[-1] == ({"a": 1}, 60) and minute.counted() == 0


def test_keys_past_the_cap_are_counted_together(monkeypatch):
    monkeypatch.setattr(tally, "KEYS_MAX", 3)
    said, say = lines()
    minute = MinuteTally(say, per_key=1, at_most=1, others=("(others)", ""))
    for box in range(6):
        minute.take((f"made-up-{box}", "kind"), 0.0)
    minute.flush(60.0)
    assert said == [({("made-up-1", "kind"): 1, ("made-up-2", "kind"): 1, ("made-up-3", "kind"): 1,
                      ("(others)", ""): 2}, 60)]
    assert isinstance(minute.quiet, collections.Counter)
