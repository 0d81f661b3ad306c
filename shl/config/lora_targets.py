"""How PEFT matches ``target_modules`` entries to module names, to check a config's entries before a run."""

from __future__ import annotations

from typing import Sequence


def matches(target: str, name: str) -> bool:
    """PEFT's rule for one entry of a list: the module's full name, or its last dotted components."""
    return name == target or name.endswith("." + target)


def unmatched_targets(targets: Sequence[str], names: Sequence[str]) -> str:
    """"" when every entry of ``targets`` matches some module name; else one phrase naming the first entry that
    matches none and the model's adaptable module names (their last components)."""
    for target in targets:
        if not any(matches(target, n) for n in names):
            leaves = sorted({n.rsplit(".", 1)[-1] for n in names if n.count(".") >= 2 and "layers" in n})
            shown = ", ".join(leaves[:12]) + (", ..." if len(leaves) > 12 else "")
            return f"'{target}' matches no module of the model (its decoder modules: {shown})"
    return ""
