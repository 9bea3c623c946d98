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

from et.compiler.batch_norm import BN_STEPS
from et.compiler.helpers import FAN_OUT, replace_conv, sole_conv
from et.compiler.patterns import (
    GRAPH,
    GraphCheck,
    Op,
    Rewrite,
    Var,
    conv,
    driver,
    is_conv,
    match,
    number,
)
from et.compiler.pools import _branch_as_conv, pool_after_conv, pool_before_conv
from et.compiler.regroup import REGROUP_CHECK, common_grouping
from et.compiler.sequential import merge_sequential
from et.compiler.workspace import Workspace
from et.contract import PreconditionError
from et.conv_geometry import conv_like
from et.rules.merge_sequential_convs import dense_weight

aten = torch.ops.aten
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


def _per_channel_operand(ws: Workspace, node: fx.Node, found: dict | None = None):
    """``(conv site, constant [C], conv first)`` for ``conv ∘ c`` binary nodes (``found``: the
    operands ``p``, ``q`` as bound; else read by the schema, any other argument at its
    default)."""
    found = found or match(Op(node.target, self=Var("p"), other=Var("q")), node)
    if found is None:
        return None
    operands = (found["p"], found["q"])
    for index in (0, 1):
        site = sole_conv(ws, operands[index], node)
        if site is not None:
            constant = per_channel(ws, operands[1 - index], site.conv.out_channels)
            if constant is not None:
                return site, constant, index == 0
    return None


#: what the match needs of the operands of ``conv ∘ c``
OPERANDS = "one operand is a conv read by this op alone, the other a per-channel constant"


def _operands(ws: Workspace, node: fx.Node, found: dict) -> bool:
    return _per_channel_operand(ws, node, found) is not None


def _conv_divided(ws: Workspace, node: fx.Node, found: dict) -> bool | None:
    if node.target != aten.div.Tensor:
        return None
    return _per_channel_operand(ws, node, found)[2]


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


def _fold_scale(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """R13: ``conv(x; W, b)·s = conv(x; s·W, s·b)`` and ``conv / s`` (s per output channel)."""
    site, constant, _ = _per_channel_operand(ws, node, found)
    conv = site.conv
    scale = constant if node.target == aten.mul.Tensor else 1.0 / constant
    try:
        new, checks = ws.apply("fold_channel_scale", conv, scale.to(conv.weight.dtype))
    except PreconditionError as error:
        ws.record.refused(node, "R13", error.condition, error.detail)
        return False
    checked = (*checks, *found[GRAPH], FAN_OUT)
    return replace_conv(ws, node, new, site.input, "R13", [site.node, node], checked)


def _fold_shift(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """G3: ``conv(x; W, b) ± c = conv(x; W, b ± c)``; ``c − conv`` negates the conv first
    (R13 with γ = −1)."""
    site, constant, conv_first = _per_channel_operand(ws, node, found)
    conv = site.conv
    sign = -1.0 if node.target == aten.sub.Tensor else 1.0
    negated: tuple = ()
    if node.target == aten.sub.Tensor and not conv_first:
        minus = -torch.ones(conv.out_channels).to(conv.weight)
        conv, negated = ws.apply("fold_channel_scale", conv, minus)
        sign = 1.0
    old_bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(constant)
    bias = cancel_rounding(old_bias.to(conv.weight), sign * constant.to(conv.weight))
    new = conv_like(conv, conv.weight.detach(), bias)
    if negated:  # c − conv(x): the conv is negated first (R13 with γ = −1)
        ws.record.applied("R13", [site.node], (*negated, "the scale −1 of c − y"))
    checked = (*found[GRAPH], FAN_OUT, CANCELS)
    return replace_conv(ws, node, new, site.input, "G3", [site.node, node], checked)


def _binary(targets) -> Op:
    return Op(targets, self=Var("p"), other=Var("q"))


_OPERANDS = GraphCheck(OPERANDS, _operands, refuses=False)
fold_scale = driver(
    Rewrite(
        "R13",
        (_binary((aten.mul.Tensor, aten.div.Tensor)),),
        _fold_scale,
        (_OPERANDS, GraphCheck("the conv is the dividend", _conv_divided, refuses=False)),
    )
)
fold_shift = driver(
    Rewrite("G3", (_binary((aten.add.Tensor, aten.sub.Tensor)),), _fold_shift, (_OPERANDS,))
)


def fold_constant_ops(ws: Workspace, node: fx.Node) -> bool:
    """R13 or G3 at ``node`` (both steps, for a caller that has one node)."""
    return fold_scale(ws, node) or fold_shift(ws, node)


def _shift_into_bias(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """G4: a valid conv reading ``x ± c`` is a conv reading x with bias ``b ± Σ W·c``."""
    site = ws.conv_site(node)
    constant, source = _shift(ws, node, found)
    sign = -1.0 if found["shifted"].target == aten.sub.Tensor else 1.0
    conv = site.conv
    dense = dense_weight(conv.weight.detach(), conv.groups)
    extra = torch.einsum("oihw,i->o", dense, constant.to(conv.weight))
    old_bias = conv.bias.detach() if conv.bias is not None else 0.0
    new = conv_like(conv, conv.weight.detach(), old_bias + sign * extra, padding=0)
    nodes = [found["shifted"], node]
    return replace_conv(ws, node, new, source, "G4", nodes, found[GRAPH])


def _shift(ws: Workspace, node: fx.Node, found: dict):
    """``(c [C_in], x)`` for the conv's input ``x ± c`` (or ``c + x``), else None."""
    channels = ws.conv_site(node).conv.in_channels
    operands = (found["a"], found["b"])
    for index in (1, 0):
        if index == 0 and found["shifted"].target == aten.sub.Tensor:
            continue  # c − x: no shift of x
        constant = per_channel(ws, operands[index], channels)
        if constant is not None and isinstance(operands[1 - index], fx.Node):
            return constant, operands[1 - index]
    return None


shift_into_bias = driver(
    Rewrite(
        "G4",
        (
            conv(
                "conv",
                input=Op(
                    (aten.add.Tensor, aten.sub.Tensor),
                    name="shifted",
                    self=Var("a"),
                    other=Var("b"),
                ),
            ),
        ),
        _shift_into_bias,
        (
            is_conv("conv"),
            GraphCheck(
                "the conv has padding 0, so every tap reads a shifted value",
                lambda ws, node, found: ws.conv_site(node).conv.padding == (0, 0),
                refuses=False,
            ),
            GraphCheck(
                "the input is x ± c for a per-channel constant c",
                lambda ws, node, found: _shift(ws, node, found) is not None,
                refuses=False,
            ),
        ),
    )
)


def _absorb_zero_pad(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """G1: ``conv(pad₀(x, p); padding q) = conv(x; padding p + q)`` for symmetric p."""
    pads = _pads(found)
    conv = ws.conv_site(node).conv
    padding = (conv.padding[0] + pads[2], conv.padding[1] + pads[0])
    new = conv_like(conv, conv.weight.detach(), _bias(conv), padding=padding)
    nodes = [found["pad"], node]
    return replace_conv(ws, node, new, found["x"], "G1", nodes, found[GRAPH])


def _pads(found: dict) -> list[int]:
    pads = list(found["pads"])
    return pads + [0, 0] * ((4 - len(pads)) // 2)


def _symmetric(ws: Workspace, node: fx.Node, found: dict) -> bool:
    pads = _pads(found)
    return pads[0] == pads[1] and pads[2] == pads[3]


def _spatial_pads(pads: object) -> bool:
    return len(pads) in (2, 4) and all(isinstance(p, int) and p >= 0 for p in pads)


absorb_zero_pad = driver(
    Rewrite(
        "G1",
        (
            conv(
                "conv",
                input=Op(
                    aten.constant_pad_nd.default,
                    name="pad",
                    self=Var("x"),
                    pad=Var("pads", _spatial_pads),
                    value=Var("value", lambda v: number(v) and float(v) == 0.0),
                ),
            ),
        ),
        _absorb_zero_pad,
        (
            is_conv("conv"),
            GraphCheck(
                "symmetric zero padding",
                _symmetric,
                lambda ws, node, found: f"pad {_pads(found)}",
            ),
        ),
    )
)


def _bias(conv: nn.Conv2d) -> torch.Tensor | None:
    return conv.bias.detach() if conv.bias is not None else None


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
    *BN_STEPS,
    fold_scale,
    fold_shift,
    shift_into_bias,
    absorb_zero_pad,
    merge_sequential,
    merge_branches,
    pool_after_conv,
    pool_before_conv,
    merge_concat,
)
