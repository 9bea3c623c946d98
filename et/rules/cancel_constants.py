"""G8: a constant added and then subtracted (or the reverse) cancels.

Theorem. For a tensor x and a constant c that broadcasts *to x's shape* (``x ± c`` has x's
shape),

    sub(add(x, c), c) = x        add(sub(x, c), c) = x

over the reals, elementwise: ``(x_i + c_i) − c_i = x_i``. ATen's ``alpha`` must be 1 on both
ops (``(x + α c) − β c = x`` needs α = β; the rule asks α = β = 1, as the compiler matches
them). If c broadcasts x up (say x has 1 channel and c 3), ``(x + c) − c`` is x repeated, not
x. A size of x that is not known (None: a symbolic size) admits only size 1 in c there.
In floating point the left side rounds (``(1e−20 + 1) − 1 = 0``); the rewrite returns the
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


def keeps_shape(x_shape: Sequence[int | None], c_shape: Sequence[int]) -> bool:
    """Whether ``x ± c`` has x's shape for every x of ``x_shape`` (broadcasting aligns the
    last axes): c has no more axes than x, and each size of c is 1 or x's size there. A size
    of x given as None is not known (a symbolic size, any value ≥ 1): only a size 1 of c is
    sure to leave it as it is."""
    if len(c_shape) > len(x_shape):
        return False
    aligned = zip(reversed(tuple(x_shape)), reversed(tuple(c_shape)), strict=False)
    return all(c == 1 or (x is not None and c == x) for x, c in aligned)


def cancel_constants(
    x_shape: Sequence[int | None],
    inner: torch.Tensor | float,
    outer: torch.Tensor | float,
    ops: tuple[str, str] = ("add", "sub"),
    alphas: tuple[float, float] = (1.0, 1.0),
) -> nn.Identity:
    """``nn.Identity()``: what ``outer_op(inner_op(x, inner), outer)`` computes for inputs of
    ``x_shape`` (a size None: not known, as a symbolic size of a graph value), once the
    preconditions are checked."""
    OPPOSITE.require(
        tuple(ops) in (("add", "sub"), ("sub", "add")) and tuple(alphas) == (1.0, 1.0),
        f"ops {tuple(ops)} with alphas {tuple(alphas)}",
    )
    a, b = torch.as_tensor(inner), torch.as_tensor(outer)
    SAME_CONSTANT.require(
        a.shape == b.shape and bool(torch.equal(a.double(), b.double())),
        f"constants of shapes {list(a.shape)} and {list(b.shape)} differ",
    )
    NO_BROADCAST.require(
        keeps_shape(x_shape, a.shape),
        f"x {list(x_shape)} ± c {list(a.shape)} need not have x's shape",
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
