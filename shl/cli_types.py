"""Argument types for the command line (built-in and plugin commands): every number is checked when it is parsed,
so a bad value is one line from argparse (exit 2) before any work starts."""

from __future__ import annotations

import argparse
import math
from typing import Callable

from .config.models import MAX_SEED, MAX_TOKENS, check_device


def int_in(lo: int, hi: int) -> Callable[[str], int]:
    """An integer in [lo, hi]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be in {lo}..{hi}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def positive_float(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def device(text: str) -> str:
    """A device string (auto, cpu, cuda, cuda:N, mps, xpu, xpu:N)."""
    try:
        return check_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


seed = int_in(0, MAX_SEED)
tokens = int_in(1, MAX_TOKENS)
