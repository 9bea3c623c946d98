"""Hypothesis strategies for convolution parameters, weights and image-like inputs.

Built so that no property can pass vacuously: weights mix unit-scale noise with large
magnitudes and exact zeros, biases are never all zero unless asked, BatchNorm statistics are
never the defaults, and inputs span [0, 1] images, ×255 images and real-valued tensors.

Requires the ``dev`` extra (hypothesis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from hypothesis import strategies as st
from torch import nn

from et.conv_geometry import make_conv


@dataclass(frozen=True)
class ConvConfig:
    """A drawn convolution geometry (square or not) with consistent channels and groups."""

    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int


@st.composite
def conv_configs(
    draw: st.DrawFn,
    *,
    max_channels: int = 6,
    kernel_sizes: tuple[int, ...] = (1, 2, 3, 4, 5),
    square: bool = False,
    strides: tuple[int, ...] = (1, 2),
    dilations: tuple[int, ...] = (1, 2),
    max_groups: int = 3,
    max_padding: int = 3,
) -> ConvConfig:
    """Conv geometries: kernels 1–5 (even included), strides, dilations, groups, paddings."""
    groups = draw(st.integers(1, max_groups))
    per_group_in = draw(st.integers(1, max(1, max_channels // groups)))
    per_group_out = draw(st.integers(1, max(1, max_channels // groups)))
    kh = draw(st.sampled_from(kernel_sizes))
    kw = kh if square else draw(st.sampled_from(kernel_sizes))
    stride = draw(st.sampled_from(strides))
    dilation = draw(st.sampled_from(dilations))
    ph = draw(st.integers(0, max_padding))
    pw = ph if square else draw(st.integers(0, max_padding))
    return ConvConfig(
        in_channels=per_group_in * groups,
        out_channels=per_group_out * groups,
        kernel_size=(kh, kw),
        stride=(stride, stride),
        padding=(ph, pw),
        dilation=(dilation, dilation),
        groups=groups,
    )


def _tensor_from_seed(
    shape: tuple[int, ...], seed: int, scale: float, zero_frac: float, dtype: torch.dtype
) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(shape, generator=generator, dtype=torch.float64) * scale
    if zero_frac > 0:
        mask = torch.rand(shape, generator=generator, dtype=torch.float64) < zero_frac
        values = values.masked_fill(mask, 0.0)
    return values.to(dtype)


@st.composite
def weight_tensors(
    draw: st.DrawFn,
    shape: tuple[int, ...],
    *,
    dtype: torch.dtype = torch.float64,
    allow_zero: bool = True,
) -> torch.Tensor:
    """Seeded tensors at scales 1e-3 … 1e2 with an optional share of exact zeros.

    Hypothesis draws the seed, scale and zero fraction, so shrinking stays meaningful while the
    tensor itself is dense and realistic.
    """
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([1e-3, 0.1, 0.5, 1.0, 3.0, 100.0]))
    zero_frac = draw(st.sampled_from([0.0, 0.0, 0.3])) if allow_zero else 0.0
    return _tensor_from_seed(shape, seed, scale, zero_frac, dtype)


@st.composite
def bias_tensors(
    draw: st.DrawFn, channels: int, *, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Biases that are never all zero (a zero bias would hide bias-handling bugs)."""
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([0.1, 1.0, 10.0]))
    bias = _tensor_from_seed((channels,), seed, scale, 0.0, dtype)
    return bias + torch.sign(bias) * 0.05 + (bias == 0).to(dtype) * 0.5


@st.composite
def conv2d_modules(
    draw: st.DrawFn,
    config: ConvConfig | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    bias: bool | None = None,
    **config_kwargs: object,
) -> nn.Conv2d:
    """A ``Conv2d`` with drawn geometry (or ``config``) and non-trivial weights and bias."""
    cfg = config if config is not None else draw(conv_configs(**config_kwargs))
    weight = draw(
        weight_tensors(
            (cfg.out_channels, cfg.in_channels // cfg.groups, *cfg.kernel_size), dtype=dtype
        )
    )
    with_bias = draw(st.booleans()) if bias is None else bias
    b = draw(bias_tensors(cfg.out_channels, dtype=dtype)) if with_bias else None
    return make_conv(
        weight, b, stride=cfg.stride, padding=cfg.padding, dilation=cfg.dilation, groups=cfg.groups
    )


@st.composite
def batch_norms(
    draw: st.DrawFn, channels: int, *, dtype: torch.dtype = torch.float64
) -> nn.BatchNorm2d:
    """An eval-mode BatchNorm with non-default running statistics, affine parameters and ε."""
    bn = nn.BatchNorm2d(channels, eps=draw(st.sampled_from([1e-5, 1e-3, 0.1])), dtype=dtype)
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.weight.copy_(torch.randn(channels, generator=generator, dtype=dtype) * 2)
        bn.bias.copy_(torch.randn(channels, generator=generator, dtype=dtype))
        bn.running_mean.copy_(torch.randn(channels, generator=generator, dtype=dtype) * 3)
        bn.running_var.copy_(torch.rand(channels, generator=generator, dtype=dtype) * 4 + 0.05)
    return bn.eval()


@st.composite
def image_batches(
    draw: st.DrawFn,
    channels: int,
    *,
    min_size: int = 1,
    max_size: int = 12,
    max_batch: int = 2,
    ranges: tuple[tuple[float, float], ...] = ((0.0, 1.0), (0.0, 255.0), (-3.0, 3.0)),
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Image-like batches ``[N, C, H, W]`` (odd and even sizes) in one of ``ranges``."""
    n = draw(st.integers(1, max_batch))
    height = draw(st.integers(min_size, max_size))
    width = draw(st.integers(min_size, max_size))
    low, high = draw(st.sampled_from(ranges))
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand((n, channels, height, width), generator=generator, dtype=torch.float64)
    return (low + (high - low) * x).to(dtype)


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """PyTorch's output length of a convolution along one axis."""
    return math.floor((size + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1
