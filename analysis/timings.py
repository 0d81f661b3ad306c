"""Where an ablation's wall time went: the per-stage seconds of ``timings.jsonl`` summed over runs."""

from __future__ import annotations

from pathlib import Path
from typing import Collection, Iterable

import pandas as pd
from shl.store import RUNS_DIR, TIMINGS, parse_json, read_lines

STAGE_COLUMNS = ["stage", "seconds", "share", "runs"]


def read_timings(run_dir: Path) -> list[dict]:
    """The rows of one run's timings.jsonl (malformed lines skipped; none when the file is missing)."""
    rows = []
    for line in read_lines(Path(run_dir) / TIMINGS):
        try:
            row = parse_json(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("stages"), dict):
            rows.append(row)
    return rows


def stage_breakdown(run_dirs: Iterable[Path]) -> pd.DataFrame:
    """One row per stage: total seconds over the given runs, share of the total, and how many runs spent time
    in it; sorted by seconds, largest first. Stages reused from the shared-stage cache cost nothing here."""
    seconds: dict[str, float] = {}
    runs: dict[str, int] = {}
    for d in run_dirs:
        seen = set()
        for row in read_timings(d):
            for stage, s in row["stages"].items():
                if isinstance(s, (int, float)):
                    seconds[stage] = seconds.get(stage, 0.0) + float(s)
                    seen.add(stage)
        for stage in seen:
            runs[stage] = runs.get(stage, 0) + 1
    total = sum(seconds.values())
    rows = [(k, v, v / total if total > 0 else 0.0, runs[k]) for k, v in seconds.items()]
    df = pd.DataFrame(rows, columns=STAGE_COLUMNS).sort_values("seconds", ascending=False, ignore_index=True)
    return df


def breakdown_markdown(df: pd.DataFrame) -> list[str]:
    """Markdown lines for a stage breakdown (empty when no run recorded timings)."""
    if df.empty:
        return []
    total = df["seconds"].sum()
    lines = [f"## Where the time went ({total:.0f} s of run time over the compared runs)", "",
             "| stage | seconds | share | runs |", "|---|---|---|---|"]
    lines += [f"| {r.stage} | {r.seconds:.1f} | {100 * r.share:.1f}% | {r.runs} |" for r in df.itertuples()]
    return lines + [""]


def run_dirs_of(out_dir: Path, run_ids: Collection[str] | None) -> list[Path]:
    runs = Path(out_dir) / RUNS_DIR
    if not runs.is_dir():
        return []
    return [p for p in sorted(runs.iterdir()) if p.is_dir() and (run_ids is None or p.name in run_ids)]
