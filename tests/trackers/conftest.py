"""Tracker test fixtures: the reference ablation without trackers, and a local MLflow store. The helpers (the
environment that keeps W&B local and silent, readers of W&B offline files and of an MLflow store) live in
tracker_helpers.py; the tiny configs and ``run_shl`` come from tests/cli/cli_helpers.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "cli"))

from cli_helpers import run_shl, write_experiment  # noqa: E402


@pytest.fixture(scope="session")
def plain(tmp_path_factory) -> Path:
    """A tiny experiment (2 arms x 2 seeds) ablated without trackers into ``<dir>/abl``: the reference results."""
    tmp = tmp_path_factory.mktemp("plain")
    exp = write_experiment(tmp)
    proc = run_shl("ablate", exp.name, "--out", "abl", cwd=tmp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory) -> str:
    """A local MLflow store (SQLite) shared by the tests, each in its own MLflow experiment; its tables are
    created here, once."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    return uri
