"""The run config: one config + one seed = one run. Every field documents its meaning and default.

Input types are checked, not coerced: counts (``Int``) take only integers (not ``true``, ``"3"`` or ``3.0``),
flags (``Bool``) only ``true``/``false``, and reals (``Real``) take numbers or numeric strings (PyYAML reads
``1e-3`` as a string; ``1.0e-3`` is a float) but never booleans. Every float must be finite and lie in a range
where the arithmetic stays finite (a temperature of 1e-300 or a learning rate of 1e300 is refused), and every
count and size has an upper bound, so a config that validates is one that can run.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)
from pydantic import Strict as _StrictType

MAX_SEED = 2**63 - 1
MAX_COUNT = 100_000  # prompts, contexts, completions per round
MAX_BATCH = 4096
MAX_TOKENS = 32_768
MAX_ROUNDS = 1000
MAX_EPOCHS = 1000
MAX_LORA_R = 1024
MAX_LIST = 256  # layers, alphas, components, target modules

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:\d{1,3})?|xpu(:\d{1,3})?")


def check_device(value: str) -> str:
    """A device string shl accepts: auto, cpu, mps, cuda, cuda:N, xpu, xpu:N (N a device index)."""
    if not isinstance(value, str) or not DEVICE_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a device: use auto, cpu, cuda, cuda:N, mps, xpu or xpu:N")
    return value

ENGINE_METRICS: tuple[str, ...] = (
    "round",
    "vector_norm", "cos_r0", "n_contexts_used",
    "probe_prompts_distinct", "generate_prompts_distinct",
    "kappa", "coeff", "probe_survival", "dose_reached", "dose_probes",
    "kept", "total", "keep_share", "filter_kept_coherent", "filter_dropped_coherent",
    "lam", "tau", "tau_active_share",
    "heal_nll", "heal_loss", "heal_kl", "kl_agg", "barrier_active", "spectral_norm2", "heal_steps",
)
"""Metric keys the engine itself writes to a run's round rows (besides the evaluators' keys)."""
ENGINE_METRIC_PREFIXES: tuple[str, ...] = ("drop_",)
"""Prefixes of engine row keys named after a component (``drop_<filter>``: completions a filter dropped)."""
STEERED_PREFIX = "steered_"
"""Evaluator keys measured on the steered, unhealed student carry this prefix (when ``eval.steered``)."""


def _real(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    return value


def safe_name(value: str) -> str:
    """A name used as one path component: 1-100 of letters, digits, '.', '_', '-', not starting with '.'/'-'/'_'."""
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a safe name: use 1-100 letters, digits, '.', '_' or '-', starting with a letter or "
            "digit (it names a directory)"
        )
    return value


Int = Annotated[int, _StrictType()]
"""An integer; booleans, strings and floats are rejected."""
Bool = StrictBool
"""true or false; integers and strings are rejected."""
Real = Annotated[float, BeforeValidator(_real)]
"""A finite number (or numeric string, as PyYAML reads ``1e-3``); booleans are rejected."""
SafeName = Annotated[str, _StrictType(), AfterValidator(safe_name)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


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


LayerSpec = Union[Int, Annotated[float, _StrictType()]]


class SteerConfig(Strict):
    method: ComponentRef = Field(
        default_factory=lambda: ComponentRef(name="mean_diff"), description="steering method plugin"
    )
    layers: list[LayerSpec] = Field(
        default_factory=lambda: [0.25],
        description="layers to read and steer: an int is a layer index (negative counts from the end), a float "
        "in [0, 1) a fraction of depth (0.25 = a quarter of the way in)",
        min_length=1,
        max_length=MAX_LIST,
    )
    positions: Literal["prompt_mean", "last"] = Field(
        "prompt_mean",
        description="how hidden states are reduced over positions: prompt_mean = the mean over the longest common "
        "token suffix of the two persona prompts (the user turn and assistant header, plus any tokens that end "
        "both system turns alike); last = the last prompt token",
    )
    n_contexts: Int = Field(64, ge=2, le=MAX_COUNT, description="extraction contexts per round (from the data's contexts)")
    batch_size: Int = Field(32, ge=1, le=MAX_BATCH, description="extraction batch size")

    @field_validator("layers")
    @classmethod
    def _layers(cls, layers: list[LayerSpec]) -> list[LayerSpec]:
        for i, layer in enumerate(layers):
            if isinstance(layer, float) and not (0.0 <= layer < 1.0):
                raise ValueError(f"layers[{i}]={layer}: a float layer is a fraction of depth in [0, 1)")
        return layers


class DoseConfig(Strict):
    scale: Real = Field(4.0, gt=0, le=1e6, description="base coefficient; the applied coefficient is kappa * alpha * scale")
    controller: Bool = Field(True, description="bisect kappa so that the probe's survival share reaches target")
    kappa_min: Real = Field(0.2, gt=0, le=1e3, description="lower end of the kappa search (log-space bisection)")
    kappa_max: Real = Field(1.0, gt=0, le=1e3, description="upper end of the kappa search; kappa when controller is off")
    target: Real = Field(0.75, gt=0, le=1, description="target share of probe completions that survive the filters")
    steps: Int = Field(4, ge=0, le=50, description="bisection steps after the kappa_max probe")
    probe_prompts: Int = Field(32, ge=1, le=MAX_COUNT, description="prompts in the probe batch")

    @model_validator(mode="after")
    def _range(self) -> "DoseConfig":
        if self.kappa_min > self.kappa_max:
            raise ValueError(f"kappa_min={self.kappa_min} > kappa_max={self.kappa_max}")
        return self


class GenerateConfig(Strict):
    alphas: list[Annotated[Real, Field(gt=0, le=1e3)]] = Field(default_factory=lambda: [1.0], min_length=1, max_length=MAX_LIST, description="dose multiples sampled")
    n_prompts: Int = Field(96, ge=1, le=MAX_COUNT, description="prompts drawn from the pool per round (per alpha)")
    max_new_tokens: Int = Field(48, ge=1, le=MAX_TOKENS, description="completion length cap")
    temperature: Real = Field(1.0, ge=1e-3, le=100, description="sampling temperature (no repetition penalty, ever)")
    top_p: Real = Field(1.0, gt=0, le=1, description="nucleus sampling mass")
    batch_size: Int = Field(64, ge=1, le=MAX_BATCH, description="generation batch size")


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
    tau: Real = Field(0.0, ge=0, le=1e6, description="barrier threshold: the penalty is lam * relu(D - tau)")
    tau_mode: Literal["fixed", "matched"] = Field(
        "fixed",
        description="fixed: use tau; matched: set tau per run so that the barrier is active on 1 - tau_quantile "
        "of its own D values in the first heal round's first epoch (within sampling error), found by trial passes "
        "of that epoch (same kept completions, batches, reference and level: one D per sequence, or per batch at "
        "level=batch; first with the barrier off, then on at the quantile of the previous trial's D values), so "
        "arms with different aggregators are matched by the share of D values the barrier constrains; later "
        "rounds keep that tau; the row records the share reached (tau_active_share)",
    )
    tau_quantile: Real = Field(
        0.5, gt=0, lt=1, description="quantile used by tau_mode=matched (the barrier starts active on about 1 - it)"
    )


class LoraConfig(Strict):
    r: Int = Field(8, ge=1, le=MAX_LORA_R, description="LoRA rank")
    alpha: Real = Field(16.0, gt=0, le=1e6, description="LoRA alpha")
    dropout: Real = Field(0.0, ge=0, lt=1, description="LoRA dropout")
    target_modules: list[str] | None = Field(
        None, max_length=MAX_LIST,
        description="module names to adapt; null = every linear layer of the decoder blocks (PEFT's 'all-linear': "
        "the attention and MLP projections on every architecture, never the output head); the run records the "
        "resolved list (meta.json lora_targets)",
    )


class HealConfig(Strict):
    regulariser: Literal["kl_rev", "kl_fwd", "nll"] = Field(
        "kl_rev",
        description="kl_rev: barrier on KL(student || ref); kl_fwd: KL(ref || student); nll: the control, with "
        "every barrier and penalty off",
    )
    lam: Real = Field(1.0, ge=0, le=1e6, description="base barrier weight, transformed per round by the schedule")
    schedule: ComponentRef = Field(
        default_factory=lambda: ComponentRef(name="constant"), description="lambda schedule plugin"
    )
    barrier: BarrierConfig = Field(default_factory=BarrierConfig, description="the KL barrier")
    spectral: Real = Field(0.0, ge=0, le=1e6, description="weight of the spectral penalty on each LoRA update ||BA||_2^2")
    weight_decay: Real = Field(0.0, ge=0, le=1e3, description="AdamW weight decay on the LoRA parameters")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="the per-round adapter")
    epochs: Int = Field(2, ge=1, le=MAX_EPOCHS, description="passes over the kept completions")
    lr: Real = Field(1e-3, gt=0, le=10, description="AdamW learning rate")
    batch_size: Int = Field(16, ge=1, le=MAX_BATCH, description="heal batch size")
    max_grad_norm: Real = Field(1.0, gt=0, le=1e12, description="gradient clipping norm (a huge value: no clipping)")
    group_by_length: Bool = Field(
        True, description="batch completions of similar length (each window of 4 batches sorted by length, then "
        "the batches shuffled): less padding, a faster heal; false = plain random batches",
    )
    ref_cache_mb: Int = Field(
        1024, ge=0, le=2**20,
        description="memory budget (MiB) for the frozen reference's log-probabilities (completion positions, "
        "float32), computed once per completion per round and reused by later epochs; 0, or a round whose "
        "cache would exceed the budget, recomputes the reference every epoch (same results up to float rounding)",
    )
    chunk_positions: Int = Field(
        128, ge=1, le=2**20,
        description="completion positions per chunk of the LM head, log-softmax, NLL and KL in the heal (the student "
        "and the reference): the vocabulary-sized float32 tensors are chunk x vocabulary, never batch x length x "
        "vocabulary; gradients equal the unchunked computation. Smaller = less memory, more kernel launches "
        "(128: see README, Performance)",
    )
    gradient_checkpointing: Bool = Field(
        False,
        description="recompute each decoder layer of the student forward during the backward instead of keeping its "
        "activations (less memory for long sequences or big batches on a GPU, about one more forward of time)",
    )


class EvalConfig(Strict):
    evaluators: list[ComponentRef] | None = Field(
        None, max_length=MAX_LIST, description="evaluator plugins; null = the model source's defaults"
    )
    max_new_tokens: Int = Field(48, ge=1, le=MAX_TOKENS, description="completion length cap when evaluating")
    batch_size: Int = Field(64, ge=1, le=MAX_BATCH, description="evaluation generation batch size")
    steered: Bool = Field(True, description="also evaluate the steered, unhealed student at the dose used")
    samples: Int = Field(4, ge=0, le=MAX_COUNT, description="completions per evaluation stored to read")


class LoopConfig(Strict):
    rounds: Int = Field(2, ge=1, le=MAX_ROUNDS, description="heal rounds")
    coherence_floor: Real | None = Field(
        None, description="stop early when the student's coherence metric falls below this"
    )
    coherence_metric: str = Field("coherence", description="metric the floor applies to")
    min_kept: Int = Field(8, ge=1, le=10 * MAX_COUNT, description="a round with fewer kept completions ends the run as 'starved'")


class RunConfig(Strict):
    """A complete run configuration (one seed)."""

    name: SafeName = Field("run", description="a label for the run (names its default output directory)")
    seed: Int = Field(0, ge=0, le=MAX_SEED, description="the seed every random stream derives from")
    device: Annotated[str, _StrictType(), AfterValidator(check_device)] = Field(
        "auto", description="auto (cuda if available), cpu, cuda, cuda:N, mps, xpu, xpu:N")
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
        None, max_length=MAX_LIST, description="filter chain (votes are ANDed); null = the model source's defaults; [] = keep all"
    )
    heal: HealConfig = Field(default_factory=HealConfig, description="the heal step")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="evaluation")
    loop: LoopConfig = Field(default_factory=LoopConfig, description="the loop")
