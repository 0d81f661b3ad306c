"""The run config: one config + one seed = one run. Every field documents its meaning and default."""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ComponentRef(Strict):
    """A plugin component chosen by name, with params validated by that component's own Params model."""

    name: str = Field(description="registered component name (see `shl plugins`)")
    params: dict[str, Any] = Field(default_factory=dict, description="the component's Params")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class ModelConfig(Strict):
    name: str = Field(
        "toyworld",
        description="a registered model source (toyworld, tiny_random, hf) or a Hugging Face id / local path "
        "(loaded by the 'hf' source)",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="the model source's Params")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


LayerSpec = Union[int, float]


class SteerConfig(Strict):
    method: ComponentRef = Field(
        default_factory=lambda: ComponentRef(name="mean_diff"), description="steering method plugin"
    )
    layers: list[LayerSpec] = Field(
        default_factory=lambda: [0.25],
        description="layers to read and steer: an int is a layer index (negative counts from the end), a float "
        "in [0, 1) a fraction of depth (0.25 = a quarter of the way in)",
        min_length=1,
    )
    positions: Literal["prompt_mean", "last"] = Field(
        "prompt_mean",
        description="how hidden states are reduced over positions: prompt_mean = the mean over the longest common "
        "token suffix of the two persona prompts (the user turn and assistant header, plus any tokens that end "
        "both system turns alike); last = the last prompt token",
    )
    n_contexts: int = Field(64, ge=2, description="extraction contexts per round (from the data's contexts)")
    batch_size: int = Field(32, ge=1, description="extraction batch size")

    @field_validator("layers")
    @classmethod
    def _layers(cls, layers: list[LayerSpec]) -> list[LayerSpec]:
        for i, layer in enumerate(layers):
            if isinstance(layer, float) and not (0.0 <= layer < 1.0):
                raise ValueError(f"layers[{i}]={layer}: a float layer is a fraction of depth in [0, 1)")
        return layers


class DoseConfig(Strict):
    scale: float = Field(4.0, gt=0, description="base coefficient; the applied coefficient is kappa * alpha * scale")
    controller: bool = Field(True, description="bisect kappa so that the probe's survival share reaches target")
    kappa_min: float = Field(0.2, gt=0, description="lower end of the kappa search (log-space bisection)")
    kappa_max: float = Field(1.0, gt=0, description="upper end of the kappa search; kappa when controller is off")
    target: float = Field(0.75, gt=0, le=1, description="target share of probe completions that survive the filters")
    steps: int = Field(4, ge=0, description="bisection steps after the kappa_max probe")
    probe_prompts: int = Field(32, ge=1, description="prompts in the probe batch")

    @model_validator(mode="after")
    def _range(self) -> "DoseConfig":
        if self.kappa_min > self.kappa_max:
            raise ValueError(f"kappa_min={self.kappa_min} > kappa_max={self.kappa_max}")
        return self


class GenerateConfig(Strict):
    alphas: list[float] = Field(default_factory=lambda: [1.0], min_length=1, description="dose multiples sampled")
    n_prompts: int = Field(96, ge=1, description="prompts drawn from the pool per round (per alpha)")
    max_new_tokens: int = Field(48, ge=1, description="completion length cap")
    temperature: float = Field(1.0, gt=0, description="sampling temperature (no repetition penalty, ever)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass")
    batch_size: int = Field(64, ge=1, description="generation batch size")


class BarrierConfig(Strict):
    aggregator: ComponentRef = Field(
        default_factory=lambda: ComponentRef(name="rmse"), description="barrier aggregator plugin"
    )
    reference: Literal["prev", "base"] = Field(
        "prev", description="KL reference: the student before this round's adapter (prev) or the base model"
    )
    level: Literal["sequence", "batch"] = Field(
        "sequence",
        description="aggregate KL per sequence then average relu(D - tau) over sequences (sequence), or "
        "aggregate over all masked positions of the batch at once (batch)",
    )
    tau: float = Field(0.0, ge=0, description="barrier threshold: the penalty is lam * relu(D - tau)")
    tau_mode: Literal["fixed", "matched"] = Field(
        "fixed",
        description="fixed: use tau; matched: set tau per run to the tau_quantile of this aggregator's D between "
        "the steered and unsteered round-0 student on the round-0 kept completions, so arms with different "
        "aggregators are matched by the share of sequences on which the barrier is active",
    )
    tau_quantile: float = Field(0.5, gt=0, lt=1, description="quantile used by tau_mode=matched")


class LoraConfig(Strict):
    r: int = Field(8, ge=1, description="LoRA rank")
    alpha: float = Field(16.0, gt=0, description="LoRA alpha")
    dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout")
    target_modules: list[str] | None = Field(
        None, description="module names to adapt; null = the attention and MLP projections PEFT knows for the arch"
    )


class HealConfig(Strict):
    regulariser: Literal["kl_rev", "kl_fwd", "nll"] = Field(
        "kl_rev",
        description="kl_rev: barrier on KL(student || ref); kl_fwd: KL(ref || student); nll: the control, with "
        "every barrier and penalty off",
    )
    lam: float = Field(1.0, ge=0, description="base barrier weight, transformed per round by the schedule")
    schedule: ComponentRef = Field(
        default_factory=lambda: ComponentRef(name="constant"), description="lambda schedule plugin"
    )
    barrier: BarrierConfig = Field(default_factory=BarrierConfig, description="the KL barrier")
    spectral: float = Field(0.0, ge=0, description="weight of the spectral penalty on each LoRA update ||BA||_2^2")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay on the LoRA parameters")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="the per-round adapter")
    epochs: int = Field(2, ge=1, description="passes over the kept completions")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate")
    batch_size: int = Field(16, ge=1, description="heal batch size")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping norm")


class EvalConfig(Strict):
    evaluators: list[ComponentRef] | None = Field(
        None, description="evaluator plugins; null = the model source's defaults"
    )
    max_new_tokens: int = Field(48, ge=1, description="completion length cap when evaluating")
    batch_size: int = Field(64, ge=1, description="evaluation generation batch size")
    steered: bool = Field(True, description="also evaluate the steered, unhealed student at the dose used")
    samples: int = Field(4, ge=0, description="completions per evaluation stored to read")


class LoopConfig(Strict):
    rounds: int = Field(2, ge=1, description="heal rounds")
    coherence_floor: float | None = Field(
        None, description="stop early when the student's coherence metric falls below this"
    )
    coherence_metric: str = Field("coherence", description="metric the floor applies to")
    min_kept: int = Field(8, ge=1, description="a round with fewer kept completions ends the run as 'starved'")


class RunConfig(Strict):
    """A complete run configuration (one seed)."""

    name: str = Field("run", description="a label for the run")
    seed: int = Field(0, ge=0, description="the seed every random stream derives from")
    device: str = Field("auto", description="auto (cuda if available), cpu, cuda, cuda:N")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="model dtype; auto = bfloat16 on CUDA, float32 on CPU (KL and losses are always computed in "
        "float32; LoRA weights stay float32)",
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="the model source")
    data: str | None = Field(
        None, description="steering data YAML (personas, contexts, prompts); null = the model source's default"
    )
    steer: SteerConfig = Field(default_factory=SteerConfig, description="extraction and steering")
    dose: DoseConfig = Field(default_factory=DoseConfig, description="dose controller")
    generate: GenerateConfig = Field(default_factory=GenerateConfig, description="steered generation")
    filters: list[ComponentRef] | None = Field(
        None, description="filter chain (votes are ANDed); null = the model source's defaults; [] = keep all"
    )
    heal: HealConfig = Field(default_factory=HealConfig, description="the heal step")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="evaluation")
    loop: LoopConfig = Field(default_factory=LoopConfig, description="the loop")
