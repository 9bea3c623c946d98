"""RepViT (Wang et al., "RepViT: Revisiting Mobile CNN From ViT Perspective", CVPR 2024).

Written from the paper. The token mixer RepVGGDW normalises *after* the sum:

    y = BN(BN'(dw3×3(x)) + dw1×1(x) + x)      (the 1×1 depthwise has a bias, no BN),

which is one depthwise 3×3 (R1 on the branch, R4 + R6 + R3 on the sum, R1 again on the outer
BatchNorm). A RepViT block (stride 1): token mixer RepVGGDW, squeeze-and-excitation in every
other block, then the channel mixer ``x + pw2(GELU(pw1(x)))`` (1×1 conv-BNs). A downsampling
block: a stride-2 depthwise 3×3 conv-BN, SE, a 1×1 conv-BN to the new width, then the channel
mixer. The stem: a stride-2 3×3 conv-BN, GELU, a stride-2 3×3 conv-BN. The classifier: global
average pool, then a head ``Linear(BN1d(z))`` and a distillation head of the same form,
averaged at inference: ``(head(z) + dist(z))/2``, which is one Linear (R16, R17).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)
    )


class RepVGGDW(nn.Module):
    """``BN(BN'(dw3×3 x) + dw1×1 x + x)``; deploy: one depthwise 3×3."""

    DEPLOY_CONVS = 1

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = conv_bn(c, c, 3, groups=c)
        self.conv1 = nn.Conv2d(c, c, 1, groups=c)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x) + self.conv1(x) + x)


class SqueezeExcite(nn.Module):
    """``x · σ(W₂ ReLU(W₁ mean(x) + b₁) + b₂)``; two 1×1 convs on the pooled map (kept)."""

    def __init__(self, c: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(c, reduced, 1)
        self.expand = nn.Conv2d(reduced, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.expand(F.relu(self.reduce(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class ChannelMixer(nn.Module):
    """``x + pw2(GELU(pw1(x)))``, 1×1 conv-BNs; deploy: two 1×1."""

    def __init__(self, c: int, hidden: int) -> None:
        super().__init__()
        self.pw1 = conv_bn(c, hidden, 1)
        self.pw2 = conv_bn(hidden, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pw2(F.gelu(self.pw1(x)))


class RepViTBlock(nn.Module):
    """Token mixer [+ SE] then channel mixer. Stride 1: RepVGGDW; stride 2: depthwise 3×3
    conv-BN (stride 2), then a 1×1 conv-BN to ``cout``. Deploy convs: 1 (+1 when
    downsampling) + 2 for SE + 2 for the channel mixer."""

    def __init__(self, cin: int, cout: int, stride: int = 1, se: bool = False) -> None:
        super().__init__()
        if stride == 1 and cin != cout:
            raise ValueError("a stride-1 RepViT block keeps its width")
        self.mixer = RepVGGDW(cin) if stride == 1 else conv_bn(cin, cin, 3, 2, groups=cin)
        self.se = SqueezeExcite(cin, max(1, cin // 4)) if se else None
        self.project = conv_bn(cin, cout, 1) if stride > 1 else None
        self.channel = ChannelMixer(cout, 2 * cout)
        self.deploy_convs = 1 + (stride > 1) + 2 * se + 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mixer(x)
        if self.se is not None:
            x = self.se(x)
        if self.project is not None:
            x = self.project(x)
        return self.channel(x)


class BNLinear(nn.Sequential):
    """``Linear(BN1d(z))``: RepViT's classifier unit."""

    def __init__(self, features: int, out: int) -> None:
        super().__init__(nn.BatchNorm1d(features), nn.Linear(features, out))


class RepViT(nn.Module):
    """Stem (two stride-2 3×3 conv-BNs, GELU between), RepViT blocks with SE in alternate
    blocks and a downsampling block, global average pool, two averaged BN→Linear heads."""

    def __init__(self, colors: int = 3, widths: tuple[int, int] = (4, 8), classes: int = 5):
        super().__init__()
        c0, c1 = widths
        self.stem = nn.Sequential(
            conv_bn(colors, c0 // 2, 3, 2), nn.GELU(), conv_bn(c0 // 2, c0, 3, 2)
        )
        self.blocks = nn.Sequential(
            RepViTBlock(c0, c0, se=True),
            RepViTBlock(c0, c0, se=False),
            RepViTBlock(c0, c1, stride=2, se=True),
            RepViTBlock(c1, c1, se=False),
        )
        self.head = BNLinear(c1, classes)
        self.dist_head = BNLinear(c1, classes)
        self.deploy_convs = 2 + sum(b.deploy_convs for b in self.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1)
        return (self.head(z) + self.dist_head(z)) / 2


def randomize_batch_norm_1d(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Non-default running statistics for every BatchNorm1d (``blocks.randomize`` draws the
    parameters and the BatchNorm2d statistics)."""
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, nn.BatchNorm1d):
                sub.running_mean.copy_(torch.randn(sub.num_features, generator=generator) * 0.3)
                sub.running_var.copy_(torch.rand(sub.num_features, generator=generator) + 0.5)
    return module
