"""Generic trait evaluator: how much more the student prefers the positive persona's writing than base does."""

from __future__ import annotations

import dataclasses
import math
import statistics

from pydantic import Field

from shl import api


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def content_ids(c: api.Completion) -> list[int]:
    """The completion's tokens without its end-of-turn token (the last token of a finished completion)."""
    return list(c.completion_ids[:-1] if c.finished and c.completion_ids else c.completion_ids)


class TraitMargin(api.Evaluator):
    """The student's preference shift towards the positive persona's own writing, in nats per token.

    For each of the first ``n_prompts`` held-out eval prompts u, the BASE model writes c_pos under the positive
    persona's system prompt and c_neg under the negative one (``ctx.generate(..., model="base")``, generated
    once per run and cached, so every round is scored on the same texts). Both are cut to the same number of
    tokens, k = the shorter one's content length (the end-of-turn token never counts: it would weigh 1/length and
    carry length, not persona), and scored as answers to u under the NEUTRAL system prompt (``ctx.render``):
    margin_M(u) = mean log p_M(c_pos[:k] | u) - mean log p_M(c_neg[:k] | u), for M = student (in its current state:
    steered when the engine evaluates the steered point, so ``steered_trait`` measures the steered student) and
    M = base. Prompts where either completion has no content token are skipped.

    Whether the pair shows its personas is checked once per run: the base model scores each cut text as a reply
    under the positive and under the negative persona's system prompt, and the pair "reads as its personas" when
    c_pos's log-odds (positive minus negative, per token) exceeds c_neg's. ``trait_pairs_persona`` is that share
    of the pairs; with ``persona_pairs_only`` the other pairs are left out of ``trait``.

    Metrics: ``trait`` = mean over the pairs of margin_student - margin_base (0 for the base model itself; > 0 when
    the student moved towards the positive persona), ``trait_se`` (its standard error over pairs, nan with one),
    ``trait_raw`` = mean margin_student, ``trait_pairs`` (pairs used) and ``trait_pairs_persona``.

    Limits, by construction: the measure is teacher-forced on the BASE model's texts, so it never sees what the
    student itself writes (a student that collapses or stops early can still score a positive trait; read
    ``persona_logodds`` beside it); and any perturbation of the student moves the two texts' log-probabilities
    by different amounts, so read it beside a random-vector control (``steer.method: random``, ``shl sweep``).
    Cost per call: one student scoring of 2 x ``n_prompts`` cut texts; once per run, 2 x ``n_prompts`` base-model
    persona completions, their scoring under both personas' system prompts and the base margins.
    """

    name = "trait_margin"
    description = "student-minus-base log-prob margin (nats/token) of positive- over negative-persona completions"
    metrics = ("trait", "trait_se", "trait_raw", "trait_pairs", "trait_pairs_persona")

    class Params(api.Params):
        n_prompts: int = Field(32, ge=1, le=100_000, description="held-out eval prompts used (the first n)")
        persona_pairs_only: bool = Field(False, description="use only the pairs whose texts read as their personas "
                                         "under the base model (see trait_pairs_persona)")

    def _pairs(self, ctx: api.EvalContext, users: list[str]):
        """(pairs of equal-length cut completions, persona check per pair), once per run."""
        data = ctx.data
        key = f"persona_pairs:{len(users)}"
        if key not in ctx.cache:
            pos = ctx.generate(users, system=data.positive.system, model="base")
            neg = ctx.generate(users, system=data.negative.system, model="base")
            pairs = []
            for cp, cn in zip(pos, neg):
                k = min(len(content_ids(cp)), len(content_ids(cn)))
                if k:
                    pairs.append(tuple(dataclasses.replace(c, completion_ids=content_ids(c)[:k], finished=False)
                                       for c in (cp, cn)))
            if not pairs:
                raise ValueError("trait_margin: every persona completion was empty (no token before end-of-turn)")
            odds = []
            for system in (data.positive.system, data.negative.system):
                batch = [dataclasses.replace(c, prompt_ids=list(ctx.render(c.user, system))) for pair in pairs
                         for c in pair]
                odds.append([_mean(lp) for lp in ctx.scorer.logprobs(batch, model="base")])
            lo = [p - n for p, n in zip(*odds)]  # per text: log-odds positive vs negative persona
            ctx.cache[key] = (pairs, [lo[i] > lo[i + 1] for i in range(0, len(lo), 2)])
        return ctx.cache[key]

    def evaluate(self, ctx: api.EvalContext) -> dict[str, float]:
        data = ctx.data
        users = list(data.eval_prompts[: self.params.n_prompts])
        if not users:
            raise ValueError("trait_margin: the data has no eval_prompts")
        pairs, persona_ok = self._pairs(ctx, users)
        used = [p for p, ok in zip(pairs, persona_ok) if ok or not self.params.persona_pairs_only]
        if not used:
            raise ValueError(f"trait_margin: none of the {len(pairs)} persona pairs reads as its personas under the "
                             f"base model (set persona_pairs_only: false to use them anyway)")
        neutral = data.neutral_system or None
        rendered: dict[str, list[int]] = {}
        batch = []
        for cp, cn in used:
            for c in (cp, cn):
                if c.user not in rendered:
                    rendered[c.user] = list(ctx.render(c.user, neutral))
                batch.append(dataclasses.replace(c, prompt_ids=rendered[c.user]))
        margins = {}
        base_key = f"base_margins:{len(users)}:{self.params.persona_pairs_only}"
        for model in ("student", "base"):
            if model == "base" and base_key in ctx.cache:  # the base model and its texts never change within a run
                margins[model] = ctx.cache[base_key]
                continue
            lps = [_mean(lp) for lp in ctx.scorer.logprobs(batch, model=model)]
            margins[model] = [lps[i] - lps[i + 1] for i in range(0, len(lps), 2)]
            if model == "base":
                ctx.cache[base_key] = margins[model]
        shift = [s - b for s, b in zip(margins["student"], margins["base"])]
        for c, persona in ((used[0][0], data.positive.name), (used[0][1], data.negative.name)):
            ctx.samples.append({"user": c.user, "text": c.text, "evaluator": self.name, "persona": persona})
        se = statistics.stdev(shift) / math.sqrt(len(shift)) if len(shift) > 1 else math.nan
        return {"trait": _mean(shift), "trait_se": se, "trait_raw": _mean(margins["student"]),
                "trait_pairs": float(len(used)), "trait_pairs_persona": sum(persona_ok) / len(persona_ok)}
