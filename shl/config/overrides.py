"""Merging raw config mappings: a base under its overrides, and ``--set dotted.path=value`` strings."""

from __future__ import annotations

import copy
import re
from typing import Any, Iterable

import yaml

from ..errors import ConfigError


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base``: nested mappings merge, anything else (lists, a component's params) replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("params",):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


MAX_OVERRIDE_VALUES = 10_000
"""A ``--set`` value may expand (YAML aliases included) to at most this many values."""


def shown_override(text: str, limit: int = 80) -> str:
    """An override as error messages show it: at most ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], value parsed as YAML). A value YAML cannot give as plain data (a set,
    a date, binary) or one that expands to more than MAX_OVERRIDE_VALUES values is a one-line ConfigError."""
    from .reading import non_json_value

    if "=" not in text:
        raise ConfigError(f"--set {shown_override(text)!r}: expected dotted.path=value")
    key, raw = text.split("=", 1)
    parts = [k for k in key.strip().split(".")]
    if not key.strip() or any(not k for k in parts):
        raise ConfigError(f"--set {shown_override(text)!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    except RecursionError:
        raise ConfigError(f"--set {shown_override(text)!r}: nested too deeply") from None
    if _count(value, MAX_OVERRIDE_VALUES) > MAX_OVERRIDE_VALUES:
        raise ConfigError(f"--set {key.strip()}=...: the value expands to more than {MAX_OVERRIDE_VALUES} values "
                          "(YAML aliases?)")
    odd = non_json_value(value, key.strip())
    if odd:
        raise ConfigError(f"--set {shown_override(text)!r}: {odd}")
    return parts, value


def _count(value: Any, limit: int) -> int:
    """How many values ``value`` holds with aliases expanded (counting stops past ``limit``)."""
    n, stack = 0, [value]
    while stack and n <= limit:
        node = stack.pop()
        n += 1
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return n


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


_INDEX = re.compile(r"-?[0-9]+")


def _child(node: Any, key: str, text: str) -> Any:
    if isinstance(node, dict):
        return node.get(key)
    if isinstance(node, list) and _INDEX.fullmatch(key):
        try:
            return node[int(key)]
        except IndexError:
            raise ConfigError(f"--set {shown_override(text)!r}: index {key} out of range") from None
    raise ConfigError(f"--set {shown_override(text)!r}: cannot descend into {type(node).__name__} at '{key}'")


def _set(node: Any, key: str, value: Any, text: str) -> None:
    if isinstance(node, dict):
        node[key] = value
    elif isinstance(node, list) and _INDEX.fullmatch(key):
        try:
            node[int(key)] = value
        except IndexError:
            raise ConfigError(f"--set {shown_override(text)!r}: index {key} out of range") from None
    else:
        raise ConfigError(f"--set {shown_override(text)!r}: cannot set '{key}' on {type(node).__name__}")
