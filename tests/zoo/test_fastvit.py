"""FastViT's re-parameterizable parts through et.compile, and a small FastViT-like network.

Hypothesis draws the weights and BatchNorm statistics (a seed), the widths, kernels (3, 5, 7,
13), groups and sizes. Deploy forms from the paper: RepMixer is one depthwise K×K conv with bias
(``C·K²`` weights: a depthwise conv minus a BatchNorm stays depthwise), RepCPE one K×K conv with
its groups, a MobileOne unit one conv. The network (stem, RepMixer stage with a conv FFN and its
squeeze-excitation, patch embedding, RepCPE, an attention stage) compiles at one size and is
equal at others (the squeeze-excitation's ``avg_pool2d(x, [h, w])`` is a global mean at every
size); what is left unfolded is the attention and the gates, named in ``ops_after``.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

import et
from et.compiler.sequential import NO_COSTLIER
from et.rules.fuse_bn_token_linear import ISOLATED
from et.rules.scale_linear_outputs import ISOLATED as LAYOUT_ISOLATED
from tests.zoo import blocks
from tests.zoo.deploy_form import ConvShape, DeployForm, check_deploy_form, conv_shapes
from tests.zoo.fastvit import (
    SMALL_DEPLOY_CONVS,
    AttentionBlock,
    FastViTSmall,
    MobileOneUnit,
    RepCPE,
    RepMixer,
    RepMixerBlock,
)

FEW = settings(max_examples=6, deadline=None, phases=[Phase.explicit, Phase.generate])


def _randomized(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every weight, layer scale and BatchNorm statistic drawn from ``seed``."""
    return blocks.randomize(model, torch.Generator().manual_seed(seed))


@FEW
@given(
    seed=st.integers(0, 2**31 - 1),
    dim=st.sampled_from([2, 4, 6]),
    kernel=st.sampled_from([3, 5, 7]),
    size=st.integers(6, 10),
)
@example(seed=0, dim=4, kernel=3, size=8)
def test_repmixer_is_one_depthwise_conv(seed: int, dim: int, kernel: int, size: int) -> None:
    model = _randomized(RepMixer(dim, kernel), seed)
    compiled = check_deploy_form(model, (dim, size, size), DeployForm(1), (size + 3, size + 1))
    assert conv_shapes(compiled.module) == [ConvShape((dim, 1, kernel, kernel), dim)]
    assert compiled.certificate.ops_after == {"conv2d.default": 1}


@FEW
@given(
    seed=st.integers(0, 2**31 - 1),
    dim=st.sampled_from([4, 6, 12]),
    kernel=st.sampled_from([3, 7, 13]),
    divisor=st.integers(0, 5),
    size=st.integers(5, 9),
)
@example(seed=1, dim=6, kernel=7, divisor=2, size=7)  # groups 3 of 6 channels
def test_repcpe_is_one_conv_of_its_groups(
    seed: int, dim: int, kernel: int, divisor: int, size: int
) -> None:
    groups = [g for g in range(1, dim + 1) if dim % g == 0][::-1][divisor % 3]
    model = _randomized(RepCPE(dim, kernel, groups), seed)
    compiled = check_deploy_form(model, (dim, size, size), DeployForm(1), (size + 2, size + 1))
    assert conv_shapes(compiled.module) == [ConvShape((dim, dim // groups, kernel, kernel), groups)]


@FEW
@given(
    seed=st.integers(0, 2**31 - 1),
    dim=st.sampled_from([2, 4]),
    stride=st.sampled_from([1, 2]),
    depthwise=st.booleans(),
    kernel=st.sampled_from([1, 3, 7]),
    size=st.integers(7, 10),
)
def test_mobileone_unit_is_one_conv(
    seed: int, dim: int, stride: int, depthwise: bool, kernel: int, size: int
) -> None:
    groups, cout = (dim, dim) if depthwise else (1, dim + 1)
    unit = MobileOneUnit(dim, cout, kernel, stride=stride, groups=groups, branches=3)
    model = _randomized(unit, seed)
    compiled = check_deploy_form(model, (dim, size, size), DeployForm(1), (size + 1, size + 2))
    assert conv_shapes(compiled.module) == [
        ConvShape((cout, dim // groups, kernel, kernel), groups)
    ]


def test_repmixer_block_keeps_its_mixer_depthwise() -> None:
    """RepMixer then the conv FFN: the mixer's output is also the residual, so the FFN's
    depthwise 7×7 stays a conv of its own; the mixer is one depthwise 3×3. One join left:
    the FFN's residual sum."""
    model = _randomized(RepMixerBlock(4, 3), seed=3)
    compiled = check_deploy_form(model, (4, 9, 9), DeployForm(6, joins=1), (12, 10))
    assert conv_shapes(compiled.module)[0] == ConvShape((4, 1, 3, 3), 4)


def _ffn_macs(dim: int, hidden: int, pixels: int) -> int:
    """A conv FFN's conv multiply-adds in its deploy form (the paper keeps its convs as they
    are): depthwise 7×7, 1×1 expansion and projection on every pixel, the squeeze-excitation's
    two 1×1 convs on the one pixel of the global mean."""
    reduced = max(hidden // 4, 1)
    per_pixel = dim * 49 + hidden * dim + dim * hidden
    return per_pixel * pixels + 2 * reduced * hidden


def small_deploy_macs(groups: int) -> float:
    """Conv multiply-adds of :class:`FastViTSmall` (3 colours, width 8, a 32×32 input) in the
    paper's deploy form, per pixel of its 4×4 output: each conv's weight entries times the
    pixels it computes (stride 2 at the stem's first two units and the embedding's first)."""
    stem = 8 * 3 * 9 * 16 * 16 + 8 * 9 * 8 * 8 + 8 * 8 * 8 * 8
    mixer = 8 * 9 * 8 * 8
    embed = 8 * 49 * 4 * 4 + 16 * 8 * 4 * 4
    cpe = 16 * (16 // groups) * 49 * 4 * 4
    total = stem + mixer + _ffn_macs(8, 16, 8 * 8) + embed + cpe + _ffn_macs(16, 32, 4 * 4)
    return total / (4 * 4)


@pytest.mark.parametrize("cpe_groups", [None, 4])
def test_small_fastvit_folds_all_but_attention(cpe_groups: int | None) -> None:
    """The paper's deploy form: its 17 convs, three residual sums (the RepMixer stage's FFN,
    the attention stage's attention and FFN), and no more conv multiply-adds."""
    model = _randomized(FastViTSmall(3, 8, cpe_groups), seed=7)
    groups = 16 if cpe_groups is None else cpe_groups
    deploy = DeployForm(SMALL_DEPLOY_CONVS, joins=3, macs=small_deploy_macs(groups))
    compiled = check_deploy_form(model, (3, 32, 32), deploy, (40, 48), tolerance32=1e-3)
    ops = compiled.certificate.ops_after
    assert compiled.certificate.rules_used().get("R21") == 1  # the BatchNorm before attention
    # what no rule folds is left and named: attention, the gates, the nonlinearities
    assert ops["softmax.int"] == 1 and ops["sigmoid.default"] == 2, ops
    assert "avg_pool2d.default" not in ops  # the whole-map pool is captured as a global mean
    shapes = conv_shapes(compiled.module)
    # the deploy form's convs: each conv FFN keeps its depthwise 7×7 and its 1×1 expansion
    # (R14 would make them one dense 7×7 costing 16·8·49 = 6272 per pixel, not 8·49 + 16·8
    # = 520: the sequential merges' cost guard leaves them, named)
    assert len(shapes) == SMALL_DEPLOY_CONVS
    assert ConvShape((8, 1, 7, 7), 8) in shapes and ConvShape((16, 1, 7, 7), 16) in shapes
    costlier = [u for u in compiled.certificate.unfolded if u.precondition == NO_COSTLIER]
    assert [u.rule for u in costlier] == ["R14", "R14"], compiled.certificate.unfolded
    # the RepMixer is one depthwise 3×3 (the 4th conv: after the three stem convs)
    assert shapes[3] == ConvShape((8, 1, 3, 3), 8)
    assert ConvShape((16, 16 // groups, 7, 7), groups) in shapes  # RepCPE: one conv


class AttentionNormAlsoRead(AttentionBlock):
    """The normalised map is also added to the output: the BatchNorm has two readers."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.norm(x)
        return normed + self.scale_attention * self.attention(normed)


def test_attention_norm_with_two_readers_stays_and_is_named() -> None:
    model = _randomized(AttentionNormAlsoRead(4), seed=2).double().eval()
    compiled = et.compile(model, (torch.rand(1, 4, 6, 6, dtype=torch.float64),))
    named = [u for u in compiled.certificate.unfolded if u.rule == "R21"]
    assert named and named[0].precondition == ISOLATED, compiled.certificate.unfolded


class RepMixerScaledEach(RepMixer):
    """RepMixer with the layer scale distributed: ``x − γ ⊙ norm(x) + γ ⊙ mixer(x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.layer_scale * self.norm(x) + self.layer_scale * self.mixer(x)


@pytest.mark.parametrize("kernel", [3, 7])
def test_repmixer_with_the_scale_distributed_is_one_depthwise_conv(kernel: int) -> None:
    model = _randomized(RepMixerScaledEach(4, kernel), seed=kernel)
    compiled = check_deploy_form(model, (4, 8, 8), DeployForm(1), (11, 9))
    assert conv_shapes(compiled.module) == [ConvShape((4, 1, kernel, kernel), 4)]


@settings(max_examples=3, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(seed=st.integers(0, 2**31 - 1), dim=st.sampled_from([4, 6]), size=st.integers(5, 8))
def test_attention_layer_scale_goes_into_the_projection(seed: int, dim: int, size: int) -> None:
    """``x + γ₁ ⊙ reshape(proj(tokens))``: γ₁ becomes the projection's output rows (R23), so
    no product with a constant is left (γ₂ goes into the FFN's last conv, R13)."""
    model = _randomized(AttentionBlock(dim), seed)
    # the authors' deploy form: the two residual sums and the FFN's five convs (depthwise 7×7,
    # fc1, the excitation's two, fc2: merging the 7×7 into fc1 costs more, NO_COSTLIER)
    deploy = DeployForm(convs=5, joins=2)
    compiled = check_deploy_form(
        model, (dim, size, size), deploy, (size + 3, size + 1), tolerance32=1e-3
    )
    assert compiled.certificate.rules_used().get("R23") == 1
    # the one product left is the squeeze-excitation's gate
    assert compiled.certificate.ops_after.get("mul.Tensor") == 1, compiled.certificate.ops_after


class AttentionProjectionAlsoRead(AttentionBlock):
    """The attention's projected map is also added unscaled: the layout has two readers."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attended = self.attention(self.norm(x))
        return x + self.scale_attention * attended + attended


def test_attention_layer_scale_on_a_shared_projection_stays_and_is_named() -> None:
    model = _randomized(AttentionProjectionAlsoRead(4), seed=3).double().eval()
    compiled = et.compile(model, (torch.rand(1, 4, 5, 5, dtype=torch.float64),))
    named = [u for u in compiled.certificate.unfolded if u.rule == "R23"]
    assert [u.precondition for u in named] == [str(LAYOUT_ISOLATED)], compiled.certificate.unfolded
