"""G14: a conv written with ``padding="same"`` or ``"valid"`` is the conv with numbers.

``"valid"`` is padding 0. ``"same"`` (stride 1 only; torch refuses it at another stride) pads
``d·(k − 1)`` per axis, ``⌊d(k − 1)/2⌋`` before and the rest after:

    conv(x; padding="same") = conv(pad₀(x; ⌊d(k−1)/2⌋ before, ⌈d(k−1)/2⌉ after); padding 0)

so an odd kernel gets the symmetric ``d·(k − 1)/2`` and an even one an explicit pad first.
"""

from __future__ import annotations

import torch
from torch import fx

from et.compiler.patterns import GRAPH, GraphCheck, Op, Rewrite, Var, driver
from et.compiler.workspace import Workspace, aten_pair

aten = torch.ops.aten


def _explicit_padding(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """G14: ``conv2d(x, padding="same" | "valid")`` with numbers: "valid" is 0; "same" (stride
    1) pads d·(k − 1) per axis, half before and the rest after (PyTorch puts the odd one after),
    so an odd kernel gets the symmetric ``d·(k − 1)/2`` and an even one an explicit pad."""
    x, weight, bias, mode = found["x"], found["weight"], found["bias"], found["mode"]
    stride, dilation = list(aten_pair(found["stride"])), list(aten_pair(found["dilation"]))
    if mode == "valid":
        padding, source = [0, 0], x
    else:
        value = weight.meta["val"]
        totals = [d * (int(k) - 1) for d, k in zip(dilation, value.shape[2:], strict=True)]
        if all(t % 2 == 0 for t in totals):
            padding, source = [t // 2 for t in totals], x
        else:
            (th, tw), padding = totals, [0, 0]
            pads = [tw // 2, tw - tw // 2, th // 2, th - th // 2]
            source = ws.call(aten.constant_pad_nd.default, (x, pads, 0.0), node)
    new = ws.call(
        aten.conv2d.default,
        (source, weight, bias, stride, padding, dilation, found["groups"]),
        node,
    )
    new.meta["val"] = node.meta.get("val")
    checked = (*found[GRAPH], f"padding={mode!r} at stride {stride}")
    ws.record.applied("G14", [node], checked)
    ws.replace(node, new)
    return True


def _kernel_known(ws: Workspace, node: fx.Node, found: dict) -> bool:
    weight = found["weight"]
    return isinstance(weight, fx.Node) and weight.meta.get("val") is not None


def _same_at_stride_one(ws: Workspace, node: fx.Node, found: dict) -> bool | None:
    # torch refuses padding="same" at another stride too
    return aten_pair(found["stride"]) == (1, 1) if found["mode"] == "same" else None


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
        (
            GraphCheck("the kernel size is known", _kernel_known, refuses=False),
            GraphCheck("padding='same' at stride 1", _same_at_stride_one, refuses=False),
        ),
    )
)
