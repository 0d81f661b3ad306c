"""The filter gate's numbers: the coherent share of the kept and of the dropped steered completions, by the first
evaluator that judges completions one by one."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from shl import api
from shl.engine.steering_round import filter_gate
from shl.errors import RunError


class Judge(api.Evaluator):
    name = "judge"

    def __init__(self, verdicts=None):
        super().__init__()
        self.verdicts = verdicts
        self.seen = None

    def evaluate(self, ctx):
        return {}

    def judge_coherent(self, completions, ctx, cache):
        self.seen = (len(completions), cache)
        return self.verdicts if self.verdicts is None else self.verdicts[: len(completions)]


def comp(text):
    return api.Completion(user="u", prompt_ids=[1], completion_ids=[2], text=text)


def batches():
    # two batches (a dose probe and a generation batch): 6 completions, 4 kept
    return [([comp("a"), comp("b"), comp("c")], SimpleNamespace(keep=[True, False, True])),
            ([comp("d"), comp("e"), comp("f")], SimpleNamespace(keep=[True, True, False]))]


def test_kept_and_dropped_shares_from_the_first_evaluator_that_judges():
    silent, judge = Judge(None), Judge([True, False, False, True, True, True])
    run = SimpleNamespace(evaluators=[("silent", silent), ("judge", judge)], eval_caches={"judge": {"max_ppl": 9}})
    out = filter_gate(run, None, batches())
    # kept: a (True), c (False), d (True), e (True) -> 3/4; dropped: b (False), f (True) -> 1/2
    assert out == {"filter_kept_coherent": 0.75, "filter_dropped_coherent": 0.5}
    assert judge.seen == (6, {"max_ppl": 9}) and silent.seen[0] == 6


def test_no_judge_records_nothing_and_a_share_over_nothing_is_none():
    assert filter_gate(SimpleNamespace(evaluators=[("s", Judge(None))], eval_caches={}), None, batches()) == {}
    all_kept = [([comp("a"), comp("b")], SimpleNamespace(keep=[True, True]))]
    run = SimpleNamespace(evaluators=[("j", Judge([True, False]))], eval_caches={})
    assert filter_gate(run, None, all_kept) == {"filter_kept_coherent": 0.5, "filter_dropped_coherent": None}


def test_a_judge_with_the_wrong_number_of_verdicts_is_a_run_error():
    run = SimpleNamespace(evaluators=[("j", Judge([True]))], eval_caches={})
    with pytest.raises(RunError, match="judge_coherent returned 1 verdicts for 6 completions"):
        filter_gate(run, None, batches())
