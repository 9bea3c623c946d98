"""The INT8 layout of a network's graph: E10 evens out channel ranges, E11 moves image copies.

    from reference_models.deploy.int8.layout import graph_layout
    laid_out, report = graph_layout(program, calibration, strength=0.5)   # an fx GraphModule

Post-training INT8 (LiteRT, ONNX Runtime) gives every activation tensor one scale: the largest
value of the tensor over the calibration set maps to the top int8 level. The ET forms carry the
input image (values in [0, 1]) through the body next to features of other ranges, so some
channels get a handful of int8 levels. On every chain of the graph
(:func:`~reference_models.deploy.int8.graph_chains.conv_chains`), E10
(:mod:`et.rules.rescale_channels`) multiplies channel c between two convs by any α_c > 0 without
changing the function (``φ(αt) = αφ(t)`` for the chain's positively homogeneous ``φ``); this
module picks

    α_c = (R / r_c)^strength,   r_c = the largest |value| channel c stores (calibration images),
    R = max_c r_c   (the layer's range),

so with strength 1 every channel of every hidden layer spans the layer's range (channels that
never leave 0 keep α = 1; exact input copies, :mod:`~reference_models.deploy.int8.input_copies`,
take their exact bound and the other channels :data:`HEADROOM` of the range). Evening
activations out moves precision from the weights of the next conv (its columns are divided by
α) to the activations, which does not always pay: the strength is one of the choices
:mod:`reference_models.deploy.int8.decision` scores. For a chain that reads the image itself
(values in [0, 1]) E11 (:mod:`reference_models.deploy.int8.copy_negation`) can also move carried
input copies of PReLU layers to the negative side. The output of the last conv of a chain is
left alone. The laid-out graph is compared in float64 with the input graph on probes and the
calibration images; :class:`LayoutError` is raised when it differs by more than ``tolerance``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import fx, nn

from et.contract import PreconditionError
from et.rules.rescale_channels import rescale_channels
from et.testing import compare_outputs, probe_inputs
from reference_models.deploy.int8.copy_negation import negate_input_copies
from reference_models.deploy.int8.graph_chains import (
    GraphStep,
    as_conv,
    chain_steps,
    conv_chains,
    graph_constant,
    graph_in_dtype,
    reads_input,
    same_size_batches,
    write_back,
)
from reference_models.deploy.int8.input_copies import input_copy_bounds

__all__ = [
    "EQUIVALENCE_TOLERANCE",
    "HEADROOM",
    "STRENGTHS",
    "LayoutError",
    "LayoutPlan",
    "LayoutReport",
    "channel_alphas",
    "graph_layout",
    "plan_layout",
    "rescaled_graph",
]

aten = torch.ops.aten

#: Largest accepted float64 difference between the laid-out and the input model (the rescaled
#: weights carry one rounding each, ~1e-16 relative).
EQUIVALENCE_TOLERANCE = 1e-9
#: Layout strengths tried by default (0 = the model as it is, 1 = every channel at R).
STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: Share of the layer's range the calibrated (non-copy) channels are stretched to where the
#: layer also holds exact copies of the input (:mod:`reference_models.deploy.int8.input_copies`),
#: which take the whole range. A calibration range is only a lower bound of what unseen images
#: reach, and a channel stretched to the very top of its tensor clips on any excursion; the
#: copies cannot exceed theirs. Measured on ABPN-ET (calibrated on Set5, 48×48): 1.0 gave
#: 47.54 / 45.92 dB on Set5 / Set14, 0.8 gave 48.08 / 46.95, 0.6 gave 47.89 / 47.05.
HEADROOM = 0.8


class LayoutError(ValueError):
    """The model has no conv chain this pass understands, or the result is not equivalent."""


@dataclass(frozen=True)
class LayoutReport:
    """What :func:`graph_layout` did: per hidden layer, the spread of channel ranges before
    (``max r_c / min r_c`` over live channels) and the α range it applied, and the float64 gap."""

    spreads_before: tuple[float, ...]
    alpha_ranges: tuple[tuple[float, float], ...]
    max_abs_error: float
    strength: float
    negated_channels: int = 0  # input copies E11 moved to the negative side (PReLU layers)
    input_copies: int = 0  # hidden channels that are exact copies of the input
    exact_copies: bool = False  # whether E10 used the copies' exact bound (HEADROOM for others)
    converted_from: str | None = None  # the training form converted to its inference form first
    relu_pairs: bool = False  # every PReLU layer made ReLU channel pairs (R24) first
    refined_db: float | None = None  # simulated fidelity after the per-channel refinement
    split_copies: int = 0  # channels R25 added to carry input copies on the weight grid


def channel_alphas(
    ranges: torch.Tensor, strength: float, bounds: torch.Tensor, copy_strength: float | None = None
) -> torch.Tensor:
    """``α_c = (T_c / r_c)^strength``: ``T_c = R`` for an exact input copy (``r_c`` = its exact
    bound), ``T_c = HEADROOM·R`` for the other channels of a layer that has copies, else R.
    ``copy_strength`` (``None``: ``strength``) is the exponent of the copies."""
    copies = bounds > 0
    r = torch.where(copies, bounds, ranges)
    live = r > 0
    alpha = torch.ones_like(ranges)
    if live.any():
        headroom = HEADROOM if copies.any() and (live & ~copies).any() else 1.0
        target = torch.where(copies, r.max(), r.max() * headroom)
        exponent = torch.full_like(ranges, strength)
        if copy_strength is not None:
            exponent[copies] = copy_strength
        alpha[live] = (target[live] / r[live]) ** exponent[live]
    return alpha


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
    LiteRT stores it: after a ReLU, which converters fuse into the conv, its output;
    after any other activation also the conv output, since LiteRT runs a PReLU or LeakyReLU as a
    float op between two int8 tensors, and stretching a channel whose negative half is large but
    damped by a small slope would otherwise blow up the conv output's range), over ``images``,
    float64."""
    wanted = {node for chain in chains for step in chain for node in (step.conv, step.output)}
    ranges = [
        [torch.zeros(as_conv(module64, s.conv).out_channels, dtype=torch.float64) for s in c[:-1]]
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

    def at(
        self,
        strength: float,
        *,
        exact_copies: bool = True,
        copy_strength: float | None = None,
        factors: list[list[torch.Tensor]] | None = None,
    ) -> LayoutPlan:
        """The same measurements with the factors of another ``strength`` / copy treatment
        (``copy_strength``: the exponent of the exact copies, :func:`channel_alphas`), each
        ``α`` multiplied by ``factors`` where given (:mod:`~reference_models.deploy.int8.
        refinement`)."""
        bounds = [
            [b if exact_copies else torch.zeros_like(b) for b in chain]
            for chain in self.copy_bounds
        ]
        alphas = [
            [channel_alphas(r, strength, b, copy_strength) for r, b in zip(rs, bs, strict=True)]
            for rs, bs in zip(self.ranges, bounds, strict=True)
        ]
        if factors is not None:
            alphas = [
                [a * f for a, f in zip(chain, chain_factors, strict=True)]
                for chain, chain_factors in zip(alphas, factors, strict=True)
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
    steps = [chain_steps(module64, chain) for chain in chains]
    reads_image = [reads_input(chain[0].conv.args[0]) for chain in chains]
    ranges = _chain_ranges(module64, chains, calibration)
    copy_bounds = []
    for modules, from_image in zip(steps, reads_image, strict=True):
        # exact bounds need the chain's input to be the image in [0, 1]
        found = input_copy_bounds(modules) if from_image else None
        if found is None:
            found = [
                torch.zeros(conv.out_channels, dtype=torch.float64) for conv, _ in modules[:-1]
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


def rescaled_graph(module: fx.GraphModule, plan: LayoutPlan) -> fx.GraphModule:
    """A float64 copy of ``module`` with E10 at ``plan``'s factors on every chain, unchecked
    (each step goes through the rule's preconditions; the refinement simulates many of these
    and :func:`graph_layout` checks the one it keeps)."""
    laid_out = graph_in_dtype(module, torch.float64)
    for index, chain in enumerate(conv_chains(laid_out)):
        write_back(laid_out, chain, _rescaled(plan.steps[index], plan.alphas[index]))
    return laid_out


def graph_layout(
    module: fx.GraphModule,
    calibration: Sequence[torch.Tensor],
    *,
    strength: float,
    negate: bool = False,
    exact_copies: bool = True,
    copy_strength: float | None = None,
    factors: list[list[torch.Tensor]] | None = None,
    tolerance: float = EQUIVALENCE_TOLERANCE,
    measured: LayoutPlan | None = None,
) -> tuple[fx.GraphModule, LayoutReport]:
    """A copy of ``module`` with E10 applied at ``strength`` to every hidden layer of every
    chain (:func:`plan_layout`; ``copy_strength`` and ``factors`` as :meth:`LayoutPlan.at`),
    then (``negate``) E11 on the input copies of the PReLU layers of the chains that read the
    image; checked in float64 against ``module``. The input is not modified; the result has
    ``module``'s dtype. ``measured``: a :func:`plan_layout` of the same ``module`` and
    ``calibration`` (any strength), to measure the ranges once for many layouts."""
    if measured is None:
        measured = plan_layout(module, calibration, strength=strength)
    plan = measured.at(
        strength, exact_copies=exact_copies, copy_strength=copy_strength, factors=factors
    )
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
        write_back(laid_out, chain, steps)
    error = _max_error(module, laid_out, calibration)
    if not error <= tolerance:
        raise LayoutError(f"the laid-out graph differs by {error:.3g} in float64 (> {tolerance})")
    copies = sum(int((b > 0).sum()) for bounds in plan.copy_bounds for b in bounds)
    report = LayoutReport(
        tuple(spreads),
        tuple(applied),
        error,
        strength,
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
