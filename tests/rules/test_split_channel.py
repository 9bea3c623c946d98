"""R25: a channel between two convs split into two equal channels. Properties; negatives."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.conv_geometry import make_conv
from et.rules.split_channel import DENSE, FINITE, SHAPE, TORCH_MODULES, split_channel
from et.strategies import bias_tensors, conv2d_modules, image_batches, weight_tensors


@st.composite
def _cases(draw: st.DrawFn) -> tuple[nn.Conv2d, nn.Module, nn.Conv2d, int, torch.Tensor]:
    conv1 = draw(
        conv2d_modules(strides=(1, 2), kernel_sizes=(1, 2, 3), max_padding=2, max_groups=1)
    )
    channels = conv1.out_channels
    kernel = draw(st.sampled_from([1, 3]))
    out_channels = draw(st.integers(1, 4))
    weight = draw(weight_tensors((out_channels, channels, kernel, kernel)))
    bias = draw(st.one_of(st.none(), bias_tensors(out_channels)))
    padding_mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    conv2 = make_conv(weight, bias, padding=kernel // 2, padding_mode=padding_mode)
    kind = draw(st.sampled_from(["relu", "leaky", "prelu", "prelu1", "identity"]))
    slope = st.floats(-5, 5, allow_nan=False)
    if kind == "relu":
        activation: nn.Module = nn.ReLU()
    elif kind == "leaky":
        activation = nn.LeakyReLU(draw(slope))
    elif kind == "identity":
        activation = nn.Identity()
    else:
        count = channels if kind == "prelu" else 1
        activation = nn.PReLU(count, dtype=torch.float64)
        with torch.no_grad():
            slopes = draw(st.lists(slope, min_size=count, max_size=count))
            activation.weight.copy_(torch.tensor(slopes))
    channel = draw(st.integers(0, channels - 1))
    column = draw(weight_tensors((out_channels, kernel, kernel)))
    return conv1, activation, conv2, channel, column


@given(case=_cases(), data=st.data())
def test_the_split_is_exact_in_float64(case, data: st.DataObject) -> None:
    conv1, activation, conv2, channel, column = case
    x = data.draw(image_batches(conv1.in_channels, min_size=12, max_size=14, ranges=((-3, 3),)))
    before = copy.deepcopy((conv1.state_dict(), activation.state_dict(), conv2.state_dict()))
    new1, new_activation, new2 = split_channel(conv1, activation, conv2, channel, column)
    with torch.no_grad():
        h = activation(conv1(x))
        expected = conv2(h)
        got = new2(new_activation(new1(x)))
    # W₂[:, c] − E carries one rounding per weight: bound by the size of the summed terms.
    taps = conv2.weight.abs().sum(dim=(1, 2, 3)).max().item() + column.abs().sum().item()
    assert torch.allclose(got, expected, rtol=0, atol=1e-12 * taps * (h.abs().max().item() + 1))
    assert new1.out_channels == conv1.out_channels + 1 == new2.in_channels
    after = (conv1.state_dict(), activation.state_dict(), conv2.state_dict())
    for old, new in zip(before, after, strict=True):  # inputs untouched
        assert all(torch.equal(old[k], new[k]) for k in old)


@given(case=_cases(), data=st.data())
def test_the_new_channel_equals_the_split_one(case, data: st.DataObject) -> None:
    conv1, activation, conv2, channel, column = case
    x = data.draw(image_batches(conv1.in_channels, min_size=12, max_size=13))
    new1, new_activation, new2 = split_channel(conv1, activation, conv2, channel, column)
    with torch.no_grad():
        stored = new_activation(new1(x))
    # the same row and bias: equal up to the conv's accumulation order
    scale = stored.abs().max().item() + 1
    assert torch.allclose(stored[:, -1], stored[:, channel], rtol=0, atol=1e-12 * scale)
    assert torch.equal(new2.weight[:, -1], column.to(new2.weight.dtype))


def test_the_columns_are_w_minus_e_and_e_and_the_slope_is_repeated() -> None:
    conv1 = nn.Conv2d(2, 3, 3, padding=1, dtype=torch.float64)
    conv2 = nn.Conv2d(3, 2, 1, dtype=torch.float64)
    prelu = nn.PReLU(3, dtype=torch.float64)
    with torch.no_grad():
        prelu.weight.copy_(torch.tensor([0.5, 0.0, -2.0]))
    column = torch.tensor([0.25, -1.0], dtype=torch.float64).reshape(2, 1, 1)
    new1, new_prelu, new2 = split_channel(conv1, prelu, conv2, 2, column)
    assert torch.equal(new1.weight[3], conv1.weight[2]) and new1.bias[3] == conv1.bias[2]
    assert torch.equal(new2.weight[:, 2], conv2.weight[:, 2] - column)
    assert torch.equal(new2.weight[:, 3], column)
    assert torch.equal(new2.weight[:, :2], conv2.weight[:, :2])
    assert new_prelu.weight.tolist() == [0.5, 0.0, -2.0, -2.0]
    shared = nn.PReLU(1, init=0.3)
    assert split_channel(conv1.float(), shared, conv2.float(), 0, column.float())[1] is shared


def test_registered_by_name_and_id() -> None:
    conv1, conv2 = nn.Conv2d(2, 3, 3), nn.Conv2d(3, 2, 1)
    column = torch.ones(2, 1, 1)
    by_id = apply_rule("R25", conv1, nn.ReLU(), conv2, 0, column)
    by_name = apply_rule("split_channel", conv1, nn.ReLU(), conv2, 0, column)
    assert torch.equal(by_id[2].weight, by_name[2].weight)


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def test_an_infinite_column_gives_nan_and_is_refused() -> None:
    torch.manual_seed(0)
    conv1 = nn.Conv2d(2, 2, 3, padding=1, dtype=torch.float64)
    conv2 = nn.Conv2d(2, 1, 1, dtype=torch.float64)
    column = torch.full((1, 1, 1), float("inf"), dtype=torch.float64)
    # Without the check: (W₂[:, c] − ∞)·h + ∞·h is NaN (or ±∞) where conv₂ reads a number.
    x = torch.rand(1, 2, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        h = torch.relu(conv1(x))[:, :1]
        naive = (conv2.weight[0, 0] - column[0]) * h + column[0] * h
    assert not bool(torch.isfinite(naive[h > 0]).any())
    with pytest.raises(PreconditionError, match="finite") as info:
        split_channel(conv1, nn.ReLU(), conv2, 0, column)
    assert info.value.condition is FINITE


def test_grouped_convs_are_refused() -> None:
    torch.manual_seed(1)
    conv1 = nn.Conv2d(2, 4, 3, padding=1, dtype=torch.float64)
    conv2 = nn.Conv2d(4, 2, 1, groups=2, dtype=torch.float64)
    column = torch.ones(2, 1, 1, dtype=torch.float64)
    # Without the check: conv₂' would be a 2-group conv over 5 channels (not even defined).
    stored = torch.relu(conv1(torch.rand(1, 2, 4, 4, dtype=torch.float64)))
    appended = torch.cat([stored, stored[:, :1]], dim=1)
    with pytest.raises(RuntimeError):
        nn.functional.conv2d(appended, torch.ones(2, 2, 1, 1, dtype=torch.float64), groups=2)
    with pytest.raises(PreconditionError, match="groups") as info:
        split_channel(conv1, nn.ReLU(), conv2, 0, column)
    assert info.value.condition is DENSE


def test_shape_mismatches_are_refused() -> None:
    conv1, conv2 = nn.Conv2d(2, 3, 3), nn.Conv2d(3, 2, 3)
    for channel, column, activation in (
        (3, torch.ones(2, 3, 3), nn.ReLU()),  # no channel 3
        (0, torch.ones(2, 1, 1), nn.ReLU()),  # E of a 1×1 kernel for a 3×3 conv₂
        (0, torch.ones(2, 3, 3), nn.PReLU(2)),  # slopes for 2 of 3 channels
    ):
        with pytest.raises(PreconditionError) as info:
            split_channel(conv1, activation, conv2, channel, column)
        assert info.value.condition is SHAPE
    with pytest.raises(PreconditionError) as info:
        split_channel(conv1, nn.ReLU(), nn.Conv2d(4, 2, 3), 0, torch.ones(2, 3, 3))
    assert info.value.condition is SHAPE


def test_activations_that_mix_channels_and_overridden_modules_are_refused() -> None:
    class AddsChannelIndex(nn.ReLU):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            index = torch.arange(x.shape[1], dtype=x.dtype).reshape(1, -1, 1, 1)
            return super().forward(x) + index

    torch.manual_seed(2)
    conv1 = nn.Conv2d(2, 3, 3, padding=1, dtype=torch.float64)
    conv2 = nn.Conv2d(3, 2, 1, dtype=torch.float64)
    column = torch.ones(2, 1, 1, dtype=torch.float64)
    impostor = AddsChannelIndex()
    x = torch.rand(1, 2, 5, 5, dtype=torch.float64)
    # What the split would compute for it: the new channel (index 3) is not channel 0 (index 0).
    with torch.no_grad():
        w = torch.cat([conv1.weight, conv1.weight[:1]])
        b = torch.cat([conv1.bias, conv1.bias[:1]])
        stored = impostor(nn.functional.conv2d(x, w, b, padding=1))
    assert (stored[:, 3] - stored[:, 0]).abs().min() > 2.5
    for activation in (impostor, nn.Softmax(dim=1), nn.Tanh()):
        with pytest.raises(PreconditionError) as info:
            split_channel(conv1, activation, conv2, 0, column)
        assert info.value.condition is TORCH_MODULES
    with pytest.raises(PreconditionError) as info:
        split_channel(nn.Linear(2, 3), nn.ReLU(), conv2, 0, column)  # type: ignore[arg-type]
    assert info.value.condition is TORCH_MODULES
