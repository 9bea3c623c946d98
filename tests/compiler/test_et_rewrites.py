"""The ET rewrites on ordinary code: every keyword of the ATen op is handled exactly or makes
the pattern not match (issue 25), and E2 is left where float32 would lose the output.

Each compile-level case checks the compiled module against the original in float64 (relative
1e-9) at two input sizes; what matters is that compile never raises and never folds wrongly.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

import et
from et.compiler.dual_streams import stack_streams
from et.compiler.et_rewrites import (
    DENSE_ENDS,
    _clamp_bounds,
    anchor_as_conv,
    append_clamp,
    carry_identity,
    clip_as_relus,
    elementwise_before_shuffle,
    nearest_as_shuffle,
    slice_as_columns,
    sum_of_shuffles,
)
from et.compiler.helpers import FAN_OUT
from et.compiler.shuffle_rewrites import PRECISION
from et.domain import InputDomain
from et.rules import stack_elementwise as g6
from et.rules import widen_channel_slice as g5
from et.rules.sum_of_pixel_shuffles import SAME_FACTOR, SAME_SHAPE
from et.testing import compare_outputs, probe_inputs
from tests.compiler.graphs import aten, call, placeholder, workspace

SIZES = ((7, 5), (10, 12))


class Body(nn.Module):
    """Two 3×3 convs (3 → 12), a 1×1 conv (3 → 12) and a 3×3 conv (12 → 12) around a forward
    given as a function."""

    def __init__(self, forward) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 12, 3, padding=1)
        self.b = nn.Conv2d(3, 12, 3, padding=1)
        self.one = nn.Conv2d(3, 12, 1)
        self.c = nn.Conv2d(12, 12, 3, padding=1)
        self.body = forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self, x)


def _compiled(forward, seed: int = 0, channels: int = 3) -> tuple[nn.Module, et.compiler.Compiled]:
    torch.manual_seed(seed)
    model = Body(forward).double().eval()
    example = torch.rand(1, channels, 6, 6, dtype=torch.float64)
    compiled = et.compile(model, (example,))  # a VerificationError here is the bug
    for size in SIZES:
        inputs = probe_inputs((channels, *size))
        report = compare_outputs(model, compiled.module, inputs, dtype=torch.float64)
        assert report.max_rel_error <= 1e-9, report.describe()
    return model, compiled


def _rules(compiled) -> dict[str, int]:
    return compiled.certificate.rules_used()


# --- G16 (E6 as really used): PS(a) + α·PS(b), PS(a) − α·PS(b) -----------------------------


@pytest.mark.parametrize(
    "combine",
    [
        lambda p, q: torch.add(p, q, alpha=2),
        lambda p, q: torch.add(p, q, alpha=-0.5),
        lambda p, q: p - q,
        lambda p, q: torch.sub(p, q, alpha=3),
    ],
    ids=["add alpha 2", "add alpha -0.5", "sub", "sub alpha 3"],
)
def test_a_scaled_sum_of_shuffles_folds_with_the_scale_in_the_second_conv(combine) -> None:
    """``PS(conv_a(x)) ± α·PS(conv_b(x))`` is one conv and one shuffle: G16 moves the sum in
    front of the shuffle after R13 scales conv_b by ±α, then R3 merges the two convs (each
    rule recorded with the checks its own code ran)."""

    def forward(m, x):
        return combine(F.pixel_shuffle(m.a(x), 2), F.pixel_shuffle(m.b(x), 2))

    _, compiled = _compiled(forward)
    used = _rules(compiled)
    assert used.get("G16") == 1 and used.get("R13") == 1 and "E6" not in used
    assert compiled.certificate.convs_after == 1
    (g16,) = [a for a in compiled.certificate.applications if a.rule == "G16"]
    ran = {c.precondition for c in g16.checks if c.checked == "transform"}
    assert ran == {SAME_FACTOR, SAME_SHAPE}  # G16's own check ran on the two shuffles


def test_a_sum_of_shuffles_of_kernels_of_two_sizes_embeds_the_smaller_first() -> None:
    def forward(m, x):
        return torch.add(F.pixel_shuffle(m.a(x), 2), F.pixel_shuffle(m.one(x), 2), alpha=2)

    _, compiled = _compiled(forward)
    assert {"G16", "R4", "R13"} <= set(_rules(compiled))
    assert compiled.certificate.convs_after == 1


def test_a_sum_of_shuffles_of_something_else_is_left_with_its_reason() -> None:
    """The compiler sums shuffles of convs only (so that they merge): ``PS(conv(x)) +
    2·PS(relu(conv(x)))`` is left, with the reason under G16."""

    def forward(m, x):
        return torch.add(
            F.pixel_shuffle(m.a(x), 2), F.pixel_shuffle(torch.relu(m.b(x)), 2), alpha=2
        )

    _, compiled = _compiled(forward)
    assert "G16" not in _rules(compiled)
    (refusal,) = [u for u in compiled.certificate.unfolded if u.rule == "G16"]
    assert refusal.precondition == "both summands are PixelShuffles of convs"
    assert refusal.op == "aten.add.Tensor"


# --- alpha in the other sum patterns --------------------------------------------------------


def test_a_scaled_anchor_added_to_a_conv_is_folded_exactly() -> None:
    """E3/E4 with ``conv(h) + 2·repeat_interleave(x, 4)``: the scale is not the anchor's."""

    def forward(m, x):
        anchor = torch.repeat_interleave(x, 4, dim=1)
        return F.pixel_shuffle(torch.add(m.c(torch.relu(m.b(x))), anchor, alpha=2), 2)

    _, compiled = _compiled(forward)
    assert _rules(compiled).get("E3") == 1  # an equal operand: exact under any alpha
    assert "E4" not in _rules(compiled)  # E4 carries the plain sum only


def test_a_scaled_carried_branch_is_folded_exactly() -> None:
    """E4's sum ``conv_a(relu(conv(x))) + 3·conv_b(x)``."""

    def forward(m, x):
        return torch.add(m.c(torch.relu(m.b(x))), m.one(x), alpha=3)

    _, compiled = _compiled(forward)
    assert "E4" not in _rules(compiled)


def test_a_scaled_shift_before_a_valid_conv_is_folded_exactly() -> None:
    """G4: ``conv(x + 2·c; padding 0)``."""
    shift = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64).reshape(1, 3, 1, 1)

    def forward(m, x):
        return F.conv2d(torch.add(x, shift, alpha=2), m.a.weight, m.a.bias)

    _compiled(forward)


def test_scaled_constants_that_do_not_cancel_are_kept() -> None:
    """G8: ``(x + 2·c) − c`` is ``x + c``, never x."""
    c = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64).reshape(1, 3, 1, 1)

    def forward(m, x):
        return m.a(torch.add(x, c, alpha=2) - c)

    _compiled(forward)


# --- E2 in float32 -----------------------------------------------------------------------------


class Offset(nn.Module):
    """``clamp(conv(x), 0, M)`` for a 1×1 conv whose outputs lie in [0.6, 0.8] on [0, 1]."""

    def __init__(self, high: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)
        self.high = high
        with torch.no_grad():
            self.conv.weight.fill_(0.2)
            self.conv.bias.fill_(0.6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.conv(x), 0.0, self.high)


def test_a_clip_bound_far_above_the_signal_is_not_folded_and_the_certificate_says_why() -> None:
    model = Offset(1e5).eval()
    compiled = et.compile(model, (torch.rand(1, 1, 6, 6),))
    assert "E2" not in compiled.certificate.rules_used()
    (refusal,) = [u for u in compiled.certificate.unfolded if u.rule == "E2"]
    assert refusal.precondition == PRECISION
    assert "M = 100000" in refusal.detail
    x = torch.rand(4, 1, 9, 9, generator=torch.Generator().manual_seed(3))
    reference = Offset(1e5).double().eval()
    reference.load_state_dict(model.state_dict())
    with torch.no_grad():
        exact = reference(x.double())
        error = (compiled.module.float()(x) - exact).abs().max().item()
    assert exact.min() > 0.55 and exact.max() < 0.85  # outputs ≈ 0.7
    assert error < 1e-6


def test_a_clip_bound_at_the_signal_is_still_folded() -> None:
    compiled = et.compile(Offset(1.0).eval(), (torch.rand(1, 1, 6, 6),))
    assert compiled.certificate.rules_used().get("E2") == 1
    assert not [u for u in compiled.certificate.unfolded if u.rule == "E2"]


def test_a_scaled_sum_is_not_taken_as_non_negative_for_e4() -> None:
    """``u = relu(x) − 2·relu(x) ≤ 0``: its bound is not the plain sum's, so E4 (which needs
    u ≥ 0) is refused and the network compiles exactly."""

    def forward(m, x):
        u = torch.add(torch.relu(x), torch.relu(x), alpha=-2)
        return m.c(torch.relu(m.b(u))) + m.one(u)

    _, compiled = _compiled(forward)
    assert "E4" not in _rules(compiled)


def test_a_scaled_nearest_anchor_is_its_anchor_conv_scaled_then_carried() -> None:
    """``PS(body(x)) − ½·nearest(x, 2)``: E9, the anchor as a conv (E3) scaled by −½ (R13) and
    summed under one shuffle (G16), then carried (E4): two convs, exact."""

    def forward(m, x):
        body = m.c(torch.relu(m.b(x)))
        return torch.sub(F.pixel_shuffle(body, 2), F.interpolate(x, scale_factor=2), alpha=0.5)

    _, compiled = _compiled(forward)
    assert {"E9", "E3", "R13", "G16", "E4"} <= set(_rules(compiled))
    assert compiled.certificate.convs_after == 2


# Equivalent-Transformation rewrites on the graph, what the certificate records for each, and
# the near-misses left alone (kill tests of the mutation pass; ``mutation/survivors.txt`` names
# each one).


class Forward(nn.Module):
    def __init__(self, forward, cin: int = 3, cout: int = 12) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.other = nn.Conv2d(cin, cout, 1)
        self.body = forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self, x)


def _compiled_forward(forward, cin: int = 3, cout: int = 12) -> et.compiler.Compiled:
    torch.manual_seed(0)
    model = Forward(forward, cin, cout).double().eval()
    compiled = et.compile(model, (torch.rand(1, cin, 6, 6, dtype=torch.float64),))
    report = compare_outputs(model, compiled.module, probe_inputs((cin, 7, 5)), dtype=torch.float64)
    assert report.max_rel_error <= 1e-9, report.describe()
    return compiled


def _applied(compiled: et.compiler.Compiled, rule: str):
    return [a for a in compiled.certificate.applications if a.rule == rule]


def test_clip_after_a_conv_records_both_nodes() -> None:
    compiled = _compiled_forward(lambda m, x: torch.clamp(m.conv(x), 0.0, 0.5))
    (applied,) = _applied(compiled, "E2")
    assert applied.nodes == ("conv2d", "clamp")
    # the graph checks E2 declares, in the order the driver evaluated them
    assert applied.preconditions[-2:] == (FAN_OUT, "the clamp is clamp(y, 0, M)")


def test_nearest_upsampling_by_an_integer_becomes_a_shuffle() -> None:
    compiled = _compiled_forward(lambda m, x: F.interpolate(m.conv(x), scale_factor=2))
    (applied,) = _applied(compiled, "E9")
    assert len(applied.nodes) == 1
    assert applied.preconditions[-1] == "equal integer scale factors on both axes"


def test_nearest_upsampling_by_unequal_factors_is_kept() -> None:
    compiled = _compiled_forward(lambda m, x: F.interpolate(m.conv(x), scale_factor=(2.0, 3.0)))
    assert not _applied(compiled, "E9")


def test_nearest_upsampling_by_a_fraction_is_refused_and_named() -> None:
    compiled = _compiled_forward(lambda m, x: F.interpolate(m.conv(x), scale_factor=1.5))
    assert not _applied(compiled, "E9")
    (refusal,) = [u for u in compiled.certificate.unfolded if u.rule == "E9"]
    assert refusal.precondition and refusal.detail


def test_sum_of_shuffles_is_one_shuffle() -> None:
    def forward(m, x):
        return F.pixel_shuffle(m.conv(x), 2) + F.pixel_shuffle(m.other(x), 2)

    compiled = _compiled_forward(forward)
    (applied,) = _applied(compiled, "G16")
    assert applied.preconditions[-1] == "the same upscale factor on both"
    assert len(applied.nodes) == 5  # both convs, both shuffles, the sum
    # the 1×1 conv is embedded into 3×3 (R4) so that the two convs merge into one next
    (embedded,) = [a for a in _applied(compiled, "R4") if a.nodes == applied.nodes[1:2]]
    assert all(c.checked == "transform" for c in embedded.checks)


def test_a_shuffle_read_twice_is_not_summed_away() -> None:
    def forward(m, x):
        shuffled = F.pixel_shuffle(m.conv(x), 2)
        return (shuffled + F.pixel_shuffle(m.other(x), 2)) * torch.sigmoid(shuffled)

    compiled = _compiled_forward(forward)
    assert not _applied(compiled, "G16")


def test_rectifier_after_a_shuffle_moves_before_it() -> None:
    compiled = _compiled_forward(lambda m, x: torch.relu(F.pixel_shuffle(m.conv(x), 2)))
    (applied,) = _applied(compiled, "E7")
    assert applied.preconditions[-1] == "the map is element-wise and channel-uniform"
    assert compiled.certificate.ops_after.get("pixel_shuffle.default") == 1


@pytest.mark.parametrize("dim", [1, -3])
def test_repeated_input_summed_with_a_conv_becomes_an_anchor_conv(dim: int) -> None:
    compiled = _compiled_forward(lambda m, x: m.conv(x) + torch.repeat_interleave(x, 4, dim=dim))
    (applied,) = _applied(compiled, "E3")
    assert len(applied.nodes) == 1
    assert applied.preconditions[-1] == "PyTorch PixelShuffle (interleaved) channel order"


def test_input_repeated_along_another_axis_is_no_anchor() -> None:
    def forward(m, x):
        return m.conv(x) + torch.repeat_interleave(x, 4, dim=2)[..., ::4, :].repeat(1, 4, 1, 1)

    compiled = _compiled_forward(forward)
    # the repeat along the rows is no anchor; the channel tiling after it is (tiled order)
    applied = _applied(compiled, "E3")
    assert [a.nodes for a in applied] == [("repeat",)]
    assert "tiled" in applied[0].preconditions[-1]


def test_one_channel_input_broadcast_onto_a_conv_becomes_an_anchor_conv() -> None:
    compiled = _compiled_forward(lambda m, x: m.conv(x) + x, cin=1, cout=4)
    assert len(_applied(compiled, "E3")) == 1


# Each Equivalent-Transformation pattern of :mod:`et.compiler.et_rewrites` driven directly on a
# small hand-built ATen graph (kill tests of the mutation pass; ``mutation/survivors.txt`` names
# the equivalent mutants). A pattern that fires must return True, leave a graph computing what
# the original graph computed (float64, to 1e-12), with the expected ops, and record the rule on
# the named nodes with the preconditions it checked; a near-miss must return False and leave the
# graph alone, and a refusal names the node, the rule, the broken precondition and what was found.

PS = aten.pixel_shuffle.default
CONV = aten.conv2d.default
F64 = torch.float64


def _image(graph: fx.Graph, name: str, channels: int, size: int = 6) -> fx.Node:
    """A placeholder whose capture metadata says it has ``channels`` channels."""
    return placeholder(graph, name, 1, channels, size, size)


def _conv(graph, x, w: str, b: str | None, padding=1, stride=1, dilation=1, groups=1):
    bias = graph.get_attr(b) if b is not None else None
    args = (x, graph.get_attr(w), bias, [stride] * 2, [padding] * 2, [dilation] * 2, groups)
    return call(graph, CONV, *args)


def _weights(seed: int, **shapes: tuple[int, ...]) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        name: torch.randn(*shape, generator=generator, dtype=F64) for name, shape in shapes.items()
    }


def _frozen(ws) -> fx.GraphModule:
    """The graph as it is now, as a runnable module (the reference for the rewritten one)."""
    module = copy.deepcopy(ws.module)
    module.recompile()
    return module


def _assert_same_function(ws, before: fx.GraphModule, *inputs: torch.Tensor) -> None:
    after = ws.finish()
    torch.testing.assert_close(after(*inputs), before(*inputs), rtol=1e-12, atol=1e-12)


def _ops(ws) -> list:
    return [n.target for n in ws.graph.nodes if n.op == "call_function"]


def _application(ws, rule: str):
    (applied,) = [a for a in ws.record.applications if a.rule == rule]
    return applied


def _refusal(ws, node: fx.Node):
    (refusal,) = ws.record.unfolded({node.name})
    return refusal.node, refusal.rule, refusal.precondition, refusal.detail


def _rand(*shape: int, low: float = -1.0, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return low + (1.0 - low) * torch.rand(*shape, generator=generator, dtype=F64)


# --- append_clamp: the caller's output clamp --------------------------------------------------
def test_output_clamp_is_appended_to_the_returned_value() -> None:
    """The output becomes ``clamp(f(x), low, high)`` with float bounds; it is the caller's
    specification (``certificate.output_clamp``), so no rule application is recorded."""
    ws, node = workspace(lambda g: call(g, aten.mul.Tensor, g.placeholder("x"), 3.0))
    append_clamp(ws, (0, 2))
    output = next(n for n in ws.graph.nodes if n.op == "output")
    clamp = output.args[0]
    assert (clamp.target, clamp.args) == (aten.clamp.default, (node, 0.0, 2.0))
    assert all(type(v) is float for v in clamp.args[1:])
    assert [n.op for n in ws.graph.nodes][-2:] == ["call_function", "output"]
    assert ws.record.applications == []
    x = torch.tensor([[-1.0, 0.25, 0.5, 1.0]], dtype=F64)
    torch.testing.assert_close(ws.finish()(x), torch.tensor([[0.0, 0.75, 1.5, 2.0]], dtype=F64))


# --- _clamp_bounds ------------------------------------------------------------------------------
def _bounds_of(target, *args):
    graph = fx.Graph()
    return _clamp_bounds(call(graph, target, graph.placeholder("y"), *args))


@pytest.mark.parametrize(
    ("target", "args", "bounds"),
    [
        (aten.clamp.default, (0.0, 2.5), (0.0, 2.5)),
        (aten.clamp.default, (-0.5,), (-0.5, math.inf)),
        (aten.clamp.default, (None, 3), (-math.inf, 3.0)),
        (aten.clamp.default, (), (-math.inf, math.inf)),
        (aten.hardtanh.default, (), (-1.0, 1.0)),
        (aten.hardtanh.default, (0.25,), (0.25, 1.0)),
        (aten.hardtanh.default, (None, 4.0), (-1.0, 4.0)),
        (aten.hardtanh.default, (0, 3), (0.0, 3.0)),
    ],
)
def test_clamp_bounds_read_both_arguments_and_their_defaults(target, args, bounds) -> None:
    """clamp's missing bounds are ∓∞, hardtanh's are −1 and 1; the bounds come back as floats."""
    found = _bounds_of(target, *args)
    assert found == bounds
    assert all(type(v) is float for v in found)


def test_other_ops_have_no_clamp_bounds() -> None:
    assert _bounds_of(aten.relu.default) is None
    assert _bounds_of(aten.leaky_relu.default, 0.0, 1.0) is None


# --- E7: elementwise_before_shuffle -------------------------------------------------------------
UNIFORM_MAPS = [
    (aten.relu.default, ()),
    (aten.clamp.default, (0.1, 0.7)),
    (aten.hardtanh.default, (-0.3, 0.4)),
    (aten.leaky_relu.default, (0.2,)),
]


@pytest.mark.parametrize(("target", "args"), UNIFORM_MAPS, ids=lambda v: str(v))
def test_channel_uniform_map_moves_before_the_shuffle(target, args) -> None:
    """E7: ``f(PS(y), *args) = PS(f(y, *args), r)``, recorded on the shuffle and the map."""
    nodes = {}

    def build(g):
        nodes["ps"] = call(g, PS, _image(g, "y", 8, 3), 2)
        nodes["f"] = call(g, target, nodes["ps"], *args)
        return nodes["f"]

    ws, node = workspace(build)
    before = _frozen(ws)
    assert elementwise_before_shuffle(ws, node) is True
    assert _ops(ws) == [target, PS]
    applied = _application(ws, "E7")
    assert applied.nodes == (nodes["ps"].name, nodes["f"].name)
    assert applied.preconditions[-1] == "the map is element-wise and channel-uniform"
    _assert_same_function(ws, before, _rand(1, 8, 3, 3))


def test_map_of_a_shuffle_read_twice_or_of_no_shuffle_is_kept() -> None:
    """The shuffle must feed only the map; a non-uniform map, a map of something else, or of a
    plain number is no E7."""

    def shared(g):
        ps = call(g, PS, g.placeholder("y"), 2)
        return call(g, aten.mul.Tensor, call(g, aten.relu.default, ps), ps)

    ws, node = workspace(shared)
    assert elementwise_before_shuffle(ws, node.args[0]) is False
    assert _ops(ws) == [PS, aten.relu.default, aten.mul.Tensor]

    def sigmoid(g):
        return call(g, aten.sigmoid.default, call(g, PS, g.placeholder("y"), 2))

    ws, node = workspace(sigmoid)
    assert elementwise_before_shuffle(ws, node) is False
    ws, node = workspace(lambda g: call(g, aten.relu.default, g.placeholder("y")))
    assert elementwise_before_shuffle(ws, node) is False
    ws, node = workspace(lambda g: call(g, aten.relu.default, 2.0))
    assert elementwise_before_shuffle(ws, node) is False
    assert not ws.record.applications


# --- G16: sum_of_shuffles -----------------------------------------------------------------------
def test_sum_of_two_shuffles_is_the_shuffle_of_the_sum() -> None:
    """G16: ``PS(conv_a(a), 2) + PS(conv_b(b), 2) = PS(conv_a(a) + conv_b(b), 2)``, recorded
    on both convs, both shuffles and the add."""
    constants = _weights(21, wa=(8, 3, 3, 3), ba=(8,), wb=(8, 2, 3, 3), bb=(8,))
    nodes = {}

    def build(g):
        nodes["ca"] = _conv(g, _image(g, "a", 3, 3), "wa", "ba")
        nodes["cb"] = _conv(g, _image(g, "b", 2, 3), "wb", "bb")
        nodes["a"] = call(g, PS, nodes["ca"], 2)
        nodes["b"] = call(g, PS, nodes["cb"], 2)
        nodes["add"] = call(g, aten.add.Tensor, nodes["a"], nodes["b"])
        return nodes["add"]

    ws, node = workspace(build, constants)
    before = _frozen(ws)
    assert sum_of_shuffles(ws, node) is True
    assert _ops(ws) == [CONV, CONV, aten.add.Tensor, PS]
    applied = _application(ws, "G16")
    assert applied.nodes == tuple(nodes[k].name for k in ("ca", "cb", "a", "b", "add"))
    assert applied.preconditions[-1] == "the same upscale factor on both"
    _assert_same_function(ws, before, _rand(1, 3, 3, 3), _rand(1, 2, 3, 3, seed=2))


def _sum(first, second, *extra, target=aten.add.Tensor):
    def build(g):
        a, b = g.placeholder("a"), g.placeholder("b")
        return call(g, target, first(g, a), second(g, b), *extra)

    return workspace(build)


def _shuffle(factor: int):
    return lambda g, v: call(g, PS, v, factor)


def _plain(g, v):
    return v


@pytest.mark.parametrize(
    ("first", "second", "extra", "target"),
    [
        (_shuffle(2), _shuffle(3), (), aten.add.Tensor),
        (_shuffle(2), _shuffle(2), (), aten.mul.Tensor),
        (_shuffle(2), _shuffle(2), (1,), aten.add.Tensor),
        (_plain, _shuffle(2), (), aten.add.Tensor),
        (_shuffle(2), _plain, (), aten.add.Tensor),
        (lambda g, v: 1.0, _shuffle(2), (), aten.add.Tensor),
        (_shuffle(2), lambda g, v: 1.0, (), aten.add.Tensor),
    ],
    ids=[
        "factors differ",
        "product",
        "three arguments",
        "a plain",
        "b plain",
        "a number",
        "b number",
    ],
)
def test_sums_that_are_no_sum_of_equal_shuffles_are_kept(first, second, extra, target) -> None:
    ws, node = _sum(first, second, *extra, target=target)
    ops = _ops(ws)
    assert sum_of_shuffles(ws, node) is False
    assert _ops(ws) == ops
    assert not ws.record.applications


@pytest.mark.parametrize("shared", [0, 1])
def test_a_shuffle_read_elsewhere_is_not_summed_away(shared: int) -> None:
    """Both shuffles must feed only the add (either one read twice stops G16)."""

    def build(g):
        shuffles = [call(g, PS, g.placeholder(n), 2) for n in ("a", "b")]
        total = call(g, aten.add.Tensor, *shuffles)
        return call(g, aten.mul.Tensor, total, shuffles[shared])

    ws, node = workspace(build)
    assert sum_of_shuffles(ws, node.args[0]) is False
    assert _ops(ws) == [PS, PS, aten.add.Tensor, aten.mul.Tensor]


# --- E2: clip_as_relus --------------------------------------------------------------------------
def _clamped(target, *bounds, bias: bool = True, users: int = 1):
    constants = _weights(3, w=(3, 2, 3, 3), b=(3,))
    nodes = {}

    def build(g):
        nodes["conv"] = _conv(g, placeholder(g, "x", 1, 2, 5, 4), "w", "b" if bias else None)
        nodes["clamp"] = call(g, target, nodes["conv"], *bounds)
        if users == 2:
            return call(g, aten.add.Tensor, nodes["clamp"], nodes["conv"])
        return nodes["clamp"]

    ws, _ = workspace(build, constants)
    return ws, nodes


@pytest.mark.parametrize(
    ("target", "bounds", "bias"),
    [
        (aten.clamp.default, (0.0, 0.5), True),
        (aten.hardtanh.default, (0.0, 2.0), True),
        (aten.clamp.default, (0, 1), False),
    ],
)
def test_clip_of_a_conv_becomes_two_convs_and_two_relus(target, bounds, bias) -> None:
    """E2: ``clamp(conv(x), 0, M) = ReLU(clip(ReLU(conv'(x))))``, recorded on conv and clamp."""
    ws, nodes = _clamped(target, *bounds, bias=bias)
    before = _frozen(ws)
    assert clip_as_relus(ws, nodes["clamp"]) is True
    assert _ops(ws) == [CONV, aten.relu.default, CONV, aten.relu.default]
    applied = _application(ws, "E2")
    assert applied.nodes == (nodes["conv"].name, nodes["clamp"].name)
    # the graph checks E2 declares, in the order the driver evaluated them
    assert applied.preconditions[-2:] == (FAN_OUT, "the clamp is clamp(y, 0, M)")
    _assert_same_function(ws, before, _rand(1, 2, 5, 4, low=-3.0))


@pytest.mark.parametrize(
    ("bounds", "detail"),
    [((-0.5, 0.5), "bounds (-0.5, 0.5)"), ((0.0,), "bounds (0.0, inf)")],
)
def test_clamp_not_from_zero_to_a_finite_bound_is_refused(bounds, detail) -> None:
    ws, nodes = _clamped(aten.clamp.default, *bounds)
    assert clip_as_relus(ws, nodes["clamp"]) is False
    assert _refusal(ws, nodes["clamp"]) == (
        nodes["clamp"].name,
        "E2",
        "the clamp is clamp(y, 0, M)",
        detail,
    )
    assert _ops(ws) == [CONV, aten.clamp.default]


def test_clamp_to_a_negative_bound_is_refused_by_the_rule() -> None:
    """clamp(y, 0, −1): the rule's own precondition M ≥ 0 fails, and the certificate says so."""
    ws, nodes = _clamped(aten.clamp.default, 0.0, -1.0)
    assert clip_as_relus(ws, nodes["clamp"]) is False
    assert _refusal(ws, nodes["clamp"]) == (
        nodes["clamp"].name,
        "E2",
        "the upper bound is finite and non-negative (M ≥ 0)",
        "M = -1.0",
    )


def test_clamp_of_a_shared_conv_or_no_conv_or_no_clamp_is_kept() -> None:
    ws, nodes = _clamped(aten.clamp.default, 0.0, 0.5, users=2)
    assert clip_as_relus(ws, nodes["clamp"]) is False
    ws, node = workspace(lambda g: call(g, aten.clamp.default, g.placeholder("x"), 0.0, 0.5))
    assert clip_as_relus(ws, node) is False
    ws, nodes = _clamped(aten.sigmoid.default)
    assert clip_as_relus(ws, nodes["clamp"]) is False
    assert not ws.record.applications and not ws.record.unfolded({nodes["clamp"].name})


# --- E9: nearest_as_shuffle ---------------------------------------------------------------------
NEAREST = aten.upsample_nearest2d.vec


def _nearest(*args):
    ws, node = workspace(lambda g: call(g, NEAREST, g.placeholder("x"), *args))
    return ws, node


@pytest.mark.parametrize("scale", [2, 3])
def test_nearest_upsampling_becomes_repeat_interleave_and_shuffle(scale: int) -> None:
    """E9: ``nearest(x, s) = PS(repeat_interleave(x, s², dim=1), s)``."""
    ws, node = _nearest(None, [float(scale)] * 2)
    before = _frozen(ws)
    assert nearest_as_shuffle(ws, node) is True
    repeat, shuffle = [n for n in ws.graph.nodes if n.op == "call_function"]
    assert repeat.target == aten.repeat_interleave.self_int
    assert repeat.args[1:] == (scale * scale, 1)
    assert (shuffle.target, shuffle.args) == (PS, (repeat, scale))
    applied = _application(ws, "E9")
    assert applied.nodes == (node.name,)
    assert applied.preconditions[-1] == "equal integer scale factors on both axes"
    _assert_same_function(ws, before, _rand(1, 2, 3, 4))


def test_one_listed_factor_is_the_factor_of_both_axes() -> None:
    ws, node = _nearest(None, [2.0])
    assert nearest_as_shuffle(ws, node) is True
    assert [n.args[1] for n in ws.graph.nodes if n.op == "call_function"] == [4, 2]


@pytest.mark.parametrize(
    "args",
    [((8, 8),), ((8, 8), [2.0, 2.0]), (None, [2.0, 3.0]), (None, []), (None, None)],
    ids=["no factors", "output size", "unequal", "empty", "none"],
)
def test_nearest_upsampling_without_one_common_factor_is_kept(args) -> None:
    ws, node = _nearest(*args)
    assert nearest_as_shuffle(ws, node) is False
    assert _ops(ws) == [NEAREST]
    assert not ws.record.applications and not ws.record.unfolded({node.name})
    ws, node = workspace(lambda g: call(g, aten.relu.default, g.placeholder("x"), None, [2.0]))
    assert nearest_as_shuffle(ws, node) is False


def test_nearest_upsampling_by_a_fraction_is_refused() -> None:
    ws, node = _nearest(None, [1.5, 1.5])
    assert nearest_as_shuffle(ws, node) is False
    assert _refusal(ws, node) == (node.name, "E9", "the scale is an integer ≥ 1", "scale = 1.5")
    assert _ops(ws) == [NEAREST]


# --- E3: anchor_as_conv -------------------------------------------------------------------------
def _anchored(other, conv_first: bool = True, out: int = 12, extra=(), target=aten.add.Tensor):
    """``conv(x) + other(g, u)`` (or the other way round) with x 2 channels, u 3 channels."""
    constants = _weights(4, w=(out, 2, 3, 3), b=(out,), v=(1, 3, 1, 1))
    nodes = {}

    def build(g):
        x, u = _image(g, "x", 2), _image(g, "u", 3)
        nodes["conv"] = _conv(g, x, "w", "b")
        nodes["other"] = other(g, u)
        pair = (nodes["conv"], nodes["other"])
        nodes["add"] = call(g, target, *(pair if conv_first else pair[::-1]), *extra)
        return nodes["add"]

    ws, _ = workspace(build, constants)
    return ws, nodes


def _interleaved(repeats: int = 4, dim: int = 1, *extra):
    return lambda g, u: call(g, aten.repeat_interleave.self_int, u, repeats, dim, *extra)


@pytest.mark.parametrize(("dim", "conv_first"), [(1, True), (-3, True), (1, False)])
def test_repeated_input_added_to_a_conv_becomes_an_anchor_conv(dim: int, conv_first) -> None:
    """E3: ``conv(x) + repeat_interleave(u, 4, dim=1)`` = ``conv(x) + conv_K(u)`` with the
    anchor kernel ``K[4c + j, c] = 1``; the repeat is gone, recorded on it."""
    ws, nodes = _anchored(_interleaved(4, dim), conv_first)
    before = _frozen(ws)
    assert anchor_as_conv(ws, nodes["add"]) is True
    assert _ops(ws) == [CONV, CONV, aten.add.Tensor]
    assert nodes["other"] not in ws.graph.nodes
    anchor = [n for n in ws.graph.nodes if n.target == CONV][1]
    assert anchor.args[0].name == "u"
    assert ws.tensor(anchor.args[1]).shape == (12, 3, 1, 1)  # a 1×1 anchor, no padding
    assert list(anchor.args[4]) == [0, 0]
    applied = _application(ws, "E3")
    assert applied.nodes == (nodes["other"].name,)
    assert applied.preconditions[-1] == "PyTorch PixelShuffle (interleaved) channel order"
    _assert_same_function(ws, before, _rand(1, 2, 6, 6), _rand(1, 3, 6, 6, seed=2))


def test_dim_is_read_by_its_name_beside_the_output_size_keyword() -> None:
    def interleaved(g, u):
        node = call(g, aten.repeat_interleave.self_int, u, 4, 1)
        node.kwargs = {"output_size": 12}
        return node

    ws, nodes = _anchored(interleaved)
    assert anchor_as_conv(ws, nodes["add"]) is True


@pytest.mark.parametrize("out", [2, 4])
def test_one_channel_value_broadcast_onto_a_conv_becomes_an_anchor_conv(out: int) -> None:
    """E3 with r = the conv's channels (2 is the least): ``conv(x) + u`` for a one-channel u."""
    ws, nodes = _anchored(lambda g, u: call(g, aten.sum.dim_IntList, u, [1], True), out=out)
    nodes["other"].meta["val"] = torch.empty(1, 1, 6, 6, dtype=F64)
    before = _frozen(ws)
    assert anchor_as_conv(ws, nodes["add"]) is True
    assert _ops(ws) == [CONV, aten.sum.dim_IntList, CONV, aten.add.Tensor]
    _assert_same_function(ws, before, _rand(1, 2, 6, 6), _rand(1, 3, 6, 6, seed=2))


def _one_channel_conv(g, u):
    return _conv(g, u, "v", None, padding=0)


@pytest.mark.parametrize(
    ("other", "out", "extra", "target"),
    [
        (_interleaved(4, 2), 12, (), aten.add.Tensor),
        (_interleaved(2, 1), 12, (), aten.add.Tensor),
        (_interleaved(4, 1), 12, (), aten.mul.Tensor),
        (_interleaved(4, 1), 12, (1,), aten.add.Tensor),
        (lambda g, u: 2.0, 12, (), aten.add.Tensor),
        (_one_channel_conv, 4, (), aten.add.Tensor),
        (lambda g, u: call(g, aten.relu.default, u), 3, (), aten.add.Tensor),
    ],
    ids=["rows", "2 x 3 != 12", "product", "three arguments", "number", "conv", "same width"],
)
def test_other_sums_with_a_conv_get_no_anchor(other, out, extra, target) -> None:
    """Repeats along rows, a repeat count that misses the conv's width, a product, an add
    with an extra argument, a number and a second conv (R3's business) are no anchors."""
    ws, nodes = _anchored(other, out=out, extra=extra, target=target)
    ops = _ops(ws)
    assert anchor_as_conv(ws, nodes["add"]) is False
    assert _ops(ws) == ops and not ws.record.applications


def test_one_channel_value_onto_a_one_channel_conv_is_no_anchor() -> None:
    ws, nodes = _anchored(lambda g, u: call(g, aten.sum.dim_IntList, u, [1], True), out=1)
    nodes["other"].meta["val"] = torch.empty(1, 1, 6, 6, dtype=F64)
    assert anchor_as_conv(ws, nodes["add"]) is False


def test_repeat_of_a_value_of_unknown_width_or_of_no_conv_is_no_anchor() -> None:
    ws, nodes = _anchored(_interleaved(4, 1))
    nodes["other"].args[0].meta.clear()  # u's width is unknown
    assert anchor_as_conv(ws, nodes["add"]) is False

    def build(g):
        u = _image(g, "u", 3)
        repeated = call(g, aten.repeat_interleave.self_int, u, 4, 1)
        return call(g, aten.add.Tensor, call(g, aten.relu.default, g.placeholder("x")), repeated)

    ws, node = workspace(build)
    assert anchor_as_conv(ws, node) is False


# --- E4 + R3: carry_identity and _carry ---------------------------------------------------------
CARRY_WEIGHTS = {
    "w1": (5, 3, 3, 3),
    "b1": (5,),
    "wm": (5, 5, 3, 3),
    "bm": (5,),
    "w2": (4, 5, 3, 3),
    "b2": (4,),
    "w3": (4, 3, 1, 1),
    "b3": (4,),
}


def _carried(
    acts=("relu",),
    anchor_first: bool = False,
    domain: InputDomain | None = None,
    groups: int = 1,
    anchor_dilation: int = 1,
    slopes: dict | None = None,
):
    """``conv2(chain(x)) + conv3(x)``: the chain is conv1 then, per entry of ``acts``, an
    activation and (but after the last) a middle 5 → 5 conv. 5 real + 3 carried = 8 channels,
    a multiple of 4, so no dummy channel is needed."""
    shapes = dict(CARRY_WEIGHTS)
    if groups != 1:
        shapes["w1"] = (6, 1, 3, 3)
        shapes["b1"] = (6,)
        shapes["w2"] = (4, 6, 3, 3)
    constants: dict = _weights(5, **shapes)
    constants.update(slopes or {})
    nodes: dict = {"chain": []}

    def build(g):
        x = _image(g, "x", 3)
        current = _conv(g, x, "w1", "b1", groups=groups)
        nodes["chain"].append(current)
        for index, act in enumerate(acts):
            if index:
                current = _conv(g, current, "wm", "bm")
                nodes["chain"].append(current)
            if act == "relu":
                current = call(g, aten.relu.default, current)
            elif act == "leaky":
                current = call(g, aten.leaky_relu.default, current, 0.2)
            elif act.startswith("prelu"):
                slope = g.placeholder("s") if act == "prelu input" else g.get_attr(act)
                current = call(g, aten.prelu.default, current, slope)
        nodes["last"] = _conv(g, current, "w2", "b2")
        padding = 0 if anchor_dilation == 1 else 2
        kernel = "w3" if anchor_dilation == 1 else "wk"
        nodes["anchor"] = _conv(g, x, kernel, "b3", padding=padding, dilation=anchor_dilation)
        pair = (nodes["last"], nodes["anchor"])
        nodes["add"] = call(g, aten.add.Tensor, *(pair[::-1] if anchor_first else pair))
        return nodes["add"]

    if anchor_dilation != 1:
        constants["wk"] = _weights(6, wk=(4, 3, 3, 3))["wk"]
    ws, _ = workspace(build, constants, **({"domain": domain} if domain else {}))
    ws.align = 4  # the current compiler's default, stated (no dummy channel for 5 + 3)
    return ws, nodes


E4_CHECKED = (
    "the carried input is ≥ 0 on the declared domain",
    "every activation on the chain is a rectifier",
    FAN_OUT,
)


@pytest.mark.parametrize("anchor_first", [False, True])
def test_input_carried_through_a_conv_relu_chain_merges_the_two_convs(anchor_first) -> None:
    """E4 then R3: conv1 is widened to carry x (5 + 3 outputs), the ReLU acts on all 8, and the
    last conv and the anchor conv become one conv reading the 8 channels."""
    ws, nodes = _carried(anchor_first=anchor_first)
    before = _frozen(ws)
    assert carry_identity(ws, nodes["add"]) is True
    assert _ops(ws) == [CONV, aten.relu.default, CONV]
    first, final = [n for n in ws.graph.nodes if n.target == CONV]
    assert ws.tensor(first.args[1]).shape == (8, 3, 3, 3)
    assert ws.tensor(final.args[1]).shape == (4, 8, 3, 3)
    applied = _application(ws, "E4")
    names = [nodes["chain"][0], nodes["last"], nodes["anchor"], nodes["add"]]
    assert applied.nodes == tuple(n.name for n in names)
    assert applied.preconditions[-3:] == E4_CHECKED
    merged = _application(ws, "R3")
    assert merged.nodes == tuple(n.name for n in names[1:])
    _assert_same_function(ws, before, _rand(1, 3, 6, 6, low=0.0))


@pytest.mark.parametrize(
    "acts",
    [("relu", "relu"), ("leaky", "relu"), ("prelu1", "prelu5"), ()],
    ids=["relu relu", "leaky relu", "prelu", "no activation"],
)
def test_input_carried_through_longer_chains(acts) -> None:
    """Middle convs carry x block-diagonally; leaky ReLU keeps its slope and a PReLU gets its
    slopes (one shared or one per channel) widened over the carried channels."""
    slopes = {
        "prelu1": torch.tensor([0.3], dtype=F64),
        "prelu5": torch.tensor([0.1, -0.2, 0.3, 0.4, 0.5], dtype=F64),
    }
    ws, nodes = _carried(acts or ("none",), slopes=slopes)
    before = _frozen(ws)
    assert carry_identity(ws, nodes["add"]) is True
    assert len([t for t in _ops(ws) if t == CONV]) == len(nodes["chain"]) + 1
    applied = _application(ws, "E4")
    assert applied.nodes[: len(nodes["chain"])] == tuple(n.name for n in nodes["chain"])
    assert applied.preconditions[-3:] == E4_CHECKED
    placeholders_done = False
    for n in ws.graph.nodes:  # new constants sit just before their users, after the inputs
        assert not (placeholders_done and n.op == "placeholder")
        placeholders_done = placeholders_done or n.op != "placeholder"
    _assert_same_function(ws, before, _rand(1, 3, 6, 6, low=0.0))


def test_carried_bound_is_the_proven_lower_bound() -> None:
    ws, nodes = _carried(domain=InputDomain(0.25, 1.0))
    assert carry_identity(ws, nodes["add"]) is True
    assert _application(ws, "E4").preconditions[-3] == (
        "the carried input is ≥ 0.25 on the declared domain"
    )


@pytest.mark.parametrize(
    ("options", "rule", "precondition", "detail"),
    [
        pytest.param(
            {"domain": InputDomain(-1.0, 1.0)},
            "E4",
            "the carried input is ≥ 0 on the declared domain",
            "its proven lower bound is -1.0",
            id="input that may be negative",
        ),
        pytest.param(
            {"groups": 3}, "E4", "the convs have groups = 1", "groups = 3", id="grouped first conv"
        ),
        pytest.param(
            {"anchor_dilation": 2},
            "R3",
            "the same dilation on every branch",
            "dilation: found [(1, 1), (2, 2)]",
            id="last and anchor convs that do not merge",
        ),
    ],
)
def test_carries_that_break_a_precondition_are_refused_by_its_rule(
    options: dict, rule: str, precondition: str, detail: str
) -> None:
    """E4 refuses a carry whose input may be negative or whose first conv is grouped; R3 (run
    inside E4) refuses when the last conv and the anchor conv do not merge."""
    ws, nodes = _carried(**options)
    assert carry_identity(ws, nodes["add"]) is False
    assert _refusal(ws, nodes["add"]) == (nodes["add"].name, rule, precondition, detail)
    assert not ws.record.applications


def test_prelu_with_slopes_from_the_input_is_not_widened() -> None:
    ws, nodes = _carried(("prelu input",))
    assert carry_identity(ws, nodes["add"]) is False
    assert not ws.record.applications


def _add_of(first, second):
    def build(g):
        x = _image(g, "x", 3)
        return call(g, aten.add.Tensor, first(g, x), second(g, x))

    return workspace(build, _weights(7, w=(3, 3, 1, 1), b=(3,)))


def test_sums_that_carry_nothing_are_kept() -> None:
    """Two convs of one input (R3's case), a conv plus a non-conv, and a chain that meets a
    shared value or a non-conv are left to other patterns."""
    conv = lambda g, v: _conv(g, v, "w", "b", padding=0)  # noqa: E731
    ws, node = _add_of(conv, conv)
    assert carry_identity(ws, node) is False
    ws, node = _add_of(conv, lambda g, v: call(g, aten.relu.default, v))
    assert carry_identity(ws, node) is False
    ws, node = _add_of(lambda g, v: conv(g, call(g, aten.sigmoid.default, v)), conv)
    assert carry_identity(ws, node) is False
    ws, node = _add_of(lambda g, v: conv(g, call(g, aten.relu.default, conv(g, v))), conv)
    add = node
    assert carry_identity(ws, add) is True  # the unshared chain does carry
    assert not ws.record.unfolded({add.name})


@pytest.mark.parametrize("shared", ["activation", "conv"])
def test_chain_value_read_elsewhere_stops_the_carry(shared: str) -> None:
    constants = _weights(8, w=(3, 3, 1, 1), b=(3,))

    def build(g):
        x = _image(g, "x", 3)
        inner = _conv(g, x, "w", "b", padding=0)
        act = call(g, aten.relu.default, inner)
        total = call(g, aten.add.Tensor, _conv(g, act, "w", "b", 0), _conv(g, x, "w", "b", 0))
        return call(g, aten.mul.Tensor, total, act if shared == "activation" else inner)

    ws, node = workspace(build, constants)
    assert carry_identity(ws, node.args[0]) is False


def test_add_with_three_arguments_or_another_op_carries_nothing() -> None:
    constants = _weights(9, w=(3, 3, 1, 1), b=(3,))

    def build(target, *extra):
        def graph(g):
            x = _image(g, "x", 3)
            chain = _conv(g, call(g, aten.relu.default, _conv(g, x, "w", "b", 0)), "w", "b", 0)
            return call(g, target, chain, _conv(g, x, "w", "b", 0), *extra)

        return graph

    ws, node = workspace(build(aten.mul.Tensor), constants)
    assert carry_identity(ws, node) is False
    ws, node = workspace(build(aten.add.Tensor, 1), constants)
    assert carry_identity(ws, node) is False


# --- G5: slice_as_columns -----------------------------------------------------------------------
def _sliced(slice_args, in_channels: int = 3, bias: bool = True, groups: int = 1, meta=True):
    constants = _weights(10, w=(4, in_channels // groups, 3, 3), b=(4,))
    nodes = {}

    def build(g):
        z = _image(g, "z", 6) if meta else g.placeholder("z")
        nodes["slice"] = call(g, aten.slice.Tensor, z, *slice_args)
        nodes["conv"] = _conv(g, nodes["slice"], "w", "b" if bias else None, groups=groups)
        return nodes["conv"]

    ws, _ = workspace(build, constants)
    return ws, nodes


@pytest.mark.parametrize(
    ("slice_args", "in_channels", "bias"),
    [
        ((1, 2, 5), 3, True),
        ((-3, 2, 5, 1), 3, False),
        ((1, None, 4), 4, True),
        ((1, 0, 2), 2, True),
        ((1, 3), 3, True),
        ((1, 1, 9223372036854775807), 5, True),
        ((1,), 6, True),
        ((1, 1, 6, 2), 3, True),
    ],
    ids=["2:5", "dim -3 step 1 no bias", ":4", "0:2", "3:", "1:max", "whole", "1:6:2"],
)
def test_conv_of_a_channel_slice_reads_the_whole_tensor(slice_args, in_channels, bias) -> None:
    """G5: ``conv(z[:, a:b]; W) = conv(z; W')``, W' zero outside columns a..b."""
    ws, nodes = _sliced(slice_args, in_channels, bias)
    before = _frozen(ws)
    assert slice_as_columns(ws, nodes["conv"]) is True
    (conv,) = [n for n in ws.graph.nodes if n.op == "call_function"]
    assert conv.target == CONV and conv.args[0].name == "z"
    assert ws.tensor(conv.args[1]).shape == (4, 6, 3, 3)
    applied = _application(ws, "G5")
    assert applied.nodes == (nodes["slice"].name, nodes["conv"].name)
    # G5's own code (et.rules.widen_channel_slice) checked the axis and the width
    ran = {c.precondition for c in applied.checks if c.checked == "transform"}
    assert ran >= {str(g5.CHANNEL_AXIS), str(g5.WIDTH)}
    _assert_same_function(ws, before, _rand(1, 6, 5, 5))


@pytest.mark.parametrize(
    ("slice_args", "in_channels", "groups", "meta"),
    [
        ((2, 0, 3), 3, 1, True),
        ((), 6, 1, True),
        ((1, 2, 5), 3, 1, False),
        ((1, 2, 5), 2, 1, True),
        ((1, 2.0, 5), 3, 1, True),
        ((1, 2, 5.0), 3, 1, True),
        ((1, 0, 4), 4, 2, True),
    ],
    ids=[
        "rows",
        "dim 0",
        "unknown width",
        "width differs",
        "float start",
        "float end",
        "grouped",
    ],
)
def test_other_convs_of_slices_are_kept(slice_args, in_channels, groups, meta) -> None:
    ws, nodes = _sliced(slice_args, in_channels, groups=groups, meta=meta)
    assert slice_as_columns(ws, nodes["conv"]) is False
    assert _ops(ws) == [aten.slice.Tensor, CONV]
    assert not ws.record.applications


def test_a_conv_of_no_slice_or_no_conv_is_kept() -> None:
    ws, nodes = _sliced((1, 2, 5))
    assert slice_as_columns(ws, nodes["slice"]) is False
    constants = _weights(11, w=(4, 3, 3, 3), b=(4,))
    ws, node = workspace(lambda g: _conv(g, _image(g, "z", 3), "w", "b"), constants)
    assert slice_as_columns(ws, node) is False


# --- E5: stack_streams --------------------------------------------------------------------------
def _streams(*, first_act=aten.relu.default, second_users: int = 1):
    """x → conv1 (2 outputs) → act1 → m = act1 · 2 → conv2 (3 outputs) → act2; output
    cat([m, act2]) (conv2 after m, so the stacked conv must go before act1)."""
    constants = _weights(12, w1=(2, 3, 3, 3), b1=(2,), w2=(3, 3, 3, 3), b2=(3,))
    nodes = {}

    def build(g):
        x = _image(g, "x", 3)
        nodes["c1"] = _conv(g, x, "w1", "b1")
        nodes["a1"] = call(g, first_act, nodes["c1"])
        kept = call(g, aten.mul.Tensor, nodes["a1"], 2.0)
        nodes["c2"] = _conv(g, x, "w2", "b2")
        nodes["a2"] = call(g, aten.relu.default, nodes["c2"])
        parts = [kept, nodes["a2"]] + ([nodes["c2"]] if second_users == 2 else [])
        return call(g, aten.cat.default, parts, 1)

    ws, _ = workspace(build, constants)
    return ws, nodes


@pytest.mark.parametrize("start", ["c1", "c2"])
def test_two_relu_streams_of_one_input_become_one_conv_and_one_relu(start: str) -> None:
    """E5: ``relu(conv₁(x))``, ``relu(conv₂(x))`` = slices 0:2 and 2:5 of ``relu(conv₁₂(x))``,
    emitted before the earlier ReLU (its users may come before the later one)."""
    ws, nodes = _streams()
    before = _frozen(ws)
    assert stack_streams(ws, nodes[start]) is True
    assert _ops(ws) == [
        CONV,
        aten.relu.default,
        aten.slice.Tensor,
        aten.slice.Tensor,
        aten.mul.Tensor,
        aten.cat.default,
    ]
    slices = [n for n in ws.graph.nodes if n.target == aten.slice.Tensor]
    first, second = ("c1", "c2") if start == "c1" else ("c2", "c1")
    width = {"c1": 2, "c2": 3}
    assert [s.args[1:] for s in slices] == [
        (1, 0, width[first]),
        (1, width[first], width[first] + width[second]),
    ]
    applied = _application(ws, "E5")
    names = [nodes[first], nodes[second], nodes["a" + first[1]], nodes["a" + second[1]]]
    assert applied.nodes == tuple(n.name for n in names)
    assert applied.preconditions[-2:] == (
        "both streams read the same value",
        "the same element-wise rectifier",
    )
    _assert_same_function(ws, before, _rand(1, 3, 5, 5))


def test_the_second_stream_is_found_past_other_readers_of_the_input() -> None:
    """A non-conv reader (one whose sole user is a ReLU too), a conv read twice, a conv with
    another activation and a conv of another stride come first among x's users: each is
    skipped, the matching one is taken."""
    constants = _weights(13, w1=(2, 3, 3, 3), b1=(2,), w2=(3, 3, 3, 3), b2=(3,))
    nodes = {}

    def build(g):
        x = _image(g, "x", 3)
        nodes["c1"] = _conv(g, x, "w1", "b1")
        nodes["a1"] = call(g, aten.relu.default, nodes["c1"])
        decoys = [call(g, aten.sigmoid.default, x)]
        decoys.append(call(g, aten.relu.default, call(g, aten.mul.Tensor, x, 2.0)))
        shared = _conv(g, x, "w2", "b2")
        decoys += [call(g, aten.relu.default, shared), shared]
        decoys.append(call(g, aten.sigmoid.default, _conv(g, x, "w2", "b2")))
        strided = call(g, aten.relu.default, _conv(g, x, "w2", "b2", stride=2))
        nodes["c2"] = _conv(g, x, "w2", "b2")
        nodes["a2"] = call(g, aten.relu.default, nodes["c2"])
        full = call(g, aten.cat.default, [nodes["a1"], nodes["a2"], *decoys], 1)
        return call(g, aten.add.Tensor, full, call(g, aten.sum.default, strided))

    ws, _ = workspace(build, constants)
    before = _frozen(ws)
    assert stack_streams(ws, nodes["c1"]) is True
    names = tuple(nodes[k].name for k in ("c1", "c2", "a1", "a2"))
    assert _application(ws, "E5").nodes == names
    _assert_same_function(ws, before, _rand(1, 3, 5, 5))


@pytest.mark.parametrize(
    "case", ["not a conv", "two users", "sigmoid", "relu with two args", "alone"]
)
def test_convs_without_a_matching_relu_stream_are_kept(case: str) -> None:
    if case == "alone":
        constants = _weights(14, w=(2, 3, 3, 3), b=(2,))

        def alone(g):
            return call(g, aten.relu.default, _conv(g, _image(g, "x", 3), "w", "b"))

        ws, node = workspace(alone, constants)
        assert stack_streams(ws, node.args[0]) is False
        return
    if case == "relu with two args":
        ws, nodes = _streams()
        nodes["a1"].args = (*nodes["a1"].args, 0.0)
    else:
        kwargs = {"two users": {"second_users": 2}, "sigmoid": {"first_act": aten.sigmoid.default}}
        ws, nodes = _streams(**kwargs.get(case, {}))
    start = nodes["a1"] if case == "not a conv" else nodes["c1" if case != "two users" else "c2"]
    ops = _ops(ws)
    assert stack_streams(ws, start) is False
    assert _ops(ws) == ops and not ws.record.applications


# --- G5 and G6 run their catalogue rules (issue 25): compiled networks ----------------------


class SliceThenConv(nn.Module):
    """``conv(x[index])``: a channel slice (G5 widens the conv) or a batch slice (refused)."""

    def __init__(self, index: tuple) -> None:
        super().__init__()
        self.index = index
        self.conv = nn.Conv2d(2, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x[self.index])


def _compile_f64(model: nn.Module, channels: int, size: int = 6) -> et.compiler.Compiled:
    torch.manual_seed(0)
    model = model.double().eval()
    x = torch.rand(1, channels, size, size, dtype=torch.float64)
    compiled = et.compile(model, (x,))
    with torch.no_grad():
        assert torch.allclose(compiled.module(x), model(x), rtol=1e-12, atol=1e-12)
    return compiled


def test_compiled_g5_lists_the_checks_its_rule_ran() -> None:
    torch.manual_seed(1)
    compiled = _compile_f64(SliceThenConv((slice(None), slice(1, 3))), 3)
    assert compiled.certificate.ops_after == {"conv2d.default": 1}
    (applied,) = [a for a in compiled.certificate.applications if a.rule == "G5"]
    ran = {c.precondition for c in applied.checks if c.checked == "transform" and c.rule == "G5"}
    assert {str(g5.CHANNEL_AXIS), str(g5.WIDTH)} <= ran


def test_a_batch_slice_read_by_a_conv_is_refused_by_g5_and_named() -> None:
    torch.manual_seed(2)
    compiled = _compile_f64(SliceThenConv((slice(0, 1),)), 2)
    assert compiled.certificate.ops_after.get("slice.Tensor") == 1
    (refusal,) = [u for u in compiled.certificate.unfolded if u.rule == "G5"]
    assert refusal.precondition == str(g5.CHANNEL_AXIS)


class MixedStreams(nn.Module):
    """``relu(conv₁(x))`` beside ``act(conv₂(x))``, grouped convs (E5 needs groups 1)."""

    def __init__(self, second: nn.Module) -> None:
        super().__init__()
        self.first = nn.Conv2d(6, 6, 3, padding=1, groups=3)
        self.second = nn.Conv2d(6, 6, 3, padding=1, groups=3)
        self.act = second

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.first(x)) * self.act(self.second(x))


def test_compiled_g6_lists_the_checks_its_rule_ran() -> None:
    torch.manual_seed(3)
    compiled = _compile_f64(MixedStreams(nn.ReLU()), 6)
    (applied,) = [a for a in compiled.certificate.applications if a.rule == "G6"]
    ran = {c.precondition for c in applied.checks if c.checked == "transform" and c.rule == "G6"}
    assert {str(g6.ONE_KIND), str(g6.WIDTHS)} <= ran


def test_streams_under_two_kinds_of_map_are_refused_by_g6_and_named() -> None:
    """ReLU beside LeakyReLU: one stacked map cannot apply both (G6's first precondition);
    both streams stay, the compile is exact."""
    torch.manual_seed(4)
    compiled = _compile_f64(MixedStreams(nn.LeakyReLU(0.1)), 6)
    assert "G6" not in compiled.certificate.rules_used()
    assert compiled.certificate.ops_after.get("conv2d.default") == 2
    (refusal,) = [u for u in compiled.certificate.unfolded if u.rule == "G6"]
    assert refusal.precondition == str(g6.ONE_KIND)


class _GroupedCarry(nn.Module):
    """``anchor(x) + depthwise(relu(pointwise(x)))``: E4 would add zero columns to the grouped
    depthwise conv (and anchor), which only their dense forms take."""

    def __init__(self, anchor_groups: int) -> None:
        super().__init__()
        self.anchor = nn.Conv2d(4, 4, 3, padding=1, groups=anchor_groups)
        self.pointwise = nn.Conv2d(4, 4, 1, bias=False)
        self.depthwise = nn.Conv2d(4, 4, 3, padding=1, groups=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.anchor(x) + self.depthwise(torch.relu(self.pointwise(x)))


@pytest.mark.parametrize("anchor_groups", [1, 2, 4])
def test_e4_into_a_grouped_conv_is_left_and_named(anchor_groups: int) -> None:
    """It once built a grouped weight with the zero columns and ``et.compile`` raised."""
    torch.manual_seed(anchor_groups)
    model = _GroupedCarry(anchor_groups).double().eval()
    compiled = et.compile(model, (torch.rand(1, 4, 9, 9, dtype=torch.float64),))
    assert "E4" not in compiled.certificate.rules_used()
    refusals = [u for u in compiled.certificate.unfolded if u.rule == "E4"]
    assert refusals and refusals[0].precondition == DENSE_ENDS, compiled.certificate.unfolded
    for size in SIZES:
        report = compare_outputs(model, compiled.module, probe_inputs((4, *size), samples=3))
        assert report.max_rel_error <= 1e-9, report.describe()
