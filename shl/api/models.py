"""Model sources: where a run's causal LM and tokenizer come from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

from .component import Component


@dataclass
class LoadedModel:
    """What a model source returns: an HF causal LM (eval mode, on the device) and its tokenizer.

    The tokenizer must have a chat template; ``info`` is free-form (recorded with the run).
    """

    model: Any
    tokenizer: Any
    name: str
    info: dict[str, Any] = field(default_factory=dict)


class ModelSource(Component):
    """Loads a causal LM and its tokenizer. ``load(device, dtype)`` returns a ``LoadedModel``.

    ``dtype`` is a string: "float32", "bfloat16", "float16" or "auto". Loading failures should raise
    ``shl.errors.ShlError`` with a one-line reason.

    The class attributes give what a run uses when its config leaves a choice unset (resolved before the run
    is hashed, so they must not depend on loading): ``default_data`` (a steering-data file path, or
    ``"builtin:NAME"`` for a file in ``experiments/data`` shipped with shl), ``default_filters`` and
    ``default_evaluators`` (lists of ``{"name": ..., "params": {...}}``).
    """

    family: ClassVar[str] = "model"
    default_data: ClassVar[str | None] = "builtin:care_authority.yaml"
    default_filters: ClassVar[list[dict[str, Any]]] = []
    default_evaluators: ClassVar[list[dict[str, Any]]] = []

    def load(self, device: str, dtype: str) -> LoadedModel:
        raise NotImplementedError

    def num_layers(self) -> int | None:
        """The number of decoder layers the model will have, known WITHOUT loading it (from the params, a local
        config file...), so ``steer.layers`` is checked before any run starts; None = unknown until loaded.
        Must not download anything or import torch."""
        return None

    def module_names(self) -> list[str] | None:
        """The names of the model's modules (``model.named_modules()``), known WITHOUT loading its weights (e.g.
        the architecture built on PyTorch's meta device from a local config), so ``heal.lora.target_modules`` is
        checked at ``shl validate`` time; None = unknown until loaded. Must not download anything."""
        return None

    def hidden_size(self) -> int | None:
        """The width of the residual stream (``hidden_size``, llama.cpp's n_embd), known WITHOUT loading the model,
        so a steering vector made elsewhere is checked before any run starts; None = unknown until loaded. Same
        rules as ``num_layers``."""
        return None

    def model_type(self) -> str | None:
        """The transformers ``model_type`` ("llama", "qwen2", ...), known WITHOUT loading the model; written as
        the ``model_hint`` of an exported control vector. None = unknown. Same rules as ``num_layers``."""
        return None

    def identity(self) -> str | None:
        """A fingerprint of WHICH model ``load`` will return, beyond the params (which are hashed anyway), known
        WITHOUT loading the weights: e.g. for a local directory a hash of its config and of its weight files'
        sizes and modification times, for a generated model the key of its cache. It enters the run hash and the
        shared-stage cache key, so a run or a cached stage computed on other weights is never reused. Equal
        models must give equal strings across processes and machines (no absolute temp paths, no ids of
        objects). None = the params identify the model completely. Must not download anything or import torch."""
        return None
