"""The provenance part of the report page: which runs the numbers come from (status, last round, whether each is
compared and why not), when they ran, where their time went, the plugin versions they recorded, and the command
that reproduces the ablation (from ``shl-ablation.yaml``). HTML fragments; every string escaped."""

from __future__ import annotations

import datetime as dt
import shlex
from pathlib import Path
from typing import Iterable

import pandas as pd
import yaml

from shl.errors import ShlError
from shl.store import META, OUT_RECORD, RUNS_DIR, read_ablation_record, read_meta, recorded_times

from .endpoints import RunLengths
from .html_markup import esc, html_table, inline
from .results import USABLE_STATUSES
from .tables import _seed_ranges


def read_record(out_dir: Path) -> dict:
    """The ablation record (``shl-ablation.yaml``, read by the store's one reader), or {} when there is none or
    it is malformed (the page then shows what it can without it)."""
    try:
        return read_ablation_record(out_dir) or {}
    except ShlError:
        return {}


def run_dates(out_dir: Path, run_ids: Iterable[str]) -> str:
    """When the runs ran: from the earliest start to the latest end recorded in their meta.json / DONE.json."""
    times = [dt.datetime.fromtimestamp(t).astimezone()
             for run_id in run_ids for t in recorded_times(Path(out_dir) / RUNS_DIR / run_id)]
    if not times:
        return "run dates not recorded"
    lo, hi = min(times), max(times)
    if lo.date() == hi.date():
        return f"runs on {lo:%Y-%m-%d}, {lo:%H:%M}–{hi:%H:%M}"
    return f"runs {lo:%Y-%m-%d %H:%M} – {hi:%Y-%m-%d %H:%M}"


def runs_table(arms: list[str], kept: list[int], dropped: dict[int, str], runs: pd.DataFrame, chosen: pd.DataFrame,
               tidy: pd.DataFrame, lengths: RunLengths | None) -> str:
    """Every compared run directory (``runs``), plus a row per planned (arm, seed) with no run: its status, its
    last round with metrics, whether it is in the comparison and why not, and its message."""
    last = tidy.groupby("run_id")["round"].max() if not tidy.empty else pd.Series(dtype="int64")
    used = set(chosen["run_id"])
    early = {}
    if lengths is not None and lengths.full is not None:
        early = {(a, s): r for a in arms for s, r in lengths.ended_early(a, kept)}
    order = {a: i for i, a in enumerate(arms)}
    recs = [(r.arm, int(r.seed), r.status, r.message or "", r.run_id) for r in runs.itertuples()]
    have = {(a, s) for a, s, *_ in recs}
    recs += [(a, s, "missing", "no run directory", "") for a in arms for s in sorted({*kept, *dropped})
             if (a, s) not in have]
    rows = []
    for arm, seed, status, message, run_id in sorted(recs, key=lambda x: (order.get(x[0], 99), x[1], x[4])):
        if run_id and run_id not in used:
            compared = "no: another run of this arm and seed is used"
        elif seed in dropped:
            compared = f"no: seed dropped ({dropped[seed]})"
        else:
            compared = "yes" + (f", ended early at round {early[(arm, seed)]}" if (arm, seed) in early else "")
        cls = "status-complete" if status in USABLE_STATUSES else "status-bad"
        rows.append([f"<code>{esc(arm)}</code>", esc(seed), f'<span class="{cls}">{esc(status)}</span>',
                     esc(int(last[run_id])) if run_id in last.index else "–", inline(compared), esc(message),
                     f"<code>{esc(run_id)}</code>" if run_id else "–"])
    head = ["arm", "seed", "status", "last round", "in the comparison", "message", "run directory (runs/)"]
    return html_table(head, rows, raw=True, numeric=(1, 3), table_id="runs-table")


def timings_table(timing: pd.DataFrame) -> str:
    rows = [[r.stage, f"{r.seconds:.1f}", f"{100 * r.share:.1f}%", r.runs] for r in timing.itertuples()]
    return ("<p>Wall seconds per stage, summed over the compared runs (stages reused from the shared-stage cache "
            "cost nothing here).</p>" + html_table(["stage", "seconds", "share", "runs"], rows, numeric=(1, 2, 3)))


def plugins_table(out_dir: Path, run_ids: list[str]) -> str:
    """(plugin, distribution, version) as recorded in each run's meta.json, with how many runs recorded it."""
    seen: dict[tuple[str, str, str], int] = {}
    for run_id in run_ids:
        meta = read_meta(Path(out_dir) / RUNS_DIR / run_id)
        plugins = meta.get("plugins")
        for pl in plugins if isinstance(plugins, list) else []:
            if isinstance(pl, dict):
                key = (str(pl.get("plugin", "")), str(pl.get("distribution") or ""), str(pl.get("version") or ""))
                seen[key] = seen.get(key, 0) + 1
    if not seen:
        return "<p>The runs recorded no plugin list.</p>"
    n = len(run_ids)
    names = [k[0] for k in seen]
    rows = [[pl, dist or "–", ver or "–", f"{c} of {n}" + (" (versions differ across runs)" if names.count(pl) > 1
                                                         else "")] for (pl, dist, ver), c in sorted(seen.items())]
    return (f"<p>As recorded in each compared run's <code>{META}</code>.</p>"
            + html_table(["plugin", "distribution", "version", "runs"], rows))


def reproduce(out_dir: Path, record: dict) -> str:
    """The ``shl ablate`` command rebuilt from the ablation record (experiment file, seeds, arms, overrides,
    adaptive seeding, --out), and the ``shl report`` command."""
    out = str(out_dir)
    if record:
        cmd = ["shl", "ablate", str(record.get("source") or "EXPERIMENT.yaml")]
        seeds = [int(s) for s in record.get("plan_seeds") or []]
        adaptive = record.get("adaptive") or {}
        added = {int(s) for b in adaptive.get("batches") or [] for s in b}
        first = [s for s in seeds if s not in added] or seeds
        if first:
            cmd += ["--seeds", _seed_ranges(first).replace(" ", "")]
        arms = list((record.get("arms") or {}).keys())
        plan_arms = list(record.get("plan_arms") or [])
        if plan_arms and arms and set(plan_arms) != set(arms):
            cmd += ["--arms", ",".join(plan_arms)]
        for o in record.get("overrides") or []:
            cmd += ["--set", str(o)]
        if adaptive:
            cmd += ["--until-mde", f"{adaptive['until_mde']:g}", "--max-seeds", str(adaptive["max_seeds"])]
            cmd += ["--seed-batch", str(adaptive["batch"])] if "batch" in adaptive else []
        cmd += ["--out", out]
        where = (f"From the directory <code>shl ablate</code> ran in (experiment file, seeds, arms and overrides "
                 f"as recorded in <code>{esc(out)}/{OUT_RECORD}</code>):")
    else:
        cmd = ["shl", "ablate", "EXPERIMENT.yaml", "--out", out]
        where = f"No <code>{OUT_RECORD}</code> was found, so the experiment file is not known:"
    text = " ".join(shlex.quote(c) for c in cmd)
    return (f"<p>{where}</p><pre><code>{esc(text)}</code></pre><p>Finished runs are kept and not run again; to "
            f"write this report again from the stored results:</p>"
            f"<pre><code>{esc('shl report ' + shlex.quote(out))}</code></pre>")
