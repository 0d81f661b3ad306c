"""Matched tau (``heal.barrier.tau_mode: matched``): the barrier threshold at which the barrier is active on a
chosen share of its own D values in the first heal round's first epoch, found by trial passes of that epoch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from ..api import Aggregator, Completion
from ..config.models import HealConfig
from ..errors import RunError
from .heal import heal_round


class _RecordingAggregator:
    """Wraps an aggregator and records every D it returns (the barrier's own values, as the heal computes them)."""

    def __init__(self, inner: Aggregator):
        self.inner = inner
        self.values: list[float] = []

    def aggregate(self, kl: Any) -> Any:
        d = self.inner.aggregate(kl)
        self.values.append(float(d.detach().reshape(-1)[0]) if hasattr(d, "detach") else float(d))
        return d


@dataclass
class TauCalibration:
    """Matched tau: ``tau``; ``share``, the share of D values above it in the trial epoch run at that tau (which
    the real heal's first epoch reproduces); ``values``, those D values; ``trials``, (tau, share) of every trial
    with the barrier on."""

    tau: float
    share: float
    values: list[float]
    trials: list[tuple[float, float]]


def calibrate_tau(
    stack: Any,
    tokenizer: Any,
    completions: Sequence[Completion],
    heal: HealConfig,
    aggregator: Aggregator,
    params: list[Any],
    seed: int,
    round_index: int,
    *,
    lam: float,
    max_trials: int = 4,
) -> TauCalibration:
    """Matched tau: the tau at which the barrier is active on 1 - ``quantile`` (``heal.barrier.tau_quantile``) of
    the D values of this round's first heal epoch (within one sampling standard error, or the closest of
    ``max_trials`` tries). ``lam``: this round's barrier weight (the schedule's value), which the trials use.

    The D values are the barrier's own: trial passes of this round's first heal epoch on the kept completions the
    heal trains on, in the batches and order the heal uses, against the same reference, KL direction and
    aggregation level (``level=sequence``: one D per sequence; ``level=batch``: one D per batch). After each
    trial the adapter's parameters and the RNG state are restored, so every trial, and the real heal, start from
    the same state. The first trial runs with the barrier off and gives tau_0 = quantile of its D values; an
    active barrier then pulls D down, so further trials run with the barrier on at tau_k and set tau_(k+1) to the
    quantile of their D values (a fixed-point iteration), until the share of D > tau_k in the trial at tau_k is
    within sampling error of 1 - quantile. The chosen tau is one a trial ran at, so the real heal's first epoch
    repeats that trial (exactly on CPU) and its barrier is active on the reported share.
    """
    import torch

    quantile = heal.barrier.tau_quantile
    one_epoch = heal.model_copy(update={"epochs": 1})
    device = next(stack.model.parameters()).device

    def trial(trial_lam: float, tau: float) -> list[float]:
        recorder = _RecordingAggregator(aggregator)
        saved = [p.detach().clone() for p in params]
        try:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                heal_round(stack, tokenizer, completions, one_epoch, recorder, params, seed, round_index,
                           lam=trial_lam, tau=tau)
        finally:
            with torch.no_grad():
                for p, s in zip(params, saved):
                    p.copy_(s)
                    p.grad = None
        if not recorder.values:
            raise RunError("heal: tau calibration saw no D values (no completions to train on)", status="failed")
        return recorder.values

    def q_of(values: list[float]) -> float:
        return float(torch.quantile(torch.tensor(values, dtype=torch.float64), quantile))

    def share(values: list[float], tau: float) -> float:
        return sum(v > tau for v in values) / len(values)

    values = trial(0.0, 0.0)
    tau = q_of(values)
    target = 1.0 - quantile
    if lam == 0:  # the barrier never bites: the barrier-off epoch is the real one
        return TauCalibration(tau, share(values, tau), values, [])
    tol = max(math.sqrt(quantile * (1 - quantile) / len(values)), 1.0 / len(values))
    tried: list[TauCalibration] = []
    for _ in range(max(max_trials, 1)):
        values = trial(lam, tau)
        tried.append(TauCalibration(tau, share(values, tau), values, []))
        if abs(tried[-1].share - target) <= tol:
            break
        tau = _next_tau(tried, q_of(values), target)
    best = min(tried, key=lambda c: abs(c.share - target))
    best.trials = [(c.tau, c.share) for c in tried]
    return best


def _next_tau(tried: list[TauCalibration], fixed_point: float, target: float) -> float:
    """The next tau to try: a secant step in log tau through the last two trials' (tau, share) when they
    differ in share (faster), kept within a factor 4 of the tried range; else the fixed-point step."""
    if len(tried) < 2 or fixed_point <= 0:
        return fixed_point
    a, b = tried[-2], tried[-1]
    if a.tau <= 0 or b.tau <= 0 or a.share == b.share or a.tau == b.tau:
        return fixed_point
    la, lb = math.log(a.tau), math.log(b.tau)
    guess = lb + (target - b.share) * (lb - la) / (b.share - a.share)
    lo = min(c.tau for c in tried) / 4
    hi = max(c.tau for c in tried) * 4
    return min(max(math.exp(guess), lo), hi)
