"""Config test fixtures: the plugin registry, and the CLI helpers (tiny run configs and experiments)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "cli"))

os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(scope="session")
def registry():
    from shl.manager import get_host

    return get_host().registry
