"""Softmax-max (smooth maximum) barrier aggregator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from shl import api

if TYPE_CHECKING:  # pragma: no cover
    import torch


class SoftmaxMax(api.Aggregator):
    """D = T * log(mean_i exp(KL_i / T)) = T * logsumexp(KL / T) - T * log(n), in float32.

    A smooth maximum between the mean and the max: mean(KL) <= D <= max(KL). As the temperature T goes to 0,
    D tends to max(KL) (all the gradient on the worst position); as T grows, D tends to mean(KL). Every
    position gets a gradient, weighted by softmax(KL / T).

    Computed as m + T * log1p(mean(expm1((KL - m) / T))) with m = max(KL), the same value rearranged: it
    never overflows (the exponents are <= 0) and stays accurate in float32 for large T, where the plain
    logsumexp form loses the mean to cancellation.
    """

    name = "softmax_max"
    description = "smooth max T * log(mean(exp(KL / T))) of the per-position KL"

    class Params(api.Params):
        temperature: float = Field(
            1.0, gt=0.0, description="softness T: small -> close to max(KL), large -> close to mean(KL)"
        )

    def aggregate(self, kl: torch.Tensor) -> torch.Tensor:
        import torch

        kl = kl.reshape(-1).to(torch.float32)
        if kl.numel() == 0:
            raise ValueError(f"aggregator '{self.name}' received no KL positions (empty mask)")
        t = float(self.params.temperature)
        m = kl.detach().max()
        return m + t * torch.log1p(torch.expm1((kl - m) / t).mean())
