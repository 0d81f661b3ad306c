"""A run config from YAML: read (``base:`` chains), override (``--set``), validate, and resolve its components.

Every problem is reported at once, one line each with its YAML path. The steps live in their own modules
(``reading``, ``overrides``, ``validation_errors``, ``resolving``, ``checks``, ``slots``, ``identity``); their
public names are re-exported here, where callers have always imported them from.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable

from pydantic import ValidationError

from ..registry import Registry
from .checks import check_layers, metric_produced, model_layers, produced_metrics, run_checks
from .identity import config_hash
from .models import RunConfig
from .overrides import apply_overrides, deep_merge, parse_override
from .reading import MAX_CONFIG_BYTES, MAX_YAML_DEPTH, MAX_YAML_VALUES, read_yaml, run_config_yaml, with_base
from .resolving import resolve_component, resolve_components, resolve_run_config
from .slots import model_source, model_source_name
from .validation_errors import (
    MAX_ERROR_LINES,
    CollectedErrors,
    error_lines,
    error_locs,
    format_loc,
    join_errors,
    validate_model,
    validation_message,
)

__all__ = [
    "MAX_CONFIG_BYTES", "MAX_ERROR_LINES", "MAX_YAML_DEPTH", "MAX_YAML_VALUES", "apply_overrides", "check_layers",
    "config_hash", "deep_merge", "format_loc", "join_errors", "load_run_config", "metric_produced", "model_layers",
    "model_source", "model_source_name", "parse_override", "produced_metrics", "read_yaml", "resolve_component",
    "resolve_run_config", "run_config_yaml", "validate_model", "validate_run_config", "validation_message",
    "with_base",
]


def _drop_paths(data: dict[str, Any], paths: list[tuple[str, ...]]) -> dict[str, Any] | None:
    """``data`` without the entries at ``paths``, each dropped at the deepest mapping key along it (so a bad list
    item drops its whole list); None when a path has no mapping key to drop (the top level itself is bad)."""
    out = copy.deepcopy(data)
    for parts in paths:
        node: Any = out
        parent, key = None, None
        for part in parts:
            if isinstance(node, dict) and part in node:
                parent, key = node, part
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                break
        if parent is None:
            return None
        parent.pop(key, None)
    return out


def validate_run_config(
    raw: dict[str, Any], registry: Registry | None = None, source: str = "", overrides: Iterable[str] = ()
) -> RunConfig:
    """A raw run config mapping (overrides already applied) validated and, with a registry, resolved.

    Every problem is reported at once, one line each (at most MAX_ERROR_LINES, then a count): first the core
    fields' errors, then the components' (unknown names, bad params) of the config without the bad core entries
    (a component whose own entry is malformed is reported once, as that entry). A line whose path was written by
    one of ``overrides`` (``--set`` strings) names that override instead of ``source``."""
    errors = CollectedErrors(source, overrides)
    cfg: RunConfig | None
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as exc:
        errors.extend(*error_lines(exc))
        salvaged = _drop_paths(raw, error_locs(exc))
        try:
            cfg = RunConfig.model_validate(salvaged) if salvaged is not None else None
        except ValidationError:
            cfg = None
    if registry is not None and cfg is not None:
        cfg = resolve_components(cfg, registry, errors)
    errors.raise_if_any()
    assert cfg is not None
    if registry is not None:
        run_checks(cfg, registry, source, errors.blame)
    return cfg


def load_run_config(
    path: str | Path | None, overrides: Iterable[str] = (), registry: Registry | None = None
) -> RunConfig:
    """Read (resolving ``base:``), override, validate and (with a registry) resolve a run config. Every problem
    is reported at once (see ``validate_run_config``); one that a ``--set`` override caused names that override."""
    raw = run_config_yaml(path) if path is not None else {}
    overrides = list(overrides)
    raw = apply_overrides(raw, overrides)
    source = str(path) if path is not None else "config"
    return validate_run_config(raw, registry, source, overrides)
