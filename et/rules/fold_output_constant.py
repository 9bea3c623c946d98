"""G3: a constant added to (or subtracted from) a conv's output folds into its bias.

Theorem. A conv output is ``y_o = b_o + P_o(x)`` with ``P_o`` linear in ``W[o]`` (any stride,
padding, dilation, groups and padding mode choose only the patch). For a constant ``c`` with
one value per output channel (a scalar, or a tensor broadcasting as ``[1, C, 1, 1]``) and the
ATen binary ops with their ``alpha`` keyword,

    add(conv(x), c, α) = conv(x; W, b + α·c)          add(c, conv(x), α) = conv(x; α·W, α·b + c)
    sub(conv(x), c, α) = conv(x; W, b − α·c)          sub(c, conv(x), α) = conv(x; −α·W, −α·b + c)

i.e. ``a·conv(x) + e·c = conv(x; a·W, a·b + e·c)`` with ``(a, e)`` from
:func:`coefficients`, for every x, because ``a(b_o + P_o) + e c_o = (a b_o + e c_o) + P_o``
with ``P_o`` computed from ``a·W[o]``. A constant that varies over positions (or batch) is no
bias, and the conv's output must feed nothing else (the caller's fact: the rewrite replaces it).
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

RULE_ID = "G3"

OPERATION = Precondition(
    RULE_ID,
    "operation",
    "the op is add or sub (ATen add.Tensor / sub.Tensor, any alpha)",
    why="mul and div scale the kernel instead (R13)",
)
PER_CHANNEL = Precondition(
    RULE_ID,
    "per_channel",
    "the constant has one value per output channel (a scalar or a [1, C, 1, 1] tensor)",
    why="a bias is the same at every position and every batch item",
)
ISOLATED = Precondition(
    RULE_ID,
    "isolated",
    "the conv output feeds nothing but the add or sub",
    why="a structural fact the caller asserts by calling",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "conv is a torch Conv2d computing its torch class's forward (no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)


def coefficients(op: str, tensor_first: bool, alpha: float, condition: Precondition) -> tuple:
    """``(a, e)`` with ``op(first, second, alpha) = a·t + e·c`` for the tensor t and the
    constant c (``tensor_first``: t is the first operand); refused under ``condition``."""
    condition.require(op in ("add", "sub"), f"op {op!r}")
    sign = 1.0 if op == "add" else -1.0
    return (1.0, sign * alpha) if tensor_first else (sign * alpha, 1.0)


def per_channel(constant: object, channels: int, condition: Precondition) -> torch.Tensor:
    """``constant`` as a float64 vector ``[channels]``, refused under ``condition`` unless it
    is a scalar or broadcasts as ``[1, channels, 1, 1]``."""
    value = torch.as_tensor(constant, dtype=torch.float64).detach()
    shape = [1] * (4 - value.ndim) + list(value.shape) if value.ndim <= 4 else None
    condition.require(
        shape is not None and shape[0] == shape[2] == shape[3] == 1 and shape[1] in (1, channels),
        f"constant of shape {list(value.shape)} for {channels} channels",
    )
    return value.reshape(-1).expand(channels).clone()


def fold_output_constant(
    conv: nn.Conv2d,
    constant: torch.Tensor | float,
    op: str = "add",
    *,
    conv_first: bool = True,
    alpha: float = 1.0,
) -> nn.Conv2d:
    """A new conv equal to ``op(conv(x), c, alpha)`` (``conv_first``) or ``op(c, conv(x),
    alpha)``; only the kernel's sign/scale and the bias change."""
    require_torch_semantics(conv, nn.Conv2d, TORCH_MODULES)
    a, e = coefficients(op, conv_first, alpha, OPERATION)
    c = per_channel(constant, conv.out_channels, PER_CHANNEL)
    weight = conv.weight.detach()
    bias = a * conv_bias(conv).double() + e * c.to(weight.device)
    return conv_like(conv, a * weight, bias.to(weight.dtype))


RULE = register(
    Rule(
        id=RULE_ID,
        name="fold_output_constant",
        title="Constant added to or subtracted from a conv",
        statement="conv(x; W, b) ± c = conv(x; W, b ± c) for c constant per output channel",
        preconditions=(OPERATION, PER_CHANNEL, ISOLATED, TORCH_MODULES),
        transform=fold_output_constant,
        proof="proofs.rules.fold_output_constant",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
