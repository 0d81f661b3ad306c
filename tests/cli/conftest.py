"""CLI test fixtures. The helpers (tiny configs, ``run_shl``) live in cli_helpers.py so the test modules can
import them without clashing with the other test folders' conftest modules."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from cli_helpers import run_shl, write_experiment, write_run_config  # noqa: E402,F401

os.environ["OMP_NUM_THREADS"] = "1"  # every subprocess inherits it too


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    return write_run_config(tmp_path)


@pytest.fixture
def tiny_experiment(tmp_path: Path) -> Path:
    return write_experiment(tmp_path)
