"""Step lambda schedule."""

from __future__ import annotations

from pydantic import Field

from shl import api


class Step(api.Schedule):
    """lam_r = lam for rounds r < at, then lam * factor (round indices count from 0)."""

    name = "step"
    description = "lam until round `at`, then lam * factor"

    class Params(api.Params):
        at: int = Field(1, ge=0, le=1000, description="first round index (from 0) that uses lam * factor")
        factor: float = Field(0.5, ge=0.0, description="multiplier of lam from round `at` on")

    def lam(self, round_index: int, base_lam: float) -> float:
        return float(base_lam) * (self.params.factor if round_index >= self.params.at else 1.0)
