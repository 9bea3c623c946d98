"""E6: PS(conv_a(a)) + PS(conv_b(b)) = PS(merged([a; b])) for 1 and 3 colours, scales 2–4."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.merge_summed_convs import SAME_OUTPUTS, merge_summed_convs
from et.strategies import ConvConfig, conv2d_modules, image_batches


@given(
    colors=st.sampled_from([1, 3]),
    scale=st.integers(2, 4),
    na=st.integers(1, 5),
    nb=st.integers(1, 4),
    geometry=st.sampled_from(
        [((3, 3), (1, 1), (1, 1)), ((1, 1), (0, 0), (1, 1)), ((3, 3), (2, 2), (2, 2))]
    ),
    data=st.data(),
)
def test_summed_after_pixel_shuffle(colors, scale, na, nb, geometry, data) -> None:
    kernel, padding, dilation = geometry
    out = colors * scale**2
    conv_a = data.draw(conv2d_modules(ConvConfig(na, out, kernel, (1, 1), padding, dilation, 1)))
    conv_b = data.draw(conv2d_modules(ConvConfig(nb, out, kernel, (1, 1), padding, dilation, 1)))
    z = data.draw(image_batches(na + nb, min_size=5, max_size=8))
    merged = merge_summed_convs(conv_a, conv_b)
    with torch.no_grad():
        expected = nn.functional.pixel_shuffle(conv_a(z[:, :na]), scale)
        expected = expected + nn.functional.pixel_shuffle(conv_b(z[:, na:]), scale)
        got = nn.functional.pixel_shuffle(merged(z), scale)
    assert torch.allclose(got, expected, rtol=0, atol=1e-10 * (expected.abs().max().item() + 1))


def test_layout_and_bias() -> None:
    conv_a, conv_b = nn.Conv2d(4, 12, 3, padding=1), nn.Conv2d(3, 12, 3, padding=1)
    merged = merge_summed_convs(conv_a, conv_b)
    assert torch.equal(merged.weight[:, :4], conv_a.weight)
    assert torch.equal(merged.weight[:, 4:], conv_b.weight)
    assert torch.allclose(merged.bias, conv_a.bias + conv_b.bias)
    assert torch.equal(apply_rule("E6", conv_a, conv_b).weight, merged.weight)


# Negative tests.


def test_geometry_mismatch_differs_and_is_refused() -> None:
    conv_a = nn.Conv2d(2, 4, 3, padding=1, dtype=torch.float64)
    conv_b = nn.Conv2d(1, 4, 3, padding=1, dilation=2, dtype=torch.float64)
    z = torch.rand(1, 3, 7, 7, dtype=torch.float64)
    naive = nn.Conv2d(3, 4, 3, padding=1, dtype=torch.float64)  # b's kernel read without dilation
    with torch.no_grad():
        naive.weight.copy_(torch.cat([conv_a.weight, conv_b.weight], 1))
        naive.bias.copy_(conv_a.bias + conv_b.bias)
        difference = naive(z) - conv_a(z[:, :2])
        assert (
            difference.shape != conv_b(z[:, 2:]).shape
            or (difference - conv_b(z[:, 2:])).abs().max() > 1e-6
        )
    with pytest.raises(PreconditionError, match=r"E6.*share kernel size, stride, padding"):
        merge_summed_convs(conv_a, conv_b)


def test_output_mismatch_and_groups_are_refused() -> None:
    with pytest.raises(PreconditionError, match="same number of outputs"):
        merge_summed_convs(nn.Conv2d(2, 4, 1), nn.Conv2d(2, 8, 1))
    with pytest.raises(PreconditionError, match="groups = 1"):
        merge_summed_convs(nn.Conv2d(2, 4, 1, groups=2), nn.Conv2d(2, 4, 1))


# Tests that kill the mutants of ``et/rules/merge_summed_convs.py`` its own tests let survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): the geometry of the merged conv
# (``padding_mode``) was not checked against a non-default value, and a refusal re-raised under
# E6 could lose its detail or rule id.


def _conv(in_ch: int, out_ch: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, padding=1, dtype=torch.float64, **kwargs)


def test_padding_mode_is_kept() -> None:
    torch.manual_seed(0)
    a, b = _conv(4, 6, padding_mode="replicate"), _conv(2, 6, padding_mode="replicate")
    merged = merge_summed_convs(a, b)
    assert merged.padding_mode == "replicate"
    x, r = torch.rand(2, 4, 5, 5, dtype=torch.float64), torch.rand(2, 2, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(merged(torch.cat([x, r], 1)), a(x) + b(r), rtol=0, atol=1e-12)


def test_different_outputs_refusal_names_rule_and_widths() -> None:
    with pytest.raises(PreconditionError) as info:
        merge_summed_convs(_conv(4, 6), _conv(2, 5))
    assert (info.value.rule, info.value.condition, info.value.detail) == (
        "E6",
        SAME_OUTPUTS,
        "6 != 5",
    )


def test_a_reraised_refusal_keeps_its_detail_under_e6() -> None:
    with pytest.raises(PreconditionError) as info:
        merge_summed_convs(_conv(4, 6), nn.Conv2d(2, 6, 5, padding=2, dtype=torch.float64))
    assert info.value.rule == "E6"
    assert info.value.detail  # what the shared check found, not dropped on the way
    assert info.value.detail in str(info.value)
