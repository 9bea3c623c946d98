"""Constant ops, zero padding and input shifts folded into a conv, and the near-misses that
must stay (kill tests of the mutation pass; ``mutation/survivors.txt`` names each one). Each
compiled module is compared with its original in float64; the conv and op counts say what was
folded."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import et
from et.compiler.helpers import FAN_OUT
from et.compiler.linear_rewrites import fold_constant_ops
from et.testing import compare_outputs, probe_inputs
from tests.compiler.graphs import aten, call, workspace


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
    assert refusal.precondition == "symmetric zero padding"
    assert refusal.detail == f"pad {list(pad)}"


def test_pad_with_a_value_or_a_crop_is_not_absorbed() -> None:
    compiled = _compile(Expression(lambda conv, x, c: conv(F.pad(x, (1, 1, 1, 1), value=1.0))))
    assert compiled.certificate.ops_after.get("constant_pad_nd.default") == 1
    compiled = _compile(Expression(lambda conv, x, c: conv(F.pad(x, (1, 1, -1, -1)))))
    assert "G1" not in compiled.certificate.rules_used()


SHIFTED = {
    "x + c": (lambda conv, x, c: conv(x + c), True),
    "c + x": (lambda conv, x, c: conv(c + x), True),
    "x - c": (lambda conv, x, c: conv(x - c), True),
    "c - x": (lambda conv, x, c: conv(c - x), False),  # −x: no shift of x
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
        assert applied.preconditions == (
            "the conv has padding 0, so every tap reads a shifted value",
        )


def test_padded_conv_of_a_shifted_input_keeps_the_shift() -> None:
    # the padding reads zeros, not shifted values: folding would be wrong at the border
    compiled = _compile(Expression(lambda conv, x, c: conv(x + c), padding=1))
    assert "G4" not in compiled.certificate.rules_used()
    assert compiled.certificate.ops_after.get("add.Tensor") == 1
