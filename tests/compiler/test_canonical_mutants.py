"""Graph canonicalisations on forwards that almost match them (kill tests of the mutation pass;
``mutation/survivors.txt`` names each one): the near-miss must stay exact."""

from __future__ import annotations

import pytest
import torch
from torch import fx, nn

from et.compiler.canonical import INT_MAX, write_border
from et.compiler.certificate import CertificateBuilder
from et.compiler.workspace import Workspace
from et.domain import IMAGE_UNIT

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
