"""A difference of two parallel branches (``a − b`` on one input) compiles to one conv."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from torch import fx, nn

from et.compiler.branch_difference import merge_difference
from et.compiler.helpers import FAN_OUT
from et.compiler.workspace import Workspace
from tests.compiler.graphs import aten, call, workspace
from tests.zoo import blocks
from tests.zoo.test_zoo import check_compiled

FORMS = ["conv-conv", "identity-conv", "conv-identity", "conv-pool", "pool-conv"]


class Difference(nn.Module):
    """``left(x) − right(x)`` with each side a conv, the input itself, or a 3×3 average pool."""

    def __init__(self, form: str, channels: int, ka: int, kb: int, bias: bool) -> None:
        super().__init__()
        self.left, self.right = form.split("-")
        self.a = nn.Conv2d(channels, channels, ka, padding=ka // 2, bias=bias)
        self.b = nn.Conv2d(channels, channels, kb, padding=kb // 2, bias=bias)

    def _side(self, name: str, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        if name == "identity":
            return x
        if name == "pool":
            return F.avg_pool2d(x, 3, 1, 1)
        return conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._side(self.left, self.a, x) - self._side(self.right, self.b, x)


@settings(max_examples=12, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(
    form=st.sampled_from(FORMS),
    channels=st.sampled_from([1, 3, 4]),
    ka=st.sampled_from([1, 3, 5]),
    kb=st.sampled_from([1, 3, 5]),
    bias=st.booleans(),
    size=st.integers(5, 9),
    seed=st.integers(0, 2**31 - 1),
)
def test_a_difference_of_branches_is_one_conv(
    form: str, channels: int, ka: int, kb: int, bias: bool, size: int, seed: int
) -> None:
    model = blocks.randomize(
        Difference(form, channels, ka, kb, bias), torch.Generator().manual_seed(seed)
    )
    compiled = check_compiled(model, channels, size, expected_convs=1)
    used = compiled.certificate.rules_used()
    assert used.get("R13") == 1 and used.get("R3") == 1
    assert "sub.Tensor" not in compiled.certificate.ops_after


class DilatedDifference(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 3, 3, padding=1)
        self.b = nn.Conv2d(3, 3, 3, padding=2, dilation=2)

    def forward(self, x):
        return self.a(x) - self.b(x)


def test_different_dilations_are_left_unfolded_and_named() -> None:
    model = blocks.randomize(DilatedDifference(), torch.Generator().manual_seed(1))
    compiled = check_compiled(model, 3, 7, expected_convs=2)
    refused = [u for u in compiled.certificate.unfolded if u.rule == "R3"]
    assert refused and "dilation" in refused[0].precondition
    assert "R13" not in compiled.certificate.rules_used()  # nothing was rewritten half-way


class SharedDifference(nn.Module):
    """``b(x)`` also feeds a product: folding it into the difference would lose it."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 3, 3, padding=1)
        self.b = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        y = self.b(x)
        return (self.a(x) - y) * y


@pytest.mark.parametrize("seed", [2, 3])
def test_a_branch_read_elsewhere_is_not_folded(seed: int) -> None:
    model = blocks.randomize(SharedDifference(), torch.Generator().manual_seed(seed))
    compiled = check_compiled(model, 3, 6, expected_convs=2)
    assert "R3" not in compiled.certificate.rules_used()


# R13 + R3 on hand-built graphs: ``a − b`` of two branches on one input (a conv, the input
# itself or an average pool of it) becomes one conv equal, in float64, to the difference computed
# by torch; the certificate names each rule on its nodes; the near-misses stay as they were
# (kill tests of the mutation pass; ``mutation/survivors.txt`` names the survivors left).

CHANNELS = 4
R3_CHECKED = ("both branches read the same graph value", FAN_OUT)
R13_CHECKED = "the scale −1 sits between the conv and the sum"


def _same(got: torch.Tensor, expected: torch.Tensor) -> bool:
    """Same shape, equal values up to float64 rounding. (Not ``torch.testing.assert_close``:
    its first call imports ``torch.distributed.tensor``, seconds a kill test must not pay.)"""
    return got.shape == expected.shape and torch.allclose(got, expected, rtol=1e-12, atol=1e-12)


def _weights() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(11)
    shapes = {"wa": (CHANNELS, CHANNELS, 3, 3), "ba": (CHANNELS,)}
    shapes |= {"wb": (CHANNELS, CHANNELS, 1, 1), "bb": (CHANNELS,)}
    return {k: torch.randn(s, generator=generator, dtype=torch.float64) for k, s in shapes.items()}


def _branch(name: str, x: torch.Tensor, weights: dict, dilation: int = 1) -> torch.Tensor:
    """What torch computes for one side: ``a`` = 3×3 conv, ``b`` = 1×1 conv (or a 3×3 conv
    with ``dilation``), ``x`` = the input, ``pool`` = 3×3 average pool, stride 1, padding 1."""
    if name == "x":
        return x
    if name == "pool":
        return F.avg_pool2d(x, 3, 1, 1)
    if name == "a":
        return F.conv2d(x, weights["wa"], weights["ba"], padding=1)
    if dilation != 1:
        return F.conv2d(x, weights["wa"] * 0.5, weights["bb"], padding=dilation, dilation=dilation)
    return F.conv2d(x, weights["wb"], weights["bb"])


def _graph(
    left: str,
    right: str,
    *,
    target: object = aten.sub.Tensor,
    kwargs: dict | None = None,
    dilation: int = 1,
    right_reads_other_input: bool = False,
) -> tuple[Workspace, fx.Node, dict[str, str], dict]:
    """A workspace over ``left(x) − right(x)``; returns it, the difference node, the names of
    the branch nodes (``left``/``right`` → node name) and the weights."""
    weights = _weights()
    constants = dict(weights)
    if dilation != 1:
        constants["wd"] = weights["wa"] * 0.5
    names: dict[str, str] = {}

    def side(graph: fx.Graph, name: str, x: fx.Node) -> fx.Node:
        if name == "x":
            return x
        if name == "pool":
            return call(graph, aten.avg_pool2d.default, x, [3, 3], [1, 1], [1, 1])
        if name == "a":
            w, b, geometry = "wa", "ba", ([1, 1], [1, 1], [1, 1], 1)
        elif dilation != 1:
            w, b, geometry = "wd", "bb", ([1, 1], [dilation] * 2, [dilation] * 2, 1)
        else:
            w, b, geometry = "wb", "bb", ([1, 1], [0, 0], [1, 1], 1)
        conv_args = (x, graph.get_attr(w), graph.get_attr(b), *geometry)
        return call(graph, aten.conv2d.default, *conv_args)

    def build(graph: fx.Graph) -> fx.Node:
        x = graph.placeholder("x")
        x.meta["val"] = torch.empty(1, CHANNELS, 8, 8, dtype=torch.float64)
        other = x
        if right_reads_other_input:
            other = graph.placeholder("y")
            other.meta["val"] = x.meta["val"]
        a, b = side(graph, left, x), side(graph, right, other)
        names["left"], names["right"] = a.name, b.name
        return graph.call_function(target, (a, b), kwargs or {})  # type: ignore[arg-type]

    ws, node = workspace(build, constants)
    return ws, node, names, weights


def _assert_computes(ws: Workspace, expected) -> None:
    """The workspace's module equals ``expected(x)`` at two input sizes."""
    module = ws.finish()
    generator = torch.Generator().manual_seed(5)
    for shape in ((1, CHANNELS, 7, 9), (2, CHANNELS, 10, 6)):
        x = torch.rand(shape, generator=generator, dtype=torch.float64)
        assert _same(module(x), expected(x))


def _ops(ws: Workspace) -> list:
    return [n.target for n in ws.graph.nodes if n.op == "call_function"]


# (left, right, the rule that turned the non-conv side into a conv, if any)
MERGED = [("a", "b", None), ("x", "a", "R6"), ("a", "x", "R6"), ("pool", "a", "R10")]
MERGED += [("a", "pool", "R10")]


@pytest.mark.parametrize(("left", "right", "made"), MERGED)
def test_a_difference_of_branches_on_one_input_is_one_conv(left, right, made) -> None:
    """``left(x) − right(x) = conv(x; W_left − W_right, b_left − b_right)``: one conv, equal
    to torch's difference; the certificate records the identity (R6) or pool (R10) made a
    conv on its own node, then R13 (scale −1) on the subtracted branch, then R3 on both
    branches and the difference with the graph conditions checked."""
    ws, node, names, weights = _graph(left, right)
    sub = node.name
    assert merge_difference(ws, node) is True
    assert _ops(ws) == [aten.conv2d.default]
    records = [(a.rule, a.nodes) for a in ws.record.applications]
    expected = [("R13", (names["right"],)), ("R3", (names["left"], names["right"], sub))]
    if made is not None:
        side = names["left"] if left in ("x", "pool") else names["right"]
        expected.insert(0, (made, (side,)))
    assert records == expected
    r13, r3 = ws.record.applications[-2:]
    assert r13.preconditions[-1] == R13_CHECKED
    assert r3.preconditions[-2:] == R3_CHECKED
    _assert_computes(ws, lambda x: _branch(left, x, weights) - _branch(right, x, weights))


LEFT_ALONE = {
    "a sum": dict(left="a", right="b", target=aten.add.Tensor),
    "a scaled difference": dict(left="a", right="b", kwargs={"alpha": 2.0}),
    "branches on two inputs": dict(left="a", right="b", right_reads_other_input=True),
    "no conv on either side": dict(left="x", right="pool"),
    "a side that is no conv": dict(left="a", right="relu"),
}


@pytest.mark.parametrize("case", sorted(LEFT_ALONE))
def test_near_misses_are_left_alone(case: str) -> None:
    """A sum, a difference with ``alpha``, branches on different inputs, or a side that no
    rule makes a conv: nothing is rewritten or recorded."""
    spec = dict(LEFT_ALONE[case])
    relu = spec["right"] == "relu"
    if relu:
        spec["right"] = "x"
    ws, node, _, _ = _graph(**spec)
    if relu:  # the right side becomes relu(x)
        x = ws.graph.find_nodes(op="placeholder")[0]
        with ws.graph.inserting_before(node):
            node.replace_input_with(x, ws.graph.call_function(aten.relu.default, (x,)))
    before = _ops(ws)
    assert merge_difference(ws, node) is False
    assert _ops(ws) == before
    assert not ws.record.applications
    assert not ws.record.unfolded({n.name for n in ws.graph.nodes})


def test_a_difference_of_different_dilations_is_refused_and_named() -> None:
    """R3 needs one dilation on both branches: the difference stays, R3's failed condition
    and its detail are recorded on the difference node, and nothing is recorded as done."""
    ws, node, _, weights = _graph("a", "b", dilation=2)
    before = _ops(ws)
    assert merge_difference(ws, node) is False
    assert _ops(ws) == before
    assert not ws.record.applications
    (refused,) = ws.record.unfolded({node.name})
    assert (refused.node, refused.rule) == (node.name, "R3")
    assert refused.precondition == "the same dilation on every branch"
    assert refused.detail == "dilation: found [(1, 1), (2, 2)]"
    _assert_computes(ws, lambda x: _branch("a", x, weights) - _branch("b", x, weights, dilation=2))
