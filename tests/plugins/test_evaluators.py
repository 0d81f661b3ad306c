from __future__ import annotations

import math

import pytest

from shl import api
from shl_plugins.evaluators.coherence import Coherence, distinct_bigrams
from shl_plugins.evaluators.trait_margin import TraitMargin
from shl_plugins.filters.repetition import repetition_score

from plugin_fakes import FixedScorer

TEXTS = {
    "e1": ("the cat sat on the mat", 2.0),
    "e2": ("go go go go go", 2.0),
    "e3": ("a fine answer here today", 100.0),
    "e4": ("", None),
}


def make_ctx(data, generate, scorer, render=None):
    return api.EvalContext(
        generate=generate, render=render or (lambda user, system: [99]), scorer=scorer, tokenizer=None,
        data=data, seed=0, round=0,
    )


def coherence_generate(users, n=1, system=None, key=None):
    assert system is None
    out = []
    for u in users:
        text, ppl = TEXTS[u]
        ids = [7] * len(text.split())
        out.append(api.Completion(u, [1], ids, text, meta={"ppl": ppl}))
    return out


def test_coherence_metrics(data):
    scorer = FixedScorer(lambda c, m: [-math.log(c.meta["ppl"])] * len(c.completion_ids))
    ctx = make_ctx(data, coherence_generate, scorer)
    out = Coherence().evaluate(ctx)
    assert out["coherence"] == pytest.approx(0.25)
    assert out["coherence_se"] == pytest.approx(math.sqrt(0.25 * 0.75 / 4))
    assert out["tail_ppl"] == pytest.approx(51.0)
    assert out["distinct2"] == pytest.approx(10 / 13)
    assert out["rep"] == pytest.approx(sum(repetition_score(t) for t, _ in TEXTS.values()) / 4)
    assert [m for m, _ in scorer.calls] == ["base"] and len(scorer.calls[0][1]) == 3
    assert [s["evaluator"] for s in ctx.samples] == ["coherence", "coherence"]
    assert ctx.samples[0]["user"] == "e1" and ctx.samples[0]["text"] == TEXTS["e1"][0]


def test_coherence_n_prompts(data):
    scorer = FixedScorer(lambda c, m: [-math.log(c.meta["ppl"])] * len(c.completion_ids))
    out = Coherence(Coherence.Params(n_prompts=1)).evaluate(make_ctx(data, coherence_generate, scorer))
    assert out["coherence"] == 1.0 and out["coherence_se"] == 0.0


def test_distinct_bigrams():
    assert distinct_bigrams(["a b a b", "a b"]) == pytest.approx(2 / 4)
    assert distinct_bigrams(["", "one"]) == 0.0


def persona_generate(data, calls=None):
    def generate(users, n=1, system=None, model="student", key=None):
        assert model == "base", "persona completions are written by the base model"
        if calls is not None:
            calls.append(system)
        tag = {data.positive.system: 10, data.negative.system: 20}[system]
        return [api.Completion(u, [tag], [tag, tag + 1, tag + 2], f"{tag} text", meta={"user": u}) for u in users]

    return generate


def test_trait_margin_shift(data):
    def lp(c, model):
        assert c.prompt_ids == [99], "persona completions must be rescored under the neutral prompt"
        i = int(c.user[1:])
        pos = c.completion_ids[0] == 10
        if model == "student":
            return [-1.0 - (0 if pos else i)] * 3
        return [-2.0 if pos else -2.5] * 3

    renders = []

    def render(user, system):
        renders.append((user, system))
        return [99]

    scorer = FixedScorer(lp)
    ctx = make_ctx(data, persona_generate(data), scorer, render)
    out = TraitMargin().evaluate(ctx)
    raw = [1.0, 2.0, 3.0, 4.0]
    shift = [r - 0.5 for r in raw]
    assert out["trait_raw"] == pytest.approx(2.5)
    assert out["trait"] == pytest.approx(2.0)
    sd = math.sqrt(sum((s - 2.0) ** 2 for s in shift) / 3)
    assert out["trait_se"] == pytest.approx(sd / 2)
    assert renders == [(u, None) for u in data.eval_prompts]
    assert sorted(m for m, _ in scorer.calls) == ["base", "student"]
    assert {s["persona"] for s in ctx.samples} == {"care", "authority"}


def test_trait_margin_zero_for_base(data):
    scorer = FixedScorer(lambda c, m: [-1.0 - 0.1 * c.completion_ids[0]] * 3)
    out = TraitMargin(TraitMargin.Params(n_prompts=2)).evaluate(make_ctx(data, persona_generate(data), scorer))
    assert out["trait"] == 0.0 and out["trait_se"] == 0.0
    assert out["trait_raw"] == pytest.approx(1.0)


def test_trait_margin_generates_persona_completions_once_per_run(data):
    calls = []
    scorer = FixedScorer(lambda c, m: [-1.0 - 0.1 * c.completion_ids[0]] * 3)
    ctx = make_ctx(data, persona_generate(data, calls), scorer)
    first = TraitMargin(TraitMargin.Params(n_prompts=2)).evaluate(ctx)
    ctx.samples.clear()
    second = TraitMargin(TraitMargin.Params(n_prompts=2)).evaluate(ctx)  # same ctx.cache: a later round
    assert calls == [data.positive.system, data.negative.system]
    assert first == second
