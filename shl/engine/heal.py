"""The heal step: train this round's LoRA adapter on the kept completions with a KL barrier.

    L = NLL(completion tokens, end-of-turn included) + lam_r * relu(D - tau) + spectral * sum ||s B A||_2^2

KL_t is the per-position divergence between the student and the reference over the full vocabulary, in
float32, at every position that predicts a completion token. ``reverse`` = KL(student || ref),
``forward`` = KL(ref || student). D = aggregator(KL) per sequence (``level=sequence``: the penalty is the
mean over sequences of relu(D_i - tau)) or over all masked positions of the batch (``level=batch``).
The reference is the previous student (adapters of earlier rounds) or the base model (``reference.py``: computed
on the same model object with adapters switched, cached across epochs). The ``nll`` regulariser trains on NLL
alone (weight decay and the spectral penalty off too) but still logs the KL to the reference.

The pieces: the batches and their order (``heal_batches.py``), the reference (``reference.py``), the student's
memory-bounded per-position terms (``completion_terms.py``), the penalties (``barrier.py``), gradient
checkpointing (``checkpointing.py``); matched tau calibrates on trial passes of this step (``tau_calibration.py``).
"""

from __future__ import annotations

from typing import Any, Sequence

from ..api import Aggregator, Completion
from ..config.models import HealConfig
from ..errors import RunError
from . import progress as engine_progress
from .barrier import aggregate_barrier, spectral_penalty
from .checkpointing import checkpointed_layers
from .completion_terms import completion_terms
from .heal_batches import batch_tensors, epoch_order
from .reference import ReferenceCache


HEAL_OOM_KNOBS = "heal.batch_size (or heal.chunk_positions; or set heal.gradient_checkpointing: true)"


def heal_round(
    stack: Any,
    tokenizer: Any,
    completions: Sequence[Completion],
    heal: HealConfig,
    aggregator: Aggregator,
    params: list[Any],
    seed: int,
    round_index: int,
    progress: Any = None,
    *,
    lam: float | None = None,
    tau: float | None = None,
    base_states: Any = None,
) -> dict[str, float]:
    """Train ``params`` (the current adapter) in place; return heal statistics of the last epoch.

    ``heal``: the validated heal config. Known only at run time: ``lam``, this round's barrier weight (the
    schedule's value) and ``tau``, the threshold in force (matched tau once calibrated); None = the configured
    ``heal.lam`` / ``heal.barrier.tau``. ``base_states``: the base model's states the filters kept (``BaseStates``),
    the reference's rows when the reference is the base model."""
    import torch

    model = stack.model
    device = next(model.parameters()).device
    barrier = heal.barrier
    tau = barrier.tau if tau is None else tau
    control = heal.regulariser == "nll"
    lam = 0.0 if control else (heal.lam if lam is None else lam)
    spectral = 0.0 if control else heal.spectral
    wd = 0.0 if control else heal.weight_decay
    reverse = heal.regulariser != "kl_fwd"
    optimizer = torch.optim.AdamW(params, lr=heal.lr, weight_decay=wd)
    _train_lora_dropout_only(model, stack.current)
    n = len(completions)
    steps_per_epoch = -(-n // heal.batch_size)
    stats: dict[str, list[float]] = {}
    ref_cache = ReferenceCache(model, completions, heal.epochs, heal.ref_cache_mb, base_states)
    try:
        for epoch in range(heal.epochs):
            order = epoch_order(completions, heal, seed, round_index, epoch)
            stats = {"nll": [], "kl": [], "d": [], "active": [], "loss": [], "spectral": []}
            for step in range(steps_per_epoch):
                chosen = order[step * heal.batch_size : (step + 1) * heal.batch_size]
                batch = [completions[i] for i in chosen]
                bt = batch_tensors(batch, tokenizer, device)
                ref = ref_cache.batch(stack, bt, chosen, batch, barrier.reference, heal.chunk_positions)
                with checkpointed_layers(model, heal.gradient_checkpointing):
                    tlp, kl = completion_terms(model, bt, ref, reverse, heal.chunk_positions,
                                               kl_grad=not control and lam != 0)
                nll = -tlp.mean()
                kl_for_barrier = kl if not control else kl.detach()
                penalty, d = aggregate_barrier(
                    kl_for_barrier, bt.seq_index, len(batch), aggregator, tau, barrier.level
                )
                loss = nll + lam * penalty
                spec = spectral_penalty(stack.lora_pairs(stack.current)) if spectral > 0 else None
                if spec is not None:
                    loss = loss + spectral * spec
                if not torch.isfinite(loss):
                    raise RunError(
                        f"heal: non-finite loss in round {round_index}, epoch {epoch}, step {step} "
                        f"(nll={nll.item():.4g}, barrier={penalty.item():.4g})",
                        status="nan",
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, heal.max_grad_norm)
                optimizer.step()
                stats["nll"].append(nll.item())
                stats["kl"].append(kl.detach().mean().item())
                stats["d"].extend(d.detach().tolist())
                stats["active"].extend((d.detach() > tau).float().tolist())
                stats["loss"].append(loss.item())
                if spec is not None:
                    stats["spectral"].append(spec.item())
                if progress is not None:
                    progress(epoch, step, steps_per_epoch)
                if engine_progress.active():
                    engine_progress.tick(f"heal epoch {epoch + 1}/{heal.epochs}, step {step + 1}/{steps_per_epoch}, "
                                         f"loss {stats['loss'][-1]:.3f} (nll {stats['nll'][-1]:.3f})")
    except torch.cuda.OutOfMemoryError:
        raise RunError(f"heal (round {round_index + 1}): CUDA out of memory; lower {HEAL_OOM_KNOBS}") from None
    finally:
        ref_cache.clear()
        model.eval()
        optimizer.zero_grad(set_to_none=True)

    def mean(xs: list[float]) -> float | None:
        return sum(xs) / len(xs) if xs else None

    return {
        "heal_nll": mean(stats["nll"]),
        "heal_loss": mean(stats["loss"]),
        "heal_kl": mean(stats["kl"]),
        "kl_agg": mean(stats["d"]),
        "barrier_active": mean(stats["active"]) if not control else 0.0,
        "spectral_norm2": mean(stats["spectral"]),
        "heal_steps": float(heal.epochs * steps_per_epoch),
    }


def _train_lora_dropout_only(model: Any, current: str | None) -> None:
    """Eval mode everywhere (no base-model or history dropout: the reference must be exact) except the LoRA
    dropout of the adapter being trained."""
    model.eval()
    if current is None:
        return
    for name, module in model.named_modules():
        if name.endswith(f"lora_dropout.{current}"):
            module.train()
