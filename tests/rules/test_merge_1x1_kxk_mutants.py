"""Tests that kill the mutants of ``et/rules/merge_1x1_kxk.py`` its own tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): the default ``border`` of the check,
a 1×1 without bias in front of a K×K with bias (the merged bias must keep b₂), the bias-padded
reference without a bias to pad with (its ring must then be 0), and the rule id / condition /
detail of every refusal.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from et.contract import PreconditionError
from et.rules.merge_1x1_kxk import (
    BORDER_CONDITION,
    TORCH_MODULES,
    BiasPaddedSequence,
    check_1x1_kxk,
    merge_1x1_kxk,
)


def _pair(pointwise_bias: bool = True, conv_bias: bool = True) -> tuple[nn.Conv2d, nn.Conv2d]:
    torch.manual_seed(0)
    pointwise = nn.Conv2d(3, 5, 1, bias=pointwise_bias, dtype=torch.float64)
    conv = nn.Conv2d(5, 4, 3, padding=1, bias=conv_bias, dtype=torch.float64)
    with torch.no_grad():
        for module in (pointwise, conv):
            if module.bias is not None:
                module.bias.uniform_(0.2, 0.8)  # non-zero: a dropped bias shows
    return pointwise, conv


def test_the_check_defaults_to_bias_padding() -> None:
    pointwise, conv = _pair()
    check_1x1_kxk(pointwise, conv)  # b₁ ≠ 0 and padding 1: fine with the default "bias"


def test_biasless_pointwise_keeps_the_kxk_bias() -> None:
    pointwise, conv = _pair(pointwise_bias=False)
    merged = merge_1x1_kxk(pointwise, conv)
    assert merged.bias is not None
    x = torch.rand(2, 3, 7, 7, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(merged(x), conv(pointwise(x)), rtol=0, atol=1e-12)


def test_mixed_dtypes_merge_in_the_pointwise_dtype() -> None:
    """A float32 1×1 in front of a float64 K×K: the merge computes in the 1×1's dtype."""
    pointwise, conv = _pair()
    pointwise = pointwise.float()
    merged = merge_1x1_kxk(pointwise, conv)
    assert merged.weight.dtype == torch.float32 and merged.bias.dtype == torch.float32
    x = torch.rand(2, 3, 6, 6)
    with torch.no_grad():
        reference = BiasPaddedSequence(pointwise.double(), conv)(x.double())
        torch.testing.assert_close(merged(x), reference.float(), rtol=1e-5, atol=1e-5)


def test_biasless_pair_merges_without_bias() -> None:
    pointwise, conv = _pair(pointwise_bias=False, conv_bias=False)
    assert merge_1x1_kxk(pointwise, conv).bias is None


def test_bias_padded_reference_pads_zeros_without_a_bias() -> None:
    """With no b₁ there is nothing to write into the ring: it is plain zero padding."""
    pointwise, conv = _pair(pointwise_bias=False)
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        expected = F.conv2d(F.pad(pointwise(x), (1, 1, 1, 1)), conv.weight, conv.bias)
        torch.testing.assert_close(BiasPaddedSequence(pointwise, conv)(x), expected)


REFUSALS = [
    # (first, second, border, condition, detail fragment)
    ("linear", "conv", "bias", TORCH_MODULES, "got Linear, expected torch.nn.Conv2d"),
    ("pointwise", "linear", "bias", TORCH_MODULES, "got Linear, expected torch.nn.Conv2d"),
    (
        "3x3",
        "conv",
        "bias",
        "the first conv is 1×1 with stride 1 and padding 0",
        "kernel (3, 3), stride (1, 1), padding (1, 1)",
    ),
    ("narrow", "conv", "bias", "pointwise.out_channels == conv.in_channels", "2 != 5"),
    ("pointwise", "conv", "edge", "border is 'bias' or 'zeros'", "got 'edge'"),
    (
        "pointwise",
        "conv",
        "zeros",
        BORDER_CONDITION,
        "the K×K pads (1, 1) with zeros but b₁ ≠ 0; the merged conv would put W₂·b₁ on the border "
        "ring (use border='bias' if the original pads with b₁)",
    ),
]


@pytest.mark.parametrize(("first", "second", "border", "condition", "detail"), REFUSALS)
def test_every_refusal_names_rule_condition_and_detail(first, second, border, condition, detail):
    pointwise, conv = _pair()
    modules = {
        "pointwise": pointwise,
        "conv": conv,
        "linear": nn.Linear(3, 5),
        "3x3": nn.Conv2d(3, 5, 3, padding=1),
        "narrow": nn.Conv2d(3, 2, 1),
    }
    with pytest.raises(PreconditionError) as info:
        merge_1x1_kxk(modules[first], modules[second], border=border)
    assert (info.value.rule, info.value.condition) == ("R7", condition)
    assert detail in info.value.detail
