"""Tests that kill the mutants of ``et/conv_geometry.py`` (the rules' shared geometry helpers)
their callers' tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): no rule test used a conv built with
``padding="valid"`` or ``padding="same"`` (PyTorch's string paddings, which
:func:`~et.conv_geometry.geometry_of` resolves to integers), and the zero bias of a bias-less
float64 conv was never checked for its dtype.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from et.conv_geometry import conv_bias, geometry_of
from et.rules.merge_parallel_convs import merge_parallel_convs


@pytest.mark.parametrize(
    ("kernel", "dilation", "padding"),
    [(3, 1, (1, 1)), ((3, 5), 1, (1, 2)), (3, (2, 3), (2, 3)), ((1, 5), (1, 2), (0, 4))],
)
def test_same_padding_resolves_to_half_the_dilated_span(kernel, dilation, padding) -> None:
    conv = nn.Conv2d(2, 2, kernel, dilation=dilation, padding="same")
    assert geometry_of(conv).padding == padding


def test_valid_padding_resolves_to_zero() -> None:
    assert geometry_of(nn.Conv2d(2, 2, (3, 5), padding="valid")).padding == (0, 0)


def test_asymmetric_same_padding_is_an_error() -> None:
    with pytest.raises(ValueError, match="pads asymmetrically"):
        geometry_of(nn.Conv2d(2, 2, (3, 4), padding="same"))


def test_string_padded_branches_merge_exactly() -> None:
    """A rule reads the resolved geometry: a 3×3 and a 1×1 branch padded "same" merge (R3) into
    their sum, and so does a lone 3×3 branch padded "valid"."""
    torch.manual_seed(0)
    same = [nn.Conv2d(2, 3, k, padding="same", dtype=torch.float64) for k in (3, 1)]
    valid = [nn.Conv2d(2, 3, 3, padding="valid", dtype=torch.float64)]
    x = torch.rand(1, 2, 6, 7, dtype=torch.float64)
    for convs in (same, valid):
        merged = merge_parallel_convs(convs)
        with torch.no_grad():
            expected = sum(conv(x) for conv in convs)
            torch.testing.assert_close(merged(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_zero_bias_of_a_bias_free_conv_has_the_convs_dtype(dtype: torch.dtype) -> None:
    bias = conv_bias(nn.Conv2d(2, 3, 1, bias=False, dtype=dtype))
    assert bias.dtype == dtype
    assert torch.equal(bias, torch.zeros(3, dtype=dtype))


def test_a_geometry_field_that_is_not_a_pair_is_named_in_the_error() -> None:
    """``stride`` set by hand to three entries: the error names the value found."""
    conv = nn.Conv2d(2, 2, 3)
    conv.stride = (1, 1, 1)
    with pytest.raises(ValueError, match=r"^expected an int or a pair, got \(1, 1, 1\)$"):
        geometry_of(conv)
