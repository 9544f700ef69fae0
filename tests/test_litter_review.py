"""No incident is dispatched from what was always there: garbage and spill detections the edge
cannot confirm as new go to the gateway marked ``needs_review``, whose case waits for a person."""

import subprocess

import pytest
import yaml
from fastapi.testclient import TestClient

from gateway.api import create_app
from gateway.auth import new_token
from gateway.config import load_tables
from gateway.ingest import Ingest
from gateway.storage import Store

from .conftest import REPO
from .test_litter import LITTER, _replay
from .test_workflow import CITY, act, auth, incident

ZONES = yaml.safe_load(LITTER.read_text())["camera"]["zones"]


@pytest.mark.slow
def test_a_pile_there_when_the_camera_came_up_is_sent_for_review(tmp_path):
    """The composed clip from 30 s on: the pile (10-55 s) and the spill (25-65 s) are already there
    at the first frame, so the left-object check cannot see them arrive: incidents for review only."""
    clip = tmp_path / "late-start.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-ss", "30", "-i", str(REPO / "fixtures/videos/campus-litter.mp4"),
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "20", str(clip)], check=True, timeout=120)
    zones = [dict(z, persistence_s=10) for z in ZONES]
    messages, _ = _replay(LITTER, tmp_path, zones=zones, video=str(clip))
    starts = [m for m in messages if m["state"] == "start" and m["type"] in ("garbage", "spill")]
    assert starts, "the detector should still see the pile and the spill"
    assert all(m["attributes"]["needs_review"] is True for m in starts), starts


@pytest.mark.slow
def test_a_pile_that_arrives_is_dispatched_without_review(tmp_path):
    messages, _ = _replay(LITTER, tmp_path)
    starts = [m for m in messages if m["state"] == "start" and m["type"] in ("garbage", "spill")]
    assert {m["type"] for m in starts} == {"garbage", "spill"}
    assert all(m["attributes"]["needs_review"] is False for m in starts), starts


def test_the_gateway_holds_a_case_the_edge_marks_for_review(tmp_path):
    """Real SQLite: garbage needs no review in this city, yet an incident marked needs_review starts
    pending_review (no dispatch, no deadline) until an operator confirms it; an unmarked one is dispatched."""
    city = dict(CITY, categories=[dict(c, review=False) for c in CITY["categories"]])
    (tmp_path / "city.yaml").write_text(yaml.safe_dump(city, allow_unicode=True))
    tables = load_tables(tmp_path / "city.yaml")
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, tables)
    far = {"lat": 39.0, "lon": 117.0}
    garbage = {"type": "garbage", "zone": "kerb"}
    assert ingest.handle(*incident(**garbage, attributes={"source": "detector", "needs_review": True})) == "case_created"
    assert ingest.handle(*incident(**garbage, attributes={"needs_review": False}, location=far)) == "case_created"
    held, dispatched = sorted(store.list_cases(), key=lambda c: c["id"])
    assert (held["state"], held["dispatched_at"], held["deadline"]) == ("pending_review", None, None)
    assert dispatched["state"] == "dispatched" and dispatched["deadline"] is not None
    client = TestClient(create_app(store, tables))
    token = new_token(store, "op", "operator", grid="D-S1")
    assert act(client, token, held["id"], "confirm").status_code == 200
    assert client.get(f"/cases/{held['id']}", headers=auth(token)).json()["state"] == "dispatched"
