"""R25: a channel between two convs split into two equal channels that share its column.

Theorem. Let ``h = conv₁(x; W₁, b₁)`` with C output channels, ``φ`` an elementwise activation
acting on each channel alone (ReLU, LeakyReLU, PReLU with one slope or one per channel, or the
identity), and ``z = conv₂(φ(h); W₂, b₂)``. For a channel ``c`` and any kernel ``E`` of
conv₂'s column shape (``out × kh × kw``),

    W₁' = [W₁; W₁[c]],   b₁' = [b₁; b₁[c]],   φ' = φ with channel c's slope repeated,
    W₂' = [W₂ with column c replaced by W₂[:, c] − E,  E],   b₂' = b₂

gives ``conv₂'(φ'(conv₁'(x))) = z`` for every ``x``: channel ``C`` of conv₁' equals channel
``c`` (same row, same bias, same slope), and conv₂ is linear in its input channels, so it reads
``(W₂[:, c] − E) ∗ φ(h_c) + E ∗ φ(h_c) = W₂[:, c] ∗ φ(h_c)``. Padding of any mode treats the
two equal channels alike (zeros, or copies of equal values). Applied m − 1 times, a channel
becomes m channels whose columns are any m kernels summing to the original column.

What it is for. Post-training INT8 gives each row of conv₂ one weight scale, ``max|row|/127``.
In an ET form the last conv that reads a carried input copy adds it with a tap (the shortcut's
1, divided by the copy's E10 factor) several times larger than the learned taps of the same
row, which then get a fraction of the 127 levels. Split over m equal channels, the tap becomes
m pieces that each fit the row's learned range, and the layout
(:mod:`reference_models.deploy.int8.copy_split`) chooses them on the int8 grid so that the
copy still passes exactly. The cost is one more channel per split (one more row of conv₁,
one more column of conv₂).
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
from et.conv_geometry import conv_like

RULE_ID = "R25"

SHAPE = Precondition(
    RULE_ID,
    "shape",
    "conv₂ reads exactly conv₁'s channels (conv₁.out_channels = conv₂.in_channels), c is one "
    "of them, E has conv₂'s column shape (out × kh × kw) and a PReLU has one slope or one per "
    "channel",
    why="the new channel is appended to conv₁ and read by the new column of conv₂",
)
DENSE = Precondition(
    RULE_ID,
    "dense",
    "conv₁ and conv₂ are ungrouped (groups = 1)",
    why="the new channel is appended after the last group; a grouped conv₂ would read it in "
    "the wrong group and a grouped conv₁ would compute it from the wrong inputs",
)
FINITE = Precondition(
    RULE_ID,
    "finite",
    "every entry of E is finite",
    why="(W₂[:, c] − E) + E is NaN for an infinite E, while conv₂ reads W₂[:, c]",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "conv₁ and conv₂ are torch Conv2d and the activation a torch ReLU, LeakyReLU, PReLU or "
    "Identity, each computing its class's forward (no overridden forward, no hooks)",
    why="the new channel must compute what channel c computes: an activation that is not "
    "applied to each channel alone (or an overridden one) may treat it differently",
)

#: Activations applied to each channel alone, whose parameters (if any) are per channel.
ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.Identity)


def check_split_channel(
    conv1: nn.Module, activation: nn.Module, conv2: nn.Module, channel: int, column: torch.Tensor
) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless R25 applies to this triple."""
    require_torch_semantics(conv1, nn.Conv2d, TORCH_MODULES)
    require_torch_semantics(activation, ACTIVATIONS, TORCH_MODULES)
    require_torch_semantics(conv2, nn.Conv2d, TORCH_MODULES)
    channels = conv1.out_channels
    slopes = activation.num_parameters if isinstance(activation, nn.PReLU) else 1
    expected = (conv2.out_channels, *conv2.kernel_size)
    SHAPE.require(
        conv2.in_channels == channels
        and 0 <= channel < channels
        and tuple(column.shape) == expected
        and slopes in {1, channels},
        f"conv₁.out_channels={channels}, conv₂.in_channels={conv2.in_channels}, c={channel}, "
        f"E of shape {tuple(column.shape)} (expected {expected}), {slopes} slope(s)",
    )
    DENSE.require(
        conv1.groups == 1 and conv2.groups == 1,
        f"conv₁.groups={conv1.groups}, conv₂.groups={conv2.groups}",
    )
    FINITE.require(bool(torch.isfinite(column).all()), "E has a non-finite entry")


def split_channel(
    conv1: nn.Conv2d,
    activation: nn.Module,
    conv2: nn.Conv2d,
    channel: int,
    column: torch.Tensor,
) -> tuple[nn.Conv2d, nn.Module, nn.Conv2d]:
    """Return ``(conv₁', φ', conv₂')`` with ``conv₂'(φ'(conv₁'(x))) = conv₂(φ(conv₁(x)))``.

    ``conv₁'`` has conv₁'s rows followed by a copy of row ``channel``; ``conv₂'`` reads it
    with ``column`` (``E``) and reads channel ``channel`` with ``W₂[:, channel] − E``; ``φ'`` is
    ``activation`` itself unless it is a per-channel PReLU, which gets channel ``channel``'s
    slope appended. The arguments are not modified.
    """
    check_split_channel(conv1, activation, conv2, channel, column)
    w1 = conv1.weight.detach()
    weight1 = torch.cat([w1, w1[channel : channel + 1]])
    bias1 = None
    if conv1.bias is not None:
        b1 = conv1.bias.detach()
        bias1 = torch.cat([b1, b1[channel : channel + 1]])
    w2 = conv2.weight.detach()
    extra = column.detach().to(dtype=w2.dtype, device=w2.device)
    weight2 = torch.cat([w2, extra.unsqueeze(1)], dim=1)
    weight2[:, channel] = w2[:, channel] - extra
    bias2 = None if conv2.bias is None else conv2.bias.detach().clone()
    new_activation = activation
    if isinstance(activation, nn.PReLU) and activation.num_parameters > 1:
        slopes = activation.weight.detach()
        new_activation = nn.PReLU(slopes.numel() + 1, dtype=slopes.dtype, device=slopes.device)
        with torch.no_grad():
            new_activation.weight.copy_(torch.cat([slopes, slopes[channel : channel + 1]]))
    return conv_like(conv1, weight1, bias1), new_activation, conv_like(conv2, weight2, bias2)


RULE = register(
    Rule(
        id=RULE_ID,
        name="split_channel",
        title="A channel split into two equal channels",
        statement=(
            "conv₂(φ(conv₁(x))) = conv₂'(φ'(conv₁'(x))) with conv₁' = [W₁; W₁[c]], b₁' = "
            "[b₁; b₁[c]], φ' = φ with c's slope repeated, W₂' = [W₂ − E·e_cᵀ, E] for any kernel "
            "E, φ elementwise per channel"
        ),
        preconditions=(SHAPE, DENSE, FINITE, TORCH_MODULES),
        transform=split_channel,
        proof="proofs.rules.split_channel",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
