"""A difference of two parallel branches is one conv: R13 (scale by −1), then R3.

    conv(x; Wa, ba) − conv(x; Wb, bb) = conv(x; Wa − Wb, ba − bb)

because a conv is linear in its weights and bias: ``−conv(x; W, b) = conv(x; −W, −b)`` (R13
with γ = −1 on every channel) and the sum of two convs reading the same input is the conv with
the centred kernels added (R3). An identity branch (``x − conv(x)``, ``conv(x) − x``) or an
average-pool branch on the same input first becomes a conv (R6, R10), as in a sum. The
precondition that decides is R3's (the same stride, dilation, groups, a common padding after
centring): when it fails the subtraction stays as it was, and the certificate names it.
"""

from __future__ import annotations

import torch
from torch import fx, nn

from et.compiler.helpers import FAN_OUT, replace_conv, sole_conv
from et.compiler.patterns import Op, Rewrite, Var, driver
from et.compiler.pools import _branch_as_conv
from et.compiler.workspace import ConvSite, Workspace
from et.contract import PreconditionError

aten = torch.ops.aten


def _negated(ws: Workspace, conv: nn.Conv2d):
    """R13 with γ = −1: ``conv(x; −W, −b) = −conv(x; W, b)`` (and what R13 checked)."""
    return ws.apply("fold_channel_scale", conv, -torch.ones(conv.out_channels).to(conv.weight))


def _as_conv(ws: Workspace, branch: object, site: ConvSite, user: fx.Node):
    """``branch`` as ``(rules, nodes, conv)`` when it is a sole conv on ``site``'s input, the
    input itself (R6) or an average pool of it (R10); else None."""
    other = sole_conv(ws, branch, user)
    if other is not None:
        return ((), [other.node], other.conv, ()) if other.input is site.input else None
    if not isinstance(branch, fx.Node):
        return None
    made = _branch_as_conv(ws, branch, site.input, site.conv, user)
    if made is None:
        return None
    rule, conv, checks = made
    return ((rule,), [branch], conv, checks)


def _merge_difference(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """R13 + R3: ``a − b`` of two branches on one input (at least one a conv) is one conv."""
    a, b = found["a"], found["b"]
    site_a, site_b = sole_conv(ws, a, node), sole_conv(ws, b, node)
    if site_a is not None:
        first = ((), [site_a.node], site_a.conv, ())
        second = _as_conv(ws, b, site_a, node)
        site = site_a
    elif site_b is not None:
        first, second, site = (
            _as_conv(ws, a, site_b, node),
            ((), [site_b.node], site_b.conv, ()),
            site_b,
        )
    else:
        return False
    if first is None or second is None:
        return False
    try:
        negated, negated_checks = _negated(ws, second[2])
        merged, checks = ws.apply("merge_parallel_convs", [first[2], negated])
    except PreconditionError as error:
        ws.record.refused(node, error.rule, error.condition, error.detail)
        return False
    for made in (first, second):
        for rule in made[0]:
            ws.record.applied(rule, made[1], made[3])
    graph = "the scale −1 sits between the conv and the sum"
    ws.record.applied("R13", second[1], (*negated_checks, graph))
    checked = (*checks, "both branches read the same graph value", FAN_OUT)
    nodes = [*first[1], *second[1], node]
    return replace_conv(ws, node, merged, site.input, "R3", nodes, checked)


#: the plain difference (alpha at its default 1)
merge_difference = driver(
    Rewrite("R3", (Op(aten.sub.Tensor, self=Var("a"), other=Var("b")),), _merge_difference)
)
