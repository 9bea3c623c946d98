"""G15: two zero paddings in a row are one zero padding.

Theorem. Per axis, write ``pad₀(x; l, r)`` for x (length n) with l zeros before and r after:
``pad₀(x; l, r)[j] = x[j − l]`` for ``l ≤ j < l + n`` and 0 elsewhere. For ``l, r, l', r' ≥ 0``,

    pad₀(pad₀(x; l, r); l', r') = pad₀(x; l + l', r + r'),

because both sides have length ``n + l + r + l' + r'``, read ``x[j − l − l']`` exactly where
``l + l' ≤ j < l + l' + n`` (a window inside the outer one, since ``l, r ≥ 0``) and are 0
elsewhere. In ``aten.constant_pad_nd(x, pad, value)`` terms the width lists (last axis first,
two per axis) add entry by entry, the shorter list extended by zeros (an axis it does not
name is padded by 0). A negative width crops: a crop after a pad, or a pad after a crop, is no
pad of x (the cropped entries are gone, zeros stand in their place).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from et.contract import Precondition, Rule, document_preconditions, register

RULE_ID = "G15"

ZERO_VALUES = Precondition(
    RULE_ID,
    "zero_values",
    "both pads fill with 0",
    why="a border of c ≠ 0 inside a border of 0 is no single constant border",
)
NON_NEGATIVE = Precondition(
    RULE_ID,
    "non_negative",
    "every width of both pads is ≥ 0",
    why="a negative width crops, and a crop does not commute with a pad",
)


class ZeroPad(nn.Module):
    """``constant_pad_nd(x, widths, 0)``: x padded with zeros (``F.pad`` width order)."""

    def __init__(self, widths: Sequence[int]) -> None:
        super().__init__()
        self.widths = tuple(int(w) for w in widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.widths)


def merged_widths(
    inner: Sequence[int],
    outer: Sequence[int],
    values: tuple[float, float] = (0.0, 0.0),
) -> tuple[int, ...]:
    """The widths of the one zero pad equal to ``pad(pad(x, inner, v₀), outer, v₁)``: the two
    lists side by side, entry by entry, after the preconditions are checked."""
    ZERO_VALUES.require(
        all(float(v) == 0.0 for v in values), f"fill values {tuple(float(v) for v in values)}"
    )
    first, second = [int(w) for w in inner], [int(w) for w in outer]
    NON_NEGATIVE.require(min([0, *first, *second]) >= 0, f"widths {first} then {second}")
    length = max(len(first), len(second))
    first += [0] * (length - len(first))
    second += [0] * (length - len(second))
    return tuple(a + b for a, b in zip(first, second, strict=True))


def merge_zero_pads(
    inner: Sequence[int],
    outer: Sequence[int],
    values: tuple[float, float] = (0.0, 0.0),
) -> ZeroPad:
    """The module ``x ↦ pad₀(x; inner + outer)`` equal to ``pad(pad(x, inner, v₀), outer, v₁)``."""
    return ZeroPad(merged_widths(inner, outer, values))


RULE = register(
    Rule(
        id=RULE_ID,
        name="merge_zero_pads",
        title="Two zero pads in a row",
        statement="pad₀(pad₀(x, p), q) = pad₀(x, p + q) for p, q ≥ 0 entry-wise",
        preconditions=(ZERO_VALUES, NON_NEGATIVE),
        transform=merge_zero_pads,
        proof="proofs.rules.merge_zero_pads",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
