"""Constant lambda schedule."""

from __future__ import annotations

from shl import api


class Constant(api.Schedule):
    """lam_r = lam in every round."""

    name = "constant"
    description = "the same barrier weight in every round"

    class Params(api.Params):
        pass

    def lam(self, round_index: int, base_lam: float) -> float:
        return float(base_lam)
