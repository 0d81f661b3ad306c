"""Rendering of the frontier comparison (``frontier.compare_frontiers``) as Markdown; no statistics here."""

from __future__ import annotations

import pandas as pd

from .frontier import FrontierResult
from .spec import ComparisonSpec
from .tables import _fmt, _markdown_table


def frontier_display(table: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """The frontier table as shown: one row per (matched axis, family)."""
    ci = f"{100 * (1 - alpha):g}% CI"
    return pd.DataFrame({
        "at matched": table["matched"],
        "compared": table["read"],
        "family": table["family"],
        "vs": table["baseline"],
        "n": table["n"].astype(str),
        "no overlap": table["no_overlap"].astype(str),
        "matched range (mean)": [f"{_fmt(lo, '.3g')}-{_fmt(hi, '.3g')}"
                                 for lo, hi in zip(table["range_low"], table["range_high"])],
        "baseline": [_fmt(v, ".4g") for v in table["mean_baseline"]],
        "family level": [_fmt(v, ".4g") for v in table["mean_family"]],
        "delta": [_fmt(d, "+.3g") for d in table["delta"]],
        ci: [f"[{_fmt(lo)}, {_fmt(hi)}]" for lo, hi in zip(table["ci_low"], table["ci_high"])],
        "wins": [f"{w}/{n}" for w, n in zip(table["wins"], table["n"])],
        "dominates / dominated": [f"{a}/{b}" for a, b in zip(table["family_dominates"],
                                                            table["baseline_dominates"])],
        "p (t)": [_fmt(p) for p in table["p_t"]],
        "p (perm)": [_fmt(p) for p in table["p_perm"]],
        "p (adj)": [_fmt(p) for p in table["p_adj"]],
        "MDE": [_fmt(m) for m in table["mde"]],
        "verdict": table["verdict"],
    })


def frontier_markdown(spec: ComparisonSpec, result: FrontierResult, seeds: list[int]) -> str:
    """The frontier section of comparison.md: what was compared, the table, how to read it."""
    fr = spec.frontier
    assert fr is not None
    fams = "; ".join(f"`{f}`: " + ", ".join(f"`{a}`" for a in arms) for f, arms in fr.families.items())
    off = {f: sum(result.dominated_points.get((f, s), 0) for s in seeds) for f in fr.families}
    n_pts = {f: len(seeds) * (len(arms) + (1 if fr.anchor else 0)) for f, arms in fr.families.items()}
    out = [f"# Along the frontier: families against `{fr.baseline}`", "",
           f"- families (arms from the weakest to the strongest setting): {fams}"
           + (f"; the anchor `{fr.anchor}` starts every family" if fr.anchor else ""),
           f"- per seed, each family's Pareto frontier of (`{fr.x}`, `{fr.y}`) endpoints ({spec.endpoint}), straight "
           f"lines between its points; two families are compared over the range both frontiers span at that seed "
           f"(never extrapolated), at {fr.grid} evenly spaced points, and a family's level is its mean over them "
           f"(the area under its frontier over the range, divided by the range's width)",
           "- points off their family's frontier (another setting of the family was at least as good on both): "
           + ", ".join(f"`{f}` {off[f]} of {n_pts[f]}" for f in fr.families),
           "", _markdown_table(frontier_display(result.table, spec.alpha)), "",
           f"Test: the per-seed levels of a family and of `{fr.baseline}` are paired by seed (two-sided paired t-test, "
           f"sign-flip test beside it), with the {spec.correction} correction over the families within each row "
           f"kind; the verdict uses p (adj) < {spec.alpha:g}. delta = family - baseline in the compared metric's "
           f"units. dominates / dominated: seeds where the family's frontier is better than the baseline's at every "
           f"point of the range where they differ / worse at every such point. no overlap: seeds where the two "
           f"frontiers share no range of positive width (left out of that row). A family is better than another "
           f"only where its frontier lies above; a significant delta with seeds dominated both ways is a crossing, "
           f"not dominance.", ""]
    return "\n".join(out)
