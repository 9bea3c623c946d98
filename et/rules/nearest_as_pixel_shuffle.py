"""E9: nearest-neighbour upsampling by an integer factor as repeat-interleave + PixelShuffle.

Theorem. For an integer scale ``s ≥ 1`` and ``x`` with ``C`` channels,

    nearest(x, s)[c, H, W] = x[c, ⌊H/s⌋, ⌊W/s⌋] = PS(repeat_interleave(x, s², dim=1))[c, H, W].

Write ``H = h·s + i``, ``W = w·s + j`` with ``0 ≤ i, j < s``. PixelShuffle reads channel
``c·s² + i·s + j`` of the repeated tensor, which is input channel ``⌊(c·s² + i·s + j)/s²⌋ = c``
because ``0 ≤ i·s + j ≤ s² − 1``; so both sides are ``x[c, h, w]``. The repeat is the conv of E3
(a 1×1 kernel by default), so the whole upsampler is a conv and a PixelShuffle, operators every
mobile runtime has.
"""

from __future__ import annotations

import numbers

import torch
from torch import nn

from et.contract import Precondition, Rule, document_preconditions, register
from et.rules.repeat_interleave_conv import repeat_interleave_conv

RULE_ID = "E9"

INTEGER_SCALE = Precondition(
    RULE_ID,
    "integer_scale",
    "the scale is an integer ≥ 1",
    why="F.interpolate with a fractional factor samples a grid that is no PixelShuffle of any "
    "integer factor",
)
INTERLEAVED = Precondition(
    RULE_ID,
    "interleaved",
    "interleaved repeat order (PyTorch PixelShuffle)",
    why="the repeat conv this rule builds uses it; TF depth_to_space needs the tiled order (E3)",
)


def check_integer_scale(scale: object) -> int:
    """Return ``scale`` as an int; refuse booleans, fractions and values below 1."""
    is_integer = isinstance(scale, numbers.Integral) and not isinstance(scale, bool)
    if isinstance(scale, float) and scale.is_integer():
        is_integer = True
    INTEGER_SCALE.require(is_integer and int(scale) >= 1, f"scale = {scale!r}")
    return int(scale)


def nearest_as_pixel_shuffle(
    channels: int,
    scale: int,
    kernel_size: int = 1,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> nn.Sequential:
    """``Sequential(conv, PixelShuffle(s))`` equal to ``F.interpolate(x, scale_factor=s)``.

    The conv is E3's repeat-interleave conv with ``s²`` repeats (``kernel_size`` odd).
    """
    s = check_integer_scale(scale)
    conv = repeat_interleave_conv(channels, s * s, kernel_size, dtype=dtype, device=device)
    return nn.Sequential(conv, nn.PixelShuffle(s))


RULE = register(
    Rule(
        id=RULE_ID,
        name="nearest_as_pixel_shuffle",
        title="Nearest upsampling as repeat-interleave and PixelShuffle",
        statement="nearest(x, s) = PS(repeat_interleave(x, s², dim=1)) for integer s",
        preconditions=(
            INTEGER_SCALE,
            INTERLEAVED,
        ),
        transform=nearest_as_pixel_shuffle,
        proof="proofs.rules.nearest_as_pixel_shuffle",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
