"""The student as a stack of PEFT LoRA adapters over a frozen base model (README: "The method (one round)").

Round i trains adapter ``r{i}`` with ``r0..r{i-1}`` active and frozen. Base logits come from
``disabled()`` (all adapters off), previous-student logits from ``only(previous)``; neither copies weights.
PEFT's ``disable_adapter`` / ``set_adapter`` turn ``requires_grad`` back on for active adapters, so every
switch here saves and restores the flags.

``merged()`` is for inference (evaluation): inside it, every LoRA layer computes ``x @ (W + sum_a s_a B_a A_a)^T``
with a merged weight built once on entry in a temporary tensor, instead of the base product plus one LoRA branch
per adapter. The base weights are never written; ``disabled()`` / ``only()`` inside it switch back to the exact
unmerged layers for their duration, so base and previous-student logits stay exact.
"""

from __future__ import annotations

import warnings
import functools
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Any, Iterator

# PEFT still calls a transformers property that transformers 5 deprecates; nothing for users to act on.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


class AdapterStack:
    def __init__(self, base_model: Any, lora: Any):
        self.base = base_model
        self.lora = lora
        self.peft = None
        self.names: list[str] = []
        # null = every linear layer of the decoder blocks (PEFT's "all-linear": every Linear/Conv1D but the
        # output head), the same on every architecture; resolved to module names by the first round
        self.targets: list[str] | str = list(lora.target_modules) if lora.target_modules else "all-linear"
        self.resolved_targets: list[str] = []  # the adapted modules' full names, once the first round exists
        self._merged: dict[Any, Any] | None = None  # LoRA layer -> merged weight, while merged() is open

    @property
    def model(self) -> Any:
        """The student: the PEFT model once an adapter exists, else the base model."""
        return self.peft if self.peft is not None else self.base

    @property
    def current(self) -> str | None:
        return self.names[-1] if self.names else None

    def _config(self) -> Any:
        from peft import LoraConfig

        kwargs = dict(r=self.lora.r, lora_alpha=self.lora.alpha, lora_dropout=self.lora.dropout, bias="none")
        return LoraConfig(target_modules=self.targets, **kwargs)

    @property
    def target_names(self) -> list[str]:
        """The distinct module names adapted (the last component: q_proj, down_proj, c_attn...), sorted."""
        return sorted({n.rsplit(".", 1)[-1] for n in self.resolved_targets})

    def new_round(self) -> list[Any]:
        """Add a fresh adapter (B = 0, so the student is unchanged), activate all, train only the new one."""
        from peft import get_peft_model

        name = f"r{len(self.names)}"
        cfg = self._config()
        if self.peft is None:
            for p in self.base.parameters():
                p.requires_grad_(False)
            self.peft = get_peft_model(self.base, cfg, adapter_name=name)
            # every later round adapts exactly the modules the first one did
            self.resolved_targets = sorted(
                n for n, m in self.peft.base_model.model.named_modules()
                if hasattr(getattr(m, "lora_A", None), "keys") and name in m.lora_A
            )
            self.targets = list(self.resolved_targets)
        else:
            self.peft.add_adapter(name, cfg)
        self.names.append(name)
        self._activate(self.names)
        self._set_trainable({name})
        return self.trainable_parameters()

    def _activate(self, names: list[str]) -> None:
        self.peft.base_model.set_adapter(list(names))

    def _set_trainable(self, trainable: set[str]) -> None:
        for n, p in self.peft.named_parameters():
            owner = _adapter_of(n, self.names)
            p.requires_grad_(owner in trainable)
            if owner is not None and owner not in trainable:
                p.grad = None

    def trainable_parameters(self) -> list[Any]:
        if self.peft is None:
            return []
        return [p for p in self.peft.parameters() if p.requires_grad]

    def fold(self) -> None:
        """Freeze the current adapter: it becomes history, active and fixed."""
        if self.peft is not None:
            self._set_trainable(set())

    def _flags(self) -> dict[str, bool]:
        return {n: p.requires_grad for n, p in self.peft.named_parameters()}

    def _restore(self, flags: dict[str, bool]) -> None:
        for n, p in self.peft.named_parameters():
            p.requires_grad_(flags[n])

    @contextmanager
    def disabled(self) -> Iterator[Any]:
        """The base model: every adapter off."""
        if self.peft is None:
            yield self.base
            return
        flags = self._flags()
        try:
            with self._unmerged(), self.peft.disable_adapter():
                yield self.peft
        finally:
            self._restore(flags)

    @contextmanager
    def only(self, names: list[str]) -> Iterator[Any]:
        """Only the given adapters active (e.g. the previous student); an empty list is the base model."""
        if self.peft is None or not names:
            with self.disabled() as m:
                yield m
            return
        flags = self._flags()
        try:
            with self._unmerged():
                self._activate(names)
                try:
                    yield self.peft
                finally:
                    self._activate(self.names)
        finally:
            self._restore(flags)

    # ------------------------------------------------------------------ merged inference
    @contextmanager
    def merged(self) -> Iterator[Any]:
        """The student with all active adapters merged into temporary weights (inference only, no gradients
        through the adapters). A no-op before the first round or when already merged."""
        if self.peft is None or self._merged is not None:
            yield self.model
            return
        import torch

        merged: dict[Any, Any] = {}
        with torch.no_grad():
            for module in self.peft.modules():
                weight = _merged_weight(module, self.names)
                if weight is not None:
                    merged[module] = weight
        self._merged = merged
        self._install()
        try:
            yield self.peft
        finally:
            self._uninstall()
            self._merged = None

    def _install(self) -> None:
        for module, weight in (self._merged or {}).items():
            module.forward = partial(_merged_linear, module.base_layer, weight)

    def _uninstall(self) -> None:
        for module in self._merged or {}:
            module.__dict__.pop("forward", None)

    @contextmanager
    def _unmerged(self) -> Iterator[None]:
        """Inside merged(): the exact unmerged layers for the duration (adapter switches need them)."""
        if self._merged is None:
            yield
            return
        self._uninstall()
        try:
            yield
        finally:
            self._install()

    @property
    def previous(self) -> list[str]:
        return self.names[:-1]

    def lora_pairs(self, name: str) -> list[tuple[Any, Any, float]]:
        """(A weight, B weight, scaling) for every LoRA layer of adapter ``name``."""
        pairs = []
        for module in self.peft.modules():
            a = getattr(module, "lora_A", None)
            if a is not None and hasattr(a, "keys") and name in a:
                pairs.append((module.lora_A[name].weight, module.lora_B[name].weight, module.scaling[name]))
        return pairs

    def save(self, directory: str) -> None:
        if self.peft is not None:
            self.peft.save_pretrained(directory)


MERGE_FOR_EVAL = True  # evaluate the student with merged adapters (see merged_student); False: unmerged


def merged_student(fn: Any) -> Any:
    """Decorator for ``fn(evaluators, stack, ...)``: run it inside ``stack.merged()`` (when MERGE_FOR_EVAL)."""

    @functools.wraps(fn)
    def wrapper(evaluators: Any, stack: Any, *args: Any, **kwargs: Any) -> Any:
        merge = MERGE_FOR_EVAL and hasattr(stack, "merged")
        with stack.merged() if merge else nullcontext():
            return fn(evaluators, stack, *args, **kwargs)

    return wrapper


def _merged_linear(base: Any, weight: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
    import torch

    return torch.nn.functional.linear(x, weight, base.bias)


def _merged_weight(module: Any, names: list[str]) -> Any:
    """W + sum over active vanilla-LoRA adapters of scaling * B @ A for a PEFT LoRA Linear, else None (the layer
    then stays unmerged: other layer types, LoRA variants such as DoRA, fan-in/fan-out layouts)."""
    import torch

    lora_a = getattr(module, "lora_A", None)
    base = getattr(module, "base_layer", None)
    if lora_a is None or not hasattr(lora_a, "keys") or type(base) is not torch.nn.Linear:
        return None
    if getattr(module, "merged_adapters", None) or getattr(module, "disable_adapters", False):
        return None
    if getattr(module, "fan_in_fan_out", False) or getattr(module, "lora_variant", None):
        return None
    active = [a for a in module.active_adapters if a in lora_a.keys() and a in names]
    if not active:
        return None
    w = base.weight
    delta = None
    for a in active:
        d = module.scaling[a] * (module.lora_B[a].weight.float() @ module.lora_A[a].weight.float())
        delta = d if delta is None else delta + d
    return (w.float() + delta).to(w.dtype).detach()


def _adapter_of(param_name: str, names: list[str]) -> str | None:
    if "lora_" not in param_name:
        return None
    parts = param_name.split(".")
    for name in names:
        if name in parts:
            return name
    return None
