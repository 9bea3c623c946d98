"""R24: a PReLU between two convs as a pair of ReLU channels. Properties; negatives."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.conv_geometry import make_conv
from et.rules.prelu_as_relu_pair import DENSE, FINITE, SHAPE, TORCH_MODULES, prelu_as_relu_pair
from et.strategies import bias_tensors, conv2d_modules, image_batches, weight_tensors


@st.composite
def _triples(draw: st.DrawFn) -> tuple[nn.Conv2d, nn.Module, nn.Conv2d]:
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
    # slopes of any sign and size, some exactly 0 (the channels that are not doubled)
    slope = st.one_of(st.just(0.0), st.floats(-5, 5, allow_nan=False))
    kind = draw(st.sampled_from(["prelu", "prelu1", "leaky"]))
    if kind == "leaky":
        return conv1, nn.LeakyReLU(draw(slope)), conv2
    count = channels if kind == "prelu" else 1
    prelu = nn.PReLU(count, dtype=torch.float64)
    with torch.no_grad():
        prelu.weight.copy_(torch.tensor(draw(st.lists(slope, min_size=count, max_size=count))))
    return conv1, prelu, conv2


@given(triple=_triples(), data=st.data())
def test_relu_pairs_are_exact_in_float64(triple, data: st.DataObject) -> None:
    conv1, activation, conv2 = triple
    x = data.draw(image_batches(conv1.in_channels, min_size=12, max_size=14, ranges=((-3, 3),)))
    before = copy.deepcopy((conv1.state_dict(), activation.state_dict(), conv2.state_dict()))
    new1, relu, new2 = prelu_as_relu_pair(conv1, activation, conv2)
    with torch.no_grad():
        h = conv1(x)
        expected = conv2(activation(h))
        got = new2(relu(new1(x)))
    # −a·W₂ carries one rounding per weight: bound by the size of the summed terms.
    magnitude = conv2.weight.abs().sum(dim=(1, 2, 3)).max().item() * (h.abs().max().item() + 1)
    slopes = activation.weight if isinstance(activation, nn.PReLU) else torch.ones(1)
    magnitude *= 1 + slopes.abs().max().item()
    assert torch.allclose(got, expected, rtol=0, atol=1e-12 * magnitude)
    assert isinstance(relu, nn.ReLU)
    after = (conv1.state_dict(), activation.state_dict(), conv2.state_dict())
    for old, new in zip(before, after, strict=True):  # inputs untouched
        assert all(torch.equal(old[k], new[k]) for k in old)


@given(triple=_triples(), data=st.data())
def test_every_stored_channel_is_non_negative_and_halves_are_the_two_signs(triple, data) -> None:
    # The point of the rule: one non-negative tensor between the convs, channel c holding the
    # positive part of h_c and channel C + j the negative part of h_{S_j}, S = slopes ≠ 0.
    conv1, activation, conv2 = triple
    x = data.draw(image_batches(conv1.in_channels, min_size=12, max_size=13))
    new1, relu, _ = prelu_as_relu_pair(conv1, activation, conv2)
    channels = conv1.out_channels
    slopes = (
        activation.weight.detach().expand(channels)
        if isinstance(activation, nn.PReLU)
        else torch.full((channels,), activation.negative_slope, dtype=torch.float64)
    )
    doubled = [c for c in range(channels) if slopes[c] != 0]
    assert new1.out_channels == channels + len(doubled)
    with torch.no_grad():
        h = conv1(x)
        stored = relu(new1(x))
    assert bool((stored >= 0).all())
    scale = h.abs().max().item() + 1
    assert torch.allclose(stored[:, :channels], torch.relu(h), atol=1e-12 * scale, rtol=0)
    assert torch.allclose(stored[:, channels:], torch.relu(-h[:, doubled]), atol=1e-12 * scale)


def test_slope_zero_channels_are_not_doubled_and_the_columns_are_minus_a_w2() -> None:
    conv1 = nn.Conv2d(2, 3, 3, padding=1, dtype=torch.float64)
    conv2 = nn.Conv2d(3, 2, 1, dtype=torch.float64)
    prelu = nn.PReLU(3, dtype=torch.float64)
    with torch.no_grad():
        prelu.weight.copy_(torch.tensor([0.5, 0.0, -2.0]))
    new1, _, new2 = prelu_as_relu_pair(conv1, prelu, conv2)
    assert new1.out_channels == 5 and new2.in_channels == 5
    assert torch.equal(new1.weight[3], -conv1.weight[0])
    assert torch.equal(new1.weight[4], -conv1.weight[2])
    assert torch.equal(new1.bias[3:], -conv1.bias[[0, 2]])
    assert torch.equal(new2.weight[:, 3], -0.5 * conv2.weight[:, 0])
    assert torch.equal(new2.weight[:, 4], 2.0 * conv2.weight[:, 2])
    assert torch.equal(new2.bias, conv2.bias)


def test_registered_by_name_and_id() -> None:
    conv1, conv2 = nn.Conv2d(2, 3, 3), nn.Conv2d(3, 2, 1)
    by_id = apply_rule("R24", conv1, nn.PReLU(), conv2)
    by_name = apply_rule("prelu_as_relu_pair", conv1, nn.PReLU(), conv2)
    assert torch.equal(by_id[0].weight, by_name[0].weight)
    assert torch.equal(by_id[2].weight, by_name[2].weight)


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def test_infinite_slope_gives_nan_and_is_refused() -> None:
    torch.manual_seed(0)
    conv1 = nn.Conv2d(2, 2, 3, padding=1, dtype=torch.float64)
    conv2 = nn.Conv2d(2, 2, 1, dtype=torch.float64)
    prelu = nn.PReLU(2, dtype=torch.float64)
    with torch.no_grad():
        prelu.weight.copy_(torch.tensor([float("inf"), 0.25]))
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64)
    # What the pair would compute without the check: ReLU(h) − a·ReLU(−h) is NaN wherever
    # h ≥ 0 (∞·0), while torch's PReLU gives h there.
    with torch.no_grad():
        h = conv1(x)[:, :1]
        paired = torch.relu(h) - float("inf") * torch.relu(-h)
        original = prelu(conv1(x))[:, :1]
    positive = h >= 0
    assert bool(positive.any())
    assert bool(paired[positive].isnan().all()) and not bool(original[positive].isnan().any())
    with pytest.raises(PreconditionError, match="finite") as info:
        prelu_as_relu_pair(conv1, prelu, conv2)
    assert info.value.condition is FINITE


def test_grouped_conv2_reads_the_halves_in_the_wrong_group_and_is_refused() -> None:
    torch.manual_seed(1)
    conv1 = nn.Conv2d(2, 4, 3, padding=1, dtype=torch.float64)
    conv2 = nn.Conv2d(4, 2, 1, groups=2, dtype=torch.float64)
    prelu = nn.PReLU(4, init=-0.5, dtype=torch.float64)
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64) * 2 - 1
    # Without the check: conv₂' would be a grouped conv over [h, −h] (8 channels), group 0
    # reading channels 0–3 (all of h) and group 1 channels 4–7 (the negated halves): output 0
    # then reads h_2, h_3, which conv₂'s output 0 never does.
    with torch.no_grad():
        expected = conv2(prelu(conv1(x)))
        h = conv1(x)
        stored = torch.relu(torch.cat([h, -h], dim=1))
        w = conv2.weight  # 2×2×1×1: output o reads channels 2o, 2o+1
        wrong = torch.cat([w, 0.5 * w], dim=1)  # 2×4×1×1 as a 2-group conv over 8 channels
        naive = nn.functional.conv2d(stored, wrong, conv2.bias, groups=2)
    assert (naive - expected).abs().max() > 1e-3
    with pytest.raises(PreconditionError, match="groups") as info:
        prelu_as_relu_pair(conv1, prelu, conv2)
    assert info.value.condition is DENSE
    grouped1 = nn.Conv2d(2, 4, 3, padding=1, groups=2, dtype=torch.float64)
    with pytest.raises(PreconditionError) as info:
        prelu_as_relu_pair(grouped1, prelu, nn.Conv2d(4, 2, 1, dtype=torch.float64))
    assert info.value.condition is DENSE


def test_shape_mismatches_are_refused() -> None:
    conv1, conv2 = nn.Conv2d(2, 3, 3), nn.Conv2d(3, 2, 1)
    with pytest.raises(PreconditionError) as info:
        prelu_as_relu_pair(conv1, nn.PReLU(), nn.Conv2d(4, 2, 1))
    assert info.value.condition is SHAPE
    with pytest.raises(PreconditionError) as info:
        prelu_as_relu_pair(conv1, nn.PReLU(2), conv2)  # slopes for 2 of 3 channels
    assert info.value.condition is SHAPE
    assert "2 slope(s)" in info.value.detail


def test_other_activations_and_overridden_modules_are_refused() -> None:
    class AddsOnePReLU(nn.PReLU):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 1

    conv1, conv2 = nn.Conv2d(2, 3, 3, dtype=torch.float64), nn.Conv2d(3, 2, 1, dtype=torch.float64)
    impostor = AddsOnePReLU(3, dtype=torch.float64)
    x = torch.rand(1, 2, 5, 5, dtype=torch.float64)
    with torch.no_grad():  # the pair is built from the slopes only: it computes torch's PReLU
        differs = (conv2(impostor(conv1(x))) - conv2(nn.PReLU.forward(impostor, conv1(x)))).abs()
    assert differs.max() > 0.5
    for activation in (impostor, nn.ReLU(), nn.Tanh()):
        with pytest.raises(PreconditionError) as info:
            prelu_as_relu_pair(conv1, activation, conv2)  # type: ignore[arg-type]
        assert info.value.condition is TORCH_MODULES
    with pytest.raises(PreconditionError) as info:
        prelu_as_relu_pair(nn.Linear(2, 3), nn.PReLU(), conv2)  # type: ignore[arg-type]
    assert info.value.condition is TORCH_MODULES


def test_float32_and_no_bias_are_kept() -> None:
    conv1 = nn.Conv2d(2, 3, 3, bias=False)
    conv2 = nn.Conv2d(3, 2, 3, padding=1, bias=False)
    new1, _, new2 = prelu_as_relu_pair(conv1, nn.PReLU(3, init=0.1), conv2)
    assert new1.bias is None and new2.bias is None
    assert new1.weight.dtype == torch.float32 and new2.weight.dtype == torch.float32
    assert new2.padding == (1, 1)
