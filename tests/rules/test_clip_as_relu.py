"""E2: clamp(conv(x), 0, M) = ReLU(clip(ReLU(folded(x)))); properties and negative tests."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.clip_as_relu import BOUND, IS_CONV, clip_as_relu, clip_as_relu_sequential, clip_conv
from et.strategies import conv2d_modules, image_batches

BOUNDS = [0.0, 0.5, 1.0, 255.0]


def _tail(folded: nn.Conv2d, clip: nn.Conv2d) -> nn.Sequential:
    return nn.Sequential(folded, nn.ReLU(), clip, nn.ReLU())


@given(data=st.data())
def test_clamp_equals_two_relus_any_geometry(data: st.DataObject) -> None:
    conv = data.draw(conv2d_modules())
    bound = data.draw(st.sampled_from(BOUNDS))
    x = data.draw(image_batches(conv.in_channels, min_size=12, max_size=13))
    with torch.no_grad():
        expected = conv(x).clamp(0, bound)
        got = clip_as_relu_sequential(conv, bound)(x)
    scale = conv(x).abs().max().item() + bound + 1.0
    assert torch.allclose(got, expected, rtol=0, atol=1e-12 * scale)


@given(data=st.data())
def test_etds_tail_with_pixel_shuffle(data: st.DataObject) -> None:
    colors = data.draw(st.sampled_from([1, 3]))
    scale = data.draw(st.integers(2, 4))
    conv = nn.Conv2d(5, colors * scale**2, 3, padding=1, dtype=torch.float64)
    generator = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator, dtype=torch.float64))
        conv.bias.copy_(torch.randn(conv.bias.shape, generator=generator, dtype=torch.float64))
    x = data.draw(image_batches(5, min_size=3, max_size=8, ranges=((0.0, 1.0),)))
    folded, clip = clip_as_relu(conv, 1.0)
    assert torch.equal(folded.weight, -conv.weight) and torch.equal(folded.bias, 1.0 - conv.bias)
    assert torch.equal(clip.weight[:, :, 0, 0], -torch.eye(colors * scale**2, dtype=torch.float64))
    with torch.no_grad():
        expected = nn.functional.pixel_shuffle(conv(x), scale).clamp(0, 1)
        got = nn.functional.pixel_shuffle(_tail(folded, clip)(x), scale)
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)


@given(data=st.data())
def test_float32_within_stated_bound(data: st.DataObject) -> None:
    # float32: the ReLU form adds two roundings of size ≤ 2⁻²⁴·(|y| + M) to the conv's own error.
    conv = data.draw(conv2d_modules(dtype=torch.float32, max_channels=4))
    x = data.draw(image_batches(conv.in_channels, min_size=12, max_size=13, dtype=torch.float32))
    with torch.no_grad():
        got = clip_as_relu_sequential(conv, 1.0)(x).double()
        expected = conv.double()(x.double()).clamp(0, 1)
    fan_in = conv.weight[0].numel()
    magnitude = conv.weight.abs().sum(dim=(1, 2, 3)).max().item() * x.abs().max().item() + 2
    if conv.bias is not None:
        magnitude += conv.bias.abs().max().item()
    assert (got - expected).abs().max().item() <= 4 * (fan_in + 4) * 2**-24 * magnitude


def test_clip_conv_computes_bound_minus_input() -> None:
    z = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(clip_conv(4, 0.75, dtype=torch.float64)(z), 0.75 - z, atol=1e-15)


def test_input_is_not_mutated_and_bias_free_conv() -> None:
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=False, dtype=torch.float64)
    before = copy.deepcopy(conv.state_dict())
    folded, _ = clip_as_relu(conv, 1.0)
    assert torch.equal(folded.bias, torch.ones(4, dtype=torch.float64))
    for key, value in conv.state_dict().items():
        assert torch.equal(value, before[key])


def test_registered_by_name_and_id() -> None:
    conv = nn.Conv2d(2, 2, 1)
    assert torch.equal(apply_rule("E2", conv)[0].weight, apply_rule("clip_as_relu", conv)[0].weight)


# Negative tests.


def test_negative_bound_differs_and_is_refused() -> None:
    conv = nn.Conv2d(1, 1, 1, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(0.0)
    x = torch.full((1, 1, 2, 2), 0.5, dtype=torch.float64)
    # What the formula would build for M = −1, written out: ReLU(−1 − ReLU(−1 − y)).
    relu_form = torch.relu(-1 - torch.relu(-1 - conv(x)))
    assert not torch.allclose(relu_form, conv(x).clamp(0, -1))
    with pytest.raises(PreconditionError, match=r"non-negative \(M ≥ 0\)"):
        clip_as_relu(conv, -1.0)


@pytest.mark.parametrize("bound", [math.inf, math.nan])
def test_non_finite_bound_is_refused(bound: float) -> None:
    with pytest.raises(PreconditionError, match="finite"):
        clip_as_relu(nn.Conv2d(1, 1, 1), bound)


def test_non_conv_is_refused() -> None:
    with pytest.raises(PreconditionError, match="Conv2d"):
        clip_as_relu(nn.Linear(2, 2), 1.0)


# Tests that kill the mutants of ``et/rules/clip_as_relu.py`` (E2) its own tests let survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): the default bound ``M = 1`` of
# :func:`clip_as_relu_sequential` and :func:`clip_conv` was never used, refusals were checked by
# condition text only, and ``clip_conv``'s dtype was never other than float32.


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
