"""Per-channel refinement of the E10 INT8 layout by simulated fidelity (coordinate search).

    from reference_models.deploy.int8.refinement import refine_alphas
    factors, db = refine_alphas(chain, ranges, images, start_db)

Why a search. E10 multiplies hidden channel c by any α_c > 0 without changing the function
(ReLU(αt) = αReLU(t)), but in INT8 α_c moves precision between three places: channel c's own
activation levels (a larger α_c uses more of the tensor's per-tensor scale), the other channels
of the tensor (once α_c·r_c exceeds the tensor's range R, everyone's scale grows), and the
weights reading c (the next conv's column c is divided by α_c, so those taps get fewer of their
row's per-channel levels). Where LiteRT stores a tensor twice (a conv output and its float
PReLU), both ranges count. No closed-form α balances all of these, but the simulation
(:mod:`reference_models.deploy.int8.int8_simulation`) predicts LiteRT to a few hundredths of a dB,
so
the α are tuned on it directly: for each hidden layer and each live channel, multiply α_c by
``f`` and by ``1/f`` (``f`` = 2, then √2) and keep a change only when the simulated fidelity on
the calibration images rises. Every candidate is itself an E10 application, so the result is
exact in real arithmetic whatever the search does; it can only raise the simulated fidelity.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from tqdm import tqdm

from et.rules.rescale_channels import rescale_channels
from reference_models.deploy.int8.int8_simulation import simulated_fidelity_db

__all__ = ["REFINEMENT_STEPS", "refine_alphas"]

#: Multiplicative steps tried per channel, coarse then fine.
REFINEMENT_STEPS = (2.0, 2.0**0.5)


def refine_alphas(
    chain: Sequence[tuple[nn.Conv2d, nn.Module]],
    ranges: Sequence[torch.Tensor],
    images: Sequence[torch.Tensor],
    start_db: float,
    *,
    steps: Sequence[float] = REFINEMENT_STEPS,
) -> tuple[list[torch.Tensor], float]:
    """Factors ``f[k][c]`` (float64, 1 where unchanged) to multiply the α of hidden layer k
    by, and the simulated fidelity (dB) they reach from ``start_db``.

    ``chain``: the ``(conv, activation)`` steps of the laid-out model (float64); ``ranges[k]``:
    the calibration range of hidden layer k (channels with range 0 are left alone).
    """
    steps_list = [(conv, activation) for conv, activation in chain]
    factors = [torch.ones_like(r, dtype=torch.float64) for r in ranges]
    best = start_db
    live = [(r > 0).nonzero().flatten().tolist() for r in ranges]
    # disable=None: a bar on a terminal, nothing in logs and tests
    progress = tqdm(
        total=len(steps) * sum(map(len, live)), desc="INT8 refinement", leave=False, disable=None
    )
    for step in steps:
        for k, channels in enumerate(live):
            for c in channels:
                progress.update()
                for factor in (step, 1.0 / step):
                    alpha = torch.ones_like(factors[k])
                    alpha[c] = factor
                    conv1, activation = steps_list[k]
                    conv2, following = steps_list[k + 1]
                    new1, new_activation, new2 = rescale_channels(conv1, activation, conv2, alpha)
                    candidate = list(steps_list)
                    candidate[k] = (new1, new_activation)
                    candidate[k + 1] = (new2, following)
                    db = simulated_fidelity_db(candidate, images)
                    if db > best:
                        best, steps_list = db, candidate
                        factors[k][c] *= factor
                        break
    progress.close()
    return factors, best
