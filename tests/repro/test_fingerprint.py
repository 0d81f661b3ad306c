"""The reproduction check (benchmarks/fingerprint.py): under the locked install, a small fixed toy-world ablation
gives exactly the committed metrics."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _fingerprint_module():
    spec = importlib.util.spec_from_file_location("shl_fingerprint", ROOT / "benchmarks" / "fingerprint.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_differences_name_every_changed_value_and_treat_nan_as_equal():
    fp = _fingerprint_module()
    want = {"a": [{"round": 0, "coherence": 0.5, "x": float("nan")}, {"round": 1, "coherence": 0.25}],
            "b": [{"round": 0, "trait": 0.1}]}
    got = {"a": [{"round": 0, "coherence": 0.5, "x": float("nan")}, {"round": 1, "coherence": 0.2500000001}],
           "c": [{"round": 0, "trait": 0.1}]}
    diffs = fp.differences(want, got)
    assert diffs == ["a row 1 (round 1) coherence: fingerprint 0.25, here 0.2500000001",
                     "b: missing here", "c: not in the fingerprint"]
    assert fp.differences(want, want) == []


def test_other_versions_or_cpu_are_not_comparable():
    fp = _fingerprint_module()
    expected = {"libraries": {"torch": "2.13.0+cpu", "peft": "0.22.0"}, "cpu_capability": "AVX2"}
    same = {"libraries": {"torch": "2.13.0+cpu", "peft": "0.22.0", "numpy": "2"}, "cpu_capability": "AVX2"}
    assert fp.not_comparable(expected, same) == []
    other = {"libraries": {"torch": "2.13.0+cpu", "peft": "0.21.2"}, "cpu_capability": "AVX512"}
    assert fp.not_comparable(expected, other) == ["peft 0.21.2 here, 0.22.0 in the fingerprint",
                                                  "CPU capability AVX512 here, AVX2 in the fingerprint"]


@pytest.mark.system
def test_metrics_equal_the_committed_fingerprint():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fingerprint.py")], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    out = proc.stdout + proc.stderr
    if proc.returncode == _fingerprint_module().NOT_COMPARABLE:
        versions_differ = any("CPU capability" not in reason for reason in out.split(": ", 2)[-1].split("; "))
        if versions_differ and os.environ.get("SHL_REQUIRE_FINGERPRINT"):
            pytest.fail(f"SHL_REQUIRE_FINGERPRINT is set but the install is not the locked one: {out.strip()}")
        pytest.skip(out.strip())
    assert proc.returncode == 0, out
    assert "every metric equal to the fingerprint" in out
