"""E9: nearest upsampling = PixelShuffle(repeat_interleave(x, s²)) for integer s."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.nearest_as_pixel_shuffle import INTEGER_SCALE, nearest_as_pixel_shuffle
from et.rules.repeat_interleave_conv import repeat_interleave_conv
from et.strategies import image_batches


@given(
    channels=st.sampled_from([1, 2, 3, 4]),
    scale=st.integers(1, 6),
    kernel=st.sampled_from([1, 3]),
    dtype=st.sampled_from([torch.float64, torch.float32]),
    data=st.data(),
)
def test_equals_interpolate_nearest(channels, scale, kernel, dtype, data) -> None:
    x = data.draw(image_batches(channels, max_size=9, dtype=dtype))
    module = nearest_as_pixel_shuffle(channels, scale, kernel, dtype=dtype)
    with torch.no_grad():
        got = module(x)
    assert torch.equal(got, nn.functional.interpolate(x, scale_factor=scale, mode="nearest"))
    size = (x.shape[2] * scale, x.shape[3] * scale)
    assert torch.equal(got, nn.functional.interpolate(x, size=size, mode="nearest"))


def test_float_integer_scale_and_registry() -> None:
    module = apply_rule("E9", 3, 2.0)
    assert isinstance(module[1], nn.PixelShuffle) and module[1].upscale_factor == 2


# Negative tests.


@pytest.mark.parametrize("scale", [1.5, 2.5, 0, -2, True])
def test_non_integer_scale_is_refused(scale) -> None:
    with pytest.raises(PreconditionError, match="integer ≥ 1"):
        nearest_as_pixel_shuffle(3, scale)


def test_fractional_scale_has_no_pixel_shuffle_form() -> None:
    x = torch.rand(1, 3, 4, 4)
    upsampled = nn.functional.interpolate(x, scale_factor=1.5, mode="nearest")
    assert upsampled.shape[-1] == 6  # 6 = 4·1.5 is no multiple 4·k of an integer k
    assert all(upsampled.shape[-1] != 4 * k for k in range(1, 4))


def test_tiled_repeat_is_not_nearest() -> None:
    x = torch.rand(1, 3, 4, 4, dtype=torch.float64)
    tiled = nn.Sequential(
        repeat_interleave_conv(3, 4, 1, order="tiled", dtype=torch.float64), nn.PixelShuffle(2)
    )
    with torch.no_grad():
        assert (
            tiled(x) - nn.functional.interpolate(x, scale_factor=2, mode="nearest")
        ).abs().max() > 0.01


# Tests that kill the mutants of ``et/rules/nearest_as_pixel_shuffle.py`` its own tests let
# survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): ``kernel_size`` was not passed on
# to the repeat-interleave conv (every test used the default 1), and the refusal's rule id and
# detail were not checked.


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_kernel_size_reaches_the_conv(kernel_size: int) -> None:
    upsample = nearest_as_pixel_shuffle(3, 2, kernel_size, dtype=torch.float64)
    assert upsample[0].kernel_size == (kernel_size, kernel_size)
    x = torch.rand(2, 3, 5, 4, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(upsample(x), F.interpolate(x, scale_factor=2), rtol=0, atol=0)


@pytest.mark.parametrize("scale", [0, 1.5, True, "2"])
def test_refusal_names_rule_condition_and_scale(scale) -> None:
    with pytest.raises(PreconditionError) as info:
        nearest_as_pixel_shuffle(3, scale)
    assert (info.value.rule, info.value.condition) == ("E9", INTEGER_SCALE)
    assert info.value.detail == f"scale = {scale!r}"
