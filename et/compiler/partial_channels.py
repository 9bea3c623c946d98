"""Partial-channel convs (FasterNet's PConv, PlainUSR): the untouched channels are an identity.

    cat([conv(z[:, :k]), z[:, k:]], 1) = conv'(z)

A conv on the first k channels concatenated with the other C − k passed on untouched is one
conv on all of z: every passed-on slice is the identity conv of its width (R6, with the conv
part's kernel, so that every part has one geometry), every part reading a slice reads z with
zero columns outside it (G5), and the parts stack (R11). A dilated conv part is first written
without dilation (R8 with the identity 1×1 after it, R6: ``d·(K − 1) + 1`` taps, zeros between),
so that the identity parts can share its geometry. The slices may be written
``z[:, a:b]`` (``aten.slice``) or as pieces of ``torch.split`` / ``torch.chunk`` (``split``,
``split_with_sizes``, ``chunk``, read by ``getitem``), in any order and number, as long as
every part is a channel slice of the same z (or z itself) or a conv reading one, and at least
one part is a conv. Each conv part must be read by the concatenation alone (fan-out 1; the
refusal names the conv). A refusal of R6, G5 or R11 is recorded on the concatenation and
nothing is emitted. FasterNet's inference form writes the same thing in place, ``x = x.clone();
x[:, :k] = conv(x[:, :k])``, captured as ``slice_scatter(z, copy(z[:, :k], conv(…)), 1, 0,
k)``: its parts are ``[conv(…), z[:, k:]]`` (and ``z[:, :a]`` before a slice not at the start).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
from torch import fx, nn

from et.compiler.helpers import FAN_OUT, replace_conv
from et.compiler.patterns import GRAPH, GraphCheck, Op, Rewrite, Var, driver, integer
from et.compiler.sequential import NO_COSTLIER, macs_per_pixel, merge_pair
from et.compiler.workspace import ConvSite, Workspace, arguments
from et.contract import PreconditionError

aten = torch.ops.aten
_SPLITS = (aten.split.Tensor, aten.split_with_sizes.default, aten.chunk.default)


@dataclass(frozen=True)
class ChannelSlice:
    """Channels ``start..end`` of ``whole`` (a C-channel NCHW value), read as ``node``."""

    node: fx.Node
    whole: fx.Node
    start: int
    end: int
    total: int


def channel_slice(ws: Workspace, node: object) -> ChannelSlice | None:
    """``node`` as channels ``a..b`` of a value: ``z[:, a:b]`` (step 1), a piece of a channel
    ``split``/``split_with_sizes``, or a value of known width itself (all its channels)."""
    if not isinstance(node, fx.Node):
        return None
    if node.op == "call_function" and node.target is operator.getitem:
        return _split_piece(ws, node)
    values = arguments(node)
    if node.target == aten.slice.Tensor and values is not None:
        whole, total = values["self"], ws.channels(values["self"])
        if values["dim"] not in (1, -3) or values["step"] != 1 or total is None:
            return None
        start, end = values["start"], values["end"]
        if not isinstance(start, int | None) or not isinstance(end, int | None):
            return None
        start, end, _ = slice(start, end).indices(total)
        return ChannelSlice(node, whole, start, end, total) if start < end else None
    total = ws.channels(node)
    return None if total is None else ChannelSlice(node, node, 0, total, total)


def _split_piece(ws: Workspace, node: fx.Node) -> ChannelSlice | None:
    """``split(z, sizes, 1)[i]`` as channels ``Σ sizes[:i] .. Σ sizes[:i + 1]`` of z."""
    if len(node.args) != 2 or node.kwargs or not isinstance(node.args[1], int):
        return None
    split, index = node.args
    values = arguments(split)
    if not isinstance(split, fx.Node) or split.target not in _SPLITS or values is None:
        return None
    whole, total = values["self"], ws.channels(values["self"])
    if values["dim"] not in (1, -3) or total is None:
        return None
    if split.target == aten.chunk.default:
        # torch.chunk: pieces of ⌈C / chunks⌉ channels, the last one smaller
        chunks = values["chunks"]
        if not isinstance(chunks, int) or chunks < 1:
            return None
        size = -(-total // chunks)
        sizes = [min(size, total - s) for s in range(0, total, size)]
    elif split.target == aten.split.Tensor:
        size = values["split_size"]
        if not isinstance(size, int) or size < 1:
            return None
        sizes = [min(size, total - s) for s in range(0, total, size)]
    else:
        sizes = list(values["split_sizes"])
        if not all(isinstance(s, int) for s in sizes) or sum(sizes) != total:
            return None
    if not 0 <= index < len(sizes):
        return None
    start = sum(sizes[:index])
    return ChannelSlice(node, whole, start, start + sizes[index], total)


@dataclass(frozen=True)
class Part:
    """One operand of the concatenation: a conv reading ``read`` (``site``), or ``read``
    passed on untouched (``site`` None)."""

    read: ChannelSlice
    site: ConvSite | None


def _written(ws: Workspace, found: dict) -> tuple[fx.Node, ConvSite] | None:
    """``(reader, site)`` of the conv written into the slice: the conv itself, or the value
    ``copy(region, conv)`` that an in-place ``x[:, a:b] = conv(…)`` captures (its reader is
    then the copy), when the conv fills the region exactly (b − a channels; a copy broadcasts
    a narrower one)."""
    src, reader = found["written"], None
    values = arguments(src)
    if isinstance(src, fx.Node) and src.target == aten.copy.default and values is not None:
        if values["non_blocking"]:
            return None
        reader, src = src, values["src"]
    site = ws.conv_site(src)
    if site is None or site.conv.out_channels != found["end"] - found["start"]:
        return None
    return (reader if reader is not None else site.node), site


def _scatter_parts(ws: Workspace, node: fx.Node, found: dict) -> list[Part] | None:
    """``slice_scatter(z, conv(…), 1, a, b)`` (``z[:, a:b] = conv(…)`` on a copy of z) as the
    parts ``[z[:, :a], conv(…), z[:, b:]]`` of a concatenation."""
    base, total = found["base"], ws.channels(found["base"])
    start, end = found["start"], found["end"]
    if total is None or not 0 <= start < end <= total or (start, end) == (0, total):
        return None
    written = _written(ws, found)
    if written is None:
        return None
    site = written[1]
    read = channel_slice(ws, site.input)
    if read is None or read.whole is not base:
        return None
    parts = [Part(ChannelSlice(node, base, 0, start, total), None)] if start > 0 else []
    parts.append(Part(read, site))
    if end < total:
        parts.append(Part(ChannelSlice(node, base, end, total, total), None))
    return parts


def _parts(ws: Workspace, found: dict, node: fx.Node | None = None) -> list[Part] | None:
    """Every operand as a :class:`Part` of one common value, with at least one conv, else
    None (the parts of ``slice_scatter`` for that form)."""
    if "written" in found:
        return _scatter_parts(ws, node, found)
    parts = []
    for operand in found["parts"]:
        site = ws.conv_site(operand)
        read = channel_slice(ws, site.input if site is not None else operand)
        if read is None:
            return None
        parts.append(Part(read, site))
    if len(parts) < 2 or len({p.read.whole for p in parts}) != 1:
        return None
    if all(p.site is None for p in parts) or all(p.site is not None for p in parts):
        return None  # nothing passed on (R11's own case), or no conv (a channel permutation)
    return parts


def _shared_convs(ws: Workspace, node: fx.Node, found: dict) -> bool:
    if "written" in found:
        reader, site = _written(ws, found)
        return ws.sole_user(site.node, reader) and (
            reader is site.node or ws.sole_user(reader, node)
        )
    parts = _parts(ws, found, node)
    return all(p.site is None or ws.sole_user(p.site.node, node) for p in parts)


def _shared_detail(ws: Workspace, node: fx.Node, found: dict) -> str:
    parts = _parts(ws, found, node)
    shared = [p.site.node.name for p in parts if p.site and len(p.site.node.users) > 1]
    return f"the conv parts {shared} are also read elsewhere"


def _undilated(ws: Workspace, part: Part, applied: list) -> nn.Conv2d | None:
    """The conv part, a dilated one written without dilation: R8 merges it with the identity
    1×1 after it (R6, groups = its outputs), which gives dilation gcd(d, 1) = 1 and the
    ``d·(K − 1) + 1`` taps of the dilated kernel with zeros between (exact; the passed-on parts
    then get that kernel, R11 needs one geometry)."""
    if part.site is None:
        return None
    conv = part.site.conv
    if conv.dilation == (1, 1):
        return conv
    width = conv.out_channels
    identity, checks = ws.apply("R6", width, 1, width, dtype=conv.weight.dtype)
    applied.append(("R6", [part.site.node], checks))
    spread, checks = ws.apply("R8", conv, identity)
    applied.append(("R8", [part.site.node], (*checks, "the identity 1×1 follows the conv")))
    return spread


def _as_conv(
    ws: Workspace, part: Part, conv: nn.Conv2d | None, like: nn.Conv2d, applied: list
) -> nn.Conv2d:
    """The part as a conv on the whole value: its (undilated) conv ``conv``, or R6 for a
    passed-on slice (``conv`` None) with ``like``'s kernel; then G5."""
    read = part.read
    if conv is None:
        width = read.end - read.start
        conv, checks = ws.apply("R6", width, like.kernel_size, dtype=like.weight.dtype)
        applied.append(("R6", [read.node], checks))
    if (read.start, read.end) != (0, read.total):
        conv, checks = ws.apply("G5", conv, read.total, read.start, read.end)
        nodes = [read.node] if part.site is None else [read.node, part.site.node]
        applied.append(("G5", nodes, checks))
    return conv


def _costlier_with_mix(ws: Workspace, node: fx.Node, parts: list, merged: nn.Conv2d) -> str | None:
    """Why widening the partial conv would be in vain: the concatenation is read by a conv
    alone (the mix) and the widened conv would not merge with it under the sequential merges'
    :data:`~et.compiler.sequential.NO_COSTLIER` (one conv costing more multiply-adds per
    output pixel than the widened conv and the mix, ``m_mix + s_h·s_w·m_widened``), so the
    widening would only add multiply-adds. None otherwise: the widening serves that merge
    (the authors' deploy form of a partial conv and its mix is one plain conv, which costs
    more than the partial conv but holds no slice or concatenation), or there is no mix."""
    mix = ws.conv_site(next(iter(node.users))) if len(node.users) == 1 else None
    if mix is None or mix.input is not node:
        return None
    try:
        _, final, _ = merge_pair(ws, merged, mix.conv)
    except PreconditionError:
        return None
    s_h, s_w = mix.conv.stride
    separate = macs_per_pixel(mix.conv) + s_h * s_w * macs_per_pixel(merged)
    if macs_per_pixel(final) <= separate:
        return None
    parts_cost = sum(macs_per_pixel(p.site.conv) for p in parts if p.site is not None)
    return (
        f"merged {macs_per_pixel(final)} > separate {separate} ({macs_per_pixel(mix.conv)} + "
        f"{s_h * s_w}·{macs_per_pixel(merged)}) multiply-adds per output pixel: the partial "
        f"conv widened would not merge with {mix.node.name}, and as it is costs {parts_cost}"
    )


def _merge_partial(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """R6 + G5 + R11 (R6 + R8 first for a dilated conv part): ``cat([conv(z[:, :k]),
    z[:, k:]])`` is one conv reading z, unless the mix reading it would then not merge with it
    for cost (:func:`_costlier_with_mix`)."""
    parts = _parts(ws, found, node)
    applied: list = []
    try:
        own = [_undilated(ws, part, applied) for part in parts]
        like = next(conv for conv in own if conv is not None)
        convs = [_as_conv(ws, p, c, like, applied) for p, c in zip(parts, own, strict=True)]
        merged, checks = ws.apply("R11", convs)
    except PreconditionError as error:
        ws.record.refused(node, error.rule, error.condition, error.detail)
        return False
    detail = _costlier_with_mix(ws, node, parts, merged)
    if detail is not None:
        ws.record.refused(node, "R11", NO_COSTLIER, detail)
        return False
    for rule, nodes, rule_checks in applied:
        ws.record.applied(rule, nodes, rule_checks)
    graph = "every part is a channel slice of one value, or a conv reading one"
    nodes = [p.site.node for p in parts if p.site is not None] + [node]
    checked = (*checks, *found[GRAPH], graph)
    return replace_conv(ws, node, merged, parts[0].read.whole, "R11", nodes, checked)


merge_partial_channels = driver(
    Rewrite(
        "R11",
        (
            Op(aten.cat.default, tensors=Var("parts"), dim=Var("dim", lambda d: d in (1, -3))),
            Op(
                aten.slice_scatter.default,
                self=Var("base"),
                src=Var("written"),
                dim=Var("dim", lambda d: d in (1, -3)),
                start=Var("start", integer),
                end=Var("end", integer),
                step=1,
            ),
        ),
        _merge_partial,
        (
            GraphCheck(
                "every part is a channel slice of one value or a conv reading one, at least "
                "one of each",
                lambda ws, node, found: _parts(ws, found, node) is not None,
                refuses=False,
            ),
            GraphCheck(FAN_OUT, _shared_convs, _shared_detail),
        ),
    )
)
