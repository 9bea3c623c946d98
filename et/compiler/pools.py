"""Average pools as convs (R10): a pool reading a conv's sole output, or read by a valid
conv alone, or summed with a conv on the same input (:func:`_branch_as_conv`, used by R3).

``avg_pool2d(x; k, s, p)`` with ``count_include_pad`` (or no padding) and no
``divisor_override`` is the conv with weight ``1/(k_h·k_w)`` on each channel's own window
(depthwise, or dense with zero off-diagonal blocks); the rule's own checks decide, and every
argument of the pool is read by its schema name and handed to ``nn.AvgPool2d`` as it is.
"""

from __future__ import annotations

import torch
from torch import fx, nn

from et.compiler.helpers import replace_conv
from et.compiler.patterns import GRAPH, GraphCheck, Op, Rewrite, Var, conv, driver, is_conv
from et.compiler.sequential import NO_COSTLIER, costlier, merge_pair
from et.compiler.workspace import Workspace, arguments
from et.contract import PreconditionError

aten = torch.ops.aten


def _as_list(value: object) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


def _branch_as_conv(ws: Workspace, branch: fx.Node, source: fx.Node, like: nn.Conv2d, add):
    """An identity (R6) or average-pool (R10) branch on ``source`` as a conv, else None."""
    channels = ws.channels(source)
    if channels is None or channels != like.out_channels:
        return None
    groups = like.groups if like.in_channels == channels else 1
    if branch is source:
        try:
            conv, checks = ws.apply("identity_conv", channels, 1, groups)
        except PreconditionError:
            return None
        return "R6", conv.to(like.weight), checks
    values = arguments(branch)
    if branch.target == aten.avg_pool2d.default and values and values["self"] is source:
        if len(branch.users) != 1:
            return None
        kernel, stride, padding = values["kernel_size"], values["stride"], values["padding"]
        stride = stride if _as_list(stride) else kernel  # the schema's [] means the kernel
        sizes = [v for value in (kernel, stride, padding) for v in _as_list(value)]
        if not all(isinstance(v, int) for v in sizes):
            return None  # a size that depends on the input (global pooling) is no fixed conv
        ceil, include = bool(values["ceil_mode"]), bool(values["count_include_pad"])
        pool = nn.AvgPool2d(kernel, stride, padding, ceil, include, values["divisor_override"])
        if groups not in (1, channels):
            return None
        try:
            conv, checks = ws.apply(
                "avg_pool_as_conv",
                pool,
                channels,
                depthwise=groups == channels,
                dtype=like.weight.dtype,
            )
        except PreconditionError as error:
            ws.record.refused(branch, "R10", error.condition, error.detail)
            return None
        return "R10", conv.to(like.weight), checks
    return None


#: how many single-reader steps above a pool :func:`_in_branch_sum` looks for the sum
_BRANCH_DEPTH = 4


def _in_branch_sum(ws: Workspace, node: fx.Node) -> bool:
    """Whether ``node``'s value reaches, through at most :data:`_BRANCH_DEPTH` ops each its
    sole reader, a sum or difference of two computed values: the pool is then a branch of a
    re-parameterized block (DBB's ``1×1 → BN → avg → BN``), which folds into the block's one
    conv once its neighbours (batch norms, the border pad) are folded, so the pool is turned
    into a conv as before and the sequential merges' guard judges what follows."""
    for _ in range(_BRANCH_DEPTH):
        if len(node.users) != 1:
            return False
        node = next(iter(node.users))
        if node.target in (aten.add.Tensor, aten.sub.Tensor):
            operands = [a for a in node.args[:2] if isinstance(a, fx.Node)]
            if len(operands) == 2 and all(ws.tensor(a) is None for a in operands):
                return True
    return False


def _unmerged(ws: Workspace, nodes: tuple, source: fx.Node, pair: tuple, costs: tuple) -> bool:
    """Whether the pool, once a conv, would stay a conv of its own because merging it with its
    neighbour ``pair`` costs more (:data:`~et.compiler.sequential.NO_COSTLIER`, recorded on
    the pool); a merge that a rule refuses is left for that rule to name, and a pool in a
    branch of a sum is left to the merges that follow (:func:`_in_branch_sum`)."""
    if _in_branch_sum(ws, nodes[1]):
        return False
    try:
        rule, merged, _ = merge_pair(ws, *pair)
    except PreconditionError:
        return False
    detail = costlier(ws, nodes, source, pair, merged, costs)
    if detail is not None:
        ws.record.refused(nodes[1], rule, NO_COSTLIER, detail)
    return detail is not None


def _pool_cost(node: fx.Node, channels: int) -> int:
    """An average pool's multiply-adds per output pixel: ``C·k_h·k_w`` (its depthwise form)."""
    kernel = _as_list(arguments(node)["kernel_size"])
    return channels * kernel[0] * kernel[-1]


def _pool_after_conv(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """R10: an average pool reading a conv's sole output becomes a conv (then R7/R8), unless
    that merge would cost more than the conv and the pool (then the pool stays a pool)."""
    site = ws.conv_site(found["conv"])
    made = _branch_as_conv(ws, node, site.node, site.conv, next(iter(node.users), node))
    if made is None:
        return False
    rule, made_conv, checks = made
    costs = (None, _pool_cost(node, made_conv.out_channels))
    if _unmerged(ws, (site.node, node), site.input, (site.conv, made_conv), costs):
        return False
    return replace_conv(ws, node, made_conv, site.node, rule, [node], (*checks, *found[GRAPH]))


def _pool(source: object, **named: object) -> Op:
    """``avg_pool2d`` with every argument bound (the rule reads them all)."""
    names = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")
    arguments = {n: Var(n) for n in (*names, "divisor_override")}
    return Op(aten.avg_pool2d.default, self=source, **arguments, **named)


pool_after_conv = driver(
    Rewrite(
        "R10",
        (_pool(conv("conv", single_user=True)),),
        _pool_after_conv,
        (is_conv("conv"),),
    )
)


def _pool_before_conv(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """R10: an average pool whose sole reader is a valid conv becomes a depthwise conv, which
    R8/R9 then merge into that conv (DBB's ``avg → BN`` branch), unless that merge would cost
    more than the pool and the conv (then the pool stays a pool)."""
    source, after = found["x"], _valid_reader(ws, node)
    channels = ws.channels(source)
    like = nn.Conv2d(channels, channels, 1, groups=channels).to(after.conv.weight)
    made = _branch_as_conv(ws, node, source, like, after.node)
    if made is None:
        return False
    rule, made_conv, checks = made
    if _unmerged(ws, (node, after.node), source, (made_conv, after.conv), (None, None)):
        return False  # recorded on the conv that would have taken the pool in
    return replace_conv(ws, node, made_conv, source, rule, [node], (*checks, *found[GRAPH]))


def _valid_reader(ws: Workspace, node: fx.Node):
    """The conv site reading ``node`` when it is its only reader and has padding 0."""
    if len(node.users) != 1:
        return None
    after = ws.conv_site(next(iter(node.users)))
    if after is None or after.input is not node or after.conv.padding != (0, 0):
        return None
    return after


pool_before_conv = driver(
    Rewrite(
        "R10",
        (_pool(Var("x")),),
        _pool_before_conv,
        (
            GraphCheck(
                "the pool's only reader is a conv with padding 0",
                lambda ws, node, found: _valid_reader(ws, node) is not None,
                refuses=False,
            ),
            GraphCheck(
                "the pooled value's channel count is known",
                lambda ws, node, found: bool(ws.channels(found["x"])),
                refuses=False,
            ),
        ),
    )
)
