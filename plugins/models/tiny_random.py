"""Randomly initialised tiny models of common architectures, with an in-process tokenizer (no download)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, model_validator

from shl import api

from .hf import DEFAULT_DATA, DEFAULT_EVALUATORS, DEFAULT_FILTERS, resolve_dtype
from .tiny_tokenizer import tiny_tokenizer

MAX_POSITIONS = 1024


def make_config(arch: str, vocab: int, hidden: int, layers: int, heads: int, special: dict[str, int]) -> Any:
    """A transformers config for a tiny model of ``arch``."""
    import transformers

    if arch == "gpt2":
        return transformers.GPT2Config(
            vocab_size=vocab, n_positions=MAX_POSITIONS, n_embd=hidden, n_layer=layers, n_head=heads,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **special,
        )
    cls = {
        "llama": transformers.LlamaConfig,
        "qwen2": transformers.Qwen2Config,
        "qwen3": transformers.Qwen3Config,
        "gemma": transformers.GemmaConfig,
    }[arch]
    return cls(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, head_dim=hidden // heads,
        max_position_embeddings=MAX_POSITIONS, **special,
    )


class TinyRandom(api.ModelSource):
    """A tiny randomly initialised causal LM (deterministic for ``seed``) and a byte-level BPE chat tokenizer.

    For tests and smoke runs of the plumbing on real architectures; its outputs are noise.
    """

    name = "tiny_random"
    description = "tiny randomly initialised llama/qwen2/qwen3/gpt2/gemma model with a built-in tokenizer"
    default_data = DEFAULT_DATA
    default_filters = DEFAULT_FILTERS
    default_evaluators = DEFAULT_EVALUATORS

    class Params(api.Params):
        arch: Literal["llama", "qwen2", "qwen3", "gpt2", "gemma"] = Field("llama", description="architecture")
        hidden: int = Field(64, ge=8, le=8192, description="hidden size (divisible by heads)")
        layers: int = Field(2, ge=1, le=128, description="number of decoder layers")
        heads: int = Field(4, ge=1, le=128, description="attention heads")
        seed: int = Field(0, ge=0, le=2**63 - 1, description="seed of the weight initialisation")

        @model_validator(mode="after")
        def _divisible(self):
            if self.hidden % self.heads:
                raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
            return self

    def num_layers(self) -> int | None:
        return self.params.layers

    def module_names(self) -> list[str] | None:
        from .meta_modules import module_names

        p = self.params
        tokenizer = tiny_tokenizer()
        return module_names(make_config(p.arch, len(tokenizer), p.hidden, p.layers, p.heads, {}))

    def hidden_size(self) -> int | None:
        return self.params.hidden

    def model_type(self) -> str | None:
        return self.params.arch  # the transformers model_type of every arch offered

    def identity(self) -> str | None:
        """The weights are a function of the params alone (seeded initialisation, built-in tokenizer)."""
        return "tiny_random:" + json.dumps(self.params.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def load(self, device: str, dtype: str) -> api.LoadedModel:
        import torch
        from transformers import AutoModelForCausalLM

        p = self.params
        tokenizer = tiny_tokenizer()
        special = {
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
        cfg = make_config(p.arch, len(tokenizer), p.hidden, p.layers, p.heads, special)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(p.seed)
            model = AutoModelForCausalLM.from_config(cfg)
        model.to(device=device, dtype=resolve_dtype(dtype, device))
        model.eval()
        n_params = sum(t.numel() for t in model.parameters())
        info = {"arch": p.arch, "hidden": p.hidden, "layers": p.layers, "heads": p.heads, "seed": p.seed,
                "n_params": n_params}
        return api.LoadedModel(model=model, tokenizer=tokenizer, name=f"tiny_random-{p.arch}", info=info)
