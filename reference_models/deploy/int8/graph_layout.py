"""The INT8 layout (E10, E11) on a compiled graph: any network ``et.compile`` folded.

    from reference_models.deploy.int8.graph_layout import graph_layout
    laid_out, report = graph_layout(program, calibration, strength=0.5)   # an fx GraphModule

:mod:`reference_models.deploy.int8.int8_layout` walks our architectures' modules. A network folded
by
``et.compile`` (or loaded from the ``.pt2`` ``etds compile`` writes) is an fx graph of ATen ops
instead, whose convs are ``aten.conv2d`` calls reading constant tensors. This module finds in
that graph the *chains*

    conv₀ → φ₀ → conv₁ → φ₁ → … → conv_n (→ φ_n)

where each ``φ_k`` is ``aten.relu``, ``aten.prelu`` (constant slopes, one or one per channel)
or ``aten.leaky_relu`` (or nothing: a conv read directly by a conv), each conv's output is read
by nothing but its ``φ_k`` and each ``φ_k``'s output by nothing but ``conv_{k+1}`` as its input.
Between ``conv_k`` and ``conv_{k+1}`` rule E10 (:mod:`et.rules.rescale_channels`) rescales
channel c by any ``α_c > 0`` without changing the function: ``φ_k`` is positively homogeneous
(``φ(αt) = αφ(t)``, slopes unchanged). The single-reader conditions are what make the rescaling
local: a second reader of the scaled tensor would see ``α_c``-times larger values.

Each chain becomes the ``(nn.Conv2d, activation)`` steps the architecture walk uses, so the
same code picks the factors (:func:`~reference_models.deploy.int8.int8_layout.channel_alphas`:
``α_c = (R/r_c)^strength`` from the calibration ranges, exact input copies at their exact
bound), the same rule applies them (``rescale_channels``, which checks E10's preconditions and
refuses with :class:`~et.contract.PreconditionError`), and, for a chain that reads the image
itself (values in [0, 1]), the same E11 pass (:mod:`reference_models.deploy.int8.copy_negation`)
moves carried input copies of PReLU layers to the negative side. The new weights are written
back into the graph's constants (a LeakyReLU that E11 gives per-channel slopes becomes an
``aten.prelu``). The laid-out graph is then compared in float64 with the input graph on probes
and the calibration images; :class:`~reference_models.deploy.int8.int8_layout.LayoutError` is raised
when it differs by more than ``tolerance``.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import fx, nn

from et.contract import PreconditionError
from et.rules.rescale_channels import rescale_channels
from et.testing import compare_outputs, probe_inputs
from reference_models.deploy.int8.copy_negation import negate_input_copies
from reference_models.deploy.int8.input_copies import input_copy_bounds
from reference_models.deploy.int8.int8_layout import (
    EQUIVALENCE_TOLERANCE,
    LayoutError,
    LayoutReport,
    channel_alphas,
)

__all__ = [
    "GraphStep",
    "LayoutPlan",
    "conv_chains",
    "graph_constant",
    "graph_in_dtype",
    "graph_layout",
    "plan_layout",
    "same_size_batches",
    "schema_arguments",
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


def _set_constant(module: fx.GraphModule, target: str, value: torch.Tensor) -> None:
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


def _as_conv(module: fx.GraphModule, node: fx.Node) -> nn.Conv2d | None:
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


def _reads_input(node: fx.Node) -> bool:
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
        if _as_conv(module, node) is None:
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


def _module_steps(
    module: fx.GraphModule, chain: list[GraphStep]
) -> list[tuple[nn.Conv2d, nn.Module]]:
    steps = []
    for step in chain:
        conv = _as_conv(module, step.conv)
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
            _set_constant(cast, str(node.target), value.to(dtype))
    return cast


def same_size_batches(images: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``images`` in float64, concatenated into one batch where they share a size (an
    interpreted graph costs per call, and the max over a batch is the max over its images)."""
    batches = [image.to(torch.float64) for image in images]
    if len({tuple(b.shape[1:]) for b in batches}) == 1:
        return [torch.cat(batches)]
    return batches


class _Recorder(fx.Interpreter):
    """Runs the graph and keeps the outputs of the nodes asked for."""

    def __init__(self, module: fx.GraphModule, wanted: set[fx.Node]) -> None:
        super().__init__(module)
        self.wanted = wanted
        self.seen: dict[fx.Node, torch.Tensor] = {}

    def run_node(self, n: fx.Node) -> object:
        result = super().run_node(n)
        if n in self.wanted:
            self.seen[n] = result
        return result


def _chain_ranges(
    module64: fx.GraphModule, chains: list[list[GraphStep]], images: Sequence[torch.Tensor]
) -> list[list[torch.Tensor]]:
    """``r[chain][k][c]``: the largest magnitude hidden channel c of layer k stores (as
    :func:`~reference_models.deploy.int8.int8_layout.channel_ranges`: after a ReLU its output,
    after any other activation also the conv output), over ``images``, float64."""
    wanted = {node for chain in chains for step in chain for node in (step.conv, step.output)}
    ranges = [
        [torch.zeros(_as_conv(module64, s.conv).out_channels, dtype=torch.float64) for s in c[:-1]]
        for c in chains
    ]
    with torch.no_grad():
        for batch in same_size_batches(images):
            recorder = _Recorder(module64, wanted)
            recorder.run(batch)
            for chain, chain_ranges in zip(chains, ranges, strict=True):
                for k, step in enumerate(chain[:-1]):
                    r = recorder.seen[step.output].abs().amax(dim=(0, 2, 3))
                    fused = (
                        step.activation is not None and step.activation.target is aten.relu.default
                    )
                    if not fused:
                        r = torch.maximum(r, recorder.seen[step.conv].abs().amax(dim=(0, 2, 3)))
                    chain_ranges[k] = torch.maximum(chain_ranges[k], r)
    return ranges


@dataclass
class LayoutPlan:
    """What the layout of one graph is computed from: its chains, their steps as modules
    (float64), the calibration range and the exact input-copy bound of every hidden channel
    (0: not a copy), and the E10 factors at ``strength``."""

    chains: list[list[GraphStep]]
    steps: list[list[tuple[nn.Conv2d, nn.Module]]]
    reads_image: list[bool]
    ranges: list[list[torch.Tensor]]
    copy_bounds: list[list[torch.Tensor]]  # exact bounds of the input copies (0: none)
    bounds: list[list[torch.Tensor]]  # the bounds the factors use (zeros: copies calibrated)
    alphas: list[list[torch.Tensor]]
    strength: float

    def at(self, strength: float, *, exact_copies: bool = True) -> LayoutPlan:
        """The same measurements with the factors of another ``strength`` / copy treatment."""
        bounds = [
            [b if exact_copies else torch.zeros_like(b) for b in chain]
            for chain in self.copy_bounds
        ]
        alphas = [
            [channel_alphas(r, strength, b) for r, b in zip(rs, bs, strict=True)]
            for rs, bs in zip(self.ranges, bounds, strict=True)
        ]
        return dataclasses.replace(self, bounds=bounds, alphas=alphas, strength=strength)


def plan_layout(
    module: fx.GraphModule,
    calibration: Sequence[torch.Tensor],
    *,
    strength: float,
    exact_copies: bool = True,
) -> LayoutPlan:
    """The E10 factors ``α`` of every hidden layer of every chain of ``module`` at ``strength``
    (``channel_alphas`` of the calibration ranges; exact input copies at their exact bound
    unless ``exact_copies`` is false). Raises :class:`LayoutError` where no chain exists."""
    if not calibration:
        raise LayoutError("no calibration images")
    module64 = graph_in_dtype(module, torch.float64)
    chains = conv_chains(module64)
    if not chains:
        raise LayoutError("no conv → activation → conv chain in the compiled graph")
    steps = [_module_steps(module64, chain) for chain in chains]
    reads_image = [_reads_input(chain[0].conv.args[0]) for chain in chains]
    ranges = _chain_ranges(module64, chains, calibration)
    copy_bounds = []
    for chain_steps, from_image in zip(steps, reads_image, strict=True):
        # exact bounds need the chain's input to be the image in [0, 1]
        found = input_copy_bounds(chain_steps) if from_image else None
        if found is None:
            found = [
                torch.zeros(conv.out_channels, dtype=torch.float64) for conv, _ in chain_steps[:-1]
            ]
        copy_bounds.append(found)
    plan = LayoutPlan(chains, steps, reads_image, ranges, copy_bounds, [], [], 0.0)
    return plan.at(strength, exact_copies=exact_copies)


def _rescaled(
    steps: list[tuple[nn.Conv2d, nn.Module]], alphas: list[torch.Tensor]
) -> list[tuple[nn.Conv2d, nn.Module]]:
    """E10 with ``alphas[k]`` between conv k and conv k+1 (each through the rule's check)."""
    steps = list(steps)
    for k, alpha in enumerate(alphas):
        (first, activation), (second, after) = steps[k], steps[k + 1]
        try:
            new_first, new_activation, new_second = rescale_channels(
                first, activation, second, alpha
            )
        except PreconditionError as error:
            raise LayoutError(f"layer {k}: {error}") from error
        if new_activation is not activation:  # a clip would need new bounds: not a chain step
            raise LayoutError(f"layer {k}: {type(activation).__name__} would change")
        steps[k], steps[k + 1] = (new_first, activation), (new_second, after)
    return steps


def _write_back(
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
                _set_constant(module, str(node.target), value.detach().to(old.dtype).clone())
        if not isinstance(activation, nn.PReLU) or step.activation is None:
            continue
        if step.activation.target is aten.prelu.default:
            node = schema_arguments(step.activation)["weight"]
            old = graph_constant(module, node)
            _set_constant(
                module, str(node.target), activation.weight.detach().to(old.dtype).clone()
            )
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


def graph_layout(
    module: fx.GraphModule,
    calibration: Sequence[torch.Tensor],
    *,
    strength: float,
    negate: bool = False,
    exact_copies: bool = True,
    tolerance: float = EQUIVALENCE_TOLERANCE,
    measured: LayoutPlan | None = None,
) -> tuple[fx.GraphModule, LayoutReport]:
    """A copy of ``module`` with E10 applied at ``strength`` to every hidden layer of every
    chain (:func:`plan_layout`), then (``negate``) E11 on the input copies of the PReLU layers
    of the chains that read the image; checked in float64 against ``module``. The input is not
    modified; the result has ``module``'s dtype. ``measured``: a :func:`plan_layout` of the same
    ``module`` and ``calibration`` (any strength), to measure the ranges once for many layouts."""
    if measured is None:
        measured = plan_layout(module, calibration, strength=strength)
    plan = measured.at(strength, exact_copies=exact_copies)
    laid_out = graph_in_dtype(module, torch.float64)
    chains = conv_chains(laid_out)  # the same chains, as nodes of the copy
    negated = 0
    spreads, applied = [], []
    for index, chain in enumerate(chains):
        steps = _rescaled(plan.steps[index], plan.alphas[index])
        for r, alpha in zip(plan.ranges[index], plan.alphas[index], strict=True):
            live = r[r > 0]
            spreads.append(float(live.max() / live.min()) if live.numel() else 1.0)
            applied.append((float(alpha.min()), float(alpha.max())))
        if negate and plan.reads_image[index]:
            try:
                steps, count = negate_input_copies(steps, input_copy_bounds(steps), calibration)
            except PreconditionError as error:
                raise LayoutError(f"E11: {error}") from error
            negated += count
        _write_back(laid_out, chain, steps)
    error = _max_error(module, laid_out, calibration)
    if not error <= tolerance:
        raise LayoutError(f"the laid-out graph differs by {error:.3g} in float64 (> {tolerance})")
    copies = sum(int((b > 0).sum()) for bounds in plan.copy_bounds for b in bounds)
    report = LayoutReport(
        tuple(spreads),
        tuple(applied),
        error,
        strength,
        {},
        negated_channels=negated,
        input_copies=copies,
        exact_copies=exact_copies and copies > 0,
    )
    dtype = _floating_dtype(module)
    return graph_in_dtype(laid_out, dtype), report


def _floating_dtype(module: fx.GraphModule) -> torch.dtype:
    for node in module.graph.nodes:
        value = graph_constant(module, node)
        if value is not None and value.is_floating_point():
            return value.dtype
    return torch.float32


def _max_error(
    original: fx.GraphModule, laid_out: fx.GraphModule, images: Sequence[torch.Tensor]
) -> float:
    """Largest |laid-out − original| with both in float64, on probes and the first images."""
    colors = images[0].shape[1]
    probes = [probe_inputs((colors, 12, 12), samples=4, seed=0), *images[:2]]
    original64 = graph_in_dtype(original, torch.float64)
    return max(
        compare_outputs(original64, laid_out, x, dtype=torch.float64, weights64=False).max_abs_error
        for x in probes
    )
