"""Rendering of the paired comparison: the display table, Markdown, LaTeX and the footnotes.

Pure formatting over the numeric table that ``report._compare`` computes; no statistics are computed here.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import pandas as pd

from .endpoints import RunLengths
from .paired import EXACT_MAX_N, MC_RESAMPLES, MC_SEED, sign_flip_method
from .power import POWER, exact_min_n, exact_min_p, verdict_alpha
from .spec import ComparisonSpec

ENDPOINT_TEXT = {
    "final": "value at each run's own last round",
    "last_k": "mean of each run's last {k} rounds",
    "auc": "area under the metric-vs-round curve divided by the round span",
    "last_common": "value at the last round every compared run of the seed reached, the same round in every arm",
}


def _fmt(x: float, spec: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return format(x, spec)


def _count(x) -> str:
    return "n/a" if pd.isna(x) else str(int(x))


def _display_table(table: pd.DataFrame, alpha: float) -> pd.DataFrame:
    ci = f"{100 * (1 - alpha):g}% CI"
    out = pd.DataFrame({
        "metric": table["metric"],
        "arm": table["arm"],
        "baseline": table["baseline"],
        "n": table["n"].astype(str),
        "dropped": table["dropped"].astype(str),
        "ended early (arm, base)": [f"{_count(a)}, {_count(b)}"
                                    for a, b in zip(table["early_arm"], table["early_baseline"])],
        "baseline mean±sd": [f"{_fmt(m, '.4g')} ± {_fmt(s, '.2g')}" for m, s in zip(table["mean_baseline"], table["sd_baseline"])],
        "arm mean±sd": [f"{_fmt(m, '.4g')} ± {_fmt(s, '.2g')}" for m, s in zip(table["mean_arm"], table["sd_arm"])],
        "delta": [_fmt(d, "+.3g") for d in table["delta"]],
        ci: [f"[{_fmt(lo)}, {_fmt(hi)}]" for lo, hi in zip(table["ci_low"], table["ci_high"])],
        "d_z": [_fmt(d, ".2f") for d in table["d_z"]],
        "wins": [f"{w}/{n}" for w, n in zip(table["wins"], table["n"])],
        "p (t)": [_fmt(p) for p in table["p_t"]],
        "p (perm)": [_fmt(p) for p in table["p_perm"]],
        "p (adj)": [_fmt(p) for p in table["p_adj"]],
        "alpha_verdict": [_fmt(a) for a in table["alpha_verdict"]],
        "MDE": [_fmt(m) for m in table["mde"]],
        "n_needed": ["n/a" if pd.isna(v) else str(int(v)) for v in table["n_needed"]],
        "verdict": table["verdict"],
    })
    return out


def _markdown_table(df: pd.DataFrame) -> str:
    cells = lambda vals: "| " + " | ".join(str(v).replace("|", "\\|") for v in vals) + " |"
    lines = [cells(df.columns), "|" + "|".join("---" for _ in df.columns) + "|"]
    lines += [cells(r) for r in df.itertuples(index=False)]
    return "\n".join(lines)


_LATEX_ESC = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
              "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
              "|": r"\textbar{}", "±": r"$\pm$", "≥": r"$\geq$", "<": r"\textless{}", ">": r"\textgreater{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters (underscores included) for text mode."""
    text = str(text).replace(">=", "≥")
    return "".join(_LATEX_ESC.get(c, c) for c in text)


def _latex_table(df: pd.DataFrame) -> str:
    lines = [r"\begin{tabular}{" + "l" * 3 + "r" * (len(df.columns) - 4) + "l}", r"\hline",
             " & ".join(latex_escape(c) for c in df.columns) + r" \\", r"\hline"]
    lines += [" & ".join(latex_escape(v) for v in r) + r" \\" for r in df.itertuples(index=False)]
    lines += [r"\hline", r"\end{tabular}", ""]
    return "\n".join(lines)


_ADAPTIVE_KEYS = {"until_mde", "max_seeds", "batch", "rule", "alpha_verdict", "min_seeds", "batches", "boundary_alpha",
                  "arms"}


def standing_text(arms: dict, primary: str) -> list[str]:
    """Per arm, where it stood when the adaptive rule stopped (``power.arm_status``), in the same words in the
    terminal summary and the report: the rule's MDE (from the spread of the differences about zero, which a real
    effect inflates; the table's MDE column uses the spread about the mean) and what settled it."""
    why = {"mde": "settled: MDE met", "boundary": "settled: p below the boundary", None: "not settled (seed cap)"}
    out = []
    for arm, st in arms.items():
        p = st.get("p")
        p_text = f", p {p:.3g}" if isinstance(p, (int, float)) else ""
        mde = st.get("mde_rule")
        mde_text = f"{mde:.3g}" if isinstance(mde, (int, float)) else "n/a"
        out.append(f"  - `{arm}` on `{primary}`: n {st.get('n')}, the rule's MDE {mde_text}{p_text}; "
                   f"{why.get(st.get('settled_by'), str(st.get('settled_by')))}")
    return out


def _check_adaptive(adaptive: dict | None) -> None:
    if adaptive is None:
        return
    unknown = set(adaptive) - _ADAPTIVE_KEYS
    if unknown:
        raise ValueError(f"unknown adaptive keys {sorted(unknown)}; expected some of {sorted(_ADAPTIVE_KEYS)}")
    missing = {"until_mde", "max_seeds"} - set(adaptive)
    if "rule" not in adaptive and "batch" not in adaptive:
        missing.add("batch")
    if missing:
        raise ValueError(f"adaptive needs {sorted(missing)}")


def _seed_ranges(seeds: Iterable[int]) -> str:
    seeds = sorted({int(x) for x in seeds})
    parts, i = [], 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        parts.append(str(seeds[i]) if i == j else f"{seeds[i]}-{seeds[j]}")
        i = j + 1
    return ", ".join(parts)


def _adaptive_line(adaptive: dict, spec: ComparisonSpec, k: int) -> str:
    from .power import describe_stopping_rule

    x, cap = float(adaptive["until_mde"]), int(adaptive["max_seeds"])
    a_v = float(adaptive.get("alpha_verdict", verdict_alpha(spec.alpha, spec.correction, max(1, k))))
    rule = adaptive.get("rule") or describe_stopping_rule(x, cap, int(adaptive["batch"]), a_v,
                                                         min_seeds=adaptive.get("min_seeds"),
                                                         boundary_alpha=adaptive.get("boundary_alpha"))
    facts = [f"target MDE {x:g} on `{spec.primary}`", f"at most {cap} seeds"]
    if "batch" in adaptive:
        facts.append(f"batches of {int(adaptive['batch'])}")
    if adaptive.get("batches"):
        facts.append("seeds per batch: " + " | ".join(_seed_ranges(b) for b in adaptive["batches"]))
    line = f"- seeds were added adaptively ({'; '.join(facts)}). Rule: {rule.rstrip('.')}."
    if adaptive.get("arms"):
        from .power import BOUNDARY_SHARE

        spent = (f" Its verdicts use alpha {spec.alpha * (1 - BOUNDARY_SHARE):.3g}: the boundary spent the other "
                 f"{spec.alpha * BOUNDARY_SHARE:.3g}." if adaptive.get("boundary_alpha") else "")
        line += (f" An arm that settled is done: its `{spec.primary}` row uses its seeds up to that point (n below), "
                 f"so another arm's stopping cannot bias it; the other metrics use every seed.{spent}\n"
                 + "\n".join(standing_text(adaptive["arms"], spec.primary)))
    return line


_ALPHA_WHY = {
    "holm": "the Bonferroni level: a row with p < alpha/k is significant under Holm whatever the other rows "
            "show, while Holm tests lower-ranked rows at up to alpha/(k - rank + 1), so MDE and n_needed are "
            "conservative for them",
    "bonferroni": "the level Bonferroni tests every row at",
    "bh": "a row with p < alpha/k is significant under Benjamini-Hochberg whatever the other rows show; BH's "
          "own levels alpha*rank/k depend on the ranking of the observed p-values, so the data-independent "
          "alpha/k is used as a conservative bound",
}


def _power_footnote(spec: ComparisonSpec, table: pd.DataFrame) -> str:
    tested = table[table["n"] >= 2]
    per_metric = {m: (int(len(g)), float(g["alpha_verdict"].iloc[0])) for m, g in tested.groupby("metric", sort=False)}
    if spec.correction == "none":
        level = f"alpha = {spec.alpha:g} (no correction)"
    else:
        ks = sorted(set(per_metric.values()))
        where = (f"k = {ks[0][0]}: {ks[0][1]:.3g}" if len(ks) == 1 else
                 "; ".join(f"`{m}`: k = {kk}, {a:.3g}" for m, (kk, a) in per_metric.items()))
        level = f"alpha/k with k the number of tested arms in the metric's family ({where}), {_ALPHA_WHY[spec.correction]}"
    targets = {m.name: spec.target_effect_for(m.name) for m in spec.metrics}
    if all(t is None for t in targets.values()):
        needed = "n_needed: n/a (no target_effect set in the comparison spec)."
    else:
        vals = set(targets.values())
        what = (f"|delta| = {next(iter(vals)):g}" if len(vals) == 1 else
                "|delta| = " + ", ".join(f"{t:g} for `{m}`" for m, t in targets.items() if t is not None))
        needed = (f"n_needed: seeds needed for {POWER:.0%} power to detect {what} (target_effect, metric units) "
                  f"at alpha_verdict given the observed sd(d), and at least the n at which the exact sign-flip "
                  f"test can reach alpha_verdict (2/2^n < alpha_verdict).")
    return (f"alpha_verdict: the per-comparison level at which MDE and n_needed are computed, {level}. "
            f"MDE: smallest |delta| detectable with {POWER:.0%} power by the two-sided paired t-test "
            f"(noncentral t) at this n, sd(d) and alpha_verdict; n/a where sd(d) = 0, for which the t-model "
            f"gives no MDE. " + needed)


def _markdown(spec: ComparisonSpec, arms: list[str], kept: list[int], dropped: dict[int, str],
              display: pd.DataFrame, table: pd.DataFrame, notes: list[str],
              adaptive: dict | None = None, lengths: RunLengths | None = None) -> str:
    """The comparison.md text. ``lengths`` (how far each compared run got) adds the per-arm account of the runs
    that ended early and, for the ``last_common`` endpoint, the round each seed is compared at."""
    k = len(arms) - 1
    corr = {"holm": "Holm", "bonferroni": "Bonferroni", "bh": "Benjamini-Hochberg (FDR)", "none": "no"}[spec.correction]
    endpoint = ENDPOINT_TEXT[spec.endpoint].format(k=spec.last_k)
    out = [f"# Paired comparison against `{spec.baseline}`", "",
           f"- endpoint: `{spec.endpoint}` ({endpoint}); alpha = {spec.alpha:g} (two-sided); primary metric: `{spec.primary}`",
           f"- arms: {', '.join(f'`{a}`' for a in arms)}",
           f"- seeds usable in every arm: {len(kept)} ({', '.join(map(str, kept)) or 'none'})"]
    if adaptive is not None:
        out.append(_adaptive_line(adaptive, spec, k))
    out.append(f"- seeds dropped from all comparisons: {len(dropped)}")
    out += [f"  - seed {s}: {why}" for s, why in dropped.items()]
    if lengths is not None:
        out += _early_lines(spec, arms, kept, lengths)
    out += ["", _markdown_table(display), ""]
    # rows whose n is too small for the exact sign-flip test to reach the alpha their verdict uses
    levels = {spec.alpha} | {float(a) for a in table["alpha_verdict"] if np.isfinite(a)}
    level_of = [a if np.isfinite(a) else spec.alpha for a in table["alpha_verdict"]]
    small = sorted({int(n) for n, a in zip(table["n"], level_of) if 1 <= n < exact_min_n(a)})
    if small:
        smallest = ", ".join(f"n={n}: {exact_min_p(n):.3g}" for n in small)
        reach = ", nor ".join(
            f"p < {a:.3g}{' (alpha_verdict)' if a != spec.alpha else ''} with n < {exact_min_n(a)} pairs"
            for a in sorted(levels, reverse=True))
        out.append(f"**Note:** no two-sided sign-flip test can reach {reach}; the smallest possible exact p is "
                   f"2/2^n ({smallest}). Below that n only the t-test can give a significant verdict.")
        out.append("")
    out.append(f"Test: two-sided paired t-test on per-seed endpoint differences (arm − baseline); "
               f"{_perm_sentence(table)} as a robustness check. p (adj): {corr} correction across the family of {k} "
               f"arms-vs-baseline comparison(s) within each metric; the verdict uses p (adj) < {spec.alpha:g}. "
               f"CI: t-interval of the mean difference. d_z = mean(d)/sd(d). wins: pairs where the arm is "
               f"strictly better. ended early (arm, base): paired seeds whose arm / baseline run ended before the last "
               f"round any compared run reached (see above). " + _power_footnote(spec, table))
    out += [""] + [f"- {n}" for n in notes]
    return "\n".join(out).rstrip() + "\n"


def _perm_sentence(table: pd.DataFrame) -> str:
    """Which sign-flip test the rows of this report used: exact (all 2^n flips), Monte Carlo, or both."""
    ns = sorted({int(n) for n in table["n"] if n >= 2})
    exact = [n for n in ns if sign_flip_method(n) == "exact"]
    mc = [n for n in ns if sign_flip_method(n) == "monte_carlo"]
    mc_text = f"Monte Carlo, {MC_RESAMPLES:,} random sign flips with fixed seed {MC_SEED}"
    what = "two-sided, on the mean difference"
    if not ns:
        return f"sign-flip permutation test ({what}; not computed: no row has 2 or more pairs)"
    if not mc:
        return f"exact sign-flip permutation test (all 2^n sign flips enumerated, n <= {EXACT_MAX_N}; {what})"
    if not exact:
        return (f"sign-flip permutation test ({mc_text}, since n > {EXACT_MAX_N} makes all 2^n flips too many; "
                f"{what})")
    return (f"sign-flip permutation test ({what}): exact (all 2^n sign flips) for the rows with n <= {EXACT_MAX_N} "
            f"(n = {', '.join(map(str, exact))}), {mc_text} for the rows with n > {EXACT_MAX_N} "
            f"(n = {', '.join(map(str, mc))})")


def _early_lines(spec: ComparisonSpec, arms: list[str], kept: list[int], lengths: RunLengths) -> list[str]:
    """Per arm: how many of the compared seeds ended before the last round, and at which round."""
    full = lengths.full
    if full is None or not kept:
        return []
    per_arm = {arm: lengths.ended_early(arm, kept) for arm in arms}
    if not any(per_arm.values()):
        return [f"- runs that ended early: none (every compared run reached round {full})"]
    out = [f"- runs that ended early (before round {full}, the last round any compared run reached), "
           f"per arm over the {len(kept)} compared seeds:"]
    for arm, early in per_arm.items():
        seeds = ", ".join(f"seed {s} at round {r}" for s, r in early)
        out.append(f"  - `{arm}`: {len(early)} of {len(kept)}" + (f" ({seeds})" if early else ""))
    if spec.endpoint == "last_common":
        rounds = {s: lengths.common(s) for s in kept}
        short = ", ".join(f"seed {s} at round {r}" for s, r in rounds.items() if r is not None and r < full)
        out.append(f"  - endpoint `last_common` reads every arm of a seed at the same round: {short}; "
                   f"the other seeds at round {full}.")
    else:
        read = {"final": "its own last round", "last_k": f"its own last {spec.last_k} rounds",
                "auc": "its curve up to its own last round"}[spec.endpoint]
        out.append(f"  - with endpoint `{spec.endpoint}` such a run contributes {read}, so its pairs compare "
                   f"different rounds of the arms; endpoint `last_common` compares every arm of a seed at the last "
                   f"round all of them reached.")
    return out
