"""G8: a constant added and then subtracted (or the reverse) cancels.

Theorem. For a tensor x and a constant c that broadcasts *to x's shape* (``x ± c`` has x's
shape),

    sub(add(x, c), c) = x        add(sub(x, c), c) = x

over the reals, elementwise: ``(x_i + c_i) − c_i = x_i``. ATen's ``alpha`` must be 1 on both
ops (``(x + α c) − β c = x`` needs α = β; the rule asks α = β = 1, as the compiler matches
them). If c broadcasts x up (say x has 1 channel and c 3), ``(x + c) − c`` is x repeated, not
x. In floating point the left side rounds (``(1e−20 + 1) − 1 = 0``); the rewrite returns the
exact value.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from et.contract import Precondition, Rule, document_preconditions, register

RULE_ID = "G8"

OPPOSITE = Precondition(
    RULE_ID,
    "opposite",
    "the ops are add then sub, or sub then add, both with alpha 1",
    why="two additions (or different alphas) do not cancel",
)
SAME_CONSTANT = Precondition(
    RULE_ID,
    "same_constant",
    "the two constants are equal, entry by entry and in shape",
    why="c − c' ≠ 0 would remain",
)
NO_BROADCAST = Precondition(
    RULE_ID,
    "no_broadcast",
    "the constant broadcasts to x's shape (x ± c has x's shape)",
    why="a constant that widens x makes the result a broadcast copy of x",
)


def cancel_constants(
    x_shape: Sequence[int],
    inner: torch.Tensor | float,
    outer: torch.Tensor | float,
    ops: tuple[str, str] = ("add", "sub"),
    alphas: tuple[float, float] = (1.0, 1.0),
) -> nn.Identity:
    """``nn.Identity()``: what ``outer_op(inner_op(x, inner), outer)`` computes for inputs of
    ``x_shape``, once the preconditions are checked."""
    OPPOSITE.require(
        tuple(ops) in (("add", "sub"), ("sub", "add")) and tuple(alphas) == (1.0, 1.0),
        f"ops {tuple(ops)} with alphas {tuple(alphas)}",
    )
    a, b = torch.as_tensor(inner), torch.as_tensor(outer)
    SAME_CONSTANT.require(
        a.shape == b.shape and bool(torch.equal(a.double(), b.double())),
        f"constants of shapes {list(a.shape)} and {list(b.shape)} differ",
    )
    widened = torch.broadcast_shapes(tuple(x_shape), tuple(a.shape))
    NO_BROADCAST.require(
        tuple(widened) == tuple(x_shape),
        f"x {list(x_shape)} ± c {list(a.shape)} has shape {list(widened)}",
    )
    return nn.Identity()


RULE = register(
    Rule(
        id=RULE_ID,
        name="cancel_constants",
        title="Cancelling constants",
        statement="(x + c) − c = x and (x − c) + c = x",
        preconditions=(OPPOSITE, SAME_CONSTANT, NO_BROADCAST),
        transform=cancel_constants,
        proof="proofs.rules.cancel_constants",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
