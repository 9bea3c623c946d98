"""G13: a valid conv reading a spatial crop of x is a valid conv reading x.

ACNet's "crop" branches (square padding smaller than k//2) slice the input before a 1×k or k×1
conv: ``conv(x[..., a : −b]; W, padding 0)``. Along the cropped axis, output position i of that
conv reads ``x[a + i·s + u]`` with tap u. A kernel of length ``a + k + b`` holding W at offsets
``a … a + k − 1`` and zeros elsewhere, applied to x itself with padding 0, reads the same
positions with the same weights, and its output length ``⌊(n − a − b − k)/s⌋ + 1`` is the
cropped conv's. So

    conv(x[..., a : n − b]; W, s, padding 0, dilation 1) = conv(x; pad₀(W; a before, b after), s, 0)

for every input length n: the crop is written relative to the end (``−b``), so the identity
holds at sizes other than the captured one. Afterwards R3 merges the branch with the square one.
"""

from __future__ import annotations

import torch
from torch import fx

from et.compiler.helpers import replace_conv
from et.compiler.workspace import Workspace
from et.conv_geometry import conv_like

aten = torch.ops.aten
INT_MAX = 2**62

#: what the certificate says was checked
CHECKED = (
    "the conv is valid (padding 0) and undilated on the cropped axis",
    "the crop is fixed from both ends (start ≥ 0, end −b or the end)",
)


def _crop(node: fx.Node) -> tuple[int, int, int] | None:
    """``(axis, a, b)`` for ``x[..., a : −b]`` on a spatial axis with step 1, else None."""
    if node.target != aten.slice.Tensor:
        return None
    args = list(node.args) + [None] * 4
    dim, start, end, step = args[1], args[2] or 0, args[3], args[4] or 1
    if dim not in (2, 3, -1, -2) or step != 1 or not isinstance(start, int) or start < 0:
        return None
    if end is None or (isinstance(end, int) and end >= INT_MAX):
        after = 0
    elif isinstance(end, int) and end < 0:
        after = -end
    else:
        return None  # an end counted from the start holds at the captured size only
    return (2 if dim in (2, -2) else 3), start, after


def absorb_crop(ws: Workspace, node: fx.Node) -> bool:
    """G13: ``conv(crop(x))`` with a valid conv on the cropped axis → ``conv'(x)``."""
    site = ws.conv_site(node)
    if site is None or not isinstance(site.input, fx.Node):
        return False
    crop = _crop(site.input)
    if crop is None:
        return False
    axis, before, after = crop
    conv = site.conv
    index = axis - 2
    if conv.padding[index] != 0 or conv.dilation[index] != 1:
        ws.record.refused(
            node, "G13", CHECKED[0], f"padding {conv.padding}, dilation {conv.dilation}"
        )
        return False
    pads = [0, 0, 0, 0]  # F.pad order: left, right, top, bottom
    pads[2 * (3 - axis)] = before
    pads[2 * (3 - axis) + 1] = after
    weight = torch.nn.functional.pad(conv.weight.detach(), pads)
    bias = conv.bias.detach() if conv.bias is not None else None
    new = conv_like(conv, weight, bias)
    return replace_conv(ws, node, new, site.input.args[0], "G13", [site.input, node], CHECKED)
