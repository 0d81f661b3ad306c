"""The heal step: train this round's LoRA adapter on the kept completions with a KL barrier.

    L = NLL(completion tokens, end-of-turn included) + lam_r * relu(D - tau) + spectral * sum ||s B A||_2^2

KL_t is the per-position divergence between the student and the reference over the full vocabulary, in
float32, at every position that predicts a completion token. ``reverse`` = KL(student || ref),
``forward`` = KL(ref || student). D = aggregator(KL) per sequence (``level=sequence``: the penalty is the
mean over sequences of relu(D_i - tau)) or over all masked positions of the batch (``level=batch``).
The reference is the previous student (adapters of earlier rounds) or the base model, computed on the same
model object with adapters switched, never a weight copy. The ``nll`` regulariser trains on NLL alone (weight
decay and the spectral penalty off too) but still logs the KL to the reference.

The reference is frozen for the whole round, so its log-probabilities (completion positions only, float32) are
computed once per completion, during the first epoch, and reused by later epochs when they fit
``HealSettings.ref_cache_mb`` (0 = recompute every epoch). Reused values are the very tensors the first epoch
computed, so the loss equals the recomputing path up to float reassociation (batch composition changes).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Sequence

from ..api import Aggregator, Completion
from ..errors import RunError
from .batching import pad_id, right_pad
from .seeds import torch_generator


@dataclass
class BatchTensors:
    ids: Any
    mask: Any
    select: Any  # bool [B, T]: logits positions that predict a completion token
    targets: Any  # [M] the predicted tokens, in select order
    seq_index: Any  # [M] which sequence each selected position belongs to


def batch_tensors(completions: Sequence[Completion], tokenizer: Any, device: Any) -> BatchTensors:
    import torch

    seqs = [list(c.prompt_ids) + list(c.completion_ids) for c in completions]
    ids, mask = right_pad(seqs, pad_id(tokenizer), device)
    select = torch.zeros_like(ids, dtype=torch.bool)
    for row, c in enumerate(completions):
        n_p, n_c = len(c.prompt_ids), len(c.completion_ids)
        select[row, n_p - 1 : n_p - 1 + n_c] = True
    if not bool(select.any()):
        raise RunError("heal: the batch has no completion tokens to train on (empty mask)", status="failed")
    shifted = torch.zeros_like(select)
    shifted[:, 1:] = select[:, :-1]
    targets = ids[shifted]
    seq_index = torch.arange(ids.shape[0], device=device)[:, None].expand_as(ids)[select]
    return BatchTensors(ids, mask, select, targets, seq_index)


def divergence(log_p: Any, log_q: Any) -> Any:
    """Per-row KL(p || q) from float32 log-probabilities [M, V]."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def aggregate_barrier(
    kl: Any, seq_index: Any, n_seqs: int, aggregator: Aggregator, tau: float, level: str
) -> tuple[Any, Any]:
    """(penalty, D values): per sequence mean of relu(D_i - tau), or relu(D - tau) over the batch."""
    import torch

    if level == "batch":
        d = aggregator.aggregate(kl).reshape(1)
    else:
        d = torch.stack([aggregator.aggregate(kl[seq_index == i]) for i in range(n_seqs)])
    return torch.relu(d - tau).mean(), d


def spectral_penalty(pairs: list[tuple[Any, Any, float]]) -> Any:
    """sum over LoRA layers of the squared spectral norm of scaling * B @ A.

    The top right singular vector x of scaling * B @ A is found without gradient (QR, then the SVD of an
    r x r matrix: cheap); the penalty is ||scaling * B @ A @ x||^2, whose value is sigma_max^2 and whose
    gradient is that of sigma_max^2 (x is optimal). Differentiating through QR/SVD instead gives NaN gradients
    at B = 0 (every round's start) and wherever singular values coincide.
    """
    import torch

    total = None
    for a, b, scaling in pairs:
        a32, b32 = a.float(), b.float()
        with torch.no_grad():
            _, rb = torch.linalg.qr(b32)
            qa, ra = torch.linalg.qr(a32.T)
            _, _, vh = torch.linalg.svd(scaling * rb @ ra.T)
            x = qa @ vh[0]
        s = (scaling * (b32 @ (a32 @ x))).square().sum()
        total = s if total is None else total + s
    return total if total is not None else torch.zeros(())


@dataclass
class HealSettings:
    regulariser: str  # kl_rev | kl_fwd | nll
    reference: str  # prev | base
    level: str  # sequence | batch
    lam: float
    tau: float
    spectral: float
    weight_decay: float
    epochs: int
    lr: float
    batch_size: int
    max_grad_norm: float
    ref_cache_mb: int = 1024  # reference log-prob cache budget (MiB); 0 = recompute the reference every epoch


def ref_cache_bytes(completions: Sequence[Completion], vocab_size: int) -> int:
    """Bytes the reference cache needs: one float32 row of the vocabulary per completion token."""
    return sum(len(c.completion_ids) for c in completions) * int(vocab_size) * 4


def _vocab_size(model: Any) -> int | None:
    try:
        return int(model.get_output_embeddings().weight.shape[0])
    except Exception:
        return None


def reference_logprobs(stack: Any, bt: BatchTensors, reference: str) -> Any:
    """float32 log-probabilities [M, V] of the reference (base or previous student) at the selected positions.

    ``disabled()`` / ``only()`` save and restore ``requires_grad`` (PEFT turns it back on, DESIGN section 5)."""
    import torch

    ref_ctx = stack.disabled() if reference == "base" else stack.only(stack.previous)
    with torch.no_grad(), ref_ctx as ref_model:
        ref_logits = ref_model(input_ids=bt.ids, attention_mask=bt.mask).logits
        return torch.log_softmax(ref_logits[bt.select].float(), dim=-1)


def heal_round(
    stack: Any,
    tokenizer: Any,
    completions: Sequence[Completion],
    settings: HealSettings,
    aggregator: Aggregator,
    params: list[Any],
    seed: int,
    round_index: int,
    progress: Any = None,
) -> dict[str, float]:
    """Train ``params`` (the current adapter) in place; return heal statistics of the last epoch."""
    import torch

    model = stack.model
    device = next(model.parameters()).device
    control = settings.regulariser == "nll"
    lam = 0.0 if control else settings.lam
    spectral = 0.0 if control else settings.spectral
    wd = 0.0 if control else settings.weight_decay
    reverse = settings.regulariser != "kl_fwd"
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=wd)
    _train_lora_dropout_only(model, stack.current)
    n = len(completions)
    steps_per_epoch = -(-n // settings.batch_size)
    stats: dict[str, list[float]] = {}
    # reference cache: completion index -> float32 [n_completion_tokens, V], filled during epoch 0
    vocab = _vocab_size(model)
    use_cache = (
        settings.epochs > 1 and settings.ref_cache_mb > 0 and vocab is not None
        and ref_cache_bytes(completions, vocab) <= settings.ref_cache_mb * 2**20
    )
    ref_cache: dict[int, Any] = {}
    try:
        for epoch in range(settings.epochs):
            order = torch.randperm(n, generator=torch_generator(seed, "heal", round_index, epoch)).tolist()
            stats = {"nll": [], "kl": [], "d": [], "active": [], "loss": [], "spectral": []}
            for step in range(steps_per_epoch):
                chosen = order[step * settings.batch_size : (step + 1) * settings.batch_size]
                batch = [completions[i] for i in chosen]
                bt = batch_tensors(batch, tokenizer, device)
                logits = model(input_ids=bt.ids, attention_mask=bt.mask).logits
                log_s = torch.log_softmax(logits[bt.select].float(), dim=-1)
                if use_cache and all(i in ref_cache for i in chosen):
                    log_r = torch.cat([ref_cache[i] for i in chosen])
                else:
                    log_r = reference_logprobs(stack, bt, settings.reference)
                    if use_cache and log_r.shape[-1] == vocab:
                        for i, part in zip(chosen, log_r.split([len(c.completion_ids) for c in batch])):
                            ref_cache[i] = part
                nll = -log_s.gather(-1, bt.targets[:, None]).mean()
                kl = divergence(log_s, log_r) if reverse else divergence(log_r, log_s)
                kl_for_barrier = kl if not control else kl.detach()
                penalty, d = aggregate_barrier(
                    kl_for_barrier, bt.seq_index, len(batch), aggregator, settings.tau, settings.level
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
                torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
                optimizer.step()
                stats["nll"].append(nll.item())
                stats["kl"].append(kl.detach().mean().item())
                stats["d"].extend(d.detach().tolist())
                stats["active"].extend((d.detach() > settings.tau).float().tolist())
                stats["loss"].append(loss.item())
                if spec is not None:
                    stats["spectral"].append(spec.item())
                if progress is not None:
                    progress(epoch, step, steps_per_epoch)
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
        "heal_steps": float(settings.epochs * steps_per_epoch),
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


def sequence_divergences(
    model: Any,
    tokenizer: Any,
    completions: Sequence[Completion],
    aggregator: Aggregator,
    reverse: bool,
    steerer: Any,
    batch_size: int,
) -> list[float]:
    """D_i between the steered and the unsteered model per completion (for matching tau across arms)."""
    import torch

    device = next(model.parameters()).device
    out: list[float] = []
    for start in range(0, len(completions), batch_size):
        batch = completions[start : start + batch_size]
        bt = batch_tensors(batch, tokenizer, device)
        with torch.no_grad():
            steered = torch.log_softmax(model(input_ids=bt.ids, attention_mask=bt.mask).logits[bt.select].float(), -1)
            with steerer.paused() if steerer is not None else nullcontext():
                plain = torch.log_softmax(model(input_ids=bt.ids, attention_mask=bt.mask).logits[bt.select].float(), -1)
        kl = divergence(steered, plain) if reverse else divergence(plain, steered)
        for i in range(len(batch)):
            out.append(float(aggregator.aggregate(kl[bt.seq_index == i])))
    return out
