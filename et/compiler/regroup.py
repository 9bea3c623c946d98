"""G13: one conv written with another number of groups, so parallel branches can merge (R3).

Published blocks mix groupings on one sum: MobileOne's depthwise branches sit beside a skip
BatchNorm, which the compiler first writes as a dense (``groups=1``) identity conv. R3 needs
one grouping on every branch. Two exact identities give it one:

* a conv whose dense weight is zero outside the diagonal blocks of ``g`` groups *is* the
  ``g``-grouped conv with those blocks (checked on the weights, entry by entry);
* a ``g₁``-grouped conv is the ``g₂``-grouped conv (``g₂`` dividing ``g₁``) whose blocks are
  its dense weight's, with zeros elsewhere.

The first keeps a depthwise block depthwise; the second (a denser conv) is used only when the
first does not hold.
"""

from __future__ import annotations

import torch
from torch import nn

from et.conv_geometry import conv_like
from et.rules.merge_sequential_convs import dense_weight, grouped_weight

#: what the certificate says was checked
REGROUP_CHECK = (
    "to more groups: the dense weight is exactly zero outside the diagonal blocks; "
    "to fewer: the group counts divide"
)


def _bias(conv: nn.Conv2d) -> torch.Tensor | None:
    return conv.bias.detach() if conv.bias is not None else None


def is_block_diagonal(dense: torch.Tensor, groups: int) -> bool:
    """Whether every entry of ``dense`` [out, in, kh, kw] outside ``groups`` diagonal blocks
    is exactly zero."""
    out_channels, in_channels = dense.shape[:2]
    if out_channels % groups or in_channels % groups:
        return False
    block_rows = torch.arange(out_channels) // (out_channels // groups)
    block_cols = torch.arange(in_channels) // (in_channels // groups)
    outside = block_rows[:, None] != block_cols[None, :]
    return bool(torch.all(dense[outside] == 0))


def regroup(conv: nn.Conv2d, groups: int) -> nn.Conv2d | None:
    """``conv`` as an equal conv with ``groups`` groups, or None where no identity gives one."""
    if groups == conv.groups:
        return conv
    if conv.in_channels % groups or conv.out_channels % groups:
        return None
    dense = dense_weight(conv.weight.detach(), conv.groups)
    if groups > conv.groups:
        if groups % conv.groups or not is_block_diagonal(dense, groups):
            return None
        return conv_like(conv, grouped_weight(dense, groups), _bias(conv), groups=groups)
    if conv.groups % groups:
        return None
    return conv_like(conv, grouped_weight(dense, groups), _bias(conv), groups=groups)


def common_grouping(convs: list[nn.Conv2d]) -> list[nn.Conv2d] | None:
    """The convs with one grouping: the most groups any of them allows all of them, else the
    fewest groups among them (denser, always exact when the counts divide)."""
    counts = sorted({c.groups for c in convs}, reverse=True)
    for groups in counts:
        regrouped = [regroup(c, groups) for c in convs]
        if all(r is not None for r in regrouped):
            return regrouped  # type: ignore[return-value]
    return None
