"""E7: PixelShuffle commutes with an element-wise map that is the same for every channel.

Theorem. PixelShuffle with scale ``s`` moves entries without changing them:
``PS(x)[c, h·s + i, w·s + j] = x[c·s² + i·s + j, h, w]``, a bijection of positions (see the
proof). For a map ``f: ℝ → ℝ`` applied to every entry,

    PS(f(x)) = f(PS(x)),

because both sides put ``f(x[c·s² + i·s + j, h, w])`` at ``[c, h·s + i, w·s + j]``. This lets
the final ``clamp`` of a super-resolution network move in front of the PixelShuffle, where E2
turns it into ReLUs and a 1×1 conv. Maps with per-channel parameters (a PReLU with one slope per
channel) do not commute as they are: after the shuffle channel ``c`` gathers ``s²`` channels of
before, which may carry different slopes.

Preconditions (checked by :func:`check_channel_uniform`):

* the map is element-wise and the same for every channel: ReLU, ReLU6, Hardtanh (clamp),
  LeakyReLU, a PReLU with a single shared slope, Identity, Sigmoid, Tanh, ELU, GELU, SiLU, and
  this module's :class:`Clamp` and :class:`AddConstant`;
* the shuffle is an ``nn.PixelShuffle`` (the map is placed before it with the same scale).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from et.contract import Rule, register, require

RULE_ID = "E7"

UNIFORM = "the element-wise map is the same for every channel"
IS_SHUFFLE = "the sequence starts with an nn.PixelShuffle"


class Clamp(nn.Module):
    """``clamp(x, low, high)`` as a module (the final clip of a super-resolution network)."""

    def __init__(self, low: float | None = 0.0, high: float | None = 1.0) -> None:
        super().__init__()
        self.low, self.high = low, high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(self.low, self.high)

    def extra_repr(self) -> str:
        return f"low={self.low}, high={self.high}"


class AddConstant(nn.Module):
    """``x + constant`` (one constant for every channel)."""

    def __init__(self, constant: float) -> None:
        super().__init__()
        self.constant = float(constant)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.constant

    def extra_repr(self) -> str:
        return f"constant={self.constant}"


CHANNEL_UNIFORM_MAPS = (
    nn.ReLU,
    nn.ReLU6,
    nn.Hardtanh,
    nn.LeakyReLU,
    nn.Identity,
    nn.Sigmoid,
    nn.Tanh,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    Clamp,
    AddConstant,
)


def check_channel_uniform(module: nn.Module) -> None:
    """Refuse a map that is not element-wise or differs between channels."""
    if isinstance(module, nn.PReLU):
        require(
            module.weight.numel() == 1,
            RULE_ID,
            UNIFORM,
            f"PReLU with {module.weight.numel()} per-channel slopes",
        )
        return
    require(
        isinstance(module, CHANNEL_UNIFORM_MAPS),
        RULE_ID,
        UNIFORM,
        f"{type(module).__name__} is not a known channel-uniform element-wise map",
    )


def move_elementwise_before_pixel_shuffle(module: nn.Sequential) -> nn.Sequential:
    """``Sequential(PS, f₁, …, f_k)`` → ``Sequential(f₁, …, f_k, PS)`` (copies).

    Each ``f`` must pass :func:`check_channel_uniform`.
    """
    layers = list(module) if isinstance(module, nn.Sequential) else [module]
    require(
        len(layers) >= 1 and isinstance(layers[0], nn.PixelShuffle),
        RULE_ID,
        IS_SHUFFLE,
        f"got {[type(m).__name__ for m in layers]}",
    )
    maps = layers[1:]
    for fn in maps:
        check_channel_uniform(fn)
    return nn.Sequential(*(copy.deepcopy(fn) for fn in maps), copy.deepcopy(layers[0]))


def move_elementwise_after_pixel_shuffle(module: nn.Sequential) -> nn.Sequential:
    """``Sequential(f₁, …, f_k, PS)`` → ``Sequential(PS, f₁, …, f_k)`` (copies)."""
    layers = list(module)
    require(
        len(layers) >= 1 and isinstance(layers[-1], nn.PixelShuffle),
        RULE_ID,
        "the sequence ends with an nn.PixelShuffle",
        f"got {[type(m).__name__ for m in layers]}",
    )
    for fn in layers[:-1]:
        check_channel_uniform(fn)
    return nn.Sequential(copy.deepcopy(layers[-1]), *(copy.deepcopy(fn) for fn in layers[:-1]))


RULE = register(
    Rule(
        id=RULE_ID,
        name="move_elementwise_before_pixel_shuffle",
        title="PixelShuffle commutes with channel-uniform element-wise maps",
        statement="PS(f(x)) = f(PS(x)) for f applied element-wise, the same on every channel",
        preconditions=(UNIFORM, IS_SHUFFLE),
        transform=move_elementwise_before_pixel_shuffle,
        proof="proofs.rules.move_elementwise_before_pixel_shuffle",
    )
)
