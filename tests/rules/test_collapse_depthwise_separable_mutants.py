"""Tests that kill the mutants of ``et/rules/collapse_depthwise_separable.py`` (R14) its own tests
let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
text only (a wrong rule id, a changed condition or a missing detail passed); a pointwise conv
that breaks only one of "1×1", "stride 1", "padding 0" was never tried, nor a non-conv second
module; :func:`check_depthwise_separable`'s default border was never used.
"""

from __future__ import annotations

import pytest
from torch import nn

from et.contract import PreconditionError
from et.rules.collapse_depthwise_separable import (
    DEPTHWISE,
    TORCH_MODULES,
    check_depthwise_separable,
    collapse_depthwise_separable,
)


def _depthwise() -> nn.Conv2d:
    return nn.Conv2d(3, 6, 3, padding=1, groups=3)


def _triple(depthwise, pointwise, **kwargs) -> tuple[str, str, str]:
    with pytest.raises(PreconditionError) as info:
        collapse_depthwise_separable(depthwise, pointwise, **kwargs)
    return info.value.rule, info.value.condition, info.value.detail


def test_default_border_is_accepted() -> None:
    check_depthwise_separable(_depthwise(), nn.Conv2d(6, 4, 1))


@pytest.mark.parametrize(
    ("first", "second", "detail"),
    [
        (nn.Linear(3, 6), nn.Conv2d(6, 4, 1), "got Linear, expected torch.nn.Conv2d"),
        (_depthwise(), nn.Linear(6, 4), "got Linear, expected torch.nn.Conv2d"),
    ],
)
def test_non_conv_is_refused_naming_its_type(first, second, detail: str) -> None:
    assert _triple(first, second) == ("R14", TORCH_MODULES, detail)


def test_dense_first_conv_is_refused_with_its_geometry() -> None:
    assert _triple(nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 4, 1)) == (
        "R14",
        DEPTHWISE,
        "groups=1, in_channels=3, out_channels=6",
    )


@pytest.mark.parametrize(
    ("pointwise", "detail"),
    [
        (nn.Conv2d(6, 4, 3), "kernel (3, 3), stride (1, 1), padding (0, 0)"),
        (nn.Conv2d(6, 4, 1, stride=2), "kernel (1, 1), stride (2, 2), padding (0, 0)"),
        (nn.Conv2d(6, 4, 1, padding=1), "kernel (1, 1), stride (1, 1), padding (1, 1)"),
    ],
    ids=["3x3", "stride-2", "padded"],
)
def test_second_conv_breaking_one_condition_is_refused(pointwise: nn.Conv2d, detail: str) -> None:
    assert _triple(_depthwise(), pointwise) == (
        "R14",
        "the second convolution is 1×1 with stride 1 and padding 0",
        detail,
    )


def test_channel_mismatch_is_refused_with_both_counts() -> None:
    assert _triple(_depthwise(), nn.Conv2d(5, 4, 1)) == (
        "R14",
        "pointwise.in_channels == depthwise.out_channels",
        "5 != 6",
    )


def test_unknown_border_is_refused() -> None:
    assert _triple(_depthwise(), nn.Conv2d(6, 4, 1), border="reflect") == (
        "R14",
        "border is 'bias' or 'zeros'",
        "border='reflect'",
    )
