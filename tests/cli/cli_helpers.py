"""Helpers for the CLI tests (imported by the tests as ``cli_helpers``; conftest.py re-exports them): tiny run configs / experiments written into tmp_path, and the real CLI in a
subprocess (``python -m shl``) with OMP_NUM_THREADS=1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

TINY_RUN: dict[str, Any] = {
    "name": "tiny",
    "seed": 0,
    "device": "cpu",
    "model": {"name": "tiny_random"},
    "steer": {"method": "mean_diff", "layers": [1], "n_contexts": 8},
    "dose": {"steps": 1, "probe_prompts": 8},
    "generate": {"n_prompts": 8, "max_new_tokens": 12},
    "filters": [],
    "heal": {"epochs": 1},
    "loop": {"rounds": 1},
    "eval": {"max_new_tokens": 12, "evaluators": [{"name": "coherence", "params": {"n_prompts": 8}}, {"name": "trait_margin", "params": {"n_prompts": 4}}]},
}

TINY_ARMS: dict[str, dict[str, Any]] = {
    "mean": {"heal.barrier.aggregator": "mean"},
    "rmse": {"heal.barrier.aggregator": "rmse"},
}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def write_run_config(directory: Path, name: str = "tiny.yaml", **over: Any) -> Path:
    """A tiny run config (tiny_random model, small sizes); keyword args are merged in (nested dicts)."""
    path = Path(directory) / name
    path.write_text(yaml.safe_dump(_merge(TINY_RUN, over), sort_keys=False))
    return path


def write_experiment(
    directory: Path,
    name: str = "exp.yaml",
    arms: dict[str, dict[str, Any]] | None = None,
    seeds: Any = "0-1",
    base_over: dict[str, Any] | None = None,
    baseline: str = "mean",
    **extra: Any,
) -> Path:
    """A tiny experiment (2 arms x 2 seeds by default) whose base is a tiny run config next to it."""
    directory = Path(directory)
    base = write_run_config(directory, f"{Path(name).stem}_base.yaml", **(base_over or {}))
    exp = {
        "name": Path(name).stem,
        "base": base.name,
        "seeds": seeds,
        "arms": arms if arms is not None else TINY_ARMS,
        "comparison": {
            "baseline": baseline,
            "metrics": [{"name": "coherence", "direction": "higher"}, {"name": "trait", "direction": "higher"}],
            "primary": "coherence",
            "endpoint": "final",
        },
        **extra,
    }
    path = directory / name
    path.write_text(yaml.safe_dump(exp, sort_keys=False))
    return path


def shl_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["COLUMNS"] = "200"
    env.setdefault("SHL_WORKERS", "1")  # runs in one process unless a test asks for workers
    env.update(extra)
    return env


def shl_cmd(*args: Any) -> list[str]:
    return [sys.executable, "-m", "shl", *map(str, args)]


def run_shl(*args: Any, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess; returns the CompletedProcess (text stdout/stderr)."""
    return subprocess.run(
        shl_cmd(*args), cwd=cwd, env=env or shl_env(), capture_output=True, text=True, timeout=timeout
    )


def shl_main(capsys: Any, *args: Any) -> tuple[int, str, str]:
    """The CLI in this process (``shl.cli.main``; quick commands): exit code, stdout, stderr."""
    from shl.cli import main

    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def done_dirs(runs: Path) -> dict[str, Path]:
    return {d.name: d for d in sorted(Path(runs).iterdir()) if (d / "DONE.json").is_file()}
