"""Tests that kill the mutants of ``et/rules/repeat_interleave_conv.py`` its own tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): carried channels starting at
channel 0, the tiled order and a non-default padding mode passed through
:func:`add_repeat_interleave_anchor`, a bias-less conv staying bias-less, the zero bias and
dtype of :func:`repeat_interleave_conv`, :func:`anchor_weight`'s default kernel and its
refusals of one even side (``and`` → ``or``) or zero channels, and the rule id / detail of
every refusal.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from et.contract import PreconditionError
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
