"""Batched scoring of completions: log-probabilities of their tokens, and the sampler's next-token probabilities.

"base" is the base model (all adapters off, steering paused). "student" is the student in its CURRENT state:
its adapters, and the steering when a steering context is active (the engine's "steered" evaluation point), so
a "steered_" metric that uses the scorer measures the steered student, like the completions it samples.

Memory: only the positions a score needs go through the LM head, in chunks of ``SCORE_CHUNK_POSITIONS``
(``lmhead.final_states``), so no batch x length x vocabulary tensor is built. A CUDA out-of-memory error becomes
a one-line ``RunError`` naming the batch-size knob.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Iterator, Sequence

from ..api import Completion, Scorer
from . import progress
from .batching import length_batches, pad_id, right_pad
from .generate import sampling_probs
from .lmhead import _identity, chunks, final_states

SCORE_CHUNK_POSITIONS = 256  # positions per LM-head chunk when scoring
SCORER_OOM_KNOBS = "the scorer's batch size (generate.batch_size for filters, eval.batch_size for evaluators)"


def _oom(exc: BaseException) -> Exception:
    from ..errors import RunError

    return RunError(f"scoring: CUDA out of memory; lower {SCORER_OOM_KNOBS}")


def _forward_batches(
    model: Any, tokenizer: Any, seqs: Sequence[Sequence[int]], batch_size: int
) -> Iterator[tuple[list[int], Any, Any, Any]]:
    """(indices, ids, final states, head) per length batch of the (right padded) sequences, under no_grad:
    ``head(states[rows])`` gives the logits of the chosen positions (lmhead.final_states)."""
    import torch

    device = next(model.parameters()).device
    batches = length_batches([len(s) for s in seqs], batch_size)
    for b, idx in enumerate(batches):
        if progress.active():
            progress.tick(f"scoring batch {b + 1}/{len(batches)} ({len(idx)} sequences)")
        ids, mask = right_pad([seqs[i] for i in idx], pad_id(tokenizer), device)
        try:
            with torch.no_grad():
                states, head = final_states(model, ids, mask)
        except torch.cuda.OutOfMemoryError as exc:
            raise _oom(exc) from None
        yield idx, ids, states, head


def _chunked(rows: Any, fn: Any) -> Any:
    """``fn(rows[a:b], a, b)`` over chunks of rows (no_grad), concatenated."""
    import torch

    try:
        with torch.no_grad():
            return torch.cat([fn(rows[a:b], a, b) for a, b in chunks(rows.shape[0], SCORE_CHUNK_POSITIONS)])
    except torch.cuda.OutOfMemoryError as exc:
        raise _oom(exc) from None


def _score_rows(head: Any) -> Any:
    """``(states [M, W], targets [M]) -> log-probabilities [M]`` through ``head``, in chunks of positions."""
    import torch

    def score(h: Any, tgt: Any) -> Any:
        def part(rows: Any, a: int, b: int) -> Any:
            lg = head(rows).float()
            return lg.gather(-1, tgt[a:b, None]).squeeze(-1) - torch.logsumexp(lg, dim=-1)

        return _chunked(h, part)

    return score


def completion_logprobs(model: Any, tokenizer: Any, completions: Sequence[Completion], batch_size: int,
                        prompt_cache: Any = None, keep_states: Any = None) -> list[list[float]]:
    """log p(completion token | prompt, previous completion tokens), float32, one list per completion.

    Only ever given for the base model: ``prompt_cache`` (a ``PromptCache``): the prompts' key/value caches are
    reused and only completion tokens run (when the model supports it; see ``prompt_cache.supports_prefix``);
    ``keep_states`` (a ``BaseStates``): each completion's final states at its completion positions are kept, for
    a heal whose reference is the base model."""
    import torch

    if prompt_cache is not None:
        from .lmhead import _parts
        from .prompt_cache import supports_prefix

        if supports_prefix(model):
            out = prompt_cache.logprobs(model, tokenizer, completions, batch_size, _score_rows(_parts(model)[2]),
                                        keep_states)
            if out is not None:
                return out
    out: list[list[float]] = [[] for _ in completions]
    seqs = [list(c.prompt_ids) + list(c.completion_ids) for c in completions]
    for idx, ids, states, head in _forward_batches(model, tokenizer, seqs, batch_size):
        rows, tgts, owners = [], [], []
        for row, i in enumerate(idx):
            n_p, n_c = len(completions[i].prompt_ids), len(completions[i].completion_ids)
            if n_c == 0:
                continue
            rows.append(states[row, n_p - 1 : n_p - 1 + n_c])
            tgts.append(ids[row, n_p : n_p + n_c])
            owners.append((i, n_c))
            if keep_states is not None and head is not _identity:
                keep_states.keep(completions[i], rows[-1])
        if not rows:
            continue
        h, tgt = torch.cat(rows), torch.cat(tgts)
        del states

        def score(part: Any, a: int, b: int) -> Any:
            lg = head(part).float()
            return lg.gather(-1, tgt[a:b, None]).squeeze(-1) - torch.logsumexp(lg, dim=-1)

        lp = _chunked(h, score).tolist()
        pos = 0
        for i, n_c in owners:
            out[i] = lp[pos : pos + n_c]
            pos += n_c
    return out


def completion_token_probs(
    model: Any,
    tokenizer: Any,
    completions: Sequence[Completion],
    positions: Sequence[Sequence[int]],
    token_ids: Sequence[int],
    batch_size: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> list[list[list[float]]]:
    """out[i][k][m]: the sampler's probability of ``token_ids[m]`` as completion token ``positions[i][k]`` of
    completion i (given its prompt and completion tokens before that position). Sequences are cut after the
    last requested position, so only what the probabilities depend on is run."""
    import torch

    if len(positions) != len(completions):
        raise ValueError(f"token_probs: {len(completions)} completions but {len(positions)} position lists")
    tids = [int(t) for t in token_ids]
    seqs: list[list[int]] = []
    for c, pos in zip(completions, positions):
        n_c = len(c.completion_ids)
        for j in pos:
            if not 0 <= j <= n_c:
                raise ValueError(f"token_probs: position {j} outside [0, {n_c}] for a completion of {n_c} tokens")
        if pos and not c.prompt_ids and min(pos) == 0:
            raise ValueError("token_probs: position 0 needs a non-empty prompt")
        cut = max(pos) if pos else 0
        seqs.append(list(c.prompt_ids) + list(c.completion_ids[:cut]))
    out: list[list[list[float]]] = [[] for _ in completions]
    todo = [i for i, p in enumerate(positions) if p]
    if not todo:
        return out
    index = torch.tensor(tids, dtype=torch.long)
    sub = [seqs[i] for i in todo]
    for idx, _ids, states, head in _forward_batches(model, tokenizer, sub, batch_size):
        for row, k in enumerate(idx):
            i = todo[k]
            n_p = len(completions[i].prompt_ids)
            rows = torch.tensor([n_p - 1 + j for j in positions[i]], dtype=torch.long, device=states.device)
            h = states[row].index_select(0, rows)
            probs = _chunked(h, lambda part, a, b: sampling_probs(head(part), temperature, top_p)
                             .index_select(-1, index.to(part.device)))
            out[i] = probs.cpu().tolist()
    return out


class EngineScorer(Scorer):
    """The engine's scorer. ``model="base"``: adapters off and steering paused. ``model="student"``: the model as
    it is now (current adapters; steering as the engine left it: active while the steered point is evaluated,
    paused or absent otherwise), i.e. the state ``EvalContext.generate(model="student")`` samples from."""

    def __init__(self, model: Any, tokenizer: Any, adapters: Any, steerer: Any = None, batch_size: int = 32,
                 prompt_cache: Any = None, base_states: Any = None):
        self.model = model
        self.tokenizer = tokenizer
        self.adapters = adapters
        self.steerer = steerer
        self.batch_size = batch_size
        self.prompt_cache = prompt_cache  # the run's PromptCache: the base model's prompts, reused
        self.base_states = base_states  # the round's BaseStates: base final states kept for the heal's reference
        self._base_logprobs: dict[tuple[tuple[int, ...], tuple[int, ...]], list[float]] = {}

    def _state(self, model: str):
        if model not in ("base", "student"):
            raise ValueError(f"scorer model must be 'base' or 'student', got {model!r}")
        if model == "student":
            return nullcontext(), nullcontext()
        pause = self.steerer.paused() if self.steerer is not None else nullcontext()
        return pause, self.adapters.disabled()

    def logprobs(self, completions: Sequence[Completion], model: str = "base") -> list[list[float]]:
        """The base model's scores are kept for this scorer's life (the base never changes): a completion that
        a filter scored and an evaluator's ``judge_coherent`` scores again runs once."""
        pause, state = self._state(model)
        if model != "base":
            with pause, state:
                return completion_logprobs(self.adapters.model, self.tokenizer, completions, self.batch_size)
        memo = self._base_logprobs
        keys = [(tuple(c.prompt_ids), tuple(c.completion_ids)) for c in completions]
        todo = [(k, c) for k, c in zip(keys, completions) if k not in memo]  # duplicates too: batches as always
        if todo:
            with pause, state:
                scored = completion_logprobs(self.adapters.model, self.tokenizer, [c for _, c in todo],
                                             self.batch_size, self.prompt_cache, self.base_states)
            for (k, _), lp in zip(todo, scored):
                memo.setdefault(k, lp)
        return [list(memo[k]) for k in keys]

    def remember_base(self, completions: Sequence[Completion]) -> None:
        """Take the base model's own log-probabilities that generation recorded (``meta["logprobs"]`` of
        completions the base model sampled, ``generate(logprobs=True)``) as their base scores: scoring them again
        would recompute what the sampler already computed. The meta entry is removed."""
        for c in completions:
            lp = c.meta.pop("logprobs", None)
            if lp is not None and len(lp) == len(c.completion_ids):
                self._base_logprobs.setdefault((tuple(c.prompt_ids), tuple(c.completion_ids)), list(lp))

    def token_probs(
        self,
        completions: Sequence[Completion],
        positions: Sequence[Sequence[int]],
        token_ids: Sequence[int],
        model: str = "student",
        temperature: float = 1.0,
        top_p: float = 1.0,
    ) -> list[list[list[float]]]:
        pause, state = self._state(model)
        with pause, state:
            return completion_token_probs(
                self.adapters.model, self.tokenizer, completions, positions, token_ids, self.batch_size,
                temperature=temperature, top_p=top_p,
            )
