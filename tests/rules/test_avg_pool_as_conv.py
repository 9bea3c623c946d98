"""R10: AvgPool2d as a convolution. Properties over kernels, strides, paddings; negatives."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.avg_pool_as_conv import CHANNELS, TORCH_MODULES, avg_pool_as_conv
from et.strategies import image_batches


@st.composite
def exact_pools(draw: st.DrawFn) -> nn.AvgPool2d:
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))
    divisor = draw(st.one_of(st.none(), st.integers(1, 30)))
    # count_include_pad=False is exact without padding or with an explicit divisor
    free = padding == (0, 0) or divisor is not None
    include = draw(st.booleans()) if free else True
    return nn.AvgPool2d(
        (kh, kw), stride, padding, count_include_pad=include, divisor_override=divisor
    )


@given(pool=exact_pools(), depthwise=st.booleans(), data=st.data())
def test_pool_as_conv_is_exact_in_float64(
    pool: nn.AvgPool2d, depthwise: bool, data: st.DataObject
) -> None:
    channels = data.draw(st.integers(1, 4))
    x = data.draw(image_batches(channels, min_size=5, max_size=13))
    conv = avg_pool_as_conv(pool, channels, depthwise=depthwise, dtype=torch.float64)
    assert conv.groups == (channels if depthwise else 1)
    with torch.no_grad():
        expected = pool(x)
        got = conv(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-13 * (x.abs().max().item() + 1)


@given(pool=exact_pools(), data=st.data())
def test_pool_as_conv_float32_within_stated_bound(pool: nn.AvgPool2d, data: st.DataObject) -> None:
    # float32: a sum of kh·kw terms times a rounded 1/D:
    # |error| ≤ 2·(kh·kw + 2)·2⁻²⁴·max|x|·kh·kw/D
    channels = data.draw(st.integers(1, 3))
    x = data.draw(image_batches(channels, min_size=5, max_size=11, dtype=torch.float32))
    conv = avg_pool_as_conv(pool, channels)
    assert conv.weight.dtype == torch.float32
    kh, kw = pool.kernel_size if isinstance(pool.kernel_size, tuple) else (pool.kernel_size,) * 2
    divisor = pool.divisor_override or kh * kw
    with torch.no_grad():
        expected = pool(x.double())
        got = conv(x).double()
    bound = 2 * (kh * kw + 2) * 2**-24 * x.abs().max().item() * kh * kw / divisor
    assert (got - expected).abs().max().item() <= bound + 1e-30


def test_stride_defaults_to_kernel_and_x255() -> None:
    pool = nn.AvgPool2d(3)
    conv = avg_pool_as_conv(pool, 3, dtype=torch.float64)
    assert conv.stride == (3, 3)
    x = torch.rand(2, 3, 10, 11, dtype=torch.float64) * 255
    with torch.no_grad():
        assert torch.allclose(conv(x), pool(x), rtol=1e-14, atol=1e-12)


def test_registered_by_name_and_id() -> None:
    pool = nn.AvgPool2d(2, padding=1)
    assert torch.equal(
        apply_rule("R10", pool, 2).weight, apply_rule("avg_pool_as_conv", pool, 2).weight
    )


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def test_count_exclude_pad_differs_at_the_border_and_is_refused() -> None:
    excluding = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    including = nn.AvgPool2d(3, 1, 1, count_include_pad=True)
    conv = avg_pool_as_conv(including, 2, dtype=torch.float64)
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64) + 0.5
    with torch.no_grad():
        gap = (conv(x) - excluding(x)).abs()
    assert gap[..., 0, 0].min() > 1e-2  # the corner divides by 4, not 9
    assert gap[..., 1:-1, 1:-1].max() < 1e-12  # the interior agrees
    with pytest.raises(PreconditionError, match="count_include_pad"):
        avg_pool_as_conv(excluding, 2)


def test_ceil_mode_differs_and_is_refused() -> None:
    ceil = nn.AvgPool2d(3, 2, ceil_mode=True)
    conv = avg_pool_as_conv(nn.AvgPool2d(3, 2), 1, dtype=torch.float64)
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        assert ceil(x).shape != conv(x).shape  # ceil mode adds a clipped window per axis
    with pytest.raises(PreconditionError, match="ceil_mode"):
        avg_pool_as_conv(ceil, 1)


def test_other_modules_and_bad_channels_are_refused() -> None:
    with pytest.raises(PreconditionError, match="AvgPool2d"):
        avg_pool_as_conv(nn.MaxPool2d(2), 1)  # type: ignore[arg-type]
    with pytest.raises(PreconditionError, match="channels"):
        avg_pool_as_conv(nn.AvgPool2d(2), 0)


# Tests that kill the mutants of ``et/rules/avg_pool_as_conv.py`` (R10) its own tests let survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
# text only (a wrong rule id or a missing detail passed), and a pool whose ``stride`` attribute is
# ``None`` (which ``F.avg_pool2d`` reads as "the kernel size") was never converted.


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
