"""Reading config files: YAML with bounds and duplicate-key checks, and run configs' ``base:`` chains.

Every problem is a one-line ConfigError naming the file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .overrides import deep_merge

MAX_CONFIG_BYTES = 1 << 20
"""Run configs and experiment files are at most this large (steering data files are not limited)."""
MAX_YAML_VALUES = 1_000_000
MAX_YAML_DEPTH = 64
MAX_BASE_CHAIN = 64
"""At most this many run config files in one ``base:`` chain."""

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


_JSON_SCALARS = (str, int, float, bool, type(None))
_TYPE_NAMES = {"set": "a set (!!set)", "date": "a date", "datetime": "a timestamp", "bytes": "binary data (!!binary)",
               "tuple": "ordered pairs (!!omap/!!pairs)"}


def non_json_value(data: Any, path: str = "") -> str | None:
    """Where ``data`` holds a value JSON cannot hold (a set, date, timestamp, binary, ordered pairs, a non-string
    mapping key): ``"<path>: <what>"``, or None. Such values would hash differently between runs (a set's order
    follows PYTHONHASHSEED) or not at all."""
    stack = [(data, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                if not isinstance(k, str):
                    return f"{where or '(top level)'}: mapping key {k!r} is not a string (quote it)"
                stack.append((v, f"{where}.{k}" if where else k))
        elif isinstance(node, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(node))
        elif isinstance(node, str) and "\x00" in node:
            return f"{where or '(top level)'}: a NUL character is not allowed in a string"
        elif not isinstance(node, _JSON_SCALARS):
            kind = _TYPE_NAMES.get(type(node).__name__, type(node).__name__)
            return (f"{where or '(top level)'}: {kind} is not a plain YAML value; use a string, number, true/false, "
                    "null, list or mapping (quote a date: '2026-12-07')")
    return None


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


def one_line(text: Any) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(text).split())


def read_yaml(path: str | Path, what: str = "a YAML file", max_bytes: int | None = None) -> dict[str, Any]:
    """Read a YAML mapping. Every problem is a one-line ConfigError naming the file: missing, a directory,
    unreadable, not UTF-8 text, a syntax error (with line and column), a duplicate key (with its line), empty,
    not a mapping at the top level, or too large (MAX_YAML_VALUES values with aliases expanded, MAX_YAML_DEPTH
    levels)."""
    p = Path(path)
    if "\x00" in str(path):
        raise ConfigError(f"{str(path)!r}: a NUL character is not allowed in a path")
    if p.is_dir():
        raise ConfigError(f"{path}: is a directory, not {what}")
    if p.exists() and not p.is_file():
        raise ConfigError(f"{path}: is not a regular file (a device or a pipe?), not {what}")
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
        raise ConfigError(f"{path}: YAML syntax error at {where}: {one_line(exc.problem)}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML error: {one_line(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty (expected {what}: a YAML mapping)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    why = _oversized(data)
    if why:
        raise ConfigError(f"{path}: too large to be {what}: {why}")
    odd = non_json_value(data)
    if odd:
        raise ConfigError(f"{path}: {odd}")
    return data


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
    if len(seen) >= MAX_BASE_CHAIN:
        raise ConfigError(f"{seen[0]}: base: a chain of more than {MAX_BASE_CHAIN} files (at {_shown(path)}); "
                          "shorten it")
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
    if is_steering_data(raw):
        raise ConfigError(
            f"{path}: base: {_shown(base_path)} is a steering data file (personas, contexts, prompts); a base must be "
            "a run config (point data: at the data file instead)"
        )
    raw = with_base(raw, base_path, tuple(seen))
    return deep_merge(raw, {k: v for k, v in data.items() if k != "base"})


def is_steering_data(raw: dict[str, Any]) -> bool:
    """Whether a mapping looks like a steering data file (personas and prompts) rather than a config."""
    return {"positive", "negative"} <= set(raw) or ("contexts" in raw and "eval_prompts" in raw)


def run_config_yaml(path: str | Path) -> dict[str, Any]:
    """A run config file's mapping with its ``base:`` chain resolved; an experiment or a steering data file is a
    one-line error."""
    raw = read_yaml(path, "a run config", MAX_CONFIG_BYTES)
    if "arms" in raw:
        raise ConfigError(f"{path}: is an experiment (it has 'arms:'), not a run config; run it with 'shl ablate'")
    if is_steering_data(raw):
        raise ConfigError(f"{path}: is a steering data file (personas, contexts, prompts), not a run config; name it "
                          "in a run config's data: instead")
    return with_base(raw, path)
