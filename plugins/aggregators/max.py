"""Max barrier aggregator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shl import api

from ._common import as_kl

if TYPE_CHECKING:  # pragma: no cover
    import torch


class Max(api.Aggregator):
    """D = max(KL_i) over the masked positions (float32): only the worst position gets a gradient."""

    name = "max"
    description = "maximum of the per-position KL"

    class Params(api.Params):
        pass

    def aggregate(self, kl: torch.Tensor) -> torch.Tensor:
        return as_kl(kl, self.name).max()
