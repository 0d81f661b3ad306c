from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from shl import api
from shl_plugins.filters.boilerplate import Boilerplate
from shl_plugins.filters.length import Length
from shl_plugins.filters.narration import Narration
from shl_plugins.filters.repetition import Repetition, repetition_score, top_share
from shl_plugins.filters.tail_ppl import TailPPL, tail_perplexity

from plugin_fakes import FixedScorer, completion


def ctx(data, scorer=None):
    return api.FilterContext(scorer=scorer or FixedScorer(lambda c, m: []), tokenizer=None, data=data)


def test_tail_perplexity_values():
    lp = [-1.0, -2.0, -3.0, -4.0]
    assert tail_perplexity(lp, 0.25) == pytest.approx(math.exp(4.0))
    assert tail_perplexity(lp, 0.5) == pytest.approx(math.exp(3.5))
    assert tail_perplexity(lp, 1.0) == pytest.approx(math.exp(2.5))
    assert tail_perplexity([-1.0, -1.0, -1.0, -2.0, -4.0], 0.25) == pytest.approx(math.exp(3.0))
    assert tail_perplexity([-0.5], 0.01) == pytest.approx(math.exp(0.5))
    assert tail_perplexity([], 0.25) == math.inf


def test_tail_ppl_filter_uses_base_scorer(data):
    scorer = FixedScorer(lambda c, m: list(c.meta["lp"]))
    comps = [
        completion(ids=[5, 6, 7, 8], lp=[-9.0, -9.0, -9.0, -1.0]),
        completion(ids=[5, 6, 7, 8], lp=[-1.0, -1.0, -1.0, -5.0]),
        completion(ids=[]),
    ]
    out = TailPPL().judge(comps, ctx(data, scorer))
    assert [v.score for v in out[:2]] == pytest.approx([math.e, math.exp(5.0)])
    assert [v.keep for v in out] == [True, False, False]
    assert out[2].score == math.inf
    assert [m for m, _ in scorer.calls] == ["base"]
    assert len(scorer.calls[0][1]) == 2
    assert TailPPL(TailPPL.Params(max_ppl=200.0)).judge(comps[1:2], ctx(data, scorer))[0].keep


def test_top_share_hand_computed():
    w = "a b a b a b".split()
    assert top_share(w, 2) == pytest.approx(3 / 5)
    assert top_share(w, 3) == pytest.approx(2 / 4)
    assert top_share(w, 4) == pytest.approx(2 / 3)
    assert top_share(["a"], 2) == 0.0


@pytest.mark.parametrize(
    "text,expected",
    [
        ("a b a b a b", 2 / 3),
        ("the cat sat on the mat", 1 / 3),
        ("Go, go. GO! go", 1.0),
        ("a b a", 0.0),
        ("Yes.", 0.0),
        ("a" * 20, 1.0),
        ("", 0.0),
    ],
)
def test_repetition_score(text, expected):
    assert repetition_score(text, min_words=4) == pytest.approx(expected)


def test_repetition_char_part():
    assert repetition_score("the cat sat on the mat", min_words=100) == pytest.approx(3 / 21)


def test_repetition_filter(data):
    comps = [completion("the cat sat on the mat"), completion("go go go go go go")]
    out = Repetition().judge(comps, ctx(data))
    assert [v.keep for v in out] == [True, False]
    assert out[1].score == 1.0
    with pytest.raises(ValidationError):
        Repetition.Params(max_share=2.0)


def test_narration(data):
    comps = [completion("I am Caring, my persona is kindness itself!"), completion(""), completion("Hello there.")]
    out = Narration(Narration.Params(extra_words=["Kindness!"])).judge(comps, ctx(data))
    assert [v.score for v in out] == pytest.approx([3 / 8, 0.0, 0.0])
    assert [v.keep for v in out] == [False, True, True]
    assert Narration().judge(comps[:1], ctx(data))[0].score == pytest.approx(2 / 8)


def test_boilerplate(data):
    comps = [
        completion("As an AI language model, I think..."),
        completion("I\u2019m sorry, but no."),
        completion("I can help with that."),
    ]
    out = Boilerplate().judge(comps, ctx(data))
    assert [v.score for v in out] == [1.0, 1.0, 0.0]
    assert [v.keep for v in out] == [False, False, True]
    custom = Boilerplate(Boilerplate.Params(phrases=["CAN HELP"])).judge(comps, ctx(data))
    assert [v.keep for v in custom] == [True, True, False]


def test_length(data):
    comps = [completion(ids=[1, 2, 3]), completion(ids=[1, 2, 3, 4]), completion(ids=range(10), finished=False)]
    out = Length().judge(comps, ctx(data))
    assert [v.score for v in out] == [3.0, 4.0, 10.0]
    assert [v.keep for v in out] == [False, True, True]
    strict = Length(Length.Params(max_tokens=9, require_finished=True)).judge(comps, ctx(data))
    assert [v.keep for v in strict] == [False, True, False]
    assert not Length(Length.Params(require_finished=True)).judge(comps[2:], ctx(data))[0].keep
    with pytest.raises(ValidationError):
        Length.Params(min_tokens=5, max_tokens=4)
