"""R18 on the graph: ``conv(z − c) + z`` is one conv reading ``z − c``.

FMEN's residual-in-residual block pads a 1×1's output z with the 1×1's bias b₁ and adds z
back after the 3×3 (the padded input's centre). Once the bias ring has become the 3×3's own
padding (G2, G4, G1) the graph reads

    add(conv(sub(z, b₁)), z)

where z, the 1×1's output, has two readers: no fold into the 1×1 can run (G3 needs the shift to
be its only reader), and no branch merge (R3) sees one input. R18 merges the identity into the
K×K (``W + I``, ``b + c``, :mod:`et.rules.merge_shifted_identity`), after which z has one
reader, G3 folds the shift into the 1×1 (bias b₁ − b₁ = 0) and R7 merges the 1×1 into the K×K.
The shift may be written ``z − c`` or ``z + c'`` (c = −c'), the sum in either order, each at
``alpha = 1``; or the shift may sit on the identity side, ``conv(s) + (s ± c)`` (z = s ± c),
which is what the crop of FMEN's padded map becomes (R19).
"""

from __future__ import annotations

import torch
from torch import fx

from et.compiler.helpers import FAN_OUT, replace_conv
from et.compiler.linear_rewrites import per_channel
from et.compiler.patterns import GRAPH, GraphCheck, Op, Rewrite, Var, conv, driver, is_conv
from et.compiler.workspace import Workspace
from et.contract import PreconditionError

aten = torch.ops.aten


def _shift(ws: Workspace, found: dict) -> torch.Tensor | None:
    """c of ``s = z − c`` as ``[C]`` (the channels of the conv reading s), else None."""
    site = ws.conv_site(found["body"])
    constant = per_channel(ws, found["c"], site.conv.in_channels)
    if constant is None:
        return None
    if "identity" in found:  # z = s ± c is what is added
        return constant if found["identity"].target == aten.add.Tensor else -constant
    return constant if found["shifted"].target == aten.sub.Tensor else -constant


def _merge_shifted_identity(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """R18: ``conv(z − c; W, b) + z`` → ``conv(z − c; W + I, b + c)``."""
    site = ws.conv_site(found["body"])
    shift = _shift(ws, found).to(site.conv.weight)
    try:
        merged, checks = ws.apply("R18", site.conv, shift)
    except PreconditionError as error:
        ws.record.refused(node, "R18", error.condition, error.detail)
        return False
    graph = "the conv reads z shifted by a per-channel constant, and z is added to it"
    nodes = [site.node, node]
    return replace_conv(ws, node, merged, site.input, "R18", nodes, (*checks, *found[GRAPH], graph))


def _shifted_sum(body_first: bool, shift_target) -> Op:
    """``conv(z ∓ c) + z``: the conv reads the shifted value, the sum the value itself."""
    shifted = Op(shift_target, name="shifted", self=Var("z"), other=Var("c"))
    body = conv("body", input=shifted)
    if body_first:
        return Op(aten.add.Tensor, self=body, other=Var("z"))
    return Op(aten.add.Tensor, self=Var("z"), other=body)


def _shifted_identity(body_first: bool, shift_target) -> Op:
    """``conv(s) + (s ± c)``: the sum reads the shifted value (z = s ± c), the conv s itself
    (the centre of a bias-padded map cropped back, R19)."""
    shifted = Op(shift_target, name="identity", self=Var("s"), other=Var("c"))
    body = conv("body", input=Var("s"))
    if body_first:
        return Op(aten.add.Tensor, self=body, other=shifted)
    return Op(aten.add.Tensor, self=shifted, other=body)


def _other_readers(ws: Workspace, node: fx.Node, found: dict) -> str:
    others = sorted(u.name for u in found["body"].users if u is not node)
    return f"the conv also feeds {others}"


merge_shifted_identity = driver(
    Rewrite(
        "R18",
        tuple(
            form(first, target)
            for form in (_shifted_sum, _shifted_identity)
            for first in (True, False)
            for target in (aten.sub.Tensor, aten.add.Tensor)
        ),
        _merge_shifted_identity,
        (
            is_conv("body"),
            GraphCheck(
                "the shift is a per-channel constant",
                lambda ws, node, found: _shift(ws, found) is not None,
                refuses=False,
            ),
            GraphCheck(
                FAN_OUT,
                lambda ws, node, found: ws.sole_user(found["body"], node),
                _other_readers,
                at="body",
            ),
        ),
    )
)
