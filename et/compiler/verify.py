"""Verify a compiled module against the original before it is returned.

Both run on :func:`et.testing.probe_inputs` from the declared domain, at the example's spatial
size and at a size one larger on each axis (one odd and one even size), in float64 (the oracle:
any logic error shows, rounding does not); float32 at the example's size.
A float64 relative error above the tolerance raises :class:`VerificationError`.
"""

from __future__ import annotations

import torch
from torch import nn

from et.domain import InputDomain
from et.testing import compare_outputs, probe_inputs


class VerificationError(AssertionError):
    """The compiled module does not compute the original function; nothing is returned."""


def measure(
    original: nn.Module,
    compiled: nn.Module,
    shape: tuple[int, int, int],
    domain: InputDomain,
    *,
    clamp: tuple[float, float] | None,
    tolerance: float,
) -> dict[str, float]:
    """Max absolute error per dtype over the probes; raises when float64 exceeds
    ``tolerance`` relative to the output's magnitude."""
    channels, height, width = shape
    shapes = [shape, (channels, height + 1, width + 1)]
    errors: dict[str, float] = {}
    for dtype, name in ((torch.float64, "float64"), (torch.float32, "float32")):
        worst = 0.0
        # float64 decides (every size); float32 measures rounding (the example's size)
        for probe_shape in shapes if dtype == torch.float64 else shapes[:1]:
            inputs = probe_inputs(probe_shape, domain=domain, samples=8, dtype=dtype)
            report = compare_outputs(original, compiled, inputs, dtype=dtype, clamp=clamp)
            if dtype == torch.float64 and report.max_rel_error > tolerance:
                raise VerificationError(
                    f"compiled module differs from the original at input size {probe_shape}: "
                    f"{report.describe()}"
                )
            worst = max(worst, report.max_abs_error)
        errors[name] = worst
    return errors
