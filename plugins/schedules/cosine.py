"""Cosine-decay lambda schedule."""

from __future__ import annotations

import math

from pydantic import Field

from shl import api


class Cosine(api.Schedule):
    """Cosine decay from lam (round 0) to lam * floor (round rounds-1 and after).

    lam_r = lam * (floor + (1 - floor) * 0.5 * (1 + cos(pi * min(r, rounds-1) / max(rounds-1, 1)))).
    With rounds = 1 it is lam in every round.
    """

    name = "cosine"
    description = "cosine decay from lam to lam * floor over a number of rounds"

    class Params(api.Params):
        rounds: int = Field(4, ge=1, le=1000, description="rounds over which lam decays; later rounds stay at lam * floor")
        floor: float = Field(0.0, ge=0.0, le=1.0, description="final fraction of lam")

    def lam(self, round_index: int, base_lam: float) -> float:
        p = self.params
        t = min(round_index, p.rounds - 1) / max(p.rounds - 1, 1)
        return float(base_lam) * (p.floor + (1.0 - p.floor) * 0.5 * (1.0 + math.cos(math.pi * t)))
