"""The authors' deploy forms of the zoo's conv nets (QARepVGG, OREPA, RepGhost, RepLKNet).

Each builder takes the training form of :mod:`tests.zoo` and returns the network the paper's
own re-parameterization leaves, its weights folded from the training form with the paper's
algebra (:mod:`benchmarks.zoo_folding`), so it computes the same function:

* QARepVGG: each block one conv of its groups (``BN(BN₃(W₃) + centre(W₁) + I [+ pool])``),
  then its ReLU;
* OREPA: each OREPA conv one conv, the kernel its ``forward`` builds and its BatchNorm folded;
* RepGhost: each ghost module a 1×1 and a depthwise K×K (the BN-only reuse branch folded into
  the cheap conv), every conv-BN folded; the SE gate and the shortcut sums stay;
* RepLKNet: each large-kernel unit one depthwise K×K (the small kernel at its centre), every
  conv-BN folded; the BatchNorms the paper does not re-parameterize (before each block, before
  the classifier) stay as BatchNorms, as in the authors' deploy code.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from benchmarks.zoo_folding import (
    average_kernel,
    bn_kernel,
    centre,
    conv_bn,
    conv_of,
    fold_bn,
    folded_conv,
    identity_kernel,
)
from tests.zoo import orepa, qarepvgg, repghost, replknet


def _qarepvgg_block(block: qarepvgg.QARepVGGBlock) -> nn.Conv2d:
    dense, groups = block.dense, block.dense.groups
    k, channels = dense.kernel_size[0], dense.out_channels
    weight, bias = fold_bn(dense.weight, None, block.dense_bn)
    weight = weight + centre(block.point.weight, k)
    if block.identity:
        weight = weight + identity_kernel(channels, groups, k).to(weight)
    if block.pool:
        weight = weight + average_kernel(channels, groups, k, 3).to(weight)
    return conv_of(fold_bn(weight, bias, block.bn), stride=block.stride, groups=groups)


@torch.no_grad()
def deploy_qarepvgg(model: qarepvgg.QARepVGGNet) -> nn.Module:
    """QARepVGG's deploy form: one conv and its ReLU per block (weights folded)."""
    layers: list[nn.Module] = []
    for block in model.blocks:
        layers += [_qarepvgg_block(block), nn.ReLU()]
    return nn.Sequential(*layers).eval()


def _orepa(conv: orepa.OREPAConv) -> nn.Conv2d:
    return conv_of(fold_bn(conv.kernel(), None, conv.bn), stride=conv.stride, groups=conv.groups)


@torch.no_grad()
def deploy_orepa(model: orepa.OREPANet) -> nn.Module:
    """OREPA's deploy form: one conv per OREPA conv, ReLU between (weights folded)."""
    return nn.Sequential(
        _orepa(model.stem), nn.ReLU(), _orepa(model.depthwise), nn.ReLU(), _orepa(model.grouped)
    ).eval()


def _ghost(module: repghost.RepGhostModule) -> nn.Sequential:
    cheap = module.cheap[0]
    k, channels = cheap.kernel_size[0], cheap.out_channels
    weight, bias = conv_bn(module.cheap)
    if isinstance(module.fusion_bn, nn.BatchNorm2d):
        reuse, shift = bn_kernel(module.fusion_bn, channels, k)
    else:
        reuse, shift = identity_kernel(channels, channels, k).to(weight), torch.zeros_like(bias)
    layers = [folded_conv(module.primary), conv_of((weight + reuse, bias + shift), groups=channels)]
    if module.relu:
        layers = [layers[0], nn.ReLU(), layers[1], nn.ReLU()]
    return nn.Sequential(*layers)


class DeployGhostBottleneck(nn.Module):
    """Ghost (2 convs, ReLU) → [stride-2 depthwise] → [SE] → ghost (2 convs) + shortcut."""

    def __init__(self, block: repghost.RepGhostBottleneck) -> None:
        super().__init__()
        layers = [_ghost(block.ghost1)]
        if block.down is not None:
            layers.append(folded_conv(block.down))
        if block.se is not None:
            layers.append(copy.deepcopy(block.se))
        self.body = nn.Sequential(*layers, _ghost(block.ghost2))
        self.shortcut = (
            nn.Identity()
            if block.shortcut is None
            else nn.Sequential(*(folded_conv(seq) for seq in block.shortcut))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class DeployRepGhostNet(nn.Module):
    """Stem conv and ReLU, the bottlenecks, global mean, Linear."""

    def __init__(self, model: repghost.RepGhostNet) -> None:
        super().__init__()
        self.stem = nn.Sequential(folded_conv(model.stem), nn.ReLU())
        self.blocks = nn.Sequential(*(DeployGhostBottleneck(b) for b in model.blocks))
        self.classifier = copy.deepcopy(model.classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.blocks(self.stem(x)).mean((2, 3)))


@torch.no_grad()
def deploy_repghost(model: repghost.RepGhostNet) -> nn.Module:
    """RepGhost's deploy form (weights folded)."""
    return DeployRepGhostNet(model).eval()


class Residual(nn.Module):
    """``x + body(x)``."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _large_kernel(unit: replknet.LargeKernelUnit) -> nn.Conv2d:
    large = unit.large[0]
    weight, bias = conv_bn(unit.large)
    small_weight, small_bias = conv_bn(unit.small)
    k = large.kernel_size[0]
    kernel = (weight + centre(small_weight, k), bias + small_bias)
    return conv_of(kernel, stride=large.stride[0], groups=large.groups)


def _replk_stage(stage: nn.Sequential) -> nn.Sequential:
    block, ffn = stage
    lk = nn.Sequential(
        copy.deepcopy(block.pre_bn),
        folded_conv(block.pw1),
        nn.ReLU(),
        _large_kernel(block.large_kernel),
        nn.ReLU(),
        folded_conv(block.pw2),
    )
    mlp = nn.Sequential(
        copy.deepcopy(ffn.pre_bn), folded_conv(ffn.pw1), nn.GELU(), folded_conv(ffn.pw2)
    )
    return nn.Sequential(Residual(lk), Residual(mlp))


def _conv_bn_relus(seq: nn.Sequential) -> nn.Sequential:
    """A ``Sequential`` of conv-BN pairs and ReLUs with every pair folded."""
    layers: list[nn.Module] = []
    for module in seq:
        layers.append(nn.ReLU() if isinstance(module, nn.ReLU) else folded_conv(module))
    return nn.Sequential(*layers)


class DeployRepLKNet(nn.Module):
    """Stem, stage, transition, stage (each conv-BN folded, each large-kernel unit one
    depthwise conv), BatchNorm, global average pool, Linear."""

    def __init__(self, model: replknet.RepLKNet) -> None:
        super().__init__()
        self.stem = _conv_bn_relus(model.stem)
        self.stage1 = _replk_stage(model.stage1)
        self.transition = _conv_bn_relus(model.transition)
        self.stage2 = _replk_stage(model.stage2)
        self.norm, self.head = copy.deepcopy(model.norm), copy.deepcopy(model.head)
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage2(self.transition(self.stage1(self.stem(x))))
        return self.head(torch.flatten(self.avgpool(self.norm(x)), 1))


@torch.no_grad()
def deploy_replknet(model: replknet.RepLKNet) -> nn.Module:
    """RepLKNet's deploy form (weights folded)."""
    return DeployRepLKNet(model).eval()
