"""Run a command that prints JSON (or JSON lines) and keep its output as a results file, with what produced it.

    python benchmarks/record_command.py benchmarks/results/toyworld_sweep.json -- \\
        shl toyworld sweep --json --plot docs/toyworld_sweep.png
    python benchmarks/record_command.py benchmarks/results/sweep_smollm2.json -- \\
        shl sweep experiments/real/sweep_smollm2.yaml --trait trait_logodds --json --out /tmp/sweep_smollm2

The results file: ``{"command", "wall_time_s", "load_average": {"start", "end"}, "recorded", "environment",
"results"}``, where ``environment`` is what every run records (``shl.environment.environment``: Python, library
versions, torch build, CPU, threads, shl commit) and ``results`` the command's parsed output (a list for JSON
lines). Measure on an otherwise idle machine: the load average is kept beside the time so a reader can tell.
``benchmarks/readme_tables.py`` writes the README's tables from these files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def measurement(load_start: tuple[float, ...]) -> dict:
    """The environment of this process and the load average since ``load_start``."""
    from shl.environment import environment

    return {
        "load_average": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in os.getloadavg()]},
        "recorded": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "environment": environment(),
    }


def parse(text: str):
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def main() -> None:
    argv = sys.argv[1:]
    if len(argv) < 3 or argv[1] != "--" or argv[0].startswith("-"):
        sys.exit(__doc__)
    out, cmd = Path(argv[0]), argv[2:]
    load = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"record_command: {' '.join(cmd)} exited {proc.returncode}; nothing recorded")
    try:
        results = parse(proc.stdout)
    except json.JSONDecodeError as exc:
        sys.exit(f"record_command: the output of {' '.join(cmd)} is not JSON or JSON lines ({exc})")
    data = {"command": " ".join(cmd), "wall_time_s": round(wall, 1), **measurement(load), "results": results}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"record_command: wrote {out} ({wall:.0f} s)")


if __name__ == "__main__":
    main()
