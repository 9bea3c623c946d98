"""The inputs an equivalence check feeds: structured images first, then noise, at two sizes.

One generator for :func:`et.testing.assert_equivalent` and ``etds verify``. Each batch starts
with *structured* images, the stripes first, so that even ``samples=1`` feeds an image on
which a flipped kernel, a transposed kernel or permuted input channels give a different output:

0. tilted stripes ``((r + b·k + φ) mod 7)/6``, slope ``b`` and phase ``φ`` different per
   channel (not symmetric under any flip, rotation or transpose; values 0, 1/6, …, 1);
1. checkerboards whose cell size and phase differ per channel;
2. a vertical edge, 3. a bright border on a dark field, 4. a diagonal ramp, each shifted by
   ``c`` columns in channel ``c`` (so no two channels are equal);
5. the constant images at the two ends of the domain;

then uniform noise. Every channel of every non-constant structured image differs from every
other channel: a channel mix-up cannot hide.

The seed draws the structured images too, so a batch of any size depends on it (a fixed
prefix would make ``samples ≤ 7`` the same batch for every seed): the stripes' seven grey
levels in a drawn order (one permutation for all channels: still no symmetry, channels still
distinct, 0 and 1 still present); images 1–4 in a drawn order, each rolled by a drawn
``(rows, columns)`` offset (the border is not rolled: it stays where padding acts) and
inverted (``1 − x``) or not by a drawn coin; the two constants last. Every step is a bijection
applied to all channels alike, so the properties above hold for every seed.

:func:`probe_batches` adds, per spatial size of :func:`probe_sizes` (one size and one of the
opposite parity in both directions, non-square, so a padding rule that only agrees at one
parity, such as TF-"same" stride 2 rebuilt as static padding, shows), the batch above, and at
the first size two noise batches: low amplitude near the domain's low end (where a carried
identity channel or a PReLU slope matters most) and around mid-grey (``[0.4, 0.6]`` of the
range, where a trained model's output is rarely clamped, so small bias errors are not hidden).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from et.domain import IMAGE_UNIT, InputDomain, as_domain

__all__ = ["finite_bounds", "probe_batches", "probe_inputs", "probe_sizes", "structured_images"]

#: the period of the stripes: 7 grey levels 0, 1/6, …, 1
_STRIPE_PERIOD = 7


def finite_bounds(domain: InputDomain | tuple[float, float]) -> tuple[float, float]:
    """``(low, high)`` of ``domain`` with an infinite end replaced 20 units from the other
    (``[-10, 10]`` when both are infinite): where probes of an unbounded domain are drawn."""
    domain = as_domain(domain)
    low = domain.low if math.isfinite(domain.low) else -10.0
    high = domain.high if math.isfinite(domain.high) else 10.0
    if not math.isfinite(domain.low) and math.isfinite(domain.high):
        low = domain.high - 20.0
    if math.isfinite(domain.low) and not math.isfinite(domain.high):
        high = domain.low + 20.0
    return low, high


def probe_sizes(height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(height, width)`` and ``(height + 1, width + 3)``: both parities in both directions,
    and the second is never square when the first is."""
    if height < 1 or width < 1:
        raise ValueError(f"the probe size {height}×{width} must be positive")
    return (height, width), (height + 1, width + 3)


def _shifted(pattern: torch.Tensor, channels: int) -> torch.Tensor:
    """``pattern`` (``[H, W]``) shifted by ``c`` columns in channel ``c``."""
    return torch.stack([pattern.roll(c, dims=-1) for c in range(channels)])


def structured_images(
    channels: int, height: int, width: int, dtype: torch.dtype = torch.float64
) -> list[torch.Tensor]:
    """The structured images (``[C, H, W]``, values in [0, 1]) in the order they are fed."""
    rows = torch.arange(height, dtype=dtype).reshape(-1, 1)
    cols = torch.arange(width, dtype=dtype).reshape(1, -1)
    stripes, checkers = [], []
    for c in range(channels):
        slope, phase = 2 + c // _STRIPE_PERIOD, (3 * c) % _STRIPE_PERIOD
        stripes.append(((rows + slope * cols + phase) % _STRIPE_PERIOD) / (_STRIPE_PERIOD - 1))
        cell = 1 + (c // 2) % 4
        checkers.append((rows // cell + (cols + c) // cell) % 2)
    border = torch.ones(height, width, dtype=dtype)
    border[1:-1, 1:-1] = 0
    edge = (cols >= width // 2).to(dtype).expand(height, width)
    ramp = ((rows + cols) / max(height + width - 2, 1)).expand(height, width)
    constant = torch.ones(channels, height, width, dtype=dtype)
    return [
        torch.stack(stripes).expand(channels, height, width),
        torch.stack([c.expand(height, width) for c in checkers]),
        _shifted(edge, channels),
        _shifted(border, channels),
        _shifted(ramp, channels),
        0 * constant,
        constant,
    ]


def _drawn(images: list[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
    """:func:`structured_images` as ``generator`` draws them (module docstring)."""
    stripes, *patterns, dark, bright = images
    levels = torch.randperm(_STRIPE_PERIOD, generator=generator).to(stripes.dtype)
    index = (stripes * (_STRIPE_PERIOD - 1)).round().long()  # the level k of k/6
    drawn = [levels[index] / (_STRIPE_PERIOD - 1)]
    border = 2  # of the four patterns (checkerboards, edge, border, ramp)
    for which in torch.randperm(len(patterns), generator=generator).tolist():
        image = patterns[which]
        offsets = [int(torch.randint(n, (1,), generator=generator)) for n in image.shape[-2:]]
        if which != border:
            image = image.roll(tuple(offsets), dims=(-2, -1))
        if int(torch.randint(2, (1,), generator=generator)):
            image = 1 - image
        drawn.append(image)
    return [*drawn, dark, bright]


def probe_inputs(
    shape: tuple[int, int, int],
    *,
    domain: InputDomain | tuple[float, float] = IMAGE_UNIT,
    samples: int = 8,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """A batch ``[N, C, H, W]`` of ``samples`` inputs inside ``domain`` (at least 1): the
    structured images drawn by ``seed`` (module docstring) first, then uniform noise from the
    same seeded generator."""
    channels, height, width = shape
    low, high = finite_bounds(domain)
    generator = torch.Generator().manual_seed(seed)
    structured = _drawn(structured_images(channels, height, width, dtype), generator)
    batch = []
    for index in range(max(samples, 1)):
        if index < len(structured):
            image = structured[index]
        else:
            image = torch.rand(channels, height, width, generator=generator, dtype=dtype)
        batch.append(low + (high - low) * image)
    return torch.stack(batch)


def probe_batches(
    channels: int,
    *,
    sizes: Sequence[tuple[int, int]] = probe_sizes(12, 12),
    samples: int = 8,
    seed: int = 0,
    domain: InputDomain | tuple[float, float] = IMAGE_UNIT,
    dtype: torch.dtype = torch.float64,
) -> list[torch.Tensor]:
    """The batches of one check: :func:`probe_inputs` at every size of ``sizes``, then
    ``max(samples // 2, 1)`` low-amplitude and as many mid-grey noise images at the first size
    (module docstring)."""
    if samples < 1:
        raise ValueError(f"{samples=} must be at least 1")
    if not sizes:
        raise ValueError("at least one probe size is needed")
    low, high = finite_bounds(domain)
    batches = [
        probe_inputs((channels, h, w), domain=domain, samples=samples, seed=seed + i, dtype=dtype)
        for i, (h, w) in enumerate(sizes)
    ]
    generator = torch.Generator().manual_seed(seed + len(sizes))
    height, width = sizes[0]
    noise_shape = (max(samples // 2, 1), channels, height, width)
    span = high - low
    uniform = torch.rand(noise_shape, generator=generator, dtype=dtype)
    batches.append(low + span * 0.05 * uniform)
    uniform = torch.rand(noise_shape, generator=generator, dtype=dtype)
    batches.append(low + span * (0.4 + 0.2 * uniform))
    return batches
