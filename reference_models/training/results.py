"""What a training run reports: its validations and the run's result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reference_models.training.timing import RunProjection, TimeBreakdown


@dataclass
class Validation:
    """Mean PSNR (dB) and SSIM of one validation pass."""

    iteration: int
    dataset: str
    psnr: float
    ssim: float


@dataclass
class TrainResult:
    """What a run produced (rank 0 fills the validations and the paths)."""

    out_dir: Path
    final_path: Path | None
    iterations: int
    start_iteration: int
    seconds: float
    losses: list[tuple[int, float]] = field(default_factory=list)
    validations: list[Validation] = field(default_factory=list)
    timing: TimeBreakdown | None = None
    #: ``recipe``'s whole schedule at the measured rates (None: no steady-state iteration timed)
    projection: RunProjection | None = None
