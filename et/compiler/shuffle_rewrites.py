"""The ET rewrites at the tail of a super-resolution net, matched on the ATen graph.

* E7: ``f(PS(y)) = PS(f(y))`` for a channel-uniform element-wise f (E7's transform runs on the
  module f the node computes, so its check is the one that decides);
* G16: ``PS(conv_a(u)) + α·PS(conv_b(v)) = PS(conv_a(u) + conv_b'(v))`` with
  ``conv_b' = α·conv_b`` (R13; α = −1 for a subtraction) and the kernels brought to one size
  (R4): PixelShuffle only moves entries (G16's check on the factors and shapes runs). The sum
  of the two convs is then one conv by the linear rules (R3, or R11 with G5), which is what E6
  states for the ET form: E6 itself is not recorded here, since its transform does not run;
* E2: ``clamp(conv(x), 0, M) = ReLU(clip(ReLU(conv'(x))))`` with ``conv' = (−W, M − b)``, unless
  float32 storage of ``M − b`` would lose precision the output needs (see
  :func:`precision_allows`);
* E9: nearest upsampling by an integer factor is repeat-interleave then PixelShuffle.

Every argument is read by its ATen schema name (:func:`~et.compiler.workspace.arguments`): a
keyword the rewrite does not handle exactly makes the pattern not match. E7, G16 and E9 are
declared as :class:`~et.compiler.patterns.Rewrite` patterns, as is E2 (an argument they do not
name must hold its default).
"""

from __future__ import annotations

import math

import torch
from torch import fx, nn

from et.compiler.helpers import FAN_OUT
from et.compiler.patterns import GRAPH, GraphCheck, Op, Rewrite, Var, driver, integer, number
from et.compiler.workspace import Workspace, arguments, value_shape
from et.contract import PreconditionError
from et.rules.move_elementwise_before_pixel_shuffle import (
    Clamp,
    move_elementwise_before_pixel_shuffle,
)
from et.rules.nearest_as_pixel_shuffle import check_integer_scale

aten = torch.ops.aten
PS = aten.pixel_shuffle.default
#: the factor on the second operand of a sum: ``add(a, b, alpha) = a + α·b``, ``sub = a − α·b``
SIGN = {aten.add.Tensor: 1.0, aten.sub.Tensor: -1.0}


def append_clamp(ws: Workspace, bounds: tuple[float, float]) -> None:
    """Make ``clamp(first output, low, high)`` the compiled function. This is the caller's
    specification (``et.compile(..., output_clamp=...)``), not an identity: it is stated in
    ``certificate.output_clamp`` and verification compares with the clamped original, so it is
    no rule application."""
    output = next(n for n in ws.graph.nodes if n.op == "output")
    value = output.args[0]
    clamped = ws.call(aten.clamp.default, (value, float(bounds[0]), float(bounds[1])), output)
    output.replace_input_with(value, clamped)


def _clamp_bounds(node: fx.Node) -> tuple[float, float] | None:
    """``(low, high)`` of a clamp or hardtanh node (schema names, defaults included)."""
    values = arguments(node)
    if values is None or node.target not in (aten.clamp.default, aten.hardtanh.default):
        return None
    if node.target == aten.clamp.default:
        low, high = values["min"], values["max"]
    else:  # hardtanh's bounds are no optionals: None stands for the default
        low = -1.0 if values["min_val"] is None else values["min_val"]
        high = 1.0 if values["max_val"] is None else values["max_val"]
    if not all(v is None or number(v) for v in (low, high)):
        return None
    return (-math.inf if low is None else float(low), math.inf if high is None else float(high))


def _bound(value: object) -> bool:
    return value is None or number(value)


#: E7's anchors: a channel-uniform map of a PixelShuffle read by it alone
_SHUFFLED = Op(
    PS, name="shuffle", single_user=True, self=Var("y"), upscale_factor=Var("s", integer)
)
_LOW_HIGH = {"when": _bound}


def _elementwise_before_shuffle(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """E7: ``f(PS(y)) = PS(f(y))`` for ReLU, leaky ReLU, clamp (same map on every channel);
    E7's transform runs on the torch module the node computes, so its check decides."""
    if node.target == aten.relu.default:
        module: nn.Module = nn.ReLU()
    elif node.target == aten.leaky_relu.default:
        module = nn.LeakyReLU(float(found["slope"]))
    else:
        module = Clamp(*_clamp_bounds(node))
    try:
        layers = nn.Sequential(nn.PixelShuffle(found["s"]), module)
        _, checks = ws.run(move_elementwise_before_pixel_shuffle, layers)
    except PreconditionError as error:
        ws.record.refused(node, "E7", error.condition, error.detail)
        return False
    values = arguments(node)
    rest = [values[p.name] for p in node.target._schema.arguments[1:]]  # none keyword-only
    inner = ws.call(node.target, (found["y"], *rest), node)
    outer = ws.call(PS, (inner, found["s"]), node)
    graph = ("the map is element-wise and channel-uniform",)
    ws.record.applied("E7", [found["shuffle"], node], (*checks, *graph))
    ws.replace(node, outer)
    return True


E7 = Rewrite(
    "E7",
    (
        Op(aten.relu.default, self=_SHUFFLED),
        Op(aten.leaky_relu.default, self=_SHUFFLED, negative_slope=Var("slope", number)),
        Op(
            aten.clamp.default,
            self=_SHUFFLED,
            min=Var("low", **_LOW_HIGH),
            max=Var("high", **_LOW_HIGH),
        ),
        Op(
            aten.hardtanh.default,
            self=_SHUFFLED,
            min_val=Var("low", number),
            max_val=Var("high", number),
        ),
    ),
    _elementwise_before_shuffle,
)
elementwise_before_shuffle = driver(E7)


#: what E3 checked on the graph, per channel order
ORDER_CHECKED = {
    "interleave": "PyTorch PixelShuffle (interleaved) channel order",
    "tiled": "channels tiled (x.repeat, cat of copies, expand): the tiled anchor order",
}


def channel_replication(ws: Workspace, node: fx.Node) -> tuple[fx.Node, int, str] | None:
    """``(u, r, order)`` when ``node`` repeats the channels of u r times: interleaved
    (``repeat_interleave(u, r, dim=1)``) or tiled (``u.repeat(1, r, 1, 1)``, ``cat([u] * r,
    dim=1)``, or ``u.expand(-1, r, -1, -1)`` of a one-channel u)."""
    values = arguments(node)
    if values is None:
        return None
    interleave = node.target == aten.repeat_interleave.self_int
    if interleave and values["dim"] in (1, -3) and isinstance(values["repeats"], int):
        return values["self"], values["repeats"], "interleave"
    if node.target == aten.repeat.default and len(values["repeats"]) == 4:
        n, r, h, w = values["repeats"]
        if (n, h, w) == (1, 1, 1) and isinstance(r, int):
            return values["self"], r, "tiled"
    if node.target == aten.cat.default and values["dim"] in (1, -3):
        parts = values["tensors"]
        if len(parts) > 1 and all(p is parts[0] for p in parts):
            return parts[0], len(parts), "tiled"
    if node.target == aten.expand.default and ws.channels(values["self"]) == 1:
        sizes = list(values["size"])
        others_kept = len(sizes) == 4 and all(s == -1 for i, s in enumerate(sizes) if i != 1)
        if others_kept and isinstance(sizes[1], int) and sizes[1] > 1:
            return values["self"], sizes[1], "tiled"
    return None


def _summand(ws: Workspace, shuffle: fx.Node, like: nn.Conv2d | None):
    """``(node, input, conv, steps)`` for the value PixelShuffled by ``shuffle``: a conv, or a
    channel replication written as its anchor conv (E3, whose transform runs; in the dtype of
    ``like``); None for anything else."""
    inner = arguments(shuffle)["self"]
    site = ws.conv_site(inner)
    if site is not None:
        return site.node, site.input, site.conv, []
    replication = channel_replication(ws, inner) if isinstance(inner, fx.Node) else None
    colors = ws.channels(replication[0]) if replication is not None else None
    if like is None or colors is None or not ws.sole_user(inner, shuffle):
        return None
    source, repeats, order = replication
    anchor, ran = ws.apply("repeat_interleave_conv", colors, repeats, 1, order=order)
    return inner, source, anchor.to(like.weight), [("E3", inner, (*ran, ORDER_CHECKED[order]))]


def _sum_of_shuffles(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """G16 (with R13 for α ≠ 1): ``PS(conv_a(u)) + α·PS(conv_b(v)) = PS(conv_a(u) +
    conv_b'(v))`` where ``conv_b' = conv(·; α·W_b, α·b_b)`` (a conv is linear in its weights
    and bias, and PixelShuffle only moves entries, so it commutes with the sum and with the
    scale: G16's check on the factors and shapes runs). The kernels are brought to one size
    (R4) and a repeated input is its anchor conv (E3) first, so that the linear rules can merge
    the two convs next. Only convs are summed here: that is what lets them merge."""
    a, b, alpha, factor = found["a"], found["b"], found["alpha"], found["s"]
    if a is b:
        return False  # PS(y) + PS(y): one shuffle read twice
    inputs = (found["u"], found["v"])
    real = next((s.conv for s in map(ws.conv_site, inputs) if s), None)
    try:
        sides = [_summand(ws, a, real), _summand(ws, b, real)]
        if None in sides:
            detail = "a summand is a PixelShuffle of something else"
            ws.record.refused(node, "G16", "both summands are PixelShuffles of convs", detail)
            return False
        convs = [side[2] for side in sides]
        steps = [step for side in sides for step in side[3]]
        scale = SIGN[node.target] * float(alpha)
        if scale != 1.0:
            gamma = torch.full((convs[1].out_channels,), scale).to(convs[1].weight)
            convs[1], ran = ws.apply("fold_channel_scale", convs[1], gamma)
            graph = f"the scale α = {scale:g} sits between the conv and the sum"
            steps.append(("R13", sides[1][0], (*ran, graph)))
        size = tuple(max(a, b) for a, b in zip(*(c.kernel_size for c in convs), strict=True))
        for index in (0, 1):
            if convs[index].kernel_size != size:
                convs[index], ran = ws.apply("embed_kernel", convs[index], size)
                steps.append(("R4", sides[index][0], ran))
        shapes = [
            value_shape(ws, shuffled) or _conv_output_shape(conv, side[1])
            for shuffled, conv, side in zip(inputs, convs, sides, strict=True)
        ]
        _, checks = ws.apply("G16", (factor, factor), shapes, scale)
    except PreconditionError as error:
        ws.record.refused(node, error.rule, error.condition, error.detail)
        return False
    for rule, changed, checked in steps:  # nothing is emitted before every check passed
        ws.record.applied(rule, [changed], checked)
    summands = [
        side[0] if side[2] is conv else ws.emit_conv(conv, side[1], node)
        for side, conv in zip(sides, convs, strict=True)
    ]
    total = ws.call(aten.add.Tensor, tuple(summands), node)
    shuffled = ws.call(PS, (total, factor), node)
    graph = ("both summands are PixelShuffles of convs", "the same upscale factor on both")
    ws.record.applied("G16", [sides[0][0], sides[1][0], a, b, node], (*checks, *graph))
    ws.replace(node, shuffled)
    return True


def _conv_output_shape(conv: nn.Conv2d, source: fx.Node) -> list[str] | None:
    """The shape of ``conv(source)`` from the source's captured shape (for a conv a rewrite
    emitted, which carries none): batch, the conv's outputs, and each spatial size mapped
    through the conv's geometry (symbolic ones by name); None when the source's is unknown."""
    value = source.meta.get("val") if isinstance(source, fx.Node) else None
    if value is None or value.ndim != 4:
        return None
    sizes = []
    for axis, size in enumerate(value.shape[2:]):
        kernel, stride = conv.kernel_size[axis], conv.stride[axis]
        padding, dilation = conv.padding[axis], conv.dilation[axis]
        sizes.append((size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1)
    return [str(s) for s in (value.shape[0], conv.out_channels, *sizes)]


def _shuffle_of(name: str, value: str) -> Op:
    return Op(PS, name=name, single_user=True, self=Var(value), upscale_factor=Var("s", integer))


G16 = Rewrite(
    "G16",
    (
        Op(
            tuple(SIGN),
            self=_shuffle_of("a", "u"),
            other=_shuffle_of("b", "v"),
            alpha=Var("alpha", number),
        ),
    ),
    _sum_of_shuffles,
)
sum_of_shuffles = driver(G16)


#: how far above the clamped signal's scale the clip bound may be (see precision_allows)
PRECISION_RATIO = 16.0
PRECISION = (
    f"float32: the clip bound M is at most {PRECISION_RATIO:g} times the clamped signal's scale "
    "(the fold stores M − b, whose rounding would swamp a smaller output)"
)


def precision_allows(ws: Workspace, conv_node: fx.Node, bias: torch.Tensor | None, high: float):
    """``(ok, detail)``: whether E2's form keeps the output's float32 precision.

    The original rounds once per term: error ≈ u·S with u = 2⁻²⁴ and S = max|b| + max|conv(x)|
    (the scale of the clamped signal). The folded form stores ``M − b`` and computes
    ``M − ReLU(·)``, adding ≈ 3u·M; so it is applied only when ``M ≤ PRECISION_RATIO · S``, where
    its error stays within about 50 times the original's rounding. S is measured on one probe
    input drawn from the domain (:meth:`Workspace.magnitude`); refusing is always sound, and
    nothing measured refuses.
    """
    measured = ws.magnitude(conv_node)
    if measured is None:
        return False, "the clamped signal's scale could not be measured"
    if bias is not None and bias.numel():
        measured += float(bias.detach().abs().max())
    scale = measured
    detail = f"M = {high:g}, signal scale ≈ {scale:g} (max |b| + max |conv(x)| on a probe)"
    return high <= PRECISION_RATIO * scale, detail


def _clip_as_relus(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """E2: ``clamp(conv(x), 0, M) = ReLU(clip(ReLU(conv'(x))))`` with ``conv' = (−W, M − b)``."""
    site = ws.conv_site(found["y"])
    high = _clamp_bounds(node)[1]
    try:
        (folded, clip), checks = ws.apply("clip_as_relu", site.conv, high)
    except PreconditionError as error:
        ws.record.refused(node, "E2", error.condition, error.detail)
        return False
    ok, detail = precision_allows(ws, site.node, site.conv.bias, high)
    if not ok:
        ws.record.refused(node, "E2", PRECISION, detail)
        return False
    first = ws.emit_conv(folded, site.input, node)
    relu = ws.call(aten.relu.default, (first,), node)
    second = ws.emit_conv(clip.to(folded.weight), relu, node)
    out = ws.call(aten.relu.default, (second,), node)
    ws.record.applied("E2", [site.node, node], (*checks, PRECISION, *found[GRAPH]))
    ws.replace(node, out)
    return True


def _clamped_conv(ws: Workspace, node: fx.Node, found: dict) -> bool:
    bounds = _clamp_bounds(node)
    site = ws.conv_site(found["y"])
    return bounds is not None and site is not None and ws.sole_user(site.node, node)


def _zero_to_m(ws: Workspace, node: fx.Node, found: dict) -> bool:
    low, high = _clamp_bounds(node)
    return low == 0.0 and math.isfinite(high)


E2 = Rewrite(
    "E2",
    (
        Op(aten.clamp.default, self=Var("y"), min=Var("low", _bound), max=Var("high", _bound)),
        Op(aten.hardtanh.default, self=Var("y"), min_val=Var("low"), max_val=Var("high")),
    ),
    _clip_as_relus,
    (
        GraphCheck(FAN_OUT, _clamped_conv, refuses=False),
        GraphCheck(
            "the clamp is clamp(y, 0, M)",
            _zero_to_m,
            lambda ws, node, found: f"bounds {_clamp_bounds(node)}",
        ),
    ),
)
clip_as_relus = driver(E2)


def _nearest_as_shuffle(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """E9: ``nearest(x, s) = PS(repeat_interleave(x, s², dim=1))`` for an integer scale s."""
    try:
        scale, checks = ws.run(check_integer_scale, found["factors"][0])
    except PreconditionError as error:
        ws.record.refused(node, "E9", error.condition, error.detail)
        return False
    repeated = ws.call(aten.repeat_interleave.self_int, (found["x"], scale * scale, 1), node)
    shuffled = ws.call(PS, (repeated, scale), node)
    ws.record.applied("E9", [node], (*checks, "equal integer scale factors on both axes"))
    ws.replace(node, shuffled)
    return True


def _equal_factors(factors: object) -> bool:
    # one listed factor is that of both axes
    return isinstance(factors, list | tuple) and len(factors) in (1, 2) and len(set(factors)) == 1


E9 = Rewrite(
    "E9",
    (
        Op(
            aten.upsample_nearest2d.vec,
            input=Var("x"),
            output_size=None,
            scale_factors=Var("factors", _equal_factors),
        ),
    ),
    _nearest_as_shuffle,
)
nearest_as_shuffle = driver(E9)
