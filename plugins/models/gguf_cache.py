"""GGUF files in, plain Hugging Face model directories out: the dequantised model cached by the file's sha256.

``hf_dir_for(path)`` returns ``$SHL_CACHE_DIR/gguf/<sha256[:16]>-<versions>/`` (default ``~/.cache/shl``; the
suffix hashes the versions of torch, transformers and gguf, which convert it), converting the file on first use: transformers reads the GGUF (the ``gguf`` package) and dequantises it
to float32; shl drops the quantisation record from the config, saves the weights as safetensors with the
tokenizer (chat template included) and writes ``shl_gguf.json`` (source file name, size and sha256, the library
versions that converted it, and the size and sha256 of every file, verified on every later use). The directory
is built in a temporary sibling and renamed into place under a file lock, so a second process neither corrupts
it nor converts twice. The second use costs a checksum and a plain ``from_pretrained``.

A file that is not GGUF, is truncated, or holds an architecture transformers cannot read from GGUF is a one-line
``ShlError`` naming the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from shl.environment import cache_root as shl_cache_root, library_versions
from shl.errors import ShlError

RECORD = "shl_gguf.json"
MAGIC = b"GGUF"
CONVERT_VERSION = 1  # bump when the conversion changes in a way the recorded versions do not show
_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def cache_root() -> Path:
    return shl_cache_root() / "gguf"


def file_sha256(path: Path) -> str:
    """The sha256 of a file, memoised per (path, size, mtime) within the process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA_MEMO[key] = h.hexdigest()
    return _SHA_MEMO[key]


def check_gguf(path: Path) -> None:
    """A one-line ShlError unless ``path`` is a readable file that starts with the GGUF magic."""
    if not path.is_file():
        raise ShlError(f"{path}: no such GGUF file")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise ShlError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if head != MAGIC:
        raise ShlError(f"{path}: not a GGUF file (it does not start with 'GGUF')")


def gguf_metadata(path: Path) -> dict[str, Any]:
    """The architecture, layer count and hidden size recorded in a GGUF file's metadata (no tensors read)."""
    check_gguf(path)
    try:
        from gguf import GGUFReader
    except ImportError:
        raise ShlError(f"{path}: reading GGUF needs the 'gguf' package (pip install 'shl[gguf]')") from None
    try:
        fields = GGUFReader(str(path)).fields
        arch = str(fields["general.architecture"].contents())
        return {"architecture": arch, "layers": int(fields[f"{arch}.block_count"].contents()),
                "hidden": int(fields[f"{arch}.embedding_length"].contents())}
    except Exception as exc:
        raise ShlError(f"{path}: unreadable GGUF metadata ({type(exc).__name__}: {_first_line(exc)}); is the file "
                       "truncated?") from None


def check_architecture(path: Path) -> str:
    """The file's ``general.architecture``, after checking that the installed transformers reads that architecture
    from GGUF; a one-line ShlError naming the file otherwise (also for a file whose metadata cannot be read)."""
    check_gguf(path)
    try:
        from gguf import GGUFReader
    except ImportError:
        raise ShlError(f"{path}: reading GGUF needs the 'gguf' package (pip install 'shl[gguf]')") from None
    try:
        arch = str(GGUFReader(str(path)).fields["general.architecture"].contents())
    except Exception as exc:
        raise ShlError(f"{path}: unreadable GGUF metadata ({type(exc).__name__}: {_first_line(exc)}); is the file "
                       "truncated?") from None
    from importlib import metadata

    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    readable = sorted(set(GGUF_CONFIG_MAPPING) - {"general", "tokenizer"})
    if arch not in readable and arch.replace("-", "_") not in readable:
        raise ShlError(f"{path}: GGUF architecture '{arch}' is not one transformers "
                       f"{metadata.version('transformers')} can load (it reads: {', '.join(readable)})")
    return arch


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]


def _manifest(directory: Path) -> dict[str, dict[str, Any]]:
    return {f.name: {"size": f.stat().st_size, "sha256": file_sha256(f)}
            for f in sorted(directory.iterdir()) if f.is_file() and f.name != RECORD}


def verify_dir(directory: Path) -> dict[str, Any]:
    """The cached directory's record, after checking every file against it; a one-line ShlError naming the
    directory when it does not hold up."""
    fix = f"delete {directory} to convert it again"
    try:
        record = json.loads((directory / RECORD).read_text())
    except (OSError, ValueError) as exc:
        raise ShlError(f"{directory}: unreadable {RECORD} ({type(exc).__name__}); {fix}") from None
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, dict) or not files:
        raise ShlError(f"{directory}: {RECORD} has no file manifest; {fix}")
    for name, rec in files.items():
        f = directory / name
        if not f.is_file() or f.stat().st_size != rec.get("size") or file_sha256(f) != rec.get("sha256"):
            raise ShlError(f"{directory}: {name} is missing or fails its checksum; {fix}")
    return record


def converted_dir(sha256: str) -> Path:
    """Where the conversion of the GGUF file with this sha256 lives: keyed by the file and by the versions of the
    libraries that convert it (torch, transformers, gguf), so a conversion made by other versions is never reused."""
    versions = json.dumps([CONVERT_VERSION, library_versions(("torch", "transformers", "gguf"))], sort_keys=True)
    return cache_root() / f"{sha256[:16]}-{hashlib.sha256(versions.encode()).hexdigest()[:8]}"


def hf_dir_for(path: str | Path, progress=None) -> Path:
    """The plain HF model directory of a GGUF file, converted on first use (see the module docstring)."""
    src = Path(path).expanduser()
    check_gguf(src)
    sha = file_sha256(src)
    final = converted_dir(sha)
    if (final / RECORD).is_file():
        verify_dir(final)
        return final
    with _file_lock(final.with_name(final.name + ".lock")):
        if (final / RECORD).is_file():
            verify_dir(final)
            return final
        check_architecture(src)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.shl-", suffix=".tmp", dir=final.parent))
        try:
            if progress is not None:
                progress(f"converting {src.name} to a Hugging Face model (once)")
            convert(src, tmp)
            record = {"format": "shl-gguf", "version": CONVERT_VERSION, "source": src.name,
                      "source_size": src.stat().st_size, "source_sha256": sha, "libraries": library_versions(("torch", "transformers", "gguf", "tokenizers")),
                      "files": _manifest(tmp)}
            (tmp / RECORD).write_text(json.dumps(record, indent=2))
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final


def convert(src: Path, out: Path) -> None:
    """Dequantise ``src`` (GGUF) to float32 and save it in ``out`` as a plain HF model directory."""
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise ShlError(f"{src}: loading GGUF needs the 'gguf' package (pip install 'shl[gguf]')") from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # the GGUF reader's own progress bars
            tokenizer = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
            model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32)
    except Exception as exc:
        arch = ""
        with contextlib.suppress(ShlError):
            arch = f" (architecture '{gguf_metadata(src)['architecture']}')"
        raise ShlError(f"{src}: transformers cannot load this GGUF file{arch}: {type(exc).__name__}: "
                       f"{_first_line(exc)}") from None
    config = model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ShlError(f"{src}: the dequantised weights do not fit the architecture (missing {missing[:3]}, "
                       f"unexpected {unexpected[:3]})")
    plain.generation_config = model.generation_config
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
