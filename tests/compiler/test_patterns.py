"""Declarative patterns: arguments by schema name, unnamed arguments at their default, fan-out
in the pattern, one value per name (issue 25's registry)."""

from __future__ import annotations

import operator

import pytest
from torch import fx

from et.compiler.patterns import (
    GRAPH,
    GraphCheck,
    Op,
    Rewrite,
    Var,
    driver,
    integer,
    match,
    number,
)
from tests.compiler.graphs import aten, call, keyed, workspace

PS = aten.pixel_shuffle.default
SUM = Op(aten.add.Tensor, name="sum", self=Var("a"), other=Var("b"))


def _graph():
    graph = fx.Graph()
    return graph, graph.placeholder("x"), graph.placeholder("y")


def test_arguments_bind_by_name_whether_positional_or_keyword() -> None:
    graph, x, y = _graph()
    for node in (call(graph, aten.add.Tensor, x, y), keyed(graph, aten.add.Tensor, (x,), other=y)):
        found = match(SUM, node)
        assert found is not None
        assert (found["a"], found["b"], found["sum"]) == (x, y, node)


def test_an_argument_the_pattern_does_not_name_must_hold_its_default() -> None:
    graph, x, y = _graph()
    assert match(SUM, keyed(graph, aten.add.Tensor, (x, y), alpha=1)) is not None
    assert match(SUM, keyed(graph, aten.add.Tensor, (x, y), alpha=2)) is None
    scaled = Op(aten.add.Tensor, self=Var("a"), other=Var("b"), alpha=Var("alpha", number))
    assert match(scaled, keyed(graph, aten.add.Tensor, (x, y), alpha=2))["alpha"] == 2


def test_fan_out_is_part_of_the_pattern() -> None:
    graph, x, _ = _graph()
    shuffled = call(graph, PS, x, 2)
    relu = call(graph, aten.relu.default, shuffled)
    pattern = Op(aten.relu.default, self=Op(PS, single_user=True, self=Var("y"), upscale_factor=2))
    assert match(pattern, relu) == {"y": x}
    call(graph, aten.sigmoid.default, shuffled)  # a second reader of the shuffle
    assert match(pattern, relu) is None


def test_one_name_binds_one_value() -> None:
    graph, x, y = _graph()
    same = Op(aten.add.Tensor, self=Var("v"), other=Var("v"))
    assert match(same, call(graph, aten.add.Tensor, x, x)) == {"v": x}
    assert match(same, call(graph, aten.add.Tensor, x, y)) is None


def test_constants_and_predicates_decide() -> None:
    graph, x, _ = _graph()
    pattern = Op(PS, self=Var("y"), upscale_factor=Var("s", integer))
    assert match(pattern, call(graph, PS, x, 3)) == {"y": x, "s": 3}
    assert match(pattern, call(graph, PS, x, True)) is None
    assert match(Op(PS, self=Var("y"), upscale_factor=2), call(graph, PS, x, 3)) is None
    assert match(pattern, x) is None  # no call
    assert match(pattern, call(graph, aten.relu.default, x)) is None  # another op


def test_a_pattern_that_leaves_out_a_required_argument_is_an_error() -> None:
    graph, x, _ = _graph()
    with pytest.raises(ValueError, match="upscale_factor"):
        match(Op(PS, self=Var("y")), call(graph, PS, x, 2))


def test_the_driver_applies_the_first_matching_pattern() -> None:
    seen = []

    def apply(ws, node, found):
        seen.append((node.name, sorted(found)))
        return True

    step = driver(Rewrite("E7", (Op(aten.sigmoid.default, self=Var("s")), SUM), apply))
    assert step.__name__ == "apply"
    ws, node = workspace(lambda g: call(g, aten.add.Tensor, g.placeholder("x"), 1.0))
    assert step(ws, node) is True
    assert seen == [(node.name, ["a", "b", GRAPH, "sum"])]
    ws, node = workspace(lambda g: call(g, aten.relu.default, g.placeholder("x")))
    assert step(ws, node) is False


def _checked(*checks: GraphCheck):
    """A rewrite of ``relu(x)`` with ``checks``; what ``apply`` got; its workspace and node."""
    seen: list = []

    def apply(ws, node, found):
        seen.append(found[GRAPH])
        ws.record.applied("R6", [node], found[GRAPH])
        return True

    step = driver(Rewrite("R6", (Op(aten.relu.default, self=Var("x")),), apply, checks))
    ws, node = workspace(lambda g: call(g, aten.relu.default, g.placeholder("x")))
    return step, seen, ws, node


def test_the_driver_records_the_declared_check_that_refused() -> None:
    holds = GraphCheck("x holds", lambda ws, node, found: True)
    fails = GraphCheck("y holds", lambda ws, node, found: False, lambda *_: "y was seen false")
    never = GraphCheck("z holds", lambda ws, node, found: pytest.fail("evaluated after a refusal"))
    step, seen, ws, node = _checked(holds, fails, never)
    assert step(ws, node) is False
    assert seen == []  # apply did not run
    (refusal,) = ws.record.unfolded({node.name})
    assert (refusal.rule, refusal.precondition, refusal.detail) == (
        "R6",
        "y holds",
        "y was seen false",
    )


def test_the_checks_that_held_are_recorded_as_graph_checks() -> None:
    first = GraphCheck("x holds", lambda ws, node, found: True)
    second = GraphCheck("y holds", lambda ws, node, found: True, rule="R13")
    step, _, ws, node = _checked(first, second)
    assert step(ws, node) is True
    (application,) = ws.record.applications
    assert [(c.rule, c.precondition, c.checked, c.holds) for c in application.checks] == [
        ("R6", "x holds", "graph", True),
        ("R6", "y holds", "graph", True),  # a held check belongs to the rule applied
    ]
    assert ws.record.unfolded({node.name}) == []


def test_a_structural_check_that_fails_is_no_match_and_no_refusal() -> None:
    silent = GraphCheck("a conv", lambda ws, node, found: False, refuses=False)
    step, seen, ws, node = _checked(silent)
    assert step(ws, node) is False
    assert seen == [] and ws.record.unfolded({node.name}) == []


def test_every_declared_rewrite_cites_a_rule_and_runs_in_the_pipeline() -> None:
    """The registry: each rewrite's rule is a catalogue rule (the graph rules G… included), and
    its step is one of the pipeline's patterns (declared once, run once)."""
    from et.compiler.patterns import REGISTRY
    from et.compiler.pipeline import PATTERNS
    from et.contract import get_rule

    declared = [r for r in REGISTRY if r.apply.__module__.startswith("et.compiler.")]
    assert {r.rule for r in declared} >= {"E2", "E3", "E4", "G16", "E7", "E9", "R3", "R11"}
    for rewrite in declared:
        assert get_rule(rewrite.rule).id == rewrite.rule
    names = [p.__name__ for p in PATTERNS]
    for rewrite in declared:
        assert names.count(rewrite.apply.__name__.lstrip("_")) == 1


# --- the pipeline runs declared rewrites only ------------------------------------------------

#: pipeline steps still written as ``(ws, node) -> bool`` functions (issue 25: to be declared);
#: the list may only shrink: a new step must be a declared Rewrite
HAND_WRITTEN: set[str] = set()


def _registered():
    from et.compiler import pipeline  # noqa: F401  (imports every rewrite module)
    from et.compiler.patterns import REGISTRY

    return [r for r in REGISTRY if r.apply.__module__.startswith("et.compiler.")]


def test_every_pipeline_step_is_the_driver_of_a_registered_rewrite() -> None:
    from et.compiler.pipeline import PATTERNS
    from et.contract import get_rule

    registered = _registered()
    declared = [p for p in PATTERNS if getattr(p, "rewrite", None) is not None]
    assert {p.__name__ for p in PATTERNS if p not in declared} == HAND_WRITTEN
    for step in declared:
        assert any(step.rewrite is r for r in registered)
        rule = step.rewrite.rule
        assert get_rule(rule).id == rule
    # each registered rewrite runs once in the pipeline
    assert sorted(id(p.rewrite) for p in declared) == sorted(id(r) for r in registered)


def _ops(pattern: object):
    """Every :class:`Op` in ``pattern``, itself included."""
    if isinstance(pattern, Op):
        yield pattern
        for argument in pattern.arguments.values():
            yield from _ops(argument)


def _declared_ops():
    return [
        pytest.param(op, id=f"{rewrite.rule}-{rewrite.apply.__name__}-{index}")
        for rewrite in _registered()
        for pattern in rewrite.patterns
        for index, op in enumerate(_ops(pattern))
    ]


@pytest.mark.parametrize("op", _declared_ops())
def test_a_declared_pattern_names_every_required_argument_and_only_real_ones(op: Op) -> None:
    """By the schema of each overload an ``Op`` matches: every argument without a default is
    named (so the match reads it), and every name is an argument of some overload (a misspelt
    name would leave the real argument to its default). Every argument the pattern does not
    name must then hold its schema default, so an undeclared keyword makes it no match."""
    names = set()
    for target in op.target:
        if target is operator.getitem:  # no schema: both of its arguments are required
            assert set(op.arguments) == {"self", "index"}
            return
        schema = target._schema.arguments
        names |= {a.name for a in schema}
        required = {a.name for a in schema if not a.has_default_value()}
        assert required <= set(op.arguments), (target, required - set(op.arguments))
    assert set(op.arguments) <= names, set(op.arguments) - names


def test_an_undeclared_keyword_makes_every_declared_op_not_match() -> None:
    """At each op of each registered pattern (anchors and nested ops), per overload, with its
    declared names (each as a free :class:`Var`, so the sub-patterns do not decide): a call
    giving every required argument matches, and one giving an unnamed defaulted argument any
    other value does not."""
    checked = 0
    ops = [op for r in _registered() for p in r.patterns for op in _ops(p)]
    for op in ops:
        for target in op.target:
            if target is operator.getitem:
                continue  # no schema, no defaults
            shallow = Op(target, **{name: Var(f"v{i}") for i, name in enumerate(op.arguments)})
            graph = fx.Graph()
            required = {
                a.name: graph.placeholder(a.name)
                for a in target._schema.arguments
                if not a.has_default_value()
            }
            assert match(shallow, graph.call_function(target, (), dict(required))) is not None
            for argument in target._schema.arguments:
                if argument.name in op.arguments or not argument.has_default_value():
                    continue
                node = graph.call_function(target, (), {**required, argument.name: _UNUSUAL})
                assert match(shallow, node) is None, (target, argument.name)
                checked += 1
    assert checked >= 10


#: a value no schema has as a default
_UNUSUAL = object()
