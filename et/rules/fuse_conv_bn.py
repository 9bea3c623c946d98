"""R1: fold a BatchNorm that follows a convolution into the convolution.

Theorem. Let ``y = conv(x; W, b, s, p, d, g)`` and ``z = BN(y)`` with BatchNorm in evaluation
mode, i.e. ``z_o = γ_o (y_o - μ_o) / √(σ²_o + ε) + β_o`` with fixed running statistics μ, σ².
With ``t_o = γ_o / √(σ²_o + ε)``

    W'[o] = t_o · W[o],    b'_o = t_o (b_o - μ_o) + β_o,

``conv(x; W', b', s, p, d, g) = BN(conv(x; W, b, s, p, d, g))`` for every x, for any stride,
padding (zeros), dilation and groups, because BN is an affine map applied to each output channel
separately and convolution is linear in ``(W, b)``.

For a transposed convolution ``ConvTranspose2d`` (weight layout ``[in, out/g, kh, kw]``) the
same holds with the scale applied to the output-channel axis of each group.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from et.contract import (
    Precondition,
    Rule,
    document_preconditions,
    register,
    require_torch_semantics,
)

RULE_ID = "R1"

FIXED_STATISTICS = Precondition(
    RULE_ID,
    "fixed_statistics",
    "BatchNorm in eval mode with running statistics",
    why="with batch statistics μ, σ² depend on the batch, not on the weights",
)
CHANNELS = Precondition(RULE_ID, "channels", "bn.num_features == conv.out_channels")
ISOLATED = Precondition(
    RULE_ID,
    "isolated",
    "the conv output feeds nothing but the BN",
    why="a structural fact the caller asserts by calling",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "conv is a torch Conv2d or ConvTranspose2d and bn a BatchNorm2d, each computing its torch "
    "class's forward (no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)


def check_fixed_statistics(bn: nn.BatchNorm2d, condition: Precondition = FIXED_STATISTICS) -> None:
    """Refuse (under ``condition``) a BatchNorm that is not a fixed per-channel affine map.

    Only with running statistics and in eval mode is ``BN(y) = t·y + c`` with ``t, c`` from
    :func:`bn_scale_shift`; with batch statistics ``t`` and ``c`` depend on the batch. Rules
    built on this one (R2) pass their own precondition.
    """
    condition.require(
        bn.track_running_stats and bn.running_mean is not None and bn.running_var is not None,
        "track_running_stats=False: the statistics are those of each batch",
    )
    condition.require(
        not bn.training,
        "bn.training is True, so it normalises with batch statistics; call bn.eval() first",
    )


def check_conv_bn(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless ``bn`` can be folded into ``conv``."""
    require_torch_semantics(conv, (nn.Conv2d, nn.ConvTranspose2d), TORCH_MODULES)
    require_torch_semantics(bn, nn.BatchNorm2d, TORCH_MODULES)
    check_fixed_statistics(bn)
    CHANNELS.require(
        bn.num_features == conv.out_channels, f"{bn.num_features} != {conv.out_channels}"
    )


def bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """``(t, c)`` with ``BN(y) = t·y + c`` per channel, for an eval-mode BatchNorm."""
    std = torch.sqrt(bn.running_var.detach() + bn.eps)
    gamma = bn.weight.detach() if bn.weight is not None else torch.ones_like(std)
    beta = bn.bias.detach() if bn.bias is not None else torch.zeros_like(std)
    scale = gamma / std
    return scale, beta - bn.running_mean.detach() * scale


def fuse_conv_bn(
    conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d
) -> nn.Conv2d | nn.ConvTranspose2d:
    """Return a new convolution equal to ``bn(conv(x))``; the inputs are left untouched."""
    check_conv_bn(conv, bn)
    scale, shift = bn_scale_shift(bn)
    fused = copy.deepcopy(conv)
    weight = conv.weight.detach()
    if isinstance(conv, nn.ConvTranspose2d):
        groups = conv.groups
        in_ch, out_per_group = weight.shape[:2]
        per_group = weight.reshape(groups, in_ch // groups, out_per_group, *weight.shape[2:])
        group_scale = scale.to(weight.dtype).reshape(groups, 1, out_per_group, 1, 1)
        new_weight = (per_group * group_scale).reshape(weight.shape)
    else:
        new_weight = weight * scale.to(weight.dtype).reshape(-1, 1, 1, 1)
    old_bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(scale)
    new_bias = (old_bias * scale + shift).to(weight.dtype)
    with torch.no_grad():
        fused.weight.copy_(new_weight)
        if fused.bias is None:
            fused.bias = nn.Parameter(new_bias.clone())
        else:
            fused.bias.copy_(new_bias)
    return fused


RULE = register(
    Rule(
        id=RULE_ID,
        name="fuse_conv_bn",
        title="Convolution followed by BatchNorm",
        statement="BN(conv(x; W, b)) = conv(x; W·t, (b − μ)·t + β) with t = γ/√(σ² + ε)",
        preconditions=(FIXED_STATISTICS, CHANNELS, ISOLATED, TORCH_MODULES),
        transform=fuse_conv_bn,
        proof="proofs.rules.fuse_conv_bn",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
