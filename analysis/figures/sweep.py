"""The steering sweep's figure (``shl sweep``): one column per layer; trait (top) and coherence (bottom) against the
coefficient, the method's vector and the random control of the same norm, ± one standard error, the unsteered
value as a dotted line and the coherence floor of the suggested band dashed."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from ..sweep import BASE, RANDOM, base_row
from .style import caption, save


def sweep_figure(rows: Sequence[dict[str, Any]], trait: str, coherence: str, floor: float, path_stem: Path,
                 title: str = "") -> list[Path]:
    """Write the figure as ``<path_stem>.png`` and ``.svg``; returns the paths."""
    from matplotlib.figure import Figure

    base = base_row(rows)
    layers = sorted({r["layer"] for r in rows if r["vector"] != BASE})
    kinds = [k for k in dict.fromkeys(r["vector"] for r in rows) if k != BASE]
    fig = Figure(figsize=(2.6 * max(len(layers), 1) + 0.6, 4.6))
    axes = fig.subplots(2, max(len(layers), 1), sharex=True, sharey="row", squeeze=False)
    colours = {RANDOM: "#888888"}
    for j, layer in enumerate(layers):
        for i, metric in enumerate((trait, coherence)):
            ax = axes[i][j]
            for kind in kinds:
                pts = sorted((r["coeff"], r.get(metric), r.get(f"{metric}_se")) for r in rows
                             if r["layer"] == layer and r["vector"] == kind and r.get(metric) is not None)
                pts = [(0.0, base.get(metric), base.get(f"{metric}_se"))] + pts
                xs = [p[0] for p in pts]
                ys = [float(p[1]) if p[1] is not None else math.nan for p in pts]
                es = [float(p[2]) if isinstance(p[2], (int, float)) else 0.0 for p in pts]
                ax.errorbar(xs, ys, yerr=es, marker="o", ms=3, lw=1.2, capsize=2, label=kind,
                            color=colours.get(kind, "#1f77b4"))
            b = base.get(metric)
            if b is not None:
                ax.axhline(float(b), ls=":", lw=0.8, color="#444444")
                if metric == coherence:
                    ax.axhline(floor * float(b), ls="--", lw=0.8, color="#c0392b")
            if i == 0:
                ax.set_title(f"layer {layer}", fontsize=9)
            if j == 0:
                ax.set_ylabel(metric, fontsize=8)
            if i == 1:
                ax.set_xlabel("coefficient", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    caption(fig, f"Unsteered model dotted; coherence floor ({floor:g} x unsteered) dashed; bars: one standard "
                 f"error. The random vector has the method's norm at each layer.", max(60, 45 * len(layers)))
    written: list[Path] = []
    save(fig, path_stem, written)
    return written
