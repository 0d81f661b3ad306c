"""The final hidden states and the LM head, kept apart so that only the positions a loss or a score needs go
through the head, in chunks of positions (memory: chunk x vocabulary, never batch x length x vocabulary).

``final_states(model, ids, mask)`` runs the decoder (steering hooks, active adapters, merged weights: all as in
the model's own forward) and returns ``(states [B, T, W], head)``: ``head(rows)`` maps selected rows to logits
exactly as the model's forward would (the output embedding, then Gemma 2/3's final logit soft-capping). For a
model whose forward does something else after the decoder, the split is checked once per model against its own
forward on a short input; a model that fails the check (or has no separable decoder) falls back to the full
logits (``states`` are then the logits and ``head`` is the identity): correct, not memory-bounded.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

_CHECKED: "weakref.WeakKeyDictionary[Any, bool]" = weakref.WeakKeyDictionary()


def causal_lm(model: Any) -> Any:
    """The transformers causal LM under a PEFT wrapper (or the model itself)."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def _parts(model: Any) -> tuple[Any, Any, Callable[[Any], Any]] | None:
    lm = causal_lm(model)
    prefix = getattr(lm, "base_model_prefix", None)
    decoder = getattr(lm, prefix, None) if isinstance(prefix, str) and prefix else None
    try:
        out = lm.get_output_embeddings()
    except Exception:
        out = None
    if decoder is None or out is None or decoder is lm or not callable(decoder):
        return None
    config = getattr(lm, "config", None)
    cap = getattr(config, "final_logit_softcapping", None)
    if cap is None and hasattr(config, "get_text_config"):  # multimodal wrappers keep it in the text config
        cap = getattr(config.get_text_config(), "final_logit_softcapping", None)

    def head(rows: Any) -> Any:
        import torch

        logits = out(rows)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    return decoder, out, head


def head_module(model: Any) -> Any:
    """The output embedding module (a PEFT LoRA layer when the head itself is adapted), or None."""
    parts = _parts(model)
    return parts[1] if parts else None


def head_is_adapted(model: Any) -> bool:
    """True when the LM head carries LoRA adapters (then the reference's head differs from the student's)."""
    module = head_module(model)
    return module is not None and hasattr(module, "lora_A")


def _identity(rows: Any) -> Any:
    return rows


def _separable(model: Any) -> bool:
    """Whether decoder + head reproduces the model's logits (checked once per causal LM, on 6 tokens, in eval
    mode; training flags are restored)."""
    lm = causal_lm(model)
    try:
        return _CHECKED[lm]
    except (KeyError, TypeError):
        pass
    parts = _parts(model)
    ok = False
    if parts is not None:
        import torch

        decoder, _, head = parts
        flags = {m: m.training for m in model.modules()}
        try:
            model.eval()
            device = next(model.parameters()).device
            vocab = int(getattr(lm.config, "vocab_size", 8) or 8)
            ids = (torch.arange(6, device=device)[None] * 7 + 3) % max(vocab, 1)
            mask = torch.ones_like(ids)
            with torch.no_grad():
                want = model(input_ids=ids, attention_mask=mask).logits.float()
                got = head(decoder(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state).float()
            ok = want.shape == got.shape and bool(torch.allclose(got, want, rtol=1e-3, atol=1e-3))
        except Exception:
            ok = False
        finally:
            for m, t in flags.items():
                m.training = t
    try:
        _CHECKED[lm] = ok
    except TypeError:
        pass
    return ok


def final_states(model: Any, ids: Any, mask: Any) -> tuple[Any, Callable[[Any], Any]]:
    """``(states [B, T, W], head)``: the final hidden states and the map from selected rows to logits."""
    if _separable(model):
        decoder, _, head = _parts(model)
        return decoder(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state, head
    return model(input_ids=ids, attention_mask=mask).logits, _identity


def chunks(n: int, size: int) -> list[tuple[int, int]]:
    size = max(int(size), 1)
    return [(a, min(a + size, n)) for a in range(0, n, size)]
