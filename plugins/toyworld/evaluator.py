"""The ``toy_exact`` evaluator: exact coherence and trait of the toy world's completions, with standard errors.

``trait`` is Rao-Blackwellised when the scorer provides the sampler's next-token probabilities
(``Scorer.token_probs``): instead of the 0/1 "chose the positive pole" indicator of each completion, it averages
the model's probability of choosing the positive pole where the pole is decided (``rb_scores``), an estimate
with the same expectation and a smaller variance. The plain count stays available as ``trait_count``.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

from pydantic import Field

from shl.api import Completion, EvalContext, Evaluator, Params

from .grammar import NEGATIVE, POLES, POSITIVE
from .parser import act_decision_tree, is_opener, opener_first_words, parse, pole_of


def _se_share(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n > 0 else float("nan")


def _mean_se(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error (population variance / n, as the binomial SE of a share)."""
    n = len(xs)
    m = sum(xs) / n
    var = sum((x - m) ** 2 for x in xs) / n
    return m, math.sqrt(max(var, 0.0) / n)


def completion_pole(c: Completion) -> Optional[str]:
    """The pole a completion counts for in ``trait``: its parse's pole, else ``pole_of`` (unparsed text too)."""
    p = parse(c.text)
    return p.pole if p.ok else pole_of(c.text)


def exact_metrics(
    completions: Sequence[Completion], positive: str = POSITIVE, rb: Optional[Sequence[dict[str, float]]] = None
) -> dict[str, float]:
    """coherence = share that parse (and finished); trait_count = share choosing the positive pole among ALL
    completions; trait_coherent = that share among the coherent ones only (NaN when none is; ``n_coherent`` of
    them), so that a trait gain that comes from coherence alone shows; trait_signed = positive share - negative
    share (``positive`` names the positive pole). Each
    with its standard error (binomial for shares; for the signed share, the SE of the mean of per-completion
    scores in {+1, 0, -1}).

    ``rb``: per completion, its Rao-Blackwellised pole scores ``{pole: score}`` (``rb_scores``). Given, ``trait``
    and ``trait_signed`` are the means of those scores (same expectation as the counts, lower variance) with
    the SE of that mean; without, they are the plain counts (``trait`` = ``trait_count``)."""
    n = len(completions)
    if n == 0:
        raise ValueError("toy_exact: no completions to evaluate")
    if positive not in (POSITIVE, NEGATIVE):
        raise ValueError(f"toy_exact: the positive pole must be '{POSITIVE}' or '{NEGATIVE}', not '{positive}'")
    if rb is not None and len(rb) != n:
        raise ValueError(f"toy_exact: {len(rb)} Rao-Blackwellised scores for {n} completions")
    negative = NEGATIVE if positive == POSITIVE else POSITIVE
    ok, pos, neg, pos_ok = 0, 0, 0, 0
    for c in completions:
        p = parse(c.text)
        coherent = bool(c.finished and p.ok)
        ok += coherent
        pole = p.pole if p.ok else pole_of(c.text)
        pos += pole == positive
        neg += pole == negative
        pos_ok += coherent and pole == positive
    coh, tr, ng = ok / n, pos / n, neg / n
    signed = tr - ng
    var_signed = (tr + ng) - signed * signed  # E[s^2] - E[s]^2 for s in {+1, 0, -1}
    out = {
        "coherence": coh,
        "coherence_se": _se_share(coh, n),
        "trait": tr,
        "trait_se": _se_share(tr, n),
        "trait_signed": signed,
        "trait_signed_se": math.sqrt(max(var_signed, 0.0) / n),
        "trait_count": tr,
        "trait_count_se": _se_share(tr, n),
        "trait_coherent": pos_ok / ok if ok else math.nan,
        "trait_coherent_se": _se_share(pos_ok / ok, ok) if ok else math.nan,
        "n_coherent": float(ok),
    }
    if rb is not None:
        out["trait"], out["trait_se"] = _mean_se([s[positive] for s in rb])
        out["trait_signed"], out["trait_signed_se"] = _mean_se([s[positive] - s[negative] for s in rb])
    return out


# ------------------------------------------------------------------------------------------------ Rao-Blackwell


def _word_ids(tokenizer: Any, words: Sequence[str]) -> Optional[dict[str, int]]:
    """word -> token id when every word is a single token of the tokenizer (the toy world's), else None."""
    if tokenizer is None or not hasattr(tokenizer, "convert_tokens_to_ids"):
        return None
    out = {}
    for w in words:
        i = tokenizer.convert_tokens_to_ids(w)
        if i is None or i == tokenizer.unk_token_id or tokenizer.convert_ids_to_tokens(i) != w:
            return None
        out[w] = int(i)
    return out


def rb_scores(
    completions: Sequence[Completion], scorer: Any, tokenizer: Any, model: str = "student"
) -> Optional[list[dict[str, float]]]:
    """Per completion, Rao-Blackwellised pole scores ``{pole: S}`` with E[S_pole] = P(the completion counts for
    ``pole``), exactly; None when the scorer or the tokenizer cannot provide them (then use the counts).

    The pole of a toy answer is decided inside its ``act`` sentence (``parser.act_decision_tree``: at its first
    word, or at the word after "ask"), which starts the answer or follows one complete opener sentence. With
    T the plain indicator (``completion_pole(c) == pole``), the score is a martingale control variate:

        S = T - sum_j [V(x_<=j) - E_{t ~ p(.|x_<j)} V(x_<j, t)]

    over the positions j where V, a function of the token prefix, depends on the sampled token. Each term has
    mean zero whatever V is (p is the sampler's own next-token distribution, from ``scorer.token_probs`` in the
    same model state, temperature and top-p), so E[S] = E[T]. V is the pole the prefix has decided: 1 or 0
    once the act sentence's deciding word is sampled, the model's probability of deciding ``pole`` while it is
    undecided (after "ask"), q0 during an opener (the pole share among act words at the answer's start), 0
    otherwise. So S = E_0 + [reached] (A' - q0) + (T - V_final): E_0 and A' the model's probabilities of
    deciding ``pole`` at the answer's start (an opener counting q0) and right after the opener, and T - V_final,
    which is 0 unless the answer later breaks or mixes the pole it decided (or chose a pole elsewhere).
    Completions that never reach the act sentence keep their plain indicator T (minus a known constant).
    """
    if not completions:
        return []
    tree = act_decision_tree()
    openers = opener_first_words()
    words = sorted(set().union(*(set(ch) for ch in tree.values())) | openers)
    ids = _word_ids(tokenizer, words)
    if ids is None or not hasattr(scorer, "token_probs"):
        return None
    token_ids = [ids[w] for w in words]
    col = {w: k for k, w in enumerate(words)}
    leaves = [u for u, ch in tree.items() if all(v is not None for v in ch.values())]

    toks = [tokenizer.convert_ids_to_tokens(list(c.completion_ids)) for c in completions]
    # the base prefixes (answer tokens before the act sentence) where the act sentence can start
    queries: list[Completion] = []
    qpos: list[list[int]] = []
    qkey: dict[tuple, int] = {}  # (prompt, base prefix, leaf) -> query index

    def ask(c: Completion, base: list[int]) -> None:
        for leaf in leaves:
            key = (tuple(c.prompt_ids), tuple(base), leaf)
            if key not in qkey:
                qkey[key] = len(queries)
                queries.append(Completion(user=c.user, prompt_ids=list(c.prompt_ids),
                                          completion_ids=list(base) + [ids[w] for w in leaf], text="", finished=False))
                qpos.append([len(base) + k for k in range(len(leaf) + 1)])

    opener_end: list[Optional[int]] = []
    for c, t in zip(completions, toks):
        jo = None
        if t and t[0] in openers and "." in t:
            d = t.index(".") + 1
            if d < len(t) and is_opener(t[:d]):
                jo = d  # the act slot after a complete opener, reached (a token was sampled there)
        opener_end.append(jo)
        if t:
            ask(c, [])
        if jo is not None:
            ask(c, list(c.completion_ids[:jo]))
    try:
        probs = scorer.token_probs(queries, qpos, token_ids, model=model)
    except NotImplementedError:
        return None

    def values(c: Completion, base: list[int]) -> tuple[dict[tuple, dict[str, float]], dict[tuple, list[float]]]:
        """val[u][pole]: probability of deciding ``pole`` from undecided node u on; dist[u]: p(words | u)."""
        dist: dict[tuple, list[float]] = {}
        for leaf in leaves:
            rows = probs[qkey[(tuple(c.prompt_ids), tuple(base), leaf)]]
            for k in range(len(leaf) + 1):
                dist.setdefault(leaf[:k], rows[k])
        val: dict[tuple, dict[str, float]] = {}

        def v(u: tuple) -> dict[str, float]:
            if u not in val:
                acc = {p: 0.0 for p in POLES}
                for w, child in tree[u].items():
                    pw = dist[u][col[w]]
                    sub = {p: float(child == p) for p in POLES} if child is not None else v(u + (w,))
                    for p in POLES:
                        acc[p] += pw * sub[p]
                val[u] = acc
            return val[u]

        v(())
        return val, dist

    def walk(t: list[str], start: int, val: dict[tuple, dict[str, float]]) -> dict[str, float]:
        """V after the sampled act words from ``start`` on (the decided pole, or the value where they stop)."""
        node: tuple = ()
        j = start
        while j < len(t):
            if t[j] not in tree[node]:
                return {p: 0.0 for p in POLES}
            child = tree[node][t[j]]
            if child is not None:
                return {p: float(child == p) for p in POLES}
            node, j = node + (t[j],), j + 1
        return val[node]

    out: list[dict[str, float]] = []
    for c, t, jo in zip(completions, toks, opener_end):
        pole = completion_pole(c)
        T = {p: float(pole == p) for p in POLES}
        if not t:
            out.append(T)
            continue
        val0, dist0 = values(c, [])
        mass_act = sum(dist0[()][col[w]] for w in tree[()])
        mass_open = sum(dist0[()][col[w]] for w in openers)
        q0 = {p: (val0[()][p] / mass_act if mass_act > 0 else 0.0) for p in POLES}
        s = {p: val0[()][p] + mass_open * q0[p] for p in POLES}  # E_0: the expected V at the answer's first token
        if t[0] in tree[()]:
            vf = walk(t, 0, val0)
        elif t[0] in openers:
            if jo is not None:
                val1, _ = values(c, list(c.completion_ids[:jo]))
                for p in POLES:
                    s[p] += val1[()][p] - q0[p]
                vf = walk(t, jo, val1)
            else:
                vf = q0
        else:
            vf = {p: 0.0 for p in POLES}
        out.append({p: s[p] + T[p] - vf[p] for p in POLES})
    return out


class ToyExactEvaluator(Evaluator):
    """Exact toy-world evaluation: samples completions for held-out eval prompts (neutral system prompt) and
    parses them. Metrics: coherence, trait (positive pole = the data's positive persona), trait_signed, each
    with ``_se``; ``trait`` and ``trait_signed`` are Rao-Blackwellised (``rb_scores``: the model's probability
    of choosing the pole where the grammar decides it, from the sampler's own distribution in the evaluated
    state, steered at the steered point) when the scorer provides ``token_probs``, else plain counts;
    ``trait_count`` (with ``_se``) is always the plain share of completions that chose the positive pole, and
    ``trait_coherent`` (with ``_se``, and ``n_coherent``) the plain share among the coherent completions."""

    name = "toy_exact"
    description = "toy world: exact coherence (grammar parse) and trait (pole chosen), with standard errors"
    metrics = ("coherence", "coherence_se", "trait", "trait_se", "trait_signed", "trait_signed_se", "toy_n",
               "trait_count", "trait_count_se", "trait_coherent", "trait_coherent_se", "n_coherent")

    class Params(Params):
        n_prompts: int = Field(200, ge=1, le=100_000, description="how many eval prompts to use (from the start of the list)")
        n_per_prompt: int = Field(1, ge=1, le=1000, description="completions sampled per prompt")
        n_samples: int = Field(3, ge=0, le=10_000, description="completions appended to the round's samples")

    def judge_coherent(self, completions, ctx, cache):
        """Exact: the completion finished and parses under the grammar (what ``coherence`` counts)."""
        return [bool(c.finished and parse(c.text).ok) for c in completions]

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        users = list(ctx.data.eval_prompts[: self.params.n_prompts])
        completions = ctx.generate(users, n=self.params.n_per_prompt)
        positive = ctx.data.positive.name if ctx.data.positive.name in (POSITIVE, NEGATIVE) else POSITIVE
        rb = rb_scores(completions, ctx.scorer, ctx.tokenizer, model="student")
        metrics = exact_metrics(completions, positive, rb)
        for k, c in enumerate(completions[: self.params.n_samples]):
            p = parse(c.text)
            ctx.samples.append({
                "user": c.user,
                "text": c.text,
                "evaluator": self.name,
                "parses": bool(c.finished and p.ok),
                "pole": p.pole if p.ok else pole_of(c.text),
                "reason": "" if (c.finished and p.ok) else (p.reason or "unfinished"),
                **({"trait_rb": rb[k][positive]} if rb is not None else {}),
            })
        metrics["toy_n"] = float(len(completions))
        return metrics
