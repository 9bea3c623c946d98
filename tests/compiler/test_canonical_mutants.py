"""Graph canonicalisations on forwards that almost match them (kill tests of the mutation pass;
``mutation/survivors.txt`` names each one): the near-miss must stay exact."""

from __future__ import annotations

import pytest
import torch
from torch import fx, nn

from et.compiler.canonical import INT_MAX, fill_value, write_border
from et.compiler.certificate import CertificateBuilder
from et.compiler.workspace import Workspace
from et.domain import IMAGE_UNIT
from tests.compiler.graphs import call, workspace

aten = torch.ops.aten


def _border_writes(step: int) -> tuple[Workspace, fx.Node]:
    """``pad₀(x, 2)`` then a per-channel constant written into the four border strips of
    width 2, every ``step``-th row or column (DBB's BN-and-pad writes with step 1)."""
    root = nn.Module()
    root.register_buffer("value", torch.full((1, 3, 1, 1), 0.5, dtype=torch.float64))
    graph = fx.Graph()
    current = graph.call_function(
        aten.constant_pad_nd.default, (graph.placeholder("x"), [2, 2, 2, 2], 0.0)
    )
    value = graph.get_attr("value")
    for dim, start, end in ((2, 0, 2), (2, -2, INT_MAX), (3, 0, 2), (3, -2, INT_MAX)):
        source = graph.call_function(aten.expand.default, (value, [1, 3, 2, 2]))
        current = graph.call_function(
            aten.slice_scatter.default, (current, source, dim, start, end, step)
        )
    graph.output(current)
    workspace = Workspace(fx.GraphModule(root, graph), IMAGE_UNIT, CertificateBuilder())
    return workspace, current


@pytest.mark.parametrize("step", [1, 2])
def test_only_contiguous_border_strips_are_a_constant_pad(step: int) -> None:
    # step 2 leaves the inner ring of the border at 0: no constant pad computes that
    workspace, last = _border_writes(step)
    assert write_border(workspace, last) is (step == 1)
    assert [a.rule for a in workspace.record.applications] == (["G2"] if step == 1 else [])


# fill_value: which graph values are one constant per channel, and which constant


def _fill(build, constants=None) -> torch.Tensor | None:
    ws, node = workspace(build, constants)
    return fill_value(ws, node)


def _assert_fill(found: torch.Tensor | None, expected: list[float]) -> None:
    assert found is not None
    assert found.shape == (1, len(expected), 1, 1)
    assert found.reshape(-1).tolist() == pytest.approx(expected)


PER_CHANNEL = torch.tensor([0.5, -1.0, 2.0]).reshape(1, 3, 1, 1)


def test_fill_of_constants() -> None:
    canvas = {"c": PER_CHANNEL.expand(2, 3, 4, 5).clone()}
    _assert_fill(_fill(lambda g: g.get_attr("c"), canvas), [0.5, -1.0, 2.0])
    varying = PER_CHANNEL.expand(2, 3, 4, 5).clone()
    varying[1, 0, 2, 3] = 7.0
    assert _fill(lambda g: g.get_attr("c"), {"c": varying}) is None
    _assert_fill(_fill(lambda g: g.get_attr("c"), {"c": torch.tensor(0.75)}), [0.75])
    assert _fill(lambda g: g.get_attr("c"), {"c": torch.ones(3, 4, 5)}) is None
    assert _fill(lambda g: g.placeholder("x")) is None


def test_fill_through_copies_broadcasts_and_spatial_slices() -> None:
    constant = {"c": PER_CHANNEL}

    def through(*ops):
        def build(g):
            node = g.get_attr("c")
            for op, *rest in ops:
                node = call(g, op, node, *rest)
            return node

        return build

    _assert_fill(_fill(through((aten.clone.default,)), constant), [0.5, -1.0, 2.0])
    _assert_fill(_fill(through((aten.expand.default, [1, 3, 4, 4])), constant), [0.5, -1.0, 2.0])
    for dim in (2, 3, -1, -2):
        _assert_fill(_fill(through((aten.slice.Tensor, dim, 0, 1)), constant), [0.5, -1.0, 2.0])
    assert _fill(through((aten.slice.Tensor, 1, 0, 1)), constant) is None  # a channel slice
    assert _fill(through((aten.relu.default,)), constant) is None

    def copied(g):
        return call(g, aten.copy.default, g.placeholder("view"), g.get_attr("c"))

    _assert_fill(_fill(copied, constant), [0.5, -1.0, 2.0])


def test_fill_of_factory_ops_and_their_sums_and_products() -> None:
    def full(g, value=0.25):
        return call(g, aten.full.default, [1, 3, 4, 4], value)

    found = _fill(full)
    _assert_fill(found, [0.25])
    assert found.dtype == torch.float64
    _assert_fill(_fill(lambda g: call(g, aten.ones.default, [1, 3, 4, 4])), [1.0])
    _assert_fill(_fill(lambda g: call(g, aten.zeros.default, [1, 3, 4, 4])), [0.0])
    _assert_fill(_fill(lambda g: call(g, aten.add.Tensor, full(g), full(g, 3.0))), [3.25])
    _assert_fill(_fill(lambda g: call(g, aten.mul.Tensor, full(g), full(g, 3.0))), [0.75])
    assert _fill(lambda g: call(g, aten.add.Tensor, full(g), g.placeholder("x"))) is None
    assert _fill(lambda g: call(g, aten.add.Tensor, g.placeholder("x"), full(g))) is None
    assert _fill(lambda g: call(g, aten.sub.Tensor, full(g), full(g))) is None
