"""Verify a compiled module against the original before it is returned, as it is returned.

The probes are :func:`et.probes.probe_batches` (structured images, uniform noise, and at the
first size low-amplitude and mid-grey noise, also as a batch of one) at the sizes of
:func:`verification_sizes`: the example's own size, an odd size, and a size larger than the
example on each side (each only where the compiled function holds, :mod:`et.compiler.sizes`).
The probes are float32 values, exact in float64, so one float64 run of the original per batch
is the oracle ``o(x)`` of two judgements:

* logic, in float64: the compiled function in float64 must satisfy
  ``max|compiled₆₄(x) − o(x)| ≤ tolerance · max|o(x)|`` (rounding cannot hide a wrong fold);
* rounding, in the dtype ``D`` the module is returned in (when not float64): the returned
  module itself (after its cast) must satisfy ``max|returned_D(x) − o(x)| ≤ F · ρ`` with
  ``ρ = max(max|original_D(x) − o(x)|, U · ε_D · max|o(x)|)``, the original's own rounding in
  ``D`` on the same probes (at least ``U`` ulps of the largest output), ``F =``
  :data:`et.testing.ROUNDING_FACTOR` (16) and ``U =`` :data:`et.testing.ULPS_AT_LEAST` (4):
  a fold that loses precision in ``D`` (a bias stored as the difference of two large numbers)
  is refused even where float64 shows no error.

All maxima run over every probe of every size. A module returned in float64 is judged in
float64 only; its float32 rounding is measured (a float32 copy at the first size).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from et.compiler.sizes import SizeCondition
from et.domain import InputDomain
from et.probes import probe_batches
from et.testing import ROUNDING_FACTOR, ULPS_AT_LEAST, first_output

#: probes per size (structured images first, then noise: see :mod:`et.probes`)
SAMPLES = 8

#: the odd and the larger size are searched this far beyond the example on each side
SEARCH = 16

#: the larger size is at least this much larger on each side (and wider than any kernel)
LARGER_BY = 8


class VerificationError(AssertionError):
    """The compiled module does not compute the original function; nothing is returned."""


class ProbeSizeError(RuntimeError):
    """The original itself does not run at a probe size its capture admits."""


def verification_sizes(
    shape: tuple[int, int, int], condition: SizeCondition, widest_kernel: int = 1
) -> list[tuple[int, int, int]]:
    """``(C, h, w)`` of the example, then the nearest size beyond it with both sides odd (not
    square; else any other size), then the nearest size at least ``max(LARGER_BY, widest
    kernel)`` larger on each side; the last two only where ``condition`` holds (a static
    capture: the example's size alone)."""
    channels, height, width = shape
    sizes = [(channels, height, width)]

    def holds(h: int, w: int) -> bool:
        return (channels, h, w) not in sizes and condition.holds(SAMPLES, channels, h, w)

    steps = [(dh, dw) for dh in range(1, SEARCH + 1) for dw in range(1, SEARCH + 1)]
    odd = sorted(
        steps,
        key=lambda d: (
            (height + d[0]) % 2 == 0 or (width + d[1]) % 2 == 0,
            height + d[0] == width + d[1],
            sum(d),
        ),
    )
    least = max(LARGER_BY, widest_kernel)
    larger = sorted(((least + dh, least + dw) for dh, dw in steps), key=sum)
    for candidates in (odd, [(dh - 1, dw - 1) for dh, dw in larger]):
        found = next(((dh, dw) for dh, dw in candidates if holds(height + dh, width + dw)), None)
        if found is not None:
            sizes.append((channels, height + found[0], width + found[1]))
    return sizes


def _run(module: nn.Module, x: torch.Tensor, clamp: tuple[float, float] | None) -> torch.Tensor:
    with torch.no_grad():
        y = first_output(module(x))
    return y.clamp(*clamp) if clamp is not None else y


def _describe(error: torch.Tensor, shape: tuple[int, ...], scale: float, dtype: str) -> str:
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
        f"probes ({dtype})"
    )


def _gap(got: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    return (got.double() - expected).abs().nan_to_num(nan=torch.inf)


def _maximum(t: torch.Tensor) -> float:
    return float(t.max()) if t.numel() else 0.0


def measure(
    oracle: nn.Module,
    compiled: nn.Module,
    returned: nn.Module,
    shapes: list[tuple[int, int, int]],
    domain: InputDomain,
    *,
    clamp: tuple[float, float] | None,
    tolerance: float,
    dtype: torch.dtype = torch.float64,
) -> dict[str, float]:
    """Judge ``compiled`` (float64) and ``returned`` (the module as the caller gets it, in
    ``dtype``) against ``oracle`` (the original, float64) on the probes at ``shapes`` (module
    docstring); raises :class:`VerificationError` when either judgement fails or an output is
    not finite, and :class:`ProbeSizeError` when the original does not run at a size. Returns
    the max absolute errors: ``float64``, ``float32`` and, for a module returned in another dtype
    ``D``, ``D``, ``"original " + D`` (ρ) and ``"bound " + D`` (``F·ρ``)."""
    name = str(dtype).removeprefix("torch.")
    judged = dtype != torch.float64
    own = copy.deepcopy(oracle).to(dtype) if judged else None
    rounded = returned if judged else copy.deepcopy(returned).float()
    errors = {"float64": 0.0, "float32": 0.0}
    rounding = scale = 0.0
    worst: tuple[torch.Tensor, tuple[int, ...]] | None = None
    channels = shapes[0][0]
    sizes = [tuple(s[1:]) for s in shapes]
    batches = probe_batches(channels, sizes=sizes, samples=SAMPLES, domain=domain)
    batches.append(batches[-1][:1])  # a batch of one (a capture's batch is traced from 2 up)
    for index, x64 in enumerate(batches):
        x64 = x64.float().double()  # float32 values: exact in float64 and in float32
        shape = tuple(x64.shape[1:])
        try:
            expected = _run(oracle, x64, clamp)
        except Exception as error:
            raise ProbeSizeError(f"the original does not run at input size {shape}") from error
        got = _run(compiled, x64, clamp)
        if got.shape != expected.shape:
            raise VerificationError(
                f"the compiled output has shape {tuple(got.shape)}, the original "
                f"{tuple(expected.shape)} (input size {shape})"
            )
        if not (bool(torch.isfinite(got).all()) and bool(torch.isfinite(expected).all())):
            raise VerificationError(f"an output holds NaN or Inf at input size {shape}")
        error = (got - expected).abs()
        size_scale = _maximum(expected.abs())
        if _maximum(error) > tolerance * size_scale:
            raise VerificationError(
                f"compiled module differs from the original at input size {shape}: "
                + _describe(error, tuple(x64.shape), size_scale, "float64")
            )
        errors["float64"] = max(errors["float64"], _maximum(error))
        scale = max(scale, size_scale)
        if judged:
            x = x64.to(dtype)
            own_gap = _gap(_run(own, x, clamp), expected)
            # where the original itself overflows in D its rounding says nothing
            rounding = max(rounding, _maximum(own_gap[torch.isfinite(own_gap)]))
            gap = _gap(_run(returned, x, clamp), expected)
            if worst is None or _maximum(gap) > _maximum(worst[0]):
                worst = (gap, tuple(x64.shape))
        elif index == 0:
            errors["float32"] = _maximum(_gap(_run(rounded, x64.float(), clamp), expected))
    if worst is not None:
        rho = max(rounding, ULPS_AT_LEAST * torch.finfo(dtype).eps * scale)
        bound = ROUNDING_FACTOR * rho
        errors[name] = _maximum(worst[0])
        errors[f"original {name}"], errors[f"bound {name}"] = rounding, bound
        if not errors[name] <= bound:
            raise VerificationError(
                f"the compiled module in {name} differs from the original by more than "
                f"{ROUNDING_FACTOR:g} times the original's own {name} rounding "
                f"(ρ = {rho:.3e}, bound {bound:.3e}): " + _describe(*worst, scale, name)
            )
    return errors
