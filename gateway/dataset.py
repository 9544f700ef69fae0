"""Real frames for training: every judged incident as an image with YOLO labels and COCO JSON.

Operators' verdicts on real cameras are the only real labelled data a city has. ``export``
writes, for each incident of a case with a verdict since a time: the frame as the camera gave it
(``evidence.frame`` on the wire) or, for incidents from boxes that did not send one, the
annotated snapshot (``annotated: true`` in the manifest: the box and zone are drawn on it, so
such images teach a detector the drawing too; leave them out with ``frames_only``). Labels:

- ``correct``, ``wrong_place``: the incident's box, of the case's type (the box the operator
  redrew, for the incident that opened the case);
- ``wrong_type``: the same box, of the type the operator named;
- ``false_alarm``: a hard negative, an empty label file;
- ``duplicate``: left out (it says nothing about what the camera saw).

Layout (what ultralytics reads): ``images/{train,val}/NAME.jpg``, ``labels/{train,val}/NAME.txt``
(``class cx cy w h`` in 0..1; NAME: the case, the incident id and a hash of it, ``_name``),
``data.yaml`` (class names: the city's incident types; no ``path``: ultralytics reads the folders beside it,
wherever the export is copied), ``annotations.json`` (COCO, pixel boxes) and
``manifest.jsonl`` (where each image came from: case,
incident, box, camera, zone, grid, time, verdict, who judged it). One incident in five (by its id)
goes to ``val``. An image that does not decode as a JPEG (kept by a gateway from before ingest read
evidence headers), or one damaged (its bytes no longer match their sha256: a bit flipped on the disk), is left out
and listed, with the reason, in the counts' ``skipped``; the rest is exported.

>>> yolo_line(1, [0.2, 0.4, 0.6, 0.8])
'1 0.400000 0.600000 0.400000 0.400000'
>>> split("3f2a9d"), split("3f2a9c")
('train', 'val')
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import yaml
from sqlalchemy import and_, func, select

from gateway import verdicts
from gateway.config import Tables
from gateway.images import ImageError, check_jpeg
from gateway.schema import case_incidents, cases, evidence, incident_events
from gateway.schema import verdicts as verdict_rows
from gateway.storage import DamagedPicture, Store, in_chunks, intact
from xueliang import wire
from xueliang.characters import neutralised

CASES_AT_ONCE = 1000  # judged cases read at a time: their rows, verdicts and events; an export holds no more
# images read at a time (each up to wire.MAX_EVIDENCE_BYTES, 4 MB; a camera's snapshot some 100-300 kB)
IMAGES_AT_ONCE = 16
POSITIVE = ("correct", "wrong_place", "wrong_type")
NEGATIVE = ("false_alarm",)


def yolo_line(class_id: int, bbox: list[float]) -> str:
    """One YOLO label: class, centre x and y, width and height, all in 0..1 of the image."""
    x1, y1, x2, y2 = bbox
    return f"{class_id} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}"


def split(incident_id: str) -> str:
    """``val`` for one incident in five, by its id (stable across exports), else ``train``."""
    return "val" if int(hashlib.sha256(incident_id.encode()).hexdigest()[:8], 16) % 5 == 0 else "train"


def _name(case_id: int, incident_id: str) -> str:
    """An incident's image and label file name: its case and its id as a file name may show it
    (``wire.incident_file_name``), so that ids differing only where the name cannot show it are two
    files, named alike at every export.

    >>> _name(3, "gate:0001"), _name(3, "gate_0001")
    ('case3-gate_0001-0ec88718eb3b', 'case3-gate_0001-65fad5faab35')
    """
    return f"case{case_id}-{wire.incident_file_name(incident_id)}"


def _starts(store: Store, case_ids: list[int]) -> dict[int, list[dict]]:
    """Each case's incidents with their first event as received (bbox, type, evidence, times), in the order
    they joined it (those of one instant by id: the same at every export). Asked of all at once, as the images
    are (``_images``): a query per incident was a fifth of an export's time on SQLite, and is a round trip each
    to a PostgreSQL server."""
    out: dict[int, list[dict]] = {i: [] for i in case_ids}
    first: dict[str, str] = {}
    with store.engine.connect() as db:
        links = [link for some in in_chunks(case_ids)
                 for link in db.execute(select(case_incidents.c.case_id, case_incidents.c.incident_id)
                                        .where(case_incidents.c.case_id.in_(some))
                                        .order_by(case_incidents.c.linked_at, case_incidents.c.incident_id)).all()]
        for some in in_chunks([incident_id for _, incident_id in links]):
            low = (select(incident_events.c.incident_id, func.min(incident_events.c.seq).label("seq"))
                   .where(incident_events.c.incident_id.in_(some)).group_by(incident_events.c.incident_id).subquery())
            first.update(db.execute(select(incident_events.c.incident_id, incident_events.c.payload).join(
                low, and_(incident_events.c.incident_id == low.c.incident_id, incident_events.c.seq == low.c.seq))).all())
    for case_id, incident_id in links:
        if incident_id in first:
            out[case_id].append(json.loads(first[incident_id]))
    return out


def _box_text(value: object) -> object:
    """A string of a box's own (its detector's label, its model's name and version) as the manifest writes it: each
    control or invisible formatting character as U+FFFD (``neutralised``), as a camera fault's reason is shown. The
    wire takes such a string as any JSON string, and a lone surrogate (the escape ``\\ud800``) from one box stopped
    the whole export at its manifest line: UTF-8 has no bytes for it.

    >>> _box_text("\\ud800car") == "\\ufffdcar", _box_text(None)
    (True, None)
    """
    return neutralised(value) if isinstance(value, str) else value


def _shown(message: dict) -> list[tuple[str | None, bool]]:
    """The sha256s an incident's event names for its image, the first kept of them its own: its frame (unannotated),
    then its snapshot (annotated)."""
    shown = message.get("evidence") or {}
    return [((shown.get("frame") or {}).get("sha256"), False), (shown.get("sha256"), True)]


def _images(store: Store, messages: list[dict], frames_only: bool
            ) -> Iterator[tuple[bytes, bool] | str | DamagedPicture]:
    """Each incident's frame (unannotated), else its snapshot (annotated), as its own box sent them (kept once by
    content: the same bytes sent for two incidents are one row, under the first), in the order of ``messages``; or
    why none (``storage.intact``'s DamagedPicture: its bytes no longer match their key). Which, from one query of the rows kept (no bytes); the bytes ``IMAGES_AT_ONCE`` at a time, as the
    export reaches them."""
    wanted = sorted({sha for message in messages for sha, _ in _shown(message) if sha})
    with store.engine.connect() as db:
        kept = {sha: box for some in in_chunks(wanted)
                for sha, box in db.execute(select(evidence.c.sha256, evidence.c.box).where(evidence.c.sha256.in_(some)))}
    chosen = [next(((sha, annotated) for sha, annotated in _shown(message) if sha and kept.get(sha) == message["box"]),
                   None) for message in messages]
    for at in range(0, len(chosen), IMAGES_AT_ONCE):
        some = chosen[at:at + IMAGES_AT_ONCE]
        read = sorted({c[0] for c in some if c and not (frames_only and c[1])})
        with store.engine.connect() as db:
            data = dict(db.execute(select(evidence.c.sha256, evidence.c.data).where(evidence.c.sha256.in_(read))).all()
                        ) if read else {}
        for c in some:
            if c is not None and frames_only and c[1]:
                yield "no frame"
            elif c is None or c[0] not in data:  # none, or gone since it was asked
                yield "no image kept"
            else:
                try:
                    yield intact(c[0], bytes(data[c[0]])), c[1]
                except DamagedPicture as exc:  # a training set with a damaged picture learns from what nobody saw
                    yield exc


def export(store: Store, tables: Tables, since: float, out: Path, frames_only: bool = False) -> dict:
    """Write the dataset of cases created since ``since`` that have a verdict; returns the counts.
    ValueError when ``out`` exists and is not an empty folder (an export never mixes with another). An export
    that fails (OSError: the disk full, a folder it may not write; or stopped) leaves ``out`` as it found it:
    half an export, images without their manifest, looked like one and refused the next into the same folder."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file: export into a new folder")
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty: export into a new folder")
    made = not out.exists()
    try:
        return _write(store, tables, since, out, frames_only)
    except BaseException:
        for child in [out] if made else list(out.iterdir()) if out.is_dir() else []:
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
        raise


def _judged(store: Store, since: float) -> Iterator[list[tuple[dict, dict, list[dict]]]]:
    """The cases created since ``since`` that have a verdict, by id, each with its newest verdict and its incidents'
    first events (``_starts``), ``CASES_AT_ONCE`` cases at a time: every case since, and every judged one's verdict and
    events, were read before the first image was written (100,000 judged cases: over 1 GB)."""
    with store.engine.connect() as db:
        ids = list(db.scalars(select(cases.c.id).where(cases.c.created_at >= since,
                                                       cases.c.id.in_(select(verdict_rows.c.case_id).distinct()))
                              .order_by(cases.c.id)))
    for at in range(0, len(ids), CASES_AT_ONCE):
        some = ids[at:at + CASES_AT_ONCE]
        with store.engine.connect() as db:
            rows = {r.id: dict(r._mapping) for r in db.execute(select(cases).where(cases.c.id.in_(some)))}
        judged, incidents = verdicts.latest(store, some), _starts(store, some)
        yield [(rows[case_id], judged[case_id], incidents[case_id]) for case_id in some]


def _write_json(path: Path, value: dict[str, list]) -> None:
    """``json.dumps(value)``'s bytes, written a list entry at a time: the whole made at once held about 2 kB for each
    COCO image at its peak, and ``json.dump`` (Python's encoder, not C's) took 3.6 times as long (100,000 images:
    1.3 s; this 0.6 s, ``json.dumps`` 0.36 s)."""
    with path.open("w", encoding="utf-8") as f:
        for n, (key, items) in enumerate(value.items()):
            f.write(("{" if n == 0 else "], ") + json.dumps(key) + ": [")
            for i, item in enumerate(items):
                f.write((", " if i else "") + json.dumps(item, ensure_ascii=False))
        f.write("]}" if value else "{}")


def _write(store: Store, tables: Tables, since: float, out: Path, frames_only: bool) -> dict:
    names = [c.type for c in tables.categories]
    for part in ("images/train", "images/val", "labels/train", "labels/val"):
        (out / part).mkdir(parents=True, exist_ok=True)
    coco = {"images": [], "annotations": [], "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)]}
    counts = {"images": 0, "positives": 0, "negatives": 0, "annotated": 0, "left_out": {}, "skipped": []}

    def leave_out(why: str) -> None:
        counts["left_out"][why] = counts["left_out"].get(why, 0) + 1

    with (out / "manifest.jsonl").open("w", encoding="utf-8") as manifest:  # a line as each image is written
        for some in _judged(store, since):
            wanted = []  # (case, verdict, message, the type it is labelled) of the incidents that want an image
            for case, verdict, messages in some:
                for message in messages:
                    if verdict["verdict"] not in POSITIVE + NEGATIVE:
                        leave_out(verdict["verdict"])
                        continue
                    kind = verdict["right_type"] if verdict["verdict"] == "wrong_type" else case["type"]
                    if verdict["verdict"] in POSITIVE and kind not in names:
                        leave_out("type not in the tables")
                        continue
                    wanted.append((case, verdict, message, kind))
            for (case, verdict, message, kind), found in zip(wanted, _images(store, [w[2] for w in wanted], frames_only)):
                if isinstance(found, str):
                    leave_out(found)
                    continue
                if isinstance(found, DamagedPicture):
                    leave_out("image damaged")
                    counts["skipped"].append({"case_id": case["id"], "incident_id": message["incident_id"],
                                              "reason": str(found)})
                    continue
                case_id = case["id"]
                data, annotated = found
                try:  # decoded, not only opened: a training run would stop at an image that does not decode
                    width, height = check_jpeg(data)
                except ImageError as exc:
                    leave_out("image does not decode")
                    counts["skipped"].append({"case_id": case_id, "incident_id": message["incident_id"],
                                              "reason": f"its image does not decode: {exc}"})
                    continue
                part, name = split(message["incident_id"]), _name(case_id, message["incident_id"])
                bbox = verdict["bbox"] if verdict["bbox"] and message["incident_id"] == case["incident_id"] else message["bbox"]
                (out / "images" / part / f"{name}.jpg").write_bytes(data)
                labels = [] if verdict["verdict"] in NEGATIVE else [yolo_line(names.index(kind), bbox)]
                (out / "labels" / part / f"{name}.txt").write_text("".join(line + "\n" for line in labels))
                image_id = len(coco["images"]) + 1
                coco["images"].append({"id": image_id, "file_name": f"images/{part}/{name}.jpg", "width": width,
                                       "height": height})
                if labels:
                    x1, y1, x2, y2 = bbox
                    w, h = (x2 - x1) * width, (y2 - y1) * height
                    coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": image_id,
                                                "category_id": names.index(kind) + 1, "iscrowd": 0, "area": round(w * h, 2),
                                                "bbox": [round(x1 * width, 2), round(y1 * height, 2), round(w, 2), round(h, 2)]})
                counts["images"] += 1
                counts["positives" if labels else "negatives"] += 1
                counts["annotated"] += annotated
                manifest.write(json.dumps({
                    "image": f"images/{part}/{name}.jpg", "label": f"labels/{part}/{name}.txt", "split": part,
                    "annotated": annotated, "type": kind if labels else None, "bbox": bbox if labels else None,
                    "detected_type": case["type"], "detected_bbox": message["bbox"],
                    "detector_label": _box_text(message["attributes"].get("label")),
                    "confidence": message["confidence"], "model": {k: _box_text(v) for k, v in message["model"].items()},
                    "verdict": verdict["verdict"], "judged_by": verdict["actor"],
                    "judged_at": wire.iso(verdict["at"]), "case_id": case_id, "incident_id": message["incident_id"],
                    "box": message["box"], "camera": message["camera"], "zone": message["zone"], "grid": message["grid"],
                    "observed_at": message["observed_at"], "width": width, "height": height}, ensure_ascii=False) + "\n")
    _write_json(out / "annotations.json", coco)
    (out / "data.yaml").write_text(yaml.safe_dump({"train": "images/train", "val": "images/val",  # no path: beside it
                                                   "names": dict(enumerate(names))},
                                                  allow_unicode=True, sort_keys=False))
    return counts
