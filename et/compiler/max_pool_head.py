"""R22 on the graph: a final BatchNorm2d before a global *max* pool and a Linear.

    linear(flat(max_HW(BN2d(x))))  →  linear'(flat(max_HW(x)))

with ``W' = W·diag(t)``, ``b' = b + W·(β − μ·t)``, where every ``t_c = γ_c/√(σ²_c + ε)`` is
non-negative (a non-decreasing affine map commutes with the maximum; a negative one turns it
into a minimum, so R22 refuses and names those channels). The spellings of the pool are
:data:`~et.compiler.pooled_features.POOLED_MAXIMA`; a ``max_pool2d`` must have one window
covering the whole captured map. The BatchNorm and each op of the chain must have one reader.
"""

from __future__ import annotations

import itertools

from torch import fx, nn

from et.compiler.head_rewrites import (
    _batch_norm,
    _emit_linear,
    _linear_forms,
    _module_of,
    _rank,
    _read_linear,
)
from et.compiler.helpers import FAN_OUT
from et.compiler.patterns import GRAPH, GraphCheck, Rewrite, driver
from et.compiler.pooled_features import CHAIN_STEPS, POOLED_MAXIMA, window_is_map
from et.compiler.workspace import Workspace
from et.contract import PreconditionError
from et.rules.fuse_bn_max_pool_linear import FIXED_STATISTICS, ISOLATED

#: the graph check of a ``max_pool2d`` spelling
WHOLE_WINDOW = "the max_pool2d window is the whole captured map (H, W) with padding 0"
GLOBAL = "the pool is a maximum over all spatial positions (H and W), flattened to (N, C)"


def _bn_through_max_into_linear(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """R22: ``linear(flat(max_HW(BN2d(x))))`` → ``linear'(flat(max_HW(x)))``."""
    read = _batch_norm(found["normed"])
    linear = _read_linear(ws, found)
    if read is None or linear is None:
        return False
    bn_node, values = read
    if (_rank(found["normed"]) or _rank(values["input"])) != 4:
        return False
    module = _module_of(ws, values, 4)
    if isinstance(module, str):
        if module:
            ws.record.refused(node, "R22", FIXED_STATISTICS, module)
        return False
    chain = [found["normed"], *(found[k] for k in CHAIN_STEPS if k in found), node]
    for value, reader in itertools.pairwise(chain):
        if not ws.sole_user(value, reader):
            others = sorted(u.name for u in value.users if u is not reader)
            ws.record.refused(node, "R22", ISOLATED, f"{value.name} also feeds {others}")
            return False
    try:
        fused, checks = ws.apply("fuse_bn_max_pool_linear", module, linear, nn.AdaptiveMaxPool2d(1))
    except PreconditionError as error:
        ws.record.refused(bn_node, "R22", error.condition, error.detail)
        return False
    chain[1].replace_input_with(found["normed"], values["input"])  # the pool reads x now
    new = _emit_linear(ws, fused, chain[-2], node)
    graph = ("the BatchNorm is a constant per-channel affine map", GLOBAL, FAN_OUT)
    ws.record.applied("R22", [bn_node, *chain[1:]], (*checks, *found[GRAPH], *graph))
    ws.replace(node, new)
    ws.changed(found["normed"], bn_node)
    return True


R22 = Rewrite(
    "R22",
    tuple(form for p in POOLED_MAXIMA for form in _linear_forms(source=p)),
    _bn_through_max_into_linear,
    (
        GraphCheck(
            WHOLE_WINDOW,
            lambda ws, node, found: window_is_map(found),
            lambda ws, node, found: f"kernel {found['kernel']}, padding {found['padding']}",
        ),
    ),
)
bn_through_max_into_linear = driver(R22)
MAX_HEAD_PATTERNS = (bn_through_max_into_linear,)
