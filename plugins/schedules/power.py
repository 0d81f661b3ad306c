"""Power-law lambda schedule."""

from __future__ import annotations

from pydantic import Field

from shl import api


class Power(api.Schedule):
    """lam_r = lam * (1 + r) ** p (r counts from 0; p = -1 gives lam, lam/2, lam/3, ...)."""

    name = "power"
    description = "lam * (1 + round) ** p"

    class Params(api.Params):
        p: float = Field(-1.0, ge=-64.0, le=64.0, description="exponent: < 0 decays, > 0 grows, 0 is constant")

    def lam(self, round_index: int, base_lam: float) -> float:
        return float(base_lam) * (1.0 + round_index) ** self.params.p
