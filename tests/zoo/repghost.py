"""RepGhost (Chen et al., 2022), from the paper: feature reuse by re-parameterization.

GhostNet concatenates a cheap depthwise feature map to the primary one; RepGhost adds it
instead, with a BatchNorm-only identity branch, so that it re-parameterizes:

    x₁ = BN(conv1×1(x)),   y = BN(dwconv_K(x₁)) + BN'(x₁)   (a ReLU on x₁ and on y, or none)

and ``BN(dwconv_K) + BN'`` is one depthwise K×K conv (the BN-only branch is a K×K identity
kernel scaled per channel). The bottleneck: a ghost module expanding (with ReLU), a stride-2
depthwise conv-BN when downsampling, squeeze-and-excitation (global mean, 1×1 reduce, ReLU,
1×1 expand, hard sigmoid ``ReLU6(z + 3)/6``, multiplying the features; kept), a ghost module
projecting (no ReLU), plus the shortcut (identity, or depthwise conv-BN then 1×1 conv-BN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)
    )


class RepGhostModule(nn.Module):
    """``y = BN(dw_K(x₁)) + BN'(x₁)`` on ``x₁ = BN(1×1 x)``, each followed by a ReLU when
    ``relu``; ``reuse="identity"``: ``+ x₁`` instead of ``+ BN'(x₁)``. Deploy: a 1×1 and a
    depthwise K×K (2 convs)."""

    DEPLOY_CONVS = 2

    def __init__(
        self, cin: int, cout: int, k: int = 3, relu: bool = True, reuse: str = "bn"
    ) -> None:
        super().__init__()
        self.primary = conv_bn(cin, cout, 1)
        self.cheap = conv_bn(cout, cout, k, groups=cout)
        # the reuse branch: a BatchNorm, or the plain identity (the paper's other variant)
        self.fusion_bn = nn.BatchNorm2d(cout) if reuse == "bn" else nn.Identity()
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.primary(x)
        x1 = F.relu(x1) if self.relu else x1
        y = self.cheap(x1) + self.fusion_bn(x1)
        return F.relu(y) if self.relu else y


class SqueezeExcite(nn.Module):
    """``x · hsigmoid(W₂ ReLU(W₁ mean(x) + b₁) + b₂)``: two 1×1 convs on the pooled map."""

    def __init__(self, c: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(c, reduced, 1)
        self.expand = nn.Conv2d(reduced, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.expand(F.relu(self.reduce(x.mean((2, 3), keepdim=True))))
        return x * (F.relu6(gate + 3.0) / 6.0)


class RepGhostBottleneck(nn.Module):
    """Ghost (expand, ReLU) → [stride-2 depthwise conv-BN] → [SE] → ghost (project) + shortcut.

    Deploy convs: 2 + 2, plus 1 for the stride-2 depthwise, 2 for SE, 2 for a conv shortcut.
    """

    def __init__(
        self, cin: int, mid: int, cout: int, k: int = 3, stride: int = 1, se: bool = False
    ) -> None:
        super().__init__()
        self.ghost1 = RepGhostModule(cin, mid, relu=True)
        self.down = conv_bn(mid, mid, k, stride, groups=mid) if stride > 1 else None
        self.se = SqueezeExcite(mid, max(1, mid // 4)) if se else None
        self.ghost2 = RepGhostModule(mid, cout, relu=False)
        self.shortcut = (
            None
            if stride == 1 and cin == cout
            else nn.Sequential(conv_bn(cin, cin, k, stride, groups=cin), conv_bn(cin, cout, 1))
        )
        self.deploy_convs = 4 + (stride > 1) + 2 * se + 2 * (self.shortcut is not None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ghost1(x)
        if self.down is not None:
            y = self.down(y)
        if self.se is not None:
            y = self.se(y)
        y = self.ghost2(y)
        return y + (x if self.shortcut is None else self.shortcut(x))


class RepGhostNet(nn.Module):
    """A small RepGhostNet: a stride-2 3×3 conv-BN-ReLU stem, bottlenecks (a stride-2 one
    with a 5×5 depthwise and SE, in ≠ out channels, and an identity-shortcut one with SE),
    global pooling and a Linear classifier."""

    def __init__(self, colors: int = 3, width: int = 4, classes: int = 5) -> None:
        super().__init__()
        self.stem = conv_bn(colors, width, 3, stride=2)
        self.blocks = nn.Sequential(
            RepGhostBottleneck(width, 2 * width, width, 3),
            RepGhostBottleneck(width, 3 * width, 2 * width, 5, stride=2, se=True),
            RepGhostBottleneck(2 * width, 3 * width, 2 * width, 3, se=True),
        )
        self.classifier = nn.Linear(2 * width, classes)
        self.deploy_convs = 1 + sum(b.deploy_convs for b in self.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.stem(x)))
        return self.classifier(x.mean((2, 3)))
