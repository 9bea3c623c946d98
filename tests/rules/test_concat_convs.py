"""R11: depth concat of parallel convs. Properties over geometries and groups; negatives."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.conv_geometry import make_conv
from et.rules.concat_convs import NONEMPTY, SAME_GEOMETRY, SAME_INPUT, TORCH_MODULES, concat_convs
from et.strategies import conv2d_modules, conv_configs, image_batches


@st.composite
def parallel_convs(draw: st.DrawFn, dtype: torch.dtype = torch.float64) -> list[nn.Conv2d]:
    base = draw(conv_configs(max_channels=6))
    convs = []
    for _ in range(draw(st.integers(1, 3))):
        divisors = [g for g in range(1, base.in_channels + 1) if base.in_channels % g == 0]
        groups = draw(st.sampled_from(divisors))
        config = replace(base, groups=groups, out_channels=groups * draw(st.integers(1, 3)))
        convs.append(draw(conv2d_modules(config, dtype=dtype)))
    return convs


def _reference(convs: list[nn.Conv2d], x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([conv(x) for conv in convs], dim=1)


@given(convs=parallel_convs(), data=st.data())
def test_concat_is_exact_in_float64(convs: list[nn.Conv2d], data: st.DataObject) -> None:
    x = data.draw(image_batches(convs[0].in_channels, min_size=10, max_size=14))
    merged = concat_convs(convs)
    expected = _reference(convs, x)
    with torch.no_grad():
        got = merged(x)
    assert got.shape == expected.shape and got.dtype == torch.float64
    # stacking changes no arithmetic: each output channel is the same sum
    assert torch.allclose(got, expected, rtol=0, atol=1e-12 * (expected.abs().max().item() + 1))


@given(convs=parallel_convs(dtype=torch.float32), data=st.data())
def test_concat_float32_within_stated_bound(convs: list[nn.Conv2d], data: st.DataObject) -> None:
    # float32: zero weights added by the dense form leave the sum's value unchanged; only the
    # summation order may differ: |error| ≤ 2·(fan-in + 2)·2⁻²⁴·(Σ|W|·max|x| + |b|).
    x = data.draw(
        image_batches(convs[0].in_channels, min_size=10, max_size=12, dtype=torch.float32)
    )
    merged = concat_convs(convs)
    expected = _reference([copy.deepcopy(c).double() for c in convs], x.double())
    with torch.no_grad():
        got = merged(x).double()
    magnitude = max(
        c.weight.abs().sum(dim=(1, 2, 3)).max().item() * x.abs().max().item()
        + (c.bias.abs().max().item() if c.bias is not None else 0.0)
        for c in convs
    )
    fan_in = merged.weight[0].numel()
    assert (got - expected).abs().max().item() <= 2 * (fan_in + 2) * 2**-24 * magnitude


def test_missing_biases_are_zero_and_inputs_untouched() -> None:
    torch.manual_seed(0)
    convs = [
        nn.Conv2d(3, 2, 3, padding=1, bias=False, dtype=torch.float64),
        nn.Conv2d(3, 3, 3, padding=1, groups=3, dtype=torch.float64),
    ]
    before = [copy.deepcopy(c.state_dict()) for c in convs]
    merged = concat_convs(convs)
    assert merged.groups == 1 and merged.bias is not None
    assert torch.equal(merged.bias[:2], torch.zeros(2, dtype=torch.float64))
    for conv, state in zip(convs, before, strict=True):
        for key, value in conv.state_dict().items():
            assert torch.equal(value, state[key])
    x = torch.rand(1, 3, 7, 5, dtype=torch.float64) * 255
    with torch.no_grad():
        assert torch.allclose(merged(x), _reference(convs, x), rtol=1e-13, atol=1e-10)


def test_registered_by_name_and_id() -> None:
    convs = [nn.Conv2d(2, 2, 3), nn.Conv2d(2, 1, 3)]
    assert torch.equal(apply_rule("R11", convs).weight, apply_rule("concat_convs", convs).weight)


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def test_different_dilation_differs_and_is_refused() -> None:
    torch.manual_seed(1)
    a = nn.Conv2d(2, 2, 3, padding=1, dtype=torch.float64)
    b = nn.Conv2d(2, 2, 3, padding=2, dilation=2, dtype=torch.float64)  # same output size
    naive = make_conv(torch.cat([a.weight, b.weight]).detach(), None, padding=1)
    naive.bias = nn.Parameter(torch.cat([a.bias, b.bias]).detach())
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        assert (naive(x) - _reference([a, b], x)).abs().max() > 1e-3
    with pytest.raises(PreconditionError, match="has dilation="):
        concat_convs([a, b])


def test_raw_stack_of_grouped_weights_differs() -> None:
    # Why the rule stacks dense weights: keeping groups=2 on a raw stack mis-routes channels.
    torch.manual_seed(2)
    a = nn.Conv2d(2, 2, 1, groups=2, dtype=torch.float64)
    b = nn.Conv2d(2, 2, 1, groups=2, dtype=torch.float64)
    raw = make_conv(torch.cat([a.weight, b.weight]).detach(), None, groups=2)
    x = torch.rand(1, 2, 4, 4, dtype=torch.float64)
    expected = _reference([a, b], x) - torch.cat([a.bias, b.bias]).reshape(1, -1, 1, 1)
    with torch.no_grad():
        assert (raw(x) - expected).abs().max() > 1e-3
        assert (concat_convs([a, b])(x) - _reference([a, b], x)).abs().max() < 1e-12


@pytest.mark.parametrize(
    ("other", "condition", "field"),
    [
        (nn.Conv2d(3, 2, 3, padding=1), SAME_INPUT, "in_channels"),
        (nn.Conv2d(2, 2, 1), SAME_GEOMETRY, "kernel_size"),
        (nn.Conv2d(2, 2, 3, padding=1, stride=2), SAME_GEOMETRY, "stride"),
        (nn.Conv2d(2, 2, 3, padding=0), SAME_GEOMETRY, "padding"),
        (nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"), SAME_GEOMETRY, "padding_mode"),
    ],
)
def test_mismatched_geometry_is_refused(other: nn.Conv2d, condition: str, field: str) -> None:
    with pytest.raises(PreconditionError) as info:
        concat_convs([nn.Conv2d(2, 2, 3, padding=1), other])
    assert info.value.condition is condition
    assert info.value.detail.startswith(f"branch 1 has {field}=")


def test_empty_and_non_conv_are_refused() -> None:
    with pytest.raises(PreconditionError, match="at least one"):
        concat_convs([])
    with pytest.raises(PreconditionError, match="Conv2d"):
        concat_convs([nn.Conv2d(2, 2, 1), nn.Linear(2, 2)])  # type: ignore[list-item]


# Tests that kill the mutants of ``et/rules/concat_convs.py`` (R11) its own tests let survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
# text only (a wrong rule id, a changed condition or a missing detail passed; the detail names the
# offending branch by its index), and branches of different dtypes were never stacked (the result
# takes the first branch's dtype).


def _triple(convs) -> tuple[str, str, str]:
    with pytest.raises(PreconditionError) as info:
        concat_convs(convs)
    return info.value.rule, info.value.condition, info.value.detail


def test_empty_sequence_is_refused() -> None:
    assert _triple([]) == ("R11", NONEMPTY, "got an empty sequence")


def test_non_conv_branch_is_refused_listing_the_types() -> None:
    convs = [nn.Conv2d(2, 3, 3), nn.Linear(2, 3)]
    assert _triple(convs) == (
        "R11",
        TORCH_MODULES,
        "got Linear, expected torch.nn.Conv2d",
    )


@pytest.mark.parametrize(
    ("field", "label", "other", "shown", "first_shown"),
    [
        ("in_channels", SAME_INPUT, {"in_channels": 3}, "3", "2"),
        ("kernel_size", SAME_GEOMETRY, {"kernel_size": 1}, "(1, 1)", "(3, 3)"),
        ("stride", SAME_GEOMETRY, {"stride": 2}, "(2, 2)", "(1, 1)"),
        ("dilation", SAME_GEOMETRY, {"dilation": 2}, "(2, 2)", "(1, 1)"),
        ("padding", SAME_GEOMETRY, {"padding": 0}, "(0, 0)", "(1, 1)"),
        (
            "padding_mode",
            SAME_GEOMETRY,
            {"padding_mode": "reflect"},
            "'reflect'",
            "'zeros'",
        ),
    ],
)
def test_mismatch_names_the_branch_index_and_both_values(
    field: str, label: str, other: dict, shown: str, first_shown: str
) -> None:
    """Branches 0 and 1 agree; branch 2 differs in ``field``: the detail names branch 2."""
    base = {"in_channels": 2, "kernel_size": 3, "padding": 1}
    convs = [nn.Conv2d(out_channels=3, **base), nn.Conv2d(out_channels=1, **base)]
    convs.append(nn.Conv2d(out_channels=2, **{**base, **other}))
    assert _triple(convs) == (
        "R11",
        label,
        f"branch 2 has {field}={shown}, branch 0 has {first_shown}",
    )


@pytest.mark.parametrize("dtypes", [(torch.float32, torch.float64), (torch.float64, torch.float32)])
def test_mixed_dtypes_stack_in_the_first_branchs_dtype(dtypes) -> None:
    torch.manual_seed(0)
    convs = [nn.Conv2d(2, 3, 3, padding=1, dtype=d) for d in dtypes]
    stacked = concat_convs(convs)
    assert stacked.weight.dtype == dtypes[0] and stacked.bias.dtype == dtypes[0]
    x = torch.rand(1, 2, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        expected = torch.cat([conv(x.to(conv.weight.dtype)).double() for conv in convs], dim=1)
        torch.testing.assert_close(stacked(x.to(dtypes[0])).double(), expected, rtol=0, atol=1e-5)
