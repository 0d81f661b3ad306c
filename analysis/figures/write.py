"""``write_figures``: every report figure under ``report/figures/``, with notes for the figures it skips."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from shl.store import claim_dir

from ..endpoints import RunLengths
from ..spec import ComparisonSpec
from .forest import forest_figure
from .frontier import frontier_figure
from .per_seed import paired_figure
from .style import RC, safe_name, save
from .tradeoff import tradeoff_figure
from .trajectories import trajectory_figure


def write_figures(fig_dir: Path, spec: ComparisonSpec, arms: list[str], tidy: pd.DataFrame, chosen: pd.DataFrame,
                  kept: list[int], diffs: dict, endpoints_of: Callable[[str], dict], table: pd.DataFrame,
                  lengths: RunLengths | None = None) -> tuple[list[Path], list[str]]:
    """Write every report figure under `fig_dir`; returns (paths written, notes for the markdown)."""
    import seaborn as sns
    from matplotlib import rc_context

    written, notes = [], []
    if not kept:
        return written, ["figures skipped: no seed is usable in every arm."]
    claim_dir(fig_dir, "report figures")
    palette = dict(zip(arms, sns.color_palette("colorblind", n_colors=max(len(arms), 3))))
    run_ids = set(chosen[chosen["seed"].isin(kept)]["run_id"])
    sub = tidy[tidy["run_id"].isin(run_ids)]
    with rc_context(RC):
        if table.empty:
            notes.append("forest and paired-difference figures skipped: no arm besides the baseline.")
        else:
            save(forest_figure(table, spec), fig_dir / "forest", written)
            for m in spec.metrics:
                fig = paired_figure(m.name, m.direction, arms, diffs, table, spec, palette)
                save(fig, fig_dir / f"paired_{safe_name(m.name)}", written)
        save(trajectory_figure(sub, spec, arms, palette, len(kept), lengths), fig_dir / "trajectories", written)
        if spec.frontier is not None:
            fams = list(spec.frontier.families)
            fam_palette = dict(zip(fams, sns.color_palette("colorblind", n_colors=max(len(fams), 3))))
            fig = frontier_figure(endpoints_of(spec.frontier.x), endpoints_of(spec.frontier.y), kept, spec,
                                  fam_palette)
            save(fig, fig_dir / "frontier", written)
        present = set(tidy["metric"].unique())
        if {"trait", "coherence"} <= present:
            fig = tradeoff_figure(endpoints_of("trait"), endpoints_of("coherence"), arms, kept, spec, palette)
            save(fig, fig_dir / "tradeoff", written)
        else:
            notes.append("tradeoff figure skipped: needs metrics named `trait` and `coherence`.")
    return written, notes
