"""A small super-resolution net written for training: re-parameterizable blocks with BatchNorm,
a PixelShuffle tail and a nearest-upsampled input added back. ``et.compile`` folds it; nothing
in this file knows how."""

from __future__ import annotations

import torch
from torch import nn

from tinynets.blocks import randomize_batch_norms


class TrainingBlock(nn.Module):
    """``BN(conv3x3(x)) + conv1x1(x) + x``, then a ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv3 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv3(x)) + self.conv1(x) + x)


class TinySR(nn.Module):
    def __init__(self, channels: int = 8, scale: int = 2) -> None:
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Sequential(TrainingBlock(channels), TrainingBlock(channels))
        self.tail = nn.Conv2d(channels, 3 * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        upsampled = nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest")
        return self.shuffle(self.tail(self.body(self.head(x)))) + upsampled


def build(channels: int = 8, scale: int = 2) -> TinySR:
    torch.manual_seed(0)
    return randomize_batch_norms(TinySR(channels, scale))
