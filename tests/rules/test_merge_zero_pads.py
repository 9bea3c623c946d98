"""G15: two zero pads in a row are one. Property over widths and shapes; negative tests."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from et import PreconditionError, apply_rule
from et.rules.merge_zero_pads import NON_NEGATIVE, ZERO_VALUES, merge_zero_pads
from et.strategies import image_batches

WIDTHS = st.lists(st.integers(0, 3), min_size=2, max_size=6).filter(lambda w: len(w) % 2 == 0)


@given(data=st.data())
def test_two_zero_pads_are_one_with_the_widths_added(data: st.DataObject) -> None:
    x = data.draw(image_batches(data.draw(st.integers(1, 3)), max_size=5))
    inner, outer = data.draw(WIDTHS), data.draw(WIDTHS)
    merged = merge_zero_pads(inner, outer)
    expected = F.pad(F.pad(x, inner), outer)
    got = merged(x)
    assert got.shape == expected.shape
    assert torch.equal(got, expected)  # zeros and copies: exact


def test_registered_by_id_and_name() -> None:
    assert apply_rule("G15", (1, 1), (0, 0, 2, 2)).widths == (1, 1, 2, 2)
    assert apply_rule("merge_zero_pads", (1, 2, 3, 4), (1,) * 2).widths == (2, 3, 3, 4)


# Negative tests: each precondition broken → the two sides differ and the rule refuses.

X = torch.arange(1.0, 13.0, dtype=torch.float64).reshape(1, 1, 3, 4)


def _refused(condition: str, *args: object) -> None:
    with pytest.raises(PreconditionError) as info:
        merge_zero_pads(*args)
    assert info.value.rule == "G15" and info.value.condition is condition


def test_a_pad_of_another_value_differs_and_is_refused() -> None:
    two = F.pad(F.pad(X, (1, 1, 1, 1), value=2.0), (1, 1, 1, 1))
    assert (two - F.pad(X, (2, 2, 2, 2))).abs().max() == 2.0
    _refused(ZERO_VALUES, (1, 1, 1, 1), (1, 1, 1, 1), (2.0, 0.0))
    _refused(ZERO_VALUES, (1, 1, 1, 1), (1, 1, 1, 1), (0.0, -1.0))


def test_a_crop_differs_and_is_refused() -> None:
    cropped_then_padded = F.pad(F.pad(X, (-1, -1)), (1, 1))
    assert cropped_then_padded.shape == X.shape
    assert (cropped_then_padded - X).abs().max() > 0  # the cropped columns are zeros now
    _refused(NON_NEGATIVE, (-1, -1), (1, 1))
    _refused(NON_NEGATIVE, (1, 1), (0, -1))
