"""``shl export --control-vector``: round K's steering vector as a llama.cpp control vector (GGUF).

Round K (the metrics row ``round: K``, K >= 1) steered with ``vectors/round_<K-1>.safetensors`` at the dose
``coeff`` of that row: shl added ``coeff * v_k`` to the output of decoder block k at every position. The file
holds ``direction.k = coeff * v_k`` (computed in float32 exactly as shl's hook computes it), so llama.cpp's
default scale 1.0 reproduces the run's steered point and ``--control-vector-scaled FILE:S`` (older llama.cpp:
``FILE S``) gives S times that dose. Layer numbering and file layout: ``shl.control_vector``. No model weights are
loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ShlError

SCALE_NOTE = ("direction.N = coeff * v: the vector shl added to the output of decoder block N, at the run's dose; "
              "llama.cpp's scale 1.0 reproduces that dose")


@dataclass
class ControlVectorExport:
    path: Path
    run_dir: Path
    round: int
    coeff: float
    layers: list[int]
    n_embd: int
    model_hint: str
    directions: dict[int, Any]  # shl layer -> the float32 numpy array written


def steered_round(run_dir: Path, rows: list[dict[str, Any]], round: int | None) -> tuple[int, float]:
    """(K, coeff): the requested round, or the last one with a recorded dose and a stored vector."""
    from .export import verified_files

    vouched = verified_files(run_dir)

    def has_vector(k: int) -> bool:
        return f"vectors/round_{k - 1}.safetensors" in vouched

    doses = {int(r["round"]): float(r["coeff"]) for r in rows
             if isinstance(r.get("round"), int) and r["round"] >= 1 and r.get("coeff") is not None}
    ready = sorted(k for k in doses if has_vector(k))
    if round is None:
        if not ready:
            raise ShlError(f"{run_dir}: no round with a stored steering vector and a recorded dose (coeff)")
        return ready[-1], doses[ready[-1]]
    k = int(round)
    if k not in ready:
        have = f"rounds {ready[0]}..{ready[-1]}" if ready else "none"
        raise ShlError(f"{run_dir}: --round {k} has no stored steering vector with a recorded dose ({have}; round 0 "
                       "is the base model, before any steering)")
    return k, doses[k]


def export_control_vector(run_dir: str | Path, out: str | Path, round: int | None = None,
                          host: Any = None) -> ControlVectorExport:
    import torch

    from .config.slots import model_source
    from .control_vector import check_expressible, read_vector_file, write_control_vector
    from .export import check_run, run_config
    from .store import RunStore, read_meta

    d = check_run(run_dir)
    o = Path(out)
    if o.exists():
        raise ShlError(f"{o}: exists; choose a new file for --control-vector")
    cfg = run_config(d)
    k, coeff = steered_round(d, RunStore(d).metrics(), round)
    if host is None:
        from .manager import get_host

        host = get_host()
    reg = host.registry
    method = cfg.steer.method.name
    if not reg.get("steering", method).static_addition():
        rule = " (a per-position gate relu(|cos(h, v)| - threshold))" if method == "cosine_gated" else ""
        raise ShlError(f"{d}: steering method '{method}' applies its vector through its own rule{rule}, which a "
                       "static control vector cannot express: llama.cpp adds the same direction at every position")
    source = model_source(reg, cfg.model)
    instance = reg.build("model", source.name, source.params)
    vec = read_vector_file(d / "vectors" / f"round_{k - 1}.safetensors")
    check_expressible(list(vec.layers), instance.num_layers(), f"{d}: round {k}")
    hidden = instance.hidden_size()
    if hidden is not None and vec.n_embd != hidden:
        raise ShlError(f"{d}: round {k}'s vector has {vec.n_embd} values, the model's hidden size is {hidden}")
    directions = {layer: (coeff * torch.from_numpy(v)).numpy() for layer, v in vec.layers.items()}
    hint = instance.model_type() or "unknown"
    meta = read_meta(d)
    write_control_vector(o, directions, hint, {
        "shl.run": d.resolve().name, "shl.round": k, "shl.vector_file": f"vectors/round_{k - 1}.safetensors",
        "shl.coeff": coeff, "shl.scale": SCALE_NOTE, "shl.steering_method": method,
        "shl.config_hash": str(meta.get("config_hash") or ""),
    })
    return ControlVectorExport(o, d, k, coeff, sorted(vec.layers), vec.n_embd, hint, directions)


def describe(e: ControlVectorExport) -> str:
    """The line ``shl export --control-vector`` prints."""
    layers = ", ".join(f"direction.{k}" for k in e.layers)
    return (f"{e.path}: llama.cpp control vector of round {e.round} of {e.run_dir} ({layers} = shl layer(s) "
            f"{', '.join(map(str, e.layers))}, added to the output of those decoder blocks; n_embd {e.n_embd}; "
            f"model_hint {e.model_hint}). Scale: direction = coeff * v with the run's dose coeff={e.coeff:.6g} "
            f"(metrics row round {e.round}), so llama.cpp's default scale 1.0 reproduces it; "
            f"--control-vector-scaled {e.path}:S gives S times that dose")
