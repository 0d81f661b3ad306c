"""The method's gates, per arm and heal round, from stored metrics: did each step of a round do its job?

For round r of a run (r >= 1), with ``prev`` the student before the round (round r - 1, unsteered), ``steered``
the steered point of the round (``steered_<metric>``: the student before the heal, steered at the dose used) and
``healed`` the student after the round's heal (round r, unsteered):

1. **steering moved the trait**: steered trait - prev trait > 0; its cost: prev coherence - steered coherence.
2. **the filters kept coherent text**: the coherent share among the kept completions above that among the dropped
   ones (``filter_kept_coherent`` / ``filter_dropped_coherent``, recorded by the engine with the first evaluator
   that judges completions one by one, ``Evaluator.judge_coherent``; otherwise not measured, and said so; with
   nothing dropped, the kept share alone).
3. **the heal learned**: healed trait - prev trait > 0; reported as the share of the steering shift the healed
   student keeps.
4. **the heal healed**: healed coherence - steered coherence > 0 (and healed coherence against the base model's).
   **Heal or undo**: the trait kept per unit of coherence restored; a heal that restores coherence while keeping
   no trait (gate 4 passes, gate 3 fails) is named as undoing the steering.

A gate passes for an arm and round when the mean over the compared seeds of its difference is above 0 by a
one-sided t-test at ``alpha`` (with one seed: the difference above 0). A run whose own difference is not above 0
is named with the gate and its numbers. Pure pandas/scipy: no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd

TRAIT_METRICS = ("trait", "trait_logodds")
COHERENCE_METRIC = "coherence"
STEERED = "steered_"
NAMED_RUNS_PER_GATE = 5

GATE_NAMES = {1: "steering moved the trait", 2: "the filters kept coherent text", 3: "the heal learned",
              4: "the heal healed"}


@dataclass
class GateRow:
    arm: str
    round: int
    n: int
    steer_shift: float
    coherence_cost: float
    learned: float  # healed trait - prev trait
    kept_share: float  # learned / steer_shift
    healed: float  # healed coherence - steered coherence
    vs_base: float  # healed coherence - the base model's coherence (round 0)
    trait_per_coherence: float  # learned / healed (heal or undo)
    filters: tuple[float, float] | None  # (kept coherent share, dropped coherent share) when recorded
    passed: dict[int, bool | None] = field(default_factory=dict)  # gate -> pass (None: not measured)

    @property
    def failed(self) -> list[int]:
        return [g for g, ok in self.passed.items() if ok is False]

    def verdict(self) -> str:
        if not self.failed:
            return "pass"
        text = "fails " + ", ".join(f"gate {g} ({GATE_NAMES[g]})" for g in self.failed)
        if self.passed.get(4) and self.passed.get(3) is False:
            text += ": the heal undid the steering (coherence restored, trait not kept)"
        return text


@dataclass
class Gates:
    trait: str | None
    coherence: str | None
    rows: list[GateRow] = field(default_factory=list)
    failing_runs: dict[int, list[str]] = field(default_factory=dict)  # gate -> evidence lines
    missing: str = ""  # why no gates were computed


def _passes(values: np.ndarray, alpha: float) -> bool:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return False
    if values.size == 1 or float(np.std(values, ddof=1)) == 0.0:
        return bool(values.mean() > 0)
    from scipy import stats

    return bool(values.mean() > 0 and stats.ttest_1samp(values, 0.0, alternative="greater").pvalue < alpha)


def compute_gates(tidy: pd.DataFrame, chosen: pd.DataFrame, seeds: Iterable[int], arms: list[str],
                  alpha: float = 0.05) -> Gates:
    """The gates of every arm and round over the chosen runs of ``seeds`` (see the module docstring)."""
    metrics = set(tidy["metric"]) if len(tidy) else set()
    trait = next((m for m in TRAIT_METRICS if m in metrics and f"{STEERED}{m}" in metrics), None)
    coherence = COHERENCE_METRIC if {COHERENCE_METRIC, f"{STEERED}{COHERENCE_METRIC}"} <= metrics else None
    out = Gates(trait, coherence)
    if trait is None or coherence is None:
        out.missing = ("gates not computed: they need a trait metric (one of " + ", ".join(TRAIT_METRICS) +
                       ") and `coherence`, each with its steered value (eval.steered)")
        return out
    seeds = {int(s) for s in seeds}
    runs = chosen[chosen["seed"].isin(seeds)]
    value = {(r, m, rnd): v for r, m, rnd, v in zip(tidy["run_id"], tidy["metric"], tidy["round"], tidy["value"])}
    per: dict[tuple[str, int], list[dict[str, float]]] = {}
    for run in runs.itertuples():
        rounds = sorted({rnd for (rid, m, rnd) in value if rid == run.run_id and m == f"{STEERED}{trait}"})
        base_c = value.get((run.run_id, coherence, 0), math.nan)
        for rnd in rounds:
            g = lambda m, at=rnd: value.get((run.run_id, m, at), math.nan)  # noqa: E731
            prev_t, prev_c = value.get((run.run_id, trait, rnd - 1), math.nan), value.get((run.run_id, coherence, rnd - 1), math.nan)
            d = {"seed": int(run.seed), "run_id": run.run_id,
                 "steer_shift": g(f"{STEERED}{trait}") - prev_t, "cost": prev_c - g(f"{STEERED}{coherence}"),
                 "learned": g(trait) - prev_t, "healed": g(coherence) - g(f"{STEERED}{coherence}"),
                 "vs_base": g(coherence) - base_c, "kept_coh": g("filter_kept_coherent"),
                 "dropped_coh": g("filter_dropped_coherent")}
            per.setdefault((run.arm, rnd), []).append(d)
    for arm in arms:
        for rnd in sorted(r for a, r in per if a == arm):
            ds = per[(arm, rnd)]
            col = {k: np.array([d[k] for d in ds], dtype=float) for k in ds[0] if k not in ("seed", "run_id")}
            mean = {k: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan for k, v in col.items()}
            shift, learned, healed = mean["steer_shift"], mean["learned"], mean["healed"]
            filters = None
            passed: dict[int, bool | None] = {1: _passes(col["steer_shift"], alpha), 2: None,
                                              3: _passes(col["learned"], alpha), 4: _passes(col["healed"], alpha)}
            if np.isfinite(col["kept_coh"]).any():
                filters = (mean["kept_coh"], mean["dropped_coh"])
                if np.isfinite(col["dropped_coh"]).any():
                    passed[2] = _passes(col["kept_coh"] - col["dropped_coh"], alpha)
            out.rows.append(GateRow(
                arm, rnd, len(ds), shift, mean["cost"], learned, learned / shift if shift > 0 else math.nan,
                healed, mean["vs_base"], learned / healed if healed > 0 else math.nan, filters, passed))
            for d in ds:
                for gate, key in ((1, "steer_shift"), (3, "learned"), (4, "healed")):
                    if not d[key] > 0:
                        out.failing_runs.setdefault(gate, []).append(_evidence(gate, arm, rnd, d))
    return out


def _evidence(gate: int, arm: str, rnd: int, d: dict[str, float]) -> str:
    what = {1: f"steered trait - trait before the round = {d['steer_shift']:+.3g}",
            3: f"healed trait - trait before the round = {d['learned']:+.3g} (steering moved it {d['steer_shift']:+.3g})",
            4: f"healed coherence - steered coherence = {d['healed']:+.3g}"}[gate]
    return f"`{d['run_id']}` (arm `{arm}`, seed {d['seed']}, round {rnd}): {what}"


def _f(x: float, digits: int = 3, signed: bool = True) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def gates_markdown(gates: Gates) -> str:
    """The report's "Gates" section (markdown)."""
    out = ["## Gates", ""]
    if gates.missing:
        return "\n".join(out + [gates.missing + "."]) + "\n"
    t, c = gates.trait, gates.coherence
    out += [f"Per arm and heal round, means over the compared seeds (trait: `{t}`, coherence: `{c}`); a gate "
            f"passes when its difference is above 0 by a one-sided t-test at 0.05 (see shl_analysis.gates).", "",
            "| arm | round | n | 1. steering moved the trait (coherence cost) | 2. filters: coherent kept / dropped | "
            "3. heal learned (share of the shift kept) | 4. heal healed: vs steered (vs base) | "
            "heal or undo: trait kept per coherence restored | verdict |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in gates.rows:
        if r.filters is None:
            filt = "not measured"
        elif not math.isfinite(r.filters[1]):
            filt = f"{r.filters[0]:.2f} / none dropped"
        else:
            filt = f"{r.filters[0]:.2f} / {r.filters[1]:.2f}"
        share = f" ({r.kept_share:.0%})" if math.isfinite(r.kept_share) else ""
        out.append(f"| `{r.arm}` | {r.round} | {r.n} | {_f(r.steer_shift)} ({_f(r.coherence_cost)}) | {filt} | "
                   f"{_f(r.learned)}{share} | {_f(r.healed)} ({_f(r.vs_base)}) | "
                   f"{_f(r.trait_per_coherence, 2, signed=False)} | {r.verdict()} |")
    if any(r.filters is None for r in gates.rows):
        out += ["", "Gate 2 is not measured where no evaluator of the runs judges completions one by one "
                "(``Evaluator.judge_coherent``; ``coherence`` and ``toy_exact`` do), or where the runs predate it."]
    named = [(g, lines) for g, lines in sorted(gates.failing_runs.items()) if lines]
    if named:
        out += ["", "Runs whose own difference is not above 0:"]
        for g, lines in named:
            more = len(lines) - NAMED_RUNS_PER_GATE
            out += [f"- gate {g} ({GATE_NAMES[g]}): " + "; ".join(lines[:NAMED_RUNS_PER_GATE])
                    + (f"; and {more} more" if more > 0 else "")]
    return "\n".join(out) + "\n"
