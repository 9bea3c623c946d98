"""The zoo families (issue 26), each with its training form and the authors' deploy form.

A :class:`ZooFamily` names a small network of :mod:`tests.zoo` (written from its paper), the
input it is timed on, the conv count its zoo test states for the authors' deploy form, and the
builder of that deploy form (:mod:`benchmarks.zoo_deploy_sr`,
:mod:`~benchmarks.zoo_deploy_convnets`, :mod:`~benchmarks.zoo_deploy_vit`). Every deploy
form's weights are folded from the training form with the paper's own algebra, so the two
compute the same function (checked by ``tests/benchmarks/test_zoo_deploy_forms.py``) and
``et.compile``'s output can be timed against it (:mod:`benchmarks.bench_zoo_ort`). The widths
are larger than the zoo tests' so the timings are not all overhead; the SR nets are timed on
a 3×128×128 image, the classifiers on 3×224×224.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from benchmarks.zoo_deploy_convnets import (
    deploy_orepa,
    deploy_qarepvgg,
    deploy_repghost,
    deploy_replknet,
)
from benchmarks.zoo_deploy_sr import deploy_fmen, deploy_plainusr, deploy_sesr
from benchmarks.zoo_deploy_vit import deploy_fastvit, deploy_repvit
from tests.zoo import (
    blocks,
    fastvit,
    fmen,
    orepa,
    plainusr,
    qarepvgg,
    repghost,
    replknet,
    repvit,
    sesr,
)


@dataclass(frozen=True)
class ZooFamily:
    """One family: ``training()`` builds its (untrained) training form, ``deploy(model)`` the
    authors' deploy form of ``model``, ``stated_convs(model)`` the deploy conv count its zoo
    test states; ``shape`` is the ``(C, H, W)`` it is timed on, ``compile_size`` the ``(H, W)``
    of the example ``et.compile`` captures (the compiled module holds at other sizes too)."""

    name: str
    training: Callable[[], nn.Module]
    deploy: Callable[[nn.Module], nn.Module]
    stated_convs: Callable[[nn.Module], int]
    shape: tuple[int, int, int]
    compile_size: tuple[int, int]


def randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial weights and BatchNorm statistics (:func:`tests.zoo.blocks.randomize`, and
    the BatchNorm1d statistics), each conv and linear weight divided by √fan-in so the signal
    keeps its scale through deep stacks (no overflow, no denormals to skew timings)."""
    blocks.randomize(model, torch.Generator().manual_seed(seed))
    repvit.randomize_batch_norm_1d(model, torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                module.weight.mul_(2.0 / module.weight[0].numel() ** 0.5)
            if isinstance(module, orepa.OREPAConv):  # its kernel is built from six branches
                module.scales.mul_(0.5 / module.origin[0].numel() ** 0.5)
    return model.eval()


def _attribute(name: str) -> Callable[[nn.Module], int]:
    return lambda model: int(getattr(model, name))


SR, IMAGE = (3, 128, 128), (3, 224, 224)

FAMILIES: tuple[ZooFamily, ...] = (
    ZooFamily(
        "QARepVGG",
        lambda: randomized(qarepvgg.QARepVGGNet(3, 32, 2, pool=True)),
        deploy_qarepvgg,
        lambda model: qarepvgg.NET_DEPLOY_CONVS,
        SR,
        (32, 32),
    ),
    ZooFamily(
        "FMEN",
        lambda: randomized(fmen.FMEN(3, 32, 16, blocks=2, scale=2)),
        deploy_fmen,
        _attribute("deploy_convs"),
        SR,
        (16, 16),
    ),
    ZooFamily(
        "PlainUSR",
        lambda: randomized(plainusr.PlainUSR(3, 32, blocks=2, scale=2)),
        deploy_plainusr,
        _attribute("deploy_convs"),
        SR,
        (16, 16),
    ),
    ZooFamily(
        "SESR-M5",
        lambda: randomized(sesr.SESR(3, 2, features=16, blocks=5, expand=256)),
        deploy_sesr,
        _attribute("deploy_convs"),
        SR,
        (16, 16),
    ),
    ZooFamily(
        "OREPA",
        lambda: randomized(orepa.OREPANet(3, 16, 7)),
        deploy_orepa,
        lambda model: orepa.OREPANet.DEPLOY_CONVS,
        SR,
        (32, 32),
    ),
    ZooFamily(
        "RepGhost",
        lambda: randomized(repghost.RepGhostNet(3, 16, classes=10)),
        deploy_repghost,
        _attribute("deploy_convs"),
        IMAGE,
        (64, 64),
    ),
    ZooFamily(
        "RepLKNet",
        lambda: randomized(replknet.RepLKNet(3, (16, 32), 13, classes=10)),
        deploy_replknet,
        _attribute("deploy_convs"),
        IMAGE,
        (64, 64),
    ),
    ZooFamily(
        "RepViT",
        lambda: randomized(repvit.RepViT(3, (16, 32), classes=10)),
        deploy_repvit,
        _attribute("deploy_convs"),
        IMAGE,
        (64, 64),
    ),
    ZooFamily(
        "FastViT",
        lambda: randomized(fastvit.FastViTSmall(3, 16)),
        deploy_fastvit,
        lambda model: fastvit.SMALL_DEPLOY_CONVS,
        IMAGE,
        (64, 64),
    ),
)
