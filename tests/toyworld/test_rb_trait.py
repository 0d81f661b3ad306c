"""The Rao-Blackwellised ``trait`` of ``toy_exact``: exactly unbiased for the plain count, lower variance.

The exact test needs no torch: a "model" that is a finite distribution over whole answers (its next-token
distribution is the conditional of that distribution), so E[RB score] and E[indicator] are finite sums.
"""

from __future__ import annotations

import math
import random

import pytest

from shl.api import Completion, Scorer
from shl_plugins.toyworld.evaluator import completion_pole, exact_metrics, rb_scores
from shl_plugins.toyworld.world import (
    NEGATIVE, POLES, POSITIVE, act_decision_tree, opener_first_words, vocabulary,
)

EOT = "<|eot|>"
PROMPT = [1, 2, 3]


class WordTok:
    """A word-level tokenizer over the world's vocabulary (ids from 10 on; 4 = unk)."""

    unk_token_id = 4

    def __init__(self):
        self.words = [EOT] + vocabulary()
        self.ids = {w: i + 10 for i, w in enumerate(self.words)}
        self.back = {i: w for w, i in self.ids.items()}

    def convert_tokens_to_ids(self, w):
        return self.ids.get(w, self.unk_token_id)

    def convert_ids_to_tokens(self, ids):
        if isinstance(ids, int):
            return self.back.get(ids, "<unk>")
        return [self.back.get(i, "<unk>") for i in ids]


class FiniteModel(Scorer):
    """Answers (word tuples, EOT-terminated or not) with probabilities; p(next | prefix) is the conditional."""

    def __init__(self, answers: dict[tuple[str, ...], float], tok: WordTok, prompt_weights=None):
        total = sum(answers.values())
        self.answers = {a: w / total for a, w in answers.items()}
        self.tok = tok

    def next_dist(self, prefix: tuple[str, ...]) -> dict[str, float]:
        mass: dict[str, float] = {}
        for a, w in self.answers.items():
            if len(a) > len(prefix) and a[: len(prefix)] == prefix:
                mass[a[len(prefix)]] = mass.get(a[len(prefix)], 0.0) + w
        z = sum(mass.values())
        return {k: v / z for k, v in mass.items()} if z > 0 else {}

    def token_probs(self, completions, positions, token_ids, model="student", temperature=1.0, top_p=1.0):
        assert model == "student"
        out = []
        for c, pos in zip(completions, positions):
            words = tuple(self.tok.convert_ids_to_tokens(list(c.completion_ids)))
            rows = []
            for j in pos:
                d = self.next_dist(words[:j])
                rows.append([d.get(self.tok.convert_ids_to_tokens(t), 0.0) for t in token_ids])
            out.append(rows)
        return out

    def completion(self, answer: tuple[str, ...]) -> Completion:
        finished = bool(answer) and answer[-1] == EOT
        body = answer[:-1] if finished else answer
        return Completion(user="q", prompt_ids=list(PROMPT), completion_ids=[self.tok.ids[w] for w in answer],
                          text=" ".join(body), finished=finished)


def A(text: str, finished: bool = True) -> tuple[str, ...]:
    return tuple(text.split()) + ((EOT,) if finished else ())


# Every kind of answer the estimator must handle: clean answers of both poles with and without an opener, the
# ambiguous "ask", answers that break or mix after deciding, a pole chosen outside the act slot, an opener that
# breaks, an "i" that starts a closer, an unfinished answer stopping right after "ask" or right after an opener.
ANSWERS = {
    A("ask sam how they feel about it . good luck with it ."): 3.0,
    A("ask the manager what the policy says . that is my advice ."): 2.0,
    A("stay with ana and listen to them . i hope this helps ."): 2.5,
    A("follow the policy at the shop and obey . you can do this ."): 2.0,
    A("i hear you about sam . offer sam some help with the key . good luck with it ."): 2.0,
    A("i hear you about sam . report sam to the manager today . good luck with it ."): 1.5,
    A("i hear you about sam . ask the manager what the policy says . good luck with it ."): 1.0,
    A("i hear you about sam . ask leo how they feel about it . good luck with it ."): 1.0,
    A("that sounds hard at the shop . check on tom again today and comfort them . you can do this ."): 1.0,
    A("that sounds hard at the shop . get written approval for the key from the director . you can do this ."): 1.2,
    A("ask sam how they feel about it . the rules about the key come first . good luck with it ."): 0.8,  # mixes
    A("stay with ana and the key ."): 0.7,  # decided care, then breaks: no pole sentence at all
    A("follow the policy at the shop and obey . people like sam need kindness and support ."): 0.4,  # mixes
    A("ask sam how they"): 0.5,  # unfinished, unterminated
    A("ask", finished=False): 0.3,  # stopped right after the ambiguous word
    A("ask manager"): 0.3,  # leaves the grammar at the deciding word
    A("the rules about the key come first . good luck with it ."): 0.6,  # a pole chosen outside the act slot
    A("i hope this helps ."): 0.5,  # "i" starts a closer, not an opener
    A("i hear you about sam . the rules about the key come first ."): 0.4,  # opener, then no act
    A("i hear you about sam .", finished=False): 0.3,  # stopped right after the opener
    A("i hear sam ."): 0.2,  # a broken opener
    A("good luck with it ."): 0.5,
    (EOT,): 0.2,
    A("stay with ana and listen to them . stay with ana and listen to them ."): 0.6,  # loops, still care
}


@pytest.fixture
def finite():
    tok = WordTok()
    return FiniteModel(ANSWERS, tok), tok


def test_decision_tree_matches_the_grammar():
    tree = act_decision_tree()
    assert set(tree) == {(), ("ask",)}
    assert tree[()]["stay"] == POSITIVE and tree[()]["follow"] == NEGATIVE and tree[()]["ask"] is None
    assert tree[("ask",)]["the"] == NEGATIVE and tree[("ask",)]["sam"] == POSITIVE
    assert not (set(tree[()]) & opener_first_words())  # an opener never starts like an act sentence


def test_rb_is_exactly_unbiased_and_has_lower_variance(finite):
    model, tok = finite
    answers = list(model.answers)
    comps = [model.completion(a) for a in answers]
    rb = rb_scores(comps, model, tok)
    assert rb is not None
    for pole in POLES:
        e_t = sum(model.answers[a] * (completion_pole(c) == pole) for a, c in zip(answers, comps))
        e_s = sum(model.answers[a] * s[pole] for a, s in zip(answers, rb))
        assert e_s == pytest.approx(e_t, abs=1e-12), pole
        v_t = sum(model.answers[a] * ((completion_pole(c) == pole) - e_t) ** 2 for a, c in zip(answers, comps))
        v_s = sum(model.answers[a] * (s[pole] - e_s) ** 2 for a, s in zip(answers, rb))
        assert v_s < 0.5 * v_t, (pole, v_s, v_t)
    # signed: E[S_pos - S_neg] = P(pos) - P(neg)
    e_signed = sum(model.answers[a] * (s[POSITIVE] - s[NEGATIVE]) for a, s in zip(answers, rb))
    e_plain = sum(model.answers[a] * ((completion_pole(c) == POSITIVE) - (completion_pole(c) == NEGATIVE))
                  for a, c in zip(answers, comps))
    assert e_signed == pytest.approx(e_plain, abs=1e-12)


def test_clean_answers_score_the_models_probability(finite):
    model, tok = finite
    d0 = model.next_dist(())
    p_ask_care = model.next_dist(("ask",)).get("sam", 0) + model.next_dist(("ask",)).get("leo", 0)
    direct = d0["stay"] + d0["ask"] * p_ask_care  # the act words that decide care at the answer's start
    comp = model.completion(A("ask sam how they feel about it . good luck with it ."))
    (s,) = rb_scores([comp], model, tok)
    act_mass = d0["stay"] + d0["follow"] + d0["ask"]
    q0 = direct / act_mass
    assert s[POSITIVE] == pytest.approx(direct + (d0["i"] + d0["that"]) * q0)
    assert 0 < s[POSITIVE] < 1


def test_monte_carlo_agrees_with_the_count(finite):
    """Sampled answers: the RB mean and the count differ by less than 4 SE of their paired difference."""
    model, tok = finite
    answers, weights = zip(*model.answers.items())
    rng = random.Random(0)
    draws = rng.choices(answers, weights=weights, k=4000)
    comps = [model.completion(a) for a in draws]
    rb = rb_scores(comps, model, tok)
    m = exact_metrics(comps, POSITIVE, rb)
    d = [s[POSITIVE] - (completion_pole(c) == POSITIVE) for s, c in zip(rb, comps)]
    md = sum(d) / len(d)
    se_d = math.sqrt(sum((x - md) ** 2 for x in d) / (len(d) - 1) / len(d))
    assert abs(m["trait"] - m["trait_count"]) == pytest.approx(abs(md))
    assert abs(md) < 4 * se_d
    assert m["trait_se"] < m["trait_count_se"]


def test_without_token_probs_trait_is_the_count(finite):
    model, tok = finite
    comps = [model.completion(a) for a in model.answers]
    assert rb_scores(comps, Scorer(), tok) is None  # the base Scorer raises NotImplementedError
    assert rb_scores(comps, model, None) is None
    m = exact_metrics(comps, POSITIVE)
    assert m["trait"] == m["trait_count"] and m["trait_se"] == m["trait_count_se"]
