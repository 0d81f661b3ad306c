"""Train the toy world's model on first use, and cache it in Hugging Face format.

The cache lives under ``$SHL_CACHE_DIR/toyworld/<variant>-<key>`` (default ``~/.cache/shl``), where ``key``
hashes the world version, the tokenizer vocabulary, the model and training hyperparameters, the seed, and the
versions of the libraries that decide the trained weights' bytes (torch, transformers, tokenizers): a change of
any of them trains a new model, so a model trained by other library versions is never silently reused. A
cached model directory holds ``config.json``, the weights (``model.safetensors``), the tokenizer files and
``info.json`` (loss, steps, wall time, parameter count, world version, library versions, and the size and sha256
of every other file, verified on every load: a damaged cache is named with its path, never used). It is trained into a temporary directory next to its final place and renamed into place
atomically, under a file lock, so concurrent processes neither corrupt it nor train it twice.

Training is deterministic for a seed: CPU, float32, one intra-op thread (pinned during training, so the
weights do not depend on the machine's core count; it also keeps training fast on a busy 2-core machine,
where two spinning threads compete with other processes). Bitwise identity holds for one torch build and
CPU instruction set; across builds the model may differ in the last bits.

``python -m shl_plugins.toyworld.train [--variant default|small] [--seed 0] [--force]`` trains and prints info.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from shl.environment import cache_root
from shl.errors import ShlError

from . import world
from .tokenizer import build_tokenizer, vocab

TRAIN_CODE_VERSION = 1  # bump when the training procedure changes in a way the hyperparameters do not show

VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    # what users get: ~2.7M parameters, a few minutes to train on 2 CPU cores (README, "The toy world")
    "default": {
        "model": {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4,
                  "num_attention_heads": 4, "num_key_value_heads": 4},
        "train": {"steps": 300, "batch_size": 32, "lr": 5e-3, "warmup": 20, "min_lr_ratio": 0.05,
                  "weight_decay": 0.0, "grad_clip": 1.0},
    },
    # for tests and CI: trains in a few seconds, follows the grammar only roughly
    "small": {
        "model": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                  "num_attention_heads": 2, "num_key_value_heads": 2},
        "train": {"steps": 40, "batch_size": 16, "lr": 5e-3, "warmup": 5, "min_lr_ratio": 0.1,
                  "weight_decay": 0.0, "grad_clip": 1.0},
    },
}




KEY_LIBRARIES = ("torch", "transformers", "tokenizers")
"""Libraries whose versions decide the trained model's bytes: part of the cache key."""


def library_versions() -> dict[str, str]:
    """The installed versions of KEY_LIBRARIES (from package metadata: no import)."""
    from importlib import metadata

    out = {}
    for name in KEY_LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def spec(variant: str, seed: int) -> dict[str, Any]:
    if variant not in VARIANTS:
        raise ValueError(f"unknown toyworld variant '{variant}' (available: {', '.join(VARIANTS)})")
    v = VARIANTS[variant]
    return {
        "world_version": world.WORLD_VERSION,
        "train_code_version": TRAIN_CODE_VERSION,
        "vocab_sha": hashlib.sha256(json.dumps(vocab(), sort_keys=True).encode()).hexdigest()[:16],
        "model": v["model"],
        "train": v["train"],
        "seed": seed,
        "libraries": library_versions(),
    }


def cache_key(variant: str, seed: int) -> str:
    return hashlib.sha256(json.dumps(spec(variant, seed), sort_keys=True).encode()).hexdigest()[:16]


def model_dir(variant: str = "default", seed: int = 0) -> Path:
    return cache_root() / "toyworld" / f"{variant}-s{seed}-{cache_key(variant, seed)}"


def is_cached(variant: str = "default", seed: int = 0) -> bool:
    return (model_dir(variant, seed) / "info.json").is_file()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (POSIX flock); elsewhere a no-op (the atomic rename still protects)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class CacheDamaged(ShlError):
    """The cached toy model fails its integrity check."""


def file_manifest(directory: Path) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every file of a model directory except info.json."""
    out = {}
    for f in sorted(directory.iterdir()):
        if f.is_file() and f.name != "info.json":
            out[f.name] = {"size": f.stat().st_size, "sha256": hashlib.sha256(f.read_bytes()).hexdigest()}
    return out


def verify_cache(path: Path) -> None:
    """``CacheDamaged`` (one line naming the path and the first bad file) unless the cached model matches the
    manifest its info.json recorded when it was trained."""
    fix = "rebuild it with 'shl toyworld build --rebuild' (or delete that directory)"
    try:
        info = json.loads((path / "info.json").read_text())
    except (OSError, ValueError) as exc:
        raise CacheDamaged(f"toyworld: the cached model {path}: info.json is unreadable ({type(exc).__name__}); {fix}") from None
    files = info.get("files") if isinstance(info, dict) else None
    if not isinstance(files, dict) or "model.safetensors" not in files:
        raise CacheDamaged(f"toyworld: the cached model {path} has no integrity record; {fix}")
    for name, rec in files.items():
        f = path / name
        if not f.is_file():
            raise CacheDamaged(f"toyworld: the cached model {path}: {name} is missing; {fix}")
        if f.stat().st_size != rec.get("size") or hashlib.sha256(f.read_bytes()).hexdigest() != rec.get("sha256"):
            raise CacheDamaged(f"toyworld: the cached model {path}: {name} fails its checksum; {fix}")


_VERIFIED: dict[tuple[str, int, int], None] = {}


def verify_cache_once(path: Path) -> None:
    """``verify_cache``, once per process for an unchanged weights file (plans ask for every run)."""
    try:
        st = (path / "model.safetensors").stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
    except OSError:
        key = None
    if key is not None and key in _VERIFIED:
        return
    verify_cache(path)
    if key is not None:
        _VERIFIED[key] = None


def ensure_model(variant: str = "default", seed: int = 0, force: bool = False, verbose: bool = True) -> Path:
    """Path of the trained model directory, training it first if it is not cached (or ``force``). A cached model
    that fails its integrity check is a ``CacheDamaged`` error (never silently retrained or used)."""
    final = model_dir(variant, seed)
    if not force and (final / "info.json").is_file():
        verify_cache(final)
        return final
    with _file_lock(final.with_name(final.name + ".lock")):
        if not force and (final / "info.json").is_file():  # another process trained it meanwhile
            verify_cache(final)
            return final
        tmp = Path(tempfile.mkdtemp(prefix=final.name + ".tmp-", dir=final.parent))
        try:
            train_into(tmp, variant, seed, verbose=verbose)
            if final.exists():
                old = final.with_name(final.name + f".old-{os.getpid()}")
                os.replace(final, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final


def model_config(variant: str, tok: Any = None) -> Any:
    """The toy model's LlamaConfig for ``variant``."""
    from transformers import LlamaConfig

    tok = tok or build_tokenizer()
    return LlamaConfig(
        vocab_size=len(tok),
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        attention_dropout=0.0,
        **VARIANTS[variant]["model"],
    )


def build_model(variant: str, seed: int):
    import torch
    from transformers import LlamaForCausalLM

    tok = build_tokenizer()
    config = model_config(variant, tok)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    return model, tok


def make_batches(tok, n_steps: int, batch_size: int, seed: int) -> list[tuple[Any, Any, Any]]:
    """Deterministic training batches: (input_ids, attention_mask, labels), right-padded; loss on the
    assistant answer and its end-of-turn token only."""
    import torch

    rng = random.Random(f"toyworld-data-{seed}")
    assistant_id = tok.convert_tokens_to_ids("<|assistant|>")
    batches = []
    for _ in range(n_steps):
        rows = []
        for _ in range(batch_size):
            s = world.make_sample(rng)
            text = tok.apply_chat_template(s.messages(), tokenize=False)
            ids = tok(text, add_special_tokens=False)["input_ids"]
            start = ids.index(assistant_id) + 1
            labels = [-100] * start + ids[start:]
            rows.append((ids, labels))
        width = max(len(r[0]) for r in rows)
        ids_t = torch.full((batch_size, width), tok.pad_token_id, dtype=torch.long)
        lab_t = torch.full((batch_size, width), -100, dtype=torch.long)
        att_t = torch.zeros((batch_size, width), dtype=torch.long)
        for i, (ids, labels) in enumerate(rows):
            ids_t[i, : len(ids)] = torch.tensor(ids)
            lab_t[i, : len(ids)] = torch.tensor(labels)
            att_t[i, : len(ids)] = 1
        batches.append((ids_t, att_t, lab_t))
    return batches


def train_into(out: Path, variant: str = "default", seed: int = 0, verbose: bool = True) -> dict[str, Any]:
    """Train a model and save it (model, tokenizer, info.json) into ``out``. Returns the info dict."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_into(out, variant, seed, verbose)
    finally:
        torch.set_num_threads(threads)


def _train_into(out: Path, variant: str, seed: int, verbose: bool) -> dict[str, Any]:
    import torch

    t0 = time.perf_counter()
    cfg = VARIANTS[variant]["train"]
    model, tok = build_model(variant, seed)
    model.train()
    batches = make_batches(tok, cfg["steps"], cfg["batch_size"], seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg["lr"], betas=(0.9, 0.98), eps=1e-8,
    )
    steps, warmup = cfg["steps"], cfg["warmup"]

    def lr_at(step: int) -> float:
        if step < warmup:
            return cfg["lr"] * (step + 1) / warmup
        t = (step - warmup) / max(1, steps - warmup)
        lo = cfg["min_lr_ratio"]
        return cfg["lr"] * (lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * t)))

    losses: list[float] = []
    for step, (ids, att, labels) in enumerate(batches):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        out_ = model(input_ids=ids, attention_mask=att, labels=labels)
        opt.zero_grad(set_to_none=True)
        out_.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
        opt.step()
        losses.append(float(out_.loss.detach()))
        if verbose and (step % 50 == 0 or step == steps - 1):
            print(f"[toyworld] train {variant} step {step + 1}/{steps} loss {losses[-1]:.4f} "
                  f"({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)
    model.eval()
    wall = time.perf_counter() - t0
    model.generation_config.bos_token_id = tok.bos_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    tail = losses[-10:]
    info = {
        "world_version": world.WORLD_VERSION,
        "variant": variant,
        "seed": seed,
        "key": cache_key(variant, seed),
        "spec": spec(variant, seed),
        "steps": steps,
        "final_loss": sum(tail) / len(tail),
        "loss_curve": [round(x, 4) for x in losses[:: max(1, steps // 30)]],
        "wall_s": round(wall, 2),
        "n_params": sum(p.numel() for p in model.parameters()),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "files": file_manifest(out),
    }
    (out / "info.json").write_text(json.dumps(info, indent=2))
    if verbose:
        print(f"[toyworld] trained {variant} ({info['n_params']:,} params) in {wall:.1f}s, "
              f"final loss {info['final_loss']:.4f} -> {out}", file=sys.stderr, flush=True)
    return info


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="train (or find) the cached toy-world model")
    ap.add_argument("--variant", default="default", choices=sorted(VARIANTS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="retrain even if cached")
    args = ap.parse_args(argv)
    path = ensure_model(args.variant, args.seed, force=args.force)
    print(path)
    print((path / "info.json").read_text())


if __name__ == "__main__":
    main()
