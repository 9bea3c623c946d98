"""E2: a clamp to [0, M] after a convolution, as two ReLUs and a 1×1 convolution.

Theorem. For every real ``y`` and every ``M ≥ 0``

    clamp(y, 0, M) = ReLU(M − ReLU(M − y)),

(case y < 0: M − y > M ≥ 0, so M − (M − y) = y < 0 and the outer ReLU gives 0; case 0 ≤ y ≤ M:
both ReLUs pass their argument and the result is y; case y > M: the inner ReLU gives 0 and the
outer M). The ``−1`` and ``+M`` of the inner argument fold into the convolution that produces
``y = conv(x; W, b)``: ``M − conv(x; W, b) = conv(x; −W, M − b)``, for any stride, padding,
dilation and groups (convolution is linear in ``(W, b)``). The outer ``M − ·`` is a 1×1
convolution with weight ``−I`` and bias ``M``. Hence, with ``folded = conv(·; −W, M − b)`` and
``clip = conv1x1(·; −I, M)``,

    ReLU(clip(ReLU(folded(x)))) = clamp(conv(x; W, b), 0, M)   for every x.

This is the tail of the authors' ``ETDSForInference`` (``conv_last`` then ``conv_clip``, each
followed by ReLU), with ``M = 1``. It needs no assumption on the input range.
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
from et.conv_geometry import conv_bias, conv_like, make_conv

RULE_ID = "E2"

BOUND = Precondition(
    RULE_ID,
    "bound",
    "the upper bound is finite and non-negative (M ≥ 0)",
    why="for M < 0 the clamp's bounds cross (torch.clamp then returns M) while the ReLU form "
    "returns 0",
)
IS_CONV = Precondition(
    RULE_ID,
    "is_conv",
    "the clamped module is a torch Conv2d computing its torch class's forward (no overridden "
    "forward, no hooks)",
)
ISOLATED = Precondition(
    RULE_ID,
    "isolated",
    "the conv output feeds nothing but the clamp",
    why="a structural fact the caller asserts by calling",
)


def check_clip(conv: nn.Module, max_value: float) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless the clamp can be rewritten."""
    require_torch_semantics(conv, nn.Conv2d, IS_CONV)
    BOUND.require(math.isfinite(float(max_value)) and float(max_value) >= 0, f"M = {max_value}")


def clip_conv(
    channels: int,
    max_value: float = 1.0,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> nn.Conv2d:
    """The 1×1 convolution ``z ↦ M − z`` on ``channels`` channels (weight ``−I``, bias ``M``)."""
    weight = -torch.eye(channels, dtype=dtype, device=device).reshape(channels, channels, 1, 1)
    bias = torch.full((channels,), float(max_value), dtype=dtype, device=device)
    return make_conv(weight, bias)


def clip_as_relu(conv: nn.Conv2d, max_value: float = 1.0) -> tuple[nn.Conv2d, nn.Conv2d]:
    """Return ``(folded, clip)`` with ``ReLU(clip(ReLU(folded(x)))) = clamp(conv(x), 0, M)``.

    ``folded`` has the geometry of ``conv`` with weight ``−W`` and bias ``M − b`` (a bias is
    added when ``conv`` has none); ``clip`` is :func:`clip_conv` on ``conv.out_channels``.
    The argument is not modified.
    """
    check_clip(conv, max_value)
    weight = conv.weight.detach()
    folded = conv_like(conv, -weight, float(max_value) - conv_bias(conv))
    clip = clip_conv(conv.out_channels, max_value, dtype=weight.dtype, device=weight.device)
    return folded, clip


def clip_as_relu_sequential(conv: nn.Conv2d, max_value: float = 1.0) -> nn.Sequential:
    """``Sequential(folded, ReLU, clip, ReLU)``, a module equal to ``clamp(conv(x), 0, M)``."""
    folded, clip = clip_as_relu(conv, max_value)
    return nn.Sequential(folded, nn.ReLU(), clip, nn.ReLU())


RULE = register(
    Rule(
        id=RULE_ID,
        name="clip_as_relu",
        title="Clamp to [0, M] as two ReLUs",
        statement=(
            "clamp(conv(x; W, b), 0, M) = ReLU(conv1x1(ReLU(conv(x; −W, M − b)); −I, M)), "
            "from clamp(y, 0, M) = ReLU(M − ReLU(M − y))"
        ),
        preconditions=(
            BOUND,
            IS_CONV,
            ISOLATED,
        ),
        transform=clip_as_relu,
        proof="proofs.rules.clip_as_relu",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
