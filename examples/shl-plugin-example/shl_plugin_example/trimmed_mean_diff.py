"""Trimmed mean-difference steering vector: mean-diff, robust to a few outlying context pairs."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import Field

from shl import api

if TYPE_CHECKING:  # pragma: no cover
    import torch


class TrimmedMeanDiff(api.SteeringMethod):
    """v = mean over the kept pairs of (pos_i - neg_i), after dropping the pairs with the largest differences.

    With n pairs, the floor(trim * n) pairs whose difference d_i = pos_i - neg_i has the largest L2 norm are
    dropped (at least one pair is always kept); v is the mean of the remaining d_i, which equals
    mean(pos) - mean(neg) over the kept pairs. ``trim = 0`` is exactly ``mean_diff``. Raw scale, like
    ``mean_diff``, so doses stay comparable across methods.
    """

    name = "trimmed_mean_diff"
    description = "mean difference after dropping the trim fraction of pairs with the largest difference norms"

    class Params(api.Params):
        trim: float = Field(
            0.1, ge=0.0, lt=0.5,
            description="fraction of context pairs, those with the largest ||pos_i - neg_i||, dropped before averaging",
        )

    def fit(self, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        import torch

        if pos.ndim != 2 or pos.shape != neg.shape:
            raise ValueError(
                f"{self.name} expects pos and neg of the same shape [n, d]; "
                f"got {tuple(pos.shape)} and {tuple(neg.shape)}"
            )
        n = pos.shape[0]
        if n == 0:
            raise ValueError(f"{self.name} received no activation pairs")
        diff = pos.float() - neg.float()
        n_drop = min(math.floor(self.params.trim * n), n - 1)
        if n_drop > 0:
            # stable sort: ties are broken by pair index, so the result is deterministic
            order = torch.sort(diff.norm(dim=1), stable=True).indices
            diff = diff[order[: n - n_drop]]
        return diff.mean(dim=0)
