"""For tests that call the heal directly: the validated ``HealConfig`` the engine passes to it, and a round-1
adapter stack to heal."""

from __future__ import annotations

import torch

from shl.config.models import HealConfig, LoraConfig
from shl.engine.adapters import AdapterStack


def heal_config(**kw) -> HealConfig:
    """A validated heal config from flat settings (``reference``, ``level`` and ``tau`` go under ``barrier``).
    ``lr`` is set after validation: tests hold the parameters fixed (0) or force a non-finite loss (inf), which a
    config does not accept."""
    barrier = {k: kw.pop(k) for k in ("reference", "level", "tau") if k in kw}
    lr = kw.pop("lr", None)
    cfg = HealConfig.model_validate({**kw, "barrier": barrier})
    return cfg if lr is None else cfg.model_copy(update={"lr": lr})


def round1_stack(load, arch: str = "llama"):
    """Round 0 trained (B perturbed) and folded; round 1 with a small non-zero B: student != prev != base."""
    lm = load(arch)
    torch.manual_seed(0)
    stack = AdapterStack(lm.model, LoraConfig(r=4, alpha=8.0))
    stack.new_round()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _, b, _ in stack.lora_pairs("r0"):
            b.copy_(torch.randn(b.shape, generator=g) * 0.2)
    stack.fold()
    params = stack.new_round()
    with torch.no_grad():
        for _, b, _ in stack.lora_pairs("r1"):
            b.copy_(torch.randn(b.shape, generator=g) * 0.05)
    return lm.tokenizer, stack, params
