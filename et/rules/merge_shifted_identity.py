"""R18: a value added to a conv that reads the value shifted by a constant is one conv.

Theorem. Let ``z`` have C channels, ``c`` be one constant per channel and ``s = z − c``. For a
conv with C input and C output channels, stride 1, g groups, dilation d, an odd kernel
``KH×KW`` and padding ``(d(KH − 1)/2, d(KW − 1)/2)`` (so output pixel (i, j) has its centre
tap on input pixel (i, j)), weight W and bias b,

    conv(z − c; W, b) + z = conv(z − c; W + I, b + c),

where ``I[o, o mod (C/g), (KH − 1)/2, (KW − 1)/2] = 1`` (R6's Dirac kernel with the conv's
groups): ``z = (z − c) + c = conv(s; I, 0) + c`` (R6: the centre tap reads pixel (i, j) itself,
whatever the padding mode, since it never reaches the border), and two convs of one input with
one geometry sum to the conv with the summed weights (R3). FMEN's residual-in-residual block
writes it: the 1×1's output z is padded with the 1×1's bias, ``pad₀(z − b₁) + b₁``, read by a
valid 3×3, and z itself is added back; after the padding becomes the 3×3's own (G1, G4) the sum
is ``conv(z − b₁) + z``, and this rule leaves z a single reader, the shift, which folds into
the 1×1 (G3) and the 1×1 then into the 3×3 (R7). With c = 0 it is R6 + R3.
"""

from __future__ import annotations

import torch
from torch import nn

from et.contract import (
    Precondition,
    Rule,
    document_preconditions,
    register,
    require_torch_semantics,
)
from et.conv_geometry import conv_bias, conv_like, pair

RULE_ID = "R18"

SHIFT_SHAPE = Precondition(
    RULE_ID,
    "shift_shape",
    "the shift c is one constant per channel: a scalar, shape [C] or [1, C, 1, 1] with C = "
    "conv.in_channels",
    why="a shift that varies over the image is no bias",
)
FINITE = Precondition(
    RULE_ID, "finite", "the shift is finite", why="z − c + c is not z for c = ±∞ (it is NaN)"
)
CHANNELS = Precondition(
    RULE_ID,
    "channels",
    "the conv maps C channels to C channels (in_channels = out_channels)",
    why="z is added to the conv's output, so both have C channels, and the conv reads z − c",
)
STRIDE = Precondition(
    RULE_ID, "stride", "stride 1", why="a strided conv's output is smaller than z: no sum"
)
CENTRED = Precondition(
    RULE_ID,
    "centred",
    "an odd kernel on each axis, padded by d·(K − 1)/2 (output pixel (i, j) has its centre tap "
    "on input pixel (i, j))",
    why="otherwise no tap of the kernel reads pixel (i, j) itself, or the output is resized",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "conv is a torch Conv2d computing its torch class's forward (no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)


def shift_per_channel(shift: torch.Tensor | float, channels: int) -> torch.Tensor:
    """The shift as a ``[C]`` vector (a scalar broadcast to every channel)."""
    value = torch.as_tensor(shift)
    SHIFT_SHAPE.require(
        value.ndim == 0 or tuple(value.shape) in {(channels,), (1, channels, 1, 1)},
        f"shift shape {tuple(value.shape)}, conv.in_channels={channels}",
    )
    FINITE.require(bool(torch.isfinite(value).all()), "it holds inf or NaN")
    return value.reshape(-1).expand(channels)


def check_shifted_identity(conv: nn.Conv2d, shift: torch.Tensor | float) -> torch.Tensor:
    """Raise :class:`~et.contract.PreconditionError` unless ``conv(z − c) + z`` is one conv;
    returns c as ``[C]``."""
    require_torch_semantics(conv, nn.Conv2d, TORCH_MODULES)
    CHANNELS.require(
        conv.in_channels == conv.out_channels,
        f"in_channels={conv.in_channels}, out_channels={conv.out_channels}",
    )
    STRIDE.require(pair(conv.stride) == (1, 1), f"stride {tuple(conv.stride)}")
    kernel, dilation = pair(conv.kernel_size), pair(conv.dilation)
    padding = conv.padding
    centred = not isinstance(padding, str) and all(
        k % 2 == 1 and p == d * (k - 1) // 2
        for k, d, p in zip(kernel, dilation, pair(padding), strict=True)
    )
    CENTRED.require(
        centred or (padding == "same" and all(k % 2 == 1 for k in kernel)),
        f"kernel {kernel}, dilation {dilation}, padding {padding}",
    )
    return shift_per_channel(shift, conv.in_channels)


def merge_shifted_identity(conv: nn.Conv2d, shift: torch.Tensor | float) -> nn.Conv2d:
    """A new conv ``conv'`` with ``conv'(z − c) = conv(z − c) + z`` (``shift`` = c)."""
    c = check_shifted_identity(conv, shift)
    weight = conv.weight.detach()
    identity = torch.zeros_like(weight)
    with torch.no_grad():
        # dirac_ sets I[g·C/g + j, j, centre] = 1, i.e. I[o, o mod (C/g), centre] = 1
        nn.init.dirac_(identity, groups=conv.groups)
    bias = conv_bias(conv) + c.to(dtype=weight.dtype, device=weight.device)
    return conv_like(conv, weight + identity, bias)


RULE = register(
    Rule(
        id=RULE_ID,
        name="merge_shifted_identity",
        title="Identity added to a conv of the shifted value",
        statement="conv(z − c; W, b) + z = conv(z − c; W + I, b + c), I the centred Dirac kernel",
        preconditions=(SHIFT_SHAPE, FINITE, CHANNELS, STRIDE, CENTRED, TORCH_MODULES),
        transform=merge_shifted_identity,
        proof="proofs.rules.merge_shifted_identity",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
