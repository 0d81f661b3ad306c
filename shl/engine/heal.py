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

Memory (real vocabularies, 150k-260k): no B x T x V tensor is ever built. The decoder's final hidden states are
sliced to the completion positions, and the LM head, the log-softmaxes, the NLL and the KL run over chunks of
``HealSettings.chunk_positions`` positions (``completion_terms``). Each chunk's vocabulary-sized graph is freed
before the next: the chunk's gradients with respect to its hidden states are taken right away, one vector per
position for the token log-prob and one for the KL (each position's terms depend on its own hidden state only),
and the backward combines them with the upstream gradients (from the mean and from the barrier aggregator):
exactly the unchunked gradient, up to float reassociation. The reference is held as its final hidden states at
the selected positions ([M, hidden], model dtype) and turned into log-probs chunk by chunk through the shared,
frozen head (``ReferenceRows``); when the head itself carries LoRA adapters, or the model's logits are not
"head(final hidden state)", the reference's log-probs are materialised instead (correct, not bounded).
The reference cache then holds those rows too; its budget check still counts what the log-probabilities would
take (float32 vocabulary rows), so the cache decision is unchanged and the memory it uses is at most that
(hidden / vocabulary of it when hidden states are cached).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence
from contextlib import contextmanager as _contextmanager
from functools import partial as _partial
from typing import Callable as _Callable, Iterator as _Iterator

from ..api import Aggregator, Completion
from ..errors import RunError
from .batching import pad_id, right_pad
from .lmhead import _identity, chunks, final_states, head_is_adapted, head_module
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
    chunk_positions: int = 128  # positions per LM-head / log-softmax / KL chunk (memory: chunk x vocabulary)
    gradient_checkpointing: bool = False  # recompute each decoder layer in the backward (student forward)
    group_by_length: bool = True  # batches of similar length (less padding); False: plain random batches


def epoch_order(completions: Sequence[Completion], settings: HealSettings, seed: int, round_index: int,
                epoch: int) -> list[int]:
    """The order in which an epoch visits the completions: a seeded permutation; with ``group_by_length``, each
    window of 4 batches is then sorted by length and the batches shuffled, so a batch pads little (about 84%
    of its tokens are real on the toy world, against 70% for random batches) and still mixes the data."""
    import torch

    gen = torch_generator(seed, "heal", round_index, epoch)
    order = torch.randperm(len(completions), generator=gen).tolist()
    if not settings.group_by_length:
        return order
    bs, window = settings.batch_size, 4 * settings.batch_size
    length = [len(c.prompt_ids) + len(c.completion_ids) for c in completions]
    grouped: list[int] = []
    for start in range(0, len(order), window):
        grouped += sorted(order[start:start + window], key=lambda i: length[i])
    batches = [grouped[i:i + bs] for i in range(0, len(grouped), bs)]
    return [i for b in (batches[j] for j in torch.randperm(len(batches), generator=gen).tolist()) for i in b]


def ref_cache_bytes(completions: Sequence[Completion], vocab_size: int) -> int:
    """Bytes the reference cache needs: one float32 row of the vocabulary per completion token."""
    return sum(len(c.completion_ids) for c in completions) * int(vocab_size) * 4


def _vocab_size(model: Any) -> int | None:
    try:
        return int(model.get_output_embeddings().weight.shape[0])
    except Exception:
        return None


def _head_logprobs(head: _Callable[[Any], Any], rows: Any) -> Any:
    import torch

    return torch.log_softmax(head(rows).float(), dim=-1)


@dataclass
class ReferenceRows:
    """The frozen reference at the selected positions: ``rows`` [M, W] and ``to_logprobs``, which maps a slice of
    rows to float32 log-probabilities [n, V]. Usually the reference's final hidden states and the shared frozen
    LM head (M x hidden held, not M x vocabulary); the log-probabilities themselves (identity map) when the head
    is adapted or not separable from the model's forward."""

    rows: Any
    to_logprobs: _Callable[[Any], Any]

    def logprobs(self, start: int, stop: int) -> Any:
        return self.to_logprobs(self.rows[start:stop])

    def split(self, sizes: list[int]) -> list["ReferenceRows"]:
        return [ReferenceRows(part, self.to_logprobs) for part in self.rows.split(sizes)]

    @staticmethod
    def cat(parts: Sequence["ReferenceRows"]) -> "ReferenceRows":
        import torch

        return ReferenceRows(torch.cat([p.rows for p in parts]), parts[0].to_logprobs)

    def materialise(self, chunk_positions: int = 128) -> Any:
        """All float32 log-probabilities [M, V] (M x vocabulary: for callers that need them whole)."""
        import torch

        with torch.no_grad():
            return torch.cat([self.logprobs(a, b) for a, b in chunks(self.rows.shape[0], chunk_positions)])


def reference_logprobs(
    stack: Any, bt: BatchTensors, reference: str, lazy: bool = False, chunk_positions: int = 128
) -> Any:
    """float32 log-probabilities [M, V] of the reference (base or previous student) at the selected positions;
    with ``lazy``, a ``ReferenceRows`` that yields them chunk by chunk (what the heal uses: M x hidden held).

    ``disabled()`` / ``only()`` save and restore ``requires_grad`` (PEFT's disable_adapter/set_adapter turn it back on for every active adapter)."""
    import torch

    ref_ctx = stack.disabled() if reference == "base" else stack.only(stack.previous)
    with torch.no_grad(), ref_ctx as ref_model:
        states, head = final_states(ref_model, bt.ids, bt.mask)
        rows = states[bt.select]
        del states
        ref = ReferenceRows(rows, _partial(_head_logprobs, head))
        if head is _identity or head_is_adapted(ref_model):  # the head depends on the adapter state: log-probs now
            ref = ReferenceRows(ref.materialise(chunk_positions), _identity)
    return ref if lazy else ref.materialise(chunk_positions)


class _CompletionTerms:
    """The autograd Function behind ``completion_terms`` (built on first use: torch is imported lazily).

    Forward, per chunk of positions: the student's float32 log-prob of the target token and the KL to the
    reference, from the final hidden states [M, W]; and right away, per position, J_tlp = d tlp / d state and
    J_kl = d KL / d state ([M, W] each; the chunk's vocabulary-sized tensors then freed): the gradients with
    respect to the logits are analytic (float32: onehot - p_s; reverse KL p_s * (log_s - log_r - KL); forward KL
    p_s - p_r), taken back through the head by autograd (soft-capping included). Backward:
    g_tlp * J_tlp + g_kl * J_kl (each position's terms depend on its own state only, so this is exact)."""

    fn: Any = None

    @classmethod
    def apply(cls, *args: Any) -> Any:
        if cls.fn is None:
            cls.fn = _make_completion_terms()
        return cls.fn.apply(*args)


def _make_completion_terms() -> Any:
    import torch

    class CompletionTerms(torch.autograd.Function):
        @staticmethod
        def forward(ctx, states, targets, head, ref, reverse, chunk, kl_grad):
            n = states.shape[0]
            tlp = torch.empty(n, dtype=torch.float32, device=states.device)
            kl = torch.zeros(n, dtype=torch.float32, device=states.device)
            j_tlp = torch.empty_like(states)
            j_kl = torch.empty_like(states) if (kl_grad and ref is not None) else None
            for a, b in chunks(n, chunk):
                with torch.enable_grad():
                    x = states[a:b].detach().requires_grad_(True)
                    z = head(x)
                with torch.no_grad():
                    # analytic gradients with respect to the logits z (float32), then back through the head only
                    log_s = torch.log_softmax(z.float(), dim=-1)
                    p_s = log_s.exp()
                    tgt = targets[a:b, None]
                    tlp[a:b] = log_s.gather(-1, tgt).squeeze(-1)
                    g = p_s.neg()
                    g.scatter_add_(-1, tgt, torch.ones_like(tgt, dtype=g.dtype))  # d tlp / dz = onehot - p_s
                    g_kl = None
                    if ref is not None:
                        log_r = ref.logprobs(a, b)
                        if reverse:  # KL(s || r) = sum p_s (log_s - log_r); d/dz = p_s * (d - KL)
                            d = log_s.sub_(log_r)
                            del log_r
                            k = (p_s * d).sum(-1)
                            if j_kl is not None:
                                g_kl = d.sub_(k[:, None]).mul_(p_s)
                        else:  # KL(r || s) = sum p_r (log_r - log_s); d/dz = p_s - p_r
                            p_r = log_r.exp()
                            k = (p_r * (log_r - log_s)).sum(-1)
                            del log_r
                            if j_kl is not None:
                                g_kl = p_s.sub_(p_r)
                            del p_r
                        kl[a:b] = k
                    del log_s, p_s
                with torch.enable_grad():
                    j_tlp[a:b] = torch.autograd.grad(z, x, g.to(z.dtype), retain_graph=g_kl is not None)[0]
                    if g_kl is not None:
                        j_kl[a:b] = torch.autograd.grad(z, x, g_kl.to(z.dtype))[0]
                del x, z, g, g_kl
            ctx.j = (j_tlp, j_kl)
            return tlp, kl

        @staticmethod
        def backward(ctx, g_tlp, g_kl):
            j_tlp, j_kl = ctx.j
            grad = g_tlp.float()[:, None] * j_tlp.float()
            if j_kl is not None:
                grad = grad + g_kl.float()[:, None] * j_kl.float()
            ctx.j = None
            return grad.to(j_tlp.dtype), None, None, None, None, None, None

    return CompletionTerms


def completion_terms(
    model: Any, bt: BatchTensors, ref: ReferenceRows | None, reverse: bool, chunk_positions: int = 128,
    kl_grad: bool = True,
) -> tuple[Any, Any]:
    """(token log-probs [M], KL [M]) of the student at the selected positions, float32, differentiable with
    respect to the student's parameters (the KL only when ``kl_grad``; zeros when ``ref`` is None).

    Memory-bounded (module docstring). A trainable LM head (LoRA on the head) keeps each chunk's graph instead,
    so the head's own parameters get their gradients."""
    import torch

    states, head = final_states(model, bt.ids, bt.mask)
    rows = states[bt.select]
    del states
    module = head_module(model)
    if head is not _identity and module is not None and any(p.requires_grad for p in module.parameters()):
        tl, kls = [], []
        for a, b in chunks(rows.shape[0], chunk_positions):
            log_s = torch.log_softmax(head(rows[a:b]).float(), dim=-1)
            tl.append(log_s.gather(-1, bt.targets[a:b, None]).squeeze(-1))
            if ref is None:
                kls.append(torch.zeros(b - a, device=rows.device))
            else:
                log_r = ref.logprobs(a, b)
                k = divergence(log_s, log_r) if reverse else divergence(log_r, log_s)
                kls.append(k if kl_grad else k.detach())
        return torch.cat(tl), torch.cat(kls)
    return _CompletionTerms.apply(rows, bt.targets, head, ref, reverse, chunk_positions, kl_grad)


@_contextmanager
def checkpointed_layers(model: Any, enabled: bool) -> _Iterator[None]:
    """Gradient checkpointing of the decoder layers (``heal.gradient_checkpointing``) for forwards run inside:
    each layer's forward runs under ``torch.utils.checkpoint`` (non-reentrant, RNG state preserved, so LoRA
    dropout masks replay) while gradients are enabled, and is recomputed in the backward. Unlike transformers'
    switch it does not need train mode (the heal keeps the base model in eval mode so the reference stays exact).
    Forward hooks (steering) stay outside the checkpoint."""
    if not enabled:
        yield
        return
    import torch
    from torch.utils.checkpoint import checkpoint

    from .layers import decoder_layers

    layers = decoder_layers(model)

    def wrap(forward: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            if torch.is_grad_enabled():
                if "use_cache" in kwargs:
                    kwargs["use_cache"] = False
                return checkpoint(forward, *args, use_reentrant=False, **kwargs)
            return forward(*args, **kwargs)

        return run

    for layer in layers:
        layer.forward = wrap(type(layer).forward.__get__(layer))
    try:
        yield
    finally:
        for layer in layers:
            layer.__dict__.pop("forward", None)


HEAL_OOM_KNOBS = "heal.batch_size (or heal.chunk_positions; or set heal.gradient_checkpointing: true)"


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
    # reference cache: completion index -> ReferenceRows (its final hidden states, or log-probs), filled in epoch 0
    vocab = _vocab_size(model)
    use_cache = (
        settings.epochs > 1 and settings.ref_cache_mb > 0 and vocab is not None
        and ref_cache_bytes(completions, vocab) <= settings.ref_cache_mb * 2**20
    )
    ref_cache: dict[int, Any] = {}
    try:
        for epoch in range(settings.epochs):
            order = epoch_order(completions, settings, seed, round_index, epoch)
            stats = {"nll": [], "kl": [], "d": [], "active": [], "loss": [], "spectral": []}
            for step in range(steps_per_epoch):
                chosen = order[step * settings.batch_size : (step + 1) * settings.batch_size]
                batch = [completions[i] for i in chosen]
                bt = batch_tensors(batch, tokenizer, device)
                if use_cache and all(i in ref_cache for i in chosen):
                    ref = ReferenceRows.cat([ref_cache[i] for i in chosen])
                else:
                    ref = reference_logprobs(stack, bt, settings.reference, lazy=True,
                                             chunk_positions=settings.chunk_positions)
                    if use_cache:
                        for i, part in zip(chosen, ref.split([len(c.completion_ids) for c in batch])):
                            ref_cache[i] = part
                with checkpointed_layers(model, settings.gradient_checkpointing):
                    tlp, kl = completion_terms(model, bt, ref, reverse, settings.chunk_positions,
                                               kl_grad=not control and lam != 0)
                nll = -tlp.mean()
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


class _RecordingAggregator:
    """Wraps an aggregator and records every D it returns (the barrier's own values, as the heal computes them)."""

    def __init__(self, inner: Aggregator):
        self.inner = inner
        self.values: list[float] = []

    def aggregate(self, kl: Any) -> Any:
        d = self.inner.aggregate(kl)
        self.values.append(float(d.detach().reshape(-1)[0]) if hasattr(d, "detach") else float(d))
        return d


@dataclass
class TauCalibration:
    """Matched tau: ``tau``; ``share``, the share of D values above it in the trial epoch run at that tau (which
    the real heal's first epoch reproduces); ``values``, those D values; ``trials``, (tau, share) of every trial
    with the barrier on."""

    tau: float
    share: float
    values: list[float]
    trials: list[tuple[float, float]]


def calibrate_tau(
    stack: Any,
    tokenizer: Any,
    completions: Sequence[Completion],
    settings: HealSettings,
    aggregator: Aggregator,
    params: list[Any],
    seed: int,
    round_index: int,
    quantile: float,
    max_trials: int = 4,
) -> TauCalibration:
    """Matched tau: the tau at which the barrier is active on 1 - ``quantile`` of the D values of this round's
    first heal epoch (within one sampling standard error, or the closest of ``max_trials`` tries).

    The D values are the barrier's own: trial passes of this round's first heal epoch on the kept completions the
    heal trains on, in the batches and order the heal uses, against the same reference, KL direction and
    aggregation level (``level=sequence``: one D per sequence; ``level=batch``: one D per batch). After each
    trial the adapter's parameters and the RNG state are restored, so every trial, and the real heal, start from
    the same state. The first trial runs with the barrier off and gives tau_0 = quantile of its D values; an
    active barrier then pulls D down, so further trials run with the barrier on at tau_k and set tau_(k+1) to the
    quantile of their D values (a fixed-point iteration), until the share of D > tau_k in the trial at tau_k is
    within sampling error of 1 - quantile. The chosen tau is one a trial ran at, so the real heal's first epoch
    repeats that trial (exactly on CPU) and its barrier is active on the reported share.
    """
    import dataclasses
    import math

    import torch

    device = next(stack.model.parameters()).device

    def trial(lam: float, tau: float) -> list[float]:
        recorder = _RecordingAggregator(aggregator)
        saved = [p.detach().clone() for p in params]
        try:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                heal_round(stack, tokenizer, completions, dataclasses.replace(settings, epochs=1, lam=lam, tau=tau),
                           recorder, params, seed, round_index)
        finally:
            with torch.no_grad():
                for p, s in zip(params, saved):
                    p.copy_(s)
                    p.grad = None
        if not recorder.values:
            raise RunError("heal: tau calibration saw no D values (no completions to train on)", status="failed")
        return recorder.values

    def q_of(values: list[float]) -> float:
        return float(torch.quantile(torch.tensor(values, dtype=torch.float64), quantile))

    def share(values: list[float], tau: float) -> float:
        return sum(v > tau for v in values) / len(values)

    values = trial(0.0, 0.0)
    tau = q_of(values)
    target = 1.0 - quantile
    if settings.lam == 0:  # the barrier never bites: the barrier-off epoch is the real one
        return TauCalibration(tau, share(values, tau), values, [])
    tol = max(math.sqrt(quantile * (1 - quantile) / len(values)), 1.0 / len(values))
    tried: list[TauCalibration] = []
    for _ in range(max(max_trials, 1)):
        values = trial(settings.lam, tau)
        tried.append(TauCalibration(tau, share(values, tau), values, []))
        if abs(tried[-1].share - target) <= tol:
            break
        tau = _next_tau(tried, q_of(values), target)
    best = min(tried, key=lambda c: abs(c.share - target))
    best.trials = [(c.tau, c.share) for c in tried]
    return best


def _next_tau(tried: list[TauCalibration], fixed_point: float, target: float) -> float:
    """The next tau to try: a secant step in log tau through the last two trials' (tau, share) when they
    differ in share (faster), kept within a factor 4 of the tried range; else the fixed-point step."""
    import math

    if len(tried) < 2 or fixed_point <= 0:
        return fixed_point
    a, b = tried[-2], tried[-1]
    if a.tau <= 0 or b.tau <= 0 or a.share == b.share or a.tau == b.tau:
        return fixed_point
    la, lb = math.log(a.tau), math.log(b.tau)
    guess = lb + (target - b.share) * (lb - la) / (b.share - a.share)
    lo = min(c.tau for c in tried) / 4
    hi = max(c.tau for c in tried) * 4
    return min(max(math.exp(guess), lo), hi)
