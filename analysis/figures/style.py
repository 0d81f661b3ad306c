"""What every report figure shares: verdict colours and markers, matplotlib settings, captions, deterministic
point spreading, file names, and saving as PNG + SVG (atomically, with SVG ids stable across runs)."""

from __future__ import annotations

import io
import re
import textwrap
from pathlib import Path

import numpy as np

from shl.store import atomic_write

#: verdict kind -> (colour, marker, filled); Okabe-Ito colours, distinguishable without colour by the marker.
VERDICT_STYLE = {
    "better": ("#009E73", "o", True),
    "worse": ("#D55E00", "s", True),
    "inconclusive": ("#555555", "o", False),
    "not tested": ("#999999", "x", True),
}
CORRECTION_NAME = {"holm": "Holm correction", "bonferroni": "Bonferroni correction",
                   "bh": "Benjamini-Hochberg correction", "none": "no correction"}
RC = {
    "font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "legend.fontsize": 8, "legend.title_fontsize": 8.5,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.25, "grid.linewidth": 0.6, "svg.hashsalt": "shl",
}
"""matplotlib rc settings every figure is drawn under."""
DPI = 200


def verdict_kind(verdict: str) -> str:
    """"better" / "worse" / "inconclusive" / "not tested" (no or one pair) from a table verdict."""
    v = str(verdict)
    if v in ("better", "worse"):
        return v
    return "inconclusive" if v.startswith("inconclusive") else "not tested"


def safe_name(name: str) -> str:
    """A metric name as it appears in a figure's file name (``paired_<safe name>``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width=max(20, width), break_long_words=False))


def spread(values: np.ndarray, step: float = 0.07) -> np.ndarray:
    """Deterministic horizontal offsets: points closer than 3% of the range are set side by side."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return values
    span = float(np.ptp(values)) or 1.0
    tol = 0.03 * span
    out = np.zeros(values.size)
    placed: list[float] = []
    for i in np.argsort(values, kind="stable"):
        k = sum(abs(values[i] - p) < tol for p in placed)
        out[i] = ((k + 1) // 2) * step * (1 if k % 2 else -1)
        placed.append(values[i])
    return out


def save(fig, path_stem: Path, written: list[Path]) -> None:
    """Write ``fig`` as ``<path_stem>.png`` and ``.svg`` (appended to ``written``), then clear it."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    for ext in ("png", "svg"):
        p = path_stem.with_suffix(f".{ext}")
        buf = io.BytesIO()
        with rc_context({"svg.hashsalt": "shl"}):  # SVG ids stay the same from one run to the next
            fig.savefig(buf, format=ext, dpi=DPI, bbox_inches="tight", pad_inches=0.06,
                        metadata={"Date": None} if ext == "svg" else None)
        atomic_write(p, buf.getvalue())
        written.append(p)
    fig.clf()


def caption(fig, text: str, width: int) -> None:
    """A caption under the figure (savefig's tight bounding box takes it in)."""
    fig.text(0.01, 0.0, wrap(text, width), ha="left", va="top", fontsize=7.5, color="#333333")
