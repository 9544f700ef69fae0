"""Edge capacity benchmark: how many 1080p25 RTSP cameras one edge core sustains.

Serves N loopback RTSP cameras (the campus clip re-encoded to 1080p 25 fps, ~4 Mb/s, key
frame every 2 s) from the test server pinned to core 0, and runs the edge box pinned to
core 1. The window starts 8 s after every camera is online and analysed (the box's start-up,
all cameras connecting at once, is reported as ``all_online_s``, not judged); the cameras'
incidents fall inside it. N is sustained when, over a 40 s window, every camera's every key frame (one per
2 s) is analysed (none dropped, >= 0.45 analysed frames/s, no gap over 4.5 s), the dwell
timing holds (incident start <= 3 s after the dwell was reached) and no camera reconnected, its start
included. The naive pipeline (OpenCV
decodes every frame, detector on every 5th) is sustained when it decodes >= 95% of 25 fps
and analyses >= 0.5 frames/s per camera.
Prints both, the ratio, CPU per camera, p50/p99 frame-to-publish, and a last JSON line.

Two more rows run the same edge trial at the sustained camera count on other streams: key
frames every 4 s (H.264), and H.265 with a key frame every 2 s; a row is sustained when every
key frame is analysed (>= 0.9 per key-frame interval, no gap over the interval + 2.5 s) and the
incident is published within a key-frame interval + 0.5 s of the dwell (``BENCH_ROWS_N`` sets their
camera count; ``BENCH_ROWS_ONLY=1`` runs just them).

Then litter cameras: the same trial on the 2 s stream with a garbage-and-spill zone over the road
beside the parking zone (a camera a city points at both), so the litter model's tiles (each seen as
is and mirrored where it sees something) run beside the vehicle model; the largest sustained count of
``BENCH_LITTER_COUNTS`` and its CPU per camera (``BENCH_LITTER_ONLY=1`` runs just that). The clip
holds no garbage or spill: litter incidents there are false, and are reported.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import yaml

from xueliang import services, wire

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "data" / "bench"
CLIP = WORK / "campus-1080p25.mp4"
# the extra rows: (name, file, encoder arguments, key-frame interval in s)
ROWS = [("h264_keyframes_4s", WORK / "campus-1080p25-gop4.mp4",
         ["-c:v", "libx264", "-preset", "veryfast", "-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M",
          "-g", "100", "-keyint_min", "100", "-sc_threshold", "0"], 4.0),
        ("h265_keyframes_2s", WORK / "campus-1080p25-h265.mp4",
         ["-c:v", "libx265", "-preset", "ultrafast", "-b:v", "3M", "-tag:v", "hvc1",
          "-x265-params", "keyint=50:min-keyint=50:scenecut=0:log-level=error"], 2.0)]
MOUNTS = 4
STARTUP_MAX_S, SETTLE_S, WINDOW_S, DWELL_S = 60.0, 8.0, 40.0, 20.0
NAIVE_WARMUP_S = 14.0  # a few cameras: all streaming well before
ZONE = [[0.80, 0.03], [0.97, 0.03], [0.97, 0.22], [0.80, 0.22]]
KERB = {"id": "kerb", "types": ["illegal_parking"], "polygon": ZONE, "dwell_s": DWELL_S}
ROAD = {"id": "road", "types": ["garbage", "spill"], "polygon": [[0.30, 0.32], [0.98, 0.32], [0.98, 0.75], [0.30, 0.75]]}
TICKS = os.sysconf("SC_CLK_TCK")


def make_clip(path: Path = CLIP, codec: list[str] | None = None) -> None:
    if path.exists():
        return
    WORK.mkdir(parents=True, exist_ok=True)
    print(f"bench: encoding the 1080p25 test stream {path.name} (once) ...", flush=True)
    codec = codec or ["-c:v", "libx264", "-preset", "veryfast", "-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M",
                      "-g", "50", "-keyint_min", "50", "-sc_threshold", "0"]
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(REPO / "fixtures/videos/campus-gate.mp4"),
                    "-t", "60", "-vf", "scale=1920:1080,fps=25", *codec, "-pix_fmt", "yuv420p", "-an",
                    str(path) + ".part.mp4"], check=True)
    Path(str(path) + ".part.mp4").rename(path)


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its threads (children excluded)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def pinned(core: int, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(core), *argv]


class Listener:
    def __init__(self, port: int, box: str):
        self.status: dict = {}
        self.statuses: list[dict] = []
        self.starts: list[tuple[float, dict]] = []  # illegal parking
        self.litter_starts: list[tuple[float, dict]] = []  # garbage and spill
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([(wire.status_topic(box), 1), (f"xl/v1/{box}/+/incident", 1)])
        self.client.loop_start()

    def _on_message(self, client, userdata, msg):
        if msg.topic.endswith("/status"):
            self.status = json.loads(msg.payload)
            self.statuses.append(self.status)
        else:
            m = json.loads(msg.payload)
            # with no gateway to acknowledge it, the box sends a message again: count each incident once
            starts = self.starts if m["type"] == "illegal_parking" else self.litter_starts
            if m["state"] == "start" and all(m["incident_id"] != seen["incident_id"] for _, seen in starts):
                starts.append((time.time(), m))

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


def all_online(status: dict, n: int) -> bool:
    cams = status.get("cameras", {}).values()
    return len(cams) == n and all(c["state"] == "online" and c["analysed"] > 0 for c in cams)


def trial_xueliang(n: int, rtsp_port: int, broker_port: int, server_pid: int | None = None, gop_s: float = 2.0,
                   label: str = "", zones: tuple[dict, ...] = (KERB,)) -> dict:
    box = f"bench-{n}{label}"
    # a fresh outbox: with no gateway to acknowledge them, an earlier trial's messages would be sent again
    shutil.rmtree(WORK / f"edge-{n}{label}", ignore_errors=True)
    # each camera a url of its own (a box refuses two cameras on one stream): the server ignores the query
    cameras = [{"id": f"cam{i}", "url": f"rtsp://127.0.0.1:{rtsp_port}/m{i % MOUNTS}?camera={i}", "grid": "G-1",
                "zones": list(zones)}
               for i in range(n)]
    cfg = WORK / f"edge-{n}{label}.yaml"
    cfg.write_text(yaml.safe_dump({"box": box, "broker": {"port": broker_port}, "cameras": cameras,
                                   "heartbeat_s": 2, "detection": {"threads": 1},
                                   "data_dir": str(WORK / f"edge-{n}{label}")}))
    listener = Listener(broker_port, box)
    proc = subprocess.Popen(pinned(1, [sys.executable, "-m", "xueliang", "edge", "--config", str(cfg)]),
                            stdout=open(WORK / f"edge-{n}{label}.log", "wb"), stderr=subprocess.STDOUT)
    try:
        started = time.time()
        while time.time() - started < STARTUP_MAX_S and not all_online(listener.status, n):
            time.sleep(0.25)
        online_s = time.time() - started
        time.sleep(SETTLE_S)
        a, cpu_a, first = dict(listener.status), cpu_seconds(proc.pid), len(listener.statuses)
        srv_a = cpu_seconds(server_pid) if server_pid else 0.0
        time.sleep(WINDOW_S)
        b, cpu_b = dict(listener.status), cpu_seconds(proc.pid)
        srv_b = cpu_seconds(server_pid) if server_pid else 0.0
        window = listener.statuses[first:]
        time.sleep(max(0.0, DWELL_S + 6 - SETTLE_S - WINDOW_S))
        span = wire.parse_time(b["at"]) - wire.parse_time(a["at"])
        rates = [(b["cameras"][c]["analysed"] - a["cameras"][c]["analysed"]) / span for c in b.get("cameras", {})]
        max_gap = max((cam["max_gap_s"] for st in window for cam in st["cameras"].values()), default=99.0)
        late = sorted({st["at"][11:19] for st in window for cam in st["cameras"].values() if cam["max_gap_s"] > gop_s + 0.5})
        late_cams = sum(1 for st in window for cam in st["cameras"].values() if cam["max_gap_s"] > gop_s + 0.5)
        starts = list(listener.starts)
        lags = [wire.parse_time(m["observed_at"]) - wire.parse_time(m["started_at"]) for _, m in starts]
        publish = [(arrived - wire.parse_time(m["observed_at"])) * 1000 for arrived, m in starts]
        dropped = sum(b["cameras"][c]["dropped"] - a["cameras"][c]["dropped"] for c in b.get("cameras", {}))
        # Sustained: every key frame (one per 2 s) of every camera analysed, none replaced before its turn,
        # at >= 0.45 analysed frames/s measured over the window; gaps past 2 s are delivery and scheduling
        # jitter, tolerated up to 4.5 s (one late key frame, never a lost one); dwell start <= 3 s late;
        # and no camera dropped at any time, its start included (a reader that decoded every camera's first
        # seconds in full at once made 48 cameras reconnect 12-21 times while they came up, 2026-12-05)
        cams = b.get("cameras", {}).values()
        ok = (len(rates) == n and dropped == 0 and min(rates) >= 0.9 / gop_s and max_gap <= gop_s + 2.5
              and len(starts) == n and max(lags, default=99) <= max(3.0, gop_s + 0.5)
              and sum(c["reconnects"] for c in cams) == 0)
        return {"n": n, "sustained": ok, "all_online_s": round(online_s, 1), "min_rate": round(min(rates, default=0), 3), "max_gap_s": max_gap, "late_at": late, "late_camera_heartbeats": late_cams,
                "dropped_in_window": dropped, "reconnects": sum(c["reconnects"] for c in cams),
                "detector_passes": sum(c["detector_passes"] for c in cams), "analysed": sum(c["analysed"] for c in cams),
                "cpu_per_camera": round((cpu_b - cpu_a) / span / n * 100, 2), "edge_cpu": round((cpu_b - cpu_a) / span * 100, 1),
                "server_cpu": round((srv_b - srv_a) / span * 100, 1), "incidents": len(starts), "max_start_lag_s": round(max(lags, default=0), 2),
                "litter_incidents": len(listener.litter_starts),
                "publish_ms": publish}
    finally:
        stop(proc)
        listener.stop()


def trial_naive(n: int, rtsp_port: int) -> dict:
    urls = [f"rtsp://127.0.0.1:{rtsp_port}/m{i % MOUNTS}" for i in range(n)]
    proc = subprocess.Popen(pinned(1, [sys.executable, str(REPO / "bench" / "naive.py"), *urls]),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    lines: list[dict] = []
    threading.Thread(target=lambda: [lines.append(json.loads(line)) for line in proc.stdout], daemon=True).start()
    try:
        time.sleep(NAIVE_WARMUP_S)
        a, cpu_a = lines[-1], cpu_seconds(proc.pid)
        time.sleep(WINDOW_S)
        b, cpu_b = lines[-1], cpu_seconds(proc.pid)
        span = b["at"] - a["at"]
        decoded = [(b["cameras"][c]["decoded"] - a["cameras"][c]["decoded"]) / span for c in b["cameras"]]
        analysed = [(b["cameras"][c]["analysed"] - a["cameras"][c]["analysed"]) / span for c in b["cameras"]]
        ok = min(decoded) >= 25 * 0.95 and min(analysed) >= 0.5
        return {"n": n, "sustained": ok, "min_decode_fps": round(min(decoded), 1),
                "cpu_per_camera": round((cpu_b - cpu_a) / span / n * 100, 2)}
    finally:
        stop(proc)


def largest(trial, counts: list[int]) -> tuple[int, list[dict]]:
    best, results = 0, []
    for n in counts:
        r = trial(n)
        results.append(r)
        print("  " + json.dumps({k: v for k, v in r.items() if k != "publish_ms"}), flush=True)
        if not r["sustained"]:
            break
        best = n
    return best, results


def trial_rows(k: int, broker_port: int) -> dict:
    """The edge trial with ``k`` cameras on each stream of ``ROWS``."""
    rows = {}
    for name, path, codec, gop_s in ROWS:
        make_clip(path, codec)
        row_server = services.rtsp_server({f"m{i}": path for i in range(MOUNTS)}, WORK / name)
        row_server.argv = pinned(0, row_server.argv)
        row_server.start()
        try:
            time.sleep(2)
            print(f"xueliang on {name}, {k} cameras:", flush=True)
            r = trial_xueliang(k, row_server.port, broker_port, row_server.proc.pid, gop_s, f"-{name}")
            print("  " + json.dumps({key: v for key, v in r.items() if key != "publish_ms"}), flush=True)
            rows[name] = {"cameras": k, "sustained": r["sustained"], "cpu_per_camera_pct": r["cpu_per_camera"],
                          "max_start_lag_s": r["max_start_lag_s"]}
        finally:
            row_server.stop()
    return rows


def trial_litter(broker_port: int) -> dict:
    """The largest sustained count of cameras with a litter zone beside the parking zone."""
    make_clip()
    counts = [int(a) for a in os.environ.get("BENCH_LITTER_COUNTS", "4,8,12,16,20,24,28,32").split(",")]
    server = services.rtsp_server({f"m{i}": CLIP for i in range(MOUNTS)}, WORK / "litter")
    server.argv = pinned(0, server.argv)
    server.start()
    try:
        time.sleep(2)
        print("xueliang with a garbage-and-spill zone beside the parking zone, edge on core 1:", flush=True)
        n, results = largest(lambda k: trial_xueliang(k, server.port, broker_port, server.proc.pid, label="-litter",
                                                       zones=(KERB, ROAD)), counts)
    finally:
        server.stop()
    best = next((r for r in results if r["n"] == n), results[0])
    return {"cameras_sustained": n, "cpu_per_camera_pct": best["cpu_per_camera"],
            "max_start_lag_s": best["max_start_lag_s"], "false_litter_incidents": best["litter_incidents"]}


def main() -> int:
    if os.environ.get("BENCH_LITTER_ONLY"):  # just the litter cameras
        broker = services.mosquitto(WORK / "mosquitto").start()
        try:
            litter = trial_litter(broker.port)
        finally:
            broker.stop()
        print(json.dumps({"litter": litter}))
        return 0
    if os.environ.get("BENCH_ROWS_ONLY"):  # just the extra rows, at BENCH_ROWS_N cameras (default 8)
        broker = services.mosquitto(WORK / "mosquitto").start()
        try:
            rows = trial_rows(int(os.environ.get("BENCH_ROWS_N", "8")), broker.port)
        finally:
            broker.stop()
        print(json.dumps({"rows": rows}))
        return 0
    make_clip()
    broker = services.mosquitto(WORK / "mosquitto").start()
    server = services.rtsp_server({f"m{i}": CLIP for i in range(MOUNTS)}, WORK)
    server.argv = pinned(0, server.argv)
    server.start()
    try:
        time.sleep(2)
        srv_a, t_a = cpu_seconds(server.proc.pid), time.time()
        print("xueliang pipeline (key frames, change gate, zone crops), edge on core 1:", flush=True)
        counts = [int(a) for a in os.environ.get("BENCH_COUNTS", "8,16,24,28,32,36,40,44,48,56,64").split(",")]
        n, xl = largest(lambda k: trial_xueliang(k, server.port, broker.port, server.proc.pid), counts)
        server_cpu = round((cpu_seconds(server.proc.pid) - srv_a) / (time.time() - t_a) * 100, 1)
        print("naive pipeline (OpenCV decodes every frame, detector on every 5th), on core 1:", flush=True)
        m, naive = largest(lambda k: trial_naive(k, server.port), [1, 2, 3, 4, 6, 8])
    finally:
        server.stop()
    try:
        rows = trial_rows(int(os.environ.get("BENCH_ROWS_N", "0")) or max(n, counts[0]), broker.port)
        litter = trial_litter(broker.port)
    finally:
        broker.stop()
    best = next((r for r in xl if r["n"] == n), xl[0])
    publish = sorted(best["publish_ms"]) or [0.0]
    summary = {
        "cameras_sustained": n, "naive_cameras_sustained": m, "ratio": round(n / m, 2) if m else None,
        "edge_cores": 1, "cameras_per_box_estimate": 2 * n,
        "cpu_per_camera_pct": best["cpu_per_camera"],
        "naive_cpu_per_camera_pct": next((r["cpu_per_camera"] for r in naive if r["n"] == m), naive[0]["cpu_per_camera"]),
        "server_cpu_pct_avg": server_cpu,
        "frame_to_publish_ms_p50": round(statistics.median(publish), 1),
        "frame_to_publish_ms_p99": round(publish[min(len(publish) - 1, int(len(publish) * 0.99))], 1),
        "max_start_lag_s": best["max_start_lag_s"], "all_online_s": best.get("all_online_s"),
        "stream": "1920x1080 25 fps H.264 ~4 Mb/s, key frame every 2 s",
        "rows": rows, "litter": litter,
    }
    print(f"xueliang: {n} cameras on one edge core ({summary['cpu_per_camera_pct']}% of a core each); "
          f"naive: {m}; ratio {summary['ratio']}; RTSP server used {server_cpu}% of core 0; with a litter zone "
          f"too: {litter['cameras_sustained']} cameras ({litter['cpu_per_camera_pct']}% each)")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
