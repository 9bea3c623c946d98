"""A small super-resolution network as a user might write it: re-parameterizable training blocks
and an image anchor, to be folded by ``etds compile`` and deployed by ``etds export``.

Written from the equations of the RepVGG / ECBSR family (not copied from any repository):
each block is ``φ(BN₃(conv₃ₓ₃(x)) + BN₁(conv₁ₓ₁(x)) [+ BN_id(x)])`` with ``φ`` a per-channel
PReLU, and the output is ``PixelShuffle_s(conv(h) + repeat_interleave(x, s²))``: the network
learns the residual over nearest-neighbour upsampling. ``build`` gives non-default batch-norm
statistics, as after training, so folding them is not trivial.

    etds compile examples/user_sr_net.py:build --input-shape 3,32,32 net.pt2
"""

from __future__ import annotations

import torch
from torch import nn


class RepBlock(nn.Module):
    """``PReLU(BN(conv3×3(x)) + BN(conv1×1(x)) + BN(x))`` (the identity branch when the
    widths agree)."""

    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.conv3 = nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels_out)
        self.conv1 = nn.Conv2d(channels_in, channels_out, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.bn_id = nn.BatchNorm2d(channels_out) if channels_in == channels_out else None
        self.act = nn.PReLU(channels_out, init=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn3(self.conv3(x)) + self.bn1(self.conv1(x))
        if self.bn_id is not None:
            y = y + self.bn_id(x)
        return self.act(y)


class UserSR(nn.Module):
    """``PixelShuffle_s(tail(blocks(head(x))) + repeat_interleave(x, s²))``."""

    def __init__(self, channels: int = 8, blocks: int = 2, scale: int = 2, colors: int = 3):
        super().__init__()
        self.scale = scale
        layers = [RepBlock(colors, channels)] + [
            RepBlock(channels, channels) for _ in range(blocks)
        ]
        self.body = nn.Sequential(*layers)
        self.tail = nn.Conv2d(channels, colors * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        anchor = torch.repeat_interleave(x, self.scale * self.scale, dim=1)
        return self.shuffle(self.tail(self.body(x)) + anchor)


def build(channels: int = 8, blocks: int = 2, scale: int = 2, seed: int = 0) -> UserSR:
    """A ``UserSR`` in eval mode with seeded weights and batch-norm statistics."""
    generator = torch.Generator().manual_seed(seed)
    model = UserSR(channels, blocks, scale)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.uniform_(-0.1, 0.1, generator=generator)
            elif isinstance(module, nn.Conv2d):
                module.weight.normal_(0.0, 0.15, generator=generator)
                if module.bias is not None:
                    module.bias.uniform_(-0.01, 0.01, generator=generator)
        model.tail.weight.mul_(0.05)  # a residual over the anchor: small
    return model.eval()
