"""R17: a weighted sum of Linears on one input is one Linear.

Theorem. Let ``L_k(x) = W_k x + b_k`` (k = 1..n) read the same input x, all with the same
``in_features`` and ``out_features``, and let ``α_k`` be finite real constants. Then

    Σ_k α_k·L_k(x) = W x + b,    W = Σ_k α_k·W_k,    b = Σ_k α_k·b_k,

for every x, because a Linear is linear in ``(W, b)``. Two heads averaged,
``(head(x) + dist_head(x)) / 2`` (DeiT, RepViT, LeViT), is ``n = 2``, ``α = (½, ½)``; one Linear
scaled by a constant, ``α·L(x)``, is ``n = 1``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from et.contract import (
    Precondition,
    Rule,
    document_preconditions,
    register,
    require_torch_semantics,
)

RULE_ID = "R17"

SAME_INPUT = Precondition(
    RULE_ID,
    "same_input",
    "every Linear reads the same input tensor",
    why="a structural fact the caller asserts by calling",
)
SHAPES = Precondition(
    RULE_ID,
    "shapes",
    "at least one Linear; all have the same in_features and the same out_features",
)
SCALES = Precondition(
    RULE_ID,
    "scales",
    "one finite real factor α_k per Linear",
    why="0·∞ is NaN: an infinite α with a zero weight does not scale the weight as it scales "
    "the output",
)
ISOLATED = Precondition(
    RULE_ID,
    "isolated",
    "each Linear's output feeds nothing but the sum",
    why="a structural fact the caller asserts by calling",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "every Linear is a torch Linear computing its torch class's forward (no overridden forward, "
    "no hooks)",
    why="the theorem is about torch's functions, not about class names",
)


def check_parallel_linears(linears: Sequence[nn.Linear], scales: Sequence[float]) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless ``Σ α_k L_k`` is one Linear."""
    for linear in linears:
        require_torch_semantics(linear, nn.Linear, TORCH_MODULES)
    SHAPES.require(len(linears) >= 1, "no Linear given")
    shapes = {(m.in_features, m.out_features) for m in linears}
    SHAPES.require(len(shapes) == 1, f"(in, out) features differ: {sorted(shapes)}")
    SCALES.require(len(scales) == len(linears), f"{len(scales)} factors for {len(linears)}")
    SCALES.require(
        all(isinstance(a, int | float) and math.isfinite(a) for a in scales),
        f"factors {list(scales)}",
    )


def merge_parallel_linears(
    linears: Sequence[nn.Linear], scales: Sequence[float] | None = None
) -> nn.Linear:
    """One Linear equal to ``Σ_k scales[k]·linears[k](x)`` (scales default to 1); the inputs
    are left untouched."""
    scales = [1.0] * len(linears) if scales is None else list(scales)
    check_parallel_linears(linears, scales)
    first = linears[0]
    weight = sum(a * m.weight.detach() for a, m in zip(scales, linears, strict=True))
    zero = torch.zeros_like(first.weight[:, 0]).detach()
    bias = sum(
        a * (m.bias.detach() if m.bias is not None else zero)
        for a, m in zip(scales, linears, strict=True)
    )
    merged = copy.deepcopy(first)
    with torch.no_grad():
        merged.weight.copy_(weight)
        if merged.bias is None:
            merged.bias = nn.Parameter(torch.as_tensor(bias, dtype=first.weight.dtype).clone())
        else:
            merged.bias.copy_(bias)
    return merged


RULE = register(
    Rule(
        id=RULE_ID,
        name="merge_parallel_linears",
        title="Weighted sum of Linears on one input",
        statement="Σ_k α_k·(W_k x + b_k) = (Σ_k α_k W_k) x + Σ_k α_k b_k",
        preconditions=(SAME_INPUT, SHAPES, SCALES, ISOLATED, TORCH_MODULES),
        transform=merge_parallel_linears,
        proof="proofs.rules.merge_parallel_linears",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
