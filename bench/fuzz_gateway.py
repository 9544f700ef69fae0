"""The longer hostile-message run: a real Mosquitto and a real gateway process, thousands of
messages drawn by Hypothesis (tests/hostile.py) with a valid one after every batch.

Prints figures and a last JSON line: hostile messages sent, delivered (on the gateway's topics),
accounted for by the gateway (its metrics), stalls (ingest failures, or a valid message that did
not become a case within 10 s), and the valid cases made afterwards.

    .venv/bin/python bench/fuzz_gateway.py [--messages 5000]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt  # noqa: E402
import yaml  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gateway.config import TABLES_DIR  # noqa: E402
from tests.hostile import HOSTILE, publishable, subscribed, valid  # noqa: E402
from xueliang import services  # noqa: E402


def draw_batches(messages: int, batch: int) -> list[list[tuple[str, bytes]]]:
    out: list[list[tuple[str, bytes]]] = []

    @settings(max_examples=max(1, messages // batch), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(HOSTILE, min_size=batch, max_size=batch))
    def collect(hostile):
        out.append([m for m in hostile if publishable(m[0])])

    collect()
    return out


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def case_ids(port: int) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/cases?limit=1000", timeout=5) as r:
        return {c["incident_id"] for c in json.loads(r.read())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()
    t0 = time.monotonic()
    batches = draw_batches(args.messages, args.batch)
    print(f"drew {sum(map(len, batches))} hostile messages in {len(batches)} batches "
          f"({time.monotonic() - t0:.1f} s)", flush=True)
    with tempfile.TemporaryDirectory() as folder, services.mosquitto(Path(folder) / "mq") as broker:
        http_port = services.free_port()
        config = Path(folder) / "gateway.yaml"
        config.write_text(yaml.safe_dump({"broker": {"port": broker.port}, "database": f"sqlite:///{folder}/gw.sqlite",
                                          "http": {"port": http_port, "public_read": True, "allowed_hosts": ["127.0.0.1"]},
                                          "tables": str(TABLES_DIR / "demo.yaml")}))
        gateway = services.xueliang(["gateway", "--config", str(config)], Path(folder) / "gateway.log")
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fuzz-bench", protocol=mqtt.MQTTv5)
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        sent = delivered = late = 0
        try:
            services.wait_port(http_port, gateway, "gateway", timeout=30)
            time.sleep(1.0)
            t1 = time.monotonic()
            for n, hostile in enumerate(batches, 1):
                for topic, body in hostile + [valid(n)]:
                    client.publish(topic, body, qos=1).wait_for_publish(10)
                    sent += 1
                    delivered += subscribed(topic)
                deadline = time.monotonic() + 10
                while f"valid-{n}" not in case_ids(http_port):
                    if time.monotonic() > deadline:
                        late += 1
                        break
                    time.sleep(0.05)
            deadline = time.monotonic() + 30
            while metric(http_port, "xl_gateway_messages_total") < delivered and time.monotonic() < deadline:
                time.sleep(0.2)
            elapsed = time.monotonic() - t1
            accounted = int(metric(http_port, "xl_gateway_messages_total"))
            failures = int(metric(http_port, "xl_gateway_ingest_failures_total"))
            dead = int(metric(http_port, 'xl_gateway_messages_total{outcome="dead_letter"}'))
            valid_cases = len({f"valid-{n}" for n in range(1, len(batches) + 1)} & case_ids(http_port))
        finally:
            client.loop_stop()
            gateway.terminate()
            gateway.wait(10)
    hostile = sent - len(batches)
    print(f"{hostile} hostile messages ({delivered - len(batches)} on the gateway's topics), "
          f"{failures + late} stalls, {delivered - accounted} unaccounted, {dead} dead letters, "
          f"{valid_cases}/{len(batches)} valid messages after each batch became cases; {elapsed:.1f} s")
    print(json.dumps({"hostile_messages": hostile, "delivered": delivered, "accounted": accounted,
                      "unaccounted": delivered - accounted, "dead_letters": dead, "stalls": failures + late,
                      "valid_cases": valid_cases, "valid_sent": len(batches), "seconds": round(elapsed, 1)}))
    return 0 if failures + late == 0 and accounted >= delivered and valid_cases == len(batches) else 1


if __name__ == "__main__":
    sys.exit(main())
