"""E10: positive per-channel rescaling through a rectifier. Properties; negatives."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.conv_geometry import make_conv
from et.rules.rescale_channels import (
    HOMOGENEOUS,
    POSITIVE,
    SHAPE,
    ChannelClamp,
    rescale_channels,
)
from et.strategies import bias_tensors, conv2d_modules, image_batches, weight_tensors


def _activation(kind: str, channels: int) -> nn.Module:
    generator = torch.Generator().manual_seed(channels)
    if kind == "prelu":
        prelu = nn.PReLU(channels, dtype=torch.float64)
        with torch.no_grad():
            prelu.weight.copy_(torch.randn(channels, generator=generator, dtype=torch.float64))
        return prelu
    return {
        "relu": nn.ReLU(),
        "prelu1": nn.PReLU(1, init=-0.3, dtype=torch.float64),
        "leaky": nn.LeakyReLU(0.2),
        "identity": nn.Identity(),
        "clip": nn.Hardtanh(0.0, 0.7),
        "relu6": nn.ReLU6(),
    }[kind]


@st.composite
def _triples(draw: st.DrawFn) -> tuple[nn.Conv2d, nn.Module, nn.Conv2d, torch.Tensor]:
    conv1 = draw(conv2d_modules(strides=(1,), max_padding=2))
    channels = conv1.out_channels
    groups = draw(st.sampled_from([g for g in (1, 2, 3) if channels % g == 0]))
    out_channels = groups * draw(st.integers(1, 2))
    kernel = draw(st.sampled_from([1, 3]))
    weight = draw(weight_tensors((out_channels, channels // groups, kernel, kernel)))
    bias = draw(bias_tensors(out_channels))
    padding_mode = draw(st.sampled_from(["zeros", "replicate"]))
    conv2 = make_conv(weight, bias, padding=kernel // 2, groups=groups, padding_mode=padding_mode)
    kind = draw(st.sampled_from(["relu", "prelu", "prelu1", "leaky", "identity", "clip", "relu6"]))
    exponent = draw(st.lists(st.floats(-3, 3), min_size=channels, max_size=channels))
    alpha = torch.tensor([10.0**e for e in exponent], dtype=torch.float64)
    return conv1, _activation(kind, channels), conv2, alpha


@given(triple=_triples(), data=st.data())
def test_rescaling_is_exact_in_float64(triple, data: st.DataObject) -> None:
    conv1, activation, conv2, alpha = triple
    x = data.draw(image_batches(conv1.in_channels, min_size=12, max_size=14))
    before = copy.deepcopy((conv1.state_dict(), conv2.state_dict()))
    new1, new_activation, new2 = rescale_channels(conv1, activation, conv2, alpha)
    with torch.no_grad():
        expected = conv2(activation(conv1(x)))
        middle = conv1(x)
        got = new2(new_activation(new1(x)))
    # The rescaled weights carry one extra rounding each (α·W, W/α); bound it by the size of the
    # terms summed, not of the result (which may cancel).
    w2 = conv2.weight.abs().sum(dim=(1, 2, 3)).max().item()
    magnitude = w2 * (activation(middle).abs().max().item() + middle.abs().max().item()) + 1
    assert torch.allclose(got, expected, rtol=0, atol=1e-11 * magnitude)
    assert torch.equal(conv1.weight, before[0]["weight"])  # inputs untouched
    assert torch.equal(conv2.weight, before[1]["weight"])


@given(triple=_triples(), data=st.data())
def test_channel_c_between_the_convs_is_alpha_times_larger(triple, data) -> None:
    # The point of the rule: the activation of channel c is α_c times the original one.
    conv1, activation, conv2, alpha = triple
    x = data.draw(image_batches(conv1.in_channels, min_size=12, max_size=13))
    new1, new_activation, _ = rescale_channels(conv1, activation, conv2, alpha)
    with torch.no_grad():
        original = activation(conv1(x))
        scaled = new_activation(new1(x))
    expected = original * alpha.reshape(1, -1, 1, 1)
    assert torch.allclose(scaled, expected, rtol=1e-12, atol=1e-12 * expected.abs().max().item())


def test_prelu_slopes_unchanged_and_clip_bound_scaled() -> None:
    conv1, conv2 = nn.Conv2d(2, 3, 3, dtype=torch.float64), nn.Conv2d(3, 2, 1, dtype=torch.float64)
    alpha = torch.tensor([2.0, 0.5, 7.0], dtype=torch.float64)
    prelu = _activation("prelu", 3)
    _, same, _ = rescale_channels(conv1, prelu, conv2, alpha)
    assert same is prelu
    _, clip, _ = rescale_channels(conv1, nn.Hardtanh(0.0, 1.5), conv2, alpha)
    assert isinstance(clip, ChannelClamp)
    assert torch.equal(clip.upper, 1.5 * alpha)
    _, clip_again, _ = rescale_channels(conv1, clip, conv2, alpha)  # composes with itself
    assert torch.allclose(clip_again.upper, 1.5 * alpha * alpha)


def test_registered_by_name_and_id() -> None:
    conv1, conv2 = nn.Conv2d(2, 3, 3), nn.Conv2d(3, 2, 1)
    alpha = torch.tensor([2.0, 3.0, 4.0])
    by_id = apply_rule("E10", conv1, nn.ReLU(), conv2, alpha)
    by_name = apply_rule("rescale_channels", conv1, nn.ReLU(), conv2, alpha)
    assert torch.equal(by_id[0].weight, by_name[0].weight)
    assert torch.equal(by_id[2].weight, by_name[2].weight)


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


@pytest.mark.parametrize("bad", [-1.0, 0.0])
def test_non_positive_alpha_changes_the_function_and_is_refused(bad: float) -> None:
    torch.manual_seed(0)
    conv1 = nn.Conv2d(2, 2, 3, padding=1, dtype=torch.float64)
    conv2 = nn.Conv2d(2, 2, 1, dtype=torch.float64)
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64) * 2 - 1
    alpha = torch.tensor([bad, 2.0], dtype=torch.float64)
    # What the transform would compute without the check: conv₂ reads ReLU(α h)/α, which is
    # not ReLU(h) for α < 0 (the halves swap) and undefined for α = 0 (0/0).
    with torch.no_grad():
        h = conv1(x)
        scale = alpha.reshape(1, -1, 1, 1)
        difference = torch.relu(h * scale) / scale - torch.relu(h)
    assert bool((difference.isnan() | (difference.abs() > 1e-3)).any())
    with pytest.raises(PreconditionError, match="> 0") as info:
        rescale_channels(conv1, nn.ReLU(), conv2, alpha)
    assert info.value.condition == POSITIVE


def test_non_finite_alpha_is_refused() -> None:
    conv1, conv2 = nn.Conv2d(2, 2, 3), nn.Conv2d(2, 2, 1)
    for bad in (float("inf"), float("nan")):
        with pytest.raises(PreconditionError) as info:
            rescale_channels(conv1, nn.ReLU(), conv2, torch.tensor([1.0, bad]))
        assert info.value.condition == POSITIVE


@pytest.mark.parametrize(
    "activation", [nn.Hardtanh(-1.0, 1.0), nn.Tanh(), nn.ELU(), nn.Hardtanh(0.5, 2.0)]
)
def test_non_homogeneous_map_changes_the_function_and_is_refused(activation: nn.Module) -> None:
    torch.manual_seed(1)
    conv1 = nn.Conv2d(2, 2, 3, padding=1, dtype=torch.float64)
    conv2 = nn.Conv2d(2, 2, 1, dtype=torch.float64)
    alpha = torch.tensor([3.0, 5.0], dtype=torch.float64)
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64) * 4 - 2
    with torch.no_grad():
        h = conv1(x)
        scaled = activation(h * alpha.reshape(1, -1, 1, 1)) / alpha.reshape(1, -1, 1, 1)
        assert (scaled - activation(h)).abs().max() > 1e-3
    with pytest.raises(PreconditionError) as info:
        rescale_channels(conv1, activation, conv2, alpha)
    assert info.value.condition == HOMOGENEOUS


def test_shape_mismatches_are_refused() -> None:
    conv1, conv2 = nn.Conv2d(2, 3, 3), nn.Conv2d(3, 2, 1)
    for alpha in (torch.ones(2), torch.ones(1, 3, 1, 1), torch.ones(4)):
        with pytest.raises(PreconditionError) as info:
            rescale_channels(conv1, nn.ReLU(), conv2, alpha)
        assert info.value.condition == SHAPE
    with pytest.raises(PreconditionError) as info:
        rescale_channels(conv1, nn.ReLU(), nn.Conv2d(4, 2, 1), torch.ones(3))
    assert info.value.condition == SHAPE
    with pytest.raises(PreconditionError) as info:
        rescale_channels(conv1, nn.PReLU(2), conv2, torch.ones(3))  # slopes for 2 of 3 channels
    assert info.value.condition == HOMOGENEOUS


def test_non_conv_is_refused() -> None:
    with pytest.raises(PreconditionError, match="Conv2d"):
        rescale_channels(nn.Linear(2, 2), nn.ReLU(), nn.Conv2d(2, 2, 1), torch.ones(2))  # type: ignore[arg-type]


# Kill tests of the mutation pass (mutation/survivors.txt names each one): what the refusals
# say, and a conv₂ without bias.


def test_refusals_say_what_was_found() -> None:
    conv1, conv2 = nn.Conv2d(2, 3, 3), nn.Conv2d(3, 2, 1)
    with pytest.raises(PreconditionError) as info:
        rescale_channels(conv1, nn.ReLU(), conv2, torch.ones(2))
    assert "α shape (2,)" in info.value.detail
    with pytest.raises(PreconditionError) as info:
        rescale_channels(conv1, nn.ReLU(), conv2, torch.tensor([1.0, 0.0, 2.0]))
    assert info.value.detail == "min α = 0"
    with pytest.raises(PreconditionError) as info:
        rescale_channels(conv1, nn.ReLU(), conv2, torch.tensor([1.0, float("nan"), 2.0]))
    assert info.value.detail == "α holds inf or NaN"
    with pytest.raises(PreconditionError) as info:
        rescale_channels(conv1, nn.Tanh(), conv2, torch.ones(3))
    assert info.value.detail == "got Tanh()"


def test_second_conv_without_bias_stays_without_bias() -> None:
    torch.manual_seed(2)
    conv1 = nn.Conv2d(2, 3, 3, padding=1, dtype=torch.float64)
    conv2 = nn.Conv2d(3, 2, 1, bias=False, dtype=torch.float64)
    alpha = torch.tensor([2.0, 0.25, 8.0], dtype=torch.float64)
    new1, activation, new2 = rescale_channels(conv1, nn.ReLU(), conv2, alpha)
    assert new2.bias is None
    x = torch.rand(1, 2, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(new2(activation(new1(x))), conv2(torch.relu(conv1(x))))


# E10's refusals at their boundaries and the dtypes of what it returns (kill tests of the
# mutation pass; ``mutation/survivors.txt`` names each one).


def _convs(dtype1=torch.float64, dtype2=torch.float64) -> tuple[nn.Conv2d, nn.Conv2d]:
    torch.manual_seed(0)
    return nn.Conv2d(2, 3, 3, padding=1).to(dtype1), nn.Conv2d(3, 2, 1).to(dtype2)


ALPHA = torch.tensor([0.5, 2.0, 4.0], dtype=torch.float64)


@pytest.mark.parametrize(
    "upper",
    [
        torch.tensor([1.0, 1.0, 1.0, 1.0]),  # one bound too many, all positive
        torch.tensor([1.0, 0.0, 1.0]),  # a zero bound kills its channel
        torch.tensor([1.0, -1.0, 1.0]),
    ],
)
def test_a_per_channel_clip_needs_one_positive_bound_per_channel(upper) -> None:
    conv1, conv2 = _convs()
    with pytest.raises(PreconditionError) as error:
        rescale_channels(conv1, ChannelClamp(upper), conv2, ALPHA)
    assert error.value.condition == HOMOGENEOUS


def test_a_per_channel_clip_with_positive_bounds_is_scaled() -> None:
    conv1, conv2 = _convs()
    _, clip, _ = rescale_channels(conv1, ChannelClamp(torch.tensor([1.0, 0.5, 2.0])), conv2, ALPHA)
    assert torch.equal(clip.upper, torch.tensor([0.5, 1.0, 8.0], dtype=torch.float64))


def test_a_clip_to_zero_is_refused() -> None:
    """A clip to [0, M] needs M > 0 (M = 0 is no clip the rule scales)."""
    clip = nn.Hardtanh(0.0, 1.0)
    clip.max_val = 0.0
    conv1, conv2 = _convs()
    with pytest.raises(PreconditionError) as error:
        rescale_channels(conv1, clip, conv2, ALPHA)
    assert error.value.condition == HOMOGENEOUS


def test_an_alpha_that_is_no_tensor_is_refused_with_an_empty_shape() -> None:
    conv1, conv2 = _convs()
    with pytest.raises(PreconditionError) as error:
        rescale_channels(conv1, nn.ReLU(), conv2, [0.5, 2.0, 4.0])  # type: ignore[arg-type]
    assert error.value.condition == SHAPE
    assert error.value.detail == "α shape (), conv₁.out_channels=3, conv₂.in_channels=3"


def test_alpha_is_used_in_the_weights_dtype() -> None:
    """A float32 α with float64 convs: the clip bounds α·M are computed in float64 (0.1 is
    not a float32 number), as are the scaled weights."""
    conv1, conv2 = _convs()
    alpha = ALPHA.float()
    scaled1, clip, scaled2 = rescale_channels(conv1, nn.Hardtanh(0.0, 0.1), conv2, alpha)
    assert clip.upper.dtype == torch.float64
    assert torch.equal(clip.upper, torch.tensor(0.1, dtype=torch.float64) * ALPHA)
    assert scaled1.weight.dtype == scaled2.weight.dtype == torch.float64


def test_a_float32_second_conv_gets_float32_weights_divided_in_float32() -> None:
    """conv₂'s columns are divided by α in conv₂'s own dtype."""
    conv1, conv2 = _convs(torch.float64, torch.float32)
    alpha = torch.tensor([0.1, 3.0, 7.0], dtype=torch.float64)
    _, _, scaled2 = rescale_channels(conv1, nn.ReLU(), conv2, alpha)
    assert scaled2.weight.dtype == torch.float32
    inverse = (1.0 / alpha.float()).reshape(1, 3, 1, 1)
    assert torch.equal(scaled2.weight.detach(), conv2.weight.detach() * inverse)
