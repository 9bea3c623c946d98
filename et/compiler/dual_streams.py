"""E5 on the ATen graph: two streams on one input become one stream on the stacked channels.

    relu(conv₁(x)), act(conv₂(x))  →  s = act'(conv(x; [W₁; W₂], [b₁; b₂])),  s[:, :n], s[:, n:]

E5's first-layer transform when both streams end in the same ReLU; otherwise R11 stacks the
convs (any groups) and G6 puts the two element-wise rectifiers on the stacked channels as one
map, and its refusal names why when they differ. The streams are read back as channel slices,
which G5 (:mod:`et.compiler.et_rewrites`) widens into the next convs so their sums merge by R3.
"""

from __future__ import annotations

import torch
from torch import fx, nn

from et.compiler.patterns import GRAPH, GraphCheck, Rewrite, conv, driver, is_conv, number
from et.compiler.workspace import Workspace, arguments
from et.contract import PreconditionError
from et.rules.merge_dual_stream import merge_activations, merge_dual_stream_first

aten = torch.ops.aten
RECTIFIERS = (aten.relu.default, aten.prelu.default, aten.leaky_relu.default)
__all__ = ["stack_streams"]


def _elementwise_map(ws: Workspace, node: fx.Node) -> nn.Module | None:
    """The rectifier ``node`` computes as a module (G6 and E5 take modules): ReLU, LeakyReLU
    with its slope, PReLU with its constant slopes; None for anything else."""
    values = arguments(node)
    if values is None:
        return None
    if node.target == aten.relu.default:
        return nn.ReLU()
    if node.target == aten.leaky_relu.default and number(values["negative_slope"]):
        return nn.LeakyReLU(float(values["negative_slope"]))
    slopes = ws.tensor(values["weight"]) if node.target == aten.prelu.default else None
    if slopes is None:
        return None
    prelu = nn.PReLU(slopes.numel(), dtype=slopes.dtype)
    with torch.no_grad():
        prelu.weight.copy_(slopes.reshape(-1))
    return prelu


def _stacked(ws: Workspace, first, second, maps: tuple[nn.Module, nn.Module]):
    """``(rule, conv, checks)``: E5's first-layer stack of two convs on one input followed by
    one activation (its transform and its activation check run), else R11's dense stack
    (grouped convs), else None."""
    try:
        merged, checks = ws.run(merge_dual_stream_first, first, second)
        _, act_checks = ws.run(merge_activations, *maps)
        return "E5", merged, (*checks, *act_checks)
    except PreconditionError:
        pass
    try:
        merged, checks = ws.apply("concat_convs", [first, second])
    except PreconditionError:
        return None
    return "R11", merged, checks


def _stack_streams(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """E5 (or R11 + G6 for grouped convs): ``relu(conv₁(x))`` and ``relu(conv₂(x))`` become
    one conv and one ReLU on the stacked channels, read back as channel slices. A sibling
    stream under another rectifier is offered to G6, whose refusal names why."""
    site = ws.conv_site(node)
    act = next(iter(node.users))
    for other_node in site.input.users:
        if other_node is node:
            continue
        other = ws.conv_site(other_node)
        if other is None or other.input is not site.input or len(other_node.users) != 1:
            continue
        other_act = next(iter(other_node.users))
        other_map = _elementwise_map(ws, other_act) if other_act.target in RECTIFIERS else None
        if other_map is None:
            continue
        maps = (nn.ReLU(), other_map)
        made = _stacked(ws, site.conv, other.conv, maps)
        if made is None:
            continue
        rule, merged, checks = made
        stacking: tuple = ()
        if rule == "R11":
            n, m = site.conv.out_channels, other.conv.out_channels
            try:  # the one map on the stacked channels is G6's
                _, stacking = ws.apply("stack_elementwise", list(maps), [n, m])
            except PreconditionError as error:
                ws.record.refused(other_act, "G6", error.condition, error.detail)
                continue
        order = list(ws.graph.nodes)
        anchor = act if order.index(act) < order.index(other_act) else other_act
        stacked = ws.emit_conv(merged, site.input, anchor)
        relu = ws.call(act.target, (stacked,), anchor)
        n = site.conv.out_channels
        first = ws.call(aten.slice.Tensor, (relu, 1, 0, n), anchor)
        second = ws.call(aten.slice.Tensor, (relu, 1, n, n + other.conv.out_channels), anchor)
        graph = ("both streams read the same value", "the same element-wise rectifier")
        if rule == "E5":
            checked = (*checks, *found[GRAPH], *graph)
            ws.record.applied("E5", [node, other_node, act, other_act], checked)
        else:
            ws.record.applied("R11", [node, other_node], (*checks, *found[GRAPH], graph[0]))
            ws.record.applied("G6", [act, other_act], stacking)
        act.replace_all_uses_with(first)
        other_act.replace_all_uses_with(second)
        ws.changed(act, other_act)
        return True
    return False


def _plain_relu(node: fx.Node) -> bool:
    """A ``relu`` call whose one argument binds by the schema."""
    return node.target == aten.relu.default and arguments(node) is not None


def _read_by_one_relu(ws: Workspace, node: fx.Node, found: dict) -> bool:
    return len(node.users) == 1 and _plain_relu(next(iter(node.users)))


#: anchored on the first stream's conv; the sibling stream is searched among the readers of
#: its input (a pattern over two readers of one value, which Op does not say)
stack_streams = driver(
    Rewrite(
        "E5",
        (conv("conv"),),
        _stack_streams,
        (
            is_conv("conv"),
            GraphCheck("the conv's only reader is a ReLU", _read_by_one_relu, refuses=False),
        ),
    )
)
