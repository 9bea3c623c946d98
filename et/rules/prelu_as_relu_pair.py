"""R24: a PReLU between two convs as a pair of ReLU channels (for INT8 without float PReLU).

Theorem. For every real ``t`` and slope ``a``

    PReLU_a(t) = max(t, 0) + a·min(t, 0) = ReLU(t) − a·ReLU(−t).

Let ``h = conv₁(x; W₁, b₁)`` with C output channels, ``φ`` a PReLU (or LeakyReLU) with slope
``a_c`` on channel c, and ``z = conv₂(φ(h); W₂, b₂)``. Let ``S = {c : a_c ≠ 0}`` (a channel with
slope 0 is already a ReLU). Then

    W₁' = [W₁; −W₁[S]],   b₁' = [b₁; −b₁[S]],   W₂' = [W₂, −a_S·W₂[:, S]],   b₂' = b₂

gives ``conv₂'(ReLU(conv₁'(x))) = z`` for every ``x``: channel ``C + j`` of ``conv₁'`` is
``−h_{S_j}`` (a convolution is linear in ``(W[c], b_c)``), and conv₂' reads
``W₂[o, c]·ReLU(h_c) − a_c·W₂[o, c]·ReLU(−h_c) = W₂[o, c]·φ_c(h_c)``. The padding of conv₂ is
kept: zeros are fixed by both sides (``PReLU(0) = ReLU(0) = 0``), and reflect / replicate /
circular padding copy values, which commutes with any elementwise map.

What it is for. LiteRT fuses a ReLU into its conv, so each layer stores one non-negative int8
tensor; a PReLU runs as a float op between a quantized conv output and a re-quantized
activation, so each PReLU layer stores the conv output ``h`` (whose range is set by large
negative pre-activations) and ``φ(h)``. In the ET form of ECBSR the carried image sits in both
tensors with a few levels above zero. After R24 the positive and negative halves of each channel
are separate channels ≥ 0, and E10 can scale each of them to the layer's range. The cost is
|S| more channels per layer (the next conv reads ``C + |S|`` channels).
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

RULE_ID = "R24"

SHAPE = Precondition(
    RULE_ID,
    "shape",
    "conv₂ reads exactly conv₁'s channels (conv₁.out_channels = conv₂.in_channels) and the "
    "PReLU has one slope or one per channel",
    why="each channel's two halves are appended to conv₁ and read by conv₂'s columns",
)
DENSE = Precondition(
    RULE_ID,
    "dense",
    "conv₁ and conv₂ are ungrouped (groups = 1)",
    why="the negated halves are appended after the last group; a grouped conv₂ would read them "
    "in the wrong group and a grouped conv₁ would compute them from the wrong inputs",
)
FINITE = Precondition(
    RULE_ID,
    "finite",
    "every slope a_c is finite",
    why="−a_c·W₂ multiplies ReLU(−h_c) = 0 where h_c ≥ 0: ∞·0 is NaN, while PReLU(h) = h there",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "conv₁ and conv₂ are torch Conv2d and the activation a torch PReLU or LeakyReLU, each "
    "computing its class's forward (no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)


def prelu_slopes(activation: nn.PReLU | nn.LeakyReLU, channels: int) -> torch.Tensor:
    """``a_c`` for each of ``channels`` channels (a shared slope repeated), detached."""
    if isinstance(activation, nn.LeakyReLU):
        return torch.full((channels,), float(activation.negative_slope), dtype=torch.float64)
    return activation.weight.detach().reshape(-1).expand(channels).clone()


def check_prelu_as_relu_pair(conv1: nn.Module, activation: nn.Module, conv2: nn.Module) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless R24 applies to this triple."""
    require_torch_semantics(conv1, nn.Conv2d, TORCH_MODULES)
    require_torch_semantics(activation, (nn.PReLU, nn.LeakyReLU), TORCH_MODULES)
    require_torch_semantics(conv2, nn.Conv2d, TORCH_MODULES)
    channels = conv1.out_channels
    slopes = 1 if isinstance(activation, nn.LeakyReLU) else activation.num_parameters
    SHAPE.require(
        conv2.in_channels == channels and slopes in {1, channels},
        f"conv₁.out_channels={channels}, conv₂.in_channels={conv2.in_channels}, {slopes} slope(s)",
    )
    DENSE.require(
        conv1.groups == 1 and conv2.groups == 1,
        f"conv₁.groups={conv1.groups}, conv₂.groups={conv2.groups}",
    )
    a = prelu_slopes(activation, channels)
    finite = bool(torch.isfinite(a).all())
    bad = [float(v) for v in a if not math.isfinite(float(v))]
    FINITE.require(finite, f"slopes {bad}")


def prelu_as_relu_pair(
    conv1: nn.Conv2d, activation: nn.PReLU | nn.LeakyReLU, conv2: nn.Conv2d
) -> tuple[nn.Conv2d, nn.ReLU, nn.Conv2d]:
    """Return ``(conv₁', ReLU, conv₂')`` with ``conv₂'(ReLU(conv₁'(x))) = conv₂(φ(conv₁(x)))``.

    ``conv₁'`` has conv₁'s rows followed by the negated rows of the channels with a non-zero
    slope (in channel order); ``conv₂'`` has conv₂'s columns followed by those channels'
    columns times ``−a_c``. The arguments are not modified.
    """
    check_prelu_as_relu_pair(conv1, activation, conv2)
    w1 = conv1.weight.detach()
    slopes = prelu_slopes(activation, conv1.out_channels).to(dtype=w1.dtype, device=w1.device)
    # Slope 0: the channel is a ReLU already, its negative half is never read.
    kept = (slopes != 0).nonzero().flatten()
    weight1 = torch.cat([w1, -w1[kept]])
    bias1 = None
    if conv1.bias is not None:
        b1 = conv1.bias.detach()
        bias1 = torch.cat([b1, -b1[kept]])
    w2 = conv2.weight.detach()
    negative_columns = -slopes[kept].to(w2.dtype).reshape(1, -1, 1, 1) * w2[:, kept]
    weight2 = torch.cat([w2, negative_columns], dim=1)
    bias2 = None if conv2.bias is None else conv2.bias.detach().clone()
    return conv_like(conv1, weight1, bias1), nn.ReLU(), conv_like(conv2, weight2, bias2)


RULE = register(
    Rule(
        id=RULE_ID,
        name="prelu_as_relu_pair",
        title="PReLU as a pair of ReLU channels",
        statement=(
            "conv₂(PReLU_a(conv₁(x))) = conv₂'(ReLU(conv₁'(x))) with conv₁' = [W₁; −W₁[S]], "
            "conv₂' = [W₂, −a_S·W₂[:, S]], S = {c : a_c ≠ 0}, since PReLU_a(t) = ReLU(t) − "
            "a·ReLU(−t)"
        ),
        preconditions=(SHAPE, DENSE, FINITE, TORCH_MODULES),
        transform=prelu_as_relu_pair,
        proof="proofs.rules.prelu_as_relu_pair",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
