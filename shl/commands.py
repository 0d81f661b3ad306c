"""Implementations of the CLI subcommands (imported lazily by shl.cli, so ``shl --help`` stays fast)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from .errors import ShlError


def _console():
    from rich.console import Console

    import shutil

    width = shutil.get_terminal_size((140, 40)).columns
    return Console(stderr=False, highlight=False, width=max(width, 140) if not sys.stdout.isatty() else None)


# ------------------------------------------------------------------------------------------ plugins


def cmd_plugins(args) -> int:
    from .cli import BUILTIN_COMMANDS
    from .manager import get_host
    from .plugin_commands import collect_commands

    host = get_host()
    found = collect_commands(host, BUILTIN_COMMANDS)
    rows = host.registry.describe()
    commands = [{"name": c.command.name, "help": c.command.help, "plugin": c.origin.plugin,
                 "distribution": c.origin.distribution, "version": c.origin.version} for c in found.commands]
    conflicts = host.registry.conflicts + found.conflicts
    if args.json:
        print(json.dumps({"components": rows, "commands": commands, "failures": host.failures,
                          "conflicts": conflicts, "disabled": host.disabled}, indent=2))
        return 2 if conflicts else 0
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="shl components", show_lines=False)
    for col in ("family", "name", "plugin", "distribution", "description"):
        table.add_column(col)
    for r in rows:
        dist = f"{r['distribution']} {r['version']}".strip()
        table.add_row(r["family"], r["name"], r["plugin"], dist, r["description"])
    con = _console()
    con.print(table)
    if commands:
        table = Table(title="commands from plugins", show_lines=False)
        for col in ("command", "plugin", "distribution", "description"):
            table.add_column(col)
        for c in commands:
            table.add_row(*(escape(x) for x in (f"shl {c['name']}", c["plugin"],
                                                 f"{c['distribution']} {c['version']}".strip(), c["help"])))
        con.print(table)
    for f in host.failures:
        con.print(f"[red]broken plugin[/red] '{f['plugin']}' ({f['distribution'] or 'unknown distribution'}): {f['error']}")
    for name in host.disabled:
        con.print(f"disabled plugin '{name}' (SHL_DISABLE_PLUGINS)")
    for c in conflicts:
        con.print(f"[red]error[/red]: {c}")
    return 2 if conflicts else 0


# ------------------------------------------------------------------------------------------ validate / run


def load_config(path: str, overrides: list[str]):
    from .config import load_run_config
    from .manager import get_host

    host = get_host()
    host.registry.check()
    return load_run_config(path, overrides, host.registry), host


def cmd_validate(args) -> int:
    from .data import check_data

    from .config.identity import run_hash

    cfg, _ = load_config(args.config, args.overrides)
    check_data(cfg.data, Path(args.config).parent, args.config, args.overrides)  # exists and is well formed
    run_hash(cfg.model_dump(mode="json"), Path(args.config).parent)  # the model source can name its model
    print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="")
    print(f"# {args.config}: valid", file=sys.stderr)
    return 0


ROUND_COLUMNS = [
    ("round", "round", "{}"),
    ("trait", "trait", "{:.3f}"),
    ("coherence", "coher.", "{:.3f}"),
    ("steered_trait", "steered trait", "{:.3f}"),
    ("steered_coherence", "steered coher.", "{:.3f}"),
    ("kept", "kept/total", None),
    ("kappa", "kappa", "{:.3g}"),
    ("heal_nll", "heal NLL", "{:.3f}"),
    ("barrier_active", "barrier active", "{:.2f}"),
    ("kl_agg", "KL agg", "{:.3g}"),
    ("cos_r0", "cos r0", "{:.3f}"),
]


def trait_metric(rows: list[dict[str, Any]]) -> str:
    """The trait the round table shows: ``trait`` when a row has it (the toy world), else the first ``trait_<name>``
    an evaluator wrote (``trait_logodds``, ``trait_margin``, ...; not its ``_se``/``_raw``/... companions)."""
    keys = [k for row in rows for k in row]
    if "trait" in keys:
        return "trait"
    for k in keys:
        first = next(r[k] for r in rows if k in r)
        if k.startswith("trait_") and k.count("_") == 1 and isinstance(first, (int, float)):
            return k
    return "trait"


def round_table(rows: list[dict[str, Any]], title: str = ""):
    from rich.table import Table

    trait = trait_metric(rows)
    columns = [(trait if k == "trait" else f"steered_{trait}" if k == "steered_trait" else k,
                head if trait == "trait" else head.replace("trait", trait), fmt) for k, head, fmt in ROUND_COLUMNS]
    table = Table(title=title or None)
    for _, head, _ in columns:
        table.add_column(head, justify="right")
    for row in rows:
        cells = []
        for key, _, fmt in columns:
            if key == "kept":
                cells.append(f"{row['kept']}/{row['total']}" if "kept" in row else "")
            else:
                v = row.get(key)
                cells.append("" if v is None else (fmt.format(v) if fmt else str(v)))
        table.add_row(*cells)
    return table


def cmd_run(args) -> int:
    from .config.identity import run_hash
    from .data import check_data
    from .executors import RunTask
    from .executors.task import execute_task
    from .errors import ShlFault
    from .store import CORRUPT, FAILED, RUNNING, TERMINAL, RunStore, check_out_dir
    from .tracking import TrackerPlan, checked_trackers, option_trackers

    overrides = list(args.overrides) + ([f"seed={args.seed}"] if args.seed is not None else [])
    cfg, host = load_config(args.config, overrides)
    check_data(cfg.data, Path(args.config).parent, args.config, overrides)
    trackers = option_trackers(args.trackers, host.registry)
    resolved = cfg.model_dump(mode="json")
    identity = run_hash(resolved, Path(args.config).parent)
    h = identity[:10]
    out = Path(args.out) if args.out else Path("runs") / f"{cfg.name}-seed{cfg.seed}-{h}"
    check_out_dir(out, "run")
    store = RunStore(out)
    con = _console()
    state = store.state()
    if state.status == "foreign":
        raise ShlError(f"{out}: {state.reason}; refusing to delete or overwrite it (choose another --out)")
    if state.status == RUNNING:
        raise ShlError(f"{out}: {state.reason}; wait for it to finish or choose another --out")
    if state.status == CORRUPT and not args.force:
        raise ShlError(f"{out}: holds a corrupt run ({state.reason}); --force redoes it")
    if state.status in TERMINAL and not args.force:
        prev = store.meta().get("config_hash", "")
        if prev and prev != identity:
            raise ShlError(f"{out}: holds a complete run of a different config; use another --out or --force")
        con.print(f"{out}: already complete ({store.status()}); --force to redo")
        con.print(round_table(store.metrics(), title=str(out)))
        return 0
    store.check_writable()
    meta = {"experiment": None, "arm": None, "seed": cfg.seed, "config_hash": identity,
            "config_file": str(args.config)}
    warn = lambda line: con.print(line, highlight=False, markup=False)  # noqa: E731
    task = RunTask(str(out), resolved, meta, str(Path(args.config).parent), f"{cfg.name} seed {cfg.seed}",
                   trackers=TrackerPlan(checked_trackers(trackers, host.registry, warn)))
    from .progress_display import ProgressLines

    with con.status("starting") as status:
        shown = ProgressLines(con.is_terminal, status.update, warn)
        outcome = execute_task(task, progress=shown.update, host=host, echo=warn, warn=warn)
    if outcome.input_error:
        raise ShlError(outcome.message)
    if outcome.fault:
        raise ShlFault(outcome.message)
    con.print(round_table(outcome.metrics, title=f"{cfg.name} seed {cfg.seed}"))
    con.print(f"status: {outcome.status}: {outcome.message}", markup=False)
    if outcome.status not in TERMINAL and outcome.traceback and (out / FAILED).is_file():
        con.print(f"the traceback is in {out / FAILED}", markup=False)
    con.print(f"run directory: {out}")
    return 0 if outcome.status in ("complete", "stopped") else 1


# ------------------------------------------------------------------------------------------ ablate / report


def cmd_ablate(args) -> int:
    from .runner import AblateOptions, ablate

    opts = AblateOptions(
        seeds=args.seeds, arms=args.arms, out=args.out, overrides=list(args.overrides), executor=args.executor,
        workers=args.workers, ray_address=args.ray_address, share=not args.no_share, report=not args.no_report,
        redo_corrupt=args.redo_corrupt, until_mde=args.until_mde, max_seeds=args.max_seeds,
        seed_batch=args.seed_batch, dry_run=args.dry_run, trackers=list(args.trackers),
    )
    return 0 if ablate(args.experiment, opts).ok else 1


def cmd_report(args) -> int:
    from rich.console import Console

    from .runner import report

    out = Path(args.directory)
    if not out.is_dir():
        raise ShlError(f"{out}: no such directory")
    report(out, Console(highlight=False, width=200), formats=args.formats or ["md"], figures=not args.no_figures)
    return 0


# ------------------------------------------------------------------------------------------ export / sample


def cmd_export(args) -> int:
    if args.control_vector is not None:
        from .export_cvector import describe, export_control_vector

        if args.out is not None or args.adapter or args.max_rank is not None or args.allow_embedding_lora:
            raise ShlError("--control-vector writes one file: leave out --out, --adapter, --max-rank and "
                           "--allow-embedding-lora")
        print(describe(export_control_vector(args.run_dir, args.control_vector, round=args.round)))
        return 0
    from .export import export

    if args.out is None:
        raise ShlError("export: --out DIR is required (or --control-vector FILE.gguf)")
    path, student, report = export(args.run_dir, args.out, round=args.round, adapter=args.adapter, dtype=args.dtype,
                                   max_rank=args.max_rank, allow_embedding_lora=args.allow_embedding_lora)
    kind = "PEFT LoRA adapter (ranks of " + ", ".join(student.names) + ")" if args.adapter else (
        "Hugging Face model" + (" (adapters " + ", ".join(student.names) + " merged)" if student.names else
                                " (round 0: the base model)"))
    print(f"{path}: {kind}, student after {student.round} heal round(s) of {args.run_dir}")
    for line in report.lines() if report is not None else ():
        print(f"  {line}")
    return 0


def cmd_sweep(args) -> int:
    from .progress_display import ProgressLines
    from .sweep import format_result, run_sweep

    from rich.console import Console

    con, err = _console(), Console(stderr=True, highlight=False)  # progress on stderr: stdout may be --json
    warn = lambda line: err.print(line, highlight=False, markup=False)  # noqa: E731
    with err.status("starting") as status:
        shown = ProgressLines(err.is_terminal, status.update, warn)
        result = run_sweep(args.config, list(args.overrides), args.layers, args.coeffs, args.trait, args.coherence,
                           args.floor, args.out, progress=shown.update)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        con.out(format_result(result), highlight=False)
    return 0


def cmd_sample(args) -> int:
    from .sample import format_rows, sample

    student, rows, coeff = sample(args.run_dir, round=args.round, steered=args.steered, prompt=args.prompt,
                                  n=args.n, seed=args.seed, max_new_tokens=args.max_new_tokens, device=args.device)
    print(format_rows(student, rows, coeff))
    return 0
