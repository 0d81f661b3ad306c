"""The ``toyworld`` model source: the toy world's tiny Llama, trained on first use and cached."""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar, Literal

from pydantic import Field

from shl.api import LoadedModel, ModelSource, Params
from shl.errors import ShlError

from .world import WORLD_VERSION

_DTYPES = {"float32", "bfloat16", "float16", "auto"}


class ToyWorldSource(ModelSource):
    """A 4-layer Llama (hidden 256, ~2.7M parameters) trained on the toy world's persona language. Trained on first use
    (a few minutes on 2 CPU cores: README, "The toy world") into ``$SHL_CACHE_DIR/toyworld`` (default ``~/.cache/shl``), then
    loaded from there in seconds."""

    name = "toyworld"
    description = "embedded toy world: tiny Llama on a persona language with an exact grammar (trained on first use)"
    default_data: ClassVar[str | None] = "builtin:toyworld.yaml"
    # realistic generic filters (not the oracle "grammar" filter), so some incoherence gets through
    default_filters: ClassVar[list[dict[str, Any]]] = [
        {"name": "repetition", "params": {}},
        {"name": "length", "params": {}},
    ]
    default_evaluators: ClassVar[list[dict[str, Any]]] = [{"name": "toy_exact", "params": {}}]

    class Params(Params):
        variant: Literal["default", "small"] = Field(
            "default", description="model size: 'default' (what users get) or 'small' (fast, for tests/CI)")
        seed: int = Field(0, ge=0, le=2**63 - 1, description="training seed of the toy model (a different seed = a different model)")

    def num_layers(self) -> int | None:
        from .train import VARIANTS

        return int(VARIANTS[self.params.variant]["model"]["num_hidden_layers"])

    def hidden_size(self) -> int | None:
        from .train import VARIANTS

        return int(VARIANTS[self.params.variant]["model"]["hidden_size"])

    def model_type(self) -> str | None:
        return "llama"  # the toy model is a transformers LlamaForCausalLM

    def module_names(self) -> list[str] | None:
        """The toy model's modules (a Llama), from its architecture alone."""
        from shl_plugins.models.meta_modules import module_names

        from .train import model_config

        return module_names(model_config(self.params.variant))

    def identity(self) -> str | None:
        """The key of the trained model in the cache: world version, tokenizer, hyperparameters, seed and library
        versions. A cached model that fails its integrity check is an error here, before anything runs."""
        from .train import cache_key, model_dir, verify_cache_once

        if (model_dir(self.params.variant, self.params.seed) / "info.json").is_file():
            verify_cache_once(model_dir(self.params.variant, self.params.seed))
        return f"toyworld:{self.params.variant}-s{self.params.seed}-{cache_key(self.params.variant, self.params.seed)}"

    def load(self, device: str, dtype: str) -> LoadedModel:
        from .train import ensure_model

        if dtype not in _DTYPES:
            raise ShlError(f"toyworld: unknown dtype '{dtype}' (use one of {', '.join(sorted(_DTYPES))})")
        path = ensure_model(self.params.variant, self.params.seed)
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            t0 = time.perf_counter()
            torch_dtype = torch.float32 if dtype == "auto" else getattr(torch, dtype)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
            model.to(device).eval()
            tokenizer = AutoTokenizer.from_pretrained(path)
        except ShlError:
            raise
        except Exception as exc:  # one-line reason for the CLI
            first = (str(exc).strip().splitlines() or [""])[0]
            raise ShlError(f"toyworld: could not load the toy model {path}: {type(exc).__name__}: {first}; rebuild it "
                           "with 'shl toyworld build --rebuild'") from exc
        info = json.loads((path / "info.json").read_text())
        return LoadedModel(
            model=model,
            tokenizer=tokenizer,
            name=f"toyworld-{self.params.variant}-s{self.params.seed}",
            info={
                "path": str(path),
                "world_version": WORLD_VERSION,
                "variant": self.params.variant,
                "seed": self.params.seed,
                "n_params": info.get("n_params"),
                "train_wall_s": info.get("wall_s"),
                "train_final_loss": info.get("final_loss"),
                "load_s": round(time.perf_counter() - t0, 3),
            },
        )
