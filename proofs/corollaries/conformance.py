"""Conformance of the project's whole-model converters, shared by the corollaries: random
float64 weights, inputs in [0, 1], and the deviation from the clamped original."""

from __future__ import annotations

from collections.abc import Callable

import torch

from et.testing import compare_outputs
from proofs.contract import Derivation


def randomize_parameters(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Overwrite every trainable parameter with ``0.3·N(0, 1)`` float64 draws (frozen ones stay).

    The conformance checks run the converters on such weights: non-zero, non-default, and
    reproducible from ``generator``.
    """
    with torch.no_grad():
        for tensor in model.parameters():
            if tensor.requires_grad:
                tensor.copy_(
                    0.3 * torch.randn(tensor.shape, generator=generator, dtype=torch.float64)
                )


def clamped_deviation(model: torch.nn.Module, converted: torch.nn.Module, x: torch.Tensor) -> float:
    """``max |clamp(model(x), 0, 1) − converted(x)|`` in float64, on the first outputs.

    The converted forms end in the clip-as-two-ReLUs tail, so their outputs already lie in
    [0, 1] and clamping them too changes nothing; NaN or a shape mismatch raises.
    """
    return compare_outputs(model, converted, x, clamp=(0.0, 1.0)).max_abs_error


def worst_converter_deviation(
    d: Derivation,
    build: Callable[[int], torch.nn.Module],
    convert: Callable[[torch.nn.Module], torch.nn.Module],
    failure: str,
) -> float:
    """The largest :func:`clamped_deviation` of ``convert`` over random float64 models
    ``build(scale)`` at ×2 and ×3 (inputs in [0, 1]); a converter that raises fails the step
    ``failure``."""
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for scale in (2, 3):
        try:
            model = build(scale).double().eval()
            randomize_parameters(model, generator)
            converted = convert(model).double().eval()
            x = torch.rand((2, 3, 6, 5), generator=generator, dtype=torch.float64)
            worst = max(worst, clamped_deviation(model, converted, x))
        except Exception as error:  # the converter broke: that is a failed conformance step
            d.true(failure, False, repr(error))
    return worst
