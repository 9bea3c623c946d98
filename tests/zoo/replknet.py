"""RepLKNet (Ding et al., "Scaling Up Your Kernels to 31×31", CVPR 2022), from the paper.

The large-kernel unit is a depthwise K×K conv-BN (K = 13 or 31) with a parallel small
depthwise k×k conv-BN (k = 3 or 5), summed: ``BN(dw_K(x)) + BN'(dw_k(x))``, which is one
depthwise K×K (the small kernel zero-embedded at the centre; both pad ``K//2`` and ``k//2``,
so the outputs align). The block: BN → 1×1 conv-BN → ReLU → large-kernel unit → ReLU →
1×1 conv-BN, plus the input (residual); the ConvFFN: BN → 1×1 conv-BN → GELU → 1×1 conv-BN,
plus the input. Stages are joined by a 1×1 conv-BN-ReLU and a stride-2 depthwise 3×3
conv-BN-ReLU; the stem is a stride-2 3×3 conv-BN-ReLU, a depthwise 3×3, a 1×1 and a stride-2
depthwise 3×3 (each conv-BN-ReLU). The classifier: a final BatchNorm2d, global average
pooling and a Linear, which folds into the Linear (R16).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)
    )


class LargeKernelUnit(nn.Module):
    """``BN(dw_K(x)) + BN'(dw_k(x))``; deploy: one depthwise K×K."""

    DEPLOY_CONVS = 1

    def __init__(self, c: int, large: int = 13, small: int = 5, stride: int = 1) -> None:
        super().__init__()
        self.large = conv_bn(c, c, large, stride, groups=c)
        self.small = conv_bn(c, c, small, stride, groups=c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.large(x) + self.small(x)


class RepLKBlock(nn.Module):
    """``x + pw2(ReLU(LK(ReLU(pw1(BN(x))))))``; deploy: 1×1, depthwise K×K, 1×1 (3 convs; the
    pre-BatchNorm folds into the first 1×1)."""

    DEPLOY_CONVS = 3

    def __init__(self, c: int, dw: int, large: int = 13, small: int = 5) -> None:
        super().__init__()
        self.pre_bn = nn.BatchNorm2d(c)
        self.pw1 = conv_bn(c, dw, 1)
        self.large_kernel = LargeKernelUnit(dw, large, small)
        self.pw2 = conv_bn(dw, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.pw1(self.pre_bn(x)))
        return x + self.pw2(F.relu(self.large_kernel(y)))


class ConvFFN(nn.Module):
    """``x + pw2(GELU(pw1(BN(x))))``; deploy: two 1×1."""

    DEPLOY_CONVS = 2

    def __init__(self, c: int, hidden: int) -> None:
        super().__init__()
        self.pre_bn = nn.BatchNorm2d(c)
        self.pw1 = conv_bn(c, hidden, 1)
        self.pw2 = conv_bn(hidden, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pw2(F.gelu(self.pw1(self.pre_bn(x))))


class RepLKNet(nn.Module):
    """Stem, two stages (RepLK block + ConvFFN each) joined by a transition, final
    BatchNorm2d, global average pool, Linear. Deploy convs: 4 (stem) + 5 per stage +
    2 (transition)."""

    def __init__(
        self, colors: int = 3, widths: tuple[int, int] = (4, 8), large: int = 13, classes: int = 5
    ) -> None:
        super().__init__()
        c0, c1 = widths
        self.stem = nn.Sequential(
            conv_bn(colors, c0, 3, 2),
            nn.ReLU(),
            conv_bn(c0, c0, 3, groups=c0),
            nn.ReLU(),
            conv_bn(c0, c0, 1),
            nn.ReLU(),
            conv_bn(c0, c0, 3, 2, groups=c0),
            nn.ReLU(),
        )
        self.stage1 = nn.Sequential(RepLKBlock(c0, c0, large, 5), ConvFFN(c0, 2 * c0))
        self.transition = nn.Sequential(
            conv_bn(c0, c1, 1), nn.ReLU(), conv_bn(c1, c1, 3, 2, groups=c1), nn.ReLU()
        )
        self.stage2 = nn.Sequential(RepLKBlock(c1, c1, large, 3), ConvFFN(c1, 2 * c1))
        self.norm = nn.BatchNorm2d(c1)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c1, classes)
        self.deploy_convs = 4 + 2 * (RepLKBlock.DEPLOY_CONVS + ConvFFN.DEPLOY_CONVS) + 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage2(self.transition(self.stage1(self.stem(x))))
        return self.head(torch.flatten(self.avgpool(self.norm(x)), 1))
