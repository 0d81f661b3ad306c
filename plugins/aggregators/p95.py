"""Quantile barrier aggregator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from shl import api

from ._common import as_kl

if TYPE_CHECKING:  # pragma: no cover
    import torch


class P95(api.Aggregator):
    """D = the q-quantile of KL_i (torch.quantile, linear interpolation; q = 0.95 by default), float32."""

    name = "p95"
    description = "q-quantile (default 0.95) of the per-position KL"

    class Params(api.Params):
        q: float = Field(0.95, ge=0.0, le=1.0, description="quantile of the per-position KL")

    def aggregate(self, kl: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.quantile(as_kl(kl, self.name), self.params.q)
