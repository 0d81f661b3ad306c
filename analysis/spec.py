"""Declarative specification of a paired arm-vs-baseline comparison."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class MetricSpec(BaseModel):
    """One metric to compare, and which direction counts as an improvement."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(description="Metric key as written in metrics.jsonl.")
    direction: Literal["higher", "lower"] = Field(
        default="higher", description="Whether higher or lower values are better."
    )
    target_effect: float | None = Field(
        default=None, gt=0.0,
        description="Effect |delta| (metric units) this metric's 'seeds needed' is computed for; "
        "None = use ComparisonSpec.target_effect.",
    )


class FrontierSpec(BaseModel):
    """A comparison along the trade-off frontier: arms grouped into families that differ in one design choice (for
    example the barrier's aggregator), each family swept over a strength (for example ``heal.lam``); per seed,
    each family's Pareto frontier of (``x``, ``y``) endpoints is interpolated, and families are compared at
    matched ``x`` (and at matched ``y``) against ``baseline``. This removes what a single strength per arm
    confounds: how hard each arm pushes."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    x: str = Field(description="the metric on the horizontal axis (the cost, e.g. trait); one of `metrics`")
    y: str = Field(description="the metric on the vertical axis (what is protected, e.g. coherence); one of "
                   "`metrics`")
    families: dict[str, list[str]] = Field(
        min_length=2, description="family name -> its arms, ordered by strength (weakest first); each arm in one "
        "family only")
    baseline: str = Field(description="the family every other family is compared against")
    anchor: str | None = Field(
        default=None, description="an arm at strength zero shared by every family (e.g. the NLL-only arm): its "
        "point starts every family's curve")
    grid: int = Field(default=25, ge=3, le=1001, description="points of the matched range the curves are "
                      "compared at (evenly spaced, ends included)")

    @model_validator(mode="after")
    def _check(self) -> "FrontierSpec":
        if self.baseline not in self.families:
            raise ValueError(f"frontier baseline {self.baseline!r} is not one of the families "
                             f"{sorted(self.families)}")
        seen: dict[str, str] = {}
        for fam, arms in self.families.items():
            if not arms:
                raise ValueError(f"frontier family {fam!r} has no arms")
            for arm in arms:
                if arm in seen or arm == self.anchor:
                    where = "the anchor" if arm == self.anchor else f"family {seen[arm]!r}"
                    raise ValueError(f"frontier family {fam!r}: arm {arm!r} is already in {where}")
                seen[arm] = fam
        if self.x == self.y:
            raise ValueError("frontier x and y must be different metrics")
        return self

    def arms(self) -> list[str]:
        """Every arm the frontier reads, the anchor first."""
        return ([self.anchor] if self.anchor else []) + [a for arms in self.families.values() for a in arms]


class ComparisonSpec(BaseModel):
    """Which arms to compare against which baseline, on which metrics, and how."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    baseline: str = Field(description="Arm name every other arm is compared against.")
    metrics: list[MetricSpec] = Field(
        min_length=1, description="Metrics to compare; the first is the default primary metric."
    )
    primary: str | None = Field(
        default=None,
        description="Primary metric name (defaults to the first metric); must be one of `metrics`.",
    )
    endpoint: Literal["final", "last_k", "auc", "last_common"] = Field(
        default="final",
        description="How a run's trajectory is reduced to one number: 'final' = value at the run's own last "
        "round (a run that ended early, e.g. at the coherence floor, contributes that earlier round, so a pair "
        "can compare different rounds; the report counts such runs per arm); 'last_k' = mean of its last k "
        "rounds; 'auc' = area under the metric-vs-round curve divided by the round span; 'last_common' = per "
        "seed, the value at the last round that every paired run of that seed reached, across all arms "
        "compared (so every arm of a seed is read at the same round).",
    )
    last_k: int = Field(default=2, ge=1, le=1000, description="k for the 'last_k' endpoint.")
    alpha: float = Field(
        default=0.05, gt=0.0, lt=1.0, description="Two-sided significance level."
    )
    correction: Literal["holm", "bonferroni", "bh", "none"] = Field(
        default="holm",
        description="Multiple-comparison correction across arms-vs-baseline within each metric.",
    )
    target_effect: float | None = Field(
        default=0.05, gt=0.0,
        description="Effect |delta| in metric units (e.g. 0.05 = 5 points of a 0-1 share) for which the "
        "report gives the seeds needed for 80% power at the verdict's alpha; a metric's own "
        "target_effect overrides it; None = no seeds-needed column values.",
    )
    frontier: FrontierSpec | None = Field(
        default=None,
        description="Also compare families of arms along their (x, y) frontier at matched x and matched y "
        "(see FrontierSpec); the report leads with it.",
    )

    @model_validator(mode="after")
    def _check_primary(self) -> "ComparisonSpec":
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate metric names in {names}")
        if self.primary is None:
            self.primary = names[0]
        elif self.primary not in names:
            raise ValueError(f"primary {self.primary!r} is not one of the metrics {names}")
        if self.frontier is not None:
            for axis in ("x", "y"):
                if getattr(self.frontier, axis) not in names:
                    raise ValueError(f"frontier {axis} {getattr(self.frontier, axis)!r} is not one of the metrics "
                                     f"{names}")
        return self

    def target_effect_for(self, name: str) -> float | None:
        """Target effect for metric `name`: its own target_effect, else the spec-wide one."""
        own = self.metric(name).target_effect
        return self.target_effect if own is None else own

    def metric(self, name: str) -> MetricSpec:
        """Return the MetricSpec called `name` (KeyError if absent)."""
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)
