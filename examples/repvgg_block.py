"""Fold a user-defined RepVGG-style block into one 3×3 conv and check it with etds.

Run: ``python examples/repvgg_block.py``. The README quotes this file; ``tests/test_examples.py``
runs it, so the example cannot rot.
"""

from __future__ import annotations

import torch
from torch import nn

from et import apply_rule
from et.testing import assert_equivalent


class RepVGGBlock(nn.Module):
    """ReLU(BN(conv3x3(x)) + BN(conv1x1(x)) + BN(x)): three branches at training time."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv3 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.bn_id = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn3(self.conv3(x)) + self.bn1(self.conv1(x)) + self.bn_id(x))


def reparameterize(block: RepVGGBlock) -> nn.Sequential:
    """The block as conv3x3 + ReLU, built only from catalogue rules."""
    channels = block.conv3.in_channels
    branch3 = apply_rule("fuse_conv_bn", block.conv3, block.bn3)  # R1
    branch1 = apply_rule("fuse_conv_bn", block.conv1, block.bn1)  # R1
    identity = apply_rule("identity_conv", channels, 1, dtype=block.conv3.weight.dtype)  # R6
    branch_id = apply_rule("fuse_conv_bn", identity, block.bn_id)  # R1
    merged = apply_rule("merge_parallel_convs", [branch3, branch1, branch_id])  # R3 (+R4)
    return nn.Sequential(merged, nn.ReLU())


def main() -> None:
    torch.manual_seed(0)
    block = RepVGGBlock(8)
    for bn in (block.bn3, block.bn1, block.bn_id):  # non-default statistics, as after training
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    block.eval()
    # Fold in float64: the check is then exact up to float64 rounding, so any logic error shows.
    plain = reparameterize(block.double())
    report = assert_equivalent(block, plain, input_shape=(8, 16, 16), domain=(-3.0, 3.0))
    print(f"float64: {report.describe()}")
    # The deployed float32 model: the same check with a float32-sized tolerance.
    plain32 = reparameterize(block.float())
    report32 = assert_equivalent(
        block, plain32, input_shape=(8, 16, 16), domain=(-3.0, 3.0), atol=1e-5, rtol=1e-5
    )
    print(f"float32: {report32.describe()}")


if __name__ == "__main__":
    main()
