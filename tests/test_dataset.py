"""Real frames for training: the box sends the frame as the camera gave it beside the annotated
snapshot; `xueliang dataset export` writes every judged incident of a real SQLite gateway (fed
the real campus clip through ingest) as an image with YOLO labels, COCO JSON and a manifest,
false alarms as hard negatives."""

import copy
import hashlib
import io
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from PIL import Image

from edge.box import to_wire
from edge.config import load_config
from edge.replay import replay
from gateway.api import create_app
from gateway.auth import new_token
from gateway.config import load_tables
from gateway.dataset import yolo_line
from gateway.ingest import Ingest
from gateway.storage import Store
from xueliang import wire

from .conftest import CLIP, REPO, city_reviewing_parking


def export(config, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xueliang", "dataset", "export", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120)


def decoded(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")).astype(int)


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """The campus clip through the edge pipeline: the van's start and end, with evidence and frames."""
    tmp = tmp_path_factory.mktemp("replay")
    path = tmp / "edge.yaml"
    camera = yaml.safe_load((CLIP.parent / "campus-gate.truth.yaml").read_text())["camera"]
    path.write_text(yaml.safe_dump({"box": "box-1", "cameras": [dict(camera, url=str(CLIP))], "data_dir": str(tmp)}))
    config = load_config(path)
    return [out for out in replay(config, "campus-gate", str(CLIP), wire.parse_time("2026-03-02T08:00:00Z"))
            if out.message["zone"] == "kerb-no-parking"]


@pytest.mark.slow
def test_the_box_sends_the_frame_as_the_camera_gave_it_beside_the_snapshot(replayed):
    start = replayed[0]
    assert start.message["state"] == "start" and start.frame and start.evidence
    named = start.message["evidence"]["frame"]
    assert named == {"sha256": hashlib.sha256(start.frame).hexdigest(), "bytes": len(start.frame)}
    # on the wire: the frame, the snapshot, then the incident
    topic = wire.evidence_topic("box-1", "campus-gate", start.message["incident_id"])
    assert [t for t, _ in to_wire(start)] == [topic, topic, wire.incident_topic("box-1", "campus-gate")]
    frame, shown = decoded(start.frame), decoded(start.evidence)
    assert frame.shape == shown.shape == (576, 768, 3)
    # the snapshot's red box edge is not in the frame
    x1, y1, x2, y2 = (int(v * s) for v, s in zip(start.message["bbox"], (768, 576, 768, 576)))
    edge = shown[y1 - 1:y1 + 2, x1 + 5:x2 - 5]
    red = (edge[..., 0] > 180) & (edge[..., 1] < 80) & (edge[..., 2] < 80)
    assert red.mean() > 0.3
    raw = frame[y1 - 1:y1 + 2, x1 + 5:x2 - 5]
    assert ((raw[..., 0] > 180) & (raw[..., 1] < 80) & (raw[..., 2] < 80)).mean() < 0.05


def rules_id(message: dict) -> str:
    """The id the box's rules made for ``message``'s incident, without its box (``wire.owned_incident_id``): the
    tests make new incidents of it with a suffix, which an id naming its box cannot take."""
    return message["incident_id"].partition(":")[0]


def judging_gateway(tmp_path):
    """A gateway on SQLite with the demo city's tables (parking held for review), its config file,
    ``feed`` (ingest what the box sent as a new incident) and ``judge`` (an admin's verdict)."""
    city_reviewing_parking(tmp_path)
    (tmp_path / "gateway.yaml").write_text(yaml.safe_dump({"database": f"sqlite:///{tmp_path}/gw.sqlite",
                                                           "tables": str(tmp_path / "city.yaml")}))
    tables = load_tables(tmp_path / "city.yaml")
    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, tables)
    client = TestClient(create_app(store, tables))
    admin = {"Authorization": f"Bearer {new_token(store, 'centre', 'admin')}"}

    def feed(outs, **changes) -> list[dict]:
        """Ingest what the box sent, as a new incident (its own id, ``changes`` to its message)."""
        messages = []
        suffix = changes.pop("suffix")
        drop_frame = changes.pop("drop_frame", False)
        for out in outs:
            m = copy.deepcopy(out.message) | {"incident_id": rules_id(out.message) + suffix} | changes
            if drop_frame and m["evidence"]:  # a box from before frames were sent
                del m["evidence"]["frame"]
            topic = wire.evidence_topic(m["box"], m["camera"], m["incident_id"])
            for jpeg in ((out.evidence,) if drop_frame else (out.frame, out.evidence)):
                if jpeg:
                    assert ingest.handle(topic, jpeg) == "evidence"
            assert ingest.handle(wire.incident_topic(m["box"], m["camera"]), json.dumps(m).encode()).startswith("case")
            messages.append(m)
        return messages

    def judge(case_id, **body):
        r = client.post(f"/cases/{case_id}/verdict", json=body, headers=admin)
        assert r.status_code == 201, r.text

    return tmp_path / "gateway.yaml", tables, client, admin, feed, judge


@pytest.mark.slow
def test_judged_incidents_are_exported_with_labels_coco_and_a_manifest(replayed, tmp_path):
    config, tables, client, admin, feed, judge = judging_gateway(tmp_path)
    first = feed(replayed, suffix="-a")
    judge(1, verdict="false_alarm", reject=True)
    second = feed(replayed, suffix="-b")  # case 1 is rejected: a new case
    redrawn = [0.84, 0.06, 0.95, 0.19]
    judge(2, verdict="correct", bbox=redrawn)
    merged = feed(replayed, suffix="-c")  # joins case 2, still open
    elsewhere = {"location": {"lat": 39.3, "lon": 117.3}}
    old_box = feed(replayed, suffix="-d", drop_frame=True, **elsewhere)
    judge(3, verdict="wrong_type", right_type="garbage")
    feed(replayed, suffix="-e", location={"lat": 39.5, "lon": 117.5})
    judge(4, verdict="duplicate", duplicate_of=3)
    feed(replayed, suffix="-f", location={"lat": 39.7, "lon": 117.7})  # case 5: no verdict, not exported
    assert [c["id"] for c in client.get("/cases", headers=admin).json()] == [5, 4, 3, 2, 1]

    out = tmp_path / "dataset"
    run = export(config, "--since", "2026-01-01", "--out", str(out))
    assert run.returncode == 0, run.stderr
    counts = json.loads(run.stdout)
    assert counts == {"images": 4, "positives": 3, "negatives": 1, "annotated": 1, "left_out": {"duplicate": 1},
                      "skipped": []}
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    by_incident = {m["incident_id"]: m for m in manifest}
    assert set(by_incident) == {m["incident_id"] for m in first + second + merged + old_box}
    names = yaml.safe_load((out / "data.yaml").read_text())["names"]
    assert list(names.values()) == [c.type for c in tables.categories]
    classes = {name: i for i, name in names.items()}
    label = {m["incident_id"]: (out / m["label"]).read_text() for m in manifest}
    # the false alarm: a hard negative, the frame as the camera gave it
    neg = by_incident[first[0]["incident_id"]]
    assert label[neg["incident_id"]] == "" and neg["verdict"] == "false_alarm" and not neg["annotated"]
    assert hashlib.sha256((out / neg["image"]).read_bytes()).hexdigest() == first[0]["evidence"]["frame"]["sha256"]
    # the confirmed case: its opening incident with the box the operator redrew, the merged one with its own
    assert label[second[0]["incident_id"]] == yolo_line(classes["illegal_parking"], redrawn) + "\n"
    assert label[merged[0]["incident_id"]] == yolo_line(classes["illegal_parking"], merged[0]["bbox"]) + "\n"
    # the wrong type, from a box that sent only the annotated snapshot: the right class, marked annotated
    wrong = by_incident[old_box[0]["incident_id"]]
    assert label[wrong["incident_id"]] == yolo_line(classes["garbage"], old_box[0]["bbox"]) + "\n"
    assert wrong["annotated"] and wrong["detected_type"] == "illegal_parking" and wrong["type"] == "garbage"
    assert hashlib.sha256((out / wrong["image"]).read_bytes()).hexdigest() == old_box[0]["evidence"]["sha256"]
    for m in manifest:  # where each came from
        assert (m["box"], m["camera"], m["zone"], m["judged_by"]) == ("box-1", "campus-gate", "kerb-no-parking",
                                                                     "admin:centre")
        assert m["image"].startswith(f"images/{m['split']}/") and (m["width"], m["height"]) == (768, 576)
    coco = json.loads((out / "annotations.json").read_text())
    assert len(coco["images"]) == 4 and len(coco["annotations"]) == 3
    image = next(i for i in coco["images"] if i["file_name"] == by_incident[second[0]["incident_id"]]["image"])
    (ann,) = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
    assert ann["bbox"] == pytest.approx([0.84 * 768, 0.06 * 576, 0.11 * 768, 0.13 * 576], abs=0.01)
    assert coco["categories"][ann["category_id"] - 1]["name"] == "illegal_parking"
    # frames only: the annotated snapshot is left out; a folder in use is refused
    run = export(config, "--since", "2026-01-01", "--out", str(tmp_path / "frames"), "--frames-only")
    assert json.loads(run.stdout)["left_out"] == {"duplicate": 1, "no frame": 1}
    again = export(config, "--since", "2026-01-01", "--out", str(out))
    assert again.returncode == 2 and "is not empty" in again.stderr
    late = export(config, "--since", "2099-12-31", "--out", str(tmp_path / "none"))
    assert json.loads(late.stdout)["images"] == 0
    bad = export(config, "--since", "2026-02-30", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "--since '2026-02-30'" in bad.stderr


@pytest.mark.slow
def test_a_box_configured_for_an_older_gateway_sends_no_frame(tmp_path):
    camera = yaml.safe_load((CLIP.parent / "campus-gate.truth.yaml").read_text())["camera"]
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump({"box": "box-1", "cameras": [dict(camera, url=str(CLIP))], "data_dir": str(tmp_path),
                                    "send_frames": False}))
    outs = [o for o in replay(load_config(path), "campus-gate", str(CLIP), wire.parse_time("2026-03-02T08:00:00Z"))
            if o.message["zone"] == "kerb-no-parking"]
    assert outs and all(o.frame is None and o.evidence for o in outs)
    assert all(set(o.message["evidence"]) == {"sha256", "bytes"} for o in outs)
    assert len(to_wire(outs[0])) == 2


@pytest.mark.slow
def test_exported_frames_join_the_litter_sets_in_their_split_and_the_evaluation_reads_them(replayed, tmp_path):
    import cv2

    from edge.config import Detection
    from edge.detector import load_detector
    from gateway.dataset import split
    from models.litter.evaluate import detector_metrics
    from models.litter.exported import litter_items

    config, tables, client, admin, feed, judge = judging_gateway(tmp_path)
    first = rules_id(replayed[0].message)
    val = next(f"-{n}" for n in range(100) if split(first + f"-{n}") == "val")
    train = [f"-{n}" for n in range(100) if split(first + f"-{n}") == "train"][:3]
    judged = [(val, "garbage", "correct"), (train[0], "garbage", "false_alarm"),  # a hard negative
              (train[1], "spill", "correct"), (train[2], "illegal_parking", "correct")]  # parking: not litter
    for case_id, (suffix, kind, verdict) in enumerate(judged, 1):
        feed(replayed, suffix=suffix, type=kind, location={"lat": 39.1 + case_id / 5, "lon": 117.3})
        judge(case_id, verdict=verdict)
    exported = tmp_path / "export"
    assert json.loads(export(config, "--since", "2026-01-01", "--out", str(exported)).stdout)["images"] == 4

    for part in ("train", "heldout"):  # backgrounds for a tiny synthetic set
        (tmp_path / "bg" / part).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "bg" / part / "a.jpg"), np.random.default_rng(1).integers(0, 255, (240, 320, 3),
                                                                                           dtype=np.uint8))
    dataset = tmp_path / "dataset"
    made = subprocess.run([sys.executable, str(REPO / "models/litter/make_dataset.py"), "--train", "2", "--val", "1",
                           "--backgrounds", str(tmp_path / "bg"), "--out", str(dataset), "--extra", str(exported)],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    spec = yaml.safe_load((dataset / "dataset.yaml").read_text())
    assert spec["names"] == {0: "garbage", 1: "spill"}
    manifest = {m["incident_id"]: m for m in map(json.loads, (exported / "manifest.jsonl").read_text().splitlines())}

    def copied(suffix: str) -> str:
        return "x0-" + manifest[first + suffix]["image"].rsplit("/", 1)[1]

    files = {s: sorted(p.name for p in (dataset / spec[s]).glob("*.jpg")) for s in ("train", "val")}
    assert files == {"train": ["train-00000.jpg", "train-00001.jpg", *sorted([copied(train[0]), copied(train[1])])],
                     "val": ["val-00000.jpg", copied(val)]}
    bbox = replayed[0].message["bbox"]

    def label(part: str, suffix: str) -> str:
        return (dataset / "labels" / part / copied(suffix)).with_suffix(".txt").read_text()

    assert label("val", val) == yolo_line(0, bbox) + "\n"  # garbage, renumbered for the litter model
    assert label("train", train[1]) == yolo_line(1, bbox) + "\n" and label("train", train[0]) == ""
    assert (dataset / "images/val" / copied(val)).read_bytes() == (exported / manifest[first + val]["image"]).read_bytes()

    # `make eval --extra`: the export's val split, its labels read and renumbered
    (item,) = litter_items(exported, "val")
    assert item == (exported / manifest[first + val]["image"], [yolo_line(0, bbox)])
    scores = detector_metrics(load_detector(Detection().litter_model), [item], Detection().litter_min_score)
    assert (scores["garbage"]["objects"], scores["spill"]["objects"]) == (1, 0)


def stored_before_the_header_check(tmp_path):
    """A gateway on SQLite whose evidence rows include three a gateway of an earlier release kept
    (it looked at two bytes): HTML behind JPEG's first bytes, a JPEG cut off, a header claiming
    65500x65500. Each with a good neighbour, all judged ``correct``."""
    from gateway.config import TABLES_DIR
    from gateway.verdicts import Verdict, judge
    from gateway.workflow import Role

    from .test_gateway import JPEG, START, claiming

    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, load_tables(TABLES_DIR / "demo.yaml"))
    bad = {"html": b"\xff\xd8<html><script>alert(1)</script></html>", "cut": JPEG[:40],
           "bomb": claiming(JPEG, 65500, 65500)}
    for n, (name, data) in enumerate({**bad, "good": JPEG}.items()):
        sha = hashlib.sha256(data).hexdigest()
        store.add_evidence(sha, data, name, "box-1", "gate", 1767225600.0)  # as the older gateway kept it
        message = dict(copy.deepcopy(START), incident_id=name, location={"lat": 39.0 + n, "lon": 117.0},
                       evidence={"sha256": sha, "bytes": len(data)})
        assert ingest.handle(wire.incident_topic("box-1", "gate"), json.dumps(message).encode()) == "case_created"
    for case in store.list_cases():
        judge(store, ingest.tables, case["id"], Verdict.CORRECT, Role.ADMIN, "admin:centre", 1767225600.0,
              lambda row: True)
    (tmp_path / "gateway.yaml").write_text(yaml.safe_dump({"database": f"sqlite:///{tmp_path}/gw.sqlite"}))
    return store, ingest.tables


def test_an_image_that_does_not_decode_is_left_out_of_the_export_with_the_reason(tmp_path):
    """It stopped the whole export with Pillow's traceback, and left a half-made folder."""
    from gateway.dataset import export as export_dataset

    store, tables = stored_before_the_header_check(tmp_path)
    counts = export_dataset(store, tables, 0.0, tmp_path / "out")
    assert counts["images"] == 1 and counts["left_out"] == {"image does not decode": 3}
    reasons = {s["incident_id"]: s["reason"] for s in counts["skipped"]}
    assert set(reasons) == {"html", "cut", "bomb"}
    assert reasons["html"] == "its image does not decode: not a JPEG image (cannot identify image file)"
    assert "more than 50,000,000 pixels" in reasons["bomb"]
    (good,) = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert good["incident_id"] == "good" and (good["width"], good["height"]) == (64, 48)


@pytest.mark.slow
def test_the_export_command_says_what_it_left_out_and_finishes(tmp_path):
    stored_before_the_header_check(tmp_path)
    run = export(tmp_path / "gateway.yaml", "--since", "2026-01-01", "--out", str(tmp_path / "out"))
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert json.loads(run.stdout)["images"] == 1
    assert "warning: case 1 incident html left out: its image does not decode: not a JPEG image" in run.stderr
    assert run.stderr.count("warning: case") == 3


def test_incidents_of_one_case_whose_ids_a_file_name_cannot_tell_apart_are_each_their_own_image(tmp_path):
    """Images were named ``case{id}-{the id, ':' made '_', cut at 80}``: two incidents of one case whose
    ids differ only in ':' against '_', or only past the 80th character, wrote one file (the second over
    the first) while the manifest and COCO listed two, the first labelled over the second's picture."""
    from gateway.config import TABLES_DIR
    from gateway.dataset import export as export_dataset
    from gateway.verdicts import Verdict, judge
    from gateway.workflow import Role

    from .test_gateway import START, jpeg_photo

    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, load_tables(TABLES_DIR / "demo.yaml"))
    ids = ["gate:0001", "gate_0001", "g" * 90 + "a", "g" * 90 + "b"]  # each pair in one split, train
    pictures = {}
    for n, incident_id in enumerate(ids):
        data = jpeg_photo((64, 48), ("red", "green", "blue", "white")[n])
        pictures[incident_id] = hashlib.sha256(data).hexdigest()
        store.add_evidence(pictures[incident_id], data, incident_id, "box-1", "gate", 1767225600.0)
        message = dict(copy.deepcopy(START), incident_id=incident_id,
                       evidence={"sha256": pictures[incident_id], "bytes": len(data)})
        assert ingest.handle(wire.incident_topic("box-1", "gate"), json.dumps(message).encode()) == (
            "case_merged" if n else "case_created"), incident_id
    (case,) = store.list_cases()  # one place: one case
    judge(store, ingest.tables, case["id"], Verdict.CORRECT, Role.ADMIN, "admin:centre", 1767225600.0, lambda row: True)

    assert export_dataset(store, ingest.tables, 0.0, tmp_path / "out")["images"] == 4
    manifest = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert len({m["image"] for m in manifest}) == len({m["label"] for m in manifest}) == 4
    assert len(list((tmp_path / "out" / "images").rglob("*.jpg"))) == 4
    for m in manifest:  # each image is its own incident's picture
        assert hashlib.sha256((tmp_path / "out" / m["image"]).read_bytes()).hexdigest() == pictures[m["incident_id"]]
    again = export_dataset(store, ingest.tables, 0.0, tmp_path / "again")  # the same names at every export
    assert again["images"] == 4
    assert (tmp_path / "again" / "manifest.jsonl").read_text().replace("/again", "/out") == \
        (tmp_path / "out" / "manifest.jsonl").read_text()


def test_two_exports_of_the_same_cases_are_the_same_bytes(tmp_path):
    """``data.yaml`` named the folder it was written to (two exports differed, and a copy on a training
    machine pointed at the gateway's disk); incidents linked to a case in one instant came in the
    database's order, which PostgreSQL does not keep from one query to the next."""
    from gateway.config import TABLES_DIR
    from gateway.dataset import export as export_dataset
    from gateway.verdicts import Verdict, judge
    from gateway.workflow import Role

    from .test_gateway import START, jpeg_photo

    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    ingest = Ingest(store, load_tables(TABLES_DIR / "demo.yaml"), clock=lambda: 1767225600.0)  # one instant
    ids = ["gate-c", "gate-a", "gate-b"]
    for n, incident_id in enumerate(ids):
        data = jpeg_photo((64, 48), ("red", "green", "blue")[n])
        sha = hashlib.sha256(data).hexdigest()
        store.add_evidence(sha, data, incident_id, "box-1", "gate", 1767225600.0)
        message = dict(copy.deepcopy(START), incident_id=incident_id, evidence={"sha256": sha, "bytes": len(data)})
        assert ingest.handle(wire.incident_topic("box-1", "gate"), json.dumps(message).encode()).startswith("case_")
    (case,) = store.list_cases()
    judge(store, ingest.tables, case["id"], Verdict.CORRECT, Role.ADMIN, "admin:centre", 1767225600.0, lambda row: True)

    def exported(out):
        assert export_dataset(store, ingest.tables, 0.0, out)["images"] == 3
        return {str(f.relative_to(out)): f.read_bytes() for f in sorted(out.rglob("*")) if f.is_file()}

    first, second = exported(tmp_path / "one"), exported(tmp_path / "elsewhere" / "two")
    assert first == second
    manifest = [json.loads(line) for line in first["manifest.jsonl"].decode().splitlines()]
    assert [m["incident_id"] for m in manifest] == sorted(ids)  # linked in one instant: by id
    assert "path" not in yaml.safe_load(first["data.yaml"])  # ultralytics reads the folders beside it


@pytest.mark.slow
@pytest.mark.parametrize("how, says", [
    ("on a full disk", "--out {out}: cannot be written (No space left on device); nothing was exported"),
    ("read-only", "--out {out}: cannot be written (Read-only file system); nothing was exported"),
    ("a file", "{out} is a file: export into a new folder"),
])
def test_an_export_that_cannot_be_written_says_so_and_leaves_nothing_half_made(tmp_path, how, says):
    """A full disk or a folder it may not write was a traceback, and the full disk left images without their
    manifest that the next export into the folder refused ("is not empty")."""
    import contextlib

    from .test_outbox_full import fill, mounted_tmpfs

    stored_before_the_header_check(tmp_path)
    with contextlib.ExitStack() as stack:
        if how == "a file":
            out = tmp_path / "out"
            out.write_text("notes")
        else:
            disk = stack.enter_context(contextlib.contextmanager(mounted_tmpfs)(
                tmp_path, "1M", "disk", ",ro" if how == "read-only" else ""))
            out = disk / "export"
            if how == "on a full disk":
                fill(disk)
        run = export(tmp_path / "gateway.yaml", "--since", "2026-01-01", "--out", str(out))
        assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
        assert "error: " + says.format(out=out) in run.stderr
        if how == "a file":
            assert out.read_text() == "notes"
            return
        assert not out.exists()
        if how == "on a full disk":  # room made: the same folder takes the export
            (disk / "filler").unlink()
            again = export(tmp_path / "gateway.yaml", "--since", "2026-01-01", "--out", str(out))
            assert again.returncode == 0 and json.loads(again.stdout)["images"] == 1, again.stderr[-2000:]
            assert (out / "manifest.jsonl").read_text().count("\n") == 1


def judged_cases(tmp_path, count: int, changed: dict[int, dict] | None = None):
    """A real SQLite gateway's ``count`` cases, each one incident far from the others, with its snapshot (one picture
    for all), each judged correct; the store and the tables. ``changed``: case n's incident's fields as its box sent
    them otherwise."""
    from gateway.config import TABLES_DIR
    from gateway.schema import verdicts

    from .test_gateway import START, jpeg_photo

    store = Store(f"sqlite:///{tmp_path}/gw.sqlite")
    tables = load_tables(TABLES_DIR / "demo.yaml")
    ingest = Ingest(store, tables)
    picture = jpeg_photo((32, 24), "red")
    sha = hashlib.sha256(picture).hexdigest()
    store.add_evidence(sha, picture, "gate-0", "box-1", "gate", 1767225600.0)
    outcomes = ingest.handle_batch([(wire.incident_topic("box-1", "gate"), json.dumps(dict(
        copy.deepcopy(START), incident_id=f"gate-{n}", evidence={"sha256": sha, "bytes": len(picture)},
        location={"lat": 39.0 + n * 0.01, "lon": 117.0}, **(changed or {}).get(n, {}))).encode())
        for n in range(count)])
    assert outcomes == ["case_created"] * count
    with store.engine.begin() as db:  # each judged correct
        db.execute(verdicts.insert(), [{"case_id": n, "at": 1767225600.0, "actor": "admin:centre", "verdict": "correct"}
                                       for n in range(1, count + 1)])
    return store, tables


def test_an_export_holds_a_few_cases_at_a_time_not_every_one_it_writes(tmp_path, monkeypatch):
    """Every case created since the day, and every judged one's verdict, events and manifest line, were held until the
    end, and the COCO file made as one string: 100,000 judged cases took over 1 GB. Measured here (tracemalloc's peak)
    with 10 cases read at a time: what the export holds for each case beyond them is its COCO entries (about 700
    bytes; 11 kB before)."""
    import tracemalloc

    from gateway import dataset

    store, tables = judged_cases(tmp_path, 200)
    monkeypatch.setattr(dataset, "CASES_AT_ONCE", 10)

    tracemalloc.start()
    try:
        counts = dataset.export(store, tables, 0.0, tmp_path / "out")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert counts["images"] == 200
    assert peak / 200 < 4_000, f"{peak / 200:,.0f} bytes held for each case exported"


def test_an_export_asks_the_database_a_few_times_a_slice_of_cases_not_twice_an_incident(tmp_path):
    """Each incident's first event was asked alone, and its image on a connection of its own: 20,000 judged cases took
    40,061 statements, 19-20 s of an export on SQLite (now 8-10 s) and 37-43 s on a local PostgreSQL (now 10-15 s).
    Now a few a slice of cases (``CASES_AT_ONCE``), and the images ``IMAGES_AT_ONCE`` at a time."""
    from sqlalchemy import event

    from gateway import dataset

    store, tables = judged_cases(tmp_path, 200)
    statements = []
    event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    assert dataset.export(store, tables, 0.0, tmp_path / "out")["images"] == 200
    assert len(statements) < 40, len(statements)  # 6 for the slice, one for each 16 images (401 before)


def test_a_detector_label_or_model_name_with_a_lone_surrogate_or_a_bidi_control_is_exported_shown_replaced(tmp_path):
    """An incident's ``attributes.label`` and ``model`` are a box's text, which the wire takes as any JSON string: a
    lone surrogate (the escape ``\\ud800``) in one box's label stopped the whole export at its manifest line
    (``UnicodeEncodeError``, nothing written). Exported as a camera fault's reason is shown, each control or invisible
    formatting character as U+FFFD; the other cases' lines as before."""
    from gateway import dataset

    store, tables = judged_cases(tmp_path, 3, {1: {"attributes": {"label": "\ud800car"}},
                                               2: {"model": {"name": "ssd\u202egpj", "version": "1\x00"}}})
    assert dataset.export(store, tables, 0.0, tmp_path / "out")["images"] == 3
    lines = {line["incident_id"]: line for line in map(json.loads, (tmp_path / "out" / "manifest.jsonl").open())}
    assert lines["gate-0"]["detector_label"] == "car"
    assert lines["gate-0"]["model"] == {"name": "ssd_mobilenet_v2_coco", "version": "1"}
    assert lines["gate-1"]["detector_label"] == "\ufffdcar"
    assert lines["gate-2"]["model"] == {"name": "ssd\ufffdgpj", "version": "1\ufffd"}
