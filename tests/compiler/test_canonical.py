"""Graph canonicalisations with keyword arguments: each keyword is read by its schema name and
handled exactly, or the pattern does not match (issue 25). Each case fails on a matcher that
reads positions only (it would take the keyword's default)."""

from __future__ import annotations

import torch

from et.compiler.canonical import (
    cancel_constants,
    constant_pad,
    explicit_padding,
    global_pool,
    merge_zero_pads,
    remove_no_ops,
    write_into_fill,
)
from tests.compiler.graphs import aten, call, keyed, placeholder, rewrite_keeps_function, workspace

F64 = torch.float64
X = torch.rand(1, 3, 5, 6, dtype=F64, generator=torch.Generator().manual_seed(0))


def _x(g):
    return placeholder(g, "x", 1, 3, 5, 6)


def test_a_pad_whose_mode_is_a_keyword_is_no_constant_pad() -> None:
    ws, node = workspace(
        lambda g: keyed(g, aten.pad.default, (_x(g), [1, 1, 2, 0]), mode="reflect")
    )
    assert rewrite_keeps_function(ws, constant_pad, node, X) is False


def test_a_pad_whose_value_is_a_keyword_keeps_its_value() -> None:
    ws, node = workspace(lambda g: keyed(g, aten.pad.default, (_x(g), [1, 1, 2, 0]), value=2.5))
    assert rewrite_keeps_function(ws, constant_pad, node, X) is True


def test_a_slice_whose_start_is_a_keyword_is_no_full_slice() -> None:
    ws, node = workspace(lambda g: keyed(g, aten.slice.Tensor, (_x(g), 2), start=1))
    assert rewrite_keeps_function(ws, remove_no_ops, node, X) is False


def test_a_pad_of_a_keyword_value_is_not_merged_as_zero() -> None:
    def build(g):
        inner = keyed(g, aten.constant_pad_nd.default, (_x(g), [1, 1]), value=1.0)
        return call(g, aten.constant_pad_nd.default, inner, [0, 0, 1, 1])

    ws, node = workspace(build)
    assert rewrite_keeps_function(ws, merge_zero_pads, node, X) is False


def test_constants_added_with_alpha_do_not_cancel() -> None:
    constants = {"c": torch.tensor([1.0, -2.0, 0.5], dtype=F64).reshape(1, 3, 1, 1)}

    def build(g):
        c = g.get_attr("c")
        return call(g, aten.sub.Tensor, keyed(g, aten.add.Tensor, (_x(g), c), alpha=2), c)

    ws, node = workspace(build, constants)
    assert rewrite_keeps_function(ws, cancel_constants, node, X) is False


def test_padding_same_given_as_keywords_is_written_with_its_dilation() -> None:
    weight = torch.randn(4, 3, 3, 2, dtype=F64, generator=torch.Generator().manual_seed(1))

    def build(g):
        w = g.get_attr("w")
        w.meta["val"] = weight
        return keyed(g, aten.conv2d.padding, (_x(g), w), padding="same", dilation=[2, 1])

    ws, node = workspace(build, {"w": weight})
    assert rewrite_keeps_function(ws, explicit_padding, node, X) is True


def test_a_write_whose_bounds_are_keywords_pads_by_them() -> None:
    constants = {"canvas": torch.full((1, 3, 5, 9), 0.25, dtype=F64)}

    def build(g):
        canvas = g.get_attr("canvas")
        return keyed(g, aten.slice_scatter.default, (canvas, _x(g)), dim=3, start=1, end=-2, step=1)

    ws, node = workspace(build, constants)
    assert rewrite_keeps_function(ws, write_into_fill, node, X) is True


def test_a_global_pool_with_a_keyword_divisor_is_no_mean() -> None:
    def build(g):
        return keyed(g, aten.avg_pool2d.default, (_x(g), [5, 6]), divisor_override=7)

    ws, node = workspace(build)
    assert rewrite_keeps_function(ws, global_pool, node, X) is False
