"""What a run loads before its first stage: the device, the steering data, the model and its tokenizer (prepared
for left-padded sampling), the steering layers and the adapter stack."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.identity import resolved_device
from ..config.models import RunConfig
from ..data import load_data
from ..errors import ShlError
from .adapters import AdapterStack
from .generate import clean_generation_config
from .layers import decoder_layers, resolve_layers
from .seeds import Stream, seeded_global_rng
from .stages import StageClock


def pick_device(spec: str) -> str:
    """The device to use for ``spec`` on this machine: ``auto`` resolved; a device that is not available (or
    not a device) is a one-line ShlError."""
    import torch

    from ..config.models import check_device

    try:
        check_device(spec)
    except ValueError as exc:
        raise ShlError(f"device: {exc}") from None
    if spec == "auto":
        return resolved_device(spec)
    kind, _, index = spec.partition(":")
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available(),
                 "xpu": hasattr(torch, "xpu") and torch.xpu.is_available()}[kind]
    if not available:
        raise ShlError(f"device: '{spec}' requested but {kind.upper() if kind != 'mps' else 'MPS'} is not available")
    if index and kind == "cuda" and int(index) >= torch.cuda.device_count():
        raise ShlError(f"device: '{spec}': this machine has {torch.cuda.device_count()} CUDA device(s)")
    return spec


@dataclass
class RunSetup:
    name: str  # the loaded model's display name
    device: str
    dtype: str  # the loaded weights' dtype: float32, bfloat16...
    data: Any  # SteeringData
    model: Any
    tok: Any
    n_layers: int
    layers: list[int]  # the steering layers, resolved
    stack: AdapterStack


def set_up_run(cfg: RunConfig, source: Any, data_root: Path | None, clock: StageClock) -> RunSetup:
    """Load the data (first: a bad data file fails fast), then the model from ``source`` under the stream
    ``Stream.INIT`` (weights a source initialises randomly come from the global RNG)."""
    import torch

    device = pick_device(cfg.device)
    if device == "cpu":
        torch.set_flush_denormal(True)  # denormal activations slow CPU matmuls by up to 100x
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    data = load_data(cfg.data, data_root)
    with clock("load", "load model"), seeded_global_rng(device, cfg.seed, Stream.INIT):
        loaded = source.load(device, cfg.dtype)
    model, tok = loaded.model, loaded.tokenizer
    model.eval()
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    if not getattr(tok, "chat_template", None):
        raise ShlError(f"model '{cfg.model.name}': the tokenizer has no chat template")
    clean_generation_config(model, tok)
    n_layers = len(decoder_layers(model))
    layers = resolve_layers(cfg.steer.layers, n_layers, f"model '{cfg.model.name}'")
    if cfg.heal.lora.target_modules:
        from ..config.lora_targets import unmatched_targets

        problem = unmatched_targets(cfg.heal.lora.target_modules, [n for n, _ in model.named_modules() if n])
        if problem:
            raise ShlError(f"heal.lora.target_modules: {problem}")
    stack = AdapterStack(model, cfg.heal.lora)
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    return RunSetup(loaded.name, device, dtype, data, model, tok, n_layers, layers, stack)
