"""Gateway at a city's scale after a year: do the workbench's pages and the API still answer quickly?

Fills an SQLite database through the store's own tables (bulk inserts, not the API) with a year of a city:
100,000 cases over 1,111 grids, about 1,000,000 case-log rows, 20,000 dead letters, 30 boxes of 10 cameras,
cases of two departments taken out of the tables in March (their last dispatch far down the log). Starts the real gateway on it (its start timed: it reads
``storage.removed_departments``), then times the pages and API calls operators use, the median of several, as an
admin, an operator of one street and a department. Prints one line per call and a last JSON line.

    .venv/bin/python bench/gateway_scale.py                     # this checkout, 100,000 cases
    .venv/bin/python bench/gateway_scale.py --compare /work/main  # the same database, another checkout's gateway
                                                                  # first (before), then this one's (after)
    .venv/bin/python bench/gateway_scale.py --cases 20000        # smaller
    .venv/bin/python bench/gateway_scale.py --database postgresql  # on a throw-away PostgreSQL server, as cities run

With ``--compare`` the database is made by that checkout's schema and copied for each gateway (on PostgreSQL, a
database made from it as a template), so each migrates it its own way; the calls alternate between the two, round by
round, on the same machine. About 2 minutes for one checkout on 2 busy cores (the fill ~30-90 s), 4 with
``--compare``; on PostgreSQL as long (its fill by COPY ~10 s), its server started as the tests start theirs
(``services.postgres``) and removed at the end. Not in ``make bench``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import yaml
from sqlalchemy import Connection, Table, create_engine, insert, text

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gateway import schema  # noqa: E402
from gateway.auth import hash_token  # noqa: E402
from xueliang import services, wire  # noqa: E402

WORK = REPO / "data" / "bench-scale"
DAY = 86400.0
STREETS, COMMUNITIES, GRIDS = 10, 10, 10  # 1,111 grids in all, a district's
BOXES, CAMERAS = 30, 10
DEPARTMENTS = {"traffic-police": "交警大队", "sanitation": "环卫所", "municipal-roads": "市政道路养护",
               "city-management": "城管执法队", "video-maintenance": "雪亮工程运维"}
REMOVED = ("old-roads", "old-parks")  # cases of these are in the book, the tables no longer name them
CATEGORIES = [("illegal_parking", "200505", "机动车乱停放", "traffic-police", "1h", 0.6),
              ("garbage", "200102", "暴露垃圾", "sanitation", "3 working days", 0.25),
              ("spill", "200104", "道路遗撒", "municipal-roads", "1 working day", 0.1),
              ("camera_fault", "900101", "视频设备故障", "video-maintenance", "1 working day", 0.05)]
TOKENS = {"admin": ("bench-admin-token-0123456789abcdef", "admin", None, None),
          "operator": ("bench-operator-token-0123456789abcd", "operator", None, "HQ-S03"),
          "department": ("bench-department-token-0123456789ab", "department", "traffic-police", None)}


def grid_codes() -> tuple[list[dict], list[str]]:
    rows, leaves = [{"code": "HQ", "name": "红桥区", "level": "district", "parent": None}], []
    for s in range(STREETS):
        street = f"HQ-S{s:02d}"
        rows.append({"code": street, "name": f"街道{s}", "level": "street", "parent": "HQ"})
        for c in range(COMMUNITIES):
            community = f"{street}-C{c:02d}"
            rows.append({"code": community, "name": f"社区{s}-{c}", "level": "community", "parent": street})
            for g in range(GRIDS):
                leaves.append(f"{community}-G{g:02d}")
                rows.append({"code": leaves[-1], "name": f"网格{s}-{c}-{g}", "level": "grid", "parent": community})
    return rows, leaves


def write_tables(path: Path) -> None:
    grids, _ = grid_codes()
    path.write_text(yaml.safe_dump({
        "departments": [{"id": d, "name": n} for d, n in DEPARTMENTS.items()],
        "categories": [{"type": t, "code": code, "name": name, "department": dept, "service_level": sla}
                       for t, code, name, dept, sla, _ in CATEGORIES],
        "grids": [{k: v for k, v in g.items() if v is not None} for g in grids]}, allow_unicode=True))


# the case log of a case, by where it ended: each step (action, from, to); a closed case went round twice
ROUND = [("dispatched", "pending_review", "dispatched"), ("acknowledge", "dispatched", "handling"),
         ("request_extension", "handling", "handling"), ("approve_extension", "handling", "handling"),
         ("feedback", "handling", "feedback")]
PATHS = {"closed": ROUND + [("recheck_failed", "feedback", "dispatched"), ("acknowledge", "dispatched", "handling"),
                            ("feedback", "handling", "feedback"), ("close", "feedback", "closed")],
         "rejected": [("reject", "pending_review", "rejected")],
         "ledger": ROUND[:2] + [("escalate", "handling", "handling"), ("ledger", "handling", "ledger")],
         "dispatched": ROUND[:1], "handling": ROUND[:4], "feedback": ROUND,
         "returned": ROUND[:2] + [("return", "handling", "returned")], "pending_review": []}


def bulk(db: Connection, table: Table, rows: list[dict]) -> None:
    """Rows into ``table``: on PostgreSQL by COPY (an INSERT per thousand rows took the fill several times as long)."""
    if db.dialect.name != "postgresql":
        db.execute(insert(table), rows)
        return
    columns = list(rows[0])
    with db.connection.driver_connection.cursor() as cursor:
        with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])


def fill(url: str, cases_n: int, now: float, seed: int = 7) -> dict:
    """The database a year of the city leaves: bulk inserts into the store's tables (already made)."""
    rnd = random.Random(seed)
    _, leaves = grid_codes()
    engine = create_engine(url)
    counts = {"cases": 0, "case_log": 0, "dead_letters": 0}
    weights = [c[5] for c in CATEGORIES]
    with engine.begin() as db:
        cases, log, links, events, verdicts = [], [], [], [], []
        for i in range(1, cases_n + 1):
            t, code, name, dept, _, _ = rnd.choices(CATEGORIES, weights)[0]
            created = now - 365 * DAY * (1 - i / cases_n) - rnd.random() * 60
            age = now - created
            if age < 3 * DAY:
                state = rnd.choice(["dispatched", "handling", "feedback", "returned", "pending_review", "closed"])
            else:
                state = rnd.choices(["closed", "rejected", "ledger", "dispatched", "handling", "feedback"],
                                    [80, 10, 3, 3, 2, 2])[0]
            if state == "closed" and age > 300 * DAY and rnd.random() < 0.2:  # taken out of the tables in March
                dept = rnd.choice(REMOVED)
            grid = rnd.choice(leaves)
            box = f"box-{rnd.randrange(BOXES):02d}"
            iid = f"{box}:cam-{i % CAMERAS}:{uuid.UUID(int=rnd.getrandbits(128)).hex}"
            steps = PATHS[state]
            at, deadline = created, None
            log.append({"case_id": i, "at": at, "actor": "system", "role": "system", "action": "created",
                        "from_state": None, "to_state": "pending_review", "note": None, "target": None,
                        "published": None, "extend_by": None, "deadline": None})
            for action, frm, to in steps:
                at += rnd.uniform(60, 3 * 3600)
                target = dept if action in ("dispatched", "recheck_failed") else None
                if action in ("dispatched", "recheck_failed", "approve_extension"):
                    deadline = at + 3600 * rnd.choice([1, 8, 24, 72])
                log.append({"case_id": i, "at": at, "actor": "system" if action == "dispatched" else "op:bench",
                            "role": "system" if action == "dispatched" else "operator", "action": action,
                            "from_state": frm, "to_state": to,
                            "note": (f"{dept} {DEPARTMENTS.get(dept, '养护处')}" if action == "dispatched"
                                     else "照片已上传"),
                            "target": target, "published": at + 1 if target else None,
                            "extend_by": "8h" if "extension" in action else None,
                            "deadline": deadline if target or action == "approve_extension" else None})
            open_clock = state in ("dispatched", "handling")
            cases.append({
                "id": i, "incident_id": iid, "type": t, "category_code": code, "category_name": name,
                "department": dept, "grid": grid, "box": box, "camera": f"cam-{i % CAMERAS}", "zone": "kerb",
                "lat": 39.1 + rnd.random() * 0.1, "lon": 117.1 + rnd.random() * 0.1, "state": state,
                "created_at": created, "dispatched_at": created + 60 if steps else None,
                "deadline": (rnd.choice([now - 5 * DAY, now - 3600, now + 3600, now + DAY]) if open_clock
                             else deadline),
                "reported_at": created, "confidence": 0.8, "bbox": "[0.1, 0.1, 0.2, 0.2]", "evidence_sha256": None,
                "last_seq": 2, "level": rnd.choice([0, 0, 0, 1]) if open_clock else 0, "escalated_grid": None,
                "next_escalation_at": None, "closed_at": at if state == "closed" else None, "incident_count": 1,
                "ended_at": created + 600, "end_reason": "left", "end_evidence_sha256": None, "urgent": False,
                "fed_back_at": at if state == "feedback" else None,
                "recheck_deadline": at + DAY if state == "feedback" else None, "extension_request": None})
            links.append({"incident_id": iid, "case_id": i, "how": "opened", "linked_at": created})
            events.append({"incident_id": iid, "seq": 1, "state": "start", "received_at": created,
                           "payload": json.dumps({"schema_version": 1, "incident_id": iid, "seq": 1, "state": "start",
                                                  "type": t, "box": box, "camera": f"cam-{i % CAMERAS}",
                                                  "zone": "kerb", "grid": grid, "observed_at": wire.iso(created),
                                                  "started_at": wire.iso(created), "confidence": 0.8,
                                                  "bbox": [0.1, 0.1, 0.2, 0.2], "evidence": None})})
            if rnd.random() < 0.1:
                verdicts.append({"case_id": i, "at": created + 600, "actor": "op:bench",
                                 "verdict": rnd.choice(["correct", "false_alarm"]), "right_type": None,
                                 "duplicate_of": None, "bbox": None, "note": None})
            if len(log) > 50_000 or i == cases_n:
                for table, rows in ((schema.cases, cases), (schema.case_log, log), (schema.case_incidents, links),
                                    (schema.incident_events, events), (schema.verdicts, verdicts)):
                    if rows:
                        bulk(db, table, rows)
                counts["cases"] += len(cases)
                counts["case_log"] += len(log)
                cases, log, links, events, verdicts = [], [], [], [], []
        letters = [{"received_at": now - rnd.random() * 89 * DAY, "topic": f"xl/v1/incidents/box-{n % BOXES:02d}/cam",
                    "reason": rnd.choice(["schema: bbox", "unknown grid", "not JSON"]),
                    "payload": os.urandom(rnd.randint(200, 3000)), "grid": rnd.choice(leaves + [None] * 200),
                    "digest": uuid.UUID(int=rnd.getrandbits(128)).hex[:wire.DIGEST_CHARS]}
                   for n in range(20_000)]
        bulk(db, schema.dead_letters, letters)
        counts["dead_letters"] = len(letters)
        heartbeats = []
        for b in range(BOXES):
            box = f"box-{b:02d}"
            beat = {"box": box, "state": "online", "heartbeat_s": 10.0, "boot": "boot1", "link": 1, "seq": 100,
                    "cameras": {f"cam-{c}": {"grid": leaves[(b * CAMERAS + c) * 3], "state": "online"}
                                for c in range(CAMERAS)}}
            heartbeats.append({"box": box, "state": "online", "heard_at": now - (5 if b else 900), "sent_at": now,
                               "heartbeat": json.dumps(beat), "boot": "boot1", "link": 1, "seq": 100})
        bulk(db, schema.boxes, heartbeats)
        bulk(db, schema.tokens, [
            {"sha256": hash_token(tok), "name": f"bench-{who}", "role": role, "department": dept, "grid": grid,
             "created_at": now, "prefix": tok[:8], "expires_at": None, "revoked_at": None}
            for who, (tok, role, dept, grid) in TOKENS.items()])
        bulk(db, schema.sessions, [
            {"sha256": hash_token(f"session-{who}"), "token_sha256": hash_token(tok), "created_at": now,
             "expires_at": now + DAY} for who, (tok, *_) in TOKENS.items()])
        if db.dialect.name == "postgresql":  # the cases' ids were given: the next one the gateway makes follows them
            db.execute(text("SELECT setval(pg_get_serial_sequence('cases', 'id'), (SELECT max(id) FROM cases))"))
    if engine.dialect.name == "postgresql":  # a year-old database has been vacuumed and analysed (autovacuum)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as db:
            db.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return counts


def make_schema(url: str, repo: Path) -> None:
    """The tables as ``repo``'s store makes them (its migrations), in a process of its own."""
    subprocess.run([sys.executable, "-c", f"from gateway.storage import Store; Store({url!r})"], cwd=repo, check=True,
                   env={**os.environ, "PYTHONPATH": str(repo)})


def start_gateway(repo: Path, database: str, tables: Path, broker_port: int, label: str) -> tuple:
    port = services.free_port()
    cfg = WORK / f"{label}.yaml"
    cfg.write_text(yaml.safe_dump({"broker": {"port": broker_port, "client_id": f"xl-gw-scale-{label}"},
                                   "database": database, "http": {"port": port},
                                   "tables": str(tables), "escalation_check_s": 3600}))
    log = open(WORK / f"{label}.log", "ab")
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "xueliang", "gateway", "--config", str(cfg)], cwd=repo,
                            env={**os.environ, "PYTHONPATH": str(repo)}, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    while True:
        try:
            if get(port, "/health")[0] in (200, 503):
                break
        except OSError:
            pass
        if proc.poll() is not None or time.perf_counter() - began > 600:
            raise RuntimeError(f"gateway {label} did not start: see {WORK / f'{label}.log'}")
        time.sleep(0.05)
    return proc, port, time.perf_counter() - began


def get(port: int, path: str, who: str | None = None) -> tuple[int, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {}
    if who and path.startswith("/ui"):
        headers["Cookie"] = f"xl_session=session-{who}"
    elif who:
        headers["Authorization"] = f"Bearer {TOKENS[who][0]}"
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, len(body)


def calls(now: float, some_case: int) -> list[tuple[str, str, str]]:
    day = time.strftime("%Y-%m-%d", time.gmtime(now + 8 * 3600 - DAY))  # yesterday in the city
    week = time.strftime("%Y-%m-%d", time.gmtime(now + 8 * 3600 - 8 * DAY))
    return [
        ("api cases", "admin", "/cases"),
        ("api cases state=dispatched", "admin", "/cases?state=dispatched"),
        ("api cases overdue", "admin", "/cases?overdue=true"),
        ("api cases grid street", "admin", "/cases?grid=HQ-S05"),
        ("api cases category", "admin", "/cases?category=garbage"),
        ("api cases department", "admin", "/cases?department=sanitation"),
        ("api cases operator", "operator", "/cases"),
        ("api cases operator closed", "operator", "/cases?state=closed&offset=2000"),
        ("api cases dept", "department", "/cases"),
        ("api case", "admin", f"/cases/{some_case}"),
        ("api dead letters", "admin", "/dead-letters"),
        ("api dead letters operator", "operator", "/dead-letters"),
        ("api boxes", "admin", "/boxes"),
        ("api report daily", "admin", f"/reports/daily?date={day}"),
        ("api report weekly", "admin", f"/reports/weekly?date={week}"),
        ("api report daily operator", "operator", f"/reports/daily?date={day}"),
        ("api report daily dept", "department", f"/reports/daily?date={day}"),
        ("api report weekly dept", "department", f"/reports/weekly?date={week}"),
        ("open311 requests", "admin", "/open311/v2/requests.json"),
        ("open311 requests status=open", "admin", "/open311/v2/requests.json?status=open"),
        ("open311 requests operator", "operator", "/open311/v2/requests.json"),
        ("ui cases", "admin", "/ui/cases"),
        ("ui cases filtered", "admin", "/ui/cases?state=handling&department=traffic-police&overdue=true"),
        ("ui cases operator", "operator", "/ui/cases"),
        ("ui overdue", "admin", "/ui/overdue"),
        ("ui overdue operator", "operator", "/ui/overdue"),
        ("ui case", "admin", f"/ui/cases/{some_case}"),
        ("ui queue dept", "department", "/ui/queue"),
        ("ui queue picked", "admin", "/ui/queue?department=sanitation"),
        ("ui reports", "admin", "/ui/reports"),
        ("ui reports dept", "department", "/ui/reports"),
        ("ui boxes", "admin", "/ui/boxes"),
        ("ui map", "admin", "/ui/map"),
    ]


class Databases:
    """The filled template and a copy of it for each gateway: SQLite files, or databases on a PostgreSQL server."""

    def __init__(self, server: services.Service | None):
        self.server = server
        if server is None:
            self.template = f"sqlite:///{WORK / 'template.sqlite'}"
            return
        self.admin = create_engine(self._url("postgres"), isolation_level="AUTOCOMMIT")
        began = time.perf_counter()
        while True:  # it listens a moment before it takes connections ("the database system is starting up")
            try:
                with self.admin.connect() as db:
                    db.execute(text("CREATE DATABASE bench_template"))
                break
            except Exception:
                if time.perf_counter() - began > 30:
                    raise
                time.sleep(0.2)
        self.template = self._url("bench_template")

    def _url(self, name: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.server.port}/{name}"

    def size(self) -> int:
        if self.server is None:
            return (WORK / "template.sqlite").stat().st_size
        with self.admin.connect() as db:
            return db.execute(text("SELECT pg_database_size('bench_template')")).scalar()

    def copy(self, label: str) -> str:
        if self.server is None:
            shutil.copy(WORK / "template.sqlite", WORK / f"{label}.sqlite")
            return f"sqlite:///{WORK / f'{label}.sqlite'}"
        with self.admin.connect() as db:
            db.execute(text(f"CREATE DATABASE bench_{label} TEMPLATE bench_template"))
        return self._url(f"bench_{label}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--compare", type=Path, help="another checkout: its gateway first (before), then this one's")
    ap.add_argument("--database", choices=("sqlite", "postgresql"), default=os.environ.get("XL_BENCH_DATABASE", "sqlite"),
                    help="the store's database (default sqlite, or $XL_BENCH_DATABASE); postgresql: a throw-away "
                         "server under data/bench-scale, as the tests start theirs")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    tables = WORK / "tables.yaml"
    write_tables(tables)
    repos = {"before": args.compare.resolve(), "after": REPO} if args.compare else {"this": REPO}
    for f in WORK.glob("*.sqlite*"):
        f.unlink()
    postgres = contextlib.ExitStack()
    server = postgres.enter_context(services.postgres(WORK / "postgres")) if args.database == "postgresql" else None
    broker, gateways, results = None, {}, {}
    try:
        databases = Databases(server)
        now = time.time()
        t0 = time.perf_counter()
        make_schema(databases.template, next(iter(repos.values())))
        counts = fill(databases.template, args.cases, now)
        print(f"filled {counts} in {time.perf_counter() - t0:.1f} s, {databases.size() / 1e6:.0f} MB", flush=True)
        broker = services.mosquitto(WORK / "mosquitto").start()
        for label, repo in repos.items():
            database = databases.copy(label)
            proc, port, first = start_gateway(repo, database, tables, broker.port, label)
            proc.terminate()
            proc.wait(30)
            proc, port, again = start_gateway(repo, database, tables, broker.port, label)
            gateways[label] = (proc, port)
            results[label] = {"start (migrating)": [first * 1000], "start": [again * 1000]}
            print(f"{label}: gateway up in {first:.2f} s (its migrations), {again:.2f} s again", flush=True)
        todo = calls(now, some_case=args.cases - 1000)
        for label, (_, port) in gateways.items():  # warm each once, and check every call answers
            for name, who, path in todo:
                status, _ = get(port, path, who)
                if status != 200:
                    raise RuntimeError(f"{label} {name}: {path} answered {status}")
        for _ in range(args.rounds):
            for name, who, path in todo:
                for label, (_, port) in gateways.items():
                    began = time.perf_counter()
                    get(port, path, who)
                    results[label].setdefault(name, []).append((time.perf_counter() - began) * 1000)
    finally:
        for proc, _ in gateways.values():
            proc.terminate()
            proc.wait(30)
        if broker:
            broker.stop()
        postgres.close()  # the server and its cluster (a year's city: 1-2 GB under /tmp)
    medians = {label: {name: round(statistics.median(ms), 1) for name, ms in r.items()} for label, r in results.items()}
    for name in medians[next(iter(medians))]:
        line = "  ".join(f"{label} {m[name]:9.1f} ms" for label, m in medians.items())
        ratio = f"  x{medians['before'][name] / max(medians['after'][name], 0.1):.1f}" if args.compare else ""
        print(f"{name:34s} {line}{ratio}")
    print(json.dumps({"database": args.database, "cases": counts["cases"], "case_log": counts["case_log"], "dead_letters": counts["dead_letters"],
                      "rounds": args.rounds, "median_ms": medians}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
