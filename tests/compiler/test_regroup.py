"""G13 in the compiler: parallel branches of different groupings are written with one grouping
by :mod:`et.rules.regroup_conv` (its transform run, its checks recorded), so R3 merges them;
where the rule refuses every common count the refusal names its precondition and the sum stays.
Outputs are compared with torch's own convs in float64 (not with anything the code computes)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import et
from et.compiler.regroup import common_grouping
from et.contract import PreconditionError
from et.rules import regroup_conv as g13
from tests.compiler.graphs import placeholder, workspace

F64 = torch.float64


def _same(got: torch.Tensor, expected: torch.Tensor) -> bool:
    """Same shape, equal values up to float64 rounding. (Not ``torch.testing.assert_close``:
    its first call imports ``torch.distributed.tensor``, seconds a kill test must not pay.)"""
    return got.shape == expected.shape and torch.allclose(got, expected, rtol=1e-12, atol=1e-12)


def _block_diagonal(out_per_group: int, in_per_group: int, groups: int) -> torch.Tensor:
    """A dense ``[out, in, 1, 1]`` weight with non-zero entries filling exactly ``groups``
    diagonal blocks (built block by block, not by the code under test)."""
    dense = torch.zeros(out_per_group * groups, in_per_group * groups, 1, 1, dtype=F64)
    for g in range(groups):
        rows = slice(g * out_per_group, (g + 1) * out_per_group)
        cols = slice(g * in_per_group, (g + 1) * in_per_group)
        dense[rows, cols] = torch.arange(1.0, out_per_group * in_per_group + 1).reshape(
            out_per_group, in_per_group, 1, 1
        )
    return dense


def _ws():
    ws, _ = workspace(lambda g: placeholder(g, "x", 1, 4, 5, 6))
    return ws


def _conv(groups: int, bias: bool = True, channels: int = 4) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 3, padding=1, groups=groups, bias=bias, dtype=F64)


def test_a_block_diagonal_dense_conv_joins_its_grouped_partner() -> None:
    """Most groups first: the dense conv whose weight fills two diagonal blocks is written
    with 2 groups (G13 to more groups), the grouped one is kept; both compute what they did."""
    torch.manual_seed(1)
    grouped, dense = _conv(2), _conv(1)
    with torch.no_grad():
        dense.weight.copy_(_block_diagonal(2, 2, 2).expand(-1, -1, 3, 3))
    ws = _ws()
    aligned = common_grouping(ws, [grouped, dense])
    assert [c.groups for c in aligned.convs] == [2, 2] and aligned.rewritten == (1,)
    assert aligned.convs[0] is grouped
    ran = {(c.rule, c.precondition, c.checked) for c in aligned.checks}
    assert ("G13", str(g13.BLOCK_DIAGONAL), "transform") in ran
    x = torch.rand(1, 4, 5, 6, dtype=F64)
    assert _same(aligned.convs[1](x), dense(x))


@pytest.mark.parametrize("bias", [True, False])
def test_a_dense_partner_makes_the_grouped_conv_dense(bias: bool) -> None:
    """A dense weight with entries off the blocks cannot take 2 groups (G13 refuses that
    count), so the grouped conv is written dense (to fewer groups: always exact)."""
    torch.manual_seed(2)
    grouped, dense = _conv(2, bias), _conv(1, bias)
    aligned = common_grouping(_ws(), [grouped, dense])
    assert [c.groups for c in aligned.convs] == [1, 1] and aligned.rewritten == (0,)
    assert (aligned.convs[0].bias is None) is (not bias)
    x = torch.rand(1, 4, 5, 6, dtype=F64)
    assert _same(aligned.convs[0](x), grouped(x))


def test_counts_that_do_not_divide_are_refused_with_the_rules_precondition() -> None:
    """2 and 3 groups on 6 channels: a 2-grouped conv has weights outside 3 blocks and the
    other way round; G13 refuses both counts and the error names its precondition."""
    torch.manual_seed(3)
    convs = [_conv(2, channels=6), _conv(3, channels=6)]
    with pytest.raises(PreconditionError) as info:
        common_grouping(_ws(), convs)
    assert info.value.rule == "G13" and info.value.condition is g13.BLOCK_DIAGONAL


class TwoGroupings(nn.Module):
    """``conv_a(x) + conv_b(x)`` with ``groups_a`` and ``groups_b`` groups."""

    def __init__(self, channels: int, groups_a: int, groups_b: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(channels, channels, 3, padding=1, groups=groups_a)
        self.b = nn.Conv2d(channels, channels, 3, padding=1, groups=groups_b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.b(x)


def _compile(model: nn.Module, channels: int) -> et.compiler.Compiled:
    torch.manual_seed(0)
    return et.compile(model.double().eval(), (torch.rand(1, channels, 6, 7, dtype=F64),))


def test_compiled_g13_lists_the_checks_its_rule_ran() -> None:
    torch.manual_seed(4)
    compiled = _compile(TwoGroupings(4, 2, 1), 4)
    assert compiled.certificate.ops_after == {"conv2d.default": 1}
    (applied,) = [a for a in compiled.certificate.applications if a.rule == "G13"]
    transform = [c for c in applied.checks if c.checked == "transform" and c.rule == "G13"]
    assert {c.precondition for c in transform} >= {str(g13.DIVIDES), str(g13.BLOCK_DIAGONAL)}
    assert "R3" in compiled.certificate.rules_used()


def test_groupings_g13_cannot_share_are_merged_by_r20() -> None:
    """Groups 2 and 3 have no common block structure, so G13 alone (regroup one conv to the
    other's groups) refuses with BLOCK_DIAGONAL; R20 merges the sum into one conv of groups
    gcd(2, 3) = 1, and no refusal is left on a node that no longer exists."""
    torch.manual_seed(5)
    model = TwoGroupings(6, 2, 3)
    compiled = _compile(model, 6)
    assert "add.Tensor" not in compiled.certificate.ops_after
    assert compiled.certificate.rules_used().get("R20") == 1
    assert not [u for u in compiled.certificate.unfolded if u.rule == "G13"]
    x = torch.rand(2, 6, 9, 8, dtype=F64)
    with torch.no_grad():
        assert _same(compiled.module(x), model(x))
