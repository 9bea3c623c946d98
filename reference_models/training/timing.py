"""Where a training run's wall-clock time goes, and what the whole recipe would cost at that rate.

A short run on the card you will train on is the honest way to learn how long the paper's
1.6 M iterations take there. :class:`RunTimer` splits a run into

* **steps**: steady-state training iterations (data, forward, backward, Adam, EMA), timed after
  ``warmup`` iterations so that worker start-up, cuDNN autotuning and allocator growth do not
  count, and with validation and checkpoint time taken out; of that, the time the process was
  **blocked on the data loader** (if it is a large share, the GPU is starved: add workers);
* **validation** passes and **checkpoint** writes, each timed with its count.

:meth:`TimeBreakdown.project` extrapolates linearly:

    T(N) = N · t_step + ⌊N / val_freq⌋ · t̄_val + ⌊N / save_freq⌋ · t̄_ckpt

where ``t_step`` is the steady-state seconds per iteration and ``t̄`` the measured means. A part
the run did not exercise (no validation ran, say) is reported as unmeasured, never guessed.

On CUDA the device is synchronised at both ends of the steady-state window, so queued kernels
are counted where they ran; in between, the trainer's own loss reads keep the host close to the
device, and over hundreds of iterations the lag at either end is negligible.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

DEFAULT_WARMUP_ITERATIONS = 20


def warmup_for(iterations: int, default: int = DEFAULT_WARMUP_ITERATIONS) -> int:
    """Warm-up iterations for a run of ``iterations``: ``default``, but at most a fifth of the
    run so that short runs are still timed over most of their length."""
    if iterations < 0:
        raise ValueError(f"iterations={iterations} must be >= 0")
    return min(default, iterations // 5)


def format_duration(seconds: float) -> str:
    """``seconds`` in the largest sensible unit: ``"850 ms"``, ``"41.2 s"``, ``"12.5 min"``,
    ``"7.3 h"``, ``"3.1 d"``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


@dataclass(frozen=True)
class RunProjection:
    """Projected wall-clock seconds of a run of ``total_iter`` iterations, by part.

    ``validation``/``checkpoint`` are ``None`` when the run the projection comes from did not
    time that part although the projected run has some.
    """

    total_iter: int
    steps: float
    validation: float | None
    checkpoint: float | None

    @property
    def total(self) -> float:
        """The sum of the measured parts (a lower bound when a part is unmeasured)."""
        return self.steps + (self.validation or 0.0) + (self.checkpoint or 0.0)

    @property
    def complete(self) -> bool:
        return self.validation is not None and self.checkpoint is not None

    def describe(self) -> str:
        parts = [f"{format_duration(self.steps)} of steps"]
        for name, value in (("validation", self.validation), ("checkpoints", self.checkpoint)):
            if value is None:
                parts.append(f"{name} unmeasured")
            elif value > 0:
                parts.append(f"{format_duration(value)} of {name}")
        bound = "" if self.complete else "at least "
        total = format_duration(self.total)
        return f"{self.total_iter} iterations: {bound}{total} ({', '.join(parts)})"


@dataclass(frozen=True)
class TimeBreakdown:
    """Measured wall-clock time of one run (see the module docstring)."""

    iterations: int
    warmup_iterations: int
    step_seconds: float
    data_wait_seconds: float
    validations: int
    validation_seconds: float
    checkpoints: int
    checkpoint_seconds: float

    @property
    def timed_iterations(self) -> int:
        return self.iterations - self.warmup_iterations

    @property
    def seconds_per_iteration(self) -> float:
        if self.timed_iterations < 1:
            raise ValueError("no steady-state iteration was timed")
        return self.step_seconds / self.timed_iterations

    @property
    def data_wait_fraction(self) -> float:
        """Share of steady-state step time spent blocked on the data loader."""
        return self.data_wait_seconds / self.step_seconds if self.step_seconds > 0 else 0.0

    def project(self, total_iter: int, val_freq: int = 0, save_freq: int = 0) -> RunProjection:
        """Extrapolate to a run of ``total_iter`` iterations validating every ``val_freq`` and
        saving every ``save_freq`` iterations (0: never)."""
        if total_iter < 0:
            raise ValueError(f"total_iter={total_iter} must be >= 0")

        def periodic(freq: int, count: int, seconds: float) -> float | None:
            events = total_iter // freq if freq > 0 else 0
            if events == 0:
                return 0.0
            return events * seconds / count if count else None

        return RunProjection(
            total_iter=total_iter,
            steps=total_iter * self.seconds_per_iteration,
            validation=periodic(val_freq, self.validations, self.validation_seconds),
            checkpoint=periodic(save_freq, self.checkpoints, self.checkpoint_seconds),
        )

    def describe(self) -> str:
        mean = ""
        if self.validations:
            mean += (
                f"; validation {format_duration(self.validation_seconds / self.validations)} each"
            )
        if self.checkpoints:
            mean += (
                f"; checkpoint {format_duration(self.checkpoint_seconds / self.checkpoints)} each"
            )
        return (
            f"{self.seconds_per_iteration * 1000:.1f} ms/iteration over {self.timed_iterations} "
            f"steady-state iterations ({self.data_wait_fraction:.0%} waiting for data){mean}"
        )


class RunTimer:
    """Collects a :class:`TimeBreakdown` while the trainer runs (one per process).

    Call :meth:`step_finished` after every iteration, wrap the loader's ``next`` in
    :meth:`data_wait` and validation/checkpoint work in :meth:`phase`, then :meth:`finish`.
    """

    def __init__(
        self,
        device: torch.device,
        warmup_iterations: int,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if warmup_iterations < 0:
            raise ValueError(f"warmup_iterations={warmup_iterations} must be >= 0")
        self.device = device
        self.warmup_iterations = warmup_iterations
        self.clock = clock
        self.iterations = 0
        self._window_start: float | None = None
        self._data_wait = 0.0
        self._in_window_phases = 0.0
        self._phase_seconds = {"validation": 0.0, "checkpoint": 0.0}
        self._phase_counts = {"validation": 0, "checkpoint": 0}
        if warmup_iterations == 0:
            self._open_window()

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _open_window(self) -> None:
        self._synchronize()
        self._window_start = self.clock()

    @contextmanager
    def data_wait(self) -> Iterator[None]:
        began = self.clock()
        try:
            yield
        finally:
            if self._window_start is not None:
                self._data_wait += self.clock() - began

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if name not in self._phase_seconds:
            raise ValueError(f"phase {name!r} is not one of {sorted(self._phase_seconds)}")
        self._synchronize()  # the steps queued before it are step time, not phase time
        began = self.clock()
        try:
            yield
        finally:
            self._synchronize()
            spent = self.clock() - began
            self._phase_seconds[name] += spent
            self._phase_counts[name] += 1
            if self._window_start is not None:
                self._in_window_phases += spent

    def step_finished(self) -> None:
        self.iterations += 1
        if self._window_start is None and self.iterations == self.warmup_iterations:
            self._open_window()

    def finish(self) -> TimeBreakdown:
        if self._window_start is None:  # the run ended inside the warm-up: nothing timed
            warmup, step_seconds = self.iterations, 0.0
        else:
            self._synchronize()
            warmup = self.warmup_iterations
            step_seconds = self.clock() - self._window_start - self._in_window_phases
        return TimeBreakdown(
            iterations=self.iterations,
            warmup_iterations=warmup,
            step_seconds=max(step_seconds, 0.0),
            data_wait_seconds=self._data_wait,
            validations=self._phase_counts["validation"],
            validation_seconds=self._phase_seconds["validation"],
            checkpoints=self._phase_counts["checkpoint"],
            checkpoint_seconds=self._phase_seconds["checkpoint"],
        )
