"""`xueliang replay` on the real campus clip against its ground truth."""

import hashlib
import json
import re
import subprocess
import sys
from datetime import datetime

import pytest

from xueliang import wire

from .conftest import CLIP, TRUTH


@pytest.mark.slow
def test_replay_gives_exactly_the_ground_truth(edge_config_file, tmp_path):
    start = "2026-03-02T08:00:00Z"
    run = subprocess.run(
        [sys.executable, "-m", "xueliang", "replay", str(CLIP), "--config", str(edge_config_file),
         "--camera", "campus-gate", "--start", start, "--evidence-dir", str(tmp_path / "ev")],
        capture_output=True, text=True, timeout=300, check=True)
    messages = [json.loads(line) for line in run.stdout.splitlines()]
    for m in messages:
        wire.validate_incident(m)
        assert wire.incident_owner(m["incident_id"]) == m["box"]  # no other box may send it
    t0 = wire.parse_time(start)
    for expect in TRUTH["expect"]:
        starts = [m for m in messages if m["zone"] == expect["zone"] and m["state"] == "start"
                  and m["type"] == expect["type"]]
        assert len(starts) == expect["count"], (expect["zone"], starts)
        for m in starts:
            assert abs(wire.parse_time(m["started_at"]) - t0 - expect["start_after_s"]) <= expect["tolerance_s"]
            assert m["attributes"]["label"] in expect["label_one_of"]
            assert m["grid"] == "HQ-DZG-10D-07" and m["evidence"]["bytes"] > 1000
            # the clip ends with the van still there
            ends = [e for e in messages if e["incident_id"] == m["incident_id"] and e["state"] == "end"]
            assert [e["end_reason"] for e in ends] == ["stream_ended"]
            assert wire.parse_time(ends[0]["ended_at"]) - t0 > 75
            assert [e["seq"] for e in messages if e["incident_id"] == m["incident_id"]] == [1, 2]
    evidence = sorted((tmp_path / "ev").glob("*.jpg"))
    assert len(evidence) == 2 and all(p.read_bytes()[:2] == b"\xff\xd8" for p in evidence)
    # named as any system takes a file name (the id's ':' before its box is refused on Windows), the box kept
    def named(m: dict) -> str:  # the id, ':' made '_', a short hash of it, the message's seq
        return f"{m['incident_id'].replace(':', '_')}-{hashlib.sha256(m['incident_id'].encode()).hexdigest()[:12]}"

    assert sorted(p.name for p in evidence) == sorted(f"{named(m)}-{m['seq']}.jpg" for m in messages if m.get("evidence"))
    assert all(re.fullmatch(r"[0-9a-f]{32}_test-box-[0-9a-f]{12}-[12]\.jpg", p.name) for p in evidence), evidence
    assert datetime.fromisoformat(messages[0]["observed_at"].replace("Z", "+00:00")).year == 2026


@pytest.mark.slow
def test_a_van_in_two_overlapping_parking_zones_is_one_incident_in_the_zone_whose_dwell_it_reached_first():
    """A no-stopping bay (dwell 20 s) drawn inside the kerb zone (30 s): the parked van was raised in each, two
    cases for one van. Now it is one incident, the bay's, from its 20 s, to the clip's end."""
    from edge.config import parse_config
    from edge.replay import replay

    camera = TRUTH["camera"]
    bay = {"id": "kerb-bay", "types": ["illegal_parking"], "dwell_s": 20,
           "polygon": [[0.8, 0.0], [0.96, 0.0], [0.96, 0.25], [0.8, 0.25]]}
    config = parse_config({"box": "t", "data_dir": "unused",
                           "cameras": [{**camera, "url": str(CLIP), "zones": camera["zones"] + [bay]}]})
    t0 = wire.parse_time("2026-03-02T08:00:00Z")
    messages = [o.message for o in replay(config, "campus-gate", str(CLIP), t0)]
    starts = [m for m in messages if m["state"] == "start"]
    assert [m["zone"] for m in starts] == ["kerb-bay"], [(m["zone"], m["started_at"]) for m in starts]
    assert abs(wire.parse_time(starts[0]["started_at"]) - t0 - 20) <= 3
    assert {m["incident_id"] for m in messages} == {starts[0]["incident_id"]}


@pytest.mark.slow
def test_a_recording_whose_clock_jumps_ten_hours_raises_no_parking_from_the_hours_it_does_not_show(
        edge_config_file, tmp_path):
    """8 s of the parked van, then 8 s more whose clock is 10 h on (two recordings joined, a recorder's clock set):
    the van seen at 08:00 and again at 18:00 was raised as parked for 10 h. Seen for 16 s, it is under its 30 s."""
    from edge.config import load_config
    from edge.replay import replay

    def part(skip: float, offset: float) -> bytes:
        out = tmp_path / f"part-{skip:g}.ts"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-ss", str(skip), "-t", "8", "-i", str(CLIP),
                        "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-an", "-output_ts_offset", str(offset),
                        "-f", "mpegts", str(out)], check=True, timeout=60)
        return out.read_bytes()

    joined = tmp_path / "joined.ts"
    joined.write_bytes(part(0, 0) + part(8, 10 * 3600))
    t0 = wire.parse_time("2026-03-02T08:00:00Z")
    messages = [o.message for o in replay(load_config(edge_config_file), "campus-gate", str(joined), t0)]
    assert not [m for m in messages if m["type"] == "illegal_parking"], messages
