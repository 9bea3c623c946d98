"""Re-parameterization matchers with keyword arguments: each keyword is read by its schema name
and handled exactly, or the pattern does not match (issue 25)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

import et
from et.compiler.helpers import FAN_OUT
from et.compiler.linear_rewrites import (
    _per_channel_operand,
    absorb_zero_pad,
    fold_constant_ops,
    merge_branches,
    merge_concat,
    merge_sequential,
    per_channel,
    pool_after_conv,
    shift_into_bias,
)
from et.compiler.sequential import NO_COSTLIER
from et.compiler.workspace import CONV2D, Workspace
from et.contract import get_rule
from et.rules import absorb_zero_padding as g1
from et.rules import avg_pool_as_conv as r10
from et.rules import concat_convs as r11
from et.rules import fold_input_shift, fold_output_constant
from et.rules import fold_input_shift as g4
from et.rules import merge_1x1_kxk as r7
from et.rules import merge_parallel_convs as r3
from et.rules import merge_sequential_convs as r8
from et.testing import compare_outputs, probe_inputs
from tests.compiler.graphs import (
    aten,
    call,
    evaluate,
    keyed,
    placeholder,
    rewrite_keeps_function,
    workspace,
)

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


# Constant ops, zero padding and input shifts folded into a conv, and the near-misses that
# must stay (kill tests of the mutation pass; ``mutation/survivors.txt`` names each one). Each
# compiled module is compared with its original in float64; the conv and op counts say what was
# folded.


class Expression(nn.Module):
    """``expression(conv(x), c)`` for a per-channel constant c (all entries ≠ 0)."""

    def __init__(self, expression, bias: bool = True, padding: int = 1, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=padding, dilation=dilation, bias=bias)
        self.c = nn.Parameter(torch.tensor([0.5, -2.0, 1.5]).reshape(1, 3, 1, 1))
        self.expression = expression

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expression(self.conv, x, self.c)


def _compile(model: nn.Module) -> et.compiler.Compiled:
    torch.manual_seed(0)
    model = model.double().eval()
    compiled = et.compile(model, (torch.rand(1, 3, 8, 8, dtype=torch.float64),))
    for shape in ((3, 8, 8), (3, 9, 7)):
        report = compare_outputs(model, compiled.module, probe_inputs(shape), dtype=torch.float64)
        assert report.max_rel_error <= 1e-9, report.describe()
    return compiled


FOLDED = {
    "conv + c": (lambda conv, x, c: conv(x) + c, "G3"),
    "c + conv": (lambda conv, x, c: c + conv(x), "G3"),
    "conv - c": (lambda conv, x, c: conv(x) - c, "G3"),
    "c - conv": (lambda conv, x, c: c - conv(x), "G3"),
    "conv * c": (lambda conv, x, c: conv(x) * c, "R13"),
    "c * conv": (lambda conv, x, c: c * conv(x), "R13"),
    "conv / c": (lambda conv, x, c: conv(x) / c, "R13"),
}


# a conv without bias gets one from G3 (R13 scales the kernel alone: bias or none alike)
FOLDED_CASES = [(name, True) for name in sorted(FOLDED)]
FOLDED_CASES += [("conv + c", False), ("c - conv", False)]


@pytest.mark.parametrize(("name", "bias"), FOLDED_CASES)
def test_constant_op_on_a_conv_folds_into_it(name: str, bias: bool) -> None:
    expression, rule = FOLDED[name]
    compiled = _compile(Expression(expression, bias=bias))
    assert compiled.certificate.ops_after == {"conv2d.default": 1}
    applied = [a for a in compiled.certificate.applications if a.rule == rule]
    assert applied and FAN_OUT in applied[0].preconditions


def test_constant_divided_by_a_conv_is_not_a_scale() -> None:
    compiled = _compile(Expression(lambda conv, x, c: c / conv(x)))
    assert compiled.certificate.ops_after.get("div.Tensor") == 1


def test_division_by_zero_is_refused_and_named() -> None:
    weight = {
        "w": torch.randn(3, 3, 3, 3),
        "b": torch.randn(3),
        "c": torch.tensor([1.0, 0.0, 2.0]).reshape(1, 3, 1, 1),
    }

    def build(g):
        conv = call(g, aten.conv2d.default, g.placeholder("x"), g.get_attr("w"), g.get_attr("b"))
        return call(g, aten.div.Tensor, conv, g.get_attr("c"))

    ws, node = workspace(build, weight)
    assert fold_constant_ops(ws, node) is False
    (refusal,) = ws.record.unfolded({node.name})
    assert (refusal.node, refusal.rule) == (node.name, "R13")
    assert refusal.precondition == "the scale is finite"
    assert refusal.detail


@pytest.mark.parametrize("dilation", [1, 2])
def test_symmetric_zero_pad_is_absorbed(dilation: int) -> None:
    model = Expression(lambda conv, x, c: conv(F.pad(x, (1, 1, 2, 2))), dilation=dilation)
    compiled = _compile(model)
    assert compiled.certificate.ops_after == {"conv2d.default": 1}
    assert "G1" in compiled.certificate.rules_used()


def test_zero_pad_of_the_last_axis_only_is_absorbed() -> None:
    compiled = _compile(Expression(lambda conv, x, c: conv(F.pad(x, (2, 2))), padding=0))
    assert compiled.certificate.ops_after == {"conv2d.default": 1}


def test_pad_of_one_side_only_is_absorbed_where_it_is_symmetric() -> None:
    compiled = _compile(Expression(lambda conv, x, c: conv(F.pad(x, (0, 0, 1, 1))), padding=0))
    assert compiled.certificate.ops_after == {"conv2d.default": 1}


@pytest.mark.parametrize(
    "pad", [(1, 0, 1, 1), (1, 1, 0, 1)], ids=["left-right differ", "top-bottom differ"]
)
def test_asymmetric_zero_pad_is_refused_and_named(pad: tuple[int, ...]) -> None:
    compiled = _compile(Expression(lambda conv, x, c: conv(F.pad(x, pad))))
    assert compiled.certificate.ops_after.get("constant_pad_nd.default") == 1
    (refusal,) = [u for u in compiled.certificate.unfolded if u.rule == "G1"]
    assert refusal.precondition == str(g1.SYMMETRIC)  # G1's own check refused
    assert refusal.detail == f"pad {list(pad)} is asymmetric"


def test_pad_with_a_value_or_a_crop_is_not_absorbed() -> None:
    compiled = _compile(Expression(lambda conv, x, c: conv(F.pad(x, (1, 1, 1, 1), value=1.0))))
    assert compiled.certificate.ops_after.get("constant_pad_nd.default") == 1
    compiled = _compile(Expression(lambda conv, x, c: conv(F.pad(x, (1, 1, -1, -1)))))
    assert "G1" not in compiled.certificate.rules_used()


SHIFTED = {
    "x + c": (lambda conv, x, c: conv(x + c), True),
    "c + x": (lambda conv, x, c: conv(c + x), True),
    "x - c": (lambda conv, x, c: conv(x - c), True),
    "c - x": (lambda conv, x, c: conv(c - x), True),  # −x: the kernel negated (a = −1)
}


@pytest.mark.parametrize(
    ("name", "bias"), [(name, True) for name in sorted(SHIFTED)] + [("x + c", False)]
)
def test_valid_conv_of_a_shifted_input_takes_the_shift_into_its_bias(name: str, bias: bool) -> None:
    expression, folds = SHIFTED[name]
    compiled = _compile(Expression(expression, bias=bias, padding=0))
    assert ("G4" in compiled.certificate.rules_used()) is folds
    if folds:
        assert compiled.certificate.ops_after == {"conv2d.default": 1}
        (applied,) = [a for a in compiled.certificate.applications if a.rule == "G4"]
        assert applied.preconditions == (*G4_TRANSFORM, *G4_CHECKED)


def test_padded_conv_of_a_shifted_input_keeps_the_shift() -> None:
    # the padding reads zeros, not shifted values: folding would be wrong at the border
    compiled = _compile(Expression(lambda conv, x, c: conv(x + c), padding=1))
    assert "G4" not in compiled.certificate.rules_used()
    assert compiled.certificate.ops_after.get("add.Tensor") == 1


# The re-parameterization patterns of :mod:`et.compiler.linear_rewrites`, driven one at a time
# on small hand-built ATen graphs (kill tests of the mutation pass; ``mutation/survivors.txt``
# names each one left).
#
# Every rewrite is checked three ways: the pattern's answer (rewritten or not), the graph it leaves
# (which ops, which conv geometry) and its output on a float64 input against the graph before the
# rewrite (plain ATen ops, nothing of the compiler). A refusal is checked by its certificate entry:
# node, rule id, the broken precondition's text and the detail the rule found.

CONV = aten.conv2d.default
SHAPE = (9, 8)  # H, W of the probe input


def make(cin: int, cout: int, k, bias: bool = True, seed: int = 0, **geometry) -> nn.Conv2d:
    """A float64 conv with seeded weights (biases away from 0)."""
    torch.manual_seed(seed)
    conv = nn.Conv2d(cin, cout, k, bias=bias, **geometry).double()
    if bias:
        with torch.no_grad():
            conv.bias.copy_(torch.linspace(0.5, 1.5, cout, dtype=F64))
    return conv


def constants(**convs: nn.Conv2d) -> dict[str, torch.Tensor]:
    """Buffers ``<name>_w`` / ``<name>_b`` for each conv."""
    out: dict[str, torch.Tensor] = {}
    for name, conv in convs.items():
        out[f"{name}_w"] = conv.weight.detach().clone()
        if conv.bias is not None:
            out[f"{name}_b"] = conv.bias.detach().clone()
    return out


def emit(g: fx.Graph, source: fx.Node, name: str, conv: nn.Conv2d) -> fx.Node:
    """``aten.conv2d`` of ``source`` with ``conv``'s geometry and the buffers of ``name``."""
    bias = g.get_attr(f"{name}_b") if conv.bias is not None else None
    args = (source, g.get_attr(f"{name}_w"), bias, list(conv.stride), list(conv.padding))
    return call(g, CONV, *args, list(conv.dilation), conv.groups)


def image(g: fx.Graph, channels: int, name: str = "x") -> fx.Node:
    """A placeholder with the capture's shape metadata (what ``ws.channels`` reads)."""
    return placeholder(g, name, 1, channels, *SHAPE)


def probe(channels: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(1, channels, *SHAPE, dtype=F64, generator=generator) * 2 - 1


def ops(ws: Workspace) -> list[str]:
    """The call_function targets left in the graph, in order (short names)."""
    return [n.target.__name__ for n in ws.graph.nodes if n.op == "call_function"]


def convs_of(ws: Workspace) -> list[fx.Node]:
    return [n for n in ws.graph.nodes if n.target == CONV]


def rewrites_exactly(ws: Workspace, pattern, node: fx.Node, *inputs: torch.Tensor) -> None:
    """``pattern`` rewrites ``node`` and the graph computes what it computed before."""
    before = evaluate(ws, *inputs)
    assert pattern(ws, node) is True
    after = evaluate(ws, *inputs)
    assert after.shape == before.shape
    assert torch.allclose(after, before, rtol=1e-12, atol=1e-12), (after - before).abs().max()


def leaves(ws: Workspace, pattern, node: fx.Node) -> None:
    """``pattern`` does not rewrite ``node``: the graph is untouched and nothing is recorded."""
    code = ws.graph.python_code("self").src
    assert pattern(ws, node) is False
    assert ws.graph.python_code("self").src == code
    assert ws.record.applications == []


def only_application(ws: Workspace):
    (applied,) = ws.record.applications
    return applied


def only_refusal(ws: Workspace):
    alive = {n.name for n in ws.graph.nodes}
    (refusal,) = ws.record.unfolded(alive)
    return refusal


# --- per_channel ---------------------------------------------------------------------------


def _constant_ws(value: torch.Tensor) -> tuple[Workspace, fx.Node]:
    return workspace(lambda g: g.get_attr("c"), {"c": value})


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (3, 1, 1)], ids=["NCHW", "CHW"])
def test_a_constant_broadcasting_per_channel_is_read_as_c_values(shape) -> None:
    """[1, C, 1, 1] and its right-aligned [C, 1, 1] give the C values in channel order."""
    ws, node = _constant_ws(torch.tensor([0.5, -2.0, 1.5], dtype=F64).reshape(shape))
    out = per_channel(ws, node, 3)
    assert out is not None and out.shape == (3,) and out.dtype == F64
    assert out.tolist() == [0.5, -2.0, 1.5]


@pytest.mark.parametrize("shape", [(1,), (), (1, 1, 1, 1)])
def test_a_single_value_is_repeated_on_every_channel(shape) -> None:
    """One value broadcasts on all C channels; the result owns its memory (stride 1)."""
    ws, node = _constant_ws(torch.full(shape, 0.25, dtype=F64))
    out = per_channel(ws, node, 4)
    assert out.tolist() == [0.25] * 4
    assert out.stride() == (1,)


@pytest.mark.parametrize(
    "shape",
    [(1, 3, 1, 1, 1), (3,), (3, 1), (2, 3, 1, 1), (1, 3, 2, 1), (1, 3, 1, 2), (1, 2, 1, 1)],
    ids=["5-D", "per column", "per row", "batch 2", "rows", "columns", "other channel count"],
)
def test_a_constant_not_broadcasting_per_channel_is_none(shape) -> None:
    """Only shapes that broadcast as [1, C, 1, 1] (C or 1 channels) count; 5-D never does."""
    ws, node = _constant_ws(torch.ones(shape, dtype=F64))
    assert per_channel(ws, node, 3) is None


def test_a_python_number_is_a_float64_per_channel_constant() -> None:
    """A scalar operand (``x * 0.1``) is C copies of it in float64 (0.1 not rounded to float32)."""
    ws, _ = _constant_ws(torch.ones(1))
    out = per_channel(ws, 0.1, 3)
    assert out.dtype == F64 and out.tolist() == [0.1, 0.1, 0.1]
    assert out.stride() == (1,)
    assert per_channel(ws, 2, 2).tolist() == [2.0, 2.0]


def test_an_input_dependent_value_or_other_object_is_no_constant() -> None:
    ws, node = workspace(lambda g: image(g, 3))
    assert per_channel(ws, node, 3) is None
    assert per_channel(ws, "1.0", 3) is None
    assert per_channel(ws, None, 3) is None


# --- _per_channel_operand ------------------------------------------------------------------


def _binary(target, conv_first: bool, conv: nn.Conv2d | None = None, c=None, **kwargs):
    conv = conv if conv is not None else make(3, 3, 3, padding=1)
    c = torch.tensor([0.5, -2.0, 1.5], dtype=F64).reshape(1, 3, 1, 1) if c is None else c

    def build(g):
        y = emit(g, image(g, conv.in_channels), "a", conv)
        k = g.get_attr("c")
        args = (y, k) if conv_first else (k, y)
        return g.call_function(target, args, kwargs)

    return workspace(build, {**constants(a=conv), "c": c})


@pytest.mark.parametrize("conv_first", [True, False])
def test_the_conv_operand_is_found_on_either_side(conv_first: bool) -> None:
    ws, node = _binary(aten.mul.Tensor, conv_first)
    site, constant, first = _per_channel_operand(ws, node)
    assert site.node.target == CONV and site.node in node.args
    assert constant.tolist() == [0.5, -2.0, 1.5]
    assert first is conv_first


def test_a_keyword_argument_or_no_constant_gives_no_operand() -> None:
    ws, node = _binary(aten.add.Tensor, True, alpha=2)
    assert _per_channel_operand(ws, node) is None
    ws, node = _binary(aten.add.Tensor, True, c=torch.ones(1, 2, 1, 1, dtype=F64))
    assert _per_channel_operand(ws, node) is None


# --- fold_constant_ops (G3, R13) -----------------------------------------------------------

GEOMETRY = {"stride": (2, 1), "padding": (1, 2), "dilation": (2, 1), "groups": 2}

FOLDS = [
    (aten.add.Tensor, True, "G3"),
    (aten.add.Tensor, False, "G3"),
    (aten.sub.Tensor, True, "G3"),
    (aten.sub.Tensor, False, "G3"),
    (aten.mul.Tensor, True, "R13"),
    (aten.mul.Tensor, False, "R13"),
    (aten.div.Tensor, True, "R13"),
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("target", "conv_first", "rule"), FOLDS)
def test_a_per_channel_constant_op_folds_into_the_conv(target, conv_first, rule, bias) -> None:
    """conv ± c, c − conv, conv · c and conv / c are one conv of the same geometry."""
    conv = make(4, 4, 3, bias=bias, **GEOMETRY)
    c = torch.tensor([0.5, -2.0, 1.5, 3.0], dtype=F64).reshape(1, 4, 1, 1)
    ws, node = _binary(target, conv_first, conv, c)
    conv_name = next(n.name for n in ws.graph.nodes if n.target == CONV)
    rewrites_exactly(ws, fold_constant_ops, node, probe(4))
    assert ops(ws) == ["conv2d.default"]
    (new,) = convs_of(ws)
    assert new.args[3:] == ([2, 1], [1, 2], [2, 1], 2)
    # one application, c − conv included (G3's coefficients negate the kernel), with the
    # checks the rule's own code ran
    (applied,) = ws.record.applications
    assert (applied.rule, applied.nodes) == (rule, (conv_name, node.name))
    assert FAN_OUT in applied.preconditions
    assert any(c.checked == "transform" and c.rule == rule for c in applied.checks)


def test_a_number_times_a_conv_scales_its_kernel() -> None:
    conv = make(3, 3, 3, padding=1)

    def build(g):
        y = emit(g, image(g, 3), "a", conv)
        return call(g, aten.mul.Tensor, y, -0.5)

    ws, node = workspace(build, constants(a=conv))
    rewrites_exactly(ws, fold_constant_ops, node, probe(3))
    assert only_application(ws).rule == "R13"


def test_a_number_added_to_a_float32_conv_is_rounded_to_float32_first() -> None:
    """As torch's float32 ``y + s`` does: b' = fl32(b + fl32(s)). With b = 1 and
    s = 2⁻²⁴ + 2⁻⁵⁰, fl32(s) = 2⁻²⁴ is half an ulp of 1, so the sum ties to 1 (one rounding of
    b + s in float64 would give 1 + 2⁻²³)."""
    conv = nn.Conv2d(3, 3, 3, padding=1)
    with torch.no_grad():
        conv.bias.fill_(1.0)
    s = 2.0**-24 + 2.0**-50
    expected = torch.tensor(1.0) + torch.tensor(s, dtype=torch.float32)
    assert expected.item() == 1.0

    def build(g):
        return call(g, aten.add.Tensor, emit(g, image(g, 3), "a", conv), s)

    ws, node = workspace(build, constants(a=conv))
    assert fold_constant_ops(ws, node) is True
    (new,) = convs_of(ws)
    bias = ws.tensor(new.args[2])
    assert bias.dtype == torch.float32 and bias.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("target", "conv_first", "extra"),
    [
        (aten.div.Tensor, False, {}),  # c / conv is no scale of the conv
        (aten.relu.default, True, None),
        (aten.add.Tensor, True, {"alpha": "2"}),
    ],
    ids=["c / conv", "not a binary op", "alpha no number"],
)
def test_ops_that_are_no_per_channel_affine_map_stay(target, conv_first, extra) -> None:
    conv = make(3, 3, 3, padding=1)
    if extra is None:
        ws, node = workspace(
            lambda g: call(g, target, emit(g, image(g, 3), "a", conv)), constants(a=conv)
        )
    else:
        ws, node = _binary(target, conv_first, conv, **extra)
    leaves(ws, fold_constant_ops, node)


def test_a_sum_of_two_convs_is_no_constant_op() -> None:
    a, b = make(3, 3, 3, padding=1), make(3, 3, 3, padding=1, seed=1)

    def build(g):
        x = image(g, 3)
        return call(g, aten.add.Tensor, emit(g, x, "a", a), emit(g, x, "b", b))

    ws, node = workspace(build, constants(a=a, b=b))
    leaves(ws, fold_constant_ops, node)


def test_division_by_a_zero_channel_is_refused_with_the_rules_finding() -> None:
    c = torch.tensor([1.0, 0.0, 2.0], dtype=F64).reshape(1, 3, 1, 1)
    ws, node = _binary(aten.div.Tensor, True, c=c)
    assert fold_constant_ops(ws, node) is False
    refusal = only_refusal(ws)
    assert (refusal.node, refusal.rule) == (node.name, "R13")
    assert (refusal.precondition, refusal.detail) == ("the scale is finite", "it holds inf or NaN")


# --- shift_into_bias (G4) ------------------------------------------------------------------

SHIFTED_GEOMETRY = {"stride": 2, "dilation": (1, 2), "groups": 2}
#: the graph checks G4 declares, in the order the driver evaluates them
G4_CHECKED = (
    "conv is a conv with constant weight and bias",
    "the conv has padding 0, so every tap reads a shifted value",
    "the input is x ± c or c ± x for a constant c",
)
#: the checks G4's own code (et.rules.fold_input_shift) runs, in its order
G4_TRANSFORM = tuple(str(c) for c in (g4.TORCH_MODULES, g4.OPERATION, g4.PER_CHANNEL, g4.VALID))


def _shifted(target, constant_first: bool, bias: bool = True, padding: int = 0, c=None):
    conv = make(4, 6, (3, 2), bias=bias, padding=padding, **SHIFTED_GEOMETRY)
    c = torch.tensor([0.5, -2.0, 1.5, 3.0], dtype=F64).reshape(1, 4, 1, 1) if c is None else c

    def build(g):
        x, k = image(g, 4), g.get_attr("c")
        shifted = call(g, target, *((k, x) if constant_first else (x, k)))
        return emit(g, shifted, "a", conv)

    return workspace(build, {**constants(a=conv), "c": c})


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    ("target", "constant_first"),
    [(aten.add.Tensor, False), (aten.add.Tensor, True), (aten.sub.Tensor, False)],
    ids=["x + c", "c + x", "x - c"],
)
def test_a_valid_conv_of_a_shifted_input_takes_the_shift_into_its_bias(
    target, constant_first, bias
) -> None:
    ws, node = _shifted(target, constant_first, bias)
    shifted = node.args[0]
    rewrites_exactly(ws, shift_into_bias, node, probe(4))
    assert ops(ws) == ["conv2d.default"]
    (new,) = convs_of(ws)
    assert new.args[0].name == "x"
    assert new.args[3:] == ([2, 2], [0, 0], [1, 2], 2)
    applied = only_application(ws)
    assert (applied.rule, applied.nodes) == ("G4", (shifted.name, node.name))
    assert applied.preconditions == (*G4_TRANSFORM, *G4_CHECKED)


def test_a_number_added_to_the_input_goes_into_the_bias() -> None:
    conv = make(3, 2, 3)

    def build(g):
        return emit(g, call(g, aten.add.Tensor, image(g, 3), 0.75), "a", conv)

    ws, node = workspace(build, constants(a=conv))
    rewrites_exactly(ws, shift_into_bias, node, probe(3))


def test_a_number_added_to_the_input_of_a_float32_conv_goes_into_its_bias() -> None:
    """The float64 number meets the float32 kernel in the conv's dtype."""
    conv = nn.Conv2d(3, 2, 3)

    def build(g):
        return emit(g, call(g, aten.add.Tensor, image(g, 3), 0.75), "a", conv)

    ws, node = workspace(build, constants(a=conv))
    x = probe(3).float()
    before = evaluate(ws, x)
    assert shift_into_bias(ws, node) is True
    assert torch.allclose(evaluate(ws, x), before, rtol=1e-5, atol=1e-5)
    assert ws.tensor(convs_of(ws)[0].args[2]).dtype == torch.float32


def test_a_constant_minus_the_input_negates_the_kernel() -> None:
    """conv(c − x; W, b) = conv(x; −W, b + Σ W·c): G4's coefficients (a = −1, e = 1)."""
    ws, node = _shifted(aten.sub.Tensor, True)
    rewrites_exactly(ws, shift_into_bias, node, probe(4))
    assert only_application(ws).rule == "G4"


def test_a_padded_conv_keeps_the_shift() -> None:
    """Its border taps read the padding's zeros, not shifted values."""
    ws, node = _shifted(aten.add.Tensor, False, padding=1)
    leaves(ws, shift_into_bias, node)


def test_a_product_or_an_unshifted_input_is_no_shift() -> None:
    ws, node = _shifted(aten.mul.Tensor, False)
    leaves(ws, shift_into_bias, node)
    conv = make(3, 3, 3)
    ws, node = workspace(lambda g: emit(g, image(g, 3), "a", conv), constants(a=conv))
    leaves(ws, shift_into_bias, node)


def test_a_shift_of_no_graph_value_or_a_non_conv_is_left() -> None:
    conv = make(3, 3, 1)
    ws, node = workspace(
        lambda g: emit(g, call(g, aten.add.Tensor, 1.0, 2.0), "a", conv), constants(a=conv)
    )
    leaves(ws, shift_into_bias, node)
    ws, node = workspace(lambda g: call(g, aten.relu.default, image(g, 3)))
    leaves(ws, shift_into_bias, node)


def test_a_shift_with_the_wrong_channel_count_is_left() -> None:
    ws, node = _shifted(aten.add.Tensor, False, c=torch.ones(1, 3, 1, 1, dtype=F64))
    leaves(ws, shift_into_bias, node)


# --- absorb_zero_pad (G1) ------------------------------------------------------------------


def _padded(pads, *rest, bias: bool = True):
    conv = make(4, 4, 3, bias=bias, stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)

    def build(g):
        return emit(g, call(g, aten.constant_pad_nd.default, image(g, 4), pads, *rest), "a", conv)

    return workspace(build, constants(a=conv))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    ("pads", "rest", "padding"),
    [
        ([1, 1, 2, 2], (0.0,), [3, 1]),
        ([2, 2], (), [1, 2]),
        ([0, 0, 1, 1], (0,), [2, 0]),
    ],
    ids=["both axes", "last axis, no value", "rows only"],
)
def test_a_symmetric_zero_pad_becomes_the_convs_padding(pads, rest, padding, bias) -> None:
    """conv(pad₀(x; w, w, h, h); padding (p, q)) = conv(x; padding (p + h, q + w))."""
    ws, node = _padded(pads, *rest, bias=bias)
    pad = node.args[0]
    rewrites_exactly(ws, absorb_zero_pad, node, probe(4))
    assert ops(ws) == ["conv2d.default"]
    (new,) = convs_of(ws)
    assert new.args[3:] == ([2, 1], padding, [1, 2], 2)
    assert (new.args[2] is None) is (not bias)
    applied = only_application(ws)
    assert (applied.rule, applied.nodes) == ("G1", (pad.name, node.name))


@pytest.mark.parametrize(
    ("pads", "rest"),
    [([1, 1, 1, 1], (1.0,)), ([1, 1, -1, -1], ()), ([1, 1, 1, 1, 0, 0], ()), ([1, 1, 1], ())],
    ids=["value 1", "crop", "channel pad", "odd length"],
)
def test_a_pad_that_is_no_zero_border_of_h_and_w_stays(pads, rest) -> None:
    ws, node = _padded(pads, *rest)
    leaves(ws, absorb_zero_pad, node)
    assert ws.record.unfolded({n.name for n in ws.graph.nodes}) == []


@pytest.mark.parametrize(
    ("pads", "detail"),
    [
        ([1, 0, 1, 1], "pad [1, 0, 1, 1]"),
        ([1, 1, 0, 1], "pad [1, 1, 0, 1]"),
        ([0, 1], "pad [0, 1]"),
    ],
    ids=["left-right differ", "top-bottom differ", "last axis only"],
)
def test_an_asymmetric_zero_pad_is_refused_and_named(pads, detail) -> None:
    ws, node = _padded(pads)
    code = ws.graph.python_code("self").src
    assert absorb_zero_pad(ws, node) is False
    assert ws.graph.python_code("self").src == code
    refusal = only_refusal(ws)
    assert (refusal.node, refusal.rule) == (node.name, "G1")
    assert (refusal.precondition, refusal.detail) == (str(g1.SYMMETRIC), f"{detail} is asymmetric")


def test_a_conv_of_no_pad_or_a_non_conv_is_left() -> None:
    conv = make(3, 3, 3)
    ws, node = workspace(lambda g: emit(g, image(g, 3), "a", conv), constants(a=conv))
    leaves(ws, absorb_zero_pad, node)
    ws, node = workspace(lambda g: call(g, aten.constant_pad_nd.default, image(g, 3), [1, 1]))
    leaves(ws, absorb_zero_pad, node)


# --- merge_sequential (R7, R8, R9, R14) ----------------------------------------------------

CHECKED_SEQUENTIAL = (
    FAN_OUT,
    "nothing between the two convs: the second reads the first's output",
    NO_COSTLIER,
)


def _sequence(first: nn.Conv2d, second: nn.Conv2d):
    def build(g):
        return emit(g, emit(g, image(g, first.in_channels), "a", first), "b", second)

    return workspace(build, constants(a=first, b=second))


# each pair costs more multiply-adds per output pixel than its merged conv (the cost guard's
# refusals are in tests/compiler/test_sequential_cost.py)
SEQUENCES = {
    "R7: 1×1 then padded 3×3": (make(3, 4, 1, bias=False), make(4, 5, 3, padding=1), "R7"),
    "R8: 1×1 then valid 3×3": (make(3, 4, 1), make(4, 5, 3), "R8"),
    "R8: padded 3×3 then valid 3×3": (make(3, 8, 3, padding=1), make(8, 2, 3), "R8"),
    "R8: 3×3 then strided 1×1": (make(3, 4, 3, padding=1), make(4, 5, 1, stride=2), "R8"),
    "R9: 3×3 then 1×1": (make(3, 8, 3, padding=1), make(8, 4, 1), "R9"),
    "R9: depthwise (multiplier 2) then grouped 1×1": (
        make(4, 8, 3, padding=1, groups=4),
        make(8, 2, 1, groups=2),
        "R9",
    ),
    "R9: one-channel 3×3 then 1×1": (make(1, 1, 3, padding=1), make(1, 1, 1), "R9"),
    "R14: depthwise then 1×1 to one channel": (
        make(4, 4, 3, padding=1, groups=4),
        make(4, 1, 1),
        "R14",
    ),
    "R14: depthwise 1×1 (a channel scale) then 1×1": (
        make(2, 2, 1, groups=2),
        make(2, 3, 1),
        "R14",
    ),
}


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_two_convs_in_sequence_merge_under_the_rule_their_shapes_call_for(name: str) -> None:
    first, second, rule = SEQUENCES[name]
    ws, node = _sequence(first, second)
    first_name = node.args[0].name
    rewrites_exactly(ws, merge_sequential, node, probe(first.in_channels))
    assert ops(ws) == ["conv2d.default"]
    assert convs_of(ws)[0].args[0].name == "x"
    applied = only_application(ws)
    assert (applied.rule, applied.nodes) == (rule, (first_name, node.name))
    assert applied.preconditions[-3:] == CHECKED_SEQUENTIAL


def test_a_1x1_with_bias_before_a_zero_padded_kxk_is_refused() -> None:
    """R7 with zero borders: the K×K's padding ring would hold W₂·b₁ after the merge."""
    ws, node = _sequence(make(3, 4, 1), make(4, 5, 3, padding=1))
    assert merge_sequential(ws, node) is False
    refusal = only_refusal(ws)
    assert (refusal.node, refusal.rule) == (node.name, "R7")
    assert refusal.precondition == str(r7.BORDER_CONDITION)
    assert refusal.detail.startswith("the K×K pads (1, 1) with zeros but b₁ ≠ 0")
    assert len(ws.graph.find_nodes(op="call_function", target=CONV)) == 2


@pytest.mark.parametrize(
    "first",
    [make(3, 4, 3), make(3, 4, 1, stride=2)],
    ids=["valid 3x3", "strided 1x1"],
)
def test_a_padded_second_conv_after_a_non_pointwise_one_is_refused_by_r8(first) -> None:
    ws, node = _sequence(first, make(4, 5, 3, padding=1))
    assert merge_sequential(ws, node) is False
    refusal = only_refusal(ws)
    assert (refusal.node, refusal.rule) == (node.name, "R8")
    assert refusal.precondition == str(r8.VALID_SECOND)
    assert refusal.detail.startswith("second padding is (1, 1)")


def test_a_first_conv_read_elsewhere_is_refused_and_its_readers_named() -> None:
    first, second = make(3, 4, 3, padding=1), make(4, 4, 1)
    nodes = {}

    def build(g):
        y = emit(g, image(g, 3), "a", first)
        nodes["second"] = emit(g, y, "b", second)
        nodes["relu"] = call(g, aten.relu.default, y)
        return call(g, aten.add.Tensor, nodes["second"], nodes["relu"])

    ws, _ = workspace(build, constants(a=first, b=second))
    node = nodes["second"]
    assert merge_sequential(ws, node) is False
    refusal = only_refusal(ws)
    assert (refusal.node, refusal.rule) == (node.args[0].name, "R8")
    readers = f"the first conv also feeds ['{nodes['relu'].name}']"
    assert (refusal.precondition, refusal.detail) == (FAN_OUT, readers)


def test_a_conv_of_no_conv_or_a_non_conv_is_left() -> None:
    conv = make(3, 3, 3)
    ws, node = workspace(lambda g: emit(g, image(g, 3), "a", conv), constants(a=conv))
    leaves(ws, merge_sequential, node)
    ws, node = workspace(
        lambda g: call(g, aten.relu.default, emit(g, image(g, 3), "a", conv)), constants(a=conv)
    )
    leaves(ws, merge_sequential, node)


# --- merge_branches (R3, with R6 and R10 branches) ------------------------------------------


def _branch(conv: nn.Conv2d, branch, conv_first: bool = True, **kwargs):
    """``conv(x) + branch(g, x)`` (or the other order)."""
    nodes = {}

    def build(g):
        x = image(g, conv.in_channels)
        y = emit(g, x, "a", conv)
        other = branch(g, x)
        nodes["other"] = other
        args = (y, other) if conv_first else (other, y)
        return g.call_function(aten.add.Tensor, args, kwargs)

    ws, node = workspace(build, constants(a=conv))
    return ws, node, nodes["other"]


def _pool(*args):
    return lambda g, x: call(g, aten.avg_pool2d.default, x, *args)


@pytest.mark.parametrize("conv_first", [True, False], ids=["conv + x", "x + conv"])
@pytest.mark.parametrize("groups", [1, 2, 4])
def test_an_identity_branch_becomes_a_conv_of_the_same_groups(conv_first, groups) -> None:
    ws, node, _ = _branch(make(4, 4, 3, padding=1, groups=groups), lambda g, x: x, conv_first)
    rewrites_exactly(ws, merge_branches, node, probe(4))
    identity = node.args[1 if conv_first else 0]
    assert identity.target == CONV and identity.args[0].name == "x"
    assert identity.args[3:] == ([1, 1], [0, 0], [1, 1], groups)
    applied = only_application(ws)
    assert (applied.rule, applied.nodes) == ("R6", ("x",))
    assert ops(ws) == ["conv2d.default", "conv2d.default", "add.Tensor"]


def test_the_two_convs_left_by_a_branch_rewrite_then_merge() -> None:
    ws, node, _ = _branch(make(4, 4, 3, padding=1), lambda g, x: x)
    x = probe(4)
    before = evaluate(ws, x)
    assert merge_branches(ws, node) is True
    (add,) = [n for n in ws.graph.nodes if n.target == aten.add.Tensor]
    assert merge_branches(ws, add) is True
    assert ops(ws) == ["conv2d.default"]
    assert torch.allclose(evaluate(ws, x), before, rtol=1e-12, atol=1e-12)
    assert [a.rule for a in ws.record.applications] == ["R6", "R3"]


POOL_BRANCHES = {
    # name: (conv, pool args, groups of the pool's conv, stride, padding, one tap)
    "3/1/1 dense": (make(4, 4, 3, padding=1), ([3, 3], [1, 1], [1, 1]), 1, [1, 1], [1, 1], 1 / 9),
    "3/1/1 depthwise": (
        make(4, 4, 3, padding=1, groups=4),
        ([3, 3], [1, 1], [1, 1]),
        4,
        [1, 1],
        [1, 1],
        1 / 9,
    ),
    "int sizes": (make(4, 4, 3, padding=1), (3, 1, 1), 1, [1, 1], [1, 1], 1 / 9),
    "3/2/1": (
        make(4, 4, 3, stride=2, padding=1),
        ([3, 3], [2, 2], [1, 1]),
        1,
        [2, 2],
        [1, 1],
        1 / 9,
    ),
    "no padding argument": (make(4, 4, 3), ([3, 3], [1, 1]), 1, [1, 1], [0, 0], 1 / 9),
    "stride [] is the kernel": (make(4, 4, 2, stride=2), ([2, 2], []), 1, [2, 2], [0, 0], 1 / 4),
    "explicit flags": (
        make(4, 4, 3, padding=1),
        ([3, 3], [1, 1], [1, 1], False, True),
        1,
        [1, 1],
        [1, 1],
        1 / 9,
    ),
    "divisor 2": (
        make(4, 4, 3, padding=1),
        ([3, 3], [1, 1], [1, 1], False, True, 2),
        1,
        [1, 1],
        [1, 1],
        1 / 2,
    ),
    "no count of the padding, none there": (
        make(4, 4, 3),
        ([3, 3], [1, 1], [0, 0], False, False),
        1,
        [1, 1],
        [0, 0],
        1 / 9,
    ),
}


@pytest.mark.parametrize("name", sorted(POOL_BRANCHES))
def test_an_average_pool_branch_becomes_a_conv(name: str) -> None:
    """R10: the pool's kernel, stride, padding and divisor, as a dense or depthwise conv."""
    conv, args, groups, stride, padding, tap = POOL_BRANCHES[name]
    ws, node, pool = _branch(conv, _pool(*args))
    rewrites_exactly(ws, merge_branches, node, probe(4))
    made = node.args[1]
    assert made.target == CONV and made.args[0].name == "x"
    assert made.args[3:] == (stride, padding, [1, 1], groups)
    weight = ws.tensor(made.args[1])
    assert weight.dtype == F64
    diagonal = weight[0, 0] if groups == 4 else weight[1, 1]
    assert bool((diagonal == tap).all())
    if groups == 1:
        assert float(weight[0, 1].abs().sum()) == 0.0
    applied = only_application(ws)
    assert (applied.rule, applied.nodes) == ("R10", (pool.name,))


def test_a_pool_under_a_grouped_conv_of_neither_1_nor_c_groups_stays() -> None:
    ws, node, _ = _branch(make(4, 4, 3, padding=1, groups=2), _pool([3, 3], [1, 1], [1, 1]))
    leaves(ws, merge_branches, node)


@pytest.mark.parametrize(
    ("args", "condition", "detail"),
    [
        (
            ([3, 3], [1, 1], [1, 1], True),
            r10.CEIL,
            "ceil_mode=True adds border windows averaged over a clipped count",
        ),
        (
            ([3, 3], [1, 1], [1, 1], False, False),
            r10.COUNT,
            "count_include_pad=False with padding (1, 1): border windows divide by fewer pixels",
        ),
    ],
    ids=["ceil mode", "padding not counted"],
)
def test_a_pool_that_is_no_fixed_conv_is_refused_and_named(args, condition, detail) -> None:
    ws, node, pool = _branch(make(4, 4, 3, padding=1), _pool(*args))
    leaves(ws, merge_branches, node)
    refusal = only_refusal(ws)
    assert (refusal.node, refusal.rule) == (pool.name, "R10")
    assert (refusal.precondition, refusal.detail) == (str(condition), detail)


def test_a_global_pool_size_is_no_fixed_conv() -> None:
    """A size that is not an int (computed from the input) gives no conv, and no refusal."""
    ws, node, _ = _branch(make(4, 4, 3, padding=1), _pool([3, 3.0], [1, 1], [1, 1]))
    leaves(ws, merge_branches, node)
    assert ws.record.unfolded({n.name for n in ws.graph.nodes}) == []


@pytest.mark.parametrize(
    "branch",
    [
        lambda g, x: call(g, aten.relu.default, x),
        lambda g, x: call(g, aten.mul.Tensor, x, 2),
        lambda g, x: call(g, aten.avg_pool2d.default, call(g, aten.relu.default, x), [3, 3]),
    ],
    ids=["relu", "x * 2", "pool of another value"],
)
def test_a_branch_that_is_neither_the_input_nor_its_pool_stays(branch) -> None:
    ws, node, _ = _branch(make(4, 4, 3, padding=1), branch)
    leaves(ws, merge_branches, node)


def test_a_pool_read_twice_stays() -> None:
    conv = make(4, 4, 3, padding=1)
    nodes = {}

    def build(g):
        x = image(g, 4)
        pool = call(g, aten.avg_pool2d.default, x, [3, 3], [1, 1], [1, 1])
        nodes["sum"] = call(g, aten.add.Tensor, emit(g, x, "a", conv), pool)
        return call(g, aten.mul.Tensor, nodes["sum"], pool)

    ws, _ = workspace(build, constants(a=conv))
    leaves(ws, merge_branches, nodes["sum"])


def test_a_sum_with_a_number_a_keyword_or_no_conv_stays() -> None:
    conv = make(4, 4, 3, padding=1)
    ws, node = workspace(
        lambda g: call(g, aten.add.Tensor, emit(g, image(g, 4), "a", conv), 2.0),
        constants(a=conv),
    )
    leaves(ws, merge_branches, node)
    ws, node, _ = _branch(conv, lambda g, x: x, alpha=2)
    leaves(ws, merge_branches, node)
    ws, node = workspace(lambda g: call(g, aten.add.Tensor, image(g, 4), image(g, 4, "y")))
    leaves(ws, merge_branches, node)
    ws, node = workspace(lambda g: call(g, aten.mul.Tensor, image(g, 4), image(g, 4, "y")))
    leaves(ws, merge_branches, node)


def test_a_product_of_a_conv_and_its_input_is_no_branch_sum() -> None:
    conv = make(4, 4, 3, padding=1)

    def build(g):
        x = image(g, 4)
        return call(g, aten.mul.Tensor, emit(g, x, "a", conv), x)

    ws, node = workspace(build, constants(a=conv))
    leaves(ws, merge_branches, node)


def test_an_identity_branch_of_another_channel_count_stays() -> None:
    """conv: 4 → 6 channels; x has 4, so no identity conv adds to the conv's output."""
    ws, node, _ = _branch(make(4, 6, 3, padding=1), lambda g, x: x)
    leaves(ws, merge_branches, node)


def _two_convs(a: nn.Conv2d, b: nn.Conv2d, same_input: bool = True):
    def build(g):
        x = image(g, a.in_channels)
        y = x if same_input else image(g, a.in_channels, "y")
        return call(g, aten.add.Tensor, emit(g, x, "a", a), emit(g, y, "b", b))

    return workspace(build, constants(a=a, b=b))


def test_two_convs_of_one_input_are_summed_into_one() -> None:
    ws, node = _two_convs(make(4, 5, 3, padding=1), make(4, 5, 1, seed=1))
    names = tuple(n.name for n in node.args)
    rewrites_exactly(ws, merge_branches, node, probe(4))
    assert ops(ws) == ["conv2d.default"]
    applied = only_application(ws)
    assert (applied.rule, applied.nodes) == ("R3", (*names, node.name))
    assert applied.preconditions[-2:] == ("both branches read the same graph value", FAN_OUT)


def test_convs_of_different_dilations_are_refused_with_the_rules_finding() -> None:
    ws, node = _two_convs(make(4, 5, 3, padding=1), make(4, 5, 3, padding=2, dilation=2))
    leaves(ws, merge_branches, node)
    refusal = only_refusal(ws)
    assert (refusal.node, refusal.rule) == (node.name, "R3")
    assert refusal.precondition == str(r3.SAME_DILATION)
    assert refusal.detail == "dilation: found [(1, 1), (2, 2)]"


def test_convs_of_different_inputs_stay() -> None:
    ws, node = workspace(
        lambda g: call(
            g,
            aten.add.Tensor,
            emit(g, image(g, 4), "a", make(4, 5, 3, padding=1)),
            emit(g, image(g, 4, "y"), "b", make(4, 5, 3, padding=1)),
        ),
        constants(a=make(4, 5, 3, padding=1), b=make(4, 5, 3, padding=1)),
    )
    leaves(ws, merge_branches, node)


# --- pool_after_conv (R10) -----------------------------------------------------------------


def _pool_after(conv: nn.Conv2d, *args, read_twice: bool = False):
    nodes = {}

    def build(g):
        y = emit(g, image(g, conv.in_channels), "a", conv)
        nodes["pool"] = call(g, aten.avg_pool2d.default, y, *args)
        if read_twice:
            return call(g, aten.add.Tensor, nodes["pool"], y)
        return nodes["pool"]

    ws, _ = workspace(build, constants(a=conv))
    return ws, nodes["pool"]


@pytest.mark.parametrize(
    ("conv", "groups"),
    [
        (make(4, 4, 1), 1),
        (make(4, 4, 1, groups=4), 4),
        (make(6, 3, 1, groups=3), 1),  # 6 → 3: a dense pool conv on the 3 output channels
    ],
    ids=["dense", "depthwise", "grouped 6 to 3"],
)
def test_a_pool_after_a_conv_becomes_a_conv(conv, groups) -> None:
    ws, node = _pool_after(conv, [3, 3], [2, 2], [1, 1])
    conv_name = node.args[0].name
    rewrites_exactly(ws, pool_after_conv, node, probe(conv.in_channels))
    assert ops(ws) == ["conv2d.default", "conv2d.default"]
    made = convs_of(ws)[1]
    assert made.args[0].name == conv_name
    assert made.args[3:] == ([2, 2], [1, 1], [1, 1], groups)
    applied = only_application(ws)
    assert (applied.rule, applied.nodes) == ("R10", (node.name,))


def test_a_pool_of_no_sole_conv_or_no_pool_stays() -> None:
    ws, node = _pool_after(make(4, 4, 1), [3, 3], [1, 1], [1, 1], read_twice=True)
    leaves(ws, pool_after_conv, node)
    ws, node = workspace(lambda g: call(g, aten.avg_pool2d.default, image(g, 4), [3, 3]))
    leaves(ws, pool_after_conv, node)
    conv = make(4, 4, 1)
    ws, node = workspace(
        lambda g: call(g, aten.relu.default, emit(g, image(g, 4), "a", conv)), constants(a=conv)
    )
    leaves(ws, pool_after_conv, node)


def test_a_pool_after_a_conv_that_nothing_reads_is_left() -> None:
    conv = make(4, 4, 1)
    nodes = {}

    def build(g):
        x = image(g, 4)
        nodes["pool"] = call(g, aten.avg_pool2d.default, emit(g, x, "a", conv), [3, 3])
        return x

    ws, _ = workspace(build, constants(a=conv))
    leaves(ws, pool_after_conv, nodes["pool"])


def test_a_ceil_mode_pool_after_a_conv_is_refused() -> None:
    ws, node = _pool_after(make(4, 4, 1), [2, 2], [2, 2], [0, 0], True)
    leaves(ws, pool_after_conv, node)
    refusal = only_refusal(ws)
    assert (refusal.node, refusal.rule, refusal.precondition) == (node.name, "R10", str(r10.CEIL))


# --- merge_concat (R11) --------------------------------------------------------------------


def _concat(convs, *dim, same_input: bool = True, extra_part: bool = False):
    def build(g):
        x = image(g, 4)
        y = x if same_input else image(g, 4, "y")
        parts = [emit(g, x if i == 0 else y, f"c{i}", c) for i, c in enumerate(convs)]
        if extra_part:
            parts.append(x)
        return call(g, aten.cat.default, parts, *dim)

    return workspace(build, constants(**{f"c{i}": c for i, c in enumerate(convs)}))


THREE = [make(4, 2, 3, padding=1, seed=s) for s in range(3)]


@pytest.mark.parametrize("dim", [1, -3])
@pytest.mark.parametrize("count", [2, 3])
def test_concatenated_convs_of_one_input_are_one_conv(dim: int, count: int) -> None:
    ws, node = _concat(THREE[:count], dim)
    names = tuple(p.name for p in node.args[0])
    rewrites_exactly(ws, merge_concat, node, probe(4))
    assert ops(ws) == ["conv2d.default"]
    assert convs_of(ws)[0].args[0].name == "x"
    applied = only_application(ws)
    assert (applied.rule, applied.nodes) == ("R11", (*names, node.name))
    assert FAN_OUT in applied.preconditions


@pytest.mark.parametrize(
    ("parts", "dim", "options"),
    [
        (2, (), {}),
        (2, (0,), {}),
        (2, (2,), {}),
        (2, (-4,), {}),
        (1, (1,), {}),
        (2, (1,), {"same_input": False}),
        (2, (1,), {"extra_part": True}),
    ],
    ids=["default dim 0", "dim 0", "dim 2", "dim -4", "one part", "two inputs", "a non-conv part"],
)
def test_a_concatenation_that_is_no_stack_of_convs_of_one_input_stays(parts, dim, options):
    ws, node = _concat(THREE[:parts], *dim, **options)
    leaves(ws, merge_concat, node)


def test_a_non_concatenation_stays() -> None:
    ws, node = workspace(lambda g: call(g, aten.relu.default, image(g, 4)))
    leaves(ws, merge_concat, node)


def test_convs_of_different_kernels_are_refused_with_the_rules_finding() -> None:
    ws, node = _concat([make(4, 2, 3, padding=1), make(4, 2, 1)], 1)
    leaves(ws, merge_concat, node)
    refusal = only_refusal(ws)
    assert (refusal.node, refusal.rule) == (node.name, "R11")
    assert refusal.precondition == str(r11.SAME_GEOMETRY)
    assert refusal.detail == "branch 1 has kernel_size=(1, 1), branch 0 has (3, 3)"


# --- every G step runs its catalogue rule (issue 25) -----------------------------------------
# Compiled small networks: the application of each G id lists checks that the rule's own code
# ran (``"transform"``), and a precondition that the rule's code refuses is recorded as a
# refusal naming that precondition, the op left and the compile verified.

RUN_BY_RULE = {
    "G1": (lambda conv, x, c: conv(F.pad(x, (1, 1, 2, 2))), 1),
    "G3": (lambda conv, x, c: conv(x) - c, 1),
    "G4": (lambda conv, x, c: conv(x + c), 0),
}


@pytest.mark.parametrize("rule", sorted(RUN_BY_RULE))
def test_each_g_application_lists_its_rules_own_checks(rule: str) -> None:
    expression, padding = RUN_BY_RULE[rule]
    compiled = _compile(Expression(expression, padding=padding))
    assert compiled.certificate.ops_after == {"conv2d.default": 1}
    (applied,) = [a for a in compiled.certificate.applications if a.rule == rule]
    assert any(c.rule == rule and c.checked == "transform" and c.holds for c in applied.checks)
    catalogue = {str(p) for p in get_rule(rule).preconditions}
    transform = {c.precondition for c in applied.checks if c.checked == "transform"}
    assert transform <= catalogue  # the rule's own precondition texts, nothing invented


@pytest.mark.parametrize(
    ("alpha", "op"), [(2.0, torch.add), (-0.5, torch.sub)], ids=["add alpha 2", "sub alpha -0.5"]
)
def test_an_alpha_is_folded_by_the_rules_coefficients(alpha: float, op) -> None:
    """``op(conv(x), c, alpha=α)`` (G3) and ``conv(op(x, c, alpha=α))`` (G4): the rules carry
    α in their coefficients, so the keyword folds exactly (compared with torch in float64)."""
    for rule, expression, padding in (
        ("G3", lambda conv, x, c: op(conv(x), c, alpha=alpha), 1),
        ("G4", lambda conv, x, c: conv(op(x, c, alpha=alpha)), 0),
    ):
        compiled = _compile(Expression(expression, padding=padding))
        assert compiled.certificate.ops_after == {"conv2d.default": 1}
        assert rule in compiled.certificate.rules_used()


class SpatialConstant(nn.Module):
    """``conv(x) + k`` (G3) or ``conv(x + k)`` (G4) for a constant k varying along the width:
    no bias can hold it."""

    def __init__(self, rule: str) -> None:
        super().__init__()
        self.rule = rule
        self.conv = nn.Conv2d(3, 3, 3, padding=1 if rule == "G3" else 0)
        self.k = nn.Parameter(torch.linspace(-1.0, 1.0, 8).expand(1, 3, 1, 8).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.k if self.rule == "G3" else self.conv(x + self.k)


@pytest.mark.parametrize(
    ("rule", "condition"),
    [("G3", fold_output_constant.PER_CHANNEL), ("G4", fold_input_shift.PER_CHANNEL)],
)
def test_a_constant_that_is_no_bias_is_refused_by_the_rule_and_named(rule, condition) -> None:
    torch.manual_seed(0)
    model = SpatialConstant(rule).double().eval()
    x = torch.rand(1, 3, 8, 8, dtype=F64)
    compiled = et.compile(model, (x,))
    assert rule not in compiled.certificate.rules_used()
    assert compiled.certificate.ops_after.get("add.Tensor") == 1
    (refusal,) = [u for u in compiled.certificate.unfolded if u.rule == rule]
    assert refusal.precondition == str(condition)
    assert "[1, 3, 1, 8]" in refusal.detail
    with torch.no_grad():
        assert torch.allclose(compiled.module(x), model(x), rtol=1e-12, atol=1e-12)


def test_a_cancelling_bias_rounded_to_zero_is_recorded_as_an_approximation() -> None:
    """``conv(x; W, b) − b'`` with b' within a rounding of b: G3 folds exactly (bias b − b',
    not 0), and the step that sets the residue to 0 is its own application, titled an
    approximation, its bound stated; it never claims G3's theorem."""
    conv = make(3, 3, 3, padding=1)
    b = conv.bias.detach()
    c = (b + b.abs() * 2.0**-50).reshape(1, 3, 1, 1)  # one or two ulps away from b
    assert not torch.equal(c.reshape(-1), b)

    def build(g):
        return call(g, aten.sub.Tensor, emit(g, image(g, 3), "a", conv), g.get_attr("c"))

    ws, node = workspace(build, {**constants(a=conv), "c": c})
    assert fold_constant_ops(ws, node) is True
    exact, rounded = ws.record.applications
    g3 = get_rule("G3")
    assert (exact.rule, exact.theorem) == ("G3", g3.statement)
    assert any(c.checked == "transform" for c in exact.checks)
    assert "approximation" in rounded.title and "not an identity" in rounded.theorem
    assert rounded.theorem != g3.statement
    assert [c.checked for c in rounded.checks] == ["approximation"]
    (new,) = convs_of(ws)
    assert torch.equal(ws.tensor(new.args[2]), torch.zeros(3, dtype=F64))
