"""Hugging Face causal LMs (local path or hub id)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

from pydantic import Field

from shl import api
from shl.errors import ShlError

DEFAULT_DATA = "builtin:care_authority.yaml"
DEFAULT_FILTERS: list[dict[str, Any]] = [
    {"name": "tail_ppl", "params": {}},
    {"name": "repetition", "params": {}},
    {"name": "narration", "params": {}},
    {"name": "boilerplate", "params": {}},
    {"name": "length", "params": {}},
]
DEFAULT_EVALUATORS: list[dict[str, Any]] = [
    {"name": "coherence", "params": {}},
    {"name": "trait_margin", "params": {}},
]
DTYPES = ("float32", "bfloat16", "float16", "auto")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack", ".npz", ".onnx")
CONTENT_LIMIT = 64 << 20
"""Files of a local model directory up to this size (config, tokenizer, chat template...) are fingerprinted by
content; weight files and larger files by size and modification time (reading gigabytes to plan a run is not
an option)."""
_CONTENT_MEMO: dict[tuple[str, int, int], str] = {}


def local_fingerprint(root: Path) -> str:
    """A fingerprint of a local model directory (its top-level files, which are what transformers loads):
    the content of config and tokenizer files, and the size and modification time of weight files."""
    entries = []
    for f in sorted(root.iterdir()):
        if f.name.startswith(".") or not f.is_file():
            continue
        st = f.stat()
        if f.name.endswith(WEIGHT_SUFFIXES) or st.st_size > CONTENT_LIMIT:
            entries.append([f.name, st.st_size, st.st_mtime_ns])
            continue
        key = (str(f.resolve()), st.st_size, st.st_mtime_ns)
        if key not in _CONTENT_MEMO:
            _CONTENT_MEMO[key] = hashlib.sha256(f.read_bytes()).hexdigest()
        entries.append([f.name, _CONTENT_MEMO[key]])
    blob = json.dumps(entries, separators=(",", ":")).encode()
    return "local:" + hashlib.sha256(blob).hexdigest()


def resolve_dtype(dtype: str, device: str) -> Any:
    """The torch dtype for a dtype string; "auto" is bfloat16 on CUDA, else float32."""
    import torch

    if dtype not in DTYPES:
        raise ShlError(f"unknown dtype '{dtype}'; choose one of {', '.join(DTYPES)}")
    if dtype == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


class HF(api.ModelSource):
    """A chat model loaded with AutoTokenizer / AutoModelForCausalLM; its tokenizer must have a chat template.

    The pad token defaults to the end-of-sequence token and padding is on the left (for batched generation).
    """

    name = "hf"
    description = "a Hugging Face causal LM with a chat template (hub id or local path)"
    default_data = DEFAULT_DATA
    default_filters = DEFAULT_FILTERS
    default_evaluators = DEFAULT_EVALUATORS

    class Params(api.Params):
        name_or_path: str = Field(description="hub model id (e.g. Qwen/Qwen3-0.6B) or local directory")
        revision: Optional[str] = Field(None, description="hub revision (branch, tag or commit); None: the default")
        trust_remote_code: bool = Field(False, description="allow the model repository's own Python code to run")

    def _local_config(self) -> Any:
        """The model's transformers config when it is already local (a directory or the HF cache); else None."""
        p = self.params
        try:
            from transformers import AutoConfig

            return AutoConfig.from_pretrained(
                p.name_or_path, revision=p.revision, trust_remote_code=p.trust_remote_code, local_files_only=True
            )
        except Exception:
            return None

    def _text_config_int(self, key: str) -> int | None:
        cfg = self._local_config()
        for c in (cfg, getattr(cfg, "text_config", None)):
            n = getattr(c, key, None)
            if isinstance(n, int) and not isinstance(n, bool) and n > 0:
                return n
        return None

    def num_layers(self) -> int | None:
        """From the model's config.json when it is already local (a directory or the HF cache); else None."""
        return self._text_config_int("num_hidden_layers")

    def hidden_size(self) -> int | None:
        """From the model's config.json when it is already local; else None."""
        return self._text_config_int("hidden_size")

    def model_type(self) -> str | None:
        """The config's ``model_type`` when the config is already local; else None."""
        value = getattr(self._local_config(), "model_type", None)
        return value if isinstance(value, str) and value else None

    def identity(self) -> str | None:
        """For a local directory: its fingerprint (config and tokenizer files by content, weight files by size
        and modification time), so editing or replacing the weights at the same path is a new model. For a hub
        id: None (the id and ``revision`` identify it; pin ``revision`` to a commit for a fixed model)."""
        path = Path(self.params.name_or_path).expanduser()
        if not path.is_dir():
            return None
        return local_fingerprint(path)

    def load(self, device: str, dtype: str) -> api.LoadedModel:
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        p = self.params
        torch_dtype = resolve_dtype(dtype, device)
        kwargs = {"revision": p.revision, "trust_remote_code": p.trust_remote_code}
        dtype_key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
        try:
            tokenizer = AutoTokenizer.from_pretrained(p.name_or_path, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(p.name_or_path, **{dtype_key: torch_dtype}, **kwargs)
            model.to(device)
        except Exception as exc:
            raise ShlError(f"model '{p.name_or_path}': cannot load: {one_line(exc)}") from exc
        if not getattr(tokenizer, "chat_template", None):
            raise ShlError(f"model '{p.name_or_path}': the tokenizer has no chat template (use an instruct/chat model)")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        model.eval()
        info = {"name_or_path": p.name_or_path, "revision": p.revision, "dtype": str(torch_dtype).replace("torch.", "")}
        return api.LoadedModel(model=model, tokenizer=tokenizer, name=p.name_or_path, info=info)
