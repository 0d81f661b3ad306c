"""Resolving a run config's components against the registry: each name must be registered, and its params
validate with the plugin's own Params (defaults filled); the model source fills the config's unset defaults."""

from __future__ import annotations

from typing import Iterable

from pydantic import ValidationError

from ..errors import PluginError
from ..registry import Registry
from .checks import run_checks
from .models import ComponentRef, RunConfig
from .reading import one_line
from .slots import component_slots, model_source, set_component
from .validation_errors import CollectedErrors, error_lines, path_parts


def _resolve(
    registry: Registry, family: str, ref: ComponentRef, path: str, errors: CollectedErrors
) -> ComponentRef | None:
    """``ref`` with its params validated by the plugin's Params (defaults filled), or None with the problem added
    to ``errors``."""
    try:
        entry = registry.entry(family, ref.name)
    except PluginError as exc:
        errors.add(path_parts(f"{path}.name"), one_line(f"{path}.name: {exc}"))
        return None
    try:
        params = entry.cls.Params.model_validate(ref.params)
    except ValidationError as exc:
        errors.extend(*error_lines(exc, f"{path}.params", plugin=f"{ref.name}' from '{entry.origin.plugin}"))
        return None
    return ComponentRef(name=ref.name, params=params.model_dump(mode="json"))


def resolve_component(
    registry: Registry, family: str, ref: ComponentRef, path: str, source: str = ""
) -> ComponentRef:
    """Check the name exists and validate params with the plugin's own Params; return it with defaults filled."""
    errors = CollectedErrors(source)
    out = _resolve(registry, family, ref, path, errors)
    errors.raise_if_any()
    assert out is not None
    return out


def _resolve_model(cfg: RunConfig, registry: Registry, errors: CollectedErrors) -> None:
    """Validate the model source's params (an HF id's ``name_or_path`` is its name, so it is not stored) and
    fill the config's unset data, filters and evaluators from the source's defaults."""
    source = model_source(registry, cfg.model)
    by_id = source.name != cfg.model.name
    resolved = _resolve(registry, "model", source, "model", errors)
    if resolved is not None:
        cfg.model.params = {k: v for k, v in resolved.params.items() if not (by_id and k == "name_or_path")}
    entry = registry.entries("model").get(source.name)
    if entry is not None:
        if cfg.data is None:
            cfg.data = entry.cls.default_data
        if cfg.filters is None:
            cfg.filters = [ComponentRef.model_validate(f) for f in entry.cls.default_filters]
        if cfg.eval.evaluators is None:
            cfg.eval.evaluators = [ComponentRef.model_validate(e) for e in entry.cls.default_evaluators]


def resolve_components(cfg: RunConfig, registry: Registry, errors: CollectedErrors) -> RunConfig:
    """A copy of ``cfg`` with plugin defaults filled (model source defaults, plugin params) and every plugin's
    params validated, adding every problem to ``errors`` (a component that fails keeps its unresolved form)."""
    cfg = cfg.model_copy(deep=True)
    _resolve_model(cfg, registry, errors)
    for path, family, ref in list(component_slots(cfg)):
        if family != "model":
            set_component(cfg, path, _resolve(registry, family, ref, path, errors) or ref)
    return cfg


def resolve_run_config(
    cfg: RunConfig, registry: Registry, source: str = "", overrides: Iterable[str] = ()
) -> RunConfig:
    """Fill plugin defaults (model source defaults, plugin params) and validate every plugin's params. Every
    component problem is reported at once, one line each; a line whose path one of ``overrides`` (``--set``
    strings) wrote names that override instead of ``source``."""
    errors = CollectedErrors(source, overrides)
    cfg = resolve_components(cfg, registry, errors)
    errors.raise_if_any()
    run_checks(cfg, registry, source, errors.blame)
    return cfg
