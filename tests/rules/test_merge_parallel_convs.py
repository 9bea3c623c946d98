"""R3: parallel convolutions summed. Properties over branch sets; negative tests."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.merge_parallel_convs import NONEMPTY, TORCH_MODULES, merge_parallel_convs
from et.strategies import ConvConfig, conv2d_modules, image_batches


@st.composite
def branch_sets(draw: st.DrawFn, dtype: torch.dtype = torch.float64) -> list[nn.Conv2d]:
    """1–4 branches sharing channels, stride, dilation and groups, with centrable kernels and
    the paddings that align them (``p_k = p_K − d(K − k)/2``)."""
    groups = draw(st.integers(1, 2))
    in_channels = groups * draw(st.integers(1, 3))
    out_channels = groups * draw(st.integers(1, 3))
    stride = draw(st.sampled_from([1, 2]))
    dilation = draw(st.sampled_from([1, 2]))
    wide = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    shrinks = draw(
        st.lists(
            st.tuples(st.integers(0, (wide[0] - 1) // 2), st.integers(0, (wide[1] - 1) // 2)),
            min_size=0,
            max_size=3,
        )
    )
    shrinks = [(0, 0), *shrinks]
    wide_padding = tuple(
        dilation * max(s[axis] for s in shrinks) + draw(st.integers(0, 2)) for axis in (0, 1)
    )
    convs = []
    for shrink in shrinks:
        config = ConvConfig(
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=(wide[0] - 2 * shrink[0], wide[1] - 2 * shrink[1]),
            stride=(stride, stride),
            padding=(
                wide_padding[0] - dilation * shrink[0],
                wide_padding[1] - dilation * shrink[1],
            ),
            dilation=(dilation, dilation),
            groups=groups,
        )
        convs.append(draw(conv2d_modules(config, dtype=dtype)))
    return draw(st.permutations(convs))


def _sum(convs: list[nn.Conv2d], x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.stack([conv(x) for conv in convs]).sum(dim=0)


def _abs_sum(convs: list[nn.Conv2d], x: torch.Tensor) -> float:
    """max of Σᵢ |Wᵢ| * |x| + |bᵢ|: the magnitude rounding errors are relative to."""
    absolute = [copy.deepcopy(c).double() for c in convs]
    with torch.no_grad():
        for conv in absolute:
            for p in conv.parameters():
                p.abs_()
    return _sum(absolute, x.double().abs()).max().item()


def _min_size(convs: list[nn.Conv2d]) -> int:
    return max(
        d * (k - 1) + 1 for c in convs for k, d in zip(c.kernel_size, c.dilation, strict=True)
    )


@given(convs=branch_sets(), data=st.data())
def test_merge_is_exact_in_float64(convs: list[nn.Conv2d], data: st.DataObject) -> None:
    size = _min_size(convs)
    x = data.draw(image_batches(convs[0].in_channels, min_size=size, max_size=size + 6))
    merged = merge_parallel_convs(convs)
    with torch.no_grad():
        got = merged(x)
    expected = _sum(convs, x)
    assert got.shape == expected.shape and got.dtype == torch.float64
    assert (got - expected).abs().max().item() <= 1e-12 * (_abs_sum(convs, x) + 1)


@given(convs=branch_sets(dtype=torch.float32), data=st.data())
def test_merge_float32_within_stated_bound(convs: list[nn.Conv2d], data: st.DataObject) -> None:
    # float32: the merged conv rounds the summed weights (one rounding per add) and a sum of
    # fan-in terms: |error| ≤ 2·(fan-in + branches)·2⁻²⁴·Σ(|W| * |x| + |b|).
    size = _min_size(convs)
    x = data.draw(
        image_batches(convs[0].in_channels, min_size=size, max_size=size + 4, dtype=torch.float32)
    )
    merged = merge_parallel_convs(convs)
    assert merged.weight.dtype == torch.float32
    with torch.no_grad():
        got = merged(x).double()
    expected = _sum([copy.deepcopy(c).double() for c in convs], x.double())
    n = merged.weight[0].numel() + len(convs) + 1
    assert (got - expected).abs().max().item() <= 2 * n * 2**-24 * _abs_sum(convs, x)


def test_repvgg_branches_merge_to_a_3x3() -> None:
    torch.manual_seed(0)
    dense = nn.Conv2d(4, 4, 3, padding=1, dtype=torch.float64)
    pointwise = nn.Conv2d(4, 4, 1, bias=False, dtype=torch.float64)
    merged = merge_parallel_convs([pointwise, dense])
    x = torch.rand(2, 4, 7, 9, dtype=torch.float64) * 255
    assert merged.kernel_size == (3, 3) and merged.padding == (1, 1)
    with torch.no_grad():
        assert torch.allclose(merged(x), dense(x) + pointwise(x), rtol=1e-12, atol=1e-9)


def test_same_padding_mode_other_than_zeros() -> None:
    torch.manual_seed(1)
    a = nn.Conv2d(2, 3, 3, padding=1, padding_mode="replicate", dtype=torch.float64)
    b = nn.Conv2d(2, 3, 1, padding=0, padding_mode="replicate", dtype=torch.float64)
    x = torch.rand(1, 2, 6, 5, dtype=torch.float64)
    merged = merge_parallel_convs([a, b])
    with torch.no_grad():
        assert torch.allclose(merged(x), a(x) + b(x), rtol=1e-12, atol=1e-12)


def test_inputs_are_not_mutated_and_bias_free_stays_bias_free() -> None:
    convs = [nn.Conv2d(2, 2, 3, padding=1, bias=False), nn.Conv2d(2, 2, 1, bias=False)]
    before = [copy.deepcopy(c.state_dict()) for c in convs]
    merged = merge_parallel_convs(convs)
    assert merged.bias is None
    for conv, state in zip(convs, before, strict=True):
        for key, value in conv.state_dict().items():
            assert torch.equal(value, state[key])


def test_registered_by_name_and_id() -> None:
    convs = [nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 1)]
    assert torch.equal(
        apply_rule("R3", convs).weight, apply_rule("merge_parallel_convs", convs).weight
    )


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def _differs(convs: list[nn.Conv2d], merged_like: nn.Conv2d, x: torch.Tensor) -> bool:
    """The output of ``merged_like`` (the naive merge) is not the branch sum."""
    with torch.no_grad():
        outputs = [conv(x) for conv in convs]
        naive = merged_like(x)
    if any(o.shape != naive.shape for o in outputs):
        return True
    return bool((sum(outputs) - naive).abs().max() > 1e-6)


def _naive(convs: list[nn.Conv2d]) -> nn.Conv2d:
    """Sum the weights ignoring the broken precondition (same kernel size assumed)."""
    naive = copy.deepcopy(convs[0])
    with torch.no_grad():
        naive.weight.copy_(sum(c.weight for c in convs))
        naive.bias.copy_(sum(c.bias for c in convs))
    return naive


@pytest.mark.parametrize(
    ("field", "other"),
    [
        ("stride", dict(stride=2)),
        ("dilation", dict(dilation=2, padding=2)),
        ("padding_mode", dict(padding_mode="reflect")),
    ],
)
def test_geometry_mismatch_differs_and_is_refused(field: str, other: dict) -> None:
    torch.manual_seed(2)
    a = nn.Conv2d(2, 2, 3, padding=1, dtype=torch.float64)
    b = nn.Conv2d(2, 2, 3, **{"padding": 1, **other}, dtype=torch.float64)
    x = torch.rand(1, 2, 8, 8, dtype=torch.float64) + 0.5
    assert _differs([a, b], _naive([a, b]), x)
    with pytest.raises(PreconditionError, match=f"the same {field} on every branch"):
        merge_parallel_convs([a, b])


def test_groups_mismatch_is_refused() -> None:
    a = nn.Conv2d(2, 2, 3, padding=1, groups=1)
    b = nn.Conv2d(2, 2, 3, padding=1, groups=2)
    # a groups=2 kernel has no cross-channel taps: adding it to a dense one needs the dense
    # layout (a different rule), not a weight sum
    with pytest.raises(PreconditionError, match="the same groups on every branch"):
        merge_parallel_convs([a, b])


def test_channel_mismatch_is_refused() -> None:
    with pytest.raises(PreconditionError, match="the same out_channels on every branch"):
        merge_parallel_convs([nn.Conv2d(2, 2, 1), nn.Conv2d(2, 3, 1)])


def test_misaligned_padding_differs_and_is_refused() -> None:
    torch.manual_seed(3)
    a = nn.Conv2d(2, 2, 3, padding=1, dtype=torch.float64)
    b = nn.Conv2d(2, 2, 1, padding=1, dtype=torch.float64)  # should be 0 beside a's padding 1
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        assert a(x).shape != b(x).shape
    with pytest.raises(PreconditionError, match="one padding after centring"):
        merge_parallel_convs([a, b])


def test_odd_kernel_difference_is_refused() -> None:
    with pytest.raises(PreconditionError, match="K − k is even"):
        merge_parallel_convs([nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 2)])


def test_empty_list_is_refused() -> None:
    with pytest.raises(PreconditionError, match="at least one branch"):
        merge_parallel_convs([])


# Tests that kill the mutants of ``et/rules/merge_parallel_convs.py`` (R3) its own tests let
# survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): the rule's tests match the condition
# text of a refusal only, so a refusal under another rule id (R4's, whose check R3 reuses for the
# centring), with a changed condition or with no detail passed. Each refusal here is checked as
# the triple ``(rule, condition, detail)``.


def _refusal(convs) -> PreconditionError:
    with pytest.raises(PreconditionError) as info:
        merge_parallel_convs(convs)
    assert info.value.rule == "R3"
    return info.value


def test_empty_list_is_refused_with_rule_condition_and_detail() -> None:
    error = _refusal([])
    assert (error.condition, error.detail) == (NONEMPTY, "got an empty list")


def test_a_branch_that_is_not_a_conv_is_refused_naming_its_type() -> None:
    error = _refusal([nn.Conv2d(2, 2, 3, padding=1), nn.Linear(2, 2)])
    assert (error.condition, error.detail) == (
        TORCH_MODULES,
        "got Linear, expected torch.nn.Conv2d",
    )


def test_geometry_mismatch_detail_lists_the_values_found() -> None:
    error = _refusal([nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1, stride=2)])
    assert error.condition == "the same stride on every branch"
    assert error.detail == "stride: found [(1, 1), (2, 2)]"


def test_off_centre_kernel_is_refused_under_r3_not_r4() -> None:
    """3×3 and 2×2 branches: K − k = 1 is odd; the centring check is R4's, reported as R3."""
    error = _refusal([nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 2)])
    assert error.condition == "K − k is even on each axis"


def test_misaligned_padding_is_refused_with_the_paddings_in_the_detail() -> None:
    """A 3×3 with padding 1 and a 1×1 with padding 1 centre to paddings (1, 1) and (2, 2)."""
    error = _refusal([nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 1, padding=1)])
    assert error.condition == (
        "one padding after centring: pᵢ + d(K − kᵢ)/2 equal for all branches"
    )
    assert error.detail == (
        "kernels [(3, 3), (1, 1)] with paddings [(1, 1), (1, 1)] centre to (3, 3) "
        "with paddings [(1, 1), (2, 2)]"
    )
