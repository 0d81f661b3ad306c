"""``shl toyworld build|info|sweep``: the embedded toy world from the command line, a command this plugin adds
through the ``shl_register_commands`` hook (``COMMAND``).

The sweep measures exactly what the steer step relies on: trait and coherence of the unhealed model steered
by a mean-diff vector (prompt_mean positions) at increasing coefficients, next to a random vector of the same
norm (the control: it should move coherence, not the trait).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from shl import cli_types as types
from shl.errors import ShlError
from shl.plugin_commands import Command
from shl.sweep import parse_numbers

DEFAULT_COEFFS = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 5.0]
DEFAULT_LAYER = 1


def add_arguments(p) -> None:
    """The arguments of ``shl toyworld``: one subcommand per action."""
    tw = p.add_subparsers(dest="toy_command", metavar="ACTION")
    b = tw.add_parser("build", help="train the toy model (or find it in the cache)")
    b.add_argument("--variant", default="default", choices=["default", "small"], help="model variant")
    b.add_argument("--seed", type=types.seed, default=0, help="training seed")
    b.add_argument("--rebuild", action="store_true", help="train it again even if a cached model exists (e.g. "
                   "one that fails its integrity check)")
    i = tw.add_parser("info", help="where the toy model is cached, its size, training loss, world version")
    i.add_argument("--variant", default="default", choices=["default", "small"], help="model variant")
    i.add_argument("--seed", type=types.seed, default=0, help="training seed")
    s = tw.add_parser("sweep", help="trait and coherence vs steering coefficient (mean-diff and random vectors)")
    s.add_argument("--variant", default="default", choices=["default", "small"], help="model variant")
    s.add_argument("--seed", type=types.seed, default=0, help="seed for the model, contexts and sampling")
    s.add_argument("--coeffs", default=None, help="comma-separated coefficients (default: a built-in range)")
    s.add_argument("--layer", default=None, help="layer index or fraction (default: the smoke config's)")
    s.add_argument("--prompts", type=types.int_in(1, 100_000), default=200, help="evaluation prompts per coefficient")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.add_argument("--plot", default=None, metavar="FILE", help="also save a plot (PNG or SVG)")


def toyworld_command(args) -> int:
    if args.toy_command is None:
        raise ShlError("toyworld: choose an action: build, info or sweep (see shl toyworld --help)")
    return {"build": _build, "info": _info, "sweep": _sweep}[args.toy_command](args)


COMMAND = Command(
    "toyworld", "the embedded toy world: build its model, inspect it, sweep the dose", add_arguments,
    toyworld_command, usage="toyworld build|info|sweep", summary="the embedded toy world",
)


def _build(args) -> int:
    from . import train

    cached = train.is_cached(args.variant, args.seed) and not args.rebuild
    t0 = time.time()
    path = train.ensure_model(args.variant, args.seed, force=args.rebuild, verbose=True)
    info = json.loads((path / "info.json").read_text())
    what = "found in the cache" if cached else f"trained in {time.time() - t0:.0f}s"
    print(f"toy model ({args.variant}, seed {args.seed}) {what}: {path}")
    print(f"  parameters {info.get('params', info.get('n_params', '?'))}, final training loss "
          f"{info.get('final_loss', info.get('loss', '?'))}")
    return 0


def _info(args) -> int:
    from . import train, world

    path = train.model_dir(args.variant, args.seed)
    print(f"world version   {world.WORLD_VERSION}")
    print(f"cache root      {train.cache_root()}  (override with SHL_CACHE_DIR)")
    print(f"model directory {path}")
    if not train.is_cached(args.variant, args.seed):
        print("status          not built yet (shl toyworld build, or any run on the toy world, trains it)")
        return 0
    info = json.loads((path / "info.json").read_text())
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    print(f"status          cached, {size / 1e6:.1f} MB on disk")
    for key, value in info.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value)
        print(f"{key:<15} {value}")
    return 0


def _parse_layer(text: str | None) -> int | float:
    if text is None:
        return DEFAULT_LAYER
    try:
        return int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise ShlError(f"--layer: expected an index or a fraction, got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise ShlError(f"--layer: a fraction of depth must be in [0, 1), got {text!r}")
    return value


def sweep(variant: str = "default", seed: int = 0, coeffs: list[float] | None = None, layer: int | float = DEFAULT_LAYER,
          n_prompts: int = 200, n_contexts: int = 64, max_new_tokens: int = 64, progress=None) -> list[dict[str, Any]]:
    """Rows of (coeff, vector kind, layer, vector norm, trait, trait_se, coherence, coherence_se, ...) on the toy
    model: ``shl sweep`` (``shl.engine.sweep``) with the toy world's evaluator (``toy_exact`` on ``n_prompts``
    held-out prompts) at one layer; the unsteered model is the coefficient-0 row of the mean-diff vector."""
    from shl.config import load_run_config
    from shl.engine.sweep import sweep as steering_sweep
    from shl.manager import get_host

    host = get_host()
    overrides = [
        "model.name=toyworld", f"model.params={{variant: {variant}, seed: {seed}}}", f"seed={seed}", "device=cpu",
        "steer.method=mean_diff", "steer.positions=prompt_mean", f"steer.n_contexts={n_contexts}",
        f"eval.max_new_tokens={max_new_tokens}", "eval.batch_size=100",
        f"eval.evaluators=[{{name: toy_exact, params: {{n_prompts: {n_prompts}, n_samples: 0}}}}]",
    ]
    cfg = load_run_config(None, overrides, host.registry)
    coeffs = list(coeffs if coeffs is not None else DEFAULT_COEFFS)
    rows, run = steering_sweep(cfg, host, [layer], [c for c in coeffs if c != 0.0],
                               progress=(lambda line: progress(line)) if progress else None)
    steered = [r for r in rows if r["vector"] != "none"]
    at = steered[0]["layer"] if steered else None
    norm = steered[0]["vector_norm"] if steered else 0.0
    out = []
    for r in rows:
        if r["vector"] == "none":
            if 0.0 in coeffs:
                out.append({**r, "coeff": 0.0, "vector": "mean_diff", "layer": at, "vector_norm": norm})
            continue
        out.append(r)
    return out


PLOT_FORMATS = (".png", ".svg", ".pdf")


def check_plot_path(text: str | None) -> Path | None:
    if text is None:
        return None
    path = Path(text)
    if path.suffix.lower() not in PLOT_FORMATS:
        raise ShlError(f"--plot {text}: the file name must end in {', '.join(PLOT_FORMATS)}")
    if path.is_dir():
        raise ShlError(f"--plot {text}: is a directory")
    return path


def _sweep(args) -> int:
    coeffs = parse_numbers(args.coeffs, "coeffs")  # shl sweep's own parsing
    layer = _parse_layer(args.layer)
    plot = check_plot_path(args.plot)
    from rich.console import Console

    con = Console(highlight=False, stderr=True)
    with con.status("sweeping") as status:
        rows = sweep(args.variant, args.seed, coeffs, layer, args.prompts, progress=status.update)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_sweep(rows, args.prompts))
    if plot is not None:
        plot_sweep(rows, plot)
        print(f"plot written to {plot}", file=sys.stderr if args.json else sys.stdout)  # stdout: only JSON
    return 0


def format_sweep(rows: list[dict[str, Any]], n: int) -> str:
    by = {(r["coeff"], r["vector"]): r for r in rows}
    coeffs = sorted({r["coeff"] for r in rows})
    layer = rows[0]["layer"] if rows else "?"
    lines = [
        f"Toy world dose sweep: layer {layer}, mean-diff vector (norm {rows[0]['vector_norm']:.3g}) vs a random "
        f"vector of the same norm; {n} held-out prompts per cell, exact grammar; +- one standard error.",
        "",
        "| coeff | trait (mean-diff) | coherence (mean-diff) | trait (random) | coherence (random) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for c in coeffs:
        cells = [f"{c:g}"]
        for kind in ("mean_diff", "random"):
            r = by.get((c, kind)) or (by.get((c, "mean_diff")) if c == 0.0 else None)
            if r is None:
                cells += ["", ""]
            else:
                cells += [f"{r['trait']:.3f} +- {r['trait_se']:.3f}", f"{r['coherence']:.3f} +- {r['coherence_se']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_sweep(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharex=True)
    for ax, metric in zip(axes, ("trait", "coherence")):
        for kind, style in (("mean_diff", "o-"), ("random", "s--")):
            rs = sorted([r for r in rows if r["vector"] == kind or (kind == "random" and r["coeff"] == 0.0)],
                        key=lambda r: r["coeff"])
            ax.errorbar([r["coeff"] for r in rs], [r[metric] for r in rs], yerr=[r[f"{metric}_se"] for r in rs],
                        fmt=style, capsize=3, label=kind)
        ax.set_xlabel("steering coefficient")
        ax.set_ylabel(metric)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    import io

    from shl.store import atomic_write

    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".").lower(), dpi=120)
    plt.close(fig)
    atomic_write(path, buf.getvalue())  # replaces a link there rather than writing through it
