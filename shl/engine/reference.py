"""The frozen reference of a heal round (the previous student or the base model): its log-probabilities at the
completion positions, and the per-round cache of them.

The reference is computed on the same model object with adapters switched, never a weight copy. It is held as its
final hidden states at the selected positions ([M, hidden], model dtype) and turned into log-probs chunk by chunk
through the shared, frozen head (``ReferenceRows``); when the head itself carries LoRA adapters, or the model's
logits are not "head(final hidden state)", the reference's log-probs are materialised instead (correct, not
bounded).

The reference is frozen for the whole round, so its rows are computed once per completion, during the first epoch,
and reused by later epochs when they fit ``heal.ref_cache_mb`` (0 = recompute every epoch; ``ReferenceCache``).
Reused values are the very tensors the first epoch computed, so the loss equals the recomputing path up to float
reassociation (batch composition changes). The budget check counts what the log-probabilities would take
(float32 vocabulary rows), so the cache decision does not depend on which form is held, and the memory it uses is
at most that (hidden / vocabulary of it when hidden states are cached).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Sequence

from ..api import Completion
from .heal_batches import BatchTensors
from .lmhead import _identity, _parts, chunks, final_states, head_is_adapted


def ref_cache_bytes(completions: Sequence[Completion], vocab_size: int) -> int:
    """Bytes the reference cache needs: one float32 row of the vocabulary per completion token."""
    return sum(len(c.completion_ids) for c in completions) * int(vocab_size) * 4


def _vocab_size(model: Any) -> int | None:
    try:
        return int(model.get_output_embeddings().weight.shape[0])
    except Exception:
        return None


def _head_logprobs(head: Callable[[Any], Any], rows: Any) -> Any:
    import torch

    return torch.log_softmax(head(rows).float(), dim=-1)


@dataclass
class ReferenceRows:
    """The frozen reference at the selected positions: ``rows`` [M, W] and ``to_logprobs``, which maps a slice of
    rows to float32 log-probabilities [n, V]. Usually the reference's final hidden states and the shared frozen
    LM head (M x hidden held, not M x vocabulary); the log-probabilities themselves (identity map) when the head
    is adapted or not separable from the model's forward."""

    rows: Any
    to_logprobs: Callable[[Any], Any]

    def logprobs(self, start: int, stop: int) -> Any:
        return self.to_logprobs(self.rows[start:stop])

    def split(self, sizes: list[int]) -> list["ReferenceRows"]:
        return [ReferenceRows(part, self.to_logprobs) for part in self.rows.split(sizes)]

    @staticmethod
    def cat(parts: Sequence["ReferenceRows"]) -> "ReferenceRows":
        import torch

        return ReferenceRows(torch.cat([p.rows for p in parts]), parts[0].to_logprobs)

    def materialise(self, chunk_positions: int = 128) -> Any:
        """All float32 log-probabilities [M, V] (M x vocabulary: for callers that need them whole)."""
        import torch

        with torch.no_grad():
            return torch.cat([self.logprobs(a, b) for a, b in chunks(self.rows.shape[0], chunk_positions)])


def reference_logprobs(
    stack: Any, bt: BatchTensors, reference: str, lazy: bool = False, chunk_positions: int = 128
) -> Any:
    """float32 log-probabilities [M, V] of the reference (base or previous student) at the selected positions;
    with ``lazy``, a ``ReferenceRows`` that yields them chunk by chunk (what the heal uses: M x hidden held).

    ``disabled()`` / ``only()`` save and restore ``requires_grad`` (PEFT's disable_adapter/set_adapter turn it back
    on for every active adapter)."""
    import torch

    ref_ctx = stack.disabled() if reference == "base" else stack.only(stack.previous)
    with torch.no_grad(), ref_ctx as ref_model:
        states, head = final_states(ref_model, bt.ids, bt.mask)
        rows = states[bt.select]
        del states
        ref = ReferenceRows(rows, partial(_head_logprobs, head))
        if head is _identity or head_is_adapted(ref_model):  # the head depends on the adapter state: log-probs now
            ref = ReferenceRows(ref.materialise(chunk_positions), _identity)
    return ref if lazy else ref.materialise(chunk_positions)


class ReferenceCache:
    """Completion index -> its ``ReferenceRows``, filled during the first epoch and reused by later ones; on only
    when the round has more than one epoch, ``ref_cache_mb`` > 0 and the rows fit that budget.

    ``base_states`` (a ``BaseStates``: the base model's final states the filters' scoring kept): when the reference
    is the base model (``reference: base``, or ``prev`` before any adapter is history), a batch whose completions
    are all there takes its rows from it instead of running the base model again."""

    def __init__(self, model: Any, completions: Sequence[Completion], epochs: int, ref_cache_mb: int,
                 base_states: Any = None):
        vocab = _vocab_size(model)
        self.enabled = (
            epochs > 1 and ref_cache_mb > 0 and vocab is not None
            and ref_cache_bytes(completions, vocab) <= ref_cache_mb * 2**20
        )
        self.rows: dict[int, ReferenceRows] = {}
        self.base_states = base_states

    def _from_base_states(self, stack: Any, batch: Sequence[Completion], reference: str) -> ReferenceRows | None:
        import torch

        if self.base_states is None or (reference != "base" and stack.previous):
            return None
        model = stack.model
        if head_is_adapted(model):
            return None
        parts = _parts(model)
        kept = self.base_states.get(batch)
        if parts is None or kept is None:
            return None
        return ReferenceRows(torch.cat(kept), partial(_head_logprobs, parts[2]))

    def batch(self, stack: Any, bt: BatchTensors, chosen: list[int], batch: Sequence[Completion], reference: str,
              chunk_positions: int) -> ReferenceRows:
        """The reference rows of one batch (completions ``chosen``): from the cache when every one is held, else
        from the base states the filters kept (a base reference), else computed (and held, when the cache is
        on)."""
        if self.enabled and all(i in self.rows for i in chosen):
            return ReferenceRows.cat([self.rows[i] for i in chosen])
        ref = self._from_base_states(stack, batch, reference)
        if ref is None:
            ref = reference_logprobs(stack, bt, reference, lazy=True, chunk_positions=chunk_positions)
        if self.enabled:
            for i, part in zip(chosen, ref.split([len(c.completion_ids) for c in batch])):
                self.rows[i] = part
        return ref

    def clear(self) -> None:
        self.rows.clear()
