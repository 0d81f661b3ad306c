"""The steering sweep's reading (``shl sweep``): per layer and coefficient, the trait and coherence of the
unhealed model steered by the method's vector and by a random vector of the same norm (the control), the band
of cells worth healing from, and the config lines that choose the best of them. Pure Python: no torch."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

BASE = "none"  # the ``vector`` of the unsteered cell
RANDOM = "random"


@dataclass(frozen=True)
class BandCell:
    layer: int
    coeff: float
    trait_shift: float  # steered trait - unsteered trait
    over_random: float  # steered trait - the random vector's trait at the same layer and coefficient
    se: float  # standard error of over_random (the two cells' SEs combined; 0 where none is recorded)
    coherence: float
    coherence_share: float  # coherence / the unsteered coherence


@dataclass
class Suggestion:
    """The band: cells where the vector moves the trait beyond the random control by more than ``z`` standard
    errors, in the positive persona's direction, while coherence stays at or above ``floor`` times the unsteered
    model's. ``best``: the band's cell with the largest trait shift (None when the band is empty)."""

    floor: float
    z: float
    band: list[BandCell] = field(default_factory=list)
    best: BandCell | None = None

    def config_lines(self) -> list[str]:
        if self.best is None:
            return []
        return ["steer:", f"  layers: [{self.best.layer}]", "dose:", f"  scale: {self.best.coeff:g}"]

    def summary(self) -> str:
        if self.best is None:
            return (f"no cell moved the trait beyond the random control by > {self.z:g} SE while keeping coherence "
                    f">= {self.floor:g} x the unsteered model's: widen --coeffs or try other --layers")
        b = self.best
        layers = sorted({c.layer for c in self.band})
        ranges = []
        for layer in layers:
            cs = sorted(c.coeff for c in self.band if c.layer == layer)
            ranges.append(f"layer {layer}: {cs[0]:g}" + (f"-{cs[-1]:g}" if cs[-1] != cs[0] else ""))
        return (f"band (trait beyond the random control by > {self.z:g} SE, coherence >= {self.floor:g} x "
                f"unsteered): {'; '.join(ranges)}. Best: layer {b.layer}, coefficient {b.coeff:g} (trait "
                f"{b.trait_shift:+.3g} from unsteered, {b.over_random:+.3g} +- {b.se:.2g} beyond random; coherence "
                f"{b.coherence:.3g}, {b.coherence_share:.0%} of unsteered)")


def _num(row: dict[str, Any], key: str) -> float:
    v = row.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def base_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    for r in rows:
        if r["vector"] == BASE:
            return r
    raise ValueError("sweep: no unsteered cell (vector 'none') among the rows")


def suggest(rows: Sequence[dict[str, Any]], trait: str, coherence: str, floor: float = 0.9,
            z: float = 2.0) -> Suggestion:
    """The band and its best cell (see ``Suggestion``) from the sweep's rows."""
    base = base_row(rows)
    t0, c0 = _num(base, trait), _num(base, coherence)
    random = {(r["layer"], r["coeff"]): r for r in rows if r["vector"] == RANDOM}
    out = Suggestion(floor=floor, z=z)
    for r in rows:
        if r["vector"] in (BASE, RANDOM):
            continue
        ctrl = random.get((r["layer"], r["coeff"]))
        if ctrl is None:
            continue
        se_parts = [_num(r, f"{trait}_se"), _num(ctrl, f"{trait}_se")]
        se = math.sqrt(sum(s * s for s in se_parts if math.isfinite(s)))
        over = _num(r, trait) - _num(ctrl, trait)
        coh = _num(r, coherence)
        share = coh / c0 if c0 > 0 else math.nan
        cell = BandCell(int(r["layer"]), float(r["coeff"]), _num(r, trait) - t0, over, se, coh, share)
        if math.isfinite(over) and over > z * se and cell.trait_shift > 0 and math.isfinite(coh) and coh >= floor * c0:
            out.band.append(cell)
    if out.band:
        out.best = max(out.band, key=lambda c: (c.trait_shift, -c.coeff))
    return out


def format_table(rows: Sequence[dict[str, Any]], trait: str, coherence: str | None) -> str:
    """One markdown table: a row per (layer, coefficient), the vector's and the random control's trait and
    coherence (± one standard error), the unsteered model first; trait only when ``coherence`` is None."""

    def pm(row: dict[str, Any] | None, key: str) -> str:
        if row is None:
            return ""
        v, se = _num(row, key), _num(row, f"{key}_se")
        if not math.isfinite(v):
            return "n/a"
        return f"{v:.3f} ± {se:.3f}" if math.isfinite(se) else f"{v:.3f}"

    base = base_row(rows)
    method = next((r["vector"] for r in rows if r["vector"] not in (BASE, RANDOM)), "vector")
    keys = [trait] if coherence is None else [trait, coherence]
    head = [f"{k} ({method})" for k in keys] + [f"{k} (random)" for k in keys]
    lines = ["| layer | coeff | " + " | ".join(head) + " |", "|---:|---:|" + "---:|" * len(head),
             "| - | 0 | " + " | ".join(pm(base, k) for k in keys) + " |" + " |" * len(keys)]
    cells = {(r["layer"], r["coeff"], r["vector"]): r for r in rows}
    for layer in sorted({r["layer"] for r in rows if r["vector"] != BASE}):
        for coeff in sorted({r["coeff"] for r in rows if r["layer"] == layer and r["vector"] != BASE}):
            md, rnd = cells.get((layer, coeff, method)), cells.get((layer, coeff, RANDOM))
            lines.append(f"| {layer} | {coeff:g} | " + " | ".join([pm(md, k) for k in keys] + [pm(rnd, k) for k in keys])
                         + " |")
    return "\n".join(lines)


TRAIT_MEASURES = ("trait", "trait_logodds")  # the built-in trait measures whose agreement a sweep reports


@dataclass(frozen=True)
class Agreement:
    """How two trait measures agree across a sweep's cells (the unsteered one, every steered one and every
    random control): Pearson's r with its 95% interval (Fisher's z), Spearman's rho, over ``n`` cells."""

    a: str
    b: str
    n: int
    r: float
    r_low: float
    r_high: float
    rho: float

    def summary(self) -> str:
        return (f"{self.a} and {self.b} agree across the {self.n} cells: Pearson r = {self.r:.2f} "
                f"[{self.r_low:.2f}, {self.r_high:.2f}] (95%), Spearman rho = {self.rho:.2f}")


def agreement(rows: Sequence[dict[str, Any]], measures: Sequence[str] = TRAIT_MEASURES) -> list[Agreement]:
    """Each pair of the trait ``measures`` the rows report (finite in at least 4 cells): their agreement."""
    from scipy import stats

    present = [m for m in measures if sum(math.isfinite(_num(r, m)) for r in rows) >= 4]
    out = []
    for i, a in enumerate(present):
        for b in present[i + 1:]:
            xy = [(_num(r, a), _num(r, b)) for r in rows if math.isfinite(_num(r, a)) and math.isfinite(_num(r, b))]
            if len(xy) < 4:
                continue
            x, y = [p[0] for p in xy], [p[1] for p in xy]
            if len(set(x)) < 2 or len(set(y)) < 2:
                continue
            pr = stats.pearsonr(x, y)
            ci = pr.confidence_interval(0.95)
            rho = stats.spearmanr(x, y).statistic
            out.append(Agreement(a, b, len(xy), float(pr.statistic), float(ci.low), float(ci.high), float(rho)))
    return out
