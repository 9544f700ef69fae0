"""A kept picture whose bytes no longer match their sha256 (one bit flipped in the SQLite file on the disk, as a
restore drill found it): the gateway served it as evidence, and nobody was told. On a real SQLite gateway through its
HTTP API and pages, its dataset export and ``xueliang gateway --check`` in a subprocess: each picture is read against
its key; a damaged one is never served nor exported, it is said (which, and to restore it from a backup), logged once
and counted, and the case, its list and the other pictures are served as ever."""

import hashlib
import json
import logging
import subprocess
import sys

import pytest
import yaml
from fastapi.testclient import TestClient

from gateway.api import create_app
from gateway.auth import new_token
from gateway.config import TABLES_DIR, load_tables
from gateway.dataset import export
from gateway.ingest import Ingest
from gateway.metrics import REGISTRY
from gateway.schema import verdicts
from gateway.storage import Store
from xueliang import wire
from xueliang.cli import main as cli

from .test_gateway import NOW, TOPIC, jpeg_photo, payload
from .test_workflow import auth

# pictures of their own (no other test's bytes): each is logged the first time this process finds it damaged
SNAPSHOTS = [jpeg_photo((88, 66), colour) for colour in ("teal", "maroon", "indigo")]
PHOTOS = [jpeg_photo((96, 72), colour) for colour in ("orchid", "sienna")]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def said(picture: bytes) -> str:
    return (f"stored picture {sha(picture)} is damaged (its bytes no longer match their sha256); restore it from a "
            "backup")


def gateway_file(tmp_path) -> tuple[list[str], str]:
    """A real gateway's SQLite file (closed, its log checkpointed into it): three cases, each its own snapshot, judged
    correct; case 2 with two photos. The incidents' ids and an admin's token."""
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    tables = load_tables(TABLES_DIR / "demo.yaml")
    ingest = Ingest(store, tables, clock=lambda: NOW)
    incidents = [f"damage-{n}" for n in range(len(SNAPSHOTS))]
    for n, (incident_id, picture) in enumerate(zip(incidents, SNAPSHOTS)):  # each snapshot first, as a box sends it
        assert ingest.handle(wire.evidence_topic("box-1", "gate", incident_id), picture) == "evidence"
        assert ingest.handle(TOPIC, payload(incident_id=incident_id, location={"lat": 39.0 + n, "lon": 117.0},
                                            evidence={"sha256": sha(picture), "bytes": len(picture)})) == "case_created"
    token = new_token(store, "root", "admin")
    client = TestClient(create_app(store, tables))
    for photo in PHOTOS:
        added = client.post("/cases/2/photos", content=photo, headers={"Content-Type": "image/jpeg"} | auth(token))
        assert added.status_code == 201, added.text
    with store.engine.begin() as db:
        db.execute(verdicts.insert(), [{"case_id": n, "at": 1767225600.0, "actor": "admin:centre",
                                        "verdict": "correct"} for n in (1, 2, 3)])
    store.engine.dispose()
    (tmp_path / "gateway.yaml").write_text(yaml.safe_dump({"database": f"sqlite:///{tmp_path}/gateway.sqlite"}))
    return incidents, token


def flip_a_bit(path, picture: bytes) -> None:
    """One bit of ``picture``'s bytes flipped where the file holds them, as a disk or a copy does (SQLite's pages have
    no checksum: its quick check passes)."""
    data = bytearray(path.read_bytes())
    at = data.find(picture)
    assert at > 0 and data.find(picture, at + 1) == -1
    data[at + len(picture) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_damaged_picture_is_refused_saying_which_logged_once_and_counted_and_the_rest_is_served(tmp_path, caplog):
    incidents, token = gateway_file(tmp_path)
    flip_a_bit(tmp_path / "gateway.sqlite", SNAPSHOTS[0])
    flip_a_bit(tmp_path / "gateway.sqlite", PHOTOS[0])
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    client = TestClient(create_app(store, load_tables(TABLES_DIR / "demo.yaml")))
    admin = auth(token)
    counted = REGISTRY.get_sample_value("xl_gateway_damaged_pictures_total")
    caplog.set_level(logging.ERROR, logger="gateway.presentation")
    photo_url = f"/cases/2/photos/{sha(PHOTOS[0])}.jpg"
    client.post("/ui/login", data={"token": token})  # the pages' session
    for url in ["/cases/1/evidence.jpg", f"/cases/1/incidents/{incidents[0]}/evidence.jpg",
                f"/ui/cases/1/incidents/{incidents[0]}/evidence.jpg", photo_url, "/ui" + photo_url, photo_url]:
        refused = client.get(url, headers=admin)
        assert refused.status_code == 500, (url, refused.status_code)
        assert refused.headers["content-type"] != "image/jpeg"
        picture = PHOTOS[0] if "photos" in url else SNAPSHOTS[0]
        if url.startswith("/ui/"):  # the pages' error page, the reason in its technical details
            assert said(picture) in refused.text, url
        else:
            assert refused.json() == {"detail": said(picture)}, url
    logged = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert logged == [said(SNAPSHOTS[0]), said(PHOTOS[0])]  # once a picture, however often asked for
    assert REGISTRY.get_sample_value("xl_gateway_damaged_pictures_total") == counted + 2
    # nothing else fails: the case, the list, the page, the other pictures
    for url in ("/cases/1", "/cases", "/ui/cases/1", "/ui/cases/2"):
        assert client.get(url, headers=admin).status_code == 200, url
    for url, picture in [("/cases/2/evidence.jpg", SNAPSHOTS[1]), ("/cases/3/evidence.jpg", SNAPSHOTS[2]),
                         (f"/cases/2/incidents/{incidents[1]}/evidence.jpg", SNAPSHOTS[1]),
                         (f"/cases/2/photos/{sha(PHOTOS[1])}.jpg", None)]:
        served = client.get(url, headers=admin)
        assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg", url
        assert picture is None or served.content == picture, url


def test_the_dataset_export_leaves_a_damaged_picture_out_naming_it_and_exports_the_rest(tmp_path):
    gateway_file(tmp_path)
    flip_a_bit(tmp_path / "gateway.sqlite", SNAPSHOTS[1])
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite", read_only=True)
    counts = export(store, load_tables(TABLES_DIR / "demo.yaml"), 0.0, tmp_path / "out")
    assert counts["images"] == 2 and counts["left_out"] == {"image damaged": 1}
    assert counts["skipped"] == [{"case_id": 2, "incident_id": "damage-1", "reason": said(SNAPSHOTS[1])}]
    written = [json.loads(line)["incident_id"] for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert written == ["damage-0", "damage-2"]
    assert sorted(p.read_bytes() for p in (tmp_path / "out" / "images").rglob("*.jpg")) == sorted(
        [SNAPSHOTS[0], SNAPSHOTS[2]])


def check(config) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xueliang", "gateway", "--config", str(config), "--check"],
                          capture_output=True, text=True, timeout=120)


def test_gateway_check_passes_a_file_whose_pictures_match_their_keys_saying_how_far_it_has_read(
        tmp_path, capsys, monkeypatch):
    gateway_file(tmp_path)
    monkeypatch.setattr("xueliang.cli.PROGRESS_EVERY_S", 0.0)  # a file of many GB: said every 10 s
    assert cli(["gateway", "--config", str(tmp_path / "gateway.yaml"), "--check"]) == 0
    err = capsys.readouterr().err
    assert err.count("checking pictures: 0.0 of 0.0 GB read against their sha256 (") == 5 and "error" not in err, err


@pytest.mark.slow
def test_gateway_check_reads_every_picture_against_its_key_and_names_the_damaged_with_what_to_do(tmp_path):
    """SQLite's quick check passes a file with a picture's bit flipped (its pages have no checksum), and ``--check``
    said the file was fit to run. In a subprocess, as an installer runs it: one with two damaged pictures is an
    ``error:`` naming both, how many of how many, and to restore them; the file is left as it was."""
    gateway_file(tmp_path)
    for picture in (SNAPSHOTS[2], PHOTOS[1]):
        flip_a_bit(tmp_path / "gateway.sqlite", picture)
    was = (tmp_path / "gateway.sqlite").read_bytes()
    damaged = check(tmp_path / "gateway.yaml")
    assert damaged.returncode == 2, damaged.stderr
    (error,) = [line for line in damaged.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith("error: 2 of 5 stored pictures are damaged (their bytes no longer match their sha256): ")
    assert sha(SNAPSHOTS[2]) in error and sha(PHOTOS[1]) in error and "restore them from a backup" in error, error
    assert (tmp_path / "gateway.sqlite").read_bytes() == was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gateway.sqlite", "gateway.yaml"]
