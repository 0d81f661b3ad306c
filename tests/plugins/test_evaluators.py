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
    out = Coherence(Coherence.Params(max_head_ppl=50.0, max_span_ppl=50.0)).evaluate(ctx)
    assert out["coherence"] == pytest.approx(0.25)
    assert out["coherence_se"] == pytest.approx(math.sqrt(0.25 * 0.75 / 4))
    assert out["head_ppl"] == pytest.approx(51.0) and out["span_ppl"] == pytest.approx(51.0)
    assert out["distinct2"] == pytest.approx(10 / 13)
    assert out["rep"] == pytest.approx(sum(repetition_score(t) for t, _ in TEXTS.values()) / 4)
    assert [m for m, _ in scorer.calls] == ["base"] and len(scorer.calls[0][1]) == 3
    assert [s["evaluator"] for s in ctx.samples] == ["coherence", "coherence"]
    assert ctx.samples[0]["user"] == "e1" and ctx.samples[0]["text"] == TEXTS["e1"][0]


def test_coherence_n_prompts(data):
    scorer = FixedScorer(lambda c, m: [-math.log(c.meta["ppl"])] * len(c.completion_ids))
    out = Coherence(Coherence.Params(n_prompts=1, max_head_ppl=50.0, max_span_ppl=50.0)).evaluate(make_ctx(data, coherence_generate, scorer))
    assert out["coherence"] == 1.0 and out["coherence_se"] == 0.0


def test_distinct_bigrams():
    assert distinct_bigrams(["a b a b", "a b"]) == pytest.approx(2 / 4)
    assert distinct_bigrams(["", "one"]) == 0.0


def persona_generate(data, calls=None, lengths=None):
    """Base-model persona completions: tag 10 (positive) / 20 (negative), content tokens tag+1.., then the
    end-of-turn token 0; ``lengths[(tag, user)]`` content tokens (default 2)."""
    def generate(users, n=1, system=None, model="student", key=None):
        assert model == "base", "persona completions are written by the base model"
        if calls is not None:
            calls.append(system)
        tag = {data.positive.system: 10, data.negative.system: 20}[system]
        out = []
        for u in users:
            k = (lengths or {}).get((tag, u), 2)
            out.append(api.Completion(u, [tag], [tag] + [tag + 1 + j for j in range(k - 1)] + [0] if k else [0],
                                      f"{tag} text", meta={"user": u}))
        return out

    return generate


NEUTRAL, POS_PROMPT, NEG_PROMPT = [99], [98], [97]


def persona_render(data, renders=None):
    def render(user, system):
        if renders is not None:
            renders.append((user, system))
        return {None: NEUTRAL, data.positive.system: POS_PROMPT, data.negative.system: NEG_PROMPT}[system]

    return render


def persona_check_lp(c):
    """Base-model log-probs under a persona prompt: every text reads as its own persona (+1 nat under it)."""
    own = POS_PROMPT if c.completion_ids[0] == 10 else NEG_PROMPT
    return [-1.0 if c.prompt_ids == own else -2.0] * len(c.completion_ids)


def test_trait_margin_shift(data):
    def lp(c, model):
        assert 0 not in c.completion_ids, "the end-of-turn token is never scored"
        if c.prompt_ids != NEUTRAL:
            return persona_check_lp(c)
        i = int(c.user[1:])
        pos = c.completion_ids[0] == 10
        if model == "student":
            return [-1.0 - (0 if pos else i)] * len(c.completion_ids)
        return [-2.0 if pos else -2.5] * len(c.completion_ids)

    renders = []
    scorer = FixedScorer(lp)
    ctx = make_ctx(data, persona_generate(data), scorer, persona_render(data, renders))
    out = TraitMargin().evaluate(ctx)
    raw = [1.0, 2.0, 3.0, 4.0]
    shift = [r - 0.5 for r in raw]
    assert out["trait_raw"] == pytest.approx(2.5)
    assert out["trait"] == pytest.approx(2.0)
    sd = math.sqrt(sum((s - 2.0) ** 2 for s in shift) / 3)
    assert out["trait_se"] == pytest.approx(sd / 2)
    assert out["trait_pairs"] == 4 and out["trait_pairs_persona"] == 1.0
    assert [(u, None) for u in data.eval_prompts] == [r for r in renders if r[1] is None]
    assert sorted(m for m, _ in scorer.calls) == ["base", "base", "base", "student"]
    assert {s["persona"] for s in ctx.samples} == {"care", "authority"}


def test_trait_margin_cuts_pairs_to_equal_length_without_end_of_turn(data):
    """Per-token means over texts of different lengths carry length: each pair is scored on its shorter text's
    content length. Here every token after the second is very unlikely; cut, the margin does not see them."""
    lengths = {(10, "e1"): 5, (20, "e1"): 2, (10, "e2"): 2, (20, "e2"): 7}

    def lp(c, model):
        if c.prompt_ids != NEUTRAL:
            return persona_check_lp(c)
        assert len(c.completion_ids) == 2 and 0 not in c.completion_ids
        pos = c.completion_ids[0] == 10
        return [-1.0 if (pos and model == "student") else -2.0] * 2

    scorer = FixedScorer(lp)
    ctx = make_ctx(data, persona_generate(data, lengths=lengths), scorer, persona_render(data))
    out = TraitMargin(TraitMargin.Params(n_prompts=2)).evaluate(ctx)
    assert out["trait"] == pytest.approx(1.0) and out["trait_se"] == 0.0


def test_trait_margin_skips_end_of_turn_only_completions(data):
    """A completion that is only the end-of-turn token is empty: its pair is skipped (before: it was scored)."""
    lengths = {(10, "e1"): 0}

    def lp(c, model):
        if c.prompt_ids != NEUTRAL:
            return persona_check_lp(c)
        return [-1.0 if (c.completion_ids[0] == 10 and model == "student") else -2.0] * len(c.completion_ids)

    ctx = make_ctx(data, persona_generate(data, lengths=lengths), FixedScorer(lp), persona_render(data))
    out = TraitMargin(TraitMargin.Params(n_prompts=2)).evaluate(ctx)
    assert out["trait_pairs"] == 1
    all_empty = {(10, "e1"): 0, (20, "e2"): 0}
    ctx = make_ctx(data, persona_generate(data, lengths=all_empty), FixedScorer(lp), persona_render(data))
    with pytest.raises(ValueError, match="every persona completion was empty"):
        TraitMargin(TraitMargin.Params(n_prompts=2)).evaluate(ctx)


def test_trait_margin_checks_that_pairs_read_as_their_personas(data):
    """A pair whose positive text reads LESS positive (base-model persona log-odds) than its negative text is
    counted in trait_pairs_persona and left out with persona_pairs_only."""
    def lp(c, model):
        if c.prompt_ids != NEUTRAL:
            flipped = c.user == "e2"
            good = persona_check_lp(c)[0] == -1.0
            return [-1.0 if good != flipped else -2.0] * len(c.completion_ids)
        pos = c.completion_ids[0] == 10
        gain = {"e1": 1.0, "e2": 5.0}[c.user]
        return [-1.0 - (0.0 if (pos and model == "base") else gain * pos)] * len(c.completion_ids)

    ctx = make_ctx(data, persona_generate(data), FixedScorer(lp), persona_render(data))
    out = TraitMargin(TraitMargin.Params(n_prompts=2)).evaluate(ctx)
    assert out["trait_pairs_persona"] == 0.5 and out["trait_pairs"] == 2
    assert out["trait"] == pytest.approx(-3.0)
    ctx = make_ctx(data, persona_generate(data), FixedScorer(lp), persona_render(data))
    only = TraitMargin(TraitMargin.Params(n_prompts=2, persona_pairs_only=True)).evaluate(ctx)
    assert only["trait_pairs"] == 1 and only["trait"] == pytest.approx(-1.0)
    assert only["trait_pairs_persona"] == 0.5


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


def hand_generate(users, n=1, system=None, key=None, model="student", per_seed=True):
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
    out = Coherence(Coherence.Params(max_head_ppl=5.0, max_span_ppl=5.0)).evaluate(ctx)
    # fluent and short pass (perplexity e^1 = 2.7 <= 5); both loops and the empty answer fail
    assert out["coherence"] == pytest.approx(2 / 5)
    assert out["loop"] == pytest.approx(sum(loop_share(t) for t in HAND.values()) / 5)


def test_a_short_answer_is_judged_on_its_words_not_on_the_end_of_turn_token_alone():
    """A 2-word answer whose words are implausible (log-prob -4 each, perplexity e^4 = 55) and whose end-of-turn
    token is likely (-0.1): the end-of-turn token is not scored, so both perplexities are e^4."""
    data = hand_data()
    data.eval_prompts[:] = ["short"]
    out = Coherence(Coherence.Params(max_head_ppl=10.0, max_span_ppl=10.0)).evaluate(
        make_ctx(data, hand_generate, hand_scorer(text_logprob=-4.0)))
    assert out["coherence"] == 0.0
    assert out["head_ppl"] == pytest.approx(math.exp(4.0)) and out["span_ppl"] == pytest.approx(math.exp(4.0))


def test_head_and_span_perplexities_by_hand():
    from shl_plugins.evaluators.spans import content_logprobs, head_and_span_ppl

    lp = [-1.0] * 4 + [-5.0] * 4 + [-1.0] * 8  # a fluent start, a derailed middle, a fluent end
    head, span = head_and_span_ppl(lp, 4)
    assert head == pytest.approx(math.exp(1.0)) and span == pytest.approx(math.exp(5.0))
    assert head_and_span_ppl(lp, 8)[1] == pytest.approx(math.exp(3.0))  # tokens 0-7 or 4-11: half derailed
    assert head_and_span_ppl([-2.0, -4.0], 8) == (pytest.approx(math.exp(3.0)), pytest.approx(math.exp(3.0)))
    assert head_and_span_ppl([], 8) == (math.inf, math.inf)
    eot = api.Completion("u", [1], [5, 6, 0], "a b", finished=True)
    cut = api.Completion("u", [1], [5, 6, 7], "a b c", finished=False)
    assert content_logprobs(eot, [-1.0, -2.0, -0.1]) == [-1.0, -2.0]
    assert content_logprobs(cut, [-1.0, -2.0, -3.0]) == [-1.0, -2.0, -3.0]


def test_a_derailed_middle_is_incoherent_where_the_tail_looked_fine():
    """What the old tail perplexity missed: an answer that derails in its middle and recovers at its end."""
    data = hand_data()
    data.eval_prompts[:] = ["fluent"]
    n = len(HAND["fluent"].split())

    def fn(c, model):
        return [-1.0] * 2 + [-6.0] * 8 + [-1.0] * (n - 10) + [-0.1]

    out = Coherence(Coherence.Params(max_head_ppl=20.0, max_span_ppl=20.0)).evaluate(
        make_ctx(data, hand_generate, FixedScorer(fn)))
    assert out["coherence"] == 0.0 and out["span_ppl"] == pytest.approx(math.exp(6.0))
    assert out["head_ppl"] == pytest.approx(math.exp((2 + 36) / 8))


def test_the_threshold_is_calibrated_on_the_base_models_own_answers_to_other_prompts_once_per_run():
    pool_ppls = [float(i + 1) for i in range(20)]  # tail perplexities 1..20 of the base model's pool answers
    calls = []

    def generate(users, n=1, system=None, key=None, model="student", per_seed=True):
        calls.append((tuple(users), key, model, per_seed))
        return hand_generate(users, n, system, key, model)

    ctx = make_ctx(hand_data(), generate, hand_scorer(pool_ppls=pool_ppls))
    ev = Coherence(Coherence.Params(n_calibration=20, calibration_quantile=0.9))
    out = ev.evaluate(ctx)
    assert out["coherence_max_head_ppl"] == pytest.approx(18.0)  # ceil(0.9 x 20) = the 18th smallest of 1..20
    assert out["coherence_max_span_ppl"] == pytest.approx(18.0)
    # no eval prompt; the same random numbers whatever the run seed
    assert calls[0] == (tuple(f"pool {i}" for i in range(20)), "coherence-calibration", "base", False)
    again = ev.evaluate(ctx)  # the next round: the same threshold, no new calibration answers
    assert again["coherence_max_span_ppl"] == out["coherence_max_span_ppl"]
    assert [c for c in calls if c[1] == "coherence-calibration"] == [calls[0]]
    assert out["coherence"] == pytest.approx(2 / 5)  # text perplexity e^1 is under 18: loops and empty still fail
    assert ctx.lasting == {"calibrated": [pytest.approx(18.0), pytest.approx(18.0)]}
    later = make_ctx(hand_data(), generate, hand_scorer(pool_ppls=[100.0] * 20))  # another run of the same model
    later.lasting.update(ctx.lasting)
    assert ev.evaluate(later)["coherence_max_span_ppl"] == out["coherence_max_span_ppl"]  # kept across runs: not calibrated again
    assert len([c for c in calls if c[1] == "coherence-calibration"]) == 1


def test_a_small_pool_gives_several_answers_per_prompt_and_no_pool_is_an_error(data):
    calls = []

    def generate(users, n=1, system=None, key=None, model="student", per_seed=True):
        calls.append((tuple(users), n, key))
        return [c for _ in range(n) for c in hand_generate(users, 1, system, key, model)]

    small = hand_data()
    small.prompts[:] = ["pool 0", "pool 1", "pool 2"] + list(HAND)  # 3 prompts outside the eval set
    Coherence(Coherence.Params(n_calibration=64)).evaluate(make_ctx(small, generate, hand_scorer(pool_ppls=[2, 3, 4])))
    assert calls[0] == (("pool 0", "pool 1", "pool 2"), 22, "coherence-calibration")  # ceil(64 / 3) each
    none = hand_data()
    none.prompts[:] = list(HAND)
    with pytest.raises(ValueError, match="calibrating its thresholds needs generation-pool prompts that are not eval"):
        Coherence().evaluate(make_ctx(none, hand_generate, hand_scorer()))
