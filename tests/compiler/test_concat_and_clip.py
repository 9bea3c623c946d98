"""Concatenated and summed conv branches (R11, R3) and clamps after a conv (E2) (kill tests of
the mutation pass; ``mutation/survivors.txt`` names each one)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import et
from et.compiler import count_convs
from et.compiler.helpers import FAN_OUT
from et.testing import compare_outputs, probe_inputs


class TwoBranches(nn.Module):
    def __init__(self, join, second_stride: int = 1, second_input: bool = False) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 2, 3, padding=1)
        self.b = nn.Conv2d(3, 2, 3, padding=1, stride=second_stride)
        self.join, self.second_input = join, second_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * 2.0 + 0.5 if self.second_input else x
        return self.join(self.a(x), self.b(y))


def _compiled(model: nn.Module) -> et.compiler.Compiled:
    torch.manual_seed(0)
    model = model.double().eval()
    compiled = et.compile(model, (torch.rand(1, 3, 8, 8, dtype=torch.float64),))
    report = compare_outputs(model, compiled.module, probe_inputs((3, 9, 7)), dtype=torch.float64)
    assert report.max_rel_error <= 1e-9, report.describe()
    return compiled


@pytest.mark.parametrize("dim", [1, -3])
def test_concatenated_convs_of_one_input_are_one_conv(dim: int) -> None:
    compiled = _compiled(TwoBranches(lambda a, b: torch.cat([a, b], dim=dim)))
    assert count_convs(compiled.module) == 1
    (applied,) = compiled.certificate.applications
    assert applied.rule == "R11"
    assert applied.nodes == ("conv2d", "conv2d_1", "cat")
    assert FAN_OUT in applied.preconditions


def test_concatenation_along_another_axis_or_of_other_inputs_is_kept() -> None:
    compiled = _compiled(TwoBranches(lambda a, b: torch.cat([a, b], dim=2)))
    assert count_convs(compiled.module) == 2
    compiled = _compiled(TwoBranches(lambda a, b: torch.cat([a, b], 1), second_input=True))
    assert count_convs(compiled.module) == 2
    assert "R11" not in compiled.certificate.rules_used()


def test_concatenation_of_convs_of_different_strides_is_kept() -> None:
    model = TwoBranches(lambda a, b: torch.cat([a[..., ::2, ::2], b], 1), second_stride=2)
    compiled = _compiled(model)
    assert count_convs(compiled.module) == 2


def test_summed_convs_of_one_input_are_one_conv() -> None:
    compiled = _compiled(TwoBranches(lambda a, b: a + b))
    assert count_convs(compiled.module) == 1
    (applied,) = compiled.certificate.applications
    assert applied.rule == "R3"
    assert applied.preconditions[-2:] == ("both branches read the same graph value", FAN_OUT)


def test_summed_convs_of_different_inputs_are_kept() -> None:
    compiled = _compiled(TwoBranches(lambda a, b: a + b, second_input=True))
    assert "R3" not in compiled.certificate.rules_used()
    assert compiled.certificate.ops_after.get("add.Tensor", 0) >= 1


def test_a_conv_plus_a_non_conv_branch_is_kept() -> None:
    compiled = _compiled(TwoBranches(lambda a, b: a + torch.relu(b)))
    assert count_convs(compiled.module) == 2
    compiled = _compiled(TwoBranches(lambda a, b: torch.relu(a) + b))
    assert count_convs(compiled.module) == 2


class Clamped(nn.Module):
    def __init__(self, clamp) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.clamp = clamp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.clamp(self.conv(x))


@pytest.mark.parametrize(
    "clamp",
    [
        lambda y: torch.clamp(y, 0.0, 0.5),
        lambda y: F.hardtanh(y, 0.0, 2.0),
    ],
    ids=["clamp", "hardtanh"],
)
def test_a_clip_to_zero_and_m_after_a_conv_becomes_relus(clamp) -> None:
    compiled = _compiled(Clamped(clamp))
    assert compiled.certificate.rules_used().get("E2") == 1


@pytest.mark.parametrize(
    ("clamp", "bounds"),
    [
        (lambda y: F.hardtanh(y), (-1.0, 1.0)),
        (lambda y: torch.clamp(y, -0.5, 0.5), (-0.5, 0.5)),
        (lambda y: torch.clamp(y, 0.0), (0.0, float("inf"))),
    ],
    ids=["hardtanh default", "signed clamp", "no upper bound"],
)
def test_other_clamps_are_refused_with_their_bounds(clamp, bounds) -> None:
    compiled = _compiled(Clamped(clamp))
    (refusal,) = [u for u in compiled.certificate.unfolded if u.rule == "E2"]
    assert refusal.precondition == "the clamp is clamp(y, 0, M)"
    assert refusal.detail == f"bounds {bounds}"
