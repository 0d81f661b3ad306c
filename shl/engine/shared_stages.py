"""The shared-stage cache: round 0 (the base evaluation) and round 1 up to the heal, stored once for every run that
reads the same inputs for them.

Those stages read only the config minus ``heal``/``loop``/``name``, so the arms of a heal ablation with the same
seed compute them once (``shared_stage_key``). Every random stream is derived from (seed, stream), so a cached
stage equals a recomputed one. An entry is one ``torch.save`` file named by the key, written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..api import Completion
from ..config.data_path import data_digest
from ..config.identity import component_origins, config_hash
from ..config.models import RunConfig
from .steering_round import SteeredRound


def shared_stage_key(cfg: RunConfig, registry: Any, model_identity: str | None, device: str, dtype: str,
                     data_source: str) -> str:
    """Hash of exactly what round 0 and round 1 up to the heal read: the config minus heal, loop, name; the
    data file's content; the model's identity; the plugin (distribution, version) of each pre-heal component
    (model source, steering method, filters, evaluators); the device and dtype the model runs in; and the
    versions of the libraries that decide the stages' exact values (an entry written under other versions is a
    miss, never silently reused)."""
    from ..environment import RESULT_LIBRARIES, library_versions

    d = cfg.model_dump(mode="json")
    components = component_origins(d, registry, paths=("model", "steer.", "filters[", "eval."))
    for k in ("heal", "loop", "name"):
        d.pop(k, None)
    identity = {"model_identity": model_identity, "components": components, "device": device, "dtype": dtype,
                "libraries": library_versions(RESULT_LIBRARIES)}
    return config_hash({"stage": "pre-heal-0", "version": 3, "run_identity": identity,
                        "data_sha256": data_digest(data_source), **d})


@dataclass
class SharedStages:
    """A cache entry: the base evaluation's metrics and samples, round 1 up to the heal, and the base model's states
    at the kept completions (empty when the filters kept none)."""

    base: dict[str, Any]
    base_samples: list[dict[str, Any]]
    round1: SteeredRound
    base_states: list[Any] = field(default_factory=list)


class SharedStageCache:
    """The entry for one key in ``directory``. ``layers``: the run's steering layers (an entry must hold a vector
    for each); ``warn``: where a malformed entry is reported."""

    def __init__(self, directory: str | Path, key: str, layers: list[int], warn: Callable[[str], None]):
        self.key = key
        self.path = Path(directory) / f"{key[:24]}.pt"
        self.layers = layers
        self.warn = warn

    def load(self) -> SharedStages | None:
        """The cached stages, or None. An unreadable or malformed entry is a miss (with a warning) and is
        recomputed and replaced; it never fails the run."""
        from ..store import is_plain_file

        if not is_plain_file(self.path):
            return None
        import torch

        try:
            with torch.serialization.safe_globals([Completion]):
                entry = torch.load(self.path, weights_only=True)
            problem = self._problem(entry)
        except Exception as exc:
            problem = f"unreadable ({type(exc).__name__})"
        if problem:
            self.warn(f"warning: shared-stage cache entry {self.path}: {problem}; recomputing it")
            return None
        round1 = SteeredRound(entry["row"], entry["vectors"], entry["kept"], entry["samples"])
        return SharedStages(entry["base"], entry["base_samples"], round1, entry.get("base_states") or [])

    def _problem(self, entry: Any) -> str:
        import torch

        if not isinstance(entry, dict):
            return f"not a mapping ({type(entry).__name__})"
        if entry.get("key") != self.key:
            return "written for other inputs"
        kinds = {"base": dict, "base_samples": list, "row": dict, "kept": list, "samples": list, "vectors": dict}
        for k, kind in kinds.items():
            if not isinstance(entry.get(k), kind):
                return f"'{k}' is missing or not a {kind.__name__}"
        if entry["row"].get("round") != 1 or not all(isinstance(c, Completion) for c in entry["kept"]):
            return "malformed round-1 record"
        states = entry.get("base_states") or []
        if states and (len(states) != len(entry["kept"]) or not all(
                isinstance(r, torch.Tensor) and r.ndim == 2 and r.shape[0] == len(c.completion_ids)
                for r, c in zip(states, entry["kept"]))):
            return "malformed base states"
        vec = entry["vectors"]
        if sorted(vec) != sorted(self.layers) or not all(
            isinstance(v, torch.Tensor) and v.ndim == 1 and bool(v.isfinite().all()) for v in vec.values()
        ):
            return "malformed steering vectors"
        return ""

    def save(self, base: dict[str, Any], base_samples: list[dict[str, Any]], round1: SteeredRound,
             base_states: list[Any] | None = None) -> None:
        """Store the stages; ``base_states``: per kept completion, the base model's states the filters kept (or
        nothing), so a run reusing the entry heals against the very same reference rows."""
        import torch

        from ..store import temp_path

        entry = {"key": self.key, "base": base, "base_samples": base_samples, "row": dict(round1.row),
                 "kept": round1.kept, "samples": round1.samples,
                 "vectors": {k: v.detach().cpu() for k, v in round1.vectors.items()},
                 "base_states": [r.detach().cpu() for r in base_states or []]}
        with temp_path(self.path) as tmp:
            torch.save(entry, tmp)
