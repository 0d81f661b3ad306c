"""One round's heal step in the loop: the schedule's barrier weight, a new adapter, matched tau (round 0), the
training (``heal.py``), then the adapter folded into the student's history and saved."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..api import Completion
from ..errors import RunError
from .heal import heal_round
from .seeds import Stream, seeded_global_rng
from .tau_calibration import calibrate_tau

if TYPE_CHECKING:
    from .loop import Run


def heal_step(run: Run, i: int, row: dict[str, Any], kept: list[Completion], tau: float) -> float:
    """Round i's heal (unsteered): a new adapter trained on ``kept``, then folded and saved; the row gets the
    heal statistics. Returns the tau in force (calibrated in round 0 under ``tau_mode: matched``).

    PEFT initialises LoRA weights, and LoRA dropout draws its masks, from torch's global RNG only: the block
    from the new adapter to the end of its training runs under the stream ``Stream.LORA_INIT`` (i)."""
    cfg, r = run.cfg, i + 1
    heal = cfg.heal
    lam = scheduled_lam(run, i)
    with seeded_global_rng(run.device, cfg.seed, Stream.LORA_INIT, i):
        params = run.stack.new_round()
        if i == 0:
            names = run.stack.target_names
            run.update_meta(lora_targets=names, lora_modules=len(run.stack.resolved_targets))
            run.log(f"LoRA adapters on {len(run.stack.resolved_targets)} modules: {', '.join(names)}")
        try:
            if heal.barrier.tau_mode == "matched" and i == 0 and heal.regulariser != "nll":
                with run.clock("calibrate_tau", f"round {r}: calibrate tau"):
                    cal = calibrate_tau(run.stack, run.tok, kept, heal, run.aggregator, params, cfg.seed, i,
                                        lam=lam)
                tau = cal.tau
                row["tau_active_share"] = cal.share
                run.log(
                    f"round {r}: matched tau = {tau:.4g}: the barrier is active on {cal.share:.3f} of the "
                    f"{len(cal.values)} {heal.barrier.level}-level D values of the first heal epoch "
                    f"(target 1 - q{heal.barrier.tau_quantile:g}; trials at tau, share: "
                    + ", ".join(f"{t:.4g}, {sh:.3f}" for t, sh in cal.trials) + ")"
                )
            with run.clock("heal", f"round {r}: heal"):
                stats = heal_round(run.stack, run.tok, kept, heal, run.aggregator, params, cfg.seed, i,
                                   lam=lam, tau=tau, base_states=run.base_states)
        except RunError:
            raise
        except Exception as exc:
            raise RunError(
                f"heal (round {r}, aggregator '{heal.barrier.aggregator.name}') raised "
                f"{type(exc).__name__}: {exc}{run.origin('heal.barrier.aggregator')}"
            ) from exc
    run.stack.fold()
    row.update(stats, lam=lam if heal.regulariser != "nll" else 0.0, tau=tau)
    if run.store is not None:
        with run.clock("save"):
            run.stack.save(str(run.store.adapters_dir()))
    return tau


def scheduled_lam(run: Run, i: int) -> float:
    """The schedule's barrier weight for round index i (a finite number >= 0, else a RunError)."""
    cfg = run.cfg
    try:
        lam = float(run.schedule.lam(i, cfg.heal.lam))
    except Exception as exc:
        raise RunError(
            f"schedule '{cfg.heal.schedule.name}' raised {type(exc).__name__}: {exc}{run.origin('heal.schedule')}"
        ) from exc
    if not math.isfinite(lam) or lam < 0:
        raise RunError(
            f"schedule '{cfg.heal.schedule.name}' returned lam={lam} for round index {i}"
            f"{run.origin('heal.schedule')}"
        )
    return lam
