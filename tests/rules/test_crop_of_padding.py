"""R19: the crop that removes a constant padding is the identity. Property in float64 (torch's
own pad and slicing as the oracle); one negative test per precondition."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.crop_of_padding import EXACT_CROP, NONNEGATIVE, crop_of_padding
from et.strategies import image_batches


def _end(after: int) -> int | None:
    return -after if after else None


@given(
    data=st.data(),
    pads=st.lists(st.integers(0, 3), min_size=4, max_size=4),
    value=st.floats(-10, 10),
)
def test_crop_of_padding_is_the_identity_in_float64(
    data: st.DataObject, pads: list[int], value: float
) -> None:
    left, right, top, bottom = pads
    y = data.draw(image_batches(data.draw(st.integers(1, 3)), min_size=1, max_size=7))
    crops = {-2: (top, _end(bottom), 1), -1: (left, _end(right), 1)}
    identity = crop_of_padding(pads, crops)
    assert isinstance(identity, nn.Identity)
    cropped = F.pad(y, pads, value=value)[..., top : _end(bottom), left : _end(right)]
    assert torch.equal(cropped, identity(y))


def test_width_only_padding_and_the_captured_end_are_accepted() -> None:
    y = torch.rand(1, 2, 4, 5, dtype=torch.float64)
    # x[..., 2:] is captured with end 2⁶³ − 1: "to the end"
    crop_of_padding([2, 0], {-1: (2, 2**63 - 1, 1)})
    assert torch.equal(F.pad(y, [2, 0], value=3.0)[..., 2:], y)
    assert isinstance(apply_rule("R19", [1, 1, 0, 0], {-1: (1, -1, 1)}), nn.Identity)


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def _refusal(pads, crops) -> PreconditionError:
    with pytest.raises(PreconditionError) as info:
        crop_of_padding(pads, crops)
    assert info.value.rule == "R19"
    return info.value


def test_negative_padding_differs_and_is_refused() -> None:
    y = torch.rand(1, 1, 4, 4, dtype=torch.float64)
    shrunk = F.pad(y, [-1, -1, -1, -1])
    assert shrunk[..., -1:1, -1:1].shape != y.shape  # the "crop" cannot give y back
    assert _refusal([-1, -1, -1, -1], {-2: (-1, 1, 1), -1: (-1, 1, 1)}).condition is NONNEGATIVE


@pytest.mark.parametrize(
    "crops",
    [
        {-2: (1, -1, 1), -1: (2, -1, 1)},  # one column too far
        {-2: (1, -1, 1), -1: (1, None, 1)},  # keeps the ring on the right
        {-2: (1, -1, 1)},  # the width not cropped at all
        {-2: (1, -1, 2), -1: (1, -1, 1)},  # every other row
    ],
)
def test_crop_other_than_the_padding_differs_and_is_refused(crops) -> None:
    y = torch.rand(1, 2, 5, 6, dtype=torch.float64)
    padded = F.pad(y, [1, 1, 1, 1], value=0.5)
    rows, cols = (slice(*crops.get(axis, (None, None, 1))) for axis in (-2, -1))
    cropped = padded[..., rows, cols]
    assert cropped.shape != y.shape or not torch.equal(cropped, y)
    assert _refusal([1, 1, 1, 1], crops).condition is EXACT_CROP


def test_crop_of_another_axis_is_refused() -> None:
    assert _refusal([1, 1], {1: (1, -1, 1), -1: (1, -1, 1)}).condition is EXACT_CROP
