"""The independent parking set: the real edge pipeline on ``models/parkgen.py``'s composed clips, scored against
their truth. An outsider's set (another camera, other zones, other vehicles, a generator written before the rules
were read); report it beside ``eval_parking.py``'s figures, never tune on it.

Clips are made under ``data/eval/parkgen`` when absent (about 4 min on 2 cores) from footage the project's fetch
scripts bring (``models/litter/fetch_clean_footage.sh``, ``models/litter/fetch_backgrounds.sh``). Each is replayed
with ``edge.replay.replay`` and the default edge config but its zones and their dwell (20 s). Incidents are
matched to the truth's by zone, time (started while the vehicle stood there) and place (the bbox's bottom centre
nearest the vehicle's stop). Per clip: start error (``started_at`` less arrive + dwell), end error (a ``left``
end's ``ended_at`` less the truth's leave), missed incidents, false incidents (matching no vehicle's stay, or a
second one for a vehicle), false ``left`` ends (a ``left`` end more than 3 s before its vehicle left, or of one that
never left) and ``left`` ends missing where one is due. A line per clip and a last JSON line.

``--set parkgen2`` scores the second outsider's set (``models/parkgen2.py``, the motorway ground, its own zone and
dwell of 25 s) the same way, its clips under ``data/eval/parkgen2``.

Usage: ``python models/eval_parkgen.py [CLIP ...] [--set parkgen|parkgen2] [--clips-dir DIR]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.config import parse_config  # noqa: E402
from edge.replay import replay  # noqa: E402
from models import parkgen, parkgen2  # noqa: E402
from xueliang.wire import parse_time  # noqa: E402

START = "2026-03-02T08:00:00Z"
EARLY_LEFT_S = 3.0  # a `left` end this much before the vehicle drove off is a false one (it was still there)
SETS = {"parkgen": parkgen, "parkgen2": parkgen2}  # the generators of the independent sets


def camera(clip: Path, truth: dict) -> dict:
    zones = [{"id": z, "types": ["illegal_parking"], "polygon": poly, "dwell_s": truth["dwell_s"]}
             for z, poly in truth["zones"].items()]
    return {"id": "junction", "url": str(clip), "grid": "G1", "location": {"lat": 39.1, "lon": 117.1}, "zones": zones}


def incidents(messages: list[dict]) -> list[dict]:
    """One record per incident id: zone, started_at, anchor (bbox bottom centre), end reason and time."""
    out: dict[str, dict] = {}
    for m in messages:
        if m["type"] != "illegal_parking":
            continue
        i = out.setdefault(m["incident_id"], {"id": m["incident_id"], "zone": m["zone"], "started_at": None,
                                              "anchor": None, "end_reason": None, "ended_at": None,
                                              "label": m["attributes"].get("label")})
        if m["state"] == "start":
            x1, _, x2, y2 = m["bbox"]
            i["started_at"], i["anchor"] = m["started_at"], ((x1 + x2) / 2, y2)
        elif m["state"] == "end":
            i["end_reason"], i["ended_at"] = m["end_reason"], m["ended_at"]
    return [i for i in out.values() if i["started_at"] is not None]


def score(seen: list[dict], truth: dict) -> dict:
    """Matches the incidents seen to the truth's and counts what went wrong (pure: times from the clip's start)."""
    due = truth["incidents"]
    stops = {(v["zone"], v["arrive"]): v for v in truth["vehicles"]}
    free = sorted(seen, key=lambda i: i["started_at"])
    rows = []
    for d in sorted(due, key=lambda d: d["start_due"]):
        v = stops[(d["zone"], d["arrive"])]
        until = (d["left_at"] if d["left_at"] is not None else truth["seconds"]) + 1.0
        cands = [i for i in free if i["zone"] == d["zone"] and d["arrive"] <= i["started_at"] <= until]
        if not cands:
            rows.append({"start_due": d["start_due"], "start_error_s": None, "missed": True})
            continue

        def cost(i: dict) -> float:
            dx, dy = i["anchor"][0] - v["stop"][0], i["anchor"][1] - v["stop"][1]
            return 60.0 * (dx * dx + dy * dy) ** 0.5 + abs(i["started_at"] - d["start_due"])

        best = min(cands, key=cost)
        free.remove(best)
        row = {"start_due": d["start_due"], "start_error_s": round(best["started_at"] - d["start_due"], 2),
               "missed": False, "end_reason": best["end_reason"], "label": best["label"]}
        if best["end_reason"] == "left":
            if d["left_at"] is None or best["ended_at"] < d["left_at"] - EARLY_LEFT_S:
                row["false_left_at"] = best["ended_at"]
            else:
                row["end_error_s"] = round(best["ended_at"] - d["left_at"], 2)
        elif d["left_at"] is not None:
            row["left_missing"] = True
        rows.append(row)
    starts = [e["start_error_s"] for e in rows if e["start_error_s"] is not None]
    ends = [e["end_error_s"] for e in rows if "end_error_s" in e]
    return {
        "due": len(due), "start_error_s": starts, "end_error_s": ends,
        "missed": sum(e["missed"] for e in rows),
        "false_incidents": len(free),
        "false_incident_at": [[i["zone"], i["started_at"], [round(a, 3) for a in i["anchor"]]] for i in free],
        "false_left": sum("false_left_at" in e for e in rows),
        "false_left_at": [e["false_left_at"] for e in rows if "false_left_at" in e],
        "left_missing": sum(bool(e.get("left_missing")) for e in rows),
        "rows": rows,
    }


def run_clip(clip: Path, work: Path) -> dict:
    truth = json.loads(clip.with_suffix("").with_suffix(".truth.json").read_text())
    config = parse_config({"box": "eval", "cameras": [camera(clip, truth)], "data_dir": str(work / clip.stem)})
    t0 = parse_time(START)
    started = time.process_time()
    messages = []
    for out in replay(config, "junction", str(clip), t0):
        m = dict(out.message)
        for k in ("started_at", "observed_at", "ended_at"):
            if m[k] is not None:
                m[k] = round(parse_time(m[k]) - t0, 3)
        messages.append(m)
    result = score(incidents(messages), truth)
    result["cpu_s"] = round(time.process_time() - started, 1)
    return result


def ensure_clips(folder: Path, names: list[str], gen=parkgen) -> None:
    missing = [n for n in names if not (folder / f"{n}.mp4").exists() or not (folder / f"{n}.truth.json").exists()]
    if missing:
        print(f"{gen.__name__.split('.')[-1]}: making {len(missing)} clips in {folder}", file=sys.stderr, flush=True)
        if gen.main(["--out", str(folder), "--only", ",".join(missing)]) != 0:
            raise SystemExit(2)


def fmt(x: float | None) -> str:
    return "missed" if x is None else f"{x:+.1f}s"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="*", help="default: all of the set's scenes")
    ap.add_argument("--set", choices=sorted(SETS), default="parkgen", help="which independent set (default parkgen)")
    ap.add_argument("--clips-dir", type=Path, help="default: data/eval/SET")
    args = ap.parse_args(argv)
    gen = SETS[args.set]
    clips_dir = args.clips_dir or gen.ROOT / "data/eval" / args.set
    names = args.clips or list(gen.SCENES)
    unknown = [n for n in names if n not in gen.SCENES]
    if unknown:
        ap.error(f"no clip {unknown} in set {args.set}; known: {list(gen.SCENES)}")
    ensure_clips(clips_dir, names, gen)
    results = {}
    with tempfile.TemporaryDirectory(prefix="xl-parkgen-") as tmp:
        for name in names:
            r = results[name] = run_clip(clips_dir / f"{name}.mp4", Path(tmp))
            starts = ", ".join(fmt(row["start_error_s"]) for row in r["rows"]) or "none due"
            ends = ", ".join(fmt(e) for e in r["end_error_s"]) or "-"
            print(f"{name:>16}: start {starts}; left end {ends}; missed {r['missed']}, false incidents "
                  f"{r['false_incidents']} {r['false_incident_at'] or ''}, false left {r['false_left']} "
                  f"{r['false_left_at'] or ''}, left missing {r['left_missing']} ({r['cpu_s']} s CPU)", flush=True)
    starts = [e for r in results.values() for e in r["start_error_s"]]
    ends = [e for r in results.values() for e in r["end_error_s"]]
    summary = {
        "suite": args.set, "clips": len(results), "incidents_due": sum(r["due"] for r in results.values()),
        "missed": sum(r["missed"] for r in results.values()),
        "false_incidents": sum(r["false_incidents"] for r in results.values()),
        "false_left": sum(r["false_left"] for r in results.values()),
        "left_missing": sum(r["left_missing"] for r in results.values()),
        "worst_start_error_s": max((abs(e) for e in starts), default=None),
        "worst_end_error_s": max((abs(e) for e in ends), default=None),
        "per_clip": {n: {k: v for k, v in r.items() if k != "rows"} for n, r in results.items()},
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
