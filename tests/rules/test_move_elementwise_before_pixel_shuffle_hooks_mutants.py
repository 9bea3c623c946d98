"""A test that kills two mutants of ``et/rules/move_elementwise_before_pixel_shuffle.py`` (E7)
thought equivalent.

``copy.copy`` of the PixelShuffle (instead of ``copy.deepcopy``) gives a new object, but one that
shares its hook dictionaries with the input's shuffle: a forward hook registered on the moved
shuffle would then fire on the caller's module too. (Kept beside
``test_pixel_shuffle_commute_mutants.py`` rather than in it, which has another author.)
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from et.rules.move_elementwise_before_pixel_shuffle import (
    move_elementwise_after_pixel_shuffle,
    move_elementwise_before_pixel_shuffle,
)


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
