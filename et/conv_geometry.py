"""Geometry of a 2-D convolution, read from and written to ``torch.nn.Conv2d``.

Rules reason about stride, padding, dilation and groups as plain integer pairs; this module is
the one place that normalises PyTorch's spellings (ints, tuples, ``"same"``/``"valid"``) and
builds new convolutions without touching the caller's modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

Pair = tuple[int, int]


def pair(value: int | Sequence[int]) -> Pair:
    """``(v, v)`` for an int ``v``, the two entries of a length-2 sequence as ints otherwise."""
    if isinstance(value, int):
        return (value, value)
    if len(value) != 2:
        raise ValueError(f"expected an int or a pair, got {value!r}")
    return (int(value[0]), int(value[1]))


@dataclass(frozen=True)
class ConvGeometry:
    """Everything about a Conv2d except its weights.

    ``padding`` is explicit per side pair ``(ph, pw)`` (symmetric), ``padding_mode`` PyTorch's.
    """

    in_channels: int
    out_channels: int
    kernel_size: Pair
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    groups: int = 1
    padding_mode: str = "zeros"

    @property
    def is_pointwise(self) -> bool:
        return self.kernel_size == (1, 1)


def geometry_of(conv: nn.Conv2d) -> ConvGeometry:
    """Read the geometry of ``conv``, resolving ``padding="same"/"valid"`` to integers."""
    kernel = pair(conv.kernel_size)
    dilation = pair(conv.dilation)
    padding = conv.padding
    if padding == "valid":
        padding = (0, 0)
    elif padding == "same":
        spans = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
        if any(span % 2 for span in spans):
            raise ValueError(
                f"padding='same' with kernel {kernel} and dilation {dilation} pads "
                "asymmetrically; rules need symmetric padding"
            )
        padding = tuple(span // 2 for span in spans)
    return ConvGeometry(
        in_channels=conv.in_channels,
        out_channels=conv.out_channels,
        kernel_size=kernel,
        stride=pair(conv.stride),
        padding=pair(padding),
        dilation=dilation,
        groups=conv.groups,
        padding_mode=conv.padding_mode,
    )


def make_conv(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    stride: int | Pair = 1,
    padding: int | Pair = 0,
    dilation: int | Pair = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> nn.Conv2d:
    """A new ``nn.Conv2d`` holding copies of ``weight`` and ``bias`` (same dtype and device)."""
    out_channels, in_per_group, kh, kw = weight.shape
    conv = nn.Conv2d(
        in_per_group * groups,
        out_channels,
        (kh, kw),
        stride=pair(stride),
        padding=pair(padding),
        dilation=pair(dilation),
        groups=groups,
        bias=bias is not None,
        padding_mode=padding_mode,
        device=weight.device,
        dtype=weight.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(weight)
        if bias is not None:
            conv.bias.copy_(bias)
    return conv


def conv_bias(conv: nn.Conv2d) -> torch.Tensor:
    """The conv's bias, or zeros when it has none (detached)."""
    if conv.bias is not None:
        return conv.bias.detach()
    return torch.zeros(conv.out_channels, dtype=conv.weight.dtype, device=conv.weight.device)


def conv_like(
    like: nn.Conv2d,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    padding: int | Pair | None = None,
    groups: int | None = None,
) -> nn.Conv2d:
    """A new conv holding ``weight`` and ``bias`` with the stride, padding, dilation, groups and
    padding mode of ``like`` (``padding``/``groups`` override those two when given).

    Channel counts and kernel size come from ``weight``: ``out = weight.shape[0]``,
    ``in = weight.shape[1] · groups``. ``like`` is only read.
    """
    geometry = geometry_of(like)
    return make_conv(
        weight,
        bias,
        stride=geometry.stride,
        padding=geometry.padding if padding is None else padding,
        dilation=geometry.dilation,
        groups=geometry.groups if groups is None else groups,
        padding_mode=geometry.padding_mode,
    )


def conv_valid(conv: nn.Conv2d, padded: torch.Tensor) -> torch.Tensor:
    """``conv`` applied with padding 0 to an input the caller has already padded.

    For originals whose border is not the conv's own zero padding (a BN constant, a bias ring):
    the caller writes the border, this runs ``conv``'s weights, stride, dilation and groups.
    """
    return F.conv2d(
        padded,
        conv.weight,
        conv.bias,
        stride=conv.stride,
        padding=0,
        dilation=conv.dilation,
        groups=conv.groups,
    )
