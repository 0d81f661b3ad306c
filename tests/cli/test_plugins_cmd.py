"""`shl plugins`, `--help` of every command, and a fast `--help` (no torch import)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import run_shl, shl_env

EXPECTED = ["mean_diff", "svd", "cosine_gated", "rmse", "max", "mean", "p95", "constant", "power", "tail_ppl",
            "repetition", "tiny_random", "hf"]


def test_plugins_lists_builtin_components(tmp_path: Path):
    proc = run_shl("plugins", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    for name in EXPECTED:
        assert name in proc.stdout, name
    assert "shl" in proc.stdout  # the distribution


def test_plugins_json(tmp_path: Path):
    proc = run_shl("plugins", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    components = data["components"]
    names = {c["name"] for c in components}
    assert set(EXPECTED) <= names
    for c in components:
        assert c["plugin"], c
        assert c["distribution"] == "shl", c
        assert c["version"], c
        assert isinstance(c["params"], dict) and c["params"].get("type") == "object", c
        assert c["family"] in {"steering", "filter", "aggregator", "schedule", "evaluator", "model"}, c
    p95 = next(c for c in components if c["name"] == "p95")
    assert "q" in p95["params"]["properties"]
    assert data["failures"] == [] and data["conflicts"] == [] and data["disabled"] == []


def test_disable_plugins_env(tmp_path: Path):
    proc = run_shl("plugins", "--json", cwd=tmp_path, env=shl_env(SHL_DISABLE_PLUGINS="aggregators"))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    names = {c["name"] for c in data["components"]}
    assert "rmse" not in names and "p95" not in names
    assert "mean_diff" in names
    assert "aggregators" in data["disabled"]
    table = run_shl("plugins", cwd=tmp_path, env=shl_env(SHL_DISABLE_PLUGINS="aggregators"))
    assert table.returncode == 0
    assert "rmse" not in table.stdout
    assert "aggregators" in table.stdout  # reported as disabled


@pytest.mark.parametrize(
    "args",
    [(), ("--help",), ("plugins", "--help"), ("validate", "--help"), ("run", "--help"), ("ablate", "--help"),
     ("report", "--help"), ("toyworld", "--help"), ("toyworld", "build", "--help"), ("toyworld", "info", "--help"),
     ("toyworld", "sweep", "--help")],
)
def test_help(tmp_path: Path, args):
    proc = run_shl(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "usage: shl" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_version(tmp_path: Path):
    proc = run_shl("--version", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.startswith("shl ")


def test_unknown_command_is_a_usage_error(tmp_path: Path):
    proc = run_shl("frobnicate", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_help_does_not_import_torch(tmp_path: Path):
    code = (
        "import sys\n"
        "from shl.cli import main\n"
        "for argv in (['--help'], ['ablate', '--help'], []):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'pandas', 'matplotlib') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=shl_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stdout or proc.stdout.rstrip().endswith("HEAVY="), proc.stdout[-500:]
