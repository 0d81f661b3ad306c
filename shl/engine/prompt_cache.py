"""The base model's prompts, computed once per run: scoring under the base model reuses each prompt's key/value
cache instead of running the prompt again.

The base model never changes during a run, and the same prompts come back again and again: every dose probe
scores the same probe prompts, every evaluation the same held-out prompts (under the neutral system prompt and
under each persona's). ``PromptCache`` holds, per prompt (its token ids), the key/value tensors of every layer
and the final hidden state of its last token; ``completion_logprobs`` then runs only the completion tokens, after
the cached prompts (left-padded to a common length, the attention mask hiding the padding, each row at its own
positions). Log-probabilities equal the full forward's up to float reassociation (tests: 1e-4 on every tiny
architecture it serves). The cache is bounded (``budget_mb``, least recently used first out) and serves only
models whose every layer is full attention with a plain key/value cache; anything else scores the full sequence.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Sequence

from ..api import Completion
from .lmhead import _parts, _separable, causal_lm

DEFAULT_BUDGET_MB = 512
FILL_STEP = 8  # prompts are run right-padded to a multiple of this many tokens
FILL_ROWS = 32  # prompts per forward when filling


def fill_width(n: int) -> int:
    """The width a prompt of ``n`` tokens is run at when it is cached: a function of ``n`` alone."""
    return -(-n // FILL_STEP) * FILL_STEP


def supports_prefix(model: Any) -> bool:
    """Whether ``model`` (under its adapters switched off) can resume from a cached prompt: a separable decoder and
    head, and full attention in every layer (no sliding windows, no recurrent state)."""
    if not _separable(model):
        return False
    config = getattr(causal_lm(model), "config", None)
    if config is None:
        return False
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    types = getattr(text, "layer_types", None)
    if types is not None and any(t != "full_attention" for t in types):
        return False
    if getattr(text, "sliding_window", None) and getattr(text, "use_sliding_window", True):
        return False
    return getattr(text, "model_type", "") not in ("gemma2", "gemma3", "gemma3_text", "mamba", "falcon_mamba")


def _cache_kwarg(decoder: Any) -> str:
    """The decoder's name for a key/value cache argument: ``cache`` (transformers 5) or ``past_key_values``."""
    import inspect

    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


def _layers(cache: Any) -> list[tuple[Any, Any]]:
    """(keys, values) per layer of a transformers key/value cache (v5 ``layers``, v4 ``key_cache`` lists)."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache))


class PromptCache:
    """Prompt token ids -> (per-layer keys and values [heads, T, d], final hidden state of the last token [W])."""

    def __init__(self, budget_mb: int = DEFAULT_BUDGET_MB):
        self.budget = budget_mb * 2**20
        self.used = 0
        self.entries: "OrderedDict[tuple[int, ...], tuple[list[tuple[Any, Any]], Any, int]]" = OrderedDict()

    def clear(self) -> None:
        self.entries.clear()
        self.used = 0

    def _store(self, key: tuple[int, ...], kv: list[tuple[Any, Any]], last: Any) -> None:
        size = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)
        size += last.numel() * last.element_size()
        if size > self.budget:
            return
        while self.used + size > self.budget and self.entries:
            _, (_, _, old) = self.entries.popitem(last=False)
            self.used -= old
        self.entries[key] = (kv, last, size)
        self.used += size

    def _fill(self, decoder: Any, prompts: list[tuple[int, ...]], device: Any) -> None:
        """Run the prompts not cached yet, in batches of a canonical width, so that a prompt's cached keys and values
        depend on that prompt alone, never on which prompts a call happened to ask for first (a run then gives the
        same numbers however its stages were shared or resumed).

        Each prompt runs right-padded to ``fill_width(len)`` with no attention mask: causal attention keeps its
        tokens from seeing the padding after them, and at one width a row's numbers do not depend on its batch
        companions (the matrix products are row-invariant, attention is per row), which
        ``test_prompt_cache_entries_do_not_depend_on_their_companions`` checks on every architecture served.
        Batched this way, a prompt costs a share of one forward instead of a forward of its own (on SmolLM2 on 2
        CPU cores: 24 prompts in 3.7 s, against 5.9 s one at a time)."""
        import torch

        missing = [p for p in dict.fromkeys(prompts) if p not in self.entries]
        by_width: dict[int, list[tuple[int, ...]]] = {}
        for p in missing:
            by_width.setdefault(fill_width(len(p)), []).append(p)
        for width, group in sorted(by_width.items()):
            for start in range(0, len(group), FILL_ROWS):
                part = group[start:start + FILL_ROWS]
                ids = torch.zeros((len(part), width), dtype=torch.long, device=device)
                for row, p in enumerate(part):
                    ids[row, : len(p)] = torch.tensor(p, dtype=torch.long, device=device)
                with torch.no_grad():
                    out = decoder(input_ids=ids, use_cache=True)
                layers = _layers(out.cache if hasattr(out, "cache") else out.past_key_values)
                for row, p in enumerate(part):
                    n = len(p)
                    self._store(p, [(k[row, :, :n].clone(), v[row, :, :n].clone()) for k, v in layers],
                                out.last_hidden_state[row, n - 1].clone())

    def logprobs(self, model: Any, tokenizer: Any, completions: Sequence[Completion], batch_size: int,
                 score: Any, keep_states: Any = None) -> list[list[float]]:
        """Per completion, the log-probabilities of its tokens given its prompt (cached) and earlier tokens.
        ``score(states [M, W], targets [M]) -> [M]`` maps final states to log-probabilities; ``keep_states`` (a
        ``BaseStates``) keeps each completion's rows."""
        import torch
        from transformers import DynamicCache

        from .batching import length_batches, pad_id

        decoder = _parts(model)[0]
        device = next(model.parameters()).device
        pad = pad_id(tokenizer)
        out: list[list[float]] = [[] for _ in completions]
        todo = [i for i, c in enumerate(completions) if c.completion_ids]
        for batch in length_batches([len(completions[i].completion_ids) for i in todo], batch_size):
            idx = [todo[b] for b in batch]
            keys = [tuple(completions[i].prompt_ids) for i in idx]
            self._fill(decoder, keys, device)
            if any(k not in self.entries for k in keys):  # over the budget: the full forward scores this batch
                return None  # type: ignore[return-value]
            for k in keys:
                self.entries.move_to_end(k)
            p_max = max(len(k) for k in keys)
            c_len = [len(completions[i].completion_ids) for i in idx]
            width = max(c_len)
            cache = DynamicCache()
            for layer in range(len(self.entries[keys[0]][0])):
                ks, vs = [], []
                for k in keys:
                    key_t, val_t = self.entries[k][0][layer]
                    gap = p_max - key_t.shape[1]
                    ks.append(torch.nn.functional.pad(key_t, (0, 0, gap, 0)))
                    vs.append(torch.nn.functional.pad(val_t, (0, 0, gap, 0)))
                cache.update(torch.stack(ks), torch.stack(vs), layer)
            ids = torch.full((len(idx), width), pad, dtype=torch.long, device=device)
            mask = torch.zeros((len(idx), p_max + width), dtype=torch.long, device=device)
            pos = torch.zeros((len(idx), width), dtype=torch.long, device=device)
            for row, (i, k) in enumerate(zip(idx, keys)):
                n = c_len[row]
                ids[row, :n] = torch.tensor(completions[i].completion_ids, device=device)
                mask[row, p_max - len(k):p_max + n] = 1
                pos[row] = len(k) + torch.arange(width, device=device)
            with torch.no_grad():
                states = decoder(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                                 **{_cache_kwarg(decoder): cache}).last_hidden_state
            rows, tgts = [], []
            for row, (i, k) in enumerate(zip(idx, keys)):
                n = c_len[row]
                rows.append(torch.cat([self.entries[k][1][None].to(states.dtype), states[row, : n - 1]]))
                tgts.append(ids[row, :n])
                if keep_states is not None:
                    keep_states.keep(completions[i], rows[-1])
            lp = score(torch.cat(rows), torch.cat(tgts)).tolist()
            at = 0
            for i, n in zip(idx, c_len):
                out[i] = lp[at:at + n]
                at += n
        return out
