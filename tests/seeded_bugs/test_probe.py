"""Tests that kill the mutants of ``et/probes.py`` (the checker's inputs) its own tests let
survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): the probes were tested through the
checker's verdicts, which hold for many other inputs too, so the exact construction was never
pinned: the stand-in bounds of an infinite domain, how many images of which size each batch
holds, that every random draw comes from the seeded generator (never the global one), the
per-size seeds, the noise amplitudes and dtypes, and the refusals' messages.
"""

from __future__ import annotations

import math

import pytest
import torch

from et.probes import finite_bounds, probe_batches, probe_inputs, probe_sizes


def test_infinite_domain_ends_are_replaced_twenty_wide() -> None:
    assert finite_bounds((0.0, 1.0)) == (0.0, 1.0)
    assert finite_bounds((-math.inf, math.inf)) == (-10.0, 10.0)
    assert finite_bounds((-math.inf, 2.0)) == (-18.0, 2.0)
    assert finite_bounds((3.0, math.inf)) == (3.0, 23.0)


def test_probe_sizes_and_their_refusal() -> None:
    assert probe_sizes(1, 1) == ((1, 1), (2, 4))
    for height, width in ((0, 5), (5, 0)):
        with pytest.raises(ValueError) as raised:
            probe_sizes(height, width)
        assert str(raised.value) == f"the probe size {height}×{width} must be positive"


def test_probe_inputs_draw_from_their_own_seeded_generator() -> None:
    torch.manual_seed(1)
    first = probe_inputs((3, 4, 5))
    torch.manual_seed(2)
    second = probe_inputs((3, 4, 5))
    assert first.shape == (8, 3, 4, 5) and first.dtype == torch.float64
    assert torch.equal(first, second)
    assert not torch.equal(first[7], probe_inputs((3, 4, 5), seed=1)[7])
    noise = probe_inputs((3, 4, 5), samples=9)[7:]
    assert not torch.equal(noise, noise.float().double())  # drawn in float64


def test_probe_batches_layout() -> None:
    torch.manual_seed(1)
    batches = probe_batches(3)
    torch.manual_seed(2)
    again = probe_batches(3)
    assert [tuple(b.shape) for b in batches] == [
        (8, 3, 12, 12),
        (8, 3, 13, 15),
        (4, 3, 12, 12),
        (4, 3, 12, 12),
    ]
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))
    assert torch.equal(batches[0], probe_inputs((3, 12, 12), seed=0))
    assert torch.equal(batches[1], probe_inputs((3, 13, 15), seed=1))
    shifted = probe_batches(3, seed=4)
    assert torch.equal(shifted[1], probe_inputs((3, 13, 15), seed=5))
    # the noise batches: one generator seeded with seed + number of sizes, low amplitude first
    generator = torch.Generator().manual_seed(2)
    low = torch.rand((4, 3, 12, 12), generator=generator, dtype=torch.float64)
    mid = torch.rand((4, 3, 12, 12), generator=generator, dtype=torch.float64)
    assert torch.equal(batches[2], 0.05 * low)
    assert torch.equal(batches[3], 0.4 + 0.2 * mid)


def test_probe_batches_pass_samples_domain_and_dtype_on() -> None:
    assert [b.shape[0] for b in probe_batches(3, samples=9)] == [9, 9, 4, 4]
    assert [b.shape[0] for b in probe_batches(3, samples=1)] == [1, 1, 1, 1]
    scaled = probe_batches(3, domain=(2.0, 4.0))
    assert all(b.min() >= 2.0 and b.max() <= 4.0 for b in scaled)
    assert scaled[0].max() == 4.0 and scaled[1].max() == 4.0
    assert all(b.dtype == torch.float32 for b in probe_batches(3, dtype=torch.float32))


def test_probe_batches_refusals() -> None:
    with pytest.raises(ValueError) as raised:
        probe_batches(3, samples=0)
    assert str(raised.value) == "samples=0 must be at least 1"
    with pytest.raises(ValueError) as raised:
        probe_batches(3, sizes=())
    assert str(raised.value) == "at least one probe size is needed"
