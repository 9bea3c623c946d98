"""Branches of different groups summed (or subtracted) on one input are one conv (R20).

    conv(x; W₁, g₁) ± conv(x; W₂, g₂) = conv(x; blocks_g(dense W₁ ± dense W₂), g)

with g = gcd(g₁, g₂), or more groups where every branch's dense weight is zero outside them
(a depthwise conv minus a BatchNorm written as a diagonal conv stays depthwise). This is the
step after R3 (``linear_rewrites``, ``branch_difference``): those merge branches of one
grouping, or of groupings where one count divides the other; what they leave is a sum whose
groups do not divide (a ``groups=2`` conv beside a ``groups=3`` one), and an average-pool or
identity branch beside a conv whose groups are neither 1 nor the channel count (QARepVGG v2's
``avg_pool(x)`` beside a ``groups=2`` conv), which R3 has no conv of that grouping for. Here
the identity becomes a depthwise identity conv (R6), the pool a depthwise conv (R10), a
subtracted branch its negation (R13 with γ = −1), and R20 merges them. Sums of one grouping are
left to R3 (no match here).

Two spellings of the same sums are brought to that form first: a sum that starts with its
pool and identity branches (``pool(x) + x + conv(x)``: ``pool(x) + x`` is one depthwise conv,
R10 + R6 + R3), and a layer scale distributed over a BatchNorm branch (``x − γ ⊙ norm(x) + …``:
the BatchNorm is a depthwise 1×1 conv, R6 + R1, which R13 then scales).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx, nn

from et.compiler.head_rewrites import _batch_norm, _module_of
from et.compiler.helpers import FAN_OUT, replace_conv, sole_conv
from et.compiler.linear_rewrites import per_channel
from et.compiler.patterns import GRAPH, GraphCheck, Op, Rewrite, Var, driver
from et.compiler.pools import _branch_as_conv
from et.compiler.workspace import ConvSite, Workspace, arguments
from et.contract import PreconditionError

aten = torch.ops.aten


@dataclass(frozen=True)
class Branch:
    """One operand of the sum as a conv on the shared input: the nodes it replaces and the
    rule that wrote it as a conv (R6, R10; None for a conv already)."""

    conv: nn.Conv2d
    nodes: tuple[fx.Node, ...]
    rule: str | None = None
    checks: tuple = ()


def _anchor(ws: Workspace, node: fx.Node, found: dict) -> ConvSite | None:
    """The first operand that is a conv read by this op alone."""
    for operand in (found["a"], found["b"]):
        site = sole_conv(ws, operand, node)
        if site is not None:
            return site
    return None


def _as_branch(ws: Workspace, value: object, anchor: ConvSite, node: fx.Node) -> Branch | None:
    """``value`` as a conv reading ``anchor``'s input: a sole conv on it, the input itself
    (R6, depthwise) or an average pool of it (R10, depthwise); else None."""
    site = sole_conv(ws, value, node)
    if site is not None:
        return Branch(site.conv, (site.node,)) if site.input is anchor.input else None
    if not isinstance(value, fx.Node):
        return None
    channels = ws.channels(anchor.input)
    if not channels:
        return None
    # the depthwise form: the fewest weights, and R20 keeps it as sparse as the anchor allows
    like = nn.Conv2d(channels, channels, 1, groups=channels).to(anchor.conv.weight)
    made = _branch_as_conv(ws, value, anchor.input, like, node)
    if made is None:
        return None
    rule, conv, checks = made
    return Branch(conv, (value,), rule, checks)


def _reads_shared_input(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """Both operands read the anchor conv's input: a conv on it, it, or a pool of it."""
    anchor = _anchor(ws, node, found)
    for operand in (found["a"], found["b"]):
        site = sole_conv(ws, operand, node)
        if site is not None:
            if site.input is not anchor.input:
                return False
            continue
        if operand is anchor.input:
            continue
        values = arguments(operand) if isinstance(operand, fx.Node) else None
        pooled = values is not None and operand.target == aten.avg_pool2d.default
        if not pooled or values["self"] is not anchor.input:
            return False
    return True


def _groups_differ(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """The branches differ in groups (an identity or pool branch counted depthwise): one
    grouping is R3's case, which runs before this step."""
    anchor = _anchor(ws, node, found)
    counts = set()
    for operand in (found["a"], found["b"]):
        site = sole_conv(ws, operand, node)
        counts.add(site.conv.groups if site is not None else anchor.conv.in_channels)
    return len(counts) > 1


def _merge_grouped(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """R20 (after R6/R10 for an identity or pool branch, R13 for a subtracted one)."""
    anchor = _anchor(ws, node, found)
    first = _as_branch(ws, found["a"], anchor, node)
    second = _as_branch(ws, found["b"], anchor, node)
    if first is None or second is None:
        return False
    convs = [first.conv, second.conv]
    negated: tuple = ()
    try:
        if node.target == aten.sub.Tensor:
            minus = -torch.ones(second.conv.out_channels).to(second.conv.weight)
            convs[1], negated = ws.apply("fold_channel_scale", second.conv, minus)
        merged, checks = ws.apply("merge_grouped_branches", convs)
    except PreconditionError as error:
        ws.record.refused(node, error.rule, error.condition, error.detail)
        return False
    for branch in (first, second):
        if branch.rule is not None:
            ws.record.applied(branch.rule, list(branch.nodes), branch.checks)
    if negated:
        graph = "the scale −1 sits between the conv and the difference"
        ws.record.applied("R13", list(second.nodes), (*negated, graph))
    checked = (*checks, *found[GRAPH], FAN_OUT)
    nodes = [*first.nodes, *second.nodes, node]
    return replace_conv(ws, node, merged, anchor.input, "R20", nodes, checked)


#: ``a + b`` and ``a − b`` (alpha at its default 1)
merge_grouped_branches = driver(
    Rewrite(
        "R20",
        (Op((aten.add.Tensor, aten.sub.Tensor), self=Var("a"), other=Var("b")),),
        _merge_grouped,
        (
            GraphCheck(
                "one operand is a conv read by this op alone",
                lambda ws, node, found: _anchor(ws, node, found) is not None,
                refuses=False,
            ),
            GraphCheck(
                "both branches read the same graph value (a conv on it, it, or a pool of it)",
                _reads_shared_input,
                refuses=False,
            ),
            GraphCheck(
                "the branches' groups differ (an identity or pool branch counted depthwise)",
                _groups_differ,
                refuses=False,
            ),
        ),
    )
)


def _pool_or_input(ws: Workspace, node: fx.Node, found: dict) -> fx.Node | None:
    """The value x both operands read when each is x or ``avg_pool2d(x)`` read by this op
    alone, and at least one is a pool; else None."""
    operands = (found["a"], found["b"])
    sources = []
    for operand in operands:
        values = arguments(operand) if isinstance(operand, fx.Node) else None
        pooled = values is not None and operand.target == aten.avg_pool2d.default
        if pooled and ws.sole_user(operand, node):
            sources.append(values["self"])
        elif isinstance(operand, fx.Node) and not pooled:
            sources.append(operand)
        else:
            return None
    pools = sum(1 for o in operands if getattr(o, "target", None) == aten.avg_pool2d.default)
    if pools == 0 or sources[0] is not sources[1] or not ws.channels(sources[0]):
        return None
    return sources[0]


def _pool_branches_as_conv(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """R10 (+ R6) then R3: ``avg_pool(x) ± x`` or ``avg_pool(x) ± avg_pool'(x)`` is one
    depthwise conv, so that a sum written with its pool and identity branches first
    (``pool(x) + x + conv(x)``) still meets its conv branches as convs."""
    source = _pool_or_input(ws, node, found)
    channels = ws.channels(source)
    like = nn.Conv2d(channels, channels, 1, groups=channels).to(_dtype(ws, source))
    made = [_branch_as_conv(ws, o, source, like, node) for o in (found["a"], found["b"])]
    if any(m is None for m in made):
        return False
    convs = [m[1] for m in made]
    negated: tuple = ()
    try:
        if node.target == aten.sub.Tensor:
            minus = -torch.ones(channels).to(convs[1].weight)
            convs[1], negated = ws.apply("fold_channel_scale", convs[1], minus)
        merged, checks = ws.apply("merge_parallel_convs", convs)
    except PreconditionError as error:
        ws.record.refused(node, error.rule, error.condition, error.detail)
        return False
    for operand, (rule, _, made_checks) in zip((found["a"], found["b"]), made, strict=True):
        ws.record.applied(rule, [operand], made_checks)
    if negated:
        ws.record.applied("R13", [found["b"]], (*negated, "the scale −1 of a − b"))
    checked = (*checks, *found[GRAPH], "both branches read the same graph value")
    return replace_conv(ws, node, merged, source, "R3", [found["a"], found["b"], node], checked)


def _dtype(ws: Workspace, node: fx.Node) -> torch.dtype:
    value = node.meta.get("val")
    return value.dtype if isinstance(value, torch.Tensor) else torch.float32


#: ``avg_pool(x) ± x`` and ``avg_pool(x) ± avg_pool'(x)`` (alpha at its default 1)
pool_branches_as_conv = driver(
    Rewrite(
        "R3",
        (Op((aten.add.Tensor, aten.sub.Tensor), self=Var("a"), other=Var("b")),),
        _pool_branches_as_conv,
        (
            GraphCheck(
                "each operand is x or an average pool of x read by this op alone, one a pool",
                lambda ws, node, found: _pool_or_input(ws, node, found) is not None,
                refuses=False,
            ),
        ),
    )
)


def _scaled_batch_norm(ws: Workspace, node: fx.Node, found: dict):
    """``(BN output node, BatchNorm2d)`` when ``node`` is ``c ⊙ BN(x)`` (c per channel) read
    by one sum or difference, the BN read by this product alone and a fixed affine map."""
    users = list(node.users)
    if len(users) != 1 or users[0].target not in (aten.add.Tensor, aten.sub.Tensor):
        return None
    for normed, scale in ((found["p"], found["q"]), (found["q"], found["p"])):
        read = _batch_norm(normed)
        if read is None or not ws.sole_user(normed, node):
            continue
        bn = _module_of(ws, read[1], 4)
        channels = ws.channels(read[1]["input"])
        if isinstance(bn, str) or not channels or per_channel(ws, scale, channels) is None:
            continue
        return normed, bn
    return None


def _scaled_batch_norm_as_conv(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """R6 + R1: in ``c ⊙ BN(x)`` summed with other branches (FastViT's ``γ ⊙ norm(x)``), the
    BatchNorm is the depthwise 1×1 conv ``conv(x; diag(t), m)``; R13 then takes c into it and
    R3/R20 merge it with the sum's other branches."""
    normed, bn = _scaled_batch_norm(ws, node, found)
    channels = bn.num_features
    try:
        identity, made = ws.apply("identity_conv", channels, 1, channels)
        conv, fused = ws.apply("fuse_conv_bn", identity.to(bn.running_mean.dtype), bn)
    except PreconditionError as error:
        ws.record.refused(node, error.rule, error.condition, error.detail)
        return False
    x = _batch_norm(normed)[1]["input"]
    ws.record.applied("R1", [normed], (*fused, "BatchNorm in eval mode with running statistics"))
    return replace_conv(ws, normed, conv, x, "R6", [normed], (*made, *found[GRAPH]))


#: ``c ⊙ BN(x)`` read by a sum or difference
scaled_batch_norm_as_conv = driver(
    Rewrite(
        "R6",
        (Op(aten.mul.Tensor, self=Var("p"), other=Var("q")),),
        _scaled_batch_norm_as_conv,
        (
            GraphCheck(
                "one factor is a BatchNorm read by this product alone, the other per channel, "
                "and a sum or difference reads the product",
                lambda ws, node, found: _scaled_batch_norm(ws, node, found) is not None,
                refuses=False,
            ),
        ),
    )
)
GROUPED_PATTERNS = (merge_grouped_branches, pool_branches_as_conv, scaled_batch_norm_as_conv)
