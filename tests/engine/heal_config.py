"""Heal configs for tests that call the heal directly: the validated ``HealConfig`` the engine passes to it."""

from __future__ import annotations

from shl.config.models import HealConfig


def heal_config(**kw) -> HealConfig:
    """A validated heal config from flat settings (``reference``, ``level`` and ``tau`` go under ``barrier``).
    ``lr`` is set after validation: tests hold the parameters fixed (0) or force a non-finite loss (inf), which a
    config does not accept."""
    barrier = {k: kw.pop(k) for k in ("reference", "level", "tau") if k in kw}
    lr = kw.pop("lr", None)
    cfg = HealConfig.model_validate({**kw, "barrier": barrier})
    return cfg if lr is None else cfg.model_copy(update={"lr": lr})
