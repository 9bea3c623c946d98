"""The probe generator (:mod:`et.probes`) keeps what makes it catch bugs: per-channel-distinct
structured images first, both parities and a non-square size, the low-amplitude and the
mid-grey noise batches; each property has a bug that only it catches.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from et.probes import probe_batches, probe_inputs, probe_sizes, structured_images
from et.testing import compare_outputs
from reference_models.conversions.verification import PROBE_SIZES, fuzz_inputs, verify_models


def test_structured_images_come_first_and_the_first_is_not_constant() -> None:
    batch = probe_inputs((3, 9, 10), samples=1)
    assert batch.shape == (1, 3, 9, 10)
    assert batch.amin() == 0 and batch.amax() == 1  # both ends of the domain
    assert len(batch[0].unique()) > 2


@pytest.mark.parametrize("channels", [3, 9, 27])
def test_every_non_constant_structured_image_has_distinct_channels(channels: int) -> None:
    images = structured_images(channels, 8, 11)
    non_constant = [image for image in images if image.amax() > image.amin()]
    assert len(non_constant) >= 5
    for a, b in itertools.combinations(range(channels), 2):  # the stripes: every channel
        assert not torch.equal(non_constant[0][a], non_constant[0][b]), (a, b)
    for image in non_constant[1:]:  # checkerboards and shifted patterns: the first 8
        for a, b in itertools.combinations(range(min(channels, 8)), 2):
            assert not torch.equal(image[a], image[b]), (a, b)


def test_the_first_image_has_no_flip_or_transpose_symmetry() -> None:
    image = structured_images(3, 9, 9)[0]
    for transformed in (
        image.flip(-1),
        image.flip(-2),
        image.flip(-1, -2),
        image.transpose(-1, -2),
    ):
        assert not torch.equal(image, transformed)


def test_probe_sizes_cover_both_parities_and_a_non_square_size() -> None:
    for height, width in [(12, 12), (11, 11), (16, 9)]:
        sizes = probe_sizes(height, width)
        assert {h % 2 for h, _ in sizes} == {0, 1} and {w % 2 for _, w in sizes} == {0, 1}
        assert any(h != w for h, w in sizes)
    assert {h % 2 for h, _ in PROBE_SIZES} == {0, 1}
    with pytest.raises(ValueError):
        probe_sizes(0, 4)


def test_the_batches_hold_low_amplitude_and_mid_grey_noise() -> None:
    batches = fuzz_inputs(3, samples=6, domain=(0.0, 1.0))
    assert [tuple(b.shape[-2:]) for b in batches[: len(PROBE_SIZES)]] == list(PROBE_SIZES)
    low, mid = batches[-2], batches[-1]
    assert low.amin() >= 0 and low.amax() <= 0.05 and len(low.unique()) > 100
    assert mid.amin() >= 0.4 and mid.amax() <= 0.6 and len(mid.unique()) > 100
    scaled = probe_batches(1, sizes=[(4, 4)], samples=2, domain=(-2.0, 2.0))
    assert scaled[-1].amin() >= -2 + 4 * 0.4 and scaled[-1].amax() <= -2 + 4 * 0.6


class SmoothMidGrey(nn.Module):
    """Responds only where a whole 3×3 neighbourhood lies within 0.05 of mid-grey (the flat
    unclamped region where a trained model's small errors show); ``gain`` scales it."""

    def __init__(self, gain: float) -> None:
        super().__init__()
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spread = F.max_pool2d((x - 0.5).abs(), 3, stride=1)  # valid windows only
        return 0.5 + self.gain * (0.05 - spread).relu()


def test_a_bug_only_mid_grey_noise_shows_is_caught_and_needs_that_batch() -> None:
    right, wrong = SmoothMidGrey(1.0), SmoothMidGrey(1.5)
    batches = fuzz_inputs(3, samples=12)
    without_mid_grey = compare_outputs(right, wrong, batches[:-1])
    assert without_mid_grey.max_abs_error == 0  # the premise: nothing else reaches it
    assert not verify_models(right, wrong, colors=3).within(0.01)


def test_a_channel_permutation_needs_the_per_channel_structure() -> None:
    """At one sample per size only structured images are fed; with every channel equal a
    permutation of the input channels would pass."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 2, 3, padding=1).double().eval()
    permuted = nn.Conv2d(3, 2, 3, padding=1).double().eval()
    with torch.no_grad():
        permuted.weight.copy_(conv.weight[:, [1, 2, 0]])
        permuted.bias.copy_(conv.bias)
    equal_channels = probe_inputs((1, 12, 12), samples=1).expand(1, 3, 12, 12)
    assert compare_outputs(conv, permuted, equal_channels).max_abs_error < 1e-12  # premise
    assert (
        compare_outputs(conv, permuted, probe_inputs((3, 12, 12), samples=1)).max_abs_error > 0.01
    )


@pytest.mark.parametrize("samples", [1, 2, 3, 5, 7, 8])
def test_a_batch_of_any_size_depends_on_the_seed(samples: int) -> None:
    """Issue 25: with the structured images a fixed prefix, ``samples ≤ 7`` gave one batch for
    every seed."""
    batches = [probe_inputs((3, 9, 10), samples=samples, seed=seed) for seed in range(12)]
    for a, b in itertools.combinations(range(len(batches)), 2):
        assert not torch.equal(batches[a], batches[b]), (samples, a, b)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 17, 2**31 - 1])
def test_every_seed_keeps_the_structured_images_and_their_properties(seed: int) -> None:
    batch = probe_inputs((3, 9, 9), samples=9, seed=seed, domain=(-1.0, 2.0))
    first = batch[0]  # the stripes, whatever the seed: no symmetry, distinct channels
    for transformed in (first.flip(-1), first.flip(-2), first.flip(-1, -2), first.mT):
        assert not torch.equal(first, transformed)
    for image in batch[:5]:  # the non-constant structured images: both ends, distinct channels
        assert image.amin() == -1 and image.amax() == 2
        for a, b in itertools.combinations(range(3), 2):
            assert not torch.equal(image[a], image[b])
    assert len(first.unique()) == 7  # the seven grey levels, in a drawn order
    assert torch.equal(batch[5], torch.full_like(batch[5], -1.0))  # the domain's ends
    assert torch.equal(batch[6], torch.full_like(batch[6], 2.0))
    assert all(len(image.unique()) > 100 for image in batch[7:])  # then noise
    border = [
        image[0]  # channel 0 is not shifted: a ring of one value around another
        for image in batch[1:5]
        if (image[0, 1:-1, 1:-1] == image[0, 1, 1]).all() and (image[0, 0] != image[0, 1, 1]).all()
    ]
    assert len(border) == 1  # the bright (or dark) border stays on the border


def test_the_drawn_first_image_still_catches_a_channel_permutation_for_every_seed() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 2, 3, padding=1).double().eval()
    permuted = nn.Conv2d(3, 2, 3, padding=1).double().eval()
    with torch.no_grad():
        permuted.weight.copy_(conv.weight[:, [1, 2, 0]])
        permuted.bias.copy_(conv.bias)
    for seed in range(8):
        x = probe_inputs((3, 12, 12), samples=1, seed=seed)
        assert compare_outputs(conv, permuted, x).max_abs_error > 0.01, seed
