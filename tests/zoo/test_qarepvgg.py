"""QARepVGG (v1, and v2 with its average-pool branch) through et.compile: one conv per block.

Hypothesis draws the weights and BatchNorm statistics (a seed), the widths, the groups, the
stride and the size. The deploy form of a block is one K×K conv with the block's groups: the
compiled conv must have exactly that weight shape (no denser: the pool and identity branches
are depthwise, the merged conv keeps the block's groups), no BatchNorm left, equal in float64
(≤ 1e-9 relative) and float32 at two sizes.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

import et
from tests.zoo import blocks
from tests.zoo.deploy_form import ConvShape, DeployForm, check_deploy_form, conv_shapes
from tests.zoo.qarepvgg import NET_DEPLOY_CONVS, QARepVGGBlock, QARepVGGNet


@settings(max_examples=12, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(
    seed=st.integers(0, 2**31 - 1),
    per_group=st.integers(1, 3),
    groups=st.sampled_from([1, 2, 3]),
    wider=st.booleans(),
    stride=st.sampled_from([1, 2]),
    kernel=st.sampled_from([3, 5]),
    pool=st.booleans(),
    size=st.integers(6, 9),
)
# the case (v2, groups 2) and a 5×5 strided v2 with groups 3, always run
@example(seed=1, per_group=2, groups=2, wider=False, stride=1, kernel=3, pool=True, size=7)
@example(seed=2, per_group=1, groups=3, wider=False, stride=2, kernel=5, pool=True, size=8)
def test_block_folds_to_one_conv_of_its_groups(
    seed: int,
    per_group: int,
    groups: int,
    wider: bool,
    stride: int,
    kernel: int,
    pool: bool,
    size: int,
) -> None:
    cin = groups * per_group
    cout = cin + groups if wider else cin  # in ≠ out: no identity and no pool branch
    block = QARepVGGBlock(cin, cout, stride=stride, groups=groups, kernel=kernel, pool=pool)
    model = blocks.randomize(block, torch.Generator().manual_seed(seed))
    compiled = check_deploy_form(model, (cin, size, size), DeployForm(1), (size + 1, size + 2))
    deploy = ConvShape((cout, cin // groups, kernel, kernel), groups)
    assert conv_shapes(compiled.module) == [deploy]
    assert compiled.certificate.ops_after == {"conv2d.default": 1, "relu.default": 1}


def test_v2_pool_branch_beside_groups_two_is_merged_by_r20() -> None:
    """The issue's case: a 3×3 average pool added to a groups-2 block (was refused with 'the
    same groups on every branch'): the pool becomes a depthwise conv (R10), R20 merges it."""
    block = QARepVGGBlock(4, 4, groups=2, pool=True)
    model = blocks.randomize(block, torch.Generator().manual_seed(5))
    compiled = check_deploy_form(model, (4, 8, 8), DeployForm(1), (9, 11))
    assert conv_shapes(compiled.module) == [ConvShape((4, 2, 3, 3), 2)]
    used = compiled.certificate.rules_used()
    assert used.get("R20", 0) >= 1 and used.get("R10", 0) == 1, used


@pytest.mark.parametrize(("groups", "pool"), [(1, False), (2, True), (4, True)])
def test_network_folds_to_one_conv_per_block(groups: int, pool: bool) -> None:
    model = QARepVGGNet(3, 8, groups, pool)
    model = blocks.randomize(model, torch.Generator().manual_seed(groups))
    compiled = check_deploy_form(model, (3, 12, 12), DeployForm(NET_DEPLOY_CONVS), (15, 17))
    shapes = conv_shapes(compiled.module)
    assert shapes == [
        ConvShape((8, 3, 3, 3), 1),
        ConvShape((8, 8 // groups, 3, 3), groups),
        ConvShape((8, 8 // groups, 3, 3), groups),
        ConvShape((8, 8, 3, 3), 1),
    ]


class PoolWithoutPadCount(QARepVGGBlock):
    """A v2 block whose pool divides border windows by the pixels inside (not a conv)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dense_bn(self.dense(x)) + self.point(x) + x
        return F.relu(self.bn(y + F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)))


def test_pool_that_is_no_conv_stays_and_is_named() -> None:
    model = blocks.randomize(PoolWithoutPadCount(4, 4, groups=2), torch.Generator().manual_seed(1))
    model = model.double().eval()
    example = torch.rand(1, 4, 8, 8, dtype=torch.float64)
    compiled = et.compile(model, (example,))
    assert compiled.certificate.ops_after.get("avg_pool2d.default") == 1
    named = [u for u in compiled.certificate.unfolded if u.rule == "R10"]
    assert named and "count_include_pad" in named[0].precondition, compiled.certificate.unfolded


class PoolFirstBlock(QARepVGGBlock):
    """The v2 sum written with its pool and identity branches first."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.avg_pool2d(x, 3, 1, 1) + x + self.dense_bn(self.dense(x)) + self.point(x)
        return F.relu(self.bn(y))


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_sum_with_pool_and_identity_first_folds(groups: int) -> None:
    model = blocks.randomize(PoolFirstBlock(4, 4, groups=groups), torch.Generator().manual_seed(2))
    compiled = check_deploy_form(model, (4, 8, 8), DeployForm(1), (9, 11))
    assert conv_shapes(compiled.module) == [ConvShape((4, 4 // groups, 3, 3), groups)]
