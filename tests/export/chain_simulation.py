"""Reference INT8 simulation and channel ranges of a conv chain given as module steps, written
apart from the graph code (:mod:`reference_models.deploy.int8.simulation`,
:mod:`reference_models.deploy.int8.layout`) so tests can compare the two.

The scheme is LiteRT's post-training one as :mod:`reference_models.deploy.litert.export`
configures it: weights int8 symmetric per output channel, every stored activation int8 affine
per tensor over its calibration ``[min(0, lo), hi]``, the input in ``[0, 1]``; where the
activation is not a fusable ReLU (PReLU, LeakyReLU) the conv output is stored too. It compares
the output of the chain (before any PixelShuffle, which INT8 only moves).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from reference_models.deploy.int8.simulation import fake_quant_activation, fake_quant_weight

__all__ = ["channel_ranges", "simulated_fidelity_db"]


def _run(
    steps: Sequence[nn.Sequential],
    x: torch.Tensor,
    ranges: list[list[float]] | None,
    observed: list[list[float]],
) -> torch.Tensor:
    """One pass; with ``ranges`` quantize the stored tensors, else record their ranges."""
    if ranges is not None:
        x = fake_quant_activation(x, 0.0, 1.0)
    slot = 0
    for conv, activation in steps:
        stored = [conv(x)]
        if not isinstance(activation, nn.ReLU):
            stored.append(activation(stored[0]))
        else:
            stored[0] = activation(stored[0])
        for i, tensor in enumerate(stored):
            if ranges is not None:
                stored[i] = fake_quant_activation(tensor, *ranges[slot])
            elif slot == len(observed):
                observed.append([tensor.min().item(), tensor.max().item()])
            else:
                observed[slot][0] = min(observed[slot][0], tensor.min().item())
                observed[slot][1] = max(observed[slot][1], tensor.max().item())
            if i == 0 and len(stored) == 2:
                stored[1] = activation(stored[0])
            slot += 1
        x = stored[-1]
    return x


def simulated_fidelity_db(
    chain: Sequence[tuple[nn.Conv2d, nn.Module]], images: Sequence[torch.Tensor]
) -> float:
    """PSNR (dB, peak 1) of the fake-INT8 chain against the float64 chain over ``images``."""
    exact = [nn.Sequential(copy.deepcopy(c), copy.deepcopy(a)).double() for c, a in chain]
    quantized = copy.deepcopy(exact)
    for step in quantized:
        step[0].weight.data = fake_quant_weight(step[0].weight.data)
    # Calibration images of one size run as one batch (min/max over a batch is the min/max
    # over its images); otherwise one by one.
    if len({tuple(image.shape[1:]) for image in images}) == 1:
        images = [torch.cat([image.double() for image in images])]
    ranges: list[list[float]] = []
    squared, count = 0.0, 0
    with torch.no_grad():
        outputs = [_run(exact, image.double(), None, ranges) for image in images]
        for image, expected in zip(images, outputs, strict=True):
            got = _run(quantized, image.double(), ranges, [])
            squared += float(((got - expected) ** 2).sum())
            count += expected.numel()
    mse = squared / max(count, 1)
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def channel_ranges(
    chain: Sequence[tuple[nn.Conv2d, nn.Module]], images: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """``r[k][c]``: the largest magnitude channel c of hidden layer k stores over ``images``
    (float64): after a ReLU its output, after any other activation also the conv output."""
    steps = [nn.Sequential(copy.deepcopy(c), copy.deepcopy(a)).double() for c, a in chain]
    ranges = [torch.zeros(conv.out_channels, dtype=torch.float64) for conv, _ in chain[:-1]]
    with torch.no_grad():
        for image in images:
            x = image.to(torch.float64)
            for k, step in enumerate(steps[:-1]):
                h = step[0](x)
                x = step[1](h)
                r = x.abs().amax(dim=(0, 2, 3))
                if not isinstance(step[1], nn.ReLU):
                    r = torch.maximum(r, h.abs().amax(dim=(0, 2, 3)))
                ranges[k] = torch.maximum(ranges[k], r)
    return ranges
