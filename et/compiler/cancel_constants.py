"""G8: cancelling constants, ``(x + c) − c = x`` and ``(x − c) + c = x``, declared as a
:class:`~et.compiler.patterns.Rewrite` (see :mod:`et.rules.cancel_constants` for the theorem)."""

from __future__ import annotations

import torch
from torch import fx

from et.compiler.patterns import GRAPH, GraphCheck, Op, Rewrite, Var, driver
from et.compiler.workspace import Workspace, same_value_type, value_shape

aten = torch.ops.aten


def _cancel_constants(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """G8: ``(x + c) − c = x`` and ``(x − c) + c = x`` for the same constant c (both at
    ``alpha = 1``: ``(x + α·c) − c`` is x only for α = 1)."""
    ws.record.applied("G8", [found["inner"], node], found[GRAPH])
    ws.replace(node, found["x"])
    return True


def _equal_constants(ws: Workspace, node: fx.Node, found: dict) -> bool:
    a, b = ws.tensor(found["c"]), ws.tensor(found["d"])
    return a is not None and b is not None and a.shape == b.shape and torch.equal(a, b)


def _keeps_value_type(ws: Workspace, node: fx.Node, found: dict) -> bool | None:
    """Whether ``x + c`` has x's shape and dtype; None (not evaluated, so not recorded as a
    check) where no shape is known for one of them (a node a rewrite made): the whole-module
    verification then decides, as it does for every fold."""
    if value_shape(ws, found["inner"]) is None or value_shape(ws, found["x"]) is None:
        return None
    return same_value_type(ws, found["inner"], found["x"])


def _cancelling(outer, inner) -> Op:
    return Op(outer, self=Op(inner, name="inner", self=Var("x"), other=Var("c")), other=Var("d"))


cancel_constants = driver(
    Rewrite(
        "G8",
        (
            _cancelling(aten.sub.Tensor, aten.add.Tensor),
            _cancelling(aten.add.Tensor, aten.sub.Tensor),
        ),
        _cancel_constants,
        (
            GraphCheck("the same constant c on both", _equal_constants, refuses=False),
            GraphCheck(
                "x + c has x's shape and dtype (c neither broadcasts nor promotes x)",
                _keeps_value_type,
                at="inner",
            ),
        ),
    )
)
