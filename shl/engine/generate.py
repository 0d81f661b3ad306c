"""Batched sampling (left padding) from the model in its current state, steered or not."""

from __future__ import annotations

from typing import Any, Sequence

from ..api import Completion
from . import progress
from .batching import left_pad, length_batches, pad_id
from .chat import stop_token_ids
from .seeds import Stream, seeded_global_rng, torch_generator


GENERATE_IMPL = "fast"  # the default of generate(impl=None); benchmarks flip it to "hf" to compare


def clean_generation_config(model: Any, tokenizer: Any) -> None:
    """Replace the model's generation defaults: plain sampling, no repetition penalty, no top-k."""
    from transformers import GenerationConfig

    stops = sorted(stop_token_ids(tokenizer, model))
    model.generation_config = GenerationConfig(
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        repetition_penalty=1.0,
        pad_token_id=pad_id(tokenizer),
        eos_token_id=stops,
        bos_token_id=tokenizer.bos_token_id,
    )


def sampling_probs(logits: Any, temperature: float = 1.0, top_p: float = 1.0) -> Any:
    """The distribution ``generate`` samples the next token from, given next-token logits ``[..., vocab]``.

    The same transform ``model.generate`` applies with our settings (``do_sample``, no top-k, no repetition
    penalty): logits upcast to float32, the sampler's own warpers (``_warpers``: transformers'
    ``TemperatureLogitsWarper`` when temperature != 1, then ``TopPLogitsWarper`` when top_p < 1), then softmax.
    Returns float32 probabilities. ``Scorer.token_probs`` uses it, so keep it in step with the sampler.
    """
    shape = logits.shape
    scores = logits.float().reshape(-1, shape[-1])
    for w in _warpers(temperature, top_p):
        scores = w(None, scores)
    return scores.softmax(dim=-1).reshape(shape)


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[tuple[str, list[int]]],
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 64,
    seed: int = 0,
    steerer: Any = None,
    impl: str | None = None,
    logprobs: bool = False,
) -> list[Completion]:
    """Sample one completion per ``(user, prompt_ids)``; deterministic for ``seed`` on CPU.

    Batch b draws from the stream ``Stream.BATCH`` (b) under ``seed``. ``impl="fast"`` (default) is shl's own
    decode loop (:func:`sample_batch`): a preallocated KV cache and finished rows dropped from the forward; it
    samples with a ``torch.Generator`` on the model's device. ``impl="hf"`` calls ``model.generate`` (kept for
    comparison: it draws the same random numbers, see :func:`sample_batch`), which samples from torch's global
    RNG only, so that RNG is seeded from the same stream for the call and restored after it.
    ``logprobs``: with ``impl="fast"``, each completion's ``meta["logprobs"]`` holds the generating model's
    log-probability of each of its tokens (the raw distribution, before temperature and top-p), as the model
    computed it while sampling; the sampled tokens are the same either way."""
    import torch

    impl = impl or GENERATE_IMPL
    if impl not in ("fast", "hf"):
        raise ValueError(f"generate: impl must be 'fast' or 'hf', got {impl!r}")
    device = next(model.parameters()).device
    stops = stop_token_ids(tokenizer, model)
    pid = pad_id(tokenizer)
    out: list[Completion | None] = [None] * len(prompts)
    batches = length_batches([len(p[1]) for p in prompts], batch_size)
    for b, idx in enumerate(batches):
        if progress.active():
            progress.tick(f"generation batch {b + 1}/{len(batches)} ({len(idx)} prompts)")
        ids, mask = left_pad([prompts[i][1] for i in idx], pid, device)
        if steerer is not None:
            steerer.prefill_mask = mask
        try:
            with torch.no_grad():
                if impl == "fast":
                    gen = torch_generator(seed, Stream.BATCH, b, device=device)
                    lps: list[list[float]] | None = [] if logprobs else None
                    new = sample_batch(model, ids, mask, max_new_tokens=max_new_tokens, temperature=temperature,
                                       top_p=top_p, pad_id=pid, stops=stops, steerer=steerer, generator=gen,
                                       logprobs=lps)
                else:
                    with seeded_global_rng(device, seed, Stream.BATCH, b):
                        hf_out = model.generate(
                            input_ids=ids,
                            attention_mask=mask,
                            do_sample=True,
                            temperature=temperature,
                            top_p=top_p,
                            top_k=0,
                            repetition_penalty=1.0,
                            max_new_tokens=max_new_tokens,
                            pad_token_id=pid,
                            eos_token_id=sorted(stops),
                        )
                    new = hf_out[:, ids.shape[1]:].tolist()
                    lps = None
        finally:
            if steerer is not None:
                steerer.prefill_mask = None
        for row, i in enumerate(idx):
            toks = new[row]
            finished = False
            for j, t in enumerate(toks):
                if t in stops:
                    toks = toks[: j + 1]
                    finished = True
                    break
            body = toks[:-1] if finished else toks
            out[i] = Completion(
                user=prompts[i][0],
                prompt_ids=list(prompts[i][1]),
                completion_ids=toks,
                text=tokenizer.decode(body, skip_special_tokens=True).strip(),
                finished=finished,
                meta={"logprobs": lps[row][: len(toks)]} if lps is not None else {},
            )
    return [c for c in out if c is not None]


# ---------------------------------------------------------------------------------------------- the decode loop


def _lm(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (whose forward passes keyword arguments through)."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def _preallocated_cache(model: Any, capacity: int) -> Any:
    """A DynamicCache whose full-attention layers write into preallocated buffers instead of concatenating."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    class PreallocatedLayer(DynamicLayer):
        """A DynamicLayer that writes into a [B, H, capacity, D] buffer and exposes the filled part as a view."""

        def __init__(self, cap: int):
            super().__init__()
            self.cap = cap
            self.length = 0
            self.kbuf = self.vbuf = None

        def update(self, key_states, value_states, *args, **kwargs):
            n = key_states.shape[-2]
            if self.kbuf is None:
                self.lazy_initialization(key_states, value_states)
                cap = max(self.cap, n)
                b, h = key_states.shape[:2]
                self.kbuf = key_states.new_empty((b, h, cap, key_states.shape[-1]))
                self.vbuf = value_states.new_empty((b, value_states.shape[1], cap, value_states.shape[-1]))
            elif self.length + n > self.kbuf.shape[-2]:  # never with a correct capacity; stay correct anyway
                grow = max(n, self.kbuf.shape[-2])
                self.kbuf = _grow_buffer(self.kbuf, grow)
                self.vbuf = _grow_buffer(self.vbuf, grow)
            self.kbuf[:, :, self.length : self.length + n].copy_(key_states)
            self.vbuf[:, :, self.length : self.length + n].copy_(value_states)
            self.length += n
            self.keys = self.kbuf[:, :, : self.length]
            self.values = self.vbuf[:, :, : self.length]
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length

        def batch_select_indices(self, indices) -> None:
            if self.kbuf is not None:
                self.kbuf = self.kbuf.index_select(0, indices)
                self.vbuf = self.vbuf.index_select(0, indices)
                self.keys = self.kbuf[:, :, : self.length]
                self.values = self.vbuf[:, :, : self.length]

        def reset(self) -> None:
            self.kbuf = self.vbuf = None
            self.length = 0
            super().reset()

        def crop(self, tokens_to_remove: int) -> None:
            raise NotImplementedError("the preallocated generation cache cannot be cropped")

    cache = DynamicCache(config=_lm(model).config.get_text_config(decoder=True))
    for i, layer in enumerate(cache.layers):
        if type(layer) is DynamicLayer:
            cache.layers[i] = PreallocatedLayer(capacity)
    return cache


def _grow_buffer(buf: Any, extra: int) -> Any:
    import torch

    pad = buf.new_empty((*buf.shape[:2], extra, buf.shape[-1]))
    return torch.cat([buf, pad], dim=-2)


def _warpers(temperature: float, top_p: float) -> list[Any]:
    """The logits warpers transformers' sampling applies for these settings, in its order (same arithmetic)."""
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

    out = []
    if temperature != 1.0:
        out.append(TemperatureLogitsWarper(temperature))
    if top_p < 1.0:
        out.append(TopPLogitsWarper(top_p))
    return out


def sample_batch(
    model: Any,
    ids: Any,
    mask: Any,
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    pad_id: int,
    stops: set[int],
    steerer: Any = None,
    compact: float = 0.125,
    generator: Any = None,
    logprobs: list[list[float]] | None = None,
) -> list[list[int]]:
    """Sample continuations of a left-padded batch; returns the new tokens per row (pad after a stop token).

    Same model inputs and the same random numbers as ``model.generate`` with plain multinomial sampling: the
    prefill and every decode step get the same ids, 2-D attention mask (dropped when there is no padding),
    position ids and ``logits_to_keep=1``; the warpers are transformers' own; and each step samples from the full
    [batch, vocab] distribution (finished rows too), so the per-row random numbers do not depend on which rows are
    still running. Two differences, both only in cost: the KV cache is preallocated (no concatenation per step),
    and once at least ``compact`` of the running rows have finished, the finished rows leave the forward (the
    cache is compacted). A row's logits then come from a smaller batch, which on some BLAS back ends is not
    bitwise the same product; on CPU here it is (tests compare the token streams with ``model.generate``).
    ``generator``: the ``torch.Generator`` (on the batch's device) to sample from; a generator seeded with s draws
    the numbers the global RNG draws after ``torch.manual_seed(s)``, which is what ``model.generate`` uses.
    ``logprobs``: a list to fill with each row's log-probability of its new tokens under the raw distribution
    (before the warpers); computed after the draw, so the draws do not change.
    """
    import inspect

    import torch

    lm = _lm(model)
    device = ids.device
    batch, width = ids.shape
    extra: dict[str, Any] = {}
    if "logits_to_keep" in inspect.signature(lm.forward).parameters:
        extra["logits_to_keep"] = 1
    use_pos = "position_ids" in inspect.signature(lm.forward).parameters
    attn = None if bool((mask == 1).all()) else mask
    pos = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    cache = _preallocated_cache(model, width + max_new_tokens)
    warpers = _warpers(temperature, top_p)
    stop_t = torch.tensor(sorted(stops), device=device)
    rows = torch.arange(batch, device=device)  # batch rows still in the forward
    unfinished = torch.ones(batch, dtype=torch.bool, device=device)
    out = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
    lp_out = torch.zeros((batch, max_new_tokens), dtype=torch.float32, device=device) if logprobs is not None else None
    inputs: dict[str, Any] = {"input_ids": ids, "attention_mask": attn}
    if use_pos:
        inputs["position_ids"] = pos
    last = pos[:, -1:]
    steps = 0
    for step in range(max_new_tokens):
        logits = model(**inputs, cache=cache, use_cache=True, **extra).logits[:, -1].to(dtype=torch.float32)
        if step == 0 and steerer is not None:
            steerer.prefill_mask = None  # decode steps steer every (new) position
        if rows.shape[0] < batch:
            full = logits.new_zeros((batch, logits.shape[-1]))
            full[rows] = logits
            logits = full
        raw = logits
        for w in warpers:
            logits = w(None, logits)
        probs = torch.nn.functional.softmax(logits, dim=-1)
        nxt = torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)
        if lp_out is not None:
            lp_out[:, step] = torch.log_softmax(raw, dim=-1).gather(1, nxt[:, None]).squeeze(1)
        nxt = torch.where(unfinished, nxt, torch.full_like(nxt, pad_id))
        out[:, step] = nxt
        steps = step + 1
        if steps % 8 == 0 and progress.active():
            progress.tick(f"token {steps}/{max_new_tokens}, {int(unfinished.sum())} of {batch} rows running")
        unfinished &= ~torch.isin(nxt, stop_t)
        if not bool(unfinished.any()) or steps == max_new_tokens:
            break
        running = unfinished[rows]
        done = rows.shape[0] - int(running.sum())
        if done and done >= compact * rows.shape[0]:
            keep = running.nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            rows = rows[keep]
            last = last[keep]
            if attn is not None:
                attn = attn[keep]
        last = last + 1
        inputs = {"input_ids": nxt[rows][:, None]}
        if attn is not None:
            attn = torch.cat([attn, attn.new_ones((attn.shape[0], 1))], dim=-1)
            inputs["attention_mask"] = attn
        else:
            inputs["attention_mask"] = None
        if use_pos:
            inputs["position_ids"] = last
    if logprobs is not None:
        logprobs.extend(lp_out[:, :steps].tolist())
    return out[:, :steps].tolist()
