"""Two convs in a row are one conv: R7 (1×1 then K×K), R9 (K×K then 1×1), R14 (depthwise then
pointwise), R8 (K₁ then K₂, the first valid).

    conv₂(conv₁(x)) = conv(x; W₂ ⋆ W₁, W₂·b₁ + b₂)

where the second conv reads the first's output and nothing else does (fan-out 1, declared and
evaluated by the driver; a refusal names it on the first conv). The rule's own checks (strides,
padding, groups) decide the rest; a refusal names the one that failed.
"""

from __future__ import annotations

from torch import fx

from et.compiler.helpers import FAN_OUT, replace_conv
from et.compiler.patterns import GRAPH, GraphCheck, Rewrite, conv, driver, is_conv
from et.compiler.workspace import Workspace
from et.contract import PreconditionError


def _merge_sequential(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """R7 (1×1 → K×K), R9 (K×K → 1×1), R14 (depthwise → pointwise), R8 (K₁ → K₂, valid)."""
    second = ws.conv_site(node)
    first = ws.conv_site(second.input)
    c1, c2 = first.conv, second.conv
    pointwise_first = c1.kernel_size == (1, 1) and c1.stride == (1, 1) and c1.padding == (0, 0)
    pointwise_second = c2.kernel_size == (1, 1) and c2.stride == (1, 1) and c2.padding == (0, 0)
    depthwise_first = c1.groups == c1.in_channels == c1.out_channels > 1
    if pointwise_first and c2.padding != (0, 0):
        rule, args = "R7", (c1, c2, "zeros")
    elif pointwise_second and depthwise_first and c2.groups == 1:
        rule, args = "R14", (c1, c2, "zeros")
    elif pointwise_second:
        rule, args = "R9", (c1, c2)
    else:
        rule, args = "R8", (c1, c2)
    try:
        try:
            merged, checks = ws.apply(rule, *args)
        except PreconditionError:
            if rule != "R14":
                raise
            rule = "R9"  # a biased depthwise conv: the plain K×K then 1×1 merge
            merged, checks = ws.apply("R9", c1, c2)
    except PreconditionError as error:
        ws.record.refused(node, rule, error.condition, error.detail)
        return False
    graph = "nothing between the two convs: the second reads the first's output"
    nodes = [first.node, node]
    return replace_conv(ws, node, merged, first.input, rule, nodes, (*checks, *found[GRAPH], graph))


def _others(ws: Workspace, node: fx.Node, found: dict) -> str:
    others = sorted(u.name for u in found["first"].users if u is not node)
    return f"the first conv also feeds {others}"


merge_sequential = driver(
    Rewrite(
        "R8",
        (conv("second", input=conv("first")),),
        _merge_sequential,
        (
            is_conv("second"),
            is_conv("first"),
            GraphCheck(
                FAN_OUT,
                lambda ws, node, found: ws.sole_user(found["first"], node),
                _others,
                at="first",
            ),
        ),
    )
)
