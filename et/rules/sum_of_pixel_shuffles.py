"""G16: a (scaled) sum of two PixelShuffles is the PixelShuffle of the sum.

Theorem. PixelShuffle with upscale factor r only moves entries,
``PS(y, r)[n, c, h·r + i, w·r + j] = y[n, c·r² + i·r + j, h, w]`` (0 ≤ i, j < r), at an index
that depends on r and the output position alone. Hence for ``y₁, y₂`` of the same shape and
every real α,

    PS(y₁, r) + α·PS(y₂, r) = PS(y₁ + α·y₂, r),       PS(y₁, r) − α·PS(y₂, r) = PS(y₁ − α·y₂, r),

entry by entry: both sides read ``y₁[m] + α·y₂[m]`` at the same ``m``. (This is how the ET
form's final sum of the backbone and the residual shuffles is moved in front of one shuffle; E6
then merges the two convs into one, which is another theorem.) With different factors, or
shapes that only broadcast, one side is not defined or broadcasts differently.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from et.contract import Precondition, Rule, document_preconditions, register

RULE_ID = "G16"

SAME_FACTOR = Precondition(
    RULE_ID,
    "same_factor",
    "both shuffles have the same upscale factor",
    why="the two index maps must be one map",
)
SAME_SHAPE = Precondition(
    RULE_ID,
    "same_shape",
    "the two shuffled tensors have the same shape",
    why="a sum that broadcasts after the shuffle broadcasts differently, or not at all, before",
)


class ShuffledSum(nn.Module):
    """``(y₁, y₂) ↦ PS(y₁ + scale·y₂, factor)``."""

    def __init__(self, factor: int, scale: float) -> None:
        super().__init__()
        self.factor = int(factor)
        self.scale = float(scale)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(first + self.scale * second, self.factor)


def check_summed_shuffles(
    factors: tuple[int, int], shapes: tuple[Sequence[object], Sequence[object]]
) -> None:
    """Refuse unless ``PS(y₁, factors[0]) + α·PS(y₂, factors[1])`` with ``y₁``, ``y₂`` of
    ``shapes`` is the shuffle of ``y₁ + α·y₂`` (shapes may hold symbolic sizes as text)."""
    SAME_FACTOR.require(int(factors[0]) == int(factors[1]), f"factors {tuple(factors)}")
    first, second = (tuple(str(s) for s in shape) for shape in shapes)
    SAME_SHAPE.require(first == second, f"shapes {list(first)} and {list(second)}")


def sum_of_pixel_shuffles(
    factors: tuple[int, int],
    shapes: tuple[Sequence[object], Sequence[object]],
    scale: float = 1.0,
) -> ShuffledSum:
    """The module ``(y₁, y₂) ↦ PS(y₁ + scale·y₂, r)`` equal to ``PS(y₁, r) + scale·PS(y₂, r)``
    (``scale`` = α for ``add(…, alpha=α)``, −α for ``sub(…, alpha=α)``)."""
    check_summed_shuffles(factors, shapes)
    return ShuffledSum(int(factors[0]), float(scale))


RULE = register(
    Rule(
        id=RULE_ID,
        name="sum_of_pixel_shuffles",
        title="Sum of two PixelShuffles",
        statement="PS(y₁, r) ± α·PS(y₂, r) = PS(y₁ ± α·y₂, r) for y₁, y₂ of one shape",
        preconditions=(SAME_FACTOR, SAME_SHAPE),
        transform=sum_of_pixel_shuffles,
        proof="proofs.rules.sum_of_pixel_shuffles",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
