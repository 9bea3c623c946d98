"""Evaluate every sub-graph that depends on parameters alone, once, into constants.

ECB's ``rep_params``, a kernel built as ``scale * mask`` inside ``forward``, an attention
vector computed by a ``Linear`` from a parameter: all are ops whose inputs are constants. Their
values are computed here (in the compile dtype) and stored as buffers, so no conv or matmul on
parameters alone is left in the compiled module and the rules see plain constant kernels.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from et.compiler.workspace import Workspace

_NEVER_FOLD = {"sym_size", "sym_numel", "sym_stride", "_assert", "empty", "rand", "randn"}


def _constant_args(ws: Workspace, values: dict[fx.Node, Any], node: fx.Node) -> bool:
    ok = True

    def visit(arg: Any) -> None:
        nonlocal ok
        if isinstance(arg, fx.Node) and arg not in values:
            ok = False

    fx.node.map_arg((node.args, node.kwargs), visit)
    return ok


def fold_constants(ws: Workspace) -> int:
    """Replace parameter-only tensor ops by constants; returns how many nodes were folded."""
    values: dict[fx.Node, Any] = {}
    folded = 0
    names: list[str] = []
    for node in list(ws.graph.nodes):
        if node.op == "get_attr":
            tensor = ws.tensor(node)
            if tensor is not None:
                values[node] = tensor
            continue
        if node.op != "call_function" or not _constant_args(ws, values, node):
            continue
        name = getattr(node.target, "__name__", str(node.target))
        if any(word in name for word in _NEVER_FOLD):
            continue
        args, kwargs = fx.node.map_arg((node.args, node.kwargs), lambda n: values[n])
        with torch.no_grad():
            result = node.target(*args, **kwargs)
        if isinstance(result, torch.Tensor | tuple | list):
            values[node] = result
    for node in list(ws.graph.nodes):
        if node.op != "call_function" or node not in values:
            continue
        result = values[node]
        if not isinstance(result, torch.Tensor):
            continue
        if any(user not in values for user in node.users) or not node.users:
            names.append(node.name)
            replacement = ws.constant(result, node)
            node.replace_all_uses_with(replacement)
            folded += 1
    ws.graph.eliminate_dead_code()
    if folded:
        ws.record.applied("G9", names, ())
    return folded
