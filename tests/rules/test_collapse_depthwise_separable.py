"""R14: depthwise-separable collapse. Properties over geometries, multipliers; negatives."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.collapse_depthwise_separable import (
    DEPTHWISE,
    TORCH_MODULES,
    check_depthwise_separable,
    collapse_depthwise_separable,
)
from et.rules.merge_1x1_kxk import merge_1x1_kxk
from et.strategies import ConvConfig, conv2d_modules, conv_configs, image_batches


@st.composite
def separable_pairs(
    draw: st.DrawFn, dtype: torch.dtype = torch.float64
) -> tuple[nn.Conv2d, nn.Conv2d]:
    geometry = draw(conv_configs(max_groups=1))
    channels = draw(st.integers(1, 4))
    multiplier = draw(st.integers(1, 3))
    depthwise_config = ConvConfig(
        in_channels=channels,
        out_channels=channels * multiplier,
        kernel_size=geometry.kernel_size,
        stride=geometry.stride,
        padding=geometry.padding,
        dilation=geometry.dilation,
        groups=channels,
    )
    pointwise_config = ConvConfig(
        in_channels=channels * multiplier,
        out_channels=draw(st.integers(1, 5)),
        kernel_size=(1, 1),
        stride=(1, 1),
        padding=(0, 0),
        dilation=(1, 1),
        groups=1,
    )
    return (
        draw(conv2d_modules(depthwise_config, dtype=dtype)),
        draw(conv2d_modules(pointwise_config, dtype=dtype)),
    )


@given(pair=separable_pairs(), border=st.sampled_from(["bias", "zeros"]), data=st.data())
def test_collapse_is_exact_in_float64(
    pair: tuple[nn.Conv2d, nn.Conv2d], border: str, data: st.DataObject
) -> None:
    depthwise, pointwise = pair
    x = data.draw(image_batches(depthwise.in_channels, min_size=10, max_size=14))
    merged = collapse_depthwise_separable(depthwise, pointwise, border=border)
    assert merged.groups == 1
    with torch.no_grad():
        expected = pointwise(depthwise(x))
        got = merged(x)
    assert got.shape == expected.shape and got.dtype == torch.float64
    scale = expected.abs().max().item() + 1
    # the border ring (where the depthwise reads its zero padding) is as exact as the interior
    assert (got - expected).abs().max().item() <= 1e-11 * scale


@given(pair=separable_pairs(dtype=torch.float32), data=st.data())
def test_collapse_float32_within_stated_bound(
    pair: tuple[nn.Conv2d, nn.Conv2d], data: st.DataObject
) -> None:
    # float32: |error| ≤ 2n·2⁻²⁴·M, n = kh·kw·C·m + C·m + 2 terms, M the computation on |·|.
    depthwise, pointwise = pair
    x = data.draw(
        image_batches(depthwise.in_channels, min_size=10, max_size=12, dtype=torch.float32)
    )
    merged = collapse_depthwise_separable(depthwise, pointwise)
    abs_dw, abs_pw = copy.deepcopy(depthwise).double(), copy.deepcopy(pointwise).double()
    with torch.no_grad():
        for module in (abs_dw, abs_pw):
            for p in module.parameters():
                p.abs_()
        magnitude = abs_pw(abs_dw(x.double().abs())).max().item()
        expected = copy.deepcopy(pointwise).double()(copy.deepcopy(depthwise).double()(x.double()))
        got = merged(x).double()
    n = depthwise.weight[0].numel() * pointwise.in_channels + pointwise.in_channels + 2
    assert (got - expected).abs().max().item() <= 2 * n * 2**-24 * magnitude


def test_depthwise_bias_is_exact_at_the_border_x255() -> None:
    # A large depthwise bias and a wide zero padding: every border pixel still matches.
    torch.manual_seed(0)
    depthwise = nn.Conv2d(3, 6, 5, padding=4, groups=3, dtype=torch.float64)
    pointwise = nn.Conv2d(6, 4, 1, dtype=torch.float64)
    with torch.no_grad():
        depthwise.bias.fill_(50.0)
    x = torch.rand(1, 3, 6, 7, dtype=torch.float64) * 255
    merged = collapse_depthwise_separable(depthwise, pointwise)
    with torch.no_grad():
        assert torch.allclose(merged(x), pointwise(depthwise(x)), rtol=1e-12, atol=1e-9)


def test_registered_by_name_and_id_and_inputs_untouched() -> None:
    depthwise = nn.Conv2d(2, 4, 3, groups=2, dtype=torch.float64)
    pointwise = nn.Conv2d(4, 3, 1, dtype=torch.float64)
    before = copy.deepcopy(depthwise.state_dict())
    a = apply_rule("R14", depthwise, pointwise)
    b = apply_rule("collapse_depthwise_separable", depthwise, pointwise)
    assert torch.equal(a.weight, b.weight)
    for key, value in depthwise.state_dict().items():
        assert torch.equal(value, before[key])


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def test_nonlinearity_between_differs() -> None:
    torch.manual_seed(1)
    depthwise = nn.Conv2d(2, 2, 3, padding=1, groups=2, dtype=torch.float64)
    pointwise = nn.Conv2d(2, 3, 1, dtype=torch.float64)
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        with_relu = pointwise(torch.relu(depthwise(x)))
        merged = collapse_depthwise_separable(depthwise, pointwise)
        assert (merged(x) - with_relu).abs().max() > 1e-3


def test_reverse_order_needs_bias_padding() -> None:
    # 1×1 first, then a zero-padded depthwise: a merged conv pads x, not the 1×1 output, so the
    # border ring differs by the 1×1 bias seen through the padded taps. That order is R7's.
    torch.manual_seed(2)
    pointwise = nn.Conv2d(2, 2, 1, dtype=torch.float64)
    depthwise = nn.Conv2d(2, 2, 3, padding=1, groups=2, dtype=torch.float64)
    with torch.no_grad():
        pointwise.bias.copy_(torch.tensor([3.0, -2.0]))
    merged = merge_1x1_kxk(pointwise, depthwise, border="bias")
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        gap = (merged(x) - depthwise(pointwise(x))).abs()
    assert gap[..., 1:-1, 1:-1].max() < 1e-12
    assert gap[..., 0, :].min() > 1e-6
    with pytest.raises(PreconditionError, match="depthwise"):
        collapse_depthwise_separable(pointwise, depthwise)


def test_dense_first_conv_is_refused() -> None:
    with pytest.raises(PreconditionError, match="depthwise"):
        collapse_depthwise_separable(nn.Conv2d(2, 2, 3), nn.Conv2d(2, 2, 1))


def test_bad_pointwise_and_border_are_refused() -> None:
    depthwise = nn.Conv2d(2, 2, 3, groups=2)
    with pytest.raises(PreconditionError, match="padding 0"):
        collapse_depthwise_separable(depthwise, nn.Conv2d(2, 2, 1, padding=1))
    with pytest.raises(PreconditionError, match="in_channels"):
        collapse_depthwise_separable(depthwise, nn.Conv2d(3, 2, 1))
    with pytest.raises(PreconditionError, match="border"):
        collapse_depthwise_separable(depthwise, nn.Conv2d(2, 2, 1), border="reflect")


# Tests that kill the mutants of ``et/rules/collapse_depthwise_separable.py`` (R14) its own tests
# let survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
# text only (a wrong rule id, a changed condition or a missing detail passed); a pointwise conv
# that breaks only one of "1×1", "stride 1", "padding 0" was never tried, nor a non-conv second
# module; :func:`check_depthwise_separable`'s default border was never used.


def _depthwise() -> nn.Conv2d:
    return nn.Conv2d(3, 6, 3, padding=1, groups=3)


def _triple(depthwise, pointwise, **kwargs) -> tuple[str, str, str]:
    with pytest.raises(PreconditionError) as info:
        collapse_depthwise_separable(depthwise, pointwise, **kwargs)
    return info.value.rule, info.value.condition, info.value.detail


def test_default_border_is_accepted() -> None:
    check_depthwise_separable(_depthwise(), nn.Conv2d(6, 4, 1))


@pytest.mark.parametrize(
    ("first", "second", "detail"),
    [
        (nn.Linear(3, 6), nn.Conv2d(6, 4, 1), "got Linear, expected torch.nn.Conv2d"),
        (_depthwise(), nn.Linear(6, 4), "got Linear, expected torch.nn.Conv2d"),
    ],
)
def test_non_conv_is_refused_naming_its_type(first, second, detail: str) -> None:
    assert _triple(first, second) == ("R14", TORCH_MODULES, detail)


def test_dense_first_conv_is_refused_with_its_geometry() -> None:
    assert _triple(nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 4, 1)) == (
        "R14",
        DEPTHWISE,
        "groups=1, in_channels=3, out_channels=6",
    )


@pytest.mark.parametrize(
    ("pointwise", "detail"),
    [
        (nn.Conv2d(6, 4, 3), "kernel (3, 3), stride (1, 1), padding (0, 0)"),
        (nn.Conv2d(6, 4, 1, stride=2), "kernel (1, 1), stride (2, 2), padding (0, 0)"),
        (nn.Conv2d(6, 4, 1, padding=1), "kernel (1, 1), stride (1, 1), padding (1, 1)"),
    ],
    ids=["3x3", "stride-2", "padded"],
)
def test_second_conv_breaking_one_condition_is_refused(pointwise: nn.Conv2d, detail: str) -> None:
    assert _triple(_depthwise(), pointwise) == (
        "R14",
        "the second convolution is 1×1 with stride 1 and padding 0",
        detail,
    )


def test_channel_mismatch_is_refused_with_both_counts() -> None:
    assert _triple(_depthwise(), nn.Conv2d(5, 4, 1)) == (
        "R14",
        "pointwise.in_channels == depthwise.out_channels",
        "5 != 6",
    )


def test_unknown_border_is_refused() -> None:
    assert _triple(_depthwise(), nn.Conv2d(6, 4, 1), border="reflect") == (
        "R14",
        "border is 'bias' or 'zeros'",
        "border='reflect'",
    )
