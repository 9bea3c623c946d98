"""Issue 25: the INT8 tests calibrated on three copies of one image (the probe generator put
the same structured image first for every seed); their helper now gives different images."""

from __future__ import annotations

import itertools

import torch

from tests.export.probe_images import probe_images


def test_the_calibration_images_differ_pairwise_and_span_the_unit_range() -> None:
    for size in (10, 11, 12):
        images = probe_images(3, size)
        assert [tuple(x.shape) for x in images] == [(1, 3, size, size)] * 3
        for a, b in itertools.combinations(images, 2):
            assert not torch.equal(a, b)
        assert all(x.amin() == 0 and x.amax() == 1 for x in images)
    assert probe_images(2, dtype=torch.float32)[1].dtype == torch.float32
