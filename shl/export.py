"""The healed student out of a run directory: ``shl export`` and the loading that ``shl sample`` shares.

``load_student(run_dir, round)`` rebuilds the student after K heal rounds from a verified finished run: the base
model through the run's own config (``config.yaml``; model sources through the plugin registry) and adapters
``r0..r{K-1}`` from ``adapters/`` (PEFT ``save_pretrained`` layout, one folder per round), all active.

``export_merged`` writes a standard Hugging Face model directory (every adapter merged into the weights,
tokenizer and chat template included, stop tokens in the generation config) that
``AutoModelForCausalLM.from_pretrained`` loads without shl. ``shl.export_adapter`` writes one PEFT LoRA adapter
equivalent to the stack (and checks it against vLLM's rules); ``shl.export_cvector`` a round's steering vector as
a llama.cpp control vector.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ShlError

EXPORT_RECORD = "shl_export.json"
# PEFT still calls a transformers property that transformers 5 deprecates; nothing for users to act on.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


@dataclass
class Student:
    run_dir: Path
    cfg: Any  # RunConfig
    model: Any  # the PEFT model with adapters r0..r{K-1} active, or the base model when K = 0
    tokenizer: Any
    names: list[str]
    round: int
    rounds_available: int
    metrics: list[dict[str, Any]] = field(default_factory=list)
    host: Any = None
    model_name: str = ""

    def with_adapters(self, names: list[str]):
        """Context: only ``names`` active (the previous student, for the steered point)."""
        from contextlib import contextmanager

        @contextmanager
        def ctx():
            if not self.names:
                yield self.model
                return
            if not names:
                with self.model.disable_adapter():
                    yield self.model
                return
            self.model.base_model.set_adapter(list(names))
            try:
                yield self.model
            finally:
                self.model.base_model.set_adapter(list(self.names))

        return ctx()


def check_run(run_dir: str | Path) -> Path:
    """The run directory, if it holds a verified finished run; else one-line ShlError."""
    from .store import RUNNING, TERMINAL, inspect_run

    d = Path(run_dir)
    state = inspect_run(d)
    if state.status == RUNNING:
        raise ShlError(f"{d}: {state.reason}; wait for it to finish")
    if state.status not in TERMINAL:
        why = f" ({state.reason})" if state.reason else ""
        raise ShlError(f"{d}: not a verified finished run: {state.status}{why}")
    return d


def verified_files(run_dir: Path) -> set[str]:
    """The files (relative paths) a verified finished run's DONE.json manifest vouches for; nothing else in the
    directory is ever read as the run's."""
    from .store import inspect_run

    return set(((inspect_run(run_dir).done or {}).get("manifest") or {}).keys())


def adapter_rounds(run_dir: Path) -> int:
    """How many heal rounds the verified finished run recorded (its DONE.json; the manifest then vouches for
    each round's adapter): never the count of folders on disk, which nothing verified."""
    from .store import inspect_run

    state = inspect_run(run_dir)
    rounds = (state.done or {}).get("rounds")
    return rounds if isinstance(rounds, int) and not isinstance(rounds, bool) and rounds >= 0 else 0


def run_config(d: Path) -> Any:
    """The RunConfig a finished run recorded in its ``config.yaml``."""
    from .config.models import RunConfig

    try:
        return RunConfig.model_validate(yaml.safe_load((d / "config.yaml").read_text()))
    except Exception as exc:
        raise ShlError(f"{d}/config.yaml: not a valid run config ({type(exc).__name__})") from None


def load_student(run_dir: str | Path, round: int | None = None, device: str = "cpu", dtype: str | None = None,
                 host: Any = None) -> Student:
    from .config.slots import model_source
    from .engine.run_setup import pick_device
    from .store import RunStore

    d = check_run(run_dir)
    device = pick_device(device)
    cfg = run_config(d)
    n = adapter_rounds(d)
    k = n if round is None else int(round)
    if not 0 <= k <= n:
        raise ShlError(f"{d}: --round {k} is out of range: the run has {n} heal round(s) with adapters (0..{n})")
    if host is None:
        from .manager import get_host

        host = get_host()
    reg = host.registry
    source = model_source(reg, cfg.model)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    loaded = reg.build("model", source.name, source.params).load(device, dtype or cfg.dtype)
    model = loaded.model
    model.eval()
    names = [f"r{i}" for i in range(k)]
    if names:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(d / "adapters" / "r0"), adapter_name="r0", is_trainable=False)
        for name in names[1:]:
            model.load_adapter(str(d / "adapters" / name), adapter_name=name, is_trainable=False)
        model.base_model.set_adapter(names)
        for p in model.parameters():
            p.requires_grad_(False)
        model.eval()
    return Student(d, cfg, model, loaded.tokenizer, names, k, n, RunStore(d).metrics(), host, loaded.name)


def _check_out(out: str | Path) -> Path:
    """The export's output directory: new or empty, never a link, never inside a run directory."""
    from .store import check_out_dir

    o = Path(out)
    if o.is_symlink():
        raise ShlError(f"{o}: is a symbolic link; choose a new --out")
    if o.exists() and (not o.is_dir() or any(o.iterdir())):
        raise ShlError(f"{o}: exists and is not empty; choose a new --out")
    check_out_dir(o, "export")
    return o


def _record(student: Student, kind: str) -> str:
    from .store import read_meta

    meta = read_meta(student.run_dir)
    return json.dumps({
        "format": "shl-export", "kind": kind, "run_dir": str(student.run_dir.resolve()), "round": student.round,
        "adapters": student.names, "model": student.cfg.model.model_dump(mode="json"),
        "config_hash": meta.get("config_hash"),
    }, indent=2)


def _publish(tmp: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.rmdir()  # checked empty
    shutil.move(str(tmp), str(out))


def export_merged(student: Student, out: str | Path) -> Path:
    """A standard HF model directory: all adapters merged into the weights, tokenizer + chat template."""
    from .engine.chat import stop_token_ids

    o = _check_out(out)
    model = student.model
    if student.names:
        model = model.merge_and_unload(adapter_names=list(student.names))
    tok = student.tokenizer
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        try:
            gen.eos_token_id = sorted(stop_token_ids(tok, model))
            if gen.pad_token_id is None:
                gen.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        except Exception:
            pass
    tmp = Path(tempfile.mkdtemp(prefix=".shl-export-", dir=o.parent if o.parent.exists() else None))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / EXPORT_RECORD).write_text(_record(student, "merged"))
        _publish(tmp, o)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    student.model = None  # merge_and_unload consumed the PEFT wrapper
    return o


def export(run_dir: str | Path, out: str | Path, round: int | None = None, adapter: bool = False,
           dtype: str | None = None, max_rank: int | None = None,
           allow_embedding_lora: bool = False) -> tuple[Path, Student, Any]:
    """``shl export``: check the run and --out, load the student on CPU, write it. Returns (path, student, the
    adapter's ``AdapterReport`` or None)."""
    from .export_adapter import export_adapter

    _check_out(out)
    if not adapter and (max_rank is not None or allow_embedding_lora):
        raise ShlError("--max-rank and --allow-embedding-lora apply to --adapter")
    student = load_student(run_dir, round, device="cpu", dtype=dtype)
    if adapter:
        path, report = export_adapter(student, out, max_rank=max_rank, allow_embedding_lora=allow_embedding_lora)
        return path, student, report
    return export_merged(student, out), student, None
