"""Module names of an architecture without its weights: the model built on PyTorch's meta device."""

from __future__ import annotations

from typing import Any


def module_names(config: Any) -> list[str]:
    """``named_modules()`` of the causal LM ``config`` describes, built on the meta device (no memory, no weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return [name for name, _ in model.named_modules() if name]
