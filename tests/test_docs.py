"""CONTRIBUTING.md cannot drift from the code: its hook table lists exactly the hookspecs of ``shl.hookspecs``
(as signatures, ``shl_round_end(run_dir, round_index, metrics)``), and its family table exactly the rows of
``shl.api.FAMILY_TABLE`` (family, base class, registration hook)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from shl import hookspecs
from shl.api import FAMILY_TABLE

CONTRIBUTING = Path(__file__).resolve().parents[1] / "CONTRIBUTING.md"


def _table_rows(text: str) -> list[list[str]]:
    """The cells of every markdown table row (the separator rows left out)."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("|") and line.endswith("|") and not re.fullmatch(r"\|[-:| ]+\|", line):
            rows.append([cell.strip() for cell in line[1:-1].split("|")])
    return rows


def _hookspec_signatures() -> set[str]:
    specs = {name: f for name, f in vars(hookspecs).items() if callable(f) and hasattr(f, "shl_spec")}
    return {f"{name}({', '.join(inspect.signature(f).parameters)})" for name, f in specs.items()}


def test_every_hookspec_is_documented_with_its_signature():
    signatures = _hookspec_signatures()
    assert "shl_round_end(run_dir, round_index, metrics)" in signatures  # the form documented
    documented = {m.group(1) for row in _table_rows(CONTRIBUTING.read_text())
                  if (m := re.fullmatch(r"`(shl_\w+\([\w, ]*\))`", row[0]))}
    assert sorted(signatures - documented) == [], "hooks missing from CONTRIBUTING.md's hook table"
    assert sorted(documented - signatures) == [], "CONTRIBUTING.md's hook table lists hooks shl does not have"


def test_every_family_is_documented_with_its_base_class_and_hook():
    families = {(f"`{f.name}`", f"`{f.base.__name__}`", f"`{f.hook}`") for f in FAMILY_TABLE}
    documented = {tuple(row[:3]) for row in _table_rows(CONTRIBUTING.read_text())
                  if len(row) >= 3 and re.fullmatch(r"`shl_register_\w+`", row[2])}
    assert sorted(families - documented) == [], "families missing from CONTRIBUTING.md's family table"
    assert sorted(documented - families) == [], "CONTRIBUTING.md's family table lists families shl does not have"


def test_every_hookspec_documents_its_parameters():
    """The hookspecs' docstrings (what ``help()`` and IDEs show) name every parameter with a ``:param`` line."""
    for name, f in vars(hookspecs).items():
        if callable(f) and hasattr(f, "shl_spec"):
            for param in inspect.signature(f).parameters:
                assert f":param {param}:" in (f.__doc__ or ""), (name, param)


def test_the_written_out_registration_hookspecs_agree_with_the_family_table():
    """FAMILY_TABLE stays the single source: each row has its hookspec, written out in shl/hookspecs.py, named by
    the row, typed with the row's base class and documented with its title and purpose; no other
    ``shl_register_*`` hook exists but ``shl_register_commands``."""
    source = Path(hookspecs.__file__).read_text()
    registering = {name for name, f in vars(hookspecs).items()
                   if callable(f) and hasattr(f, "shl_spec") and name.startswith("shl_register_")}
    assert registering == {f.hook for f in FAMILY_TABLE} | {"shl_register_commands"}
    for f in FAMILY_TABLE:
        spec = getattr(hookspecs, f.hook)
        assert f"def {f.hook}(register: Callable[[type[{f.base.__name__}]], None]) -> None:" in source
        assert list(inspect.signature(spec).parameters) == ["register"]
        assert spec.__doc__.startswith(f"Register {f.title}: subclasses of ``shl.api.{f.base.__name__}`` "
                                       f"({f.purpose}).")
