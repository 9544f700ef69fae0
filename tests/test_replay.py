"""`xueliang replay` on the real campus clip against its ground truth."""

import json
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
    assert datetime.fromisoformat(messages[0]["observed_at"].replace("Z", "+00:00")).year == 2026
