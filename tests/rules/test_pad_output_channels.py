"""E8: dummy channels for alignment: zero weights, chosen bias, slice before PixelShuffle."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.clip_as_relu import clip_as_relu, clip_conv
from et.rules.pad_output_channels import (
    COUNTS,
    SliceChannels,
    aligned_channels,
    check_dummy_isolated,
    pad_input_channels,
    pad_output_channels,
)
from et.strategies import ConvConfig, conv2d_modules, image_batches

GEOMETRY = st.sampled_from(
    [
        ((3, 3), (1, 1), (1, 1), (1, 1)),
        ((1, 1), (1, 1), (0, 0), (1, 1)),
        ((3, 2), (2, 1), (1, 0), (1, 2)),
    ]
)


@given(n=st.integers(0, 200), align=st.integers(1, 16))
def test_aligned_channels_is_least_multiple(n, align) -> None:
    aligned = aligned_channels(n, align)
    assert aligned % align == 0 and n <= aligned < n + align


def test_aligned_examples() -> None:
    assert aligned_channels(27, 4) == 28 and aligned_channels(27, 1) == 27
    assert aligned_channels(48, 4) == 48 and aligned_channels(45, 4) == 48


@given(geometry=GEOMETRY, align=st.integers(1, 8), bias=st.floats(-5, 5), data=st.data())
def test_padded_outputs_keep_real_channels(geometry, align, bias, data) -> None:
    kernel, stride, padding, dilation = geometry
    conv = data.draw(
        conv2d_modules(
            ConvConfig(
                data.draw(st.integers(1, 4)),
                data.draw(st.integers(1, 13)),
                kernel,
                stride,
                padding,
                dilation,
                1,
            )
        )
    )
    padded = pad_output_channels(conv, align, bias=bias)
    assert padded.out_channels == aligned_channels(conv.out_channels, align)
    x = data.draw(image_batches(conv.in_channels, min_size=4, max_size=6))
    with torch.no_grad():
        y, z = conv(x), padded(x)
    n = conv.out_channels
    # a wider conv may sum in another order: agreement to float64 rounding of the magnitude
    tolerance = 1e-12 * (y.abs().max().item() + 1)
    assert torch.allclose(SliceChannels(n)(z), y, rtol=0, atol=tolerance)
    assert torch.all(z[:, n:] == bias)


@given(geometry=GEOMETRY, extra=st.integers(0, 4), data=st.data())
def test_padded_inputs_are_ignored(geometry, extra, data) -> None:
    kernel, stride, padding, dilation = geometry
    conv = data.draw(
        conv2d_modules(
            ConvConfig(
                data.draw(st.integers(1, 4)),
                data.draw(st.integers(1, 4)),
                kernel,
                stride,
                padding,
                dilation,
                1,
            )
        )
    )
    x = data.draw(image_batches(conv.in_channels, min_size=4, max_size=6))
    dummies = torch.randn(x.shape[0], extra, *x.shape[2:], dtype=torch.float64) * 100
    with torch.no_grad():
        assert torch.allclose(
            pad_input_channels(conv, extra)(torch.cat([x, dummies], 1)),
            conv(x),
            rtol=0,
            atol=1e-10 * (conv(x).abs().max().item() + 1),
        )


@given(
    colors=st.sampled_from([1, 3]),
    scale=st.integers(2, 4),
    align=st.sampled_from([1, 4, 8]),
    data=st.data(),
)
def test_clip_tail_with_dummy_yields_zero_and_slices(colors, scale, align, data) -> None:
    conv = data.draw(
        conv2d_modules(
            ConvConfig(6, colors * scale**2, (3, 3), (1, 1), (1, 1), (1, 1), 1), bias=True
        )
    )
    folded, _ = clip_as_relu(conv, 1.0)
    folded = pad_output_channels(folded, align, bias=1.0)  # the authors' choice: dummy bias M
    clip = clip_conv(folded.out_channels, 1.0, dtype=torch.float64)
    x = data.draw(image_batches(6, min_size=3, max_size=6, ranges=((0.0, 1.0),)))
    with torch.no_grad():
        tail = torch.relu(clip(torch.relu(folded(x))))
        assert torch.all(tail[:, conv.out_channels :] == 0)
        got = nn.functional.pixel_shuffle(SliceChannels(conv.out_channels)(tail), scale)
        expected = nn.functional.pixel_shuffle(conv(x), scale).clamp(0, 1)
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)


def test_registered() -> None:
    assert apply_rule("E8", nn.Conv2d(2, 27, 1), 4).out_channels == 28


# Negative tests.


def test_mixing_dummy_changes_output_and_is_refused() -> None:
    conv = nn.Conv2d(3, 2, 1, dtype=torch.float64)
    padded = pad_input_channels(conv, 1)
    x = torch.rand(1, 2 + 1, 3, 3, dtype=torch.float64)
    x[:, 2:] = 1.0  # the dummy channel holds a constant
    with torch.no_grad():
        padded.weight[0, 3] = 0.5  # a dummy input reaching a real output
        assert (padded(torch.cat([x, x[:, :1]], 1))[:, 0] - conv(x)[:, 0]).abs().max() > 0.1
    with pytest.raises(PreconditionError, match="never mix into real channels"):
        check_dummy_isolated(padded, slice(3, 4), 2)
    check_dummy_isolated(pad_input_channels(conv, 1), slice(3, 4), 2)  # zero weights pass


@pytest.mark.parametrize("align", [0, -4])
def test_bad_alignment_is_refused(align) -> None:
    with pytest.raises(PreconditionError, match="align ≥ 1"):
        aligned_channels(27, align)


def test_grouped_conv_is_refused() -> None:
    with pytest.raises(PreconditionError, match="groups = 1"):
        pad_output_channels(nn.Conv2d(4, 6, 1, groups=2), 4)
    with pytest.raises(PreconditionError, match="groups = 1"):
        pad_input_channels(nn.Conv2d(4, 6, 1, groups=2), 2)


# Tests that kill the mutants of ``et/rules/pad_output_channels.py`` (E8) its own tests let
# survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals checked by condition text
# only (a wrong rule id or a missing detail passed), an empty dummy block (nothing to check) never
# tried, a bias-less conv never padded on its inputs, and half-precision convs never padded (the
# zero block must be made in the conv's dtype, or ``torch.cat`` promotes the whole weight).
# Each refusal here is checked as the triple ``(rule, condition, detail)``.


def _conv(in_ch: int = 3, out_ch: int = 5, *, bias: bool = True, groups: int = 1, dtype=None):
    torch.manual_seed(2)
    return nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=bias, groups=groups, dtype=dtype)


def _triple(call, *args, **kwargs) -> tuple[str, str, str]:
    with pytest.raises(PreconditionError) as info:
        call(*args, **kwargs)
    return info.value.rule, info.value.condition, info.value.detail


@pytest.mark.parametrize(("align", "shown"), [(0, "0"), (-4, "-4"), (2.0, "2.0"), ("4", "'4'")])
def test_bad_alignment_refusal_names_the_value(align, shown: str) -> None:
    assert _triple(aligned_channels, 5, align) == ("E8", "align ≥ 1", f"align = {shown}")


def test_negative_width_is_refused() -> None:
    assert _triple(aligned_channels, -1, 4) == ("E8", COUNTS, "n = -1")


def test_zero_width_aligns_to_zero() -> None:
    assert aligned_channels(0, 4) == 0


def test_negative_extra_is_refused_on_both_sides() -> None:
    conv = _conv()
    expected = ("E8", COUNTS, "extra = -1")
    assert _triple(pad_output_channels, conv, 4, extra=-1) == expected
    assert _triple(pad_input_channels, conv, -1) == expected


def test_grouped_conv_refusal_names_the_groups() -> None:
    conv = _conv(4, 4, groups=2)
    expected = ("E8", "the conv has groups = 1", "groups = 2")
    assert _triple(pad_output_channels, conv, 4) == expected
    assert _triple(pad_input_channels, conv, 1) == expected
    assert _triple(check_dummy_isolated, conv, range(3, 4), 2) == expected


def test_mixing_refusal_reports_the_largest_weight() -> None:
    conv = _conv(4, 4)
    with torch.no_grad():
        conv.weight[:, 3].zero_()
        conv.weight[1, 3, 0, 2] = -0.75
        conv.weight[0, 3, 1, 1] = 0.5
    assert _triple(check_dummy_isolated, conv, range(3, 4), 2) == (
        "E8",
        "dummy outputs never mix into real channels",
        "a dummy input reaches a real output with weight magnitude 0.75",
    )


@pytest.mark.parametrize(
    ("dummy_inputs", "real_outputs"), [(range(3, 3), 4), (range(3, 4), 0), (slice(4, None), 4)]
)
def test_empty_dummy_block_is_accepted(dummy_inputs, real_outputs: int) -> None:
    """No dummy input, or no real output: nothing can mix, so nothing is refused."""
    check_dummy_isolated(_conv(4, 4), dummy_inputs, real_outputs)


def test_bias_free_conv_stays_bias_free_when_inputs_are_padded() -> None:
    conv = _conv(bias=False)
    padded = pad_input_channels(conv, 2)
    assert padded.bias is None
    assert tuple(padded.weight.shape) == (5, 5, 3, 3)
    x = torch.rand(1, 5, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(padded(x), conv(x[:, :3]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_padding_keeps_the_convs_dtype(dtype: torch.dtype) -> None:
    conv = _conv(dtype=dtype)
    wide_out = pad_output_channels(conv, 4, bias=1.5)
    wide_in = pad_input_channels(conv, 3)
    for padded in (wide_out, wide_in):
        assert padded.weight.dtype == dtype and padded.bias.dtype == dtype
    assert tuple(wide_out.weight.shape) == (8, 3, 3, 3)
    torch.testing.assert_close(wide_out.bias[5:].detach(), torch.full((3,), 1.5, dtype=dtype))
    torch.testing.assert_close(wide_in.weight[:, :3].detach(), conv.weight.detach())
    assert not wide_in.weight[:, 3:].any()


def test_extra_overrides_the_aligned_count() -> None:
    conv = _conv(out_ch=4)
    assert pad_output_channels(conv, 4, bias=-2.0, extra=3).out_channels == 7
    assert pad_output_channels(conv, 4, extra=0).out_channels == 4
    assert pad_output_channels(conv, 3).out_channels == 6


def test_dummy_outputs_default_to_zero() -> None:
    """Without ``bias`` the dummy outputs are the constant 0."""
    padded = pad_output_channels(_conv(out_ch=5), 4)
    assert padded.out_channels == 8
    assert not padded.weight[5:].any() and not padded.bias[5:].any()
