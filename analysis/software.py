"""Which software made a comparison's runs (each run's meta.json ``environment``), and one line when the runs were
made by different versions of the libraries that decide exact values."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from shl.environment import result_versions
from shl.store import RUNS_DIR, read_meta


def environments(out_dir: Path, run_ids: Iterable[str]) -> dict[str, dict]:
    """Run id -> its recorded environment ({} when the run recorded none: written by an older shl)."""
    out = {}
    for run_id in run_ids:
        env = read_meta(Path(out_dir) / RUNS_DIR / run_id).get("environment")
        out[run_id] = env if isinstance(env, dict) else {}
    return out


def software_lines(out_dir: Path, run_ids: Iterable[str]) -> list[str]:
    """Markdown lines: the software of the compared runs, and, when they differ, which runs used which versions."""
    envs = environments(out_dir, list(run_ids))
    recorded = {r: e for r, e in envs.items() if e}
    if not recorded:
        return ["Software: the runs recorded no environment (written by an older shl)."]
    groups: dict[tuple, list[str]] = {}
    for run_id, env in recorded.items():
        groups.setdefault(result_versions(env), []).append(run_id)
    first = next(iter(recorded.values()))
    src = first.get("shl") or {}
    shl_text = f"shl {src.get('version')}" + (f" (commit {str(src['commit'])[:10]}{', modified' if src.get('dirty') else ''})"
                                              if src.get("commit") else "")
    libs = ", ".join(f"{k} {v}" for k, v in result_versions(first))
    lines = [f"Software: {shl_text}; {libs}; Python {first.get('python')}; {first.get('device_name') or first.get('cpu')}, "
             f"{first.get('threads')} threads."]
    missing = sorted(set(envs) - set(recorded))
    if len(groups) > 1:
        parts = []
        for versions, runs in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            shown = ", ".join(f"{k} {v}" for k, v in versions)
            parts.append(f"{shown} ({len(runs)} run{'s' if len(runs) > 1 else ''}: {', '.join(sorted(runs)[:3])}"
                         f"{', ...' if len(runs) > 3 else ''})")
        lines.append("Warning: the compared runs were made by different library versions, so their exact values are "
                     "not comparable bit for bit: " + "; ".join(parts) + ".")
    if missing:
        lines.append(f"Note: {len(missing)} compared run(s) recorded no environment (older shl): "
                     f"{', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}.")
    return lines
