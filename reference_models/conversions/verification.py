"""Measure how far a converted model is from its original, as ``etds verify`` reports it.

The measure is ``max |clamp(f(x), 0, 1) − clamp(g(x), 0, 1)|`` over a set of inputs ``x`` in
[0, 1], in units of 1/255 (one 8-bit grey level), on the *first* output of each model (the
dual-stream training forms return two tensors). Both models run in float64, so rounding does not
hide or fake a difference: a conversion that is exact in real arithmetic measures ~1e-10.

The default inputs are built to catch subtle mistakes, not just gross ones:

* :func:`et.testing.probe_inputs` batches (constants 0 and 1, a checkerboard, an edge, a bright
  border on a dark field, a ramp, then uniform noise) at an even and at an odd, non-square size,
  so a padding or border-only error and a channel mix-up show up;
* low-amplitude noise near 0 (values in [0, 0.05]) where a carried identity channel or a PReLU
  slope matters most relative to the signal;
* noise around mid-grey (values in [0.4, 0.6]), where the output of a trained model is
  rarely clamped, so a bias error of 1e-4 (0.0255/255) is not hidden by the clamp.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from et.domain import IMAGE_UNIT, Domain, as_domain
from et.testing import probe_inputs

#: the spatial sizes the fuzzed inputs use: one even and square, one odd and non-square
PROBE_SIZES: tuple[tuple[int, int], ...] = ((16, 16), (11, 17))


@dataclass(frozen=True)
class Verification:
    """Largest clamped-output difference (in 1/255 units) over ``inputs`` input images."""

    max_abs_error_255: float
    inputs: int

    def within(self, tolerance_255: float) -> bool:
        return self.max_abs_error_255 <= tolerance_255


def _first_output(output: torch.Tensor | tuple | list) -> torch.Tensor:
    return output[0] if isinstance(output, tuple | list) else output


def fuzz_inputs(
    colors: int,
    *,
    samples: int = 12,
    seed: int = 0,
    domain: Domain = IMAGE_UNIT,
) -> list[torch.Tensor]:
    """Batches of float64 inputs in ``domain`` (default [0, 1]) with ``colors`` channels.

    ``samples`` counts the images of each probe batch; one batch per size in
    :data:`PROBE_SIZES`, plus a batch near the domain's low end and one around its middle at
    the first size (see the module docstring). The domain must be finite.
    """
    if samples < 1:
        raise ValueError(f"{samples=} must be at least 1")
    domain = as_domain(domain)
    if not (math.isfinite(domain.low) and math.isfinite(domain.high)):
        raise ValueError(f"the input range {domain} must be finite")
    low, span = domain.low, domain.high - domain.low
    batches = [
        probe_inputs((colors, height, width), domain=domain, samples=samples, seed=seed + index)
        for index, (height, width) in enumerate(PROBE_SIZES)
    ]
    generator = torch.Generator().manual_seed(seed + len(PROBE_SIZES))
    height, width = PROBE_SIZES[0]
    noise_shape = (max(samples // 2, 1), colors, height, width)
    uniform = torch.rand(noise_shape, generator=generator, dtype=torch.float64)
    batches.append(low + span * 0.05 * uniform)
    uniform = torch.rand(noise_shape, generator=generator, dtype=torch.float64)
    batches.append(low + span * (0.4 + 0.2 * uniform))
    return batches


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
    original: nn.Module, converted: nn.Module, batches: Iterable[torch.Tensor]
) -> Verification:
    """``max |clamp(original(x)) − clamp(converted(x))|·255`` over every image of ``batches``.

    Both models are copied to float64 in eval mode; the arguments are not modified.
    """
    first = copy.deepcopy(original).to(torch.float64).eval()
    second = copy.deepcopy(converted).to(torch.float64).eval()
    worst = 0.0
    count = 0
    with torch.no_grad():
        for batch in batches:
            x = batch.to(torch.float64)
            a = _first_output(first(x)).clamp(0.0, 1.0)
            b = _first_output(second(x)).clamp(0.0, 1.0)
            if a.shape != b.shape:
                raise ValueError(
                    f"the models' outputs differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}"
                )
            gap = (a - b).abs()
            if not torch.isfinite(gap).all():
                return Verification(max_abs_error_255=float("inf"), inputs=count + x.shape[0])
            worst = max(worst, gap.max().item() * 255.0)
            count += x.shape[0]
    return Verification(max_abs_error_255=worst, inputs=count)


def verify_models(
    original: nn.Module,
    converted: nn.Module,
    *,
    colors: int,
    samples: int = 12,
    seed: int = 0,
    images: Sequence[torch.Tensor] = (),
    domain: Domain = IMAGE_UNIT,
) -> Verification:
    """Compare the two models on :func:`fuzz_inputs` over ``domain`` and on ``images``."""
    batches = [*fuzz_inputs(colors, samples=samples, seed=seed, domain=domain), *images]
    return max_clamped_difference(original, converted, batches)
