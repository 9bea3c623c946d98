"""Which hidden channels of a conv chain are exact, non-negative copies of an input channel.

    from reference_models.deploy.int8.input_copies import input_copy_bounds
    bounds = input_copy_bounds(chain)   # bounds[k][c] > 0: channel c of layer k is w·x_j

The ET forms of ABPN and ECBSR carry the RGB input through their body: channel c of layer k is
produced by a row whose only non-zero weight is a positive centre tap reading a channel that
is itself such a copy (or, in layer 0, an input channel), with bias 0. By induction its value
is ``w_k ⋯ w_0 · x_j``, and for inputs in [0, 1] (the images the models are built for) it lies
in ``[0, w_k ⋯ w_0]``; it is ≥ 0, so any ReLU, PReLU or LeakyReLU after it is the identity on
it, and zero padding (the value 0) keeps it in that interval. That bound is exact and holds
for every image, unlike a calibration range, which is why the INT8 layout can stretch these
channels to the full range of their tensor and leave the others some headroom.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["input_copy_bounds"]

#: activations that are the identity on non-negative values
_IDENTITY_ON_NONNEGATIVE = (nn.ReLU, nn.PReLU, nn.LeakyReLU, nn.Identity)


def _source(conv: nn.Conv2d, row: int) -> tuple[int, float] | None:
    """``(j, w)`` when row ``row`` of ``conv`` is ``w·(centre tap of input channel j)``,
    ``w > 0``, bias 0; else ``None``."""
    if conv.groups != 1 or conv.stride != (1, 1) or conv.dilation != (1, 1):
        return None
    kh, kw = conv.kernel_size
    if kh % 2 == 0 or kw % 2 == 0 or conv.padding not in {(kh // 2, kw // 2)}:
        return None
    if conv.bias is not None and float(conv.bias.detach()[row]) != 0.0:
        return None
    weight = conv.weight.detach()[row]
    nonzero = weight.nonzero()
    if nonzero.shape[0] != 1 or tuple(nonzero[0, 1:].tolist()) != (kh // 2, kw // 2):
        return None
    j = int(nonzero[0, 0])
    value = float(weight[j, kh // 2, kw // 2])
    return (j, value) if value > 0 else None


def input_copy_bounds(chain: Sequence[tuple[nn.Conv2d, nn.Module]]) -> list[torch.Tensor]:
    """For every step k of ``chain`` but the last, ``bounds[k][c]`` (float64): the largest value
    channel c can take if it is an exact copy of an input channel (inputs in [0, 1]), else 0."""
    previous = torch.ones(chain[0][0].in_channels, dtype=torch.float64)  # the input: x ≤ 1
    bounds = []
    for conv, activation in chain[:-1]:
        bound = torch.zeros(conv.out_channels, dtype=torch.float64)
        if isinstance(activation, _IDENTITY_ON_NONNEGATIVE):
            for row in range(conv.out_channels):
                source = _source(conv, row)
                if source is not None and previous[source[0]] > 0:
                    bound[row] = source[1] * previous[source[0]]
        bounds.append(bound)
        previous = bound
    return bounds
