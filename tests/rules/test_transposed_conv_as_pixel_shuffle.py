"""R15: ConvTranspose2d as LR conv + PixelShuffle (+ crop). Properties; FSRCNN tail; negatives."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.transposed_conv_as_pixel_shuffle import (
    SAME_STRIDE,
    TORCH_MODULES,
    ZERO_PADDING,
    transposed_conv_as_pixel_shuffle,
)
from et.strategies import image_batches, weight_tensors


@st.composite
def transposed_convs(draw: st.DrawFn, dtype: torch.dtype = torch.float64) -> nn.ConvTranspose2d:
    groups = draw(st.integers(1, 2))
    in_channels = groups * draw(st.integers(1, 2))
    out_channels = groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 5)), draw(st.sampled_from([1, 2, 3, 4, 5, 9])))
    stride = draw(st.integers(1, 4))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple(draw(st.integers(0, dilation[i] * (kernel[i] - 1))) for i in range(2))
    output_padding = tuple(draw(st.integers(0, max(stride, dilation[i]) - 1)) for i in range(2))
    deconv = nn.ConvTranspose2d(
        in_channels,
        out_channels,
        kernel,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        groups=groups,
        dilation=dilation,
        bias=draw(st.booleans()),
        dtype=dtype,
    )
    with torch.no_grad():
        for p in deconv.parameters():
            p.copy_(draw(weight_tensors(tuple(p.shape), dtype=dtype)))
        if deconv.bias is not None:
            deconv.bias.add_(0.5)  # never all zero
    return deconv


def _out_size(size: int, deconv: nn.ConvTranspose2d, axis: int) -> int:
    return (
        (size - 1) * deconv.stride[axis]
        - 2 * deconv.padding[axis]
        + deconv.dilation[axis] * (deconv.kernel_size[axis] - 1)
        + deconv.output_padding[axis]
        + 1
    )


@given(deconv=transposed_convs(), data=st.data())
def test_rewrite_is_exact_in_float64(deconv: nn.ConvTranspose2d, data: st.DataObject) -> None:
    x = data.draw(image_batches(deconv.in_channels, min_size=1, max_size=8))
    # torch itself refuses an empty output
    assume(min(_out_size(x.shape[-2], deconv, 0), _out_size(x.shape[-1], deconv, 1)) >= 1)
    module = transposed_conv_as_pixel_shuffle(deconv)
    with torch.no_grad():
        expected = deconv(x)
        got = module(x)
    assert got.shape == expected.shape and got.dtype == torch.float64
    # every output pixel, the border rows/columns included, is the same sum of the same terms
    assert torch.allclose(got, expected, rtol=0, atol=1e-12 * (expected.abs().max().item() + 1))


@given(deconv=transposed_convs(dtype=torch.float32), data=st.data())
def test_rewrite_float32_within_stated_bound(
    deconv: nn.ConvTranspose2d, data: st.DataObject
) -> None:
    # float32: the same products summed in another order: |error| ≤ 2n·2⁻²⁴·M with n the number
    # of taps (C_in·kh·kw + 1) and M the computation on absolute values.
    x = data.draw(image_batches(deconv.in_channels, min_size=2, max_size=8, dtype=torch.float32))
    assume(min(_out_size(x.shape[-2], deconv, 0), _out_size(x.shape[-1], deconv, 1)) >= 1)
    module = transposed_conv_as_pixel_shuffle(deconv)
    reference = copy.deepcopy(deconv).double()
    absolute = copy.deepcopy(reference)
    with torch.no_grad():
        for p in absolute.parameters():
            p.abs_()
        magnitude = absolute(x.double().abs()).max().item()
        expected = reference(x.double())
        got = module(x).double()
    n = deconv.in_channels * deconv.kernel_size[0] * deconv.kernel_size[1] + 1
    assert (got - expected).abs().max().item() <= 2 * n * 2**-24 * magnitude


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_fsrcnn_tail(scale: int) -> None:
    # FSRCNN's deconvolution: ConvTranspose2d(56, 3, 9, stride=s, padding=4, output_padding=s−1)
    torch.manual_seed(scale)
    deconv = nn.ConvTranspose2d(
        56, 3, 9, stride=scale, padding=4, output_padding=scale - 1, dtype=torch.float64
    )
    module = transposed_conv_as_pixel_shuffle(deconv)
    conv = module[0]
    assert isinstance(conv, nn.Conv2d) and isinstance(module[1], nn.PixelShuffle)
    assert conv.out_channels == 3 * scale * scale
    for high in (1.0, 255.0):
        x = torch.rand(2, 56, 7, 6, dtype=torch.float64) * high
        with torch.no_grad():
            expected = deconv(x)
            got = module(x)
        assert got.shape == (2, 3, 7 * scale, 6 * scale)
        assert torch.allclose(got, expected, rtol=1e-12, atol=1e-12 * high)


def test_crop_when_output_is_not_a_multiple_of_the_stride() -> None:
    deconv = nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1, dtype=torch.float64)
    module = transposed_conv_as_pixel_shuffle(deconv)
    x = torch.rand(1, 2, 5, 4, dtype=torch.float64) * 255
    with torch.no_grad():
        assert module(x).shape == deconv(x).shape == (1, 2, 9, 7)
        assert torch.allclose(module(x), deconv(x), rtol=1e-12, atol=1e-9)


def test_inputs_untouched_dtype_kept_and_registered() -> None:
    deconv = nn.ConvTranspose2d(3, 2, 4, stride=2, padding=1)
    before = copy.deepcopy(deconv.state_dict())
    a = apply_rule("R15", deconv)
    b = apply_rule("transposed_conv_as_pixel_shuffle", deconv)
    assert torch.equal(a[0].weight, b[0].weight)
    assert a[0].weight.dtype == torch.float32
    for key, value in deconv.state_dict().items():
        assert torch.equal(value, before[key])


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def test_wrong_phase_order_differs() -> None:
    # The conv's rows must follow PixelShuffle's order o·s² + φ; the tiled order (φ·O + o) fails.
    torch.manual_seed(0)
    deconv = nn.ConvTranspose2d(2, 3, 4, stride=2, padding=1, dtype=torch.float64)
    module = transposed_conv_as_pixel_shuffle(deconv)
    tiled = copy.deepcopy(module)
    order = torch.arange(12).reshape(3, 4).T.reshape(-1)  # row φ·3 + o takes row o·4 + φ
    with torch.no_grad():
        tiled[0].weight.copy_(module[0].weight[order])
        tiled[0].bias.copy_(module[0].bias[order])
    x = torch.rand(1, 2, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        assert (tiled(x) - deconv(x)).abs().max() > 1e-3
        assert (module(x) - deconv(x)).abs().max() < 1e-12


def test_unequal_strides_are_refused() -> None:
    deconv = nn.ConvTranspose2d(2, 2, 3, stride=(2, 3))
    with pytest.raises(PreconditionError, match="the same stride on both axes"):
        transposed_conv_as_pixel_shuffle(deconv)


def test_output_size_argument_changes_the_result() -> None:
    # Structural: an explicit output_size at call time picks another output padding.
    deconv = nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1, dtype=torch.float64)
    module = transposed_conv_as_pixel_shuffle(deconv)
    x = torch.rand(1, 2, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        assert deconv(x, output_size=[8, 8]).shape != module(x).shape


def test_other_modules_are_refused() -> None:
    with pytest.raises(PreconditionError, match="ConvTranspose2d"):
        transposed_conv_as_pixel_shuffle(nn.Conv2d(2, 2, 3))  # type: ignore[arg-type]


# Tests that kill the mutants of ``et/rules/transposed_conv_as_pixel_shuffle.py`` (R15) its own
# tests let survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
# text only (a wrong rule id or a missing detail passed); no example had a 1×1 kernel with a
# padding larger than the kernel's reach (every LR offset negative, so the conv padding comes from
# ``−min δ`` alone); the crop was never applied to an unbatched ``[C, H, W]`` input, which
# ``ConvTranspose2d`` accepts as well.


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
