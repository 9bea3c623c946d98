"""Small steps of the compiler on hand-built graphs and tiny models: per-channel constants,
no-op copies, the certificate builder's records, the verification's two sizes, sequential
merges and their refusals (kill tests of the mutation pass; ``mutation/survivors.txt`` names
each one)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import et
from et.compiler import VerificationError, count_convs
from et.compiler.canonical import remove_no_ops
from et.compiler.certificate import CertificateBuilder
from et.compiler.helpers import FAN_OUT
from et.compiler.linear_rewrites import per_channel
from et.compiler.verify import measure
from et.contract import get_rule
from et.domain import IMAGE_UNIT
from et.testing import compare_outputs, probe_inputs
from tests.compiler.graphs import aten, call, workspace


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((1, 3, 1, 1), [0.0, 1.0, 2.0]),
        ((3, 1, 1), [0.0, 1.0, 2.0]),
        ((1, 1, 1, 1), [0.0, 0.0, 0.0]),
        ((1, 3, 4, 1), None),
        ((1, 3, 1, 4), None),
        ((2, 3, 1, 1), None),
        ((1, 2, 1, 1), None),
        ((3,), None),  # broadcasts along the width, not the channels
    ],
)
def test_per_channel_constants(shape: tuple[int, ...], expected) -> None:
    values = torch.arange(torch.Size(shape).numel(), dtype=torch.float64).reshape(shape)
    ws, node = workspace(lambda g: g.get_attr("c"), {"c": values})
    found = per_channel(ws, node, 3)
    assert (found is None) if expected is None else found.tolist() == expected


def test_a_python_number_is_a_per_channel_constant_in_float64() -> None:
    ws, _ = workspace(lambda g: g.placeholder("x"))
    found = per_channel(ws, 0.1, 3)
    assert found.dtype == torch.float64
    assert found.tolist() == [0.1, 0.1, 0.1]


def _copy(source_shape, view_shape, source_is_constant: bool):
    def build(g):
        view = g.placeholder("view")
        view.meta["val"] = torch.empty(view_shape)
        if source_is_constant:
            source = g.get_attr("c")
        else:
            source = g.placeholder("source")
            source.meta["val"] = torch.empty(source_shape)
        return call(g, aten.copy.default, view, source)

    return workspace(build, {"c": torch.zeros(source_shape)})


@pytest.mark.parametrize("constant", [True, False])
def test_a_copy_is_a_no_op_only_between_equal_shapes(constant: bool) -> None:
    ws, node = _copy((1, 3, 4, 4), (1, 3, 4, 4), constant)
    assert remove_no_ops(ws, node) is True
    ws, node = _copy((1, 3, 1, 1), (1, 3, 4, 4), constant)  # a broadcast copy
    assert remove_no_ops(ws, node) is False


def test_a_copy_of_values_without_shapes_is_kept() -> None:
    def build(g):
        return call(g, aten.copy.default, g.placeholder("view"), g.placeholder("source"))

    ws, node = workspace(build)
    assert remove_no_ops(ws, node) is False


def test_the_builder_records_titles_names_and_refusals() -> None:
    _, node = workspace(lambda g: call(g, aten.relu.default, g.placeholder("x")))
    builder = CertificateBuilder()
    builder.refused(node, "E4", "x ≥ 0")
    (refusal,) = builder.unfolded({node.name})
    assert (refusal.op, refusal.detail) == (str(aten.relu.default), "")
    builder.refused(node, "E4", "x ≥ 0", "bound -1")
    assert builder.unfolded({node.name})[0].detail == "bound -1"
    builder.applied("G1", ["pad_3", node])
    assert builder.applications[0].nodes == ("pad_3", node.name)
    assert builder.applications[0].title == get_rule("G1").title  # from the catalogue
    assert builder.unfolded({node.name}) == []  # rewritten since: no longer unfolded
    builder.applied("R1", [node], ("fan-out 1",))
    r1 = get_rule("R1")
    assert builder.applications[1].title == r1.title
    assert builder.applications[1].preconditions[-1] == "fan-out 1"


class WrongAtOtherSizes(nn.Module):
    """Equal to ``inner`` at one spatial size only."""

    def __init__(self, inner: nn.Module, size: int) -> None:
        super().__init__()
        self.inner, self.size = inner, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        return y if x.shape[-1] == self.size else y + 1


def test_verification_checks_float64_at_the_second_size_too() -> None:
    original = nn.Conv2d(3, 2, 3, padding=1).double()
    shapes = [(3, 6, 6), (3, 7, 7)]  # verify.measure takes the probe shapes
    measured = measure(original, original, original, shapes, IMAGE_UNIT, clamp=None, tolerance=1e-9)
    assert measured["float64"] == 0.0 and set(measured) == {"float64", "float32"}
    with pytest.raises(VerificationError, match=r"\(3, 7, 7\)"):
        wrong = WrongAtOtherSizes(original, 6)
        measure(original, wrong, wrong, shapes, IMAGE_UNIT, clamp=None, tolerance=1e-9)


def test_a_float32_model_is_verified_in_float64() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 3, 1)).eval()
    compiled = et.compile(model, (torch.rand(1, 3, 6, 6),))
    assert compiled.certificate.max_error["float64"] <= 1e-12
    assert next(compiled.module.buffers()).dtype == torch.float32


def _compiled(model: nn.Module, size: int = 8) -> et.compiler.Compiled:
    torch.manual_seed(0)
    model = model.double().eval()
    compiled = et.compile(model, (torch.rand(1, 3, size, size, dtype=torch.float64),))
    report = compare_outputs(model, compiled.module, probe_inputs((3, 9, 7)), dtype=torch.float64)
    assert report.max_rel_error <= 1e-9, report.describe()
    return compiled


@pytest.mark.parametrize(
    ("first", "second", "rule"),
    [
        (nn.Conv2d(3, 4, 1, bias=False), nn.Conv2d(4, 3, 3, padding=1), "R7"),
        (nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 3, 1), "R9"),
        # each merged conv costs no more multiply-adds than the pair (the cost guard)
        (nn.Conv2d(3, 3, 3, padding=1, groups=3), nn.Conv2d(3, 1, 1), "R14"),
        (nn.Conv2d(3, 8, 3), nn.Conv2d(8, 3, 3), "R8"),
        (nn.Conv2d(3, 4, 1), nn.Conv2d(4, 3, 3), "R8"),  # 1×1 then a valid K×K
    ],
)
def test_two_convs_in_a_row_merge_by_the_rule_for_their_shapes(first, second, rule) -> None:
    compiled = _compiled(nn.Sequential(first, second))
    assert count_convs(compiled.module) == 1
    (applied,) = compiled.certificate.applications
    assert applied.rule == rule
    assert len(applied.nodes) == 2
    assert FAN_OUT in applied.preconditions


@pytest.mark.parametrize(
    ("first", "second", "rule"),
    [
        (nn.Conv2d(3, 4, 1, stride=2), nn.Conv2d(4, 3, 3, padding=1), "R8"),
        (nn.Conv2d(3, 4, 1, padding=1), nn.Conv2d(4, 3, 3, padding=1), "R8"),
        (nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 3, 1, stride=2, padding=1), "R8"),
    ],
)
def test_a_padded_second_conv_after_a_non_pointwise_first_is_refused(first, second, rule) -> None:
    compiled = _compiled(nn.Sequential(first, second), size=9)
    assert count_convs(compiled.module) == 2
    (refusal,) = [u for u in compiled.certificate.unfolded if u.rule == rule]
    assert refusal.precondition and refusal.detail
    assert refusal.node == "conv2d_1"


class FanOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 3, 1)
        self.c = nn.Parameter(torch.tensor([0.5, -1.0, 2.0]).reshape(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        return self.b(y) * torch.sigmoid(y) + (y + self.c)


def test_a_conv_feeding_several_ops_is_not_folded_into_any() -> None:
    compiled = _compiled(FanOut())
    assert count_convs(compiled.module) == 2
    (refusal,) = [u for u in compiled.certificate.unfolded if u.rule == "R8"]
    assert refusal.precondition == FAN_OUT
    assert refusal.detail == "the first conv also feeds ['add', 'sigmoid']"
