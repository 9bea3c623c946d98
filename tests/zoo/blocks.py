"""Re-parameterizable blocks written from their papers' descriptions (not from their code).

Each block is in its training form; ``DEPLOY_CONVS`` is the conv count of its published deploy
form. ``randomize`` draws non-trivial weights and BatchNorm statistics so no test is vacuous.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin: int, cout: int, k, stride=1, padding=0, groups=1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, padding, groups=groups, bias=False), nn.BatchNorm2d(cout)
    )


class RepVGGBlock(nn.Module):
    """RepVGG (Ding et al. 2021): ReLU(BN(3×3 x) + BN(1×1 x) + BN(x)); deploy: one 3×3."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.dense, self.point, self.identity = (
            conv_bn(c, c, 3, 1, 1),
            conv_bn(c, c, 1),
            nn.BatchNorm2d(c),
        )

    def forward(self, x):
        return F.relu(self.dense(x) + self.point(x) + self.identity(x))


class ACBlock(nn.Module):
    """ACNet (Ding et al. 2019): BN(3×3) + BN(1×3) + BN(3×1); deploy: one 3×3."""

    def __init__(self, c: int, cout: int) -> None:
        super().__init__()
        self.square = conv_bn(c, cout, 3, 1, 1)
        self.hor = conv_bn(c, cout, (1, 3), 1, (0, 1))
        self.ver = conv_bn(c, cout, (3, 1), 1, (1, 0))

    def forward(self, x):
        return self.square(x) + self.hor(x) + self.ver(x)


class DBBBlock(nn.Module):
    """Diverse Branch Block (Ding et al. 2021), all six transforms: conv-BN (1), branch add (2),
    1×1 then K×K (3, with BN between, bias-padded by the BN shift), depth concat (4), average
    pooling (5), multi-scale 1×1 in K×K (6). Deploy: one K×K."""

    def __init__(self, c: int, cout: int) -> None:
        super().__init__()
        self.kxk = conv_bn(c, cout, 3, 1, 1)
        self.one = conv_bn(c, cout, 1)
        self.pool = nn.Conv2d(c, cout, 1, bias=False)
        self.pool_bn = nn.BatchNorm2d(cout)
        self.seq1 = nn.Conv2d(c, c, 1, bias=False)
        self.seq2 = conv_bn(c, cout, 3, 1, 0)
        self.half_a = nn.Conv2d(c, cout // 2, 3, padding=1)
        self.half_b = nn.Conv2d(c, cout - cout // 2, 3, padding=1)

    def forward(self, x):
        pooled = self.pool_bn(F.avg_pool2d(self.pool(x), 3, 1, 1))
        seq = self.seq2(F.pad(self.seq1(x), (1, 1, 1, 1)))  # seq1 has no bias: zero pad exact
        concat = torch.cat([self.half_a(x), self.half_b(x)], dim=1)
        return self.kxk(x) + self.one(x) + pooled + seq + concat


class MobileOneBlock(nn.Module):
    """MobileOne (Vasu et al. 2023): k over-parameterized conv-BN branches + 1×1 scale branch
    + BN skip (when stride 1), then ReLU; ``depthwise`` gives the K×K depthwise stage."""

    def __init__(self, c: int, cout: int, k: int = 3, stride: int = 1, depthwise: bool = True):
        super().__init__()
        groups, size = (c, 3) if depthwise else (1, 1)
        cout = c if depthwise else cout
        self.branches = nn.ModuleList(
            conv_bn(c, cout, size, stride, size // 2, groups) for _ in range(k)
        )
        self.scale = conv_bn(c, cout, 1, stride, 0, groups) if size > 1 else None
        self.skip = nn.BatchNorm2d(c) if stride == 1 and cout == c else None

    def forward(self, x):
        y = sum(branch(x) for branch in self.branches)
        if self.scale is not None:
            y = y + self.scale(x)
        if self.skip is not None:
            y = y + self.skip(x)
        return F.relu(y)


class EdgeBlock(nn.Module):
    """ECB (Zhang et al. 2021), from the paper's equations: a 3×3, a 1×1-then-3×3 pair, and
    1×1 then Sobel-x, Sobel-y and Laplacian depthwise filters scaled per channel; each 1×1
    output is padded with its own bias (a canvas of the bias with the output written inside),
    so the pairs are exactly one 3×3 each. Deploy: one 3×3."""

    SOBEL_X = ((1.0, 0.0, -1.0), (2.0, 0.0, -2.0), (1.0, 0.0, -1.0))
    LAPLACE = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))

    def __init__(self, c: int, cout: int, mid: int = 6) -> None:
        super().__init__()
        self.k3 = nn.Conv2d(c, cout, 3, padding=1)
        self.reduce, self.expand3 = nn.Conv2d(c, mid, 1), nn.Conv2d(mid, cout, 3)
        self.edge_in = nn.ModuleList(nn.Conv2d(c, cout, 1) for _ in range(3))
        sobel_x = torch.tensor(self.SOBEL_X)
        masks = torch.stack([sobel_x, sobel_x.t(), torch.tensor(self.LAPLACE)])
        self.register_buffer("masks", masks)
        self.scales = nn.Parameter(torch.randn(3, cout))
        self.shifts = nn.Parameter(torch.randn(3, cout))

    @staticmethod
    def _bias_padded(y: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        n, c, h, w = y.shape
        canvas = torch.ones(n, c, h + 2, w + 2, dtype=y.dtype) * bias.view(1, c, 1, 1)
        canvas[:, :, 1:-1, 1:-1] = y
        return canvas

    def forward(self, x):
        out = self.k3(x)
        out = out + self.expand3(self._bias_padded(self.reduce(x), self.reduce.bias))
        for i, conv in enumerate(self.edge_in):
            padded = self._bias_padded(conv(x), conv.bias)
            kernel = self.scales[i].view(-1, 1, 1, 1) * self.masks[i].expand(
                conv.out_channels, 1, 3, 3
            )
            out = out + F.conv2d(padded, kernel, self.shifts[i], groups=conv.out_channels)
        return out


class SESRBlock(nn.Module):
    """SESR collapsible linear block (Bhardwaj et al. 2022): K×K expand to p channels, 1×1
    project back, plus a short residual; linear, so deploy: one K×K."""

    def __init__(self, c: int, expand: int = 16, k: int = 3) -> None:
        super().__init__()
        self.expand = nn.Conv2d(c, expand, k, padding=k // 2)
        self.project = nn.Conv2d(expand, c, 1)

    def forward(self, x):
        return self.project(self.expand(x)) + x


class SESRNet(nn.Module):
    """SESR-style SR net: collapsible blocks, a long residual, PixelShuffle."""

    def __init__(self, colors: int, scale: int, feat: int = 8, blocks: int = 2) -> None:
        super().__init__()
        self.head = SESRBlock.__new__(SESRBlock)
        nn.Module.__init__(self.head)
        self.head.expand = nn.Conv2d(colors, 16, 5, padding=2)
        self.head.project = nn.Conv2d(16, feat, 1)
        self.body = nn.ModuleList(SESRBlock(feat) for _ in range(blocks))
        self.tail = nn.Conv2d(feat, colors * scale * scale, 5, padding=2)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x):
        head = self.head.project(self.head.expand(x))
        y = head
        for block in self.body:
            y = F.relu(block(y))
        return self.shuffle(self.tail(y + head))


class Conv3XC(nn.Module):
    """SPAN's Conv3XC (Wan et al. 2024): zero-pad, 1×1 → 3×3 (valid) → 1×1, plus a 1×1
    skip; deploy: one 3×3."""

    def __init__(self, c: int, cout: int, gain: int = 2) -> None:
        super().__init__()
        self.skip = nn.Conv2d(c, cout, 1)
        self.body = nn.Sequential(
            nn.Conv2d(c, c * gain, 1),
            nn.Conv2d(c * gain, cout * gain, 3),
            nn.Conv2d(cout * gain, cout, 1),
        )

    def forward(self, x):
        return self.body(F.pad(x, (1, 1, 1, 1))) + self.skip(x)


class PlainUSRBlock(nn.Module):
    """PlainUSR-style block (Wang et al. 2024): a 3×3 with a 1×1 and an identity shortcut
    (reparameterized MBConv), LeakyReLU; deploy: one 3×3 + activation."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.pw = nn.Conv2d(c, c, 1)

    def forward(self, x):
        return F.leaky_relu(self.conv(x) + self.pw(x) + x, 0.05)


class MixedBlock(nn.Module):
    """A custom block mixing the others: RepVGG, then Conv3XC, then an ACNet branch set."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.a, self.b, self.c = RepVGGBlock(c), Conv3XC(c, c), ACBlock(c, c)

    def forward(self, x):
        return self.c(F.relu(self.b(self.a(x))))


# --- The same blocks written with the idioms of their published training code -------------
# Written by us from the papers' structure; what they exercise is how such code computes:
# in-place ``+=`` sums started from ``0``, skip BatchNorms listed before the convs, a BN shift
# recomputed in ``forward`` to fill a border, a kernel built from a weight plus a constant
# identity tensor that is neither parameter nor buffer, and a 1-colour image broadcast across
# the scale² channels it is added to.


class BNThenShiftPad(nn.Module):
    """BatchNorm, then a 1-pixel border filled with the BN's own shift β − μ·γ/√(σ²+ε),
    recomputed here from the statistics (so the 1×1 → BN → K×K pair stays exactly one K×K)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        out = F.pad(self.bn(x), [1, 1, 1, 1])
        bn = self.bn
        shift = bn.bias.detach() - bn.running_mean * bn.weight.detach() / torch.sqrt(
            bn.running_var + bn.eps
        )
        shift = shift.view(1, -1, 1, 1)
        out[:, :, 0:1, :] = shift
        out[:, :, -1:, :] = shift
        out[:, :, :, 0:1] = shift
        out[:, :, :, -1:] = shift
        return out


class IdentityPlusConv1x1(nn.Conv2d):
    """A 1×1 whose kernel is its weight plus the identity, the identity held as a plain
    tensor attribute (neither parameter nor buffer)."""

    def __init__(self, c: int, groups: int = 1) -> None:
        super().__init__(c, c, 1, groups=groups, bias=False)
        eye = torch.zeros(c, c // groups, 1, 1)
        for i in range(c):
            eye[i, i % (c // groups)] = 1.0
        self.identity = eye

    def forward(self, x):
        kernel = self.weight + self.identity.type_as(self.weight)
        return F.conv2d(x, kernel, None, 1, 0, 1, self.groups)


class DBBAsPublished(nn.Module):
    """DBB with a K×K origin, a 1×1, an average branch (1×1 → BN-then-shift-pad → valid 3×3
    average → BN) and a 1×1 (identity-based) → BN-then-shift-pad → valid K×K → BN; depthwise
    (``groups == cout``) drops the 1×1s as the paper does. Deploy: one K×K."""

    def __init__(self, c: int, cout: int, groups: int = 1) -> None:
        super().__init__()
        self.origin = conv_bn(c, cout, 3, padding=1, groups=groups)
        self.pooled = nn.Sequential()
        if groups < cout:
            self.one = conv_bn(c, cout, 1, groups=groups)
            self.pooled.add_module("conv", nn.Conv2d(c, cout, 1, groups=groups, bias=False))
            self.pooled.add_module("bn", BNThenShiftPad(cout))
            self.pooled.add_module("avg", nn.AvgPool2d(3, 1, 0))
        else:
            self.pooled.add_module("avg", nn.AvgPool2d(3, 1, 1))
        self.pooled.add_module("avgbn", nn.BatchNorm2d(cout))
        inner = c if groups < cout else 2 * c
        first = (
            IdentityPlusConv1x1(c, groups)
            if inner == c
            else nn.Conv2d(c, inner, 1, groups=groups, bias=False)
        )
        self.seq = nn.Sequential(
            first,
            BNThenShiftPad(inner),
            nn.Conv2d(inner, cout, 3, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x):
        out = self.origin(x)
        if hasattr(self, "one"):
            out += self.one(x)
        out += self.pooled(x)
        out += self.seq(x)
        return out


class MobileOneAsPublished(nn.Module):
    """MobileOne written as its training code sums: ``out = scale + skip`` (each 0 when
    absent), then ``out += conv_i(x)`` for k conv-BN branches, ReLU. Depthwise: groups = c."""

    def __init__(self, c: int, cout: int, kernel: int, k: int = 3, depthwise: bool = True):
        super().__init__()
        groups = c if depthwise else 1
        pad = kernel // 2
        self.skip = nn.BatchNorm2d(c) if c == cout else None
        self.scale = conv_bn(c, cout, 1, groups=groups) if kernel > 1 else None
        self.convs = nn.ModuleList(
            conv_bn(c, cout, kernel, padding=pad, groups=groups) for _ in range(k)
        )

    def forward(self, x):
        skip_out = 0 if self.skip is None else self.skip(x)
        scale_out = 0 if self.scale is None else self.scale(x)
        out = scale_out + skip_out
        for conv in self.convs:
            out += conv(x)
        return F.relu(out)


class ECBSRLuma(nn.Module):
    """ECBSR on the Y channel as its code writes the global shortcut: ``body(x) + x``, the
    1-channel image broadcast across the scale² output channels, then PixelShuffle."""

    def __init__(self, scale: int, feat: int = 6, blocks: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = [EdgeBlock(1, feat), nn.PReLU(feat)]
        for _ in range(blocks):
            layers += [EdgeBlock(feat, feat), nn.PReLU(feat)]
        layers.append(EdgeBlock(feat, scale * scale))
        self.body = nn.Sequential(*layers)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x):
        return self.shuffle(self.body(x) + x)


class ACBlockCropped(nn.Module):
    """ACNet's valid variant (square padding 0 < k//2): the 1×k and k×1 branches read the
    input cropped by k//2 on the axis their kernel lacks, as ACNet's crop layer does, each
    with its BN. Deploy: one valid k×k."""

    def __init__(self, c: int, cout: int, k: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.r = k // 2
        self.square = conv_bn(c, cout, k, stride)
        self.hor = conv_bn(c, cout, (1, k), stride)
        self.ver = conv_bn(c, cout, (k, 1), stride)

    def forward(self, x):
        r = self.r
        return self.square(x) + self.hor(x[:, :, r:-r, :]) + self.ver(x[:, :, :, r:-r])


class AnchoredSR(nn.Module):
    """conv → ReLU → conv to colours·s² channels, plus the LR image replicated to those
    channels, then PixelShuffle: the anchor written as ``repeat_interleave`` (PyTorch order),
    or tiled by ``repeat``, ``cat`` or ``expand`` (as TF-style ports and SESR's do)."""

    def __init__(self, colors: int, scale: int, anchor: str, feat: int = 6) -> None:
        super().__init__()
        self.scale, self.anchor = scale, anchor
        self.body = nn.Sequential(
            nn.Conv2d(colors, feat, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(feat, colors * scale * scale, 3, padding=1),
        )

    def forward(self, x):
        r = self.scale * self.scale
        if self.anchor == "interleave":
            anchor = torch.repeat_interleave(x, r, dim=1)
        elif self.anchor == "repeat":
            anchor = x.repeat(1, r, 1, 1)
        elif self.anchor == "cat":
            anchor = torch.cat([x] * r, dim=1)
        else:
            anchor = x.expand(-1, r, -1, -1)
        return F.pixel_shuffle(self.body(x) + anchor, self.scale)


class Conv3XCAsPublished(Conv3XC):
    """SPAN's Conv3XC as its code runs it: the training form (zero-pad, 1×1 → valid 3×3 → 1×1,
    plus a 1×1 skip) in training mode; in eval mode ``forward`` first writes its own fused 3×3
    into ``eval_conv.weight.data`` (the kernel composition done here with our own R8/R9
    arithmetic), then runs it."""

    def __init__(self, c: int, cout: int, gain: int = 2) -> None:
        super().__init__(c, cout, gain)
        self.eval_conv = nn.Conv2d(c, cout, 3, padding=1)

    def _fuse(self) -> None:
        first, middle, last = self.body
        with torch.no_grad():
            w = torch.einsum("omhw,mi->oihw", middle.weight, first.weight[:, :, 0, 0])
            b = middle.bias + torch.einsum("omhw,m->o", middle.weight, first.bias)
            w = torch.einsum("om,mihw->oihw", last.weight[:, :, 0, 0], w)
            b = last.bias + last.weight[:, :, 0, 0] @ b
            w = w + F.pad(self.skip.weight, (1, 1, 1, 1))
        self.eval_conv.weight.data = w
        self.eval_conv.bias.data = b + self.skip.bias.detach()

    def forward(self, x):
        if self.training:
            return self.body(F.pad(x, (1, 1, 1, 1))) + self.skip(x)
        self._fuse()
        return self.eval_conv(x)


def randomize(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Non-trivial weights and BatchNorm statistics (no default BN, no zero bias)."""
    with torch.no_grad():
        for _name, tensor in module.named_parameters():
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.5)
        for sub in module.modules():
            if isinstance(sub, nn.BatchNorm2d):
                sub.running_mean.copy_(torch.randn(sub.num_features, generator=generator) * 0.3)
                sub.running_var.copy_(torch.rand(sub.num_features, generator=generator) + 0.5)
    return module.eval()
