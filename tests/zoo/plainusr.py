"""PlainUSR's blocks (Wang et al., "PlainUSR: Chasing Faster ConvNet for Efficient
Super-Resolution", ACCV 2024), written by us from the paper's description.

* RepMBConv (the reparameterized MBConv): a 1×1 expands C → r·C, a K×K (optionally grouped or
  depthwise) works on the wide map, a 1×1 squeezes back to C, and the input is added; no
  activation inside, so it is linear. For the chain to be one K×K the K×K must see the 1×1's
  bias on its border: ``padding="input"`` zero-pads the block input before the 1×1 (a padded
  pixel of the 1×1's output is its bias), ``padding="bias"`` pads the 1×1's output with its
  bias (FMEN's ring). Deploy: one K×K.
* Partial conv (FasterNet's PConv, used by PlainUSR): a K×K on the first k channels, the other
  C − k passed on untouched, ``cat([conv(x[:, :k]), x[:, k:]], 1)``, followed by a 1×1 (or a
  K×K) mixing all channels. The untouched channels are an identity conv, so the pair is one
  K×K (G5 widens the slices, R6 the identity, R11 the concat, R9 the 1×1). ``slicing``
  writes the slices as ``x[:, a:b]``, ``torch.split`` or ``torch.chunk`` (halves), or
  ``"inplace"`` writes the conv's output into a copy of x (FasterNet's inference form).
* LIA (local importance-based attention): ``x · σ(conv(x))``, kept (a gate is no conv).
* The network: a head 3×3, blocks (RepMBConv, LeakyReLU, partial conv and 1×1, LeakyReLU, LIA),
  a tail 3×3 to ``colors · scale²`` and a PixelShuffle. Deploy: 2 + 3 per block.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from tests.zoo.fmen import pad_with_bias

Border = Literal["input", "bias"]
Slicing = Literal["slice", "split", "chunk", "inplace"]
SLOPE = 0.05


class RepMBConv(nn.Module):
    """``squeeze(K×K(expand(x))) + x`` with the K×K's border at the 1×1's bias."""

    def __init__(
        self,
        channels: int,
        ratio: int = 2,
        kernel: int = 3,
        groups: int = 1,
        border: Border = "input",
    ) -> None:
        super().__init__()
        wide = ratio * channels
        self.expand = nn.Conv2d(channels, wide, 1)
        self.body = nn.Conv2d(wide, wide, kernel, groups=groups)
        self.squeeze = nn.Conv2d(wide, channels, 1)
        self.width, self.border = kernel // 2, border

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.border == "input":
            wide = self.expand(F.pad(x, [self.width] * 4))
        else:
            wide = pad_with_bias(self.expand(x), self.expand.bias, self.width, "shift")
        return self.squeeze(self.body(wide)) + x


class PartialConv(nn.Module):
    """``mix(cat([conv(x[:, :k]), x[:, k:]], 1))``: a K×K on k channels, then ``mix``."""

    def __init__(
        self,
        channels: int,
        part: int,
        kernel: int = 3,
        mix_kernel: int = 1,
        out_channels: int | None = None,
        slicing: Slicing = "slice",
        conv_first: bool = True,
    ) -> None:
        super().__init__()
        self.part, self.slicing, self.conv_first = part, slicing, conv_first
        self.conv = nn.Conv2d(part, part, kernel, padding=kernel // 2)
        out = channels if out_channels is None else out_channels
        self.mix = nn.Conv2d(channels, out, mix_kernel, padding=mix_kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.slicing == "inplace":  # FasterNet's inference form: written into a copy
            x = x.clone()
            x[:, : self.part] = self.conv(x[:, : self.part])
            return self.mix(x)
        if self.slicing == "chunk":  # halves: the conv on the first ⌈C/2⌉ channels
            touched, rest = x.chunk(2, dim=1)
        elif self.slicing == "split":
            touched, rest = torch.split(x, [self.part, x.shape[1] - self.part], dim=1)
        else:
            touched, rest = x[:, : self.part], x[:, self.part :]
        if not self.conv_first:  # the conv on the last k channels, the first passed on
            rest, touched = torch.split(x, [x.shape[1] - self.part, self.part], dim=1)
            return self.mix(torch.cat([rest, self.conv(touched)], 1))
        return self.mix(torch.cat([self.conv(touched), rest], 1))


class LIA(nn.Module):
    """``x · σ(conv(x))``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(x))


class PlainUSRBlock(nn.Module):
    """RepMBConv, LeakyReLU, partial conv and 1×1, LeakyReLU, LIA. Deploy: three 3×3 convs."""

    def __init__(self, channels: int, border: Border = "input") -> None:
        super().__init__()
        self.mbconv = RepMBConv(channels, border=border)
        self.partial = PartialConv(channels, max(1, channels // 4))
        self.attention = LIA(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.mbconv(x), SLOPE)
        out = F.leaky_relu(self.partial(out), SLOPE)
        return self.attention(out)


class PlainUSR(nn.Module):
    """Head 3×3, ``blocks`` PlainUSR blocks, tail 3×3, PixelShuffle."""

    def __init__(
        self,
        colors: int = 3,
        channels: int = 8,
        blocks: int = 2,
        scale: int = 2,
        border: Border = "input",
    ) -> None:
        super().__init__()
        self.head = nn.Conv2d(colors, channels, 3, padding=1)
        self.body = nn.Sequential(*(PlainUSRBlock(channels, border) for _ in range(blocks)))
        self.tail = nn.Conv2d(channels, colors * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.tail(self.body(self.head(x))))

    @property
    def deploy_convs(self) -> int:
        return 2 + 3 * len(self.body)
