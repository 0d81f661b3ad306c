"""The software and machine that make a run's numbers: recorded in every run's meta.json (``environment``), shown in
the report, and compared across the runs of a comparison.

Exact values are reproducible only for the same library versions and CPU instruction set: a torch, transformers,
tokenizers or numpy release may change the last bits of a forward pass, or a toy model trained by it, and so a
sampled token, and so a whole run. Statistical verdicts are what carries across installs."""

from __future__ import annotations

import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = ("torch", "transformers", "peft", "tokenizers", "safetensors", "numpy", "scipy", "statsmodels", "pandas",
             "pydantic", "gguf")
"""Libraries whose versions a run records (those that can move its numbers, and those that read them)."""
RESULT_LIBRARIES = ("torch", "transformers", "peft", "tokenizers", "numpy")
"""Libraries whose versions decide a run's exact values (compared across the runs of a report)."""


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def cache_root() -> Path:
    """Where shl keeps what it computes once for many runs (toy models, converted GGUF models, evaluator
    calibrations): ``$SHL_CACHE_DIR`` or ``~/.cache/shl``."""
    env = os.environ.get("SHL_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "shl"


@lru_cache(maxsize=1)
def shl_source() -> dict[str, Any]:
    """shl's version, and its git commit (with ``dirty`` when the working tree has changes) when it runs from a
    checkout."""
    from . import __version__

    out: dict[str, Any] = {"version": __version__, "commit": None, "dirty": None}
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return out
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5)
        if commit.returncode == 0:
            out["commit"] = commit.stdout.strip()
            status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=5)
            out["dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str | None = None) -> dict[str, Any]:
    """What a run records: Python, the libraries (``library_versions``), torch's build (CUDA version, CPU
    capability), the device name, thread count, CPU, and shl's version and commit."""
    import torch

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "libraries": library_versions(),
        "torch_build": {"cuda": torch.version.cuda, "cpu_capability": cpu_capability()},
        "shl": shl_source(),
    }
    if device is not None:
        env["device"] = device
        if str(device).startswith("cuda") and torch.cuda.is_available():
            env["device_name"] = torch.cuda.get_device_name(torch.device(device))
        else:
            env["device_name"] = env["cpu"]
    return env


def cpu_capability() -> str | None:
    try:
        import torch

        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:
        return None


def result_versions(env: dict[str, Any] | None) -> tuple[tuple[str, str | None], ...]:
    """The versions that decide exact values, from a recorded ``environment`` (for comparing runs)."""
    libs = (env or {}).get("libraries") or {}
    return tuple((name, libs.get(name)) for name in RESULT_LIBRARIES)
