"""R21 on the graph: a BatchNorm2d read as tokens by a Linear folds into the Linear.

    linear(transpose(flatten(BN2d(x), 2), 1, 2))  →  linear'(transpose(flatten(x, 2), 1, 2))

with ``W' = W·diag(t)``, ``b' = b + W·(β − μ·t)``: the attention of a hybrid network
(FastViT, LeViT) normalises the map before its query/key/value projection, and the map is
often also the residual (the conv before the BatchNorm has a second reader, so R1 cannot take
the BatchNorm). The token reshape only moves entries, so the per-channel affine map passes it
to the Linear's features. The transpose must put the channel axis last (dimensions 1 and 2 of
the ``(N, C, H·W)`` value); the BatchNorm, the flatten and the transpose must each have one
reader, else the refusal names the precondition.
"""

from __future__ import annotations

import itertools

import torch
from torch import fx

from et.compiler.head_rewrites import (
    _batch_norm,
    _emit_linear,
    _linear_forms,
    _module_of,
    _read_linear,
)
from et.compiler.helpers import FAN_OUT
from et.compiler.patterns import Op, Rewrite, Var, driver
from et.compiler.workspace import Workspace
from et.contract import PreconditionError
from et.rules.fuse_bn_token_linear import FIXED_STATISTICS, ISOLATED, TOKEN_AXIS

aten = torch.ops.aten


def _channel_and_positions(dims: object) -> bool:
    """``transpose`` dimensions that swap axes 1 and 2 of an ``(N, C, P)`` value."""
    return isinstance(dims, int) and dims % 3 in (1, 2)


_TOKENS = Op(
    aten.transpose.int,
    name="tokens",
    self=Op(aten.flatten.using_ints, name="spread", self=Var("normed"), start_dim=2),
    dim0=Var("dim0", _channel_and_positions),
    dim1=Var("dim1", _channel_and_positions),
)


def _bn_into_token_linear(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """R21: ``linear(tokens(BN2d(x)))`` → ``linear'(tokens(x))``."""
    read = _batch_norm(found["normed"])
    linear = _read_linear(ws, found)
    if read is None or linear is None:
        return False
    bn_node, values = read
    if found["dim0"] % 3 == found["dim1"] % 3:
        ws.record.refused(node, "R21", TOKEN_AXIS, "the transpose keeps the channel axis")
        return False
    module = _module_of(ws, values, 4)
    if isinstance(module, str):
        if module:
            ws.record.refused(node, "R21", FIXED_STATISTICS, module)
        return False
    chain = [found["normed"], found["spread"], found["tokens"], node]
    for value, reader in itertools.pairwise(chain):
        if not ws.sole_user(value, reader):
            others = sorted(u.name for u in value.users if u is not reader)
            ws.record.refused(node, "R21", ISOLATED, f"{value.name} also feeds {others}")
            return False
    try:
        fused, checks = ws.apply("fuse_bn_token_linear", module, linear)
    except PreconditionError as error:
        ws.record.refused(node, "R21", error.condition, error.detail)
        return False
    found["spread"].replace_input_with(found["normed"], values["input"])  # tokens of x now
    new = _emit_linear(ws, fused, found["tokens"], node)
    graph = (
        "the BatchNorm is a constant per-channel affine map",
        "flatten(2) then a transpose of axes 1 and 2: the channels are the Linear's last axis",
        FAN_OUT,
    )
    ws.record.applied("R21", [bn_node, *chain[1:]], (*checks, *graph))
    ws.replace(node, new)
    ws.changed(found["normed"], bn_node)
    return True


bn_into_token_linear = driver(Rewrite("R21", _linear_forms(source=_TOKENS), _bn_into_token_linear))
TOKEN_PATTERNS = (bn_into_token_linear,)
