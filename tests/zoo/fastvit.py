"""FastViT (Vasu et al., "FastViT: A Fast Hybrid Vision Transformer using Structural
Reparameterization", ICCV 2023), written from the paper's description (not from its code).

* MobileOne block (the stem's units): ``k`` conv-BN branches of one K×K geometry, a 1×1
  conv-BN "scale" branch (when K > 1) and a BN-only skip (stride 1, in = out), summed, then the
  activation. Deploy: one K×K conv.
* RepMixer: ``x ↦ x + γ ⊙ (mixer(x) − norm(x))`` with ``mixer`` a depthwise MobileOne unit
  without activation (its K×K conv-BN branches, its 1×1 depthwise scale branch, its BN skip)
  and ``norm`` a BatchNorm (a depthwise 1×1 conv), γ a per-channel ``[C, 1, 1]`` parameter.
  Deploy: one depthwise K×K conv with bias.
* RepCPE (conditional positional encoding): ``x ↦ x + conv_{K×K, groups}(x)`` (depthwise, or a
  group count dividing C). Deploy: one conv of those groups.
* Conv FFN: a depthwise 7×7 conv-BN, a 1×1 expansion, GELU, a squeeze-excitation gate (global
  mean by ``avg_pool2d`` over the whole map, whatever its size), a 1×1 projection; added
  through a layer scale.
* Attention stage: RepCPE, then ``x + γ ⊙ MHSA(BN(x))`` over the tokens (softmax: nothing a
  rule folds) and a conv FFN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """A bias-free conv (padding K // 2) followed by its BatchNorm."""
    conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout))


class MobileOneUnit(nn.Module):
    """Σ k conv-BN branches + 1×1 conv-BN scale branch (K > 1) + BN skip (stride 1, in = out),
    then ``activation`` (None: none, as in RepMixer's mixer)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        *,
        stride: int = 1,
        groups: int = 1,
        branches: int = 2,
        activation: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            conv_bn(cin, cout, kernel, stride, groups) for _ in range(branches)
        )
        self.scale = conv_bn(cin, cout, 1, stride, groups) if kernel > 1 else None
        self.skip = nn.BatchNorm2d(cin) if stride == 1 and cin == cout else None
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(x) if self.skip is not None else 0
        if self.scale is not None:
            y = y + self.scale(x)
        for conv in self.convs:
            y = y + conv(x)
        return self.activation(y) if self.activation is not None else y


class RepMixer(nn.Module):
    """``x + γ ⊙ (mixer(x) − norm(x))``; deploy: one depthwise K×K conv with bias."""

    def __init__(self, dim: int, kernel: int = 3) -> None:
        super().__init__()
        self.mixer = MobileOneUnit(dim, dim, kernel, groups=dim, branches=1)
        self.norm = nn.BatchNorm2d(dim)
        self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layer_scale * (self.mixer(x) - self.norm(x))


class RepCPE(nn.Module):
    """``x + conv_{K×K, groups}(x)`` (with bias); deploy: one conv with those groups."""

    def __init__(self, dim: int, kernel: int = 7, groups: int | None = None) -> None:
        super().__init__()
        groups = dim if groups is None else groups
        self.pe = nn.Conv2d(dim, dim, kernel, 1, kernel // 2, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe(x)


class SqueezeExcite(nn.Module):
    """``x ⊙ σ(W₂ relu(W₁ mean_hw(x)))`` with the mean written as FastViT writes it: an average
    pool whose window is the whole map."""

    def __init__(self, dim: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(dim, reduced, 1)
        self.expand = nn.Conv2d(reduced, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        gate = F.avg_pool2d(x, kernel_size=[h, w])
        gate = torch.sigmoid(self.expand(F.relu(self.reduce(gate))))
        return x * gate


class ConvFFN(nn.Module):
    """Depthwise 7×7 conv-BN, 1×1 expansion, GELU, squeeze-excitation, 1×1 projection."""

    def __init__(self, dim: int, hidden: int, kernel: int = 7) -> None:
        super().__init__()
        self.spatial = conv_bn(dim, dim, kernel, groups=dim)
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.se = SqueezeExcite(hidden, max(hidden // 4, 1))
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.se(F.gelu(self.fc1(self.spatial(x)))))


class RepMixerBlock(nn.Module):
    """RepMixer, then ``x + γ ⊙ ConvFFN(x)``."""

    def __init__(self, dim: int, kernel: int = 3) -> None:
        super().__init__()
        self.mixer = RepMixer(dim, kernel)
        self.ffn = ConvFFN(dim, 2 * dim)
        self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mixer(x)
        return x + self.layer_scale * self.ffn(x)


class Attention(nn.Module):
    """Multi-head self-attention over the H·W tokens (softmax(QKᵀ/√d)V, then a projection)."""

    def __init__(self, dim: int, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # [N, HW, C]
        q, k, v = self.qkv(tokens).reshape(n, h * w, 3, self.heads, c // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [N, heads, HW, d]
        weights = torch.softmax(q @ k.transpose(-2, -1) / (c // self.heads) ** 0.5, dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(n, h * w, c)
        return self.proj(out).transpose(1, 2).reshape(n, c, h, w)


class AttentionBlock(nn.Module):
    """``x + γ₁ ⊙ MHSA(BN(x))``, then ``x + γ₂ ⊙ ConvFFN(x)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(dim)
        self.attention = Attention(dim)
        self.ffn = ConvFFN(dim, 2 * dim)
        self.scale_attention = nn.Parameter(torch.ones(dim, 1, 1))
        self.scale_ffn = nn.Parameter(torch.ones(dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.scale_attention * self.attention(self.norm(x))
        return x + self.scale_ffn * self.ffn(x)


class FastViTSmall(nn.Module):
    """Stem (3×3 stride 2; depthwise 3×3 stride 2; 1×1), a RepMixer stage, a patch embedding
    (depthwise 7×7 stride 2 MobileOne-style unit then 1×1), RepCPE and an attention stage."""

    def __init__(self, colors: int = 3, dim: int = 8, cpe_groups: int | None = None) -> None:
        super().__init__()
        act = nn.GELU()
        self.stem = nn.Sequential(
            MobileOneUnit(colors, dim, 3, stride=2, activation=act),
            MobileOneUnit(dim, dim, 3, stride=2, groups=dim, activation=act),
            MobileOneUnit(dim, dim, 1, activation=act),
        )
        self.stage = RepMixerBlock(dim, 3)
        self.embed = nn.Sequential(
            MobileOneUnit(dim, dim, 7, stride=2, groups=dim, activation=act),
            MobileOneUnit(dim, 2 * dim, 1, activation=act),
        )
        self.cpe = RepCPE(2 * dim, 7, cpe_groups)
        self.attention = AttentionBlock(2 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage(self.stem(x))
        return self.attention(self.cpe(self.embed(x)))


#: deploy convs of :class:`FastViTSmall`: stem 3, RepMixer 1, FFN 3 + SE 2 (two FFNs),
#: embedding 2, RepCPE 1
SMALL_DEPLOY_CONVS = 3 + 1 + 2 * (3 + 2) + 2 + 1
