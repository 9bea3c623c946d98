"""G12: a crop read by a valid conv becomes zero taps of the kernel.

Theorem. Per spatial axis, let a conv with kernel length k, dilation d, stride s and padding 0
on that axis read ``x[a : n − b]`` (a positions cut before, b after, counted from both ends),
where each cut is a whole number of dilated taps: ``a = d·α``, ``b = d·β``. Output position i
reads, with tap u, ``x[a + i·s + u·d] = x[i·s + (u + α)·d]``. The kernel extended to
``k + α + β`` taps, ``W'[u + α] = W[u]`` and zero elsewhere, reads exactly these positions at
its non-zero taps, and both convs have

    ⌊(n − a − b − d(k − 1) − 1)/s⌋ + 1 = ⌊(n − d(k + α + β − 1) − 1)/s⌋ + 1

outputs, so for every x (of any length n the left side accepts), stride, groups and bias

    conv(x[…, a : −b]; W, padding 0) = conv(x; W with α zero taps before, β after; padding 0).

The two axes are independent: a crop ``(left, right, top, bottom)`` extends the kernel by
``(left/d_w, right/d_w)`` columns and ``(top/d_h, bottom/d_h)`` rows. The other axis may
carry any padding and padding mode (a pad along one axis commutes with a crop along the other).
A centred crop (α = β) is R4's embedding read backwards. With padding on a cropped axis the
identity fails (the crop's border is padded with zeros where x has values), and so does a cut
that is not a whole number of dilated taps. ``aten.slice(x, dim, start, end, step)`` matches
when dim is spatial, step is 1, ``start = a ≥ 0`` and ``end`` is ``−b`` or open-ended (an end
counted from the start holds at one input size only).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import nn

from et.contract import (
    Precondition,
    Rule,
    document_preconditions,
    register,
    require_torch_semantics,
)
from et.conv_geometry import conv_bias, conv_like, pair

RULE_ID = "G12"

NON_NEGATIVE = Precondition(
    RULE_ID,
    "non_negative",
    "every crop width is ≥ 0, counted from its own end",
    why="the statement names a crop of x[a : n − b] for every n",
)
VALID_ON_CROPPED_AXES = Precondition(
    RULE_ID,
    "valid_on_cropped_axes",
    "the conv reading a crop has padding 0 on that axis",
    why="a padded conv reads zeros beside the crop where the widened kernel would read x",
)
WHOLE_TAPS = Precondition(
    RULE_ID,
    "whole_taps",
    "the crop is a whole number of dilated taps",
    why="a cut of a = d·α + r with 0 < r < d moves every tap off the dilated grid of x",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "conv is a torch Conv2d computing its torch class's forward (no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)


def check_crop(conv: nn.Conv2d, crop: Sequence[int]) -> tuple[int, int, int, int]:
    """``(left, right, top, bottom)`` in taps, or :class:`~et.contract.PreconditionError`."""
    require_torch_semantics(conv, nn.Conv2d, TORCH_MODULES)
    widths = tuple(int(w) for w in crop)
    NON_NEGATIVE.require(len(widths) == 4 and min(widths) >= 0, f"crop {list(widths)}")
    left, right, top, bottom = widths
    padding = (0, 0) if conv.padding == "valid" else conv.padding
    VALID_ON_CROPPED_AXES.require(
        not isinstance(padding, str), f"padding {padding!r} (G14 writes it as numbers)"
    )
    dh, dw = pair(conv.dilation)
    for axis, (before, after), dilation in ((0, (top, bottom), dh), (1, (left, right), dw)):
        if before + after == 0:
            continue
        VALID_ON_CROPPED_AXES.require(
            padding[axis] == 0,
            f"padding {conv.padding} on cropped axis {axis}",
        )
        WHOLE_TAPS.require(
            before % dilation == 0 and after % dilation == 0,
            f"crop ({before}, {after}) on axis {axis}, dilation {dilation}",
        )
    return (left // dw, right // dw, top // dh, bottom // dh)


def absorb_crop(conv: nn.Conv2d, crop: Sequence[int]) -> nn.Conv2d:
    """A new conv ``c`` with ``c(x) = conv(x[..., top : H − bottom, left : W − right])``.

    ``crop`` is ``(left, right, top, bottom)`` (F.pad's order), each counted from its own end;
    the kernel grows by ``crop / dilation`` zero taps on each side; stride, padding, dilation,
    groups, padding mode, bias, dtype and device are kept.
    """
    taps = check_crop(conv, crop)
    weight = F.pad(conv.weight.detach(), taps)
    bias = conv_bias(conv) if conv.bias is not None else None
    padding = (0, 0) if conv.padding == "valid" else None
    return conv_like(conv, weight, bias, padding=padding)


RULE = register(
    Rule(
        id=RULE_ID,
        name="absorb_crop",
        title="Crop read by a valid conv",
        statement="conv(x[…, a : −b]; W, padding 0) = conv(x; W with a/d zero taps before, "
        "b/d after)",
        preconditions=(NON_NEGATIVE, VALID_ON_CROPPED_AXES, WHOLE_TAPS, TORCH_MODULES),
        transform=absorb_crop,
        proof="proofs.rules.absorb_crop",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
