"""The conversion strategies draw what they claim: the drawn seed reaches the images, so a
property "for any input" sees different inputs, not one fixed batch."""

from __future__ import annotations

import torch
from conversion_strategies import unit_images
from hypothesis import find, settings


def test_two_seeds_give_different_batches_image_by_image() -> None:
    from conversion_strategies import UNIT_SAMPLES, unit_batch

    first = unit_batch(3, 5, 6, 1.0, seed=0, dtype=torch.float64)
    second = unit_batch(3, 5, 6, 1.0, seed=1, dtype=torch.float64)
    assert first.shape == (UNIT_SAMPLES, 3, 5, 6)
    assert torch.equal(first[5:7], second[5:7])  # the domain's ends: constants by definition
    for index in [*range(5), 7, 8]:  # every other structured image, then the noise
        assert not torch.equal(first[index], second[index]), index


def test_the_strategy_draws_more_than_one_batch_of_a_given_size() -> None:
    """On the base commit the drawn seed was never used: every 3×3 [0, 1] batch was equal."""
    seen: dict[tuple[int, ...], torch.Tensor] = {}

    def another_batch_of_a_seen_shape(x: torch.Tensor) -> bool:
        if x.shape[-2:] != (3, 3):
            return False
        return not torch.equal(seen.setdefault(tuple(x.shape), x), x)

    other = find(
        unit_images(1, highs=(1.0,)),
        another_batch_of_a_seen_shape,
        settings=settings(max_examples=500, database=None),
    )
    assert other.amin() >= 0 and other.amax() <= 1
