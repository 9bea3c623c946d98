"""Declared input domains.

Some ET rules (E1, E4) are exact only on non-negative tensors. The library never guesses a
domain from data: a conversion states the range its inputs are drawn from, and rules that need
non-negativity refuse a domain that admits negative values.

Images in [0, 1] (``IMAGE_UNIT``) are the default for super-resolution models; ``[0, 255]``
(``IMAGE_8BIT``) is also non-negative; ``REAL`` admits every real number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class InputDomain:
    """A closed interval ``[low, high]`` every input element lies in (``±inf`` allowed)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if math.isnan(self.low) or math.isnan(self.high) or self.low > self.high:
            raise ValueError(f"invalid input domain [{self.low}, {self.high}]")

    @property
    def non_negative(self) -> bool:
        return self.low >= 0

    def __str__(self) -> str:
        return f"[{self.low:g}, {self.high:g}]"


Domain = InputDomain | tuple[float, float]
"""What a conversion accepts as a declared domain: an :class:`InputDomain` or ``(low, high)``."""

IMAGE_UNIT = InputDomain(0.0, 1.0)
IMAGE_8BIT = InputDomain(0.0, 255.0)
REAL = InputDomain(-math.inf, math.inf)


def as_domain(value: Domain) -> InputDomain:
    """Accept an :class:`InputDomain` or a ``(low, high)`` pair."""
    if isinstance(value, InputDomain):
        return value
    low, high = value
    return InputDomain(float(low), float(high))
