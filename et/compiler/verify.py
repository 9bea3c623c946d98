"""Verify a compiled module against the original before it is returned.

Both run on :func:`et.testing.probe_inputs` from the declared domain at two spatial sizes, one
odd and one even on each axis: ``(h, w)`` and ``(h + 1, w + 1)``. The check decides in float64
(the oracle: any logic error shows, rounding does not): the compiled module's float64 output
must satisfy ``max|compiled(x) − original(x)| ≤ tolerance · max|original(x)|`` at both sizes.
Float32 rounding is measured, not judged: the compiled module cast to float32 against the same
float64 oracle at the first size.

The probes are float32 values (exact in float64), so one float64 run of the original per size
is the oracle of both comparisons. The sizes are the example's, shrunk when it is large
(:func:`probe_shapes`): the rules' exactness does not depend on the image size once a kernel
fits with an interior left over, and a small image makes the original's float64 runs (the cost
of verification) cheap.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from et.domain import InputDomain
from et.testing import first_output, probe_inputs

#: the smallest side the probes are shrunk to (a kernel wider than this raises it)
SMALLEST_SIDE = 8

#: probes per size (structured images first, then noise: see :mod:`et.probes`)
SAMPLES = 8


class VerificationError(AssertionError):
    """The compiled module does not compute the original function; nothing is returned."""


class ProbeSizeError(RuntimeError):
    """The original itself does not run at a probe size (the caller tries the example's)."""


def shrink(side: int, base: int) -> int:
    """``side`` when below ``2·base``, else ``base + side mod base``: a side in
    ``[base, 2·base)`` congruent to ``side`` modulo ``base`` (so divisibility by any power of
    two up to ``base`` is kept: a network that halves its input three times still can)."""
    return side if side < 2 * base else base + side % base


def probe_shapes(shape: tuple[int, int, int], widest_kernel: int) -> list[tuple[int, int, int]]:
    """``(C, h, w)`` and ``(C, h + 1, w + 1)`` with ``h, w`` the example's sides shrunk to a
    base of ``max(SMALLEST_SIDE, widest_kernel + 1)`` (:func:`shrink`)."""
    channels, height, width = shape
    base = max(SMALLEST_SIDE, widest_kernel + 1)
    h, w = shrink(height, base), shrink(width, base)
    return [(channels, h, w), (channels, h + 1, w + 1)]


def _run(module: nn.Module, x: torch.Tensor, clamp: tuple[float, float] | None) -> torch.Tensor:
    with torch.no_grad():
        y = first_output(module(x))
    return y.clamp(*clamp) if clamp is not None else y


def _describe(error: torch.Tensor, shape: tuple[int, ...], scale: float) -> str:
    worst = float(error.max()) if error.numel() else 0.0
    flat = int(error.argmax()) if error.numel() else 0
    where = []
    for size in reversed(error.shape):
        where.append(flat % size)
        flat //= size
    sample, channel, row, col = [*where[::-1], 0, 0, 0, 0][:4]
    return (
        f"max |difference| {worst:.3e} (relative {worst / max(scale, 1e-300):.3e}) at sample "
        f"{sample}, channel {channel}, row {row}, column {col} of the {shape[-2]}×{shape[-1]} "
        "probes (float64)"
    )


def measure(
    oracle: nn.Module,
    compiled: nn.Module,
    shapes: list[tuple[int, int, int]],
    domain: InputDomain,
    *,
    clamp: tuple[float, float] | None,
    tolerance: float,
) -> dict[str, float]:
    """Max absolute error of ``compiled`` against ``oracle`` (both float64 modules, the
    original first) in float64 over ``shapes`` and in float32 at ``shapes[0]``; raises
    :class:`VerificationError` when float64 exceeds ``tolerance`` relative to the output's
    magnitude, or when an output is not finite."""
    compiled32 = copy.deepcopy(compiled).float()
    errors = {"float64": 0.0, "float32": 0.0}
    for index, shape in enumerate(shapes):
        x32 = probe_inputs(shape, domain=domain, samples=SAMPLES, dtype=torch.float32)
        try:
            expected = _run(oracle, x32.double(), clamp)
        except Exception as error:
            raise ProbeSizeError(f"the original does not run at input size {shape}") from error
        got = _run(compiled, x32.double(), clamp)
        if got.shape != expected.shape:
            raise VerificationError(
                f"the compiled output has shape {tuple(got.shape)}, the original "
                f"{tuple(expected.shape)} (input size {shape})"
            )
        if not (bool(torch.isfinite(got).all()) and bool(torch.isfinite(expected).all())):
            raise VerificationError(f"an output holds NaN or Inf at input size {shape}")
        error = (got - expected).abs()
        scale = float(expected.abs().max()) if expected.numel() else 0.0
        if error.numel() and float(error.max()) > tolerance * scale:
            raise VerificationError(
                f"compiled module differs from the original at input size {shape}: "
                + _describe(error, tuple(x32.shape), scale)
            )
        errors["float64"] = max(errors["float64"], float(error.max()) if error.numel() else 0.0)
        if index == 0:
            rounded = _run(compiled32, x32, clamp).double()
            gap = (rounded - expected).abs().nan_to_num(nan=torch.inf)
            errors["float32"] = float(gap.max()) if gap.numel() else 0.0
    return errors
