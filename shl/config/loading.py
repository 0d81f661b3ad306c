"""YAML in, validated config out: overrides, one-line errors with YAML paths, plugin params validation."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, PluginError
from ..registry import Registry
from .models import ENGINE_METRIC_PREFIXES, ENGINE_METRICS, STEERED_PREFIX, ComponentRef, RunConfig

M = TypeVar("M", bound=BaseModel)

MAX_ERROR_LINES = 20
"""At most this many error lines are shown; the rest are counted on one line."""

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first: int):
        super().__init__(f"duplicate key {key!r} at line {line} (first at line {first})")


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """PyYAML's safe loader, rejecting a key repeated in one mapping (merge keys ``<<`` may be overridden)."""

    def __init__(self, stream: Any):
        super().__init__(stream)
        self._checked: set[int] = set()

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        if id(node) not in self._checked:  # before the merge keys are expanded into node.value
            self._checked.add(id(node))
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise _DuplicateKey(key, line, seen[key])
                seen[key] = line
        super().flatten_mapping(node)


MAX_CONFIG_BYTES = 1 << 20
"""Run configs and experiment files are at most this large (steering data files are not limited)."""
MAX_YAML_VALUES = 1_000_000
MAX_YAML_DEPTH = 64


def _oversized(data: Any) -> str | None:
    """Why ``data`` is too large to validate (counting every alias expansion), or None."""
    stack, count = [(data, 1)], 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_YAML_VALUES:
            return f"more than {MAX_YAML_VALUES} values once its aliases are expanded"
        if depth > MAX_YAML_DEPTH:
            return f"nested deeper than {MAX_YAML_DEPTH} levels"
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return None


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def read_yaml(path: str | Path, what: str = "a YAML file", max_bytes: int | None = None) -> dict[str, Any]:
    """Read a YAML mapping. Every problem is a one-line ConfigError naming the file: missing, a directory,
    unreadable, not UTF-8 text, a syntax error (with line and column), a duplicate key (with its line), empty,
    not a mapping at the top level, or too large (MAX_YAML_VALUES values with aliases expanded, MAX_YAML_DEPTH
    levels)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{path}: is a directory, not {what}")
    if not p.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        size = p.stat().st_size
    except OSError:
        size = 0
    if max_bytes is not None and size > max_bytes:
        raise ConfigError(f"{path}: {size} bytes is too large for {what} (at most {max_bytes})")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: is not UTF-8 text (byte {exc.start}); expected {what}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except _DuplicateKey as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.reader.ReaderError as exc:
        raise ConfigError(
            f"{path}: is not a YAML text file (character {exc.character!r} at position {exc.position})"
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ConfigError(f"{path}: YAML syntax error at {where}: {_one_line(exc.problem)}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML error: {_one_line(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty (expected {what}: a YAML mapping)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    why = _oversized(data)
    if why:
        raise ConfigError(f"{path}: too large to be {what}: {why}")
    return data


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base``: nested mappings merge, anything else (lists, a component's params) replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("params",):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _shown(path: Path) -> str:
    return os.path.normpath(str(path))


def with_base(data: dict[str, Any], path: str | Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Resolve a run config mapping's ``base:`` (a run config file, relative to ``path``'s folder; chains
    allowed): the base's mapping with ``data`` deep-merged over it, ``base`` removed. A cycle, a base that is an
    experiment, or a base that is not a path is a one-line ConfigError."""
    if "base" not in data:
        return data
    path = Path(path)
    ref = data["base"]
    if not isinstance(ref, str) or not ref.strip():
        raise ConfigError(f"{path}: base: expected the path of a run config file, got {ref!r}")
    base_path = Path(ref) if Path(ref).is_absolute() else path.parent / ref
    seen = [*chain, path]
    real = [os.path.realpath(p) for p in seen]
    if os.path.realpath(base_path) in real:
        start = real.index(os.path.realpath(base_path))
        cycle = " -> ".join(_shown(p) for p in [*seen[start:], base_path])
        raise ConfigError(f"{seen[0]}: base: cycle {cycle}")
    raw = read_yaml(base_path, "a run config", MAX_CONFIG_BYTES)
    if "arms" in raw:
        raise ConfigError(
            f"{path}: base: {_shown(base_path)} is an experiment (it has 'arms:'); a base must be a run config"
        )
    raw = with_base(raw, base_path, tuple(seen))
    return deep_merge(raw, {k: v for k, v in data.items() if k != "base"})


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


def join_errors(lines: list[str], source: str = "", limit: int = MAX_ERROR_LINES) -> str:
    """Error lines prefixed with ``source: ``, at most ``limit`` of them, then ``... and N more errors`` (a
    summary line already there is kept last and counted in)."""
    more = 0
    if lines and lines[-1].startswith("... and "):
        more = int(lines[-1].split()[2])
        lines = lines[:-1]
    shown = [f"{source}: {line}" if source else line for line in lines[:limit]]
    more += max(len(lines) - limit, 0)
    if more:
        shown.append(f"... and {more} more errors")
    return "\n".join(shown)


def _error_lines(exc: ValidationError, prefix: str = "", plugin: str = "", limit: int = MAX_ERROR_LINES,
                 ) -> tuple[list[tuple[tuple[str, ...], str]], int]:
    """(the first ``limit`` errors as (path parts, ``path: message`` line), how many more there are)."""
    errors = exc.errors()
    out = []
    for err in errors[:limit]:
        loc = [p for p in err["loc"] if p not in ("function-after", "function-before")]
        where = format_loc(loc, prefix)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key missing"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        by = f" (plugin '{plugin}')" if plugin else ""
        value = err.get("input")
        shown = f" (got {value!r})" if err["type"] not in ("extra_forbidden", "missing") and _short(value) else ""
        out.append((_parts(format_loc(loc, prefix)), _one_line(f"{where}: {msg}{shown}{by}")))
    return out, max(len(errors) - limit, 0)


def _parts(path: str) -> tuple[str, ...]:
    """``heal.filters[0].name`` -> ("heal", "filters", "0", "name")."""
    return tuple(p for p in path.replace("[", ".").replace("]", "").split(".") if p)


def validation_message(exc: ValidationError, prefix: str = "", plugin: str = "", limit: int = MAX_ERROR_LINES) -> str:
    """One line per error: ``path: message`` (and the plugin, when params of a plugin failed); at most ``limit``
    lines, then ``... and N more errors``."""
    errors, more = _error_lines(exc, prefix, plugin, limit)
    lines = [line for _, line in errors]
    if more:
        lines.append(f"... and {more} more errors")
    return "\n".join(lines)


def _short(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) and len(repr(value)) <= 60


def validate_model(model: type[M], data: dict[str, Any], source: str = "", prefix: str = "") -> M:
    """``model`` validated from ``data``, or a ConfigError with at most MAX_ERROR_LINES lines naming each path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(join_errors(validation_message(exc, prefix).splitlines(), source)) from None


class _Errors:
    """Config errors collected over a whole file, each with its path parts (to tell whether a ``--set`` override
    wrote the bad value) and its line; ``raise_if_any`` raises them all as one ConfigError."""

    def __init__(self, source: str = "", overrides: Iterable[str] = ()):
        self.source = source
        self.overrides = [(tuple(parse_override(o)[0]), o) for o in overrides]
        self.items: list[tuple[tuple[str, ...], str]] = []
        self.more = 0

    def add(self, parts: tuple[str, ...], line: str) -> None:
        self.items.append((tuple(parts), line))

    def extend(self, items: list[tuple[tuple[str, ...], str]], more: int = 0) -> None:
        self.items.extend(items)
        self.more += more

    def __bool__(self) -> bool:
        return bool(self.items or self.more)

    def blame(self, parts: tuple[str, ...]) -> str:
        """``--set TEXT`` when the last override that wrote ``parts`` (or a mapping above it) is one, else the
        source (the file)."""
        for key, text in reversed(self.overrides):
            if parts[: len(key)] == key:
                return f"--set {text}"
        return self.source

    def message(self, limit: int = MAX_ERROR_LINES) -> str:
        lines = []
        for parts, line in self.items:
            where = self.blame(parts)
            lines.append(f"{where}: {line}" if where else line)
        if self.more:
            lines.append(f"... and {self.more} more errors")
        return join_errors(lines, "", limit)

    def raise_if_any(self) -> None:
        if self:
            raise ConfigError(self.message())


def _resolve(registry: Registry, family: str, ref: ComponentRef, path: str, errors: _Errors) -> ComponentRef | None:
    """``ref`` with its params validated by the plugin's Params (defaults filled), or None with the problem added
    to ``errors``."""
    try:
        entry = registry.entry(family, ref.name)
    except PluginError as exc:
        errors.add(_parts(f"{path}.name"), _one_line(f"{path}.name: {exc}"))
        return None
    try:
        params = entry.cls.Params.model_validate(ref.params)
    except ValidationError as exc:
        errors.extend(*_error_lines(exc, f"{path}.params", plugin=f"{ref.name}' from '{entry.origin.plugin}"))
        return None
    return ComponentRef(name=ref.name, params=params.model_dump(mode="json"))


def resolve_component(
    registry: Registry, family: str, ref: ComponentRef, path: str, source: str = ""
) -> ComponentRef:
    """Check the name exists and validate params with the plugin's own Params; return it with defaults filled."""
    errors = _Errors(source)
    out = _resolve(registry, family, ref, path, errors)
    errors.raise_if_any()
    assert out is not None
    return out


def model_source_name(registry: Registry, name: str) -> str:
    """A registered model source name is used as is; anything else is an HF id or path for the 'hf' source."""
    return name if name in registry.names("model") else "hf"


def _resolve_components(cfg: RunConfig, registry: Registry, errors: _Errors) -> RunConfig:
    """Fill plugin defaults (model source defaults, plugin params) and validate every plugin's params, adding
    every problem to ``errors`` (a component that fails keeps its unresolved form)."""
    cfg = cfg.model_copy(deep=True)
    src_name = model_source_name(registry, cfg.model.name)
    by_id = src_name == "hf" and cfg.model.name != "hf"
    params = {"name_or_path": cfg.model.name, **cfg.model.params} if by_id else cfg.model.params
    resolved_src = _resolve(registry, "model", ComponentRef(name=src_name, params=params), "model", errors)
    if resolved_src is not None:
        cfg.model.params = {k: v for k, v in resolved_src.params.items() if not (by_id and k == "name_or_path")}
    src = registry.entries("model").get(src_name)
    if src is not None:
        if cfg.data is None:
            cfg.data = src.cls.default_data
        if cfg.filters is None:
            cfg.filters = [ComponentRef.model_validate(f) for f in src.cls.default_filters]
        if cfg.eval.evaluators is None:
            cfg.eval.evaluators = [ComponentRef.model_validate(e) for e in src.cls.default_evaluators]

    def resolve(family: str, ref: ComponentRef, path: str) -> ComponentRef:
        return _resolve(registry, family, ref, path, errors) or ref

    cfg.steer.method = resolve("steering", cfg.steer.method, "steer.method")
    if cfg.filters is not None:
        cfg.filters = [resolve("filter", f, f"filters[{i}]") for i, f in enumerate(cfg.filters)]
    cfg.heal.schedule = resolve("schedule", cfg.heal.schedule, "heal.schedule")
    cfg.heal.barrier.aggregator = resolve("aggregator", cfg.heal.barrier.aggregator, "heal.barrier.aggregator")
    if cfg.eval.evaluators is not None:
        cfg.eval.evaluators = [
            resolve("evaluator", e, f"eval.evaluators[{i}]") for i, e in enumerate(cfg.eval.evaluators)
        ]
    return cfg


def _checks(cfg: RunConfig, registry: Registry, source: str = "") -> None:
    """Checks over a fully resolved config: layers against the model's depth, the coherence floor's metric."""
    check_layers(cfg, registry, source)
    floor_metric = cfg.loop.coherence_metric
    if cfg.loop.coherence_floor is not None and metric_produced(floor_metric, cfg, registry) is False:
        where = f"{source}: " if source else ""
        raise ConfigError(
            f"{where}loop.coherence_metric: '{floor_metric}' is not a metric of this run (the evaluators "
            f"produce: {', '.join(sorted(produced_metrics(cfg, registry) or ()))})"
        )


def resolve_run_config(
    cfg: RunConfig, registry: Registry, source: str = "", overrides: Iterable[str] = ()
) -> RunConfig:
    """Fill plugin defaults (model source defaults, plugin params) and validate every plugin's params. Every
    component problem is reported at once, one line each; a line whose path one of ``overrides`` (``--set``
    strings) wrote names that override instead of ``source``."""
    errors = _Errors(source, overrides)
    cfg = _resolve_components(cfg, registry, errors)
    errors.raise_if_any()
    _checks(cfg, registry, source)
    return cfg


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
    errors = _Errors(source, overrides)
    cfg: RunConfig | None
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as exc:
        errors.extend(*_error_lines(exc))
        locs = [_parts(format_loc(p for p in e["loc"] if p not in ("function-after", "function-before")))
                for e in exc.errors()]
        salvaged = _drop_paths(raw, locs)
        try:
            cfg = RunConfig.model_validate(salvaged) if salvaged is not None else None
        except ValidationError:
            cfg = None
    if registry is not None and cfg is not None:
        cfg = _resolve_components(cfg, registry, errors)
    errors.raise_if_any()
    assert cfg is not None
    if registry is not None:
        _checks(cfg, registry, source)
    return cfg


_LAYER_COUNTS: dict[str, int | None] = {}


def model_layers(cfg: RunConfig, registry: Registry) -> int | None:
    """The decoder layer count of a resolved config's model, from its source's ``num_layers()`` (never loads the
    model; memoised per model source and params); None = unknown until loaded."""
    src_name = model_source_name(registry, cfg.model.name)
    params = dict(cfg.model.params)
    if src_name == "hf" and cfg.model.name != "hf":
        params["name_or_path"] = cfg.model.name
    key = json.dumps([src_name, params], sort_keys=True, default=str)
    if key not in _LAYER_COUNTS:
        cls = registry.get("model", src_name)
        try:
            n = cls(cls.Params.model_validate(params)).num_layers()
        except Exception:
            n = None
        _LAYER_COUNTS[key] = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None
    return _LAYER_COUNTS[key]


def check_layers(cfg: RunConfig, registry: Registry, source: str = "") -> None:
    """``steer.layers`` must exist in the model, when the model source knows its depth without loading."""
    from ..engine.layers import resolve_layers

    n = model_layers(cfg, registry)
    if n is None:
        return
    try:
        resolve_layers(cfg.steer.layers, n, f"model '{cfg.model.name}'")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}" if source else str(exc)) from None


def produced_metrics(cfg: RunConfig, registry: Registry) -> set[str] | None:
    """The metric keys a resolved config's evaluators declare (with ``_se`` and, when ``eval.steered``, the
    ``steered_`` versions); None when any evaluator does not declare its metrics."""
    out: set[str] = set()
    for ref in cfg.eval.evaluators or []:
        declared = getattr(registry.get("evaluator", ref.name), "metrics", None)
        if declared is None:
            return None
        out.update(declared)
        out.update(f"{m}_se" for m in declared if not m.endswith("_se"))
    if cfg.eval.steered:
        out.update([f"{STEERED_PREFIX}{m}" for m in out])
    return out


def metric_produced(name: str, cfg: RunConfig, registry: Registry) -> bool | None:
    """Whether a run of ``cfg`` writes metric ``name`` (an evaluator's or the engine's own); None = unknown."""
    if name in ENGINE_METRICS or name.startswith(ENGINE_METRIC_PREFIXES):
        return True
    produced = produced_metrics(cfg, registry)
    return None if produced is None else name in produced


def run_config_yaml(path: str | Path) -> dict[str, Any]:
    """A run config file's mapping with its ``base:`` chain resolved; an experiment file is a one-line error."""
    raw = read_yaml(path, "a run config", MAX_CONFIG_BYTES)
    if "arms" in raw:
        raise ConfigError(f"{path}: is an experiment (it has 'arms:'), not a run config; run it with 'shl ablate'")
    return with_base(raw, path)


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


def config_hash(data: dict[str, Any]) -> str:
    """A stable hash of a resolved config mapping (key order does not matter)."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
