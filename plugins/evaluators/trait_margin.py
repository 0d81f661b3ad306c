"""Generic trait evaluator: how much more the student prefers the positive persona's writing than base does."""

from __future__ import annotations

import dataclasses
import math
import statistics

from pydantic import Field

from shl import api


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


class TraitMargin(api.Evaluator):
    """The student's preference shift towards the positive persona's own writing, in nats per token.

    For each of the first ``n_prompts`` held-out eval prompts u, the BASE model writes c_pos under the positive
    persona's system prompt and c_neg under the negative one (``ctx.generate(..., model="base")``, generated
    once per run and cached, so every round is scored on the same texts). Both are
    then scored as answers to u under the NEUTRAL system prompt (``ctx.render``):
    margin_M(u) = mean log p_M(c_pos | u) - mean log p_M(c_neg | u), the means over each completion's tokens,
    for M = student (in its current state: steered when the engine evaluates the steered point, so
    ``steered_trait`` measures the steered student) and M = base (adapters and steering off). Metrics: ``trait`` = mean over prompts of margin_student - margin_base
    (0 for the base model itself; > 0 when the student moved towards the positive persona), ``trait_se`` (its
    standard error over prompts, nan with one prompt) and ``trait_raw`` = mean margin_student.
    Prompts where either completion is empty are skipped.
    """

    name = "trait_margin"
    description = "student-minus-base log-prob margin (nats/token) of positive- over negative-persona completions"
    metrics = ("trait", "trait_se", "trait_raw")

    class Params(api.Params):
        n_prompts: int = Field(32, ge=1, le=100_000, description="held-out eval prompts used (the first n)")

    def evaluate(self, ctx: api.EvalContext) -> dict[str, float]:
        data = ctx.data
        users = list(data.eval_prompts[: self.params.n_prompts])
        if not users:
            raise ValueError("trait_margin: the data has no eval_prompts")
        key = f"persona_completions:{len(users)}"
        if key not in ctx.cache:
            ctx.cache[key] = (
                ctx.generate(users, system=data.positive.system, model="base"),
                ctx.generate(users, system=data.negative.system, model="base"),
            )
        pos, neg = ctx.cache[key]
        pairs = [(cp, cn) for cp, cn in zip(pos, neg) if cp.completion_ids and cn.completion_ids]
        if not pairs:
            raise ValueError("trait_margin: every persona completion was empty")
        neutral = data.neutral_system or None
        rendered: dict[str, list[int]] = {}
        batch = []
        for cp, cn in pairs:
            for c in (cp, cn):
                if c.user not in rendered:
                    rendered[c.user] = list(ctx.render(c.user, neutral))
                batch.append(dataclasses.replace(c, prompt_ids=rendered[c.user]))
        margins = {}
        for model in ("student", "base"):
            cached = ctx.cache.get(f"{key}:base_margins") if model == "base" else None
            if cached is not None:  # the base model and its texts never change within a run
                margins[model] = cached
                continue
            lps = [_mean(lp) for lp in ctx.scorer.logprobs(batch, model=model)]
            margins[model] = [lps[i] - lps[i + 1] for i in range(0, len(lps), 2)]
            if model == "base":
                ctx.cache[f"{key}:base_margins"] = margins[model]
        shift = [s - b for s, b in zip(margins["student"], margins["base"])]
        for c, persona in ((pairs[0][0], data.positive.name), (pairs[0][1], data.negative.name)):
            ctx.samples.append({"user": c.user, "text": c.text, "evaluator": self.name, "persona": persona})
        se = statistics.stdev(shift) / math.sqrt(len(shift)) if len(shift) > 1 else math.nan
        return {"trait": _mean(shift), "trait_se": se, "trait_raw": _mean(margins["student"])}
