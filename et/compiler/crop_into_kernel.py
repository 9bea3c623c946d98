"""A centred crop read by a valid conv becomes zero taps of its kernel (G12, with R4).

Per spatial axis, let a conv with kernel length k, dilation d, stride s and padding 0 read
``x[a : −a]`` (a rows cut from each end, a = d·δ). Its output position i reads the cropped
positions ``i·s + u·d`` (tap u), i.e. the positions ``i·s + (u + δ)·d`` of x. The kernel
embedded in ``k + 2δ`` taps (R4: ``W'[u + δ] = W[u]``, zeros around) with padding 0 reads
exactly these at its non-zero taps, and both outputs have ``⌊(n − 2a − d(k − 1) − 1)/s⌋ + 1``
positions, so

    conv(x[a : −a]; W, padding 0) = conv(x; pad₀(W, δ), padding 0)

for every x. With a non-zero padding it fails (the crop pads with zeros where x has values),
and so does a crop that is not centred or not a multiple of d; those stay as they are.

This is ACNet's "crop" variant (square padding smaller than k//2: the 1×3 and 3×1 branches
read the input cropped to the square branch's valid window); after it, R3 merges the branches.
"""

from __future__ import annotations

import torch
from torch import fx

from et.compiler.helpers import replace_conv
from et.compiler.workspace import Workspace
from et.contract import apply_rule
from et.conv_geometry import conv_like

aten = torch.ops.aten


def _centred_crop(node: object) -> tuple[int, int] | None:
    """``(axis, a)`` when ``node`` is ``x[..., a : −a]`` on a spatial axis (0 = rows)."""
    if not isinstance(node, fx.Node) or node.target != aten.slice.Tensor:
        return None
    args = [*list(node.args), None, None, None, None][:5]
    _, dim, start, end, step = args
    if dim not in (2, 3, -2, -1) or (step or 1) != 1:
        return None
    if not isinstance(start, int) or not isinstance(end, int) or start <= 0 or end != -start:
        return None
    return (0 if dim in (2, -2) else 1), start


def absorb_crop(ws: Workspace, node: fx.Node) -> bool:
    """G12 + R4: ``conv(x[a:−a]; W, padding 0) = conv(x; W with a/d zero taps each side)``."""
    site = ws.conv_site(node)
    if site is None:
        return False
    crop = _centred_crop(site.input)
    if crop is None:
        return False
    axis, cut = crop
    conv = site.conv
    if conv.padding[axis] != 0:
        ws.record.refused(
            node,
            "G12",
            "the conv reading a centred crop has padding 0 on that axis",
            f"padding {conv.padding}",
        )
        return False
    if cut % conv.dilation[axis] != 0:
        ws.record.refused(
            node,
            "G12",
            "the crop is a whole number of dilated taps",
            f"crop {cut}, dilation {conv.dilation[axis]}",
        )
        return False
    size = list(conv.kernel_size)
    size[axis] += 2 * (cut // conv.dilation[axis])
    embedded = apply_rule("embed_kernel", conv, tuple(size))
    valid = conv_like(embedded, embedded.weight.detach(), _bias(embedded), padding=conv.padding)
    ws.record.applied("R4", [node], ("the added taps read the cropped-away border",))
    checked = (
        "the crop is centred (x[a:−a]) on a spatial axis, a a multiple of the dilation",
        "the conv has padding 0 on that axis",
    )
    return replace_conv(ws, node, valid, site.input.args[0], "G12", [site.input, node], checked)


def _bias(conv) -> torch.Tensor | None:
    return conv.bias.detach() if conv.bias is not None else None
