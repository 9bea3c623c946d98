"""The conv chains of a compiled graph, read as torch modules and written back.

    from reference_models.deploy.int8.graph_chains import conv_chains
    chains = conv_chains(program)   # [[GraphStep(conv, activation), ...], ...]

A network folded by ``et.compile`` (or loaded from the ``.pt2`` ``etds compile`` writes; our
architectures are compiled the same way, :mod:`reference_models.deploy.int8.network_form`) is an
fx graph of ATen ops whose convs are ``aten.conv2d`` calls reading constant tensors. This module
finds in that graph the *chains*

    conv₀ → φ₀ → conv₁ → φ₁ → … → conv_n (→ φ_n)

where each ``φ_k`` is ``aten.relu``, ``aten.prelu`` (constant slopes, one or one per channel)
or ``aten.leaky_relu`` (or nothing: a conv read directly by a conv), each conv's output is read
by nothing but its ``φ_k`` and each ``φ_k``'s output by nothing but ``conv_{k+1}`` as its input.
Those single-reader conditions are what make a rescaling between ``conv_k`` and ``conv_{k+1}``
local (E10, :mod:`reference_models.deploy.int8.layout`): a second reader of the scaled tensor
would see ``α_c``-times larger values. Each chain is read as ``(nn.Conv2d, activation)`` steps in
float64 (:func:`chain_steps`) so the catalogue rules apply to it, and :func:`write_back` stores
new steps in the graph's constants (a LeakyReLU that E11 gives per-channel slopes becomes an
``aten.prelu``).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import fx, nn

__all__ = [
    "ACTIVATION_TARGETS",
    "CONV_TARGETS",
    "GraphStep",
    "as_conv",
    "chain_steps",
    "conv_chains",
    "graph_constant",
    "graph_in_dtype",
    "reads_input",
    "same_size_batches",
    "schema_arguments",
    "set_constant",
    "write_back",
]

aten = torch.ops.aten
#: ATen calls read as a 2-D convolution (``aten.convolution`` only when not transposed).
CONV_TARGETS = (aten.conv2d.default, aten.convolution.default)
#: Positively homogeneous activations E10 commutes with.
ACTIVATION_TARGETS = (aten.relu.default, aten.prelu.default, aten.leaky_relu.default)


def schema_arguments(node: fx.Node) -> dict[str, object]:
    """``node``'s arguments by the ATen schema's names (positional, keyword, then defaults)."""
    values: dict[str, object] = {}
    for index, argument in enumerate(node.target._schema.arguments):
        if index < len(node.args):
            values[argument.name] = node.args[index]
        elif argument.name in node.kwargs:
            values[argument.name] = node.kwargs[argument.name]
        else:
            values[argument.name] = argument.default_value if argument.has_default_value() else None
    return values


def graph_constant(module: fx.GraphModule, node: object) -> torch.Tensor | None:
    """The tensor a ``get_attr`` node reads, else ``None`` (not a constant of the graph)."""
    if not isinstance(node, fx.Node) or node.op != "get_attr":
        return None
    value: object = module
    for part in str(node.target).split("."):
        value = getattr(value, part)
    return value if isinstance(value, torch.Tensor) else None


def set_constant(module: fx.GraphModule, target: str, value: torch.Tensor) -> None:
    *path, name = target.split(".")
    owner: nn.Module = module
    for part in path:
        owner = getattr(owner, part)
    if name in owner._parameters:
        owner._parameters[name] = nn.Parameter(value, requires_grad=False)
    elif name in owner._buffers:
        owner._buffers[name] = value
    else:
        setattr(owner, name, value)


def _own_constant(module: fx.GraphModule, node: object) -> bool:
    """A constant read by exactly one node: rewriting it changes nothing else."""
    return graph_constant(module, node) is not None and len(node.users) == 1  # type: ignore[union-attr]


def as_conv(module: fx.GraphModule, node: fx.Node) -> nn.Conv2d | None:
    """The ``nn.Conv2d`` (float64) computing ``node``, or ``None`` where it is no plain 2-D
    conv with constant weights of its own."""
    if node.op != "call_function" or node.target not in CONV_TARGETS:
        return None
    arguments = schema_arguments(node)
    if node.target is aten.convolution.default and (
        arguments["transposed"] or any(arguments["output_padding"])
    ):
        return None
    weight, bias = arguments["weight"], arguments["bias"]
    if not _own_constant(module, weight) or (bias is not None and not _own_constant(module, bias)):
        return None
    kernel = graph_constant(module, weight)
    if kernel.dim() != 4 or isinstance(arguments["padding"], str):
        return None
    groups = int(arguments["groups"])

    def pair(value: object) -> tuple[int, int]:
        values = list(value) if isinstance(value, list | tuple) else [value]
        return (int(values[0]), int(values[-1]))

    conv = nn.Conv2d(
        kernel.shape[1] * groups,
        kernel.shape[0],
        tuple(kernel.shape[2:]),
        stride=pair(arguments["stride"]),
        padding=pair(arguments["padding"]),
        dilation=pair(arguments["dilation"]),
        groups=groups,
        bias=bias is not None,
        dtype=torch.float64,
    )
    with torch.no_grad():
        conv.weight.copy_(kernel)
        if bias is not None:
            conv.bias.copy_(graph_constant(module, bias))
    return conv


def _as_activation(module: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    """The torch module computing the activation call ``node`` (float64), or ``None``."""
    if node.op != "call_function" or node.target not in ACTIVATION_TARGETS:
        return None
    if node.target is aten.relu.default:
        return nn.ReLU()
    arguments = schema_arguments(node)
    if node.target is aten.leaky_relu.default:
        return nn.LeakyReLU(float(arguments["negative_slope"]))
    slopes = graph_constant(module, arguments["weight"])
    if slopes is None or not _own_constant(module, arguments["weight"]) or slopes.dim() != 1:
        return None
    prelu = nn.PReLU(slopes.numel(), dtype=torch.float64)
    with torch.no_grad():
        prelu.weight.copy_(slopes)
    return prelu


@dataclass(frozen=True)
class GraphStep:
    """One conv of a chain and the activation read by it alone (``None``: the next conv reads
    the conv's output directly)."""

    conv: fx.Node
    activation: fx.Node | None

    @property
    def output(self) -> fx.Node:
        return self.activation if self.activation is not None else self.conv


def reads_input(node: fx.Node) -> bool:
    """Whether ``node`` is the graph's input (through ``et.compile``'s size check or a
    ``torch.export`` guard call, both of which return their argument)."""
    while node.op == "call_function" and getattr(node.target, "__name__", "") == "require_size":
        node = node.args[0]
    return node.op == "placeholder"


def conv_chains(module: fx.GraphModule) -> list[list[GraphStep]]:
    """The maximal chains of :class:`GraphStep` in ``module``'s graph (module docstring), in
    graph order, each of at least two convs."""
    steps: dict[fx.Node, GraphStep] = {}
    for node in module.graph.nodes:
        if as_conv(module, node) is None:
            continue
        users = list(node.users)
        activation = None
        if len(users) == 1 and _as_activation(module, users[0]) is not None:
            activation = users[0] if users[0].args[0] is node else None
        steps[node] = GraphStep(node, activation)
    following: dict[fx.Node, GraphStep] = {}
    for step in steps.values():
        users = list(step.output.users)
        if len(users) == 1 and users[0] in steps and users[0].args[0] is step.output:
            following[step.conv] = steps[users[0]]
    preceded = {step.conv for step in following.values()}
    chains = []
    for conv, step in steps.items():
        if conv in preceded:
            continue
        chain = [step]
        while chain[-1].conv in following:
            chain.append(following[chain[-1].conv])
        if len(chain) > 1:
            chains.append(chain)
    return chains


def chain_steps(
    module: fx.GraphModule, chain: list[GraphStep]
) -> list[tuple[nn.Conv2d, nn.Module]]:
    steps = []
    for step in chain:
        conv = as_conv(module, step.conv)
        activation = (
            _as_activation(module, step.activation) if step.activation is not None else None
        )
        steps.append((conv, activation if activation is not None else nn.Identity()))
    return steps


def graph_in_dtype(module: fx.GraphModule, dtype: torch.dtype) -> fx.GraphModule:
    """A copy of ``module`` with every floating constant (parameter, buffer, tensor attribute
    read by a ``get_attr``) cast to ``dtype``."""
    with warnings.catch_warnings():  # a loaded .pt2's pytree specs warn when copied
        warnings.simplefilter("ignore", FutureWarning)
        cast = copy.deepcopy(module).to(dtype)
    for node in cast.graph.nodes:
        value = graph_constant(cast, node)
        if value is not None and value.is_floating_point() and value.dtype != dtype:
            set_constant(cast, str(node.target), value.to(dtype))
    return cast


def same_size_batches(images: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``images`` in float64, concatenated into one batch where they share a size (an
    interpreted graph costs per call, and the max over a batch is the max over its images)."""
    batches = [image.to(torch.float64) for image in images]
    if len({tuple(b.shape[1:]) for b in batches}) == 1:
        return [torch.cat(batches)]
    return batches


def write_back(
    module: fx.GraphModule, chain: list[GraphStep], steps: list[tuple[nn.Conv2d, nn.Module]]
) -> None:
    """Store the steps' weights in ``module``'s constants (same dtype as before); an
    activation E11 turned into a PReLU replaces its node by an ``aten.prelu``."""
    for step, (conv, activation) in zip(chain, steps, strict=True):
        arguments = schema_arguments(step.conv)
        for name, value in (("weight", conv.weight), ("bias", conv.bias)):
            node = arguments[name]
            if node is not None:
                old = graph_constant(module, node)
                set_constant(module, str(node.target), value.detach().to(old.dtype).clone())
        if not isinstance(activation, nn.PReLU) or step.activation is None:
            continue
        if step.activation.target is aten.prelu.default:
            node = schema_arguments(step.activation)["weight"]
            old = graph_constant(module, node)
            set_constant(module, str(node.target), activation.weight.detach().to(old.dtype).clone())
            continue
        # a LeakyReLU given per-channel slopes by E11: an aten.prelu with its own constant
        name = f"et_layout_prelu_{step.activation.name}"
        dtype = conv.weight.dtype if conv.weight.dtype == torch.float64 else torch.float32
        module.register_buffer(name, activation.weight.detach().to(dtype).clone())
        graph = module.graph
        with graph.inserting_before(step.activation):
            slopes = graph.get_attr(name)
            prelu = graph.call_function(aten.prelu.default, (step.activation.args[0], slopes))
        step.activation.replace_all_uses_with(prelu)
        graph.erase_node(step.activation)
    module.graph.lint()
    module.recompile()
