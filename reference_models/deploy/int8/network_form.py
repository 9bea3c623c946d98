"""The network the INT8 layout works on: the compiled graph, whatever network it came from.

    from reference_models.deploy.int8.network_form import layout_network
    network, converted_from = layout_network(model, calibration)   # a CompiledNetwork

There is one layout (:mod:`reference_models.deploy.int8.layout`) and it runs on the fx graph of
ATen ops ``et.compile`` folds a network into. A network loaded from a ``.pt2`` or compiled from
``MODULE:FACTORY`` is that graph already; any other module, our 13 architectures included, is
compiled here the same way (:func:`~reference_models.deploy.compiled_network.compile_network`),
so no architecture has a layout code path of its own.

One step comes first for our *training forms*: the ETDS dual-stream training form and its
ablations, and ECBSR with its multi-branch ECB blocks, are laid out as their inference form
(:func:`inference_form`, from :func:`reference_models.conversions.convert`, equal to
``clamp(model(x)[0], 0, 1)``), the network the authors deploy. The originals ``ABPN`` and
``ECBSRT`` are deployable as they are and are laid out as given: an export of the original is
what the ET form's INT8 fidelity is compared with.

:func:`module_layout` goes the other way for ``etds convert --int8-layout``, which writes a
checkpoint of the architecture: the laid-out constants of the graph are written back into the
parameters of the module they were compiled from.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from reference_models.deploy.compiled_network import CompiledNetwork, compile_network
from reference_models.deploy.int8.graph_chains import graph_constant
from reference_models.deploy.int8.layout import LayoutError

__all__ = ["COMPILE_EXAMPLE", "inference_form", "layout_network", "module_layout"]

#: Side of the example a module is compiled on: ``et.compile`` verifies on probes of the
#: example's size, which costs with the pixels (measured: ABPN-ET 9 s at 32×32 on a loaded
#: 2-core machine). Where the compiled graph's size checks refuse the calibration size, the
#: module is compiled again at that size.
COMPILE_EXAMPLE = 16


def inference_form(model: nn.Module) -> tuple[nn.Module, str | None]:
    """``model`` and ``None``, or for a training form (module docstring) its inference form
    and the name of the training form's class."""
    from reference_models.architectures.abpn import ABPN
    from reference_models.architectures.ecbsr import ECBSRT
    from reference_models.conversions import INFERENCE_FORMS, NotConvertibleError, convert

    if isinstance(model, (*INFERENCE_FORMS, ABPN, ECBSRT, CompiledNetwork)):
        return model, None
    try:
        converted = convert(model)
    except NotConvertibleError:
        return model, None  # not one of ours: laid out as it is
    dtype = next(model.parameters()).dtype
    return converted.to(dtype).eval(), type(model).__name__


def _compiled(model: nn.Module, colors: int, height: int, width: int) -> CompiledNetwork:
    label = getattr(model, "arch", type(model).__name__)
    try:
        return compile_network(model, colors=colors, height=height, width=width, label=label)
    except Exception as error:  # et.compile refuses with many types; report one line
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise LayoutError(f"{label}: et.compile failed: {type(error).__name__}: {first}") from error


def layout_network(
    model: nn.Module, calibration: Sequence[torch.Tensor]
) -> tuple[CompiledNetwork, str | None]:
    """The compiled graph the layout of ``model`` runs on (``model`` itself for a compiled
    network) and the training form converted first, if any. Raises :class:`LayoutError`
    where ``et.compile`` refuses the network."""
    if isinstance(model, CompiledNetwork):
        return model, None
    if not calibration:
        raise LayoutError("no calibration images")
    model, converted_from = inference_form(model)
    _, colors, height, width = calibration[0].shape
    side = COMPILE_EXAMPLE
    network = _compiled(model, colors, min(height, side), min(width, side))
    try:
        with torch.no_grad():
            network(calibration[0].to(next(model.parameters()).dtype))
    except Exception:  # the graph's size check (et.compiler.sizes.SizeError and others)
        network = _compiled(model, colors, height, width)
    return network, converted_from


def module_layout(
    model: nn.Module, network: CompiledNetwork, laid_out: CompiledNetwork
) -> nn.Module:
    """A copy of ``model`` whose parameters hold the constants of ``laid_out``, where
    ``network`` is the graph ``model`` was compiled to and ``laid_out`` its layout.

    A constant the layout changed is written into the one parameter of ``model`` holding
    exactly the constant's value in ``network`` (same shape, equal in float64; among several,
    the one whose dotted name the constant's name ends with, ``et.compile`` naming constants
    after their module path). Raises
    :class:`LayoutError` where there is none or more than one (``et.compile`` folded it from
    several parameters), or where the layout changed the graph itself (E11 turning a LeakyReLU
    into a PReLU): the caller verifies the result against ``model`` anyway.
    """
    before = {node.target: node for node in network.program.graph.nodes if node.op == "get_attr"}
    after = [node for node in laid_out.program.graph.nodes if node.op == "get_attr"]
    if {node.target for node in after} != set(before):
        raise LayoutError("the layout changed the graph itself: no module holds it")
    result = copy.deepcopy(model)
    parameters = dict(result.named_parameters())
    for node in after:
        old = graph_constant(network.program, before[node.target])
        new = graph_constant(laid_out.program, node)
        if old is None or new is None or torch.equal(old.double(), new.double()):
            continue
        if new.shape != old.shape:
            raise LayoutError(
                f"constant {node.target}: the layout changed its shape {tuple(old.shape)} → "
                f"{tuple(new.shape)} (R24/R25 add channels): no parameter of the module holds it"
            )
        owners = [
            name
            for name, parameter in parameters.items()
            if parameter.shape == old.shape and torch.equal(parameter.double(), old.double())
        ]
        if (
            len(owners) > 1
        ):  # equal values (e.g. zero biases): et.compile keeps the path in the name
            owners = [name for name in owners if str(node.target).endswith(name.replace(".", "_"))]
        if len(owners) != 1:
            raise LayoutError(
                f"constant {node.target}: {len(owners)} parameters of the module hold it "
                "(exactly one must)"
            )
        with torch.no_grad():
            parameters[owners[0]].copy_(new)
    return result
