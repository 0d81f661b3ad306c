"""Mean barrier aggregator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shl import api

from ._common import as_kl

if TYPE_CHECKING:  # pragma: no cover
    import torch


class Mean(api.Aggregator):
    """D = mean(KL_i) over the masked positions (float32). A few looping tokens get diluted by the rest."""

    name = "mean"
    description = "mean of the per-position KL"

    class Params(api.Params):
        pass

    def aggregate(self, kl: torch.Tensor) -> torch.Tensor:
        return as_kl(kl, self.name).mean()
