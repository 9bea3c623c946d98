"""G8: cancelling constants, ``(x + c) − c = x`` and ``(x − c) + c = x``, declared as a
:class:`~et.compiler.patterns.Rewrite` that runs :mod:`et.rules.cancel_constants` (the theorem
and its checks: opposite ops at ``alpha`` 1, one constant, no broadcast of x), its checks
recorded. The dtype is the graph's fact: a constant of a wider dtype promotes x, so the sum
would be x cast, not x."""

from __future__ import annotations

import torch
from torch import fx

from et.compiler.patterns import GRAPH, GraphCheck, Op, Rewrite, Var, driver, number
from et.compiler.workspace import Workspace, value_dtype
from et.contract import PreconditionError

aten = torch.ops.aten

_OPS = {aten.add.Tensor: "add", aten.sub.Tensor: "sub"}


def known_shape(ws: Workspace, node: object) -> tuple[int | None, ...] | None:
    """The shape of the graph value ``node`` as G8's rule takes it: the captured sizes, a
    symbolic one as None (not known: it varies with the input); for a value a rewrite made
    (no captured value) an NCHW map of known channels, ``(None, C, None, None)``; else None."""
    value = node.meta.get("val") if isinstance(node, fx.Node) else None
    if isinstance(value, torch.Tensor):
        return tuple(size if isinstance(size, int) else None for size in value.shape)
    channels = ws.channels(node)
    return None if channels is None else (None, channels, None, None)


def _cancel_constants(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """G8: ``(x + c) − c = x`` and ``(x − c) + c = x`` for the same constant c, both at
    ``alpha = 1`` (``(x + α·c) − c`` is x only for α = 1): the rule's checks decide."""
    inner = found["inner"]
    try:
        _, checks = ws.apply(
            "cancel_constants",
            known_shape(ws, found["x"]),
            ws.tensor(found["c"]),
            ws.tensor(found["d"]),
            (_OPS[inner.target], _OPS[node.target]),
            (float(found["inner alpha"]), float(found["outer alpha"])),
        )
    except PreconditionError as error:
        ws.record.refused(node, "G8", error.condition, error.detail)
        return False
    ws.record.applied("G8", [inner, node], (*checks, *found[GRAPH]))
    ws.replace(node, found["x"])
    return True


def _equal_constants(ws: Workspace, node: fx.Node, found: dict) -> bool:
    a, b = ws.tensor(found["c"]), ws.tensor(found["d"])
    return a is not None and b is not None and a.shape == b.shape and torch.equal(a, b)


def _keeps_dtype(ws: Workspace, node: fx.Node, found: dict) -> bool | None:
    """Whether ``x + c`` has x's dtype; None (not evaluated, so not recorded as a check)
    where a dtype is unknown."""
    dtypes = value_dtype(ws, found["inner"]), value_dtype(ws, found["x"])
    return None if None in dtypes else dtypes[0] == dtypes[1]


def _cancelling(outer, inner) -> Op:
    return Op(
        outer,
        self=Op(inner, name="inner", self=Var("x"), other=Var("c"), alpha=Var("inner alpha")),
        other=Var("d"),
        alpha=Var("outer alpha"),
    )


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
                "both alphas are numbers and x's shape is known",
                lambda ws, node, found: (
                    number(found["inner alpha"])
                    and number(found["outer alpha"])
                    and known_shape(ws, found["x"]) is not None
                ),
                refuses=False,
            ),
            GraphCheck(
                "x + c has x's dtype (c does not promote x)",
                _keeps_dtype,
                at="inner",
            ),
        ),
    )
)
