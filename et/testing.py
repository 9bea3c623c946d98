"""Check that a converted network computes what the original computes.

:func:`assert_equivalent` is the public checker for users' own blocks: it runs both modules in
float64 (the oracle that separates rounding from a logic error) on fuzzed and structured inputs
drawn from a declared input domain, and on failure reports where the outputs differ (sample,
channel, row, column, and whether that pixel is on the image border, where padding mistakes
show up first).

:func:`probe_inputs` is the input generator shared with ``etds verify``: uniform noise plus
structured images (constants at the domain ends, a checkerboard, edges, a bright border) that
catch mistakes random noise averages away.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from et.domain import IMAGE_UNIT, InputDomain, as_domain


@dataclass(frozen=True)
class EquivalenceReport:
    """Outcome of comparing two modules on a batch of inputs."""

    max_abs_error: float
    max_rel_error: float
    where: tuple[int, ...]  # (sample, channel, row, column) of the largest error
    on_border: bool
    inputs: int
    output_shape: tuple[int, ...]

    def describe(self) -> str:
        sample, channel, row, col = [*self.where, 0, 0, 0, 0][:4]
        place = "on the border" if self.on_border else "in the interior"
        return (
            f"max |difference| {self.max_abs_error:.3e} (relative {self.max_rel_error:.3e}) at "
            f"sample {sample}, channel {channel}, row {row}, column {col} ({place}) over "
            f"{self.inputs} inputs of output shape {self.output_shape}"
        )


def _finite_bounds(domain: InputDomain) -> tuple[float, float]:
    low = domain.low if math.isfinite(domain.low) else -10.0
    high = domain.high if math.isfinite(domain.high) else 10.0
    if not math.isfinite(domain.low) and math.isfinite(domain.high):
        low = domain.high - 20.0
    if math.isfinite(domain.low) and not math.isfinite(domain.high):
        high = domain.low + 20.0
    return low, high


def probe_inputs(
    shape: tuple[int, int, int],
    *,
    domain: InputDomain | tuple[float, float] = IMAGE_UNIT,
    samples: int = 8,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """A batch ``[N, C, H, W]`` of inputs inside ``domain``: structured images then noise.

    The structured images come first (low constant, high constant, checkerboard, vertical
    edge, bright border on a dark field, a diagonal ramp); the rest is uniform noise from a
    seeded generator. ``samples`` counts the whole batch (at least 1).
    """
    channels, height, width = shape
    low, high = _finite_bounds(as_domain(domain))
    span = high - low
    rows = torch.arange(height, dtype=dtype).reshape(-1, 1)
    cols = torch.arange(width, dtype=dtype).reshape(1, -1)
    border = torch.ones(height, width, dtype=dtype)
    border[1:-1, 1:-1] = 0
    structured = [
        torch.zeros(height, width, dtype=dtype),
        torch.ones(height, width, dtype=dtype),
        ((rows + cols) % 2).expand(height, width),
        (cols >= width // 2).to(dtype).expand(height, width),
        border,
        ((rows + cols) / max(height + width - 2, 1)).expand(height, width),
    ]
    generator = torch.Generator().manual_seed(seed)
    batch = []
    for index in range(max(samples, 1)):
        if index < len(structured):
            image = structured[index].unsqueeze(0).expand(channels, height, width)
            # channel-dependent phase so colour mix-ups are visible too
            image = torch.stack([image[c].roll(c, dims=-1) for c in range(channels)])
        else:
            image = torch.rand(channels, height, width, generator=generator, dtype=dtype)
        batch.append(low + span * image)
    return torch.stack(batch)


def _first_output(output: torch.Tensor | tuple | list) -> torch.Tensor:
    if isinstance(output, tuple | list):
        return output[0]
    return output


def compare_outputs(
    original: nn.Module,
    converted: nn.Module,
    inputs: torch.Tensor,
    *,
    dtype: torch.dtype = torch.float64,
    clamp: tuple[float, float] | None = None,
) -> EquivalenceReport:
    """Run both modules (copied to ``dtype``, eval mode) on ``inputs`` and measure the gap.

    Multi-output modules are compared on their first output. ``clamp`` clips both outputs
    first (``etds verify`` compares the clamped images).
    """
    first = copy.deepcopy(original).to(dtype).eval()
    second = copy.deepcopy(converted).to(dtype).eval()
    x = inputs.to(dtype)
    with torch.no_grad():
        a = _first_output(first(x))
        b = _first_output(second(x))
    if a.shape != b.shape:
        raise AssertionError(f"output shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if clamp is not None:
        a, b = a.clamp(*clamp), b.clamp(*clamp)
    diff = (a - b).abs()
    if not torch.isfinite(diff).all():
        raise AssertionError("outputs contain NaN or Inf")
    flat = int(diff.argmax())
    where = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape))
    on_border = False
    if diff.ndim == 4:
        _, _, height, width = diff.shape
        row, col = where[2], where[3]
        on_border = row in (0, height - 1) or col in (0, width - 1)
    scale = max(a.abs().max().item(), b.abs().max().item(), 1e-300)
    max_abs = diff.max().item() if diff.numel() else 0.0
    return EquivalenceReport(
        max_abs_error=max_abs,
        max_rel_error=max_abs / scale,
        where=where,
        on_border=on_border,
        inputs=x.shape[0],
        output_shape=tuple(a.shape),
    )


def assert_equivalent(
    original: nn.Module,
    converted: nn.Module,
    *,
    input_shape: tuple[int, int, int] = (3, 12, 12),
    inputs: torch.Tensor | None = None,
    domain: InputDomain | tuple[float, float] = IMAGE_UNIT,
    samples: int = 8,
    seed: int = 0,
    atol: float = 1e-9,
    rtol: float = 1e-9,
    dtype: torch.dtype = torch.float64,
) -> EquivalenceReport:
    """Assert ``converted(x) == original(x)`` for inputs in ``domain``, in float64.

    Passes when ``max|a − b| ≤ atol + rtol·max(|a|, |b|)``; raises ``AssertionError`` with the
    location of the largest difference otherwise. Returns the report either way it passes.
    ``inputs`` overrides the generated ``probe_inputs(input_shape, ...)``.
    """
    if inputs is None:
        inputs = probe_inputs(input_shape, domain=domain, samples=samples, seed=seed, dtype=dtype)
    report = compare_outputs(original, converted, inputs, dtype=dtype)
    allowed = atol + rtol * report.max_abs_error / max(report.max_rel_error, 1e-300)
    if report.max_abs_error > allowed:
        raise AssertionError(f"not equivalent: {report.describe()} (allowed {allowed:.3e})")
    return report
