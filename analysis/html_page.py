"""The report as one self-contained HTML page (``report/report.html``): a file to send to a colleague.

It shows what the other report files hold, never numbers of its own: the declared comparison, the comparison
table (the display rows of comparison.md, with the verdicts marked), the Markdown report's text (seeds, dropped
seeds and why, runs that ended early, power and MDE, the test), the stage timings, the figures, every compared
run, the plugin versions recorded in the runs' meta.json, and the command that reproduces the ablation (from
``shl-ablation.yaml``). Figures are inline PNG (base64) and the style is inline; the page loads nothing and runs
no script (its Content-Security-Policy forbids both), and every user-provided string is escaped.
"""

from __future__ import annotations

import base64
import datetime as dt
import struct
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from shl import __version__

from .endpoints import RunLengths
from .figures import DPI, safe_name, verdict_kind
from .html_markup import CSS, esc, html_table, inline, markdown_blocks
from .html_provenance import plugins_table, read_record, reproduce, run_dates, runs_table, timings_table
from .software import software_lines
from .spec import ComparisonSpec
from .tables import ENDPOINT_TEXT

PAGE_NAME = "report.html"
_NAV = {"summary": "At a glance", "declared": "Declared comparison", "results": "Comparison table", "gates": "Gates",
        "figures": "Figures", "runs": "Runs", "timings": "Timings", "software": "Software", "plugins": "Plugin versions",
        "reproduce": "Reproduce"}
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_CORRECTION = {"holm": "Holm", "bonferroni": "Bonferroni", "bh": "Benjamini-Hochberg (FDR)", "none": "none"}
_TEXT_COLUMNS = {"metric", "arm", "baseline", "verdict"}
_SCREEN_DPI = 108  # figures are drawn at figures.DPI; shown at this many pixels per inch


@dataclass(frozen=True)
class PageInputs:
    """What ``write_report`` computed, handed over as is. ``markdown``: comparison.md without its stage-timing
    section; ``runs``: every compared run directory (``run_table``); ``chosen``: the run used per (arm, seed);
    ``figures``: the figure files written by this report (none: no figures section)."""

    out_dir: Path
    spec: ComparisonSpec
    arms: list[str]
    kept: list[int]
    dropped: dict[int, str]
    display: pd.DataFrame
    markdown: str
    timing: pd.DataFrame
    runs: pd.DataFrame
    chosen: pd.DataFrame
    tidy: pd.DataFrame
    lengths: RunLengths | None
    figures: list[Path]
    gates: str = ""  # the "Gates" section of comparison.md (``gates.gates_markdown``)


def render_page(p: PageInputs, now: dt.datetime | None = None) -> str:
    """The whole page as one HTML string."""
    now = now or dt.datetime.now().astimezone()
    record = read_record(p.out_dir)
    run_ids = list(p.chosen["run_id"])
    name = str(record.get("name") or next((e for e in p.runs["experiment"].dropna()), None) or p.out_dir.name)
    md = p.markdown.splitlines()
    heading = md[0].lstrip("#").strip() if md and md[0].startswith("# ") else "Paired comparison"
    body = "\n".join(md[1:] if md and md[0].startswith("# ") else md)
    sections = [
        ("summary", "At a glance", _summary(p)),
        ("declared", "Declared comparison", _declared(p.spec, p.arms, record)),
        ("results", heading, markdown_blocks(body, table=lambda _lines: _comparison_table(p))),
        *([("gates", "Gates", markdown_blocks("\n".join(p.gates.splitlines()[1:])))] if p.gates else []),
        ("figures", "Figures", _figures(p)),
        ("runs", "Runs", runs_table(p.arms, p.kept, p.dropped, p.runs, p.chosen, p.tidy, p.lengths)),
    ]
    if not p.timing.empty:
        total = p.timing["seconds"].sum()
        sections.append(("timings", f"Where the time went ({total:.0f} s of run time over the compared runs)",
                         timings_table(p.timing)))
    software = "".join(f"<p>{inline(line)}</p>" for line in software_lines(p.out_dir, run_ids))
    sections += [("software", "Software", software),
                 ("plugins", "Plugin versions", plugins_table(p.out_dir, run_ids)),
                 ("reproduce", "How to reproduce", reproduce(p.out_dir, record))]
    when = run_dates(p.out_dir, run_ids)
    n_seeds = len(p.kept) + len(p.dropped)
    metrics = ", ".join(f"<code>{esc(m.name)}</code>" for m in p.spec.metrics)
    subtitle = (f"{len(p.arms)} arms × {n_seeds} seed{'s' if n_seeds != 1 else ''}, compared against "
                f"<code>{esc(p.spec.baseline)}</code> on {metrics}")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">', '<link rel="icon" href="data:,">',
        f"<title>{esc(name)}: shl report, {now:%Y-%m-%d}</title>", f"<style>{CSS}</style></head><body><main>",
        f"<header><h1>{esc(name)}</h1><p class=subtitle>{subtitle}</p>",
        f"<p class=meta>{esc(when)} · report written {now:%Y-%m-%d %H:%M %Z} · shl {esc(__version__)} · "
        f"<code>{esc(p.out_dir)}</code></p>",
        "<nav>" + "".join(f'<a href="#{sid}">{esc(_NAV.get(sid, sid))}</a>' for sid, _, _ in sections) + "</nav>",
        "</header>",
    ]
    parts += [f'<section id="{sid}"><h2>{inline(title)}</h2>\n{html}</section>' for sid, title, html in sections]
    parts.append("<footer>Written by shl. Numbers as in comparison.csv / comparison.md next to "
                 "this file; figures also under figures/ (PNG and SVG).</footer></main></body></html>")
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------- sections

def verdict_html(verdict: str) -> str:
    """A verdict as a coloured badge (better / worse / inconclusive / not tested) followed by the rest of its
    words; the text reads exactly as the verdict."""
    v = str(verdict)
    kind = verdict_kind(v)
    cls = kind.replace(" ", "-")
    if v.startswith(kind) and kind != "not tested":
        return f'<span class="badge {cls}">{esc(kind)}</span><span class=why>{esc(v[len(kind):])}</span>'
    return f'<span class="badge {cls}">{esc(v)}</span>'


def _ci_column(spec: ComparisonSpec) -> str:
    return f"{100 * (1 - spec.alpha):g}% CI"


def _summary(p: PageInputs) -> str:
    if p.display.empty:
        return "<p>No arm besides the baseline: nothing to compare.</p>"
    metrics = [m.name for m in p.spec.metrics]
    arms = [a for a in p.arms if a != p.spec.baseline]
    cells = {(r["metric"], r["arm"]): r for _, r in p.display.iterrows()}
    ci = _ci_column(p.spec)
    rows = []
    for arm in arms:
        row = [f"<code>{esc(arm)}</code>"]
        for m in metrics:
            r = cells.get((m, arm))
            if r is None:
                row.append("–")
                continue
            kind = verdict_kind(r["verdict"])
            word = r["verdict"] if kind == "not tested" else kind
            badge = f'<span class="badge {kind.replace(" ", "-")}">{esc(word)}</span>'
            row.append(badge + f'<span class=delta>Δ {esc(r["delta"])} {esc(r[ci])}, n = {esc(r["n"])}</span>')
        rows.append(row)
    head = [f"arm vs {p.spec.baseline}"] + [f"{m} ({p.spec.metric(m).direction} is better)" for m in metrics]
    return (f"<p>Verdict per arm and metric (p (adj) &lt; {p.spec.alpha:g}), with the mean paired difference and its "
            f"{esc(ci)}. The full table, its footnotes and the seeds are below.</p>"
            + html_table(head, rows, raw=True, cls="grid"))


def _declared(spec: ComparisonSpec, arms: list[str], record: dict) -> str:
    metrics = ", ".join(
        f"<code>{esc(m.name)}</code> ({esc(m.direction)} is better"
        + (f"; target effect {spec.target_effect_for(m.name):g}" if spec.target_effect_for(m.name) else "")
        + (", primary" if m.name == spec.primary else "") + ")" for m in spec.metrics)
    items = [
        ("baseline", f"<code>{esc(spec.baseline)}</code>"),
        ("arms", ", ".join(f"<code>{esc(a)}</code>" for a in arms if a != spec.baseline)),
        ("metrics", metrics),
        ("endpoint", f"<code>{esc(spec.endpoint)}</code>: "
                     f"{esc(ENDPOINT_TEXT[spec.endpoint].format(k=spec.last_k))}"),
        ("alpha", f"{spec.alpha:g}, two-sided"),
        ("test", "paired t-test on the per-seed endpoint differences (arm − baseline); sign-flip permutation test "
                 f"as a robustness check; {esc(_CORRECTION[spec.correction])} correction across the arms of each "
                 "metric"),
    ]
    if record.get("description"):
        items.insert(0, ("experiment", esc(str(record["description"]))))
    return '<dl class="spec">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _comparison_table(p: PageInputs) -> str:
    """The display rows of comparison.md (comparison.csv, formatted), one per metric × arm: the numbers in a row
    (class ``cmp``), the verdict in a full-width row under it (class ``verdict-row``), marked by kind."""
    cols = [c for c in p.display.columns if c != "verdict"]
    head = "".join(f'<th scope="col" class="{"" if c in _TEXT_COLUMNS else "num"}{" nw" if len(c) <= 8 else ""}">'
                   f"{esc(c)}</th>" for c in cols)
    body = []
    for _, r in p.display.iterrows():
        tds = []
        for c in cols:
            if c in ("arm", "baseline"):
                tds.append(f"<td><code>{esc(r[c])}</code></td>")
            else:
                tds.append(f'<td{"" if c in _TEXT_COLUMNS else " class=num"}>{esc(r[c])}</td>')
        kind = verdict_kind(r["verdict"]).replace(" ", "-")
        body.append(f'<tr class="cmp {kind}">{"".join(tds)}</tr><tr class="verdict-row {kind}">'
                    f'<td colspan="{len(cols)}">{verdict_html(r["verdict"])}</td></tr>')
    return (f'<div class="scroll"><table id="comparison"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _figure_text(stem: str, spec: ComparisonSpec) -> tuple[str, str]:
    base = spec.baseline
    if stem == "forest":
        return (f"Paired differences against {base}", "per metric and arm, the mean over seeds of the per-seed "
                "difference arm − baseline at the endpoint, with its t-interval; colour, marker and words give the "
                "verdict")
    if stem.startswith("paired_"):
        metric = next((m.name for m in spec.metrics if safe_name(m.name) == stem[len("paired_"):]), stem[7:])
        return (f"Per-seed differences of {metric}", f"each dot is one seed's difference arm − {base}; the "
                "diamond is their mean with its t-interval")
    if stem == "trajectories":
        return "Trajectories", "mean over the compared seeds per round, with a 95% t-band"
    if stem == "tradeoff":
        return "Trait vs coherence", "endpoint means per arm with 95% t-intervals"
    return stem, ""


def _figures(p: PageInputs) -> str:
    pngs = [f for f in p.figures if f.suffix == ".png" and f.is_file()]
    if not pngs:
        return "<p>No figures were drawn for this report (see the notes above, or <code>--no-figures</code>).</p>"
    out = []
    for k, path in enumerate(pngs, 1):
        data = path.read_bytes()
        w, h = struct.unpack(">II", data[16:24])  # the PNG header's width and height in pixels
        scale = _SCREEN_DPI / DPI
        title, text = _figure_text(path.stem, p.spec)
        out.append(f'<figure id="fig-{esc(path.stem)}"><img alt="{esc(title)}" width="{round(w * scale)}" '
                   f'height="{round(h * scale)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'
                   f"<figcaption><b>Figure {k}. {esc(title)}</b>{': ' + esc(text) if text else ''}. "
                   f"File: <code>figures/{esc(path.name)}</code> (also SVG).</figcaption></figure>")
    return '<div class="figures">' + "\n".join(out) + "</div>"
