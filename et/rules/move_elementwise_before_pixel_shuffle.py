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
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from et.contract import (
    Precondition,
    Rule,
    document_preconditions,
    register,
    require_torch_semantics,
)

RULE_ID = "E7"

UNIFORM = Precondition(
    RULE_ID,
    "uniform",
    "the element-wise map is the same for every channel",
    why="ReLU, ReLU6, Hardtanh (clamp), LeakyReLU, a PReLU with a single shared slope, Identity, "
    "Sigmoid, Tanh, ELU, GELU, SiLU, and this module's Clamp and AddConstant, each computing "
    "its class's own forward (no overridden forward, no hooks)",
)
IS_SHUFFLE = Precondition(
    RULE_ID,
    "is_shuffle",
    "the shuffle is a torch nn.PixelShuffle computing its torch forward (no overridden forward, "
    "no hooks), first in the sequence (last when moving back)",
    why="the map is placed on the other side of it with the same scale",
)


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
        require_torch_semantics(module, nn.PReLU, UNIFORM)
        UNIFORM.require(
            module.weight.numel() == 1,
            f"PReLU with {module.weight.numel()} per-channel slopes",
        )
        return
    UNIFORM.require(
        isinstance(module, CHANNEL_UNIFORM_MAPS),
        f"{type(module).__name__} is not a known channel-uniform element-wise map",
    )
    require_torch_semantics(module, CHANNEL_UNIFORM_MAPS, UNIFORM)


def move_elementwise_before_pixel_shuffle(module: nn.Sequential) -> nn.Sequential:
    """``Sequential(PS, f₁, …, f_k)`` → ``Sequential(f₁, …, f_k, PS)`` (copies).

    Each ``f`` must pass :func:`check_channel_uniform`.
    """
    layers = list(module) if isinstance(module, nn.Sequential) else [module]
    IS_SHUFFLE.require(len(layers) >= 1, "got an empty sequence")
    require_torch_semantics(layers[0], nn.PixelShuffle, IS_SHUFFLE)
    maps = layers[1:]
    for fn in maps:
        check_channel_uniform(fn)
    return nn.Sequential(*(copy.deepcopy(fn) for fn in maps), copy.deepcopy(layers[0]))


def move_elementwise_after_pixel_shuffle(module: nn.Sequential) -> nn.Sequential:
    """``Sequential(f₁, …, f_k, PS)`` → ``Sequential(PS, f₁, …, f_k)`` (copies)."""
    layers = list(module)
    IS_SHUFFLE.require(len(layers) >= 1, "got an empty sequence")
    require_torch_semantics(layers[-1], nn.PixelShuffle, IS_SHUFFLE)
    for fn in layers[:-1]:
        check_channel_uniform(fn)
    return nn.Sequential(copy.deepcopy(layers[-1]), *(copy.deepcopy(fn) for fn in layers[:-1]))


RULE = register(
    Rule(
        id=RULE_ID,
        name="move_elementwise_before_pixel_shuffle",
        title="PixelShuffle commutes with channel-uniform element-wise maps",
        statement="PS(f(x)) = f(PS(x)) for f applied element-wise, the same on every channel",
        preconditions=(
            UNIFORM,
            IS_SHUFFLE,
        ),
        transform=move_elementwise_before_pixel_shuffle,
        proof="proofs.rules.move_elementwise_before_pixel_shuffle",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
