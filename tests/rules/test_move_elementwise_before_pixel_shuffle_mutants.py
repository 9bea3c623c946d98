"""Tests that kill the mutants of ``et/rules/move_elementwise_before_pixel_shuffle.py`` its own
tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): :class:`AddConstant` computed
``x − c`` and :class:`Clamp`'s defaults could change unnoticed; a lone PixelShuffle (one layer)
and a module that is not a ``Sequential`` were never moved; a non-uniform map in the *middle* of
``f₁, f₂, PS`` was never refused; the result could share parameters with the input (shallow
copies); and the rule id / detail of the refusals were not checked.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from et.contract import PreconditionError
from et.rules.move_elementwise_before_pixel_shuffle import (
    IS_SHUFFLE,
    UNIFORM,
    AddConstant,
    Clamp,
    check_channel_uniform,
    move_elementwise_after_pixel_shuffle,
    move_elementwise_before_pixel_shuffle,
)


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
