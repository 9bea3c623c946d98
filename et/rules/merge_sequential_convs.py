"""R8: two convolutions in sequence (no nonlinearity between) are one larger convolution.

Theorem (the ETDS appendix, one axis shown; the two axes are independent). Let
``z = conv(x; W₁, b₁, s₁, p₁, d₁, g₁)`` and ``y = conv(z; W₂, b₂, s₂, 0, d₂, g₂)``, the second
conv reading no padded value. With x̃ the zero-extended input,

    y[i] = b₂ + Σ_c W₂[c]·z[i·s₂ + c·d₂]
         = b₂ + Σ_c W₂[c]·b₁ + Σ_c Σ_a W₂[c]·W₁[a]·x̃[i·s₁s₂ + c·s₁d₂ + a·d₁ − p₁].

Group the taps by offset ``a·d₁ + c·s₁d₂ = t·D`` with ``D = gcd(d₁, s₁d₂)``: this is one conv

    W₃[t] = Σ_{a·d₁ + c·s₁d₂ = t·D} W₂[c] · W₁[a]    (a channel matmul per tap pair),
    b₃ = b₂ + Σ_c W₂[c] · b₁,

with stride ``s₁s₂``, dilation D, padding p₁ and ``(d₁(K₁ − 1) + s₁d₂(K₂ − 1))/D + 1`` taps. In
the paper's case (s = d = 1) this is ``K₁ + K₂ − 1`` taps with ``W₃[t] = Σ_{a+c=t} W₂[c]W₁[a]``.
The output lengths agree because ``⌊(⌊A/s₁⌋ − B)/s₂⌋ = ⌊(A − s₁B)/(s₁s₂)⌋``.

Channels: as dense matrices per tap, W₁ is block-diagonal with g₁ blocks and W₂ with g₂ blocks,
so the product is block-diagonal with ``gcd(g₁, g₂)`` blocks; the merged conv uses that many
groups.

If the second conv pads (``p₂ > 0``, e.g. "same" padding), it reads zeros where the merged conv
reads ``b₁ + Σ W₁·x̃`` near the border: the outputs agree in the interior and differ on a ring of
width ``p₂``; for K₁ > 1 the missing value depends on x, so no constant pad fixes it (proved in
:mod:`proofs.rules.merge_sequential_convs`). The rule refuses that case.

The first conv may use any padding mode: the merged conv pads x the same way (p₁, same mode),
so every tap reads the same extended input.
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
from et.conv_geometry import conv_bias, geometry_of, make_conv

RULE_ID = "R8"

CHANNELS = Precondition(RULE_ID, "channels", "first.out_channels == second.in_channels")
LINEAR = Precondition(
    RULE_ID,
    "linear",
    "no nonlinearity between the two convs",
    why="a structural fact the caller asserts by calling",
)
VALID_SECOND = Precondition(
    RULE_ID,
    "valid_second",
    "the second conv reads no padded value (padding 0)",
    why="the first conv may use any padding mode: the merged conv pads x the same way (p₁, same "
    "mode), so every tap reads the same extended input",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "both modules are torch Conv2d, computing its torch class's forward "
    "(no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)


def dense_weight(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """The grouped ``[out, in/g, kh, kw]`` weight as a dense ``[out, in, kh, kw]`` one."""
    out_channels, in_per_group = weight.shape[:2]
    out_per_group = out_channels // groups
    dense = weight.new_zeros((out_channels, in_per_group * groups, *weight.shape[2:]))
    for group in range(groups):
        rows = slice(group * out_per_group, (group + 1) * out_per_group)
        cols = slice(group * in_per_group, (group + 1) * in_per_group)
        dense[rows, cols] = weight[rows]
    return dense


def grouped_weight(dense: torch.Tensor, groups: int) -> torch.Tensor:
    """The diagonal blocks of a block-diagonal dense weight, as a ``groups``-grouped weight.

    The caller guarantees the off-diagonal blocks are zero (here: by the gcd argument).
    """
    out_channels, in_channels = dense.shape[:2]
    out_per_group, in_per_group = out_channels // groups, in_channels // groups
    blocks = [
        dense[
            g * out_per_group : (g + 1) * out_per_group, g * in_per_group : (g + 1) * in_per_group
        ]
        for g in range(groups)
    ]
    return torch.cat(blocks, dim=0)


def check_sequential_convs(first: nn.Conv2d, second: nn.Conv2d) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless ``second ∘ first`` is one conv."""
    require_torch_semantics(first, nn.Conv2d, TORCH_MODULES)
    require_torch_semantics(second, nn.Conv2d, TORCH_MODULES)
    CHANNELS.require(
        first.out_channels == second.in_channels,
        f"{first.out_channels} != {second.in_channels}",
    )
    g2 = geometry_of(second)
    VALID_SECOND.require(
        g2.padding == (0, 0),
        f"second padding is {g2.padding}: its border ring would read zeros where the merged "
        "conv reads b₁ + W₁·x",
    )


def merge_sequential_convs(first: nn.Conv2d, second: nn.Conv2d) -> nn.Conv2d:
    """One conv equal to ``second(first(x))``; the inputs are left untouched."""
    check_sequential_convs(first, second)
    g1, g2 = geometry_of(first), geometry_of(second)
    w1 = dense_weight(first.weight.detach(), g1.groups)
    w2 = dense_weight(second.weight.detach(), g2.groups).to(w1.dtype)
    # Per axis: tap a of W₁ and tap c of W₂ land at offset a·d₁ + c·s₁·d₂ = t·D.
    steps2 = [s1 * d2 for s1, d2 in zip(g1.stride, g2.dilation, strict=True)]
    dilation = tuple(math.gcd(d1, st) for d1, st in zip(g1.dilation, steps2, strict=True))
    spans = [
        d1 * (k1 - 1) + st * (k2 - 1)
        for d1, k1, st, k2 in zip(g1.dilation, g1.kernel_size, steps2, g2.kernel_size, strict=True)
    ]
    kernel = tuple(span // d + 1 for span, d in zip(spans, dilation, strict=True))
    merged = w1.new_zeros((g2.out_channels, g1.in_channels, *kernel))
    (k1h, k1w), (k2h, k2w) = g1.kernel_size, g2.kernel_size
    for ah in range(k1h):
        for aw in range(k1w):
            for ch in range(k2h):
                for cw in range(k2w):
                    th = (ah * g1.dilation[0] + ch * steps2[0]) // dilation[0]
                    tw = (aw * g1.dilation[1] + cw * steps2[1]) // dilation[1]
                    merged[:, :, th, tw] += w2[:, :, ch, cw] @ w1[:, :, ah, aw]
    bias = None
    if first.bias is not None or second.bias is not None:
        b1 = conv_bias(first).to(w1.dtype)
        bias = conv_bias(second).to(w1.dtype) + torch.einsum("omuv,m->o", w2, b1)
    groups = math.gcd(g1.groups, g2.groups)
    return make_conv(
        grouped_weight(merged, groups),
        bias,
        stride=(g1.stride[0] * g2.stride[0], g1.stride[1] * g2.stride[1]),
        padding=g1.padding,
        dilation=dilation,
        groups=groups,
        padding_mode=g1.padding_mode,
    )


RULE = register(
    Rule(
        id=RULE_ID,
        name="merge_sequential_convs",
        title="Sequential K₁×K₁ and K₂×K₂ convolutions",
        statement="conv₂(conv₁(x)) = conv(x; W₃[t] = Σ_{a+c=t} W₂[c]·W₁[a], b₂ + Σ W₂·b₁)",
        preconditions=(
            CHANNELS,
            LINEAR,
            VALID_SECOND,
            TORCH_MODULES,
        ),
        transform=merge_sequential_convs,
        proof="proofs.rules.merge_sequential_convs",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
