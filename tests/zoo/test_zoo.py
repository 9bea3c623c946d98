"""Published re-parameterizable blocks through et.compile: each folds to its deploy form.

Hypothesis draws the weights and BatchNorm statistics (a seed), the widths and the spatial size;
each case is checked in float64 (≤ 1e-9 relative) at an odd and an even size and in float32,
its compiled conv count equals the deploy form's, and no BatchNorm is left.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import et
from et.compiler import count_convs
from et.testing import compare_outputs, probe_inputs
from tests.zoo import blocks

# (name, factory(channels, generator-free), deploy conv count, input channels of the factory)
CASES = {
    "repvgg": (lambda c: torch.nn.Sequential(blocks.RepVGGBlock(c), blocks.RepVGGBlock(c)), 2),
    "acnet": (lambda c: blocks.ACBlock(c, c + 1), 1),
    "dbb": (lambda c: blocks.DBBBlock(c, 4), 1),
    "ecb": (lambda c: blocks.EdgeBlock(c, 4), 1),
    "mobileone_dw": (lambda c: blocks.MobileOneBlock(c, c, k=3, depthwise=True), 1),
    "mobileone_pw": (lambda c: blocks.MobileOneBlock(c, c + 2, k=2, depthwise=False), 1),
    "mobileone_stride2": (lambda c: blocks.MobileOneBlock(c, c, k=2, stride=2), 1),
    "sesr_block": (lambda c: blocks.SESRBlock(c), 1),
    "conv3xc": (lambda c: blocks.Conv3XC(c, c + 1), 1),
    "plainusr": (lambda c: blocks.PlainUSRBlock(c), 1),
    "mixed": (lambda c: blocks.MixedBlock(c), 3),
    "acnet_crop": (lambda c: blocks.ACBlockCropped(c, c + 1), 1),
    "acnet_crop_5x5_stride2": (lambda c: blocks.ACBlockCropped(c, c, 5, 2), 1),
    "conv3xc_as_published": (lambda c: blocks.Conv3XCAsPublished(c, c + 1), 1),
    "dbb_as_published": (lambda c: blocks.DBBAsPublished(c, c + 1), 1),
    "dbb_as_published_depthwise": (lambda c: blocks.DBBAsPublished(c, c, groups=c), 1),
    "mobileone_as_published_dw": (lambda c: blocks.MobileOneAsPublished(c, c, 3), 1),
    "mobileone_as_published_pw": (lambda c: blocks.MobileOneAsPublished(c, c, 1, False), 1),
}


def check_compiled(model: torch.nn.Module, channels: int, size: int, expected_convs: int):
    model = model.double().eval()  # float64 weights: the 1e-9 check measures logic, not rounding
    example = torch.rand(1, channels, size, size, dtype=torch.float64)
    compiled = et.compile(model, (example,))
    assert count_convs(compiled.module) == expected_convs, compiled.certificate.ops_after
    names = " ".join(compiled.certificate.ops_after)
    assert "batch_norm" not in names
    for height, width in ((size, size), (size + 1, size + 2)):
        inputs = probe_inputs((channels, height, width), samples=6)
        report = compare_outputs(model, compiled.module, inputs, dtype=torch.float64)
        assert report.max_rel_error <= 1e-9, report.describe()
    report32 = compare_outputs(
        model, compiled.module, probe_inputs((channels, size, size)), dtype=torch.float32
    )
    assert report32.max_rel_error <= 1e-4, report32.describe()
    assert compiled.certificate.max_error["float64"] <= 1e-9 * 1e3
    return compiled


@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=3, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(seed=st.integers(0, 2**31 - 1), channels=st.sampled_from([1, 3, 4]), size=st.integers(5, 9))
def test_block_folds_to_its_deploy_form(name: str, seed: int, channels: int, size: int) -> None:
    factory, deploy_convs = CASES[name]
    if name == "acnet_crop_5x5_stride2":
        # below 7 its 5×5 stride-2 conv gives a 1-pixel map, which torch.export fixes to the
        # example's size (0/1 specialisation): that compile holds (and runs) at it only
        size = max(size, 7)
    model = blocks.randomize(factory(channels), torch.Generator().manual_seed(seed))
    check_compiled(model, channels, size, deploy_convs)


@pytest.mark.parametrize("colors", [1, 3])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sesr_network_folds_to_a_plain_net(colors: int, scale: int) -> None:
    model = blocks.randomize(blocks.SESRNet(colors, scale), torch.Generator().manual_seed(scale))
    # head, 2 blocks and the tail: the long residual is an identity branch of the tail's input
    compiled = check_compiled(model, colors, 7, 4)
    assert compiled.certificate.rules_used().get("R6", 0) >= 1


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_ecbsr_luma_broadcast_shortcut_folds_into_the_plain_net(scale: int) -> None:
    model = blocks.randomize(blocks.ECBSRLuma(scale), torch.Generator().manual_seed(scale))
    # one 3×3 per ECB; the image broadcast over the scale² channels becomes identity channels
    compiled = check_compiled(model, 1, 7, 4)
    assert "add.Tensor" not in compiled.certificate.ops_after


@pytest.mark.parametrize(
    ("anchor", "colors"),
    [("interleave", 3), ("repeat", 3), ("cat", 3), ("repeat", 1), ("cat", 1), ("expand", 1)],
)
@pytest.mark.parametrize("scale", [2, 3])
def test_replicated_image_anchor_is_carried_in_identity_channels(
    anchor: str, colors: int, scale: int
) -> None:
    model = blocks.AnchoredSR(colors, scale, anchor)
    model = blocks.randomize(model, torch.Generator().manual_seed(scale * 7 + colors))
    compiled = check_compiled(model, colors, 7, 2)
    assert compiled.certificate.rules_used().get("E4") == 1
    assert "add.Tensor" not in compiled.certificate.ops_after


def test_conv3xc_fused_in_forward_equals_its_training_form() -> None:
    """The eval-mode capture of the self-fusing Conv3XC computes its training-mode function."""
    model = blocks.randomize(blocks.Conv3XCAsPublished(3, 4), torch.Generator().manual_seed(3))
    model = model.double()
    compiled = check_compiled(model, 3, 7, 1)
    inputs = probe_inputs((3, 8, 9), samples=6)
    # train mode runs the original's training branch (the compiled net has no mode switch)
    report = compare_outputs(model, compiled.module, inputs, dtype=torch.float64, mode="train")
    assert report.max_rel_error <= 1e-9, report.describe()
