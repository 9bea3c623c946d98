"""G2: a constant canvas with a tensor written into its interior is a shifted zero pad.

Theorem. Let ``K`` be x (spatial size H × W) written into the interior of a canvas filled with
c, one value per channel, with widths ``(l, r, t, b)`` around it:
``K[…, t + h, l + w] = x[…, h, w]`` for ``h < H, w < W`` and ``K[…, i, j] = c`` elsewhere
(ECBSR's ``pad_with_bias``: ``out = c.expand(…); out[…, t:−b, l:−r] = x``, captured as
``slice_scatter``; DBB's ``pad₀(x)`` with every border strip overwritten by c). Then

    K = pad₀(x − c; l, r, t, b) + c,

because inside the window ``(x − c) + c = x`` and outside it ``0 + c = c``, for every x. After
this, G3 / G4 / G1 fold the pair into the neighbouring convs. (In floating point
``(x − c) + c`` may round; the identity is exact over the reals.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from et.contract import Precondition, Rule, document_preconditions, register
from et.rules.fold_output_constant import per_channel

RULE_ID = "G2"

PER_CHANNEL = Precondition(
    RULE_ID,
    "per_channel",
    "the canvas outside x holds one value per channel (a scalar or a [1, C, 1, 1] fill)",
    why="pad₀(x − c) + c puts the same c at every border position",
)
WIDTHS = Precondition(
    RULE_ID,
    "widths",
    "four widths (left, right, top, bottom), each ≥ 0",
    why="x is written inside the canvas, on the two spatial axes",
)


class ShiftedZeroPad(nn.Module):
    """``pad₀(x − c; widths) + c`` with a per-channel ``c`` (a buffer ``[1, C, 1, 1]``)."""

    def __init__(self, constant: torch.Tensor, widths: Sequence[int]) -> None:
        super().__init__()
        self.register_buffer("constant", constant)
        self.widths = tuple(int(w) for w in widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.constant.to(x.dtype)
        return F.pad(x - c, self.widths) + c


def fill_around(x: torch.Tensor, constant: torch.Tensor | float, widths: Sequence[int]):
    """The left side: a canvas of ``constant`` with x written into its interior."""
    left, right, top, bottom = widths
    n, channels, height, width = x.shape
    fill = torch.as_tensor(constant, dtype=x.dtype).reshape(1, -1, 1, 1)
    canvas = fill.expand(n, channels, height + top + bottom, width + left + right).clone()
    canvas[:, :, top : top + height, left : left + width] = x
    return canvas


def fill_as_zero_pad(
    constant: torch.Tensor | float, widths: Sequence[int], channels: int
) -> ShiftedZeroPad:
    """The module ``x ↦ pad₀(x − c; widths) + c`` equal to :func:`fill_around` for inputs
    with ``channels`` channels."""
    pads = tuple(int(w) for w in widths)
    WIDTHS.require(len(pads) == 4 and min(pads) >= 0, f"widths {list(pads)}")
    c = per_channel(constant, channels, PER_CHANNEL)
    return ShiftedZeroPad(c.reshape(1, channels, 1, 1), pads)


RULE = register(
    Rule(
        id=RULE_ID,
        name="fill_as_zero_pad",
        title="Constant fill written around a tensor",
        statement="fill(c) with x written into its interior = pad₀(x − c, p) + c",
        preconditions=(PER_CHANNEL, WIDTHS),
        transform=fill_as_zero_pad,
        proof="proofs.rules.fill_as_zero_pad",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
