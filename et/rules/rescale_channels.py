"""E10: positive per-channel rescaling through a rectifier (to even out INT8 ranges).

Theorem. Let ``h = conv₁(x; W₁, b₁)``, ``a = φ(h)`` and ``z = conv₂(a; W₂, b₂)``, where ``φ`` acts
channel by channel and is *positively homogeneous*: ``φ_c(α·t) = α·φ_c(t)`` for every ``α > 0``
and real ``t``. Then for any ``α ∈ (0, ∞)^C``

    W₁'[c] = α_c · W₁[c],   b₁'_c = α_c · b₁_c,   W₂'[:, c] = W₂[:, c] / α_c,   b₂' = b₂

gives ``conv₂'(φ'(conv₁'(x))) = z`` for every ``x``, with ``φ' = φ`` for ReLU, PReLU (slopes
unchanged), LeakyReLU and the identity, and for a clip to ``[0, M]`` the bound scaled with its
channel: ``clamp(α t, 0, α M) = α clamp(t, 0, M)``. Proof: channel c of ``conv₁'`` is ``α_c h_c``
(a convolution is linear in ``(W[c], b_c)``); ``φ_c(α_c h_c) = α_c φ_c(h_c)``
(``max(α t, 0) = α max(t, 0)`` and ``min(α t, 0) = α min(t, 0)`` for α > 0); ``conv₂'`` reads
``α_c a_c`` with the column divided by ``α_c``, so each product ``W₂[o, c]·a_c`` is unchanged.
Padding (zeros, or copies of the input for reflect/replicate/circular) commutes with the
per-channel scale, and grouped ``conv₂`` reads channel c in exactly one column of its group.

What it is for: the value of channel c between the convs becomes ``α_c`` times larger, so a
channel that carries the image (values in [0, 1]) next to features ranging over [0, 40] can be
stretched to use the same per-tensor int8 scale instead of a handful of levels.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from et.contract import (
    Precondition,
    Rule,
    document_preconditions,
    register,
    require_torch_semantics,
)
from et.conv_geometry import conv_like

RULE_ID = "E10"

POSITIVE = Precondition(
    RULE_ID,
    "positive",
    "every α_c is finite and > 0",
    why="α < 0 swaps ReLU's kept and killed halves (ReLU(−t) ≠ −ReLU(t)); α = 0 kills the "
    "channel and cannot be divided back",
)
SHAPE = Precondition(
    RULE_ID,
    "shape",
    "α has one entry per channel between the convs (conv₁.out_channels = conv₂.in_channels)",
    why="one factor per channel, divided back in the columns that read it",
)
HOMOGENEOUS = Precondition(
    RULE_ID,
    "homogeneous",
    "only a positively homogeneous map sits between the convs "
    "(ReLU, PReLU, LeakyReLU, identity, or a clip to [0, M])",
    why="a map with a fixed threshold (clamp(t, −1, 1), tanh) does not commute with a scale; "
    "that the activation output feeds nothing but conv₂ is structural (the caller asserts it)",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "conv₁ and conv₂ are torch Conv2d and the activation a torch ReLU, PReLU, LeakyReLU, "
    "Identity or Hardtanh (or a ChannelClamp), each computing its class's forward "
    "(no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)


class ChannelClamp(nn.Module):
    """``clamp(t_c, 0, upper_c)`` per channel of an NCHW tensor (the clip E10 produces when the
    channels of a clip to ``[0, M]`` are scaled by different α_c)."""

    def __init__(self, upper: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("upper", upper.detach().clone().reshape(-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.minimum(torch.relu(x), self.upper.reshape(1, -1, 1, 1))


#: the torch classes (and E10's own per-channel clip) whose functions the theorem covers
_ACTIVATIONS = (nn.ReLU, nn.PReLU, nn.LeakyReLU, nn.Identity, nn.Hardtanh, ChannelClamp)


def _clip_bound(activation: nn.Module) -> torch.Tensor | float | None:
    """The upper bound M of a clip to [0, M], or ``None`` when ``activation`` is no such clip."""
    if isinstance(activation, ChannelClamp):
        return activation.upper
    if isinstance(activation, nn.Hardtanh) and activation.min_val == 0:
        return float(activation.max_val)
    return None


def _is_homogeneous(activation: nn.Module, channels: int) -> bool:
    if isinstance(activation, nn.ReLU | nn.Identity):
        return True
    if isinstance(activation, nn.PReLU):
        return activation.num_parameters in {1, channels}
    if isinstance(activation, nn.LeakyReLU):
        return True
    bound = _clip_bound(activation)
    if isinstance(bound, torch.Tensor):
        return bound.numel() == channels and bool((bound > 0).all())
    return bound is not None and math.isfinite(bound) and bound > 0


def check_rescale(
    conv1: nn.Module, activation: nn.Module, conv2: nn.Module, alpha: torch.Tensor
) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless E10 applies to this triple."""
    require_torch_semantics(conv1, nn.Conv2d, TORCH_MODULES)
    require_torch_semantics(conv2, nn.Conv2d, TORCH_MODULES)
    channels = conv1.out_channels
    SHAPE.require(
        isinstance(alpha, torch.Tensor)
        and tuple(alpha.shape) == (channels,)
        and conv2.in_channels == channels,
        f"α shape {tuple(getattr(alpha, 'shape', ()))}, conv₁.out_channels={channels}, "
        f"conv₂.in_channels={conv2.in_channels}",
    )
    finite = bool(torch.isfinite(alpha).all())
    POSITIVE.require(
        finite and bool((alpha > 0).all()),
        f"min α = {alpha.min().item():.4g}" if finite else "α holds inf or NaN",
    )
    HOMOGENEOUS.require(_is_homogeneous(activation, channels), f"got {activation!r}")
    require_torch_semantics(activation, _ACTIVATIONS, TORCH_MODULES)


def _scaled_activation(activation: nn.Module, alpha: torch.Tensor) -> nn.Module:
    bound = _clip_bound(activation)
    if bound is None:  # ReLU, PReLU, LeakyReLU, identity: the same map (slopes unchanged)
        return activation
    upper = torch.as_tensor(bound, dtype=alpha.dtype, device=alpha.device) * alpha
    return ChannelClamp(upper)


def rescale_channels(
    conv1: nn.Conv2d, activation: nn.Module, conv2: nn.Conv2d, alpha: torch.Tensor
) -> tuple[nn.Conv2d, nn.Module, nn.Conv2d]:
    """Return ``(conv₁', φ', conv₂')`` with ``conv₂'(φ'(conv₁'(x))) = conv₂(φ(conv₁(x)))``.

    ``conv₁'`` has rows (and bias) of channel c multiplied by ``α_c``; ``conv₂'`` has every
    weight reading channel c divided by ``α_c`` (bias unchanged); ``φ'`` is ``activation``
    itself except for a clip to ``[0, M]``, which becomes :class:`ChannelClamp` with bounds
    ``α_c M``. The arguments are not modified.
    """
    check_rescale(conv1, activation, conv2, alpha)
    w1 = conv1.weight.detach()
    gamma = alpha.detach().to(dtype=w1.dtype, device=w1.device)
    bias1 = None if conv1.bias is None else conv1.bias.detach() * gamma
    scaled1 = conv_like(conv1, w1 * gamma.reshape(-1, 1, 1, 1), bias1)
    w2 = conv2.weight.detach()
    groups = conv2.groups
    per_group_in = conv2.in_channels // groups
    per_group_out = conv2.out_channels // groups
    # Output channel o of group g reads input channel g·(C/groups) + j in its column j.
    inverse = (1.0 / gamma.to(w2.dtype)).reshape(groups, 1, per_group_in)
    inverse = inverse.expand(groups, per_group_out, per_group_in).reshape(-1, per_group_in)
    bias2 = None if conv2.bias is None else conv2.bias.detach().clone()
    scaled2 = conv_like(conv2, w2 * inverse[:, :, None, None], bias2)
    return scaled1, _scaled_activation(activation, gamma), scaled2


RULE = register(
    Rule(
        id=RULE_ID,
        name="rescale_channels",
        title="Positive per-channel rescaling through a rectifier",
        statement=(
            "conv₂(φ(conv₁(x))) = conv₂'(φ'(conv₁'(x))) with W₁[c], b₁[c] × α_c, W₂[:, c] ÷ α_c; "
            "φ' = φ for ReLU/PReLU, a clip bound M becomes α_c·M"
        ),
        preconditions=(POSITIVE, SHAPE, HOMOGENEOUS, TORCH_MODULES),
        transform=rescale_channels,
        proof="proofs.rules.rescale_channels",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
