"""G9: evaluate every sub-graph that depends on constants alone, once, into constants.

ECB's ``rep_params``, a kernel built as ``scale * mask`` inside ``forward``, an attention
vector computed by a ``Linear`` from a parameter: all are ops whose inputs are constants. Their
values are computed here (in the compile dtype) and stored as buffers, so no conv or matmul on
parameters alone is left in the compiled module and the rules see plain constant kernels.

Each op runs through the catalogue rule G9 (:mod:`et.rules.evaluate_constant_subgraph`), whose
check reads the op's schema and tags: a random op (``bernoulli``, ``randn_like``, dropout in
training…), a write, uninitialised memory, an assertion or a Python callable is left in the
graph with the precondition that stopped it, and nothing computed from it is folded.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from et.compiler.certificate import Check
from et.compiler.workspace import Workspace
from et.contract import PreconditionError
from et.rules.evaluate_constant_subgraph import CONSTANT_INPUTS

#: what the pass itself establishes on the graph before the rule runs on a node
_GRAPH_CHECK = Check("G9", str(CONSTANT_INPUTS), "graph")


def _constant_args(values: dict[fx.Node, Any], node: fx.Node) -> bool:
    """Whether every graph value ``node`` reads has been evaluated to a constant."""
    ok = True

    def visit(arg: Any) -> None:
        nonlocal ok
        if isinstance(arg, fx.Node) and arg not in values:
            ok = False

    fx.node.map_arg((node.args, node.kwargs), visit)
    return ok


def fold_constants(ws: Workspace) -> int:
    """Replace constant-only tensor ops by constants; returns how many nodes were replaced.
    One G9 application lists the replaced nodes with every check G9's code ran for them."""
    values: dict[fx.Node, Any] = {}
    checks: list[Check] = []
    for node in list(ws.graph.nodes):
        if node.op == "get_attr":
            tensor = ws.tensor(node)
            if tensor is not None:
                values[node] = tensor
            continue
        if node.op != "call_function" or not _constant_args(values, node):
            continue
        args, kwargs = fx.node.map_arg((node.args, node.kwargs), lambda n: values[n])
        try:
            result, ran = ws.apply("G9", node.target, args, kwargs)
        except PreconditionError as error:
            ws.record.refused(node, "G9", error.condition, error.detail)
            continue
        checks.extend(c for c in ran if c not in checks)
        values[node] = result
    folded = _replace_by_constants(ws, values)
    ws.graph.eliminate_dead_code()
    if folded:
        ws.record.applied("G9", folded, (_GRAPH_CHECK, *checks))
    return len(folded)


def _replace_by_constants(ws: Workspace, values: dict[fx.Node, Any]) -> list[str]:
    """Put a constant in place of each evaluated tensor read by a node that is not evaluated
    (the frontier between the constant sub-graph and the rest); returns their names."""
    names: list[str] = []
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
    return names
