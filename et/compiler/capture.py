"""Capture a network as an ATen graph whose nodes are what ``forward`` really computes.

The compiler never trusts class names: it exports the module with :func:`torch.export.export`
(non-strict, dynamic batch and spatial sizes where the model allows), decomposes it to the
functional ATen op set (in-place slice writes become ``slice_scatter``), and works on the
resulting :class:`torch.fx.GraphModule`, whose parameters are ``get_attr`` constants.

Captures, each named in the certificate: eval mode at the example's static shapes (fast; kept
when the folded result also runs correctly at another size), eval mode with dynamic shapes;
and for either, the training-mode graph (only when no BatchNorm, Dropout or
other mode-dependent module exists, so both modes compute the same function: this is the
case for blocks that assign ``weight.data`` or call ``self.eval()`` inside ``forward``).
Only the first output is kept (dual-stream models return the image first).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx, nn
from torch.export import Dim, export
from torch.export.graph_signature import InputKind, OutputKind
from torch.fx import config as fx_config

#: modules that compute different functions in training and evaluation mode
MODE_DEPENDENT = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd, nn.Dropout)


class CaptureError(RuntimeError):
    """No capture of the module succeeded; the message lists each attempt's error."""


@dataclass(frozen=True)
class Captured:
    """A captured graph module (first output only) and how it was obtained."""

    module: fx.GraphModule
    method: str
    dynamic: bool


def _batched(example: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    # torch.export specialises a size-1 dimension, so capture with batch 2.
    return tuple(x.expand(2, *x.shape[1:]).clone() if x.shape[0] == 1 else x for x in example)


def _dynamic_shapes(example: tuple[torch.Tensor, ...]) -> tuple[dict[int, object], ...]:
    return tuple({d: Dim.AUTO for d in (0, 2, 3) if d < x.ndim} for x in example)


def _first_output_module(program: torch.export.ExportedProgram) -> fx.GraphModule:
    """A plain GraphModule of ``program`` returning its first output only.

    The lifted parameters, buffers and constants become attributes read by ``get_attr``
    nodes (what :meth:`~torch.export.ExportedProgram.module` does, without its input guards,
    pytree code generation and the extra graph copies and recompiles they cost); mutations
    of buffers, which do not change the first output, are dropped."""
    signature = program.graph_signature
    root = nn.Module()
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    placeholders = [n for n in program.graph_module.graph.nodes if n.op == "placeholder"]
    for node, spec in zip(placeholders, signature.input_specs, strict=True):
        if spec.kind == InputKind.USER_INPUT:
            new = graph.placeholder(node.name)
        else:
            new = graph.get_attr(_register(root, spec, program))
        new.meta = dict(node.meta)
        env[node] = new
    output = None
    for node in program.graph_module.graph.nodes:
        if node.op == "output":
            output = node
        elif node.op != "placeholder":
            env[node] = graph.node_copy(node, lambda n: env[n])
    assert output is not None
    kinds = [spec.kind for spec in signature.output_specs]
    first = output.args[0][kinds.index(OutputKind.USER_OUTPUT)]
    while isinstance(first, tuple | list):
        first = first[0]
    graph.output(env[first] if isinstance(first, fx.Node) else first)
    graph.eliminate_dead_code()
    module = fx.GraphModule(root, graph)
    module.meta["dynamic"] = bool(program.range_constraints)
    return module


def _register(root: nn.Module, spec, program: torch.export.ExportedProgram) -> str:
    """Register the lifted input ``spec`` (a parameter, buffer or constant tensor) on
    ``root`` under a flat name; returns the name."""
    if spec.kind == InputKind.PARAMETER:
        value = program.state_dict[spec.target]
    elif spec.kind == InputKind.BUFFER:
        value = (
            program.state_dict[spec.target]
            if spec.target in program.state_dict
            else program.constants[spec.target]  # a non-persistent buffer
        )
    elif spec.kind == InputKind.CONSTANT_TENSOR:
        value = program.constants[spec.target]
    else:
        raise CaptureError(f"the graph takes a {spec.kind.name} input the compiler cannot hold")
    name = "lifted_" + "".join(c if c.isalnum() else "_" for c in str(spec.target))
    while hasattr(root, name):
        name += "_"
    if isinstance(value, nn.Parameter):
        root.register_parameter(name, value)
    else:
        root.register_buffer(name, value)
    return name


def _is_dynamic(module: fx.GraphModule) -> bool:
    for node in module.graph.nodes:
        if node.op == "placeholder":
            value = node.meta.get("val")
            if value is not None and any(not isinstance(s, int) for s in value.shape):
                return True
    return False


def _export(model: nn.Module, example: tuple[torch.Tensor, ...], dynamic: bool) -> fx.GraphModule:
    shapes = _dynamic_shapes(example) if dynamic else None
    # no Python stack trace per graph node: nothing here reads them and collecting them is a
    # tenth of the export's time
    emit = fx_config.do_not_emit_stack_traces
    fx_config.do_not_emit_stack_traces = True
    try:
        program = export(model, example, dynamic_shapes=shapes, strict=False)
    finally:
        fx_config.do_not_emit_stack_traces = emit
    module = _first_output_module(program)
    functionalize_slice_copies(module.graph)
    if _mutates(module.graph):
        # other in-place writes: let torch functionalise them (costs a re-trace)
        module = _first_output_module(program.run_decompositions({}))
        module.recompile()
    return module


def _slice_chain(node: fx.Node) -> tuple[fx.Node, list[fx.Node]] | None:
    chain = []
    while node.op == "call_function" and node.target == torch.ops.aten.slice.Tensor:
        chain.append(node)
        node = node.args[0]
    if node.op != "call_function" or not chain:
        return None  # writing into a parameter or an input is not a local value
    return node, chain[::-1]


def functionalize_slice_copies(graph: fx.Graph) -> None:
    """``view = base[slices]; view.copy_(src)`` becomes nested ``slice_scatter`` (what
    torch's functionalisation produces), and later readers of ``base`` read the result."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    for node in list(graph.nodes):
        if node.target != torch.ops.aten.copy_.default or node.users:
            continue
        found = _slice_chain(node.args[0])
        if found is None:
            continue
        base, chain = found
        with graph.inserting_before(node.next):
            # copy broadcasts the source to the view's shape, as copy_ did
            value = graph.call_function(torch.ops.aten.copy.default, (node.args[0], node.args[1]))
            for view in reversed(chain):
                args = list(view.args) + [None] * 4
                value = graph.call_function(
                    torch.ops.aten.slice_scatter.default,
                    (view.args[0], value, args[1], args[2], args[3], args[4] or 1),
                )
            for user in list(base.users):
                if order.get(user, -1) > order[node]:
                    user.replace_input_with(base, value)
        graph.erase_node(node)
        order = {n: i for i, n in enumerate(graph.nodes)}


def _mutates(graph: fx.Graph) -> bool:
    for node in graph.nodes:
        schema = getattr(node.target, "_schema", None)
        if schema is not None and schema.is_mutable:
            return True
    return False


def capture(model: nn.Module, example: tuple[torch.Tensor, ...], *, dynamic: bool) -> Captured:
    """Capture ``model`` (already a private copy) on ``example``; see the module docstring.

    ``dynamic=False`` captures at the example's shapes (faster); the caller verifies the
    result at another size and captures again with ``dynamic=True`` when that fails.
    """
    batched = _batched(example)
    errors: list[str] = []
    modes = ["eval"]
    if not any(isinstance(m, MODE_DEPENDENT) for m in model.modules()):
        modes.append("train")
    for mode in modes:
        model.train(mode == "train")
        try:
            module = _export(model, batched if dynamic else example, dynamic)
        except Exception as error:
            reason = (str(error).strip().splitlines() or [repr(error)])[0]
            errors.append(f"{mode}/{'dynamic' if dynamic else 'static'}: {reason}")
            continue
        finally:
            model.eval()
        shapes = "dynamic batch and spatial sizes" if _is_dynamic(module) else "static shapes"
        method = f"torch.export ({mode} mode, {shapes})"
        if mode == "train":
            method += "; the eval-mode export failed and no module depends on the mode"
        return Captured(module, method, _is_dynamic(module))
    raise CaptureError("could not capture the module: " + " | ".join(errors))
