"""Lower bounds of graph values, propagated from the declared input domain.

Rules such as E1/E4 are exact only on non-negative tensors. The bound of a node is proved from
its op: the user input starts at ``domain.low``; ReLU and clamp raise it; shape-only ops
(PixelShuffle, slices, repeat, padding with a non-negative value, pooling) keep it; a sum of
bounded terms adds bounds; a conv with non-negative weights and bias keeps ≥ 0. Anything else
is unbounded (``-inf``): the compiler then refuses the rules that need ``x ≥ 0``.
"""

from __future__ import annotations

import math
import operator
from typing import TYPE_CHECKING

import torch
from torch import fx

if TYPE_CHECKING:
    from et.compiler.workspace import Workspace

aten = torch.ops.aten

#: ops whose output elements are a subset (or average) of their first input's elements
_KEEPS_BOUND = {
    aten.pixel_shuffle.default,
    aten.pixel_unshuffle.default,
    aten.repeat_interleave.self_int,
    aten.repeat.default,
    aten.slice.Tensor,
    aten.select.int,
    aten.view.default,
    aten.reshape.default,
    aten._unsafe_view.default,
    aten.permute.default,
    aten.clone.default,
    aten.alias.default,
    aten.contiguous.default,
    aten.expand.default,
    aten.avg_pool2d.default,
    aten.max_pool2d.default,
    aten.max_pool2d_with_indices.default,
    aten.adaptive_avg_pool2d.default,
    aten.mean.dim,
    aten.upsample_nearest2d.vec,
    aten.upsample_nearest2d.default,
    aten.upsample_bilinear2d.vec,
    aten.unsqueeze.default,
    aten.squeeze.dim,
}


def lower_bound(ws: Workspace, node: fx.Node) -> float:
    """A proven lower bound of ``node`` (see the module docstring); ``-inf`` when none."""
    constant = ws.tensor(node)
    if constant is not None:
        return float(constant.min()) if constant.numel() else math.inf
    if node.op == "placeholder":
        return ws.domain.low
    if node.op != "call_function":
        return -math.inf
    target, args = node.target, node.args
    first = ws.lower_bound(args[0]) if args else -math.inf
    if target in (aten.relu.default, aten.sigmoid.default, aten.abs.default, aten.exp.default):
        return max(first, 0.0)
    if target in (aten.clamp.default, aten.clamp_min.default, aten.hardtanh.default):
        low = args[1] if len(args) > 1 and args[1] is not None else -math.inf
        return max(first, float(low))
    if target in _KEEPS_BOUND or target is operator.getitem:
        return first
    if target in (aten.leaky_relu.default, aten.prelu.default, aten._prelu_kernel.default):
        return first if first >= 0 else -math.inf
    if target == aten.constant_pad_nd.default:
        value = float(args[2]) if len(args) > 2 else 0.0
        return min(first, value)
    if target == aten.cat.default:
        return min(ws.lower_bound(a) for a in args[0])
    if target == aten.add.Tensor and len(args) == 2:
        return first + ws.lower_bound(args[1])
    if target == aten.mul.Tensor and len(args) == 2:
        second = ws.lower_bound(args[1])
        return 0.0 if first >= 0 and second >= 0 else -math.inf
    site = ws.conv_site(node)
    if site is not None and first >= 0:
        bias_ok = site.conv.bias is None or bool((site.conv.bias >= 0).all())
        if bool((site.conv.weight >= 0).all()) and bias_ok:
            return 0.0
    return -math.inf
