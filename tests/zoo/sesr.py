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


class CollapsedInForward(CollapsibleLinearBlock):
    """The same block as SESR trains it efficiently: ``forward`` first collapses the two
    kernels into one, by running a unit impulse through them (the impulse ``δ[i, c, r, r] =
    [c = i]`` as a batch of ``cin`` images, E applied with padding r, then P: image i holds
    ``Σ_m P[o, m]·E[m, i]`` flipped), adds the identity kernel for the residual, and runs one
    K×K conv. The impulse is made in ``forward`` (``zeros``, then an indexed write), as a
    training loop would, so the kernel is a computation on parameters and fresh constants."""

    def collapsed(self) -> tuple[torch.Tensor, torch.Tensor]:
        cin, k = self.expand.in_channels, self.expand.kernel_size[0]
        r = k // 2
        impulse = torch.zeros(cin, cin, k, k, dtype=self.expand.weight.dtype)
        impulse[torch.arange(cin), torch.arange(cin), r, r] = 1.0
        responses = F.conv2d(F.conv2d(impulse, self.expand.weight, padding=r), self.project.weight)
        kernel = responses.transpose(0, 1).flip(2, 3)
        if self.residual:
            kernel = kernel + impulse
        project = self.project.weight[:, :, 0, 0]
        bias = project @ self.expand.bias + self.project.bias
        return kernel, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel, bias = self.collapsed()
        return F.conv2d(x, kernel, bias, padding=self.expand.kernel_size[0] // 2)


class SESR(nn.Module):
    """SESR-M``m`` with ``f`` features at ×``scale``; deploy: ``m + 2`` convs.
    ``collapse_in_forward``: its blocks collapse their kernels in every ``forward``."""

    def __init__(
        self,
        colors: int = 1,
        scale: int = 2,
        features: int = 16,
        blocks: int = 3,
        expand: int = 256,
        activation: str = "prelu",
        collapse_in_forward: bool = False,
    ) -> None:
        super().__init__()
        self.scale, self.colors = scale, colors
        block = CollapsedInForward if collapse_in_forward else CollapsibleLinearBlock
        self.first = block(colors, features, 5, expand, residual=False)
        self.body = nn.ModuleList(block(features, features, 3, expand) for _ in range(blocks))
        width = colors * scale * scale
        self.last = block(features, width, 5, expand, residual=False)

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
