"""`import shl_analysis.spec` (done by shl.config.experiment) must not pull in the heavy analysis stack."""

import subprocess
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

HEAVY = ("pandas", "scipy", "statsmodels", "matplotlib", "seaborn")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SHIM_CODE + code], capture_output=True, text=True, timeout=120)


def test_spec_import_is_light():
    proc = _run("import shl_analysis.spec, sys\n"
                f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
                "assert not heavy, heavy\n")
    assert proc.returncode == 0, proc.stderr


def test_package_exports_resolve_lazily():
    proc = _run("import shl_analysis, sys\n"
                "assert 'pandas' not in sys.modules\n"
                "assert set(shl_analysis.__all__) <= set(dir(shl_analysis))\n"
                "from shl_analysis import ComparisonSpec, MetricSpec\n"
                "assert 'pandas' not in sys.modules and 'scipy' not in sys.modules\n"
                "for name in shl_analysis.__all__:\n"
                "    assert getattr(shl_analysis, name) is not None, name\n"
                "from shl_analysis import report\n"
                "assert shl_analysis.write_report is report.write_report\n"
                "assert 'matplotlib' not in sys.modules  # figures import matplotlib only when drawing\n"
                "try:\n"
                "    shl_analysis.nope\n"
                "except AttributeError:\n"
                "    pass\n"
                "else:\n"
                "    raise SystemExit('no AttributeError')\n")
    assert proc.returncode == 0, proc.stderr
