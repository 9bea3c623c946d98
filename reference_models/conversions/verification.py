"""Measure how far a converted model is from its original, as ``etds verify`` reports it.

The measure is ``max |clamp(f(x), 0, 1) − clamp(g(x), 0, 1)|`` over a set of inputs ``x`` in
[0, 1], in units of 1/255 (one 8-bit grey level), on the *first* output of each model (the
dual-stream training forms return two tensors). It is computed by the one comparison core,
:func:`et.testing.compare_outputs`: the original runs as a float64 oracle, the converted model
in its own dtype (float32 for a checkpoint; ``dtype`` to choose), in a declared ``mode``; the
original's own rounding in that dtype is measured too, and a difference within
``ROUNDING_FACTOR`` times it is never called a failure (a float32 model cannot do better).
Because that allowance can hide a small logic error under float32 noise, the converted model's
stored weights are also run in float64 (no arithmetic rounding left) and must be within
``WEIGHTS_FACTOR·ρ₆₄`` of the oracle, ρ₆₄ being what storing the original's weights once (each
moved by the storage dtype's unit roundoff u) does to its output
(:func:`et.testing.compare_outputs`); a pair is equivalent only when both figures hold.

The default inputs are :func:`et.probes.probe_batches` at :data:`PROBE_SIZES` (16×16 and
17×19: both parities, non-square): structured images first (per-channel stripes and
checkerboards, an edge, a bright border, a ramp, the domain's ends), uniform noise,
low-amplitude noise near 0 and noise around mid-grey.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from et.domain import IMAGE_UNIT, Domain, as_domain
from et.probes import probe_batches, probe_sizes
from et.testing import (
    ROUNDING_FACTOR,
    WEIGHTS_FACTOR,
    EquivalenceReport,
    Mode,
    compare_outputs,
)

#: the default tolerance in 1/255 units, raised to the original's own rounding floor if needed
DEFAULT_TOLERANCE_255 = 0.01

#: the spatial sizes of the fuzzed inputs: one even and square, one odd and non-square
PROBE_SIZES: tuple[tuple[int, int], ...] = probe_sizes(16, 16)


@dataclass(frozen=True)
class Verification:
    """Largest clamped-output difference (in 1/255 units) over ``inputs`` input images.

    ``max_abs_error_255`` is ``inf`` when an output holds NaN or Inf; ``rounding_255`` is the
    original's own rounding in ``dtype`` (the comparison's noise floor).
    ``weights64_error_255``: the converted model's stored weights run in float64 against the
    oracle (``None`` when that check did not run), judged against ``weights64_allowed_255`` =
    ``WEIGHTS_FACTOR·ρ₆₄`` whatever the tolerance of the first figure.
    """

    max_abs_error_255: float
    inputs: int
    rounding_255: float = 0.0
    dtype: str = "float64"
    oracle_dtype: str = "float64"
    mode: str = "eval"
    weights64_error_255: float | None = None
    weights64_rounding_255: float = 0.0  # ρ₆₄
    unit_roundoff: float = 0.0

    @property
    def weights64_allowed_255(self) -> float:
        return WEIGHTS_FACTOR * self.weights64_rounding_255

    def allowed_255(self, tolerance_255: float | None = None) -> float:
        """An explicit tolerance as given; by default (``None``) :data:`DEFAULT_TOLERANCE_255`,
        or ``ROUNDING_FACTOR`` times the original's own rounding where that is larger (a
        float32 model must not fail the default for rounding alone)."""
        if tolerance_255 is not None:
            return tolerance_255
        return max(DEFAULT_TOLERANCE_255, ROUNDING_FACTOR * self.rounding_255)

    def within(self, tolerance_255: float | None = None) -> bool:
        """Both figures hold: the first within ``allowed_255(tolerance_255)``, the stored
        weights' (when it ran) within ``weights64_allowed_255``."""
        if not (
            math.isfinite(self.max_abs_error_255)
            and self.max_abs_error_255 <= self.allowed_255(tolerance_255)
        ):
            return False
        error64 = self.weights64_error_255
        return error64 is None or error64 <= self.weights64_allowed_255

    @classmethod
    def from_report(cls, report: EquivalenceReport) -> Verification:
        def name(dtype: torch.dtype) -> str:
            return str(dtype).removeprefix("torch.")

        return cls(
            max_abs_error_255=report.max_abs_error * 255.0,
            inputs=report.inputs,
            rounding_255=report.rounding * 255.0,
            dtype=name(report.dtype),
            oracle_dtype=name(report.oracle_dtype),
            mode=report.mode,
            weights64_error_255=None
            if report.weights64_error is None
            else report.weights64_error * 255.0,
            weights64_rounding_255=report.weights64_rounding * 255.0,
            unit_roundoff=report.unit_roundoff,
        )


def fuzz_inputs(
    colors: int,
    *,
    samples: int = 12,
    seed: int = 0,
    domain: Domain = IMAGE_UNIT,
) -> list[torch.Tensor]:
    """:func:`et.probes.probe_batches` at :data:`PROBE_SIZES` over a finite ``domain``."""
    domain = as_domain(domain)
    if not (math.isfinite(domain.low) and math.isfinite(domain.high)):
        raise ValueError(f"the input range {domain} must be finite")
    return probe_batches(colors, sizes=PROBE_SIZES, samples=samples, seed=seed, domain=domain)


def image_inputs(directory: Path, colors: int) -> list[torch.Tensor]:
    """Every PNG in ``directory`` as a ``[1, colors, H, W]`` float64 tensor in [0, 1].

    RGB for 3 colours, the BT.601 luma (Pillow's ``"L"``) for 1 colour.
    """
    from PIL import Image

    paths = sorted(p for p in Path(directory).iterdir() if p.suffix.lower() == ".png")
    if not paths:
        raise ValueError(f"no PNG images in {directory}")
    if colors not in (1, 3):
        raise ValueError(f"images can feed models with 1 or 3 colours, not {colors}")
    mode = "RGB" if colors == 3 else "L"
    tensors = []
    for path in paths:
        with Image.open(path) as image:
            data = torch.frombuffer(bytearray(image.convert(mode).tobytes()), dtype=torch.uint8)
            width, height = image.size
        pixels = data.reshape(height, width, colors).permute(2, 0, 1).to(torch.float64) / 255.0
        tensors.append(pixels.unsqueeze(0))
    return tensors


def max_clamped_difference(
    original: nn.Module,
    converted: nn.Module,
    batches: Iterable[torch.Tensor],
    *,
    dtype: torch.dtype | None = None,
    mode: Mode = "eval",
    weights64: bool = True,
) -> Verification:
    """``max |clamp(original(x)) − clamp(converted(x))|·255`` over every image of ``batches``
    (see the module docstring); the arguments are not modified."""
    report = compare_outputs(
        original, converted, batches, dtype=dtype, mode=mode, clamp=(0, 1), weights64=weights64
    )
    return Verification.from_report(report)


def verify_models(
    original: nn.Module,
    converted: nn.Module,
    *,
    colors: int,
    samples: int = 12,
    seed: int = 0,
    images: Sequence[torch.Tensor] = (),
    domain: Domain = IMAGE_UNIT,
    dtype: torch.dtype | None = None,
    mode: Mode = "eval",
    progress: bool = False,
    weights64: bool = True,
) -> Verification:
    """Compare the two models on :func:`fuzz_inputs` over ``domain`` and on ``images``;
    ``progress``: a progress bar on stderr, one step per input image; ``weights64``: also
    run the stored-weights check."""
    batches = [*fuzz_inputs(colors, samples=samples, seed=seed, domain=domain), *images]
    if progress:
        batches = _with_progress(batches)
    return max_clamped_difference(
        original, converted, batches, dtype=dtype, mode=mode, weights64=weights64
    )


def _with_progress(batches: list[torch.Tensor]) -> Iterable[torch.Tensor]:
    import sys

    from tqdm import tqdm

    total = sum(batch.shape[0] for batch in batches)
    with tqdm(total=total, desc="verify", unit="img", file=sys.stderr, leave=False) as bar:
        for batch in batches:
            yield batch
            bar.update(batch.shape[0])
