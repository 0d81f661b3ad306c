"""``shl example-lam``: a command this plugin adds to the shl command line (hook ``shl_register_commands``).

It prints the barrier weight of each heal round under the ``step`` schedule, to check ``at`` and ``factor``
before an ablation. Params are validated by the schedule's own ``Params`` model; a bad value is a
``shl.errors.ConfigError``, which shl prints on one line (exit code 2), like its own input errors.
"""

from __future__ import annotations

import argparse

from pydantic import ValidationError

from shl.errors import ConfigError

from .step import Step

NAME = "example-lam"
HELP = "print the barrier weight lam of each heal round under the 'step' schedule"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--at", type=int, default=1, help="first round index (from 0) that uses lam * factor")
    parser.add_argument("--factor", type=float, default=0.5, help="multiplier of lam from round `at` on")
    parser.add_argument("--lam", type=float, default=1.0, help="the base barrier weight (heal.lam)")
    parser.add_argument("--rounds", type=int, default=4, help="heal rounds to show")


def run(args: argparse.Namespace) -> int:
    try:
        step = Step(Step.Params(at=args.at, factor=args.factor))
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"--{err['loc'][0]}: {err['msg']} (got {err['input']!r}) (plugin 'example')") from None
    if args.rounds < 1:
        raise ConfigError(f"--rounds: must be >= 1, got {args.rounds} (plugin 'example')")
    print(f"step schedule (at={step.params.at}, factor={step.params.factor:g}), base lam {args.lam:g}")
    for r in range(args.rounds):
        print(f"round {r}: lam {step.lam(r, args.lam):g}")
    return 0
