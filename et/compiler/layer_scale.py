"""R23 on the graph: a layer scale after an attention's projection, written back as a map.

    γ ⊙ reshape(transpose(linear(z), 1, 2), (N, C, H, W))
        →  reshape(transpose(linear'(z), 1, 2), (N, C, H, W))

with ``W' = diag(γ)·W``, ``b' = γ ⊙ b`` (FastViT's ``x + γ ⊙ attention(x)``, γ of shape
``(C, 1, 1)``). The layout must send the Linear's output feature o to channel o
(:data:`~et.rules.scale_linear_outputs.FEATURE_LAYOUT`): the transpose swaps axes 1 and 2 of
the rank-3 ``(N, P, C)`` tokens (or there is none and the Linear's output is ``(N, C)``), and
the reshape (or view) keeps the leading sizes ``(N, C)``,
compared as expressions in the capture's symbolic sizes; otherwise the refusal names the
shapes. The Linear, the transpose and the reshape must each have one reader.
"""

from __future__ import annotations

import itertools

import torch
from torch import fx

from et.compiler.head_rewrites import _emit_linear, _linear_forms, _read_linear
from et.compiler.helpers import FAN_OUT
from et.compiler.linear_rewrites import per_channel
from et.compiler.patterns import GRAPH, GraphCheck, Op, Rewrite, Var, driver
from et.compiler.workspace import Workspace
from et.contract import PreconditionError
from et.rules.scale_linear_outputs import FEATURE_LAYOUT, ISOLATED

aten = torch.ops.aten


def _laid_out() -> tuple[Op, ...]:
    """``reshape``/``view`` of a Linear form, directly or of its ``transpose`` (bound
    ``layout``, ``channels`` for the transpose, ``linear``; the Linear's input ``x``)."""
    forms = []
    for linear in _linear_forms():
        turned = Op(
            aten.transpose.int,
            name="channels",
            self=linear,
            dim0=Var("dim0"),
            dim1=Var("dim1"),
        )
        for source in (turned, linear):
            forms.append(Op(aten.reshape.default, name="layout", self=source, shape=Var("shape")))
            forms.append(Op(aten.view.default, name="layout", self=source, size=Var("shape")))
    return tuple(forms)


def _shape(node: object) -> tuple | None:
    value = node.meta.get("val") if isinstance(node, fx.Node) else None
    shape = getattr(value, "shape", None)
    if shape is None:
        return None
    return tuple(s.node.expr if isinstance(s, torch.SymInt) else s for s in shape)


def _scale(ws: Workspace, found: dict) -> torch.Tensor | None:
    """γ as one factor per channel of the laid-out map, when it is a constant that broadcasts
    as ``(1, C, 1, 1)``."""
    shape = _shape(found["layout"])
    if shape is None or len(shape) != 4 or not isinstance(shape[1], int):
        return None
    return per_channel(ws, found["gamma"], shape[1])


def layout_keeps_features(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """Feature o lands in channel o: the Linear's ``(N, O)`` output, or its ``(N, P, O)``
    tokens with axes 1 and 2 swapped, reshaped with the leading sizes ``(N, O)`` kept."""
    turned = "channels" in found
    before = _shape(found["channels" if turned else "linear"])
    laid = _shape(found["layout"])
    if before is None or laid is None or len(laid) != 4 or len(before) != (3 if turned else 2):
        return False
    if turned:
        dims = {found["dim0"], found["dim1"]}
        if not all(isinstance(d, int) for d in dims) or {d % 3 for d in dims} != {1, 2}:
            return False
    return all(bool(a == b) for a, b in zip(before[:2], laid[:2], strict=True))


def _layout_detail(ws: Workspace, node: fx.Node, found: dict) -> str:
    if "channels" not in found:
        return (
            f"no transpose: the Linear gives {_shape(found['linear'])}, "
            f"the reshape writes {_shape(found['layout'])}"
        )
    return (
        f"transpose({found['dim0']}, {found['dim1']}) gives {_shape(found['channels'])}, "
        f"the reshape writes {_shape(found['layout'])}"
    )


def _scale_into_linear(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """R23: ``γ ⊙ M(linear(z))`` → ``M(linear'(z))``."""
    linear = _read_linear(ws, found)
    if linear is None:
        return False
    chain = [found[k] for k in ("linear", "channels", "layout") if k in found] + [node]
    for value, reader in itertools.pairwise(chain):
        if not ws.sole_user(value, reader):
            others = sorted(u.name for u in value.users if u is not reader)
            ws.record.refused(node, "R23", ISOLATED, f"{value.name} also feeds {others}")
            return False
    try:
        scaled, checks = ws.apply("scale_linear_outputs", linear, _scale(ws, found))
    except PreconditionError as error:
        ws.record.refused(node, "R23", error.condition, error.detail)
        return False
    new = _emit_linear(ws, scaled, found["x"], found["linear"])
    chain[1].replace_input_with(found["linear"], new)
    graph = ("γ is a constant per channel of the laid-out map", FAN_OUT)
    ws.record.applied("R23", chain, (*checks, *found[GRAPH], *graph))
    ws.replace(node, found["layout"])
    ws.changed(found["linear"])
    return True


scale_into_linear = driver(
    Rewrite(
        "R23",
        tuple(
            Op(aten.mul.Tensor, **{side: Var("gamma"), other: laid})
            for laid in _laid_out()
            for side, other in (("self", "other"), ("other", "self"))
        ),
        _scale_into_linear,
        (
            GraphCheck(
                "γ is a constant that broadcasts as (1, C, 1, 1)",
                lambda ws, node, found: _scale(ws, found) is not None,
                refuses=False,
            ),
            GraphCheck(str(FEATURE_LAYOUT), layout_keeps_features, _layout_detail),
        ),
    )
)
LAYER_SCALE_PATTERNS = (scale_into_linear,)
