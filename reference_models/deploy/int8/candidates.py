"""The INT8 layout candidates of a network, the ones :mod:`~reference_models.deploy.int8.
decision` chooses among.

The plain network, and E10 at each strength of :data:`~reference_models.deploy.int8.layout.
STRENGTHS` above 0, each with E11 off and on where E11 applies (a PReLU/LeakyReLU layer carrying
exact input copies), and with the copies at their exact bound or at their calibration range
where the network carries copies; beside each layout with exact copies, the same with the copies
that learned rows add split over channels on the int8 weight grid (R25,
:mod:`~reference_models.deploy.int8.copy_split`); where the network has PReLU layers, its R24
ReLU-pair form (:mod:`~reference_models.deploy.int8.relu_pairs`); with ``refine``, the
per-channel refinement of the simulated best. Every network, ours included, is laid out on its
compiled graph (:func:`~reference_models.deploy.int8.network_form.layout_network`, then
:func:`~reference_models.deploy.int8.layout.graph_layout`): one code path.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from reference_models.deploy.compiled_network import CompiledNetwork
from reference_models.deploy.int8.copy_split import split_input_copies
from reference_models.deploy.int8.layout import (
    STRENGTHS,
    LayoutError,
    LayoutReport,
    graph_layout,
    plan_layout,
)
from reference_models.deploy.int8.network_form import inference_form, layout_network
from reference_models.deploy.int8.refinement import refine_layout
from reference_models.deploy.int8.relu_pairs import graph_relu_pair_candidate, has_prelu_layers
from reference_models.deploy.int8.simulation import simulated_int8_fidelity_db

__all__ = ["RELU_PAIR_TOLERANCE", "LayoutCandidate", "finite_or_none", "layout_candidates"]


@dataclass
class LayoutCandidate:
    """One layout of the network: E10 ``strength`` (0: none), E11 ``negate``, exact input
    copies at their bound (``exact_copies``), the laid-out ``model`` and its layout report."""

    name: str
    strength: float
    negate: bool
    exact_copies: bool
    model: nn.Module
    report: LayoutReport | None
    simulated_db: float | None = None
    runtime_db: float | None = None
    macs: int | None = None  # multiply-accumulates of one call at the export size

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "strength": self.strength,
            "e11": self.negate,
            "exact_copies": self.exact_copies,
            "negated_channels": self.report.negated_channels if self.report else 0,
            "relu_pairs": bool(self.report and self.report.relu_pairs),
            "split_copies": self.report.split_copies if self.report else 0,
            "converted_from": self.report.converted_from if self.report else None,
            "simulated_db": finite_or_none(self.simulated_db),
            "runtime_db": finite_or_none(self.runtime_db),
            "macs": self.macs,
        }


def finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _name(strength: float, negate: bool, exact_copies: bool, copies: bool) -> str:
    if strength == 0 and not negate:
        return "plain"
    parts = [f"E10 {strength:g}" if strength > 0 else "E11 only"]
    if negate and strength > 0:
        parts.append("+ E11")
    if copies and strength > 0:
        parts.append("(exact copies)" if exact_copies else "(calibrated copies)")
    return " ".join(parts)


def layout_candidates(
    model: nn.Module,
    calibration: Sequence[torch.Tensor],
    *,
    strengths: Sequence[float] = STRENGTHS,
    refine: bool = False,
) -> list[LayoutCandidate]:
    """The plain ``model`` and its layouts (module docstring), deduplicated; every layout is a
    :class:`~reference_models.deploy.compiled_network.CompiledNetwork`. Raises
    :class:`LayoutError` where the network has nothing to lay out."""
    network, converted_from = layout_network(model, calibration)
    # the ranges are measured once for all candidates
    measured = plan_layout(network.program, calibration, strength=0.0)

    def lay_out(strength: float, negate: bool, exact: bool) -> tuple[nn.Module, LayoutReport]:
        program, report = graph_layout(
            network.program,
            calibration,
            strength=strength,
            negate=negate,
            exact_copies=exact,
            measured=measured,
        )
        return network.with_program(program), replace(report, converted_from=converted_from)

    first_model, first = lay_out(max(strengths), True, True)  # does it apply at all? E11 too?
    negations = (False, True) if first.negated_channels else (False,)
    exacts = (True, False) if first.input_copies else (True,)
    candidates = [LayoutCandidate("plain", 0.0, False, True, model, None)]
    for strength in strengths:
        for negate in negations:
            for exact in exacts if strength > 0 else (True,):
                if strength == 0 and not negate:
                    continue  # the plain model
                if (strength, negate, exact) == (max(strengths), True, True):
                    laid_out, report = first_model, first
                else:
                    laid_out, report = lay_out(strength, negate, exact)
                name = _name(strength, negate, exact, bool(first.input_copies))
                candidates.append(LayoutCandidate(name, strength, negate, exact, laid_out, report))
    # R24: every PReLU layer as ReLU channel pairs, the input copies at the whole range
    if isinstance(model, CompiledNetwork):
        paired = graph_relu_pair_candidate(network, calibration, strengths=strengths)
        if paired is not None:
            laid_out, report = paired
            report = replace(report, converted_from=converted_from)
            candidates.append(
                LayoutCandidate("R24 ReLU pairs", report.strength, False, True, laid_out, report)
            )
    elif has_prelu_layers(inference_form(model)[0]):
        candidates.append(_relu_pair_candidate(model, calibration, strengths))
    candidates += _split_candidates(candidates)
    if refine:
        # the simulated best, refined channel by channel (decide_layout reuses the scores)
        for candidate in candidates[1:]:
            if candidate.simulated_db is None:
                candidate.simulated_db = simulated_int8_fidelity_db(candidate.model, calibration)
        best = max(candidates[1:], key=lambda c: np.nan_to_num(c.simulated_db, nan=-np.inf))
        refined, report = refine_layout(best.model, calibration)
        # the report says what the refined network is: the best layout, then the search's E10
        start = best.report
        report = replace(
            report,
            strength=start.strength,
            negated_channels=start.negated_channels,
            exact_copies=start.exact_copies,
            converted_from=converted_from,
            relu_pairs=start.relu_pairs,
        )
        name = f"{best.name}, refined"
        candidate = LayoutCandidate(
            name, best.strength, best.negate, best.exact_copies, refined, report
        )
        candidate.simulated_db = report.refined_db
        candidates.append(candidate)
    return candidates


def _split_candidates(candidates: Sequence[LayoutCandidate]) -> list[LayoutCandidate]:
    """R25 beside every layout whose input copies sit at their exact bound (the only ones whose
    grid the split keeps exact): the copies that a learned row adds split over channels on the
    int8 weight grid (:mod:`reference_models.deploy.int8.copy_split`), where that adds any."""
    split = []
    for candidate in candidates:
        report = candidate.report
        if report is None or not report.exact_copies:
            continue
        model, added = split_input_copies(candidate.model)
        if added:
            split.append(
                dataclasses.replace(
                    candidate,
                    name=f"{candidate.name} + R25 split copies",
                    model=model,
                    report=dataclasses.replace(report, split_copies=added),
                )
            )
    return split


#: Largest accepted |R24 pair form − model| over probes, relative to the output's scale: the
#: pair form is computed in float64 and stored in float32 (one rounding per weight; measured
#: 3.7e-5 on the released ECBSR-ET ×2, whose carried-image weights are large; 1/255 ≈ 3.9e-3).
RELU_PAIR_TOLERANCE = 1e-4


def _relu_pair_candidate(
    model: nn.Module, calibration: Sequence[torch.Tensor], strengths: Sequence[float]
) -> LayoutCandidate:
    """R24: every PReLU layer of our architecture as ReLU channel pairs
    (:func:`~reference_models.deploy.int8.relu_pairs.relu_pair_form`, on the module), compiled,
    then E10 with the input copies at the whole range and the other channels at the strength
    the simulation prefers (R24 makes every layer a fused ReLU, so the copies cost the other
    channels nothing at the whole range: measured in simulation on ECBSR-ET ×2, 38.3 dB with
    the copies at the strength of the others, 41.6 dB at full range and strength 0)."""
    from et.testing import compare_outputs, probe_inputs
    from reference_models.deploy.int8.relu_pairs import relu_pair_form

    inference, converted_from = inference_form(model)
    # in float64: the columns −a·W₂ of float32 factors are exact until stored in float32
    paired = relu_pair_form(copy.deepcopy(inference).double()).to(torch.float32).eval()
    probe = probe_inputs((calibration[0].shape[1], 12, 12), samples=4, seed=0)
    gap = compare_outputs(inference, paired, probe, weights64=False)
    if not gap.max_abs_error <= RELU_PAIR_TOLERANCE * max(gap.scale, 1.0):
        raise LayoutError(f"the R24 pair form differs by {gap.max_abs_error:.3g} (float64 run)")
    network, _ = layout_network(paired, calibration)
    measured = plan_layout(network.program, calibration, strength=0.0)
    best = None
    for strength in strengths:
        program, report = graph_layout(
            network.program, calibration, strength=strength, copy_strength=1.0, measured=measured
        )
        laid_out = network.with_program(program)
        db = simulated_int8_fidelity_db(laid_out, calibration)
        if best is None or db > best[0]:
            best = (db, laid_out, report)
    assert best is not None
    db, laid_out, report = best
    report = replace(report, converted_from=converted_from, relu_pairs=True)
    candidate = LayoutCandidate("R24 ReLU pairs", report.strength, False, True, laid_out, report)
    candidate.simulated_db = db
    return candidate
