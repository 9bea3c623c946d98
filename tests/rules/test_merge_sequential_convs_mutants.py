"""Tests that kill the mutants of ``et/rules/merge_sequential_convs.py`` (R8) its own tests let
survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
text only (a wrong rule id, the wrong position or a missing detail passed); no example had a
different stride or dilation on the two axes (an axis mix-up in the merged kernel or stride went
unseen); convs of two dtypes were never merged.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from et.contract import PreconditionError
from et.rules.merge_sequential_convs import TORCH_MODULES, merge_sequential_convs


def _triple(first, second) -> tuple[str, str, str]:
    with pytest.raises(PreconditionError) as info:
        merge_sequential_convs(first, second)
    return info.value.rule, info.value.condition, info.value.detail


def test_non_conv_refusal_names_its_type() -> None:
    conv = nn.Conv2d(2, 2, 1)
    assert _triple(nn.Linear(2, 2), conv) == (
        "R8",
        TORCH_MODULES,
        "got Linear, expected torch.nn.Conv2d",
    )
    assert _triple(conv, nn.ReLU()) == (
        "R8",
        TORCH_MODULES,
        "got ReLU, expected torch.nn.Conv2d",
    )


def test_channel_mismatch_is_refused_with_both_counts() -> None:
    assert _triple(nn.Conv2d(2, 3, 1), nn.Conv2d(4, 2, 1)) == (
        "R8",
        "first.out_channels == second.in_channels",
        "3 != 4",
    )


def test_padded_second_conv_is_refused_with_the_reason() -> None:
    assert _triple(nn.Conv2d(2, 3, 3), nn.Conv2d(3, 2, 3, padding=(0, 1))) == (
        "R8",
        "the second conv reads no padded value (padding 0)",
        "second padding is (0, 1): its border ring would read zeros where the merged conv "
        "reads b₁ + W₁·x",
    )


def _merged_equals_composition(first: nn.Conv2d, second: nn.Conv2d, shape) -> None:
    merged = merge_sequential_convs(first, second)
    x = torch.rand(*shape, dtype=torch.float64)
    with torch.no_grad():
        expected = second(first(x.to(first.weight.dtype)).to(second.weight.dtype)).double()
        got = merged(x.to(merged.weight.dtype)).double()
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_anisotropic_strides_and_dilations_merge_exactly() -> None:
    """Stride and dilation differ per axis and per conv, so each axis's offsets are distinct."""
    torch.manual_seed(7)
    first = nn.Conv2d(2, 3, (3, 2), stride=(1, 2), dilation=(2, 1), padding=(1, 2))
    second = nn.Conv2d(3, 2, (2, 3), stride=(2, 1), dilation=(1, 3))
    first, second = first.double(), second.double()
    _merged_equals_composition(first, second, (1, 2, 17, 19))
    assert merge_sequential_convs(first, second).stride == (2, 2)
    third = nn.Conv2d(3, 2, 2, stride=(3, 1)).double()
    assert merge_sequential_convs(first, third).stride == (3, 2)


def test_merged_dilation_differs_per_axis() -> None:
    """Dilations (2, 1) on both convs give a merged dilation (2, 1): each axis divides its tap
    offsets by its own dilation."""
    torch.manual_seed(9)
    first = nn.Conv2d(2, 3, 3, dilation=(2, 1), padding=(2, 1)).double()
    second = nn.Conv2d(3, 2, 3, dilation=(2, 1)).double()
    merged = merge_sequential_convs(first, second)
    assert merged.dilation == (2, 1)
    _merged_equals_composition(first, second, (1, 2, 13, 11))


@pytest.mark.parametrize("dtypes", [(torch.float32, torch.float64), (torch.float64, torch.float32)])
def test_convs_of_two_dtypes_merge_in_the_first_convs_dtype(dtypes) -> None:
    torch.manual_seed(8)
    first = nn.Conv2d(2, 3, 3, padding=1, dtype=dtypes[0])
    second = nn.Conv2d(3, 2, 3, dtype=dtypes[1])
    assert merge_sequential_convs(first, second).weight.dtype == dtypes[0]
    _merged_equals_composition(first, second, (1, 2, 8, 8))
