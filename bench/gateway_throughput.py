"""Gateway benchmark: incidents/s from MQTT to committed cases, and publish-to-commit latency.

Synthetic, schema-valid incidents from several boxes go through a real Mosquitto to real
gateway processes: one on SQLite, one on PostgreSQL, two sharing the subscription on
PostgreSQL. Each message is a new incident far from the others (no merging), so every
one commits a case. Prints the figures and a last JSON line.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import yaml
from sqlalchemy import create_engine, text

from gateway.config import TABLES_DIR
from xueliang import services, wire

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "data" / "bench-gateway"
BOXES = 4


def incident(box: str, i: int, now: float) -> bytes:
    m = {"schema_version": 1, "incident_id": uuid.uuid4().hex, "seq": 1, "state": "start", "type": "illegal_parking",
         "box": box, "camera": "cam", "zone": "kerb", "grid": "HQ-DZG-10D-07",
         "location": {"lat": 30 + (i % 2000) * 0.01, "lon": 110 + (i // 2000) * 0.01},
         "started_at": wire.iso(now), "observed_at": wire.iso(now), "ended_at": None, "end_reason": None,
         "confidence": 0.8, "bbox": [0.1, 0.1, 0.2, 0.2], "track_id": 1, "attributes": {"dwell_s": 30, "label": "car"},
         "evidence": None, "model": {"name": "bench", "version": "1"}}
    return json.dumps(m).encode()


def flood(port: int, count: int) -> float:
    """Publish ``count`` incidents as fast as the broker takes them; returns the start time.

    One ``mosquitto_pub -l`` (C, QoS 1, a line per message) per box, fed payloads built
    beforehand: a Python publisher tops out near 2,200 messages/s on this machine, below
    what is measured here."""
    now = time.time()
    lines = {f"bench-box-{b}": [] for b in range(BOXES)}
    for i in range(count):
        box = f"bench-box-{i % BOXES}"
        lines[box].append(incident(box, i, now))
    start = time.time()
    pubs = [subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", "mqttv5", "-q", "1", "-l",
                              "-t", wire.incident_topic(box, "cam"), "-i", f"bench-flood-{box}"],
                             stdin=subprocess.PIPE) for box in lines]
    for pub, box in zip(pubs, lines):
        pub.stdin.write(b"\n".join(lines[box]) + b"\n")
        pub.stdin.close()
    for pub in pubs:
        pub.wait(120)
    return start


def publish(port: int, count: int, rate: float, first: int = 0) -> float:
    """Publish ``count`` incidents from BOXES clients paced at ``rate``/s; returns the start time."""
    clients = []
    for b in range(BOXES):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        c.max_inflight_messages_set(1000)
        c.connect("127.0.0.1", port)
        c.loop_start()
        clients.append(c)
    start = time.time()
    infos = []
    for i in range(count):
        delay = start + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        box = f"bench-box-{i % BOXES}"
        infos.append(clients[i % BOXES].publish(wire.incident_topic(box, "cam"), incident(box, first + i, time.time()),
                                                qos=1))
    for info in infos:
        info.wait_for_publish(60)
    for c in clients:
        c.loop_stop()
        c.disconnect()
    return start


def committed(url: str) -> list[tuple[float, float]]:
    engine = create_engine(url)
    with engine.connect() as db:
        rows = db.execute(text("SELECT c.created_at, e.payload FROM cases c JOIN incident_events e "
                               "ON e.incident_id = c.incident_id")).all()
    engine.dispose()
    return [(created, wire.parse_time(json.loads(payload)["observed_at"])) for created, payload in rows]


def count(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as db:
        n = db.execute(text("SELECT count(*) FROM cases")).scalar_one()
    engine.dispose()
    return n


def unlimited_tables() -> Path:
    """The demo city's tables with no limit on a camera's new cases (``new_cases_per_camera_hour: 0``): each box here
    sends from one camera, thousands in a minute, and past the default 20 they were held for review, no longer the
    dispatch this measures."""
    tables = WORK / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    for name in ("demo-grids.csv", "demo-grids.geojson"):
        shutil.copyfile(TABLES_DIR / name, tables / name)
    (tables / "demo.yaml").write_text((TABLES_DIR / "demo.yaml").read_text() + "new_cases_per_camera_hour: 0\n")
    return tables / "demo.yaml"


def run(label: str, url: str, processes: int, burst: int, rate: float, paced: int) -> dict:
    # a broker of its own: a stopped gateway's persistent session would keep its share of the messages
    broker = services.mosquitto(WORK / f"mosquitto-{label}").start()
    broker_port = broker.port
    gateways = []
    for p in range(processes):
        cfg = WORK / f"{label}-{p}.yaml"
        cfg.write_text(yaml.safe_dump({"broker": {"port": broker_port, "client_id": f"xl-gw-{label}-{p}"},
                                       "database": url, "http": {"port": services.free_port()},
                                       "tables": str(unlimited_tables())}))
        gateways.append(services.xueliang(["gateway", "--config", str(cfg)], WORK / f"{label}-{p}.log"))
    try:
        time.sleep(3)
        start = flood(broker_port, burst)
        deadline = time.time() + 300
        while count(url) < burst and time.time() < deadline:
            time.sleep(0.2)
        rows = committed(url)
        last = max(c for c, _ in rows)
        throughput = len(rows) / (last - start)
        before = len(rows)
        start = publish(broker_port, paced, rate, first=burst)  # other places: no merging with the burst
        while count(url) < before + paced and time.time() < deadline:
            time.sleep(0.2)
        lat = sorted((c - o) * 1000 for c, o in committed(url) if o >= start - 0.001)
        return {"label": label, "processes": processes, "incidents_per_s": round(throughput, 1),
                "p50_ms_at_rate": round(statistics.median(lat), 1) if lat else None,
                "p99_ms_at_rate": round(lat[int(len(lat) * 0.99)], 1) if lat else None, "rate": rate}
    finally:
        for g in gateways:
            g.terminate()
            g.wait(10)
        broker.stop()


def main(burst: int = 10000, rate: float = 500.0, paced: int = 5000) -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    pg = services.postgres(WORK / "pg").start()
    results = []
    try:
        admin = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{pg.port}/postgres", isolation_level="AUTOCOMMIT")
        for label, processes in (("sqlite-1", 1), ("postgres-1", 1), ("postgres-2", 2)):
            if label.startswith("sqlite"):
                db_file = WORK / f"{label}.sqlite"
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{db_file}{suffix}").unlink(missing_ok=True)
                url = f"sqlite:///{db_file}"
            else:
                name = label.replace("-", "_")
                with admin.connect() as db:
                    db.execute(text(f"DROP DATABASE IF EXISTS {name}"))
                    db.execute(text(f"CREATE DATABASE {name}"))
                url = f"postgresql+psycopg://postgres@127.0.0.1:{pg.port}/{name}"
            r = run(label, url, processes, burst, rate, paced)
            print(json.dumps(r), flush=True)
            results.append(r)
    finally:
        pg.__exit__(None, None, None)  # stops it and removes its cluster
    by = {r["label"]: r for r in results}
    summary = {
        "sqlite_incidents_per_s": by["sqlite-1"]["incidents_per_s"],
        "sqlite_p50_ms_at_rate": by["sqlite-1"]["p50_ms_at_rate"], "sqlite_p99_ms_at_rate": by["sqlite-1"]["p99_ms_at_rate"],
        "postgres_1_incidents_per_s": by["postgres-1"]["incidents_per_s"],
        "postgres_2_incidents_per_s": by["postgres-2"]["incidents_per_s"],
        "latency_rate_per_s": rate,
        "postgres_scaling": round(by["postgres-2"]["incidents_per_s"] / by["postgres-1"]["incidents_per_s"], 2),
        "postgres_p99_ms_at_rate": by["postgres-1"]["p99_ms_at_rate"],
    }
    print(f"SQLite: {summary['sqlite_incidents_per_s']}/s, p99 {summary['sqlite_p99_ms_at_rate']} ms at {rate:.0f}/s; "
          f"PostgreSQL: {summary['postgres_1_incidents_per_s']}/s one process, "
          f"{summary['postgres_2_incidents_per_s']}/s two ({summary['postgres_scaling']}x)")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(*(int(a) for a in sys.argv[1:2])))
