"""Tests that kill the mutants of ``et/rules/transposed_conv_as_pixel_shuffle.py`` (R15) its own
tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
text only (a wrong rule id or a missing detail passed); no example had a 1×1 kernel with a
padding larger than the kernel's reach (every LR offset negative, so the conv padding comes from
``−min δ`` alone); the crop was never applied to an unbatched ``[C, H, W]`` input, which
``ConvTranspose2d`` accepts as well.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from et.contract import PreconditionError
from et.rules.transposed_conv_as_pixel_shuffle import (
    SAME_STRIDE,
    TORCH_MODULES,
    ZERO_PADDING,
    transposed_conv_as_pixel_shuffle,
)


def _triple(module) -> tuple[str, str, str]:
    with pytest.raises(PreconditionError) as info:
        transposed_conv_as_pixel_shuffle(module)
    return info.value.rule, info.value.condition, info.value.detail


def test_other_module_is_refused_naming_its_type() -> None:
    assert _triple(nn.Conv2d(2, 2, 3)) == (
        "R15",
        TORCH_MODULES,
        "got Conv2d, expected torch.nn.ConvTranspose2d",
    )


def test_unequal_strides_are_refused_with_the_stride() -> None:
    assert _triple(nn.ConvTranspose2d(2, 2, 3, stride=(2, 1))) == (
        "R15",
        SAME_STRIDE,
        "stride (2, 1): PixelShuffle has one scale",
    )


def test_non_zero_padding_mode_is_refused() -> None:
    deconv = nn.ConvTranspose2d(2, 2, 3)
    deconv.padding_mode = "reflect"  # the constructor refuses it; a loaded module may carry it
    assert _triple(deconv) == ("R15", ZERO_PADDING, "padding_mode='reflect'")


def _check(deconv: nn.ConvTranspose2d, x: torch.Tensor) -> None:
    with torch.no_grad():
        expected = deconv(x)
        got = transposed_conv_as_pixel_shuffle(deconv)(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("padding", "dilation"), [(1, 1), (2, 1), (2, 2)])
def test_pointwise_kernel_with_padding_beyond_its_reach(padding: int, dilation: int) -> None:
    """k = 1, s = 1, p ≥ 1: every LR offset is −p, the output crops p rows per side."""
    torch.manual_seed(0)
    deconv = nn.ConvTranspose2d(2, 3, 1, padding=padding, dilation=dilation, dtype=torch.float64)
    _check(deconv, torch.rand(1, 2, 7, 6, dtype=torch.float64))


def test_unbatched_non_square_input_is_cropped_on_the_right_axes() -> None:
    """This geometry crops one row of the height; on a ``[C, H, W]`` input with H ≠ W the crop
    must still act on the height (``shape[-2]``), not on ``shape[2]`` (the width there)."""
    torch.manual_seed(1)
    deconv = nn.ConvTranspose2d(
        2, 2, 3, stride=2, padding=1, output_padding=(0, 1), dtype=torch.float64
    )
    _check(deconv, torch.rand(2, 5, 8, dtype=torch.float64))
