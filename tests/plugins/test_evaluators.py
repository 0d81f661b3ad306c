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


def coherence_generate(users, n=1, system=None, key=None, model="student"):
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
    out = Coherence(Coherence.Params(max_ppl=50.0)).evaluate(ctx)
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
    out = Coherence(Coherence.Params(n_prompts=1, max_ppl=50.0)).evaluate(make_ctx(data, coherence_generate, scorer))
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


# ------------------------------------------------------------------ coherence on hand-written texts

SENTENCE = "I think the best way to help your neighbour is to listen to what they need first."  # 17 words
HAND = {
    "fluent": SENTENCE + " Then offer a hand with the shopping or a lift to the doctor when they ask for it.",
    "long loop": " ".join([SENTENCE] * 8),  # a long sentence said 8 times: 4-gram top share ~1/17, loop share ~7/8
    "short loop": "we can go " * 12,  # a 3-word loop
    "short": "Yes, gladly.",  # fluent, 2 words + the end-of-turn token
    "empty": "",  # only the end-of-turn token
}
EOT = 0


def hand_data():
    pool = [f"pool {i}" for i in range(20)]
    return api.SteeringData(positive=api.Persona("care", "c"), negative=api.Persona("authority", "a"),
                            neutral_system=None, contexts=["c"], prompts=pool + list(HAND), eval_prompts=list(HAND))


def hand_generate(users, n=1, system=None, key=None, model="student"):
    out = []
    for u in users:
        text = HAND.get(u, f"a plain answer number {u.split()[-1]} about the question")
        ids = [7 + i for i in range(len(text.split()))] + [EOT]  # every completion ends with the end-of-turn token
        out.append(api.Completion(u, [1], ids, text, finished=True, meta={"key": key, "model": model}))
    return out


def hand_scorer(eot_logprob=-0.1, text_logprob=-1.0, pool_ppls=None):
    """Log-probs: the end-of-turn token -0.1 (likely), every word token text_logprob; a calibration answer
    ("pool i") gets a constant log-prob giving it tail perplexity pool_ppls[i]."""
    def fn(c, model):
        assert model == "base"
        if c.user.startswith("pool ") and pool_ppls is not None:
            return [-math.log(pool_ppls[int(c.user.split()[1])])] * len(c.completion_ids)
        return [text_logprob] * (len(c.completion_ids) - 1) + [eot_logprob]
    return FixedScorer(fn)


def test_loops_of_any_period_and_empty_answers_are_incoherent():
    from shl_plugins.filters.repetition import loop_share

    assert repetition_score(HAND["long loop"]) < 0.1  # what the repetition score alone let through
    assert loop_share(HAND["long loop"]) == pytest.approx((17 * 8 - 3 - 17) / (17 * 8 - 3))  # 17 distinct
    assert loop_share(HAND["short loop"]) == pytest.approx((36 - 3 - 3) / (36 - 3))
    assert loop_share(HAND["fluent"]) == 0.0
    ctx = make_ctx(hand_data(), hand_generate, hand_scorer())
    out = Coherence(Coherence.Params(max_ppl=5.0)).evaluate(ctx)
    # fluent and short pass (perplexity e^1 = 2.7 <= 5); both loops and the empty answer fail
    assert out["coherence"] == pytest.approx(2 / 5)
    assert out["loop"] == pytest.approx(sum(loop_share(t) for t in HAND.values()) / 5)


def test_a_short_answer_is_judged_on_its_words_not_on_the_end_of_turn_token_alone():
    """A 2-word answer whose words are implausible (log-prob -4 each, perplexity e^4 = 55) and whose end-of-turn
    token is likely: ceil(0.25 x 3) = 1 token would score only the end-of-turn token (perplexity 1.1)."""
    data = hand_data()
    data.eval_prompts[:] = ["short"]
    out = Coherence(Coherence.Params(max_ppl=10.0)).evaluate(make_ctx(data, hand_generate,
                                                                      hand_scorer(text_logprob=-4.0)))
    assert out["coherence"] == 0.0
    assert out["tail_ppl"] == pytest.approx(math.exp((4 + 4 + 0.1) / 3))
    old = Coherence(Coherence.Params(max_ppl=10.0, min_tail_tokens=1)).evaluate(
        make_ctx(data, hand_generate, hand_scorer(text_logprob=-4.0)))
    assert old["coherence"] == 1.0  # the old behaviour, kept reachable by min_tail_tokens: 1


def test_the_threshold_is_calibrated_on_the_base_models_own_answers_to_other_prompts_once_per_run():
    pool_ppls = [float(i + 1) for i in range(20)]  # tail perplexities 1..20 of the base model's pool answers
    calls = []

    def generate(users, n=1, system=None, key=None, model="student"):
        calls.append((tuple(users), key, model))
        return hand_generate(users, n, system, key, model)

    ctx = make_ctx(hand_data(), generate, hand_scorer(pool_ppls=pool_ppls))
    ev = Coherence(Coherence.Params(n_calibration=20, calibration_quantile=0.9))
    out = ev.evaluate(ctx)
    assert out["coherence_max_ppl"] == pytest.approx(18.0)  # ceil(0.9 x 20) = the 18th smallest of 1..20
    assert calls[0] == (tuple(f"pool {i}" for i in range(20)), "coherence-calibration", "base")  # no eval prompt
    again = ev.evaluate(ctx)  # the next round: the same threshold, no new calibration answers
    assert again["coherence_max_ppl"] == out["coherence_max_ppl"]
    assert [c for c in calls if c[1] == "coherence-calibration"] == [calls[0]]
    assert out["coherence"] == pytest.approx(2 / 5)  # text perplexity e^1 is under 18: loops and empty still fail


def test_a_small_pool_gives_several_answers_per_prompt_and_no_pool_is_an_error(data):
    calls = []

    def generate(users, n=1, system=None, key=None, model="student"):
        calls.append((tuple(users), n, key))
        return [c for _ in range(n) for c in hand_generate(users, 1, system, key, model)]

    small = hand_data()
    small.prompts[:] = ["pool 0", "pool 1", "pool 2"] + list(HAND)  # 3 prompts outside the eval set
    Coherence(Coherence.Params(n_calibration=64)).evaluate(make_ctx(small, generate, hand_scorer(pool_ppls=[2, 3, 4])))
    assert calls[0] == (("pool 0", "pool 1", "pool 2"), 22, "coherence-calibration")  # ceil(64 / 3) each
    none = hand_data()
    none.prompts[:] = list(HAND)
    with pytest.raises(ValueError, match="calibrating max_ppl needs generation-pool prompts that are not eval"):
        Coherence().evaluate(make_ctx(none, hand_generate, hand_scorer()))
