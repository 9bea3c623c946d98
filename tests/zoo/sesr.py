"""SESR (Bhardwaj et al., "Collapsible Linear Blocks for Super-Efficient Super Resolution",
MLSys 2022), from the paper.

A collapsible linear block is a K×K conv expanding to ``p`` channels (the paper: 256) then a
1×1 projecting to the output width, with no non-linearity between; with equal widths a short
residual is added. It collapses to one K×K (R9, then R6 + R3 for the residual):

    W = Σ_m P[o, m]·E[m, i],   b = P·b_E + b_P   (+ the identity kernel).

The network: a 5×5 block (colours → f), PReLU (or ReLU); m 3×3 blocks with residuals, each
followed by the activation; the long residual (the first block's activated output added to
the body's); a 5×5 block (f → colours·s²); the input image added, replicated to the s²
sub-pixel channels (SESR's tiling ``concat([x]·s²)`` for one colour, PyTorch's
``repeat_interleave`` order for three); PixelShuffle(s). The authors' deploy form: m + 2 convs,
the two adds (the long residual and the image) kept.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CollapsibleLinearBlock(nn.Module):
    """``P(E(x)) [+ x]``: a K×K to ``expand`` channels, a 1×1 to ``cout``; deploy: one K×K."""

    DEPLOY_CONVS = 1

    def __init__(self, cin: int, cout: int, k: int, expand: int = 256, residual: bool = True):
        super().__init__()
        self.expand = nn.Conv2d(cin, expand, k, padding=k // 2)
        self.project = nn.Conv2d(expand, cout, 1)
        self.residual = residual and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.expand(x))
        return y + x if self.residual else y


class SESR(nn.Module):
    """SESR-M``m`` with ``f`` features at ×``scale``; deploy: ``m + 2`` convs."""

    def __init__(
        self,
        colors: int = 1,
        scale: int = 2,
        features: int = 16,
        blocks: int = 3,
        expand: int = 256,
        activation: str = "prelu",
    ) -> None:
        super().__init__()
        self.scale, self.colors = scale, colors
        self.first = CollapsibleLinearBlock(colors, features, 5, expand, residual=False)
        self.body = nn.ModuleList(
            CollapsibleLinearBlock(features, features, 3, expand) for _ in range(blocks)
        )
        width = colors * scale * scale
        self.last = CollapsibleLinearBlock(features, width, 5, expand, residual=False)

        def act() -> nn.Module:
            return nn.PReLU(features) if activation == "prelu" else nn.ReLU()

        self.first_act = act()
        self.acts = nn.ModuleList(act() for _ in range(blocks))
        self.deploy_convs = blocks + 2

    def anchor(self, x: torch.Tensor) -> torch.Tensor:
        """The image at every sub-pixel position of PixelShuffle(s): channel ``c·s² + j``."""
        r = self.scale * self.scale
        if self.colors == 1:
            return torch.cat([x] * r, dim=1)
        return torch.repeat_interleave(x, r, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.first_act(self.first(x))
        y = features
        for block, act in zip(self.body, self.acts, strict=True):
            y = act(block(y))
        y = self.last(y + features)
        return F.pixel_shuffle(y + self.anchor(x), self.scale)
