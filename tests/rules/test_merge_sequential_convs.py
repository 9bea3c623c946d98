"""R8: sequential K₁ → K₂ convolutions. Properties over geometries and groups; negatives."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.merge_sequential_convs import TORCH_MODULES, merge_sequential_convs
from et.strategies import ConvConfig, conv2d_modules, image_batches


@st.composite
def conv_chains(draw: st.DrawFn, dtype: torch.dtype = torch.float64) -> tuple[nn.Conv2d, nn.Conv2d]:
    """Any first conv, then a second conv without padding (kernels 1–4, strides, dilations,
    groups dividing the middle channels)."""
    first = draw(conv2d_modules(dtype=dtype, kernel_sizes=(1, 2, 3, 4), max_padding=2))
    mids = first.out_channels
    groups = draw(st.sampled_from([g for g in range(1, mids + 1) if mids % g == 0]))
    config = ConvConfig(
        in_channels=mids,
        out_channels=groups * draw(st.integers(1, 2)),
        kernel_size=(draw(st.integers(1, 4)), draw(st.integers(1, 4))),
        stride=(draw(st.sampled_from([1, 2])),) * 2,
        padding=(0, 0),
        dilation=(draw(st.sampled_from([1, 2])),) * 2,
        groups=groups,
    )
    return first, draw(conv2d_modules(config, dtype=dtype))


def _min_size(first: nn.Conv2d, second: nn.Conv2d) -> int:
    """An input size the chain accepts (ignoring the first padding)."""
    return max(
        d1 * (k1 - 1) + 1 + s1 * d2 * (k2 - 1)
        for k1, d1, s1, k2, d2 in zip(
            first.kernel_size,
            first.dilation,
            first.stride,
            second.kernel_size,
            second.dilation,
            strict=True,
        )
    )


def _abs_chain(first: nn.Conv2d, second: nn.Conv2d, x: torch.Tensor) -> float:
    """max of |W₂| * (|W₁| * |x| + |b₁|) + |b₂|: what rounding errors are relative to."""
    a, b = copy.deepcopy(first).double(), copy.deepcopy(second).double()
    with torch.no_grad():
        for module in (a, b):
            for p in module.parameters():
                p.abs_()
        return b(a(x.double().abs())).max().item()


@given(pair=conv_chains(), data=st.data())
def test_merge_is_exact_in_float64(pair: tuple[nn.Conv2d, nn.Conv2d], data: st.DataObject) -> None:
    first, second = pair
    size = _min_size(first, second)
    x = data.draw(image_batches(first.in_channels, min_size=size, max_size=size + 5))
    merged = merge_sequential_convs(first, second)
    with torch.no_grad():
        expected, got = second(first(x)), merged(x)
    assert got.shape == expected.shape and got.dtype == torch.float64
    assert (got - expected).abs().max().item() <= 1e-12 * (_abs_chain(first, second, x) + 1)


@given(pair=conv_chains(dtype=torch.float32), data=st.data())
def test_merge_float32_within_stated_bound(
    pair: tuple[nn.Conv2d, nn.Conv2d], data: st.DataObject
) -> None:
    # float32: the chain rounds a fan-in sum in each conv (n₁, n₂ terms); each merged weight is
    # a sum of ≤ n₂ products and the merged conv a sum of n₃ terms. Every error is relative to
    # M = |W₂| * (|W₁| * |x| + |b₁|) + |b₂|: |error| ≤ 2·(n₁ + 2n₂ + n₃)·2⁻²⁴·M.
    first, second = pair
    size = _min_size(first, second)
    x = data.draw(
        image_batches(first.in_channels, min_size=size, max_size=size + 3, dtype=torch.float32)
    )
    merged = merge_sequential_convs(first, second)
    assert merged.weight.dtype == torch.float32
    with torch.no_grad():
        expected = copy.deepcopy(second).double()(copy.deepcopy(first).double()(x.double()))
        got = merged(x).double()
    n1, n2 = first.weight[0].numel() + 1, second.weight[0].numel() + 1
    n3 = merged.weight[0].numel() + 1
    bound = 2 * (n1 + 2 * n2 + n3) * 2**-24 * _abs_chain(first, second, x)
    assert (got - expected).abs().max().item() <= bound


def test_paper_case_3x3_then_3x3_is_5x5() -> None:
    torch.manual_seed(0)
    first = nn.Conv2d(3, 8, 3, padding=2, dtype=torch.float64)
    second = nn.Conv2d(8, 4, 3, dtype=torch.float64)
    merged = merge_sequential_convs(first, second)
    assert merged.kernel_size == (5, 5) and merged.padding == (2, 2)
    x = torch.rand(2, 3, 9, 7, dtype=torch.float64) * 255
    with torch.no_grad():
        assert torch.allclose(merged(x), second(first(x)), rtol=1e-12, atol=1e-8)


def test_groups_become_their_gcd() -> None:
    torch.manual_seed(1)
    for g1, g2, expected in ((2, 2, 2), (2, 3, 1), (4, 2, 2)):
        first = nn.Conv2d(4, 12, 3, padding=1, groups=g1, dtype=torch.float64)
        second = nn.Conv2d(12, 6, (2, 3), groups=g2, dtype=torch.float64)
        merged = merge_sequential_convs(first, second)
        assert merged.groups == expected
        x = torch.rand(1, 4, 7, 8, dtype=torch.float64)
        with torch.no_grad():
            assert torch.allclose(merged(x), second(first(x)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_first_padding_mode_carries_over(mode: str) -> None:
    torch.manual_seed(2)
    first = nn.Conv2d(2, 3, 3, padding=1, padding_mode=mode, dtype=torch.float64)
    second = nn.Conv2d(3, 2, 2, dtype=torch.float64)
    merged = merge_sequential_convs(first, second)
    x = torch.rand(1, 2, 6, 5, dtype=torch.float64)
    assert merged.padding_mode == mode
    with torch.no_grad():
        assert torch.allclose(merged(x), second(first(x)), rtol=1e-12, atol=1e-12)


def test_inputs_are_not_mutated_and_bias_free_stays_bias_free() -> None:
    first = nn.Conv2d(2, 3, 3, bias=False)
    second = nn.Conv2d(3, 2, 3, bias=False)
    before = copy.deepcopy(first.state_dict()), copy.deepcopy(second.state_dict())
    assert merge_sequential_convs(first, second).bias is None
    for module, state in zip((first, second), before, strict=True):
        for key, value in module.state_dict().items():
            assert torch.equal(value, state[key])


def test_registered_by_name_and_id() -> None:
    first, second = nn.Conv2d(2, 3, 3), nn.Conv2d(3, 2, 3)
    assert torch.equal(
        apply_rule("R8", first, second).weight,
        apply_rule("merge_sequential_convs", first, second).weight,
    )


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def test_same_padding_differs_on_the_border_ring_and_is_refused() -> None:
    torch.manual_seed(3)
    first = nn.Conv2d(2, 3, 3, padding=1, dtype=torch.float64)
    second = nn.Conv2d(3, 2, 3, padding=1, dtype=torch.float64)
    valid_second = copy.deepcopy(second)
    valid_second.padding = (0, 0)
    # what a naive merge would build: the merged kernel with padding p₁ + p₂ (same size out)
    naive = merge_sequential_convs(first, valid_second)
    naive.padding = (2, 2)
    x = torch.rand(1, 2, 8, 8, dtype=torch.float64) * 255
    with torch.no_grad():
        gap = (naive(x) - second(first(x))).abs()
    assert gap.shape[-2:] == (8, 8)
    assert gap[:, :, 1:-1, 1:-1].max() < 1e-9  # the interior agrees
    assert gap[:, :, 0, :].min() > 1e-6 and gap[:, :, :, -1].min() > 1e-6  # the ring does not
    with pytest.raises(PreconditionError, match="the second conv reads no padded value"):
        merge_sequential_convs(first, second)


def test_nonlinearity_between_differs() -> None:
    # The rule cannot see a nonlinearity (the caller asserts there is none); show the damage.
    torch.manual_seed(4)
    first, second = nn.Conv2d(2, 3, 3, dtype=torch.float64), nn.Conv2d(3, 2, 3, dtype=torch.float64)
    merged = merge_sequential_convs(first, second)
    x = torch.rand(1, 2, 7, 7, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        assert (merged(x) - second(torch.relu(first(x)))).abs().max() > 1e-3


def test_channel_mismatch_is_refused() -> None:
    with pytest.raises(PreconditionError, match=r"first\.out_channels == second\.in_channels"):
        merge_sequential_convs(nn.Conv2d(2, 3, 3), nn.Conv2d(4, 2, 3))


def test_non_conv_is_refused() -> None:
    with pytest.raises(PreconditionError, match=r"got ConvTranspose2d, expected torch\.nn\.Conv2d"):
        merge_sequential_convs(nn.Conv2d(2, 3, 3), nn.ConvTranspose2d(3, 2, 3))  # type: ignore[arg-type]


# Tests that kill the mutants of ``et/rules/merge_sequential_convs.py`` (R8) its own tests let
# survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
# text only (a wrong rule id, the wrong position or a missing detail passed); no example had a
# different stride or dilation on the two axes (an axis mix-up in the merged kernel or stride went
# unseen); convs of two dtypes were never merged.


def _triple(first, second) -> tuple[str, str, str]:
    with pytest.raises(PreconditionError) as info:
        merge_sequential_convs(first, second)
    return info.value.rule, info.value.condition, info.value.detail


def test_non_conv_refusal_names_its_type() -> None:
    conv = nn.Conv2d(2, 2, 1)
    assert _triple(nn.Linear(2, 2), conv) == (
        "R8",
        TORCH_MODULES,
        "got Linear, expected torch.nn.Conv2d",
    )
    assert _triple(conv, nn.ReLU()) == (
        "R8",
        TORCH_MODULES,
        "got ReLU, expected torch.nn.Conv2d",
    )


def test_channel_mismatch_is_refused_with_both_counts() -> None:
    assert _triple(nn.Conv2d(2, 3, 1), nn.Conv2d(4, 2, 1)) == (
        "R8",
        "first.out_channels == second.in_channels",
        "3 != 4",
    )


def test_padded_second_conv_is_refused_with_the_reason() -> None:
    assert _triple(nn.Conv2d(2, 3, 3), nn.Conv2d(3, 2, 3, padding=(0, 1))) == (
        "R8",
        "the second conv reads no padded value (padding 0)",
        "second padding is (0, 1): its border ring would read zeros where the merged conv "
        "reads b₁ + W₁·x",
    )


def _merged_equals_composition(first: nn.Conv2d, second: nn.Conv2d, shape) -> None:
    merged = merge_sequential_convs(first, second)
    x = torch.rand(*shape, dtype=torch.float64)
    with torch.no_grad():
        expected = second(first(x.to(first.weight.dtype)).to(second.weight.dtype)).double()
        got = merged(x.to(merged.weight.dtype)).double()
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_anisotropic_strides_and_dilations_merge_exactly() -> None:
    """Stride and dilation differ per axis and per conv, so each axis's offsets are distinct."""
    torch.manual_seed(7)
    first = nn.Conv2d(2, 3, (3, 2), stride=(1, 2), dilation=(2, 1), padding=(1, 2))
    second = nn.Conv2d(3, 2, (2, 3), stride=(2, 1), dilation=(1, 3))
    first, second = first.double(), second.double()
    _merged_equals_composition(first, second, (1, 2, 17, 19))
    assert merge_sequential_convs(first, second).stride == (2, 2)
    third = nn.Conv2d(3, 2, 2, stride=(3, 1)).double()
    assert merge_sequential_convs(first, third).stride == (3, 2)


def test_merged_dilation_differs_per_axis() -> None:
    """Dilations (2, 1) on both convs give a merged dilation (2, 1): each axis divides its tap
    offsets by its own dilation."""
    torch.manual_seed(9)
    first = nn.Conv2d(2, 3, 3, dilation=(2, 1), padding=(2, 1)).double()
    second = nn.Conv2d(3, 2, 3, dilation=(2, 1)).double()
    merged = merge_sequential_convs(first, second)
    assert merged.dilation == (2, 1)
    _merged_equals_composition(first, second, (1, 2, 13, 11))


@pytest.mark.parametrize("dtypes", [(torch.float32, torch.float64), (torch.float64, torch.float32)])
def test_convs_of_two_dtypes_merge_in_the_first_convs_dtype(dtypes) -> None:
    torch.manual_seed(8)
    first = nn.Conv2d(2, 3, 3, padding=1, dtype=dtypes[0])
    second = nn.Conv2d(3, 2, 3, dtype=dtypes[1])
    assert merge_sequential_convs(first, second).weight.dtype == dtypes[0]
    _merged_equals_composition(first, second, (1, 2, 8, 8))
