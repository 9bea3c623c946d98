"""A transposed convolution on the graph becomes a conv, PixelShuffle and a crop (R15).

``ConvTranspose2d(x; W, b, s, p, a, d, g)`` equals ``crop(PS_s(conv(x; V, b⊗1_{s²}, Q)))``
(the theorem of :mod:`et.rules.transposed_conv_as_pixel_shuffle`): each output phase
``(φ_h, φ_w)`` is a correlation on the low-resolution grid, the phases are stacked in
PixelShuffle's channel order, and a constant number of rows and columns is cropped from the
bottom and the right, a slice ``[:−rows]`` that holds at every input size. Afterwards the
rewrites see a plain conv and a PixelShuffle (E6, E7 and the linear rules apply). The rule's
preconditions (one stride on both axes, zero padding mode) are checked by the rule; a refusal
is named in the certificate and the op stays.
"""

from __future__ import annotations

import torch
from torch import fx, nn

from et.compiler.patterns import GRAPH, GraphCheck, Op, Rewrite, Var, driver
from et.compiler.workspace import CONVOLUTION, Workspace, arguments, aten_pair
from et.contract import PreconditionError

aten = torch.ops.aten


def _transposed(ws: Workspace, node: fx.Node) -> nn.ConvTranspose2d | None:
    """The ``nn.ConvTranspose2d`` a transposed-conv node computes (constant weights)."""
    values = arguments(node)
    if values is None or node.target not in (aten.conv_transpose2d.input, CONVOLUTION):
        return None
    if node.target == CONVOLUTION and not values["transposed"]:
        return None
    w, b = values["weight"], values["bias"]
    stride, padding, dilation = values["stride"], values["padding"], values["dilation"]
    output_padding, groups = values["output_padding"], values["groups"]
    weight = ws.tensor(w)
    bias = ws.tensor(b) if b is not None else None
    if weight is None or weight.ndim != 4 or (b is not None and bias is None):
        return None
    groups = int(groups)
    deconv = nn.ConvTranspose2d(
        weight.shape[0],
        weight.shape[1] * groups,
        tuple(weight.shape[2:]),
        stride=aten_pair(stride),
        padding=aten_pair(padding),
        output_padding=aten_pair(output_padding),
        groups=groups,
        bias=bias is not None,
        dilation=aten_pair(dilation),
    ).to(weight)
    with torch.no_grad():
        deconv.weight.copy_(weight)
        if bias is not None:
            deconv.bias.copy_(bias)
    return deconv


def _transposed_as_shuffle(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """R15: a transposed conv is ``crop(PS(conv(x)))``."""
    try:
        layers, checks = ws.apply("transposed_conv_as_pixel_shuffle", _transposed(ws, node))
    except PreconditionError as error:
        ws.record.refused(node, "R15", error.condition, error.detail)
        return False
    conv, shuffle = layers[0], layers[1]
    value = ws.emit_conv(conv, found["x"], node)
    value = ws.call(aten.pixel_shuffle.default, (value, shuffle.upscale_factor), node)
    if len(layers) > 2:
        crop = layers[2]
        for dim, count in ((2, crop.rows), (3, crop.cols)):
            if count:
                value = ws.call(aten.slice.Tensor, (value, dim, 0, -count), node)
    value.meta["val"] = node.meta.get("val")
    ws.record.applied("R15", [node], (*checks, *found[GRAPH]))
    ws.replace(node, value)
    return True


_NAMES = ("weight", "bias", "stride", "padding", "dilation", "groups", "output_padding")
_ARGUMENTS = {name: Var(name) for name in _NAMES}
transposed_as_shuffle = driver(
    Rewrite(
        "R15",
        (
            Op(aten.conv_transpose2d.input, input=Var("x"), **_ARGUMENTS),
            Op(CONVOLUTION, input=Var("x"), transposed=True, **_ARGUMENTS),
        ),
        _transposed_as_shuffle,
        (
            GraphCheck(
                "the kernel and bias are constants",
                lambda ws, node, found: _transposed(ws, node) is not None,
                refuses=False,
            ),
        ),
    )
)
