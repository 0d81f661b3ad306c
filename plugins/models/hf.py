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


def load_hf_dir(path: str, device: str, dtype: str, display: str, revision: str | None = None,
                trust_remote_code: bool = False, info: dict[str, Any] | None = None) -> api.LoadedModel:
    """A chat model and its tokenizer through AutoTokenizer / AutoModelForCausalLM (a hub id or a local
    directory), on ``device`` in ``dtype``; pad token = end-of-sequence token, padding on the left."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = resolve_dtype(dtype, device)
    kwargs = {"revision": revision, "trust_remote_code": trust_remote_code}
    dtype_key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(path, **{dtype_key: torch_dtype}, **kwargs)
        model.to(device)
    except Exception as exc:
        raise ShlError(f"model '{display}': cannot load: {one_line(exc)}") from exc
    if not getattr(tokenizer, "chat_template", None):
        raise ShlError(f"model '{display}': the tokenizer has no chat template (use an instruct/chat model)")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    model.eval()
    info = {**(info or {}), "name_or_path": display, "revision": revision,
            "dtype": str(torch_dtype).replace("torch.", "")}
    return api.LoadedModel(model=model, tokenizer=tokenizer, name=display, info=info)


class HF(api.ModelSource):
    """A chat model loaded with AutoTokenizer / AutoModelForCausalLM; its tokenizer must have a chat template.

    ``name_or_path`` is a hub id, a local model directory, or a local ``.gguf`` file: a GGUF file is dequantised
    once into a plain Hugging Face directory cached under ``$SHL_CACHE_DIR/gguf`` by the file's sha256
    (``gguf_cache``; needs the ``gguf`` package), and identified by that sha256. The pad token defaults to the
    end-of-sequence token and padding is on the left (for batched generation).
    """

    name = "hf"
    description = "a Hugging Face causal LM with a chat template (hub id, local directory or .gguf file)"
    default_data = DEFAULT_DATA
    default_filters = DEFAULT_FILTERS
    default_evaluators = DEFAULT_EVALUATORS

    class Params(api.Params):
        name_or_path: str = Field(description="hub model id (e.g. Qwen/Qwen3-0.6B), local directory, or local .gguf "
                                  "file (dequantised once and cached)")
        revision: Optional[str] = Field(None, description="hub revision (branch, tag or commit); None: the default")
        trust_remote_code: bool = Field(False, description="allow the model repository's own Python code to run")

    def _gguf(self) -> Path | None:
        """The GGUF file ``name_or_path`` names, or None when it names no local ``.gguf`` file."""
        path = Path(self.params.name_or_path).expanduser()
        return path if path.suffix.lower() == ".gguf" and path.is_file() else None

    def _local_config(self) -> Any:
        """The model's transformers config when it is already local (a directory, the HF cache, or the converted
        directory of a GGUF file); else None."""
        p = self.params
        gguf = self._gguf()
        try:
            from transformers import AutoConfig

            if gguf is not None:
                from .gguf_cache import converted_dir, file_sha256

                cached = converted_dir(file_sha256(gguf))
                return AutoConfig.from_pretrained(str(cached)) if (cached / "config.json").is_file() else None
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
        """From the model's config.json when it is already local (a directory or the HF cache), or from a GGUF
        file's metadata; else None."""
        n = self._text_config_int("num_hidden_layers")
        if n is None and self._gguf() is not None:
            from .gguf_cache import gguf_metadata

            try:
                return gguf_metadata(self._gguf())["layers"]
            except ShlError:
                return None
        return n

    def hidden_size(self) -> int | None:
        """From the model's config.json when it is already local, or from a GGUF file's metadata; else None."""
        n = self._text_config_int("hidden_size")
        if n is None and self._gguf() is not None:
            from .gguf_cache import gguf_metadata

            try:
                return gguf_metadata(self._gguf())["hidden"]
            except ShlError:
                return None
        return n

    def model_type(self) -> str | None:
        """The config's ``model_type`` when the config is already local; else None."""
        value = getattr(self._local_config(), "model_type", None)
        return value if isinstance(value, str) and value else None

    def module_names(self) -> list[str] | None:
        """For a model already local: its modules, built from its config on the meta device; else None."""
        cfg = self._local_config()
        if cfg is None:
            return None
        from .meta_modules import module_names

        return module_names(cfg)

    def identity(self) -> str | None:
        """For a GGUF file: its sha256. For a local directory: its fingerprint (config and tokenizer files by
        content, weight files by size and modification time), so editing or replacing the weights at the same path
        is a new model. For a hub id: None (the id and ``revision`` identify it; pin ``revision`` to a commit for a
        fixed model)."""
        gguf = self._gguf()
        if gguf is not None:
            from .gguf_cache import check_gguf, file_sha256

            check_gguf(gguf)
            return "gguf:" + file_sha256(gguf)
        path = Path(self.params.name_or_path).expanduser()
        if not path.is_dir():
            return None
        return local_fingerprint(path)

    def load(self, device: str, dtype: str) -> api.LoadedModel:
        p = self.params
        gguf = self._gguf()
        if gguf is not None:
            from .gguf_cache import file_sha256, hf_dir_for

            local = hf_dir_for(gguf)
            return load_hf_dir(str(local), device, dtype, p.name_or_path,
                               info={"gguf_sha256": file_sha256(gguf), "converted_dir": str(local)})
        if p.name_or_path.lower().endswith(".gguf"):
            raise ShlError(f"model '{p.name_or_path}': no such GGUF file")
        return load_hf_dir(p.name_or_path, device, dtype, p.name_or_path, p.revision, p.trust_remote_code)
