"""One run: one resolved config and one seed, a loop of steer -> dose -> generate -> filter -> heal -> eval.

Metrics rows: ``round`` 0 is the base model before any heal; ``round`` k is the student after k heal rounds.
The row for round k also carries the round's steering, dose, filter and heal statistics and the
steered-but-unhealed point (``steered_*``: the student before this round's heal, steered at the dose used).
"""

from __future__ import annotations

import math
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..api import Completion, FilterContext
from ..config.loading import model_source_name
from ..config.models import RunConfig
from ..data import component_origins, data_digest, load_data, model_identity, resolved_device
from ..errors import RunError, ShlError
from ..manager import PluginHost
from ..store import RunStore
from .adapters import AdapterStack
from .chat import render_prompt
from .dose import control_dose
from .evaluate import evaluate
from .extract import extract_pairs
from .filtering import run_filters
from .generate import clean_generation_config, generate
from .heal import HealSettings, calibrate_tau, heal_round
from .oom import oom_as_run_error
from .layers import decoder_layers, resolve_layers
from .scoring import EngineScorer
from .seeds import cycle_indices, derive_seed, distinct_count, sample_indices
from .stages import StageClock
from .steering import Steerer

Progress = Callable[[str], None]


@dataclass
class RunOutcome:
    status: str  # complete | stopped | starved | failed | nan
    message: str
    rounds: int
    metrics: list[dict[str, Any]] = field(default_factory=list)


def pick_device(spec: str) -> str:
    import torch

    if spec == "auto":
        return resolved_device(spec)
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ShlError(f"device: '{spec}' requested but CUDA is not available")
    return spec


def _cosine(a: dict[int, Any], b: dict[int, Any]) -> float:
    import torch

    va = torch.cat([a[k].flatten().float() for k in sorted(a)])
    vb = torch.cat([b[k].flatten().float() for k in sorted(b)])
    return float(torch.nn.functional.cosine_similarity(va, vb, dim=0))


class Run:
    """Executes one run, writing to ``store`` (or nowhere, when ``store`` is None).

    ``shared_dir``: a stage cache. The base evaluation and round 1 up to the heal read only the config minus
    ``heal``/``loop``, so runs that agree on the rest (arms of a heal ablation, same seed) compute them once.
    Every random stream is derived from (seed, stage), so a cached stage equals a recomputed one.
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
        self.metrics: list[dict[str, Any]] = []
        self.timings: list[dict[str, Any]] = []
        self.rounds_done = 0
        self.clock = StageClock(self.progress)
        # which plugin (distribution, version) provides each component: recorded in meta.json, named in errors
        self.components = component_origins(cfg.model_dump(mode="json"), host.registry)
        self._said: set[str] = set()
        self._shared_key_value: str | None = None
        self._model_identity: str | None = None
        self._identity_ok = True

    # ------------------------------------------------------------------ plumbing
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

    def _say_once(self, key: str, line: str) -> None:
        """Log ``line`` the first time ``key`` comes up in this run (a per-round condition said once)."""
        if key not in self._said:
            self._said.add(key)
            self.log(line)

    def _update_meta(self, **fields: Any) -> None:
        """Add fields known only once the run is under way (loaded dtype, resolved LoRA targets) to meta.json."""
        if self.store is not None:
            self.store.update_meta(**fields)

    def _from(self, path: str) -> str:
        """`` (plugin 'p', distribution d v)``: where the component at a config path comes from ('' if unknown);
        ends the message of a RunError that component caused."""
        return origin_suffix(self.components.get(path))

    def _filter_error(self, exc: RunError) -> RunError:
        """A filter's RunError (``filter 'name' ...``) with the plugin and distribution of that filter added."""
        msg = str(exc)
        for j, f in enumerate(self.cfg.filters or []):
            suffix = self._from(f"filters[{j}]")
            if msg.startswith(f"filter '{f.name}' ") and suffix and not msg.endswith(suffix):
                return RunError(msg + suffix, status=exc.status)
        return exc

    def _samples(self, rows: list[dict[str, Any]]) -> None:
        if self.store is not None and rows:
            self.store.append_samples(rows)

    # ------------------------------------------------------------------ entry point
    def execute(self) -> RunOutcome:
        """Run to the end. Run-level problems become an outcome with a status; input errors propagate."""
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
            with oom_as_run_error():  # CUDA OOM: one line naming the knob to lower
                status, message = self._loop()
        except RunError as exc:
            outcome = RunOutcome(exc.status, str(exc), self.rounds_done, self.metrics)
            if self.store is not None:
                self.store.fail(exc.status, str(exc), traceback.format_exc())
            self.log(f"run ended: {exc.status}: {exc}")
            self._end(outcome)
            return outcome
        outcome = RunOutcome(status, message, self.rounds_done, self.metrics)
        if self.store is not None:
            self.store.finish(status, message, self.rounds_done)
        self.log(f"run ended: {status}: {message}")
        self._end(outcome)
        return outcome

    def _end(self, outcome: RunOutcome) -> None:
        if self.store is not None:
            self._observe("shl_run_end", status=outcome.status, message=outcome.message)

    def _observe(self, hook: str, **kwargs: Any) -> None:
        """Call an observer hook; a tracker that raises is logged, never allowed to change the run."""
        try:
            getattr(self.host.hook, hook)(run_dir=str(self.store.dir), **kwargs)
        except Exception as exc:
            self.log(f"warning: observer hook {hook} raised {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ the method
    def _components(self) -> None:
        cfg, reg = self.cfg, self.host.registry
        self.method = reg.build("steering", cfg.steer.method.name, cfg.steer.method.params)
        self.filters = [(f.name, reg.build("filter", f.name, f.params)) for f in cfg.filters or []]
        self.aggregator = reg.build("aggregator", cfg.heal.barrier.aggregator.name, cfg.heal.barrier.aggregator.params)
        self.schedule = reg.build("schedule", cfg.heal.schedule.name, cfg.heal.schedule.params)
        self.evaluators = [(e.name, reg.build("evaluator", e.name, e.params)) for e in cfg.eval.evaluators or []]
        src = model_source_name(reg, cfg.model.name)
        params = dict(cfg.model.params)
        if src == "hf" and cfg.model.name != "hf":
            params["name_or_path"] = cfg.model.name
        self.source = reg.build("model", src, params)

    def _load(self) -> None:
        import torch

        cfg = self.cfg
        torch.manual_seed(derive_seed(cfg.seed, "init"))
        self.device = pick_device(cfg.device)
        if self.device == "cpu":
            torch.set_flush_denormal(True)  # denormal activations slow CPU matmuls by up to 100x
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.data = load_data(cfg.data, self.data_root)  # before the model: a bad data file fails fast
        with self.clock("load", "load model"):
            loaded = self.source.load(self.device, cfg.dtype)
        self.model, self.tok = loaded.model, loaded.tokenizer
        self.model.eval()
        if self.tok.pad_token_id is None:
            self.tok.pad_token = self.tok.eos_token
        self.tok.padding_side = "left"
        if not getattr(self.tok, "chat_template", None):
            raise ShlError(f"model '{cfg.model.name}': the tokenizer has no chat template")
        clean_generation_config(self.model, self.tok)
        self.n_layers = len(decoder_layers(self.model))
        self.layers = resolve_layers(cfg.steer.layers, self.n_layers, f"model '{cfg.model.name}'")
        self.stack = AdapterStack(self.model, cfg.heal.lora)
        self.dtype = str(next(self.model.parameters()).dtype).replace("torch.", "")
        self._update_meta(device=self.device, dtype=self.dtype)
        self.log(
            f"model {loaded.name} on {self.device} ({self.dtype}), {self.n_layers} layers, steering layers "
            f"{self.layers}; data {self.data.source}"
        )

    def _prompts(self, pool: list[str], k: int, what: str, *keys: object) -> list[tuple[str, list[int]]]:
        """k generation prompts from ``pool``: distinct when k <= len(pool); else the pool is cycled through
        deterministically (a prompt drawn twice still gets its own sample), and the log says so once."""
        n = len(pool)
        if k > n:
            self._say_once(what, (
                f"note: {what}={k} exceeds the {n} prompts of {self.data.source}: cycling through them "
                f"deterministically ({n} distinct prompts, each used {k // n}-{-(-k // n)} times)"
            ))
        idx = cycle_indices(n, k, self.cfg.seed, *keys)
        return [(pool[i], render_prompt(self.tok, pool[i], self.data.neutral_system)) for i in idx]

    def _eval(self, round_: int, steerer: Steerer | None = None, prefix: str = "") -> tuple[dict[str, Any], list]:
        cfg = self.cfg
        scorer = EngineScorer(self.stack.model, self.tok, self.stack, steerer, cfg.eval.batch_size)
        metrics, samples = evaluate(
            self.evaluators, self.stack, self.tok, self.data, scorer,
            seed=cfg.seed, round=round_, max_new_tokens=cfg.eval.max_new_tokens,
            batch_size=cfg.eval.batch_size, steerer=steerer, prefix=prefix, caches=self.eval_caches,
            origins={e.name: self._from(f"eval.evaluators[{j}]") for j, e in enumerate(cfg.eval.evaluators or [])},
        )
        return metrics, samples[: max(cfg.eval.samples, 0)]

    def _loop(self) -> tuple[str, str]:
        cfg = self.cfg
        self._components()
        self._load()
        shared = self._shared_load()
        if shared is not None:
            base, base_samples = shared["base"], shared["base_samples"]
            self.log("round 0 and round 1 up to the heal: reused from the shared stage cache")
            self.clock.note(shared=True)
        else:
            with self.clock("evaluate_base", "evaluate base"):
                base, base_samples = self._eval(0)
        self._samples(base_samples)
        self._record({"round": 0, **base})
        self.log("round 0 (base): " + _fmt(base))
        vectors0 = None
        tau = cfg.heal.barrier.tau
        for i in range(cfg.loop.rounds):
            r = i + 1
            if i == 0 and shared is not None:
                row, vectors, kept, samples = shared["row"], shared["vectors"], shared["kept"], shared["samples"]
                vectors = {k: v.to(self.device) for k, v in vectors.items()}
                self.clock.note(shared=True)
            else:
                row, vectors, kept, samples = self._steer(i)
                if i == 0:
                    self._shared_save(base, base_samples, row, vectors, kept, samples)
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
            # heal (unsteered)
            try:
                lam = float(self.schedule.lam(i, cfg.heal.lam))
            except Exception as exc:
                raise RunError(
                    f"schedule '{cfg.heal.schedule.name}' raised {type(exc).__name__}: {exc}"
                    f"{self._from('heal.schedule')}"
                ) from exc
            if not math.isfinite(lam) or lam < 0:
                raise RunError(
                    f"schedule '{cfg.heal.schedule.name}' returned lam={lam} for round index {i}"
                    f"{self._from('heal.schedule')}"
                )
            import torch

            torch.manual_seed(derive_seed(cfg.seed, "lora-init", i))
            params = self.stack.new_round()
            settings = HealSettings(
                regulariser=cfg.heal.regulariser, reference=cfg.heal.barrier.reference, level=cfg.heal.barrier.level,
                lam=lam, tau=tau, spectral=cfg.heal.spectral, weight_decay=cfg.heal.weight_decay,
                epochs=cfg.heal.epochs, lr=cfg.heal.lr, batch_size=cfg.heal.batch_size,
                max_grad_norm=cfg.heal.max_grad_norm, ref_cache_mb=cfg.heal.ref_cache_mb,
                group_by_length=cfg.heal.group_by_length,
                chunk_positions=cfg.heal.chunk_positions, gradient_checkpointing=cfg.heal.gradient_checkpointing,
            )
            if i == 0:
                names = self.stack.target_names
                self._update_meta(lora_targets=names, lora_modules=len(self.stack.resolved_targets))
                self.log(f"LoRA adapters on {len(self.stack.resolved_targets)} modules: {', '.join(names)}")
            try:
                if cfg.heal.barrier.tau_mode == "matched" and i == 0 and cfg.heal.regulariser != "nll":
                    with self.clock("calibrate_tau", f"round {r}: calibrate tau"):
                        cal = calibrate_tau(
                            self.stack, self.tok, kept, settings, self.aggregator, params, cfg.seed, i,
                            cfg.heal.barrier.tau_quantile,
                        )
                    tau = settings.tau = cal.tau
                    row["tau_active_share"] = cal.share
                    self.log(
                        f"round {r}: matched tau = {tau:.4g}: the barrier is active on {cal.share:.3f} of the "
                        f"{len(cal.values)} {cfg.heal.barrier.level}-level D values of the first heal epoch "
                        f"(target 1 - q{cfg.heal.barrier.tau_quantile:g}; trials at tau, share: "
                        + ", ".join(f"{t:.4g}, {sh:.3f}" for t, sh in cal.trials) + ")"
                    )
                with self.clock("heal", f"round {r}: heal"):
                    stats = heal_round(self.stack, self.tok, kept, settings, self.aggregator, params, cfg.seed, i)
            except RunError:
                raise
            except Exception as exc:
                raise RunError(
                    f"heal (round {r}, aggregator '{cfg.heal.barrier.aggregator.name}') raised "
                    f"{type(exc).__name__}: {exc}{self._from('heal.barrier.aggregator')}"
                ) from exc
            self.stack.fold()
            row.update(stats, lam=lam if cfg.heal.regulariser != "nll" else 0.0, tau=tau)
            if self.store is not None:
                with self.clock("save"):
                    self.stack.save(str(self.store.adapters_dir()))

            # evaluate the healed student, unsteered
            with self.clock("evaluate", f"round {r}: evaluate"):
                metrics, eval_samples = self._eval(r)
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

    def _steer(self, i: int) -> tuple[dict[str, Any], dict[int, Any], list[Completion], list[dict[str, Any]]]:
        """Round i up to the heal: extract, dose, generate, filter, and the steered-unhealed evaluation."""
        cfg = self.cfg
        r = i + 1
        row: dict[str, Any] = {"round": r}
        self.clock.start("extract", f"round {r}: extract")
        n_pool = len(self.data.contexts)
        ctx_idx = sample_indices(n_pool, cfg.steer.n_contexts, cfg.seed, "extract", i)
        contexts = [self.data.contexts[j] for j in ctx_idx]
        row["n_contexts_used"] = len(contexts)
        if cfg.steer.n_contexts > n_pool:
            self._say_once("steer.n_contexts", (
                f"note: steer.n_contexts={cfg.steer.n_contexts} but {self.data.source} has {n_pool} contexts: "
                f"each is used once, so extraction uses {n_pool} per round (n_contexts_used)"
            ))
        pairs = extract_pairs(
            self.stack.model, self.tok, self.data, contexts, self.layers, cfg.steer.positions, cfg.steer.batch_size
        )
        try:
            vectors = {layer: self.method.fit(p, n).detach() for layer, (p, n) in pairs.items()}
        except Exception as exc:
            raise RunError(
                f"steering method '{cfg.steer.method.name}' raised {type(exc).__name__}: {exc}"
                f"{self._from('steer.method')}"
            ) from exc
        for layer, v in vectors.items():
            d = pairs[layer][0].shape[1]
            if tuple(v.shape) != (d,) or not bool(v.isfinite().all()):
                raise RunError(
                    f"steering method '{cfg.steer.method.name}' returned a vector of shape {tuple(v.shape)} "
                    f"(finite: {bool(v.isfinite().all())}) for layer {layer}; expected ({d},){self._from('steer.method')}"
                )
        vectors = {k: v.to(self.device) for k, v in vectors.items()}
        row["vector_norm"] = float(sum(float(v.norm()) ** 2 for v in vectors.values()) ** 0.5)

        steerer = Steerer(self.method, vectors, 0.0)
        scorer = EngineScorer(self.stack.model, self.tok, self.stack, steerer, cfg.generate.batch_size)
        fctx = FilterContext(scorer=scorer, tokenizer=self.tok, data=self.data)
        with steerer.installed(self.stack.model):

            def sample(prompts, coeff, *keys, stage="generate"):
                steerer.coeff = coeff
                self.clock.start(stage)
                comps = generate(
                    self.stack.model, self.tok, prompts, max_new_tokens=cfg.generate.max_new_tokens,
                    temperature=cfg.generate.temperature, top_p=cfg.generate.top_p,
                    batch_size=cfg.generate.batch_size, seed=derive_seed(cfg.seed, *keys), steerer=steerer,
                )
                self.clock.start("filter")
                with steerer.paused():
                    try:
                        res = run_filters(self.filters, comps, fctx)
                    except RunError as exc:
                        named = self._filter_error(exc)
                        if named is exc:
                            raise
                        raise named from exc
                self.clock.stop()
                return comps, res

            self.clock.start("dose", f"round {r}: dose")
            probe_prompts = self._prompts(self.data.prompts, cfg.dose.probe_prompts, "dose.probe_prompts", "probe", i)
            row["probe_prompts_distinct"] = distinct_count(len(self.data.prompts), cfg.dose.probe_prompts)
            probe_runs: dict[float, Any] = {}

            def probe(kappa: float):
                comps, res = sample(probe_prompts, kappa * cfg.dose.scale, "probe-sample", i, stage="dose")
                probe_runs[kappa] = (comps, res)
                return res.kept / max(len(comps), 1), [c for c, k in zip(comps, res.keep) if k], len(comps)

            dose = control_dose(
                probe, cfg.dose.kappa_min, cfg.dose.kappa_max, cfg.dose.target, cfg.dose.steps, cfg.dose.controller
            )
            kappa = dose.kappa
            row.update(kappa=kappa, coeff=kappa * cfg.dose.scale, probe_survival=dose.survival,
                       dose_reached=float(dose.reached), dose_probes=float(len(dose.trace)))
            self.log(
                f"round {r}: dose trace " + ", ".join(f"kappa={k:.3g}: {s:.2f}" for k, s in dose.trace)
                + f" -> kappa={kappa:.3g}" + ("" if dose.reached else " (target not reached)")
            )
            batches = [probe_runs[kappa]]
            for a, alpha in enumerate(cfg.generate.alphas):
                self.progress(f"round {r}: generate (alpha {alpha:g})")
                prompts = self._prompts(self.data.prompts, cfg.generate.n_prompts, "generate.n_prompts", "generate", i, a)
                row["generate_prompts_distinct"] = distinct_count(len(self.data.prompts), cfg.generate.n_prompts)
                batches.append(sample(prompts, kappa * alpha * cfg.dose.scale, "generate-sample", i, a))
            kept: list[Completion] = []
            examples: dict[str, dict[str, Any]] = {}
            drops: dict[str, int] = {}
            total = 0
            for comps, res in batches:
                total += len(comps)
                for name, n in res.drops().items():
                    drops[name] = drops.get(name, 0) + n
                for j, c in enumerate(comps):
                    kind = "steered_kept" if res.keep[j] else "steered_dropped"
                    if res.keep[j]:
                        kept.append(c)
                    examples.setdefault(kind, {"user": c.user, "text": c.text, "finished": c.finished,
                                               "filters": res.per_completion(j)})
            samples = [{"kind": k, "round": r, **examples[k]} for k in ("steered_kept", "steered_dropped") if k in examples]
            row.update(kept=len(kept), total=total, keep_share=len(kept) / max(total, 1))
            row.update({f"drop_{k}": v for k, v in drops.items()})

            steerer.coeff = kappa * cfg.dose.scale
            if cfg.eval.steered and self.evaluators:
                with self.clock("evaluate_steered", f"round {r}: evaluate steered"):
                    metrics, eval_samples = self._eval(r, steerer, prefix="steered_")
                row.update(metrics)
                samples += eval_samples
        return row, vectors, kept, samples

    # ------------------------------------------------------------------ shared stages
    def _shared_key(self) -> str:
        """Hash of exactly what round 0 and round 1 up to the heal read: the config minus heal, loop, name; the
        data file's content; the model's identity; the plugin (distribution, version) of each pre-heal component
        (model source, steering method, filters, evaluators); and the device and dtype the model runs in."""
        if self._shared_key_value is None:
            from ..config.loading import config_hash

            d = self.cfg.model_dump(mode="json")
            components = component_origins(d, self.host.registry, paths=("model", "steer.", "filters[", "eval."))
            for k in ("heal", "loop", "name"):
                d.pop(k, None)
            identity = {"model_identity": self._model_identity, "components": components,
                        "device": self.device, "dtype": self.dtype}
            self._shared_key_value = config_hash({"stage": "pre-heal-0", "version": 2, "run_identity": identity,
                                                  "data_sha256": data_digest(self.data.source), **d})
        return self._shared_key_value

    def _shared_path(self) -> Path | None:
        if self.shared_dir is None or not self._identity_ok:
            return None
        return Path(self.shared_dir) / f"{self._shared_key()[:24]}.pt"

    def _shared_load(self) -> dict[str, Any] | None:
        """The cached entry, or None. An unreadable or malformed entry is a miss (with a warning) and is
        recomputed and replaced; it never fails the run."""
        path = self._shared_path()
        if path is None or not path.is_file():
            return None
        import torch

        try:
            with torch.serialization.safe_globals([Completion]):
                entry = torch.load(path, weights_only=True)
            problem = self._shared_problem(entry)
        except Exception as exc:
            problem = f"unreadable ({type(exc).__name__})"
        if problem:
            self._warn(f"warning: shared-stage cache entry {path}: {problem}; recomputing it")
            return None
        return entry

    def _shared_problem(self, entry: Any) -> str:
        import torch

        if not isinstance(entry, dict):
            return f"not a mapping ({type(entry).__name__})"
        if entry.get("key") != self._shared_key():
            return "written for other inputs"
        kinds = {"base": dict, "base_samples": list, "row": dict, "kept": list, "samples": list, "vectors": dict}
        for k, kind in kinds.items():
            if not isinstance(entry.get(k), kind):
                return f"'{k}' is missing or not a {kind.__name__}"
        if entry["row"].get("round") != 1 or not all(isinstance(c, Completion) for c in entry["kept"]):
            return "malformed round-1 record"
        vec = entry["vectors"]
        if sorted(vec) != sorted(self.layers) or not all(
            isinstance(v, torch.Tensor) and v.ndim == 1 and bool(v.isfinite().all()) for v in vec.values()
        ):
            return "malformed steering vectors"
        return ""

    def _warn(self, line: str) -> None:
        self.log(line)
        if self.echo is None:
            print(line, file=sys.stderr)

    def _shared_save(self, base, base_samples, row, vectors, kept, samples) -> None:
        path = self._shared_path()
        if path is None:
            return
        import torch

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        entry = {"key": self._shared_key(), "base": base, "base_samples": base_samples, "row": dict(row),
                 "kept": kept, "samples": samples, "vectors": {k: v.detach().cpu() for k, v in vectors.items()}}
        torch.save(entry, tmp)
        os.replace(tmp, path)


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
