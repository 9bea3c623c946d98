"""Tests that kill the mutants of ``et/rules/avg_pool_as_conv.py`` (R10) its own tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
text only (a wrong rule id or a missing detail passed), and a pool whose ``stride`` attribute is
``None`` (which ``F.avg_pool2d`` reads as "the kernel size") was never converted.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from et.contract import PreconditionError
from et.rules.avg_pool_as_conv import CHANNELS, TORCH_MODULES, avg_pool_as_conv


def _triple(pool, channels: int = 2) -> tuple[str, str, str]:
    with pytest.raises(PreconditionError) as info:
        avg_pool_as_conv(pool, channels)
    return info.value.rule, info.value.condition, info.value.detail


def test_not_a_pool_is_refused_naming_its_type() -> None:
    assert _triple(nn.MaxPool2d(2)) == (
        "R10",
        TORCH_MODULES,
        "got MaxPool2d, expected torch.nn.AvgPool2d",
    )


def test_ceil_mode_is_refused_with_the_reason() -> None:
    assert _triple(nn.AvgPool2d(2, ceil_mode=True)) == (
        "R10",
        "ceil_mode is False",
        "ceil_mode=True adds border windows averaged over a clipped count",
    )


def test_excluded_padding_is_refused_with_the_padding() -> None:
    assert _triple(nn.AvgPool2d(3, stride=1, padding=(1, 0), count_include_pad=False)) == (
        "R10",
        "count_include_pad is True (or padding is 0)",
        "count_include_pad=False with padding (1, 0): border windows divide by fewer pixels",
    )


def test_no_channels_is_refused() -> None:
    assert _triple(nn.AvgPool2d(2), 0) == ("R10", CHANNELS, "channels=0")


def test_stride_none_means_the_kernel_size() -> None:
    """``pool.stride = None`` is valid for ``F.avg_pool2d`` (stride = kernel size)."""
    pool = nn.AvgPool2d((2, 3))
    pool.stride = None
    conv = avg_pool_as_conv(pool, 2, dtype=torch.float64)
    assert conv.stride == (2, 3)
    x = torch.rand(1, 2, 8, 9, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), pool(x), rtol=0, atol=1e-14)
