"""A crop read by a valid conv becomes zero taps of its kernel (G12; R4 when centred).

Per spatial axis, let a conv with kernel length k, dilation d, stride s and padding 0 read
``x[a : −b]`` (a positions cut before, b after, each a whole number of dilated taps:
a = d·α, b = d·β). Its output position i reads the cropped positions ``i·s + u·d`` (tap u),
i.e. the positions ``i·s + (u + α)·d`` of x. The kernel extended to ``k + α + β`` taps with
``W'[u + α] = W[u]`` and zeros elsewhere, with padding 0, reads exactly these at its non-zero
taps, and both outputs have ``⌊(n − a − b − d(k − 1) − 1)/s⌋ + 1`` positions, so

    conv(x[a : −b]; W, padding 0) = conv(x; W zero-extended by α before and β after, padding 0)

for every x and every input length n: the crop is counted from both ends (an end counted from
the start would hold at the captured size only, and is left alone). With a non-zero padding
it fails (the crop pads with zeros where x has values), and so does a crop that is not a whole
number of dilated taps; those stay as they are. A centred crop (α = β) is R4's embedding.

This is ACNet's "crop" variant (square padding smaller than k//2: the 1×3 and 3×1 branches
read the input cropped to the square branch's valid window); after it, R3 merges the branches.
"""

from __future__ import annotations

import torch
from torch import fx

from et.compiler.helpers import replace_conv
from et.compiler.patterns import GRAPH, GraphCheck, Op, Rewrite, Var, conv, driver, is_conv
from et.compiler.workspace import Workspace, arguments
from et.conv_geometry import conv_like

aten = torch.ops.aten


INT_MAX = 2**62


def _crop(node: object) -> tuple[int, int, int] | None:
    """``(axis, a, b)`` when ``node`` is ``x[..., a : −b]`` (or ``x[..., a:]``) on a spatial
    axis (0 = rows), else None."""
    values = arguments(node)
    if not isinstance(node, fx.Node) or node.target != aten.slice.Tensor or values is None:
        return None
    dim, start, end, step = (values[k] for k in ("dim", "start", "end", "step"))
    if dim not in (2, 3, -2, -1) or step != 1:
        return None
    start = 0 if start is None else start
    if end is None or (isinstance(end, int) and end >= INT_MAX):
        after = 0
    elif isinstance(end, int) and end < 0:
        after = -end
    else:
        return None
    if not isinstance(start, int) or start < 0 or start + after == 0:
        return None
    return (0 if dim in (2, -2) else 1), start, after


def _absorb_crop(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """G12: ``conv(x[a:−b]; W, padding 0) = conv(x; W with a/d zero taps before, b/d after)``."""
    site = ws.conv_site(node)
    axis, before, after = _crop(site.input)
    conv = site.conv
    dilation = conv.dilation[axis]
    if before == after:
        size = list(conv.kernel_size)
        size[axis] += 2 * (before // dilation)
        embedded, checks = ws.apply("embed_kernel", conv, tuple(size))
        weight = embedded.weight.detach()
        graph = "the added taps read the cropped-away border"
        ws.record.applied("R4", [node], (*checks, graph))
    else:
        pads = [0, 0, 0, 0]  # F.pad order: last axis first
        side = 2 * (1 - axis)
        pads[side], pads[side + 1] = before // dilation, after // dilation
        weight = torch.nn.functional.pad(conv.weight.detach(), pads)
    valid = conv_like(conv, weight, _bias(conv), padding=conv.padding)
    return replace_conv(ws, node, valid, found["x"], "G12", [site.input, node], found[GRAPH])


def _geometry(ws: Workspace, node: fx.Node) -> tuple[int, int, int, tuple, tuple]:
    """``(axis, a, b, padding, dilation)`` of the conv ``node`` reading a crop."""
    conv = ws.conv_site(node).conv
    return (*_crop(ws.conv_site(node).input), conv.padding, conv.dilation)


def _unpadded(ws: Workspace, node: fx.Node, found: dict) -> bool:
    axis, _, _, padding, _ = _geometry(ws, node)
    return padding[axis] == 0


def _whole_taps(ws: Workspace, node: fx.Node, found: dict) -> bool:
    axis, before, after, _, dilation = _geometry(ws, node)
    return before % dilation[axis] == 0 and after % dilation[axis] == 0


def _taps_detail(ws: Workspace, node: fx.Node, found: dict) -> str:
    axis, before, after, _, dilation = _geometry(ws, node)
    return f"crop ({before}, {after}), dilation {dilation[axis]}"


_CROP = Op(
    aten.slice.Tensor,
    name="crop",
    self=Var("x"),
    dim=Var("dim"),
    start=Var("start"),
    end=Var("end"),
    step=Var("step"),
)
absorb_crop = driver(
    Rewrite(
        "G12",
        (conv("conv", input=_CROP),),
        _absorb_crop,
        (
            is_conv("conv"),
            GraphCheck(
                "the crop x[a:−b] is counted from both ends",
                lambda ws, node, found: _crop(found["crop"]) is not None,
                refuses=False,
            ),
            GraphCheck(
                "the conv reading a crop has padding 0 on that axis",
                _unpadded,
                lambda ws, node, found: f"padding {_geometry(ws, node)[3]}",
            ),
            GraphCheck("the crop is a whole number of dilated taps", _whole_taps, _taps_detail),
        ),
    )
)


def _bias(conv) -> torch.Tensor | None:
    return conv.bias.detach() if conv.bias is not None else None
