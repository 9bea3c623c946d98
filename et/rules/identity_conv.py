"""R6: the identity map as a convolution (Dirac kernel).

Theorem. For C channels, g groups (``g | C``) and an odd kernel ``KH×KW``, let

    K[i, i mod (C/g), (KH − 1)/2, (KW − 1)/2] = 1, all other entries 0, bias 0,

with stride 1 and padding ``((KH − 1)/2, (KW − 1)/2)`` ("same"). Output channel i of group
``⌊i/(C/g)⌋`` reads input channel ``⌊i/(C/g)⌋·C/g + i mod (C/g) = i`` at offset 0 only, so
``conv(x; K) = x`` for every x. With a BatchNorm after the identity (RepVGG's identity branch),
``BN(x) = conv(x; t·K, c)`` by R1 (:func:`identity_branch_as_conv`).
"""

from __future__ import annotations

import torch
from torch import nn

from et.contract import Precondition, Rule, document_preconditions, register
from et.conv_geometry import Pair, make_conv, pair
from et.rules.fuse_conv_bn import fuse_conv_bn

RULE_ID = "R6"


CHANNELS = Precondition(
    RULE_ID,
    "channels",
    "C_in = C_out = C with groups dividing C",
    why="the conv maps the C channels to themselves",
)
STRIDE = Precondition(
    RULE_ID, "stride", "stride 1", why="a stride subsamples; identity_conv builds stride 1"
)
ODD_KERNEL = Precondition(
    RULE_ID,
    "odd_kernel",
    "an odd kernel on each axis, padded by (K − 1)/2",
    why="an even kernel has no centre tap, so a symmetric padding would shift or resize the "
    "image; identity_conv builds that padding",
)


def check_identity(channels: int, kernel_size: int | Pair = 3, groups: int = 1) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless a Dirac conv can be the identity."""
    CHANNELS.require(
        channels >= 1 and groups >= 1 and channels % groups == 0,
        f"channels={channels}, groups={groups}",
    )
    kernel = pair(kernel_size)
    ODD_KERNEL.require(
        all(k >= 1 and k % 2 == 1 for k in kernel),
        f"kernel {kernel} has no centre tap",
    )


def identity_conv(
    channels: int,
    kernel_size: int | Pair = 3,
    groups: int = 1,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> nn.Conv2d:
    """A ``channels → channels`` conv (stride 1, same padding, zero bias) computing ``x``."""
    check_identity(channels, kernel_size, groups)
    kh, kw = pair(kernel_size)
    weight = torch.empty((channels, channels // groups, kh, kw), dtype=dtype, device=device)
    with torch.no_grad():
        # dirac_ sets K[g·C/g + j, j, centre] = 1, i.e. K[i, i mod (C/g), centre] = 1.
        nn.init.dirac_(weight, groups=groups)
    bias = torch.zeros(channels, dtype=dtype, device=device)
    return make_conv(weight, bias, stride=1, padding=(kh // 2, kw // 2), groups=groups)


def identity_branch_as_conv(
    bn: nn.BatchNorm2d,
    kernel_size: int | Pair = 3,
    groups: int = 1,
) -> nn.Conv2d:
    """RepVGG's identity branch ``BN(x)`` as a conv: R6 then R1 (dtype and device of ``bn``).

    ``groups`` must be that of the sibling conv branches the result will be summed with (R3).
    """
    reference = bn.running_mean if bn.running_mean is not None else bn.weight
    dtype = reference.dtype if reference is not None else torch.float32
    device = reference.device if reference is not None else None
    conv = identity_conv(bn.num_features, kernel_size, groups, dtype=dtype, device=device)
    return fuse_conv_bn(conv, bn)


RULE = register(
    Rule(
        id=RULE_ID,
        name="identity_conv",
        title="Identity as a Dirac convolution",
        statement="x = conv(x; K) with K[i, i mod (C/g), centre] = 1, stride 1, same padding",
        preconditions=(
            CHANNELS,
            STRIDE,
            ODD_KERNEL,
        ),
        transform=identity_conv,
        proof="proofs.rules.identity_conv",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
