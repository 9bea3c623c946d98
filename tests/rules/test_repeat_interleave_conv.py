"""E3: repeat_interleave as a conv, the anchor added into a conv, and the tiled (TF) order."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.conv_geometry import make_conv
from et.rules.repeat_interleave_conv import (
    CENTRED,
    CHANNELS_FIT,
    COUNTS,
    ODD_KERNEL,
    ORDER_DECLARED,
    SINGLE_GROUP,
    add_repeat_interleave_anchor,
    anchor_weight,
    repeat_interleave_conv,
)
from et.strategies import image_batches, weight_tensors


@given(
    channels=st.sampled_from([1, 2, 3, 4]),
    repeats=st.sampled_from([1, 2, 4, 9, 16, 25, 5]),
    kernel=st.sampled_from([1, 3, 5, (1, 3), (3, 5)]),
    data=st.data(),
)
def test_conv_equals_repeat_interleave(channels, repeats, kernel, data) -> None:
    x = data.draw(image_batches(channels, max_size=8))
    conv = repeat_interleave_conv(channels, repeats, kernel, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(conv(x), x.repeat_interleave(repeats, dim=1))


@given(channels=st.sampled_from([1, 2, 3]), repeats=st.integers(1, 9), data=st.data())
def test_tiled_order_equals_repeat(channels, repeats, data) -> None:
    x = data.draw(image_batches(channels, max_size=6))
    conv = repeat_interleave_conv(channels, repeats, order="tiled", dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(conv(x), x.repeat(1, repeats, 1, 1))


GEOMETRIES = [  # (kernel, padding, dilation): the centre tap reads the output pixel
    (3, 1, 1),
    (5, 2, 1),
    (3, 2, 2),
    ((3, 1), (1, 0), 1),
    (1, 0, 1),
]


@given(
    colors=st.sampled_from([1, 3]),
    scale=st.integers(2, 4),
    geometry=st.sampled_from(GEOMETRIES),
    real=st.integers(1, 5),
    dummy=st.integers(0, 2),
    data=st.data(),
)
def test_anchor_added_into_last_conv(colors, scale, geometry, real, dummy, data) -> None:
    kernel, padding, dilation = geometry
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    in_channels = real + dummy + colors
    extra_out = data.draw(st.integers(0, 1))  # an alignment output the anchor must not touch
    out = colors * scale**2 + extra_out
    weight = data.draw(weight_tensors((out, in_channels, kh, kw)))
    bias = torch.randn(out, dtype=torch.float64) + 0.5
    conv = make_conv(weight, bias, padding=padding, dilation=dilation)
    z = data.draw(image_batches(in_channels, max_size=7))
    anchored = add_repeat_interleave_anchor(conv, real + dummy, colors, scale**2)
    with torch.no_grad():
        expected = conv(z)
        expected[:, : colors * scale**2] += z[:, real + dummy :].repeat_interleave(scale**2, 1)
        got = anchored(z)
    tolerance = 1e-12 * (expected.abs().max().item() + 1)
    assert torch.allclose(got, expected, rtol=0, atol=tolerance)
    assert torch.equal(conv.weight, weight)  # the argument is untouched


def test_anchor_weight_layout() -> None:
    k = anchor_weight(3, 4, 3, dtype=torch.float64)
    assert k.shape == (12, 3, 3, 3) and k.sum() == 12
    for row in range(12):
        assert k[row, row // 4, 1, 1] == 1


def test_registered_by_name_and_id() -> None:
    assert torch.equal(
        apply_rule("E3", 3, 4).weight, apply_rule("repeat_interleave_conv", 3, 4).weight
    )


# Negative tests.


def test_tiled_order_differs_for_several_colours() -> None:
    x = torch.rand(1, 3, 4, 4, dtype=torch.float64)
    assert not torch.equal(x.repeat(1, 4, 1, 1), x.repeat_interleave(4, dim=1))
    tiled = repeat_interleave_conv(3, 4, order="tiled", dtype=torch.float64)
    with torch.no_grad():
        shuffled = nn.functional.pixel_shuffle(tiled(x), 2)
    nearest = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
    assert (shuffled - nearest).abs().max() > 0.01
    # one colour: both orders agree
    x1 = x[:, :1]
    assert torch.equal(x1.repeat(1, 4, 1, 1), x1.repeat_interleave(4, dim=1))
    with pytest.raises(PreconditionError, match="order"):
        repeat_interleave_conv(3, 4, order="depth_to_space")  # type: ignore[arg-type]


def test_even_kernel_is_refused() -> None:
    with pytest.raises(PreconditionError, match="odd"):
        repeat_interleave_conv(3, 4, 2)
    with pytest.raises(PreconditionError, match="odd"):
        add_repeat_interleave_anchor(nn.Conv2d(4, 12, 2, padding=1), 1, 3, 4)


@pytest.mark.parametrize("kwargs", [{"padding": 0}, {"padding": 1, "stride": 2}, {"padding": 2}])
def test_off_centre_conv_differs_and_is_refused(kwargs) -> None:
    conv = nn.Conv2d(4, 12, 3, dtype=torch.float64, **kwargs)
    z = torch.rand(1, 4, 6, 6, dtype=torch.float64)
    # adding the one-hot centre kernel by hand does not give the anchor
    manual = make_conv(
        conv.weight.detach()
        + torch.cat(
            [
                torch.zeros(12, 1, 3, 3, dtype=torch.float64),
                anchor_weight(3, 4, 3, dtype=torch.float64),
            ],
            1,
        ),
        conv.bias.detach(),
        **kwargs,
    )
    with torch.no_grad():
        difference = manual(z) - conv(z)
    anchor = z[:, 1:].repeat_interleave(4, 1)
    assert difference.shape != anchor.shape or (difference - anchor).abs().max() > 1e-3
    with pytest.raises(PreconditionError, match="centre tap"):
        add_repeat_interleave_anchor(conv, 1, 3, 4)


def test_grouped_or_too_small_conv_is_refused() -> None:
    with pytest.raises(PreconditionError, match="groups = 1"):
        add_repeat_interleave_anchor(nn.Conv2d(4, 12, 3, padding=1, groups=2), 1, 3, 4)
    with pytest.raises(PreconditionError, match="fit"):
        add_repeat_interleave_anchor(nn.Conv2d(4, 8, 3, padding=1), 1, 3, 4)
    with pytest.raises(PreconditionError, match="fit"):
        add_repeat_interleave_anchor(nn.Conv2d(4, 12, 3, padding=1), 2, 3, 4)


# Tests that kill the mutants of ``et/rules/repeat_interleave_conv.py`` its own tests let survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): carried channels starting at
# channel 0, the tiled order and a non-default padding mode passed through
# :func:`add_repeat_interleave_anchor`, a bias-less conv staying bias-less, the zero bias and
# dtype of :func:`repeat_interleave_conv`, :func:`anchor_weight`'s default kernel and its
# refusals of one even side (``and`` → ``or``) or zero channels, and the rule id / detail of
# every refusal.


def _conv(in_ch: int = 5, out_ch: int = 8, *, bias: bool = True, **kwargs) -> nn.Conv2d:
    torch.manual_seed(0)
    return nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=bias, dtype=torch.float64, **kwargs)


def _carried(z: torch.Tensor, start: int, channels: int) -> torch.Tensor:
    return z[:, start : start + channels]


def test_carried_channels_may_start_at_channel_zero() -> None:
    conv = _conv()
    anchored = add_repeat_interleave_anchor(conv, 0, 2, 4)
    z = torch.rand(2, 5, 6, 6, dtype=torch.float64)
    expected = conv(z)
    expected[:, :8] += torch.repeat_interleave(_carried(z, 0, 2), 4, dim=1)
    with torch.no_grad():
        torch.testing.assert_close(anchored(z), expected, rtol=0, atol=1e-12)


def test_tiled_order_and_padding_mode_are_passed_through() -> None:
    conv = _conv(padding_mode="replicate")
    anchored = add_repeat_interleave_anchor(conv, 3, 2, 4, order="tiled")
    assert anchored.padding_mode == "replicate"
    z = torch.rand(2, 5, 6, 6, dtype=torch.float64)
    expected = conv(z)
    expected[:, :8] += _carried(z, 3, 2).repeat(1, 4, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(anchored(z), expected, rtol=0, atol=1e-12)


def test_a_biasless_conv_stays_biasless() -> None:
    anchored = add_repeat_interleave_anchor(_conv(bias=False), 3, 2, 4)
    assert anchored.bias is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_repeat_interleave_conv_has_a_zero_bias_of_its_dtype(dtype) -> None:
    conv = repeat_interleave_conv(3, 4, 5, dtype=dtype)
    assert conv.bias is not None and conv.bias.dtype == dtype
    assert torch.count_nonzero(conv.bias) == 0
    assert conv.padding == (2, 2) and all(isinstance(p, int) for p in conv.padding)


@pytest.mark.parametrize(
    ("conv", "arguments", "condition", "detail"),
    [
        (nn.Conv2d(4, 8, 3, padding=1, groups=2), (2, 2, 4), SINGLE_GROUP, "groups = 2"),
        (nn.Conv2d(4, 8, 3, padding=1), (3, 2, 4), CHANNELS_FIT, "carried 3..5 of 4 inputs"),
        (nn.Conv2d(4, 8, 3, padding=1), (0, 3, 4), CHANNELS_FIT, "3·4 anchor outputs of 8"),
        (nn.Conv2d(4, 8, (2, 3), padding=1), (0, 2, 4), ODD_KERNEL, "(2, 3) has no centre tap"),
    ],
)
def test_every_refusal_names_rule_condition_and_detail(conv, arguments, condition, detail):
    with pytest.raises(PreconditionError) as info:
        add_repeat_interleave_anchor(conv, *arguments)
    assert (info.value.rule, info.value.condition) == ("E3", condition)
    assert detail in info.value.detail


def test_anchor_weight_defaults_to_a_3x3_kernel() -> None:
    assert anchor_weight(2, 4).shape == (8, 2, 3, 3)


@pytest.mark.parametrize(
    ("arguments", "keywords", "condition", "detail"),
    [
        ((2, 4, (3, 4)), {}, ODD_KERNEL, "kernel (3, 4)"),
        ((2, 4, (4, 3)), {}, ODD_KERNEL, "kernel (4, 3)"),
        ((2, 4), {"order": "spiral"}, ORDER_DECLARED, "got 'spiral'"),
        ((0, 4), {}, COUNTS, "channels = 0, repeats = 4"),
        ((2, 0), {}, COUNTS, "channels = 2, repeats = 0"),
    ],
)
def test_anchor_weight_refusals_name_rule_condition_and_detail(
    arguments, keywords, condition, detail
) -> None:
    with pytest.raises(PreconditionError) as info:
        anchor_weight(*arguments, **keywords)
    error = info.value
    assert (error.rule, error.condition, error.detail) == ("E3", condition, detail)


def test_off_centre_refusal_names_rule_and_geometry() -> None:
    conv = nn.Conv2d(4, 8, 3, stride=2, padding=1)
    with pytest.raises(PreconditionError) as info:
        add_repeat_interleave_anchor(conv, 0, 2, 4)
    error = info.value
    assert (error.rule, error.condition) == ("E3", CENTRED)
    assert error.detail == "stride (2, 2), padding (1, 1), dilation (1, 1), kernel (3, 3)"
