"""R20: summed convs of different groups are one conv. Properties; negative tests."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.merge_grouped_branches import (
    COMMON_BLOCKS,
    EVEN,
    NONEMPTY,
    ONE_PADDING,
    SAME_DILATION,
    SAME_IN_CHANNELS,
    SAME_OUT_CHANNELS,
    SAME_PADDING_MODE,
    SAME_STRIDE,
    TORCH_MODULES,
    merge_grouped_branches,
)
from et.strategies import ConvConfig, conv2d_modules, image_batches


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def grouped_branch_sets(draw: st.DrawFn) -> list[nn.Conv2d]:
    """2–3 branches on one input with drawn group counts (each dividing the channels), one
    stride, dilation and padding mode, and kernels 1/3/5 (padded to one centre)."""
    in_channels = draw(st.sampled_from([2, 4, 6, 12]))
    out_channels = in_channels * draw(st.sampled_from([1, 2]))
    common = math.gcd(in_channels, out_channels)
    stride = draw(st.sampled_from([1, 2]))
    dilation = draw(st.sampled_from([1, 2]))
    convs = []
    for _ in range(draw(st.integers(2, 3))):
        kernel = draw(st.sampled_from([1, 3, 5]))
        config = ConvConfig(
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=(kernel, kernel),
            stride=(stride, stride),
            padding=(dilation * (kernel // 2),) * 2,
            dilation=(dilation, dilation),
            groups=draw(st.sampled_from(_divisors(common))),
        )
        convs.append(draw(conv2d_modules(config)))
    return convs


def _sum(convs: list[nn.Conv2d], x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.stack([conv(x) for conv in convs]).sum(dim=0)


@given(convs=grouped_branch_sets(), data=st.data())
def test_merge_is_exact_in_float64(convs: list[nn.Conv2d], data: st.DataObject) -> None:
    size = max(c.dilation[0] * (c.kernel_size[0] - 1) + 1 for c in convs)
    x = data.draw(image_batches(convs[0].in_channels, min_size=size, max_size=size + 5))
    merged = merge_grouped_branches(convs)
    expected = _sum(convs, x)
    with torch.no_grad():
        got = merged(x)
    scale = expected.abs().max().item() + 1.0
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-12 * scale * 100
    # at least the gcd of the branches' groups: never denser than the theorem needs
    assert merged.groups % math.gcd(*(c.groups for c in convs)) == 0


def test_depthwise_beside_a_diagonal_dense_branch_stays_depthwise() -> None:
    """RepMixer: a depthwise K×K minus BN(x), the BN written as a dense diagonal 1×1."""
    torch.manual_seed(0)
    depthwise = nn.Conv2d(4, 4, 3, padding=1, groups=4, dtype=torch.float64)
    diagonal = nn.Conv2d(4, 4, 1, dtype=torch.float64)
    with torch.no_grad():
        diagonal.weight.copy_(torch.diag(torch.randn(4, dtype=torch.float64))[:, :, None, None])
    merged = merge_grouped_branches([depthwise, diagonal])
    assert merged.groups == 4 and merged.weight.shape == (4, 1, 3, 3)
    x = torch.randn(2, 4, 7, 6, dtype=torch.float64)
    assert torch.allclose(merged(x), _sum([depthwise, diagonal], x), rtol=0, atol=1e-12)


def test_groups_two_and_three_merge_to_a_dense_conv() -> None:
    torch.manual_seed(1)
    a = nn.Conv2d(6, 6, 3, padding=1, groups=2, dtype=torch.float64)
    b = nn.Conv2d(6, 6, 1, groups=3, dtype=torch.float64)
    merged = apply_rule("R20", [a, b])
    assert merged.groups == 1
    x = torch.randn(1, 6, 5, 5, dtype=torch.float64)
    assert torch.allclose(merged(x), _sum([a, b], x), rtol=0, atol=1e-12)


def test_float32_is_kept() -> None:
    a = nn.Conv2d(4, 4, 3, padding=1, groups=2)
    b = nn.Conv2d(4, 4, 3, padding=1, groups=4)
    merged = merge_grouped_branches([a, b])
    assert merged.weight.dtype == torch.float32 and merged.groups == 2


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def _refused(convs: list[nn.Conv2d], condition: str, groups: int | None = None) -> None:
    with pytest.raises(PreconditionError) as info:
        merge_grouped_branches(convs, groups)
    assert info.value.condition is condition


def _naive(convs: list[nn.Conv2d], groups: int) -> nn.Conv2d:
    """The weights summed as if the precondition did not matter (equal kernel sizes)."""
    naive = nn.Conv2d(
        convs[0].in_channels,
        convs[0].out_channels,
        convs[0].kernel_size,
        padding=convs[0].padding,
        groups=groups,
        dtype=torch.float64,
    )
    with torch.no_grad():
        dense = torch.zeros(naive.out_channels, naive.in_channels, *naive.kernel_size).double()
        for conv in convs:
            rows, cols = conv.out_channels // conv.groups, conv.in_channels // conv.groups
            for g in range(conv.groups):
                dense[g * rows : (g + 1) * rows, g * cols : (g + 1) * cols] += conv.weight[
                    g * rows : (g + 1) * rows
                ]
        rows, cols = naive.out_channels // groups, naive.in_channels // groups
        naive.weight.copy_(
            torch.cat(
                [dense[g * rows : (g + 1) * rows, g * cols : (g + 1) * cols] for g in range(groups)]
            )
        )
        naive.bias.copy_(sum(c.bias for c in convs))
    return naive


def _differs(convs: list[nn.Conv2d], naive: nn.Conv2d, x: torch.Tensor) -> bool:
    with torch.no_grad():
        outputs = [conv(x) for conv in convs]
        got = naive(x)
    if any(o.shape != got.shape for o in outputs):
        return True
    return bool((sum(outputs) - got).abs().max() > 1e-6)


X = torch.rand(1, 4, 8, 8, dtype=torch.float64) + 0.5


def test_blocks_outside_the_merged_grouping_differ_and_are_refused() -> None:
    torch.manual_seed(2)
    dense = nn.Conv2d(4, 4, 3, padding=1, dtype=torch.float64)
    depthwise = nn.Conv2d(4, 4, 3, padding=1, groups=4, dtype=torch.float64)
    assert _differs([dense, depthwise], _naive([dense, depthwise], 4), X)
    _refused([dense, depthwise], COMMON_BLOCKS, groups=4)
    _refused([dense, depthwise], COMMON_BLOCKS, groups=3)  # 3 does not divide 4 channels
    assert merge_grouped_branches([dense, depthwise]).groups == 1


@pytest.mark.parametrize(
    ("condition", "other"),
    [
        (SAME_STRIDE, dict(stride=2)),
        (SAME_DILATION, dict(dilation=2, padding=2)),
        (SAME_PADDING_MODE, dict(padding_mode="reflect")),
        (ONE_PADDING, dict(padding=2)),
    ],
)
def test_geometry_mismatch_differs_and_is_refused(condition: str, other: dict) -> None:
    torch.manual_seed(3)
    a = nn.Conv2d(4, 4, 3, padding=1, groups=2, dtype=torch.float64)
    b = nn.Conv2d(4, 4, 3, **{"padding": 1, "groups": 4, **other}, dtype=torch.float64)
    assert _differs([a, b], _naive([a, b], 2), X)
    _refused([a, b], condition)


def test_channel_mismatch_is_refused() -> None:
    a, b = nn.Conv2d(4, 4, 1, groups=2), nn.Conv2d(4, 2, 1, groups=2)
    # the sum of a 4- and a 2-channel output is not defined (torch broadcasting refuses it)
    with pytest.raises(RuntimeError):
        _sum([a, b], X.float())
    _refused([a, b], SAME_OUT_CHANNELS)
    _refused([nn.Conv2d(4, 4, 1), nn.Conv2d(2, 4, 1)], SAME_IN_CHANNELS)


def test_odd_kernel_difference_is_refused() -> None:
    # a 2×2 kernel has no centre in a 3×3 one: the merged conv would read a shifted window
    a = nn.Conv2d(4, 4, 3, padding=1, groups=2, dtype=torch.float64)
    b = nn.Conv2d(4, 4, 2, padding=1, groups=4, dtype=torch.float64)
    assert _sum([a], X).shape != _sum([b], X).shape
    _refused([a, b], EVEN)


def test_overridden_forward_differs_and_is_refused() -> None:
    class AddsOne(nn.Conv2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 1

    a = nn.Conv2d(4, 4, 1, groups=2, dtype=torch.float64)
    b = AddsOne(4, 4, 1, groups=4, dtype=torch.float64)
    plain = nn.Conv2d(4, 4, 1, groups=4, dtype=torch.float64)
    plain.load_state_dict(b.state_dict())
    assert not torch.allclose(_sum([a, b], X), _sum([a, plain], X))
    _refused([a, b], TORCH_MODULES)


def test_no_branch_is_refused() -> None:
    _refused([], NONEMPTY)
