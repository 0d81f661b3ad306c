"""Extraction: hidden states of contrastive prompts (same context, positive vs negative persona), reduced.

``prompt_mean`` averages over the positions both prompts share at the end (the user turn and the assistant
header, found as the longest common token suffix); ``last`` takes the last prompt token.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..api import SteeringData
from .batching import left_pad, pad_id
from .chat import render_prompt
from .steering import LayersCaptured, capture_layers


def common_suffix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(reversed(a), reversed(b)):
        if x != y:
            break
        n += 1
    return n


def reduced_states(
    model: Any,
    tokenizer: Any,
    prompts: list[list[int]],
    spans: list[int],
    layers: list[int],
    batch_size: int,
) -> dict[int, Any]:
    """Per layer, a float32 [n, d] tensor: the mean of the last ``spans[i]`` positions of prompt i."""
    import torch

    device = next(model.parameters()).device
    out: dict[int, list[Any]] = {layer: [] for layer in layers}
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        ids, mask = left_pad(chunk, pad_id(tokenizer), device)
        # positions count real tokens only, so left padding leaves absolute position embeddings (gpt2) unchanged
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad(), capture_layers(model, layers, stop=True) as store:
            try:
                model(input_ids=ids, attention_mask=mask, position_ids=position_ids)
            except LayersCaptured:  # the layers after the deepest one read are never computed
                pass
        for layer in layers:
            h = store[layer].float()
            for row in range(len(chunk)):
                k = spans[start + row]
                out[layer].append(h[row, h.shape[1] - k :].mean(dim=0).cpu())
    return {layer: torch.stack(v) for layer, v in out.items()}


def extract_pairs(
    model: Any,
    tokenizer: Any,
    data: SteeringData,
    contexts: Sequence[str],
    layers: list[int],
    positions: str,
    batch_size: int,
) -> dict[int, tuple[Any, Any]]:
    """Per layer, (pos [n, d], neg [n, d]) float32 activations, row i from context i under each persona."""
    pos = [render_prompt(tokenizer, c, data.positive.system) for c in contexts]
    neg = [render_prompt(tokenizer, c, data.negative.system) for c in contexts]
    if positions == "last":
        spans = [1] * len(contexts)
    else:
        spans = [max(1, common_suffix_len(p, n)) for p, n in zip(pos, neg)]
    hp = reduced_states(model, tokenizer, pos, spans, layers, batch_size)
    hn = reduced_states(model, tokenizer, neg, spans, layers, batch_size)
    return {layer: (hp[layer], hn[layer]) for layer in layers}
