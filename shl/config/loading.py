"""YAML in, validated config out: overrides, one-line errors with YAML paths, plugin params validation."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, PluginError
from ..registry import Registry
from .models import ComponentRef, RunConfig

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or a syntax error is a one-line ConfigError (with the line)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ConfigError(f"{path}: YAML syntax error at {where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML error: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected dotted.path=value")
    key, raw = text.split("=", 1)
    parts = [k for k in key.strip().split(".")]
    if not key.strip() or any(not k for k in parts):
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Merge ``--set`` overrides into a raw config mapping (before validation). Lists are indexed by number."""
    out = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node: Any = out
        for i, part in enumerate(parts[:-1]):
            nxt = _child(node, part, text)
            if nxt is None or (isinstance(nxt, str) and parts[i + 1] in ("name", "params")):
                nxt = {} if nxt is None else {"name": nxt}  # a component given by name alone
                _set(node, part, nxt, text)
            node = nxt
        _set(node, parts[-1], value, text)
    return out


def _child(node: Any, key: str, text: str) -> Any:
    if isinstance(node, dict):
        return node.get(key)
    if isinstance(node, list) and key.lstrip("-").isdigit():
        try:
            return node[int(key)]
        except IndexError:
            raise ConfigError(f"--set {text!r}: index {key} out of range") from None
    raise ConfigError(f"--set {text!r}: cannot descend into {type(node).__name__} at '{key}'")


def _set(node: Any, key: str, value: Any, text: str) -> None:
    if isinstance(node, dict):
        node[key] = value
    elif isinstance(node, list) and key.lstrip("-").isdigit():
        try:
            node[int(key)] = value
        except IndexError:
            raise ConfigError(f"--set {text!r}: index {key} out of range") from None
    else:
        raise ConfigError(f"--set {text!r}: cannot set '{key}' on {type(node).__name__}")


def format_loc(loc: Iterable[Any], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def validation_message(exc: ValidationError, prefix: str = "", plugin: str = "") -> str:
    """One line per error: ``path: message`` (and the plugin, when params of a plugin failed)."""
    lines = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if p not in ("function-after", "function-before")]
        where = format_loc(loc, prefix)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key missing"
        by = f" (plugin '{plugin}')" if plugin else ""
        value = err.get("input")
        shown = f" (got {value!r})" if err["type"] not in ("extra_forbidden", "missing") and _short(value) else ""
        lines.append(f"{where}: {msg}{shown}{by}")
    return "\n".join(lines)


def _short(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) and len(repr(value)) <= 60


def validate_model(model: type[M], data: dict[str, Any], source: str = "", prefix: str = "") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        msg = validation_message(exc, prefix)
        raise ConfigError("\n".join(f"{source}: {line}" if source else line for line in msg.splitlines())) from None


def resolve_component(
    registry: Registry, family: str, ref: ComponentRef, path: str, source: str = ""
) -> ComponentRef:
    """Check the name exists and validate params with the plugin's own Params; return it with defaults filled."""
    where = f"{source}: " if source else ""
    try:
        entry = registry.entry(family, ref.name)
    except PluginError as exc:
        raise ConfigError(f"{where}{path}.name: {exc}") from None
    try:
        params = entry.cls.Params.model_validate(ref.params)
    except ValidationError as exc:
        msg = validation_message(exc, f"{path}.params", plugin=f"{ref.name}' from '{entry.origin.plugin}")
        raise ConfigError("\n".join(where + line for line in msg.splitlines())) from None
    return ComponentRef(name=ref.name, params=params.model_dump(mode="json"))


def model_source_name(registry: Registry, name: str) -> str:
    """A registered model source name is used as is; anything else is an HF id or path for the 'hf' source."""
    return name if name in registry.names("model") else "hf"


def resolve_run_config(cfg: RunConfig, registry: Registry, source: str = "") -> RunConfig:
    """Fill plugin defaults (model source defaults, plugin params) and validate every plugin's params."""
    cfg = cfg.model_copy(deep=True)
    src_name = model_source_name(registry, cfg.model.name)
    by_id = src_name == "hf" and cfg.model.name != "hf"
    params = {"name_or_path": cfg.model.name, **cfg.model.params} if by_id else cfg.model.params
    resolved_src = resolve_component(registry, "model", ComponentRef(name=src_name, params=params), "model", source)
    cfg.model.params = {k: v for k, v in resolved_src.params.items() if not (by_id and k == "name_or_path")}
    src_cls = registry.get("model", src_name)
    if cfg.data is None:
        cfg.data = src_cls.default_data
    if cfg.filters is None:
        cfg.filters = [ComponentRef.model_validate(f) for f in src_cls.default_filters]
    if cfg.eval.evaluators is None:
        cfg.eval.evaluators = [ComponentRef.model_validate(e) for e in src_cls.default_evaluators]
    cfg.steer.method = resolve_component(registry, "steering", cfg.steer.method, "steer.method", source)
    cfg.filters = [
        resolve_component(registry, "filter", f, f"filters[{i}]", source) for i, f in enumerate(cfg.filters)
    ]
    cfg.heal.schedule = resolve_component(registry, "schedule", cfg.heal.schedule, "heal.schedule", source)
    cfg.heal.barrier.aggregator = resolve_component(
        registry, "aggregator", cfg.heal.barrier.aggregator, "heal.barrier.aggregator", source
    )
    cfg.eval.evaluators = [
        resolve_component(registry, "evaluator", e, f"eval.evaluators[{i}]", source)
        for i, e in enumerate(cfg.eval.evaluators)
    ]
    return cfg


def load_run_config(
    path: str | Path | None, overrides: Iterable[str] = (), registry: Registry | None = None
) -> RunConfig:
    """Read, override, validate and (with a registry) resolve a run config."""
    raw = read_yaml(path) if path is not None else {}
    raw = apply_overrides(raw, overrides)
    source = str(path) if path is not None else "config"
    cfg = validate_model(RunConfig, raw, source)
    if registry is not None:
        cfg = resolve_run_config(cfg, registry, source)
    return cfg


def config_hash(data: dict[str, Any]) -> str:
    """A stable hash of a resolved config mapping (key order does not matter)."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
