"""E7: PixelShuffle commutes with channel-uniform element-wise maps; per-channel maps refused."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.move_elementwise_before_pixel_shuffle import (
    AddConstant,
    Clamp,
    check_channel_uniform,
    move_elementwise_after_pixel_shuffle,
    move_elementwise_before_pixel_shuffle,
)
from et.strategies import image_batches


@st.composite
def uniform_maps(draw: st.DrawFn) -> nn.Module:
    kind = draw(st.sampled_from(["relu", "hardtanh", "clamp", "add", "leaky", "prelu1", "tanh"]))
    value = draw(st.floats(-2.0, 2.0, allow_nan=False))
    if kind == "relu":
        return nn.ReLU()
    if kind == "hardtanh":
        return nn.Hardtanh(0.0, abs(value) + 0.1)
    if kind == "clamp":
        return Clamp(min(value, 0.0), abs(value) + 0.5)
    if kind == "add":
        return AddConstant(value)
    if kind == "leaky":
        return nn.LeakyReLU(value)
    if kind == "prelu1":
        return nn.PReLU(1, init=value).double()
    return nn.Tanh()


@given(
    colors=st.sampled_from([1, 3]),
    scale=st.integers(2, 4),
    maps=st.lists(uniform_maps(), min_size=1, max_size=3),
    data=st.data(),
)
def test_maps_commute_with_pixel_shuffle(colors, scale, maps, data) -> None:
    original = nn.Sequential(nn.PixelShuffle(scale), *maps)
    moved = move_elementwise_before_pixel_shuffle(original)
    assert isinstance(moved[-1], nn.PixelShuffle)
    x = data.draw(image_batches(colors * scale**2, max_size=5))
    with torch.no_grad():
        assert torch.equal(moved(x), original(x))
        back = move_elementwise_after_pixel_shuffle(moved)
        assert torch.equal(back(x), original(x))


def test_final_clamp_of_a_network() -> None:
    x = torch.randn(2, 27, 4, 4, dtype=torch.float64) * 3
    original = nn.Sequential(nn.PixelShuffle(3), Clamp(0.0, 1.0))
    with torch.no_grad():
        expected = nn.functional.pixel_shuffle(x, 3).clamp(0, 1)
        assert torch.equal(apply_rule("E7", original)(x), expected)


# Negative tests.


def test_per_channel_prelu_differs_and_is_refused() -> None:
    prelu = nn.PReLU(4, dtype=torch.float64)
    with torch.no_grad():
        prelu.weight.copy_(torch.tensor([0.0, 0.25, 0.5, 0.75], dtype=torch.float64))
    x = -torch.ones(1, 4, 2, 2, dtype=torch.float64)
    single = nn.PReLU(1, init=0.0).double()  # the best a channel-uniform map after PS can do
    with torch.no_grad():
        before = nn.functional.pixel_shuffle(prelu(x), 2)
        after = single(nn.functional.pixel_shuffle(x, 2))
    assert (before - after).abs().max() > 0.1
    with pytest.raises(PreconditionError, match="same for every channel"):
        check_channel_uniform(prelu)
    with pytest.raises(PreconditionError, match="same for every channel"):
        move_elementwise_after_pixel_shuffle(nn.Sequential(prelu, nn.PixelShuffle(2)))


def test_non_elementwise_map_is_refused() -> None:
    x = torch.randn(1, 4, 3, 3)
    conv = nn.Conv2d(1, 1, 3, padding=1)
    with torch.no_grad():  # a spatial map does not commute
        assert not torch.allclose(
            nn.functional.pixel_shuffle(nn.Conv2d(4, 4, 3, padding=1)(x), 2),
            conv(nn.functional.pixel_shuffle(x, 2)),
        )
    for module in (conv, nn.Softmax(dim=1), nn.BatchNorm2d(1)):
        with pytest.raises(PreconditionError, match="same for every channel"):
            move_elementwise_before_pixel_shuffle(nn.Sequential(nn.PixelShuffle(2), module))


def test_sequence_without_pixel_shuffle_is_refused() -> None:
    with pytest.raises(PreconditionError, match="PixelShuffle"):
        move_elementwise_before_pixel_shuffle(nn.Sequential(nn.ReLU(), nn.PixelShuffle(2)))
    with pytest.raises(PreconditionError, match="PixelShuffle"):
        move_elementwise_after_pixel_shuffle(nn.Sequential(nn.PixelShuffle(2), nn.ReLU()))
