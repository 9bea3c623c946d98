"""Joins of two computed values that no rule merges, named in the certificate.

A sum of two branches (R3 merges it) and a product with a per-channel scale (R13 folds it) are
the joins the catalogue removes. Where one is left, ``certificate.unfolded`` must say which
precondition stopped it, also where the rewrite that would merge it never got as far as calling
its rule (it found no pair of convs of one input, so it had nothing to refuse):

* ``a + b`` of two computed values (R3, ``alpha = 1``): every conv operand must be read by the
  sum alone (fan-out 1), and the two must read one value (two convs of it, or a conv of it
  and the value itself, the identity branch R6 makes a conv); a long skip such as FMEN's
  ``warp(body(h)) + h`` fails the first, a sum of a conv and an activation the second.
* ``x · g`` of two computed values (R13 needs one factor constant per channel): an attention
  such as FMEN's HFAB and PlainUSR's LIA, ``x · σ(conv(x))``, is no conv; the product is named,
  and so is the gate that feeds it (σ, tanh, …: a non-linear function of the input).

* ``conv ± c`` (G3) and ``conv · c``, ``conv / c`` (R13) with c a per-channel constant: they
  fold into the conv unless the conv is read elsewhere too (fan-out), which is then named.

These steps only record: they never change the graph (``apply`` returns False). A sum whose
convs read one value alone is left to R3 (its own refusal, if any, is the one recorded).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import fx

from et.compiler.helpers import FAN_OUT
from et.compiler.linear_rewrites import per_channel
from et.compiler.patterns import GraphCheck, Op, Rewrite, Var, driver
from et.compiler.workspace import Workspace

aten = torch.ops.aten

#: element-wise gates an attention multiplies by (none is a conv of its input)
GATES = (aten.sigmoid.default, aten.tanh.default, aten.hardsigmoid.default)

SAME_VALUE = "both branches read the same graph value (convs of it, or the value itself)"
CONSTANT_FACTOR = "one factor is a per-channel constant (a scale R13 folds into the conv)"


def _computed(ws: Workspace, found: dict) -> bool:
    """Both operands are graph values that depend on the input."""
    return all(isinstance(found[k], fx.Node) and ws.tensor(found[k]) is None for k in ("p", "q"))


def _shared_convs(ws: Workspace, node: fx.Node, found: dict) -> list[fx.Node]:
    """The conv operands that something other than ``node`` reads too."""
    sites = [ws.conv_site(found[k]) for k in ("p", "q")]
    return [s.node for s in sites if s is not None and not ws.sole_user(s.node, node)]


def _read_value(ws: Workspace, operand: fx.Node) -> fx.Node:
    """What a branch reads: a conv's input, or the operand itself (an identity branch)."""
    site = ws.conv_site(operand)
    return site.input if site is not None else operand


def _one_value(ws: Workspace, node: fx.Node, found: dict) -> bool:
    p, q = found["p"], found["q"]
    if ws.conv_site(p) is None and ws.conv_site(q) is None:
        return False  # neither branch is a conv: nothing for R3 to merge
    return _read_value(ws, p) is _read_value(ws, q)


def _reads_detail(ws: Workspace, node: fx.Node, found: dict) -> str:
    reads = [_read_value(ws, found[k]).name for k in ("p", "q")]
    kinds = ["conv" if ws.conv_site(found[k]) is not None else "value" for k in ("p", "q")]
    return f"the branches are a {kinds[0]} of {reads[0]} and a {kinds[1]} of {reads[1]}"


def _keep_sum(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """Reached when every check held: R3 owns the sum (it merges it or records its refusal)."""
    return False


def _keep_product(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """Reached when one factor is constant: R13 (or G9) owns the product."""
    return False


def _keep_gate(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """Reached for a gate of a constant (G9 evaluates it): nothing to name."""
    return False


name_unmerged_sum = driver(
    Rewrite(
        "R3",
        (Op(aten.add.Tensor, self=Var("p"), other=Var("q")),),
        _keep_sum,
        (
            GraphCheck(
                "both operands are computed values",
                lambda ws, node, found: _computed(ws, found),
                refuses=False,
            ),
            GraphCheck(
                FAN_OUT,
                lambda ws, node, found: not _shared_convs(ws, node, found),
                lambda ws, node, found: (
                    f"{[n.name for n in _shared_convs(ws, node, found)]} also feed other ops"
                ),
            ),
            GraphCheck(SAME_VALUE, _one_value, _reads_detail),
        ),
    )
)


def _product_detail(ws: Workspace, node: fx.Node, found: dict) -> str:
    return f"both factors are computed from the input: {found['p'].name} and {found['q'].name}"


name_unmerged_product = driver(
    Rewrite(
        "R13",
        (Op(aten.mul.Tensor, self=Var("p"), other=Var("q")),),
        _keep_product,
        (
            GraphCheck(
                "both operands are graph values",
                lambda ws, node, found: all(isinstance(found[k], fx.Node) for k in ("p", "q")),
                refuses=False,
            ),
            GraphCheck(
                CONSTANT_FACTOR,
                lambda ws, node, found: not _computed(ws, found),
                _product_detail,
            ),
        ),
    )
)


def _gated_product(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """The gate feeds a product with another computed value (an attention)."""
    return any(
        user.target == aten.mul.Tensor
        and all(isinstance(a, fx.Node) and ws.tensor(a) is None for a in user.args[:2])
        for user in node.users
    )


def _gate_detail(ws: Workspace, node: fx.Node, found: dict) -> str:
    products = sorted(u.name for u in node.users if u.target == aten.mul.Tensor)
    return f"{node.target} of a computed value gates {products}: an attention, no conv"


name_attention_gate = driver(
    Rewrite(
        "R13",
        (Op(GATES, self=Var("x")),),
        _keep_gate,
        (
            GraphCheck("the gate feeds a product", _gated_product, refuses=False),
            GraphCheck(
                CONSTANT_FACTOR,
                lambda ws, node, found: ws.tensor(found["x"]) is not None,
                _gate_detail,
            ),
        ),
    )
)


def _shared_conv_operand(ws: Workspace, found: dict) -> fx.Node | None:
    """The conv operand of ``conv ∘ c`` (c a per-channel constant), when it exists."""
    for mine, other in (("p", "q"), ("q", "p")):
        site = ws.conv_site(found[mine])
        if site is not None and per_channel(ws, found[other], site.conv.out_channels) is not None:
            return site.node
    return None


def _keep_shift(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """Reached when the conv is read by this op alone: G3 owns it."""
    return False


def _keep_scale(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """Reached when the conv is read by this op alone: R13 owns it."""
    return False


def _constant_op(
    rule: str, targets: tuple, keep: Callable[[Workspace, fx.Node, dict], bool]
) -> Callable[[Workspace, fx.Node], bool]:
    """``conv ± c`` (G3) or ``conv · c``, ``conv / c`` (R13) left because the conv is shared."""
    return driver(
        Rewrite(
            rule,
            (Op(targets, self=Var("p"), other=Var("q")),),
            keep,
            (
                GraphCheck(
                    "one operand is a conv, the other a per-channel constant",
                    lambda ws, node, found: _shared_conv_operand(ws, found) is not None,
                    refuses=False,
                ),
                GraphCheck(
                    FAN_OUT,
                    lambda ws, node, found: ws.sole_user(_shared_conv_operand(ws, found), node),
                    lambda ws, node, found: (
                        f"the conv {_shared_conv_operand(ws, found).name} also feeds other ops"
                    ),
                ),
            ),
        )
    )


name_unfolded_shift = _constant_op("G3", (aten.add.Tensor, aten.sub.Tensor), _keep_shift)
name_unfolded_scale = _constant_op("R13", (aten.mul.Tensor, aten.div.Tensor), _keep_scale)

UNMERGED_JOINS = (
    name_unmerged_sum,
    name_unmerged_product,
    name_attention_gate,
    name_unfolded_shift,
    name_unfolded_scale,
)
