"""The ``shl`` command line. Input errors print one line each (``error: ...``) and exit with code 2.

Plugins add commands through the ``shl_register_commands`` hook (``shl.plugin_commands``); they are listed and
dispatched like the built-ins. The plugins are loaded to build the parser only when the command is not a
built-in one (``shl --help``, a plugin command), so the built-in commands start as fast as before."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Sequence

from . import __version__
from . import cli_types as types
from .errors import ShlError, ShlFault
from .plugin_commands import Command, PluginCommands, collect_commands

# The overview at the end of ``shl --help``: (usage after "shl ", summary). Plugin commands are listed between
# the ablation workflow and the tools that read one run (in the list of commands above it, after the built-ins).
WORKFLOW_OVERVIEW = [
    ("plugins [--json]", "list every component and the plugin it comes from"),
    ("validate CONFIG [--set k=v ...]", "validate a run config and print it resolved"),
    ("run CONFIG [--set k=v] [--out DIR]", "run the method for one config and one seed"),
    ("ablate EXPERIMENT [--seeds 0-4] [--dry-run]", "run arms x seeds, then compare them"),
    ("report DIR [--format md|csv|latex|html]", "tables, figures and report.html again from stored results"),
    ("sweep CONFIG [--layers L,..] [--coeffs C,..]", "which layer and dose: steered vs a random vector"),
]
RUN_TOOLS_OVERVIEW = [
    ("export RUN_DIR [--round K] --out DIR", "the healed student as a Hugging Face model (or --adapter)"),
    ("export RUN_DIR --control-vector F.gguf", "round K's steering vector as a llama.cpp control vector"),
    ("sample RUN_DIR [--round K] [--steered]", "print completions from the student (and the steered point)"),
]
BUILTIN_COMMANDS = ("plugins", "validate", "run", "ablate", "report", "sweep", "export", "sample")


def overview(lines: Sequence[tuple[str, str]]) -> str:
    return "commands:\n" + "".join(f"  shl {usage}{' ' * max(41 - len(usage), 3)}{summary}\n"
                                    for usage, summary in lines)


def _add_tracker(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tracker", dest="trackers", action="append", default=[], metavar="NAME[:k=v,...]",
        help="mirror the runs to a tracker, e.g. --tracker wandb:project=x,mode=offline or --tracker mlflow "
        "(repeatable; adds to the experiment's trackers:, replacing one of the same name)",
    )


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
        help="override a config value before validation, e.g. --set heal.lam=0.1 (repeatable; VALUE is YAML)",
    )


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``error: shl ablate: argument --workers: must be in 1..256, got 0``."""

    def error(self, message: str):  # type: ignore[override]
        hint = f" (see '{self.prog} --help')"
        self.exit(2, f"error: {self.prog}: {' '.join(message.split())}{hint}\n")


def build_parser(plugin_commands: Sequence[Command] = ()) -> argparse.ArgumentParser:
    """The ``shl`` parser: the built-in commands and ``plugin_commands`` (from ``shl_register_commands``)."""
    lines = WORKFLOW_OVERVIEW + [(c.usage or c.name, c.summary or c.help) for c in plugin_commands] + RUN_TOOLS_OVERVIEW
    parser = Parser(
        prog="shl",
        description="steer, heal, loop: distil a steering vector into LoRA adapters, heal with a KL barrier, "
        "loop; and ablate every part of it.",
        epilog=overview(lines),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"shl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_builtin_commands(sub)
    for command in plugin_commands:  # listed after the built-ins
        command.add_arguments(sub.add_parser(command.name, help=command.help))
    return parser


def _add_builtin_commands(sub) -> None:
    p = sub.add_parser("plugins", help="list registered components (steering methods, filters, aggregators, "
                       "schedules, evaluators, model sources, trackers), and broken, clashing or disabled plugins")
    p.add_argument("--json", action="store_true", help="machine-readable output, with each params schema")

    p = sub.add_parser("validate", help="validate a run config; print it fully resolved (YAML)")
    p.add_argument("config", help="run config YAML")
    _add_set(p)

    p = sub.add_parser("run", help="run the method for one config and one seed; print a per-round table")
    p.add_argument("config", help="run config YAML")
    _add_set(p)
    p.add_argument("--out", default=None, help="run directory (default: runs/<name>-seed<seed>-<hash>)")
    p.add_argument("--seed", type=types.seed, default=None, help="shorthand for --set seed=N")
    p.add_argument("--force", action="store_true", help="redo the run even if the directory holds a complete one")
    _add_tracker(p)

    p = sub.add_parser("ablate", help="run every arm x seed of an experiment (resuming), then compare arms")
    p.add_argument("experiment", help="experiment YAML")
    _add_set(p)
    p.add_argument("--seeds", default=None,
                   help="seeds to run: a range 0-4, a list 0,2,5, or one seed N (default: the experiment's seeds; "
                   "in the YAML file a bare number N means N seeds, 0..N-1). Seeds run earlier on the same "
                   "--out stay in the comparison")
    p.add_argument("--arms", default=None, help="comma-separated subset of arms (default: all)")
    p.add_argument("--out", default=None, help="output directory (default: runs/<experiment name>)")
    p.add_argument("--dry-run", action="store_true", help="list runs as done / pending / failed; run nothing")
    p.add_argument("--executor", default=None, choices=["auto", "inprocess", "local", "ray"],
                   help="where runs execute: in this process, in local worker processes, or on Ray (default: the "
                   "experiment's; with more than one worker, local)")
    p.add_argument("--workers", type=types.int_in(1, 256), default=None, metavar="N",
                   help="local worker processes, threads divided between them (default: one per core, at most 4, "
                   "for CPU runs; 1 on a GPU)")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: RAY_ADDRESS or local)")
    p.add_argument("--no-report", action="store_true", help="skip the comparison report at the end")
    p.add_argument("--until-mde", type=types.positive_float, default=None, metavar="X",
                   help="after the planned seeds, add seeds in batches until every arm is settled on the primary "
                   "metric: its minimum detectable effect (from the spread of its paired differences about zero) "
                   "is <= X, or its p crossed the efficacy boundary (10%% of alpha over the looks; the verdicts use "
                   "the rest); a settled arm is compared on its seeds up to that point (README: Adding seeds "
                   "adaptively)")
    p.add_argument("--max-seeds", type=types.int_in(1, 1000), default=40, metavar="N",
                   help="with --until-mde: at most N seeds")
    p.add_argument("--seed-batch", type=types.int_in(1, 1000), default=2, metavar="B",
                   help="with --until-mde: seeds added per step")
    p.add_argument("--redo-corrupt", action="store_true",
                   help="redo runs whose stored results fail their integrity check (by default they are named, "
                   "excluded from the comparison and left as they are)")
    p.add_argument("--no-share", action="store_true",
                   help="do not reuse stages whose inputs are identical across arms (base evaluation, round 1 up "
                   "to the heal); each run computes everything itself")
    _add_tracker(p)

    p = sub.add_parser("report", help="write comparison tables, figures and a self-contained HTML page "
                       "(report/report.html) from stored results")
    p.add_argument("directory", help="an ablation output directory")
    p.add_argument("--format", dest="formats", action="append", choices=["md", "csv", "latex", "html"], default=None,
                   help="what to print: the md, csv or latex table, or html (the path of report.html, one page "
                   "with the tables, figures, runs, plugin versions and the command to reproduce) (default: md; "
                   "every format's file is always written)")
    p.add_argument("--no-figures", action="store_true", help="tables only")

    p = sub.add_parser("sweep", help="which layer and what strength: the unhealed model steered at each layer x "
                       "coefficient by the config's method and by a random vector of the same norm, measured by its "
                       "evaluators; a table, a figure and the band it suggests as config lines")
    p.add_argument("config", help="run config YAML (model, data, steering method, evaluators)")
    _add_set(p)
    p.add_argument("--layers", default=None, help="comma-separated layer indices or fractions of depth "
                   "(default: 0.2,0.4,0.6,0.8)")
    p.add_argument("--coeffs", default=None, help="comma-separated coefficients (default: 0.5, 1, 2 and 4 x the "
                   "config's dose.scale)")
    p.add_argument("--trait", default=None, metavar="METRIC", help="the trait metric (default: trait or "
                   "trait_logodds, whichever the evaluators report)")
    p.add_argument("--coherence", default=None, metavar="METRIC", help="the coherence metric (default: coherence)")
    p.add_argument("--floor", type=float, default=0.9, help="the band keeps coherence >= FLOOR x the unsteered "
                   "model's (default 0.9)")
    p.add_argument("--out", default=None, help="output directory (default: runs/sweep-<name>-seed<seed>)")
    p.add_argument("--json", action="store_true", help="print sweep.json instead of the table")

    p = sub.add_parser("export", help="write the student after K heal rounds as a standard Hugging Face model "
                       "directory (adapters merged; tokenizer and chat template included), or one PEFT adapter, or "
                       "round K's steering vector as a llama.cpp control vector")
    p.add_argument("run_dir", help="a finished run directory (verified)")
    p.add_argument("--round", type=types.int_in(0, 1000), default=None, metavar="K",
                   help="heal rounds to include (default: the last); with --control-vector, the round whose vector "
                   "and dose are written")
    p.add_argument("--out", default=None, help="output directory (must not exist, or be empty); not with "
                   "--control-vector")
    p.add_argument("--adapter", action="store_true",
                   help="write one PEFT LoRA adapter equivalent to the stack (ranks concatenated, scalings folded "
                   "into B) instead of merged weights; prints its rank and the vLLM --max-lora-rank it needs")
    p.add_argument("--max-rank", type=int, default=None, metavar="R",
                   help="with --adapter: compress it to rank R (truncated SVD of each module's summed update) and "
                   "print the relative error of the updates and of the student's logits on held-out prompts")
    p.add_argument("--allow-embedding-lora", action="store_true",
                   help="with --adapter: write LoRA on the embeddings or the LM head (vLLM refuses them; default: "
                   "refuse such a run)")
    p.add_argument("--control-vector", default=None, metavar="FILE.gguf",
                   help="instead: write round K's steering vector (default: the last round's) as a llama.cpp control "
                   "vector, direction.N = shl layer N, scaled so that llama.cpp's scale 1.0 is the run's dose")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="weights dtype (default: the run's dtype as resolved on CPU)")

    p = sub.add_parser("sample", help="print completions from the student after K heal rounds (and with --steered "
                       "the steered point of that round), to read what the heal did")
    p.add_argument("run_dir", help="a finished run directory (verified)")
    p.add_argument("--round", type=types.int_in(0, 1000), default=None, metavar="K",
                   help="heal rounds (default: the last)")
    p.add_argument("--steered", action="store_true",
                   help="also sample the steered point: the student before round K's heal, steered with round K's "
                   "vector at the dose recorded in its metrics row")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--prompt", default=None, metavar="TEXT", help="one user prompt")
    g.add_argument("--n", type=types.int_in(1, 10_000), default=4, metavar="N",
                   help="N prompts from the run's held-out evaluation prompts")
    p.add_argument("--seed", type=types.seed, default=0, help="sampling seed")
    p.add_argument("--max-new-tokens", type=types.tokens, default=None,
                   help="default: the run's eval.max_new_tokens")
    p.add_argument("--device", type=types.device, default="cpu", help="cpu (default), cuda, cuda:N")


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    word = next((a for a in argv if not a.startswith("-")), None)
    found = PluginCommands()
    if word not in BUILTIN_COMMANDS:  # plugins load for `shl --help` and plugin commands; built-ins never wait
        from .manager import get_host

        found = collect_commands(get_host(), BUILTIN_COMMANDS)
        if found.conflicts:  # `shl plugins` lists them too
            for conflict in found.conflicts:
                print(f"error: {conflict}", file=sys.stderr)
            return 2
    handlers = {c.command.name: c.command.handler for c in found.commands}
    parser = build_parser([c.command for c in found.commands])
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        if args.command in handlers:
            return int(handlers[args.command](args) or 0)
        from . import commands

        return int(getattr(commands, f"cmd_{args.command}")(args) or 0)
    except ShlError as exc:
        for line in str(exc).splitlines() or ["error"]:
            print(f"error: {line}", file=sys.stderr)
        return 2
    except ShlFault as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a filesystem fault shl did not anticipate: one line naming the path
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so cleanup (locks, executors) runs as for Ctrl-C."""


def _terminate(signum, frame) -> None:
    raise Terminated()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
