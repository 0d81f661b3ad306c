"""One run: one resolved config and one seed, a loop of steer -> dose -> generate -> filter -> heal -> eval.

Metrics rows: ``round`` 0 is the base model before any heal; ``round`` k is the student after k heal rounds.
The row for round k also carries the round's steering, dose, filter and heal statistics and the
steered-but-unhealed point (``steered_*``: the student before this round's heal, steered at the dose used).
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any, Callable

from ..config.identity import component_origins, model_identity
from ..config.models import RunConfig
from ..errors import RunError, ShlError
from ..manager import PluginHost
from ..store import RunStore
from . import progress
from .evaluate import evaluate
from .heal_step import heal_step
from .oom import oom_as_run_error
from .base_states import BaseStates
from .lasting import LastingEntry, lasting_key
from .prompt_cache import PromptCache
from .result import RunResult
from .run_setup import set_up_run
from .scoring import EngineScorer
from .shared_stages import SharedStageCache, shared_stage_key
from .stages import StageClock
from .steering import Steerer
from .steering_round import steer_round

Progress = Callable[[str], None]


def _cosine(a: dict[int, Any], b: dict[int, Any]) -> float:
    import torch

    va = torch.cat([a[k].flatten().float() for k in sorted(a)])
    vb = torch.cat([b[k].flatten().float() for k in sorted(b)])
    return float(torch.nn.functional.cosine_similarity(va, vb, dim=0))


class Run:
    """Executes one run, writing to ``store`` (or nowhere, when ``store`` is None).

    ``shared_dir``: the shared-stage cache (``shared_stages.py``): runs that agree on everything but
    ``heal``/``loop`` (arms of a heal ablation, same seed) compute the base evaluation and round 1 up to the heal
    once. The steering round is ``steering_round.py``; the heal, ``heal.py``.
    """

    def __init__(
        self,
        cfg: RunConfig,
        host: PluginHost,
        store: RunStore | None = None,
        progress: Progress | None = None,
        data_root: Path | None = None,
        meta: dict[str, Any] | None = None,
        echo: Callable[[str], None] | None = None,
        shared_dir: str | Path | None = None,
    ):
        self.cfg = cfg
        self.host = host
        self.store = store
        self.progress = progress or (lambda stage: None)
        self.data_root = data_root
        self.meta = meta or {}
        self.echo = echo
        self.shared_dir = shared_dir
        self.eval_caches: dict[str, dict[str, Any]] = {}
        self._lasting: dict[str, LastingEntry] | None = None  # per evaluator: its EvalContext.lasting, on disk
        self.prompt_cache = PromptCache()  # the base model's prompts, computed once per run for scoring
        self.base_states = BaseStates()  # the round's base states the filters kept, for a base reference
        self.metrics: list[dict[str, Any]] = []
        self.timings: list[dict[str, Any]] = []
        self.rounds_done = 0
        self._stage = ""
        self.clock = StageClock(self._stage_started)
        # which plugin (distribution, version) provides each component: recorded in meta.json, named in errors
        self.components = component_origins(cfg.model_dump(mode="json"), host.registry)
        self._said: set[str] = set()
        self._model_identity: str | None = None
        self._identity_ok = True

    # ------------------------------------------------------------------ plumbing
    def _stage_started(self, label: str) -> None:
        self._stage = label
        self.progress(label)

    def _tick(self, detail: str) -> None:
        """Where the running stage is (``progress.tick`` from the engine's loops), after the stage's label."""
        self.progress(f"{self._stage}: {detail}" if self._stage else detail)

    def log(self, line: str) -> None:
        if self.store is not None:
            self.store.log(line)
        if self.echo is not None:
            self.echo(line)

    def _record(self, row: dict[str, Any]) -> None:
        timing = {"round": row["round"], **self.clock.take()}
        self.metrics.append(row)
        self.timings.append(timing)
        if self.store is not None:
            self.store.append_metrics(row)
            self.store.append_timings(timing)
            self._observe("shl_round_end", round_index=row["round"], metrics=dict(row))

    def say_once(self, key: str, line: str) -> None:
        """Log ``line`` the first time ``key`` comes up in this run (a per-round condition said once)."""
        if key not in self._said:
            self._said.add(key)
            self.log(line)

    def update_meta(self, **fields: Any) -> None:
        """Add fields known only once the run is under way (loaded dtype, resolved LoRA targets) to meta.json."""
        if self.store is not None:
            self.store.update_meta(**fields)

    def origin(self, path: str) -> str:
        """`` (plugin 'p', distribution d v)``: where the component at a config path comes from ('' if unknown);
        ends the message of a RunError that component caused."""
        return origin_suffix(self.components.get(path))

    def filter_error(self, exc: RunError) -> RunError:
        """A filter's RunError (``filter 'name' ...``) with the plugin and distribution of that filter added."""
        msg = str(exc)
        for j, f in enumerate(self.cfg.filters or []):
            suffix = self.origin(f"filters[{j}]")
            if msg.startswith(f"filter '{f.name}' ") and suffix and not msg.endswith(suffix):
                return RunError(msg + suffix, status=exc.status)
        return exc

    def _samples(self, rows: list[dict[str, Any]]) -> None:
        if self.store is not None and rows:
            self.store.append_samples(rows)

    # ------------------------------------------------------------------ entry point
    def execute(self) -> RunResult:
        """Run to the end. Run-level problems become a result with a status (and, when failed, the traceback
        FAILED.json records); input errors propagate."""
        cfg_dict = self.cfg.model_dump(mode="json")
        try:
            self._model_identity = model_identity(cfg_dict, self.host.registry)
        except ShlError as exc:  # checked when the run was planned; here it only disables stage sharing
            self._identity_ok = False
            self._model_identity = None
            identity_problem = str(exc)
        else:
            identity_problem = ""
        if self.store is not None:
            self.store.start(cfg_dict, {
                **self.meta, "plugins": self.host.plugin_list(), "components": self.components,
                "model_identity": self._model_identity,
            })
            self._observe("shl_run_start", config=cfg_dict)
        if identity_problem:
            self._warn(f"warning: {identity_problem}; the shared-stage cache is off for this run")
        try:
            with oom_as_run_error(), progress.reporting(self._tick):  # CUDA OOM: one line naming the knob
                status, message = self._loop()
        except RunError as exc:
            tb = traceback.format_exc()
            outcome = RunResult(exc.status, str(exc), self.rounds_done, self.metrics, tb)
            if self.store is not None:
                self.store.fail(exc.status, str(exc), tb)
            self.log(f"run ended: {exc.status}: {exc}")
            self._end(outcome)
            return outcome
        outcome = RunResult(status, message, self.rounds_done, self.metrics)
        if self.store is not None:
            self.store.finish(status, message, self.rounds_done)
        self.log(f"run ended: {status}: {message}")
        self._end(outcome)
        return outcome

    def _end(self, outcome: RunResult) -> None:
        if self.store is not None:
            self._observe("shl_run_end", status=outcome.status, message=outcome.message)

    def _observe(self, hook: str, **kwargs: Any) -> None:
        """Call an observer hook; a tracker that raises is logged, never allowed to change the run."""
        try:
            getattr(self.host.hook, hook)(run_dir=str(self.store.dir), **kwargs)
        except Exception as exc:
            self.log(f"warning: observer hook {hook} raised {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ the method
    def prepare(self) -> None:
        """Build the components and load the model and data, as the run's first stage does; for tools that
        evaluate the model without running the loop (``shl sweep``)."""
        self._components()
        self._load()

    def _components(self) -> None:
        from ..config.slots import component_slots

        reg = self.host.registry
        built: dict[str, list[tuple[str, Any]]] = {}
        for _, family, ref in component_slots(self.cfg, reg):
            built.setdefault(family, []).append((ref.name, reg.build(family, ref.name, ref.params)))
        self.source = built["model"][0][1]
        self.method = built["steering"][0][1]
        self.filters = built.get("filter", [])
        self.schedule = built["schedule"][0][1]
        self.aggregator = built["aggregator"][0][1]
        self.evaluators = built.get("evaluator", [])

    def _load(self) -> None:
        setup = set_up_run(self.cfg, self.source, self.data_root, self.clock)
        self.device, self.dtype, self.data = setup.device, setup.dtype, setup.data
        self.model, self.tok, self.stack = setup.model, setup.tok, setup.stack
        self.n_layers, self.layers = setup.n_layers, setup.layers
        from ..environment import environment

        self.update_meta(device=self.device, dtype=self.dtype, environment=environment(self.device))
        self.log(
            f"model {setup.name} on {self.device} ({self.dtype}), {self.n_layers} layers, steering layers "
            f"{self.layers}; data {self.data.source}"
        )

    def evaluate(self, round_: int, steerer: Steerer | None = None, prefix: str = "") -> tuple[dict[str, Any], list]:
        """The evaluators' metrics and the samples to store, for the student (steered when ``steerer``)."""
        cfg = self.cfg
        scorer = EngineScorer(self.stack.model, self.tok, self.stack, steerer, cfg.eval.batch_size,
                              self.prompt_cache)
        lasting = self._lasting_entries()
        metrics, samples = evaluate(
            self.evaluators, self.stack, self.tok, self.data, scorer,
            seed=cfg.seed, round=round_, max_new_tokens=cfg.eval.max_new_tokens,
            batch_size=cfg.eval.batch_size, steerer=steerer, prefix=prefix, caches=self.eval_caches,
            origins={e.name: self.origin(f"eval.evaluators[{j}]") for j, e in enumerate(cfg.eval.evaluators or [])},
            lasting={name: entry.data for name, entry in lasting.items()},
        )
        for name, entry in lasting.items():
            if entry.save():
                self.log(f"evaluator '{name}': kept what it computed from the base model for later runs ({entry.path})")
        return metrics, samples[: max(cfg.eval.samples, 0)]

    def _lasting_entries(self) -> dict[str, LastingEntry]:
        """Each evaluator's lasting entry (``engine/lasting.py``), loaded once per run; not kept on disk when the
        model has no identity."""
        if self._lasting is None:
            from ..config.data_path import data_digest
            from ..config.identity import model_identity

            cfg = self.cfg
            try:
                ident = self._model_identity or model_identity(cfg.model_dump(mode="json"), self.host.registry)
                digest = data_digest(self.data.source)
            except Exception:
                ident = digest = None
            self._lasting = {}
            for j, (name, ev) in enumerate(self.evaluators):
                params = ev.params.model_dump(mode="json") if hasattr(ev.params, "model_dump") else repr(ev.params)
                key = None if ident is None or digest is None else lasting_key(
                    name, params, self.components.get(f"eval.evaluators[{j}]"), type(ev), ident, digest,
                    str(self.device), str(self.dtype),
                    {"max_new_tokens": cfg.eval.max_new_tokens, "batch_size": cfg.eval.batch_size,
                     "neutral_system": self.data.neutral_system})
                self._lasting[name] = LastingEntry(key)
        return self._lasting

    def _loop(self) -> tuple[str, str]:
        cfg = self.cfg
        self.prepare()
        cache = self._stage_cache()
        shared = cache.load() if cache is not None else None
        if shared is not None:
            base, base_samples = shared.base, shared.base_samples
            self.log("round 0 and round 1 up to the heal: reused from the shared stage cache")
            self.clock.note(shared=True)
        else:
            with self.clock("evaluate_base", "evaluate base"):
                base, base_samples = self.evaluate(0)
        self._samples(base_samples)
        self._record({"round": 0, **base})
        self.log("round 0 (base): " + _fmt(base))
        vectors0 = None
        tau = cfg.heal.barrier.tau
        for i in range(cfg.loop.rounds):
            r = i + 1
            if i == 0 and shared is not None:
                steered = shared.round1
                steered.vectors = {k: v.to(self.device) for k, v in steered.vectors.items()}
                for c, rows in zip(steered.kept, shared.base_states):
                    self.base_states.keep(c, rows.to(self.device))
                self.clock.note(shared=True)
            else:
                steered = steer_round(self, i)
                if i == 0 and cache is not None:
                    kept_states = self.base_states.get(steered.kept)
                    cache.save(base, base_samples, steered, kept_states)
            row, vectors, kept, samples = steered.row, steered.vectors, steered.kept, steered.samples
            vectors0 = vectors0 or vectors
            row["cos_r0"] = _cosine(vectors, vectors0)
            if self.store is not None:
                with self.clock("save"):
                    self.store.save_vectors(i, vectors)
            self._samples(samples)
            for s in samples:
                if s["kind"].startswith("steered_") and "evaluator" not in s:
                    self.log(f"round {r}: {s['kind']} sample: {s['text'][:300]!r}")
            self.log(f"round {r}: kept {row['kept']}/{row['total']}; drops by filter: "
                     + str({k[5:]: v for k, v in row.items() if k.startswith("drop_")}))
            if len(kept) < cfg.loop.min_kept:
                self._record(row)
                return "starved", (
                    f"round {r}: only {len(kept)} of {row['total']} completions survived the filters "
                    f"(loop.min_kept={cfg.loop.min_kept})"
                )
            tau = heal_step(self, i, row, kept, tau)
            with self.clock("evaluate", f"round {r}: evaluate"):  # the healed student, unsteered
                metrics, eval_samples = self.evaluate(r)
            row.update(metrics)
            self._samples(eval_samples)
            self._record(row)
            self.rounds_done = r
            self.log(f"round {r}: " + _fmt(row))
            floor = cfg.loop.coherence_floor
            value = row.get(cfg.loop.coherence_metric)
            if floor is not None and value is not None and value < floor:
                return "stopped", f"round {r}: {cfg.loop.coherence_metric}={value:.3g} fell below the floor {floor}"
        return "complete", f"{cfg.loop.rounds} rounds"

    def _stage_cache(self) -> SharedStageCache | None:
        """The shared-stage cache entry of this run; None when there is no cache directory or the model's
        identity is unknown."""
        if self.shared_dir is None or not self._identity_ok:
            return None
        key = shared_stage_key(self.cfg, self.host.registry, self._model_identity, self.device, self.dtype,
                               self.data.source)
        return SharedStageCache(self.shared_dir, key, self.layers, self._warn)

    def _warn(self, line: str) -> None:
        self.log(line)
        if self.echo is None:
            print(line, file=sys.stderr)


def origin_suffix(component: dict[str, Any] | None) -> str:
    """`` (plugin 'p', distribution d v)`` for a ``component_origins`` entry; '' when the plugin is unknown."""
    c = component or {}
    if not c.get("plugin"):
        return ""
    dist = c.get("distribution") or ""
    version = c.get("version") or ""
    return f" (plugin '{c['plugin']}'" + (f", distribution {dist} {version}".rstrip() if dist else "") + ")"


def _fmt(row: dict[str, Any]) -> str:
    keys = [k for k in ("trait", "coherence", "steered_trait", "steered_coherence", "kappa", "kept", "heal_nll",
                        "barrier_active", "kl_agg", "cos_r0") if row.get(k) is not None]
    return ", ".join(f"{k}={row[k]:.4g}" if isinstance(row[k], float) else f"{k}={row[k]}" for k in keys)
