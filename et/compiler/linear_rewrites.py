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
from torch import fx

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
from et.compiler.regroup import common_grouping
from et.compiler.rounding_residue import cancelling_residue, record_approximation
from et.compiler.sequential import merge_sequential
from et.compiler.workspace import Workspace
from et.contract import PreconditionError
from et.conv_geometry import conv_like

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


def constant_value(ws: Workspace, node: object, dtype: torch.dtype) -> torch.Tensor | None:
    """The constant operand ``node`` (a ``get_attr`` tensor or a Python number) in ``dtype``,
    as the op meets it (torch's ``y + s`` rounds a number to y's dtype first), or None when it
    depends on the input."""
    if isinstance(node, fx.Node):
        value = ws.tensor(node)
        return None if value is None else value.to(dtype)
    if number(node):
        return torch.tensor(float(node), dtype=dtype)
    return None


def _constant_operand(ws: Workspace, node: fx.Node, found: dict):
    """``(conv site, constant, conv first)`` for ``conv ± c`` / ``c ± conv`` with a constant c
    of any shape (whether it is one value per channel is G3's own check), else None."""
    operands = (found["p"], found["q"])
    for index in (0, 1):
        site = sole_conv(ws, operands[index], node)
        if site is not None:
            constant = constant_value(ws, operands[1 - index], site.conv.weight.dtype)
            if constant is not None:
                return site, constant, index == 0
    return None


def _fold_shift(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """G3 (:mod:`et.rules.fold_output_constant`): ``add(conv(x), c, α) = conv(x; W, b + α·c)``,
    ``sub`` with −α·c, and ``add/sub(c, conv(x), α)`` with the kernel scaled by ±α. A folded
    bias entry that cancels to within rounding is then set to 0 as a second, recorded
    approximation (:func:`cancelling_residue`)."""
    site, constant, conv_first = _constant_operand(ws, node, found)
    op = "add" if node.target == aten.add.Tensor else "sub"
    alpha = float(found["alpha"])
    try:
        new, checks = ws.apply(
            "fold_output_constant", site.conv, constant, op, conv_first=conv_first, alpha=alpha
        )
    except PreconditionError as error:
        ws.record.refused(node, "G3", error.condition, error.detail)
        return False
    nodes = [site.node, node]
    checked = (*checks, *found[GRAPH], FAN_OUT)
    residue = cancelling_residue(site.conv, constant, op, conv_first, alpha, new)
    if not bool(residue.any()):
        return replace_conv(ws, node, new, site.input, "G3", nodes, checked)
    ws.record.applied("G3", nodes, checked)
    moved = float(new.bias.detach()[residue].abs().max())
    rounded = conv_like(new, new.weight.detach(), new.bias.detach().masked_fill(residue, 0.0))
    record_approximation(ws, nodes, int(residue.sum()), moved)
    ws.replace(node, ws.emit_conv(rounded, site.input, node))
    return True


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
#: ``add`` / ``sub`` with any numeric ``alpha`` (the rule's coefficients carry it)
fold_shift = driver(
    Rewrite(
        "G3",
        (
            Op(
                (aten.add.Tensor, aten.sub.Tensor),
                self=Var("p"),
                other=Var("q"),
                alpha=Var("alpha", number),
            ),
        ),
        _fold_shift,
        (
            GraphCheck(
                "one operand is a conv read by this op alone, the other a constant",
                lambda ws, node, found: _constant_operand(ws, node, found) is not None,
                refuses=False,
            ),
        ),
    )
)


def fold_constant_ops(ws: Workspace, node: fx.Node) -> bool:
    """R13 or G3 at ``node`` (both steps, for a caller that has one node)."""
    return fold_scale(ws, node) or fold_shift(ws, node)


def _shift_into_bias(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """G4 (:mod:`et.rules.fold_input_shift`): a valid conv reading ``add(x, c, α)`` is a conv
    reading x with bias ``b + α·Σ W·c`` (``sub``: −α); ``add/sub(c, x, α)`` also scales the
    kernel by ±α."""
    site = ws.conv_site(node)
    constant, source, input_first = _shift(ws, node, found)
    shifted = found["shifted"]
    op = "add" if shifted.target == aten.add.Tensor else "sub"
    try:
        new, checks = ws.apply(
            "fold_input_shift",
            site.conv,
            constant,
            op,
            input_first=input_first,
            alpha=float(found["alpha"]),
        )
    except PreconditionError as error:
        ws.record.refused(shifted, "G4", error.condition, error.detail)
        return False
    nodes = [shifted, node]
    return replace_conv(ws, node, new, source, "G4", nodes, (*checks, *found[GRAPH]))


def _shift(ws: Workspace, node: fx.Node, found: dict):
    """``(c, x, x first)`` for the conv's input ``x ± c`` or ``c ± x`` with c constant (of any
    shape: whether it is one value per input channel is G4's own check), else None."""
    dtype = ws.conv_site(node).conv.weight.dtype
    operands = (found["a"], found["b"])
    for index in (1, 0):
        constant = constant_value(ws, operands[index], dtype)
        if constant is not None and isinstance(operands[1 - index], fx.Node):
            return constant, operands[1 - index], index == 1
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
                    alpha=Var("alpha", number),
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
                "the input is x ± c or c ± x for a constant c",
                lambda ws, node, found: _shift(ws, node, found) is not None,
                refuses=False,
            ),
        ),
    )
)


def _absorb_zero_pad(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """G1 (:mod:`et.rules.absorb_zero_padding`): ``conv(pad₀(x, p); padding q) = conv(x;
    padding p + q)``; the rule refuses an asymmetric pad (one nn.Conv2d pads both sides)."""
    conv = ws.conv_site(node).conv
    try:
        new, checks = ws.apply("absorb_zero_padding", conv, list(found["pads"]), found["value"])
    except PreconditionError as error:
        ws.record.refused(node, "G1", error.condition, error.detail)
        return False
    nodes = [found["pad"], node]
    return replace_conv(ws, node, new, found["x"], "G1", nodes, (*checks, *found[GRAPH]))


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
        (is_conv("conv"),),
    )
)


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
        # R3 merges convs of one grouping: G13 writes both with one number of groups first
        try:
            aligned = common_grouping(ws, convs)
        except PreconditionError as error:
            ws.record.refused(node, "G13", error.condition, error.detail)
            return False
        rewritten = [(first.node, second.node)[i] for i in aligned.rewritten]
        ws.record.applied("G13", rewritten, aligned.checks)
        convs = aligned.convs
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
