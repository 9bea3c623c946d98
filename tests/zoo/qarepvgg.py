"""QARepVGG (Chu et al., "Make RepVGG Greater Again: A Quantization-aware Approach", AAAI 2023),
written from the paper's description (not from its code).

The paper keeps the K×K branch's BatchNorm, drops the BatchNorm of the 1×1 and identity branches
(their variance inflates the fused kernel's range under quantization) and puts one BatchNorm
after the sum:

    v1:  y = relu(BN(BN₃(conv₃ₓ₃(x)) + conv₁ₓ₁(x) + x))

The v2 form the issue names adds an average-pool branch (3×3, the block's stride, padding 1,
counting the padding) to a grouped block:

    v2:  y = relu(BN(BN₃(conv₃ₓ₃,g(x)) + conv₁ₓ₁,g(x) + x + avg_pool₃ₓ₃(x)))

The identity (and the pool, a per-channel map) exist only when in = out channels and stride 1
(the pool also at stride 2, where it reads the same grid as the 3×3). Deploy: one conv with the
block's groups, then the ReLU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class QARepVGGBlock(nn.Module):
    """One QARepVGG block in its training form (``pool`` adds the v2 average-pool branch)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        *,
        stride: int = 1,
        groups: int = 1,
        kernel: int = 3,
        pool: bool = False,
    ) -> None:
        super().__init__()
        self.stride, self.pool = stride, pool
        self.dense = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.dense_bn = nn.BatchNorm2d(cout)
        self.point = nn.Conv2d(cin, cout, 1, stride, 0, groups=groups, bias=False)
        self.identity = cin == cout and stride == 1
        self.pool = pool and cin == cout
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dense_bn(self.dense(x)) + self.point(x)
        if self.identity:
            y = y + x
        if self.pool:
            y = y + F.avg_pool2d(x, 3, self.stride, 1)
        return F.relu(self.bn(y))


class QARepVGGNet(nn.Module):
    """A small QARepVGG stack: a stride-2 block (in ≠ out), grouped blocks, a plain block;
    deploy: one conv per block."""

    def __init__(self, colors: int, width: int, groups: int, pool: bool) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            QARepVGGBlock(colors, width, stride=2),
            QARepVGGBlock(width, width, groups=groups, pool=pool),
            QARepVGGBlock(width, width, stride=2, groups=groups, pool=pool),
            QARepVGGBlock(width, width, pool=pool),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


#: deploy convs of :class:`QARepVGGNet`: one per block
NET_DEPLOY_CONVS = 4
