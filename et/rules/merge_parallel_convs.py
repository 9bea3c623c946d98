"""R3: parallel convolutions on the same input, summed, are one convolution.

Theorem. Let branches ``yᵢ = conv(x; Wᵢ, bᵢ, s, pᵢ, d, g)`` read the same x. Centre every kernel
in the largest size ``(KH, KW)`` with R4 (zero-padding ``Wᵢ`` by ``(K − kᵢ)/2`` and raising the
padding to ``pᵢ + d(K − kᵢ)/2``). If all branches then have one padding p, convolution is linear
in ``(W, b)`` for a fixed patch, so

    Σᵢ conv(x; Wᵢ, bᵢ, s, p, d, g) = conv(x; Σᵢ W'ᵢ, Σᵢ bᵢ, s, p, d, g)

for every x (missing biases count as 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
from et.rules.embed_kernel import embed_kernel, embedded_padding

RULE_ID = "R3"

SAME_INPUT = Precondition(
    RULE_ID,
    "same_input",
    "the branches read the same input and their outputs are summed",
    why="a structural fact the caller asserts by calling",
)
_WHY_SAME = (
    "a different stride or dilation samples the input on another grid, different groups mix "
    "other channels, a different padding mode reads other border values"
)
SAME_IN_CHANNELS = Precondition(RULE_ID, "same_in_channels", "the same in_channels on every branch")
SAME_OUT_CHANNELS = Precondition(
    RULE_ID, "same_out_channels", "the same out_channels on every branch"
)
SAME_STRIDE = Precondition(RULE_ID, "same_stride", "the same stride on every branch", why=_WHY_SAME)
SAME_DILATION = Precondition(
    RULE_ID, "same_dilation", "the same dilation on every branch", why=_WHY_SAME
)
SAME_GROUPS = Precondition(RULE_ID, "same_groups", "the same groups on every branch", why=_WHY_SAME)
SAME_PADDING_MODE = Precondition(
    RULE_ID, "same_padding_mode", "the same padding_mode on every branch", why=_WHY_SAME
)
EVEN = Precondition(
    RULE_ID,
    "even",
    "K − k is even on each axis",
    why="every kernel centres into the largest one (R4)",
)
ONE_PADDING = Precondition(
    RULE_ID,
    "one_padding",
    "one padding after centring: pᵢ + d(K − kᵢ)/2 equal for all branches",
    why="otherwise the outputs are shifted against each other or differ in size",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "every branch is a torch Conv2d, computing its torch class's forward "
    "(no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)
NONEMPTY = Precondition(RULE_ID, "nonempty", "at least one branch")


@dataclass(frozen=True)
class ParallelConditions:
    """The preconditions :func:`check_parallel_convs` refuses under (R5 states its own)."""

    nonempty: Precondition
    torch_modules: Precondition
    same: dict[str, Precondition]  # geometry field → precondition
    even: Precondition
    one_padding: Precondition


R3_CONDITIONS = ParallelConditions(
    nonempty=NONEMPTY,
    torch_modules=TORCH_MODULES,
    same={
        "in_channels": SAME_IN_CHANNELS,
        "out_channels": SAME_OUT_CHANNELS,
        "stride": SAME_STRIDE,
        "dilation": SAME_DILATION,
        "groups": SAME_GROUPS,
        "padding_mode": SAME_PADDING_MODE,
    },
    even=EVEN,
    one_padding=ONE_PADDING,
)


def common_kernel_size(convs: Sequence[nn.Conv2d]) -> tuple[int, int]:
    """The per-axis largest kernel of ``convs``."""
    sizes = [geometry_of(conv).kernel_size for conv in convs]
    return (max(k[0] for k in sizes), max(k[1] for k in sizes))


def check_parallel_convs(
    convs: Sequence[nn.Conv2d], conditions: ParallelConditions = R3_CONDITIONS
) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless ``convs`` merge into one conv."""
    convs = list(convs)
    conditions.nonempty.require(len(convs) >= 1, "got an empty list")
    for conv in convs:
        require_torch_semantics(conv, nn.Conv2d, conditions.torch_modules)
    geometries = [geometry_of(conv) for conv in convs]
    for field, condition in conditions.same.items():
        values = [getattr(g, field) for g in geometries]
        condition.require(all(v == values[0] for v in values), f"{field}: found {values}")
    target = common_kernel_size(convs)
    for g in geometries:
        conditions.even.require(
            all((big - small) % 2 == 0 for big, small in zip(target, g.kernel_size, strict=True)),
            f"kernel {g.kernel_size} → {target} would sit off-centre",
        )
    paddings = [embedded_padding(g, target) for g in geometries]
    conditions.one_padding.require(
        all(p == paddings[0] for p in paddings),
        f"kernels {[g.kernel_size for g in geometries]} with paddings "
        f"{[g.padding for g in geometries]} centre to {target} with paddings {paddings}",
    )


def merge_parallel_convs(convs: Sequence[nn.Conv2d]) -> nn.Conv2d:
    """One conv equal to ``Σᵢ convs[i](x)``; the branches are left untouched.

    The result has the largest kernel, the common (centred) padding, and a bias when any branch
    has one.
    """
    convs = list(convs)
    check_parallel_convs(convs)
    target = common_kernel_size(convs)
    centred = [embed_kernel(conv, target) for conv in convs]
    weight = torch.stack([conv.weight.detach() for conv in centred]).sum(dim=0)
    has_bias = any(conv.bias is not None for conv in convs)
    bias = torch.stack([conv_bias(conv) for conv in centred]).sum(dim=0) if has_bias else None
    return conv_like(centred[0], weight, bias)


RULE = register(
    Rule(
        id=RULE_ID,
        name="merge_parallel_convs",
        title="Parallel convolutions summed",
        statement="Σᵢ conv(x; Wᵢ, bᵢ) = conv(x; Σᵢ Wᵢ (centred to one size), Σᵢ bᵢ)",
        preconditions=(
            SAME_INPUT,
            SAME_IN_CHANNELS,
            SAME_OUT_CHANNELS,
            SAME_STRIDE,
            SAME_DILATION,
            SAME_GROUPS,
            SAME_PADDING_MODE,
            EVEN,
            ONE_PADDING,
            TORCH_MODULES,
            NONEMPTY,
        ),
        transform=merge_parallel_convs,
        proof="proofs.rules.merge_parallel_convs",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
