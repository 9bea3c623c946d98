"""A conv + BatchNorm block whose ``switch_to_deploy`` has a bug on purpose: it forgets the
BatchNorm's ``eps``. The outputs then differ by about 1e-6 relative, less than float32
rounding allows for, so only the float64 check catches it (the pyproject marks it ``xfail``)."""

from __future__ import annotations

import torch
from torch import nn

from tinynets.blocks import randomize_batch_norms


class ConvBN(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


@torch.no_grad()
def switch_to_deploy(block: ConvBN) -> nn.Conv2d:
    """The deploy conv; the bug: ``sqrt(running_var)`` where ``sqrt(running_var + eps)`` is due."""
    scale = block.bn.weight / torch.sqrt(block.bn.running_var)
    conv = nn.Conv2d(block.conv.in_channels, block.conv.out_channels, 3, padding=1)
    conv = conv.to(block.conv.weight.dtype)
    conv.weight.copy_(block.conv.weight * scale.reshape(-1, 1, 1, 1))
    conv.bias.copy_(block.bn.bias - block.bn.running_mean * scale)
    return conv


def make_block(channels: int = 4) -> ConvBN:
    torch.manual_seed(0)
    return randomize_batch_norms(ConvBN(channels))
