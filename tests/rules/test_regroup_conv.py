"""G13: a conv written with another number of groups. Properties over group counts and
geometries; negative tests."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.conv_geometry import make_conv
from et.rules.merge_sequential_convs import dense_weight
from et.rules.regroup_conv import BLOCK_DIAGONAL, DIVIDES, TORCH_MODULES, regroup_conv
from et.strategies import conv2d_modules, image_batches


@given(data=st.data())
def test_fewer_groups_are_exact(data: st.DataObject) -> None:
    conv = data.draw(conv2d_modules(max_groups=4))
    divisors = [g for g in range(1, conv.groups + 1) if conv.groups % g == 0]
    groups = data.draw(st.sampled_from(divisors))
    span = max(d * (k - 1) + 1 for k, d in zip(conv.kernel_size, conv.dilation, strict=True))
    x = data.draw(image_batches(conv.in_channels, min_size=span, max_size=span + 4))
    regrouped = regroup_conv(conv, groups)
    assert regrouped.groups == groups
    with torch.no_grad():
        expected, got = conv(x), regrouped(x)
    assert (got - expected).abs().max().item() <= 1e-9 * (expected.abs().max().item() + 1)


@given(data=st.data())
def test_more_groups_from_a_block_diagonal_weight_are_exact(data: st.DataObject) -> None:
    grouped = data.draw(conv2d_modules(max_groups=4))
    dense = make_conv(
        dense_weight(grouped.weight.detach(), grouped.groups),
        grouped.bias.detach() if grouped.bias is not None else None,
        stride=grouped.stride,
        padding=grouped.padding,
        dilation=grouped.dilation,
    )
    span = max(d * (k - 1) + 1 for k, d in zip(dense.kernel_size, dense.dilation, strict=True))
    x = data.draw(image_batches(dense.in_channels, min_size=span, max_size=span + 4))
    regrouped = regroup_conv(dense, grouped.groups)
    with torch.no_grad():
        expected, got = dense(x), regrouped(x)
    assert (got - expected).abs().max().item() <= 1e-9 * (expected.abs().max().item() + 1)
    assert torch.equal(regrouped.weight, grouped.weight)


def test_registered_by_id_and_name_and_inputs_untouched() -> None:
    conv = nn.Conv2d(4, 4, 3, groups=4, dtype=torch.float64)
    assert apply_rule("G13", conv, 2).groups == 2
    assert apply_rule("regroup_conv", conv, 1).groups == 1 and conv.groups == 4


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def _refused(condition: str, conv: nn.Module, groups: int) -> None:
    with pytest.raises(PreconditionError) as info:
        regroup_conv(conv, groups)
    assert info.value.rule == "G13" and info.value.condition is condition


def test_a_count_that_does_not_divide_is_refused() -> None:
    _refused(DIVIDES, nn.Conv2d(4, 6, 1), 3)
    _refused(DIVIDES, nn.Conv2d(4, 4, 1), 0)


def test_dropping_weights_between_groups_differs_and_is_refused() -> None:
    conv = nn.Conv2d(4, 4, 1, dtype=torch.float64)
    x = torch.rand(1, 4, 3, 3, dtype=torch.float64)
    diagonal = nn.Conv2d(4, 4, 1, groups=2, dtype=torch.float64)
    with torch.no_grad():
        diagonal.weight.copy_(torch.cat([conv.weight[:2, :2], conv.weight[2:, 2:]]))
        diagonal.bias.copy_(conv.bias)
        assert (conv(x) - diagonal(x)).abs().max() > 1e-3
    _refused(BLOCK_DIAGONAL, conv, 2)


def test_an_overridden_forward_is_refused() -> None:
    class Shifted(nn.Conv2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 1

    impostor = Shifted(2, 2, 1).double()
    x = torch.rand(1, 2, 6, 6).double()
    with torch.no_grad():  # it computes torch's function plus 1, which no rewrite does
        assert torch.allclose(impostor(x), nn.Conv2d.forward(impostor, x) + 1)
    _refused(TORCH_MODULES, Shifted(2, 2, 1), 1)
