"""FMEN's blocks (Du et al., "Fast and Memory-Efficient Network Towards Efficient Image
Super-Resolution", CVPRW 2022), written by us from the paper's description.

* RRRB (re-parameterized residual-in-residual block): a 1×1 conv expands C → 2C; its output is
  padded by one pixel *with the 1×1's bias* (so the padded map is the 1×1 applied to the
  zero-padded input, and the chain is one conv); a valid 3×3 conv 2C → 2C reads it and the
  unpadded 1×1 output is added to the 3×3's output (the inner residual: the centre of the padded
  input); a 1×1 squeezes 2C → C and the block input is added (the outer residual). Deploy: one
  3×3 conv with padding 1.

      RRRB(x) = W₃ ⋆ (W₂ ⋆ pad_{b₁}(W₁ x + b₁) + b₂ + W₁ x + b₁) + b₃ + x

* ERB (enhanced residual block): RRRB, LeakyReLU, RRRB. Deploy: two 3×3 convs.
* HFAB (high-frequency attention block): a 3×3 squeezes C → m (then BatchNorm while training), a
  LeakyReLU, ``n`` ERBs with LeakyReLU between, a 3×3 excites m → C, and the block input is
  multiplied by the sigmoid of that: ``x · σ(attention(x))``. Deploy: 2 + 2n convs, the product
  and the sigmoid stay (an attention is no conv).
* FMEN: a head 3×3, ``blocks`` pairs (ERB, HFAB), a 3×3 with the long feature skip added, a 3×3
  tail to ``colors · scale²`` channels and a PixelShuffle.

The paper writes the bias padding as "pad with zeros, then set the four border strips to the
bias"; ``padding="strips"`` writes it that way (in-place slice writes), ``padding="shift"`` as
``pad₀(y − b) + b``; ``centre_crop=True`` adds the inner residual as the padded map's centre
``padded[:, :, 1:-1, 1:-1]``. ``kernel`` generalises the 3×3 to K×K with a bias ring of
K // 2 pixels.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

BiasPadding = Literal["strips", "shift"]

#: the LeakyReLU slope FMEN uses between convs
SLOPE = 0.05


def pad_with_bias(
    y: torch.Tensor, bias: torch.Tensor, width: int, how: BiasPadding
) -> torch.Tensor:
    """``y`` padded by ``width`` pixels on each side with the per-channel value ``bias``."""
    fill = bias.view(1, -1, 1, 1)
    if how == "shift":
        return F.pad(y - fill, [width] * 4) + fill
    padded = F.pad(y, [width] * 4, value=0.0)
    padded[:, :, :width, :] = fill
    padded[:, :, -width:, :] = fill
    padded[:, :, :, :width] = fill
    padded[:, :, :, -width:] = fill
    return padded


class RRRB(nn.Module):
    """Expand 1×1 → bias-padded K×K with the inner residual → squeeze 1×1, plus ``x``."""

    def __init__(
        self,
        channels: int,
        ratio: int = 2,
        kernel: int = 3,
        padding: BiasPadding = "strips",
        centre_crop: bool = False,
    ) -> None:
        super().__init__()
        wide = ratio * channels
        self.expand = nn.Conv2d(channels, wide, 1)
        self.body = nn.Conv2d(wide, wide, kernel)
        self.squeeze = nn.Conv2d(wide, channels, 1)
        self.width, self.padding, self.centre_crop = kernel // 2, padding, centre_crop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expanded = self.expand(x)
        padded = pad_with_bias(expanded, self.expand.bias, self.width, self.padding)
        w = self.width
        # the inner residual: the 1×1's output, or (the same values) the padded map's centre
        inner = padded[:, :, w:-w, w:-w] if self.centre_crop else expanded
        out = self.body(padded) + inner
        out = self.squeeze(out)
        out += x  # written in place, as published training code often is
        return out


class ExpandSqueezeChain(nn.Module):
    """RRRB's linear chain in general: 1×1 (C_in → E), the bias ring, a K×K (E → E', stride s,
    g groups), optionally the inner residual (stride 1, E' = E only), 1×1 (E' → C_out); no
    outer residual, so C_in ≠ C_out and stride 2 are allowed. Deploy: one K×K with padding
    K // 2 and stride s."""

    def __init__(
        self,
        cin: int,
        cout: int,
        wide: int,
        kernel: int = 3,
        stride: int = 1,
        groups: int = 1,
        inner_identity: bool = False,
        padding: BiasPadding = "strips",
    ) -> None:
        super().__init__()
        self.expand = nn.Conv2d(cin, wide, 1)
        self.body = nn.Conv2d(wide, wide, kernel, stride, groups=groups)
        self.squeeze = nn.Conv2d(wide, cout, 1)
        self.width, self.padding, self.inner_identity = kernel // 2, padding, inner_identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expanded = self.expand(x)
        out = self.body(pad_with_bias(expanded, self.expand.bias, self.width, self.padding))
        return self.squeeze(out + expanded if self.inner_identity else out)


class ZeroPaddedRRRB(RRRB):
    """An RRRB whose 3×3 pads the 1×1's output with zeros (not with its bias): the border ring
    reads 0 where one conv on x would read b₁, so no single conv equals it (a negative twin)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expanded = self.expand(x)
        out = self.body(F.pad(expanded, [self.width] * 4)) + expanded
        return self.squeeze(out) + x


class ERB(nn.Module):
    """RRRB, LeakyReLU, RRRB."""

    def __init__(self, channels: int, kernel: int = 3, padding: BiasPadding = "strips") -> None:
        super().__init__()
        self.first = RRRB(channels, kernel=kernel, padding=padding)
        self.second = RRRB(channels, kernel=kernel, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(F.leaky_relu(self.first(x), SLOPE))


class HFAB(nn.Module):
    """``x · σ(excite(ERBs(LeakyReLU(BN(squeeze(x))))))``."""

    def __init__(
        self, channels: int, middle: int, erbs: int = 1, padding: BiasPadding = "strips"
    ) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(channels, middle, 3, padding=1)
        self.norm = nn.BatchNorm2d(middle)
        self.erbs = nn.ModuleList(ERB(middle, padding=padding) for _ in range(erbs))
        self.excite = nn.Conv2d(middle, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.norm(self.squeeze(x)), SLOPE)
        for erb in self.erbs:
            out = F.leaky_relu(erb(out), SLOPE)
        return x * torch.sigmoid(self.excite(out))

    deploy_convs = property(lambda self: 2 + 2 * len(self.erbs))


class FMEN(nn.Module):
    """Head, ``blocks`` × (ERB, LeakyReLU, HFAB), a 3×3 plus the long skip, tail, PixelShuffle."""

    def __init__(
        self,
        colors: int = 3,
        channels: int = 8,
        middle: int = 6,
        blocks: int = 2,
        scale: int = 2,
        padding: BiasPadding = "strips",
    ) -> None:
        super().__init__()
        self.head = nn.Conv2d(colors, channels, 3, padding=1)
        self.erbs = nn.ModuleList(ERB(channels, padding=padding) for _ in range(blocks))
        self.hfabs = nn.ModuleList(HFAB(channels, middle, padding=padding) for _ in range(blocks))
        self.warp = nn.Conv2d(channels, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, colors * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(x)
        out = head
        for erb, hfab in zip(self.erbs, self.hfabs, strict=True):
            out = hfab(F.leaky_relu(erb(out), SLOPE))
        return self.shuffle(self.tail(self.warp(out) + head))

    @property
    def deploy_convs(self) -> int:
        """Head, two per ERB, each HFAB's, warp and tail."""
        return 3 + sum(2 + hfab.deploy_convs for hfab in self.hfabs)
