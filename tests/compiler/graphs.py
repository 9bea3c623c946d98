"""Hand-built ATen graphs for unit tests of the compiler's passes: a :class:`Workspace` over a
graph whose constants are buffers of a bare module."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import fx, nn

from et.compiler.certificate import CertificateBuilder
from et.compiler.workspace import Workspace
from et.domain import IMAGE_UNIT, InputDomain

aten = torch.ops.aten


def workspace(
    build: Callable[[fx.Graph], fx.Node],
    constants: dict[str, object] | None = None,
    domain: InputDomain = IMAGE_UNIT,
) -> tuple[Workspace, fx.Node]:
    """A workspace over the graph ``build`` writes (it returns the node under test, which is
    also the graph's output); ``constants`` become attributes of the root module (tensors as
    buffers, modules as sub-modules)."""
    root = nn.Module()
    for name, value in (constants or {}).items():
        if isinstance(value, torch.Tensor):
            root.register_buffer(name, value)
        elif isinstance(value, nn.Module):
            root.add_module(name, value)
        else:
            setattr(root, name, value)
    graph = fx.Graph()
    node = build(graph)
    graph.output(node)
    return Workspace(fx.GraphModule(root, graph), domain, CertificateBuilder()), node


def call(graph: fx.Graph, target: object, *args: object) -> fx.Node:
    return graph.call_function(target, args)  # type: ignore[arg-type]


def placeholder(graph: fx.Graph, name: str, *shape: int) -> fx.Node:
    """An input whose captured value (``meta["val"]``, what the passes read shapes from) is a
    float64 tensor of ``shape``."""
    node = graph.placeholder(name)
    node.meta["val"] = torch.empty(*shape, dtype=torch.float64)
    return node


def evaluate(ws: Workspace, *inputs: torch.Tensor) -> torch.Tensor:
    """The workspace's graph, as it is now, run on ``inputs``."""
    ws.module.recompile()
    with torch.no_grad():
        return ws.module(*inputs)


def keyed(graph: fx.Graph, target: object, args: tuple, **kwargs: object) -> fx.Node:
    """A call with keyword arguments (as ordinary code and other capture paths write them)."""
    return graph.call_function(target, args, kwargs)  # type: ignore[arg-type]


def rewrite_keeps_function(ws: Workspace, pattern, node: fx.Node, *inputs: torch.Tensor) -> bool:
    """Run ``pattern`` on ``node`` and assert the graph computes what it did before on
    ``inputs`` (float64, relative 1e-12); returns whether the pattern rewrote anything."""
    before = evaluate(ws, *inputs)
    applied = pattern(ws, node)
    after = evaluate(ws, *inputs)
    scale = max(before.abs().max().item(), 1e-300)
    assert before.shape == after.shape
    assert (after - before).abs().max().item() <= 1e-12 * scale
    return applied
