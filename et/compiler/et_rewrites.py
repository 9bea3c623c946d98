"""Equivalent-Transformation rewrites (family B of the catalogue) matched on the ATen graph.

* E7, E6, E2, E9 (the tail: PixelShuffle, clip, upsampling): :mod:`et.compiler.shuffle_rewrites`;
* E3: ``repeat_interleave(x, r)``, a tiled copy (``x.repeat``, ``cat([x] * r)``, ``expand``)
  or a one-colour broadcast add, summed with a conv, becomes the anchor conv;
* E4: a conv of a non-negative tensor u summed with the end of a conv/rectifier chain that
  starts at u is carried through the chain as identity channels, then merged (R3);
* E5 (dual streams, :mod:`et.compiler.dual_streams`): two convs on one input each followed by
  the same ReLU become one conv and one ReLU on the stacked channels; a conv reading a channel
  slice reads the whole tensor with zero columns (G5, here), so the streams' sums merge by R3.

E3 and E4 are declared as :class:`~et.compiler.patterns.Rewrite` patterns: E4's sum is matched
only with ``alpha`` at its default 1; E3 replaces an operand by an equal value, which holds under
any alpha.
"""

from __future__ import annotations

import math

import torch
from torch import fx

from et.compiler.dual_streams import stack_streams
from et.compiler.helpers import FAN_OUT, replace_conv, sole_conv
from et.compiler.patterns import (
    GRAPH,
    GraphCheck,
    Op,
    Rewrite,
    Var,
    conv,
    driver,
    integer,
    is_conv,
)
from et.compiler.shuffle_rewrites import (
    ORDER_CHECKED,
    _clamp_bounds,
    append_clamp,
    channel_replication,
    clip_as_relus,
    elementwise_before_shuffle,
    nearest_as_shuffle,
    sum_of_shuffles,
)
from et.compiler.workspace import Workspace, arguments
from et.contract import PreconditionError
from et.conv_geometry import conv_bias, conv_like
from et.domain import InputDomain
from et.rules.carry_identity import (
    carry_identity_first,
    carry_identity_middle,
    identity_layout,
)

aten = torch.ops.aten
#: E4 adds zero columns to the chain's last conv and to the anchor
DENSE_ENDS = "the chain's last conv and the anchor are dense (groups = 1)"
RECTIFIERS = (aten.relu.default, aten.prelu.default, aten.leaky_relu.default)
__all__ = ["ET_PATTERNS", "_clamp_bounds", "append_clamp"]


def _anchor_as_conv(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """E3: ``conv(h) + repeat_interleave(u, r)`` (or ``+ u`` broadcast from one channel) gets
    the anchor as a 1×1 conv ``K[c·r + j, c] = 1``, so E4 can carry u."""
    operands = (found["p"], found["q"])
    for index in (0, 1):
        site = sole_conv(ws, operands[index], node)
        other = operands[1 - index]
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
        try:
            anchor, checks = ws.apply("repeat_interleave_conv", colors, repeats, 1, order=order)
        except PreconditionError as error:
            ws.record.refused(node, "E3", error.condition, error.detail)
            return False
        new = ws.emit_conv(anchor.to(site.conv.weight), source, node)
        ws.record.applied("E3", [other], (*checks, ORDER_CHECKED[order]))
        node.replace_input_with(other, new)
        ws.changed(other)
        return True
    return False


def _slopes(ws: Workspace, act: fx.Node):
    """The constant slopes of the PReLU ``act`` (by schema name), or None."""
    values = arguments(act)
    return ws.tensor(values["weight"]) if values is not None else None


def _widen_activation(ws: Workspace, act: fx.Node, source: fx.Node, extra: int, before):
    if act.target == aten.prelu.default:
        slopes = _slopes(ws, act)
        if slopes is None:
            return None
        real = ws.channels(act)
        wide = torch.cat([slopes.reshape(-1).expand(real), slopes.new_zeros(extra)])
        return ws.call(aten.prelu.default, (source, ws.constant(wide, before)), before)
    with ws.graph.inserting_before(before):  # keywords too (leaky ReLU's negative_slope)
        return ws.graph.call_function(act.target, (source, *act.args[1:]), dict(act.kwargs))


def _carry_identity(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """E4 then R3: ``conv_a(h) + conv_b(u)`` with h = chain(u) of convs and rectifiers."""
    sites = [sole_conv(ws, found[name], node) for name in ("p", "q")]
    if None in sites or sites[0].input is sites[1].input:
        return False
    for last, anchor in (sites, sites[::-1]):
        chain, cur, user = [], last.input, last.node
        while cur is not anchor.input:
            act = cur if cur.target in RECTIFIERS else None
            read = arguments(cur) if act is not None else None
            conv_node = read["self"] if read is not None else cur
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


#: E3 replaces an operand of the sum by an equal value, so any alpha stays as it is
anchor_as_conv = driver(
    Rewrite(
        "E3",
        (Op(aten.add.Tensor, self=Var("p"), other=Var("q"), alpha=Var("alpha")),),
        _anchor_as_conv,
    )
)
#: E4 merges the two convs of the sum: the plain sum only (alpha left at its default 1)
carry_identity = driver(
    Rewrite("E4", (Op(aten.add.Tensor, self=Var("p"), other=Var("q")),), _carry_identity)
)


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
        first, carried = ws.run(carry_identity_first, chain[0][0].conv, align=align, domain=domain)
        convs = [first]
        for site, _ in chain[1:]:
            conv, checks = ws.run(
                carry_identity_middle, site.conv, colors, align=align, domain=domain
            )
            convs.append(conv)
            carried += checks
    except PreconditionError as error:
        ws.record.refused(add, "E4", error.condition, error.detail)
        return False
    if any(
        act is not None and act.target == aten.prelu.default and _slopes(ws, act) is None
        for _, act in chain
    ):
        return False  # a PReLU whose slopes are not constant cannot be widened
    a, b = last.conv, anchor.conv
    grouped = [s.node.name for s in (last, anchor) if s.conv.groups != 1]
    if grouped:
        # zero columns fit a grouped conv only as the dense conv it equals (G13), which costs
        # groups× the multiply-adds: left, named, rather than made denser unasked
        ws.record.refused(add, "E4", DENSE_ENDS, f"grouped: {grouped}")
        return False
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
        merged, merged_checks = ws.apply("merge_parallel_convs", [wide_a, wide_b])
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
        *(c for c in carried if c.rule != "E8"),
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
        # E8's own checks ran inside E4's transform (the aligned widths); dummy outputs are
        # zero rows read by zero columns of the next conv, the graph fact recorded with them
        aligned = [c for c in carried if c.rule == "E8"]
        graph = f"widths {widths}: multiples of align = {align}"
        ws.record.applied("E8", [s.node for s, _ in chain], (*aligned, graph))
    nodes = [last.node, anchor.node, add]
    return replace_conv(ws, add, merged, current, "R3", nodes, merged_checks)


def _slice_as_columns(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """G5 (:mod:`et.rules.widen_channel_slice`): ``conv(z[:, a:b:t]; W) = conv(z; W')`` with
    ``W'`` zero outside the sliced input channels; the rule refuses a slice on another axis
    and one that does not hold the conv's input channels."""
    site = ws.conv_site(node)
    total = ws.channels(found["whole"])
    start, end, step, dim = (found[k] for k in ("start", "end", "step", "dim"))
    try:
        made, checks = ws.apply("widen_channel_slice", site.conv, total, start, end, step, dim)
    except PreconditionError as error:
        ws.record.refused(node, "G5", error.condition, error.detail)
        return False
    nodes = [site.input, node]
    return replace_conv(ws, node, made, found["whole"], "G5", nodes, (*checks, *found[GRAPH]))


def _bounds_known(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """The sliced value's channel count is known and the slice's bounds are numbers."""
    bounds = (found["start"], found["end"], found["step"])
    plain = all(b is None or integer(b) for b in bounds)
    return plain and ws.channels(found["whole"]) is not None


#: a channel slice (or a batch slice, which the rule refuses by name; a spatial one is G12's)
slice_as_columns = driver(
    Rewrite(
        "G5",
        (
            conv(
                "conv",
                input=Op(
                    aten.slice.Tensor,
                    self=Var("whole"),
                    dim=Var("dim", lambda d: integer(d) and d not in (2, 3, -2, -1)),
                    start=Var("start"),
                    end=Var("end"),
                    step=Var("step"),
                ),
            ),
        ),
        _slice_as_columns,
        (
            is_conv("conv"),
            GraphCheck(
                "the conv is dense (groups = 1)",
                lambda ws, node, found: ws.conv_site(node).conv.groups == 1,
                refuses=False,
            ),
            GraphCheck(
                "the sliced value's width is known and the slice's bounds are numbers",
                _bounds_known,
                refuses=False,
            ),
        ),
    )
)


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
