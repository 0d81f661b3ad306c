"""``shl sweep``: which layer and what strength. The unhealed model of a run config, steered at each layer x
coefficient by the config's steering method and by a random vector of the same norm, measured by the config's
evaluators (``engine.sweep``); a table with standard errors, a figure, and the band it suggests as config lines
(``shl_analysis.sweep``). Writes ``sweep.json`` (settings, environment, rows, band), ``sweep.csv`` and
``sweep.{png,svg}`` to the output directory."""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import ShlError

DEFAULT_LAYERS = (0.2, 0.4, 0.6, 0.8)
DEFAULT_COEFF_MULTIPLES = (0.5, 1.0, 2.0, 4.0)  # of the config's dose.scale: past it, where coherence falls
TRAIT_METRICS = ("trait", "trait_logodds")  # the first one the evaluators report is the trait, unless --trait


def parse_numbers(text: str | None, what: str, *, fractions_ok: bool = False) -> list[float] | None:
    """``--coeffs 0,2,4`` / ``--layers 6,0.5``: finite numbers (|x| <= 1e4), at least one; None = the default."""
    if text is None:
        return None
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ShlError(f"--{what}: expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise ShlError(f"--{what}: no numbers in {text!r}")
    bad = [v for v in values if not math.isfinite(v) or abs(v) > 1e4]
    if bad:
        raise ShlError(f"--{what}: {bad[0]} is not a finite number in [-1e4, 1e4]")
    if fractions_ok:
        return [int(v) if v.is_integer() and v >= 1 else v for v in values]
    return values


def pick_metric(metrics: Sequence[str], wanted: str | None, candidates: Sequence[str], what: str) -> str:
    if wanted is not None:
        if wanted not in metrics:
            raise ShlError(f"--{what} {wanted}: the config's evaluators report no such metric "
                           f"(they report: {', '.join(sorted(metrics))})")
        return wanted
    for name in candidates:
        if name in metrics:
            return name
    raise ShlError(f"the config's evaluators report none of {', '.join(candidates)}: choose one with --{what} "
                   f"(they report: {', '.join(sorted(metrics))})")


def run_sweep(config: str, overrides: list[str], layers: str | None, coeffs: str | None, trait: str | None,
              coherence: str | None, floor: float, out: str | None,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the sweep and write its files; returns the ``sweep.json`` content."""
    from shl_analysis.figures.sweep import sweep_figure
    from shl_analysis.sweep import agreement, suggest

    from .commands import load_config
    from .config.checks import produced_metrics
    from .data import check_data
    from .engine.sweep import sweep
    from .environment import environment
    from .store import atomic_write, check_out_dir, claim_dir

    cfg, host = load_config(config, overrides)
    check_data(cfg.data, Path(config).parent, config, overrides)
    layer_spec = parse_numbers(layers, "layers", fractions_ok=True) or list(DEFAULT_LAYERS)
    coeff_list = parse_numbers(coeffs, "coeffs") or [m * cfg.dose.scale for m in DEFAULT_COEFF_MULTIPLES]
    if not 0 < floor <= 1:
        raise ShlError(f"--floor: a share of the unsteered coherence in (0, 1], got {floor}")
    declared = produced_metrics(cfg, host.registry)
    if declared is not None:  # a metric the evaluators do not report is an error before any work
        declared = {m for m in declared if not m.startswith("steered_")}
        pick_metric(sorted(declared), trait, TRAIT_METRICS, "trait")
        pick_metric(sorted(declared), coherence, ("coherence",), "coherence")
    out_dir = Path(out) if out else Path("runs") / f"sweep-{cfg.name}-seed{cfg.seed}"
    check_out_dir(out_dir, "sweep")
    claim_dir(out_dir, "the sweep")
    t0 = time.perf_counter()
    rows, run = sweep(cfg, host, layer_spec, coeff_list, data_root=Path(config).parent, progress=progress)
    metrics = [k for k in rows[0] if k not in ("layer", "coeff", "vector", "vector_norm")]
    trait_m = pick_metric(metrics, trait, TRAIT_METRICS, "trait")
    coh_m = pick_metric(metrics, coherence, ("coherence",), "coherence")
    band = suggest(rows, trait_m, coh_m, floor=floor)
    result = {
        "config": str(config), "overrides": list(overrides), "model": cfg.model.name, "seed": cfg.seed,
        "method": cfg.steer.method.name, "n_layers": run.n_layers, "layers": sorted({r["layer"] for r in rows
                                                                                   if r["layer"] is not None}),
        "coeffs": coeff_list, "trait": trait_m, "coherence": coh_m, "floor": floor,
        "wall_time_s": round(time.perf_counter() - t0, 1), "environment": environment(run.device),
        "rows": rows, "band": [asdict(c) for c in band.band], "best": asdict(band.best) if band.best else None,
        "config_lines": band.config_lines(), "summary": band.summary(),
        "agreement": [asdict(a) | {"summary": a.summary()} for a in agreement(rows)],
    }
    atomic_write(out_dir / "sweep.json", json.dumps(result, indent=1) + "\n")
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(out_dir / "sweep.csv", buf.getvalue())
    sweep_figure(rows, trait_m, coh_m, floor, out_dir / "sweep", title=f"{cfg.model.name}: {cfg.steer.method.name} "
                 f"vs a random vector of the same norm")
    result["out"] = str(out_dir)
    return result


def format_result(result: dict[str, Any]) -> str:
    from shl_analysis.sweep import format_table

    lines = [f"steering sweep of {result['model']} ({result['n_layers']} layers), {result['method']} vs a random "
             f"vector of the same norm, seed {result['seed']} ({result['wall_time_s']:.0f} s):", "",
             format_table(result["rows"], result["trait"], result["coherence"]), "", result["summary"]]
    lines += [a["summary"] for a in result.get("agreement", [])]
    if result["config_lines"]:
        lines += ["", "config lines for the best cell:", *("  " + line for line in result["config_lines"])]
    lines += ["", f"written to {result['out']}: sweep.json, sweep.csv, sweep.png, sweep.svg"]
    return "\n".join(lines)
