"""The authors' deploy forms of the zoo's ViT-style nets (RepViT, FastViT).

Each builder takes the training form of :mod:`tests.zoo` and returns the network the paper's
own re-parameterization leaves, its weights folded from the training form with the paper's
algebra (:mod:`benchmarks.zoo_folding`), so it computes the same function:

* RepViT: RepVGGDW one depthwise 3×3 (``BN(BN'(W₃) + centre(W₁) + I)``), every conv-BN
  folded, the two BN → Linear heads one Linear (``(W·diag(s) + W'·diag(s'))/2``, as the
  authors' classifier ``fuse`` does); SE and the channel mixer's residual stay;
* FastViT: each MobileOne unit one conv (its branches, scale and BN skip summed), RepMixer one
  depthwise K×K (``I + γ·(W_mixer − W_norm)``), RepCPE one conv (``W + I``), the conv FFN's
  depthwise conv-BN folded; the attention, its BatchNorm, the SE gates and the layer scales of
  the FFN and attention branches stay, as in the authors' deploy code.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from benchmarks.zoo_deploy_convnets import Residual
from benchmarks.zoo_folding import (
    Kernel,
    bn_kernel,
    bn_scale_shift,
    centre,
    conv_bn,
    conv_of,
    fold_bn,
    folded_conv,
    identity_kernel,
)
from tests.zoo import fastvit, repvit


def _repvggdw(mixer: repvit.RepVGGDW) -> nn.Conv2d:
    channels = mixer.conv1.out_channels
    weight, bias = conv_bn(mixer.conv)
    eye = identity_kernel(channels, channels, 3).to(weight)
    weight = weight + centre(mixer.conv1.weight, 3) + eye
    return conv_of(fold_bn(weight, bias + mixer.conv1.bias, mixer.bn), groups=channels)


def _repvit_block(block: repvit.RepViTBlock) -> nn.Sequential:
    mixer = block.mixer
    layers = [_repvggdw(mixer) if isinstance(mixer, repvit.RepVGGDW) else folded_conv(mixer)]
    if block.se is not None:
        layers.append(copy.deepcopy(block.se))
    if block.project is not None:
        layers.append(folded_conv(block.project))
    channel = block.channel
    mlp = nn.Sequential(folded_conv(channel.pw1), nn.GELU(), folded_conv(channel.pw2))
    return nn.Sequential(*layers, Residual(mlp))


def _bn_linear(unit: repvit.BNLinear) -> Kernel:
    bn, linear = unit[0], unit[1]
    scale, shift = bn_scale_shift(bn)
    return linear.weight * scale, linear.weight @ shift + linear.bias


class DeployRepViT(nn.Module):
    """Stem (two convs, GELU between), the blocks, global average pool, one Linear."""

    def __init__(self, model: repvit.RepViT) -> None:
        super().__init__()
        first, _, second = model.stem
        self.stem = nn.Sequential(folded_conv(first), nn.GELU(), folded_conv(second))
        self.blocks = nn.Sequential(*(_repvit_block(block) for block in model.blocks))
        (w1, b1), (w2, b2) = _bn_linear(model.head), _bn_linear(model.dist_head)
        self.head = nn.Linear(w1.shape[1], w1.shape[0]).to(w1.dtype)
        self.head.weight.copy_((w1 + w2) / 2)
        self.head.bias.copy_((b1 + b2) / 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = nn.functional.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1)
        return self.head(z)


@torch.no_grad()
def deploy_repvit(model: repvit.RepViT) -> nn.Module:
    """RepViT's deploy form (weights folded)."""
    return DeployRepViT(model).eval()


def _mobileone(unit: fastvit.MobileOneUnit) -> Kernel:
    """Σ conv-BN branches + centre(1×1 conv-BN scale) + BN skip, as one kernel."""
    conv = unit.convs[0][0]
    k, groups = conv.kernel_size[0], conv.groups
    weight, bias = conv_bn(unit.convs[0])
    for branch in unit.convs[1:]:
        w, b = conv_bn(branch)
        weight, bias = weight + w, bias + b
    if unit.scale is not None:
        w, b = conv_bn(unit.scale)
        weight, bias = weight + centre(w, k), bias + b
    if unit.skip is not None:
        w, b = bn_kernel(unit.skip, groups, k)
        weight, bias = weight + w, bias + b
    return weight, bias


def _unit(unit: fastvit.MobileOneUnit) -> nn.Sequential:
    conv = unit.convs[0][0]
    folded = conv_of(_mobileone(unit), stride=conv.stride[0], groups=conv.groups)
    activation = copy.deepcopy(unit.activation) if unit.activation is not None else nn.Identity()
    return nn.Sequential(folded, activation)


def _repmixer(mixer: fastvit.RepMixer) -> nn.Conv2d:
    dim, k = mixer.norm.num_features, mixer.mixer.convs[0][0].kernel_size[0]
    w_mix, b_mix = _mobileone(mixer.mixer)
    w_norm, b_norm = bn_kernel(mixer.norm, dim, k)
    gamma = mixer.layer_scale.view(-1)
    eye = identity_kernel(dim, dim, k).to(w_mix)
    weight = eye + gamma.view(-1, 1, 1, 1) * (w_mix - w_norm)
    return conv_of((weight, gamma * (b_mix - b_norm)), groups=dim)


def _ffn(ffn: fastvit.ConvFFN) -> nn.Sequential:
    return nn.Sequential(
        folded_conv(ffn.spatial),
        copy.deepcopy(ffn.fc1),
        nn.GELU(),
        copy.deepcopy(ffn.se),
        copy.deepcopy(ffn.fc2),
    )


class LayerScaled(nn.Module):
    """``x + γ ⊙ body(x)``."""

    def __init__(self, body: nn.Module, gamma: torch.Tensor) -> None:
        super().__init__()
        self.body, self.gamma = body, nn.Parameter(gamma.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gamma * self.body(x)


def _cpe(cpe: fastvit.RepCPE) -> nn.Conv2d:
    pe = cpe.pe
    eye = identity_kernel(pe.out_channels, pe.groups, pe.kernel_size[0]).to(pe.weight)
    return conv_of((pe.weight + eye, pe.bias), groups=pe.groups)


class DeployFastViTSmall(nn.Module):
    """Stem (3 convs), RepMixer (1 depthwise conv) and its FFN, patch embedding (2 convs),
    RepCPE (1 conv), the attention stage with its FFN."""

    def __init__(self, model: fastvit.FastViTSmall) -> None:
        super().__init__()
        attention = model.attention
        self.net = nn.Sequential(
            *(_unit(unit) for unit in model.stem),
            _repmixer(model.stage.mixer),
            LayerScaled(_ffn(model.stage.ffn), model.stage.layer_scale),
            *(_unit(unit) for unit in model.embed),
            _cpe(model.cpe),
            LayerScaled(
                nn.Sequential(copy.deepcopy(attention.norm), copy.deepcopy(attention.attention)),
                attention.scale_attention,
            ),
            LayerScaled(_ffn(attention.ffn), attention.scale_ffn),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@torch.no_grad()
def deploy_fastvit(model: fastvit.FastViTSmall) -> nn.Module:
    """FastViT's deploy form (weights folded)."""
    return DeployFastViTSmall(model).eval()
