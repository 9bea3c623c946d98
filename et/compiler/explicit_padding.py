"""G14: a conv written with ``padding="same"`` or ``"valid"`` is the conv with numbers.

``"valid"`` is padding 0. ``"same"`` (stride 1 only; torch refuses it at another stride) pads
``d·(k − 1)`` per axis, ``⌊d(k − 1)/2⌋`` before and the rest after:

    conv(x; padding="same") = conv(pad₀(x; ⌊d(k−1)/2⌋ before, ⌈d(k−1)/2⌉ after); padding 0)

so an odd kernel gets the symmetric ``d·(k − 1)/2`` and an even one an explicit pad first.
The geometry and its checks are :func:`et.rules.explicit_padding.numeric_padding`'s, run here
with its checks recorded; this module finds the call and writes the new one.
"""

from __future__ import annotations

import torch
from torch import fx

from et.compiler.patterns import GRAPH, GraphCheck, Op, Rewrite, Var, driver
from et.compiler.workspace import Workspace, aten_pair
from et.contract import PreconditionError
from et.rules.explicit_padding import numeric_padding

aten = torch.ops.aten


def _explicit_padding(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """G14 (:mod:`et.rules.explicit_padding`, its geometry form :func:`numeric_padding`, since
    the weight here is a graph value): ``conv2d(x, padding="same" | "valid")`` with numbers;
    an odd 'same' total gets an explicit pad first. The rule refuses 'same' at a stride > 1."""
    x, weight, bias, mode = found["x"], found["weight"], found["bias"], found["mode"]
    stride, dilation = list(aten_pair(found["stride"])), list(aten_pair(found["dilation"]))
    kernel = tuple(int(k) for k in weight.meta["val"].shape[2:])
    try:
        (pads, padding), checks = ws.run(numeric_padding, mode, kernel, dilation, stride)
    except PreconditionError as error:
        ws.record.refused(node, "G14", error.condition, error.detail)
        return False
    source = x
    if any(pads):
        source = ws.call(aten.constant_pad_nd.default, (x, list(pads), 0.0), node)
    new = ws.call(
        aten.conv2d.default,
        (source, weight, bias, stride, list(padding), dilation, found["groups"]),
        node,
    )
    new.meta["val"] = node.meta.get("val")
    ws.record.applied("G14", [node], (*checks, *found[GRAPH]))
    ws.replace(node, new)
    return True


def _kernel_known(ws: Workspace, node: fx.Node, found: dict) -> bool:
    weight = found["weight"]
    return isinstance(weight, fx.Node) and weight.meta.get("val") is not None


explicit_padding = driver(
    Rewrite(
        "G14",
        (
            Op(
                aten.conv2d.padding,
                input=Var("x"),
                weight=Var("weight"),
                bias=Var("bias"),
                stride=Var("stride"),
                padding=Var("mode", lambda m: m in ("same", "valid")),
                dilation=Var("dilation"),
                groups=Var("groups"),
            ),
        ),
        _explicit_padding,
        (GraphCheck("the kernel size is known", _kernel_known, refuses=False),),
    )
)
