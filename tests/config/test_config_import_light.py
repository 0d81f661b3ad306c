"""Loading configs and planning an ablation imports neither torch nor the statistics stack: ``shl ablate``'s
config errors and ``--help`` stay fast, and worker processes pay for torch only when a run starts."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pandas", "scipy", "statsmodels", "matplotlib", "seaborn", "torch")


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}; import json, sys; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_config_and_runner_import_no_heavy_module():
    assert _loaded_after("import shl.config, shl.runner") == []


def test_data_and_config_modules_import_in_either_order():
    """shl.data reads config YAML; shl.config never imports shl.data (no import cycle)."""
    assert _loaded_after("import shl.data, shl.config.experiment") == []
    proc = subprocess.run(
        [sys.executable, "-c", "import shl.config.experiment, sys; assert 'shl.data' not in sys.modules"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
