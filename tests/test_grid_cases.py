"""An incident becomes a case of its own grid, through the real ingest and API on a real SQLite file: a camera at a
grid border, and the city's grid tree changed under open cases (a grid renamed or taken out of the tables)."""

import shutil

import pytest
from fastapi.testclient import TestClient

from gateway.api import create_app
from gateway.auth import new_token
from gateway.cases import escalation
from gateway.config import TABLES_DIR, load_tables
from gateway.ingest import Ingest
from gateway.storage import Store
from tests.test_gateway import NOW, TOPIC, payload

DEMO = TABLES_DIR / "demo.yaml"


@pytest.fixture
def renamed(tmp_path):
    """The demo city's tables with grid HQ-DZG-10D-07 renamed HQ-DZG-10D-7 (a new numbering)."""
    for name in ("demo.yaml", "demo-grids.geojson"):
        shutil.copy(TABLES_DIR / name, tmp_path / name)
    for name in ("demo-grids.csv", "demo-grids.geojson"):
        text = (TABLES_DIR / name).read_text()
        (tmp_path / name).write_text(text.replace("HQ-DZG-10D-07", "HQ-DZG-10D-7"))
    return load_tables(tmp_path / "demo.yaml")


def test_an_open_case_of_a_grid_renamed_in_the_tables_is_the_centres_to_see_and_to_be_escalated_to(tmp_path, renamed):
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    assert Ingest(store, load_tables(TABLES_DIR / "demo.yaml"), clock=lambda: NOW).handle(TOPIC, payload()) \
        == "case_created"
    (case,) = store.list_cases()
    assert case["grid"] == "HQ-DZG-10D-07"
    # the gateway restarted with the new tables: the case keeps the grid it was opened in, which no tree holds
    client = TestClient(create_app(store, renamed))
    centre = {"Authorization": f"Bearer {new_token(store, 'centre', 'operator', grid='HQ')}"}
    street = {"Authorization": f"Bearer {new_token(store, 'street', 'operator', grid='HQ-XYM')}"}
    assert [c["id"] for c in client.get("/cases", headers=centre).json()] == [case["id"]]
    assert client.get(f"/cases/{case['id']}", headers=centre).status_code == 200
    assert client.get("/cases", headers=street).json() == []  # another street's operator still sees it not
    assert client.get(f"/cases/{case['id']}", headers=street).status_code == 404
    # overdue: up to the centre, not to the old code alone (xl/v1/escalations/HQ-DZG-10D-07, which nobody hears)
    assert escalation(case, renamed.category(case["type"]), renamed, NOW)["escalated_grid"] == "HQ"


def test_a_camera_at_a_grid_border_makes_a_case_in_each_grid_for_each_grids_department(tmp_path):
    """Its incidents share the camera's location: a pile in the zone of the street whose garbage a route sends to
    city management joined the other street's sanitation case, never seen by its own operator or department."""
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    ingest = Ingest(store, load_tables(DEMO), clock=lambda: NOW)
    here = {"type": "garbage", "attributes": {"area": 0.05}}
    assert ingest.handle(TOPIC, payload(**here, incident_id="a1", zone="kerb-a", grid="HQ-DZG-10D-07")) == "case_created"
    assert ingest.handle(TOPIC, payload(**here, incident_id="b1", zone="kerb-b", grid="HQ-XYM-01-01")) == "case_created"
    assert ingest.handle(TOPIC, payload(**here, incident_id="b2", zone="kerb-b", grid="HQ-XYM-01-01")) == "case_merged"
    assert sorted((c["grid"], c["department"], c["incident_count"]) for c in store.list_cases()) == [
        ("HQ-DZG-10D-07", "sanitation", 1), ("HQ-XYM-01-01", "city-management", 2)]
