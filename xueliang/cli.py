"""The ``xueliang`` command: detect, snapshot, replay, edge, gateway, token, dataset, demo."""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import re
import sys
import time
from pathlib import Path

from xueliang.characters import escaped
from xueliang.passwords import without_password
from xueliang.wire import city_iso

os.environ.setdefault("YOLO_OFFLINE", "1")
# OpenCV's own limit is 2^30 pixels: a 1 MB PNG claiming 20000x20000 took 2.5 GB to decode
MAX_IMAGE_PIXELS = 1 << 26  # 64 MP, 8192x8192: above any camera's picture
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))
DAMAGED = 3  # replay's status for a file cut off or damaged: what it printed is what could be read (2: nothing was)


def _score(text: str) -> float:
    """A score threshold for the command line: a number between 0 and 1 (``nan`` matched nothing, silently)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:  # also nan
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _port(text: str) -> int:
    """A TCP port to listen on: 1..65535 (0 let the kernel pick one the demo then waited 30 s to find answering)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"{text} is not a port (1 to 65535)")
    return value


MAX_IMAGE_BYTES = 256 << 20  # a 64 MP picture as an uncompressed BMP is 192 MB


def read_picture(path: Path):
    """The picture at ``path`` as BGR pixels; ValueError naming the path and saying why not (``NotThere``). cv2.imread
    said only that it could not, of a file not there, a folder, an empty file or a PNG whose data is damaged alike,
    and waited for good on a named pipe no program writes to (it cannot read a pipe at all). A JPEG that ends before
    its end-of-image marker (cut off in a copy or a download) is refused: libjpeg decodes it with the missing part grey
    and says so only on stderr.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()); (folder / "empty.jpg").touch()
    >>> read_picture(folder / "empty.jpg")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: .../empty.jpg: the file is empty (0 bytes)
    """
    import stat

    import cv2
    import numpy as np

    from xueliang import jpeg
    from xueliang.textfile import NotThere, there

    if not stat.S_ISREG(there(path).st_mode):
        raise ValueError(f"{path}: is not a file (a pipe or a device); save the picture to a file")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_IMAGE_BYTES + 1)
    except OSError as exc:  # not ours to read; gone since it was looked at
        raise NotThere(path, exc) from None
    if not data:
        raise ValueError(f"{path}: the file is empty (0 bytes)")
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(f"{path}: more than {MAX_IMAGE_BYTES:,} bytes: no camera's picture")
    if data.startswith(jpeg.START) and not jpeg.walk(data)[1]:
        raise ValueError(f"{path}: the JPEG is cut off (it ends before its end-of-image marker); its missing part "
                         "would be analysed as grey")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # a header claiming more than OPENCV_IO_MAX_IMAGE_PIXELS, among others
        raise ValueError(f"{path}: over {MAX_IMAGE_PIXELS:,} pixels, or damaged ({getattr(exc, 'err', exc)})") from None
    if image is None:
        raise ValueError(f"{path}: not a picture OpenCV decodes (JPEG, PNG, BMP, TIFF, WebP), or a damaged one")
    return image


# a url's scheme, as FFmpeg takes it (a file path with a colon in its first name, ``a:b.jpg``, has no //)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def _detect(args: argparse.Namespace) -> int:
    from edge.detector import load_detector

    if _URL.match(args.image):  # a camera's: its first picture, read as the box reads it (a SourceError: main says it)
        from edge.config import camera_url
        from edge.snapshot import first_picture

        try:
            url = camera_url(args.image)
        except ValueError as exc:  # never showing the url: what is wrong with it may be where its password is
            print(f"error: the camera url: {exc}", file=sys.stderr)
            return 2
        image = first_picture(url)
    else:
        try:
            image = read_picture(Path(args.image))
        except ValueError as exc:
            print(f"error: cannot read image {exc}", file=sys.stderr)  # the path, then why
            return 2
    detector = load_detector(args.model)
    if args.config:  # the camera's crop plan, as the edge pipeline runs it
        from edge.config import load_config
        from edge.detector import VEHICLE, detect_frame, load_detectors
        from edge.pipeline import CameraPipeline

        config = load_config(args.config)
        camera = config.camera(args.camera or config.cameras[0].id)
        h, w = image.shape[:2]
        # the camera's other models too: a camera watching garbage or spills needs the litter model's
        full, regions = CameraPipeline(config, camera, {**load_detectors(config), VEHICLE: detector}).regions(w, h)
        print(f"camera {camera.id}: {w}x{h}, vehicle model on {'the full frame and ' if full else ''}"
              f"{len(regions)} crop(s): {regions}", file=sys.stderr)
        found = detect_frame(detector, image, regions, args.min_score, config.detection.vehicle_labels, full)
    else:
        found = detector.detect(image, args.min_score)
    # an empty sv.Detections has no "class_name" data at all
    names = found.data.get("class_name", []) if len(found) else []
    rows = [
        {"label": str(n), "score": round(float(s), 3), "box": [round(float(v), 1) for v in b]}
        for b, s, n in zip(found.xyxy, found.confidence, names)
    ]
    print(json.dumps(rows, ensure_ascii=False) if args.json else "\n".join(f"{r['label']:>12} {r['score']:.2f} {r['box']}" for r in rows))
    return 0


CAMERA_FAILED = 1  # snapshot's status where a camera could not be read: the others' pictures were written


def _snapshot(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.snapshot import snapshots

    config = load_config(args.config)
    cameras = [config.camera(name) for name in dict.fromkeys(args.camera)] or config.cameras  # ConfigError: main's
    out_dir = Path(args.out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # under a file, not ours to write
        print(f"error: --out {args.out}: cannot be made ({exc.strerror or exc}); no camera was read", file=sys.stderr)
        return 2
    failed = 0
    for shot in snapshots(cameras, out_dir):
        if shot.fault is not None:
            failed += 1
            print(f"error: camera {shot.camera}: {shot.fault}", file=sys.stderr, flush=True)
        else:
            print(f"camera {shot.camera}: {shot.path} ({shot.said})", flush=True)
    return CAMERA_FAILED if failed else 0


def _replay(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.replay import replay
    from edge.source import Damage, SourceError
    from gateway.deadlines import city_time
    from xueliang.wire import WireError, incident_file_name

    config = load_config(args.config)
    out_dir = Path(args.evidence_dir) if args.evidence_dir else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    damage = Damage()
    try:
        for out in replay(config, args.camera, args.video, city_time(args.start), damage):
            print(json.dumps(out.message, ensure_ascii=False), flush=True)
            if out_dir and out.evidence:
                name = f"{incident_file_name(out.message['incident_id'])}-{out.message['seq']}.jpg"
                (out_dir / name).write_bytes(out.evidence)
    except WireError as exc:  # a time the wire cannot carry: --start, or where the file's clock takes it
        print(f"error: --start {args.start}: {exc}", file=sys.stderr)
        return 2
    except SourceError:
        if damage.stopped is None:  # nothing of it read: no video, or none that can be decoded (main says why)
            raise
    # evidence from a damaged file is evidence with holes: said apart from the decoder's warnings, and in the status
    if said := damage.words():
        print(f"error: {without_password(args.video)} is damaged: {said}. The messages above are what could be read of "
              "it; the incidents open where it ends ended stream_ended", file=sys.stderr)
        return DAMAGED
    return 0


def _edge(args: argparse.Namespace) -> int:
    from edge.box import run_box
    from edge.config import check_files, load_config

    config = load_config(args.config)
    if args.check:
        from edge.detector import load_detectors

        check_files(config, args.config)
        load_detectors(config)  # its models and vehicle_labels, as the box loads them
        print(edge_summary(config, args.config))
        return 0
    return run_box(config)


def edge_summary(config, path: str) -> str:
    """What an edge config sets, as the box will run it: the box, each camera (its password hidden, its location as
    sent where it is written in another system than WGS 84) and its zones, or that it has none to detect in."""
    lines = [f"{path}: box {config.box}, broker {config.broker.host}:{config.broker.port}, data_dir {config.data_dir}"]
    for camera in config.cameras:
        lines.append(f"  camera {camera.id}: {without_password(camera.url)}, grid {camera.grid}, "
                     f"{len(camera.zones)} zone(s)")
        if said := location_sent(config, camera):
            lines.append(f"    {said}")
        if not camera.zones:  # allowed: its picture is watched for faults; "0 zone(s)" said not what that means
            lines.append("    no zones: it detects nothing until zones are drawn; until then it is watched for faults "
                         "only (down, frozen, covered, moved)")
        for zone in camera.zones:
            waits = ([f"dwell {zone.dwell_s:g} s"] if "illegal_parking" in zone.types else []) + \
                ([f"persistence {zone.persistence_s:g} s"] if {"garbage", "spill"} & set(zone.types) else [])
            lines.append(f"    zone {zone.id}: {', '.join(zone.types)}; {', '.join(waits)}; grid {zone.grid or camera.grid}; "
                         f"{len(zone.polygon)} corners")
    return "\n".join(lines)


def location_sent(config, camera) -> str | None:
    """Where a camera written in GCJ-02 or BD-09 is sent (WGS 84), so an installer sees the conversion before the map
    does; None for a location in WGS 84, or none.

    >>> from edge.config import parse_config
    >>> config = parse_config({"box": "b", "coordinates": "gcj02", "cameras": [{"id": "c", "url": "x.mp4",
    ...     "grid": "G", "location": {"lat": 39.913345, "lon": 116.384047}}]})  # read off AMap
    >>> location_sent(config, config.cameras[0])
    'location 39.913345, 116.384047 in GCJ-02 (AMap, Tencent): sent in WGS 84 as 39.911954, 116.377817'
    """
    from xueliang.coordinates import NAMES

    system = camera.coordinates or config.coordinates
    if camera.location is None or system == "wgs84":
        return None
    written, sent = camera.location, config.location(camera)
    if (sent.lat, sent.lon) == (written.lat, written.lon):  # outside the formulas' bound: no offset applies there
        return (f"location {written.lat}, {written.lon} in {NAMES[system]}: sent as written (outside mainland China "
                "no offset applies)")
    return f"location {written.lat}, {written.lon} in {NAMES[system]}: sent in WGS 84 as {sent.lat:.6f}, {sent.lon:.6f}"


def _gateway(args: argparse.Namespace) -> int:
    from gateway.config import GatewayConfigError, load_gateway_config, load_tables
    from gateway.service import retire_gateway, run_gateway

    config = load_gateway_config(args.config)
    if args.check:
        from gateway.check import check_read_only

        tables = load_tables(config.tables)
        # the database read, never changed (one the gateway would refuse: said here, as the start would)
        now = time.time()
        checked = check_read_only(config.database, tables, now)
        print(gateway_summary(config, tables, args.config))
        print(f"  database: {database_held(checked[0]) if checked else database_to_make(config.database)}")
        for line in checked[1] if checked else []:
            logging.getLogger("gateway").warning("%s", line)
        return _check_pictures(config.database)
    if args.backup:
        return _backup(config.database, Path(args.backup))
    if args.restored_at:
        return _restored_at(config.database, args.restored_at)
    if args.to and not args.move_cases:
        print("error: --to names where --move-cases sends the cases; give --move-cases DEPARTMENT too", file=sys.stderr)
        return 2
    if args.move_cases:
        return _move_cases(config, args.move_cases, args.to)
    try:
        if args.retire:  # it ingests what the session holds: into a database upgraded as said, never one made for it
            # (a mistyped path: what it took would be acknowledged to the broker and the boxes, and lost in a file no
            # gateway reads)
            if problem := not_to_read(config.database):
                print(f"error: {problem}; --retire takes the session's messages into the gateway's database, and "
                      "none is there", file=sys.stderr)
                return 2
            return retire_gateway(config, args.retire, open_store=lambda url: to_write(url, "what the session holds"))
        return run_gateway(config)
    except GatewayConfigError as exc:  # found while starting (the HTTP port taken): still the file's
        raise GatewayConfigError(f"{args.config}: {exc}") from None


def _move_cases(config, department: str, to: str | None) -> int:
    """``gateway --move-cases DEPARTMENT [--to DEPARTMENT]``: the cases with a department taken out of the tables now
    (dispatched or handling) moved to ``to`` or where the tables route each now (``actions.move_cases``), by
    ``admin:LOGIN`` (the user who runs it); the notices are sent by the gateway's clock, as a page's redispatch's are.
    0 when none is left, 1 when a case was (each said), 2 when nothing could be done."""
    import getpass

    from gateway.actions import move_cases, with_department
    from gateway.check import open_by_department
    from gateway.config import load_tables
    from gateway.storage import removed_departments
    from gateway.workflow import DEPARTMENT_CLOCK, CaseState

    tables = load_tables(config.tables)
    if tables.knows_department(department):
        print(f"error: --move-cases {department!r} is in the city's tables ({config.tables}): its cases are moved once "
              "it is taken out of them, to where the tables route them then; nothing was done", file=sys.stderr)
        return 2
    if to is not None and not tables.knows_department(to):
        print(f"error: --to {to!r} is not in the city's tables; known: {', '.join(sorted(tables.department_ids))}; "
              "nothing was done", file=sys.stderr)
        return 2
    if problem := not_to_read(config.database):
        print(f"error: {problem}; --move-cases moves the cases in the gateway's database, and none is there",
              file=sys.stderr)
        return 2
    with to_write(config.database, "the cases moved") as store:
        with store.engine.connect() as db:
            names = removed_departments(db, tables.department_ids)
        if department not in names:
            print(f"error: --move-cases {department!r}: no case names this department (those taken out of the tables "
                  f"that cases name: {', '.join(sorted(names)) or 'none'}); nothing was done", file=sys.stderr)
            return 2
        who = f"admin:{os.environ.get('SUDO_USER') or getpass.getuser()}"
        done = move_cases(store, with_department(store, department), department, tables, who, time.time(), to)
        with store.engine.connect() as db:
            waiting = {s: n for s, n in open_by_department(db).get(department, {}).items()
                       if CaseState(s) not in DEPARTMENT_CLOCK}
    named = f"department {department!r}{f' ({names[department]})' if names[department] else ''}"
    if done.moved:
        went = collections.Counter(done.moved.values())
        print(f"{named}: moved {len(done.moved)} case(s) it held now (dispatched or handling): "
              f"{', '.join(f'{n} to {d} ({tables.department_name(d)})' for d, n in sorted(went.items()))}, each "
              f"returned and redispatched by {who}; their notices go out with the gateway's clock (a stopped one's at its "
              "start)")
    elif not done.left:
        print(f"{named}: no case is with it now (dispatched or handling): nothing to move")
    if waiting:
        order = [s.value for s in CaseState]
        print(f"{named}: {sum(waiting.values())} open case(s) left waiting for the command centre or their re-check "
              f"({', '.join(f'{s} {waiting[s]}' for s in sorted(waiting, key=order.index))}): each goes to a "
              "department of the tables when sent on (confirmed, redispatched, or its re-check failed)")
    for case_id, why in sorted(done.left.items()):
        print(f"error: case {case_id}: {why}", file=sys.stderr)
    return 1 if done.left else 0


PICTURES_NAMED = 5  # damaged pictures --check names; the rest counted
PROGRESS_EVERY_S = 10.0  # how often --check says how far it has read the pictures of a file of many GB


def _check_pictures(url: str) -> int:
    """``gateway --check``'s last step: every picture an SQLite file keeps read against its sha256
    (``check.damaged_pictures_read_only``: 2-2.5 s a GB of 200 kB pictures in the page cache, on one core, the hash
    half of it): 0, or 2 with an ``error:`` naming the first damaged ones, how many, and to restore them; how far it
    has read on stderr every ``PROGRESS_EVERY_S`` (a file of many GB: a minute or more, more from a cold disk)."""
    from gateway.check import damaged_pictures_read_only

    began = said = time.monotonic()

    def progress(done: int, total: int) -> None:
        nonlocal said
        if (now := time.monotonic()) - said >= PROGRESS_EVERY_S:
            said = now
            print(f"checking pictures: {done / 1e9:.1f} of {total / 1e9:.1f} GB read against their sha256 "
                  f"({now - began:.0f} s)", file=sys.stderr)

    count, _, damaged = damaged_pictures_read_only(url, progress)
    if not damaged:
        return 0
    more = f" and {len(damaged) - PICTURES_NAMED:,} more" if len(damaged) > PICTURES_NAMED else ""
    print(f"error: {len(damaged):,} of {count:,} stored pictures are damaged (their bytes no longer match their "
          f"sha256): {', '.join(damaged[:PICTURES_NAMED])}{more}; restore them from a backup (the gateway answers each "
          "one 500 and serves the rest)", file=sys.stderr)
    return 2


def _backup(url: str, target: Path) -> int:
    """``gateway --backup``: the SQLite database at ``url`` copied to ``target`` (``gateway.backup``), or what to do
    for another (``pg_dump``); BackupError, said as an ``error:``, where it cannot be."""
    from gateway.backup import backup, pg_dump_instead
    from gateway.storage import sqlite_path

    if (path := sqlite_path(url)) is None:
        print(f"error: {pg_dump_instead(url)}", file=sys.stderr)
        return 2
    if problem := not_to_read(url):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    print(backup(path, target))
    return 0


def _restored_at(url: str, given: str) -> int:
    """``gateway --restored-at TIME``: the PostgreSQL database at ``url``, put back by ``pg_restore`` from a dump made
    at ``given``, numbered past any case, suppression or dead letter the lost gateway gave
    (``numbering.renumber_restored``: what ``gateway --backup``'s mark does for an SQLite file), each table said; an
    ``error:`` and 2 for an SQLite file, a time that is none or later than now, a database out of reach or not the
    gateway's, nothing changed."""
    from gateway.restore import backup_made, backup_time
    from gateway.numbering import renumber_restored
    from gateway.storage import database_where, sqlite_path

    where = database_where(url)
    if sqlite_path(url) is not None:
        print(f"error: database {where}: an SQLite file: --restored-at is for a PostgreSQL database pg_restore put "
              "back; a copy --backup made is marked with its time, and numbers past the lost gateway's on its own "
              "(nothing was changed)", file=sys.stderr)
        return 2
    try:
        made = backup_time(given, time.time())
    except ValueError as exc:
        print(f"error: --restored-at {given!r}: {exc}; nothing was changed", file=sys.stderr)
        return 2
    if problem := not_to_read(url):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    with to_write(url, "its numbering") as store, store.begin() as db:
        said = renumber_restored(db, made, time.time())
    print(f"database {where}: restored from {backup_made(made)}")
    for name, last, was, next_id in said:
        print(f"  {name}: its last in the backup {last}, numbered from {next_id} on "
              f"({f'the next was {was}' if next_id > was else 'already: left as it was'})")
    return 0


def gateway_summary(config, tables, path: str) -> str:
    """What a gateway config and its tables set, as the gateway will run them (the database URL without its password;
    what it holds: ``database_held``)."""
    from sqlalchemy.engine import make_url

    from gateway.ingest import MAX_EVIDENCE_PER_INCIDENT, MAX_UNNAMED_PER_BOX
    from gateway.service import ORPHAN_EVIDENCE_S

    database = without_password(make_url(config.database).render_as_string(hide_password=True))
    lines = [f"{path}: broker {config.broker.host}:{config.broker.port} as {config.broker.identity}, database "
             f"{database}, http {config.http.host}:{config.http.port}",
             # who may open it, what Open311 clients send and are sent: behind a proxy, what the installer set for it
             f"  host names served {', '.join(config.http.allowed_hosts)} (allowed_hosts); Open311 jurisdiction_id "
             f"{' or '.join(config.http.jurisdiction_id or ['the host name it is reached by'])}, its media_url under "
             f"{f'{public} (public_url)' if (public := config.http.public_url) else 'the address each request came to'}"
             f"{' (public_read: anyone may read cases)' if config.http.public_read else ''}",
             f"  tables {config.tables}: {len(tables.departments)} department(s), {len(tables.grids)} grid(s) under "
             f"{tables.centre or '(no grid tree: every grid known)'}, {len(tables.routes)} route(s)"]
    lines += [f"    {c.type}: {c.code} {c.name} -> {tables.department_name(c.department)} ({c.department}), "
              f"{c.service_level}" for c in tables.categories]
    lines.append(f"  working hours {tables.working_hours} on working days ({len(tables.holidays)} holiday(s), "
                 f"{len(tables.workdays)} weekend day(s) worked)")
    limit = tables.new_cases_per_camera_hour
    lines.append(f"  a camera's new cases: {limit} within an hour dispatched, those past them held for review "
                 "(new_cases_per_camera_hour)" if limit else
                 "  a camera's new cases: all dispatched, however many (new_cases_per_camera_hour: no limit)")
    # what the gateway deletes and sets aside, and when: an installer saw none of it before the first deletion
    lines.append(f"  dead letters kept {config.dead_letter_days:g} days (dead_letter_days), their payloads "
                 f"{config.dead_letter_mb} MB at most (dead_letter_mb): older ones deleted, and past it the oldest")
    lines.append(f"  pictures: {MAX_EVIDENCE_PER_INCIDENT} an incident at most; a box's no event has named yet "
                 f"{MAX_UNNAMED_PER_BOX:,} and {config.waiting_pictures_mb} MB at most (waiting_pictures_mb), each set "
                 f"aside as a dead letter after {ORPHAN_EVIDENCE_S / 60:g} min unnamed")
    return "\n".join(lines)


def database_held(held) -> str:
    """What ``gateway --check`` says of what the gateway's database holds (``check.Held``), for an operator to see
    at a glance what a restored backup or a new install will serve.

    >>> from gateway.check import Held
    >>> print(database_held(Held(3, 1204, 37, 5, (1204, 1_767_225_600.0), 2311, None)))
    ... # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
    migration 3, an older release's: the gateway upgrades it to ... at its start; 1,204 cases, 37 open, 5 of them
    overdue; the last, case 1204, created 2026-01-01T08:00:00+08:00; 2,311 evidence pictures
    >>> print(database_held(Held(3, 0, 0, 0, None, 0, (1_767_225_600.0, 0))))
    ... # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
    migration 3, an older release's: the gateway upgrades it to ... at its start; 0 cases; 0 evidence pictures;
    restored from a backup made at 2026-01-01 08:00:00 (Beijing time), nothing numbered on it yet
    """
    from gateway.restore import backup_made
    from gateway.schema import MIGRATIONS

    this = MIGRATIONS[-1][0]
    said = [f"migration {held.migration} (this release's)" if held.migration == this else
            f"migration {held.migration}, an older release's: the gateway upgrades it to {this} at its start",
            f"{held.cases:,} case{'s' * (held.cases != 1)}" + (f", {held.open:,} open, {held.overdue:,} of them overdue"
                                                                if held.cases else "")]
    if held.last:
        said.append(f"the last, case {held.last[0]}, created {city_iso(held.last[1])}")
    said.append(f"{held.pictures:,} evidence picture{'s' * (held.pictures != 1)}")
    if held.restored:
        said.append(f"restored from {backup_made(held.restored[0])}, nothing numbered on it yet")
    return "; ".join(said)


def database_to_make(url: str) -> str:
    """What ``gateway --check`` says of a database at ``url`` the gateway's start makes, or makes its tables in (no
    SQLite file there; one empty, a PostgreSQL database with no gateway's tables)."""
    from gateway.storage import database_where, sqlite_path

    if (path := sqlite_path(url)) is not None and not path.exists():
        return f"none at {database_where(url)} yet: the gateway makes it at its first start (nothing was made)"
    return "empty, no gateway's tables yet: the gateway makes them at its first start (it was left as it is)"


def not_to_read(url: str) -> str | None:
    """Why a command that reads the gateway's database (``token --list``, ``dataset export``; ``--revoke``, which
    changes only what is there) is not to go on with ``url``: an SQLite file that is not there (a mistyped path made
    a new, empty database, and the command found no tokens or no cases without a word), or a database without the
    gateway's tables, empty (an empty file, or a new PostgreSQL database: ``token --list`` made the gateway's tables
    in it) or another application's. Nothing is made or changed to tell; DatabaseUnusable where it cannot be read.
    None where it may."""
    from gateway.check import tables_read_only
    from gateway.storage import database_where, not_gateways

    there, where = tables_read_only(url), database_where(url)
    if there is None:
        return (f"no database at {where}: the gateway makes it at its first start; check the config's database "
                "(nothing was made)")
    if "cases" in there:
        return None
    if there:
        return f"database {where}: {not_gateways(there)}"
    return (f"database {where}: empty, not a gateway's database yet: the gateway makes its tables at its first "
            "start; check the config's database (it was left as it is)")


def _token(args: argparse.Namespace) -> int:
    import time

    from gateway.auth import new_token, token_name_problem
    from gateway.config import load_gateway_config, load_tables
    from gateway.deadlines import deadline, parse_service_level
    from gateway.storage import Store
    config = load_gateway_config(args.config)
    if args.list or args.revoke:
        if problem := not_to_read(config.database):
            print(f"error: {problem}", file=sys.stderr)
            return 2
        if args.list:  # closed, as each below: nothing left beside a stopped gateway's file
            with Store(config.database, read_only=True) as store:
                if older := older_release(store, config.database):
                    print(f"note: {older}; read as it is, nothing changed: this release's gateway upgrades it at its "
                          "start", file=sys.stderr)
                return _list_tokens(store)
        with to_write(config.database) as store:
            return _revoke_tokens(store, args.revoke, time.time())
    tables = load_tables(config.tables)
    if not args.name or not args.role:
        print("error: a new token needs --name and --role (or use --revoke / --list)", file=sys.stderr)
        return 2
    if problem := token_name_problem(args.name):
        print(f"error: --name {problem}", file=sys.stderr)
        return 2
    if args.role == "department" and args.department not in {d.id for d in tables.departments}:
        print(f"error: --department {args.department!r} is not in the city's tables; "
              f"known: {', '.join(sorted(d.id for d in tables.departments))}", file=sys.stderr)
        return 2
    if args.role == "operator" and not args.grid:
        print("error: an operator token needs --grid (the root of the grid subtree it sees)", file=sys.stderr)
        return 2
    if args.role == "operator" and not tables.knows(args.grid):
        print(f"error: --grid {args.grid!r} is not in the city's grid tree (see the tables' grids)", file=sys.stderr)
        return 2
    try:
        level = parse_service_level(args.expires)
        if level.working:  # counted in working days from the epoch, not from now: "2 working days" was a lie
            raise ValueError("working time")
        lifetime_s = deadline(0.0, level)
    except ValueError:
        print(f"error: --expires {args.expires!r}: write a number and a unit, e.g. 90d, 12h, 30min", file=sys.stderr)
        return 2
    if not 0 < lifetime_s <= 5 * 366 * 86400:
        print(f"error: --expires {args.expires!r}: must be more than 0 and at most 5 years (1830d)", file=sys.stderr)
        return 2
    with to_write(config.database) as store:
        print(new_token(store, args.name, args.role, args.department, args.grid, lifetime_s, time.time()))
    return 0


def older_release(store, url: str) -> str | None:
    """What is said of a database an older release made, opened to read (``Store(read_only=True)``); None for one
    of this release."""
    from gateway.schema import MIGRATIONS
    from gateway.storage import database_where

    if store.version >= MIGRATIONS[-1][0]:
        return None
    return (f"database {database_where(url)} is at migration {store.version}, an older release's (this release's: "
            f"{MIGRATIONS[-1][0]})")


def to_write(url: str, made_for: str = "this token"):
    """The gateway's database for a command that changes it (a token made or revoked, a retired identity's messages
    ingested), brought up to this release's schema first as the gateway's start would, and said on stderr: a city
    rolling back finds its old gateway refusing the file, and nothing had told it. One this command makes (a mistyped
    SQLite path, or before the gateway's first start) is made for ``made_for`` and said too: the token went into a
    new file, the gateway read its own and never took it, and nobody knew why."""
    from gateway.schema import MIGRATIONS
    from gateway.storage import Store, database_where, sqlite_path

    try:
        there = (path := sqlite_path(url)) is None or path.exists()
    except OSError:  # a folder on its way the user may not search: Store says so, as the gateway's start does
        there = True
    store = Store(url)
    where = database_where(url)
    if store.made and not there:
        print(f"note: no database was at {where}: made a new one for {made_for}; a gateway reading another file "
              "will not know it", file=sys.stderr)
    elif store.made:  # an empty file, a new PostgreSQL database
        print(f"note: database {where} held no gateway's tables: made them for {made_for}; a gateway reading another "
              "database will not know it", file=sys.stderr)
    elif store.applied:
        print(f"note: upgraded database {where} from migration {min(store.applied) - 1} to {MIGRATIONS[-1][0]} "
              "before writing (a gateway of an older release refuses it now)", file=sys.stderr)
    return store


def _list_tokens(store) -> int:
    for t in store.tokens():
        state = (f"revoked {city_iso(t['revoked_at'])}" if t["revoked_at"] else  # as the pages and logs show times
                 f"expires {city_iso(t['expires_at'])}" if t["expires_at"] else "never expires")
        print(f"{t['name']}\t{t['prefix'] or '-'}\t{t['role']}\t{t['department'] or t['grid'] or '-'}\t{state}")
    return 0


def _revoke_tokens(store, named: str, now: float) -> int:
    from gateway.auth import hash_token

    revoked = store.revoke_tokens(named, hash_token(named), now)
    if not revoked and named.startswith("xl_") and len(named) < 7:  # it said "no live token"
        print(f"error: --revoke {named!r}: a prefix names a token from 7 characters on, its xl_ included "
              "(see `xueliang token --list`)", file=sys.stderr)
        return 2
    if not revoked:
        print(f"error: no live token is named {named!r} or starts with it (see `xueliang token --list`)",
              file=sys.stderr)
        return 2
    for t in revoked:
        print(f"revoked {t['name']} ({t['prefix'] or 'made before prefixes were kept'})")
    return 0


def _dataset(args: argparse.Namespace) -> int:
    from gateway.config import load_gateway_config, load_tables
    from gateway.dataset import export
    from gateway.deadlines import city_time
    from gateway.storage import Store
    from xueliang.wire import WireError

    try:
        since = city_time(args.since)
    except WireError as exc:
        print(f"error: --since {args.since!r}: write a day (2026-12-01, Beijing time) or an ISO 8601 time ({exc})",
              file=sys.stderr)
        return 2
    config = load_gateway_config(args.config)
    if problem := not_to_read(config.database):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        with Store(config.database, read_only=True) as store:
            if older := older_release(store, config.database):  # it reads this release's tables only
                print(f"error: {older}: dataset export reads this release's; start this release's gateway on it once "
                      "(it upgrades the file), or export with the release that made it; it was left as it is",
                      file=sys.stderr)
                return 2
            counts = export(store, load_tables(config.tables), since, Path(args.out), args.frames_only)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the folder out of reach or the disk full: the export has left nothing there
        print(f"error: --out {args.out}: cannot be written ({exc.strerror or exc}); nothing was exported",
              file=sys.stderr)
        return 2
    for skipped in counts["skipped"]:
        print(f"warning: case {skipped['case_id']} incident {skipped['incident_id']} left out: {skipped['reason']}",
              file=sys.stderr)
    print(json.dumps(counts))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from xueliang.demo import run_demo

    return run_demo(once=args.once, port=args.port, data_dir=Path(args.data), timeout_s=args.timeout)


class JsonLines(logging.Formatter):
    """Structured logs: one JSON object per line (time, level, logger, message, traceback if any), the password of
    every URL in them hidden: an exception's text (a traceback's last line) is the library's own, and FFmpeg's and
    PyAV's quote the camera's url as given. The time is Beijing's with its offset (``2026-12-07T12:47:00.123+08:00``),
    as the pages show it: logging's own was the machine's zone without one, 8 h off the pages on a UTC cloud image.
    A message's control and invisible formatting characters are escaped (``\\n``, ``\\u202e``; a traceback keeps its
    line breaks, each exception's own text in it escaped as a message is: ``formatException``), as ``repr`` writes
    them: a line quotes what came from outside (a topic, a box's reason, a camera's error, FFmpeg's), and a newline in
    a topic made a message that read as another line of the gateway's log once its JSON was read (``jq -r .msg``, a
    collector), and a right-to-left override turned the line's end around."""

    def format(self, record: logging.LogRecord) -> str:
        t = city_iso(record.created, "milliseconds")
        line = {"t": t, "level": record.levelname, "logger": record.name,
                "msg": escaped(without_password(record.getMessage()))}
        if record.exc_info:
            line["exc"] = escaped(without_password(self.formatException(record.exc_info)), keep="\n")
        return json.dumps(line, ensure_ascii=False)

    def formatException(self, ei) -> str:
        """The traceback as Python writes it, but each exception's own text in it (and each of its notes) on one line,
        escaped: a newline in one (``ValueError("no decoder\\n  File ...")``) went on in lines that read as the
        traceback's own once ``exc`` was read, a frame's or another exception's.

        >>> try:
        ...     raise ValueError("a\\nKeyError: b")
        ... except ValueError:
        ...     print(JsonLines().formatException(sys.exc_info()).splitlines()[-1])
        ValueError: a\\nKeyError: b
        """
        import traceback

        shown = traceback.TracebackException(*ei)
        chain, seen = [shown], set()
        while chain:  # the exception, its cause or context, and those of an exception group, each once
            each = chain.pop()
            if each is None or id(each) in seen:
                continue
            seen.add(id(each))
            each._str = escaped(each._str)  # the text its last line words (str(exc)): no public way to set it
            if isinstance(each.__notes__, (list, tuple)):  # the exception's own list: replaced, not changed
                each.__notes__ = [escaped(str(note)) for note in each.__notes__]
            chain += [each.__cause__, each.__context__, *(each.exceptions or [])]
        return "".join(shown.format()).removesuffix("\n")


def _broker_account(args: argparse.Namespace) -> int:
    import getpass

    from xueliang import brokeraccounts
    path = Path(args.file)
    if args.remove:
        brokeraccounts.write(path, brokeraccounts.without_account(brokeraccounts.read(path), args.remove))
        print(f"{path}: account {args.remove!r} removed; restart the broker (systemctl restart mosquitto)")
        return 0
    if not args.kind or not args.name:
        print("error: give KIND and NAME (or --remove NAME)", file=sys.stderr)
        return 2
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("error: the two passwords differ; nothing changed", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    done = brokeraccounts.make(path, args.kind, args.name, password, tuple(args.grid))
    print(f"{path}: {done}; restart the broker (systemctl restart mosquitto)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xueliang", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("detect", help="run a detector on one image, or on a camera's current picture")
    p.add_argument("image", help="a picture file, or a camera's rtsp:// or rtsps:// url (its first picture, read as "
                   "the box reads it)")
    p.add_argument("--model", default="ssd_mobilenet_v2_coco")
    p.add_argument("--min-score", type=_score, default=0.3)
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--config", help="an edge config: detect on its camera's zone crops, print them on stderr")
    p.add_argument("--camera", help="the camera in --config (default: the first)")
    p.set_defaults(func=_detect)

    p = sub.add_parser("snapshot", help="each camera's current picture, full size, with its zones drawn and "
                       "labelled (zone id: what it watches), as OUT/CAMERA.jpg: where an installer draws and checks "
                       "the zones", epilog=f"exit status: 0 every camera's picture was written; {CAMERA_FAILED} a "
                       "camera could not be read (error: camera ID: why, as the box says it; the others' pictures "
                       "were written); 2 none was read (the config, a camera not in it, --out)")
    p.add_argument("--config", required=True, help="the box's edge config")
    p.add_argument("camera", nargs="*", help="the cameras to read (default: all the config's)")
    p.add_argument("--out", default=".", help="the folder the pictures go in, made where missing (default: here)")
    p.set_defaults(func=_snapshot)

    p = sub.add_parser("replay", help="run the edge pipeline on a video file, print incident messages "
                       "(the regions the vehicle model runs on are logged on stderr)",
                       epilog=f"exit status: 0 the file was read to its end; 2 nothing was replayed (a config, a "
                       f"--start or a file that is no video, or none that can be decoded: error: on stderr); {DAMAGED} "
                       "the file is damaged (cut off short of the length its index states, packets the decoder "
                       "refused, or not readable on from some point): the messages printed are what could be read, "
                       "the incidents open where it ends ended stream_ended, and stderr says what and about where")
    p.add_argument("video")
    p.add_argument("--config", required=True)
    p.add_argument("--camera", required=True)
    p.add_argument("--start", default="2026-01-01T00:00:00Z", help="ISO 8601 time of the first frame (without a "
                   "zone: Beijing time)")
    p.add_argument("--evidence-dir", help="also write evidence JPEGs here, each named by its incident id as a file "
                   "name may show it (':' made '_', a short hash of the id) and its seq")
    p.set_defaults(func=_replay)

    p = sub.add_parser("edge", help="run an edge box")
    p.add_argument("--config", required=True)
    p.add_argument("--check", action="store_true", help="check the config and the models it names, print what it "
                   "sets and exit (0: fit to run; 2: error: on stderr); nothing is started")
    p.set_defaults(func=_edge)

    p = sub.add_parser("gateway", help="run the gateway")
    p.add_argument("--config", required=True)
    instead = p.add_mutually_exclusive_group()
    instead.add_argument("--retire", metavar="IDENTITY", help="instead of running: end the broker session of a "
                         "gateway identity (client id) no gateway runs under any more, after ingesting what it holds "
                         "(until then the broker keeps giving it its share of the messages, for 7 days)")
    instead.add_argument("--check", action="store_true", help="check the config and the city's tables, print what "
                         "they set and what the database holds, and exit (0: fit to run; 2: error: on stderr); the broker and "
                         "port are not touched, the database is read, never changed")
    instead.add_argument("--backup", metavar="FILE", help="instead of running: copy the SQLite database, the gateway "
                         "running or stopped, to FILE (a new file), checked, and say what it holds (PostgreSQL: "
                         "pg_dump)")
    instead.add_argument("--restored-at", metavar="TIME", help="instead of running, on a PostgreSQL database "
                         "pg_restore put back from a dump made at TIME (as its header says it: pg_restore -l FILE | "
                         "grep 'Archive created at'; or ISO 8601, without a zone Beijing time): number new cases, "
                         "suppressions and dead letters past any the lost gateway gave, as a restored SQLite backup "
                         "does")
    instead.add_argument("--move-cases", metavar="DEPARTMENT", help="instead of running: the cases with DEPARTMENT, "
                         "taken out of the city's tables, now (dispatched or handling) returned and redispatched at "
                         "once to the department the tables route each to now (or --to's), each with its log rows, a "
                         "fresh deadline and its notice; those waiting for review or re-check are left to be sent on")
    p.add_argument("--to", metavar="DEPARTMENT", help="with --move-cases: the department of the tables they all go to")
    p.set_defaults(func=_gateway)

    p = sub.add_parser("token", help="make an API token (printed once; only its hash is stored), revoke or list tokens")
    p.add_argument("--config", required=True, help="the gateway's config")
    p.add_argument("--name")
    p.add_argument("--role", choices=["admin", "operator", "department"])
    p.add_argument("--department")
    p.add_argument("--grid")
    p.add_argument("--expires", default="90d", help="lifetime of a new token, e.g. 90d (default), 12h, 30min")
    p.add_argument("--revoke", metavar="NAME_OR_PREFIX", help="revoke the tokens of this name, or the token "
                   "starting with this prefix (its first 7+ characters, as --list shows them)")
    p.add_argument("--list", action="store_true", help="list tokens: name, prefix, role, scope, expiry")
    p.set_defaults(func=_token)

    p = sub.add_parser("broker-account", help="make an account of the secure broker (its dynamic-security file), the "
                       "password from the terminal or one line of stdin, or remove one")
    p.add_argument("file", help="the accounts' file, /etc/mosquitto/xueliang/accounts.json (made if missing)")
    p.add_argument("kind", nargs="?", choices=["box", "gateway", "centre", "department"])
    p.add_argument("name", nargs="?", help="a box's id, gateway-N, a centre's name, a department's id in the tables")
    p.add_argument("--grid", action="append", default=[], help="a centre's grid whose overdue notices it reads "
                   "(again for each; without, all)")
    p.add_argument("--remove", metavar="NAME", help="remove this account")
    p.set_defaults(func=_broker_account)

    p = sub.add_parser("dataset", help="training data from operators' verdicts")
    dataset = p.add_subparsers(dest="dataset_command", required=True)
    p = dataset.add_parser("export", help="every judged incident since DATE as an image with YOLO labels and COCO "
                           "JSON, false alarms as hard negatives (empty labels), with a manifest of where each came from")
    p.add_argument("--config", required=True, help="the gateway's config (its database and tables)")
    p.add_argument("--since", required=True, help="cases created from this day (YYYY-MM-DD, Beijing) or ISO 8601 time (without a zone: Beijing time)")
    p.add_argument("--out", required=True, help="a new or empty folder")
    p.add_argument("--frames-only", action="store_true", help="leave out incidents whose box sent only the "
                   "annotated snapshot (no unannotated frame)")
    p.set_defaults(func=_dataset)

    p = sub.add_parser("demo", help="serve the fixture clips as cameras and run everything")
    p.add_argument("--once", action="store_true", help="exit 0 after the first cases were created")
    p.add_argument("--port", type=_port, default=8080, help="gateway HTTP port")
    p.add_argument("--data", default="data/demo", help="local data folder")
    p.add_argument("--timeout", type=float, default=240.0, help="--once gives up after this many seconds")
    p.set_defaults(func=_demo)

    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a clear line instead of a traceback for the errors we name
        from models import ModelError

        named: tuple[type[Exception], ...] = (ModelError,)
        for module, name in (("edge.config", "ConfigError"), ("gateway.config", "GatewayConfigError"),
                             ("gateway.storage", "DatabaseUnusable"), ("gateway.backup", "BackupError"),
                             ("edge.source", "SourceError"),
                             ("xueliang.services", "ServiceError"),
                             ("xueliang.brokeraccounts", "AccountError")):
            # only a module imported can have raised its error: importing the others to ask cost an error's exit
            # ~4 s (edge.config brings scipy), and a gateway-only install has no edge to import
            if (loaded := sys.modules.get(module)) is not None:
                named += (getattr(loaded, name),)
        if isinstance(exc, named):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
