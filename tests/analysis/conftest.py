"""Make `import shl_analysis` work from the source tree when the package isn't installed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ANALYSIS_DIR = Path(__file__).resolve().parents[2] / "analysis"

SHIM_CODE = f"""
import importlib.util, sys
if importlib.util.find_spec("shl_analysis") is None:
    _spec = importlib.util.spec_from_file_location(
        "shl_analysis", {str(ANALYSIS_DIR / "__init__.py")!r},
        submodule_search_locations=[{str(ANALYSIS_DIR)!r}])
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules["shl_analysis"] = _mod
    _spec.loader.exec_module(_mod)
"""

if "shl_analysis" not in sys.modules:
    exec(SHIM_CODE)
