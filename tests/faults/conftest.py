"""Crash and fault tests: the real CLI in a subprocess, killed or failed at exact file operations by the
audit-hook injector in inject/sitecustomize.py (see its docstring). Helpers are in fault_helpers.py."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "cli"))
