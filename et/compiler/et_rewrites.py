"""Equivalent-Transformation rewrites (family B of the catalogue) matched on the ATen graph.

* E7: an element-wise, channel-uniform map after PixelShuffle moves before it;
* E6: ``PS(a) + PS(b) = PS(a + b)``;
* E2: ``clamp(conv(x), 0, M)`` becomes ``ReLU(clip(ReLU(conv'(x))))``;
* E9: nearest upsampling by an integer factor is repeat-interleave then PixelShuffle;
* E3: ``repeat_interleave(x, r)``, a tiled copy (``x.repeat``, ``cat([x] * r)``, ``expand``)
  or a one-colour broadcast add, summed with a conv, becomes the anchor conv;
* E4: a conv of a non-negative tensor u summed with the end of a conv/rectifier chain that
  starts at u is carried through the chain as identity channels, then merged (R3);
* E5 (dual streams): two convs on one input each followed by the same rectifier become one
  conv (R11) and one rectifier on the stacked channels (G6); a conv reading a channel slice
  reads the whole tensor with zero columns (G5), so the streams' sums merge by R3.
"""

from __future__ import annotations

import math

import torch
from torch import fx

from et.compiler.helpers import FAN_OUT, replace_conv, sole_conv
from et.compiler.workspace import Workspace
from et.contract import PreconditionError, apply_rule
from et.conv_geometry import conv_bias, conv_like
from et.domain import InputDomain
from et.rules.carry_identity import (
    carry_identity_first,
    carry_identity_middle,
    identity_layout,
)
from et.rules.nearest_as_pixel_shuffle import check_integer_scale

aten = torch.ops.aten
PS = aten.pixel_shuffle.default
RECTIFIERS = (aten.relu.default, aten.prelu.default, aten.leaky_relu.default)
UNIFORM = (aten.relu.default, aten.clamp.default, aten.hardtanh.default, aten.leaky_relu.default)


def append_clamp(ws: Workspace, bounds: tuple[float, float]) -> None:
    """G10: make ``clamp(first output, low, high)`` the compiled function."""
    output = next(n for n in ws.graph.nodes if n.op == "output")
    value = output.args[0]
    clamped = ws.call(aten.clamp.default, (value, float(bounds[0]), float(bounds[1])), output)
    output.replace_input_with(value, clamped)
    ws.record.applied("G10", [clamped])


def _clamp_bounds(node: fx.Node) -> tuple[float, float] | None:
    args = [*list(node.args), None, None]
    if node.target == aten.clamp.default:
        low, high = args[1], args[2]
    elif node.target == aten.hardtanh.default:
        low = -1.0 if args[1] is None else args[1]
        high = 1.0 if args[2] is None else args[2]
    else:
        return None
    return (-math.inf if low is None else float(low), math.inf if high is None else float(high))


def elementwise_before_shuffle(ws: Workspace, node: fx.Node) -> bool:
    """E7: ``f(PS(y)) = PS(f(y))`` for ReLU, leaky ReLU, clamp (same map on every channel)."""
    if node.target not in UNIFORM or getattr(node.args[0], "target", None) != PS:
        return False
    shuffle = node.args[0]
    if not ws.sole_user(shuffle, node):
        return False
    inner = ws.call(node.target, (shuffle.args[0], *node.args[1:]), node)
    outer = ws.call(PS, (inner, shuffle.args[1]), node)
    ws.record.applied("E7", [shuffle, node], ("the map is element-wise and channel-uniform",))
    ws.replace(node, outer)
    return True


def sum_of_shuffles(ws: Workspace, node: fx.Node) -> bool:
    """E6: ``PS(a) + PS(b) = PS(a + b)`` (PixelShuffle is linear)."""
    if node.target != aten.add.Tensor or len(node.args) != 2:
        return False
    a, b = node.args
    if getattr(a, "target", None) != PS or getattr(b, "target", None) != PS:
        return False
    if a.args[1] != b.args[1] or not (ws.sole_user(a, node) and ws.sole_user(b, node)):
        return False
    total = ws.call(aten.add.Tensor, (a.args[0], b.args[0]), node)
    shuffled = ws.call(PS, (total, a.args[1]), node)
    ws.record.applied("E6", [a, b, node], ("the same upscale factor on both",))
    ws.replace(node, shuffled)
    return True


def clip_as_relus(ws: Workspace, node: fx.Node) -> bool:
    """E2: ``clamp(conv(x), 0, M) = ReLU(clip(ReLU(conv'(x))))`` with ``conv' = (−W, M − b)``."""
    bounds = _clamp_bounds(node)
    if bounds is None:
        return False
    site = sole_conv(ws, node.args[0], node)
    if site is None:
        return False
    low, high = bounds
    if low != 0.0 or not math.isfinite(high):
        ws.record.refused(node, "E2", "the clamp is clamp(y, 0, M)", f"bounds {bounds}")
        return False
    try:
        folded, clip = apply_rule("clip_as_relu", site.conv, high)
    except PreconditionError as error:
        ws.record.refused(node, "E2", error.condition, error.detail)
        return False
    first = ws.emit_conv(folded, site.input, node)
    relu = ws.call(aten.relu.default, (first,), node)
    second = ws.emit_conv(clip.to(folded.weight), relu, node)
    out = ws.call(aten.relu.default, (second,), node)
    ws.record.applied("E2", [site.node, node], (FAN_OUT,))
    ws.replace(node, out)
    return True


def nearest_as_shuffle(ws: Workspace, node: fx.Node) -> bool:
    """E9: ``nearest(x, s) = PS(repeat_interleave(x, s², dim=1))`` for an integer scale s."""
    if node.target != aten.upsample_nearest2d.vec or len(node.args) < 3:
        return False
    factors = node.args[2]
    if node.args[1] is not None or not factors or len(set(factors)) != 1:
        return False
    try:
        scale = check_integer_scale(factors[0])
    except PreconditionError as error:
        ws.record.refused(node, "E9", error.condition, error.detail)
        return False
    repeated = ws.call(aten.repeat_interleave.self_int, (node.args[0], scale * scale, 1), node)
    shuffled = ws.call(PS, (repeated, scale), node)
    ws.record.applied("E9", [node], ("equal integer scale factors on both axes",))
    ws.replace(node, shuffled)
    return True


#: what E3 checked on the graph, per channel order
ORDER_CHECKED = {
    "interleave": "PyTorch PixelShuffle (interleaved) channel order",
    "tiled": "channels tiled (x.repeat, cat of copies, expand): the tiled anchor order",
}


def channel_replication(ws: Workspace, node: fx.Node) -> tuple[fx.Node, int, str] | None:
    """``(u, r, order)`` when ``node`` repeats the channels of u r times: interleaved
    (``repeat_interleave(u, r, dim=1)``) or tiled (``u.repeat(1, r, 1, 1)``, ``cat([u] * r,
    dim=1)``, or ``u.expand(-1, r, -1, -1)`` of a one-channel u)."""
    args = node.args
    if node.target == aten.repeat_interleave.self_int and args[2:3] in ((1,), (-3,)):
        return args[0], int(args[1]), "interleave"
    if node.target == aten.repeat.default and len(args[1]) == 4:
        n, r, h, w = args[1]
        if (n, h, w) == (1, 1, 1) and isinstance(r, int):
            return args[0], r, "tiled"
    if node.target == aten.cat.default and args[1:2] in ((1,), (-3,)):
        parts = args[0]
        if len(parts) > 1 and all(p is parts[0] for p in parts):
            return parts[0], len(parts), "tiled"
    if node.target == aten.expand.default and ws.channels(args[0]) == 1:
        sizes = list(args[1])
        others_kept = len(sizes) == 4 and all(s == -1 for i, s in enumerate(sizes) if i != 1)
        if others_kept and isinstance(sizes[1], int) and sizes[1] > 1:
            return args[0], sizes[1], "tiled"
    return None


def anchor_as_conv(ws: Workspace, node: fx.Node) -> bool:
    """E3: ``conv(h) + repeat_interleave(u, r)`` (or ``+ u`` broadcast from one channel) gets
    the anchor as a 1×1 conv ``K[c·r + j, c] = 1``, so E4 can carry u."""
    if node.target != aten.add.Tensor or len(node.args) != 2:
        return False
    for index in (0, 1):
        site = sole_conv(ws, node.args[index], node)
        other = node.args[1 - index]
        if site is None or not isinstance(other, fx.Node) or ws.conv_site(other) is not None:
            continue
        replication = channel_replication(ws, other)
        if replication is not None:
            source, repeats, order = replication
        elif ws.channels(other) == 1 and site.conv.out_channels > 1:
            source, repeats, order = other, site.conv.out_channels, "interleave"
        else:
            continue
        colors = ws.channels(source)
        if colors is None or colors * repeats != site.conv.out_channels:
            continue
        anchor = apply_rule("repeat_interleave_conv", colors, repeats, 1, order=order)
        new = ws.emit_conv(anchor.to(site.conv.weight), source, node)
        ws.record.applied("E3", [other], (ORDER_CHECKED[order],))
        node.replace_input_with(other, new)
        ws.changed(other)
        return True
    return False


def _widen_activation(ws: Workspace, act: fx.Node, source: fx.Node, extra: int, before):
    if act.target == aten.prelu.default:
        slopes = ws.tensor(act.args[1])
        if slopes is None:
            return None
        real = ws.channels(act)
        wide = torch.cat([slopes.reshape(-1).expand(real), slopes.new_zeros(extra)])
        return ws.call(aten.prelu.default, (source, ws.constant(wide, before)), before)
    return ws.call(act.target, (source, *act.args[1:]), before)


def carry_identity(ws: Workspace, node: fx.Node) -> bool:
    """E4 then R3: ``conv_a(h) + conv_b(u)`` with h = chain(u) of convs and rectifiers."""
    if node.target != aten.add.Tensor or len(node.args) != 2:
        return False
    sites = [sole_conv(ws, a, node) for a in node.args]
    if None in sites or sites[0].input is sites[1].input:
        return False
    for last, anchor in (sites, sites[::-1]):
        chain, cur, user = [], last.input, last.node
        while cur is not anchor.input:
            act = cur if cur.target in RECTIFIERS else None
            conv_node = cur.args[0] if act is not None else cur
            site = ws.conv_site(conv_node)
            if site is None or not ws.sole_user(cur, user):
                break
            if act is not None and not ws.sole_user(conv_node, act):
                break
            chain.append((site, act))
            user, cur = site.node, site.input
        else:
            if chain:
                return _carry(ws, node, chain[::-1], last, anchor)
    return False


def _carry(ws: Workspace, add: fx.Node, chain, last, anchor) -> bool:
    source = anchor.input
    bound = ws.lower_bound(source)
    if bound < 0:
        ws.record.refused(
            add,
            "E4",
            "the carried input is ≥ 0 on the declared domain",
            f"its proven lower bound is {bound}",
        )
        return False
    domain = InputDomain(bound, math.inf)
    colors, align = ws.channels(source), ws.align
    try:
        convs = [carry_identity_first(chain[0][0].conv, align=align, domain=domain)]
        for site, _ in chain[1:]:
            convs.append(carry_identity_middle(site.conv, colors, align=align, domain=domain))
    except PreconditionError as error:
        ws.record.refused(add, "E4", error.condition, error.detail)
        return False
    if any(
        act is not None and act.target == aten.prelu.default and ws.tensor(act.args[1]) is None
        for _, act in chain
    ):
        return False  # a PReLU whose slopes are not constant cannot be widened
    a, b = last.conv, anchor.conv
    # the last conv reads [real | dummies (E8, zero) | carried]: zero columns for both extras
    read = identity_layout(a.in_channels, colors, align=align)
    wide_a = conv_like(
        a,
        torch.cat(
            [
                a.weight.detach(),
                a.weight.new_zeros(a.out_channels, read.total - read.real, *a.kernel_size),
            ],
            dim=1,
        ),
        conv_bias(a),
    )
    wide_b = conv_like(
        b,
        torch.cat(
            [
                b.weight.new_zeros(b.out_channels, read.carried_start, *b.kernel_size),
                b.weight.detach(),
            ],
            dim=1,
        ),
        conv_bias(b),
    )
    try:
        merged = apply_rule("merge_parallel_convs", [wide_a, wide_b])
    except PreconditionError as error:
        ws.record.refused(add, "R3", error.condition, error.detail)
        return False
    current = source  # nothing is emitted before every check has passed
    for (site, act), conv in zip(chain, convs, strict=True):
        current = ws.emit_conv(conv, current, add)
        if act is not None:
            extra = conv.out_channels - site.conv.out_channels  # dummies and carried channels
            current = _widen_activation(ws, act, current, extra, add)
    nodes = [s.node for s, _ in chain] + [last.node, anchor.node, add]
    checked = (
        f"the carried input is ≥ {bound:g} on the declared domain",
        "every activation on the chain is a rectifier",
        FAN_OUT,
    )
    ws.record.applied("E4", nodes, checked)
    widths = [conv.out_channels for conv in convs]
    if any(
        conv.out_channels != site.conv.out_channels + colors
        for (site, _), conv in zip(chain, convs, strict=True)
    ):
        ws.record.applied(
            "E8", [s.node for s, _ in chain], (f"widths {widths}: multiples of align = {align}",)
        )
    return replace_conv(ws, add, merged, current, "R3", [last.node, anchor.node, add])


def slice_as_columns(ws: Workspace, node: fx.Node) -> bool:
    """G5: a conv reading ``z[:, a:b]`` reads z with zero weight columns outside a..b."""
    site = ws.conv_site(node)
    if site is None or site.input.target != aten.slice.Tensor or site.conv.groups != 1:
        return False
    args = list(site.input.args) + [None] * 4
    whole, dim, start, end, step = args[:5]
    total = ws.channels(whole)
    if dim not in (1, -3) or (step or 1) != 1 or total is None:
        return False
    start = start or 0
    end = total if end is None or end > total else end
    if (
        not isinstance(start, int)
        or not isinstance(end, int)
        or end - start != site.conv.in_channels
    ):
        return False
    w = site.conv.weight.detach()
    wide = w.new_zeros(w.shape[0], total, *w.shape[2:])
    wide[:, start:end] = w
    conv = conv_like(
        site.conv, wide, site.conv.bias.detach() if site.conv.bias is not None else None
    )
    return replace_conv(ws, node, conv, whole, "G5", [site.input, node])


def stack_streams(ws: Workspace, node: fx.Node) -> bool:
    """E5 via R11 + G6: ``act(conv₁(x))`` and ``act(conv₂(x))`` become one conv and one act
    on the stacked channels, read back as channel slices."""
    site = ws.conv_site(node)
    if site is None or len(node.users) != 1:
        return False
    act = next(iter(node.users))
    if act.target not in (aten.relu.default,) or len(act.args) != 1:
        return False
    for other_node in site.input.users:
        if other_node is node:
            continue
        other = ws.conv_site(other_node)
        if other is None or len(other_node.users) != 1:
            continue
        other_act = next(iter(other_node.users))
        if other_act.target != act.target:
            continue
        try:
            merged = apply_rule("concat_convs", [site.conv, other.conv])
        except PreconditionError:
            continue
        anchor = (
            act
            if list(ws.graph.nodes).index(act) < list(ws.graph.nodes).index(other_act)
            else other_act
        )
        stacked = ws.emit_conv(merged, site.input, anchor)
        relu = ws.call(act.target, (stacked,), anchor)
        n = site.conv.out_channels
        first = ws.call(aten.slice.Tensor, (relu, 1, 0, n), anchor)
        second = ws.call(aten.slice.Tensor, (relu, 1, n, n + other.conv.out_channels), anchor)
        ws.record.applied(
            "E5",
            [node, other_node, act, other_act],
            ("both streams read the same value", "the same element-wise rectifier"),
        )
        act.replace_all_uses_with(first)
        other_act.replace_all_uses_with(second)
        ws.changed(act, other_act)
        return True
    return False


ET_PATTERNS = (
    nearest_as_shuffle,
    elementwise_before_shuffle,
    sum_of_shuffles,
    clip_as_relus,
    anchor_as_conv,
    carry_identity,
    slice_as_columns,
    stack_streams,
)
