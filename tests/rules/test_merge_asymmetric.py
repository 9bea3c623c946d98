"""R5: ACNet's asymmetric branches. Properties over kernels and branch subsets; negative tests."""

from __future__ import annotations

import copy
import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.merge_asymmetric import NONEMPTY, SAME_GEOMETRY, TORCH_MODULES, merge_asymmetric
from et.rules.merge_parallel_convs import merge_parallel_convs
from et.strategies import ConvConfig, conv2d_modules, image_batches

Branches = tuple[nn.Conv2d | None, nn.Conv2d | None, nn.Conv2d | None]


@st.composite
def acnet_branches(draw: st.DrawFn, dtype: torch.dtype = torch.float64) -> Branches:
    """Square KH×KW, horizontal 1×KW and vertical KH×1 branches with realigned paddings."""
    groups = draw(st.integers(1, 2))
    in_channels = groups * draw(st.integers(1, 3))
    out_channels = groups * draw(st.integers(1, 3))
    stride = draw(st.sampled_from([1, 2]))
    dilation = draw(st.sampled_from([1, 2]))
    kh, kw = draw(st.sampled_from([1, 3, 5])), draw(st.sampled_from([1, 3, 5]))
    ph = dilation * (kh - 1) // 2 + draw(st.integers(0, 1))
    pw = dilation * (kw - 1) // 2 + draw(st.integers(0, 1))
    present = draw(st.tuples(st.booleans(), st.booleans(), st.booleans()).filter(any))
    shapes = (
        ((kh, kw), (ph, pw)),
        ((1, kw), (ph - dilation * (kh - 1) // 2, pw)),
        ((kh, 1), (ph, pw - dilation * (kw - 1) // 2)),
    )
    branches = []
    for here, (kernel, padding) in zip(present, shapes, strict=True):
        config = ConvConfig(
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=kernel,
            stride=(stride, stride),
            padding=padding,
            dilation=(dilation, dilation),
            groups=groups,
        )
        branches.append(draw(conv2d_modules(config, dtype=dtype)) if here else None)
    return tuple(branches)  # type: ignore[return-value]


def _sum(branches: Branches, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.stack([conv(x) for conv in branches if conv is not None]).sum(dim=0)


def _abs_sum(branches: Branches, x: torch.Tensor) -> float:
    absolute = []
    for conv in branches:
        if conv is not None:
            conv = copy.deepcopy(conv).double()
            with torch.no_grad():
                for p in conv.parameters():
                    p.abs_()
            absolute.append(conv)
    return _sum(tuple(absolute), x.double().abs()).max().item()  # type: ignore[arg-type]


def _first(branches: Branches) -> nn.Conv2d:
    return next(conv for conv in branches if conv is not None)


@given(branches=acnet_branches(), data=st.data())
def test_merge_is_exact_in_float64(branches: Branches, data: st.DataObject) -> None:
    conv = _first(branches)
    x = data.draw(image_batches(conv.in_channels, min_size=9, max_size=14))
    merged = merge_asymmetric(*branches)
    with torch.no_grad():
        got = merged(x)
    expected = _sum(branches, x)
    assert got.shape == expected.shape and got.dtype == torch.float64
    assert (got - expected).abs().max().item() <= 1e-12 * (_abs_sum(branches, x) + 1)


@given(branches=acnet_branches(dtype=torch.float32), data=st.data())
def test_merge_float32_within_stated_bound(branches: Branches, data: st.DataObject) -> None:
    # as R3: |error| ≤ 2·(fan-in + 3)·2⁻²⁴·Σ(|W| * |x| + |b|)
    conv = _first(branches)
    x = data.draw(image_batches(conv.in_channels, min_size=9, max_size=12, dtype=torch.float32))
    merged = merge_asymmetric(*branches)
    with torch.no_grad():
        got = merged(x).double()
    doubled = tuple(None if c is None else copy.deepcopy(c).double() for c in branches)
    expected = _sum(doubled, x.double())  # type: ignore[arg-type]
    n = merged.weight[0].numel() + 4
    assert (got - expected).abs().max().item() <= 2 * n * 2**-24 * _abs_sum(branches, x)


def test_acnet_weights_land_on_the_centre_cross() -> None:
    square = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    horizontal = nn.Conv2d(1, 1, (1, 3), padding=(0, 1), bias=False)
    vertical = nn.Conv2d(1, 1, (3, 1), padding=(1, 0), bias=False)
    with torch.no_grad():
        square.weight.zero_()
        horizontal.weight.copy_(torch.tensor([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3))
        vertical.weight.copy_(torch.tensor([10.0, 20.0, 30.0]).reshape(1, 1, 3, 1))
    merged = merge_asymmetric(square, horizontal, vertical)
    expected = torch.tensor([[0.0, 10.0, 0.0], [1.0, 22.0, 3.0], [0.0, 30.0, 0.0]])
    assert torch.equal(merged.weight[0, 0], expected)


def test_inputs_are_not_mutated() -> None:
    branches = (nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, (1, 3), padding=(0, 1)), None)
    before = [copy.deepcopy(c.state_dict()) for c in branches if c is not None]
    merge_asymmetric(*branches)
    for conv, state in zip(branches[:2], before, strict=True):
        for key, value in conv.state_dict().items():
            assert torch.equal(value, state[key])


def test_registered_by_name_and_id() -> None:
    branches = (nn.Conv2d(2, 2, 3, padding=1), None, nn.Conv2d(2, 2, (3, 1), padding=(1, 0)))
    assert torch.equal(
        apply_rule("R5", *branches).weight, apply_rule("merge_asymmetric", *branches).weight
    )


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def test_unaligned_thin_branch_differs_and_is_refused() -> None:
    # the 1×3 padded (1, 1) like the square instead of the realigned (0, 1)
    torch.manual_seed(0)
    square = nn.Conv2d(2, 2, 3, padding=1, dtype=torch.float64)
    horizontal = nn.Conv2d(2, 2, (1, 3), padding=(1, 1), dtype=torch.float64)
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        assert square(x).shape != horizontal(x).shape
    with pytest.raises(PreconditionError, match="one padding after centring"):
        merge_asymmetric(square, horizontal, None)


def test_crop_case_is_refused() -> None:
    # square padding 0 < k//2: the 1×3 would need row padding −1 (ACNet crops the input)
    torch.manual_seed(1)
    square = nn.Conv2d(2, 2, 3, padding=0, dtype=torch.float64)
    horizontal = nn.Conv2d(2, 2, (1, 3), padding=0, dtype=torch.float64)
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        assert square(x).shape != horizontal(x).shape  # 4×4 against 6×4
    with pytest.raises(PreconditionError, match="one padding after centring"):
        merge_asymmetric(square, horizontal, None)


def test_wrong_branch_shapes_are_refused() -> None:
    square = nn.Conv2d(2, 2, 3, padding=1)
    with pytest.raises(PreconditionError, match="the horizontal kernel is 1×KW"):
        merge_asymmetric(square, nn.Conv2d(2, 2, (3, 1), padding=(1, 0)), None)
    with pytest.raises(PreconditionError, match="the vertical kernel is KH×1"):
        merge_asymmetric(square, None, nn.Conv2d(2, 2, (1, 3), padding=(0, 1)))
    # 1×5 beside 3×3 is no ACNet triple (R3 merges it into a 3×5 kernel instead)
    wide = nn.Conv2d(2, 2, (1, 5), padding=(1, 2))
    with pytest.raises(PreconditionError, match="the horizontal kernel is 1×KW"):
        merge_asymmetric(square, wide, None)
    assert merge_parallel_convs([square, nn.Conv2d(2, 2, (1, 5), padding=(0, 2))]).kernel_size == (
        3,
        5,
    )


def test_stride_mismatch_differs_and_is_refused() -> None:
    torch.manual_seed(2)
    square = nn.Conv2d(2, 2, 3, padding=1, dtype=torch.float64)
    vertical = nn.Conv2d(2, 2, (3, 1), padding=(1, 0), stride=2, dtype=torch.float64)
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        assert square(x).shape != vertical(x).shape
    with pytest.raises(PreconditionError) as error:
        merge_asymmetric(square, None, vertical)
    assert (error.value.rule, error.value.condition) == ("R5", SAME_GEOMETRY)
    assert error.value.detail.startswith("stride: found")


def test_no_branch_is_refused() -> None:
    with pytest.raises(PreconditionError, match=re.escape(NONEMPTY)):
        merge_asymmetric(None, None, None)


# Tests that kill the mutants of ``et/rules/merge_asymmetric.py`` (R5) its own tests let survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
# text only (a wrong rule id, a changed condition or a missing detail passed), and the "square"
# kernel was always square, so a detail naming its height where its width belongs went unseen.


def _triple(square, horizontal, vertical) -> tuple[str, str, str]:
    with pytest.raises(PreconditionError) as info:
        merge_asymmetric(square, horizontal, vertical)
    return info.value.rule, info.value.condition, info.value.detail


def test_no_branch_refusal_names_rule_condition_and_detail() -> None:
    assert _triple(None, None, None) == (
        "R5",
        NONEMPTY,
        "all three branches are None",
    )


def test_non_conv_branch_is_refused_naming_its_type() -> None:
    assert _triple(nn.Conv2d(2, 2, 3, padding=1), nn.Linear(2, 2), None) == (
        "R5",
        TORCH_MODULES,
        "got Linear, expected torch.nn.Conv2d",
    )


def test_horizontal_kernel_taller_than_one_row_is_refused() -> None:
    assert _triple(None, nn.Conv2d(2, 2, (2, 3)), None) == (
        "R5",
        "the horizontal kernel is 1×KW",
        "it is 2×3",
    )


def test_vertical_kernel_wider_than_one_column_is_refused() -> None:
    assert _triple(None, None, nn.Conv2d(2, 2, (3, 2))) == (
        "R5",
        "the vertical kernel is KH×1",
        "it is 3×2",
    )


def test_horizontal_width_must_match_a_non_square_big_kernel() -> None:
    """Beside a 5×3 kernel the horizontal branch must be 1×3; a 1×5 one is refused."""
    square = nn.Conv2d(2, 2, (5, 3), padding=(2, 1))
    assert _triple(square, nn.Conv2d(2, 2, (1, 5), padding=(0, 2)), None) == (
        "R5",
        "the horizontal kernel is 1×KW",
        "it is 1×5 beside a square kernel 5×3",
    )


def test_vertical_height_must_match_a_non_square_big_kernel() -> None:
    """Beside a 5×3 kernel the vertical branch must be 5×1; a 3×1 one is refused."""
    square = nn.Conv2d(2, 2, (5, 3), padding=(2, 1))
    assert _triple(square, None, nn.Conv2d(2, 2, (3, 1), padding=(1, 0))) == (
        "R5",
        "the vertical kernel is KH×1",
        "it is 3×1 beside a square kernel 5×3",
    )


def test_branch_mismatch_found_by_r3_is_reported_under_r5() -> None:
    square = nn.Conv2d(2, 2, 3, padding=1)
    rule, condition, _ = _triple(square, nn.Conv2d(2, 2, (1, 3), padding=(0, 1), stride=2), None)
    assert (rule, condition) == ("R5", SAME_GEOMETRY)
