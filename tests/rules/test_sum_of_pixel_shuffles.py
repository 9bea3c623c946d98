"""G16: a scaled sum of two PixelShuffles is the PixelShuffle of the sum. Property over
factors, shapes and scales; negative tests."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from et import PreconditionError, apply_rule
from et.rules.sum_of_pixel_shuffles import SAME_FACTOR, SAME_SHAPE, sum_of_pixel_shuffles
from et.strategies import image_batches


@given(data=st.data())
def test_the_shuffle_of_the_combination_is_the_combination_of_the_shuffles(
    data: st.DataObject,
) -> None:
    factor = data.draw(st.integers(1, 3))
    channels = data.draw(st.integers(1, 2)) * factor * factor
    first = data.draw(image_batches(channels, max_size=5))
    second = torch.rand_like(first) * 4 - 2
    alpha = data.draw(st.floats(-3, 3, allow_nan=False))
    op = data.draw(st.sampled_from(["add", "sub"]))
    combine = torch.add if op == "add" else torch.sub
    expected = combine(F.pixel_shuffle(first, factor), F.pixel_shuffle(second, factor), alpha=alpha)
    scale = alpha if op == "add" else -alpha
    shapes = (first.shape, second.shape)
    got = sum_of_pixel_shuffles((factor, factor), shapes, scale)(first, second)
    assert got.shape == expected.shape
    bound = 1e-12 * (1 + first.abs().max().item() + abs(alpha) * second.abs().max().item())
    assert (got - expected).abs().max().item() <= bound


def test_registered_by_id_and_name() -> None:
    assert apply_rule("G16", (2, 2), ((4, 1, 1), (4, 1, 1)), -1.0).scale == -1.0
    assert apply_rule("sum_of_pixel_shuffles", (3, 3), (("n", 9), ("n", 9))).factor == 3


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def _refused(condition: str, *args: object) -> None:
    with pytest.raises(PreconditionError) as info:
        sum_of_pixel_shuffles(*args)
    assert info.value.rule == "G16" and info.value.condition is condition


def test_two_factors_differ_and_are_refused() -> None:
    first = torch.arange(1.0, 5.0, dtype=torch.float64).reshape(1, 4, 1, 1)
    second = torch.arange(5.0, 9.0, dtype=torch.float64).reshape(1, 1, 2, 2)
    left = F.pixel_shuffle(first, 2) + F.pixel_shuffle(second, 1)  # 1×1×2×2
    right = F.pixel_shuffle(first + second, 2)  # the sum broadcasts to 4×2×2 first
    assert left.shape != right.shape
    _refused(SAME_FACTOR, (2, 1), (first.shape, second.shape))


def test_shapes_that_only_broadcast_after_the_shuffle_are_refused() -> None:
    first = torch.rand(1, 4, 1, 1, dtype=torch.float64)
    second = torch.rand(1, 8, 1, 1, dtype=torch.float64)
    left = F.pixel_shuffle(first, 2) + F.pixel_shuffle(second, 2)  # 1×1 and 2×… broadcast
    assert left.shape == (1, 2, 2, 2)
    with pytest.raises(RuntimeError):
        F.pixel_shuffle(first + second, 2)  # 4 and 8 channels do not broadcast
    _refused(SAME_SHAPE, (2, 2), (first.shape, second.shape))
    _refused(SAME_SHAPE, (2, 2), (("n", 4, "h", "w"), ("n", 4, "w", "h")))
