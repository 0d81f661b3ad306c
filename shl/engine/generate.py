"""Batched sampling (left padding) from the model in its current state, steered or not."""

from __future__ import annotations

from typing import Any, Sequence

from ..api import Completion
from .batching import left_pad, length_batches, pad_id
from .chat import stop_token_ids
from .seeds import derive_seed


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
) -> list[Completion]:
    """Sample one completion per ``(user, prompt_ids)``; deterministic for ``seed`` on CPU."""
    import torch

    device = next(model.parameters()).device
    stops = stop_token_ids(tokenizer, model)
    pid = pad_id(tokenizer)
    out: list[Completion | None] = [None] * len(prompts)
    for b, idx in enumerate(length_batches([len(p[1]) for p in prompts], batch_size)):
        ids, mask = left_pad([prompts[i][1] for i in idx], pid, device)
        torch.manual_seed(derive_seed(seed, "batch", b))
        if steerer is not None:
            steerer.prefill_mask = mask
        try:
            with torch.no_grad():
                gen = model.generate(
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
        finally:
            if steerer is not None:
                steerer.prefill_mask = None
        new = gen[:, ids.shape[1]:].tolist()
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
            )
    return [c for c in out if c is not None]
