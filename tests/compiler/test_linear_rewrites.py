"""Re-parameterization matchers with keyword arguments: each keyword is read by its schema name
and handled exactly, or the pattern does not match (issue 25)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import et
from et.compiler.linear_rewrites import absorb_zero_pad, merge_concat, pool_after_conv
from et.compiler.workspace import CONV2D
from tests.compiler.graphs import aten, keyed, placeholder, rewrite_keeps_function, workspace

F64 = torch.float64
X = torch.rand(1, 3, 6, 7, dtype=F64, generator=torch.Generator().manual_seed(0))


def _weights(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, dtype=F64, generator=torch.Generator().manual_seed(seed))


def _conv(g, x, w: str, b: str, **kwargs):
    return keyed(g, CONV2D, (x, g.get_attr(w), g.get_attr(b)), **kwargs)


def test_a_pad_whose_value_is_a_keyword_is_not_absorbed_as_zero() -> None:
    constants = {"w": _weights(4, 3, 3, 3), "b": _weights(4)}

    def build(g):
        x = placeholder(g, "x", 1, 3, 6, 7)
        padded = keyed(g, aten.constant_pad_nd.default, (x, [1, 1, 1, 1]), value=0.5)
        return _conv(g, padded, "w", "b")

    ws, node = workspace(build, constants)
    assert rewrite_keeps_function(ws, absorb_zero_pad, node, X) is False


def test_a_conv_with_keyword_geometry_is_read_with_it() -> None:
    """stride, padding and dilation as keywords: the conv and the pad are one conv."""
    constants = {"w": _weights(4, 3, 3, 3), "b": _weights(4)}

    def build(g):
        x = placeholder(g, "x", 1, 3, 6, 7)
        padded = keyed(g, aten.constant_pad_nd.default, (x, [1, 1, 1, 1]), value=0.0)
        return _conv(g, padded, "w", "b", stride=[2, 1], dilation=[1, 2], padding=[0, 1])

    ws, node = workspace(build, constants)
    assert rewrite_keeps_function(ws, absorb_zero_pad, node, X) is True


def test_a_pool_excluding_its_padding_by_keyword_is_written_as_such() -> None:
    """avg_pool2d(conv(x), 3, 1, 1, count_include_pad=False) is no plain 1/9 kernel."""
    constants = {"w": _weights(3, 3, 1, 1), "b": _weights(3)}

    def build(g):
        conv = _conv(g, placeholder(g, "x", 1, 3, 6, 7), "w", "b")
        return keyed(
            g, aten.avg_pool2d.default, (conv, [3, 3], [1, 1], [1, 1]), count_include_pad=False
        )

    ws, node = workspace(build, constants)
    assert rewrite_keeps_function(ws, pool_after_conv, node, X) is False


def test_a_concat_whose_dim_is_a_keyword_is_one_conv() -> None:
    constants = {"w": _weights(2, 3, 3, 3), "b": _weights(2), "v": _weights(3, 3, 3, 3, seed=2)}
    constants["c"] = _weights(3, seed=3)

    def build(g):
        x = placeholder(g, "x", 1, 3, 6, 7)
        first = _conv(g, x, "w", "b", padding=[1, 1])
        second = _conv(g, x, "v", "c", padding=[1, 1])
        return keyed(g, aten.cat.default, ([first, second],), dim=1)

    ws, node = workspace(build, constants)
    assert rewrite_keeps_function(ws, merge_concat, node, X) is True


class Branches(nn.Module):
    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(3, 4, 1)
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.add(self.a(x), self.b(x), alpha=self.alpha)


@pytest.mark.parametrize(("alpha", "merged"), [(1, True), (2, False)])
def test_a_sum_of_branches_is_merged_with_alpha_one_and_left_otherwise(alpha, merged) -> None:
    """R3 on ``add(a, b, alpha)``: alpha = 1 written out is the plain sum (one conv); any other
    alpha is not R3's pattern, and compile keeps the sum (never folds it as α = 1)."""
    torch.manual_seed(4)
    model = Branches(alpha).double().eval()
    compiled = et.compile(model, (torch.rand(1, 3, 6, 6, dtype=F64),))
    assert (compiled.certificate.convs_after == 1) is merged
    for size in ((7, 5), (10, 12)):
        x = torch.rand(2, 3, *size, dtype=F64)
        with torch.no_grad():
            expected, got = model(x), compiled.module(x)
        assert (got - expected).abs().max() <= 1e-9 * expected.abs().max()
