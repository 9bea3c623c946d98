"""The authors' deploy forms of the zoo's super-resolution nets (FMEN, PlainUSR, SESR).

Each builder takes the training form of :mod:`tests.zoo` and returns the network the paper's
own re-parameterization leaves, its weights folded from the training form with the paper's
algebra (:mod:`benchmarks.zoo_folding`), so it computes the same function:

* FMEN: each RRRB one 3×3 (``W = Q·(E∘R + centre(R)) + I``), an ERB two 3×3 with the
  LeakyReLU between, an HFAB's squeeze with its BatchNorm folded; the attention product, the
  sigmoid and the long skip stay;
* PlainUSR: each RepMBConv one 3×3 (``Q·(E∘R) + I``), each partial conv and its 1×1 mix one
  3×3; the LIA gate stays;
* SESR: each collapsible linear block one K×K (``P·E``, plus ``I`` with the short residual);
  the long residual and the image anchor stay.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.zoo_folding import Kernel, after_1x1, centre, conv_of, dense, fold_bn, then_1x1
from benchmarks.zoo_folding import identity_kernel as eye
from tests.zoo import fmen, plainusr, sesr


def _kernel(conv: nn.Conv2d) -> Kernel:
    return conv.weight, conv.bias


def _squeezed_chain(expand: nn.Conv2d, body: nn.Conv2d, squeeze: nn.Conv2d, inner: bool) -> Kernel:
    """1×1 expand, a K×K on its bias-ringed output (``+`` its output when ``inner``), 1×1
    squeeze, plus the block input: one K×K."""
    k = body.kernel_size[0]
    weight, bias = after_1x1(_kernel(expand), (dense(body.weight, body.groups), body.bias))
    if inner:  # the inner residual adds the 1×1's output: its kernel at the centre
        weight, bias = weight + centre(expand.weight, k), bias + expand.bias
    weight, bias = then_1x1((weight, bias), _kernel(squeeze))
    return weight + eye(weight.shape[0], 1, k).to(weight), bias


class Gate(nn.Module):
    """``x · σ(conv(x))`` (an attention no paper re-parameterizes)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(x))


class DeployHFAB(nn.Module):
    """``x · σ(excite(body(x)))``, ``body``: squeeze (BN folded), LeakyReLU, ERBs."""

    def __init__(self, body: nn.Sequential, excite: nn.Conv2d) -> None:
        super().__init__()
        self.body, self.excite = body, excite

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.excite(self.body(x)))


def _erb(erb: fmen.ERB) -> list[nn.Module]:
    first = conv_of(_squeezed_chain(erb.first.expand, erb.first.body, erb.first.squeeze, True))
    second = conv_of(_squeezed_chain(erb.second.expand, erb.second.body, erb.second.squeeze, True))
    return [first, nn.LeakyReLU(fmen.SLOPE), second]


class DeployFMEN(nn.Module):
    """Head, ``blocks`` × (ERB: 2 convs, LeakyReLU, HFAB), warp + long skip, tail, shuffle."""

    def __init__(self, model: fmen.FMEN) -> None:
        super().__init__()
        act = nn.LeakyReLU(fmen.SLOPE)
        self.head = copy.deepcopy(model.head)
        stages: list[nn.Module] = []
        for erb, hfab in zip(model.erbs, model.hfabs, strict=True):
            stages += [*_erb(erb), act]
            squeeze = conv_of(fold_bn(hfab.squeeze.weight, hfab.squeeze.bias, hfab.norm))
            body: list[nn.Module] = [squeeze, act]
            for inner in hfab.erbs:
                body += [*_erb(inner), act]
            stages.append(DeployHFAB(nn.Sequential(*body), copy.deepcopy(hfab.excite)))
        self.body = nn.Sequential(*stages)
        self.warp, self.tail = copy.deepcopy(model.warp), copy.deepcopy(model.tail)
        self.shuffle = nn.PixelShuffle(model.shuffle.upscale_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(x)
        return self.shuffle(self.tail(self.warp(self.body(head)) + head))


def _partial(block: plainusr.PartialConv) -> nn.Conv2d:
    """``mix(cat([conv(x[:, :k]), x[:, k:]]))`` with a 1×1 mix: one K×K."""
    if block.slicing not in ("slice", "split") or not block.conv_first:
        raise ValueError("the deploy form folds the first-k-channels partial conv only")
    if block.mix.kernel_size[0] != 1:
        raise ValueError("a K×K mix after the partial conv is no single conv")
    part, k = block.part, block.conv.kernel_size[0]
    mix = block.mix.weight[:, :, 0, 0]
    touched = torch.einsum("oj,jihw->oihw", mix[:, :part], block.conv.weight)
    passed = centre(block.mix.weight[:, part:], k)
    weight = torch.cat([touched, passed], dim=1)
    return conv_of((weight, mix[:, :part] @ block.conv.bias + block.mix.bias))


class DeployPlainUSR(nn.Sequential):
    """Head, per block (RepMBConv 3×3, LeakyReLU, partial-conv 3×3, LeakyReLU, LIA gate),
    tail, PixelShuffle."""

    def __init__(self, model: plainusr.PlainUSR) -> None:
        layers: list[nn.Module] = [copy.deepcopy(model.head)]
        for block in model.body:
            mb = block.mbconv
            layers += [
                conv_of(_squeezed_chain(mb.expand, mb.body, mb.squeeze, False)),
                nn.LeakyReLU(plainusr.SLOPE),
                _partial(block.partial),
                nn.LeakyReLU(plainusr.SLOPE),
                Gate(copy.deepcopy(block.attention.conv)),
            ]
        layers += [copy.deepcopy(model.tail), nn.PixelShuffle(model.shuffle.upscale_factor)]
        super().__init__(*layers)


def _collapsed(block: sesr.CollapsibleLinearBlock) -> nn.Conv2d:
    weight, bias = then_1x1(_kernel(block.expand), _kernel(block.project))
    if block.residual:
        weight = weight + eye(weight.shape[0], 1, weight.shape[-1]).to(weight)
    return conv_of((weight, bias))


class DeploySESR(nn.Module):
    """First 5×5, activation, m 3×3 each with its activation, the long residual, last 5×5,
    the image anchor, PixelShuffle: ``m + 2`` convs."""

    def __init__(self, model: sesr.SESR) -> None:
        super().__init__()
        self.scale, self.colors = model.scale, model.colors
        self.first, self.first_act = _collapsed(model.first), copy.deepcopy(model.first_act)
        self.body = nn.ModuleList(_collapsed(block) for block in model.body)
        self.acts = copy.deepcopy(model.acts)
        self.last = _collapsed(model.last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.first_act(self.first(x))
        y = features
        for conv, act in zip(self.body, self.acts, strict=True):
            y = act(conv(y))
        r = self.scale * self.scale  # SESR's anchor: the image at every sub-pixel position
        if self.colors == 1:
            anchor = torch.cat([x] * r, dim=1)
        else:
            anchor = torch.repeat_interleave(x, r, dim=1)
        return F.pixel_shuffle(self.last(y + features) + anchor, self.scale)


@torch.no_grad()
def deploy_fmen(model: fmen.FMEN) -> nn.Module:
    """FMEN's deploy form (weights folded from ``model``)."""
    return DeployFMEN(model).eval()


@torch.no_grad()
def deploy_plainusr(model: plainusr.PlainUSR) -> nn.Module:
    """PlainUSR's deploy form (weights folded from ``model``)."""
    return DeployPlainUSR(model).eval()


@torch.no_grad()
def deploy_sesr(model: sesr.SESR) -> nn.Module:
    """SESR's deploy form (weights collapsed from ``model``)."""
    return DeploySESR(model).eval()
