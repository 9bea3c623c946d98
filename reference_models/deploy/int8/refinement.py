"""Per-channel refinement of an INT8 layout by simulated fidelity (coordinate search), on the
compiled graph of any network.

    from reference_models.deploy.int8.refinement import refine_layout
    refined, report = refine_layout(network, calibration)   # a CompiledNetwork, its report

Why a search. E10 multiplies hidden channel c between two convs of a chain by any α_c > 0
without changing the function (ReLU(αt) = αReLU(t)), but in INT8 α_c moves precision between
three places: channel c's own activation levels (a larger α_c uses more of the tensor's
per-tensor scale), the other channels of the tensor (once α_c·r_c exceeds the tensor's range R,
everyone's scale grows), and the weights reading c (the next conv's column c is divided by α_c,
so those taps get fewer of their row's per-channel levels). Where LiteRT stores a tensor twice
(a conv output and its float PReLU), both ranges count. No closed-form α balances all of these,
but the simulation (:mod:`reference_models.deploy.int8.simulation`) predicts LiteRT to a few
hundredths of a dB on conv chains, so the α are tuned on it directly: for each hidden layer of
each chain of the graph (:func:`~reference_models.deploy.int8.graph_chains.conv_chains`) and each
live channel, multiply α_c by ``f`` and by ``1/f`` (``f`` = 2, then √2) and keep a change only
when the simulated fidelity on the calibration images rises. Every candidate is itself an E10
application, so the result is exact in real arithmetic whatever the search does; it can only
raise the simulated fidelity, and the kept factors go through
:func:`~reference_models.deploy.int8.layout.graph_layout`, which checks the refined graph in
float64 against the graph it started from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from tqdm import tqdm

from reference_models.deploy.compiled_network import CompiledNetwork
from reference_models.deploy.int8.layout import (
    LayoutReport,
    graph_layout,
    plan_layout,
    rescaled_graph,
)
from reference_models.deploy.int8.simulation import simulated_int8_fidelity_db

__all__ = ["REFINEMENT_STEPS", "refine_layout"]

#: Multiplicative steps tried per channel, coarse then fine.
REFINEMENT_STEPS = (2.0, 2.0**0.5)


def refine_layout(
    network: CompiledNetwork,
    calibration: Sequence[torch.Tensor],
    *,
    steps: Sequence[float] = REFINEMENT_STEPS,
) -> tuple[CompiledNetwork, LayoutReport]:
    """``network`` (already laid out or not) with every live hidden channel's E10 factor tuned
    by the search of the module docstring, and the layout report of that last E10 step
    (``refined_db``: the simulated fidelity reached; ``strength`` 0: the factors are the
    search's alone). Raises :class:`~reference_models.deploy.int8.layout.LayoutError` where the
    graph has no chain or the result is not equivalent."""
    measured = plan_layout(network.program, calibration, strength=0.0)
    factors = [[torch.ones_like(r) for r in chain] for chain in measured.ranges]

    def simulate() -> float:
        plan = measured.at(0.0, factors=factors)
        candidate = network.with_program(rescaled_graph(network.program, plan))
        return simulated_int8_fidelity_db(candidate, calibration)

    best = simulate()
    live = [
        (chain, k, c)
        for chain, ranges in enumerate(measured.ranges)
        for k, r in enumerate(ranges)
        for c in (r > 0).nonzero().flatten().tolist()
    ]
    # disable=None: a bar on a terminal, nothing in logs and tests
    with tqdm(
        total=len(steps) * len(live), desc="INT8 refinement", leave=False, disable=None
    ) as progress:
        for step in steps:
            for chain, k, c in live:
                progress.update()
                kept = factors[chain][k][c].clone()
                for factor in (step, 1.0 / step):
                    factors[chain][k][c] = kept * factor
                    db = simulate()
                    if db > best:
                        best = db
                        break
                    factors[chain][k][c] = kept
    program, report = graph_layout(
        network.program, calibration, strength=0.0, factors=factors, measured=measured
    )
    return network.with_program(program), dataclasses.replace(report, refined_db=best)
