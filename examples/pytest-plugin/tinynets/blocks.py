"""A RepVGG-style block with its own ``switch_to_deploy``, as published blocks ship one.

Training form: ``ReLU(BN(conv3x3(x)) + BN(conv1x1(x)) + BN(x))``; deploy form: one 3×3 conv
and the ReLU. ``switch_to_deploy`` converts the block in place, as RepVGG's code does.
"""

from __future__ import annotations

import torch
from torch import nn


def _bn_kernel(kernel: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel and bias of ``BN(conv(x; kernel))`` for a conv without bias."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return kernel * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


class RepVGGBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv3 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.bn_id = nn.BatchNorm2d(channels)
        self.deploy: nn.Conv2d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deploy is not None:
            return torch.relu(self.deploy(x))
        return torch.relu(self.bn3(self.conv3(x)) + self.bn1(self.conv1(x)) + self.bn_id(x))

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Replace the three branches by one 3×3 conv computing their sum."""
        channels = self.conv3.in_channels
        w3, b3 = _bn_kernel(self.conv3.weight, self.bn3)
        w1, b1 = _bn_kernel(nn.functional.pad(self.conv1.weight, (1, 1, 1, 1)), self.bn1)
        identity = torch.zeros_like(self.conv3.weight)
        identity[range(channels), range(channels), 1, 1] = 1
        wi, bi = _bn_kernel(identity, self.bn_id)
        self.deploy = nn.Conv2d(channels, channels, 3, padding=1).to(w3.dtype)
        self.deploy.weight.copy_(w3 + w1 + wi)
        self.deploy.bias.copy_(b3 + b1 + bi)
        for name in ("conv3", "bn3", "conv1", "bn1", "bn_id"):
            delattr(self, name)


def randomize_batch_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm the statistics of a trained network (the defaults, mean 0 and
    variance 1, would hide a fold that forgets them)."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.3)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
    return model


def make_block(channels: int = 8) -> RepVGGBlock:
    """A block with seeded weights and trained-looking BatchNorm statistics."""
    torch.manual_seed(0)
    return randomize_batch_norms(RepVGGBlock(channels))
