"""Put the image copies a PReLU chain carries on the negative side of INT8 (rule E11).

    from reference_models.deploy.int8.copy_negation import negate_input_copies
    steps, count = negate_input_copies(steps, bounds, images)

Why. LiteRT runs a PReLU between a quantized conv output and a re-quantized activation, so
each PReLU layer stores two int8 tensors: the conv output ``h`` and ``φ(h)``. In ECBSR's ET
form the real channels of ``h`` reach far below zero (e.g. [−15.8, 5.6]: large negative
pre-activations that small slopes damp), while the carried input copies are ≥ 0 and can only use
the few levels above zero. E11 (:mod:`et.rules.negate_nonnegative_channels`) negates a channel
that is non-negative on the input domain and gives it the slope −μ/β:

    h'_c = −β·h_c ∈ [L, 0],   φ'(h'_c) = μ·h_c ∈ [0, U],   the next conv's column c ÷ μ,

exactly, for every image in [0, 1]. This pass takes ``L`` (the most negative value of the
layer's real channels before the PReLU) and ``U`` (their largest value after it) from the
calibration images and sets ``β_c = −L/B_c`` and ``μ_c = U/B_c``, ``B_c`` being the copy's exact
bound (:mod:`reference_models.deploy.int8.input_copies`). Each copy then spans both tensors' ranges
without widening them. Measured in simulation on ECBSR-ET M4C16 ×2 (calibrated on Set5):
36.1 dB → 39.3 dB after the E10 layout at strength ½, and 40.2 dB at strength ¼.

Only layers whose activation LiteRT does not fuse into the conv (PReLU, LeakyReLU) are
touched; after a ReLU the conv output is never stored, and E11 would turn it into a PReLU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from et.rules.negate_nonnegative_channels import negate_nonnegative_channels

__all__ = ["negate_input_copies"]


def _real_channel_extents(
    steps: Sequence[tuple[nn.Conv2d, nn.Module]],
    bounds: Sequence[torch.Tensor],
    images: Sequence[torch.Tensor],
) -> list[tuple[float, float]]:
    """Per hidden layer k: (lowest conv output, highest activation output) over the channels
    that are not input copies, on ``images`` (float64)."""
    extents = [(0.0, 0.0) for _ in bounds]
    # Images of one size run as one batch (fewer, larger convs; min/max are over all of them).
    if len({tuple(image.shape[1:]) for image in images}) == 1:
        images = [torch.cat(list(images))]
    with torch.no_grad():
        for image in images:
            x = image.to(torch.float64)
            for k, (conv, activation) in enumerate(steps[:-1]):
                h = conv(x)
                x = activation(h)
                real = bounds[k] == 0
                if real.any():
                    low = min(extents[k][0], float(h[:, real].min()))
                    high = max(extents[k][1], float(x[:, real].max()))
                    extents[k] = (low, high)
    return extents


def negate_input_copies(
    steps: Sequence[tuple[nn.Conv2d, nn.Module]],
    bounds: Sequence[torch.Tensor],
    images: Sequence[torch.Tensor],
) -> tuple[list[tuple[nn.Conv2d, nn.Module]], int]:
    """The ``(conv, activation)`` steps with every input copy of every PReLU/LeakyReLU layer
    negated by E11, and how many channels were negated (0: the steps are returned unchanged).

    ``steps``: float64 chain whose first conv reads images in [0, 1]; ``bounds[k][c] > 0``: the
    exact bound of input copy c of hidden layer k (``input_copy_bounds``, on ``steps``).
    """
    steps = list(steps)
    extents = _real_channel_extents(steps, bounds, images)
    dtype = torch.float64
    channels_in = steps[0][0].in_channels
    low, high = torch.zeros(channels_in, dtype=dtype), torch.ones(channels_in, dtype=dtype)
    negated = 0
    for k, (lowest, highest) in enumerate(extents):
        conv, activation = steps[k]  # conv reads layer k−1, maybe already negated
        copies = (bounds[k] > 0).nonzero().flatten().tolist()
        copy_high = bounds[k].clone()
        fused = isinstance(activation, nn.ReLU | nn.Identity)
        if copies and not fused and lowest < 0 < highest:
            size = bounds[k][copies]
            beta, mu = -lowest / size, highest / size
            following, after = steps[k + 1]
            conv, activation, following = negate_nonnegative_channels(
                conv, activation, following, copies, beta, mu, low, high
            )
            steps[k], steps[k + 1] = (conv, activation), (following, after)
            copy_high[copies] = highest  # μ_c·B_c: every copy now reaches U after the PReLU
            negated += len(copies)
        # What the next conv reads: copies in [0, their bound], the rest unknown.
        low = torch.where(bounds[k] > 0, 0.0, -torch.inf).to(dtype)
        high = torch.where(bounds[k] > 0, copy_high, torch.inf).to(dtype)
    return steps, negated
