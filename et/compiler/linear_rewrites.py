"""Re-parameterization rewrites (family A of the catalogue) matched on the ATen graph.

Each pattern looks at one node, checks the graph-level preconditions (fan-out, same input,
nothing non-linear between: the producer of a conv's input *is* the other conv) and hands the
kernel algebra to the rule in :mod:`et.rules`, whose own checks (stride, padding, dilation,
groups compatibility) raise :class:`~et.contract.PreconditionError`; a refusal is recorded in
the certificate and the op stays as it was.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import fx, nn

from et.compiler.batch_norm import fuse_batch_norm
from et.compiler.helpers import FAN_OUT, replace_conv, sole_conv
from et.compiler.patterns import Op, Rewrite, Var, driver
from et.compiler.regroup import REGROUP_CHECK, common_grouping
from et.compiler.workspace import Workspace, arguments, unit_alpha
from et.contract import PreconditionError
from et.rules.merge_sequential_convs import dense_weight

aten = torch.ops.aten
INT_MAX = 2**62

Pattern = Callable[[Workspace, fx.Node], bool]


def per_channel(ws: Workspace, node: object, channels: int) -> torch.Tensor | None:
    """``node`` as a per-channel constant ``[C]`` when it broadcasts as ``[1, C, 1, 1]``."""
    value = ws.tensor(node) if isinstance(node, fx.Node) else None
    if value is None and isinstance(node, int | float):
        value = torch.tensor(float(node), dtype=torch.float64)
    if value is None or value.ndim > 4:
        return None
    shape = [1] * (4 - value.ndim) + list(value.shape)
    if shape[0] != 1 or shape[2] != 1 or shape[3] != 1 or shape[1] not in (1, channels):
        return None
    return value.reshape(-1).expand(channels).clone()


def _per_channel_operand(ws: Workspace, node: fx.Node):
    """``(conv site, constant [C], conv first)`` for ``conv ∘ c`` binary nodes."""
    if len(node.args) != 2 or node.kwargs:
        return None
    for index in (0, 1):
        site = sole_conv(ws, node.args[index], node)
        if site is not None:
            constant = per_channel(ws, node.args[1 - index], site.conv.out_channels)
            if constant is not None:
                return site, constant, index == 0
    return None


#: rounding allowance, in units of the operands' float rounding, under which b + c counts as 0
CANCEL_ULPS = 16
CANCELS = f"b + c within {CANCEL_ULPS} ulp of |b| + |c| is 0 (one quantity computed twice)"


def cancel_rounding(bias: torch.Tensor, constant: torch.Tensor) -> torch.Tensor:
    """``bias + constant``, with entries that cancel to within float rounding set to 0.

    A published block often computes one real quantity twice: DBB pads with
    ``β − μ·γ/√(σ² + ε)`` while the BN fold writes the same value as ``β − μ·(γ/√(σ² + ε))``.
    Their difference is rounding, and a bias of exactly 0 is what lets R7 merge a zero-padded
    K×K (the verification still measures the whole network).
    """
    total = bias + constant
    allowance = CANCEL_ULPS * torch.finfo(total.dtype).eps * (bias.abs() + constant.abs())
    return torch.where(total.abs() <= allowance, torch.zeros_like(total), total)


def fold_constant_ops(ws: Workspace, node: fx.Node) -> bool:
    """G3 (conv ± c into the bias) and R13 (conv · s, conv / s into the kernel)."""
    if node.target not in (aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor):
        return False
    found = _per_channel_operand(ws, node)
    if found is None:
        return False
    site, constant, conv_first = found
    conv = site.conv
    if node.target in (aten.mul.Tensor, aten.div.Tensor):
        if node.target == aten.div.Tensor and not conv_first:
            return False
        scale = constant if node.target == aten.mul.Tensor else 1.0 / constant
        try:
            new, checks = ws.apply("fold_channel_scale", conv, scale.to(conv.weight.dtype))
        except PreconditionError as error:
            ws.record.refused(node, "R13", error.condition, error.detail)
            return False
        nodes = [site.node, node]
        return replace_conv(ws, node, new, site.input, "R13", nodes, (*checks, FAN_OUT))
    sign = -1.0 if node.target == aten.sub.Tensor else 1.0
    negated: tuple = ()
    if node.target == aten.sub.Tensor and not conv_first:
        minus = -torch.ones(conv.out_channels).to(conv.weight)
        conv, negated = ws.apply("fold_channel_scale", conv, minus)
        sign = 1.0
    old_bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(constant)
    bias = cancel_rounding(old_bias.to(conv.weight), sign * constant.to(conv.weight))
    new = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
    ).to(conv.weight)
    with torch.no_grad():
        new.weight.copy_(conv.weight)
        new.bias.copy_(bias)
    if negated:  # c − conv(x): the conv is negated first (R13 with γ = −1)
        ws.record.applied("R13", [site.node], (*negated, "the scale −1 of c − y"))
    return replace_conv(ws, node, new, site.input, "G3", [site.node, node], (FAN_OUT, CANCELS))


def shift_into_bias(ws: Workspace, node: fx.Node) -> bool:
    """G4: a valid conv reading ``x ± c`` is a conv reading x with bias ``b ± Σ W·c``."""
    site = ws.conv_site(node)
    if site is None or site.conv.padding != (0, 0):
        return False
    shifted = site.input
    if shifted.target not in (aten.add.Tensor, aten.sub.Tensor) or len(shifted.args) != 2:
        return False
    if not unit_alpha(shifted):
        return False  # x + α·c: α is not folded here
    for index in (1, 0):
        if index == 0 and shifted.target == aten.sub.Tensor:
            continue
        constant = per_channel(ws, shifted.args[index], site.conv.in_channels)
        source = shifted.args[1 - index]
        if constant is not None and isinstance(source, fx.Node):
            sign = -1.0 if shifted.target == aten.sub.Tensor else 1.0
            conv = site.conv
            dense = dense_weight(conv.weight.detach(), conv.groups)
            extra = torch.einsum("oihw,i->o", dense, constant.to(conv.weight))
            new = nn.Conv2d(
                conv.in_channels,
                conv.out_channels,
                conv.kernel_size,
                conv.stride,
                0,
                conv.dilation,
                conv.groups,
            ).to(conv.weight)
            old_bias = conv.bias.detach() if conv.bias is not None else 0.0
            with torch.no_grad():
                new.weight.copy_(conv.weight)
                new.bias.copy_(old_bias + sign * extra)
            checked = ("the conv has padding 0, so every tap reads a shifted value",)
            return replace_conv(ws, node, new, source, "G4", [shifted, node], checked)
    return False


def absorb_zero_pad(ws: Workspace, node: fx.Node) -> bool:
    """G1: ``conv(pad₀(x, p); padding q) = conv(x; padding p + q)`` for symmetric p."""
    site = ws.conv_site(node)
    if site is None or site.input.target != aten.constant_pad_nd.default:
        return False
    pad_node = site.input
    values = arguments(pad_node)
    if values is None:
        return False
    pads, value = list(values["pad"]), float(values["value"])
    if value != 0.0 or len(pads) not in (2, 4) or any(p < 0 for p in pads):
        return False
    pads += [0, 0] * ((4 - len(pads)) // 2)
    if pads[0] != pads[1] or pads[2] != pads[3]:
        ws.record.refused(node, "G1", "symmetric zero padding", f"pad {pads}")
        return False
    conv = site.conv
    padding = (conv.padding[0] + pads[2], conv.padding[1] + pads[0])
    new = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        padding,
        conv.dilation,
        conv.groups,
        bias=conv.bias is not None,
    ).to(conv.weight)
    new.load_state_dict(conv.state_dict())
    checked = ("the pad is zero and symmetric on each axis",)
    return replace_conv(ws, node, new, values["self"], "G1", [pad_node, node], checked)


def merge_sequential(ws: Workspace, node: fx.Node) -> bool:
    """R7 (1×1 → K×K), R9 (K×K → 1×1), R14 (depthwise → pointwise), R8 (K₁ → K₂, valid)."""
    second = ws.conv_site(node)
    if second is None:
        return False
    first = ws.conv_site(second.input)
    if first is None:
        return False
    if not ws.sole_user(first.node, node):
        others = sorted(u.name for u in first.node.users if u is not node)
        ws.record.refused(first.node, "R8", FAN_OUT, f"the first conv also feeds {others}")
        return False
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
    graph = (FAN_OUT, "nothing between the two convs: the second reads the first's output")
    nodes = [first.node, node]
    return replace_conv(ws, node, merged, first.input, rule, nodes, (*checks, *graph))


def _as_list(value: object) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


def _branch_as_conv(ws: Workspace, branch: fx.Node, source: fx.Node, like: nn.Conv2d, add):
    """An identity (R6) or average-pool (R10) branch on ``source`` as a conv, else None."""
    channels = ws.channels(source)
    if channels is None or channels != like.out_channels:
        return None
    groups = like.groups if like.in_channels == channels else 1
    if branch is source:
        try:
            conv, checks = ws.apply("identity_conv", channels, 1, groups)
        except PreconditionError:
            return None
        return "R6", conv.to(like.weight), checks
    values = arguments(branch)
    if branch.target == aten.avg_pool2d.default and values and values["self"] is source:
        if len(branch.users) != 1:
            return None
        kernel, stride, padding = values["kernel_size"], values["stride"], values["padding"]
        stride = stride if _as_list(stride) else kernel  # the schema's [] means the kernel
        sizes = [v for value in (kernel, stride, padding) for v in _as_list(value)]
        if not all(isinstance(v, int) for v in sizes):
            return None  # a size that depends on the input (global pooling) is no fixed conv
        ceil, include = bool(values["ceil_mode"]), bool(values["count_include_pad"])
        pool = nn.AvgPool2d(kernel, stride, padding, ceil, include, values["divisor_override"])
        if groups not in (1, channels):
            return None
        try:
            conv, checks = ws.apply(
                "avg_pool_as_conv",
                pool,
                channels,
                depthwise=groups == channels,
                dtype=like.weight.dtype,
            )
        except PreconditionError as error:
            ws.record.refused(branch, "R10", error.condition, error.detail)
            return None
        return "R10", conv.to(like.weight), checks
    return None


def pool_after_conv(ws: Workspace, node: fx.Node) -> bool:
    """R10: an average pool reading a conv's sole output becomes a conv (then R7/R8)."""
    if node.target != aten.avg_pool2d.default:
        return False
    site = sole_conv(ws, node.args[0], node)
    if site is None:
        return False
    made = _branch_as_conv(ws, node, site.node, site.conv, next(iter(node.users), node))
    if made is None:
        return False
    rule, conv, checks = made
    return replace_conv(ws, node, conv, site.node, rule, [node], checks)


def pool_before_conv(ws: Workspace, node: fx.Node) -> bool:
    """R10: an average pool whose sole reader is a valid conv becomes a depthwise conv, which
    R8/R9 then merge into that conv (DBB's ``avg → BN`` branch)."""
    if node.target != aten.avg_pool2d.default or len(node.users) != 1:
        return False
    after = ws.conv_site(next(iter(node.users)))
    channels = ws.channels(node.args[0])
    if after is None or after.input is not node or after.conv.padding != (0, 0) or not channels:
        return False
    like = nn.Conv2d(channels, channels, 1, groups=channels).to(after.conv.weight)
    made = _branch_as_conv(ws, node, node.args[0], like, after.node)
    if made is None:
        return False
    rule, conv, checks = made
    return replace_conv(ws, node, conv, node.args[0], rule, [node], checks)


def _merge_branches(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """R3: ``conv_a(x) + conv_b(x)`` is one conv; identity and avg-pool branches first
    become convs (R6, R10)."""
    a, b = found["a"], found["b"]
    sites = [sole_conv(ws, a, node), sole_conv(ws, b, node)]
    if sites[0] is None and sites[1] is None:
        return False
    if sites[0] is None or sites[1] is None:
        site, other = (sites[0], b) if sites[0] is not None else (sites[1], a)
        if not isinstance(other, fx.Node):
            return False
        made = _branch_as_conv(ws, other, site.input, site.conv, node)
        if made is None:
            return False
        rule, conv, checks = made
        new = ws.emit_conv(conv, site.input, node)
        ws.record.applied(rule, [other], checks)
        node.replace_input_with(other, new)
        ws.changed(other)
        return True
    first, second = sites
    if first.input is not second.input:
        return False
    convs = [first.conv, second.conv]
    if first.conv.groups != second.conv.groups:
        aligned = common_grouping(convs)
        if aligned is not None:
            ws.record.applied("G13", [first.node, second.node], (REGROUP_CHECK,))
            convs = aligned
    try:
        merged, checks = ws.apply("merge_parallel_convs", convs)
    except PreconditionError as error:
        ws.record.refused(node, "R3", error.condition, error.detail)
        return False
    checked = (*checks, "both branches read the same graph value", FAN_OUT)
    return replace_conv(
        ws, node, merged, first.input, "R3", [first.node, second.node, node], checked
    )


#: the plain sum (alpha at its default 1: a scaled branch is not merged here)
merge_branches = driver(
    Rewrite("R3", (Op(aten.add.Tensor, self=Var("a"), other=Var("b")),), _merge_branches)
)


def _merge_concat(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """R11: ``cat([conv_i(x)], dim=1)`` is one conv with the kernels stacked."""
    parts = list(found["parts"])
    if len(parts) < 2:
        return False
    sites = [sole_conv(ws, p, node) for p in parts]
    if any(s is None for s in sites) or len({s.input for s in sites}) != 1:
        return False
    try:
        merged, checks = ws.apply("concat_convs", [s.conv for s in sites])
    except PreconditionError as error:
        ws.record.refused(node, "R11", error.condition, error.detail)
        return False
    nodes = [s.node for s in sites] + [node]
    return replace_conv(ws, node, merged, sites[0].input, "R11", nodes, (*checks, FAN_OUT))


merge_concat = driver(
    Rewrite(
        "R11",
        (Op(aten.cat.default, tensors=Var("parts"), dim=Var("dim", lambda d: d in (1, -3))),),
        _merge_concat,
    )
)


LINEAR_PATTERNS: tuple[Pattern, ...] = (
    fuse_batch_norm,
    fold_constant_ops,
    shift_into_bias,
    absorb_zero_pad,
    merge_sequential,
    merge_branches,
    pool_after_conv,
    pool_before_conv,
    merge_concat,
)
