"""R3: parallel convolutions on the same input, summed, are one convolution.

Theorem. Let branches ``yᵢ = conv(x; Wᵢ, bᵢ, s, pᵢ, d, g)`` read the same x. Centre every kernel
in the largest size ``(KH, KW)`` with R4 (zero-padding ``Wᵢ`` by ``(K − kᵢ)/2`` and raising the
padding to ``pᵢ + d(K − kᵢ)/2``). If all branches then have one padding p, convolution is linear
in ``(W, b)`` for a fixed patch, so

    Σᵢ conv(x; Wᵢ, bᵢ, s, p, d, g) = conv(x; Σᵢ W'ᵢ, Σᵢ bᵢ, s, p, d, g)

for every x (missing biases count as 0).

Preconditions (checked by :func:`check_parallel_convs`):

* at least one branch, every branch a Conv2d;
* the same in_channels, out_channels, stride, dilation, groups and padding_mode on every branch
  (a different stride or dilation samples the input on another grid, different groups mix other
  channels, a different padding mode reads other border values);
* every kernel centres into the largest one: ``K − k`` even on each axis (R4);
* the branches share one padding after centring: ``pᵢ + d(K − kᵢ)/2`` equal for all i (otherwise
  the outputs are shifted against each other or differ in size).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from et.contract import Rule, register, require
from et.conv_geometry import conv_bias, conv_like, geometry_of
from et.rules.embed_kernel import check_embedding, embed_kernel, embedded_padding

RULE_ID = "R3"


def common_kernel_size(convs: Sequence[nn.Conv2d]) -> tuple[int, int]:
    """The per-axis largest kernel of ``convs``."""
    sizes = [geometry_of(conv).kernel_size for conv in convs]
    return (max(k[0] for k in sizes), max(k[1] for k in sizes))


def check_parallel_convs(convs: Sequence[nn.Conv2d], *, rule_id: str = RULE_ID) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless ``convs`` merge into one conv."""
    convs = list(convs)
    require(len(convs) >= 1, rule_id, "at least one branch", "got an empty list")
    for conv in convs:
        require(
            isinstance(conv, nn.Conv2d),
            rule_id,
            "every branch is a Conv2d",
            f"got {type(conv).__name__}",
        )
    geometries = [geometry_of(conv) for conv in convs]
    for field in (
        "in_channels",
        "out_channels",
        "stride",
        "dilation",
        "groups",
        "padding_mode",
    ):
        values = [getattr(g, field) for g in geometries]
        require(
            all(v == values[0] for v in values),
            rule_id,
            f"the same {field} on every branch",
            f"found {values}",
        )
    target = common_kernel_size(convs)
    for conv in convs:
        check_embedding(conv, target, rule_id=rule_id)
    paddings = [embedded_padding(g, target) for g in geometries]
    require(
        all(p == paddings[0] for p in paddings),
        rule_id,
        "one padding after centring: pᵢ + d(K − kᵢ)/2 equal for all branches",
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
            "the branches read the same input and their outputs are summed",
            "the same in_channels on every branch",
            "the same out_channels on every branch",
            "the same stride on every branch",
            "the same dilation on every branch",
            "the same groups on every branch",
            "the same padding_mode on every branch",
            "K − k is even on each axis",
            "one padding after centring: pᵢ + d(K − kᵢ)/2 equal for all branches",
        ),
        transform=merge_parallel_convs,
        proof="proofs.rules.merge_parallel_convs",
    )
)
