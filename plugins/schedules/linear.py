"""Linear-decay lambda schedule."""

from __future__ import annotations

from pydantic import Field

from shl import api


class Linear(api.Schedule):
    """lam_r = lam * max(floor, 1 - r / rounds): lam at round 0, down by lam/rounds per round, never below lam*floor."""

    name = "linear"
    description = "linear decay lam * max(floor, 1 - round / rounds)"

    class Params(api.Params):
        rounds: int = Field(4, ge=1, le=1000, description="rounds after which lam would reach 0 (before the floor)")
        floor: float = Field(0.0, ge=0.0, le=1.0, description="lowest fraction of lam")

    def lam(self, round_index: int, base_lam: float) -> float:
        return float(base_lam) * max(self.params.floor, 1.0 - round_index / self.params.rounds)
