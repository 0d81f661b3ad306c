"""Memory benchmark of the heal step at real vocabulary sizes (CPU, no download).

    python benchmarks/memory.py                        # 152k and 262k vocabularies, default batch
    python benchmarks/memory.py --vocab 262144 --chunk 64 128 256

Models: tiny random Llama-architecture models (2 layers, hidden 64) with real vocabulary sizes (Qwen 2/3: 151,936
-> 152,064 padded; Gemma 3: 262,144), so the LM head dominates as it does for real chat models at long
completions. The batch: 8 sequences of 24 prompt + 64 completion tokens (random ids), a round-1 student (adapter
r0 folded with non-zero B, adapter r1 trained), LoRA r=8 on the attention and MLP projections.

Steps compared, each on the same batch:
  heal        shl's heal step with the KL barrier (kl_rev, reference = prev, rmse, level sequence): one
              ``heal_round`` over the batch (reference forward, student forward, chunked head/NLL/KL, backward,
              AdamW step)
  sft         a plain SFT step: the model's full logits [B, T, V], float32 log-softmax at the completion
              positions, NLL, backward, AdamW step (the same code as benchmarks/bench.py's plain SFT step)
  hf_sft      transformers' own loss: ``model(input_ids, attention_mask, labels=...)`` (labels -100 off the
              completion), backward, AdamW step
  heal_full   the heal step as it was before the chunking (full logits of the student and of the reference,
              float32 log-softmax over [M, V] for both), for comparison

Peak memory method: every (step, vocabulary) is measured in a fresh Python subprocess (1 thread) with glibc's
``MALLOC_MMAP_THRESHOLD_=65536``, so every large tensor is its own mmap and freeing it returns it to the OS
(RSS then follows live tensors; torch's CPU allocator keeps no cache). The child loads the model, builds the
batch, runs one warm-up step on a 1-sequence batch (lazy initialisation, optimizer state), reads its resident
set size (VmRSS, /proc/self/status), runs the step once, and reads the high-water mark ``ru_maxrss``
(resource.getrusage). "step peak" = high-water mark - resident size before the step: the memory the step
itself needs on top of the loaded model; "process peak" is the high-water mark itself.
Time: median of --repeats steps per kind in one process, the kinds interleaved (heal, sft, hf_sft, ...).
With ``--device cuda``: the model in bfloat16 on the GPU, peak = ``torch.cuda.max_memory_allocated`` during the
step minus the memory allocated before it (the process column is then the CUDA peak), times synchronised.
Timings are for reading, never for pass/fail tests.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("heal", "sft", "hf_sft", "heal_full")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def setup(vocab: int, hidden: int, layers: int, batch: int, prompt_len: int, completion_len: int, chunk: int):
    import torch

    from plugins.models.tiny_random import make_config
    from plugins.models.tiny_tokenizer import tiny_tokenizer
    from shl import api
    from shl.config.models import LoraConfig
    from shl.engine.adapters import AdapterStack
    from shl.config.models import HealConfig
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    tok = tiny_tokenizer()
    special = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
    cfg = make_config("llama", vocab, hidden, layers, 4, special)
    model = AutoModelForCausalLM.from_config(cfg).float().eval()
    stack = AdapterStack(model, LoraConfig(r=8, alpha=16.0))
    stack.new_round()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _, b, _ in stack.lora_pairs("r0"):
            b.copy_(torch.randn(b.shape, generator=g) * 0.05)
    stack.fold()
    params = stack.new_round()

    def comps(n: int, lp: int, lc: int):
        ids = torch.randint(3, vocab, (n, lp + lc), generator=g).tolist()
        return [api.Completion(user="u", prompt_ids=r[:lp], completion_ids=r[lp:], text="") for r in ids]

    settings = HealConfig(regulariser="kl_rev", barrier={"reference": "prev", "level": "sequence", "tau": 0.0},
                          lam=1.0, spectral=0.0, weight_decay=0.0, epochs=1, lr=1e-4, batch_size=batch,
                          max_grad_norm=1.0, chunk_positions=chunk)
    return tok, stack, params, comps(batch, prompt_len, completion_len), comps(1, 4, 4), settings


def step_fns(tok, stack, params, settings, device: str = "cpu"):
    import torch

    from shl.engine.barrier import aggregate_barrier, divergence
    from shl.engine.heal import heal_round
    from shl.engine.heal_batches import batch_tensors
    from shl.manager import get_host

    agg = get_host().registry.build("aggregator", "rmse")
    opt = torch.optim.AdamW(params, lr=1e-4)

    def heal(batch):
        heal_round(stack, tok, batch, settings, agg, params, 0, 1)

    def sft(batch):
        bt = batch_tensors(batch, tok, device)
        logits = stack.model(input_ids=bt.ids, attention_mask=bt.mask).logits
        log_s = torch.log_softmax(logits[bt.select].float(), dim=-1)
        loss = -log_s.gather(-1, bt.targets[:, None]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def hf_sft(batch):
        bt = batch_tensors(batch, tok, device)
        labels = torch.full_like(bt.ids, -100)
        shifted = torch.zeros_like(bt.select)
        shifted[:, 1:] = bt.select[:, :-1]
        labels[shifted] = bt.ids[shifted]
        loss = stack.model(input_ids=bt.ids, attention_mask=bt.mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def heal_full(batch):
        bt = batch_tensors(batch, tok, device)
        logits = stack.model(input_ids=bt.ids, attention_mask=bt.mask).logits
        log_s = torch.log_softmax(logits[bt.select].float(), dim=-1)
        with torch.no_grad(), stack.only(stack.previous) as ref:
            log_r = torch.log_softmax(ref(input_ids=bt.ids, attention_mask=bt.mask).logits[bt.select].float(), -1)
        nll = -log_s.gather(-1, bt.targets[:, None]).mean()
        penalty, _ = aggregate_barrier(divergence(log_s, log_r), bt.seq_index, len(batch), agg, 0.0, "sequence")
        loss = nll + penalty
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    return {"heal": heal, "sft": sft, "hf_sft": hf_sft, "heal_full": heal_full}


def child(args) -> None:
    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    tok, stack, params, batch, tiny, settings = setup(args.vocab[0], args.hidden, args.layers, args.batch,
                                                        args.prompt_len, args.completion_len, args.chunk[0])
    cuda = args.device.startswith("cuda")
    if cuda:
        stack.model.to(device=args.device, dtype=torch.bfloat16)
        for p in params:  # LoRA weights stay float32, as in a run
            p.data = p.data.float()
    fns = step_fns(tok, stack, params, settings, device=args.device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if args.child == "time":
        kinds = args.kinds
        for k in kinds:
            fns[k](batch)  # warm-up
        times: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(args.repeats):
            for k in kinds:
                sync()
                t0 = time.perf_counter()
                fns[k](batch)
                sync()
                times[k].append(time.perf_counter() - t0)
        print(json.dumps({k: statistics.median(v) for k, v in times.items()}))
        return
    fn = fns[args.child]
    fn(tiny)  # warm-up on a 1-sequence batch: lazy initialisation, optimizer state
    if cuda:
        sync()
        before = torch.cuda.memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
        fn(batch)
        sync()
        print(json.dumps({"before_mb": before, "peak_mb": torch.cuda.max_memory_allocated() / 2**20}))
        return
    before = rss_mb()
    fn(batch)
    print(json.dumps({"before_mb": before, "peak_mb": peak_mb()}))


def run_child(kind: str, vocab: int, chunk: int, args, kinds: list[str] | None = None) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MALLOC_MMAP_THRESHOLD_="65536",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, __file__, "--child", kind, "--vocab", str(vocab), "--chunk", str(chunk),
           "--hidden", str(args.hidden), "--layers", str(args.layers), "--batch", str(args.batch),
           "--prompt-len", str(args.prompt_len), "--completion-len", str(args.completion_len),
           "--repeats", str(args.repeats), "--device", args.device]
    if kinds:
        cmd += ["--kinds", *kinds]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"child {kind} (vocab {vocab}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", type=int, nargs="+", default=[152064, 262144])
    ap.add_argument("--chunk", type=int, nargs="+", default=[128], help="heal.chunk_positions value(s) to measure")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompt-len", type=int, default=24)
    ap.add_argument("--completion-len", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    ap.add_argument("--no-time", action="store_true", help="memory only")
    ap.add_argument("--device", default="cpu", help="cpu (RSS high-water mark) or cuda (CUDA allocator peak)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    rows = []
    for vocab in args.vocab:
        for chunk in args.chunk:
            mem = {k: run_child(k, vocab, chunk, args) for k in args.kinds}
            times = {} if args.no_time else run_child("time", vocab, chunk, args, kinds=args.kinds)
            row = {"vocab": vocab, "chunk": chunk}
            for k in args.kinds:
                row[f"{k}_step_mb"] = mem[k]["peak_mb"] - mem[k]["before_mb"]
                row[f"{k}_process_mb"] = mem[k]["peak_mb"]
                if times:
                    row[f"{k}_s"] = times[k]
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    m = args.batch * args.completion_len
    t = args.batch * (args.prompt_len + args.completion_len)
    print(f"batch {args.batch} x ({args.prompt_len} prompt + {args.completion_len} completion) tokens: "
          f"M = {m} completion positions, B x T = {t}; hidden {args.hidden}, {args.layers} layers, "
          f"device {args.device} (1 CPU thread)")
    head = "| vocab | chunk | " + " | ".join(f"{k} step peak MiB (process)" for k in args.kinds)
    has_time = "heal_s" in rows[0] and "sft_s" in rows[0]
    head += " | heal / sft memory |" + (" heal / sft time | " + " | ".join(f"{k} s" for k in args.kinds) + " |"
                                          if has_time else "")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        cells = [f"{r['vocab']:,}", str(r["chunk"])]
        cells += [f"{r[f'{k}_step_mb']:.0f} ({r[f'{k}_process_mb']:.0f})" for k in args.kinds]
        cells.append(f"{r['heal_step_mb'] / r['sft_step_mb']:.2f}x" if "heal" in args.kinds and "sft" in args.kinds
                     else "")
        if has_time:
            cells.append(f"{r['heal_s'] / r['sft_s']:.2f}x")
            cells += [f"{r[f'{k}_s']:.3f}" for k in args.kinds]
        print("| " + " | ".join(cells) + " |")
    if has_time:
        print("heal steps/s: " + ", ".join(f"{r['vocab']:,} (chunk {r['chunk']}): {1 / r['heal_s']:.2f}"
                                           for r in rows))


if __name__ == "__main__":
    main()
