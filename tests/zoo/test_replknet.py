"""RepLKNet through et.compile: large + small depthwise kernels summed fold to one large
depthwise conv; the net's final BatchNorm2d → global pool → Linear folds into the Linear.

Settings: 13×13 with 5×5 and with 3×3 small kernels, stride 1 and 2, the block's pre-BN
(folded into the 1×1 that reads it, R2), the ConvFFN, and a net with a stem (stride 2,
depthwise) and a transition to a wider stage (in ≠ out channels).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import et
from et.compiler.max_pool_head import WHOLE_WINDOW
from et.compiler.pooled_features import DIVISOR
from et.rules.fuse_bn_linear import FEATURE_AXIS
from et.rules.fuse_bn_max_pool_linear import NON_NEGATIVE_SCALE
from tests.zoo import blocks
from tests.zoo.deploy_form import DeployForm, check_deploy_form
from tests.zoo.replknet import ConvFFN, LargeKernelUnit, RepLKBlock, RepLKNet


@pytest.mark.parametrize(("large", "small", "stride"), [(13, 5, 1), (13, 3, 2), (7, 5, 1)])
@settings(max_examples=2, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(seed=st.integers(0, 2**31 - 1), channels=st.integers(1, 4), size=st.integers(14, 18))
def test_large_kernel_unit_folds_to_one_depthwise_conv(
    large: int, small: int, stride: int, seed: int, channels: int, size: int
) -> None:
    model = LargeKernelUnit(channels, large, small, stride)
    blocks.randomize(model, torch.Generator().manual_seed(seed))
    compiled = check_deploy_form(model, (channels, size, size), DeployForm(convs=1))
    assert compiled.certificate.rules_used().get("R3") == 1  # the two kernels summed


@pytest.mark.parametrize("block", ["replk", "ffn"])
@settings(max_examples=2, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(seed=st.integers(0, 2**31 - 1), channels=st.integers(2, 4), size=st.integers(14, 17))
def test_block_folds_to_its_deploy_form(block: str, seed: int, channels: int, size: int) -> None:
    if block == "replk":
        model, convs = RepLKBlock(channels, channels + 2), RepLKBlock.DEPLOY_CONVS
    else:
        model, convs = ConvFFN(channels, 2 * channels), ConvFFN.DEPLOY_CONVS
    blocks.randomize(model, torch.Generator().manual_seed(seed))
    # the residual sum is kept, as in the authors' deploy form
    check_deploy_form(model, (channels, size, size), DeployForm(convs, joins=1))


@settings(max_examples=2, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(seed=st.integers(0, 2**31 - 1), size=st.integers(28, 34))
def test_replknet_folds_and_its_head_bn_goes_into_the_linear(seed: int, size: int) -> None:
    model = blocks.randomize(RepLKNet(), torch.Generator().manual_seed(seed))
    compiled = check_deploy_form(model, (3, size, size), DeployForm(model.deploy_convs, joins=4))
    assert compiled.certificate.rules_used().get("R16") == 1
    assert compiled.certificate.ops_after.get("linear.default") == 1


class PooledSpelling(torch.nn.Module):
    """RepLKNet's ending (BatchNorm2d, global average pool, Linear) with the pool flattened as
    other codebases write it."""

    def __init__(self, spelling: str) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.norm = torch.nn.BatchNorm2d(4)
        self.head = torch.nn.Linear(4, 5)
        self.spelling = spelling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(torch.relu(self.stem(x)))
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, (1, 1))
        h, w = x.shape[-2:]  # symbolic sizes in the capture
        features = {
            "squeeze_twice": lambda: pooled.squeeze(-1).squeeze(-1),
            "squeeze_3_then_2": lambda: pooled.squeeze(3).squeeze(2),
            "squeeze_dims": lambda: pooled.squeeze((2, 3)),
            "index_0_0": lambda: pooled[:, :, 0, 0],
            "mean_3_then_2": lambda: x.mean(3).mean(2),
            "mean_last_twice": lambda: x.mean(-1).mean(-1),
            "view_batch": lambda: pooled.view(x.size(0), -1),
            "sum_divided": lambda: x.sum((2, 3)) / (h * w),
            "sum_last_twice_divided": lambda: x.sum(-1).sum(-1) / (h * w),
            "sum_kept_divided_flat": lambda: (x.sum((2, 3), keepdim=True) / (w * h)).flatten(1),
            "sum_divided_by_h": lambda: x.sum((2, 3)) / h,  # no mean: H·W positions summed
            "squeeze_all": lambda: pooled.squeeze(),  # drops a batch of 1 as well
            "amax": lambda: x.amax((2, 3)),  # a maximum: R22, where every γ ≥ 0
            "amax_kept_flat": lambda: x.amax((2, 3), keepdim=True).flatten(1),
            "adaptive_max": lambda: F.adaptive_max_pool2d(x, 1).flatten(1),
            "adaptive_max_squeezed": lambda: F.adaptive_max_pool2d(x, 1).squeeze(-1).squeeze(-1),
        }[self.spelling]()
        return self.head(features)


@pytest.mark.parametrize(
    "spelling",
    [
        "squeeze_twice",
        "squeeze_3_then_2",
        "squeeze_dims",
        "index_0_0",
        "mean_3_then_2",
        "mean_last_twice",
        "view_batch",
        "sum_divided",
        "sum_last_twice_divided",
        "sum_kept_divided_flat",
    ],
)
def test_final_batch_norm_folds_into_the_linear_however_the_pool_is_flattened(
    spelling: str,
) -> None:
    model = blocks.randomize(PooledSpelling(spelling), torch.Generator().manual_seed(7))
    compiled = check_deploy_form(model, (3, 12, 12), DeployForm(convs=1))
    assert compiled.certificate.rules_used().get("R16") == 1


def _refusals(spelling: str, rule: str = "R16", model: PooledSpelling | None = None) -> list:
    model = model or blocks.randomize(PooledSpelling(spelling), torch.Generator().manual_seed(8))
    model = model.double().eval()
    compiled = et.compile(model, (torch.rand(2, 3, 12, 12, dtype=torch.float64),))
    assert "batch_norm.default" in compiled.certificate.ops_after
    return [u for u in compiled.certificate.unfolded if u.rule == rule]


def test_squeeze_without_axes_keeps_the_batch_norm_and_names_the_batch_of_one() -> None:
    refusals = _refusals("squeeze_all")
    assert [u.precondition for u in refusals] == [FEATURE_AXIS], refusals
    assert "no global mean" in refusals[0].detail
    assert "the batch axis too when N = 1" in refusals[0].detail


def test_a_sum_divided_by_other_than_the_positions_is_no_mean_and_is_named() -> None:
    refusals = _refusals("sum_divided_by_h")
    assert [u.precondition for u in refusals] == [DIVISOR], refusals
    assert "the map has H·W" in refusals[0].detail


@settings(max_examples=3, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(
    seed=st.integers(0, 2**31 - 1),
    spelling=st.sampled_from(["sum_divided", "sum_last_twice_divided"]),
    height=st.integers(2, 9),
    width=st.integers(2, 9),
)
def test_a_sum_over_the_map_divided_by_its_size_is_the_mean_at_every_size(
    seed: int, spelling: str, height: int, width: int
) -> None:
    model = blocks.randomize(PooledSpelling(spelling), torch.Generator().manual_seed(seed))
    compiled = check_deploy_form(model, (3, height, width), DeployForm(convs=1))
    assert compiled.certificate.rules_used().get("R16") == 1
    assert "batch_norm.default" not in compiled.certificate.ops_after


def _non_negative_gamma(spelling: str, seed: int) -> PooledSpelling:
    model = blocks.randomize(PooledSpelling(spelling), torch.Generator().manual_seed(seed))
    with torch.no_grad():
        model.norm.weight.abs_()
        model.norm.weight[1] = 0.0  # a constant channel (β): its maximum is β too
    return model


@settings(max_examples=4, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(
    seed=st.integers(0, 2**31 - 1),
    spelling=st.sampled_from(["amax", "amax_kept_flat", "adaptive_max", "adaptive_max_squeezed"]),
    height=st.integers(2, 9),
    width=st.integers(2, 9),
)
def test_final_batch_norm_with_gamma_at_least_0_folds_through_a_global_max_pool(
    seed: int, spelling: str, height: int, width: int
) -> None:
    model = _non_negative_gamma(spelling, seed)
    compiled = check_deploy_form(model, (3, height, width), DeployForm(convs=1))
    assert compiled.certificate.rules_used().get("R22") == 1
    assert "batch_norm.default" not in compiled.certificate.ops_after


class WholeWindowMaxPool(PooledSpelling):
    """``F.max_pool2d`` with the map's own size as its window (None), or a fixed window."""

    def __init__(self, window: int | None = None, features: int = 4) -> None:
        super().__init__("amax")
        self.window = window
        self.head = torch.nn.Linear(features, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(torch.relu(self.stem(x)))
        window = self.window or tuple(x.shape[-2:])
        return self.head(F.max_pool2d(x, window).flatten(1))


@pytest.mark.parametrize(("window", "features"), [(None, 4), (3, 16)])
def test_a_max_pool2d_folds_where_its_window_is_the_whole_map_and_is_named_elsewhere(
    window: int | None, features: int
) -> None:
    model = blocks.randomize(WholeWindowMaxPool(window, features), torch.Generator().manual_seed(3))
    with torch.no_grad():
        model.norm.weight.abs_()
    compiled = et.compile(model.double().eval(), (torch.rand(2, 3, 6, 6, dtype=torch.float64),))
    named = [u for u in compiled.certificate.unfolded if u.rule == "R22"]
    if window is None:
        assert compiled.certificate.rules_used().get("R22") == 1 and not named
    else:  # 2×2 windows of each channel: 16 features, no maximum over the map
        assert [u.precondition for u in named] == [WHOLE_WINDOW], named
        assert "batch_norm.default" in compiled.certificate.ops_after


def test_a_negative_gamma_keeps_the_batch_norm_before_a_max_pool_and_names_the_channels() -> None:
    model = _non_negative_gamma("amax", 5)
    with torch.no_grad():
        model.norm.weight[2] = -0.5
    refusals = _refusals("amax", "R22", model)
    assert [u.precondition for u in refusals] == [str(NON_NEGATIVE_SCALE)], refusals
    assert "channels [2]" in refusals[0].detail


@pytest.mark.slow
def test_the_papers_31x31_kernel_with_a_5x5_folds_to_one_depthwise_conv() -> None:
    model = blocks.randomize(LargeKernelUnit(3, 31, 5), torch.Generator().manual_seed(31))
    check_deploy_form(model, (3, 33, 33), DeployForm(convs=1), other_size=(35, 38))
