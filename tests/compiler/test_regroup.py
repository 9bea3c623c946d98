"""G13 on small convs: the block-diagonal test, and a conv rewritten with another number of
groups computing what torch computes for the original in float64, bias or none (kill tests of
the mutation pass; ``mutation/survivors.txt`` names the survivors left)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from et.compiler.regroup import is_block_diagonal, regroup


def _same(got: torch.Tensor, expected: torch.Tensor) -> bool:
    """Same shape, equal values up to float64 rounding. (Not ``torch.testing.assert_close``:
    its first call imports ``torch.distributed.tensor``, seconds a kill test must not pay.)"""
    return got.shape == expected.shape and torch.allclose(got, expected, rtol=1e-12, atol=1e-12)


def _block_diagonal(out_per_group: int, in_per_group: int, groups: int) -> torch.Tensor:
    """A dense ``[out, in, 1, 1]`` weight with non-zero entries filling exactly ``groups``
    diagonal blocks (built block by block, not by the code under test)."""
    dense = torch.zeros(out_per_group * groups, in_per_group * groups, 1, 1)
    for g in range(groups):
        rows = slice(g * out_per_group, (g + 1) * out_per_group)
        cols = slice(g * in_per_group, (g + 1) * in_per_group)
        dense[rows, cols] = torch.arange(1.0, out_per_group * in_per_group + 1).reshape(
            out_per_group, in_per_group, 1, 1
        )
    return dense


@pytest.mark.parametrize(("out_per_group", "in_per_group", "groups"), [(2, 2, 2), (1, 3, 2)])
def test_a_weight_filling_its_diagonal_blocks_is_block_diagonal(
    out_per_group: int, in_per_group: int, groups: int
) -> None:
    """Every entry of every diagonal block non-zero, all others zero: block-diagonal with
    ``groups`` groups; one more non-zero entry off the blocks breaks it."""
    dense = _block_diagonal(out_per_group, in_per_group, groups)
    assert is_block_diagonal(dense, groups)
    dense[0, -1] = 1.0
    assert not is_block_diagonal(dense, groups)


@pytest.mark.parametrize(("shape", "groups"), [((4, 6), 4), ((6, 4), 4), ((3, 3), 2)])
def test_channel_counts_the_groups_do_not_divide_are_not_block_diagonal(shape, groups) -> None:
    """A zero weight is still not ``groups``-block-diagonal when ``groups`` does not divide
    the output or the input channel count: no such grouped conv exists."""
    assert not is_block_diagonal(torch.zeros(*shape, 1, 1), groups)


@pytest.mark.parametrize(("groups", "to"), [(1, 2), (2, 1), (4, 2)])
def test_a_bias_free_conv_is_regrouped_without_a_bias(groups: int, to: int) -> None:
    """A conv without bias, regrouped (to more groups when its dense weight is
    block-diagonal, to fewer when the counts divide), has no bias and computes what torch
    computes for the original."""
    torch.manual_seed(2)
    conv = nn.Conv2d(4, 4, 3, padding=1, groups=groups, bias=False).double()
    if groups < to:  # make the dense weight block-diagonal for ``to`` groups
        with torch.no_grad():
            conv.weight.copy_(_block_diagonal(2, 2, to).expand(-1, -1, 3, 3).double())
    regrouped = regroup(conv, to)
    assert regrouped is not None and regrouped.groups == to and regrouped.bias is None
    x = torch.rand(1, 4, 5, 6, dtype=torch.float64)
    assert _same(regrouped(x), conv(x))
