"""The authors' deploy forms the zoo's compiled networks are timed against
(:mod:`benchmarks.zoo_deploy_forms`): each has the conv count its zoo test states, and its
folded weights compute the training form's function (float64, two sizes, random inputs).
A negative twin: a deploy form folded from other weights is caught by the same comparison.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmarks.zoo_deploy_forms import FAMILIES, ZooFamily, randomized
from benchmarks.zoo_deploy_sr import deploy_fmen
from benchmarks.zoo_folding import average_kernel, centre, identity_kernel
from tests.zoo import fmen, qarepvgg

BY_NAME = {family.name: family for family in FAMILIES}


def conv_count(module: nn.Module) -> int:
    return sum(isinstance(m, nn.Conv2d) for m in module.modules())


def max_relative_error(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        expected, got = a(x), b(x)
    assert expected.shape == got.shape
    return float((expected - got).abs().max() / expected.abs().max())


def _sizes(family: ZooFamily) -> list[tuple[int, int]]:
    # the SR nets at two odd sizes; the classifiers (stride 16 or 32) at two that divide
    if family.shape[1] == 224:
        return [(64, 64), (96, 128)]
    return [(17, 23), (24, 20)]


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_deploy_form_has_the_stated_convs_and_computes_the_training_form(name: str) -> None:
    family = BY_NAME[name]
    training = family.training().double()
    deploy = family.deploy(training)
    assert conv_count(deploy) == family.stated_convs(training)
    generator = torch.Generator().manual_seed(1)
    for height, width in _sizes(family):
        x = torch.rand(2, family.shape[0], height, width, generator=generator, dtype=torch.float64)
        assert max_relative_error(training, deploy, x) <= 1e-9, (name, height, width)


def test_deploy_form_folded_from_other_weights_is_caught() -> None:
    """The comparison sees a wrong fold: FMEN's deploy form from a differently drawn FMEN."""
    training = randomized(fmen.FMEN(3, 8, 6), seed=0).double()
    other = randomized(fmen.FMEN(3, 8, 6), seed=1).double()
    x = torch.rand(1, 3, 12, 12, dtype=torch.float64)
    assert max_relative_error(training, deploy_fmen(training), x) <= 1e-9
    assert max_relative_error(training, deploy_fmen(other), x) > 1e-3


def test_qarepvgg_pool_and_identity_kernels_are_the_ops_they_replace() -> None:
    """The folding algebra on its own: a grouped identity kernel is ``x``, the average kernel
    is ``avg_pool2d(x, 3, 1, 1)`` counting the padding, both embedded in a 5×5."""
    x = torch.rand(1, 4, 9, 8, dtype=torch.float64)
    conv = torch.nn.functional.conv2d
    eye = centre(identity_kernel(4, 2, 3).double(), 5)
    assert torch.allclose(conv(x, eye, padding=2, groups=2), x, rtol=0, atol=1e-15)
    pool = average_kernel(4, 2, 5, 3).double()
    expected = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    assert torch.allclose(conv(x, pool, padding=2, groups=2), expected, rtol=0, atol=1e-15)


def test_strided_grouped_qarepvgg_block_folds() -> None:
    """A stride-2 grouped v2 block with its pool (the net's third block) on its own."""
    block = randomized(qarepvgg.QARepVGGBlock(6, 6, stride=2, groups=3, pool=True), 3).double()
    net = qarepvgg.QARepVGGNet(3, 6, 3, pool=True)
    net.blocks = nn.Sequential(block)
    deploy = BY_NAME["QARepVGG"].deploy(net)
    x = torch.rand(1, 6, 11, 10, dtype=torch.float64)
    assert max_relative_error(block, deploy, x) <= 1e-9
