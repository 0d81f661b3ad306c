"""The reproduction check: a small fixed toy-world ablation (``tests/repro/fingerprint.yaml``: mean vs max
aggregation, 2 seeds x 2 rounds, the default toy model trained first if it is not cached) whose every stored
metric must equal ``benchmarks/results/fingerprint.json`` exactly under the library versions recorded there (the
locked install, ``requirements/lock.txt``) and the same CPU instruction set.

    python benchmarks/fingerprint.py            # check: exit 0 equal, 1 different (the differences named),
                                                # 3 not comparable here (other versions or CPU; the reasons named)
    python benchmarks/fingerprint.py --write    # record this install's values as the fingerprint

The runs use one process and one thread (``--executor inprocess``, ``OMP_NUM_THREADS=1``), so the values do not
depend on the machine's core count. ``tests/repro/test_fingerprint.py`` runs the check (system tier, in CI).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tests" / "repro" / "fingerprint.yaml"
FINGERPRINT = ROOT / "benchmarks" / "results" / "fingerprint.json"
NOT_COMPARABLE = 3


def this_install() -> dict:
    from shl.environment import RESULT_LIBRARIES, environment

    env = environment()
    return {"libraries": {k: env["libraries"][k] for k in RESULT_LIBRARIES},
            "cpu_capability": env["torch_build"]["cpu_capability"], "cpu": env["cpu"]}


def not_comparable(expected: dict, here: dict) -> list[str]:
    """Why this install's values need not equal the fingerprint's: other result-deciding versions or CPU ISA."""
    reasons = [f"{lib} {here['libraries'].get(lib)} here, {v} in the fingerprint"
               for lib, v in expected["libraries"].items() if here["libraries"].get(lib) != v]
    if here["cpu_capability"] != expected["cpu_capability"]:
        reasons.append(f"CPU capability {here['cpu_capability']} here, {expected['cpu_capability']} in the fingerprint")
    return reasons


def run(store: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "shl", "ablate", str(CONFIG), "--out", str(store), "--executor", "inprocess",
           "--no-report"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"fingerprint: {' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")


def collect(store: Path) -> dict[str, list[dict]]:
    """Every run's metrics rows (``metrics.jsonl``), by run directory name."""
    out = {}
    for run_dir in sorted(p for p in (store / "runs").iterdir() if p.is_dir()):  # not the .shl-dir marker
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
        out[run_dir.name] = rows
    return out


def differences(want: dict, got: dict, limit: int = 10) -> list[str]:
    diffs = []
    for run in sorted(set(want) | set(got)):
        if run not in got or run not in want:
            diffs.append(f"{run}: {'missing here' if run not in got else 'not in the fingerprint'}")
            continue
        for i, (a, b) in enumerate(zip(want[run], got[run])):
            for key in sorted(set(a) | set(b)):
                if json.dumps(a.get(key)) != json.dumps(b.get(key)):  # NaN equals NaN here
                    diffs.append(f"{run} row {i} (round {a.get('round')}) {key}: fingerprint {a.get(key)!r}, "
                                 f"here {b.get(key)!r}")
        if len(want[run]) != len(got[run]):
            diffs.append(f"{run}: {len(want[run])} metrics rows in the fingerprint, {len(got[run])} here")
    return diffs[:limit] + ([f"... and {len(diffs) - limit} more"] if len(diffs) > limit else [])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="record this install's values as the fingerprint")
    args = ap.parse_args()
    here = this_install()
    expected = None if args.write else json.loads(FINGERPRINT.read_text())
    if expected is not None:
        reasons = not_comparable(expected["install"], here)
        if reasons:
            print("fingerprint: not comparable here: " + "; ".join(reasons))
            sys.exit(NOT_COMPARABLE)
    with tempfile.TemporaryDirectory(prefix="shl-fingerprint-") as tmp:
        run(Path(tmp) / "store")
        got = collect(Path(tmp) / "store")
    if args.write:
        FINGERPRINT.write_text(json.dumps({"config": str(CONFIG.relative_to(ROOT)), "install": here, "runs": got},
                                          indent=1) + "\n")
        print(f"fingerprint: wrote {FINGERPRINT.relative_to(ROOT)} ({len(got)} runs)")
        return
    diffs = differences(expected["runs"], got)
    if diffs:
        print("fingerprint: the metrics differ from the fingerprint:\n  " + "\n  ".join(diffs))
        sys.exit(1)
    print(f"fingerprint: {len(got)} runs, every metric equal to the fingerprint")


if __name__ == "__main__":
    main()
