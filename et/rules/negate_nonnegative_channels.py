"""E11: negate a channel that is non-negative on the input box, through a PReLU.

Theorem. Let ``h = conv₁(x; W₁, b₁)``, ``a = φ(h)`` and ``z = conv₂(a; W₂, b₂)``, where ``φ`` is
ReLU, LeakyReLU or PReLU (one slope, or one per channel), so that ``φ_c(t) = t`` for ``t ≥ 0``.
Let S be a set of channels with ``h_c ≥ 0`` for every input ``x`` in a box
``input_low[i] ≤ x[i, ·, ·] ≤ input_high[i]``. Then for ``β_c > 0`` and ``μ_c ≠ 0`` (c ∈ S)

    W₁'[c] = −β_c · W₁[c],   b₁'_c = −β_c · b₁_c,   slope'_c = −μ_c / β_c,
    W₂'[:, c] = W₂[:, c] / μ_c,   b₂' = b₂,

with every other row, column and slope unchanged (ReLU has slope 0, LeakyReLU its
``negative_slope``), gives ``conv₂'(PReLU'(conv₁'(x))) = z`` for every ``x`` in the box.
Proof: channel c of ``conv₁'`` is ``h'_c = −β_c h_c ≤ 0`` (a convolution is linear in
``(W[c], b_c)``, whatever it pads its input with), so PReLU' takes its negative branch:
``slope'_c · h'_c = (−μ_c/β_c)(−β_c h_c) = μ_c h_c = μ_c a_c``, because ``a_c = φ_c(h_c) = h_c``
for ``h_c ≥ 0``. ``conv₂'`` reads ``μ_c a_c`` with the column divided by ``μ_c``, so every
product ``W₂[o, c]·a_c`` is unchanged; its own padding (zeros, or copies of its input) commutes
with the factor ``μ_c``, and a grouped ``conv₂`` reads channel c in one column of its group.

The hypothesis ``h_c ≥ 0`` is checked by interval arithmetic (:func:`channel_lower_bounds`):
each tap adds ``min(w·l, w·u)`` over the interval ``[l, u]`` of the input channel it reads
(widened to hold 0 when conv₁ pads with zeros), a weight that is exactly 0 adds exactly 0 even
over an infinite interval, and the float64 sum is rounded down by a bound on its rounding error.

What it is for: LiteRT stores a conv output in int8 *before* the float PReLU, and that tensor's
range is set by the large negative pre-activations of the real channels. A carried copy of the
image (≥ 0) gets only the positive part of the range; negated and scaled by β_c it uses the
negative part, and ``μ_c`` sets its scale in the PReLU's output tensor.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch
from torch import nn

from et.contract import (
    Precondition,
    Rule,
    document_preconditions,
    register,
    require_torch_semantics,
)
from et.conv_geometry import conv_like, geometry_of

RULE_ID = "E11"

POSITIVE = Precondition(
    RULE_ID,
    "positive",
    "every β_c is finite and > 0",
    why="β < 0 keeps h'_c ≥ 0, so PReLU' takes its identity branch and conv₂' reads "
    "−β_c h_c/μ_c instead of h_c; β = 0 kills the channel and makes the slope −μ/0",
)
NONZERO = Precondition(
    RULE_ID,
    "nonzero",
    "every μ_c is finite and ≠ 0",
    why="the column reading channel c is divided by μ_c (any sign is exact)",
)
SHAPE = Precondition(
    RULE_ID,
    "shape",
    "the listed channels are distinct outputs of conv₁; β and μ have one entry per listed "
    "channel; conv₂.in_channels = conv₁.out_channels; input_low and input_high have one bound "
    "per input channel of conv₁, low ≤ high (±inf allowed, no NaN)",
    why="one factor per negated channel, divided back in the columns that read it, and a "
    "non-empty box to check non-negativity on",
)
NONNEGATIVE = Precondition(
    RULE_ID,
    "nonnegative",
    "every listed channel of conv₁'s output is ≥ 0 for every input in the box "
    "[input_low, input_high] (interval bound, zero padding included), and the network is only "
    "used on that box",
    why="where h_c < 0, φ(h_c) is the rectified value but PReLU' reads h'_c > 0 on its identity "
    "branch; that inputs stay in the box is the caller's declaration",
)
ACTIVATION = Precondition(
    RULE_ID,
    "activation",
    "the map between the convs is ReLU, LeakyReLU, or PReLU with one slope or one per channel",
    why="the negated channel needs φ_c(t) = t for t ≥ 0 (a clip or tanh is not), and the other "
    "channels a slope a PReLU can hold",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "conv₁ and conv₂ are torch Conv2d and the activation a torch ReLU, LeakyReLU or PReLU, each "
    "computing its torch class's forward (no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)

_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.PReLU)

# float64 unit roundoff and the smallest subnormal (the absolute error of an underflowed product)
_UNIT_ROUNDOFF = 2.0**-53
_SMALLEST_SUBNORMAL = 2.0**-1074


def _reads_zero_padding(conv: nn.Conv2d) -> bool:
    """True when some output of ``conv`` may read the value 0 from a zero-padded border."""
    if conv.padding_mode != "zeros":
        return False  # reflect / replicate / circular pad with copies of the input
    if conv.padding == "same":
        return any(d * (k - 1) > 0 for k, d in zip(conv.kernel_size, conv.dilation, strict=True))
    return any(p > 0 for p in geometry_of(conv).padding)


def _box_of(conv: nn.Conv2d, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-input-channel interval ``[l, u]`` (float64) each tap of ``conv`` may read."""
    low = low.detach().to(device="cpu", dtype=torch.float64).reshape(-1)
    high = high.detach().to(device="cpu", dtype=torch.float64).reshape(-1)
    if _reads_zero_padding(conv):
        low, high = low.clamp(max=0.0), high.clamp(min=0.0)
    return low, high


def channel_lower_bounds(
    conv1: nn.Conv2d, input_low: torch.Tensor, input_high: torch.Tensor
) -> torch.Tensor:
    """A lower bound (float64, one per output channel) of ``conv1(x)`` over the input box.

    For every ``x`` with ``input_low[i] ≤ x[:, i] ≤ input_high[i]`` and every output position,
    ``conv1(x)[:, c] ≥ bound[c]`` in exact arithmetic. Output channel c of group g reads input
    channel ``g·(C_in/groups) + j`` through ``W[c, j]``; each tap adds ``min(w·l, w·u)`` (a
    weight of exactly 0 adds 0, even over an infinite interval), where ``[l, u]`` is the input
    channel's interval, widened to hold 0 when conv₁ pads with zeros. Without zero padding and
    with finite bounds the interval bound is attained by the input whose taps sit at the ends
    of their intervals. The float64 sum is lowered by a bound on its rounding error, so it is
    ≤ the exact minimum (a row whose every term is ≥ 0 by sign keeps the bound ≥ 0 exactly).
    """
    weight = conv1.weight.detach().to(device="cpu", dtype=torch.float64)
    bias = torch.zeros(weight.shape[0], dtype=torch.float64)
    if conv1.bias is not None:
        bias = conv1.bias.detach().to(device="cpu", dtype=torch.float64)
    low, high = _box_of(conv1, input_low, input_high)
    out_channels, per_group_in = weight.shape[:2]
    per_group_out = out_channels // conv1.groups
    group = torch.arange(out_channels) // per_group_out
    reads = group[:, None] * per_group_in + torch.arange(per_group_in)[None, :]  # [C_out, j]
    low_read = low[reads][:, :, None, None]
    high_read = high[reads][:, :, None, None]
    # torch.where picks per element, so 0·inf in the branch not taken never reaches the sum.
    terms = torch.where(
        weight > 0, weight * low_read, torch.where(weight < 0, weight * high_read, 0.0)
    )
    terms = terms.reshape(out_channels, -1)
    total = terms.sum(dim=1) + bias
    count = terms.shape[1] + 2
    margin = 2 * count * _UNIT_ROUNDOFF * (terms.abs().sum(dim=1) + bias.abs())
    margin = margin + count * _SMALLEST_SUBNORMAL
    lower = torch.nextafter(total - margin, torch.tensor(-torch.inf, dtype=torch.float64))
    lower = torch.where(lower.isnan(), -torch.inf, lower)  # an overflowed +inf term: no bound
    # Signs of the factors (not of the rounded products, which may underflow to ±0) show a row
    # whose every exact term is ≥ 0; its exact sum is then ≥ 0 too.
    nonnegative = (
        (weight == 0) | ((weight > 0) & (low_read >= 0)) | ((weight < 0) & (high_read <= 0))
    )
    all_nonnegative = nonnegative.reshape(out_channels, -1).all(dim=1) & (bias >= 0)
    return torch.where(all_nonnegative, lower.clamp(min=0.0), lower)


def _slopes(activation: nn.Module, channels: int, like: torch.Tensor) -> torch.Tensor:
    """The per-channel negative slopes of ``activation`` as a float vector of ``channels``."""
    if isinstance(activation, nn.PReLU):
        return activation.weight.detach().to(like).reshape(-1).expand(channels).clone()
    slope = activation.negative_slope if isinstance(activation, nn.LeakyReLU) else 0.0
    return torch.full((channels,), float(slope), dtype=like.dtype, device=like.device)


def _channel_list(channels: Sequence[int]) -> list[int] | None:
    """The listed channels as ints, or ``None`` when one is no integer (a bool is none)."""
    try:
        listed = list(channels)
        if any(isinstance(c, bool) for c in listed):
            return None
        return [operator.index(c) for c in listed]
    except TypeError:
        return None


def check_negate(
    conv1: nn.Module,
    activation: nn.Module,
    conv2: nn.Module,
    channels: Sequence[int],
    beta: torch.Tensor,
    mu: torch.Tensor,
    input_low: torch.Tensor,
    input_high: torch.Tensor,
) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless E11 applies to this triple."""
    require_torch_semantics(conv1, nn.Conv2d, TORCH_MODULES)
    require_torch_semantics(conv2, nn.Conv2d, TORCH_MODULES)
    out_channels = conv1.out_channels
    listed = _channel_list(channels)
    SHAPE.require(
        listed is not None
        and len(set(listed)) == len(listed)
        and all(0 <= c < out_channels for c in listed),
        f"channels {channels!r} for conv₁.out_channels={out_channels}",
    )
    assert listed is not None
    for name, factor in (("β", beta), ("μ", mu)):
        SHAPE.require(
            isinstance(factor, torch.Tensor) and tuple(factor.shape) == (len(listed),),
            f"{name} shape {tuple(getattr(factor, 'shape', ()))} for {len(listed)} channels",
        )
    SHAPE.require(
        conv2.in_channels == out_channels,
        f"conv₁.out_channels={out_channels}, conv₂.in_channels={conv2.in_channels}",
    )
    for name, bound in (("input_low", input_low), ("input_high", input_high)):
        SHAPE.require(
            isinstance(bound, torch.Tensor)
            and bound.is_floating_point()
            and tuple(bound.shape) == (conv1.in_channels,),
            f"{name} shape {tuple(getattr(bound, 'shape', ()))} (dtype "
            f"{getattr(bound, 'dtype', None)}), conv₁.in_channels={conv1.in_channels}",
        )
    SHAPE.require(
        not bool(input_low.isnan().any() | input_high.isnan().any())
        and bool((input_low <= input_high).all())
        and not bool((input_low == torch.inf).any() | (input_high == -torch.inf).any()),
        f"box [{input_low.tolist()}, {input_high.tolist()}] is empty or holds NaN",
    )
    finite = bool(torch.isfinite(beta).all())
    POSITIVE.require(
        finite and bool((beta > 0).all()),
        f"min β = {beta.min().item():.4g}" if finite and beta.numel() else "β holds inf or NaN",
    )
    NONZERO.require(
        bool(torch.isfinite(mu).all()) and bool((mu != 0).all()),
        f"μ = {mu.tolist()}",
    )
    ACTIVATION.require(
        isinstance(activation, _ACTIVATIONS)
        and (
            not isinstance(activation, nn.PReLU) or activation.num_parameters in {1, out_channels}
        ),
        f"got {activation!r}",
    )
    require_torch_semantics(activation, _ACTIVATIONS, TORCH_MODULES)
    if listed:
        bounds = channel_lower_bounds(conv1, input_low, input_high)[listed]
        negative = [c for c, b in zip(listed, bounds.tolist(), strict=True) if not b >= 0]
        NONNEGATIVE.require(
            not negative,
            f"channels {negative} go down to "
            f"{[round(b, 6) for b in bounds.tolist() if not b >= 0]} on the box",
        )


def negate_nonnegative_channels(
    conv1: nn.Conv2d,
    activation: nn.Module,
    conv2: nn.Conv2d,
    channels: Sequence[int],
    beta: torch.Tensor,
    mu: torch.Tensor,
    input_low: torch.Tensor,
    input_high: torch.Tensor,
) -> tuple[nn.Conv2d, nn.PReLU, nn.Conv2d]:
    """Return ``(conv₁', PReLU', conv₂')`` equal to ``conv₂ ∘ φ ∘ conv₁`` on the input box.

    ``conv₁'`` has the rows (and bias) of each listed channel c multiplied by ``−β[k]`` (c the
    k-th listed channel); ``PReLU'`` has one slope per channel, ``−μ[k]/β[k]`` on the listed
    ones and φ's slope elsewhere; ``conv₂'`` has every weight reading channel c divided by
    ``μ[k]`` (bias unchanged). The arguments are not modified.
    """
    check_negate(conv1, activation, conv2, channels, beta, mu, input_low, input_high)
    listed = _channel_list(channels) or []
    w1 = conv1.weight.detach()
    count = conv1.out_channels
    index = torch.tensor(listed, dtype=torch.long, device=w1.device)
    row_scale = torch.ones(count, dtype=w1.dtype, device=w1.device)
    row_scale[index] = -beta.detach().to(w1)
    bias1 = None if conv1.bias is None else conv1.bias.detach() * row_scale
    new1 = conv_like(conv1, w1 * row_scale.reshape(-1, 1, 1, 1), bias1)

    slopes = _slopes(activation, count, w1)
    slopes[index] = (-mu.detach().to(w1) / beta.detach().to(w1)).to(slopes)
    prelu = nn.PReLU(count, device=w1.device, dtype=w1.dtype)
    with torch.no_grad():
        prelu.weight.copy_(slopes)

    w2 = conv2.weight.detach()
    column_scale = torch.ones(count, dtype=w2.dtype, device=w2.device)
    column_scale[index.to(w2.device)] = 1.0 / mu.detach().to(w2)
    groups = conv2.groups
    per_group_in = conv2.in_channels // groups
    per_group_out = conv2.out_channels // groups
    # Output channel o of group g reads input channel g·(C/groups) + j in its column j.
    columns = column_scale.reshape(groups, 1, per_group_in)
    columns = columns.expand(groups, per_group_out, per_group_in).reshape(-1, per_group_in)
    bias2 = None if conv2.bias is None else conv2.bias.detach().clone()
    new2 = conv_like(conv2, w2 * columns[:, :, None, None], bias2)
    return new1, prelu, new2


RULE = register(
    Rule(
        id=RULE_ID,
        name="negate_nonnegative_channels",
        title="Negating a non-negative channel through a PReLU",
        statement=(
            "conv₂(φ(conv₁(x))) = conv₂'(PReLU'(conv₁'(x))) on the box where h_c ≥ 0, with "
            "W₁[c], b₁[c] × (−β_c), slope'_c = −μ_c/β_c, W₂[:, c] ÷ μ_c; φ = ReLU/LeakyReLU/PReLU"
        ),
        preconditions=(POSITIVE, NONZERO, SHAPE, NONNEGATIVE, ACTIVATION, TORCH_MODULES),
        transform=negate_nonnegative_channels,
        proof="proofs.rules.negate_nonnegative_channels",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
