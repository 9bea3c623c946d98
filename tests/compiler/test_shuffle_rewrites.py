"""The tail rewrites (E7, E2) with keyword arguments, what they record, and E2's float32
criterion at its boundary (issue 25)."""

from __future__ import annotations

import pytest
import torch

import et
from et.compiler.shuffle_rewrites import (
    PRECISION,
    PRECISION_RATIO,
    clip_as_relus,
    elementwise_before_shuffle,
)
from et.compiler.workspace import CONV2D
from et.rules import clip_as_relu as e2
from et.rules import move_elementwise_before_pixel_shuffle as e7
from tests.compiler.graphs import aten, call, keyed, placeholder, rewrite_keeps_function, workspace

F64 = torch.float64
PS = aten.pixel_shuffle.default
Y = 3 * torch.randn(1, 8, 4, 5, dtype=F64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    ("target", "kwargs"),
    [
        (aten.leaky_relu.default, {"negative_slope": 0.3}),
        (aten.clamp.default, {"min": -0.5, "max": 0.75}),
        (aten.hardtanh.default, {"min_val": 0.0, "max_val": 2.0}),
    ],
    ids=["leaky slope", "clamp bounds", "hardtanh bounds"],
)
def test_a_map_with_keyword_settings_moves_before_the_shuffle_with_them(target, kwargs) -> None:
    def build(g):
        shuffled = call(g, PS, placeholder(g, "y", 1, 8, 4, 5), 2)
        return keyed(g, target, (shuffled,), **kwargs)

    ws, node = workspace(build)
    assert rewrite_keeps_function(ws, elementwise_before_shuffle, node, Y) is True
    (applied,) = ws.record.applications
    # E7's own transform ran on the module the node computes: both its checks, as run
    ran = [(c.precondition, c.checked, c.holds) for c in applied.checks if c.rule == "E7"]
    assert (str(e7.UNIFORM), "transform", True) in ran
    assert (str(e7.IS_SHUFFLE), "transform", True) in ran


def _clamped_conv(weight: float, bias: float, **kwargs):
    constants = {
        "w": torch.full((2, 1, 1, 1), weight, dtype=F64),
        "b": torch.full((2,), bias, dtype=F64),
    }

    def build(g):
        x = placeholder(g, "x", 1, 1, 4, 4)
        conv = call(g, CONV2D, x, g.get_attr("w"), g.get_attr("b"))
        return keyed(g, aten.clamp.default, (conv,), **kwargs)

    return workspace(build, constants)


def test_a_clamp_with_keyword_bounds_is_folded_with_them() -> None:
    ws, node = _clamped_conv(0.5, 0.25, min=0.0, max=0.5)
    x = torch.rand(2, 1, 4, 4, dtype=F64, generator=torch.Generator().manual_seed(1))
    assert rewrite_keeps_function(ws, clip_as_relus, node, x) is True
    (applied,) = ws.record.applications
    transform = {c.precondition for c in applied.checks if c.checked == "transform"}
    # check_clip evaluates BOUND and IS_CONV; ISOLATED is a graph fact, never claimed as run
    assert transform == {str(e2.BOUND), str(e2.IS_CONV)}
    assert str(e2.ISOLATED) not in applied.preconditions


@pytest.mark.parametrize(("high", "folded"), [(16.0, True), (16.5, False)])
def test_e2_is_folded_up_to_sixteen_times_the_signal_scale(high: float, folded: bool) -> None:
    """Zero weights and bias 0.5: the clamped signal is 0.5 everywhere, its scale
    max|b| + max|conv(x)| = 1.0, so M = 16 is folded and M = 16.5 is left."""
    assert PRECISION_RATIO == 16
    ws, node = _clamped_conv(0.0, 0.5, min=0.0, max=high)
    x = torch.rand(1, 1, 4, 4, dtype=F64, generator=torch.Generator().manual_seed(2))
    assert rewrite_keeps_function(ws, clip_as_relus, node, x) is folded
    refusals = ws.record.unfolded({n.name for n in ws.graph.nodes})
    if folded:
        assert not refusals
    else:
        (refusal,) = refusals
        assert (refusal.rule, refusal.precondition) == ("E2", PRECISION)
        assert refusal.detail.startswith(f"M = {high:g}, signal scale ≈ 1 ")


def test_e2_is_refused_where_the_signal_cannot_be_measured() -> None:
    """No captured shape for the input: nothing measured, and refusing is the sound answer."""
    constants = {"w": torch.ones(2, 1, 1, 1, dtype=F64), "b": torch.zeros(2, dtype=F64)}

    def build(g):
        conv = call(g, CONV2D, g.placeholder("x"), g.get_attr("w"), g.get_attr("b"))
        return call(g, aten.clamp.default, conv, 0.0, 1.0)

    ws, node = workspace(build, constants)
    assert clip_as_relus(ws, node) is False
    (refusal,) = ws.record.unfolded({n.name for n in ws.graph.nodes})
    assert refusal.precondition == PRECISION


def test_e2_is_folded_under_the_symbolic_capture() -> None:
    """The signal's scale is measured at the example's size when the captured sizes are
    symbolic (before: no measurement, so E2 was refused for every dynamically captured net)."""

    class ClampedConv(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.clamp(self.conv(x), 0, 1)

    torch.manual_seed(0)
    model = ClampedConv().eval()
    compiled = et.compile(model, (torch.rand(1, 3, 16, 16),))
    assert "dynamic" in compiled.certificate.capture
    assert compiled.certificate.rules_used() == {"E2": 1}
    assert not compiled.certificate.unfolded
    x = torch.rand(2, 3, 21, 19)
    with torch.no_grad():
        torch.testing.assert_close(compiled.module(x), model(x), atol=1e-6, rtol=0)
