"""models/litter/judge.py: HISTORY.md's keep-or-refuse rules, read from two ``make eval`` summaries (pure logic)."""
import copy
import json

import pytest

from models.litter.judge import judge, judge_edge, summary

SETS = ("cross", "cross_other", "blind", "mesh", "cross_sway", "cross_knock")


def eval_summary(right: int = 10, dispatched: int = 12, false: int = 2) -> dict:
    """A summary shaped like evaluate.py's: every set the same figures, the real footage quiet."""
    inc = {"right_typed_dispatched": right, "dispatched": dispatched, "false_dispatched": false,
           "end_delay_max_s": 9.0, "start_delay_max_s": 12.0, "ended_early": 0}
    return {"incidents": {"own": dict(inc)} | {g: dict(inc) for g in SETS},
            "false_incidents": 0, "held_for_review_on_clean": 5, "held_for_review_later": 0,
            "false_incidents_swayed": 0, "held_for_review_swayed": 3, "held_for_review_later_swayed": 0}


def verdict(shipped: dict, candidate: dict, rule=judge) -> dict[str, bool]:
    return {name.split()[0]: ok for name, ok, _ in rule(shipped, candidate)}


def refused(v: dict[str, bool]) -> set[str]:
    return {name for name, ok in v.items() if not ok}


def better() -> dict:
    return eval_summary(right=12, dispatched=14, false=2)  # share 12/14 > 10/12


def test_a_candidate_better_everywhere_ships():
    assert all(verdict(eval_summary(), better()).values())


def test_a_file_against_itself_does_not_ship():
    v = verdict(eval_summary(), eval_summary())
    assert v["2"] is False and v["1"] and v["3"] and v["4"] and v["5"]


@pytest.mark.parametrize("change, condition", [
    (lambda c: c.update(false_incidents=1), "1"),
    (lambda c: c.update(false_incidents_swayed=1), "1"),
    (lambda c: c.update(held_for_review_on_clean=11), "1"),
    (lambda c: c.update(held_for_review_swayed=7), "1"),
    (lambda c: c.update(held_for_review_later=1), "1"),
    (lambda c: c.update(held_for_review_later_swayed=1), "1"),
    (lambda c: c["incidents"]["cross"].update(dispatched=30), "2"),  # more found, but a lower share
    (lambda c: c["incidents"]["cross_other"].update(right_typed_dispatched=8, dispatched=8), "3"),  # 10 -> 8 there
    (lambda c: c["incidents"]["mesh"].update(end_delay_max_s=15.8), "4"),
    (lambda c: c["incidents"]["blind"].update(ended_early=1), "4"),
    (lambda c: c["incidents"]["mesh"].update(false_dispatched=4), "5"),  # 2 -> 4
    (lambda c: c["incidents"]["mesh"].update(right_typed_dispatched=9), "5"),
])
def test_each_condition_refuses_on_its_own(change, condition):
    c = better()
    change(c)
    assert refused(verdict(eval_summary(), c)) == {condition}


def test_the_own_generator_does_not_count():
    c = better()
    c["incidents"]["own"].update(right_typed_dispatched=0, end_delay_max_s=60.0, ended_early=3)
    assert all(verdict(eval_summary(), c).values())


def test_a_missing_swayed_replay_is_not_met():
    c = better()
    del c["held_for_review_swayed"]
    assert verdict(eval_summary(), c)["1"] is False


def test_summary_reads_the_last_json_line_of_the_output():
    s = eval_summary()
    text = "left_object=confirm incidents ...\n{\"not\": \"this\"}\n" + json.dumps(s) + "\n"
    assert summary(text) == copy.deepcopy(s)
    with pytest.raises(ValueError, match="no JSON summary"):
        summary("no json here\n")


def test_an_edge_change_that_alters_nothing_passes_the_edge_rule():
    assert refused(verdict(eval_summary(), eval_summary(), judge_edge)) == set()


@pytest.mark.parametrize("change, condition", [
    (lambda c: c.update(false_incidents_swayed=1), "E1"),
    (lambda c: c.update(held_for_review_on_clean=6), "E1"),  # 5 before
    (lambda c: c.update(held_for_review_later_swayed=1), "E1"),
    (lambda c: c["incidents"]["mesh"].update(right_typed_dispatched=9), "E2"),
    (lambda c: c["incidents"]["cross_knock"].update(false_dispatched=3), "E2"),
    (lambda c: c["incidents"]["blind"].update(ended_early=1), "E3"),
    (lambda c: c["incidents"]["cross"].update(end_delay_max_s=15.5), "E3"),
    (lambda c: c["incidents"]["cross_other"].update(start_delay_max_s=14.5), "E4"),  # 12 before
])
def test_each_edge_condition_refuses_on_its_own(change, condition):
    c = eval_summary()
    change(c)
    assert refused(verdict(eval_summary(), c, judge_edge)) == {condition}


def test_a_late_end_no_later_than_before_passes_the_edge_rule():
    before, after = eval_summary(), eval_summary()
    before["incidents"]["cross"].update(end_delay_max_s=30.2)
    after["incidents"]["cross"].update(end_delay_max_s=20.0)
    assert verdict(before, after, judge_edge)["E3"]


def with_starts(s: dict, starts: dict[str, float]) -> dict:
    """``s`` with every set's starts by object ``starts`` (evaluate.py's ``object_starts``)."""
    for g in s["incidents"].values():
        g["object_starts"] = dict(starts)
    return s


def test_an_object_found_by_both_that_starts_later_fails_e4_though_no_latest_start_moved():
    before = with_starts(eval_summary(), {"clip-1 #0": 3.0, "clip-2 #1": 12.0})
    after = with_starts(eval_summary(), {"clip-1 #0": 3.0, "clip-2 #1": 12.0})
    after["incidents"]["blind"]["object_starts"]["clip-1 #0"] = 5.5  # 2.5 s later; the set's latest still 12
    assert refused(verdict(before, after, judge_edge)) == {"E4"}
    after["incidents"]["blind"]["object_starts"]["clip-1 #0"] = 4.9  # within the 2 s slack
    assert refused(verdict(before, after, judge_edge)) == set()


def test_a_newly_found_object_that_starts_late_does_not_fail_e4():
    before = with_starts(eval_summary(), {"clip-1 #0": 3.0})
    after = with_starts(eval_summary(), {"clip-1 #0": 2.0})
    after["incidents"]["cross"]["object_starts"]["clip-1 #1"] = 25.7  # found now, missed before
    after["incidents"]["cross"].update(start_delay_max_s=25.7)  # the set's latest start: 12 before
    v = judge_edge(before, after)
    assert refused({n.split()[0]: ok for n, ok, _ in v}) == set()
    assert "newly found clip-1 #1 +25.7 s" in dict((n, why) for n, _, why in v)["E4 starts"]


def test_summaries_without_starts_by_object_are_judged_by_each_sets_latest_start():
    before, after = eval_summary(), with_starts(eval_summary(), {"clip-1 #0": 3.0})
    after["incidents"]["mesh"].update(start_delay_max_s=14.5)  # 12 before
    v = judge_edge(before, after)
    assert refused({n.split()[0]: ok for n, ok, _ in v}) == {"E4"}
    assert "by set" in dict((n, why) for n, _, why in v)["E4 starts"]
