"""R9: merge a K×K convolution followed by a 1×1 convolution into one K×K convolution.

Theorem. Let ``y = conv(x; W, b, s, p, d, g)`` with ``W[m, c, u, v]`` (any kernel, stride,
padding, dilation, groups, padding mode) and ``z = conv(y; P, β)`` a 1×1 convolution with stride
1 and padding 0 (``P[o, m]``, groups ``h``). Write ``D(W)`` for the dense (groups = 1) form of a
grouped weight: ``D(W)[m, c] = W[m, c − g(m)·C/g]`` when input channel c lies in the group of m,
0 otherwise. Then, for every input x,

    W'[o, c, u, v] = Σ_m D(P)[o, m] · D(W)[m, c, u, v],    b'_o = Σ_m D(P)[o, m] b_m + β_o,

``conv(x; W', b', s, p, d, 1) = z``, because at every output position ``z_o = β_o + Σ_m P_om
(b_m + ⟨W_m, patch⟩)`` with the *same* patch of x for every m: the 1×1 reads exactly one position
of y and no padding, so y's border pixels are already correct and nothing is padded twice. The
product is block diagonal with ``gcd(g, h)`` blocks (the mid channels split into gcd(g, h) runs,
each a union of groups of both convolutions), so the result has groups ``gcd(g, h)``; every
pairing of groups is exact.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from et.contract import (
    Precondition,
    Rule,
    document_preconditions,
    register,
    require_torch_semantics,
)
from et.conv_geometry import conv_bias, conv_like, geometry_of
from et.rules.merge_sequential_convs import dense_weight, grouped_weight

RULE_ID = "R9"

POINTWISE = Precondition(
    RULE_ID,
    "pointwise",
    "the second convolution is 1×1 with stride 1 and padding 0",
    why="a padded 1×1 reads zeros around y, where the merged conv would produce Σ P b + β; a "
    "strided one subsamples y",
)
CHANNELS = Precondition(RULE_ID, "channels", "pointwise.in_channels == conv.out_channels")
LINEAR = Precondition(
    RULE_ID,
    "linear",
    "no nonlinearity between the two; the K×K output feeds nothing else",
    why="structural; the caller asserts it by calling",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "both modules are torch Conv2d, computing its torch class's forward "
    "(no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)


def check_kxk_1x1(conv: nn.Conv2d, pointwise: nn.Conv2d) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless ``pointwise ∘ conv`` merges exactly."""
    require_torch_semantics(conv, nn.Conv2d, TORCH_MODULES)
    require_torch_semantics(pointwise, nn.Conv2d, TORCH_MODULES)
    geo = geometry_of(pointwise)
    POINTWISE.require(geo.kernel_size == (1, 1), f"its kernel is {geo.kernel_size}")
    POINTWISE.require(geo.stride == (1, 1), f"its stride is {geo.stride}")
    POINTWISE.require(
        geo.padding == (0, 0),
        f"its padding is {geo.padding}: it would read zeros around the K×K output",
    )
    CHANNELS.require(
        pointwise.in_channels == conv.out_channels,
        f"{pointwise.in_channels} != {conv.out_channels}",
    )


def merge_kxk_1x1(conv: nn.Conv2d, pointwise: nn.Conv2d) -> nn.Conv2d:
    """Return one convolution equal to ``pointwise(conv(x))``; the inputs are left untouched.

    The result has ``conv``'s kernel, stride, padding, dilation and padding mode, groups
    ``gcd(conv.groups, pointwise.groups)``, and a bias iff either input has one.
    """
    check_kxk_1x1(conv, pointwise)
    weight = dense_weight(conv.weight.detach(), conv.groups)
    mix = dense_weight(pointwise.weight.detach(), pointwise.groups)[:, :, 0, 0].to(weight.dtype)
    merged = torch.einsum("om,mcuv->ocuv", mix, weight)
    # Mid channels split into gcd(g, h) blocks that are unions of both convs' groups, so the
    # product is block diagonal with that many blocks.
    groups = math.gcd(conv.groups, pointwise.groups)
    merged = grouped_weight(merged, groups)
    bias = None
    if conv.bias is not None or pointwise.bias is not None:
        bias = mix @ conv_bias(conv).to(weight.dtype) + conv_bias(pointwise).to(weight.dtype)
    return conv_like(conv, merged, bias, groups=groups)


RULE = register(
    Rule(
        id=RULE_ID,
        name="merge_kxk_1x1",
        title="K×K convolution followed by a 1×1 convolution",
        statement="conv1x1(conv(x; W, b); P, β) = conv(x; P·W, P·b + β)",
        preconditions=(
            POINTWISE,
            CHANNELS,
            LINEAR,
            TORCH_MODULES,
        ),
        transform=merge_kxk_1x1,
        proof="proofs.rules.merge_kxk_1x1",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
