"""BatchNorm on hand-built ATen graphs: R1 (conv → BN), R2 (BN → valid conv), R6 + R1 (a lone
BN summed with a branch) and every refusal, with the rewritten graph's values, the emitted
conv's weights and the certificate entries (kill tests of the mutation pass;
``mutation/survivors.txt`` names each one).

The BN has ``eps = 0.25`` and running variances ``σ² + 0.25`` of perfect squares, so
``√(σ² + ε) = (1, 2, 4)`` exactly; momentum 0.5 and cudnn_enabled ``True`` (``float = 1``)
differ from ε, so reading the wrong argument as ε changes every fused weight."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.nn.functional as F
from torch import fx

from et.compiler.batch_norm import fuse_batch_norm
from et.compiler.helpers import FAN_OUT
from et.contract import get_rule
from tests.compiler.graphs import aten, call, workspace

C = 3
EPS = 0.25
MOMENTUM = 0.5
STD = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
GAMMA = torch.tensor([1.5, -0.5, 2.0], dtype=torch.float64)
BETA = torch.tensor([0.25, 1.0, -3.0], dtype=torch.float64)
MEAN = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
VAR = STD**2 - EPS
#: the eval-mode precondition, listed once: the graph's fact (the rule's own check of it on the
#: BatchNorm2d built from the graph is not listed a second time)
CHECKED = "BatchNorm in eval mode with running statistics"
REFUSED = "a conv feeds the BatchNorm (or a valid conv reads it)"
EVAL_ONLY = "BatchNorm in eval mode with running statistics"


def _constants(**extra) -> dict[str, object]:
    torch.manual_seed(0)
    return {
        "g": GAMMA.clone(),
        "b": BETA.clone(),
        "m": MEAN.clone(),
        "v": VAR.clone(),
        "cw": torch.randn(C, 2, 3, 3, dtype=torch.float64),
        "cb": torch.randn(C, dtype=torch.float64),
        "dw": torch.randn(2, C, 3, 3, dtype=torch.float64),
        "db": torch.randn(2, dtype=torch.float64),
        **extra,
    }


def _bn(g: fx.Graph, x, kind: str, weight="g", bias="b", mean="m", var="v") -> fx.Node:
    """A BN of ``x`` as export writes it: ``getitem(_native_batch_norm_legit_no_training, 0)``
    (kind "legit") or ``aten.batch_norm`` in eval mode (kind "batch_norm")."""
    attrs = [g.get_attr(a) if a is not None else None for a in (weight, bias, mean, var)]
    if kind == "legit":
        bn = call(g, aten._native_batch_norm_legit_no_training.default, x, *attrs, MOMENTUM, EPS)
        return call(g, operator.getitem, bn, 0)
    return call(g, aten.batch_norm.default, x, *attrs, False, MOMENTUM, EPS, True)


def _conv(g: fx.Graph, x, weight="cw", bias="cb", padding=(1, 1), groups=1) -> fx.Node:
    return call(
        g, aten.conv2d.default, x, g.get_attr(weight), g.get_attr(bias), [1, 1], list(padding),
        [1, 1], groups,
    )  # fmt: skip


def _bn_node(ws) -> fx.Node:
    """The node fuse_batch_norm is called on (the getitem, or the aten.batch_norm call)."""
    targets = (operator.getitem, aten.batch_norm.default)
    return next(n for n in ws.graph.nodes if n.target in targets)


def _reference_bn(y: torch.Tensor, gamma=GAMMA, beta=BETA) -> torch.Tensor:
    return F.batch_norm(y, MEAN, VAR, gamma, beta, training=False, eps=EPS)


def _convs(ws) -> list[fx.Node]:
    return [n for n in ws.graph.nodes if n.target == aten.conv2d.default]


def _unfolded(ws, names: set[str]) -> set[tuple[str, str, str, str, str]]:
    return {tuple(vars(u).values()) for u in ws.record.unfolded(names)}


X = torch.rand(2, 2, 5, 6, dtype=torch.float64)
X3 = torch.rand(2, C, 5, 6, dtype=torch.float64)


@pytest.mark.parametrize("kind", ["legit", "batch_norm"])
def test_conv_then_bn_is_one_conv_with_scaled_weights(kind: str) -> None:
    """R1: BN(conv(x; W, b)) = conv(x; W·t, (b − μ)·t + β) with t = γ/√(σ² + ε); the BN's node
    is replaced by that conv reading the conv's input, recorded on (conv, BN)."""
    constants = _constants()
    ws, out = workspace(lambda g: _bn(g, _conv(g, g.placeholder("x")), kind), constants)
    conv = _convs(ws)[0]
    bn_node = out.args[0] if kind == "legit" else out
    names = (conv.name, bn_node.name)
    assert fuse_batch_norm(ws, out) is True
    (fused,) = _convs(ws)
    assert fused.args[0].op == "placeholder"
    assert list(ws.graph.nodes)[-1].args[0] is fused
    scale = GAMMA / STD
    weight = ws.tensor(fused.args[1])
    assert weight.dtype == torch.float64
    assert torch.allclose(weight, constants["cw"] * scale.reshape(-1, 1, 1, 1), rtol=1e-14, atol=0)
    bias = (constants["cb"] - MEAN) * scale + BETA
    assert torch.allclose(ws.tensor(fused.args[2]), bias, rtol=1e-14, atol=0)
    assert (fused.args[3], fused.args[4], fused.args[5], fused.args[6]) == (
        [1, 1], [1, 1], [1, 1], 1,
    )  # fmt: skip
    (application,) = ws.record.applications
    assert application.rule == "R1"
    assert application.nodes == names
    assert application.preconditions[-2:] == (CHECKED, FAN_OUT)
    assert application.preconditions.count(CHECKED) == 1
    reference = _reference_bn(F.conv2d(X, constants["cw"], constants["cb"], padding=1))
    assert torch.allclose(ws.finish()(X), reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("weight", "bias"), [(None, "b"), ("g", None), (None, None)])
def test_a_bn_without_affine_weight_or_bias_uses_one_and_zero(weight, bias) -> None:
    """A missing γ is 1 and a missing β is 0 (each independently)."""
    constants = _constants()
    ws, out = workspace(
        lambda g: _bn(g, _conv(g, g.placeholder("x")), "legit", weight=weight, bias=bias),
        constants,
    )
    assert fuse_batch_norm(ws, out) is True
    gamma = GAMMA if weight else torch.ones(C, dtype=torch.float64)
    beta = BETA if bias else torch.zeros(C, dtype=torch.float64)
    reference = _reference_bn(F.conv2d(X, constants["cw"], constants["cb"], padding=1), gamma, beta)
    assert torch.allclose(ws.finish()(X), reference, rtol=1e-12, atol=1e-12)


def test_the_bn_takes_the_dtype_of_its_running_mean() -> None:
    """The BN is built in the running mean's dtype (float64 here, the variance being float32,
    exactly representable): the fused weights keep float64 precision (γ = 0.1, 0.2, 0.3 are
    not float32 numbers)."""
    gamma = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    constants = _constants(v=VAR.float(), g=gamma)
    ws, out = workspace(lambda g: _bn(g, _conv(g, g.placeholder("x")), "legit"), constants)
    assert fuse_batch_norm(ws, out) is True
    (fused,) = _convs(ws)
    weight = ws.tensor(fused.args[1])
    assert weight.dtype == torch.float64
    scale = (gamma / STD).reshape(-1, 1, 1, 1)
    assert torch.allclose(weight, constants["cw"] * scale, rtol=1e-14, atol=0)


@pytest.mark.parametrize("missing", ["m", "v"])
@pytest.mark.parametrize("kind", ["legit", "input"])
def test_a_bn_without_constant_running_statistics_is_left_without_a_record(missing, kind) -> None:
    """No constant running mean or variance (absent, or computed from the input): not a BN
    the rules can read; nothing is rewritten or recorded."""
    constants = _constants()

    def build(g):
        x = g.placeholder("x")
        stats = {"mean": "m", "var": "v", ("mean" if missing == "m" else "var"): None}
        out = _bn(g, _conv(g, x), "legit", **stats)
        if kind == "input":  # the statistic is the input itself (not a constant)
            bn = out.args[0]
            bn.update_arg(3 if missing == "m" else 4, x)
        return out

    ws, out = workspace(build, constants)
    names = {n.name for n in ws.graph.nodes}
    assert fuse_batch_norm(ws, out) is False
    assert ws.record.applications == [] and ws.record.unfolded(names) == []
    assert len(_convs(ws)) == 1


@pytest.mark.parametrize(
    "target",
    [aten._native_batch_norm_legit.default, aten._native_batch_norm_legit.no_stats],
)
def test_batch_statistics_are_refused_by_name(target) -> None:
    """A train-mode BN (batch statistics) is refused under R1's fixed-statistics
    precondition, with the reason."""

    def build(g):
        x = g.placeholder("x")
        stats = [g.get_attr("m"), g.get_attr("v")] if "default" in str(target) else []
        bn = call(g, target, x, g.get_attr("g"), g.get_attr("b"), *stats, True, MOMENTUM, EPS)
        return bn

    ws, node = workspace(build, _constants())
    assert fuse_batch_norm(ws, node) is False
    assert _unfolded(ws, {node.name}) == {
        (
            node.name,
            str(target),
            "R1",
            EVAL_ONLY,
            "the graph normalises with batch statistics (train mode or no running stats)",
        )
    }
    assert ws.record.applications == []


@pytest.mark.parametrize(
    ("training", "mean", "var"), [(True, "m", "v"), (False, None, "v"), (False, "m", None)]
)
def test_an_aten_batch_norm_in_training_or_without_statistics_is_refused(training, mean, var):
    """``aten.batch_norm`` with training=True, or without a running mean or variance, is
    refused (each alone suffices), under R1's fixed-statistics precondition."""

    def build(g):
        x = _conv(g, g.placeholder("x"))
        stats = [g.get_attr(a) if a else None for a in (mean, var)]
        return call(
            g, aten.batch_norm.default, x, g.get_attr("g"), g.get_attr("b"), *stats, training,
            MOMENTUM, EPS, True,
        )  # fmt: skip

    ws, node = workspace(build, _constants())
    assert fuse_batch_norm(ws, node) is False
    assert _unfolded(ws, {node.name}) == {
        (
            node.name,
            str(aten.batch_norm.default),
            "R1",
            EVAL_ONLY,
            "the graph normalises with batch statistics",
        )
    }
    assert len(_convs(ws)) == 1


def test_other_nodes_are_not_batch_norms() -> None:
    """Only the BN's first output (getitem 0 of the no-training BN) is rewritten; its other
    outputs, a getitem of anything else and other ops are left without a record."""

    def second_output(g):
        out = _bn(g, _conv(g, g.placeholder("x")), "legit")
        return call(g, operator.getitem, out.args[0], 1)

    def getitem_of_input(g):
        return call(g, operator.getitem, _conv(g, g.placeholder("x")), 0)

    def relu(g):
        return call(g, aten.relu.default, _conv(g, g.placeholder("x")))

    def getitem_of_a_list(g):  # the list is no node: it has no target
        return call(g, operator.getitem, [_conv(g, g.placeholder("x"))], 0)

    for build in (second_output, getitem_of_input, relu, getitem_of_a_list):
        ws, node = workspace(build, _constants())
        names = {n.name for n in ws.graph.nodes}
        assert fuse_batch_norm(ws, node) is False
        assert ws.record.applications == [] and ws.record.unfolded(names) == []
        assert len(_convs(ws)) == 1


def test_a_conv_feeding_more_than_the_bn_is_not_fused_into_it() -> None:
    """R1 needs the conv to feed the BN only: refused under FAN_OUT naming the other users.
    The BN, summed with a branch, then becomes its own 1×1 conv (R6), dense since the
    sibling is no conv."""

    def build(g):
        y = _conv(g, g.placeholder("x"))
        return call(g, aten.add.Tensor, _bn(g, y, "batch_norm"), call(g, aten.relu.default, y))

    constants = _constants()
    ws, _ = workspace(build, constants)
    bn = _bn_node(ws)
    (conv,) = _convs(ws)
    relu = next(n for n in ws.graph.nodes if n.target == aten.relu.default)
    assert fuse_batch_norm(ws, bn) is True
    assert _unfolded(ws, {conv.name}) == {
        (conv.name, str(aten.conv2d.default), "R1", FAN_OUT, f"the conv also feeds ['{relu.name}']")
    }
    fold, application = ws.record.applications
    assert (fold.rule, application.rule, application.nodes) == ("R1", "R6", (bn.name,))
    assert [tuple(ws.tensor(c.args[1]).shape) for c in _convs(ws)] == [(C, 2, 3, 3), (C, C, 1, 1)]
    y = F.conv2d(X, constants["cw"], constants["cb"], padding=1)
    reference = _reference_bn(y) + y.relu()
    assert torch.allclose(ws.finish()(X), reference, rtol=1e-12, atol=1e-12)


def test_a_conv_feeding_the_bn_twice_over_two_paths_is_refused_with_the_bn() -> None:
    """A conv feeding the BN and another op, the BN feeding a padded conv: two refusals, the
    conv's (FAN_OUT) and the BN's, with its empty detail."""

    def build(g):
        y = _conv(g, g.placeholder("x"))
        bn = _bn(g, y, "legit")
        return call(g, aten.mul.Tensor, _conv(g, bn, "dw", "db"), call(g, aten.sigmoid.default, y))

    ws, _ = workspace(build, _constants())
    bn = _bn_node(ws)
    convs = _convs(ws)
    sigmoid = next(n for n in ws.graph.nodes if n.target == aten.sigmoid.default)
    names = {n.name for n in ws.graph.nodes}
    assert fuse_batch_norm(ws, bn) is False
    assert _unfolded(ws, names) == {
        (
            convs[0].name,
            str(aten.conv2d.default),
            "R1",
            FAN_OUT,
            f"the conv also feeds ['{sigmoid.name}']",
        ),
        (
            bn.args[0].name,
            str(aten._native_batch_norm_legit_no_training.default),
            "R1",
            REFUSED,
            "",
        ),
    }
    assert len(_convs(ws)) == 2 and ws.record.applications == []


def test_a_conv_whose_channels_differ_from_the_bn_is_refused_by_r1() -> None:
    """fuse_conv_bn's own precondition (channels) refuses: recorded on the conv with the
    rule's condition and detail, then the BN is refused too."""
    constants = _constants(cw=torch.randn(4, 2, 3, 3, dtype=torch.float64), cb=torch.zeros(4))
    ws, out = workspace(lambda g: _bn(g, _conv(g, g.placeholder("x")), "batch_norm"), constants)
    (conv,) = _convs(ws)
    names = {n.name for n in ws.graph.nodes}
    assert fuse_batch_norm(ws, out) is False
    assert _unfolded(ws, names) == {
        (
            conv.name,
            str(aten.conv2d.default),
            "R1",
            "bn.num_features == conv.out_channels",
            "3 != 4",
        ),
        (out.name, str(aten.batch_norm.default), "R1", REFUSED, ""),
    }


@pytest.mark.parametrize("kind", ["legit", "batch_norm"])
def test_bn_then_valid_conv_is_one_conv(kind: str) -> None:
    """R2: conv(BN(x); W, b, padding 0) = conv(x; W·t per input channel, b + Σ W·c); the conv
    is replaced, reading the BN's input, recorded on (BN, conv)."""
    constants = _constants()
    ws, out = workspace(
        lambda g: _conv(g, _bn(g, g.placeholder("x"), kind), "dw", "db", padding=(0, 0)),
        constants,
    )
    node = _bn_node(ws)
    bn_node = node.args[0] if kind == "legit" else node
    names = (bn_node.name, out.name)
    assert fuse_batch_norm(ws, node) is True
    (fused,) = _convs(ws)
    assert fused.args[0].op == "placeholder"
    assert list(ws.graph.nodes)[-1].args[0] is fused
    (application,) = ws.record.applications
    assert (application.rule, application.nodes) == ("R2", names)
    assert application.preconditions[-1] == CHECKED
    assert FAN_OUT not in application.preconditions
    reference = F.conv2d(_reference_bn(X3), constants["dw"], constants["db"])
    assert torch.allclose(ws.finish()(X3), reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", [(1, 0), (0, 1), (1, 1)])
def test_bn_then_a_padded_conv_is_refused_without_trying_r2(padding) -> None:
    """A padded conv after the BN would pad BN(x) with zeros, not BN(0): not R2's case. Only
    the BN's refusal is recorded, with R1's structural condition and an empty detail."""
    ws, _ = workspace(
        lambda g: _conv(g, _bn(g, g.placeholder("x"), "legit"), "dw", "db", padding=padding),
        _constants(),
    )
    node = _bn_node(ws)
    names = {n.name for n in ws.graph.nodes}
    assert fuse_batch_norm(ws, node) is False
    assert _unfolded(ws, names) == {
        (
            node.args[0].name,
            str(aten._native_batch_norm_legit_no_training.default),
            "R1",
            REFUSED,
            "",
        )
    }
    assert len(_convs(ws)) == 1


def test_a_valid_conv_whose_channels_differ_from_the_bn_is_refused_by_r2() -> None:
    """fuse_bn_conv's channel precondition refuses: recorded on the conv under R2."""
    constants = _constants(dw=torch.randn(2, 4, 3, 3, dtype=torch.float64))
    ws, out = workspace(
        lambda g: _conv(g, _bn(g, g.placeholder("x"), "batch_norm"), "dw", "db", padding=(0, 0)),
        constants,
    )
    node = _bn_node(ws)
    names = {n.name for n in ws.graph.nodes}
    assert fuse_batch_norm(ws, node) is False
    assert _unfolded(ws, names) == {
        (out.name, str(aten.conv2d.default), "R2", "bn.num_features == conv.in_channels", "3 != 4"),
        (node.name, str(aten.batch_norm.default), "R1", REFUSED, ""),
    }


def test_a_bn_feeding_two_valid_convs_is_refused() -> None:
    """R2 needs the BN to feed one conv: with two readers nothing is rewritten."""

    def build(g):
        bn = _bn(g, g.placeholder("x"), "legit")
        a = _conv(g, bn, "dw", "db", padding=(0, 0))
        return call(g, aten.add.Tensor, a, _conv(g, bn, "dw", "db", padding=(0, 0)))

    ws, _ = workspace(build, _constants())
    node = _bn_node(ws)
    assert fuse_batch_norm(ws, node) is False
    assert len(_convs(ws)) == 2 and ws.record.applications == []
    assert [u.precondition for u in ws.record.unfolded({node.args[0].name})] == [REFUSED]


def _lone_bn_sum(op, sibling: str, kind: str = "legit"):
    """``op(bn(x), s)`` or ``op(s, bn(x))`` for a sibling ``s`` of the named kind."""

    def build(g):
        x = g.placeholder("x")
        bn = _bn(g, x, kind)
        if sibling == "depthwise":
            other = _conv(g, x, "kw", "kb", groups=C)
        elif sibling == "depthwise_elsewhere":
            other = _conv(g, call(g, aten.relu.default, x), "kw", "kb", groups=C)
        elif sibling == "dense":
            other = _conv(g, x, "fw", "fb")
        elif sibling == "itself":
            other = bn
        else:
            other = x
        return call(g, op, other, bn) if sibling == "input_first" else call(g, op, bn, other)

    return build


def _lone_constants() -> dict[str, object]:
    constants = _constants()
    constants["kw"] = torch.randn(C, 1, 3, 3, dtype=torch.float64)
    constants["kb"] = torch.randn(C, dtype=torch.float64)
    constants["fw"] = torch.randn(C, C, 3, 3, dtype=torch.float64)
    constants["fb"] = torch.randn(C, dtype=torch.float64)
    return constants


def _reference_sum(op, sibling: str, constants, x: torch.Tensor) -> torch.Tensor:
    bn = _reference_bn(x)
    if sibling == "depthwise":
        other = F.conv2d(x, constants["kw"], constants["kb"], padding=1, groups=C)
    elif sibling == "depthwise_elsewhere":
        other = F.conv2d(x.relu(), constants["kw"], constants["kb"], padding=1, groups=C)
    elif sibling == "dense":
        other = F.conv2d(x, constants["fw"], constants["fb"], padding=1)
    elif sibling == "itself":
        other = bn
    else:
        other = x
    sign = -1.0 if op == aten.sub.Tensor else 1.0
    return other + sign * bn if sibling == "input_first" else bn + sign * other


@pytest.mark.parametrize("op", [aten.add.Tensor, aten.sub.Tensor])
@pytest.mark.parametrize(
    ("sibling", "groups"),
    [
        ("depthwise", C),  # a grouped sibling reading the same x: the same groups
        ("depthwise_elsewhere", 1),  # grouped, but reading another value
        ("dense", 1),
        ("input", 1),
        ("input_first", 1),
        ("itself", 1),  # bn(x) + bn(x): no sibling at all
    ],
)
@pytest.mark.parametrize("kind", ["legit", "batch_norm"])
def test_a_lone_bn_in_a_sum_becomes_a_1x1_conv(op, sibling: str, groups: int, kind: str):
    """R6 + R1: a BN with no conv before it, summed with a branch, is the 1×1 conv
    diag(t)·x + c (stride 1, no padding), with the sibling conv's groups when that conv reads
    the same x (so R3 can merge them), else dense; recorded as R6 on the BN."""
    constants = _lone_constants()
    ws, _ = workspace(_lone_bn_sum(op, sibling, kind), constants)
    node = _bn_node(ws)
    bn_node = node.args[0] if kind == "legit" else node
    before = len(_convs(ws))
    assert fuse_batch_norm(ws, node) is True
    (emitted,) = [c for c in _convs(ws) if ws.tensor(c.args[1]).shape[-1] == 1]
    assert len(_convs(ws)) == before + 1
    weight = ws.tensor(emitted.args[1])
    assert weight.dtype == torch.float64
    assert weight.shape == (C, C // groups, 1, 1)
    assert emitted.args[3:] == ([1, 1], [0, 0], [1, 1], groups)
    assert emitted.args[0].op == "placeholder"
    scale = GAMMA / STD
    expected = torch.zeros(C, C // groups, 1, 1, dtype=torch.float64)
    for i in range(C):
        expected[i, i % (C // groups), 0, 0] = scale[i]
    assert torch.allclose(weight, expected, rtol=1e-14, atol=0)
    assert torch.allclose(ws.tensor(emitted.args[2]), BETA - MEAN * scale, rtol=1e-14, atol=0)
    # R6 writes the BN's input as an identity conv, R1 folds the BN into it: both recorded,
    # each with the checks its own transform ran (R1's graph fact: eval mode)
    fold, application = ws.record.applications
    assert (application.rule, application.nodes) == ("R6", (bn_node.name,))
    assert (fold.rule, fold.nodes) == ("R1", (bn_node.name,))
    assert application.title == get_rule("R6").title
    assert fold.preconditions[-1] == CHECKED
    assert {c.rule for c in application.checks} == {"R6"}
    assert all(c.checked == "transform" and c.holds for c in application.checks)
    assert ws.record.unfolded({n.name for n in ws.graph.nodes}) == []
    reference = _reference_sum(op, sibling, constants, X3)
    assert torch.allclose(ws.finish()(X3), reference, rtol=1e-12, atol=1e-12)


def test_a_lone_bn_read_by_another_op_is_refused() -> None:
    """A lone BN whose user is neither a valid conv nor a sum stays, refused with R1's
    structural condition and an empty detail."""
    ws, _ = workspace(
        lambda g: call(g, aten.mul.Tensor, _bn(g, g.placeholder("x"), "batch_norm"), 2.0),
        _constants(),
    )
    node = _bn_node(ws)
    assert fuse_batch_norm(ws, node) is False
    assert _unfolded(ws, {node.name}) == {
        (node.name, str(aten.batch_norm.default), "R1", REFUSED, "")
    }
    assert ws.record.applications == [] and _convs(ws) == []
