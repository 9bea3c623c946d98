"""Lower bounds propagated from the input domain, op by op (kill tests of the mutation pass;
``mutation/survivors.txt`` names each one). The domain is [0.25, 1]: a bound of 0.25 tells a
propagated bound from a fixed 0."""

from __future__ import annotations

import math
import operator

import pytest
import torch

from et.domain import InputDomain
from tests.compiler.graphs import aten, call, workspace

DOMAIN = InputDomain(0.25, 1.0)


def bound(build, constants=None) -> float:
    ws, node = workspace(build, constants, DOMAIN)
    return ws.lower_bound(node)


def test_constants_and_the_input() -> None:
    values = torch.tensor([[0.5, -2.0], [3.0, 1.0]])
    assert bound(lambda g: g.get_attr("c"), {"c": values}) == -2.0
    assert bound(lambda g: g.get_attr("c"), {"c": torch.zeros(0)}) == math.inf
    assert bound(lambda g: g.placeholder("x")) == 0.25
    module = {"m": torch.nn.ReLU()}
    assert bound(lambda g: g.call_module("m", (g.placeholder("x"),)), module) == -math.inf


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        (aten.relu.default, 0.25),
        (aten.sigmoid.default, 0.25),
        (aten.abs.default, 0.25),
        (aten.exp.default, 0.25),
        (aten.neg.default, -math.inf),  # no rule: unbounded
        (aten.tanh.default, -math.inf),
    ],
)
def test_unary_maps(op, expected: float) -> None:
    assert bound(lambda g: call(g, op, g.placeholder("x"))) == expected


def test_rectifier_of_a_negative_input_is_zero() -> None:
    def build(g):
        return call(g, aten.relu.default, call(g, aten.neg.default, g.placeholder("x")))

    assert bound(build) == 0.0


def test_clamps_raise_the_bound_to_their_low() -> None:
    x = "x"
    assert bound(lambda g: call(g, aten.clamp.default, g.placeholder(x), 0.5, 0.9)) == 0.5
    assert bound(lambda g: call(g, aten.clamp.default, g.placeholder(x), 0.5)) == 0.5
    assert bound(lambda g: call(g, aten.clamp.default, g.placeholder(x), None, 0.9)) == 0.25
    assert bound(lambda g: call(g, aten.clamp.default, g.placeholder(x), 0.1, 0.9)) == 0.25
    assert bound(lambda g: call(g, aten.clamp_min.default, g.placeholder(x), 0.75)) == 0.75
    assert bound(lambda g: call(g, aten.hardtanh.default, g.placeholder(x), 0.5, 2.0)) == 0.5


def test_shape_ops_and_getitem_keep_the_bound() -> None:
    assert bound(lambda g: call(g, aten.pixel_shuffle.default, g.placeholder("x"), 2)) == 0.25
    assert bound(lambda g: call(g, operator.getitem, g.placeholder("x"), 0)) == 0.25


def test_leaky_rectifiers_keep_a_non_negative_bound_only() -> None:
    def leaky(source):
        return lambda g: call(g, aten.leaky_relu.default, source(g), 0.1)

    assert bound(leaky(lambda g: g.placeholder("x"))) == 0.25
    relu_of_neg = leaky(
        lambda g: call(g, aten.relu.default, call(g, aten.neg.default, g.placeholder("x")))
    )
    assert bound(relu_of_neg) == 0.0  # exactly 0 is non-negative too
    assert bound(leaky(lambda g: call(g, aten.neg.default, g.placeholder("x")))) == -math.inf


def test_constant_padding_lowers_the_bound_to_its_value() -> None:
    x = "x"
    pads = [1, 1, 1, 1]
    assert bound(lambda g: call(g, aten.constant_pad_nd.default, g.placeholder(x), pads)) == 0.0
    value = -0.5
    built = lambda g: call(g, aten.constant_pad_nd.default, g.placeholder(x), pads, value)  # noqa: E731
    assert bound(built) == -0.5
    built = lambda g: call(g, aten.constant_pad_nd.default, g.placeholder(x), pads, 0.5)  # noqa: E731
    assert bound(built) == 0.25


def test_sums_products_and_concatenations() -> None:
    def two(op, second):
        return lambda g: call(g, op, g.placeholder("x"), second(g))

    constant = {"c": torch.full((1, 3, 1, 1), 0.5)}
    assert bound(two(aten.add.Tensor, lambda g: g.get_attr("c")), constant) == 0.75
    assert bound(two(aten.add.Tensor, lambda g: 2.0)) == 2.25
    assert bound(two(aten.mul.Tensor, lambda g: g.get_attr("c")), constant) == 0.0
    assert bound(two(aten.sub.Tensor, lambda g: g.get_attr("c")), constant) == -math.inf
    negative = {"c": torch.full((1, 3, 1, 1), -0.5)}
    assert bound(two(aten.mul.Tensor, lambda g: g.get_attr("c")), negative) == -math.inf
    cat = lambda g: call(g, aten.cat.default, [g.placeholder("x"), g.get_attr("c")], 1)  # noqa: E731
    assert bound(cat, constant) == 0.25
    assert bound(cat, {"c": torch.full((1, 3, 1, 1), 0.1)}) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("weight", "bias", "expected"),
    [
        (torch.tensor([[[[0.0, 1.0]]]]), None, 0.0),  # zeros count as non-negative
        (torch.tensor([[[[0.5, 1.0]]]]), torch.tensor([0.0]), 0.0),
        (torch.tensor([[[[0.5, 1.0]]]]), torch.tensor([0.5]), 0.0),
        (torch.tensor([[[[0.5, 1.0]]]]), torch.tensor([-0.5]), -math.inf),
        (torch.tensor([[[[-0.5, 1.0]]]]), None, -math.inf),
    ],
)
def test_a_conv_with_non_negative_weights_keeps_a_non_negative_input_non_negative(
    weight, bias, expected: float
) -> None:
    constants = {"w": weight} | ({"b": bias} if bias is not None else {})

    def build(g):
        b = g.get_attr("b") if bias is not None else None
        return call(g, aten.conv2d.default, g.placeholder("x"), g.get_attr("w"), b)

    assert bound(build, constants) == expected


def test_a_conv_of_a_signed_input_is_unbounded() -> None:
    def build(g):
        x = call(g, aten.neg.default, g.placeholder("x"))
        return call(g, aten.conv2d.default, x, g.get_attr("w"), None)

    assert bound(build, {"w": torch.ones(1, 1, 1, 2)}) == -math.inf


def test_an_op_without_arguments_has_no_bound_from_them() -> None:
    """A call with no arguments has first bound −∞: unbounded when it keeps its input's
    bound, 0 after a rectifier."""
    assert bound(lambda g: call(g, aten.clone.default)) == -math.inf
    assert bound(lambda g: call(g, aten.neg.default)) == -math.inf
    assert bound(lambda g: call(g, aten.relu.default)) == 0.0


def test_a_clamp_without_a_low_keeps_the_bound() -> None:
    assert bound(lambda g: call(g, aten.clamp.default, g.placeholder("x"))) == 0.25


def _zero_bounded(x):
    """relu(−x): its bound is exactly 0."""
    return call(x.graph, aten.relu.default, call(x.graph, aten.neg.default, x))


def _product(first, second):
    def build(g):
        x = g.placeholder("x")
        return call(g, aten.mul.Tensor, first(x), second(x))

    return build


def test_a_product_of_non_negative_factors_bounded_by_exactly_zero() -> None:
    """0 is non-negative: a product with a factor bounded by exactly 0 is still ≥ 0."""

    def same(x):
        return x

    assert bound(_product(_zero_bounded, same)) == 0.0
    assert bound(_product(same, _zero_bounded)) == 0.0
    assert bound(_product(_zero_bounded, _zero_bounded)) == 0.0


def test_a_leaky_rectifier_of_a_negative_bound_is_unbounded() -> None:
    def build(g):
        shifted = call(g, aten.add.Tensor, g.placeholder("x"), -1.0)  # bound −0.75
        return call(g, aten.prelu.default, shifted, g.get_attr("a"))

    assert bound(build, {"a": torch.tensor([0.25])}) == -math.inf


def test_a_non_negative_conv_of_an_input_bounded_by_exactly_zero_is_non_negative() -> None:
    def build(g):
        return call(
            g, aten.conv2d.default, _zero_bounded(g.placeholder("x")), g.get_attr("w"), None
        )

    assert bound(build, {"w": torch.ones(1, 1, 1, 2)}) == 0.0
