"""Two convs in a row are one conv: R7 (1×1 then K×K), R9 (K×K then 1×1), R14 (depthwise then
pointwise), R8 (K₁ then K₂, the first valid).

    conv₂(conv₁(x)) = conv(x; W₂ ⋆ W₁, W₂·b₁ + b₂)

where the second conv reads the first's output and nothing else does (fan-out 1, declared and
evaluated by the driver; a refusal names it on the first conv). The rule's own checks (strides,
padding, groups) decide the rest; a refusal names the one that failed.

A merge must not make the network slower: the merged conv may cost no more multiply-adds per
output pixel than the two convs it replaces (:data:`NO_COSTLIER`), else the pair is left and
the refusal gives both costs. A conv's cost per pixel of its own output is its weight's entry
count, ``m = C_out · (C_in / g) · k_h · k_w``; per pixel of the second conv's output (stride
``(s_h, s_w)``) the first conv computes ``s_h · s_w`` pixels (its own stride only thins its
input, which costs nothing), so

    separate = m₂ + s₂ₕ · s₂w · m₁        merged = m₃  (the merged conv, stride s₁·s₂)

and the merge is made iff ``m₃ ≤ separate``. Per pixel means for a large map: the ratio of
the two maps' pixel counts tends to ``s₂ₕ·s₂w`` as the map grows (the few border rows a valid
or over-padded second conv drops or adds are left out).

Two exceptions, named in the same precondition, where the pair merged costs more but what
it is part of gets cheaper:

* a longer chain: the convs in a row around the pair (each read by the next alone), some run
  of which, merged left to right as this driver merges it, costs no more than its convs
  (each ``mᵢ`` weighted by the strides after it). A 1×1 expansion, a depthwise K×K and a 1×1
  squeeze (PlainUSR's RepMBConv, FMEN's chains) cost ``C·E + K²·E + E·C``; merged, one K×K
  costs ``K²·C²``, less for ``C ≪ E``, though either pair merged alone costs more. Once the
  first step is taken each later one is no costlier by itself (the rest merged costs less
  than the separate convs, which cost less than what is left). Every step of the run must
  be allowed by its rule, or the run does not count. A run merged may also be taken in by a
  summed branch, as in the next exception (DBB's ``1×1 → avg → BN`` branch).
* a pair summed (through a chain of sums and differences that read it alone) with a conv on
  the same input that R3 then merges with the merged conv into one conv costing no more than
  that branch and the pair: the larger kernel (one holds the other centred, same stride) and
  the gcd of the groups, the merged conv's counted as the most it can be written with (G13:
  a weight zero outside diagonal blocks). ECBSR's 1×1 → Sobel and Laplacian branches beside
  their block's dense 3×3 and DBB's 1×1 → K×K beside its K×K cost nothing once merged.

Where it matters: a depthwise 7×7 and the 1×1 expansion after it (FastViT's conv FFN, width
8 → 16) cost 8·49 + 16·8 = 520 per pixel; the dense 7×7 of R14 would cost 16·8·49 = 6272.
"""

from __future__ import annotations

import math

import torch
from torch import fx, nn

from et.compiler.certificate import Check
from et.compiler.helpers import FAN_OUT, replace_conv
from et.compiler.patterns import GRAPH, GraphCheck, Rewrite, conv, driver, is_conv
from et.compiler.workspace import ConvSite, Workspace, unit_alpha
from et.contract import PreconditionError

aten = torch.ops.aten
_JOINS = (aten.add.Tensor, aten.sub.Tensor)

#: the cost precondition of every sequential merge (see the module docstring)
NO_COSTLIER = (
    "the merged conv costs no more multiply-adds per output pixel than the two convs it "
    "replaces (C_out·C_in/g·k_h·k_w each; the first conv's counted s_h·s_w times for a "
    "second conv of stride (s_h, s_w)), or a longer chain of convs around the pair merges no "
    "costlier than its convs, or a conv on the same input summed with it takes it in (R3) "
    "at no more than the cost of that conv and the pair"
)


def macs_per_pixel(conv: nn.Conv2d) -> int:
    """Multiply-adds of ``conv`` per pixel of its own output: ``C_out · (C_in / g) · k_h ·
    k_w``, its weight's entry count (the bias adds are not counted)."""
    return conv.weight.numel()


def separate_macs(
    first: nn.Conv2d, second: nn.Conv2d, costs: tuple[int | None, int | None] = (None, None)
) -> int:
    """Multiply-adds of ``second ∘ first`` per pixel of the second conv's output:
    ``m₂ + s_h · s_w · m₁`` with ``(s_h, s_w)`` the second conv's stride. ``costs`` gives m₁
    or m₂ where an op costs less than its conv form (an average pool written as a dense conv
    costs ``C·k_h·k_w``, its depthwise form)."""
    s_h, s_w = second.stride
    m1 = macs_per_pixel(first) if costs[0] is None else costs[0]
    m2 = macs_per_pixel(second) if costs[1] is None else costs[1]
    return m2 + s_h * s_w * m1


def merge_pair(ws: Workspace, c1: nn.Conv2d, c2: nn.Conv2d) -> tuple[str, nn.Conv2d, tuple]:
    """``(rule, merged, checks)``: ``c2 ∘ c1`` as one conv by the rule their shapes call for
    (R7 1×1 → padded K×K, R14 depthwise → dense 1×1, R9 K×K → 1×1, else R8); raises the
    :class:`~et.contract.PreconditionError` of the rule that refused (R14's first)."""
    pointwise_first = c1.kernel_size == (1, 1) and c1.stride == (1, 1) and c1.padding == (0, 0)
    pointwise_second = c2.kernel_size == (1, 1) and c2.stride == (1, 1) and c2.padding == (0, 0)
    depthwise_first = c1.groups == c1.in_channels == c1.out_channels > 1
    if pointwise_first and c2.padding != (0, 0):
        rule, args = "R7", (c1, c2, "zeros")
    elif pointwise_second and depthwise_first and c2.groups == 1:
        rule, args = "R14", (c1, c2, "zeros")
    elif pointwise_second:
        rule, args = "R9", (c1, c2)
    else:
        rule, args = "R8", (c1, c2)
    try:
        merged, checks = ws.apply(rule, *args)
    except PreconditionError:
        if rule != "R14":
            raise
        rule = "R9"  # a biased depthwise conv: the plain K×K then 1×1 merge
        merged, checks = ws.apply("R9", c1, c2)
    return rule, merged, checks


def _finest_groups(ws: Workspace, conv: nn.Conv2d) -> int:
    """The most groups ``conv`` can be written with (G13: its dense weight is zero outside
    that many diagonal blocks), as R3's common grouping writes it beside a grouped branch."""
    common = math.gcd(conv.in_channels, conv.out_channels)
    for groups in sorted((g for g in range(1, common + 1) if common % g == 0), reverse=True):
        if groups <= conv.groups:
            break
        try:
            ws.apply("regroup_conv", conv, groups)
        except PreconditionError:
            continue
        return groups
    return conv.groups


def _absorbed(ws: Workspace, branch: nn.Conv2d, merged: nn.Conv2d, separate: int) -> bool:
    """Whether R3 merges ``merged`` with ``branch`` (a conv summed with it on the same input)
    into one conv costing no more than ``branch`` and the pair (``separate``): same channels,
    stride and dilation, one kernel holding the other centred; the sum has the larger kernel
    and ``gcd`` of the groups (``merged``'s counted as the most it can be written with,
    :func:`_finest_groups`), as R3 writes it."""
    if (branch.in_channels, branch.out_channels, branch.stride, branch.dilation) != (
        merged.in_channels,
        merged.out_channels,
        merged.stride,
        merged.dilation,
    ):
        return False
    pairs = list(zip(branch.kernel_size, merged.kernel_size, strict=True))
    for (a, b), (pa, pb) in zip(
        pairs, zip(branch.padding, merged.padding, strict=True), strict=True
    ):
        if (a - b) % 2 or pa - pb != (a - b) // 2:
            return False  # not centred on each other: R3 (with R4) refuses
    groups = math.gcd(branch.groups, _finest_groups(ws, merged))
    kernel = math.prod(max(a, b) for a, b in pairs)
    combined = merged.out_channels * (merged.in_channels // groups) * kernel
    return combined <= separate + macs_per_pixel(branch)


def summed_convs(ws: Workspace, node: fx.Node) -> list[ConvSite]:
    """The convs summed with ``node``'s output: every conv operand of the sums and differences
    (alpha 1) up the chain that reads it alone, and of the sums under them read alone."""
    joins, current = [], node
    while len(current.users) == 1:
        user = next(iter(current.users))
        if user.target not in _JOINS or not unit_alpha(user):
            break
        joins.append(user)
        current = user
    sites, seen = [], {node, *joins}
    stack = [operand for join in joins for operand in join.args[:2]]
    while stack:
        value = stack.pop()
        if not isinstance(value, fx.Node) or value in seen:
            continue
        seen.add(value)
        if value.target in _JOINS and unit_alpha(value) and len(value.users) == 1:
            stack.extend(value.args[:2])
        elif (site := ws.conv_site(value)) is not None:
            sites.append(site)
    return sites


#: how far a chain is followed each way from a pair (chains of linear convs are short)
_CHAIN = 4


def _chain(ws: Workspace, first: fx.Node, second: fx.Node) -> tuple[list[ConvSite], int]:
    """The conv sites in a row around the pair ``first → second`` (each read by the next
    alone), and the index of ``first`` among them."""
    before, after, site = [], [], ws.conv_site(first)
    while len(before) < _CHAIN and (previous := ws.conv_site(site.input)) is not None:
        if not ws.sole_user(previous.node, site.node):
            break
        before.append(previous)
        site = previous
    node = second
    while len(after) < _CHAIN and len(node.users) == 1:
        site = ws.conv_site(next(iter(node.users)))
        if site is None or site.input is not node:
            break
        after.append(site)
        node = site.node
    sites = [*reversed(before), ws.conv_site(first), ws.conv_site(second), *after]
    return sites, len(before)


def chain_macs(convs: list[nn.Conv2d]) -> int:
    """Multiply-adds of the convs in a row per pixel of the last one's output: each conv's
    ``m`` times the product of the strides of the convs after it (:func:`separate_macs`,
    applied along the chain)."""
    total = 0
    for layer in convs:
        total = total * layer.stride[0] * layer.stride[1] + macs_per_pixel(layer)
    return total


def _chain_no_costlier(ws: Workspace, first: fx.Node, second: fx.Node) -> bool:
    """Whether a longer run of the chain around the pair, merged left to right as the driver
    merges it (every step allowed by its rule), costs no more than its convs, or is taken in
    by a conv summed with it as in :func:`_absorbed`: then each later step is no costlier
    either (the pair merged costs more than the pair, so the rest merged costs less than what
    is left), and the chain as a whole gets cheaper."""
    sites, index = _chain(ws, first, second)
    for start in range(index, -1, -1):
        for end in range(index + 2, len(sites)):
            window = [site.conv for site in sites[start : end + 1]]
            merged = window[0]
            try:
                for layer in window[1:]:
                    merged = merge_pair(ws, merged, layer)[1]
            except PreconditionError:
                break  # a longer window holds the same refused step
            separate = chain_macs(window)
            if macs_per_pixel(merged) <= separate:
                return True
            summed = summed_convs(ws, sites[end].node)
            source = sites[start].input
            if any(s.input is source and _absorbed(ws, s.conv, merged, separate) for s in summed):
                return True
    return False


def costlier(
    ws: Workspace,
    nodes: tuple[fx.Node, fx.Node],
    source: fx.Node,
    pair: tuple[nn.Conv2d, nn.Conv2d],
    merged: nn.Conv2d,
    costs: tuple[int | None, int | None] | None = None,
) -> str | None:
    """Why merging ``pair`` (at ``nodes``, the first reading ``source``) into ``merged`` fails
    :data:`NO_COSTLIER` (both costs), or None when it holds. ``costs`` (as in
    :func:`separate_macs`) marks a pair with an op cheaper than its conv form: its chain is not
    followed."""
    first, second = pair
    cost, separate = macs_per_pixel(merged), separate_macs(first, second, costs or (None, None))
    if cost <= separate:
        return None
    summed = summed_convs(ws, nodes[1])
    if any(s.input is source and _absorbed(ws, s.conv, merged, separate) for s in summed):
        return None
    if costs is None and _chain_no_costlier(ws, *nodes):
        return None
    s_h, s_w = second.stride
    m2 = macs_per_pixel(second) if costs is None or costs[1] is None else costs[1]
    parts = f"{m2} + {s_h * s_w}·{(separate - m2) // (s_h * s_w)}"
    return (
        f"merged {cost} > separate {separate} ({parts}) multiply-adds per output pixel; no "
        "longer chain around it merges no costlier, no conv summed with it takes it in"
    )


def _merge_sequential(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """R7 (1×1 → K×K), R9 (K×K → 1×1), R14 (depthwise → pointwise), R8 (K₁ → K₂, valid)."""
    second = ws.conv_site(node)
    first = ws.conv_site(second.input)
    try:
        rule, merged, checks = merge_pair(ws, first.conv, second.conv)
    except PreconditionError as error:
        ws.record.refused(node, error.rule, error.condition, error.detail)
        return False
    pair = (first.conv, second.conv)
    detail = costlier(ws, (first.node, node), first.input, pair, merged)
    if detail is not None:
        ws.record.refused(node, rule, NO_COSTLIER, detail)
        return False
    graph = "nothing between the two convs: the second reads the first's output"
    nodes = [first.node, node]
    checked: tuple[str | Check, ...] = (*checks, *found[GRAPH], graph, NO_COSTLIER)
    return replace_conv(ws, node, merged, first.input, rule, nodes, checked)


def _others(ws: Workspace, node: fx.Node, found: dict) -> str:
    others = sorted(u.name for u in found["first"].users if u is not node)
    return f"the first conv also feeds {others}"


merge_sequential = driver(
    Rewrite(
        "R8",
        (conv("second", input=conv("first")),),
        _merge_sequential,
        (
            is_conv("second"),
            is_conv("first"),
            GraphCheck(
                FAN_OUT,
                lambda ws, node, found: ws.sole_user(found["first"], node),
                _others,
                at="first",
            ),
        ),
    )
)
