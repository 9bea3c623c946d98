"""Reading an ATen call's arguments by schema name (issue 25): positional, keyword and default
values bind to one name each; a call that does not bind is no match."""

from __future__ import annotations

from torch import fx

from et.compiler.workspace import arguments, unit_alpha
from tests.compiler.graphs import aten, keyed


def _node(target, args: tuple, **kwargs) -> fx.Node:
    graph = fx.Graph()
    x = graph.placeholder("x")
    return keyed(graph, target, (x, *args), **kwargs)


def test_positional_keyword_and_default_arguments_bind_by_name() -> None:
    node = _node(aten.slice.Tensor, (2,), end=-1)
    values = arguments(node)
    assert values is not None
    assert (values["dim"], values["start"], values["end"], values["step"]) == (2, None, -1, 1)
    assert values["self"] is node.args[0]


def test_a_keyword_only_argument_is_read_from_the_keywords() -> None:
    assert arguments(_node(aten.add.Tensor, (1.0,), alpha=2))["alpha"] == 2
    assert arguments(_node(aten.add.Tensor, (1.0,)))["alpha"] == 1
    assert unit_alpha(_node(aten.add.Tensor, (1.0,))) is True
    assert unit_alpha(_node(aten.sub.Tensor, (1.0,), alpha=0.5)) is False


def test_none_for_an_argument_that_cannot_be_none_is_its_default() -> None:
    values = arguments(_node(aten.pad.default, ([1, 1], None, None)))
    assert (values["mode"], values["value"]) == ("constant", None)  # value is optional


def test_calls_that_do_not_bind_are_no_match() -> None:
    assert arguments(_node(aten.add.Tensor, (1.0,), beta=2)) is None  # unknown keyword
    assert arguments(_node(aten.slice.Tensor, (2,), dim=3)) is None  # dim given twice
    assert arguments(_node(aten.add.Tensor, ())) is None  # `other` missing
    assert arguments(_node(aten.add.Tensor, (1.0, 2))) is None  # alpha is keyword-only
    graph = fx.Graph()
    assert arguments(graph.placeholder("x")) is None
    assert arguments(graph.call_function(max, (1, 2))) is None  # no ATen schema
