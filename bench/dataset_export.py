"""What a training export costs (``gateway/dataset.py``): ``--cases`` judged cases, one incident each with its own
64x48 snapshot, made through ingest on SQLite (or, with ``--postgres``, a throw-away PostgreSQL server), then
exported ``--rounds`` times: wall time and the SQL statements it asked. Last line JSON.

Not in ``make bench``: making 20,000 cases takes a minute or two. These machines are noisy: compare runs made turn
about.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from sqlalchemy import event

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway import dataset  # noqa: E402
from gateway.config import TABLES_DIR, load_tables  # noqa: E402
from gateway.ingest import Ingest  # noqa: E402
from gateway.schema import verdicts  # noqa: E402
from gateway.storage import Store  # noqa: E402
from xueliang import services, wire  # noqa: E402

NOW = 1_767_225_600.0
START = {"schema_version": 1, "seq": 1, "state": "start", "type": "illegal_parking", "box": "box-1", "camera": "gate",
         "zone": "kerb", "grid": "HQ-DZG-10D-07", "started_at": "2026-01-01T00:00:30Z",
         "observed_at": "2026-01-01T00:00:30Z", "ended_at": None, "end_reason": None, "confidence": 0.79,
         "bbox": [0.84, 0.07, 0.94, 0.17], "track_id": 3, "attributes": {"dwell_s": 30, "label": "car"},
         "model": {"name": "bench", "version": "1"}}


def judged(store: Store, cases: int) -> None:
    """``cases`` cases far apart, each with its own picture, each judged correct."""
    ingest = Ingest(store, load_tables(TABLES_DIR / "demo.yaml"), clock=lambda: NOW)
    for at in range(0, cases, 250):
        items = []
        for n in range(at, min(cases, at + 250)):
            out = io.BytesIO()
            Image.new("RGB", (64, 48), (n % 256, n // 256 % 256, 7)).save(out, "JPEG")
            picture, incident_id = out.getvalue(), f"gate-{n}"
            items.append((wire.evidence_topic("box-1", "gate", incident_id), picture))
            items.append((wire.incident_topic("box-1", "gate"), json.dumps(dict(
                copy.deepcopy(START), incident_id=incident_id,
                location={"lat": 30 + n % 200 * 0.01, "lon": 110 + n // 200 * 0.01},
                evidence={"sha256": hashlib.sha256(picture).hexdigest(), "bytes": len(picture)})).encode()))
        assert ingest.handle_batch(items).count("case_created") == len(items) // 2
    with store.engine.begin() as db:
        db.execute(verdicts.insert(), [{"case_id": n, "at": NOW, "actor": "admin:centre", "verdict": "correct"}
                                       for n in range(1, cases + 1)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--postgres", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="xl-export-") as tmp, contextlib.ExitStack() as stack:
        if args.postgres:
            pg = stack.enter_context(services.postgres(Path(tmp) / "pg"))
            for _ in range(60):  # it listens a moment before it takes connections
                with contextlib.suppress(Exception):
                    store = Store(f"postgresql+psycopg://postgres@127.0.0.1:{pg.port}/postgres")
                    break
                time.sleep(0.5)
        else:
            store = Store(f"sqlite:///{tmp}/gateway.sqlite")
        judged(store, args.cases)
        statements = []
        event.listen(store.engine, "before_cursor_execute", lambda *_: statements.append(1))
        walls = []
        for n in range(args.rounds):
            statements.clear()
            started = time.perf_counter()
            counts = dataset.export(store, load_tables(TABLES_DIR / "demo.yaml"), 0.0, Path(tmp) / f"out-{n}")
            walls.append(time.perf_counter() - started)
            assert counts["images"] == args.cases, counts
        figures = {"database": store.engine.dialect.name, "cases": args.cases, "statements": len(statements),
                   "export_s": round(statistics.median(walls), 1), "rounds_s": [round(w, 1) for w in walls]}
        print(f"{args.cases:,} judged cases on {figures['database']}: export {figures['export_s']} s (median of "
              f"{args.rounds}), {len(statements):,} SQL statements")
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
