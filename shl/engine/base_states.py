"""The base model's final hidden states at the completion positions of a round's completions, kept from the
filters' scoring so that the heal's reference need not run the base model on them again.

The filters score every completion of a round under the base model (``tail_ppl``: a full forward). When the
heal's reference is the base model (``heal.barrier.reference: base``, or ``prev`` in the first round, where the
student before the round is the base model), its rows at the completion positions are exactly those states
(the same tokens, the same positions), so ``ReferenceCache`` takes them from here. Values equal a fresh forward's
up to float reassociation (a different batch); bounded by ``budget_mb`` (completions past it are recomputed).
"""

from __future__ import annotations

from typing import Any, Sequence

from ..api import Completion

DEFAULT_BUDGET_MB = 256


def completion_key(c: Completion) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return tuple(c.prompt_ids), tuple(c.completion_ids)


class BaseStates:
    """Completion (prompt ids, completion ids) -> base final states at its completion positions [n_c, W]."""

    def __init__(self, budget_mb: int = DEFAULT_BUDGET_MB):
        self.budget = budget_mb * 2**20
        self.used = 0
        self.rows: dict[tuple, Any] = {}

    def keep(self, completion: Completion, rows: Any) -> None:
        key = completion_key(completion)
        size = rows.numel() * rows.element_size()
        if key in self.rows or self.used + size > self.budget:
            return
        self.rows[key] = rows.detach().clone()
        self.used += size

    def get(self, completions: Sequence[Completion]) -> list[Any] | None:
        """The rows of every completion, or None when any is missing."""
        found = [self.rows.get(completion_key(c)) for c in completions]
        return None if any(r is None for r in found) else found

    def clear(self) -> None:
        self.rows.clear()
        self.used = 0
