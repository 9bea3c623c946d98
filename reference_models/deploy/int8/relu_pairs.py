"""Every PReLU layer of a conv chain as ReLU channel pairs (rule R24), an INT8 layout candidate.

    from reference_models.deploy.int8.relu_pairs import relu_pair_form
    paired = relu_pair_form(model)      # same function; only conv + ReLU in the chain

Why. LiteRT fuses a ReLU into its conv but runs a PReLU as a float op, so a PReLU layer stores
two int8 tensors: the conv output ``h`` and ``PReLU(h)``, each with one scale. In ECBSR's ET
form the learned channels of ``h`` reach far below zero while the image copies it carries are in
[0, 1], so the copies get a few levels per layer (measured: 5.4 dB behind the original ECBSR in
INT8 on Set5). R24 (:mod:`et.rules.prelu_as_relu_pair`) writes ``PReLU_a(h) = ReLU(h) −
a·ReLU(−h)`` with the negative half as extra channels of the same conv, so every layer stores one
non-negative tensor, each half has its own channel, and E10
(:mod:`reference_models.deploy.int8.layout`) can even them out. Channels with slope 0 (the ET
form's carried image and padding channels) are ReLU channels already and are not doubled.

Our architectures: :func:`relu_pair_form` takes and returns a model whose module chain
:func:`~reference_models.deploy.int8.int8_layout.chain_links` reads; the decision compiles it and
lays it out like any network (:mod:`reference_models.deploy.int8.decision`).

Compiled networks. :func:`graph_relu_pair_form` is the same rewrite on the fx graph of a network
``et.compile`` folded (:class:`~reference_models.deploy.compiled_network.CompiledNetwork`): in each
chain of :func:`~reference_models.deploy.int8.graph_chains.conv_chains`, every ``aten.prelu`` /
``aten.leaky_relu`` read by the next conv of the chain becomes an ``aten.relu`` and the two
convs' constants take R24's weights (the rule's preconditions checked on the convs and slopes as
torch modules). The result is compared in float64 with the input graph.
:func:`graph_relu_pair_candidate` lays it out (E10, copies at their whole range) as the decision's
R24 candidate, so a third-party PReLU network gets it too.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
from collections.abc import Sequence

import torch
from torch import fx, nn

from et.contract import PreconditionError
from et.rules.prelu_as_relu_pair import prelu_as_relu_pair
from et.testing import compare_outputs, probe_inputs

__all__ = [
    "graph_has_prelu_layers",
    "graph_relu_pair_candidate",
    "graph_relu_pair_form",
    "has_prelu_layers",
    "relu_pair_form",
]

aten = torch.ops.aten
#: The graph's activations R24 replaces (``aten.relu`` is the result).
PRELU_TARGETS = (aten.prelu.default, aten.leaky_relu.default)


def has_prelu_layers(model: nn.Module) -> bool:
    """Whether some hidden layer of ``model``'s conv chain is a PReLU or LeakyReLU."""
    from reference_models.deploy.int8.int8_layout import LayoutError, chain_links

    try:
        links = chain_links(model)
    except LayoutError:
        return False
    return any(isinstance(link.activation, nn.PReLU | nn.LeakyReLU) for link in links[:-1])


def relu_pair_form(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in which R24 has replaced every hidden PReLU/LeakyReLU of its conv
    chain by a ReLU (the conv before it gains the negated rows, the conv after it the columns
    ``−a_c·W₂[:, c]``). Raises :class:`~reference_models.deploy.int8.layout.LayoutError` when a
    layer cannot take R24 or the model has no chain."""
    from reference_models.deploy.int8.int8_layout import LayoutError, chain_links

    paired = copy.deepcopy(model)
    links = chain_links(paired)
    for k, (first, second) in enumerate(itertools.pairwise(links)):
        if not isinstance(first.activation, nn.PReLU | nn.LeakyReLU):
            continue
        if first.activation_slot is None:
            raise LayoutError(f"layer {k}: its activation cannot be replaced")
        try:
            conv1, relu, conv2 = prelu_as_relu_pair(first.conv, first.activation, second.conv)
        except PreconditionError as error:
            raise LayoutError(f"layer {k}: {error}") from error
        setattr(first.owner, first.name, conv1)
        setattr(*first.activation_slot, relu)
        setattr(second.owner, second.name, conv2)
        first.conv, first.activation, second.conv = conv1, relu, conv2
    return paired


def _paired_steps(program: fx.GraphModule) -> list[tuple[fx.Node, fx.Node, fx.Node]]:
    """``(conv₁, activation, conv₂)`` for every PReLU/LeakyReLU of a chain read by a conv."""
    from reference_models.deploy.int8.graph_chains import conv_chains

    return [
        (first.conv, first.activation, second.conv)
        for chain in conv_chains(program)
        for first, second in itertools.pairwise(chain)
        if first.activation is not None and first.activation.target in PRELU_TARGETS
    ]


def graph_has_prelu_layers(program: fx.GraphModule) -> bool:
    """Whether some chain of ``program`` has a PReLU/LeakyReLU layer R24 could rewrite."""
    return bool(_paired_steps(program))


def graph_relu_pair_form(program: fx.GraphModule) -> fx.GraphModule:
    """A copy of ``program`` (same dtype) in which R24 has replaced every PReLU/LeakyReLU
    between two convs of a chain by a ReLU (module docstring). Raises
    :class:`~reference_models.deploy.int8.layout.LayoutError` naming the node and R24's
    precondition where a layer cannot take it, or when the result differs from ``program`` by
    more than ``EQUIVALENCE_TOLERANCE`` in float64."""
    from reference_models.deploy.compiled_network import program_colors
    from reference_models.deploy.int8.graph_chains import (
        _as_activation,
        as_conv,
        graph_in_dtype,
        schema_arguments,
        set_constant,
    )
    from reference_models.deploy.int8.layout import (
        EQUIVALENCE_TOLERANCE,
        LayoutError,
        _floating_dtype,
    )

    original64 = graph_in_dtype(program, torch.float64)
    paired = graph_in_dtype(program, torch.float64)
    graph = paired.graph
    for conv1_node, activation_node, conv2_node in _paired_steps(paired):
        slopes = [a for a in activation_node.args[1:2] if isinstance(a, fx.Node)]
        # read each conv when its turn comes: conv₂ of one step is conv₁ of the next
        conv1, conv2 = as_conv(paired, conv1_node), as_conv(paired, conv2_node)
        try:
            new1, _, new2 = prelu_as_relu_pair(
                conv1, _as_activation(paired, activation_node), conv2
            )
        except PreconditionError as error:
            raise LayoutError(f"{activation_node.name}: {error}") from error
        for node, conv in ((conv1_node, new1), (conv2_node, new2)):
            arguments = schema_arguments(node)
            for name, value in (("weight", conv.weight), ("bias", conv.bias)):
                if arguments[name] is not None:
                    target = str(arguments[name].target)
                    set_constant(paired, target, value.detach().clone())
        with graph.inserting_before(activation_node):
            relu = graph.call_function(aten.relu.default, (conv1_node,))
        activation_node.replace_all_uses_with(relu)
        graph.erase_node(activation_node)
        for node in slopes:  # the slopes' get_attr, read by nothing now
            if not node.users:
                graph.erase_node(node)
    graph.lint()
    paired.recompile()
    probes = probe_inputs((program_colors(program), 12, 12), samples=4, seed=0)
    error = compare_outputs(
        original64, paired, probes, dtype=torch.float64, weights64=False
    ).max_abs_error
    if not error <= EQUIVALENCE_TOLERANCE:
        raise LayoutError(f"R24 on the graph differs by {error:.3g} in float64")
    return graph_in_dtype(paired, _floating_dtype(program))


def graph_relu_pair_candidate(
    network: nn.Module, calibration: Sequence[torch.Tensor], *, strengths: Sequence[float]
) -> tuple[nn.Module, object] | None:
    """The R24 layout candidate of a compiled ``network``
    (:class:`~reference_models.deploy.compiled_network.CompiledNetwork`), or ``None`` where its
    graph has no PReLU layer: :func:`graph_relu_pair_form`, then E10
    (:func:`~reference_models.deploy.int8.layout.graph_layout`) at the strength of
    ``strengths`` with the best simulated INT8 fidelity on ``calibration``, exact input copies
    at the layer's whole range whatever the strength (``copy_strength=1``: after
    R24 every layer is a fused ReLU, and the copies cost the other channels nothing there).
    Returns ``(network, LayoutReport)`` with ``report.relu_pairs`` set; raises
    :class:`~reference_models.deploy.int8.layout.LayoutError` as the two passes do."""
    from reference_models.deploy.int8.layout import graph_layout, plan_layout
    from reference_models.deploy.int8.simulation import simulated_int8_fidelity_db

    if not graph_has_prelu_layers(network.program):
        return None
    paired = graph_relu_pair_form(network.program)
    measured = plan_layout(paired, calibration, strength=0.0)
    best: tuple[float, nn.Module, object] | None = None
    for strength in strengths:
        program, report = graph_layout(
            paired, calibration, strength=strength, copy_strength=1.0, measured=measured
        )
        candidate = network.with_program(program)
        score = simulated_int8_fidelity_db(candidate, calibration)
        score = -math.inf if math.isnan(score) else score
        if best is None or score > best[0]:
            best = (score, candidate, dataclasses.replace(report, relu_pairs=True))
    if best is None:
        return None
    return best[1], best[2]
