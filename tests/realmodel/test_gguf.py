"""GGUF files in, with no model hub: the fetched SmolLM2 file through the `hf` source, its conversion cached by
sha256 (idempotent, fast the second time), runs identified by the file's hash, and bad files as one line."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from conftest import ROOT, shl


def gguf_file() -> Path:
    from shl_plugins.models.smollm2 import gguf_path

    return gguf_path()


def test_models_get_is_idempotent_and_says_where_and_how_big(smollm2: Path, tmp_path: Path):
    t0 = time.monotonic()
    proc = shl("models", "get", "smollm2", cwd=tmp_path)
    assert proc.returncode == 0 and time.monotonic() - t0 < 120
    assert str(smollm2) in proc.stdout and " MB" in proc.stdout
    record = json.loads((smollm2 / "shl_gguf.json").read_text())
    assert smollm2.name.startswith(record["source_sha256"][:16]) and record["files"]["model.safetensors"]["size"] > 5e8


def test_a_gguf_path_runs_through_the_hf_source_and_names_the_file_by_its_hash(smollm2: Path, tmp_path: Path):
    src = tmp_path / "copy of smollm2.gguf"
    shutil.copy(gguf_file(), src)
    proc = shl("validate", ROOT / "experiments/real/smoke_smollm2.yaml", "--set", f"model.name={src}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    small = ["--set", f"model.name={src}", "--set", "generate.n_prompts=6", "--set", "dose.probe_prompts=4",
             "--set", "steer.n_contexts=6", "--set", "heal.epochs=1", "--set", "loop.min_kept=2", "--set",
             "eval.evaluators=[{name: coherence, params: {n_prompts: 4}}]", "--set", "eval.steered=false"]
    proc = shl("run", ROOT / "experiments/real/smoke_smollm2.yaml", *small, "--out", tmp_path / "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["model_identity"] == "gguf:" + json.loads((smollm2 / "shl_gguf.json").read_text())["source_sha256"]
    proc = shl("sample", tmp_path / "run", "--n", "1", "--max-new-tokens", "8", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_truncated_gguf_file_is_one_line(smollm2: Path, tmp_path: Path):
    bad = tmp_path / "half.gguf"
    bad.write_bytes(gguf_file().read_bytes()[: 5_000_000])
    proc = shl("models", "convert", bad, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0], proc.stderr
