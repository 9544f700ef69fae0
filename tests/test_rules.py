"""The dwell rule and the incident lifecycle, with time passed in."""

from dataclasses import replace

import pytest

from edge.rules import DwellRule, Sighting, point_in_polygon

VAN = Sighting(track_id=1, anchor=(0.90, 0.17), box=(0.85, 0.08, 0.94, 0.17), score=0.7, label="car")


def rule(dwell_s=30.0, gap_s=10.0, update_interval_s=60.0) -> DwellRule:
    return DwellRule("box/cam/zone", dwell_s=dwell_s, still_tolerance=0.5, gap_s=gap_s,
                     update_interval_s=update_interval_s)


def shifted(s: Sighting, dx: float, dy: float = 0.0, **kw) -> Sighting:
    x1, y1, x2, y2 = s.box
    return replace(s, anchor=(s.anchor[0] + dx, s.anchor[1] + dy), box=(x1 + dx, y1 + dy, x2 + dx, y2 + dy), **kw)


def run(r: DwellRule, frames):
    return [e for t, seen in frames for e in r.observe(t, seen)]


def test_parked_vehicle_starts_once_when_dwell_is_reached():
    events = run(rule(dwell_s=30), [(float(t), [VAN]) for t in range(0, 50)])
    assert [e.state for e in events] == ["start"]
    start = events[0]
    assert start.started_at == 30.0 and start.observed_at == 30.0 and start.seq == 1
    assert start.dwell_s == 30.0


def test_started_at_is_when_the_dwell_was_reached_even_between_samples():
    events = run(rule(dwell_s=30), [(t * 2.0 + 0.5, [VAN]) for t in range(0, 20)])
    assert events[0].started_at == 30.5 and events[0].observed_at == 30.5


def test_vehicle_driving_through_never_starts():
    frames = [(float(t), [shifted(VAN, -0.03 * t, track_id=7)]) for t in range(0, 20)]
    assert run(rule(dwell_s=5), frames) == []


def test_missed_detections_shorter_than_the_gap_keep_the_clock():
    frames = [(float(t), [] if 10 <= t < 18 else [VAN]) for t in range(0, 40)]
    events = run(rule(dwell_s=30, gap_s=10), frames)
    assert [(e.state, e.started_at) for e in events] == [("start", 30.0)]


def test_track_id_switch_does_not_restart_the_clock():
    frames = [(float(t), [replace(VAN, track_id=1 if t < 15 else 9)]) for t in range(0, 31)]
    events = run(rule(dwell_s=30), frames)
    assert [(e.state, e.started_at) for e in events] == [("start", 30.0)]


def test_untracked_detections_are_followed_by_place():
    frames = [(float(t), [replace(VAN, track_id=None, score=0.42 + (t % 3) * 0.1)]) for t in range(0, 31)]
    assert [e.state for e in run(rule(dwell_s=30), frames)] == ["start"]


def test_vehicle_leaving_ends_the_incident_with_the_time_last_seen():
    r = rule(dwell_s=30, gap_s=10)
    events = run(r, [(float(t), [VAN]) for t in range(0, 41)] + [(float(t), []) for t in range(41, 60)])
    assert [(e.state, e.seq) for e in events] == [("start", 1), ("end", 2)]
    end = events[1]
    assert end.end_reason == "left" and end.ended_at == 40.0 and end.incident_id == events[0].incident_id
    assert end.dwell_s == 40.0
    assert r.open_incidents == 0


def test_updates_come_at_the_update_interval():
    events = run(rule(dwell_s=10, update_interval_s=20), [(float(t), [VAN]) for t in range(0, 61)])
    assert [(e.state, e.observed_at) for e in events] == [("start", 10.0), ("update", 30.0), ("update", 50.0)]
    assert [e.seq for e in events] == [1, 2, 3]


def test_close_ends_open_incidents_with_the_reason():
    r = rule(dwell_s=5)
    run(r, [(float(t), [VAN]) for t in range(0, 10)])
    (end,) = r.close(12.0, "stream_ended")
    assert (end.state, end.end_reason, end.ended_at, end.seq) == ("end", "stream_ended", 12.0, 2)
    assert r.close(13.0, "stream_ended") == []


def test_two_parked_vehicles_make_two_incidents():
    other = shifted(VAN, -0.3, track_id=2)
    events = run(rule(dwell_s=5), [(float(t), [VAN, other]) for t in range(0, 10)])
    assert [e.state for e in events] == ["start", "start"]
    assert len({e.incident_id for e in events}) == 2


def test_a_vehicle_that_moves_after_starting_ends_and_restarts_its_clock():
    frames = [(float(t), [VAN]) for t in range(0, 20)] + [(float(t), [shifted(VAN, -0.2)]) for t in range(20, 40)]
    events = run(rule(dwell_s=10), frames)
    assert [(e.state, e.end_reason) for e in events] == [("start", None), ("end", "left"), ("start", None)]
    assert events[2].started_at == 30.0


def test_incident_ids_are_stable_for_the_same_stay():
    a = run(rule(dwell_s=5), [(float(t), [VAN]) for t in range(0, 10)])
    b = run(rule(dwell_s=5), [(float(t), [VAN]) for t in range(0, 10)])
    assert a[0].incident_id == b[0].incident_id


@pytest.mark.parametrize("point, expected", [((0.5, 0.5), True), ((0.05, 0.5), False), ((0.5, 0.95), False)])
def test_point_in_polygon_triangle(point, expected):
    assert point_in_polygon(point, [(0.1, 0.1), (0.9, 0.1), (0.5, 0.9)]) is expected
