"""Whether a litter model candidate ships: HISTORY.md's rule, read from two ``make eval`` summaries.

The rule (HISTORY.md, "A fourth and fifth candidate, on the GPU"), against the shipped file's figures
from the same machine's sets:

1. real clean footage dispatches nothing, plain and swayed; holds at most 10 (swayed 6); none later
   than the camera's start;
2. over the five independent sets (cross, other scenes, blind, swayed, knocked) right-typed
   dispatched rises and the share of dispatched incidents that are right-typed is at least the
   shipped file's;
3. no set loses more than one right-typed dispatched object;
4. every set's latest end within clear + 10 s, and no set ends more incidents while their object
   lay there than the shipped file;
5. on blind and mesh, right-typed dispatched does not fall and false dispatched rises by at most one.

    .venv/bin/python models/litter/judge.py SHIPPED.log CANDIDATE.log

``--rule edge`` reads the rule for a change of the edge's own logic judged with the same model file
(HISTORY.md, "The left-object check's ghosts"), against the same file's figures before the change:

E1. real clean footage dispatches nothing, plain and swayed; holds no more, and no more later than
    the camera's start, than before;
E2. on every independent set (the five and mesh) right-typed dispatched does not fall and false
    dispatched does not rise;
E3. no set ends more incidents while their object lay there, and each set's latest end is within
    clear + 10 s or no later than before;
E4. no object dispatched with its type in both runs starts more than 2 s later than before (an object
    newly found is a gain and does not count here, however late: its start is printed beside, and
    counts against the 6 s goal in CARD.md); where a summary has no starts by object (written before
    2026-12-05), no set's latest start is more than 2 s later than before.

Each argument is ``evaluate.py``'s output (its last line is the JSON summary). Prints one line per
condition and a final JSON line; exits 0 when every condition is met, 1 when one is not.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

FIVE = ("cross", "cross_other", "blind", "cross_sway", "cross_knock")
UNSEEN_IN_KIND = ("blind", "mesh")
CLEAR_S, END_AFTER_CLEAR_S = 5.0, 10.0


def summary(text: str) -> dict:
    """The JSON summary: the last line of ``evaluate.py``'s output that parses as an object."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON summary line: is this evaluate.py's whole output?")


def _sets(s: dict) -> dict:
    return s["incidents"]


def _real(s: dict) -> tuple:
    """The real clean footage's figures: dispatched, held, held later than the camera's start; the same
    for the swayed replay (None where it was not run)."""
    return (s["false_incidents"], s["held_for_review_on_clean"], s["held_for_review_later"],
            s.get("false_incidents_swayed"), s.get("held_for_review_swayed"), s.get("held_for_review_later_swayed"))


def _share(right: int, dispatched: int) -> float:
    return right / dispatched if dispatched else 0.0


def judge(shipped: dict, candidate: dict) -> list[tuple[str, bool, str]]:
    """(condition, met, the figures that decide it) for each of the rule's five conditions. A file
    judged against itself fails (2): right-typed dispatched must rise."""
    out = []
    c = candidate
    real = _real(c)
    ok1 = (real[0] == 0 and real[1] <= 10 and real[2] == 0 and real[3] == 0 and real[4] is not None
           and real[4] <= 6 and (real[5] or 0) == 0)
    out.append(("1 real footage", ok1, f"dispatched {real[0]}, held {real[1]} ({real[2]} later); swayed: "
                                       f"dispatched {real[3]}, held {real[4]} ({real[5]} later)"))

    def five(s: dict) -> tuple[int, int]:
        right = sum(_sets(s)[g]["right_typed_dispatched"] for g in FIVE)
        return right, sum(_sets(s)[g]["dispatched"] for g in FIVE)

    (rs, ds), (rc, dc) = five(shipped), five(c)
    ok2 = rc > rs and _share(rc, dc) >= _share(rs, ds)
    out.append(("2 five sets", ok2, f"right-typed dispatched {rs} -> {rc}; share right {rs}/{ds} = "
                                    f"{_share(rs, ds):.3f} -> {rc}/{dc} = {_share(rc, dc):.3f}"))

    drops = {g: _sets(shipped)[g]["right_typed_dispatched"] - _sets(c)[g]["right_typed_dispatched"]
             for g in _sets(shipped) if g != "own" and g in _sets(c)}
    out.append(("3 no set loses more than one", all(d <= 1 for d in drops.values()),
                ", ".join(f"{g} {-d:+d}" for g, d in drops.items())))

    late = {g: i["end_delay_max_s"] for g, i in _sets(c).items()
            if g != "own" and i["end_delay_max_s"] is not None and i["end_delay_max_s"] > CLEAR_S + END_AFTER_CLEAR_S}
    early = {g: (_sets(shipped)[g]["ended_early"], i["ended_early"]) for g, i in _sets(c).items()
             if g != "own" and g in _sets(shipped) and i["ended_early"] > _sets(shipped)[g]["ended_early"]}
    out.append(("4 ends", not late and not early,
                f"later than clear + {END_AFTER_CLEAR_S:.0f} s: {late or 'none'}; more ended early: {early or 'none'}"))

    moves = {g: (_sets(shipped)[g]["right_typed_dispatched"], _sets(c)[g]["right_typed_dispatched"],
                 _sets(shipped)[g]["false_dispatched"], _sets(c)[g]["false_dispatched"])
             for g in UNSEEN_IN_KIND if g in _sets(shipped) and g in _sets(c)}
    ok5 = len(moves) == len(UNSEEN_IN_KIND) and all(rc_ >= rs_ and fc - fs <= 1 for rs_, rc_, fs, fc in moves.values())
    out.append(("5 blind and mesh", ok5, ", ".join(f"{g}: right-typed {a} -> {b}, false {x} -> {y}"
                                                   for g, (a, b, x, y) in moves.items()) or "missing"))
    return out


INDEPENDENT = FIVE + ("mesh",)
START_SLACK_S = 2.0


def judge_edge(before: dict, after: dict) -> list[tuple[str, bool, str]]:
    """(condition, met, the figures that decide it) for the edge rule's four conditions (module docstring)."""
    b, a = _real(before), _real(after)
    held = (1, 2, 4, 5)  # held, held later; swayed: the same
    ok1 = a[0] == 0 and a[3] == 0 and all(b[i] is not None and a[i] is not None and a[i] <= b[i] for i in held)
    out = [("E1 real footage", ok1, f"dispatched {a[0]}, swayed {a[3]}; held {b[1]} -> {a[1]}, "
                                    f"swayed {b[4]} -> {a[4]}; later {b[2]} -> {a[2]}, swayed {b[5]} -> {a[5]}")]
    pairs = {g: (_sets(before)[g], _sets(after)[g]) for g in INDEPENDENT if g in _sets(before) and g in _sets(after)}
    complete = len(pairs) == len(INDEPENDENT)
    ok2 = complete and all(y["right_typed_dispatched"] >= x["right_typed_dispatched"]
                           and y["false_dispatched"] <= x["false_dispatched"] for x, y in pairs.values())
    out.append(("E2 every set", ok2, ", ".join(
        f"{g}: right-typed {x['right_typed_dispatched']} -> {y['right_typed_dispatched']}, "
        f"false {x['false_dispatched']} -> {y['false_dispatched']}" for g, (x, y) in pairs.items()) or "missing"))

    def later(x: float | None, y: float | None, slack: float) -> bool:
        return y is not None and (x is None or y > x + slack)
    too_late = CLEAR_S + END_AFTER_CLEAR_S
    ok3 = complete and all(y["ended_early"] <= x["ended_early"] for x, y in pairs.values()) and not any(
        later(x["end_delay_max_s"], y["end_delay_max_s"], 0.0) and y["end_delay_max_s"] > too_late
        for x, y in pairs.values())
    out.append(("E3 ends", ok3, ", ".join(f"{g}: early {x['ended_early']} -> {y['ended_early']}, latest end "
                                          f"{x['end_delay_max_s']} -> {y['end_delay_max_s']} s"
                                          for g, (x, y) in pairs.items())))
    by_object = complete and all("object_starts" in x and "object_starts" in y for x, y in pairs.values())
    if not by_object:
        ok4 = complete and not any(later(x.get("start_delay_max_s"), y.get("start_delay_max_s"), START_SLACK_S)
                                   for x, y in pairs.values())
        out.append(("E4 starts", ok4, "by set (no starts by object): " + ", ".join(
            f"{g}: latest start {x.get('start_delay_max_s')} -> {y.get('start_delay_max_s')} s"
            for g, (x, y) in pairs.items())))
        return out
    moved, found = {}, {}  # by set: {object: (start before, start now)} where it moved; {object: start} if new
    for g, (x, y) in pairs.items():
        was, now = x["object_starts"], y["object_starts"]
        moved[g] = {o: (was[o], d) for o, d in now.items() if o in was and d != was[o]}
        found[g] = {o: d for o, d in now.items() if o not in was}
    ok4 = not any(d > w + START_SLACK_S for g in moved for w, d in moved[g].values())

    def starts(g: str) -> str:
        text = "; ".join(f"{o} {w:+.1f} -> {d:+.1f} s" for o, (w, d) in sorted(moved[g].items())) or "none moved"
        return text + "".join(f"; newly found {o} {d:+.1f} s" for o, d in sorted(found[g].items()))
    out.append(("E4 starts", ok4, ", ".join(f"{g}: {starts(g)}" for g in pairs)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("shipped", type=Path, help="evaluate.py's output for the shipped file")
    ap.add_argument("candidate", type=Path, help="evaluate.py's output for the candidate")
    ap.add_argument("--rule", choices=("model", "edge"), default="model",
                    help="model: a candidate file against the shipped one; edge: the edge's logic changed, same file")
    a = ap.parse_args()
    rule = judge if a.rule == "model" else judge_edge
    verdict = rule(summary(a.shipped.read_text()), summary(a.candidate.read_text()))
    for name, ok, why in verdict:
        print(f"({name}) {'met' if ok else 'NOT MET'}: {why}")
    ships = all(ok for _, ok, _ in verdict)
    print(json.dumps({"ships": ships, "conditions": {name: ok for name, ok, _ in verdict}}))
    sys.exit(0 if ships else 1)


if __name__ == "__main__":
    main()
