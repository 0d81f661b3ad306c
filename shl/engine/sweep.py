"""The steering sweep: the unhealed model steered at each layer x coefficient, by the run config's steering
method and by a random vector of the same norm (the control), measured by the run config's evaluators.

The vectors are round 1's (the same contexts, positions and method as a run's first round); the evaluators
sample the same held-out prompts with the same random numbers in every cell (common random numbers, as across
the rounds of a run), so cells differ by the steering alone.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ..config.models import RunConfig
from ..errors import RunError
from .extract import extract_pairs
from .layers import resolve_layers
from .loop import Run
from .seeds import Stream, sample_indices, torch_generator
from .steering import Steerer


def sweep(cfg: RunConfig, host: Any, layers: Sequence[int | float], coeffs: Sequence[float],
          data_root: Any = None, progress: Callable[[str], None] | None = None) -> tuple[list[dict[str, Any]], Run]:
    """Rows ``{layer, coeff, vector, vector_norm, <metrics>}``: first the unsteered model (``vector`` 'none',
    layer and coefficient None / 0), then per layer and non-zero coefficient the method's vector (``vector`` = the
    method's name) and the random control (``vector`` 'random'). Returns the rows and the prepared ``Run``."""
    import torch
    from shl_analysis.sweep import BASE, RANDOM

    say = progress or (lambda line: None)
    run = Run(cfg, host, store=None, data_root=data_root)
    run.prepare()
    resolved = resolve_layers(list(layers), run.n_layers, f"model '{cfg.model.name}'")
    n_pool = len(run.data.contexts)
    idx = sample_indices(n_pool, cfg.steer.n_contexts, cfg.seed, Stream.EXTRACT, 0)
    contexts = [run.data.contexts[j] for j in idx]
    say(f"extracting {cfg.steer.method.name} vectors at layers {resolved} from {len(contexts)} contexts")
    pairs = extract_pairs(run.stack.model, run.tok, run.data, contexts, resolved, cfg.steer.positions,
                          cfg.steer.batch_size)
    vectors, randoms = {}, {}
    for layer, (p, n) in pairs.items():
        try:
            v = run.method.fit_layer(p, n, layer=layer, round_index=0).detach().float()
        except Exception as exc:
            raise RunError(f"steering method '{cfg.steer.method.name}' raised {type(exc).__name__}: {exc}") from exc
        r = torch.randn(v.shape, generator=torch_generator(cfg.seed, Stream.SWEEP_RANDOM, layer))
        vectors[layer] = v.to(run.device)
        randoms[layer] = (r / r.norm() * v.norm()).to(run.device)
    say("evaluating the unsteered model")
    base, _ = run.evaluate(0)
    rows: list[dict[str, Any]] = [{"layer": None, "coeff": 0.0, "vector": BASE, "vector_norm": 0.0, **base}]
    cells = [(layer, float(c)) for layer in resolved for c in coeffs if float(c) != 0.0]
    for k, (layer, c) in enumerate(cells):
        for kind, vec in ((cfg.steer.method.name, vectors[layer]), (RANDOM, randoms[layer])):
            say(f"cell {k + 1}/{len(cells)}: layer {layer}, coefficient {c:g}, {kind} vector")
            steerer = Steerer(run.method, {layer: vec}, c)
            with steerer.installed(run.stack.model):
                metrics, _ = run.evaluate(0, steerer)
            rows.append({"layer": layer, "coeff": c, "vector": kind, "vector_norm": float(vec.norm()), **metrics})
    return rows, run

