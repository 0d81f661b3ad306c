"""Validation errors as one line each: ``path: message``, at most MAX_ERROR_LINES of them, then a count.

A line names where the bad value came from: the file (``source``), or the ``--set`` override that wrote it."""

from __future__ import annotations

from typing import Any, Iterable, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError
from .overrides import parse_override, shown_override
from .reading import one_line

M = TypeVar("M", bound=BaseModel)

MAX_ERROR_LINES = 20
"""At most this many error lines are shown; the rest are counted on one line."""

ErrorItem = tuple[tuple[str, ...], str]
"""(the path's parts, as ``path_parts`` splits them; the error line)."""


def format_loc(loc: Iterable[Any], prefix: str = "") -> str:
    """A pydantic error location as a YAML path: ``("heal", "filters", 0)`` -> ``heal.filters[0]``."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def path_parts(path: str) -> tuple[str, ...]:
    """``heal.filters[0].name`` -> ("heal", "filters", "0", "name")."""
    return tuple(p for p in path.replace("[", ".").replace("]", "").split(".") if p)


def error_locs(exc: ValidationError) -> list[tuple[str, ...]]:
    """The path parts of every error of ``exc``."""
    return [path_parts(format_loc(_loc(e))) for e in exc.errors()]


def _loc(err: Any) -> list[Any]:
    return [p for p in err["loc"] if p not in ("function-after", "function-before")]


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


def error_lines(exc: ValidationError, prefix: str = "", plugin: str = "", limit: int = MAX_ERROR_LINES,
                ) -> tuple[list[ErrorItem], int]:
    """(the first ``limit`` errors as (path parts, ``path: message`` line), how many more there are)."""
    errors = exc.errors()
    out = []
    for err in errors[:limit]:
        where = format_loc(_loc(err), prefix)
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
        out.append((path_parts(where), one_line(f"{where}: {msg}{shown}{by}")))
    return out, max(len(errors) - limit, 0)


def _short(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) and len(repr(value)) <= 60


def validation_message(exc: ValidationError, prefix: str = "", plugin: str = "", limit: int = MAX_ERROR_LINES) -> str:
    """One line per error: ``path: message`` (and the plugin, when params of a plugin failed); at most ``limit``
    lines, then ``... and N more errors``."""
    errors, more = error_lines(exc, prefix, plugin, limit)
    lines = [line for _, line in errors]
    if more:
        lines.append(f"... and {more} more errors")
    return "\n".join(lines)


def validate_model(model: type[M], data: dict[str, Any], source: str = "", prefix: str = "") -> M:
    """``model`` validated from ``data``, or a ConfigError with at most MAX_ERROR_LINES lines naming each path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(join_errors(validation_message(exc, prefix).splitlines(), source)) from None


class CollectedErrors:
    """Config errors collected over a whole file, each with its path parts (to tell whether a ``--set`` override
    wrote the bad value) and its line; ``raise_if_any`` raises them all as one ConfigError."""

    def __init__(self, source: str = "", overrides: Iterable[str] = ()):
        self.source = source
        self.overrides = [(tuple(parse_override(o)[0]), o) for o in overrides]
        self.items: list[ErrorItem] = []
        self.more = 0

    def add(self, parts: tuple[str, ...], line: str) -> None:
        self.items.append((tuple(parts), line))

    def extend(self, items: list[ErrorItem], more: int = 0) -> None:
        self.items.extend(items)
        self.more += more

    def __bool__(self) -> bool:
        return bool(self.items or self.more)

    def blame(self, parts: tuple[str, ...]) -> str:
        """``--set TEXT`` when the last override that wrote ``parts`` (or a mapping above it, or a value inside the
        mapping the error is about, as in ``dose: kappa_min > kappa_max``) is one, else the source (the file)."""
        for key, text in reversed(self.overrides):
            if parts[: len(key)] == key or (parts and key[: len(parts)] == parts):
                return f"--set {shown_override(text)}"
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
