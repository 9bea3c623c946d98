"""A crop read by a valid conv becomes zero taps of its kernel (G12).

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
number of dilated taps: :mod:`et.rules.absorb_crop` (whose transform this step runs) refuses
those, the refusal names its precondition and the crop stays. A centred crop (α = β) is R4's
embedding.

This is ACNet's "crop" variant (square padding smaller than k//2: the 1×3 and 3×1 branches
read the input cropped to the square branch's valid window); after it, R3 merges the branches.
"""

from __future__ import annotations

import torch
from torch import fx

from et.compiler.helpers import replace_conv
from et.compiler.patterns import GRAPH, GraphCheck, Op, Rewrite, Var, conv, driver, is_conv
from et.compiler.workspace import Workspace, arguments
from et.contract import PreconditionError

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
    """G12 (:mod:`et.rules.absorb_crop`): ``conv(x[a:−b]; W, padding 0) = conv(x; W with a/d
    zero taps before, b/d after)``; the rule refuses a padded cropped axis and a crop that is
    no whole number of dilated taps."""
    site = ws.conv_site(node)
    axis, before, after = _crop(site.input)
    crop = [0, 0, 0, 0]  # F.pad order: (left, right, top, bottom)
    side = 2 * (1 - axis)
    crop[side], crop[side + 1] = before, after
    try:
        widened, checks = ws.apply("absorb_crop", site.conv, crop)
    except PreconditionError as error:
        ws.record.refused(node, "G12", error.condition, error.detail)
        return False
    nodes = [site.input, node]
    return replace_conv(ws, node, widened, found["x"], "G12", nodes, (*checks, *found[GRAPH]))


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
        ),
    )
)
