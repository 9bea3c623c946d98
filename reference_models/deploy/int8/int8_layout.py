"""INT8 layout: even out the channel ranges of a conv chain with E10 before quantizing it.

    from reference_models.deploy.int8.int8_layout import int8_layout
    laid_out, report = int8_layout(model, calibration)   # same function, int8-friendly ranges

Post-training INT8 (LiteRT, ONNX Runtime) gives every activation tensor one scale: the largest
value of the tensor over the calibration set maps to the top int8 level. The ET forms carry the
input image (values in [0, 1]) through the body next to features of other ranges, so some
channels get a handful of int8 levels. E10 (:mod:`et.rules.rescale_channels`) multiplies channel
c between two convs by any α_c > 0 without changing the function; this pass picks

    α_c = (R / r_c)^strength,   r_c = the largest |value| channel c stores (calibration images),
    R = max_c r_c   (the layer's range),

so with strength 1 every channel of every hidden layer spans the layer's range (channels that
never leave 0 keep α = 1). Evening activations out moves precision from the weights of the next
conv (its columns are divided by α) to the activations, which does not always pay; by default
the strength is chosen from ``0, 0.25, …, 1`` by simulated INT8 fidelity on the calibration
images (:mod:`reference_models.deploy.int8.int8_simulation`, within 0.2 dB of LiteRT), optionally
refined channel by channel (``refine=True``, :mod:`reference_models.deploy.int8.refinement`).
Where a PReLU layer carries exact copies of the input, each strength is also tried with the
copies moved to the negative side of the conv output by E11
(:mod:`reference_models.deploy.int8.copy_negation`), and the simulation picks. ``relu_pairs=True``
first writes every PReLU layer as ReLU channel pairs (rule R24,
:mod:`reference_models.deploy.int8.relu_pairs`), so that every layer stores one non-negative
tensor; :func:`int8_candidates` lists the layouts an export measures in its runtime.
The output of the last conv is left
alone (it is the image). The result is checked in float64 against the input model on the
calibration images and on random inputs in [0, 1] (``et.testing.compare_outputs``);
:class:`LayoutError` is raised when it is not equivalent.

Supported: ``ETDSForInference`` (the convs of its ReLU chain) and every model whose body is an
``nn.Sequential`` ``backbone`` of convs and positively homogeneous activations (``ABPN_ET``,
``ECBSRET``, and the originals ``ABPN``/``ECBSRT``, whose shortcut reads the input and so is
untouched). A model with neither but with an ET conversion (the ETDS dual-stream training
forms) is converted to its inference form first (:func:`inference_form`), so the laid-out model
is that inference form.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from et.contract import PreconditionError
from et.rules.rescale_channels import rescale_channels
from et.testing import compare_outputs, probe_inputs
from reference_models.architectures.etds import ETDSForInference
from reference_models.deploy.int8.copy_negation import negate_input_copies
from reference_models.deploy.int8.input_copies import input_copy_bounds
from reference_models.deploy.int8.int8_simulation import simulated_fidelity_db
from reference_models.deploy.int8.layout import (
    EQUIVALENCE_TOLERANCE,
    HEADROOM,  # noqa: F401  (re-exported: tests read it here)
    STRENGTHS,
    LayoutError,
    LayoutReport,
    channel_alphas,
)
from reference_models.deploy.int8.refinement import refine_alphas

__all__ = [
    "LayoutCandidate",
    "LayoutError",
    "LayoutReport",
    "chain_links",
    "channel_alphas",
    "channel_ranges",
    "inference_form",
    "int8_candidates",
    "int8_layout",
]


@dataclass
class _Link:
    """One ``conv → activation`` step of the chain, with where to write the conv back."""

    conv: nn.Conv2d
    activation: nn.Module
    owner: nn.Module
    name: str
    #: where the activation sits (``None``: ETDSForInference's functional ReLU)
    activation_slot: tuple[nn.Module, str] | None = None


def _flatten(sequential: nn.Sequential) -> list[tuple[nn.Module, nn.Module, str]]:
    leaves = []
    for name, child in sequential.named_children():
        if isinstance(child, nn.Sequential):
            leaves.extend(_flatten(child))
        else:
            leaves.append((child, sequential, name))
    return leaves


def _links(model: nn.Module) -> list[_Link]:
    if isinstance(model, ETDSForInference):
        relu = nn.ReLU()
        named = [(model, "conv_first")]
        named += [(model.backbone_convs, str(i)) for i in range(len(model.backbone_convs))]
        named += [(model, "conv_last"), (model, "conv_clip")]
        return [_Link(getattr(owner, name), relu, owner, name) for owner, name in named]
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Sequential):
        raise LayoutError(f"{type(model).__name__}: no conv chain (ETDSForInference or backbone)")
    leaves = _flatten(backbone)
    links = []
    for index, (module, owner, name) in enumerate(leaves):
        if isinstance(module, nn.Conv2d):
            following = leaves[index + 1] if index + 1 < len(leaves) else None
            if following is None or isinstance(following[0], nn.Conv2d):
                links.append(_Link(module, nn.Identity(), owner, name))
            else:
                links.append(_Link(module, following[0], owner, name, following[1:]))
        elif index == 0 or not isinstance(leaves[index - 1][0], nn.Conv2d):
            raise LayoutError(f"{type(model).__name__}: {type(module).__name__} not after a conv")
    return links


def chain_links(model: nn.Module) -> list[_Link]:
    """The ``conv → activation`` steps of ``model``'s chain (the live modules, with where each
    sits, so a pass can replace them); raises :class:`LayoutError` where there is no chain."""
    return _links(model)


def channel_ranges(model: nn.Module, images: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``r[k][c]``: the largest magnitude channel c of layer k takes where int8 stores it, over
    ``images``, for every conv k of the chain but the last (float64).

    After a ReLU (which converters fuse into the conv) that is ``max |ReLU(h_c)|``; any other
    activation (PReLU, LeakyReLU: LiteRT runs them as separate float ops between a quantized
    conv output and a re-quantized activation) also stores the conv output ``h_c`` itself, so
    ``r_c = max(max |h_c|, max |φ(h_c)|)``: stretching a channel whose negative half is large but
    damped by a small slope would otherwise blow up the conv output's range.
    """
    links = _links(model)
    ranges = [torch.zeros(link.conv.out_channels, dtype=torch.float64) for link in links[:-1]]
    chain = [copy.deepcopy(nn.Sequential(link.conv, link.activation)).double() for link in links]
    with torch.no_grad():
        for image in images:
            x = image.to(torch.float64)
            for k, step in enumerate(chain[:-1]):
                h = step[0](x)
                x = step[1](h)
                r = x.abs().amax(dim=(0, 2, 3))
                if not isinstance(step[1], nn.ReLU):
                    r = torch.maximum(r, h.abs().amax(dim=(0, 2, 3)))
                ranges[k] = torch.maximum(ranges[k], r)
    return ranges


def _apply(
    model: nn.Module, ranges: list[torch.Tensor], alphas: list[torch.Tensor]
) -> tuple[nn.Module, list[float], list[tuple[float, float]]]:
    """A float64 copy of ``model`` with ``alphas[k]`` applied by E10 to hidden layer k."""
    laid_out = copy.deepcopy(model).double().eval()
    links = _links(laid_out)
    spreads, applied = [], []
    for k, (r, alpha) in enumerate(zip(ranges, alphas, strict=True)):
        live = r[r > 0]
        spreads.append(float(live.max() / live.min()) if live.numel() else 1.0)
        applied.append((float(alpha.min()), float(alpha.max())))
        first, second = links[k], links[k + 1]
        try:
            new_first, activation, new_second = rescale_channels(
                first.conv, first.activation, second.conv, alpha
            )
        except PreconditionError as error:
            raise LayoutError(f"layer {k}: {error}") from error
        if activation is not first.activation:
            raise LayoutError(f"layer {k}: {type(first.activation).__name__} would change")
        setattr(first.owner, first.name, new_first)
        setattr(second.owner, second.name, new_second)
        first.conv, second.conv = new_first, new_second
    return laid_out, spreads, applied


def int8_layout(
    model: nn.Module,
    calibration: Sequence[torch.Tensor],
    *,
    tolerance: float = EQUIVALENCE_TOLERANCE,
    strength: float | None = None,
    refine: bool = False,
    exact_copies: bool = True,
    relu_pairs: bool = False,
    negate: bool | None = None,
) -> tuple[nn.Module, LayoutReport]:
    """A copy of ``model`` with every hidden channel rescaled (E10) towards its layer's range:
    ``α_c = (R / r_c)^strength``.

    ``strength`` 1 evens the ranges fully, 0 changes nothing; ``None`` (default) tries
    :data:`STRENGTHS` and keeps the one with the best simulated INT8 fidelity on
    ``calibration`` (:mod:`reference_models.deploy.int8.int8_simulation`), so the layout never
    makes the simulated INT8 model worse. ``refine`` then tunes each channel's α further on
    the simulation (:func:`~reference_models.deploy.int8.refinement.refine_alphas`; measured:
    ECBSR-ET +2.2 dB simulated, but about a thousand simulations, ~15 min on a loaded 2-core
    machine, so it is off by default). ``calibration``: ``1×C×h×w`` tensors in [0, 1]. The
    input is not modified. ``exact_copies`` (default): channels that are exact copies of the
    input take the whole range from their exact bound and the others :data:`HEADROOM` of it;
    ``False`` scales the copies by their calibration range like every other channel (LiteRT
    has measured either one better, so the export tries both). ``relu_pairs``: every PReLU
    layer first becomes ReLU channel pairs (rule R24,
    :func:`~reference_models.deploy.int8.relu_pairs.relu_pair_form`) and the exact input copies
    always take the whole range (the strength then applies to the other channels only), so the
    laid-out model is that pair form. ``negate``: E11 on the PReLU layers' input copies
    (``None``: tried both ways where it applies, by simulation). Raises :class:`LayoutError`
    for an unsupported model or a non-equivalent result.
    """
    if not calibration:
        raise LayoutError("no calibration images")
    model, converted_from = inference_form(model)
    original = model
    if relu_pairs:
        from reference_models.deploy.int8.relu_pairs import relu_pair_form

        # in float64: the columns −a·W₂ of float32 factors are then exact
        model = relu_pair_form(copy.deepcopy(model).double())
    # R24 makes every layer a fused ReLU: the copies then cost the other channels nothing at
    # the whole range (measured in simulation on ECBSR-ET ×2: 38.3 dB with the copies at the
    # strength of the others, 41.6 dB with the copies at full range and strength 0).
    copy_strength = 1.0 if relu_pairs else None
    ranges = channel_ranges(model, calibration)
    found = input_copy_bounds([(link.conv, link.activation) for link in _links(model)])
    copies = sum(int((b > 0).sum()) for b in found)
    # exact_copies=False: E10 treats the copies like the calibrated channels (E11 still sees them)
    bounds = found if exact_copies else [torch.zeros_like(b) for b in found]
    dtype = next(model.parameters()).dtype
    candidates = STRENGTHS if strength is None else (strength,)
    # E11 is tried beside each strength where some PReLU layer carries input copies.
    negations = (False, True) if _negatable(model, found) else (False,)
    if negate is not None:  # a caller that scores layouts itself (deploy.decision) fixes it
        negations = (negate and _negatable(model, found),)
    simulated: dict[float, float] = {}
    simulated_negated: dict[float, float] = {}
    best = None
    for candidate in candidates:
        alphas = [
            channel_alphas(r, candidate, b, copy_strength)
            for r, b in zip(ranges, bounds, strict=True)
        ]
        for negate in negations:
            variant = _laid_out(model, ranges, alphas, negate, calibration)
            if len(candidates) * len(negations) > 1:
                chain = [(link.conv, link.activation) for link in _links(variant[0])]
                scores = simulated_negated if negate else simulated
                scores[candidate] = simulated_fidelity_db(chain, calibration)
            score = (simulated_negated if negate else simulated).get(candidate, 0.0)
            if best is None or score > best[0]:
                best = (score, candidate, negate, alphas, variant)
    assert best is not None
    best_db, chosen, negate, alphas, (laid_out, spreads, applied, negated) = best
    refined_db = None
    if refine and len(candidates) > 1:
        chain = [(link.conv, link.activation) for link in _links(laid_out)]
        factors, refined_db = refine_alphas(chain, ranges, calibration, best_db)
        if refined_db > best_db:
            # E10 again, on the chosen model itself: the search ran on it, E11's copies included
            laid_out = _apply(laid_out, ranges, factors)[0]
            alphas = [a * f for a, f in zip(alphas, factors, strict=True)]
            applied = [(float(a.min()), float(a.max())) for a in alphas]
    error = _max_error(original, laid_out, calibration)
    if not error <= tolerance:
        raise LayoutError(f"the laid-out model differs by {error:.3g} in float64 (> {tolerance})")
    report = LayoutReport(
        tuple(spreads),
        tuple(applied),
        error,
        chosen,
        simulated,
        refined_db,
        negated_channels=negated,
        simulated_negated_db=simulated_negated,
        input_copies=copies,
        exact_copies=exact_copies and copies > 0,
        converted_from=converted_from,
        relu_pairs=relu_pairs,
    )
    return laid_out.to(dtype), report


def inference_form(model: nn.Module) -> tuple[nn.Module, str | None]:
    """``model`` and ``None`` where its conv chain is one :func:`int8_layout` understands; else
    its inference form from :func:`reference_models.conversions.convert` (e.g. the ETDS
    dual-stream training form → ``ETDSForInference``, equal to ``clamp(model(x)[0], 0, 1)``)
    and the name of the training form's class. Raises :class:`LayoutError` when neither holds.
    """
    try:
        _links(model)
        return model, None
    except LayoutError as error:
        from reference_models.conversions import INFERENCE_FORMS, NotConvertibleError, convert

        if isinstance(model, INFERENCE_FORMS):
            raise
        try:
            converted = convert(model)
        except NotConvertibleError:
            raise error from None
        _links(converted)  # the inference form must have a chain, else LayoutError
        dtype = next(model.parameters()).dtype
        return converted.to(dtype).eval(), type(model).__name__


def _negatable(model: nn.Module, bounds: Sequence[torch.Tensor]) -> bool:
    """Whether some hidden layer that LiteRT does not fuse (PReLU, LeakyReLU) holds input
    copies, which E11 can move to the negative side."""
    links = _links(model)[:-1]
    return any(
        bool((b > 0).any()) and not isinstance(link.activation, nn.ReLU | nn.Identity)
        for link, b in zip(links, bounds, strict=True)
    )


def _laid_out(
    model: nn.Module,
    ranges: list[torch.Tensor],
    alphas: list[torch.Tensor],
    negate: bool,
    calibration: Sequence[torch.Tensor],
) -> tuple[nn.Module, list[float], list[tuple[float, float]], int]:
    """E10 with ``alphas``, then (``negate``) E11 on the input copies of the PReLU layers."""
    laid_out, spreads, applied = _apply(model, ranges, alphas)
    if not negate:
        return laid_out, spreads, applied, 0
    links = _links(laid_out)
    steps = [(link.conv, link.activation) for link in links]
    bounds = input_copy_bounds(steps)
    try:
        steps, negated = negate_input_copies(steps, bounds, calibration)
    except PreconditionError as error:
        raise LayoutError(f"E11: {error}") from error
    for link, (conv, activation) in zip(links, steps, strict=True):
        setattr(link.owner, link.name, conv)
        if link.activation_slot is not None:
            setattr(*link.activation_slot, activation)
        elif activation is not link.activation:
            raise LayoutError(f"{type(model).__name__}: its activation cannot be replaced")
    return laid_out, spreads, applied, negated


def _max_error(original: nn.Module, laid_out: nn.Module, images: Sequence[torch.Tensor]) -> float:
    colors = images[0].shape[1]
    probes = [probe_inputs((colors, 12, 12), samples=4, seed=0), *images[:2]]
    # the float32 figure only: the layout is judged by its float32 error, not by a verdict
    return max(
        compare_outputs(original, laid_out, x, weights64=False).max_abs_error for x in probes
    )


@dataclass(frozen=True)
class LayoutCandidate:
    """One INT8 layout of a model, equal to it in float64: ``name`` says which passes ran,
    ``simulated_db`` its simulated INT8 fidelity (∞ where none was simulated)."""

    name: str
    model: nn.Module
    report: LayoutReport
    simulated_db: float = math.inf


def _chosen_simulated_db(report: LayoutReport) -> float:
    """The simulated fidelity of the layout :func:`int8_layout` kept (∞: not simulated)."""
    if report.refined_db is not None:
        return report.refined_db
    scores = report.simulated_negated_db if report.negated_channels else report.simulated_db
    return (scores or {}).get(report.strength, math.inf)


def int8_candidates(
    model: nn.Module, calibration: Sequence[torch.Tensor], *, refine: bool = False
) -> list[LayoutCandidate]:
    """The layouts an export chooses among by the target runtime's own fidelity (the
    simulation has disagreed with LiteRT by several dB on some models): the simulated best
    (:func:`int8_layout`), the same with the input copies scaled by their calibration range
    where it used their exact bound, the R24 ReLU-pair form where the chain has PReLU layers,
    and the model as it is (``"plain"``, last: the export keeps the first on a tie)."""
    from reference_models.deploy.int8.relu_pairs import has_prelu_layers

    laid_out, report = int8_layout(model, calibration, refine=refine)
    candidates = [LayoutCandidate("layout", laid_out, report, _chosen_simulated_db(report))]
    if report.exact_copies:
        other, other_report = int8_layout(model, calibration, refine=refine, exact_copies=False)
    if report.exact_copies and not _same_weights(laid_out, other):
        candidates.append(
            LayoutCandidate(
                "layout, calibrated copies", other, other_report, _chosen_simulated_db(other_report)
            )
        )
    if has_prelu_layers(inference_form(model)[0]):
        paired, paired_report = int8_layout(model, calibration, refine=refine, relu_pairs=True)
        candidates.append(
            LayoutCandidate(
                "R24 ReLU pairs", paired, paired_report, _chosen_simulated_db(paired_report)
            )
        )
    plain = dataclasses.replace(report, strength=0.0, negated_channels=0, converted_from=None)
    plain_db = report.simulated_db.get(0.0, math.inf)
    candidates.append(LayoutCandidate("plain", model, plain, plain_db))
    return candidates


def _same_weights(first: nn.Module, second: nn.Module) -> bool:
    """Whether two layouts hold the same tensors (one file would be converted twice)."""
    a, b = first.state_dict(), second.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
