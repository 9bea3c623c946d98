"""E8: dummy channels that align a layer's width (mobile NPUs prefer multiples of 4).

Theorem. Let ``conv`` have ``n`` outputs and ``N = aligned_channels(n, a) = a·⌈n/a⌉``.

* Output padding: appending ``N − n`` output rows with zero weights and bias ``β`` leaves the
  first ``n`` outputs unchanged and makes each dummy output the constant ``β``; slicing
  ``[:, :n]`` (before PixelShuffle) recovers ``conv(x)`` exactly. Through the E2 clip path
  (ReLU, ``z ↦ M − z``, ReLU) a dummy with ``β = M`` yields ``ReLU(M − M) = 0``, which is the
  authors' choice for ETDS ×3 (27 → 28 channels).
* Input padding: appending ``e`` input columns with zero weights gives
  ``conv([x; d]; [W, 0], b) = conv(x; W, b)`` for *any* dummy values ``d``.

Both hold for any kernel, stride, padding and dilation (zero weights contribute nothing, padded
border values included).
"""

from __future__ import annotations

import torch
from torch import nn

from et.contract import (
    Precondition,
    Rule,
    document_preconditions,
    register,
    require_torch_semantics,
)
from et.conv_geometry import conv_bias, conv_like

RULE_ID = "E8"

ALIGN = Precondition(RULE_ID, "align", "align ≥ 1", why="align = 1 adds nothing")
SINGLE_GROUP = Precondition(
    RULE_ID,
    "single_group",
    "the conv has groups = 1",
    why="appended channels would change the grouping otherwise",
)
ISOLATED = Precondition(
    RULE_ID,
    "isolated",
    "dummy outputs never mix into real channels",
    why="every weight from a dummy input to a real output is zero (check_dummy_isolated); a "
    "non-zero weight from a dummy channel that carries a constant β ≠ 0 shifts the real outputs",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "the conv is a torch Conv2d, computing its torch class's forward "
    "(no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)
COUNTS = Precondition(RULE_ID, "counts", "channel counts are ≥ 0 (n, extra)")


def aligned_channels(n: int, align: int) -> int:
    """The smallest multiple of ``align`` that is ``≥ n`` (``align = 1`` returns ``n``)."""
    ALIGN.require(isinstance(align, int) and align >= 1, f"align = {align!r}")
    COUNTS.require(n >= 0, f"n = {n}")
    return -(-n // align) * align


def _check_single_group(conv: nn.Conv2d) -> None:
    require_torch_semantics(conv, nn.Conv2d, TORCH_MODULES)
    SINGLE_GROUP.require(conv.groups == 1, f"groups = {conv.groups}")


def pad_output_channels(
    conv: nn.Conv2d, align: int, *, bias: float = 0.0, extra: int | None = None
) -> nn.Conv2d:
    """Append dummy outputs (zero weights, bias ``bias``) up to a multiple of ``align``.

    ``extra`` overrides the count (``aligned_channels`` decides it otherwise). The first
    ``conv.out_channels`` outputs are those of ``conv``; ``conv`` is not modified.
    """
    _check_single_group(conv)
    count = aligned_channels(conv.out_channels, align) - conv.out_channels
    if extra is not None:
        COUNTS.require(extra >= 0, f"extra = {extra}")
        count = extra
    weight = conv.weight.detach()
    pad_weight = torch.zeros(count, *weight.shape[1:], dtype=weight.dtype, device=weight.device)
    pad_bias = torch.full((count,), float(bias), dtype=weight.dtype, device=weight.device)
    return conv_like(conv, torch.cat([weight, pad_weight]), torch.cat([conv_bias(conv), pad_bias]))


def pad_input_channels(conv: nn.Conv2d, extra: int) -> nn.Conv2d:
    """Append ``extra`` input channels with zero weights; the output ignores their values."""
    _check_single_group(conv)
    COUNTS.require(extra >= 0, f"extra = {extra}")
    weight = conv.weight.detach()
    out_ch, _, kh, kw = weight.shape
    pad_weight = torch.zeros(out_ch, extra, kh, kw, dtype=weight.dtype, device=weight.device)
    bias = conv_bias(conv) if conv.bias is not None else None
    return conv_like(conv, torch.cat([weight, pad_weight], dim=1), bias)


def check_dummy_isolated(conv: nn.Conv2d, dummy_inputs: range | slice, real_outputs: int) -> None:
    """Refuse a conv in which a dummy input channel feeds one of the first ``real_outputs``."""
    _check_single_group(conv)
    block = conv.weight.detach()[:real_outputs, dummy_inputs]
    worst = block.abs().max().item() if block.numel() else 0.0
    ISOLATED.require(
        worst == 0,
        f"a dummy input reaches a real output with weight magnitude {worst:g}",
    )


class SliceChannels(nn.Module):
    """``x[:, :channels]``: drop trailing dummy channels before PixelShuffle."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, : self.channels]

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


RULE = register(
    Rule(
        id=RULE_ID,
        name="pad_output_channels",
        title="Dummy channels for alignment",
        statement=(
            "conv([W; 0], [b; β])(x)[:n] = conv(W, b)(x) and conv([x; d]; [W, 0], b) = "
            "conv(x; W, b) for any d; widths padded to a multiple of align"
        ),
        preconditions=(
            ALIGN,
            SINGLE_GROUP,
            ISOLATED,
            TORCH_MODULES,
            COUNTS,
        ),
        transform=pad_output_channels,
        proof="proofs.rules.pad_output_channels",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
