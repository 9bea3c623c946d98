"""Tests that kill the mutants of ``et/rules/nearest_as_pixel_shuffle.py`` its own tests let
survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): ``kernel_size`` was not passed on
to the repeat-interleave conv (every test used the default 1), and the refusal's rule id and
detail were not checked.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from et.contract import PreconditionError
from et.rules.nearest_as_pixel_shuffle import INTEGER_SCALE, nearest_as_pixel_shuffle


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_kernel_size_reaches_the_conv(kernel_size: int) -> None:
    upsample = nearest_as_pixel_shuffle(3, 2, kernel_size, dtype=torch.float64)
    assert upsample[0].kernel_size == (kernel_size, kernel_size)
    x = torch.rand(2, 3, 5, 4, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(upsample(x), F.interpolate(x, scale_factor=2), rtol=0, atol=0)


@pytest.mark.parametrize("scale", [0, 1.5, True, "2"])
def test_refusal_names_rule_condition_and_scale(scale) -> None:
    with pytest.raises(PreconditionError) as info:
        nearest_as_pixel_shuffle(3, scale)
    assert (info.value.rule, info.value.condition) == ("E9", INTEGER_SCALE)
    assert info.value.detail == f"scale = {scale!r}"
