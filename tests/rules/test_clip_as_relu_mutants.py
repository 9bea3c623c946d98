"""Tests that kill the mutants of ``et/rules/clip_as_relu.py`` (E2) its own tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): the default bound ``M = 1`` of
:func:`clip_as_relu_sequential` and :func:`clip_conv` was never used, refusals were checked by
condition text only, and ``clip_conv``'s dtype was never other than float32.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from et.contract import PreconditionError
from et.rules.clip_as_relu import BOUND, IS_CONV, clip_as_relu, clip_as_relu_sequential, clip_conv


def _conv() -> nn.Conv2d:
    torch.manual_seed(4)
    conv = nn.Conv2d(2, 3, 3, padding=1, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.mul_(4)  # outputs well beyond [0, 1] on both sides
        conv.bias.uniform_(-0.5, 1.5)
    return conv


def test_sequential_defaults_to_a_clamp_to_the_unit_interval() -> None:
    conv = _conv()
    x = torch.rand(2, 2, 7, 7, dtype=torch.float64) * 2 - 0.5
    with torch.no_grad():
        expected = torch.clamp(conv(x), 0.0, 1.0)
        assert (expected == 1).any() and (expected == 0).any()  # both bounds are reached
        torch.testing.assert_close(clip_as_relu_sequential(conv)(x), expected, rtol=0, atol=1e-12)


def test_clip_conv_defaults_to_bound_one_in_the_requested_dtype() -> None:
    clip = clip_conv(3)
    assert clip.weight.dtype == torch.float32
    torch.testing.assert_close(clip.bias.detach(), torch.ones(3))
    clip64 = clip_conv(2, 0.25, dtype=torch.float64)
    assert clip64.weight.dtype == torch.float64 and clip64.bias.dtype == torch.float64
    z = torch.rand(1, 2, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(clip64(z), 0.25 - z, rtol=0, atol=1e-15)


def test_folded_pair_keeps_the_convs_dtype() -> None:
    folded, clip = clip_as_relu(_conv().to(torch.bfloat16), 2.0)
    assert folded.weight.dtype == torch.bfloat16 and clip.weight.dtype == torch.bfloat16


def test_refusals_name_rule_condition_and_detail() -> None:
    with pytest.raises(PreconditionError) as info:
        clip_as_relu(nn.Linear(2, 2))
    assert (info.value.rule, info.value.condition, info.value.detail) == (
        "E2",
        IS_CONV,
        "got Linear, expected torch.nn.Conv2d",
    )
    for bound in (-0.5, math.inf, math.nan):
        with pytest.raises(PreconditionError) as info:
            clip_as_relu(_conv(), bound)
        assert (info.value.rule, info.value.condition) == ("E2", BOUND)
        assert info.value.detail == f"M = {bound}"


def test_zero_bound_is_accepted() -> None:
    """M = 0 is the boundary of the precondition: ``clamp(y, 0, 0) = 0``."""
    conv = _conv()
    x = torch.rand(1, 2, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        assert not clip_as_relu_sequential(conv, 0.0)(x).any()


def test_pair_defaults_to_bound_one() -> None:
    """``clip_as_relu(conv)`` without a bound clamps to [0, 1]."""
    conv = _conv()
    folded, clip = clip_as_relu(conv)
    x = torch.rand(2, 2, 6, 6, dtype=torch.float64) * 2 - 0.5
    with torch.no_grad():
        got = torch.relu(clip(torch.relu(folded(x))))
        torch.testing.assert_close(got, torch.clamp(conv(x), 0.0, 1.0), rtol=0, atol=1e-12)


def test_clip_bias_is_the_bound_in_the_requested_dtype() -> None:
    """M = 0.1 is not a float32 number: the float64 bias must be float64's 0.1, not float32's."""
    clip = clip_conv(2, 0.1, dtype=torch.float64)
    assert torch.equal(clip.bias.detach(), torch.full((2,), 0.1, dtype=torch.float64))
