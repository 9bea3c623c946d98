"""R9: K×K conv → 1×1 conv merge. Properties over geometries and groups; negative tests."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.conv_geometry import make_conv
from et.rules.merge_kxk_1x1 import CHANNELS, POINTWISE, TORCH_MODULES, merge_kxk_1x1
from et.strategies import ConvConfig, conv2d_modules, image_batches


@st.composite
def conv_pairs(draw: st.DrawFn, dtype: torch.dtype = torch.float64) -> tuple[nn.Conv2d, nn.Conv2d]:
    conv = draw(conv2d_modules(dtype=dtype))
    mids = conv.out_channels
    groups = draw(st.sampled_from([g for g in range(1, mids + 1) if mids % g == 0]))
    config = ConvConfig(
        in_channels=mids,
        out_channels=groups * draw(st.integers(1, 3)),
        kernel_size=(1, 1),
        stride=(1, 1),
        padding=(0, 0),
        dilation=(1, 1),
        groups=groups,
    )
    return conv, draw(conv2d_modules(config, dtype=dtype))


def _magnitude(conv: nn.Conv2d, pointwise: nn.Conv2d, x: torch.Tensor) -> float:
    """max of |P|·(|W| * |x| + |b|) + |β|: what rounding errors are relative to."""
    abs_conv, abs_pw = copy.deepcopy(conv).double(), copy.deepcopy(pointwise).double()
    with torch.no_grad():
        for module in (abs_conv, abs_pw):
            for p in module.parameters():
                p.abs_()
        return abs_pw(abs_conv(x.double().abs())).max().item()


@given(pair=conv_pairs(), data=st.data())
def test_merge_is_exact_in_float64(pair: tuple[nn.Conv2d, nn.Conv2d], data: st.DataObject) -> None:
    conv, pointwise = pair
    x = data.draw(image_batches(conv.in_channels, min_size=10, max_size=14))
    merged = merge_kxk_1x1(conv, pointwise)
    with torch.no_grad():
        expected = pointwise(conv(x))
        got = merged(x)
    assert got.dtype == torch.float64
    assert got.shape == expected.shape
    bound = 1e-12 * (_magnitude(conv, pointwise, x) + 1)
    assert (got - expected).abs().max().item() <= bound


@given(pair=conv_pairs(dtype=torch.float32), data=st.data())
def test_merge_float32_within_stated_bound(
    pair: tuple[nn.Conv2d, nn.Conv2d], data: st.DataObject
) -> None:
    # float32: both sides round sums of n = fan-in(K×K)·mids + mids terms; |error| ≲ 2n·2⁻²⁴·M
    # with M the same computation on absolute values.
    conv, pointwise = pair
    x = data.draw(image_batches(conv.in_channels, min_size=10, max_size=12, dtype=torch.float32))
    merged = merge_kxk_1x1(conv, pointwise)
    assert merged.weight.dtype == torch.float32
    with torch.no_grad():
        expected = pointwise.double()(conv.double()(x.double()))
        got = merged(x).double()
    n = conv.weight[0].numel() * pointwise.in_channels + pointwise.in_channels + 2
    assert (got - expected).abs().max().item() <= 2 * n * 2**-24 * _magnitude(conv, pointwise, x)


def test_grouped_kxk_then_dense_1x1_becomes_dense() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1, groups=2, dtype=torch.float64)
    pointwise = nn.Conv2d(6, 5, 1, dtype=torch.float64)
    merged = merge_kxk_1x1(conv, pointwise)
    assert merged.groups == 1
    x = torch.rand(1, 4, 7, 7, dtype=torch.float64) * 255
    with torch.no_grad():
        assert torch.allclose(merged(x), pointwise(conv(x)), rtol=1e-12, atol=1e-9)


def test_matching_groups_are_kept() -> None:
    conv = nn.Conv2d(4, 4, 3, groups=4, dtype=torch.float64)
    pointwise = nn.Conv2d(4, 8, 1, groups=2, dtype=torch.float64)
    assert merge_kxk_1x1(conv, pointwise).groups == 2


def test_inputs_are_not_mutated_and_bias_is_created() -> None:
    conv = nn.Conv2d(3, 4, 3, bias=True, dtype=torch.float64)
    pointwise = nn.Conv2d(4, 2, 1, bias=False, dtype=torch.float64)
    before = [copy.deepcopy(m.state_dict()) for m in (conv, pointwise)]
    merged = merge_kxk_1x1(conv, pointwise)
    for module, state in zip((conv, pointwise), before, strict=True):
        for key, value in module.state_dict().items():
            assert torch.equal(value, state[key])
    assert merged.bias is not None and torch.all(merged.bias != 0)
    no_bias = merge_kxk_1x1(nn.Conv2d(3, 4, 3, bias=False), nn.Conv2d(4, 2, 1, bias=False))
    assert no_bias.bias is None


def test_registered_by_name_and_id() -> None:
    conv = nn.Conv2d(2, 3, 3, dtype=torch.float64)
    pointwise = nn.Conv2d(3, 2, 1, dtype=torch.float64)
    assert torch.equal(
        apply_rule("R9", conv, pointwise).weight,
        apply_rule("merge_kxk_1x1", conv, pointwise).weight,
    )


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def test_padded_pointwise_differs_and_is_refused() -> None:
    torch.manual_seed(1)
    conv = nn.Conv2d(2, 3, 3, padding=1, dtype=torch.float64)
    padded = nn.Conv2d(3, 2, 1, padding=1, dtype=torch.float64)
    unpadded = make_conv(padded.weight.detach(), padded.bias.detach())
    candidate = merge_kxk_1x1(conv, unpadded)
    candidate.padding = (2, 2)  # the only way to match the output size
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        assert (candidate(x) - padded(conv(x))).abs().max() > 1e-3
    with pytest.raises(PreconditionError, match="padding 0"):
        merge_kxk_1x1(conv, padded)


def test_strided_or_wide_pointwise_is_refused() -> None:
    conv = nn.Conv2d(2, 3, 3)
    with pytest.raises(PreconditionError, match="stride 1"):
        merge_kxk_1x1(conv, nn.Conv2d(3, 2, 1, stride=2))
    with pytest.raises(PreconditionError, match="1×1"):
        merge_kxk_1x1(conv, nn.Conv2d(3, 2, 3))


def test_channel_mismatch_is_refused() -> None:
    with pytest.raises(PreconditionError, match="in_channels"):
        merge_kxk_1x1(nn.Conv2d(2, 3, 3), nn.Conv2d(4, 2, 1))


def test_nonlinearity_between_differs() -> None:
    # Structural precondition: the rule cannot see a ReLU between; show what merging loses.
    torch.manual_seed(2)
    conv = nn.Conv2d(2, 3, 3, dtype=torch.float64)
    pointwise = nn.Conv2d(3, 2, 1, dtype=torch.float64)
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        with_relu = pointwise(torch.relu(conv(x)))
        assert (merge_kxk_1x1(conv, pointwise)(x) - with_relu).abs().max() > 1e-3


# Tests that kill the mutants of ``et/rules/merge_kxk_1x1.py`` (R9) its own tests let survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
# text only (a wrong rule id, a changed condition or a missing detail passed); a non-conv second
# module (which must be refused, not crash) and convs of two dtypes were never tried.


def _triple(conv, pointwise) -> tuple[str, str, str]:
    with pytest.raises(PreconditionError) as info:
        merge_kxk_1x1(conv, pointwise)
    return info.value.rule, info.value.condition, info.value.detail


@pytest.mark.parametrize(
    ("first", "second", "detail"),
    [
        (nn.Linear(2, 3), nn.Conv2d(3, 4, 1), "got Linear, expected torch.nn.Conv2d"),
        (nn.Conv2d(2, 3, 3), nn.Linear(3, 4), "got Linear, expected torch.nn.Conv2d"),
    ],
)
def test_non_conv_is_refused_naming_its_type(first, second, detail: str) -> None:
    assert _triple(first, second) == ("R9", TORCH_MODULES, detail)


@pytest.mark.parametrize(
    ("pointwise", "condition", "detail"),
    [
        (nn.Conv2d(3, 4, (1, 3)), POINTWISE, "its kernel is (1, 3)"),
        (nn.Conv2d(3, 4, 1, stride=(1, 2)), POINTWISE, "its stride is (1, 2)"),
        (
            nn.Conv2d(3, 4, 1, padding=(0, 1)),
            POINTWISE,
            "its padding is (0, 1): it would read zeros around the K×K output",
        ),
        (nn.Conv2d(5, 4, 1), CHANNELS, "5 != 3"),
    ],
    ids=["kernel", "stride", "padding", "channels"],
)
def test_bad_pointwise_is_refused_with_condition_and_detail(
    pointwise: nn.Conv2d, condition: str, detail: str
) -> None:
    assert _triple(nn.Conv2d(2, 3, 3), pointwise) == ("R9", condition, detail)


@pytest.mark.parametrize("dtypes", [(torch.float32, torch.float64), (torch.float64, torch.float32)])
def test_convs_of_two_dtypes_merge_in_the_kxk_convs_dtype(dtypes) -> None:
    torch.manual_seed(4)
    conv = nn.Conv2d(2, 3, 3, padding=1, dtype=dtypes[0])
    pointwise = nn.Conv2d(3, 4, 1, dtype=dtypes[1])
    merged = merge_kxk_1x1(conv, pointwise)
    assert merged.weight.dtype == dtypes[0] and merged.bias.dtype == dtypes[0]
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        expected = pointwise(conv(x.to(dtypes[0])).to(dtypes[1])).double()
        got = merged(x.to(dtypes[0])).double()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
