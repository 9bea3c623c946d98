"""R12: a fixed-mask depthwise convolution is a dense convolution with a diagonal kernel.

ECBSR's edge branches convolve each channel c with a constant mask M (Sobel-x, Sobel-y or the
Laplacian) times a learned scale ``σ_c``, plus a bias ``β_c``:
``y_c = β_c + conv(x_c; σ_c·M)`` (depthwise: groups = channels, one filter per channel).

Theorem. With ``W[o, c, u, v] = δ_oc · σ_c · M[u, v]`` (dense, groups = 1) and bias β,

    conv(x; W, β, p) = depthwise_conv(x; σ·M, β, p)

for every x and padding p, because the dense sum ``Σ_c W[o, c]·patch_c`` keeps only c = o.
The mask may also be given per channel (``M[c, 0, u, v]``), as ECBSR stores it.
Composition: ECBSR's branch "1×1 conv, then this depthwise with the 1×1's bias as the border"
is R7 (``merge_1x1_kxk(pointwise, dense, border="bias")``) applied to the dense conv built here.
"""

from __future__ import annotations

import torch
from torch import nn

from et.contract import Precondition, Rule, document_preconditions, register
from et.conv_geometry import make_conv

RULE_ID = "R12"

CONSTANT = Precondition(
    RULE_ID,
    "constant",
    "the mask is constant",
    why="a tensor that does not require grad (a trainable mask is a plain depthwise weight and "
    "belongs to R14 or R3)",
)
GROUPS = Precondition(
    RULE_ID,
    "groups",
    "groups = channels (one filter per channel)",
    why="a [C, m, kh, kw] mask with m > 1 is not depthwise",
)
SCALE_SHAPE = Precondition(RULE_ID, "scale_shape", "scale shape [C] or [C, 1, 1, 1]")
MASK_SHAPE = Precondition(RULE_ID, "mask_shape", "mask shape [kh, kw] or [C, 1, kh, kw]")
BIAS_SHAPE = Precondition(RULE_ID, "bias_shape", "bias shape [C] (when given)")

SOBEL_X = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
"""ECBSR's Sobel-x mask (a horizontal derivative; the sign convention of its ``conv1x1-sobelx``)."""

SOBEL_Y = torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])
"""ECBSR's Sobel-y mask (``conv1x1-sobely``)."""

LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
"""ECBSR's 4-neighbour Laplacian mask (``conv1x1-laplacian``)."""


def check_fixed_mask(mask: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless the depthwise branch is well formed."""
    CONSTANT.require(
        isinstance(mask, torch.Tensor) and not mask.requires_grad,
        "the mask requires grad (a trainable mask is a plain depthwise weight)"
        if isinstance(mask, torch.Tensor)
        else f"got {type(mask).__name__}, not a tensor",
    )
    SCALE_SHAPE.require(
        isinstance(scale, torch.Tensor) and scale.dim() in (1, 4),
        f"scale shape {tuple(getattr(scale, 'shape', ()))}",
    )
    channels = scale.shape[0]
    SCALE_SHAPE.require(scale.numel() == channels, f"scale shape {tuple(scale.shape)}")
    per_channel = mask.dim() == 4
    MASK_SHAPE.require(
        mask.dim() == 2 or (per_channel and mask.shape[0] == channels),
        f"mask shape {tuple(mask.shape)} with C = {channels}",
    )
    GROUPS.require(
        not per_channel or mask.shape[1] == 1,
        f"mask shape {tuple(mask.shape)} has {mask.shape[1] if per_channel else 1} inputs per "
        "filter: not depthwise",
    )
    BIAS_SHAPE.require(
        bias is None or tuple(bias.shape) == (channels,),
        f"bias shape {tuple(bias.shape) if bias is not None else None}, C = {channels}",
    )


def fixed_mask_depthwise_as_conv(
    mask: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    padding: int | tuple[int, int] = 1,
) -> nn.Conv2d:
    """Dense ``Conv2d`` (groups = 1) equal to the depthwise conv with weight ``scale·mask``.

    Channels come from ``scale``; dtype and device from ``scale``. Stride 1, dilation 1,
    ``padding`` as given (ECBSR pads its intermediate by 1, with the preceding 1×1's bias: see R7).
    """
    check_fixed_mask(mask, scale, bias)
    sigma = scale.detach().reshape(-1)
    channels = sigma.shape[0]
    per_channel = mask.detach().to(sigma)
    if per_channel.dim() == 2:
        per_channel = per_channel.expand(channels, 1, *per_channel.shape)
    kh, kw = per_channel.shape[-2:]
    weight = sigma.new_zeros((channels, channels, kh, kw))
    for c in range(channels):
        weight[c, c] = sigma[c] * per_channel[c, 0]
    b = None if bias is None else bias.detach().to(sigma)
    return make_conv(weight, b, padding=padding)


RULE = register(
    Rule(
        id=RULE_ID,
        name="fixed_mask_depthwise_as_conv",
        title="Fixed-mask depthwise convolution as a dense convolution",
        statement="depthwise(x; σ·M, β) = conv(x; δ_oc·σ_c·M, β)",
        preconditions=(
            CONSTANT,
            GROUPS,
            SCALE_SHAPE,
            MASK_SHAPE,
            BIAS_SHAPE,
        ),
        transform=fixed_mask_depthwise_as_conv,
        proof="proofs.rules.fixed_mask_depthwise_as_conv",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
