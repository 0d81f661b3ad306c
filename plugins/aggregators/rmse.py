"""Root-mean-square barrier aggregator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from shl import api

from ._common import as_kl

if TYPE_CHECKING:  # pragma: no cover
    import torch


class RMSE(api.Aggregator):
    """D = sqrt(mean(KL_i^2) + eps), in float32.

    Weighs large per-position KL more than the mean does; eps keeps the gradient finite when every KL is 0
    (so D >= sqrt(eps) even then).
    """

    name = "rmse"
    description = "sqrt(mean(KL^2) + eps) of the per-position KL"

    class Params(api.Params):
        eps: float = Field(1e-8, gt=0.0, description="added under the square root so the gradient is finite at KL = 0")

    def aggregate(self, kl: torch.Tensor) -> torch.Tensor:
        kl = as_kl(kl, self.name)
        return (kl.square().mean() + self.params.eps).sqrt()
