"""RepViT through et.compile: RepVGGDW's BatchNorm after the sum, the two averaged
BatchNorm → Linear heads, and a small RepViT net, each to its deploy form.

``BN(BN'(dw3×3 x) + dw1×1 x + x)`` is one depthwise 3×3 (R1, R4, R6, R3, then R1 on the outer
BatchNorm); ``(Linear(BN1d(z)) + Linear'(BN1d'(z)))/2`` is one Linear (R16 twice, R17 for the
sum and the halving). SE (mean, 1×1 convs, sigmoid, product) and the channel mixer's residual
are kept, as in the authors' deploy form.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import et
from tests.zoo import blocks
from tests.zoo.deploy_form import DeployForm, check_deploy_form
from tests.zoo.repvit import RepVGGDW, RepViT, RepViTBlock, randomize_batch_norm_1d


def _randomized(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    blocks.randomize(model, torch.Generator().manual_seed(seed))
    return randomize_batch_norm_1d(model, torch.Generator().manual_seed(seed + 1))


@settings(max_examples=4, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(seed=st.integers(0, 2**31 - 1), channels=st.integers(1, 6), size=st.integers(5, 12))
def test_repvggdw_with_bn_after_the_sum_folds_to_one_depthwise_conv(
    seed: int, channels: int, size: int
) -> None:
    model = _randomized(RepVGGDW(channels), seed)
    compiled = check_deploy_form(model, (channels, size, size), DeployForm(convs=1))
    used = compiled.certificate.rules_used()
    assert used.get("R1") == 2 and used.get("R6") == 1, used  # branch BN, outer BN; identity


@pytest.mark.parametrize(("cout", "stride", "se"), [(4, 1, True), (4, 1, False), (6, 2, True)])
@settings(max_examples=2, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(seed=st.integers(0, 2**31 - 1), size=st.integers(8, 13))
def test_repvit_block_folds_to_its_deploy_form(
    cout: int, stride: int, se: bool, seed: int, size: int
) -> None:
    model = _randomized(RepViTBlock(4, cout, stride, se), seed)
    # the channel mixer's residual is the one sum the authors keep
    check_deploy_form(model, (4, size, size), DeployForm(model.deploy_convs, joins=1))


@settings(max_examples=2, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(seed=st.integers(0, 2**31 - 1), size=st.integers(28, 34))
def test_repvit_net_folds_and_its_two_heads_become_one_linear(seed: int, size: int) -> None:
    model = _randomized(RepViT(), seed)
    # one channel-mixer residual per block; the heads' sum folds away
    compiled = check_deploy_form(model, (3, size, size), DeployForm(model.deploy_convs, joins=4))
    assert compiled.certificate.ops_after.get("linear.default") == 1
    used = compiled.certificate.rules_used()
    assert used.get("R16") == 2 and used.get("R17") == 2, used


def test_distillation_heads_reading_different_features_stay_two_and_are_named() -> None:
    """Negative twin: a distillation head reading the max-pooled features (not the same value
    as the head) is a different function of the image: the sum stays and R17 names why."""

    class TwoPools(RepViT):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.blocks(self.stem(x))
            mean, peak = y.mean((2, 3)), y.amax((2, 3))
            return (self.head(mean) + self.dist_head(peak)) / 2

    model = _randomized(TwoPools(), 3).double().eval()
    compiled = et.compile(model, (torch.rand(1, 3, 32, 32, dtype=torch.float64),))
    assert compiled.certificate.ops_after.get("linear.default") == 2
    refusals = [u for u in compiled.certificate.unfolded if u.rule == "R17"]
    assert refusals and "same" in refusals[0].precondition, compiled.certificate.unfolded
