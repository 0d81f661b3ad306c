"""Judge-free trait of the student's OWN answers: which persona would more likely have written them."""

from __future__ import annotations

import dataclasses
import math
import statistics

from pydantic import Field

from shl import api


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


class PersonaLogOdds(api.Evaluator):
    """How much more the base model expects the student's own answers from the positive persona than from the
    negative one, relative to the base model's own answers, in nats per token.

    The student answers the first ``n_prompts`` held-out eval prompts under the neutral system prompt
    (``ctx.generate``: in its current state, so steered at the steered point). Each answer c to prompt u is scored
    by the BASE model as a reply under the positive persona's system prompt and under the negative one:
    odds(c) = mean log p_base(c | positive, u) - mean log p_base(c | negative, u), the means over c's tokens (the
    end-of-turn token included). The same is done once per run for the base model's own answers (cached), and
    ``trait_logodds`` = mean over prompts of odds(student answer) - odds(base answer): exactly 0 for the base model,
    > 0 when the student writes as the positive persona would. Prompt by prompt the two answers share their
    prompt and their random numbers (``generate(key=...)``), so ``trait_logodds_se`` is the paired standard error
    over prompts.
    ``trait_logodds_raw`` is the mean odds of the student's answers. Unlike ``trait_margin`` it reads what the
    student writes, so a student that stops early or loses the thread is measured as it is.
    Cost per call: the student's answers (shared with ``coherence``) and two base-model scorings of them (under
    each persona's system prompt); once per run, the base model's answers and their two scorings.
    """

    name = "persona_logodds"
    description = "base-model log-odds (positive vs negative persona) of the student's own answers, minus the base's"
    metrics = ("trait_logodds", "trait_logodds_se", "trait_logodds_raw")

    class Params(api.Params):
        n_prompts: int = Field(32, ge=2, le=100_000, description="held-out eval prompts used (the first n)")

    def _odds(self, ctx: api.EvalContext, completions: list[api.Completion]) -> list[float]:
        data = ctx.data
        rendered: dict[tuple[str, str], list[int]] = {}
        batches = {}
        for pole, system in (("pos", data.positive.system), ("neg", data.negative.system)):
            batch = []
            for c in completions:
                key = (pole, c.user)
                if key not in rendered:
                    rendered[key] = list(ctx.render(c.user, system))
                batch.append(dataclasses.replace(c, prompt_ids=rendered[key]))
            batches[pole] = [_mean(lp) if lp else math.nan for lp in ctx.scorer.logprobs(batch, model="base")]
        return [p - n for p, n in zip(batches["pos"], batches["neg"])]

    def evaluate(self, ctx: api.EvalContext) -> dict[str, float]:
        users = list(ctx.data.eval_prompts[: self.params.n_prompts])
        if len(users) < 2:
            raise ValueError("persona_logodds: the data needs at least 2 eval_prompts")
        answers = ctx.generate(users, key="answers")
        odds = self._odds(ctx, answers)
        key = f"base_odds:{len(users)}"
        if key not in ctx.cache:  # the base model's answers, with the same random numbers as every student's
            ctx.cache[key] = odds if ctx.round == 0 and not ctx.steered else self._odds(
                ctx, ctx.generate(users, model="base", key="answers"))
        base = ctx.cache[key]
        diffs = [s - b for s, b in zip(odds, base) if not (math.isnan(s) or math.isnan(b))]
        if len(diffs) < 2:
            raise ValueError("persona_logodds: fewer than 2 answers could be scored")
        for c, o in list(zip(answers, odds))[:2]:
            ctx.samples.append({"user": c.user, "text": c.text, "evaluator": self.name, "logodds": o})
        return {
            "trait_logodds": _mean(diffs),
            "trait_logodds_se": statistics.stdev(diffs) / math.sqrt(len(diffs)),
            "trait_logodds_raw": _mean([o for o in odds if not math.isnan(o)]),
        }
