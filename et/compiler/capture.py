"""Capture a network as an ATen graph whose nodes are what ``forward`` really computes.

The compiler never trusts class names: it exports the module with :func:`torch.export.export`
(non-strict, dynamic batch and spatial sizes where the model allows), decomposes it to the
functional ATen op set (in-place slice writes become ``slice_scatter``), and works on the
resulting :class:`torch.fx.GraphModule`, whose parameters are ``get_attr`` constants.

Captures, each named in the certificate: eval mode with symbolic batch, height and width
(tried first), eval mode at the example's static shapes (when that fails: it holds at the
example's size only); and for either, the training-mode graph (only when no BatchNorm, Dropout or
other mode-dependent module exists, so both modes compute the same function: this is the
case for blocks that assign ``weight.data`` or call ``self.eval()`` inside ``forward``).
Only the first output is kept (dual-stream models return the image first).

Each capture comes with the input sizes its graph holds for (:mod:`et.compiler.sizes`): the
guards of a dynamic capture, the example's size for a static one. Two things keep a dynamic
capture general: a global pool written with the input's own size
(``avg_pool2d(x, x.shape[-1])``, ``kernel_size=[h, w]``) is traced as the spatial mean it is
at every size (otherwise export fixes the size to the example's, since the op takes ``int``
windows); and what a symbolic capture spells differently from a static one (an ``expand`` whose
sizes read the input's, a slice end of ``2**62``) is written as the static one spells it
(:func:`symbolic_spellings`), so the same constants fold. Export's ``_assert_tensor_metadata``
nodes (a dtype or device assertion on a value, which a later ``.to(dtype)`` of the compiled
module would make fail) are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx, nn
from torch.export import Dim, export
from torch.export.graph_signature import InputKind, OutputKind
from torch.fx import config as fx_config
from torch.overrides import TorchFunctionMode

from et.compiler.sizes import SizeCondition, exact_size, from_program

#: modules that compute different functions in training and evaluation mode
MODE_DEPENDENT = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd, nn.Dropout)


#: assertions export adds on a value's metadata (not on the function): a cast breaks them
EXPORT_ASSERTIONS = (torch.ops.aten._assert_tensor_metadata.default,)


class CaptureError(RuntimeError):
    """No capture of the module succeeded; the message lists each attempt's error."""


@dataclass(frozen=True)
class Captured:
    """A captured graph module (first output only) and how it was obtained."""

    module: fx.GraphModule
    method: str
    dynamic: bool
    sizes: SizeCondition
    #: each avg_pool2d over the input's own size, traced as the mean: its window and the
    #: input's (H, W), both at the example
    global_pools: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = ()


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
    for node in list(graph.nodes):
        if node.target in EXPORT_ASSERTIONS:
            graph.erase_node(node)
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


def _same_size(size, kernel) -> bool:
    """Whether ``kernel`` is the symbolic size ``size`` itself (equal at every size)."""
    return (
        isinstance(size, torch.SymInt)
        and isinstance(kernel, torch.SymInt)
        and size.node.expr == kernel.node.expr
    )


def _pooled(args, kwargs):
    """The tensor ``avg_pool2d`` is called on (positional or ``input=``)."""
    return args[0] if args else kwargs.get("input")


def _global_window(args, kwargs) -> bool:
    """``avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor)``
    with the kernel written as ``x``'s own (symbolic) height and width and no padding,
    ceil mode or divisor: one window covering the image at every size, i.e. the mean."""
    names = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor")
    given = dict(zip(names, args[1:], strict=False)) | {
        k.replace("divisor_override", "divisor"): v for k, v in kwargs.items()
    }
    x, kernel = _pooled(args, kwargs), given.get("kernel_size")
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        return False
    kernel = list(kernel) if isinstance(kernel, list | tuple) else [kernel]
    kernel = kernel * 2 if len(kernel) == 1 else kernel
    sizes = list(x.shape[2:])
    if (
        len(kernel) != 2
        or given.get("padding", 0) not in (0, (0, 0), [0, 0], [0])
        or given.get("ceil_mode", False)
        or given.get("divisor") is not None
    ):
        return False
    if all(_same_size(s, k) for s, k in zip(sizes, kernel, strict=True)):
        return True
    one = _same_size(kernel[0], kernel[1]) or kernel[0] is kernel[1]
    symbolic = all(isinstance(s, torch.SymInt) for s in sizes)
    if symbolic and one and any(_same_size(s, kernel[0]) for s in sizes):
        if sizes[0].node.hint != sizes[1].node.hint:
            return False
        # a square window written as one side (``avg_pool2d(x, x.shape[-1])``) is the mean
        # where the image is square: that becomes a guard of the capture (h == w)
        torch._check(sizes[0] == sizes[1])
        return True
    return False


def _example_sizes(sizes) -> tuple[int, int]:
    """Two sizes at the example: an int as it is, a symbolic size by its hint."""
    height, width = (s if isinstance(s, int) else s.node.hint for s in sizes)
    return (int(height), int(width))


class _GlobalPoolAsMean(TorchFunctionMode):
    """Traces ``avg_pool2d`` over the whole (symbolic) image as ``mean`` (module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.windows: list[tuple[tuple[int, int], tuple[int, int]]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch._C._nn.avg_pool2d and _global_window(args, kwargs):
            x = _pooled(args, kwargs)
            kernel = args[1] if len(args) > 1 else kwargs.get("kernel_size")
            kernel = list(kernel) if isinstance(kernel, list | tuple) else [kernel]
            # the window and the image at the example (a symbolic size's hint), for G11's
            # check at the pipeline
            self.windows.append(
                (_example_sizes(kernel * (2 // len(kernel))), _example_sizes(x.shape[2:]))
            )
            return x.mean((-2, -1), keepdim=True)
        return func(*args, **kwargs)


def _export(
    model: nn.Module, example: tuple[torch.Tensor, ...], dynamic: bool
) -> tuple[fx.GraphModule, SizeCondition | None, int]:
    shapes = _dynamic_shapes(example) if dynamic else None
    # no Python stack trace per graph node: nothing here reads them and collecting them is a
    # tenth of the export's time
    emit = fx_config.do_not_emit_stack_traces
    fx_config.do_not_emit_stack_traces = True
    try:
        with _GlobalPoolAsMean() as pools:
            program = export(model, example, dynamic_shapes=shapes, strict=False)
    finally:
        fx_config.do_not_emit_stack_traces = emit
    module = _first_output_module(program)
    user = next(n for n in module.graph.nodes if n.op == "placeholder")
    if dynamic:
        sizes = from_program(program, tuple(user.meta["val"].shape))
    else:
        sizes = exact_size(*example[0].shape[2:])
    functionalize_slice_copies(module.graph)
    if _mutates(module.graph):
        # other in-place writes: let torch functionalise them (costs a re-trace)
        module = _first_output_module(program.run_decompositions({}))
    symbolic_spellings(module.graph)
    module.recompile()
    return module, sizes, tuple(pools.windows)


def _slice_chain(node: fx.Node) -> tuple[fx.Node, list[fx.Node]] | None:
    chain = []
    while node.op == "call_function" and node.target == torch.ops.aten.slice.Tensor:
        chain.append(node)
        node = node.args[0]
    if node.op != "call_function" or not chain:
        return None  # writing into a parameter or an input is not a local value
    return node, chain[::-1]


def _shape(node) -> list[str] | None:
    value = node.meta.get("val") if isinstance(node, fx.Node) else None
    return [str(s) for s in value.shape] if isinstance(value, torch.Tensor) else None


def _unexpanded(graph: fx.Graph, source, view: fx.Node):
    """``source`` without an ``expand`` to exactly ``view``'s (symbolic) shape, given as many
    dimensions as ``view`` (leading ones): ``copy`` broadcasts its source to the destination's
    shape anyway, and the expand's sizes (which read the input's size in a dynamic capture)
    would keep a constant from folding."""
    if (
        not isinstance(source, fx.Node)
        or source.target != torch.ops.aten.expand.default
        or _shape(source) is None
        or _shape(source) != _shape(view)
        or not isinstance(source.args[0], fx.Node)
    ):
        return source
    inner = source.args[0].meta.get("val")
    if not isinstance(inner, torch.Tensor) or not all(type(s) is int for s in inner.shape):
        return source
    ones = [1] * (len(_shape(view)) - inner.ndim)
    return graph.call_function(
        torch.ops.aten.view.default, (source.args[0], ones + list(inner.shape))
    )


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
            source = _unexpanded(graph, node.args[1], node.args[0])
            value = graph.call_function(torch.ops.aten.copy.default, (node.args[0], source))
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


#: the end of a slice "to the end" (torch's functionalisation writes 2**62, the symbolic ∞)
INT_MAX = 2**63 - 1
_SLICE_END = {torch.ops.aten.slice.Tensor: 3, torch.ops.aten.slice_scatter.default: 4}


def symbolic_spellings(graph: fx.Graph) -> None:
    """Write what a symbolic capture spells differently as a static one does (same values at
    every size): a slice end ``≥ 2**62`` ("to the end") as ``2**63 − 1``; an ``expand`` of a
    constant-shaped tensor of lower rank as the expand of its view with leading ones (expand
    prepends those dimensions anyway), so a per-channel constant keeps its 4-D form when its
    expand, whose sizes read the input's, cannot be folded."""
    for node in list(graph.nodes):
        at = _SLICE_END.get(node.target)
        if at is not None and len(node.args) > at:
            end = node.args[at]
            if isinstance(end, int) and 2**62 <= end < INT_MAX:
                node.args = (*node.args[:at], INT_MAX, *node.args[at + 1 :])
        if node.target != torch.ops.aten.expand.default or not isinstance(node.args[0], fx.Node):
            continue
        inner = node.args[0].meta.get("val")
        if not isinstance(inner, torch.Tensor) or not all(type(s) is int for s in inner.shape):
            continue
        rank = len(node.args[1])
        if inner.ndim < rank:
            with graph.inserting_before(node):
                shape = [1] * (rank - inner.ndim) + list(inner.shape)
                view = graph.call_function(torch.ops.aten.view.default, (node.args[0], shape))
            view.meta["val"] = inner.reshape(shape)
            node.args = (view, *node.args[1:])


def _mutates(graph: fx.Graph) -> bool:
    for node in graph.nodes:
        schema = getattr(node.target, "_schema", None)
        if schema is not None and schema.is_mutable:
            return True
    return False


def capture(model: nn.Module, example: tuple[torch.Tensor, ...], *, dynamic: bool) -> Captured:
    """Capture ``model`` (already a private copy) on ``example``; see the module docstring.

    ``dynamic=True`` captures with symbolic batch and spatial sizes (the caller's first
    choice); ``dynamic=False`` at the example's shapes, holding at the example's size only.
    """
    batched = _batched(example)
    errors: list[str] = []
    modes = ["eval"]
    if not any(isinstance(m, MODE_DEPENDENT) for m in model.modules()):
        modes.append("train")
    for mode in modes:
        model.train(mode == "train")
        try:
            module, sizes, pools = _export(model, batched if dynamic else example, dynamic)
        except Exception as error:
            reason = (str(error).strip().splitlines() or [repr(error)])[0]
            errors.append(f"{mode}/{'dynamic' if dynamic else 'static'}: {reason}")
            continue
        finally:
            model.eval()
        if sizes is None:
            # a guard this module cannot read: trust the example's size only
            sizes = exact_size(*example[0].shape[2:])
        shapes = "dynamic batch and spatial sizes" if _is_dynamic(module) else "static shapes"
        method = f"torch.export ({mode} mode, {shapes})"
        if mode == "train":
            method += "; the eval-mode export failed and no module depends on the mode"
        return Captured(module, method, _is_dynamic(module), sizes, pools)
    raise CaptureError("could not capture the module: " + " | ".join(errors))
