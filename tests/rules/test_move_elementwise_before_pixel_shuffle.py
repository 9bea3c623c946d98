"""E7: PixelShuffle commutes with channel-uniform element-wise maps; per-channel maps refused."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.move_elementwise_before_pixel_shuffle import (
    IS_SHUFFLE,
    UNIFORM,
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


# A test that kills two mutants of ``et/rules/move_elementwise_before_pixel_shuffle.py`` (E7)
# thought equivalent.
#
# ``copy.copy`` of the PixelShuffle (instead of ``copy.deepcopy``) gives a new object, but one that
# shares its hook dictionaries with the input's shuffle: a forward hook registered on the moved
# shuffle would then fire on the caller's module too. (Kept beside
# ``test_pixel_shuffle_commute_mutants.py`` rather than in it, which has another author.)


@pytest.mark.parametrize("direction", ["before", "after"])
def test_moved_shuffle_shares_no_hooks_with_the_input(direction: str) -> None:
    shuffle = nn.PixelShuffle(2)
    if direction == "before":
        moved = move_elementwise_before_pixel_shuffle(nn.Sequential(shuffle, nn.ReLU()))
        new_shuffle = moved[-1]
    else:
        moved = move_elementwise_after_pixel_shuffle(nn.Sequential(nn.ReLU(), shuffle))
        new_shuffle = moved[0]
    assert isinstance(new_shuffle, nn.PixelShuffle) and new_shuffle is not shuffle
    calls: list[str] = []
    new_shuffle.register_forward_hook(lambda *_: calls.append("hooked"))
    shuffle(torch.ones(1, 4, 2, 2))
    assert calls == []


# Tests that kill the mutants of ``et/rules/move_elementwise_before_pixel_shuffle.py`` its own
# tests let survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): :class:`AddConstant` computed
# ``x − c`` and :class:`Clamp`'s defaults could change unnoticed; a lone PixelShuffle (one layer)
# and a module that is not a ``Sequential`` were never moved; a non-uniform map in the *middle* of
# ``f₁, f₂, PS`` was never refused; the result could share parameters with the input (shallow
# copies); and the rule id / detail of the refusals were not checked.


def test_add_constant_adds() -> None:
    x = torch.linspace(-1, 1, 8)
    torch.testing.assert_close(AddConstant(0.25)(x), x + 0.25, rtol=0, atol=0)


def test_clamp_defaults_to_the_unit_interval() -> None:
    x = torch.linspace(-1, 2, 13)
    torch.testing.assert_close(Clamp()(x), x.clamp(0.0, 1.0), rtol=0, atol=0)


def test_a_lone_pixel_shuffle_moves_in_both_directions() -> None:
    shuffle = nn.PixelShuffle(2)
    x = torch.rand(1, 8, 3, 3)
    for moved in (
        move_elementwise_before_pixel_shuffle(nn.Sequential(shuffle)),
        move_elementwise_before_pixel_shuffle(shuffle),  # a bare module, not a Sequential
        move_elementwise_after_pixel_shuffle(nn.Sequential(shuffle)),
    ):
        assert len(moved) == 1 and isinstance(moved[0], nn.PixelShuffle)
        torch.testing.assert_close(moved(x), shuffle(x))


def test_a_non_uniform_map_in_the_middle_is_refused() -> None:
    sequence = nn.Sequential(nn.ReLU(), nn.PReLU(8), nn.PixelShuffle(2))
    with pytest.raises(PreconditionError) as info:
        move_elementwise_after_pixel_shuffle(sequence)
    assert (info.value.rule, info.value.condition) == ("E7", UNIFORM)
    assert info.value.detail == "PReLU with 8 per-channel slopes"


@pytest.mark.parametrize("direction", ["before", "after"])
def test_the_result_shares_no_parameter_with_the_input(direction: str) -> None:
    prelu = nn.PReLU()  # one shared slope: channel-uniform
    if direction == "before":
        moved = move_elementwise_before_pixel_shuffle(nn.Sequential(nn.PixelShuffle(2), prelu))
        copied, shuffle = moved[0], moved[1]
    else:
        moved = move_elementwise_after_pixel_shuffle(nn.Sequential(prelu, nn.PixelShuffle(2)))
        shuffle, copied = moved[0], moved[1]
    with torch.no_grad():
        copied.weight.fill_(0.5)
    assert prelu.weight.item() == pytest.approx(0.25), "the input's slope changed"
    assert isinstance(shuffle, nn.PixelShuffle)


@pytest.mark.parametrize("shuffle_copy", ["before", "after"])
def test_the_shuffle_is_a_new_object(shuffle_copy: str) -> None:
    shuffle = nn.PixelShuffle(2)
    if shuffle_copy == "before":
        moved = move_elementwise_before_pixel_shuffle(nn.Sequential(shuffle, nn.ReLU()))
    else:
        moved = move_elementwise_after_pixel_shuffle(nn.Sequential(nn.ReLU(), shuffle))
    assert all(layer is not shuffle for layer in moved)


@pytest.mark.parametrize(
    ("call", "sequence", "condition", "detail"),
    [
        (
            move_elementwise_before_pixel_shuffle,
            nn.Sequential(nn.ReLU(), nn.PixelShuffle(2)),
            IS_SHUFFLE,
            "got ReLU, expected torch.nn.PixelShuffle",
        ),
        (
            move_elementwise_after_pixel_shuffle,
            nn.Sequential(nn.PixelShuffle(2), nn.ReLU()),
            IS_SHUFFLE,
            "got ReLU, expected torch.nn.PixelShuffle",
        ),
    ],
)
def test_wrong_order_refusals_name_rule_condition_and_detail(call, sequence, condition, detail):
    with pytest.raises(PreconditionError) as info:
        call(sequence)
    assert (info.value.rule, info.value.condition, info.value.detail) == ("E7", condition, detail)


def test_unknown_map_refusal_names_the_module() -> None:
    with pytest.raises(PreconditionError) as info:
        check_channel_uniform(nn.Softmax(dim=1))
    assert (info.value.rule, info.value.condition) == ("E7", UNIFORM)
    assert info.value.detail == "Softmax is not a known channel-uniform element-wise map"
