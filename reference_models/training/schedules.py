"""Learning-rate schedules of the BasicSR vocabulary (``train.scheduler.type``).

* ``MultiStepLR`` — ``lr = base · gamma^k`` after the ``k``-th milestone (the authors' runs use
  one milestone at the last iteration, i.e. a constant rate).
* ``CosineAnnealingRestartLR`` — cosine periods ``T_1, T_2, …`` with restart weights ``w_i``:
  inside period ``i`` at step ``t`` from its start,
  ``lr = eta_min + w_i · ½ (base − eta_min) (1 + cos(π t / T_i))``.
* ``CosineAnnealingLR`` — torch's, ``T_max`` steps down to ``eta_min``.

The schedule is stepped once per iteration, after the optimizer step.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, MultiStepLR


class CosineAnnealingRestartLR(LRScheduler):
    """Cosine annealing with restarts (BasicSR's schedule of the same name)."""

    def __init__(
        self,
        optimizer: Optimizer,
        periods: Sequence[int],
        restart_weights: Sequence[float] = (1.0,),
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        if len(periods) != len(restart_weights):
            raise ValueError("periods and restart_weights must have the same length")
        if any(int(p) < 1 for p in periods):
            raise ValueError(f"periods={list(periods)} must be positive")
        self.periods = [int(p) for p in periods]
        self.restart_weights = [float(w) for w in restart_weights]
        self.eta_min = float(eta_min)
        self.cumulative = [sum(self.periods[: i + 1]) for i in range(len(self.periods))]
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        step = self.last_epoch
        index = min(bisect.bisect_right(self.cumulative, step), len(self.periods) - 1)
        start = 0 if index == 0 else self.cumulative[index - 1]
        t = min(step - start, self.periods[index])
        factor = 0.5 * (1.0 + math.cos(math.pi * t / self.periods[index]))
        weight = self.restart_weights[index]
        return [self.eta_min + weight * factor * (base - self.eta_min) for base in self.base_lrs]


def build_scheduler(optimizer: Optimizer, spec: dict[str, Any]) -> LRScheduler:
    """The scheduler named by ``spec["type"]`` with the remaining keys as its arguments."""
    options = dict(spec)
    kind = options.pop("type", "MultiStepLR")
    if kind in ("MultiStepLR", "MultiStepRestartLR"):
        if options.get("restarts"):
            raise ValueError("MultiStepRestartLR restarts are not supported; use MultiStepLR")
        return MultiStepLR(
            optimizer,
            milestones=[int(m) for m in options.get("milestones", [])],
            gamma=float(options.get("gamma", 0.1)),
        )
    if kind == "CosineAnnealingRestartLR":
        return CosineAnnealingRestartLR(
            optimizer,
            periods=options["periods"],
            restart_weights=options.get("restart_weights", [1.0] * len(options["periods"])),
            eta_min=float(options.get("eta_min", 0.0)),
        )
    if kind == "CosineAnnealingLR":
        return CosineAnnealingLR(
            optimizer, T_max=int(options["T_max"]), eta_min=float(options.get("eta_min", 0.0))
        )
    raise ValueError(
        f"scheduler type {kind!r} is not one of MultiStepLR, CosineAnnealingRestartLR, "
        "CosineAnnealingLR"
    )
