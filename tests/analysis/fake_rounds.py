"""Stand-ins for the per-round files a finished run must hold (its vectors and adapters), for analysis tests that
write runs through the store's API without running the engine; the analysis never reads these files."""

from __future__ import annotations

from pathlib import Path

from shl.store import round_files


def add_round_files(run_dir: Path, rounds: int) -> None:
    for rel in round_files(rounds):
        p = Path(run_dir) / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"{}" if rel.endswith(".json") else b"\0")
