"""Two convs in a row are one conv: R7 (1×1 then K×K), R9 (K×K then 1×1), R14 (depthwise then
pointwise), R8 (K₁ then K₂, the first valid).

    conv₂(conv₁(x)) = conv(x; W₂ ⋆ W₁, W₂·b₁ + b₂)

where the second conv reads the first's output and nothing else does (fan-out 1, declared and
evaluated by the driver; a refusal names it on the first conv). The rule's own checks (strides,
padding, groups) decide the rest; a refusal names the one that failed.

A merge must not make the network slower: the merged conv may cost no more multiply-adds per
output pixel than the two convs it replaces (:data:`NO_COSTLIER`), else the pair is left and
the refusal gives both costs. A conv's cost per pixel of its own output is its weight's entry
count, ``m = C_out · (C_in / g) · k_h · k_w``; per pixel of the second conv's output (stride
``(s_h, s_w)``) the first conv computes ``s_h · s_w`` pixels (its own stride only thins its
input, which costs nothing), so

    separate = m₂ + s₂ₕ · s₂w · m₁        merged = m₃  (the merged conv, stride s₁·s₂)

and the merge is made iff ``m₃ ≤ separate``. Per pixel means for a large map: the ratio of
the two maps' pixel counts tends to ``s₂ₕ·s₂w`` as the map grows (the few border rows a valid
or over-padded second conv drops or adds are left out). The guard looks at one pair: a chain
is merged pair by pair, each step no costlier, so the chain's cost never grows (a chain that
would be cheaper as a whole only through a costlier intermediate pair is left as it is).
Where it matters: a depthwise 7×7 and the 1×1 expansion after it (FastViT's conv FFN, width
8 → 16) cost 8·49 + 16·8 = 520 per pixel; the dense 7×7 of R14 would cost 16·8·49 = 6272.
"""

from __future__ import annotations

from torch import fx, nn

from et.compiler.helpers import FAN_OUT, replace_conv
from et.compiler.patterns import GRAPH, GraphCheck, Rewrite, conv, driver, is_conv
from et.compiler.workspace import Workspace
from et.contract import PreconditionError

#: the cost precondition of every sequential merge (see the module docstring)
NO_COSTLIER = (
    "the merged conv costs no more multiply-adds per output pixel than the two convs it "
    "replaces (C_out·C_in/g·k_h·k_w each; the first conv's counted s_h·s_w times for a "
    "second conv of stride (s_h, s_w))"
)


def macs_per_pixel(conv: nn.Conv2d) -> int:
    """Multiply-adds of ``conv`` per pixel of its own output: ``C_out · (C_in / g) · k_h ·
    k_w``, its weight's entry count (the bias adds are not counted)."""
    return conv.weight.numel()


def separate_macs(first: nn.Conv2d, second: nn.Conv2d) -> int:
    """Multiply-adds of ``second ∘ first`` per pixel of the second conv's output:
    ``m₂ + s_h · s_w · m₁`` with ``(s_h, s_w)`` the second conv's stride."""
    s_h, s_w = second.stride
    return macs_per_pixel(second) + s_h * s_w * macs_per_pixel(first)


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
    merged_cost, separate = macs_per_pixel(merged), separate_macs(c1, c2)
    if merged_cost > separate:
        detail = (
            f"merged {merged_cost} > separate {separate} multiply-adds per output pixel "
            f"({macs_per_pixel(c2)} + {c2.stride[0] * c2.stride[1]}·{macs_per_pixel(c1)})"
        )
        ws.record.refused(node, rule, NO_COSTLIER, detail)
        return False
    graph = "nothing between the two convs: the second reads the first's output"
    nodes = [first.node, node]
    checked = (*checks, *found[GRAPH], graph, NO_COSTLIER)
    return replace_conv(ws, node, merged, first.input, rule, nodes, checked)


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
