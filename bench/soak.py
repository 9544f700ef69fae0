"""Soak probe: does a running edge box or gateway leak while its cameras and broker come and go?

Real parts, as in the field: Mosquitto, the RTSP test server (xueliang/rtsp_server.py), ``xueliang edge`` and
``xueliang gateway`` processes, for ``--minutes`` (default 6). The box watches four small cameras (160x120,
10 fps): one steady, one whose RTSP server is killed and started again every few seconds, one refusing
connections, and one whose sessions a proxy cuts a few seconds in (a stream that breaks mid-way); the broker goes
away for ``--broker-down`` seconds every ``--broker-every``. The gateway takes the box's messages and a steady
stream of made-up ones, a third of them bad (not JSON, not an incident, an unknown grid, from box names that change
each time: dead letters), and answers API reads all along. Every ``--sample`` seconds each process's open files
(/proc/PID/fd), threads (/proc/PID/task) and RSS are read, and the outbox file's size. Prints the curves (start,
middle, end, max) and a last JSON line; with ``--trace``, where the gateway's Python heap grew (tracemalloc). The
outbox's and the database's sizes count their write-ahead logs (the outbox's wraps at 64 pages, 256 KiB; SQLite's
default, the gateway's, at 4 MiB). The gateway's RSS is taken apart too: anonymous and file-backed pages
(/proc/PID/smaps_rollup), its SQLite connections (descriptors of the database file) and, from a thread inside it,
SQLite's own allocations, glibc's arenas, what they hold and what of that is free; at the end glibc is asked to give
its free memory back (malloc_trim) and the RSS read again. ``--gateway-only`` runs no box and no cameras (light on the
CPU; ``--broker-every 0`` keeps the broker up), ``--fixed-db`` sends only the first 40 incidents' events again once
recorded, so the database stops growing. Run under ``nice -n 10``; it is no part of ``make test``.

    nice -n 10 .venv/bin/python bench/soak.py --minutes 6
    nice -n 10 .venv/bin/python bench/soak.py --gateway-only --broker-every 0 --minutes 20 --sample 30 --rate 4

Figures of 2026-12-07 (2 cores shared with an evaluation), 8 min: the box at 15 files, 17-25 threads, RSS 245 MB
flat; before the decoder threads were freed with their read (edge/source.py ``_display_matrix``), 25-267 threads
and RSS 245 -> 296 MB in 6 min. The gateway at 15 files, 5 threads; its Python heap flat (49.9 -> 50.1 MB traced
over 5.5 min) while its RSS rose 89 -> 108 MB with its database (4.3 -> 6.9 MB, a case a second). That was
SQLite's memory (``--gateway-only``, 20 min, 4 messages and 2 reads a second): 0 -> 22.6 MB, RSS 89 -> 131 MB and
rising faster as the day's cases grew, the same with MALLOC_ARENA_MAX=2 (126 MB; 2 arenas against 6 hold 4 MB less
free), flat at 100 MB with ``--fixed-db``: each report read its cases with an IN of a parameter a case, a new
statement at each new count, and each connection kept its last 128 prepared. Read as one JSON parameter since
(``storage.among``), 14 min: SQLite 1.1 MB flat, RSS 89 -> 102.5 (7 min) -> 104 MB, against 120 MB before at 14 min.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from xueliang import services, wire  # noqa: E402
from xueliang.demo import write_configs  # noqa: E402

GRID = "HQ-DZG-10D-07"  # a grid of the demo city's tables
ZONE = {"id": "kerb", "types": ["illegal_parking"], "polygon": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]],
        "dwell_s": 30}


def clip(path: Path) -> Path:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
                    "-t", "10", "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-pix_fmt", "yuv420p",
                    str(path)], check=True)
    return path


# The gateway as ``xueliang gateway`` with a probe thread: each ``every`` seconds a JSON line of what its RSS is
# made of that /proc cannot say (SQLite's own malloc count, glibc's arenas and their free bytes); SIGUSR2 hands
# glibc's free memory back (malloc_trim), to tell memory held from memory in use; with ``--trace`` tracemalloc, a
# snapshot of the Python heap written at each SIGUSR1
WRAPPED = """
import ctypes, json, re, signal, sys, threading, time, tracemalloc
base, every, trace = sys.argv.pop(1), float(sys.argv.pop(1)), sys.argv.pop(1) == "trace"
sys.argv[0] = "xueliang"
if trace:
    tracemalloc.start(8)
taken = []
def snap(*_):
    taken.append(1)
    tracemalloc.take_snapshot().dump(f"{base}.{len(taken)}")
signal.signal(signal.SIGUSR1, snap)
libc, sqlite = ctypes.CDLL("libc.so.6"), ctypes.CDLL("libsqlite3.so.0")
sqlite.sqlite3_memory_used.restype = sqlite.sqlite3_memory_highwater.restype = ctypes.c_int64
libc.fopen.restype = ctypes.c_void_p
signal.signal(signal.SIGUSR2, lambda *_: libc.malloc_trim(0))
def probe():
    while True:
        fp = libc.fopen(f"{base}.malloc.xml".encode(), b"w")
        libc.malloc_info(0, ctypes.c_void_p(fp))
        libc.fclose(ctypes.c_void_p(fp))
        xml = open(f"{base}.malloc.xml").read()
        tail = xml[xml.rindex("</heap>"):]  # the totals over all arenas
        total = lambda kind, t: sum(int(v) for v in re.findall(rf'<{kind} type="{t}" count="\\d+" size="(\\d+)"', tail))
        line = {"t": time.time(), "sqlite_mb": sqlite.sqlite3_memory_used() / 2**20,
                "sqlite_high_mb": sqlite.sqlite3_memory_highwater(0) / 2**20, "arenas": xml.count("<heap nr="),
                "malloc_system_mb": int(re.search(r'<system type="current" size="(\\d+)"', tail)[1]) / 2**20,
                "malloc_free_mb": (total("total", "fast") + total("total", "rest")) / 2**20,
                "mmapped_mb": int(re.search(r'<total type="mmap" count="\\d+" size="(\\d+)"', tail)[1]) / 2**20}
        with open(f"{base}.probe", "a") as out:
            out.write(json.dumps(line) + "\\n")
        time.sleep(every)
threading.Thread(target=probe, daemon=True).start()
from xueliang.cli import main
sys.exit(main())
"""


def heap_growth(first: Path, last: Path, top: int = 8) -> list[str]:
    """Where the traced gateway's Python heap grew most between two snapshots."""
    import tracemalloc

    old, new = (tracemalloc.Snapshot.load(str(p)) for p in (first, last))
    stats = new.compare_to(old, "traceback")
    lines = [f"{old_total / 2**20:.1f} -> {new_total / 2**20:.1f} MB traced" for old_total, new_total in
             [(sum(s.size for s in old.statistics("filename")), sum(s.size for s in new.statistics("filename")))]]
    for stat in stats[:top]:
        frame = next((f for f in stat.traceback if "/xueliang/" in f.filename or "/gateway/" in f.filename
                      or "/edge/" in f.filename), stat.traceback[0])
        lines.append(f"{stat.size_diff / 1024:+.0f} kB ({stat.count_diff:+d} blocks) at "
                     f"{frame.filename}:{frame.lineno}")
    return lines


def proc_figures(pid: int) -> dict:
    """Open files, threads and RSS (MB) of a process, or {} once it is gone."""
    try:
        rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                   if line.startswith("VmRSS:"))
        return {"fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": len(os.listdir(f"/proc/{pid}/task")),
                "rss_mb": round(rss / 1024, 1)}
    except (OSError, StopIteration):
        return {}


def thread_names(pid: int, top: int = 4) -> str:
    """The most common thread names of a process (``comm``), for where threads pile up."""
    names: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        names[name] = names.get(name, 0) + 1
    return " ".join(f"{n}x{c}" for n, c in sorted(names.items(), key=lambda kv: -kv[1])[:top])


def file_kb(*paths: Path) -> float:
    return round(sum(p.stat().st_size for p in paths if p.exists()) / 1024, 1)


class CuttingProxy:
    """127.0.0.1:``port`` in front of an RTSP server, each session cut ``cut_s`` (random in the range) seconds in."""

    def __init__(self, upstream: int, cut_s: tuple[float, float] = (3.0, 7.0)):
        self.upstream, self.cut_s = upstream, cut_s
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(client,), daemon=True).start()

    def _session(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream), timeout=2)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        pair = (client, upstream)

        def pipe(a, b):
            try:
                while data := a.recv(65536):
                    b.sendall(data)
            except OSError:
                pass

        for a, b in (pair, pair[::-1]):
            threading.Thread(target=pipe, args=(a, b), daemon=True).start()
        time.sleep(random.uniform(*self.cut_s))
        for s in pair:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.srv.close()


def incident(box: str, camera: str, incident_id: str, seq: int, state: str, i: int, grid: str = GRID) -> bytes:
    now = wire.iso(time.time())
    m = {"schema_version": 1, "incident_id": incident_id, "seq": seq, "state": state, "type": "illegal_parking",
         "box": box, "camera": camera, "zone": "kerb", "grid": grid,
         "location": {"lat": 39.0 + (i % 500) * 0.002, "lon": 117.0 + (i // 500 % 500) * 0.002},
         "started_at": now, "observed_at": now, "ended_at": now if state == "end" else None,
         "end_reason": "left" if state == "end" else None, "confidence": 0.8, "bbox": [0.1, 0.1, 0.2, 0.2],
         "track_id": 1, "attributes": {"dwell_s": 30, "label": "car"}, "evidence": None,
         "model": {"name": "soak", "version": "1"}}
    return json.dumps(m).encode()


class Traffic:
    """Made-up messages to the gateway at ``rate``/s, a third of them bad, and API reads at ``reads``/s."""

    def __init__(self, broker_port: int, http_port: int, rate: float, reads: float, token: str, fixed: bool = False):
        self.broker_port, self.http_port, self.rate, self.reads, self.token = broker_port, http_port, rate, reads, token
        self.fixed = fixed  # once 40 incidents are recorded, only their events again: the database no longer grows
        self.stop = threading.Event()
        self.sent = self.bad = self.again = self.read_ok = 0
        self.read_failed: dict[str, int] = {}  # "path: why" -> how many

    def start(self) -> None:
        threading.Thread(target=self._send, daemon=True).start()
        threading.Thread(target=self._read, daemon=True).start()

    def _send(self) -> None:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="soak-traffic", protocol=mqtt.MQTTv5)
        client.reconnect_delay_set(0.5, 2)
        client.connect_async("127.0.0.1", self.broker_port)
        client.loop_start()
        live: list[list] = []  # [incident_id, seq]: 40 open at a time, each ended after a few updates
        recorded: list[bytes] = []  # with ``fixed``, the events sent, sent again once there are 40 incidents' worth
        i = 0
        while not self.stop.wait(1 / self.rate):
            i += 1
            kind = i % 6
            if self.fixed and len(recorded) >= 200:
                self.again += 1
                topic, body = wire.incident_topic("soak-fake", "cam"), random.choice(recorded)
            elif kind in (0, 1, 2, 3) or self.fixed:
                if len(live) < 40:
                    live.append([uuid.uuid4().hex, 1])
                    item = live[-1]
                    topic, body = wire.incident_topic("soak-fake", "cam"), incident("soak-fake", "cam", item[0], 1,
                                                                                   "start", i)
                else:
                    item = random.choice(live)
                    item[1] += 1
                    state = "end" if item[1] >= 5 else "update"
                    if state == "end":
                        live.remove(item)
                    topic, body = wire.incident_topic("soak-fake", "cam"), incident("soak-fake", "cam", item[0],
                                                                                   item[1], state, i)
            else:
                self.bad += 1
                rogue = f"rogue-{i}"  # a box name that changes each time
                topic, body = random.choice([
                    (wire.incident_topic(rogue, "cam"), b"not json {"),
                    (wire.incident_topic(rogue, "cam"), b'{"schema_version": 1}'),
                    (wire.incident_topic(rogue, f"cam-{i}"), incident(rogue, f"cam-{i}", uuid.uuid4().hex, 1,
                                                                       "start", i, grid="NO-SUCH-GRID")),
                    (wire.evidence_topic(rogue, "cam", uuid.uuid4().hex), b"\xff\xd8 not a picture"),
                    (wire.status_topic(rogue), b'{"box": "x"}'),
                ])
            if self.fixed and len(recorded) < 200:
                recorded.append(body)
            client.publish(topic, body, qos=1)
            self.sent += 1
        client.loop_stop()
        client.disconnect()

    def _read(self) -> None:
        paths = ["/cases?limit=50", "/health", "/boxes", "/cases?state=dispatched&limit=20", "/reports/daily",
                 "/metrics", "/ui/boxes"]
        while not self.stop.wait(1 / self.reads):
            path = random.choice(paths)
            ask = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}",
                                         headers={"Authorization": f"Bearer {self.token}"})
            try:
                with urllib.request.urlopen(ask, timeout=5) as r:
                    r.read()
                self.read_ok += 1
            except OSError as exc:
                why = f"{path}: {getattr(exc, 'code', None) or type(exc).__name__}"
                self.read_failed[why] = self.read_failed.get(why, 0) + 1


def curve(samples: list[dict], key: str) -> tuple:
    values = [s[key] for s in samples if key in s]
    if not values:
        return ()
    return values[0], values[len(values) // 2], values[-1], max(values)


def gateway_memory(pid: int, database: Path, probe: Path) -> dict:
    """What the gateway's RSS is made of (MB): anonymous and file-backed pages (/proc/PID/smaps_rollup), its
    SQLite connections (the database file's descriptors), and the probe's last line: SQLite's own allocations,
    glibc's arenas, what they hold from the system and what of it is free."""
    try:
        rollup = {line.split(":")[0]: int(line.split()[1]) for line in
                  Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]}
        connections = sum(1 for fd in Path(f"/proc/{pid}/fd").iterdir() if os.readlink(fd) == str(database))
    except OSError:
        return {}
    last = probe.read_text().splitlines()[-1:] if probe.exists() else []
    inside = {k: round(v, 1) for k, v in json.loads(last[0]).items() if k != "t"} if last else {}
    return {"anon_mb": round(rollup["Anonymous"] / 1024, 1),
            "file_mb": round((rollup["Rss"] - rollup["Anonymous"]) / 1024, 1), "sqlite_conns": connections, **inside}


MEMORY_KEYS = ["anon_mb", "file_mb", "sqlite_conns", "sqlite_mb", "arenas", "malloc_system_mb", "malloc_free_mb",
               "mmapped_mb"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=6.0)
    p.add_argument("--sample", type=float, default=15.0, help="seconds between samples")
    p.add_argument("--flap", type=float, default=5.0, help="the flapping camera's server is up this long, "
                   "then down 1 s")
    p.add_argument("--broker-every", type=float, default=90.0, help="seconds between broker outages (0: none)")
    p.add_argument("--broker-down", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=8.0, help="made-up messages a second to the gateway")
    p.add_argument("--reads", type=float, default=2.0, help="API reads a second")
    p.add_argument("--gateway-only", action="store_true", help="no box and no cameras: the gateway, its broker, the "
                   "made-up messages and the API reads (light on the CPU)")
    p.add_argument("--fixed-db", action="store_true", help="the made-up messages, once 40 incidents are recorded, "
                   "only those again (duplicates, no bad ones): the database stops growing")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, outbox, database)")
    p.add_argument("--trace", action="store_true", help="run the gateway with tracemalloc (slower) and print where "
                   "its Python heap grew from the second sample to the last")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="xueliang-soak-"))
    broker = services.mosquitto(work / "mosquitto").start()
    http_port = services.free_port()
    edge = steady = flapping = proxy = None
    cameras = []
    if not args.gateway_only:
        video = clip(work / "small.mp4")
        steady = services.rtsp_server({"cam": video}, work / "steady").start()
        flapping = services.rtsp_server({"cam": video}, work / "flapping").start()
        proxy = CuttingProxy(steady.port)
        refused = services.free_port()
        cameras = [{"id": cid, "url": url, "grid": GRID, "location": {"lat": 39.1 + k * 0.01, "lon": 117.1},
                    "open_timeout_s": 3, "read_timeout_s": 3, "zones": [ZONE]}
                   for k, (cid, url) in enumerate([("steady", f"rtsp://127.0.0.1:{steady.port}/cam"),
                                                   ("flapping", f"rtsp://127.0.0.1:{flapping.port}/cam"),
                                                   ("refused", f"rtsp://127.0.0.1:{refused}/cam"),
                                                   ("breaking", f"rtsp://127.0.0.1:{proxy.port}/cam")])]
    (work / "data").mkdir()
    edge_cfg, gateway_cfg = write_configs(work / "data", broker.port, http_port, cameras, box="soak-box")
    cfg = yaml.safe_load(edge_cfg.read_text())
    edge_cfg.write_text(yaml.safe_dump({**cfg, "heartbeat_s": 2}))
    token = subprocess.run([sys.executable, "-m", "xueliang", "token", "--config", str(gateway_cfg), "--name", "soak",
                            "--role", "admin"], capture_output=True, text=True, check=True).stdout.split()[-1]
    gateway = subprocess.Popen([sys.executable, "-c", WRAPPED, str(work / "heap"), str(args.sample),
                                "trace" if args.trace else "-", "gateway", "--config", str(gateway_cfg)],
                               stdout=open(work / "gateway.log", "ab"), stderr=subprocess.STDOUT,
                               start_new_session=True, cwd=REPO)
    services.wait_port(http_port, gateway, "gateway", timeout=60)
    if not args.gateway_only:
        edge = services.xueliang(["edge", "--config", str(edge_cfg)], work / "edge.log")
    outbox = work / "data" / "edge" / "soak-box.outbox.sqlite"
    database = (work / "data" / "gateway" / "gateway.sqlite").resolve()
    traffic = Traffic(broker.port, http_port, args.rate, args.reads, token, fixed=args.fixed_db)
    traffic.start()
    stop = threading.Event()
    events = {"flaps": 0, "broker_outages": 0}

    def flap():
        while not stop.wait(args.flap):
            flapping.stop()
            if stop.wait(1.0):
                return
            flapping.start(timeout=20)
            events["flaps"] += 1

    def broker_flap():
        while not stop.wait(args.broker_every):
            broker.stop()
            stop.wait(args.broker_down)
            broker.start(timeout=20)
            events["broker_outages"] += 1

    for f, wanted in ((flap, not args.gateway_only), (broker_flap, args.broker_every > 0)):
        if wanted:
            threading.Thread(target=f, daemon=True).start()

    samples = []
    began = time.monotonic()
    print(f"soak: {args.minutes:g} min, a sample every {args.sample:g} s; work in {work}", flush=True)
    print(f"{'t_s':>5} | {'edge fds':>8} {'thr':>4} {'rss MB':>7} {'outbox kB':>9} | {'gw fds':>6} {'thr':>4} "
          f"{'rss MB':>7} {'db kB':>8} | {'anon':>5} {'file':>5} {'conns':>5} {'sqlite':>6} {'arenas':>6} "
          f"{'malloc':>6} {'free':>5} {'mmap':>5}", flush=True)

    def sample(t: int) -> dict:
        e = proc_figures(edge.pid) if edge else {}
        g = proc_figures(gateway.pid)
        m = gateway_memory(gateway.pid, database, work / "heap.probe") if g else {}
        s = {"t_s": t, **{f"edge_{k}": v for k, v in e.items()}, **{f"gw_{k}": v for k, v in g.items()},
             "outbox_kb": file_kb(outbox, Path(f"{outbox}-wal")),
             "db_kb": file_kb(database, Path(f"{database}-wal")), **{f"gw_{k}": v for k, v in m.items()}}
        print(f"{t:>5} | {e.get('fds', '-'):>8} {e.get('threads', '-'):>4} {e.get('rss_mb', '-'):>7} "
              f"{s['outbox_kb']:>9} | {g.get('fds', '-'):>6} {g.get('threads', '-'):>4} {g.get('rss_mb', '-'):>7} "
              f"{s['db_kb']:>8} | "
              + " ".join(f"{m.get(k, '-'):>{w}}" for k, w in zip(MEMORY_KEYS, (5, 5, 5, 6, 6, 6, 5, 5)))
              + (f" | {thread_names(edge.pid)}" if edge else ""), flush=True)
        return s

    trimmed = {}
    try:
        while True:
            s = sample(round(time.monotonic() - began))
            samples.append(s)
            if args.trace and "gw_rss_mb" in s and len(samples) == 2:
                gateway.send_signal(signal.SIGUSR1)
            ended = (edge and "edge_rss_mb" not in s) or "gw_rss_mb" not in s
            if ended or time.monotonic() - began >= args.minutes * 60:
                if "gw_rss_mb" in s:
                    if args.trace:
                        gateway.send_signal(signal.SIGUSR1)
                        time.sleep(5)
                    gateway.send_signal(signal.SIGUSR2)  # malloc_trim: what of the RSS glibc held free
                    time.sleep(max(args.sample, 2) + 1)
                    trimmed = {"rss_mb": proc_figures(gateway.pid).get("rss_mb"),
                               **gateway_memory(gateway.pid, database, work / "heap.probe")}
                break
            time.sleep(args.sample)
    finally:
        stop.set()
        traffic.stop.set()
        alive = {"edge": edge.poll() is None if edge else None, "gateway": gateway.poll() is None}
        for proc in (edge, gateway):
            if proc is None:
                continue
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if proxy:
            proxy.close()
        for service in (flapping, steady, broker):
            if service:
                service.stop()
    keys = ["edge_fds", "edge_threads", "edge_rss_mb", "outbox_kb", "gw_fds", "gw_threads", "gw_rss_mb", "db_kb",
            *(f"gw_{k}" for k in MEMORY_KEYS)]
    print("(start, middle, end, max):")
    for key in keys:
        print(f"  {key:>20}: {curve(samples, key)}")
    print(f"  the gateway after malloc_trim: {trimmed}")
    print(f"  events: {events}; traffic: {traffic.sent} sent ({traffic.bad} bad, {traffic.again} again), reads "
          f"{traffic.read_ok} ok, failed {traffic.read_failed}; alive at the end: {alive}")
    tracebacks = {name: (work / f"{name}.log").read_text(errors="replace").count("Traceback")
                  for name in ("edge", "gateway") if (work / f"{name}.log").exists()}
    print(f"  tracebacks in the logs: {tracebacks}")
    heaps = sorted((h for h in work.glob("heap.*") if h.suffix[1:].isdigit()), key=lambda h: int(h.suffix[1:]))
    if len(heaps) >= 2:
        print("  the gateway's Python heap, from the second sample to the last:")
        for line in heap_growth(heaps[0], heaps[-1]):
            print(f"    {line}")
    print(json.dumps({"minutes": args.minutes, **{k: curve(samples, k) for k in keys}, **events,
                      "trimmed": trimmed, "sent": traffic.sent, "bad": traffic.bad, "again": traffic.again,
                      "reads_ok": traffic.read_ok, "reads_failed": traffic.read_failed, "alive": alive,
                      "tracebacks": tracebacks, "work": str(work) if args.keep else None}))
    if not args.keep:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
